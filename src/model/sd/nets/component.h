// One Stable Diffusion component (text encoder, UNet, VAE) as the networks take it: its
// diffusers config.json and its weights by their diffusers state_dict names (e.g.
// "down_blocks.0.resnets.0.conv1.weight"), float32 on the CPU. The checkpoint loaders
// (src/model/sd/checkpoint) make these from diffusers folders and single-file checkpoints alike,
// so the networks know one naming only.
#pragma once

#include <torch/torch.h>

#include <map>
#include <nlohmann/json.hpp>
#include <string>

namespace imagegen::sd {

using TensorMap = std::map<std::string, torch::Tensor>;

struct Component {
  nlohmann::json config;  // the component's config.json as diffusers writes it
  TensorMap weights;
};

}  // namespace imagegen::sd
