// CLIP's text transformer as Stable Diffusion conditions on it, computed as transformers'
// CLIPTextModel computes it (token + position embeddings, pre-norm layers with causal
// self-attention, quick_gelu for OpenAI CLIP / SD 1.x or gelu for OpenCLIP / SD 2.x, the final
// layer norm). Weights by transformers' names ("text_model.encoder.layers.0.self_attn.q_proj.
// weight", ...), the config as transformers writes it (hidden_size, num_attention_heads,
// num_hidden_layers, hidden_act, layer_norm_eps, max_position_embeddings).
//
// Immutable after Create; Encode may be called from several threads at once.
#pragma once

#include <torch/torch.h>

#include <string_view>
#include <vector>

#include "core/error.h"
#include "model/sd/nets/component.h"
#include "model/sd/nets/q8_weight.h"
#include "model/sd/nets/weight_targets.h"

namespace imagegen::sd {

class ClipTokenizer;

class ClipTextEncoder {
 public:
  // kInvalidRequest naming the missing weight, wrong shape or unsupported activation. The
  // weights and the computation in `compute` (kFloat, or kBFloat16 as diffusers' torch_dtype
  // puts the whole pipeline in bfloat16); Encode's output is float32 either way.
  // `targets` (optional) records where each layer's matrices went (weight_targets.h), so that
  // LoRA updates can change them in place.
  static Result<ClipTextEncoder> Create(const Component& component,
                                        torch::ScalarType compute = torch::kFloat,
                                        WeightTargets* targets = nullptr);

  // ids [B, T] int64 (T <= max_positions(), each id < vocab_size()) -> hidden states
  // [B, T, hidden_size()], float32. clip_skip counts as A1111 does: 1 = the last layer, 2 = the
  // penultimate, ...; the final layer norm is applied either way (as diffusers' clip_skip and
  // A1111 do). SD 2.x folders already end at the penultimate layer (23 of OpenCLIP's 24), so
  // clip_skip 1 is right for them. REQUIRES: 1 <= clip_skip <= layers() (checked: throws
  // std::invalid_argument otherwise, like a bad id).
  torch::Tensor Encode(const torch::Tensor& ids, int clip_skip = 1) const;

  // What SDXL conditions on (diffusers' StableDiffusionXLPipeline.encode_prompt): the hidden
  // states of layer layers() - clip_skip WITHOUT the final layer norm (clip_skip 1:
  // hidden_states[-2], the penultimate layer) and, where the model has a text projection
  // (CLIPTextModelWithProjection), the pooled output: the last layer, final layer norm, at
  // the first end-of-text token (the largest id where the config's eos_token_id is the
  // legacy 2), times the projection. `pooled` is undefined without a projection.
  // REQUIRES: 1 <= clip_skip < layers() (std::invalid_argument otherwise), ids as in Encode.
  struct Conditioning {
    torch::Tensor hidden;  // [B, T, hidden_size()]
    torch::Tensor pooled;  // [B, projection_dim()]
  };
  Conditioning EncodePenultimate(const torch::Tensor& ids, int clip_skip = 1) const;

  int64_t hidden_size() const { return hidden_; }
  int64_t vocab_size() const { return token_embedding_.size(0); }
  int64_t max_positions() const { return position_embedding_.size(0); }
  int layers() const { return static_cast<int>(layers_.size()); }
  // text_projection's output width; 0 where the weights have none (CLIPTextModel).
  int64_t projection_dim() const { return projection_.defined() ? projection_.size(0) : 0; }

 private:
  struct Linear {
    torch::Tensor weight, bias;
    std::shared_ptr<Q8Weight> q8;  // instead of `weight`: kept 8-bit (q8_weight.h)
    torch::Tensor Apply(const torch::Tensor& x) const {
      return torch::linear(x, q8 ? q8->Weight() : weight, bias);
    }
  };
  struct Norm {
    torch::Tensor weight, bias;
  };
  struct Layer {
    Norm norm1, norm2;
    Linear q, k, v, out, fc1, fc2;
  };
  ClipTextEncoder() = default;
  torch::Tensor Attention(const Layer& layer, const torch::Tensor& x,
                          const torch::Tensor& mask) const;
  torch::Tensor Mlp(const Layer& layer, const torch::Tensor& x) const;
  void CheckIds(const torch::Tensor& ids) const;
  torch::Tensor Embed(const torch::Tensor& ids) const;
  torch::Tensor RunLayer(int index, const torch::Tensor& x, const torch::Tensor& mask) const;
  torch::Tensor CausalMask(int64_t tokens) const;

  torch::Tensor token_embedding_, position_embedding_;
  Norm final_norm_;
  torch::Tensor projection_;  // [projection_dim, hidden] or undefined
  int64_t eos_token_id_ = 2;
  std::vector<Layer> layers_;
  int64_t hidden_ = 0, heads_ = 0;
  double eps_ = 1e-5;
  bool quick_gelu_ = true;
  torch::ScalarType type_ = torch::kFloat;
};

// A1111-style long prompts: ClipTokenizer::EncodeChunks, each chunk of 77 ids encoded, the
// chunks' hidden states concatenated: [1, 77 * chunks, hidden]. kInvalidRequest for text that
// is not UTF-8 or ids beyond the encoder's vocabulary; clip_skip as in Encode (checked).
Result<torch::Tensor> EncodePrompt(const ClipTokenizer& tokenizer, const ClipTextEncoder& encoder,
                                   std::string_view prompt, int clip_skip = 1);

}  // namespace imagegen::sd
