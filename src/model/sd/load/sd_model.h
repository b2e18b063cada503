// `--model sd:PATH`: a Stable Diffusion checkpoint as users have it (a diffusers folder or a
// single-file original-layout *.safetensors; src/model/sd/checkpoint says what is read and
// refused), run by the pipeline of model/sd/model/sd_pipeline.h. LibTorch stays out of this header:
// the composition root includes it.
#pragma once

#include <memory>
#include <string>

#include "model/image_model.h"

namespace imagegen {

// Loads the checkpoint at `path` once (weights on the CPU in the compute precision) and returns its
// model, named "sd:<last component of path>". `threads` > 0 sets LibTorch's intra-op threads
// (process-wide). Errors: kNotFound for a missing path; kInvalidRequest naming the problem for
// a checkpoint that cannot be read or whose family is not SD 1.x, 2.x, SD-Turbo, SDXL or
// SDXL-Turbo (SDXL refiners are refused).
// `precision`: "f32" (diffusers' float32 numbers) or "bf16" (the text encoder, UNet and VAE in
// bfloat16, as diffusers' torch_dtype=torch.bfloat16; the sampler stays float32); anything else
// is kInvalidRequest. A model folder's training.json "words" (imagegen's own models) lists the
// words its prompts are checked against (unknown ones are reported in warnings).
// `lora_dir`: the folder prompts' <lora:NAME:SCALE> tags find NAME.safetensors in ("": none;
// model/sd/lora/lora_weights.h says how they are applied).
Result<std::unique_ptr<ImageModel>> LoadSdModel(const std::string& path, int threads,
                                                const std::string& precision = "f32",
                                                const std::string& lora_dir = "");

}  // namespace imagegen
