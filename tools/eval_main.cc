// imagegen-eval: the rule-based prompt-adherence checker.
//  --ground-truth N   validates the checker on N rendered dataset images (train + held-out
//                     scenes, all native and upscaled sizes); it must be near-perfect.
//  --model PATH       generates images for the held-out prompts (every held-out colour x shape
//                     pair, --prompts-per-pair scenes each, --seeds seeds each) and prints the
//                     per-attribute adherence table in markdown.
//                     --draw N picks another set of prompts and noise seeds: draw 0 is the one
//                     settings and checkpoints are chosen on; a fresh draw is an estimate that
//                     no choice has seen.
//  --image FILE --prompt TEXT  checks one PNG against one prompt.
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>

#include "image/png.h"
#include "model/local/local_model.h"
#include "model/local/synth.h"

namespace {

namespace synth = imagegen::synth;

struct Tally {
  std::map<std::string, std::pair<int, int>> by_attr;  // name -> (correct, checked)
  int all_ok = 0, total = 0;

  void Add(const synth::Verdict& v) {
    auto add = [&](const char* name, const std::optional<bool>& r) {
      if (!r.has_value()) return;
      auto& [ok, n] = by_attr[name];
      ok += *r ? 1 : 0;
      ++n;
    };
    add("colour", v.colour);
    add("shape", v.shape);
    add("count", v.count);
    add("position", v.position);
    add("size", v.size);
    add("background", v.background);
    all_ok += v.All() ? 1 : 0;
    ++total;
  }
  static std::string Pct(int ok, int n) {
    char buf[64];
    std::snprintf(buf, sizeof(buf), "%.1f%% (%d/%d)", n ? 100.0 * ok / n : 0.0, ok, n);
    return buf;
  }
  void PrintRow(const std::string& label) const {
    std::cout << "| " << label;
    for (const char* a : {"colour", "shape", "count", "position", "size", "background"}) {
      auto it = by_attr.find(a);
      std::cout << " | " << (it == by_attr.end() ? "-" : Pct(it->second.first, it->second.second));
    }
    std::cout << " | " << Pct(all_ok, total) << " |\n";
  }
  static void PrintHeader(const std::string& first) {
    std::cout << "| " << first
              << " | colour | shape | count | position | size | background | overall |\n"
              << "|---|---|---|---|---|---|---|---|\n";
  }
};

std::string Describe(const synth::Reading& r) {
  std::ostringstream os;
  os << "colour " << (r.colour ? synth::ColourName(*r.colour) : "-") << ", shape "
     << (r.shape ? synth::ShapeName(*r.shape) : "-") << ", count " << r.count << ", position "
     << (r.position ? synth::PositionName(*r.position) : "-") << ", size "
     << (r.size ? synth::SizeName(*r.size) : "-") << ", background "
     << synth::ColourName(r.background);
  return os.str();
}

int GroundTruth(int n, uint64_t seed) {
  synth::Rng rng(seed);
  Tally tally;
  std::map<int, Tally> by_size;
  int shown = 0;
  for (int i = 0; i < n; ++i) {
    synth::Scene scene = synth::RandomScene(rng, /*held_out=*/i % 4 == 0);
    std::string caption = synth::RandomCaption(scene, rng, /*full=*/true, nullptr);
    int size = synth::kNativeSize << (i % 3 == 0 ? rng.Uniform(5) : 0);
    imagegen::Image img = synth::Render(scene, synth::kNativeSize, &rng);
    if (size != synth::kNativeSize) img = imagegen::ResizeNearest(img, size, size);
    auto parsed = synth::ParseCaption(caption);
    // The caption parser is part of what is validated: it must recover the scene.
    bool parse_ok = parsed.colour == scene.colour && parsed.shape == scene.shape &&
                    parsed.count == scene.count && parsed.position == scene.position &&
                    parsed.size == scene.size && parsed.background == scene.background;
    synth::Reading reading = synth::Check(img);
    synth::Verdict v = synth::Judge(parsed, reading);
    if ((!v.All() || !parse_ok) && shown++ < 10) {
      std::cerr << "miss" << (parse_ok ? "" : " (caption parse)") << ": " << caption << " @" << size
                << " -> " << Describe(reading) << "\n";
    }
    tally.Add(v);
    by_size[size].Add(v);
  }
  std::cout << "Checker on " << n << " ground-truth images (seed " << seed << "):\n\n";
  Tally::PrintHeader("size");
  for (auto& [s, t] : by_size) t.PrintRow(std::to_string(s) + "x" + std::to_string(s));
  tally.PrintRow("all");
  return tally.total == tally.all_ok ? 0 : (tally.all_ok * 100 >= tally.total * 99 ? 0 : 1);
}

struct EvalOptions {
  int threads = 1, seeds = 4, per_pair = 8, steps = 0, draw = 0;
  double guidance = -1;
  bool train_split = false;
  bool natural = false;  // captions leave attributes unstated as often as in training
  std::string save_dir;
};

int EvalModel(const std::string& path, const EvalOptions& o) {
  auto model = imagegen::LoadLocalModel(path, o.threads);
  if (!model.ok()) {
    std::cerr << model.error().message << "\n";
    return 1;
  }
  if (!o.save_dir.empty()) std::filesystem::create_directories(o.save_dir);
  const auto& limits = (*model)->Limits();
  Tally total;
  std::map<std::string, Tally> by_pair;
  synth::Rng rng((o.train_split ? 777 : 2024) + 7919 * static_cast<uint64_t>(o.draw));
  auto start = std::chrono::steady_clock::now();
  std::vector<std::pair<synth::Colour, synth::Shape>> pairs = synth::HeldOutPairs();
  if (o.train_split) {
    pairs = {{synth::Colour::kRed, synth::Shape::kCircle},
             {synth::Colour::kBlue, synth::Shape::kSquare},
             {synth::Colour::kYellow, synth::Shape::kCircle},
             {synth::Colour::kBlack, synth::Shape::kTriangle},
             {synth::Colour::kPurple, synth::Shape::kTriangle}};
  }
  int index = 0;
  for (const auto& [colour, shape] : pairs) {
    std::string pair_name =
        std::string(synth::ColourName(colour)) + " " + std::string(synth::ShapeName(shape));
    for (int k = 0; k < o.per_pair; ++k) {
      synth::Scene scene;
      do {
        scene = synth::RandomScene(rng, /*held_out=*/false);
        scene.colour = colour;
        scene.shape = shape;
      } while (!synth::IsValidScene(scene));
      std::string prompt = synth::RandomCaption(scene, rng, /*full=*/!o.natural, nullptr);
      auto expected = synth::ParseCaption(prompt);
      imagegen::ValidRequest req;
      req.prompt = prompt;
      req.width = req.height = limits.sizes.front().first;
      // Prompt k of a draw uses seeds 1000k + 100·draw + (0..seeds-1): disjoint across draws.
      req.seed = 1000 * index++ + 100 * o.draw;
      req.steps = o.steps > 0 ? o.steps : limits.default_steps;
      req.guidance = o.guidance >= 0 ? o.guidance : limits.default_guidance;
      req.count = o.seeds;  // image i uses seed + i
      auto out = (*model)->Generate(req, imagegen::GenerateContext{});
      if (!out.ok()) {
        std::cerr << out.error().message << "\n";
        return 1;
      }
      for (int i = 0; i < o.seeds; ++i) {
        const auto& img = out->images[static_cast<size_t>(i)];
        synth::Verdict v = synth::Judge(expected, synth::Check(img));
        total.Add(v);
        by_pair[pair_name].Add(v);
        if (!o.save_dir.empty()) {
          auto png =
              imagegen::EncodePng(imagegen::ResizeNearest(img, 128, 128), {{"prompt", prompt}});
          std::string name = o.save_dir + "/" + std::to_string(index) + "_" + std::to_string(i) +
                             (v.All() ? "_ok" : "_miss") + ".png";
          if (png.ok()) std::ofstream(name, std::ios::binary) << *png;
          if (i == 0)
            std::ofstream(o.save_dir + "/prompts.txt", std::ios::app)
                << name << "\t" << prompt << "\n";
        }
      }
    }
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cout << "Prompt adherence on " << (o.train_split ? "training-distribution" : "held-out")
            << " combinations (draw " << o.draw << (o.natural ? ", natural captions" : "")
            << "): " << pairs.size() << " colour x shape pairs x " << o.per_pair << " prompts x "
            << o.seeds << " seeds = " << total.total << " images, "
            << (o.steps > 0 ? o.steps : limits.default_steps) << " DDIM steps, guidance "
            << (o.guidance >= 0 ? o.guidance : limits.default_guidance) << " ("
            << static_cast<int>(secs) << " s)\n\n";
  Tally::PrintHeader("pair");
  for (auto& [name, t] : by_pair) t.PrintRow(name);
  total.PrintRow("**all**");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Rule-based prompt-adherence checker for the local model."};
  int ground_truth = 0;
  uint64_t seed = 7;
  std::string model_path;
  EvalOptions o;
  std::string image_path, prompt;
  app.add_option("--ground-truth", ground_truth, "Validate the checker on N dataset images");
  app.add_option("--seed", seed, "Seed for --ground-truth scenes");
  app.add_option("--model", model_path, "Model directory or .safetensors to evaluate");
  app.add_option("--threads", o.threads, "Torch threads for generation");
  app.add_option("--seeds", o.seeds, "Seeds per prompt")->check(CLI::Range(1, 99));
  app.add_option("--prompts-per-pair", o.per_pair, "Prompts per held-out colour x shape pair");
  app.add_option("--steps", o.steps, "Sampler steps (default: the model's)");
  app.add_option("--guidance", o.guidance, "Guidance scale (default: the model's)");
  app.add_option("--draw", o.draw, "Which set of prompts and noise seeds (0: the tuning set)")
      ->check(CLI::Range(0, 9));
  app.add_flag("--natural", o.natural,
               "Captions that leave size, position or background unstated, as in training");
  app.add_flag("--train-split", o.train_split, "Evaluate on training pairs instead of held-out");
  app.add_option("--save", o.save_dir, "Write the generated images (128x128 PNG) here");
  app.add_option("--image", image_path, "Check one PNG ...");
  app.add_option("--prompt", prompt, "... against this prompt");
  CLI11_PARSE(app, argc, argv);
  if (ground_truth > 0) return GroundTruth(ground_truth, seed);
  if (!model_path.empty()) {
    return EvalModel(model_path, o);
  }
  if (!image_path.empty()) {
    std::ifstream in(image_path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    auto img = imagegen::DecodePng(ss.str(), nullptr);
    if (!img.ok()) {
      std::cerr << img.error().message << "\n";
      return 1;
    }
    auto r = synth::Check(*img);
    std::cout << Describe(r) << "\n";
    if (!prompt.empty()) {
      bool ok = synth::Judge(synth::ParseCaption(prompt), r).All();
      std::cout << (ok ? "follows the prompt" : "does not follow the prompt") << "\n";
      return ok ? 0 : 1;
    }
    return 0;
  }
  std::cerr << app.help();
  return 2;
}
