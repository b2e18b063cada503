#include "model/sd/nets/vae.h"

#include <algorithm>
#include <string>
#include <vector>

#include "model/sd/nets/blocks.h"
#include "model/sd/nets/config_fields.h"

namespace imagegen::sd {
namespace {

using nlohmann::json;

constexpr const char* kComponent = "vae";
constexpr double kEps = 1e-6;  // every norm in diffusers' Encoder and Decoder

struct VaeConfig {
  int in_channels = 3, out_channels = 3, latent_channels = 4, groups = 32, layers = 1;
  std::vector<int> block_out;
  double scaling_factor = 0.18215;
};

Status CheckBlockTypes(const json& config, const std::string& key, const std::string& name,
                       size_t count) {
  const auto it = config.find(key);
  if (it == config.end()) return Status::Ok();  // diffusers' default, repeated per level
  if (!it->is_array() || it->size() != count ||
      !std::all_of(it->begin(), it->end(), [&](const json& v) { return v == name; })) {
    return ConfigError(kComponent, key + " must list " + std::to_string(count) + " " + name);
  }
  return Status::Ok();
}

Result<VaeConfig> ParseConfig(const json& config) {
  if (!config.is_object()) return ConfigError(kComponent, "not a JSON object");
  const std::vector<RequiredDefault> defaults = {
      {"act_fn", "silu"}, {"latents_mean", nullptr}, {"latents_std", nullptr}};
  if (auto s = CheckDefaults(config, kComponent, defaults); !s) return s.error();
  VaeConfig c;
  try {
    c.in_channels = config.value("in_channels", 3);
    c.out_channels = config.value("out_channels", 3);
    c.latent_channels = config.value("latent_channels", 4);
    c.groups = config.value("norm_num_groups", 32);
    c.layers = config.value("layers_per_block", 1);
    c.block_out = config.value("block_out_channels", std::vector<int>{64});
    c.scaling_factor = config.value("scaling_factor", 0.18215);
  } catch (const json::exception& e) {
    return ConfigError(kComponent, e.what());
  }
  for (int v : {c.in_channels, c.out_channels, c.latent_channels, c.groups, c.layers}) {
    if (v < 1 || v > 65536)
      return ConfigError(kComponent, "a channel or layer count is out of range");
  }
  if (c.block_out.empty() || c.block_out.size() > 8) {
    return ConfigError(kComponent, "block_out_channels must list 1 to 8 levels");
  }
  for (int v : c.block_out) {
    if (v < 1 || v > 65536) return ConfigError(kComponent, "block_out_channels out of range");
  }
  const size_t n = c.block_out.size();
  if (auto s = CheckBlockTypes(config, "down_block_types", "DownEncoderBlock2D", n); !s)
    return s.error();
  if (auto s = CheckBlockTypes(config, "up_block_types", "UpDecoderBlock2D", n); !s)
    return s.error();
  return c;
}

struct Level {
  std::vector<ResnetBlock2D> resnets;
  std::optional<Conv2d> resample;
};

struct MidBlock {
  ResnetBlock2D first, second;
  SpatialSelfAttention attention;
  static MidBlock Load(WeightSource& w, const std::string& prefix, int channels, int groups) {
    MidBlock m;
    m.first = ResnetBlock2D::Load(w, prefix + ".resnets.0", channels, channels, 0, groups, kEps);
    m.attention = SpatialSelfAttention::Load(w, prefix + ".attentions.0", channels, groups, kEps);
    m.second = ResnetBlock2D::Load(w, prefix + ".resnets.1", channels, channels, 0, groups, kEps);
    return m;
  }
  torch::Tensor Forward(const torch::Tensor& x) const {
    const torch::Tensor none;
    return second.Forward(attention.Forward(first.Forward(x, none)), none);
  }
};

torch::Tensor RunResnets(const std::vector<ResnetBlock2D>& resnets, torch::Tensor h) {
  const torch::Tensor none;
  for (const auto& r : resnets) h = r.Forward(h, none);
  return h;
}

// Per-pixel blending weights along one axis of a tile: ramps up from the edge shared with a
// previous tile and down towards the edge shared with a next one.
torch::Tensor EdgeRamp(int64_t length, int64_t ramp, bool has_prev, bool has_next) {
  auto pos = torch::arange(length, torch::kFloat) + 0.5;
  auto w = torch::ones({length});
  if (has_prev) w = torch::minimum(w, pos / static_cast<double>(ramp));
  if (has_next) w = torch::minimum(w, (static_cast<double>(length) - pos) / ramp);
  return w;
}

// Tile origins covering [0, size): stride tile - overlap, the last one flush with the end.
std::vector<int64_t> TileStarts(int64_t size, int64_t tile, int64_t overlap) {
  std::vector<int64_t> starts;
  for (int64_t s = 0;; s += tile - overlap) {
    starts.push_back(std::max<int64_t>(0, std::min(s, size - tile)));
    if (s + tile >= size) break;
  }
  return starts;
}

}  // namespace

struct Vae::Net {
  VaeConfig config;
  // encoder
  Conv2d enc_conv_in, enc_conv_out, quant_conv;
  std::vector<Level> enc_levels;
  MidBlock enc_mid;
  GroupNorm enc_norm_out;
  // decoder
  Conv2d post_quant_conv, dec_conv_in, dec_conv_out;
  std::vector<Level> dec_levels;
  MidBlock dec_mid;
  GroupNorm dec_norm_out;

  void LoadEncoder(WeightSource& w);
  void LoadDecoder(WeightSource& w);
};

void Vae::Net::LoadEncoder(WeightSource& w) {
  const auto& c = config;
  const size_t n = c.block_out.size();
  enc_conv_in = Conv2d::Load(w, "encoder.conv_in", c.in_channels, c.block_out[0], 3);
  int in = c.block_out[0];
  for (size_t i = 0; i < n; ++i) {
    const std::string prefix = "encoder.down_blocks." + std::to_string(i);
    const int out = c.block_out[i];
    Level level;
    for (int j = 0; j < c.layers; ++j, in = out) {
      level.resnets.push_back(ResnetBlock2D::Load(w, prefix + ".resnets." + std::to_string(j), in,
                                                  out, 0, c.groups, kEps));
    }
    if (i + 1 < n) {
      level.resample = Conv2d::Load(w, prefix + ".downsamplers.0.conv", out, out, 3, 2);
      level.resample->padding = 0;  // padded asymmetrically (right, bottom) in Encode
    }
    enc_levels.push_back(std::move(level));
  }
  const int top = c.block_out.back();
  enc_mid = MidBlock::Load(w, "encoder.mid_block", top, c.groups);
  enc_norm_out = GroupNorm::Load(w, "encoder.conv_norm_out", c.groups, top, kEps);
  enc_conv_out = Conv2d::Load(w, "encoder.conv_out", top, 2 * c.latent_channels, 3);
  quant_conv = Conv2d::Load(w, "quant_conv", 2 * c.latent_channels, 2 * c.latent_channels, 1);
}

void Vae::Net::LoadDecoder(WeightSource& w) {
  const auto& c = config;
  const size_t n = c.block_out.size();
  const int top = c.block_out.back();
  post_quant_conv = Conv2d::Load(w, "post_quant_conv", c.latent_channels, c.latent_channels, 1);
  dec_conv_in = Conv2d::Load(w, "decoder.conv_in", c.latent_channels, top, 3);
  dec_mid = MidBlock::Load(w, "decoder.mid_block", top, c.groups);
  int in = top;
  for (size_t i = 0; i < n; ++i) {
    const std::string prefix = "decoder.up_blocks." + std::to_string(i);
    const int out = c.block_out[n - 1 - i];
    Level level;
    for (int j = 0; j < c.layers + 1; ++j, in = out) {
      level.resnets.push_back(ResnetBlock2D::Load(w, prefix + ".resnets." + std::to_string(j), in,
                                                  out, 0, c.groups, kEps));
    }
    if (i + 1 < n) level.resample = Conv2d::Load(w, prefix + ".upsamplers.0.conv", out, out, 3);
    dec_levels.push_back(std::move(level));
  }
  dec_norm_out = GroupNorm::Load(w, "decoder.conv_norm_out", c.groups, c.block_out[0], kEps);
  dec_conv_out = Conv2d::Load(w, "decoder.conv_out", c.block_out[0], c.out_channels, 3);
}

Result<Vae> Vae::Create(const Component& component, torch::ScalarType compute) {
  auto config = ParseConfig(component.config);
  if (!config) return config.error();
  auto net = std::make_shared<Net>();
  net->config = std::move(*config);
  WeightSource weights(component.weights, compute);
  try {
    torch::NoGradGuard no_grad;
    net->LoadEncoder(weights);
    net->LoadDecoder(weights);
  } catch (const c10::Error& e) {
    return Error::Make(ErrorCode::kInternal, std::string("vae: ") + e.what_without_backtrace());
  }
  if (auto s = weights.Finish(); !s) return s.error();
  return Vae(std::move(net));
}

torch::Tensor Vae::Encode(const torch::Tensor& images) const {
  return EncodeDistribution(images).mean;
}

Vae::Posterior Vae::EncodeDistribution(const torch::Tensor& images) const {
  c10::InferenceMode inference;
  const Net& n = *net_;
  auto h = n.enc_conv_in.Forward(images.to(n.enc_conv_in.weight.scalar_type()).contiguous());
  for (const Level& level : n.enc_levels) {
    h = RunResnets(level.resnets, h);
    if (level.resample) h = level.resample->Forward(at::constant_pad_nd(h, {0, 1, 0, 1}));
  }
  h = n.enc_mid.Forward(h);
  h = n.enc_conv_out.Forward(SiluInPlace(n.enc_norm_out.Forward(h)));
  auto moments = n.quant_conv.Forward(h).to(torch::kFloat);
  const int64_t c = n.config.latent_channels;
  // DiagonalGaussianDistribution: logvar clamped to [-30, 20], std = exp(logvar / 2).
  auto logvar = moments.narrow(1, c, c).clamp(-30.0, 20.0);
  return {moments.narrow(1, 0, c).contiguous(), at::exp(logvar * 0.5).contiguous()};
}

torch::Tensor Vae::Decode(const torch::Tensor& latents) const {
  c10::InferenceMode inference;
  const Net& n = *net_;
  auto h =
      n.post_quant_conv.Forward(latents.to(n.post_quant_conv.weight.scalar_type()).contiguous());
  h = n.dec_mid.Forward(n.dec_conv_in.Forward(h));
  for (const Level& level : n.dec_levels) {
    h = RunResnets(level.resnets, h);
    if (level.resample) {
      h = level.resample->Forward(at::upsample_nearest2d(h, {2 * h.size(2), 2 * h.size(3)}));
    }
  }
  return n.dec_conv_out.Forward(SiluInPlace(n.dec_norm_out.Forward(h))).to(torch::kFloat);
}

torch::Tensor Vae::DecodeTiled(const torch::Tensor& latents, int64_t tile, int64_t overlap) const {
  TORCH_CHECK(tile > 0 && overlap >= 0 && overlap < tile, "DecodeTiled: need 0 <= overlap < tile");
  const int64_t h = latents.size(2), w = latents.size(3);
  if (h <= tile && w <= tile) return Decode(latents);
  c10::InferenceMode inference;
  const int64_t f = DownscaleFactor(), ramp = std::max<int64_t>(1, overlap * f);
  const auto ys = TileStarts(h, tile, overlap), xs = TileStarts(w, tile, overlap);
  torch::Tensor sum, weight_sum = torch::zeros({h * f, w * f});
  for (size_t i = 0; i < ys.size(); ++i) {
    for (size_t j = 0; j < xs.size(); ++j) {
      const int64_t th = std::min(tile, h), tw = std::min(tile, w);
      auto piece = Decode(latents.narrow(2, ys[i], th).narrow(3, xs[j], tw));
      if (!sum.defined()) sum = torch::zeros({piece.size(0), piece.size(1), h * f, w * f});
      auto weight = EdgeRamp(th * f, ramp, i > 0, i + 1 < ys.size()).unsqueeze(1) *
                    EdgeRamp(tw * f, ramp, j > 0, j + 1 < xs.size()).unsqueeze(0);
      sum.narrow(2, ys[i] * f, th * f).narrow(3, xs[j] * f, tw * f).addcmul_(piece, weight);
      weight_sum.narrow(0, ys[i] * f, th * f).narrow(1, xs[j] * f, tw * f).add_(weight);
    }
  }
  return sum.div_(weight_sum);
}

double Vae::ScalingFactor() const { return net_->config.scaling_factor; }
int Vae::LatentChannels() const { return net_->config.latent_channels; }
int Vae::DownscaleFactor() const {
  return 1 << (static_cast<int>(net_->config.block_out.size()) - 1);
}

}  // namespace imagegen::sd
