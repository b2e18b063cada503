// Single-file original-layout ("ldm") checkpoints: which family a file holds, the diffusers
// configs its tensor shapes imply, and where each diffusers-named weight lies in the file.
// Works on names and shapes only (no LibTorch, no data), so it is fuzzed with the parser.
//
// The layout, written from the architecture (CompVis/Stability's LatentDiffusion):
//  - model.diffusion_model.*: the UNet. input_blocks.0.0 is conv_in; level i's res block j is
//    input_blocks.(1 + i*(L+1) + j).0 (its spatial transformer .1), its downsampler
//    input_blocks.(1 + i*(L+1) + L).0.op; middle_block.0/1/2 = resnet, attention, resnet;
//    output_blocks.(i*(L+1) + j) the up levels' L+1 res blocks (.1 attention, upsampler .1.conv
//    or .2.conv on the last); time_embed.0/.2, out.0 (norm) and out.2 (conv). Res blocks name
//    their layers in_layers.0/.2, emb_layers.1, out_layers.0/.3, skip_connection.
//  - first_stage_model.*: the VAE. encoder.down.i.block.j, encoder.down.i.downsample, mid.block_1,
//    mid.attn_1 (q, k, v, proj_out as 1x1 convs), mid.block_2, norm_out; the decoder's levels are
//    numbered from the bottom: decoder.up.(n-1-i) is diffusers' up_blocks.i; nin_shortcut is
//    conv_shortcut; quant_conv and post_quant_conv.
//  - cond_stage_model.transformer.*: SD 1.x's OpenAI CLIP in transformers' names (with or without
//    "text_model."). cond_stage_model.model.*: SD 2.x's OpenCLIP (token_embedding,
//    positional_embedding, transformer.resblocks.k with fused attn.in_proj q/k/v, ln_1/ln_2,
//    mlp.c_fc/c_proj, ln_final). SD 2.x conditions on the penultimate layer, so the last resblock
//    is not used (the released ViT-H has 24; the text encoder gets 23).
//  - conditioner.embedders.0.transformer.*: SDXL's OpenAI CLIP ViT-L (transformers' names);
//    conditioner.embedders.1.model.*: its OpenCLIP ViT-bigG (the OpenCLIP layout, every layer
//    used, and text_projection [hidden, projection] for the pooled output); the UNet's
//    label_emb.0.0/.0.2 is diffusers' add_embedding.linear_1/2. SDXL refiners (one encoder)
//    are refused.
// What shapes cannot say comes from the family: SD 1.x UNets have 8 heads, SD 2.x and SDXL 64
// channels per head (linear projections), CLIP text 64 channels per head; v-prediction,
// SD-Turbo and SDXL-Turbo from the hints (see SingleFileHints).
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.h"
#include "model/sd/checkpoint/family.h"

namespace imagegen::sd {

using ShapeMap = std::map<std::string, std::vector<int64_t>>;

// Where one diffusers weight comes from.
struct WeightSource {
  std::string key;             // its name in the file
  int64_t row_begin = 0;       // a slice of dimension 0 (OpenCLIP's fused q/k/v) ...
  int64_t row_count = -1;      // ... of this many rows; -1: the whole tensor
  std::vector<int64_t> shape;  // the diffusers shape (a 1x1 conv's weight seen as a Linear's)
  bool transposed = false;     // a matrix stored as `shape` reversed (OpenCLIP's projection)
};

struct ComponentPlan {
  nlohmann::json config;                        // as diffusers/transformers would write it
  std::map<std::string, WeightSource> weights;  // by diffusers name
};

struct SingleFileHints {
  // The file's name without directory and extension. Name rules (case-insensitive), for what a
  // single file cannot tell: "turbo" makes an SD 2.x file SD-Turbo; "768-v", "-v-", "v-pred",
  // "vpred", "v_pred" make it v-prediction (SD 2.x 768-v).
  std::string file_stem;
  std::string prediction_type;  // "epsilon" or "v_prediction" overrides the name rule
};

struct SingleFilePlan {
  Family family = Family::kSd1;
  std::string prediction_type;
  ComponentPlan text_encoder, unet, vae;
  ComponentPlan text_encoder_2;           // SDXL's second encoder; no weights otherwise
  size_t ignored_keys = 0;                // known and not needed: EMA, schedule buffers, ...
  std::vector<std::string> unknown_keys;  // outside every component and not known
};

// kInvalidRequest, with the reason, for: an SDXL refiner, no UNet / VAE / text
// encoder, a layout whose tensors are not all understood, shapes that contradict each other
// (e.g. the UNet's context width against the text encoder's), an invalid hint.
Result<SingleFilePlan> PlanSingleFile(const ShapeMap& shapes, const SingleFileHints& hints);

enum class ComponentKind { kTextEncoder, kUnet, kVae };

// Checks weights (by diffusers name) against a component's config: the tensors the config
// implies exist with the shapes it implies (embedding and projection widths, channels per
// level, layer counts). kInvalidRequest naming the first mismatch.
Status CheckComponentShapes(ComponentKind kind, const nlohmann::json& config,
                            const ShapeMap& shapes);

}  // namespace imagegen::sd
