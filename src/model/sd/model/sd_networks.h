// The three networks of a Stable Diffusion checkpoint as the pipeline (sd_pipeline.h) calls
// them: the seam between the sampling loop and the LibTorch modules that the checkpoint loader
// builds, so the loop can be tested with small fake networks (sd_pipeline_test.cc).
#pragma once

#include <ATen/core/Generator.h>
#include <torch/torch.h>

#include <memory>
#include <vector>

#include "core/error.h"
#include "model/sd/model/lora_tags.h"

namespace imagegen::sd {

// A prompt's text conditioning, as the UNet takes it.
struct TextStates {
  torch::Tensor context;  // [B, T, D]: the hidden states the UNet attends to
  torch::Tensor pooled;   // [B, P]: SDXL's pooled text (its second encoder); undefined otherwise
};

class SdNetworks {
 public:
  virtual ~SdNetworks() = default;
  // The text encoders' states for token ids [B, T] int64 (clip-skip applied). SDXL: `ids_2`
  // are the second tokenizer's ids of the same text, and the context is both encoders'
  // penultimate states side by side; elsewhere `ids_2` is undefined and ignored.
  virtual TextStates EncodeText(const torch::Tensor& ids, const torch::Tensor& ids_2) const = 0;
  // The UNet's output (noise or velocity, as the checkpoint predicts) for latents [B, C, h, w]
  // (C = UnetInChannels()), timesteps [B] float, text context [B, T, D] and, for SDXL
  // (SizeConditioned()), the pooled text [B, P] and size ids [B, 6] (undefined otherwise).
  virtual torch::Tensor Denoise(const torch::Tensor& sample, const torch::Tensor& timestep,
                                const torch::Tensor& context, const torch::Tensor& pooled,
                                const torch::Tensor& time_ids) const = 0;
  // SDXL: two tokenizers and encoders, the UNet conditioned on pooled text and image sizes.
  virtual bool SizeConditioned() const { return false; }
  // 4, or 9 for an inpainting UNet (latents + mask + masked-image latents).
  virtual int UnetInChannels() const = 0;
  // The VAE decoder: latents already divided by VaeScalingFactor() -> images [B, 3, f*h, f*w]
  // in about [-1, 1]. `tiled` asks for tile-by-tile decoding (bounded memory, large sizes).
  virtual torch::Tensor DecodeLatents(const torch::Tensor& latents, bool tiled) const = 0;
  // The VAE encoder: images [B, 3, H, W] in [-1, 1] -> a latent sample (not yet scaled), drawn
  // as diffusers' latent_dist.sample(generator) draws it (mean + std * randn(generator)).
  virtual torch::Tensor EncodeImage(const torch::Tensor& images,
                                    at::Generator& generator) const = 0;
  virtual double VaeScalingFactor() const = 0;
  // Image pixels per latent pixel: 8 for SD's VAEs (2^(levels - 1) in general).
  virtual int VaeDownscaleFactor() const = 0;
  // The latent side the UNet was trained at (its config's sample_size; 0: unknown, the
  // family's default applies) and the multiple its latent sides must be.
  virtual int UnetSampleSize() const { return 0; }
  virtual int UnetSizeMultiple() const { return 8; }
  // Holds the weights at the checkpoint's plus `loras` (empty: the checkpoint's own) for as long
  // as the returned lease lives; a generation holds one from its first network call to its last.
  // kInvalidRequest naming the LoRA when one cannot be used. Networks without LoRA support
  // accept only the empty set.
  virtual Result<std::shared_ptr<void>> UseLoras(const std::vector<LoraUse>& loras) const {
    if (loras.empty()) return std::shared_ptr<void>();
    return Error::Invalid("prompt",
                          "this model takes no LoRAs (<lora:" + loras.front().name + ">)");
  }
};

}  // namespace imagegen::sd
