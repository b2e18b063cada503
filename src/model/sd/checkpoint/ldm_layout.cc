#include "model/sd/checkpoint/ldm_layout.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <optional>
#include <set>
#include <string_view>
#include <utility>

namespace imagegen::sd {
namespace {

using nlohmann::json;
using Renames = std::map<std::string, std::string>;  // ldm leaf module -> diffusers leaf module

constexpr std::string_view kUnetRoot = "model.diffusion_model.";
constexpr std::string_view kVaeRoot = "first_stage_model.";
constexpr std::string_view kClipRoot = "cond_stage_model.transformer.";
constexpr std::string_view kOpenClipRoot = "cond_stage_model.model.";
constexpr std::string_view kSdxlClipRoot = "conditioner.embedders.0.transformer.";
constexpr std::string_view kSdxlOpenClipRoot = "conditioner.embedders.1.model.";

const Renames& UnetResnet() {
  static const Renames r = {
      {"in_layers.0", "norm1"},  {"in_layers.2", "conv1"},  {"emb_layers.1", "time_emb_proj"},
      {"out_layers.0", "norm2"}, {"out_layers.3", "conv2"}, {"skip_connection", "conv_shortcut"}};
  return r;
}
const Renames& VaeResnet() {
  static const Renames r = {{"norm1", "norm1"},
                            {"conv1", "conv1"},
                            {"norm2", "norm2"},
                            {"conv2", "conv2"},
                            {"nin_shortcut", "conv_shortcut"}};
  return r;
}
const Renames& VaeAttention() {
  static const Renames r = {{"norm", "group_norm"},
                            {"q", "to_q"},
                            {"k", "to_k"},
                            {"v", "to_v"},
                            {"proj_out", "to_out.0"}};
  return r;
}

Error Invalid(const std::string& message) {
  return Error::Make(ErrorCode::kInvalidRequest, message);
}

bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// The number of distinct indices k in keys "<prefix>k.…" (0 when none): max k + 1.
int CountIndexed(const ShapeMap& shapes, const std::string& prefix) {
  int count = 0;
  for (auto it = shapes.lower_bound(prefix); it != shapes.end() && StartsWith(it->first, prefix);
       ++it) {
    std::string_view rest = std::string_view(it->first).substr(prefix.size());
    int index = 0;
    auto [end, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), index);
    if (ec == std::errc() && end != rest.data() && *end == '.' && index < 100000) {
      count = std::max(count, index + 1);
    }
  }
  return count;
}

bool HasPrefix(const ShapeMap& shapes, const std::string& prefix) {
  auto it = shapes.lower_bound(prefix);
  return it != shapes.end() && StartsWith(it->first, prefix);
}

Result<std::vector<int64_t>> ShapeOf(const ShapeMap& shapes, const std::string& key, size_t rank) {
  auto it = shapes.find(key);
  if (it == shapes.end()) return Invalid("checkpoint lacks tensor " + key);
  if (it->second.size() != rank) {
    return Invalid("tensor " + key + " has rank " + std::to_string(it->second.size()) +
                   ", expected " + std::to_string(rank));
  }
  for (int64_t d : it->second) {
    if (d <= 0) return Invalid("tensor " + key + " has an empty dimension");
  }
  return it->second;
}

// One module of the mapping: every file key under ldm_prefix becomes a diffusers key under
// diffusers_prefix, the leaf module renamed through `renames` when given.
struct PrefixRule {
  std::string ldm_prefix, diffusers_prefix;
  const Renames* renames = nullptr;
};

// Maps every key under `root` through `rules` (the longest matching rule wins). Keys no rule
// covers, or whose leaf module a rule does not know, are returned in `unmapped`.
void ApplyRules(const ShapeMap& shapes, std::string_view root, const std::vector<PrefixRule>& rules,
                ComponentPlan& plan, std::vector<std::string>& unmapped) {
  std::map<std::string, const PrefixRule*> by_prefix;
  for (const auto& rule : rules) by_prefix[rule.ldm_prefix] = &rule;
  const std::string root_s(root);
  for (auto it = shapes.lower_bound(root_s); it != shapes.end() && StartsWith(it->first, root);
       ++it) {
    const std::string local = it->first.substr(root.size());
    const PrefixRule* rule = nullptr;
    size_t cut = local.rfind('.');
    while (cut != std::string::npos && rule == nullptr) {
      auto found = by_prefix.find(local.substr(0, cut));
      if (found != by_prefix.end()) rule = found->second;
      cut = cut == 0 ? std::string::npos : local.rfind('.', cut - 1);
    }
    if (rule == nullptr) {
      unmapped.push_back(it->first);
      continue;
    }
    std::string rest = local.substr(rule->ldm_prefix.size() + 1);
    if (rule->renames != nullptr) {
      const size_t leaf = rest.rfind('.');
      auto renamed = leaf == std::string::npos ? rule->renames->end()
                                               : rule->renames->find(rest.substr(0, leaf));
      if (renamed == rule->renames->end()) {
        unmapped.push_back(it->first);
        continue;
      }
      rest = renamed->second + rest.substr(leaf);
    }
    plan.weights[rule->diffusers_prefix + "." + rest] = WeightSource{it->first, 0, -1, it->second};
  }
}

Status RefuseUnmapped(const std::vector<std::string>& unmapped, const std::string& component) {
  if (unmapped.empty()) return Status::Ok();
  return Invalid(std::to_string(unmapped.size()) + " " + component +
                 " tensors of this checkpoint are not understood (e.g. " + unmapped.front() +
                 "): a layout this loader does not know");
}

// --- UNet -----------------------------------------------------------------------------------

struct UnetShape {
  int levels = 0, layers = 0;
  std::vector<int64_t> channels;
  std::vector<bool> attention;
};

Result<UnetShape> MeasureUnet(const ShapeMap& shapes) {
  const std::string in = std::string(kUnetRoot) + "input_blocks.";
  const int blocks = CountIndexed(shapes, in);
  UnetShape u;
  u.layers = blocks - 1;  // one level: no downsampler
  for (int k = 1; k < blocks; ++k) {
    if (shapes.count(in + std::to_string(k) + ".0.op.weight") != 0) {
      u.layers = k - 1;
      break;
    }
  }
  if (blocks < 2 || u.layers < 1 || blocks % (u.layers + 1) != 0) {
    return Invalid("the UNet's input_blocks (" + std::to_string(blocks) +
                   ") do not form levels of equal depth");
  }
  u.levels = blocks / (u.layers + 1);
  for (int i = 0; i < u.levels; ++i) {
    const std::string block = in + std::to_string(1 + i * (u.layers + 1));
    auto conv = ShapeOf(shapes, block + ".0.out_layers.3.weight", 4);
    if (!conv) return conv.error();
    u.channels.push_back((*conv)[0]);
    u.attention.push_back(HasPrefix(shapes, block + ".1."));
  }
  return u;
}

std::vector<PrefixRule> UnetRules(const UnetShape& u) {
  const int l = u.layers;
  std::vector<PrefixRule> rules = {{"time_embed.0", "time_embedding.linear_1"},
                                   {"time_embed.2", "time_embedding.linear_2"},
                                   {"input_blocks.0.0", "conv_in"},
                                   {"out.0", "conv_norm_out"},
                                   {"out.2", "conv_out"},
                                   {"middle_block.0", "mid_block.resnets.0", &UnetResnet()},
                                   {"middle_block.1", "mid_block.attentions.0"},
                                   {"middle_block.2", "mid_block.resnets.1", &UnetResnet()},
                                   {"label_emb.0.0", "add_embedding.linear_1"},
                                   {"label_emb.0.2", "add_embedding.linear_2"}};
  for (int i = 0; i < u.levels; ++i) {
    const std::string down = "down_blocks." + std::to_string(i);
    for (int j = 0; j < l; ++j) {
      const std::string block = "input_blocks." + std::to_string(1 + i * (l + 1) + j);
      rules.push_back({block + ".0", down + ".resnets." + std::to_string(j), &UnetResnet()});
      if (u.attention[static_cast<size_t>(i)]) {
        rules.push_back({block + ".1", down + ".attentions." + std::to_string(j)});
      }
    }
    if (i < u.levels - 1) {
      rules.push_back({"input_blocks." + std::to_string(1 + i * (l + 1) + l) + ".0.op",
                       down + ".downsamplers.0.conv"});
    }
    // Up level i mirrors down level levels-1-i.
    const std::string up = "up_blocks." + std::to_string(i);
    const bool attention = u.attention[static_cast<size_t>(u.levels - 1 - i)];
    for (int j = 0; j <= l; ++j) {
      const std::string block = "output_blocks." + std::to_string(i * (l + 1) + j);
      rules.push_back({block + ".0", up + ".resnets." + std::to_string(j), &UnetResnet()});
      if (attention) rules.push_back({block + ".1", up + ".attentions." + std::to_string(j)});
    }
    if (i < u.levels - 1) {
      rules.push_back(
          {"output_blocks." + std::to_string(i * (l + 1) + l) + (attention ? ".2.conv" : ".1.conv"),
           up + ".upsamplers.0.conv"});
    }
  }
  return rules;
}

Result<json> UnetHeads(Family family, const std::vector<int64_t>& channels) {
  if (family == Family::kSd1) {
    for (int64_t c : channels) {
      if (c % 8 != 0) return Invalid("SD 1.x UNet channels must split into 8 heads");
    }
    return json(8);  // diffusers' attention_head_dim holds SD 1.x's head count
  }
  json heads = json::array();
  for (int64_t c : channels) {
    if (c % 64 != 0) {
      return Invalid("SD 2.x and SDXL UNet channels must be multiples of 64 (per head)");
    }
    heads.push_back(c / 64);
  }
  return heads;
}

// The attention geometry of the first spatial transformer: context width, linear projections,
// transformer depth.
struct AttentionShape {
  int64_t context = 0;
  bool linear = false;
  int depth = 0;  // the middle block's
};

Result<AttentionShape> MeasureAttention(const ShapeMap& shapes) {
  const std::string mid = std::string(kUnetRoot) + "middle_block.1.";
  auto to_k = ShapeOf(shapes, mid + "transformer_blocks.0.attn2.to_k.weight", 2);
  if (!to_k) return to_k.error();
  auto proj = shapes.find(mid + "proj_in.weight");
  if (proj == shapes.end()) return Invalid("checkpoint lacks tensor " + mid + "proj_in.weight");
  return AttentionShape{(*to_k)[1], proj->second.size() == 2,
                        CountIndexed(shapes, mid + "transformer_blocks.")};
}

// Transformer blocks per level (SDXL: 1, 2, 10): counted in each level's first attention; a
// level without attention gets 1 as diffusers' configs write it, except the last: diffusers
// gives the middle block the last level's depth.
Result<json> TransformerDepths(const ShapeMap& shapes, const UnetShape& u, int mid_depth) {
  json depths = json::array();
  for (int i = 0; i < u.levels; ++i) {
    if (!u.attention[static_cast<size_t>(i)]) {
      depths.push_back(i + 1 == u.levels ? mid_depth : 1);
      continue;
    }
    const std::string block = std::string(kUnetRoot) + "input_blocks." +
                              std::to_string(1 + i * (u.layers + 1)) + ".1.transformer_blocks.";
    depths.push_back(CountIndexed(shapes, block));
  }
  if (depths.back() != mid_depth) {
    return Invalid("the UNet's middle block has " + std::to_string(mid_depth) +
                   " transformer blocks and its last level " + depths.back().dump());
  }
  return depths;
}

// SDXL's added embedding (label_emb): the pooled text and six size ids, each embedded
// sinusoidally in (input - pooled) / 6 channels.
Status AddTextTimeEmbedding(const ShapeMap& shapes, int64_t pooled_dim, json& config) {
  const std::string key = std::string(kUnetRoot) + "label_emb.0.0.weight";
  if (pooled_dim == 0) {
    if (shapes.count(key) == 0) return Status::Ok();
    return Invalid("the UNet has an added embedding (label_emb) but the checkpoint no pooled text");
  }
  auto label = ShapeOf(shapes, key, 2);
  if (!label) return label.error();
  const int64_t input = (*label)[1];
  if (input <= pooled_dim || (input - pooled_dim) % 6 != 0) {
    return Invalid("the UNet's label_emb takes " + std::to_string(input) +
                   " inputs: not the pooled text (" + std::to_string(pooled_dim) +
                   ") and six size embeddings");
  }
  config["addition_embed_type"] = "text_time";
  config["addition_time_embed_dim"] = (input - pooled_dim) / 6;
  config["projection_class_embeddings_input_dim"] = input;
  return Status::Ok();
}

int NativeLatent(Family family) {
  switch (family) {
    case Family::kSd2V:
      return 96;
    case Family::kSdxl:  // 1024x1024; SDXL-Turbo was trained at 512x512
      return 128;
    default:
      return 64;
  }
}

Result<ComponentPlan> PlanUnet(const ShapeMap& shapes, Family family, int64_t pooled_dim) {
  auto u = MeasureUnet(shapes);
  if (!u) return u.error();
  auto conv_in = ShapeOf(shapes, std::string(kUnetRoot) + "input_blocks.0.0.weight", 4);
  if (!conv_in) return conv_in.error();
  auto conv_out = ShapeOf(shapes, std::string(kUnetRoot) + "out.2.weight", 4);
  if (!conv_out) return conv_out.error();
  auto attention = MeasureAttention(shapes);
  if (!attention) return attention.error();
  auto heads = UnetHeads(family, u->channels);
  if (!heads) return heads.error();
  auto depths = TransformerDepths(shapes, *u, attention->depth);
  if (!depths) return depths.error();
  json down = json::array(), up = json::array();
  for (int i = 0; i < u->levels; ++i) {
    down.push_back(u->attention[static_cast<size_t>(i)] ? "CrossAttnDownBlock2D" : "DownBlock2D");
    up.push_back(u->attention[static_cast<size_t>(u->levels - 1 - i)] ? "CrossAttnUpBlock2D"
                                                                      : "UpBlock2D");
  }
  ComponentPlan plan;
  plan.config = {{"_class_name", "UNet2DConditionModel"},
                 {"sample_size", NativeLatent(family)},
                 {"in_channels", (*conv_in)[1]},
                 {"out_channels", (*conv_out)[0]},
                 {"block_out_channels", u->channels},
                 {"layers_per_block", u->layers},
                 {"down_block_types", down},
                 {"up_block_types", up},
                 {"mid_block_type", "UNetMidBlock2DCrossAttn"},
                 {"cross_attention_dim", attention->context},
                 {"attention_head_dim", *heads},
                 {"use_linear_projection", attention->linear},
                 {"transformer_layers_per_block", *depths},
                 {"norm_num_groups", 32},
                 {"norm_eps", 1e-5},
                 {"act_fn", "silu"},
                 {"flip_sin_to_cos", true},
                 {"freq_shift", 0},
                 {"center_input_sample", false},
                 {"upcast_attention", false}};
  if (auto added = AddTextTimeEmbedding(shapes, pooled_dim, plan.config); !added) {
    return added.error();
  }
  std::vector<std::string> unmapped;
  ApplyRules(shapes, kUnetRoot, UnetRules(*u), plan, unmapped);
  if (auto refused = RefuseUnmapped(unmapped, "UNet"); !refused) return refused.error();
  return plan;
}

// --- VAE ------------------------------------------------------------------------------------

Result<ComponentPlan> PlanVae(const ShapeMap& shapes, Family family) {
  const std::string root(kVaeRoot);
  const int levels = CountIndexed(shapes, root + "encoder.down.");
  const int layers = CountIndexed(shapes, root + "encoder.down.0.block.");
  if (levels < 1 || layers < 1 || CountIndexed(shapes, root + "decoder.up.") != levels) {
    return Invalid("the VAE's encoder and decoder levels do not match");
  }
  std::vector<int64_t> channels;
  for (int i = 0; i < levels; ++i) {
    auto conv =
        ShapeOf(shapes, root + "encoder.down." + std::to_string(i) + ".block.0.conv2.weight", 4);
    if (!conv) return conv.error();
    channels.push_back((*conv)[0]);
  }
  auto conv_in = ShapeOf(shapes, root + "encoder.conv_in.weight", 4);
  auto latent_in = ShapeOf(shapes, root + "decoder.conv_in.weight", 4);
  auto conv_out = ShapeOf(shapes, root + "decoder.conv_out.weight", 4);
  for (const auto* s : {&conv_in, &latent_in, &conv_out}) {
    if (!*s) return s->error();
  }
  ComponentPlan plan;
  plan.config = {{"_class_name", "AutoencoderKL"},
                 {"in_channels", (*conv_in)[1]},
                 {"out_channels", (*conv_out)[0]},
                 {"latent_channels", (*latent_in)[1]},
                 {"block_out_channels", channels},
                 {"layers_per_block", layers},
                 {"down_block_types", json::array()},
                 {"up_block_types", json::array()},
                 {"act_fn", "silu"},
                 {"norm_num_groups", 32},
                 {"sample_size", NativeLatent(family) * 8},
                 {"scaling_factor", IsSdxl(family) ? 0.13025 : 0.18215},
                 {"force_upcast", true}};
  std::vector<PrefixRule> rules;
  for (std::string side : {"encoder", "decoder"}) {
    rules.push_back({side + ".conv_in", side + ".conv_in"});
    rules.push_back({side + ".norm_out", side + ".conv_norm_out"});
    rules.push_back({side + ".conv_out", side + ".conv_out"});
    rules.push_back({side + ".mid.block_1", side + ".mid_block.resnets.0", &VaeResnet()});
    rules.push_back({side + ".mid.attn_1", side + ".mid_block.attentions.0", &VaeAttention()});
    rules.push_back({side + ".mid.block_2", side + ".mid_block.resnets.1", &VaeResnet()});
  }
  for (int i = 0; i < levels; ++i) {
    const std::string si = std::to_string(i), up = std::to_string(levels - 1 - i);
    plan.config["down_block_types"].push_back("DownEncoderBlock2D");
    plan.config["up_block_types"].push_back("UpDecoderBlock2D");
    for (int j = 0; j < layers; ++j) {
      rules.push_back({"encoder.down." + si + ".block." + std::to_string(j),
                       "encoder.down_blocks." + si + ".resnets." + std::to_string(j),
                       &VaeResnet()});
    }
    for (int j = 0; j <= layers; ++j) {
      rules.push_back({"decoder.up." + up + ".block." + std::to_string(j),
                       "decoder.up_blocks." + si + ".resnets." + std::to_string(j), &VaeResnet()});
    }
    if (i < levels - 1) {
      rules.push_back({"encoder.down." + si + ".downsample.conv",
                       "encoder.down_blocks." + si + ".downsamplers.0.conv"});
      rules.push_back({"decoder.up." + up + ".upsample.conv",
                       "decoder.up_blocks." + si + ".upsamplers.0.conv"});
    }
  }
  rules.push_back({"quant_conv", "quant_conv"});
  rules.push_back({"post_quant_conv", "post_quant_conv"});
  std::vector<std::string> unmapped;
  ApplyRules(shapes, kVaeRoot, rules, plan, unmapped);
  // Training-time loss weights (LPIPS, discriminator) ride along in some files.
  std::erase_if(unmapped,
                [](const std::string& k) { return StartsWith(k, "first_stage_model.loss."); });
  if (auto refused = RefuseUnmapped(unmapped, "VAE"); !refused) return refused.error();
  for (auto& [name, source] : plan.weights) {
    // ldm's attention projections are 1x1 convolutions; diffusers' are linear layers.
    if (name.find(".mid_block.attentions.0.to_") != std::string::npos && source.shape.size() == 4) {
      source.shape.resize(2);
    }
  }
  return plan;
}

// --- text encoders --------------------------------------------------------------------------

Result<int64_t> TextHeads(int64_t hidden) {
  if (hidden % 64 != 0) return Invalid("CLIP text width must be a multiple of 64 (per head)");
  return hidden / 64;
}

// `projection`: the text projection's width (CLIPTextModelWithProjection, SDXL's second
// encoder); 0 for a CLIPTextModel.
json TextConfig(int64_t vocab, int64_t hidden, int64_t intermediate, int64_t heads, int layers,
                int64_t positions, bool open_clip, int64_t projection = 0) {
  const int64_t released_projection = open_clip ? 1024 : 768;
  return {{"architectures", {projection > 0 ? "CLIPTextModelWithProjection" : "CLIPTextModel"}},
          {"model_type", "clip_text_model"},
          {"vocab_size", vocab},
          {"hidden_size", hidden},
          {"intermediate_size", intermediate},
          {"num_attention_heads", heads},
          {"num_hidden_layers", layers},
          {"max_position_embeddings", positions},
          {"hidden_act", open_clip ? "gelu" : "quick_gelu"},
          {"layer_norm_eps", 1e-5},
          {"attention_dropout", 0.0},
          {"bos_token_id", 49406},
          {"eos_token_id", 49407},
          {"pad_token_id", 1},
          {"projection_dim", projection > 0 ? projection : released_projection}};
}

// OpenAI CLIP in transformers' names under `base` (SD 1.x's, or SDXL's first encoder).
Result<ComponentPlan> PlanClipText(const ShapeMap& shapes, std::string_view base, size_t& ignored) {
  // Older files put transformers' CLIPTextModel names right under the root.
  const bool nested = HasPrefix(shapes, std::string(base) + "text_model.");
  const std::string root = std::string(base) + (nested ? "text_model." : "");
  auto tokens = ShapeOf(shapes, root + "embeddings.token_embedding.weight", 2);
  auto positions = ShapeOf(shapes, root + "embeddings.position_embedding.weight", 2);
  auto fc1 = ShapeOf(shapes, root + "encoder.layers.0.mlp.fc1.weight", 2);
  for (const auto* s : {&tokens, &positions, &fc1}) {
    if (!*s) return s->error();
  }
  auto heads = TextHeads((*tokens)[1]);
  if (!heads) return heads.error();
  ComponentPlan plan;
  plan.config = TextConfig((*tokens)[0], (*tokens)[1], (*fc1)[0], *heads,
                           CountIndexed(shapes, root + "encoder.layers."), (*positions)[0], false);
  for (auto it = shapes.lower_bound(root); it != shapes.end() && StartsWith(it->first, root);
       ++it) {
    if (it->first.ends_with("position_ids")) {
      ++ignored;  // a buffer, not a weight
      continue;
    }
    plan.weights["text_model." + it->first.substr(root.size())] =
        WeightSource{it->first, 0, -1, it->second};
  }
  return plan;
}

// One OpenCLIP residual block as transformers' CLIPEncoderLayer.
Status PlanOpenClipLayer(const ShapeMap& shapes, const std::string& from, const std::string& to,
                         int64_t hidden, ComponentPlan& plan) {
  static const Renames kLayer = {{"ln_1", "layer_norm1"},
                                 {"ln_2", "layer_norm2"},
                                 {"mlp.c_fc", "mlp.fc1"},
                                 {"mlp.c_proj", "mlp.fc2"},
                                 {"attn.out_proj", "self_attn.out_proj"}};
  for (const auto& [theirs, ours] : kLayer) {
    for (const char* leaf : {".weight", ".bias"}) {
      auto it = shapes.find(from + theirs + leaf);
      if (it == shapes.end()) return Invalid("checkpoint lacks tensor " + from + theirs + leaf);
      plan.weights[to + ours + leaf] = WeightSource{it->first, 0, -1, it->second};
    }
  }
  auto weight = ShapeOf(shapes, from + "attn.in_proj_weight", 2);
  auto bias = ShapeOf(shapes, from + "attn.in_proj_bias", 1);
  if (!weight) return weight.error();
  if (!bias) return bias.error();
  if ((*weight)[0] != 3 * hidden || (*weight)[1] != hidden || (*bias)[0] != 3 * hidden) {
    return Invalid(from + "attn.in_proj_* is not a fused [3*" + std::to_string(hidden) +
                   "] q/k/v projection");
  }
  const char* names[] = {"q_proj", "k_proj", "v_proj"};
  for (int64_t part = 0; part < 3; ++part) {
    const std::string proj = to + "self_attn." + names[part];
    plan.weights[proj + ".weight"] =
        WeightSource{from + "attn.in_proj_weight", part * hidden, hidden, {hidden, hidden}};
    plan.weights[proj + ".bias"] =
        WeightSource{from + "attn.in_proj_bias", part * hidden, hidden, {hidden}};
  }
  return Status::Ok();
}

// OpenCLIP under `root`. SD 2.x (`sdxl` false) conditions on the penultimate layer, so the text
// encoder gets all layers but the last, and the projection is not used; SDXL's second encoder
// is the whole model with its projection (CLIPTextModelWithProjection: the pooled output).
Result<ComponentPlan> PlanOpenClipText(const ShapeMap& shapes, std::string_view root_view,
                                       bool sdxl, size_t& ignored) {
  const std::string root(root_view);
  auto tokens = ShapeOf(shapes, root + "token_embedding.weight", 2);
  auto positions = ShapeOf(shapes, root + "positional_embedding", 2);
  auto fc = ShapeOf(shapes, root + "transformer.resblocks.0.mlp.c_fc.weight", 2);
  for (const auto* s : {&tokens, &positions, &fc}) {
    if (!*s) return s->error();
  }
  const int64_t hidden = (*tokens)[1];
  auto heads = TextHeads(hidden);
  if (!heads) return heads.error();
  const int blocks = CountIndexed(shapes, root + "transformer.resblocks.");
  if (blocks < 2) return Invalid("an OpenCLIP text encoder needs at least 2 layers");
  const int layers = sdxl ? blocks : blocks - 1;
  int64_t projection = 0;
  ComponentPlan plan;
  if (sdxl) {
    auto shape = ShapeOf(shapes, root + "text_projection", 2);
    if (!shape) return shape.error();
    if ((*shape)[0] != hidden) return Invalid(root + "text_projection is not [hidden, projection]");
    projection = (*shape)[1];
    // OpenCLIP multiplies by it on the right (x @ P); transformers' Linear holds P transposed.
    plan.weights["text_projection.weight"] =
        WeightSource{root + "text_projection", 0, -1, {projection, hidden}, /*transposed=*/true};
  }
  plan.config =
      TextConfig((*tokens)[0], hidden, (*fc)[0], *heads, layers, (*positions)[0], true, projection);
  plan.weights["text_model.embeddings.token_embedding.weight"] =
      WeightSource{root + "token_embedding.weight", 0, -1, *tokens};
  plan.weights["text_model.embeddings.position_embedding.weight"] =
      WeightSource{root + "positional_embedding", 0, -1, *positions};
  for (const char* leaf : {"weight", "bias"}) {
    auto ln = ShapeOf(shapes, root + "ln_final." + leaf, 1);
    if (!ln) return ln.error();
    plan.weights[std::string("text_model.final_layer_norm.") + leaf] =
        WeightSource{root + "ln_final." + leaf, 0, -1, *ln};
  }
  for (int i = 0; i < layers; ++i) {
    auto layer =
        PlanOpenClipLayer(shapes, root + "transformer.resblocks." + std::to_string(i) + ".",
                          "text_model.encoder.layers." + std::to_string(i) + ".", hidden, plan);
    if (!layer) return layer.error();
  }
  std::set<std::string> used;
  for (const auto& [name, source] : plan.weights) used.insert(source.key);
  for (auto it = shapes.lower_bound(root); it != shapes.end() && StartsWith(it->first, root);
       ++it) {
    if (used.count(it->first) != 0) continue;
    const bool known =
        StartsWith(it->first, root + "transformer.resblocks." + std::to_string(layers) + ".") ||
        it->first == root + "text_projection" || it->first == root + "logit_scale";
    if (!known) return RefuseUnmapped({it->first}, "text encoder").error();
    ++ignored;
  }
  return plan;
}

// --- the whole file -------------------------------------------------------------------------

bool NameSays(const std::string& stem, std::initializer_list<std::string_view> words) {
  const std::string lower = Lower(stem);
  return std::any_of(words.begin(), words.end(),
                     [&](std::string_view w) { return lower.find(w) != std::string::npos; });
}

Status CheckPredictionHint(const SingleFileHints& hints) {
  if (hints.prediction_type.empty() || hints.prediction_type == "epsilon" ||
      hints.prediction_type == "v_prediction") {
    return Status::Ok();
  }
  return Invalid("prediction type must be epsilon or v_prediction, not '" + hints.prediction_type +
                 "'");
}

// SDXL base files carry OpenAI CLIP ViT-L and OpenCLIP ViT-bigG side by side; the refiner has
// only the second (and aesthetic-score conditioning), which these networks do not compute.
Result<Family> DetectSdxl(const ShapeMap& shapes, const SingleFileHints& hints,
                          std::string& prediction) {
  if (!HasPrefix(shapes, std::string(kSdxlClipRoot)) ||
      !HasPrefix(shapes, std::string(kSdxlOpenClipRoot))) {
    return Invalid(
        "an SDXL checkpoint needs both text encoders (conditioner.embedders.0.transformer.* and "
        "conditioner.embedders.1.model.*); SDXL refiner files are not supported");
  }
  prediction = hints.prediction_type.empty() ? "epsilon" : hints.prediction_type;
  return NameSays(hints.file_stem, {"turbo"}) ? Family::kSdxlTurbo : Family::kSdxl;
}

Result<Family> DetectFamily(const ShapeMap& shapes, const SingleFileHints& hints,
                            std::string& prediction) {
  if (!HasPrefix(shapes, std::string(kUnetRoot))) {
    return Invalid(
        "not a Stable Diffusion single-file checkpoint: no model.diffusion_model.* "
        "(UNet) tensors");
  }
  if (!HasPrefix(shapes, std::string(kVaeRoot))) {
    return Invalid("the checkpoint has no first_stage_model.* (VAE) tensors");
  }
  if (auto hint = CheckPredictionHint(hints); !hint) return hint.error();
  if (HasPrefix(shapes, "conditioner.embedders.")) return DetectSdxl(shapes, hints, prediction);
  const bool clip = HasPrefix(shapes, std::string(kClipRoot));
  const bool open_clip = HasPrefix(shapes, std::string(kOpenClipRoot));
  if (clip == open_clip) {
    return Invalid(clip ? "the checkpoint has two text encoders (cond_stage_model.transformer "
                          "and .model)"
                        : "the checkpoint has no cond_stage_model.* (text encoder) tensors");
  }
  const bool v_by_name = NameSays(hints.file_stem, {"768-v", "-v-", "v-pred", "vpred", "v_pred"});
  prediction = !hints.prediction_type.empty() ? hints.prediction_type
               : (open_clip && v_by_name)     ? "v_prediction"
                                              : "epsilon";
  if (!open_clip) return Family::kSd1;
  if (NameSays(hints.file_stem, {"turbo"})) return Family::kSdTurbo;
  return prediction == "v_prediction" ? Family::kSd2V : Family::kSd2;
}

bool IsKnownExtra(const std::string& key) {
  static const std::vector<std::string_view> kPrefixes = {
      "model_ema.",
      "betas",
      "alphas_cumprod",
      "sqrt_",
      "log_one_minus_alphas_cumprod",
      "posterior_",
      "lvlb_weights",
      "logvar",
      "cond_stage_model.model.logit_scale",
      "conditioner.embedders.1.model.logit_scale"};
  return std::any_of(kPrefixes.begin(), kPrefixes.end(),
                     [&](std::string_view p) { return StartsWith(key, p); });
}

// --- shape checks against a config ---------------------------------------------------------

Result<int64_t> IntField(const json& config, const char* name) {
  auto it = config.find(name);
  if (it == config.end() || !it->is_number_integer() || it->get<int64_t>() <= 0 ||
      it->get<int64_t>() > (int64_t{1} << 24)) {
    return Invalid(std::string("config field ") + name + " is missing or not a positive integer");
  }
  return it->get<int64_t>();
}

Result<std::vector<int64_t>> IntList(const json& config, const char* name) {
  auto it = config.find(name);
  if (it == config.end() || !it->is_array() || it->empty() || it->size() > 16) {
    return Invalid(std::string("config field ") + name + " is missing or not a short list");
  }
  std::vector<int64_t> out;
  for (const auto& v : *it) {
    if (!v.is_number_integer() || v.get<int64_t>() <= 0 || v.get<int64_t>() > (1 << 24)) {
      return Invalid(std::string("config field ") + name + " holds a non-positive value");
    }
    out.push_back(v.get<int64_t>());
  }
  return out;
}

std::string ShapeText(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + "]";
}

// `key` must exist with a shape whose leading dimensions are `leading` (-1: any).
Status Expect(const ShapeMap& shapes, const std::string& key, std::vector<int64_t> leading) {
  auto it = shapes.find(key);
  if (it == shapes.end()) return Invalid("weights lack " + key + ", which the config implies");
  bool ok = it->second.size() >= leading.size();
  for (size_t i = 0; ok && i < leading.size(); ++i) {
    ok = leading[i] < 0 || it->second[i] == leading[i];
  }
  if (!ok) {
    return Invalid("shape mismatch against the config: " + key + " is " + ShapeText(it->second) +
                   ", the config implies " + ShapeText(leading));
  }
  return Status::Ok();
}

Status CheckTextShapes(const json& config, const ShapeMap& shapes) {
  auto vocab = IntField(config, "vocab_size");
  auto hidden = IntField(config, "hidden_size");
  auto inner = IntField(config, "intermediate_size");
  auto heads = IntField(config, "num_attention_heads");
  auto layers = IntField(config, "num_hidden_layers");
  auto positions = IntField(config, "max_position_embeddings");
  for (const auto* f : {&vocab, &hidden, &inner, &heads, &layers, &positions}) {
    if (!*f) return f->error();
  }
  if (*hidden % *heads != 0) return Invalid("text encoder hidden_size is not divisible by heads");
  const std::string m = "text_model.";
  std::vector<std::pair<std::string, std::vector<int64_t>>> want = {
      {m + "embeddings.token_embedding.weight", {*vocab, *hidden}},
      {m + "embeddings.position_embedding.weight", {*positions, *hidden}},
      {m + "final_layer_norm.weight", {*hidden}},
      {m + "final_layer_norm.bias", {*hidden}}};
  for (int64_t i = 0; i < *layers; ++i) {
    const std::string l = m + "encoder.layers." + std::to_string(i) + ".";
    want.push_back({l + "self_attn.q_proj.weight", {*hidden, *hidden}});
    want.push_back({l + "self_attn.out_proj.weight", {*hidden, *hidden}});
    want.push_back({l + "mlp.fc1.weight", {*inner, *hidden}});
    want.push_back({l + "mlp.fc2.weight", {*hidden, *inner}});
  }
  if (shapes.count("text_projection.weight") != 0) {
    auto projection = IntField(config, "projection_dim");
    if (!projection) return projection.error();
    want.push_back({"text_projection.weight", {*projection, *hidden}});
  }
  for (const auto& [key, shape] : want) {
    if (auto s = Expect(shapes, key, shape); !s) return s;
  }
  if (CountIndexed(shapes, m + "encoder.layers.") != *layers) {
    return Invalid("text encoder weights have " +
                   std::to_string(CountIndexed(shapes, m + "encoder.layers.")) +
                   " layers, its config says " + std::to_string(*layers));
  }
  return Status::Ok();
}

Status CheckUnetShapes(const json& config, const ShapeMap& shapes) {
  auto channels = IntList(config, "block_out_channels");
  auto in = IntField(config, "in_channels");
  auto out = IntField(config, "out_channels");
  auto context = IntField(config, "cross_attention_dim");
  for (const auto* f : {&in, &out, &context}) {
    if (!*f) return f->error();
  }
  if (!channels) return channels.error();
  const int64_t c0 = channels->front();
  if (auto s = Expect(shapes, "conv_in.weight", {c0, *in}); !s) return s;
  if (auto s = Expect(shapes, "conv_out.weight", {*out, c0}); !s) return s;
  if (auto s = Expect(shapes, "time_embedding.linear_1.weight", {-1, c0}); !s) return s;
  const auto levels = static_cast<int>(channels->size());
  if (CountIndexed(shapes, "down_blocks.") != levels ||
      CountIndexed(shapes, "up_blocks.") != levels) {
    return Invalid("UNet weights have " + std::to_string(CountIndexed(shapes, "down_blocks.")) +
                   " levels, its config says " + std::to_string(levels));
  }
  for (int i = 0; i < levels; ++i) {
    const std::string d = "down_blocks." + std::to_string(i) + ".";
    if (auto s =
            Expect(shapes, d + "resnets.0.conv1.weight", {(*channels)[static_cast<size_t>(i)]});
        !s) {
      return s;
    }
    const std::string k = d + "attentions.0.transformer_blocks.0.attn2.to_k.weight";
    if (shapes.count(k) != 0) {
      if (auto s = Expect(shapes, k, {(*channels)[static_cast<size_t>(i)], *context}); !s) return s;
    }
  }
  return Expect(shapes, "mid_block.attentions.0.transformer_blocks.0.attn2.to_k.weight",
                {channels->back(), *context});
}

Status CheckVaeShapes(const json& config, const ShapeMap& shapes) {
  auto channels = IntList(config, "block_out_channels");
  auto in = IntField(config, "in_channels");
  auto out = IntField(config, "out_channels");
  auto latent = IntField(config, "latent_channels");
  for (const auto* f : {&in, &out, &latent}) {
    if (!*f) return f->error();
  }
  if (!channels) return channels.error();
  const std::vector<std::pair<std::string, std::vector<int64_t>>> want = {
      {"encoder.conv_in.weight", {channels->front(), *in}},
      {"encoder.conv_out.weight", {2 * *latent, channels->back()}},
      {"quant_conv.weight", {2 * *latent, 2 * *latent}},
      {"post_quant_conv.weight", {*latent, *latent}},
      {"decoder.conv_in.weight", {channels->back(), *latent}},
      {"decoder.conv_out.weight", {*out, channels->front()}}};
  for (const auto& [key, shape] : want) {
    if (auto s = Expect(shapes, key, shape); !s) return s;
  }
  for (size_t i = 0; i < channels->size(); ++i) {
    const std::string key = "encoder.down_blocks." + std::to_string(i) + ".resnets.0.conv2.weight";
    if (auto s = Expect(shapes, key, {(*channels)[i]}); !s) return s;
  }
  return Status::Ok();
}

}  // namespace

Status CheckComponentShapes(ComponentKind kind, const nlohmann::json& config,
                            const ShapeMap& shapes) {
  if (!config.is_object()) return Invalid("a component config is not a JSON object");
  switch (kind) {
    case ComponentKind::kTextEncoder:
      return CheckTextShapes(config, shapes);
    case ComponentKind::kUnet:
      return CheckUnetShapes(config, shapes);
    case ComponentKind::kVae:
      return CheckVaeShapes(config, shapes);
  }
  return Status::Ok();
}

namespace {

// The text encoders by family: SD 1.x's CLIP, SD 2.x's OpenCLIP, or SDXL's two.
Status PlanTextEncoders(const ShapeMap& shapes, SingleFilePlan& plan) {
  Result<ComponentPlan> first = Invalid("");
  if (IsSdxl(plan.family)) {
    first = PlanClipText(shapes, kSdxlClipRoot, plan.ignored_keys);
    auto second = PlanOpenClipText(shapes, kSdxlOpenClipRoot, /*sdxl=*/true, plan.ignored_keys);
    if (!second) return second.error();
    plan.text_encoder_2 = std::move(*second);
  } else if (UsesOpenClip(plan.family)) {
    first = PlanOpenClipText(shapes, kOpenClipRoot, /*sdxl=*/false, plan.ignored_keys);
  } else {
    first = PlanClipText(shapes, kClipRoot, plan.ignored_keys);
  }
  if (!first) return first.error();
  plan.text_encoder = std::move(*first);
  return Status::Ok();
}

int64_t ContextWidth(const SingleFilePlan& plan) {
  int64_t width = plan.text_encoder.config["hidden_size"].get<int64_t>();
  if (!plan.text_encoder_2.weights.empty()) {
    width += plan.text_encoder_2.config["hidden_size"].get<int64_t>();
  }
  return width;
}

bool InAComponent(const std::string& key) {
  for (std::string_view root :
       {kUnetRoot, kVaeRoot, kClipRoot, kOpenClipRoot, kSdxlClipRoot, kSdxlOpenClipRoot}) {
    if (StartsWith(key, root)) return true;
  }
  return false;
}

}  // namespace

Result<SingleFilePlan> PlanSingleFile(const ShapeMap& shapes, const SingleFileHints& hints) {
  SingleFilePlan plan;
  auto family = DetectFamily(shapes, hints, plan.prediction_type);
  if (!family) return family.error();
  plan.family = *family;
  if (auto text = PlanTextEncoders(shapes, plan); !text) return text.error();
  const int64_t pooled = plan.text_encoder_2.weights.empty()
                             ? 0
                             : plan.text_encoder_2.config["projection_dim"].get<int64_t>();
  auto unet = PlanUnet(shapes, plan.family, pooled);
  if (!unet) return unet.error();
  auto vae = PlanVae(shapes, plan.family);
  if (!vae) return vae.error();
  if (unet->config["cross_attention_dim"] != ContextWidth(plan)) {
    return Invalid("the UNet attends to " + unet->config["cross_attention_dim"].dump() +
                   "-wide text, the text encoders give " + std::to_string(ContextWidth(plan)));
  }
  // The synthesised configs must describe the mapped weights, as a folder's would.
  const std::pair<ComponentKind, const ComponentPlan*> parts[] = {
      {ComponentKind::kTextEncoder, &plan.text_encoder},
      {ComponentKind::kTextEncoder, &plan.text_encoder_2},
      {ComponentKind::kUnet, &*unet},
      {ComponentKind::kVae, &*vae}};
  for (const auto& [kind, part] : parts) {
    if (part->weights.empty() && part == &plan.text_encoder_2) continue;
    ShapeMap mapped;
    for (const auto& [name, source] : part->weights) mapped[name] = source.shape;
    if (auto checked = CheckComponentShapes(kind, part->config, mapped); !checked) {
      return checked.error();
    }
  }
  plan.unet = std::move(*unet);
  plan.vae = std::move(*vae);
  for (const auto& [key, shape] : shapes) {
    if (InAComponent(key)) continue;
    if (IsKnownExtra(key)) {
      ++plan.ignored_keys;
    } else {
      plan.unknown_keys.push_back(key);
    }
  }
  return plan;
}

}  // namespace imagegen::sd
