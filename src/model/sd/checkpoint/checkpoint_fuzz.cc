// libFuzzer target for the checkpoint loader's parsing (-DIMAGEGEN_FUZZ=ON with the engine): the
// input is a safetensors or GGUF file (by its magic). Its header is parsed in place; when it
// parses, its names and shapes go through the single-file layout planner with a name hint taken
// from the metadata, and through the shape checks of each component kind against a config from the
// metadata ("config"). An input starting with '{' is a JSON shape map instead (see ShapesFromJson).
// Every path must end in a Result, never a crash, a hang or unbounded memory.
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "model/sd/checkpoint/gguf_view.h"
#include "model/sd/checkpoint/ldm_layout.h"
#include "model/sd/checkpoint/safetensors_view.h"

namespace {

using namespace imagegen::sd;

// A JSON object {name: [dims...]} as a shape map; false when it is not one. Real checkpoints
// are megabytes of data behind their header, too large for a fuzzer's inputs, so the planner
// is also driven from shapes alone (seeded with the tiny reference files' shape maps).
bool ShapesFromJson(std::string_view text, ShapeMap& shapes) {
  auto parsed = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded() || !parsed.is_object()) return false;
  for (const auto& [name, dims] : parsed.items()) {
    if (!dims.is_array()) return false;
    std::vector<int64_t>& shape = shapes[name];
    for (const auto& d : dims) {
      if (!d.is_number_integer()) return false;
      shape.push_back(d.get<int64_t>());
    }
  }
  return true;
}

void CheckPlan(const ShapeMap& shapes, const SingleFileHints& hints) {
  auto plan = PlanSingleFile(shapes, hints);
  if (!plan) return;
  // Every planned source must name a tensor of the file with room for its rows; a transposed
  // one (SDXL's projection) must be the file's matrix turned around.
  for (const ComponentPlan* part :
       {&plan->text_encoder, &plan->text_encoder_2, &plan->unet, &plan->vae}) {
    for (const auto& [name, source] : part->weights) {
      auto it = shapes.find(source.key);
      if (it == shapes.end()) __builtin_trap();
      if (source.row_count >= 0 &&
          (it->second.empty() || source.row_begin + source.row_count > it->second[0])) {
        __builtin_trap();
      }
      if (source.transposed &&
          (source.shape.size() != 2 ||
           std::vector<int64_t>(source.shape.rbegin(), source.shape.rend()) != it->second)) {
        __builtin_trap();
      }
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  if (!input.empty() && input[0] == '{') {
    ShapeMap shapes;
    if (ShapesFromJson(input, shapes)) CheckPlan(shapes, {"tiny-768-v-turbo", ""});
    return 0;
  }
  auto view = IsGguf(input) ? ParseGgufView(input) : ParseSafetensorsView(input);
  if (!view) return 0;
  for (const auto& [name, entry] : view->tensors) {
    // Every tensor's bytes are inside the input and exactly its shape's size.
    uint64_t count = 1;
    for (int64_t d : entry.shape) count *= static_cast<uint64_t>(d);
    if (entry.bytes.data() < input.data() ||
        entry.bytes.data() + entry.bytes.size() > input.data() + input.size() ||
        StoredByteSize(entry.dtype, count) != entry.bytes.size()) {
      __builtin_trap();
    }
  }
  ShapeMap shapes;
  for (const auto& [name, entry] : view->tensors) shapes[name] = entry.shape;
  SingleFileHints hints;
  if (auto it = view->metadata.find("name"); it != view->metadata.end())
    hints.file_stem = it->second;
  if (auto it = view->metadata.find("prediction"); it != view->metadata.end()) {
    hints.prediction_type = it->second;
  }
  CheckPlan(shapes, hints);
  if (auto it = view->metadata.find("config"); it != view->metadata.end()) {
    auto config = nlohmann::json::parse(it->second, nullptr, /*allow_exceptions=*/false);
    for (auto kind : {ComponentKind::kTextEncoder, ComponentKind::kUnet, ComponentKind::kVae}) {
      (void)CheckComponentShapes(kind, config, shapes);
    }
  }
  return 0;
}
