#include "model/sd/nets/blocks.h"

#include <algorithm>
#include <cmath>
#include <sstream>

namespace imagegen::sd {
namespace {

std::string ShapeText(c10::IntArrayRef shape) {
  std::ostringstream out;
  out << "[";
  for (size_t i = 0; i < shape.size(); ++i) out << (i ? ", " : "") << shape[i];
  out << "]";
  return out.str();
}

// [B, L, H * d] (a slice of a wider projection is fine) -> [B * H, L, d], contiguous.
torch::Tensor SplitHeads(const torch::Tensor& x, int64_t heads) {
  const int64_t b = x.size(0), l = x.size(1), d = x.size(2) / heads;
  return x.view({b, l, heads, d}).permute({0, 2, 1, 3}).reshape({b * heads, l, d});
}

// [B * H, L, d] -> [B, L, H * d].
torch::Tensor MergeHeads(const torch::Tensor& x, int64_t heads) {
  const int64_t bh = x.size(0), l = x.size(1), d = x.size(2);
  return x.view({bh / heads, heads, l, d})
      .permute({0, 2, 1, 3})
      .reshape({bh / heads, l, heads * d});
}

// The score matrix of one attention step is kept under this many floats (128 MiB): at 512x512
// the UNet's first level has 4096 tokens, whose full [B * H, 4096, 4096] scores would be 1 GiB.
constexpr int64_t kScoreBudget = int64_t{32} << 20;

// A per-thread scratch buffer for the scores: large allocations are fresh mmaps whose pages
// fault in on every use, so one buffer is reused across layers and steps.
torch::Tensor ScoreScratch(int64_t batch, int64_t rows, int64_t cols,
                           const torch::TensorOptions& options) {
  thread_local torch::Tensor scratch;
  const int64_t need = batch * rows * cols;
  if (!scratch.defined() || scratch.numel() < need || scratch.dtype() != options.dtype()) {
    scratch = torch::empty({need}, options);
  }
  return scratch.narrow(0, 0, need).view({batch, rows, cols});
}

// out = softmax(q k^T) v for one block of queries; out is a contiguous slice of the result.
void ScoresTimesValues(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                       torch::Tensor out) {
  auto scores = ScoreScratch(q.size(0), q.size(1), k.size(1), q.options());
  at::bmm_out(scores, q, k.transpose(1, 2));
  at::_softmax_out(scores, scores, -1, false);  // in place: each row is read before written
  at::bmm_out(out, scores, v);
}

}  // namespace

torch::Tensor WeightSource::Take(const std::string& key, const std::vector<int64_t>& shape) {
  auto it = weights_.find(key);
  if (it == weights_.end()) {
    Fail("missing weight " + key + " (expected shape " + ShapeText(shape) + ")");
    return {};
  }
  taken_.insert(key);
  const torch::Tensor& t = it->second;
  if (IsQ8Matrix(t)) {  // wanted dense: expanded once, here
    if (Q8MatrixShape(t) != shape) {
      Fail("weight " + key + " has shape " + ShapeText(Q8MatrixShape(t)) + ", expected " +
           ShapeText(shape));
      return {};
    }
    torch::Tensor out = DequantizeQ8(t, type_);
    if (key.ends_with(".weight")) Retarget(key, out);
    return out;
  }
  if (!t.defined() || !t.is_floating_point()) {
    Fail("weight " + key + " is not a floating-point tensor");
    return {};
  }
  if (t.sizes() != c10::IntArrayRef(shape)) {
    Fail("weight " + key + " has shape " + ShapeText(t.sizes()) + ", expected " + ShapeText(shape));
    return {};
  }
  torch::Tensor out = t.to(type_).contiguous();
  const bool matrix = out.dim() >= 2 && key.size() > 7 && key.ends_with(".weight");
  if (matrix) Retarget(key, out);
  return out;
}

std::shared_ptr<Q8Weight> WeightSource::TakeQ8(const std::string& key,
                                               const std::vector<int64_t>& shape) {
  auto it = weights_.find(key);
  auto weight = it == weights_.end() ? nullptr : Q8WeightOf(it->second, shape, type_);
  if (!weight) return nullptr;
  taken_.insert(key);
  RetargetQ8(key, weight, 0, shape[0]);
  return weight;
}

void WeightSource::RetargetQ8(const std::string& key, const std::shared_ptr<Q8Weight>& weight,
                              int64_t row_begin, int64_t rows, double factor) {
  if (targets_ != nullptr && weight) targets_->SetQ8(key, weight, row_begin, rows, factor);
}

void WeightSource::Retarget(const std::string& key, const torch::Tensor& weight, double factor) {
  if (targets_ != nullptr && weight.defined()) targets_->Set(key, weight, factor);
}

void WeightSource::Fail(std::string message) {
  if (!error_) error_ = Error::Make(ErrorCode::kInvalidRequest, std::move(message));
}

Status WeightSource::Finish() const {
  if (error_) return *error_;
  for (const auto& [key, tensor] : weights_) {
    if (!taken_.count(key)) {
      return Error::Make(ErrorCode::kInvalidRequest,
                         "unexpected weight " + key + ": the config does not describe it");
    }
  }
  return Status::Ok();
}

Conv2d Conv2d::Load(WeightSource& w, const std::string& prefix, int64_t in, int64_t out,
                    int64_t kernel, int64_t stride) {
  Conv2d c;
  c.weight = w.Take(prefix + ".weight", {out, in, kernel, kernel});
  c.bias = w.Take(prefix + ".bias", {out});
  c.stride = stride;
  c.padding = kernel / 2;
  return c;
}

torch::Tensor Conv2d::Forward(const torch::Tensor& x) const {
  return at::conv2d(x, weight, bias, {stride, stride}, {padding, padding});
}

Linear Linear::Load(WeightSource& w, const std::string& prefix, int64_t in, int64_t out,
                    bool has_bias) {
  Linear l;
  l.q8 = w.TakeQ8(prefix + ".weight", {out, in});
  if (!l.q8) l.weight = w.Take(prefix + ".weight", {out, in});
  if (has_bias) l.bias = w.Take(prefix + ".bias", {out});
  return l;
}

Linear Linear::LoadPointwiseConv(WeightSource& w, const std::string& prefix, int64_t in,
                                 int64_t out) {
  Linear l;
  auto weight = w.Take(prefix + ".weight", {out, in, 1, 1});
  if (weight.defined()) l.weight = weight.view({out, in});
  l.bias = w.Take(prefix + ".bias", {out});
  return l;
}

torch::Tensor Linear::Forward(const torch::Tensor& x) const {
  // reshape is a view for contiguous rows (and for row-strided slices), so BLAS reads x in place.
  const torch::Tensor w = q8 ? q8->Weight() : weight;
  auto flat = x.reshape({-1, x.size(-1)});
  auto y = bias.defined() ? at::addmm(bias, flat, w.t()) : at::mm(flat, w.t());
  auto sizes = x.sizes().vec();
  sizes.back() = w.size(0);
  return y.view(sizes);
}

GroupNorm GroupNorm::Load(WeightSource& w, const std::string& prefix, int64_t groups,
                          int64_t channels, double eps) {
  GroupNorm g;
  if (groups <= 0 || channels % groups != 0) {
    w.Fail(prefix + ": " + std::to_string(channels) + " channels do not split into " +
           std::to_string(groups) + " groups");
  }
  g.weight = w.Take(prefix + ".weight", {channels});
  g.bias = w.Take(prefix + ".bias", {channels});
  g.groups = groups;
  g.eps = eps;
  return g;
}

torch::Tensor GroupNorm::Forward(const torch::Tensor& x) const {
  return at::group_norm(x, groups, weight, bias, eps, /*cudnn_enabled=*/false);
}

LayerNorm LayerNorm::Load(WeightSource& w, const std::string& prefix, int64_t dim, double eps) {
  LayerNorm n;
  n.weight = w.Take(prefix + ".weight", {dim});
  n.bias = w.Take(prefix + ".bias", {dim});
  n.eps = eps;
  return n;
}

torch::Tensor LayerNorm::Forward(const torch::Tensor& x) const {
  return at::layer_norm(x, {weight.size(0)}, weight, bias, eps, /*cudnn_enable=*/false);
}

ResnetBlock2D ResnetBlock2D::Load(WeightSource& w, const std::string& prefix, int64_t in,
                                  int64_t out, int64_t temb_channels, int64_t groups, double eps) {
  ResnetBlock2D r;
  r.norm1 = GroupNorm::Load(w, prefix + ".norm1", groups, in, eps);
  r.conv1 = Conv2d::Load(w, prefix + ".conv1", in, out, 3);
  if (temb_channels > 0) {
    r.time_emb_proj = Linear::Load(w, prefix + ".time_emb_proj", temb_channels, out);
  }
  r.norm2 = GroupNorm::Load(w, prefix + ".norm2", groups, out, eps);
  r.conv2 = Conv2d::Load(w, prefix + ".conv2", out, out, 3);
  if (in != out) r.conv_shortcut = Conv2d::Load(w, prefix + ".conv_shortcut", in, out, 1);
  return r;
}

torch::Tensor ResnetBlock2D::Forward(const torch::Tensor& x, const torch::Tensor& temb_silu) const {
  auto h = conv1.Forward(SiluInPlace(norm1.Forward(x)));
  if (time_emb_proj) h.add_(time_emb_proj->Forward(temb_silu).unsqueeze(-1).unsqueeze(-1));
  h = conv2.Forward(SiluInPlace(norm2.Forward(h)));
  return h.add_(conv_shortcut ? conv_shortcut->Forward(x) : x);
}

namespace {

// A projection the file stores 8-bit but whose partners it does not: computed dense.
void DenseFromQ8(WeightSource& w, const std::string& key, Linear& l) {
  if (!l.q8) return;
  l.weight = l.q8->Expand();
  l.q8 = nullptr;
  w.Retarget(key, l.weight);
}

// Self-attention: one [3 * inner, dim] 8-bit matrix; cross-attention: q alone, k and v joined.
void JoinQ8Projections(Attention& a, WeightSource& w, const std::string& prefix, const Linear& q,
                       const Linear& k, const Linear& v, torch::Tensor kv_bias,
                       torch::Tensor qkv_bias, bool cross) {
  const int64_t inner = q.q8->rows();
  const double scale = q.q8->factor;
  if (cross) {
    a.q = q;
    a.kv = Linear{{}, std::move(kv_bias), JoinQ8({k.q8, v.q8})};
    w.RetargetQ8(prefix + ".to_q.weight", a.q->q8, 0, inner, scale);
    w.RetargetQ8(prefix + ".to_k.weight", a.kv->q8, 0, inner);
    w.RetargetQ8(prefix + ".to_v.weight", a.kv->q8, inner, inner);
    return;
  }
  a.qkv = Linear{{}, std::move(qkv_bias), JoinQ8({q.q8, k.q8, v.q8})};
  w.RetargetQ8(prefix + ".to_q.weight", a.qkv->q8, 0, inner, scale);
  w.RetargetQ8(prefix + ".to_k.weight", a.qkv->q8, inner, inner);
  w.RetargetQ8(prefix + ".to_v.weight", a.qkv->q8, 2 * inner, inner);
}

}  // namespace

Attention Attention::Load(WeightSource& w, const std::string& prefix, int64_t query_dim,
                          int64_t context_dim, int64_t heads, int64_t head_dim, bool qkv_bias) {
  Attention a;
  a.heads = heads;
  const int64_t inner = heads * head_dim;
  const int64_t kv_dim = context_dim > 0 ? context_dim : query_dim;
  auto q = Linear::Load(w, prefix + ".to_q", query_dim, inner, qkv_bias);
  auto k = Linear::Load(w, prefix + ".to_k", kv_dim, inner, qkv_bias);
  auto v = Linear::Load(w, prefix + ".to_v", kv_dim, inner, qkv_bias);
  a.out = Linear::Load(w, prefix + ".to_out.0", inner, query_dim);
  if (qkv_bias && (!q.bias.defined() || !k.bias.defined() || !v.bias.defined())) return a;
  // softmax(q k^T / sqrt(d)) == softmax((q / sqrt(d)) k^T): scale the query map once here.
  const double scale = 1.0 / std::sqrt(static_cast<double>(head_dim));
  if (qkv_bias) q.bias = q.bias * scale;
  auto cat_bias = [&](std::vector<torch::Tensor> parts) {
    return qkv_bias ? torch::cat(parts) : torch::Tensor();
  };
  if (q.q8 && k.q8 && v.q8) {  // joined 8-bit, the scale applied as the rows are expanded
    q.q8->scaled_rows = inner;
    q.q8->factor = scale;
    JoinQ8Projections(a, w, prefix, q, k, v, cat_bias({k.bias, v.bias}),
                      cat_bias({q.bias, k.bias, v.bias}), context_dim > 0);
    return a;
  }
  DenseFromQ8(w, prefix + ".to_q.weight", q);
  DenseFromQ8(w, prefix + ".to_k.weight", k);
  DenseFromQ8(w, prefix + ".to_v.weight", v);
  if (!q.weight.defined() || !k.weight.defined() || !v.weight.defined()) return a;
  q.weight = q.weight * scale;
  if (context_dim > 0) {
    a.q = q;
    a.kv = Linear{torch::cat({k.weight, v.weight}), cat_bias({k.bias, v.bias}), nullptr};
    w.Retarget(prefix + ".to_q.weight", a.q->weight, scale);
    w.Retarget(prefix + ".to_k.weight", a.kv->weight.narrow(0, 0, inner));
    w.Retarget(prefix + ".to_v.weight", a.kv->weight.narrow(0, inner, inner));
  } else {
    a.qkv = Linear{torch::cat({q.weight, k.weight, v.weight}), cat_bias({q.bias, k.bias, v.bias}),
                   nullptr};
    w.Retarget(prefix + ".to_q.weight", a.qkv->weight.narrow(0, 0, inner), scale);
    w.Retarget(prefix + ".to_k.weight", a.qkv->weight.narrow(0, inner, inner));
    w.Retarget(prefix + ".to_v.weight", a.qkv->weight.narrow(0, 2 * inner, inner));
  }
  return a;
}

torch::Tensor Attention::Forward(const torch::Tensor& x, const torch::Tensor& context) const {
  torch::Tensor query, key, value;
  if (qkv) {
    auto p = qkv->Forward(x);
    const int64_t inner = p.size(-1) / 3;
    query = p.narrow(-1, 0, inner);
    key = p.narrow(-1, inner, inner);
    value = p.narrow(-1, 2 * inner, inner);
  } else {
    query = q->Forward(x);
    auto p = kv->Forward(context);
    const int64_t inner = p.size(-1) / 2;
    key = p.narrow(-1, 0, inner);
    value = p.narrow(-1, inner, inner);
  }
  auto attended =
      AttentionCore(SplitHeads(query, heads), SplitHeads(key, heads), SplitHeads(value, heads));
  return out.Forward(MergeHeads(attended, heads));
}

torch::Tensor AttentionCore(const torch::Tensor& q, const torch::Tensor& k,
                            const torch::Tensor& v) {
  const int64_t bh = q.size(0), lq = q.size(1), lk = k.size(1);
  auto out = torch::empty({bh, lq, v.size(2)}, q.options());
  const int64_t rows = std::max<int64_t>(1, kScoreBudget / lk);  // query rows per step
  if (rows >= lq) {                                              // whole heads per step
    const int64_t per_step = std::max<int64_t>(1, rows / lq);
    for (int64_t b = 0; b < bh; b += per_step) {
      const int64_t n = std::min(per_step, bh - b);
      ScoresTimesValues(q.narrow(0, b, n), k.narrow(0, b, n), v.narrow(0, b, n),
                        out.narrow(0, b, n));
    }
    return out;
  }
  for (int64_t b = 0; b < bh; ++b) {  // one head in query blocks
    auto qb = q.narrow(0, b, 1), kb = k.narrow(0, b, 1), vb = v.narrow(0, b, 1);
    auto ob = out.select(0, b);
    for (int64_t s = 0; s < lq; s += rows) {
      const int64_t n = std::min(rows, lq - s);
      ScoresTimesValues(qb.narrow(1, s, n), kb, vb, ob.narrow(0, s, n).unsqueeze(0));
    }
  }
  return out;
}

SpatialSelfAttention SpatialSelfAttention::Load(WeightSource& w, const std::string& prefix,
                                                int64_t channels, int64_t groups, double eps) {
  SpatialSelfAttention s;
  s.group_norm = GroupNorm::Load(w, prefix + ".group_norm", groups, channels, eps);
  s.attention = Attention::Load(w, prefix, channels, 0, 1, channels, /*qkv_bias=*/true);
  return s;
}

torch::Tensor SpatialSelfAttention::Forward(const torch::Tensor& x) const {
  const int64_t b = x.size(0), c = x.size(1), h = x.size(2), wd = x.size(3);
  auto tokens = group_norm.Forward(x).view({b, c, h * wd}).transpose(1, 2);
  auto y = attention.Forward(tokens, {});
  return y.transpose(1, 2).reshape({b, c, h, wd}).add_(x);
}

TransformerBlock TransformerBlock::Load(WeightSource& w, const std::string& prefix, int64_t dim,
                                        int64_t context_dim, int64_t heads) {
  TransformerBlock t;
  const int64_t head_dim = dim / heads;
  t.norm1 = LayerNorm::Load(w, prefix + ".norm1", dim, 1e-5);
  t.attn1 = Attention::Load(w, prefix + ".attn1", dim, 0, heads, head_dim, false);
  t.norm2 = LayerNorm::Load(w, prefix + ".norm2", dim, 1e-5);
  t.attn2 = Attention::Load(w, prefix + ".attn2", dim, context_dim, heads, head_dim, false);
  t.norm3 = LayerNorm::Load(w, prefix + ".norm3", dim, 1e-5);
  t.ff_in = Linear::Load(w, prefix + ".ff.net.0.proj", dim, 8 * dim);
  t.ff_out = Linear::Load(w, prefix + ".ff.net.2", 4 * dim, dim);
  return t;
}

torch::Tensor TransformerBlock::Forward(torch::Tensor x, const torch::Tensor& context) const {
  x = attn1.Forward(norm1.Forward(x), {}).add_(x);
  x = attn2.Forward(norm2.Forward(x), context).add_(x);
  // GEGLU in place: value * gelu(gate), both halves of one projection; ff_out reads the
  // row-strided value half directly.
  auto projected = ff_in.Forward(norm3.Forward(x));
  const int64_t inner = projected.size(-1) / 2;
  auto value = projected.narrow(-1, 0, inner);
  auto gate = projected.narrow(-1, inner, inner);
  at::gelu_(gate);
  value.mul_(gate);
  return ff_out.Forward(value).add_(x);
}

Transformer2D Transformer2D::Load(WeightSource& w, const std::string& prefix, int64_t channels,
                                  int64_t context_dim, int64_t heads, int64_t layers,
                                  int64_t groups, bool linear_projection) {
  Transformer2D t;
  if (heads <= 0 || channels % heads != 0) {
    w.Fail(prefix + ": " + std::to_string(channels) + " channels do not split into " +
           std::to_string(heads) + " attention heads");
    heads = 1;
  }
  t.norm = GroupNorm::Load(w, prefix + ".norm", groups, channels, 1e-6);
  auto project = [&](const std::string& name) {
    return linear_projection ? Linear::Load(w, prefix + name, channels, channels)
                             : Linear::LoadPointwiseConv(w, prefix + name, channels, channels);
  };
  t.proj_in = project(".proj_in");
  for (int64_t i = 0; i < layers; ++i) {
    t.blocks.push_back(TransformerBlock::Load(
        w, prefix + ".transformer_blocks." + std::to_string(i), channels, context_dim, heads));
  }
  t.proj_out = project(".proj_out");
  return t;
}

torch::Tensor Transformer2D::Forward(const torch::Tensor& x, const torch::Tensor& context) const {
  const int64_t b = x.size(0), c = x.size(1), h = x.size(2), wd = x.size(3);
  auto tokens = norm.Forward(x).permute({0, 2, 3, 1}).reshape({b, h * wd, c});
  tokens = proj_in.Forward(tokens);
  for (const auto& block : blocks) tokens = block.Forward(tokens, context);
  tokens = proj_out.Forward(tokens);
  return (tokens.view({b, h, wd, c}).permute({0, 3, 1, 2}) + x).contiguous();
}

torch::Tensor TimestepEmbedding(const torch::Tensor& timesteps, int64_t dim, bool flip_sin_to_cos,
                                double freq_shift) {
  const int64_t half = dim / 2;
  auto exponent = torch::arange(0, half, torch::kFloat) * (-std::log(10000.0)) /
                  (static_cast<double>(half) - freq_shift);
  auto angles = timesteps.to(torch::kFloat).unsqueeze(1) * torch::exp(exponent).unsqueeze(0);
  auto emb = flip_sin_to_cos ? torch::cat({torch::cos(angles), torch::sin(angles)}, -1)
                             : torch::cat({torch::sin(angles), torch::cos(angles)}, -1);
  if (dim % 2 == 1) emb = at::constant_pad_nd(emb, {0, 1});
  return emb;
}

}  // namespace imagegen::sd
