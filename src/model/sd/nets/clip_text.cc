#include "model/sd/nets/clip_text.h"

#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

#include "model/sd/text/clip_tokenizer.h"

namespace imagegen::sd {
namespace {

Error Invalid(const std::string& message) {
  return Error::Make(ErrorCode::kInvalidRequest, "text encoder: " + message);
}

Result<torch::Tensor> Weight(const TensorMap& weights, const std::string& name,
                             std::vector<int64_t> shape, torch::ScalarType type) {
  auto it = weights.find(name);
  if (it == weights.end()) return Invalid("missing weight " + name);
  if (IsQ8Matrix(it->second)) {  // wanted dense (the layers keep theirs 8-bit: Q8Matrix)
    if (Q8MatrixShape(it->second) != shape) return Invalid("weight " + name + " has another shape");
    return DequantizeQ8(it->second, type);
  }
  if (it->second.sizes() != c10::IntArrayRef(shape)) {
    return Invalid("weight " + name + " has shape " + c10::str(it->second.sizes()) + ", expected " +
                   c10::str(c10::IntArrayRef(shape)));
  }
  return it->second.to(type).contiguous();
}

// The matrix `name` kept 8-bit when the map holds it so with `shape`; null otherwise.
std::shared_ptr<Q8Weight> Q8Matrix(const TensorMap& weights, const std::string& name,
                                   const std::vector<int64_t>& shape, torch::ScalarType type) {
  auto it = weights.find(name);
  return it == weights.end() ? nullptr : Q8WeightOf(it->second, shape, type);
}

Result<int64_t> PositiveInt(const nlohmann::json& config, const char* name) {
  auto it = config.find(name);
  if (it == config.end() || !it->is_number_integer() || it->get<int64_t>() <= 0) {
    return Invalid(std::string("config needs a positive integer ") + name);
  }
  return it->get<int64_t>();
}

}  // namespace

Result<ClipTextEncoder> ClipTextEncoder::Create(const Component& component,
                                                torch::ScalarType compute, WeightTargets* targets) {
  const auto& config = component.config;
  auto hidden = PositiveInt(config, "hidden_size");
  auto heads = PositiveInt(config, "num_attention_heads");
  auto layers = PositiveInt(config, "num_hidden_layers");
  for (const auto* f : {&hidden, &heads, &layers}) {
    if (!*f) return f->error();
  }
  if (*hidden % *heads != 0) return Invalid("hidden_size is not divisible by num_attention_heads");
  const auto act_field = config.find("hidden_act");  // transformers' default: quick_gelu
  const std::string act = act_field == config.end() ? "quick_gelu"
                          : act_field->is_string()  ? act_field->get<std::string>()
                                                    : "";
  if (act != "quick_gelu" && act != "gelu") {
    return Invalid("hidden_act '" + act + "' is not supported (quick_gelu, gelu)");
  }
  ClipTextEncoder e;
  e.type_ = compute;
  e.hidden_ = *hidden;
  e.heads_ = *heads;
  e.quick_gelu_ = act == "quick_gelu";
  const auto eps = config.find("layer_norm_eps");
  if (eps != config.end() && eps->is_number()) e.eps_ = eps->get<double>();
  const auto& w = component.weights;
  const int64_t h = *hidden;
  auto tokens = w.find("text_model.embeddings.token_embedding.weight");
  auto positions = w.find("text_model.embeddings.position_embedding.weight");
  if (tokens == w.end() || positions == w.end() || tokens->second.dim() != 2 ||
      positions->second.dim() != 2 || tokens->second.size(1) != h ||
      positions->second.size(1) != h) {
    return Invalid("token and position embeddings must be [*, hidden_size]");
  }
  e.token_embedding_ = tokens->second.to(compute).contiguous();
  e.position_embedding_ = positions->second.to(compute).contiguous();
  auto norm_w = Weight(w, "text_model.final_layer_norm.weight", {h}, compute);
  auto norm_b = Weight(w, "text_model.final_layer_norm.bias", {h}, compute);
  if (!norm_w) return norm_w.error();
  if (!norm_b) return norm_b.error();
  e.final_norm_ = {*norm_w, *norm_b};
  const auto eos_id = config.find("eos_token_id");  // transformers' default: the legacy 2
  if (eos_id != config.end() && eos_id->is_number_integer()) e.eos_token_id_ = *eos_id;
  if (w.count("text_projection.weight") != 0) {
    auto projection = PositiveInt(config, "projection_dim");
    if (!projection) return projection.error();
    auto weight = Weight(w, "text_projection.weight", {*projection, h}, compute);
    if (!weight) return weight.error();
    e.projection_ = *weight;
  }
  auto inner = w.find("text_model.encoder.layers.0.mlp.fc1.weight");
  if (inner == w.end() || (inner->second.dim() != 2 && !IsQ8Matrix(inner->second))) {
    return Invalid("missing the first MLP");
  }
  const int64_t m = inner->second.size(0);
  for (int64_t i = 0; i < *layers; ++i) {
    const std::string p = "text_model.encoder.layers." + std::to_string(i) + ".";
    Layer layer;
    struct Want {
      torch::Tensor* into;
      std::string name;
      std::vector<int64_t> shape;
      std::shared_ptr<Q8Weight>* q8 = nullptr;  // a matrix a Linear may keep 8-bit
    };
    const Want wants[] = {{&layer.norm1.weight, "layer_norm1.weight", {h}},
                          {&layer.norm1.bias, "layer_norm1.bias", {h}},
                          {&layer.norm2.weight, "layer_norm2.weight", {h}},
                          {&layer.norm2.bias, "layer_norm2.bias", {h}},
                          {&layer.q.weight, "self_attn.q_proj.weight", {h, h}, &layer.q.q8},
                          {&layer.q.bias, "self_attn.q_proj.bias", {h}},
                          {&layer.k.weight, "self_attn.k_proj.weight", {h, h}, &layer.k.q8},
                          {&layer.k.bias, "self_attn.k_proj.bias", {h}},
                          {&layer.v.weight, "self_attn.v_proj.weight", {h, h}, &layer.v.q8},
                          {&layer.v.bias, "self_attn.v_proj.bias", {h}},
                          {&layer.out.weight, "self_attn.out_proj.weight", {h, h}, &layer.out.q8},
                          {&layer.out.bias, "self_attn.out_proj.bias", {h}},
                          {&layer.fc1.weight, "mlp.fc1.weight", {m, h}, &layer.fc1.q8},
                          {&layer.fc1.bias, "mlp.fc1.bias", {m}},
                          {&layer.fc2.weight, "mlp.fc2.weight", {h, m}, &layer.fc2.q8},
                          {&layer.fc2.bias, "mlp.fc2.bias", {h}}};
    for (const auto& want : wants) {
      if (want.q8 != nullptr) {
        if (auto q8 = Q8Matrix(w, p + want.name, want.shape, compute)) {
          *want.q8 = q8;
          if (targets != nullptr) targets->SetQ8(p + want.name, q8, 0, want.shape[0]);
          continue;
        }
      }
      auto t = Weight(w, p + want.name, want.shape, compute);
      if (!t) return t.error();
      *want.into = *t;
      if (targets != nullptr && want.shape.size() == 2) targets->Set(p + want.name, *t);
    }
    e.layers_.push_back(std::move(layer));
  }
  return e;
}

torch::Tensor ClipTextEncoder::Attention(const Layer& layer, const torch::Tensor& x,
                                         const torch::Tensor& mask) const {
  const int64_t b = x.size(0), t = x.size(1), d = hidden_ / heads_;
  auto split = [&](const torch::Tensor& y) { return y.view({b, t, heads_, d}).transpose(1, 2); };
  // transformers scales the queries before the product; the same order keeps the rounding.
  const torch::Tensor q = split(layer.q.Apply(x) * (1.0 / std::sqrt(double(d))));
  const torch::Tensor k = split(layer.k.Apply(x));
  const torch::Tensor v = split(layer.v.Apply(x));
  const torch::Tensor scores = torch::matmul(q, k.transpose(-1, -2)) + mask;
  const torch::Tensor mixed = torch::matmul(torch::softmax(scores, -1), v);
  return layer.out.Apply(mixed.transpose(1, 2).reshape({b, t, hidden_}));
}

torch::Tensor ClipTextEncoder::Mlp(const Layer& layer, const torch::Tensor& x) const {
  torch::Tensor y = layer.fc1.Apply(x);
  y = quick_gelu_ ? y * torch::sigmoid(1.702 * y) : torch::gelu(y);
  return layer.fc2.Apply(y);
}

void ClipTextEncoder::CheckIds(const torch::Tensor& ids) const {
  if (ids.dim() != 2 || ids.scalar_type() != torch::kLong || ids.size(1) > max_positions() ||
      ids.size(1) < 1) {
    throw std::invalid_argument("ClipTextEncoder: ids must be int64 [B, 1.." +
                                std::to_string(max_positions()) + "]");
  }
  if (ids.numel() > 0 &&
      (ids.min().item<int64_t>() < 0 || ids.max().item<int64_t>() >= vocab_size())) {
    throw std::invalid_argument("ClipTextEncoder: an id is outside the vocabulary");
  }
}

torch::Tensor ClipTextEncoder::Embed(const torch::Tensor& ids) const {
  const int64_t b = ids.size(0), t = ids.size(1);
  return token_embedding_.index_select(0, ids.reshape({-1})).view({b, t, hidden_}) +
         position_embedding_.narrow(0, 0, t);
}

// Causal: a token sees itself and the tokens before it (transformers fills with the float
// minimum, not -inf; softmax gives the same since every row keeps its diagonal; in bfloat16
// the float minimum rounds to -inf, with the same result).
torch::Tensor ClipTextEncoder::CausalMask(int64_t tokens) const {
  return torch::full({tokens, tokens}, std::numeric_limits<float>::lowest())
      .triu(1)
      .view({1, 1, tokens, tokens})
      .to(type_);
}

torch::Tensor ClipTextEncoder::RunLayer(int index, const torch::Tensor& x,
                                        const torch::Tensor& mask) const {
  const Layer& layer = layers_[static_cast<size_t>(index)];
  auto y =
      x + Attention(layer,
                    torch::layer_norm(x, {hidden_}, layer.norm1.weight, layer.norm1.bias, eps_),
                    mask);
  return y +
         Mlp(layer, torch::layer_norm(y, {hidden_}, layer.norm2.weight, layer.norm2.bias, eps_));
}

torch::Tensor ClipTextEncoder::Encode(const torch::Tensor& ids, int clip_skip) const {
  CheckIds(ids);
  if (clip_skip < 1 || clip_skip > layers()) {
    throw std::invalid_argument("ClipTextEncoder::Encode: clip_skip must be 1.." +
                                std::to_string(layers()));
  }
  torch::NoGradGuard no_grad;
  torch::Tensor x = Embed(ids);
  const torch::Tensor mask = CausalMask(ids.size(1));
  const int run = layers() - (clip_skip - 1);
  for (int i = 0; i < run; ++i) x = RunLayer(i, x, mask);
  return torch::layer_norm(x, {hidden_}, final_norm_.weight, final_norm_.bias, eps_)
      .to(torch::kFloat);
}

ClipTextEncoder::Conditioning ClipTextEncoder::EncodePenultimate(const torch::Tensor& ids,
                                                                 int clip_skip) const {
  CheckIds(ids);
  if (clip_skip < 1 || clip_skip >= layers()) {
    throw std::invalid_argument("ClipTextEncoder::EncodePenultimate: clip_skip must be 1.." +
                                std::to_string(layers() - 1));
  }
  torch::NoGradGuard no_grad;
  torch::Tensor x = Embed(ids);
  const torch::Tensor mask = CausalMask(ids.size(1));
  Conditioning out;
  for (int i = 0; i < layers(); ++i) {
    if (i == layers() - clip_skip) out.hidden = x.to(torch::kFloat);
    if (i == layers() - clip_skip && !projection_.defined()) return out;
    x = RunLayer(i, x, mask);
  }
  const auto last = torch::layer_norm(x, {hidden_}, final_norm_.weight, final_norm_.bias, eps_);
  const auto eos =
      eos_token_id_ == 2 ? ids.argmax(-1) : (ids == eos_token_id_).to(torch::kInt).argmax(-1);
  const auto rows = torch::arange(ids.size(0), torch::kLong);
  out.pooled = torch::linear(last.index({rows, eos}), projection_).to(torch::kFloat);
  return out;
}

Result<torch::Tensor> EncodePrompt(const ClipTokenizer& tokenizer, const ClipTextEncoder& encoder,
                                   std::string_view prompt, int clip_skip) {
  if (clip_skip < 1 || clip_skip > encoder.layers()) {
    return Error::Invalid("clip_skip", "clip_skip must be 1.." + std::to_string(encoder.layers()));
  }
  auto chunks = tokenizer.EncodeChunks(prompt);
  if (!chunks) return chunks.error();
  const auto per_chunk = static_cast<int64_t>(chunks->front().size());
  if (per_chunk > encoder.max_positions()) {
    return Invalid("the tokenizer's chunks are longer than the encoder's positions");
  }
  std::vector<int64_t> flat;
  for (const auto& chunk : *chunks) {
    for (int32_t id : chunk) {
      if (id < 0 || id >= encoder.vocab_size()) {
        return Invalid("token id " + std::to_string(id) +
                       " is beyond the encoder's vocabulary of " +
                       std::to_string(encoder.vocab_size()));
      }
      flat.push_back(id);
    }
  }
  const auto count = static_cast<int64_t>(chunks->size());
  torch::Tensor ids = torch::tensor(flat, torch::kLong).view({count, per_chunk});
  torch::Tensor hidden = encoder.Encode(ids, clip_skip);
  return hidden.reshape({1, count * per_chunk, encoder.hidden_size()});
}

}  // namespace imagegen::sd
