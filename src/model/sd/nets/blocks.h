// The layers Stable Diffusion's UNet and VAE are made of, as diffusers 0.27 defines them,
// over weights taken by diffusers name from a Component's TensorMap. Each layer is a plain
// struct of tensors of one compute type (float32, or bfloat16 where asked) with a const Forward, so
// one loaded network serves any number of threads (callers hold torch::InferenceMode). Loading
// never throws: a missing or mis-shaped weight is recorded in the WeightSource, whose Finish()
// names the first bad key.
#pragma once

#include <torch/torch.h>

#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/error.h"
#include "model/sd/nets/component.h"
#include "model/sd/nets/q8_weight.h"
#include "model/sd/nets/weight_targets.h"

namespace imagegen::sd {

// Hands out a TensorMap's tensors by key, checking each shape, and remembers the first problem
// so that a network can be built in one pass and validated at the end.
class WeightSource {
 public:
  // `type`: the compute type every taken tensor is converted to (kFloat or kBFloat16).
  // `targets` (optional): where each taken matrix or kernel (a ".weight" of 2 or more
  // dimensions) ends up, for low-rank updates; layers that reshape or join weights re-record
  // theirs with Retarget.
  explicit WeightSource(const TensorMap& weights, torch::ScalarType type = torch::kFloat,
                        WeightTargets* targets = nullptr)
      : weights_(weights), type_(type), targets_(targets) {}

  // The tensor `key` as a contiguous tensor of the compute type and exactly `shape`; undefined
  // (with a recorded error) when it is missing, has another shape or is not floating point.
  torch::Tensor Take(const std::string& key, const std::vector<int64_t>& shape);
  // The matrix `key` kept 8-bit (see q8_weight.h) when the map holds it so and its shape is
  // `shape`; null otherwise (then Take it). Recorded in the targets like Take's matrices.
  std::shared_ptr<Q8Weight> TakeQ8(const std::string& key, const std::vector<int64_t>& shape);
  bool Has(const std::string& key) const { return weights_.count(key) > 0; }
  // Records that the weight `key` now lives in `weight` (a view the layer computes with),
  // holding `factor` times the stored values. No-op without targets or for an undefined tensor.
  void Retarget(const std::string& key, const torch::Tensor& weight, double factor = 1.0);
  // The same for rows [row_begin, row_begin + rows) of an 8-bit matrix.
  void RetargetQ8(const std::string& key, const std::shared_ptr<Q8Weight>& weight,
                  int64_t row_begin, int64_t rows, double factor = 1.0);
  // Records a problem found in the configuration (the field is named in the message).
  void Fail(std::string message);
  // OK when every taken tensor was right and every tensor in the map was taken: a tensor no
  // layer asked for means the config and the weights describe different networks.
  Status Finish() const;

 private:
  const TensorMap& weights_;
  torch::ScalarType type_;
  WeightTargets* targets_;
  std::set<std::string> taken_;
  std::optional<Error> error_;
};

struct Conv2d {
  torch::Tensor weight, bias;  // [out, in, k, k], [out]
  int64_t stride = 1, padding = 0;
  static Conv2d Load(WeightSource& w, const std::string& prefix, int64_t in, int64_t out,
                     int64_t kernel, int64_t stride = 1);
  torch::Tensor Forward(const torch::Tensor& x) const;
};

struct Linear {
  torch::Tensor weight, bias;    // [out, in], [out] or undefined
  std::shared_ptr<Q8Weight> q8;  // instead of `weight`: kept 8-bit, expanded at each Forward
  static Linear Load(WeightSource& w, const std::string& prefix, int64_t in, int64_t out,
                     bool has_bias = true);
  // A 1x1 convolution's weights ([out, in, 1, 1]) used as a linear map over channels-last
  // tokens: the same arithmetic without a layout change around it.
  static Linear LoadPointwiseConv(WeightSource& w, const std::string& prefix, int64_t in,
                                  int64_t out);
  torch::Tensor Forward(const torch::Tensor& x) const;
  int64_t out_features() const { return q8 ? q8->rows() : weight.size(0); }
};

struct GroupNorm {
  torch::Tensor weight, bias;
  int64_t groups = 32;
  double eps = 1e-5;
  static GroupNorm Load(WeightSource& w, const std::string& prefix, int64_t groups,
                        int64_t channels, double eps);
  torch::Tensor Forward(const torch::Tensor& x) const;
};

struct LayerNorm {
  torch::Tensor weight, bias;
  double eps = 1e-5;
  static LayerNorm Load(WeightSource& w, const std::string& prefix, int64_t dim, double eps);
  torch::Tensor Forward(const torch::Tensor& x) const;
};

// diffusers' ResnetBlock2D ("default" time scale shift, SiLU, output scale 1). temb_channels
// 0 means no time input (the VAE's blocks).
struct ResnetBlock2D {
  GroupNorm norm1, norm2;
  Conv2d conv1, conv2;
  std::optional<Linear> time_emb_proj;
  std::optional<Conv2d> conv_shortcut;
  static ResnetBlock2D Load(WeightSource& w, const std::string& prefix, int64_t in, int64_t out,
                            int64_t temb_channels, int64_t groups, double eps);
  // `temb_silu` is SiLU(time embedding) [B, temb_channels], computed once per UNet forward.
  torch::Tensor Forward(const torch::Tensor& x, const torch::Tensor& temb_silu) const;
};

// Multi-head attention (diffusers' Attention with the default processor). The query scale
// is folded into the query weights at load, and self-attention projects q, k and v with one
// matrix product.
struct Attention {
  std::optional<Linear> qkv;    // self-attention: [3 * inner, query_dim]
  std::optional<Linear> q, kv;  // cross-attention: [inner, query_dim], [2 * inner, context_dim]
  Linear out;
  int64_t heads = 1;
  // context_dim 0: self-attention. qkv_bias: the VAE's attention has biases, the UNet's not.
  static Attention Load(WeightSource& w, const std::string& prefix, int64_t query_dim,
                        int64_t context_dim, int64_t heads, int64_t head_dim, bool qkv_bias);
  // x [B, L, query_dim]; context [B, T, context_dim] (ignored for self-attention).
  torch::Tensor Forward(const torch::Tensor& x, const torch::Tensor& context) const;
};

// softmax(q k^T) v per head on [B*H, L, d] tensors whose q is already scaled, in query chunks
// so the score matrix stays within a fixed budget at any image size.
torch::Tensor AttentionCore(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v);

// The VAE's mid-block attention: group norm, single-head self-attention over the pixels,
// residual.
struct SpatialSelfAttention {
  GroupNorm group_norm;
  Attention attention;
  static SpatialSelfAttention Load(WeightSource& w, const std::string& prefix, int64_t channels,
                                   int64_t groups, double eps);
  torch::Tensor Forward(const torch::Tensor& x) const;
};

// BasicTransformerBlock: self-attention, cross-attention, GEGLU feed-forward, each pre-norm
// with a residual.
struct TransformerBlock {
  LayerNorm norm1, norm2, norm3;
  Attention attn1, attn2;
  Linear ff_in, ff_out;  // ff.net.0.proj [2 * 4 * dim, dim], ff.net.2 [dim, 4 * dim]
  static TransformerBlock Load(WeightSource& w, const std::string& prefix, int64_t dim,
                               int64_t context_dim, int64_t heads);
  torch::Tensor Forward(torch::Tensor x, const torch::Tensor& context) const;
};

// Transformer2DModel on continuous inputs: group norm, proj_in (1x1 conv in SD 1.x, linear
// with use_linear_projection in SD 2.x; the same map either way), transformer blocks,
// proj_out, residual.
struct Transformer2D {
  GroupNorm norm;
  Linear proj_in, proj_out;
  std::vector<TransformerBlock> blocks;
  static Transformer2D Load(WeightSource& w, const std::string& prefix, int64_t channels,
                            int64_t context_dim, int64_t heads, int64_t layers, int64_t groups,
                            bool linear_projection);
  torch::Tensor Forward(const torch::Tensor& x, const torch::Tensor& context) const;
};

// SiLU applied in place to a temporary (at::silu_ takes only lvalues).
inline torch::Tensor SiluInPlace(torch::Tensor x) {
  at::silu_(x);
  return x;
}

// Sinusoidal timestep embedding as diffusers' get_timestep_embedding: [B] -> [B, dim].
torch::Tensor TimestepEmbedding(const torch::Tensor& timesteps, int64_t dim, bool flip_sin_to_cos,
                                double freq_shift);

}  // namespace imagegen::sd
