// LoRA files as users have them for SD 1.x/2.x and SDXL: low-rank updates W += scale *
// (alpha / rank) * up @ down to some of the text encoders' and the UNet's matrices and kernels,
// in one *.safetensors file. The key layouts read:
//  - kohya-ss (sd-scripts, A1111, most shared LoRAs): "lora_unet_<module>.lora_down.weight",
//    ".lora_up.weight", ".alpha"; "lora_te_<module>..." for the text encoder, "lora_te1_" and
//    "lora_te2_" for SDXL's first and second, where <module> is the diffusers module name with
//    "_" for "." (resolved against the model's own names; lora_weights.h). sd-scripts' own
//    SDXL files name the UNet's modules as the original model does ("input_blocks_4_1_..."):
//    not mapped yet, so refused as layers the model lacks;
//  - diffusers / PEFT: "unet.<module>.lora_A.weight" / ".lora_B.weight", the older
//    ".lora.down.weight" / ".lora.up.weight" and ".lora_linear_layer.down/up.weight", and the
//    attention-processor names ("<attn>.processor.to_q_lora.down.weight"); "text_encoder."
//    and "text_encoder_2." for the text encoders; "<module>.alpha" where present.
// Which model a file is for is not decided here: a layer the model lacks is refused when the
// file is matched to it. Refused here with one message each: pickled files (.pt, .ckpt, .bin:
// unpickling runs code), LyCORIS LoHa/LoKr and other layer kinds, a down without its up, ranks
// that do not agree, and any key not understood.
#pragma once

#include <torch/torch.h>

#include <filesystem>
#include <string>
#include <vector>

#include "core/error.h"

namespace imagegen::sd {

// kTextEncoder2: SDXL's second text encoder (OpenCLIP bigG, with its projection).
enum class LoraNetwork { kTextEncoder, kTextEncoder2, kUnet };

struct LoraLayer {
  LoraNetwork network = LoraNetwork::kUnet;
  // The module the update is for: its diffusers name ("down_blocks.0.attentions.0.proj_in"),
  // or for kohya files the same with "_" for every "." (`underscored`).
  std::string module;
  bool underscored = false;
  std::string prefix;      // as the file names the network ("lora_te1_", "unet."): for messages
  torch::Tensor down, up;  // float32: [rank, in(, k, k)], [out, rank(, 1, 1)]
  double alpha = 0;        // 0: none given (the update's scale is 1)

  // (alpha / rank) * up @ down, shaped [out, in] or [out, in, k, k]: the update at scale 1.
  torch::Tensor Delta() const;
};

struct LoraFile {
  std::vector<LoraLayer> layers;
};

// Reads `path`. kNotFound when it does not exist; kInvalidRequest naming the file and the
// problem otherwise (see above).
Result<LoraFile> ReadLoraFile(const std::filesystem::path& path);

}  // namespace imagegen::sd
