// imagegen-engine-bench: seconds per image and peak memory of the local engine at native size,
// the network's arithmetic per image, and the machine's measured peak matrix-multiply rate.
// Run by bench/engine/run.sh beside the PyTorch (Python) reference on the same weights.
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "model/local/local_model.h"
#include "model/local/network.h"

namespace {

// Floating-point operations (multiply + add = 2) of one UNet forward pass for one image.
double UnetFlops(const imagegen::local::ModelConfig& c) {
  const double s0 = c.native_size * c.native_size, s1 = s0 / 4, s2 = s0 / 16;
  const double c0 = c.channels[0], c1 = c.channels[1], c2 = c.channels[2];
  const double td = c.time_dim, d = c.text_dim;
  const double l = c.max_tokens * (c.word_context ? 2.0 : 1.0);  // context rows
  auto conv = [](double in, double out, double k, double hw) { return 2 * in * out * k * k * hw; };
  auto res = [&](double in, double out, double hw) {
    return conv(in, out, 3, hw) + conv(out, out, 3, hw) + (in != out ? conv(in, out, 1, hw) : 0) +
           2 * td * out;
  };
  auto xattn = [&](double ch, double hw) {
    return 2 * hw * ch * ch * 2 + 2 * l * d * ch * 2 + 2 * hw * l * ch * 2;
  };
  return 2 * td * td * 2 + conv(3, c0, 3, s0) + res(c0, c0, s0) + conv(c0, c0, 3, s1) +
         res(c0, c1, s1) + xattn(c1, s1) + conv(c1, c1, 3, s2) + res(c1, c2, s2) + xattn(c2, s2) +
         res(c2, c2, s2) + conv(c2, c1, 3, s1) + res(2 * c1, c1, s1) + xattn(c1, s1) +
         conv(c1, c0, 3, s0) + res(2 * c0, c0, s0) + conv(c0, 3, 3, s0);
}

// Best-of-5 rate of a 1024^3 float matrix multiply: the machine's practical peak.
double PeakGflops() {
  auto a = torch::randn({1024, 1024}), b = torch::randn({1024, 1024});
  double best = 0;
  for (int i = 0; i < 5; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    auto c = torch::matmul(a, b);
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, 2.0 * 1024 * 1024 * 1024 / s / 1e9);
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Benchmark the local engine."};
  std::string model_path = imagegen::DefaultLocalModelPath();
  std::string prompt = "a red circle on a blue background", out;
  int threads = 1, images = 4, steps = 0;
  int64_t seed = 1;
  double guidance = -1;
  app.add_option("--model", model_path, "Model directory");
  app.add_option("--prompt", prompt, "Prompt");
  app.add_option("--threads", threads, "Torch threads");
  app.add_option("--images", images, "Images to time (one request each)");
  app.add_option("--steps", steps, "Sampler steps (default: the model's)");
  app.add_option("--guidance", guidance, "Guidance (default: the model's)");
  app.add_option("--seed", seed, "Seed of the first image");
  app.add_option("--out", out, "Write the raw RGB bytes of all images here");
  CLI11_PARSE(app, argc, argv);

  auto model = imagegen::LoadLocalModel(model_path, threads);
  if (!model.ok()) {
    std::cerr << model.error().message << "\n";
    return 1;
  }
  std::ifstream cfg_in(model_path + "/config.json");
  std::stringstream ss;
  ss << cfg_in.rdbuf();
  auto config = imagegen::local::ModelConfig::FromJson(ss.str());
  const auto& limits = (*model)->Limits();
  imagegen::ValidRequest req;
  req.prompt = prompt;
  req.width = req.height = limits.sizes.front().first;
  req.steps = 2;
  req.guidance = guidance >= 0 ? guidance : limits.default_guidance;
  req.count = 1;
  req.seed = seed;
  (void)(*model)->Generate(req, {});  // warm-up: first-call allocations and kernel selection
  req.steps = steps > 0 ? steps : limits.default_steps;
  std::string pixels;
  double best = 1e30;
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < images; ++i) {
    req.seed = seed + i;
    auto ti = std::chrono::steady_clock::now();
    auto r = (*model)->Generate(req, {});
    best = std::min(best,
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - ti).count());
    if (!r.ok()) {
      std::cerr << r.error().message << "\n";
      return 1;
    }
    pixels.append(r->images[0].rgb.begin(), r->images[0].rgb.end());
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  double rss_mb = static_cast<double>(ru.ru_maxrss) / 1024.0;
  if (!out.empty()) std::ofstream(out, std::ios::binary) << pixels;
  const bool guided = req.guidance != 1.0;
  double flops = config.ok() ? UnetFlops(*config) * req.steps * (guided ? 2 : 1) : 0;
  double per_image = secs / images;
  double peak = PeakGflops();
  std::cout << nlohmann::json{{"impl", "cpp-libtorch"},
                              {"threads", threads},
                              {"steps", req.steps},
                              {"images", images},
                              {"seconds_per_image", per_image},
                              {"best_seconds_per_image", best},
                              {"peak_rss_mb", rss_mb},
                              {"gflop_per_image", flops / 1e9},
                              {"achieved_gflops", flops / best / 1e9},
                              {"matmul_peak_gflops", peak}}
                   .dump()
            << "\n";
  return 0;
}
