// imagegen-dataset: writes samples of the synthetic captioned dataset for inspection
// (the trainer renders the same distribution in-process and never reads these files).
// Output: <out>/NNNNN.png and <out>/captions.jsonl ({"file", "caption", scene attributes}).
#include <CLI/CLI.hpp>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "image/png.h"
#include "model/local/synth.h"

int main(int argc, char** argv) {
  namespace synth = imagegen::synth;
  CLI::App app{"Write synthetic captioned images (PNG + captions.jsonl)."};
  std::string out = "dataset";
  int count = 64, size = synth::kNativeSize;
  uint64_t seed = 1;
  bool held_out = false;
  app.add_option("--out", out, "Output directory");
  app.add_option("--count", count, "Number of images");
  app.add_option("--size", size, "Image size (nearest-neighbour upscaled from 32)");
  app.add_option("--seed", seed, "Seed");
  app.add_flag("--held-out", held_out, "Draw only held-out colour x shape combinations");
  CLI11_PARSE(app, argc, argv);
  std::filesystem::create_directories(out);
  std::ofstream index(out + "/captions.jsonl");
  synth::Rng rng(seed);
  for (int i = 0; i < count; ++i) {
    synth::Scene scene = synth::RandomScene(rng, held_out);
    synth::Mentioned m;
    std::string caption = synth::RandomCaption(scene, rng, /*full=*/false, &m);
    imagegen::Image img = synth::Render(scene, synth::kNativeSize, &rng);
    if (size != synth::kNativeSize) img = imagegen::ResizeNearest(img, size, size);
    char name[32];
    std::snprintf(name, sizeof(name), "%05d.png", i);
    auto png = imagegen::EncodePng(img, {{"caption", caption}});
    if (!png.ok()) {
      std::cerr << png.error().message << "\n";
      return 1;
    }
    std::ofstream(out + "/" + name, std::ios::binary) << *png;
    index << nlohmann::json{{"file", name},
                            {"caption", caption},
                            {"colour", synth::ColourName(scene.colour)},
                            {"shape", synth::ShapeName(scene.shape)},
                            {"count", scene.count},
                            {"position", synth::PositionName(scene.position)},
                            {"size", synth::SizeName(scene.size)},
                            {"background", synth::ColourName(scene.background)},
                            {"held_out", synth::IsHeldOut(scene)}}
                 .dump()
          << "\n";
  }
  std::cerr << "wrote " << count << " images to " << out << "\n";
  return 0;
}
