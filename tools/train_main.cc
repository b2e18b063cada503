// imagegen-train: trains the bundled model on synthetic scenes rendered on the fly.
// Reproducible from --seed: step s draws its scenes, captions, noise and timesteps from
// generators seeded by (seed, s) alone, so a run resumed from a checkpoint continues exactly
// as an uninterrupted one would. Every --ckpt-every steps it writes <out>/model.safetensors
// (EMA weights, usable by the engine at once), <out>/config.json and the resume state in
// <out>/ckpt/, each file atomically.
#include <ATen/CPUGeneratorImpl.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "model/local/local_model.h"
#include "model/local/network.h"
#include "model/local/synth.h"

namespace {

using imagegen::local::ModelConfig;
using imagegen::local::Network;
namespace synth = imagegen::synth;
namespace fs = std::filesystem;

struct Options {
  std::string out = "build-engine/train";
  int steps = 3000;
  int batch = 32;
  double lr = 1e-3;
  double ema = 0.999;
  double drop_prompt = 0.1;
  uint64_t seed = 1;
  int threads = 2;
  int ckpt_every = 100;
  double max_minutes = 0;  // stop (with a checkpoint) after this much wall time; 0 = no limit
  std::string channels = "32,64,96";
  bool word_context = false;
  double omit_colour = 0;  // probability of a caption without the shapes' colour word
  std::string t_sampling = "uniform";
  std::string init;  // a model directory to start from instead of random weights
  bool bench_only = false;
};

std::string Hms(double s) {
  int t = static_cast<int>(s);
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60);
  return buf;
}

bool WriteFileAtomic(const fs::path& path, const std::string& text) {
  fs::path tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    if (!out) return false;
  }
  fs::rename(tmp, path);
  return true;
}

// A batch for step `step`: images in [-1, 1] and token ids. Held-out scenes are never drawn.
void MakeBatch(const ModelConfig& config, const Options& o, int64_t step, torch::Tensor* images,
               torch::Tensor* tokens) {
  synth::Rng rng(o.seed * 0x100000001B3ULL + static_cast<uint64_t>(step) * 2654435761ULL);
  const int s = config.native_size;
  *images = torch::empty({o.batch, 3, s, s});
  *tokens = torch::empty({o.batch, config.max_tokens}, torch::kInt64);
  auto img_a = images->accessor<float, 4>();
  auto tok_a = tokens->accessor<int64_t, 2>();
  for (int b = 0; b < o.batch; ++b) {
    synth::Scene scene = synth::RandomScene(rng, /*held_out=*/false);
    std::string caption = synth::RandomCaption(scene, rng, /*full=*/false, nullptr);
    if (o.omit_colour > 0 && rng.UniformReal() < o.omit_colour) {
      caption = synth::WithoutShapeColour(caption, scene);
    }
    // Condition dropout teaches the unconditional prediction used by guidance.
    if (rng.UniformReal() < o.drop_prompt) caption.clear();
    imagegen::Image img = synth::Render(scene, s, &rng);
    for (int y = 0; y < s; ++y) {
      for (int x = 0; x < s; ++x) {
        const uint8_t* p = img.Pixel(x, y);
        for (int c = 0; c < 3; ++c) img_a[b][c][y][x] = p[c] / 127.5f - 1.0f;
      }
    }
    auto tok = imagegen::local::Tokenize(config, caption);
    if (!tok.unknown.empty()) {
      std::cerr << "caption has unknown word '" << tok.unknown[0] << "': " << caption << "\n";
      std::exit(1);
    }
    for (int i = 0; i < config.max_tokens; ++i) tok_a[b][i] = tok.ids[static_cast<size_t>(i)];
  }
}

// Training timesteps. "mid" spends half the batch around the middle of the schedule
// (t/T = sigmoid(N(0.4, 0.8)), median 0.6), where count, size and shape are decided; near
// t = 0 the flat-colour images are almost clean and the loss teaches little.
torch::Tensor SampleTimesteps(const Options& o, int timesteps, at::Generator& gen) {
  if (o.t_sampling == "uniform") return torch::randint(0, timesteps, {o.batch}, gen, torch::kInt64);
  auto uniform = torch::rand({o.batch}, gen);
  auto mid = torch::sigmoid(torch::randn({o.batch}, gen) * 0.8 + 0.4);
  auto pick_mid = torch::rand({o.batch}, gen) < 0.5;
  auto frac = torch::where(pick_mid, mid, uniform);
  return (frac * timesteps).to(torch::kInt64).clamp(0, timesteps - 1);
}

// Copies a model directory's weights (same architecture) into both networks.
bool InitFrom(const std::string& dir, Network& net, Network& ema) {
  auto file = imagegen::ReadSafetensors((fs::path(dir) / "model.safetensors").string());
  if (!file.ok()) {
    std::cerr << "--init: " << file.error().message << "\n";
    return false;
  }
  for (Network* n : {&net, &ema}) {
    auto st = imagegen::local::LoadWeights(**n, *file);
    if (!st.ok()) {
      std::cerr << "--init: " << st.error().message << "\n";
      return false;
    }
  }
  return true;
}

double LrAt(const Options& o, int64_t step) {
  const int64_t warmup = 100;
  if (step < warmup) return o.lr * static_cast<double>(step + 1) / warmup;
  double progress = static_cast<double>(step - warmup) / std::max<int64_t>(1, o.steps - warmup);
  return o.lr * (0.1 + 0.9 * 0.5 * (1 + std::cos(M_PI * std::min(1.0, progress))));
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"Train the bundled imagegen model on synthetic scenes (resumes from <out>/ckpt)."};
  app.add_option("--out", o.out, "Output directory (model.safetensors, config.json, ckpt/)");
  app.add_option("--steps", o.steps, "Total optimizer steps");
  app.add_option("--batch", o.batch, "Images per step");
  app.add_option("--lr", o.lr, "Peak learning rate (AdamW, warmup then cosine to 10%)");
  app.add_option("--ema", o.ema, "EMA decay of the shipped weights");
  app.add_option("--drop-prompt", o.drop_prompt, "Probability of training with an empty prompt");
  app.add_option("--seed", o.seed, "Seed for data, noise and initial weights");
  app.add_option("--threads", o.threads, "Torch intra-op threads");
  app.add_option("--ckpt-every", o.ckpt_every, "Checkpoint interval in steps");
  app.add_option("--max-minutes", o.max_minutes, "Stop after this many minutes (checkpointed)");
  app.add_option("--channels", o.channels, "UNet channels per level, e.g. 32,64,96");
  app.add_flag("--word-context", o.word_context,
               "The UNet also attends to plain word embeddings (config word_context)");
  app.add_option("--omit-colour", o.omit_colour,
                 "Probability of dropping the shapes' colour word from a caption");
  app.add_option("--t-sampling", o.t_sampling, "Training timesteps: uniform or mid")
      ->check(CLI::IsMember({"uniform", "mid"}));
  app.add_option("--init", o.init,
                 "Start from this model directory's weights (same architecture) on a fresh run");
  app.add_flag("--bench", o.bench_only, "Time 5 steps and exit");
  CLI11_PARSE(app, argc, argv);

  imagegen::SetEngineThreads(o.threads);
  ModelConfig config;
  config.vocab = synth::Vocabulary();
  config.native_size = synth::kNativeSize;
  config.word_context = o.word_context;
  config.channels.clear();
  {
    std::stringstream ss(o.channels);
    std::string part;
    while (std::getline(ss, part, ',')) config.channels.push_back(std::stoi(part));
  }
  torch::manual_seed(o.seed);
  Network net(config);
  Network ema(config);
  {
    torch::NoGradGuard g;
    auto src = net->parameters();
    auto dst = ema->parameters();
    for (size_t i = 0; i < src.size(); ++i) dst[i].copy_(src[i]);
  }
  const bool resuming = fs::exists(fs::path(o.out) / "ckpt" / "progress.json");
  if (!o.init.empty() && !resuming && !InitFrom(o.init, net, ema)) return 1;
  int64_t nparams = 0;
  for (auto& p : net->parameters()) nparams += p.numel();
  torch::optim::AdamW opt(net->parameters(),
                          torch::optim::AdamWOptions(o.lr).weight_decay(0.01).betas({0.9, 0.99}));

  fs::path out(o.out);
  fs::path ck = out / "ckpt";
  fs::create_directories(ck);
  int64_t step = 0;
  double elapsed_before = 0;
  if (fs::exists(ck / "progress.json")) {
    std::ifstream in(ck / "progress.json");
    nlohmann::json p = nlohmann::json::parse(in);
    step = p.at("step").get<int64_t>();
    elapsed_before = p.at("elapsed_s").get<double>();
    auto raw = imagegen::ReadSafetensors((ck / "raw.safetensors").string());
    auto emaf = imagegen::ReadSafetensors((out / "model.safetensors").string());
    if (!raw.ok() || !emaf.ok()) {
      std::cerr << "cannot resume: " << (raw.ok() ? emaf.error() : raw.error()).message << "\n";
      return 1;
    }
    auto s1 = imagegen::local::LoadWeights(*net, *raw);
    auto s2 = imagegen::local::LoadWeights(*ema, *emaf);
    if (!s1.ok() || !s2.ok()) {
      std::cerr << "cannot resume: " << (s1.ok() ? s2.error() : s1.error()).message << "\n";
      return 1;
    }
    torch::load(opt, (ck / "optimizer.pt").string());
    std::cerr << "resumed at step " << step << " (" << Hms(elapsed_before) << " trained)\n";
  }
  std::cerr << "model: " << nparams << " parameters, channels " << o.channels << ", batch "
            << o.batch << ", threads " << o.threads << "\n";

  const auto ab = imagegen::local::AlphaBar(config.timesteps);
  auto ab_t = torch::tensor(std::vector<float>(ab.begin(), ab.end()));
  // The starting model's own provenance, kept in the new config.json.
  nlohmann::json init_training = nullptr;
  if (!o.init.empty()) {
    std::ifstream in(fs::path(o.init) / "config.json");
    auto j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
    if (j.is_object() && j.contains("training")) init_training = j["training"];
  }
  const bool tty = isatty(2) != 0;
  auto start = std::chrono::steady_clock::now();
  auto since_start = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  const int64_t first_step = step;
  double loss_avg = 0;
  auto checkpoint = [&](int64_t at) {
    imagegen::local::ModelConfig cfg = config;
    cfg.json_extra = nlohmann::json{
        {"steps", at},
        {"batch", o.batch},
        {"seed", o.seed},
        {"lr", o.lr},
        {"ema", o.ema},
        {"threads", o.threads},
        {"word_context", o.word_context},
        {"omit_colour", o.omit_colour},
        {"t_sampling", o.t_sampling},
        {"init", o.init},
        {"init_training", init_training},
        {"train_seconds", elapsed_before + since_start()},
        {"images_seen",
         at * o.batch}}.dump();
    auto s1 = imagegen::WriteSafetensors((ck / "raw.safetensors").string(),
                                         imagegen::local::ToSafetensors(*net), {});
    auto s2 = imagegen::WriteSafetensors(
        (out / "model.safetensors").string(), imagegen::local::ToSafetensors(*ema),
        {{"format", "imagegen-local"}, {"step", std::to_string(at)}});
    torch::save(opt, (ck / "optimizer.pt.tmp").string());
    fs::rename(ck / "optimizer.pt.tmp", ck / "optimizer.pt");
    WriteFileAtomic(out / "config.json", cfg.ToJson());
    // progress.json last: it marks the checkpoint complete.
    WriteFileAtomic(
        ck / "progress.json",
        nlohmann::json{{"step", at}, {"elapsed_s", elapsed_before + since_start()}}.dump());
    if (!s1.ok() || !s2.ok()) std::cerr << "\ncheckpoint failed\n";
  };

  const int64_t total = o.bench_only ? step + 5 : o.steps;
  while (step < total) {
    torch::Tensor x0, tokens;
    MakeBatch(config, o, step, &x0, &tokens);
    auto gen = at::detail::createCPUGenerator(o.seed * 1000003ULL + static_cast<uint64_t>(step));
    auto noise = torch::randn(x0.sizes(), gen);
    auto t = SampleTimesteps(o, config.timesteps, gen);
    auto a = ab_t.index_select(0, t).view({-1, 1, 1, 1});
    auto xt = a.sqrt() * x0 + (1 - a).sqrt() * noise;
    auto v_target = a.sqrt() * noise - (1 - a).sqrt() * x0;
    for (auto& group : opt.param_groups()) group.options().set_lr(LrAt(o, step));
    auto pred = net->forward(xt, t.to(torch::kFloat32), tokens);
    auto loss = torch::mse_loss(pred, v_target);
    opt.zero_grad();
    loss.backward();
    torch::nn::utils::clip_grad_norm_(net->parameters(), 1.0);
    opt.step();
    {
      torch::NoGradGuard g;
      double d =
          std::min(o.ema, (1.0 + static_cast<double>(step)) / (10.0 + static_cast<double>(step)));
      auto src = net->parameters();
      auto dst = ema->parameters();
      for (size_t i = 0; i < src.size(); ++i) dst[i].mul_(d).add_(src[i], 1 - d);
    }
    ++step;
    double l = loss.item<double>();
    loss_avg = step - first_step == 1 ? l : 0.98 * loss_avg + 0.02 * l;
    double el = since_start();
    double ips = static_cast<double>((step - first_step) * o.batch) / el;
    double eta = el / static_cast<double>(step - first_step) * static_cast<double>(total - step);
    int bar = static_cast<int>(30 * step / std::max<int64_t>(1, total));
    char line[256];
    std::snprintf(line, sizeof(line),
                  "[%-30s] step %lld/%lld loss %.4f %.1f img/s elapsed %s left %s",
                  std::string(static_cast<size_t>(bar), '#').c_str(), static_cast<long long>(step),
                  static_cast<long long>(total), loss_avg, ips, Hms(elapsed_before + el).c_str(),
                  Hms(eta).c_str());
    if (tty) {
      std::cerr << "\r" << line << std::flush;
    } else if (step % 20 == 0 || step == total) {
      std::cerr << line << "\n";
    }
    bool out_of_time = o.max_minutes > 0 && el > o.max_minutes * 60;
    if (!o.bench_only && (step % o.ckpt_every == 0 || step == total || out_of_time))
      checkpoint(step);
    if (out_of_time) {
      std::cerr << "\nstopping at the time limit (step " << step << "); rerun to resume\n";
      break;
    }
  }
  if (tty) std::cerr << "\n";
  std::cerr << "done: " << Hms(elapsed_before + since_start()) << " total training time\n";
  return 0;
}
