// One Stable Diffusion component (text encoder, UNet, VAE) as the networks take it: its
// diffusers config.json and its weights by their diffusers state_dict names (e.g.
// "down_blocks.0.resnets.0.conv1.weight"), float32 on the CPU (or the compute type asked for;
// GGUF's 8-bit matrices as q8_weight.h's block tensors). The checkpoint loaders
// (src/model/sd/checkpoint) make these from diffusers folders and single-file checkpoints alike,
// so the networks know one naming only.
#pragma once

#include <torch/torch.h>

#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "core/error.h"

namespace imagegen::sd {

using TensorMap = std::map<std::string, torch::Tensor>;

struct Component {
  nlohmann::json config;  // the component's config.json as diffusers writes it
  TensorMap weights;
};

// The precision the UNet and VAE compute in, by its user-facing name: "f32" (float32, diffusers'
// numbers) or "bf16" (bfloat16 weights and activations). kInvalidRequest for any other name.
inline Result<torch::ScalarType> ComputeTypeNamed(const std::string& name) {
  if (name == "f32") return torch::kFloat;
  if (name == "bf16") return torch::kBFloat16;
  return Error::Invalid("precision", "precision must be f32 or bf16, not \"" + name + "\"");
}

}  // namespace imagegen::sd
