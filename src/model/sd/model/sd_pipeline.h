// The Stable Diffusion model behind `--model sd:PATH` (an ImageModel), built from a tokenizer,
// the three networks (sd_networks.h) and the checkpoint's scheduler configuration. It follows
// diffusers' StableDiffusionPipeline / Img2Img / Inpaint pipelines (0.27.2; for SDXL
// StableDiffusionXLPipeline) step for step, so a seed gives diffusers' image:
//  - SDXL: each text goes through both tokenizers and encoders (their penultimate states side
//    by side, the second's pooled output from the first chunk); the UNet also gets the size ids
//    (height, width, 0, 0, height, width): the request's size as both original and target,
//    uncropped; an empty negative prompt is zeros where the checkpoint says so;
//  - prompts: CLIP ids padded to 77 (longer prompts in A1111's chunks of 75 tokens, their
//    hidden states concatenated; the negative prompt padded to as many chunks); classifier-free
//    guidance only where diffusers does it (guidance > 1, never for the turbo sampler), with the
//    unconditional half first in the batch of 2;
//  - noise: image i uses a CPU generator seeded with seed + i (torch.Generator().manual_seed):
//    its latents are torch.randn([1, 4, h/f, w/f]) (f: the VAE's factor, 8) * init_noise_sigma, the
//    ancestral samplers draw their per-step noise from it, and image-to-image draws the VAE's
//    posterior sample first and the start noise after it, as diffusers does. count 1 equals
//    diffusers; image i of a count-n request equals the count-1 image of seed + i;
//  - image-to-image (init_image, strength): the sampler starts where diffusers' get_timesteps
//    starts; inpainting (+ mask, white = repaint, binarised at 50% grey): a 9-channel
//    inpainting UNet gets the latents + the mask + the masked image's latents (diffusers'
//    StableDiffusionInpaintPipeline); any other checkpoint blends the known region back into
//    the latents after every step, noised to the next step (the same pipeline's 4-channel path,
//    as A1111 does too). A source image of another size is resized (nearest) to the request's;
//  - decoding: the VAE over the final latents (tiled above 768x768); pixels are
//    round(255 * clamp(x / 2 + 0.5, 0, 1)), as diffusers' numpy_to_pil;
//  - previews (ctx.on_preview every ctx.preview_every steps): the sampler's predicted x0 mapped
//    to RGB by a fixed linear latent->RGB approximation, at latent resolution (w/f x h/f): a
//    few microseconds, no VAE run;
//  - progress after every step, ctx.ShouldStop() before every step.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "model/image_model.h"
#include "model/sd/model/sd_networks.h"
#include "model/sd/text/clip_tokenizer.h"

namespace imagegen::sd {

// The families whose defaults differ (README "Using your own Stable Diffusion checkpoint").
enum class SdFamily { kSd1, kSd2, kSd2V, kSdTurbo, kSdxl, kSdxlTurbo };

// sizes: latents of 32 to 128 pixels a side in steps of 8, i.e. for SD's VAE (vae_factor 8)
// multiples of 64 from 256 to 1024 in both directions, the family's native square first (768
// for SD 2.x 768-v, 1024 for SDXL, else 512); sampler, steps and guidance defaults per family:
// dpmpp_2m_karras, 25 steps, 7.5 (SD 1.x/2.x, SDXL); turbo, 1 step, guidance 0 (SD-Turbo,
// SDXL-Turbo).
// `native_latent`: the UNet's sample_size (0: the family's). Below SD's 32..128 latent grid
// (small models trained at 16x16 latents, say) the sizes from half to twice it are added, in
// steps of a quarter of it (at least `multiple`, the UNet's).
ModelLimits SdLimits(SdFamily family, int vae_factor = 8, int native_latent = 0, int multiple = 8);

struct SdModelSpec {
  std::string name;  // as results report it: "sd:<basename of the path>"
  SdFamily family = SdFamily::kSd1;
  std::unique_ptr<ClipTokenizer> tokenizer;
  std::unique_ptr<ClipTokenizer> tokenizer_2;  // SDXL's second (pads with "!"); else null
  // SDXL: an empty negative prompt is zero conditioning, not the encoded empty text
  // (diffusers' force_zeros_for_empty_prompt).
  bool zero_empty_negative = false;
  std::unique_ptr<SdNetworks> networks;
  nlohmann::json scheduler_config;  // scheduler/scheduler_config.json
  std::string prediction_type;      // overrides the scheduler config's when not empty
  // The words the model was trained on (ClipTokenizer::Words of its captions), for models that
  // list them (imagegen's own, in training.json): a prompt word outside it is reported in the
  // output's warnings, as the bundled model reports its unknown words. Empty: not reported.
  std::set<std::string> known_words;
};

// kInvalidRequest when the scheduler configuration is one the samplers do not implement.
Result<std::unique_ptr<ImageModel>> MakeSdModel(SdModelSpec spec);

}  // namespace imagegen::sd
