// Stable Diffusion checkpoints as users have them, loaded into the networks' one naming
// (diffusers state_dict names and configs, float32 on the CPU; see nets/component.h).
//
// Formats:
//  - a diffusers folder: model_index.json, text_encoder/ tokenizer/ unet/ vae/ scheduler/ (SDXL:
//    also text_encoder_2/ tokenizer_2/), each
//    weight set a *.safetensors file (model.safetensors, diffusion_pytorch_model.safetensors),
//    its variant (*.fp16.safetensors) or a sharded *.safetensors.index.json;
//  - a single-file original-layout checkpoint (*.safetensors with the ldm key names; see
//    ldm_layout.h for the layout and how its configs are inferred).
// Pickled files (.ckpt, .pt, .pth, .bin, .pkl) are refused: unpickling runs code.
//
// GGUF's Q8_0 matrices stay 8-bit (as nets/q8_weight.h's block tensors, which the networks'
// linear layers expand per forward pass); other Q8_0 tensors are dequantised at load.
//
// Weights are memory-mapped and copied once into their tensors (converted to F32, or for the
// UNet and VAE to BF16 when LoadOptions::weight_type asks; LibTorch 1.13 has no fast F16 CPU
// compute), the mapped pages released as each
// tensor is made, so the peak memory is about the float32 weights, not the file plus them.
//
// Where the tokenizer comes from: a folder's tokenizer/; for a single file
// LoadOptions::tokenizer_dir, else a tokenizer/ folder beside the file (vocab.json and
// merges.txt, optionally tokenizer_config.json; SD 2.x pads with "!", say so in that config);
// SDXL's second tokenizer from tokenizer_2/ beside that folder.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>
#include <vector>

#include "core/error.h"
#include "model/sd/checkpoint/family.h"
#include "model/sd/nets/component.h"

namespace imagegen::sd {

struct LoadOptions {
  std::filesystem::path tokenizer_dir;  // overrides where the tokenizer files are
  std::string prediction_type;          // "epsilon" | "v_prediction"; "" from the checkpoint
  std::string variant;  // "fp16": prefer *.fp16.safetensors in folders; "": the full files first
  // Every component's weights are made in this type (kFloat or kBFloat16, the precision the
  // networks will compute in), straight from the stored type.
  torch::ScalarType weight_type = torch::kFloat;
};

struct Checkpoint {
  Family family = Family::kSd1;
  std::string family_name;                // "sd1", "sd2", "sd2-v", "sd-turbo", "sdxl", ...
  std::string format;                     // "diffusers" or "single-file"
  Component text_encoder, unet, vae;      // diffusers names and configs (see weight_type)
  Component text_encoder_2;               // SDXL's OpenCLIP with projection; empty otherwise
  nlohmann::json scheduler_config;        // scheduler/scheduler_config.json (synthesised for files)
  std::filesystem::path tokenizer_dir;    // vocab.json + merges.txt (+ configs)
  std::filesystem::path tokenizer_2_dir;  // SDXL's second tokenizer; empty otherwise
  bool force_zeros_for_empty_prompt = false;  // SDXL: no negative prompt = zero conditioning
  std::string prediction_type;                // "epsilon" | "v_prediction"
  bool inpainting = false;                // the UNet takes 9 channels (latents, mask, masked image)
  size_t ignored_keys = 0;                // tensors known and not needed (EMA, buffers, ...)
  std::vector<std::string> unknown_keys;  // tensors outside every component, not known
};

// Loads `path` (a folder or a file, told apart by the file system). Errors: kNotFound for a
// path that does not exist; kInvalidRequest with one message for everything else (pickled or
// unknown format, truncated or corrupt safetensors, an SDXL refiner, a missing component or
// tokenizer, shapes that contradict the config, a layout not understood).
Result<Checkpoint> LoadCheckpoint(const std::filesystem::path& path,
                                  const LoadOptions& options = {});

}  // namespace imagegen::sd
