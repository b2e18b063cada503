#include "model/local/local_model.h"

#include <c10/core/InferenceMode.h>
#include <dlfcn.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "image/png.h"
#include "model/local/network.h"
#include "model/local/safetensors.h"
#include "model/local/synth.h"

namespace imagegen {
namespace {

namespace fs = std::filesystem;
using local::ModelConfig;
using local::Network;

class LocalModel final : public ImageModel {
 public:
  LocalModel(ModelConfig config, Network net)
      : config_(std::move(config)),
        net_(std::move(net)),
        alpha_bar_(local::AlphaBar(config_.timesteps)) {
    net_->eval();
    const int n = config_.native_size;
    limits_.sizes.emplace_back(n, n);
    for (int s = 2 * n; s <= 512; s *= 2) limits_.sizes.emplace_back(s, s);
    limits_.max_prompt_chars = 300;
    limits_.max_negative_prompt_chars = 300;
    limits_.min_steps = 1;
    limits_.max_steps = 100;
    limits_.default_steps = config_.default_steps;
    limits_.min_guidance = 0.0;
    limits_.max_guidance = 20.0;
    limits_.default_guidance = config_.default_guidance;
    limits_.max_count = 4;
  }

  std::string Name() const override { return "local"; }
  const ModelLimits& Limits() const override { return limits_; }

  std::optional<int> KnownWordCount(const std::string& prompt) const override {
    const local::Tokens tokens = local::Tokenize(config_, prompt);
    return static_cast<int>(std::count_if(tokens.ids.begin() + 1, tokens.ids.end(),
                                          [](int64_t id) { return id != 0; }));
  }

  Result<ModelOutput> Generate(const ValidRequest& request, const GenerateContext& ctx) override {
    try {
      return GenerateImpl(request, ctx);
    } catch (const std::exception& e) {
      return Error::Make(ErrorCode::kInternal, std::string("local engine failed: ") + e.what());
    }
  }

 private:
  Result<ModelOutput> GenerateImpl(const ValidRequest& request, const GenerateContext& ctx) {
    c10::InferenceMode inference;
    ModelOutput output;
    const local::Tokens cond = local::Tokenize(config_, request.prompt);
    const local::Tokens uncond = local::Tokenize(config_, request.negative_prompt);
    for (const auto& w : cond.unknown) output.warnings.push_back("unknown word: \"" + w + "\"");
    for (const auto& w : uncond.unknown) {
      output.warnings.push_back("unknown word in negative prompt: \"" + w + "\"");
    }
    if (cond.truncated) {
      output.warnings.push_back("prompt truncated to its first " +
                                std::to_string(config_.max_tokens - 1) + " known words");
    }
    const int n = request.count;
    const int s = config_.native_size;
    const bool guided = request.guidance != 1.0;
    // Initial noise from our own PRNG so it is identical on every platform and in the
    // Python reference (bench/engine).
    auto x = torch::empty({n, 3, s, s});
    {
      float* p = x.data_ptr<float>();
      for (int i = 0; i < n; ++i) {
        synth::Rng rng(static_cast<uint64_t>(request.seed + i));
        for (int j = 0; j < 3 * s * s; ++j) *p++ = static_cast<float>(rng.Normal());
      }
    }
    auto tok_c = torch::tensor(cond.ids).view({1, -1}).expand({n, -1});
    auto tokens = tok_c;
    if (guided) {
      auto tok_u = torch::tensor(uncond.ids).view({1, -1}).expand({n, -1});
      tokens = torch::cat({tok_c, tok_u}, 0);
    }
    // The text encoder runs once per request, not once per step.
    auto ctx_emb = net_->text(tokens);
    auto mask = net_->text->KeyMask(tokens);
    const std::vector<int> ts = local::DdimTimesteps(config_.timesteps, request.steps);
    const int total = static_cast<int>(ts.size());
    for (int i = 0; i < total; ++i) {
      if (auto stop = ctx.ShouldStop()) return *stop;
      const int t = ts[static_cast<size_t>(i)];
      const double a = alpha_bar_[static_cast<size_t>(t)];
      const double a_prev = i + 1 < total ? alpha_bar_[static_cast<size_t>(ts[i + 1])] : 1.0;
      auto x_in = guided ? torch::cat({x, x}, 0) : x;
      auto t_in = torch::full({x_in.size(0)}, static_cast<float>(t));
      auto v = net_->unet(x_in, t_in, ctx_emb, mask);
      if (guided) {
        auto parts = v.chunk(2, 0);
        v = parts[1] + request.guidance * (parts[0] - parts[1]);
      }
      // v-prediction -> x0 and eps, then a deterministic DDIM (eta = 0) step.
      auto x0 = (std::sqrt(a) * x - std::sqrt(1 - a) * v).clamp(-1, 1);
      auto eps = (x - std::sqrt(a) * x0) / std::sqrt(1 - a);
      x = std::sqrt(a_prev) * x0 + std::sqrt(1 - a_prev) * eps;
      if (ctx.on_progress) ctx.on_progress(i + 1, total);
      if (WantsPreview(ctx, i + 1, total)) SendPreviews(x0, i + 1, total, ctx);
    }
    auto bytes = ToBytes(x);
    for (int i = 0; i < n; ++i) {
      Image native(s, s);
      std::memcpy(native.rgb.data(), bytes[i].data_ptr<uint8_t>(), native.rgb.size());
      // Documented upscaling step: nearest neighbour (each native pixel becomes a block), so
      // a larger size shows exactly what the model drew and invents no detail.
      output.images.push_back(request.width == s && request.height == s
                                  ? std::move(native)
                                  : ResizeNearest(native, request.width, request.height));
    }
    return output;
  }

  // [N, 3, s, s] in [-1, 1] -> [N, s, s, 3] uint8.
  static torch::Tensor ToBytes(const torch::Tensor& x) {
    auto bytes = ((x.clamp(-1, 1) + 1) * 127.5).round().clamp(0, 255).to(torch::kUInt8);
    return bytes.permute({0, 2, 3, 1}).contiguous();
  }

  static bool WantsPreview(const GenerateContext& ctx, int step, int total) {
    return ctx.on_preview && ctx.preview_every > 0 && step < total && step % ctx.preview_every == 0;
  }

  // The sampler's current estimate of the clean image (x0), at the native size: in pixel space
  // it needs no decoder, so a preview costs one conversion per image.
  void SendPreviews(const torch::Tensor& x0, int step, int total,
                    const GenerateContext& ctx) const {
    auto bytes = ToBytes(x0);
    const int s = config_.native_size;
    for (int i = 0; i < static_cast<int>(bytes.size(0)); ++i) {
      Preview preview{i, step, total, s, s, std::vector<uint8_t>(static_cast<size_t>(s) * s * 3)};
      std::memcpy(preview.rgb.data(), bytes[i].data_ptr<uint8_t>(), preview.rgb.size());
      ctx.on_preview(preview);
    }
  }

  const ModelConfig config_;
  Network net_;
  const std::vector<double> alpha_bar_;
  ModelLimits limits_;
};

}  // namespace

void SetEngineThreads(int threads) {
  // Looked up at run time: the reference BLAS has no such function.
  using SetThreads = void (*)(int);
  if (void* fn = dlsym(RTLD_DEFAULT, "openblas_set_num_threads")) {
    reinterpret_cast<SetThreads>(fn)(1);
  }
  if (threads > 0) torch::set_num_threads(threads);
}

Result<std::unique_ptr<ImageModel>> LoadLocalModel(const std::string& path, int threads) {
  fs::path weights = path;
  std::error_code ec;
  if (fs::is_directory(weights, ec)) weights /= "model.safetensors";
  fs::path config_path = weights.parent_path() / "config.json";
  std::ifstream in(config_path);
  if (!in) {
    return Error::Make(ErrorCode::kNotFound, "local model: cannot open " + config_path.string());
  }
  std::stringstream ss;
  ss << in.rdbuf();
  auto config = ModelConfig::FromJson(ss.str());
  if (!config.ok()) {
    Error e = config.error();
    e.message = config_path.string() + ": " + e.message;
    return e;
  }
  auto file = ReadSafetensors(weights.string());
  if (!file.ok()) return file.error();
  if (Status st = local::CheckConfigMatchesWeights(*config, *file); !st.ok()) {
    Error e = st.error();
    e.message = config_path.string() + ": " + e.message;
    return e;
  }
  try {
    SetEngineThreads(threads);
    Network net(*config);
    Status st = local::LoadWeights(*net, *file);
    if (!st.ok()) {
      Error e = st.error();
      e.message = weights.string() + ": " + e.message;
      return e;
    }
    return std::unique_ptr<ImageModel>(new LocalModel(std::move(config).value(), std::move(net)));
  } catch (const std::exception& e) {
    return Error::Make(ErrorCode::kInternal, std::string("local model: ") + e.what());
  }
}

std::string BundledModelPath(const std::string& name) {
  std::error_code ec;
  fs::path exe_dir = fs::read_symlink("/proc/self/exe", ec).parent_path();
  std::vector<fs::path> candidates;
  if (!ec) {
    candidates.push_back(exe_dir / ".." / "models" / name);
    candidates.push_back(exe_dir / "models" / name);
  }
  candidates.emplace_back("models/" + name);
  candidates.emplace_back("/usr/share/imagegen/models/" + name);
  for (const auto& c : candidates) {
    if (fs::is_directory(c, ec)) return fs::weakly_canonical(c, ec).string();
  }
  return candidates.back().string();
}

std::string DefaultLocalModelPath() { return BundledModelPath("local"); }

}  // namespace imagegen
