// libFuzzer target for the checkpoint loader's parsing (tests/fuzz/run.sh): the input is a
// safetensors file. Its header is parsed in place; when it parses, its names and shapes go
// through the single-file layout planner with a name hint taken from the metadata, and through
// the shape checks of each component kind against a config from the metadata ("config").
// Every path must end in a Result, never a crash, a hang or unbounded memory.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "model/sd/checkpoint/ldm_layout.h"
#include "model/sd/checkpoint/safetensors_view.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace imagegen::sd;
  auto view = ParseSafetensorsView(std::string_view(reinterpret_cast<const char*>(data), size));
  if (!view) return 0;
  ShapeMap shapes;
  for (const auto& [name, entry] : view->tensors) shapes[name] = entry.shape;
  SingleFileHints hints;
  if (auto it = view->metadata.find("name"); it != view->metadata.end())
    hints.file_stem = it->second;
  if (auto it = view->metadata.find("prediction"); it != view->metadata.end()) {
    hints.prediction_type = it->second;
  }
  auto plan = PlanSingleFile(shapes, hints);
  if (plan) {
    // Every planned source must name a tensor of the file with room for its rows.
    for (const ComponentPlan* part : {&plan->text_encoder, &plan->unet, &plan->vae}) {
      for (const auto& [name, source] : part->weights) {
        auto it = shapes.find(source.key);
        if (it == shapes.end()) __builtin_trap();
        if (source.row_count >= 0 &&
            (it->second.empty() || source.row_begin + source.row_count > it->second[0])) {
          __builtin_trap();
        }
      }
    }
  }
  if (auto it = view->metadata.find("config"); it != view->metadata.end()) {
    auto config = nlohmann::json::parse(it->second, nullptr, /*allow_exceptions=*/false);
    for (auto kind : {ComponentKind::kTextEncoder, ComponentKind::kUnet, ComponentKind::kVae}) {
      (void)CheckComponentShapes(kind, config, shapes);
    }
  }
  return 0;
}
