// Stable Diffusion's autoencoder: diffusers' AutoencoderKL (DownEncoderBlock2D /
// UpDecoderBlock2D, mid-block self-attention, quant_conv / post_quant_conv), built from a
// Component (config.json + diffusers-named weights).
#pragma once

#include <torch/torch.h>

#include <memory>

#include "core/error.h"
#include "model/sd/nets/component.h"

namespace imagegen::sd {

class Vae {
 public:
  // kInvalidRequest naming the field or weight key when the config is not an AutoencoderKL
  // of these block types or the weights do not match it.
  // `compute` as for Unet::Create: kFloat or kBFloat16; inputs and outputs are float32.
  static Result<Vae> Create(const Component& component, torch::ScalarType compute = torch::kFloat);

  // latents [B, latent_channels, h, w], already divided by ScalingFactor() -> images
  // [B, out_channels, h * f, w * f] in about [-1, 1] (not clamped), f = DownscaleFactor().
  torch::Tensor Decode(const torch::Tensor& latents) const;
  // images [B, in_channels, H, W] in [-1, 1] -> the latent distribution's mean; the caller
  // multiplies by ScalingFactor().
  torch::Tensor Encode(const torch::Tensor& images) const;
  // The whole latent distribution (diffusers' DiagonalGaussianDistribution): mean and std, each
  // [B, latent_channels, H / f, W / f].
  struct Posterior {
    torch::Tensor mean, std;
  };
  Posterior EncodeDistribution(const torch::Tensor& images) const;
  // Decode in overlapping tiles of `tile` latent pixels, `overlap` of them shared between
  // neighbours and blended linearly, so memory is bounded by the tile and not the image.
  // The result differs from Decode near tile borders (each tile's group norms see only that
  // tile); test_sd_nets.py states the measured difference. 0 < overlap < tile.
  torch::Tensor DecodeTiled(const torch::Tensor& latents, int64_t tile, int64_t overlap) const;

  double ScalingFactor() const;
  int LatentChannels() const;
  int DownscaleFactor() const;  // image pixels per latent pixel (8 for SD)

 private:
  struct Net;  // the layers, in vae.cc
  explicit Vae(std::shared_ptr<const Net> net) : net_(std::move(net)) {}
  std::shared_ptr<const Net> net_;
};

}  // namespace imagegen::sd
