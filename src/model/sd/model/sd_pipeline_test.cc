// The Stable Diffusion pipeline's loop over small fake networks: what it feeds them (guidance
// batches, inpainting channels, timesteps), what it reports (progress, previews, seeds) and how
// it stops. Parity with diffusers' real networks is tests/integration/test_sd_pipeline.py's.
#include "model/sd/model/sd_pipeline.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "image/codec.h"

namespace imagegen::sd {
namespace {

// Deterministic stand-ins with the real shapes: a text "encoder" that embeds ids, a "UNet" whose
// output depends on the latents, the timestep and the context, and a "VAE" that scales by 8.
// They record what they were called with.
struct Calls {
  std::vector<int64_t> denoise_batches;
  std::vector<int64_t> denoise_channels;
  std::vector<float> timesteps;
  int encodes = 0, image_encodes = 0, decodes = 0;
};

class FakeNetworks final : public SdNetworks {
 public:
  FakeNetworks(Calls* calls, int in_channels) : calls_(calls), in_channels_(in_channels) {}
  TextStates EncodeText(const torch::Tensor& ids, const torch::Tensor&) const override {
    ++calls_->encodes;
    auto f = ids.to(torch::kFloat32).unsqueeze(2);  // [B, T, 1]
    return {torch::cat({torch::sin(f), torch::cos(f * 0.5)}, 2), torch::Tensor()};
  }
  torch::Tensor Denoise(const torch::Tensor& sample, const torch::Tensor& timestep,
                        const torch::Tensor& context, const torch::Tensor&,
                        const torch::Tensor&) const override {
    calls_->denoise_batches.push_back(sample.size(0));
    calls_->denoise_channels.push_back(sample.size(1));
    calls_->timesteps.push_back(timestep[0].item<float>());
    auto c = context.mean({1, 2}).view({-1, 1, 1, 1});
    auto x = sample.slice(1, 0, 4);
    return 0.1 * x + torch::sin(timestep.view({-1, 1, 1, 1}) / 100) * 0.3 + c;
  }
  int UnetInChannels() const override { return in_channels_; }
  torch::Tensor DecodeLatents(const torch::Tensor& latents, bool) const override {
    ++calls_->decodes;
    auto rgb = torch::tanh(latents.slice(1, 0, 3));
    return rgb.repeat_interleave(8, 2).repeat_interleave(8, 3);
  }
  torch::Tensor EncodeImage(const torch::Tensor& images, at::Generator& generator) const override {
    ++calls_->image_encodes;
    auto mean = torch::avg_pool2d(images, 8);
    mean = torch::cat({mean, mean.slice(1, 0, 1)}, 1);
    return mean + 0.01 * torch::randn(mean.sizes(), generator);
  }
  double VaeScalingFactor() const override { return 0.18215; }
  int VaeDownscaleFactor() const override { return 8; }

 private:
  Calls* calls_;
  int in_channels_;
};

ClipTokenizerFiles TinyVocabulary() {
  nlohmann::json vocab = nlohmann::json::object();
  int id = 0;
  for (std::string c : {"a", "c", "t", "d", "o", "g"}) vocab[c] = id++;
  for (std::string c : {"a", "c", "t", "d", "o", "g"}) vocab[c + "</w>"] = id++;
  for (std::string t : {"ca", "cat</w>", "do", "dog</w>"}) vocab[t] = id++;
  vocab["<|startoftext|>"] = id++;
  vocab["<|endoftext|>"] = id++;
  ClipTokenizerFiles files;
  files.vocab_json = vocab.dump();
  files.merges_txt = "#version: 0.2\nc a\nca t</w>\nd o\ndo g</w>\n";
  return files;
}

nlohmann::json Sd1Scheduler() {
  return {{"num_train_timesteps", 1000},
          {"beta_start", 0.00085},
          {"beta_end", 0.012},
          {"beta_schedule", "scaled_linear"},
          {"steps_offset", 1},
          {"timestep_spacing", "leading"},
          {"prediction_type", "epsilon"},
          {"set_alpha_to_one", false},
          {"clip_sample", false}};
}

std::unique_ptr<ImageModel> MakeModel(Calls* calls, SdFamily family = SdFamily::kSd1,
                                      int in_channels = 4) {
  SdModelSpec spec;
  spec.name = "sd:tiny";
  spec.family = family;
  auto tokenizer = ClipTokenizer::FromFiles(TinyVocabulary());
  EXPECT_TRUE(tokenizer.ok());
  spec.tokenizer = std::make_unique<ClipTokenizer>(std::move(tokenizer).value());
  spec.networks = std::make_unique<FakeNetworks>(calls, in_channels);
  spec.scheduler_config = Sd1Scheduler();
  auto model = MakeSdModel(std::move(spec));
  EXPECT_TRUE(model.ok()) << (model.ok() ? "" : model.error().message);
  return std::move(model).value();
}

ValidRequest Request(const ModelLimits& limits) {
  GenerateRequest raw;
  raw.prompt = "a cat";
  raw.width = 64 * 4;
  raw.height = 64 * 4;
  raw.steps = 3;
  raw.seed = 42;
  auto valid = Validate(raw, limits);
  EXPECT_TRUE(valid.ok()) << (valid.ok() ? "" : valid.error().message);
  return std::move(valid).value();
}

std::string Png(const Image& image) {
  auto encoded = EncodeImage(image, {}, ImageFormat::kPng, 90);
  EXPECT_TRUE(encoded.ok());
  return encoded->bytes;
}

TEST(SdLimits, FamiliesHaveTheirDefaults) {
  ModelLimits sd1 = SdLimits(SdFamily::kSd1);
  EXPECT_EQ(sd1.sizes.front(), std::make_pair(512, 512));
  EXPECT_EQ(sd1.samplers.front(), "dpmpp_2m_karras");
  EXPECT_EQ(sd1.default_steps, 25);
  EXPECT_DOUBLE_EQ(sd1.default_guidance, 7.5);
  EXPECT_EQ(sd1.samplers.size(), 6u);
  EXPECT_EQ(sd1.sizes.size(), 13u * 13u);
  EXPECT_TRUE(sd1.edits);
  EXPECT_EQ(SdLimits(SdFamily::kSd2V).sizes.front(), std::make_pair(768, 768));
  // A VAE of fewer levels (2x): the same latent sizes, in its pixels.
  ModelLimits small = SdLimits(SdFamily::kSd1, 2);
  EXPECT_EQ(small.sizes.front(), std::make_pair(128, 128));
  EXPECT_EQ(small.sizes[1], std::make_pair(64, 64));
  // A small model trained at 16x16 latents (a 4x VAE): 64x64 by default, 32..128 around it in
  // steps of 16 pixels (4 latent pixels, a multiple of its 3-level UNet's 4), then SD's grid.
  ModelLimits tiny = SdLimits(SdFamily::kSd1, 4, 16, 4);
  EXPECT_EQ(tiny.sizes.front(), std::make_pair(64, 64));
  EXPECT_EQ(tiny.sizes[1], std::make_pair(32, 32));
  EXPECT_NE(std::find(tiny.sizes.begin(), tiny.sizes.end(), std::make_pair(48, 112)),
            tiny.sizes.end());
  EXPECT_EQ(std::find(tiny.sizes.begin(), tiny.sizes.end(), std::make_pair(56, 56)),
            tiny.sizes.end());
  EXPECT_EQ(tiny.sizes.size(), 19u * 19u);  // 6 small sides + 13 of SD's grid
  EXPECT_EQ(SdLimits(SdFamily::kSd1, 8, 64, 8).sizes.size(), 13u * 13u);
  ModelLimits turbo = SdLimits(SdFamily::kSdTurbo);
  EXPECT_EQ(turbo.samplers.front(), "turbo");
  EXPECT_EQ(turbo.default_steps, 1);
  EXPECT_DOUBLE_EQ(turbo.default_guidance, 0);
}

TEST(SdPipeline, GuidanceRunsABatchOfTwoAndTurboOrLowGuidanceOne) {
  Calls calls;
  auto model = MakeModel(&calls);
  ValidRequest request = Request(model->Limits());
  request.guidance = 7.5;
  ASSERT_TRUE(model->Generate(request, {}).ok());
  EXPECT_EQ(calls.denoise_batches, (std::vector<int64_t>{2, 2, 2}));
  calls = {};
  request.guidance = 1.0;  // diffusers guides only above 1
  ASSERT_TRUE(model->Generate(request, {}).ok());
  EXPECT_EQ(calls.denoise_batches, (std::vector<int64_t>{1, 1, 1}));
  calls = {};
  request.guidance = 7.5;
  request.sampler = "turbo";
  ASSERT_TRUE(model->Generate(request, {}).ok());
  EXPECT_EQ(calls.denoise_batches, (std::vector<int64_t>{1, 1, 1}));
  // Trailing spacing at 3 steps: 999, 666, 332.
  EXPECT_EQ(calls.timesteps, (std::vector<float>{999, 666, 332}));
}

TEST(SdPipeline, SameSeedSameImageAndImageIUsesSeedPlusI) {
  Calls calls;
  auto model = MakeModel(&calls);
  ValidRequest request = Request(model->Limits());
  request.sampler = "euler_a";
  request.count = 2;
  auto two = model->Generate(request, {});
  ASSERT_TRUE(two.ok());
  ASSERT_EQ(two->images.size(), 2u);
  EXPECT_EQ(two->seeds, (std::vector<int64_t>{42, 43}));
  EXPECT_EQ(two->images[0].width, 256);
  EXPECT_NE(Png(two->images[0]), Png(two->images[1]));
  request.count = 1;
  request.seed = 43;
  auto one = model->Generate(request, {});
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(Png(one->images[0]), Png(two->images[1]));
}

TEST(SdPipeline, ReportsProgressAndPreviewsAndStopsWhenCancelled) {
  Calls calls;
  auto model = MakeModel(&calls);
  ValidRequest request = Request(model->Limits());
  request.steps = 5;
  std::vector<int> progress, previews;
  GenerateContext ctx;
  ctx.on_progress = [&](int step, int total) {
    EXPECT_EQ(total, 5);
    progress.push_back(step);
  };
  ctx.preview_every = 2;
  ctx.on_preview = [&](const Preview& p) {
    EXPECT_EQ(p.width, 32);  // latent resolution
    EXPECT_EQ(p.rgb.size(), 32u * 32u * 3u);
    previews.push_back(p.step);
  };
  ASSERT_TRUE(model->Generate(request, ctx).ok());
  EXPECT_EQ(progress, (std::vector<int>{1, 2, 3, 4, 5}));
  EXPECT_EQ(previews, (std::vector<int>{2, 4}));

  std::atomic<bool> cancelled{false};
  GenerateContext stop;
  stop.cancelled = &cancelled;
  stop.on_progress = [&](int step, int) {
    if (step == 2) cancelled = true;
  };
  calls = {};
  auto out = model->Generate(request, stop);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.error().code, ErrorCode::kCancelled);
  EXPECT_EQ(calls.denoise_batches.size(), 2u);
  EXPECT_EQ(calls.decodes, 0);
}

TEST(SdPipeline, ImageToImageRunsTheStrengthsShareOfSteps) {
  Calls calls;
  auto model = MakeModel(&calls);
  ValidRequest request = Request(model->Limits());
  request.steps = 10;
  request.sampler = "ddim";
  request.init_image = Png(Image(256, 256));
  request.strength = 0.5;
  auto out = model->Generate(request, {});
  ASSERT_TRUE(out.ok()) << out.error().message;
  EXPECT_EQ(calls.denoise_batches.size(), 5u);
  EXPECT_EQ(calls.timesteps.front(), 401);  // leading, offset 1: 901, 801, ... from the 6th
  EXPECT_EQ(calls.image_encodes, 1);
}

TEST(SdPipeline, InpaintingFeedsANineChannelUnetMaskAndMaskedImage) {
  Calls calls;
  auto model = MakeModel(&calls, SdFamily::kSd1, 9);
  ValidRequest request = Request(model->Limits());
  request.init_image = Png(Image(256, 256));
  Image mask(256, 256);
  std::fill(mask.rgb.begin(), mask.rgb.begin() + mask.rgb.size() / 2, 255);
  request.mask = Png(mask);
  request.strength = 1.0;
  ASSERT_TRUE(model->Generate(request, {}).ok());
  EXPECT_EQ(calls.denoise_channels, (std::vector<int64_t>{9, 9, 9}));
  EXPECT_EQ(calls.image_encodes, 1);  // the masked image only, at strength 1
}

TEST(SdPipeline, InpaintingWithoutAnInpaintingUnetKeepsTheUnmaskedRegion) {
  Calls calls;
  auto model = MakeModel(&calls);
  ValidRequest request = Request(model->Limits());
  Image source(256, 256);
  std::fill(source.rgb.begin(), source.rgb.end(), 200);
  request.init_image = Png(source);
  Image mask(256, 256);  // repaint the top half
  std::fill(mask.rgb.begin(), mask.rgb.begin() + mask.rgb.size() / 2, 255);
  request.mask = Png(mask);
  request.strength = 1.0;
  auto out = model->Generate(request, {});
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(calls.denoise_channels, (std::vector<int64_t>{4, 4, 4}));
  EXPECT_EQ(calls.image_encodes, 2);  // the source and the masked source, as diffusers does
  // The bottom half is the source's latents after the last step: the fake VAE's round trip of
  // grey 200 is tanh(200 / 127.5 - 1) (+- its 0.01 posterior noise), 193 in 8 bits; the top
  // half was repainted.
  const Image& image = out->images[0];
  int repainted = 0;
  for (int y = 0; y < 256; y += 4) {
    for (int x = 0; x < 256; x += 4) {
      const int v = image.Pixel(x, y)[0];
      if (y >= 128) {
        ASSERT_NEAR(v, 193, 3) << x << "," << y;
      } else if (std::abs(v - 193) > 3) {
        ++repainted;
      }
    }
  }
  EXPECT_GT(repainted, 0);
}

TEST(SdPipeline, BadInputsAreInvalidRequests) {
  Calls calls;
  auto model = MakeModel(&calls);
  ValidRequest request = Request(model->Limits());
  request.init_image = "not an image";
  auto out = model->Generate(request, {});
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.error().code, ErrorCode::kInvalidRequest);
  EXPECT_EQ(out.error().field, "init_image");

  SdModelSpec spec;
  spec.name = "sd:bad";
  spec.tokenizer =
      std::make_unique<ClipTokenizer>(ClipTokenizer::FromFiles(TinyVocabulary()).value());
  spec.networks = std::make_unique<FakeNetworks>(&calls, 4);
  spec.scheduler_config = Sd1Scheduler();
  spec.scheduler_config["beta_schedule"] = "squaredcos_cap_v2";
  auto bad = MakeSdModel(std::move(spec));
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, ErrorCode::kInvalidRequest);
}

}  // namespace
}  // namespace imagegen::sd
