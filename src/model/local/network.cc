#include "model/local/network.h"

#include <cctype>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>

namespace imagegen::local {
namespace F = torch::nn::functional;
using nlohmann::json;

Result<ModelConfig> ModelConfig::FromJson(const std::string& text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  auto bad = [](const std::string& what) {
    return Error::Make(ErrorCode::kInvalidRequest, "invalid model config.json: " + what);
  };
  if (j.is_discarded() || !j.is_object()) return bad("not a JSON object");
  if (j.value("format", "") != "imagegen-local") return bad("format is not \"imagegen-local\"");
  if (j.value("version", 0) != 1) return bad("unsupported version (expected 1)");
  ModelConfig c;
  try {
    c.native_size = j.at("native_size").get<int>();
    c.vocab = j.at("vocab").get<std::vector<std::string>>();
    c.max_tokens = j.at("max_tokens").get<int>();
    c.text_dim = j.at("text_dim").get<int>();
    c.text_layers = j.at("text_layers").get<int>();
    c.text_heads = j.at("text_heads").get<int>();
    c.word_context = j.value("word_context", false);
    c.channels = j.at("channels").get<std::vector<int>>();
    c.time_dim = j.at("time_dim").get<int>();
    c.attn_heads = j.at("attn_heads").get<int>();
    c.groups = j.at("groups").get<int>();
    c.timesteps = j.at("timesteps").get<int>();
    c.default_steps = j.at("default_steps").get<int>();
    c.default_guidance = j.at("default_guidance").get<double>();
    if (j.contains("training")) c.json_extra = j.at("training").dump();
  } catch (const json::exception& e) {
    return bad(e.what());
  }
  auto positive = [](int v, int max) { return v > 0 && v <= max; };
  if (!positive(c.native_size, 1024) || c.native_size % 4 != 0) return bad("native_size");
  if (c.vocab.empty() || c.vocab.size() > 100000) return bad("vocab");
  if (!positive(c.max_tokens, 512) || c.max_tokens < 2) return bad("max_tokens");
  if (!positive(c.text_heads, 64) || !positive(c.text_dim, 4096) || c.text_dim % c.text_heads)
    return bad("text_dim / text_heads");
  if (!positive(c.text_layers, 64)) return bad("text_layers");
  if (c.channels.size() != 3 || !positive(c.groups, 64) || !positive(c.attn_heads, 64))
    return bad("channels must list 3 levels");
  for (int ch : c.channels) {
    if (!positive(ch, 4096) || ch % c.groups || ch % c.attn_heads) return bad("channels");
  }
  if (!positive(c.time_dim, 4096) || c.time_dim % 2) return bad("time_dim");
  if (!positive(c.timesteps, 100000)) return bad("timesteps");
  if (!positive(c.default_steps, c.timesteps)) return bad("default_steps");
  return c;
}

std::string ModelConfig::ToJson() const {
  json j = {{"format", "imagegen-local"},
            {"version", 1},
            {"native_size", native_size},
            {"vocab", vocab},
            {"max_tokens", max_tokens},
            {"text_dim", text_dim},
            {"text_layers", text_layers},
            {"text_heads", text_heads},
            {"word_context", word_context},
            {"channels", channels},
            {"time_dim", time_dim},
            {"attn_heads", attn_heads},
            {"groups", groups},
            {"timesteps", timesteps},
            {"prediction", "v"},
            {"schedule", "cosine"},
            {"default_steps", default_steps},
            {"default_guidance", default_guidance}};
  if (!json_extra.empty()) j["training"] = json::parse(json_extra, nullptr, false);
  return j.dump(2) + "\n";
}

Tokens Tokenize(const ModelConfig& config, const std::string& text) {
  Tokens t;
  t.ids.assign(static_cast<size_t>(config.max_tokens), 0);
  t.ids[0] = 1;
  size_t n = 1;
  std::string word;
  auto flush = [&] {
    if (word.empty()) return;
    auto it = std::find(config.vocab.begin(), config.vocab.end(), word);
    if (it == config.vocab.end()) {
      if (std::find(t.unknown.begin(), t.unknown.end(), word) == t.unknown.end()) {
        t.unknown.push_back(word);
      }
    } else if (n < t.ids.size()) {
      t.ids[n++] = (it - config.vocab.begin()) + 2;
    } else {
      t.truncated = true;
    }
    word.clear();
  };
  for (char ch : text) {
    if (std::isalpha(static_cast<unsigned char>(ch))) {
      word.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(ch))));
    } else if (std::isdigit(static_cast<unsigned char>(ch))) {
      word.push_back(ch);  // "3" is an unknown word, reported, rather than silently dropped
    } else {
      flush();
    }
  }
  flush();
  return t;
}

namespace {

// Multi-head attention: q [B,Lq,C], k/v [B,Lk,C], key_mask [B,Lk] (true = attend).
torch::Tensor Attend(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                     const torch::Tensor& key_mask, int heads) {
  auto b = q.size(0), lq = q.size(1), lk = k.size(1), c = q.size(2);
  auto hd = c / heads;
  auto qh = q.view({b, lq, heads, hd}).transpose(1, 2);
  auto kh = k.view({b, lk, heads, hd}).transpose(1, 2);
  auto vh = v.view({b, lk, heads, hd}).transpose(1, 2);
  auto scores =
      torch::matmul(qh, kh.transpose(-2, -1)) * (1.0 / std::sqrt(static_cast<double>(hd)));
  scores = scores.masked_fill(key_mask.logical_not().view({b, 1, 1, lk}),
                              -std::numeric_limits<float>::infinity());
  auto out = torch::matmul(torch::softmax(scores, -1), vh);
  return out.transpose(1, 2).reshape({b, lq, c});
}

torch::nn::Conv2d Conv(int in, int out, int k, int stride = 1) {
  return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, k).stride(stride).padding(k / 2));
}

torch::nn::GroupNorm Norm(int groups, int ch) {
  return torch::nn::GroupNorm(torch::nn::GroupNormOptions(groups, ch).eps(1e-5));
}

}  // namespace

AttentionBlockImpl::AttentionBlockImpl(int dim, int h) : heads(h) {
  ln1 = register_module("ln1", torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim})));
  qkv = register_module("qkv", torch::nn::Linear(dim, 3 * dim));
  proj = register_module("proj", torch::nn::Linear(dim, dim));
  ln2 = register_module("ln2", torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim})));
  fc1 = register_module("fc1", torch::nn::Linear(dim, 2 * dim));
  fc2 = register_module("fc2", torch::nn::Linear(2 * dim, dim));
}

torch::Tensor AttentionBlockImpl::forward(const torch::Tensor& x, const torch::Tensor& key_mask) {
  auto parts = qkv(ln1(x)).chunk(3, -1);
  auto h = x + proj(Attend(parts[0], parts[1], parts[2], key_mask, heads));
  return h + fc2(F::gelu(fc1(ln2(h))));
}

TextEncoderImpl::TextEncoderImpl(const ModelConfig& c) : word_context(c.word_context) {
  tok_emb = register_module(
      "tok_emb", torch::nn::Embedding(static_cast<int64_t>(c.vocab.size()) + 2, c.text_dim));
  pos_emb = register_parameter("pos_emb", torch::randn({c.max_tokens, c.text_dim}) * 0.02);
  layers = register_module("layers", torch::nn::ModuleList());
  for (int i = 0; i < c.text_layers; ++i)
    layers->push_back(AttentionBlock(c.text_dim, c.text_heads));
  ln_f = register_module("ln_f", torch::nn::LayerNorm(torch::nn::LayerNormOptions({c.text_dim})));
}

torch::Tensor TextEncoderImpl::forward(const torch::Tensor& tokens) {
  auto mask = tokens.ne(0);
  auto h = tok_emb(tokens) + pos_emb.slice(0, 0, tokens.size(1)).unsqueeze(0);
  for (auto& layer : *layers) h = layer->as<AttentionBlock>()->forward(h, mask);
  if (!word_context) return ln_f(h);
  return torch::cat({ln_f(h), ln_f(tok_emb(tokens))}, 1);
}

torch::Tensor TextEncoderImpl::KeyMask(const torch::Tensor& tokens) const {
  auto mask = tokens.ne(0);
  return word_context ? torch::cat({mask, mask}, 1) : mask;
}

ResBlockImpl::ResBlockImpl(int in, int out, int time_dim, int groups) {
  norm1 = register_module("norm1", Norm(groups, in));
  conv1 = register_module("conv1", Conv(in, out, 3));
  temb = register_module("temb", torch::nn::Linear(time_dim, out));
  norm2 = register_module("norm2", Norm(groups, out));
  conv2 = register_module("conv2", Conv(out, out, 3));
  if (in != out) skip = register_module("skip", Conv(in, out, 1));
}

torch::Tensor ResBlockImpl::forward(const torch::Tensor& x, const torch::Tensor& t) {
  auto h = conv1(F::silu(norm1(x))) + temb(t).unsqueeze(-1).unsqueeze(-1);
  h = conv2(F::silu(norm2(h)));
  return (skip ? skip(x) : x) + h;
}

CrossAttentionImpl::CrossAttentionImpl(int channels, int context_dim, int h, int groups)
    : heads(h) {
  norm = register_module("norm", Norm(groups, channels));
  q = register_module("q", torch::nn::Linear(channels, channels));
  k = register_module("k", torch::nn::Linear(context_dim, channels));
  v = register_module("v", torch::nn::Linear(context_dim, channels));
  out = register_module("out", torch::nn::Linear(channels, channels));
}

torch::Tensor CrossAttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& ctx,
                                          const torch::Tensor& key_mask) {
  auto b = x.size(0), c = x.size(1), hh = x.size(2), ww = x.size(3);
  auto seq = norm(x).flatten(2).transpose(1, 2);  // [B, HW, C]
  auto a = out(Attend(q(seq), k(ctx), v(ctx), key_mask, heads));
  return x + a.transpose(1, 2).reshape({b, c, hh, ww});
}

UNetImpl::UNetImpl(const ModelConfig& c) : time_freq_dim(c.time_dim / 2) {
  const int c0 = c.channels[0], c1 = c.channels[1], c2 = c.channels[2];
  const int td = c.time_dim, g = c.groups, d = c.text_dim, h = c.attn_heads;
  time1 = register_module("time1", torch::nn::Linear(2 * time_freq_dim, td));
  time2 = register_module("time2", torch::nn::Linear(td, td));
  conv_in = register_module("conv_in", Conv(3, c0, 3));
  res0 = register_module("res0", ResBlock(c0, c0, td, g));
  down0 = register_module("down0", Conv(c0, c0, 3, 2));
  res1 = register_module("res1", ResBlock(c0, c1, td, g));
  attn1 = register_module("attn1", CrossAttention(c1, d, h, g));
  down1 = register_module("down1", Conv(c1, c1, 3, 2));
  mid0 = register_module("mid0", ResBlock(c1, c2, td, g));
  attn_mid = register_module("attn_mid", CrossAttention(c2, d, h, g));
  mid1 = register_module("mid1", ResBlock(c2, c2, td, g));
  up1 = register_module("up1", Conv(c2, c1, 3));
  dec1 = register_module("dec1", ResBlock(2 * c1, c1, td, g));
  attn_dec1 = register_module("attn_dec1", CrossAttention(c1, d, h, g));
  up0 = register_module("up0", Conv(c1, c0, 3));
  dec0 = register_module("dec0", ResBlock(2 * c0, c0, td, g));
  norm_out = register_module("norm_out", Norm(g, c0));
  conv_out = register_module("conv_out", Conv(c0, 3, 3));
}

torch::Tensor UNetImpl::forward(const torch::Tensor& x, const torch::Tensor& t,
                                const torch::Tensor& ctx, const torch::Tensor& mask) {
  // Sinusoidal timestep features -> MLP; the blocks see silu(temb).
  auto freqs = torch::exp(torch::arange(time_freq_dim, torch::kFloat32) *
                          (-std::log(10000.0) / time_freq_dim));
  auto args = t.to(torch::kFloat32).unsqueeze(1) * freqs.unsqueeze(0);
  auto temb = F::silu(time2(F::silu(time1(torch::cat({args.sin(), args.cos()}, 1)))));
  auto up = [](const torch::Tensor& v) {
    return F::interpolate(v, F::InterpolateFuncOptions()
                                 .scale_factor(std::vector<double>{2.0, 2.0})
                                 .mode(torch::kNearest));
  };
  auto h0 = res0(conv_in(x), temb);                                 // full resolution
  auto h1 = attn1(res1(down0(h0), temb), ctx, mask);                // 1/2
  auto m = mid1(attn_mid(mid0(down1(h1), temb), ctx, mask), temb);  // 1/4
  auto u1 = attn_dec1(dec1(torch::cat({up1(up(m)), h1}, 1), temb), ctx, mask);
  auto u0 = dec0(torch::cat({up0(up(u1)), h0}, 1), temb);
  return conv_out(F::silu(norm_out(u0)));
}

NetworkImpl::NetworkImpl(const ModelConfig& c) {
  text = register_module("text", TextEncoder(c));
  unet = register_module("unet", UNet(c));
}

torch::Tensor NetworkImpl::forward(const torch::Tensor& x, const torch::Tensor& t,
                                   const torch::Tensor& tokens) {
  return unet(x, t, text(tokens), text->KeyMask(tokens));
}

std::vector<double> AlphaBar(int timesteps) {
  const double s = 0.008;
  auto f = [&](double t) {
    double v = std::cos((t / timesteps + s) / (1 + s) * M_PI / 2);
    return v * v;
  };
  std::vector<double> ab(static_cast<size_t>(timesteps));
  for (int t = 0; t < timesteps; ++t) {
    ab[static_cast<size_t>(t)] = std::clamp(f(t + 1) / f(0), 1e-5, 0.99999);
  }
  return ab;
}

std::vector<int> DdimTimesteps(int timesteps, int steps) {
  std::vector<int> ts;
  for (int i = 0; i < steps; ++i) {
    ts.push_back(static_cast<int>(static_cast<int64_t>(steps - i) * timesteps / steps) - 1);
  }
  return ts;
}

std::vector<TensorToWrite> ToSafetensors(torch::nn::Module& module) {
  std::vector<TensorToWrite> out;
  for (const auto& p : module.named_parameters(true)) {
    torch::Tensor t = p.value().detach().to(torch::kFloat32).contiguous();
    TensorToWrite w;
    w.name = p.key();
    w.dtype = "F32";
    w.shape = t.sizes().vec();
    w.bytes.assign(reinterpret_cast<const char*>(t.data_ptr<float>()),
                   static_cast<size_t>(t.numel()) * sizeof(float));
    out.push_back(std::move(w));
  }
  return out;
}

Status CheckConfigMatchesWeights(const ModelConfig& c, const SafetensorsFile& file) {
  using Shape = std::vector<int64_t>;
  const int64_t c0 = c.channels[0], c1 = c.channels[1], c2 = c.channels[2];
  const int64_t last_layer = c.text_layers - 1;
  const std::vector<std::pair<std::string, Shape>> expected = {
      {"text.tok_emb.weight", {static_cast<int64_t>(c.vocab.size()) + 2, c.text_dim}},
      {"text.pos_emb", {c.max_tokens, c.text_dim}},
      {"text.layers." + std::to_string(last_layer) + ".qkv.weight", {3 * c.text_dim, c.text_dim}},
      {"unet.time1.weight", {c.time_dim, 2 * (c.time_dim / 2)}},
      {"unet.conv_in.weight", {c0, 3, 3, 3}},
      {"unet.res1.conv1.weight", {c1, c0, 3, 3}},
      {"unet.mid0.conv1.weight", {c2, c1, 3, 3}},
      {"unet.attn1.k.weight", {c1, c.text_dim}},
  };
  auto mismatch = [](const std::string& what) {
    return Error::Make(ErrorCode::kInvalidRequest,
                       "config.json does not match the weights (checked before building the "
                       "network): " +
                           what);
  };
  for (const auto& [name, shape] : expected) {
    auto it = file.tensors.find(name);
    if (it == file.tensors.end()) return mismatch("the weights have no tensor '" + name + "'");
    if (it->second.shape != shape) {
      return mismatch("tensor '" + name + "' has shape " + c10::str(it->second.shape) +
                      ", the config implies " + c10::str(shape));
    }
  }
  // More text layers in the weights than in the config: also a different network.
  if (file.tensors.count("text.layers." + std::to_string(c.text_layers) + ".qkv.weight") != 0) {
    return mismatch("the weights hold more than text_layers = " + std::to_string(c.text_layers) +
                    " text layers");
  }
  return Status::Ok();
}

Status LoadWeights(torch::nn::Module& module, const SafetensorsFile& file) {
  auto mismatch = [](const std::string& what) {
    return Error::Make(ErrorCode::kInvalidRequest,
                       "weights do not match the model config: " + what);
  };
  torch::NoGradGuard no_grad;
  auto params = module.named_parameters(true);
  for (const auto& [name, t] : file.tensors) {
    if (params.find(name) == nullptr) return mismatch("unexpected tensor '" + name + "'");
  }
  for (auto& p : params) {
    auto it = file.tensors.find(p.key());
    if (it == file.tensors.end()) return mismatch("missing tensor '" + p.key() + "'");
    const SafeTensor& st = it->second;
    if (st.dtype != "F32") {
      return mismatch("tensor '" + p.key() + "' has dtype " + st.dtype + ", expected F32");
    }
    if (st.shape != p.value().sizes().vec()) {
      return mismatch("tensor '" + p.key() + "' has shape " + c10::str(st.shape) + ", expected " +
                      c10::str(p.value().sizes()));
    }
    auto src = torch::empty(p.value().sizes(), torch::kFloat32);
    std::memcpy(src.data_ptr<float>(), file.Bytes(st), st.end - st.begin);
    if (!torch::isfinite(src).all().item<bool>()) {
      return mismatch("tensor '" + p.key() + "' holds NaN or infinity");
    }
    p.value().copy_(src);
  }
  return Status::Ok();
}

}  // namespace imagegen::local
