// Stable Diffusion's denoiser: diffusers' UNet2DConditionModel for the SD 1.x, 2.x and SDXL
// configurations (CrossAttnDownBlock2D / DownBlock2D, UNetMidBlock2DCrossAttn, UpBlock2D /
// CrossAttnUpBlock2D; spatial transformers with conv or linear projections and any depth per
// level; SDXL's "text_time" added embedding; 4 input channels, or 9 for inpainting). Built from
// a Component (config.json + diffusers-named weights).
#pragma once

#include <torch/torch.h>

#include <memory>

#include "core/error.h"
#include "model/sd/nets/component.h"
#include "model/sd/nets/weight_targets.h"

namespace imagegen::sd {

// SDXL's added conditioning (diffusers' added_cond_kwargs); both undefined for SD 1.x/2.x.
struct AddedConditions {
  torch::Tensor text_embeds;  // [B, AddedTextDim()]: the second text encoder's pooled output
  torch::Tensor time_ids;     // [B, 6]: original height, width, crop top, left, target h, w
};

class Unet {
 public:
  // kInvalidRequest (naming the config field or the weight key) when the config is not one
  // this UNet implements (class embeddings, other block types, ...)
  // or the weights do not match it: a missing, mis-shaped or unexpected tensor. `compute`:
  // kFloat, or kBFloat16 (weights and activations; about 2x faster where the CPU has
  // AVX512-BF16, and half the memory), inputs and outputs staying float32 either way.
  // `targets` (optional) records where each matrix and kernel went (weight_targets.h), so that
  // LoRA updates can change them in place.
  static Result<Unet> Create(const Component& component, torch::ScalarType compute = torch::kFloat,
                             WeightTargets* targets = nullptr);

  // The model output (noise or v, as trained) for sample [B, InChannels(), H, W] (any H
  // and W; where they are not multiples of 2^(levels-1) the up path resizes to the skip
  // connections as diffusers does), timestep [B] or [1] (float, may be fractional) and
  // context [B, T, CrossAttentionDim()] (T is 77 per prompt chunk; any length works);
  // `added` where AddedTextDim() > 0 (SDXL; std::invalid_argument when missing), else ignored.
  // Thread-safe; runs under InferenceMode. Shapes other than these throw c10::Error.
  torch::Tensor Forward(const torch::Tensor& sample, const torch::Tensor& timestep,
                        const torch::Tensor& context, const AddedConditions& added = {}) const;

  int InChannels() const;
  int OutChannels() const;
  int CrossAttentionDim() const;
  // The pooled text width SDXL's added embedding takes; 0 for UNets without one.
  int AddedTextDim() const;
  // The config's sample_size (latent pixels a side it was trained at; 0: not given).
  int SampleSize() const;
  // Latent sides must be multiples of this: one halving per level below the first.
  int SizeMultiple() const;

 private:
  struct Net;  // the layers, in unet.cc
  explicit Unet(std::shared_ptr<const Net> net) : net_(std::move(net)) {}
  std::shared_ptr<const Net> net_;
};

}  // namespace imagegen::sd
