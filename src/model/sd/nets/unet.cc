#include "model/sd/nets/unet.h"

#include <stdexcept>
#include <string>
#include <vector>

#include "model/sd/nets/blocks.h"
#include "model/sd/nets/config_fields.h"

namespace imagegen::sd {
namespace {

using nlohmann::json;

constexpr const char* kComponent = "unet";

struct UnetConfig {
  int in_channels = 4, out_channels = 4;
  int sample_size = 0;  // the latent side it was trained at; 0 when the config does not say
  std::vector<int> block_out;
  std::vector<bool> down_attention, up_attention;                 // CrossAttn*Block2D vs plain
  std::vector<int> layers, heads, cross_dim, transformer_layers;  // per down block
  int groups = 32;
  double eps = 1e-5;
  bool linear_projection = false, flip_sin_to_cos = true;
  double freq_shift = 0;
  int time_embed_dim = 0;
  // SDXL's "text_time" added conditioning: the pooled text embedding and the six size ids
  // (each as a sinusoidal embedding of this width) -> a second time-embedding MLP; 0: none.
  int added_time_dim = 0, added_input_dim = 0;
};

// What SD 1.x/2.x UNets leave at diffusers' defaults; other values select SDXL, LCM, class-
// conditioned or other variants that these layers do not compute.
const std::vector<RequiredDefault>& UnetDefaults() {
  static const std::vector<RequiredDefault> fields = {
      {"act_fn", "silu"},
      {"attention_type", "default"},
      {"center_input_sample", false},
      {"class_embed_type", nullptr},
      {"class_embeddings_concat", false},
      {"conv_in_kernel", 3},
      {"conv_out_kernel", 3},
      {"cross_attention_norm", nullptr},
      {"downsample_padding", 1},
      {"dual_cross_attention", false},
      {"encoder_hid_dim", nullptr},
      {"mid_block_only_cross_attention", false},
      {"mid_block_scale_factor", 1},
      {"mid_block_type", "UNetMidBlock2DCrossAttn"},
      {"num_attention_heads", nullptr},
      {"num_class_embeds", nullptr},
      {"resnet_out_scale_factor", 1},
      {"resnet_skip_time_act", false},
      {"resnet_time_scale_shift", "default"},
      {"reverse_transformer_layers_per_block", nullptr},
      {"time_cond_proj_dim", nullptr},
      {"time_embedding_act_fn", nullptr},
      {"time_embedding_type", "positional"},
      {"timestep_post_act", nullptr},
  };
  return fields;
}

// Block type names -> has cross-attention; anything else is refused.
Result<std::vector<bool>> BlockKinds(const json& config, const std::string& key,
                                     const std::string& plain, const std::string& attention) {
  const auto it = config.find(key);
  if (it == config.end() || !it->is_array() || it->empty()) {
    return ConfigError(kComponent, key + " must be a non-empty list");
  }
  std::vector<bool> kinds;
  for (const auto& name : *it) {
    if (name == attention) {
      kinds.push_back(true);
    } else if (name == plain) {
      kinds.push_back(false);
    } else {
      return ConfigError(
          kComponent, key + " has " + name.dump() + " (only " + plain + " and " + attention + ")");
    }
  }
  return kinds;
}

// SDXL's added conditioning: addition_embed_type "text_time" with its two widths.
Status ReadAddedEmbedding(const json& config, UnetConfig& c) {
  const json type = config.value("addition_embed_type", json());
  if (type.is_null()) return Status::Ok();
  if (type != "text_time") {
    return ConfigError(kComponent, "addition_embed_type " + type.dump() + " (only text_time)");
  }
  const json time_dim = config.value("addition_time_embed_dim", json());
  const json input_dim = config.value("projection_class_embeddings_input_dim", json());
  if (!time_dim.is_number_integer() || !input_dim.is_number_integer() || time_dim <= 0 ||
      input_dim <= 6 * time_dim.get<int>() || input_dim > 1 << 20) {
    return ConfigError(kComponent,
                       "addition_embed_type text_time needs addition_time_embed_dim and a "
                       "larger projection_class_embeddings_input_dim");
  }
  c.added_time_dim = time_dim.get<int>();
  c.added_input_dim = input_dim.get<int>();
  return Status::Ok();
}

Status CheckOnlyCrossAttentionOff(const json& config) {
  const auto it = config.find("only_cross_attention");
  if (it == config.end() || it->is_null() || *it == false) return Status::Ok();
  if (it->is_array() &&
      std::all_of(it->begin(), it->end(), [](const json& v) { return v == false; }))
    return Status::Ok();
  return ConfigError(kComponent, "only_cross_attention is not supported");
}

Status ReadPerBlock(const json& config, UnetConfig& c) {
  const size_t n = c.block_out.size();
  struct Field {
    const char* key;
    int fallback;
    std::vector<int>* out;
  };
  for (const Field& f :
       {Field{"layers_per_block", 2, &c.layers}, Field{"attention_head_dim", 8, &c.heads},
        Field{"cross_attention_dim", 1280, &c.cross_dim},
        Field{"transformer_layers_per_block", 1, &c.transformer_layers}}) {
    auto values = PerBlockInts(config, f.key, f.fallback, n);
    if (!values) return ConfigError(kComponent, values.error().message);
    *f.out = std::move(*values);
  }
  return Status::Ok();
}

Result<UnetConfig> ParseConfig(const json& config) {
  if (!config.is_object()) return ConfigError(kComponent, "not a JSON object");
  if (auto s = CheckDefaults(config, kComponent, UnetDefaults()); !s) return s.error();
  if (auto s = CheckOnlyCrossAttentionOff(config); !s) return s.error();
  UnetConfig c;
  try {
    c.in_channels = config.value("in_channels", 4);
    c.out_channels = config.value("out_channels", 4);
    if (config.contains("sample_size") && config["sample_size"].is_number_integer()) {
      c.sample_size = config["sample_size"].get<int>();
    }
    c.block_out = config.value("block_out_channels", std::vector<int>{320, 640, 1280, 1280});
    c.groups = config.value("norm_num_groups", 32);
    c.eps = config.value("norm_eps", 1e-5);
    c.linear_projection = config.value("use_linear_projection", false);
    c.flip_sin_to_cos = config.value("flip_sin_to_cos", true);
    c.freq_shift = config.value("freq_shift", 0.0);
    const json dim = config.value("time_embedding_dim", json());
    c.time_embed_dim = dim.is_null() ? 0 : dim.get<int>();
  } catch (const json::exception& e) {
    return ConfigError(kComponent, e.what());
  }
  auto down = BlockKinds(config, "down_block_types", "DownBlock2D", "CrossAttnDownBlock2D");
  if (!down) return down.error();
  auto up = BlockKinds(config, "up_block_types", "UpBlock2D", "CrossAttnUpBlock2D");
  if (!up) return up.error();
  c.down_attention = *down;
  c.up_attention = *up;
  if (c.block_out.empty() || c.block_out.size() != c.down_attention.size() ||
      c.block_out.size() != c.up_attention.size()) {
    return ConfigError(kComponent,
                       "block_out_channels, down_block_types and up_block_types differ in length");
  }
  for (int ch : c.block_out) {
    if (ch < 1 || ch > 65536) return ConfigError(kComponent, "block_out_channels out of range");
  }
  if (c.in_channels < 1 || c.out_channels < 1 || c.groups < 1) {
    return ConfigError(kComponent, "in_channels, out_channels and norm_num_groups must be >= 1");
  }
  if (c.time_embed_dim == 0) c.time_embed_dim = 4 * c.block_out[0];
  if (auto s = ReadPerBlock(config, c); !s) return s.error();
  if (auto s = ReadAddedEmbedding(config, c); !s) return s.error();
  return c;
}

struct Block {
  std::vector<ResnetBlock2D> resnets;
  std::vector<Transformer2D> attentions;  // empty for DownBlock2D / UpBlock2D
  std::optional<Conv2d> resample;         // downsampler or upsampler conv
};

}  // namespace

struct Unet::Net {
  UnetConfig config;
  Linear time_1, time_2;
  std::optional<Linear> added_1, added_2;  // SDXL's add_embedding
  Conv2d conv_in, conv_out;
  std::vector<Block> down, up;
  ResnetBlock2D mid_first, mid_second;
  Transformer2D mid_attention;
  GroupNorm norm_out;

  void Load(WeightSource& w);
  Block LoadDown(WeightSource& w, size_t i) const;
  Block LoadUp(WeightSource& w, size_t i) const;
  torch::Tensor AddedEmbedding(const AddedConditions& added, torch::ScalarType type) const;
  Transformer2D LoadTransformer(WeightSource& w, const std::string& prefix, int channels,
                                size_t level) const {
    return Transformer2D::Load(w, prefix, channels, config.cross_dim[level], config.heads[level],
                               config.transformer_layers[level], config.groups,
                               config.linear_projection);
  }
};

Block Unet::Net::LoadDown(WeightSource& w, size_t i) const {
  const std::string prefix = "down_blocks." + std::to_string(i);
  const int out = config.block_out[i];
  int in = config.block_out[i == 0 ? 0 : i - 1];
  Block b;
  for (int j = 0; j < config.layers[i]; ++j, in = out) {
    const std::string name = "." + std::to_string(j);
    b.resnets.push_back(ResnetBlock2D::Load(w, prefix + ".resnets" + name, in, out,
                                            config.time_embed_dim, config.groups, config.eps));
    if (config.down_attention[i])
      b.attentions.push_back(LoadTransformer(w, prefix + ".attentions" + name, out, i));
  }
  if (i + 1 < config.block_out.size())
    b.resample = Conv2d::Load(w, prefix + ".downsamplers.0.conv", out, out, 3, 2);
  return b;
}

// Up block i mirrors down block n-1-i: it has one resnet more, and each resnet's input is the
// previous output concatenated with one skip connection from the down path.
Block Unet::Net::LoadUp(WeightSource& w, size_t i) const {
  const size_t n = config.block_out.size(), level = n - 1 - i;
  const std::string prefix = "up_blocks." + std::to_string(i);
  const int out = config.block_out[level];
  const int prev_out = config.block_out[i == 0 ? n - 1 : level + 1];
  const int skip_last = config.block_out[level == 0 ? 0 : level - 1];
  const int count = config.layers[level] + 1;
  Block b;
  for (int j = 0; j < count; ++j) {
    const std::string name = "." + std::to_string(j);
    const int in = (j == 0 ? prev_out : out) + (j == count - 1 ? skip_last : out);
    b.resnets.push_back(ResnetBlock2D::Load(w, prefix + ".resnets" + name, in, out,
                                            config.time_embed_dim, config.groups, config.eps));
    if (config.up_attention[i])
      b.attentions.push_back(LoadTransformer(w, prefix + ".attentions" + name, out, level));
  }
  if (i + 1 < n) b.resample = Conv2d::Load(w, prefix + ".upsamplers.0.conv", out, out, 3);
  return b;
}

void Unet::Net::Load(WeightSource& w) {
  const auto& c = config;
  const int base = c.block_out[0], top = c.block_out.back();
  time_1 = Linear::Load(w, "time_embedding.linear_1", base, c.time_embed_dim);
  time_2 = Linear::Load(w, "time_embedding.linear_2", c.time_embed_dim, c.time_embed_dim);
  if (c.added_time_dim > 0) {
    added_1 = Linear::Load(w, "add_embedding.linear_1", c.added_input_dim, c.time_embed_dim);
    added_2 = Linear::Load(w, "add_embedding.linear_2", c.time_embed_dim, c.time_embed_dim);
  }
  conv_in = Conv2d::Load(w, "conv_in", c.in_channels, base, 3);
  for (size_t i = 0; i < c.block_out.size(); ++i) down.push_back(LoadDown(w, i));
  mid_first =
      ResnetBlock2D::Load(w, "mid_block.resnets.0", top, top, c.time_embed_dim, c.groups, c.eps);
  mid_attention = LoadTransformer(w, "mid_block.attentions.0", top, c.block_out.size() - 1);
  mid_second =
      ResnetBlock2D::Load(w, "mid_block.resnets.1", top, top, c.time_embed_dim, c.groups, c.eps);
  for (size_t i = 0; i < c.block_out.size(); ++i) up.push_back(LoadUp(w, i));
  norm_out = GroupNorm::Load(w, "conv_norm_out", c.groups, base, c.eps);
  conv_out = Conv2d::Load(w, "conv_out", base, c.out_channels, 3);
}

Result<Unet> Unet::Create(const Component& component, torch::ScalarType compute,
                          WeightTargets* targets) {
  auto config = ParseConfig(component.config);
  if (!config) return config.error();
  auto net = std::make_shared<Net>();
  net->config = std::move(*config);
  WeightSource weights(component.weights, compute, targets);
  try {
    torch::NoGradGuard no_grad;
    net->Load(weights);
  } catch (const c10::Error& e) {  // e.g. an allocation failure while fusing projections
    return Error::Make(ErrorCode::kInternal, std::string("unet: ") + e.what_without_backtrace());
  }
  if (auto s = weights.Finish(); !s) return s.error();
  return Unet(std::move(net));
}

// diffusers' "text_time": the six size ids each embedded sinusoidally, after the pooled text
// embedding, through add_embedding; added to the time embedding.
torch::Tensor Unet::Net::AddedEmbedding(const AddedConditions& added,
                                        torch::ScalarType type) const {
  const auto& c = config;
  if (!added.text_embeds.defined() || !added.time_ids.defined() || added.time_ids.size(-1) != 6 ||
      added.text_embeds.size(-1) + 6 * c.added_time_dim != c.added_input_dim) {
    throw std::invalid_argument("Unet::Forward: this UNet needs pooled text [B, " +
                                std::to_string(c.added_input_dim - 6 * c.added_time_dim) +
                                "] and size ids [B, 6]");
  }
  const int64_t batch = added.time_ids.size(0);
  auto ids = TimestepEmbedding(added.time_ids.to(torch::kFloat).reshape({-1}), c.added_time_dim,
                               c.flip_sin_to_cos, c.freq_shift)
                 .reshape({batch, -1});
  auto input = torch::cat({added.text_embeds.to(torch::kFloat), ids}, -1).to(type);
  return added_2->Forward(SiluInPlace(added_1->Forward(input)));
}

torch::Tensor Unet::Forward(const torch::Tensor& sample, const torch::Tensor& timestep,
                            const torch::Tensor& context, const AddedConditions& added) const {
  c10::InferenceMode inference;
  const Net& n = *net_;
  const auto& c = n.config;
  const int64_t batch = sample.size(0);
  auto t = timestep.to(torch::kFloat).reshape({-1}).expand({batch});
  const auto type = n.conv_in.weight.scalar_type();  // the compute type Create was given
  auto temb = TimestepEmbedding(t, c.block_out[0], c.flip_sin_to_cos, c.freq_shift).to(type);
  temb = n.time_2.Forward(SiluInPlace(n.time_1.Forward(temb)));
  if (n.added_1) temb = temb + n.AddedEmbedding(added, type);
  const auto temb_silu = at::silu(temb);  // every resnet applies SiLU before its projection
  const auto ctx = context.to(type).contiguous();

  auto h = n.conv_in.Forward(sample.to(type).contiguous());
  std::vector<torch::Tensor> skips{h};
  for (const Block& b : n.down) {
    for (size_t j = 0; j < b.resnets.size(); ++j) {
      h = b.resnets[j].Forward(h, temb_silu);
      if (!b.attentions.empty()) h = b.attentions[j].Forward(h, ctx);
      skips.push_back(h);
    }
    if (b.resample) {
      h = b.resample->Forward(h);
      skips.push_back(h);
    }
  }
  h = n.mid_second.Forward(n.mid_attention.Forward(n.mid_first.Forward(h, temb_silu), ctx),
                           temb_silu);
  for (const Block& b : n.up) {
    for (size_t j = 0; j < b.resnets.size(); ++j) {
      h = b.resnets[j].Forward(torch::cat({h, skips.back()}, 1), temb_silu);
      skips.pop_back();
      if (!b.attentions.empty()) h = b.attentions[j].Forward(h, ctx);
    }
    if (b.resample) {
      // Nearest 2x, or to the next skip's size where the input was not a multiple of 2^levels.
      const auto& next = skips.back();
      h = b.resample->Forward(at::upsample_nearest2d(h, {next.size(2), next.size(3)}));
    }
  }
  return n.conv_out.Forward(SiluInPlace(n.norm_out.Forward(h))).to(torch::kFloat);
}

int Unet::InChannels() const { return net_->config.in_channels; }
int Unet::OutChannels() const { return net_->config.out_channels; }
int Unet::CrossAttentionDim() const { return net_->config.cross_dim[0]; }
int Unet::AddedTextDim() const {
  const auto& c = net_->config;
  return c.added_time_dim > 0 ? c.added_input_dim - 6 * c.added_time_dim : 0;
}
int Unet::SampleSize() const { return net_->config.sample_size; }
int Unet::SizeMultiple() const {
  return 1 << (static_cast<int>(net_->config.block_out.size()) - 1);
}

}  // namespace imagegen::sd
