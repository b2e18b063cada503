#include "model/sd/lora/lora_file.h"

#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <tuple>

#include "model/sd/checkpoint/safetensors_view.h"

namespace imagegen::sd {
namespace {

namespace fs = std::filesystem;

enum class Part { kDown, kUp, kAlpha };

struct ParsedKey {
  LoraNetwork network = LoraNetwork::kUnet;
  std::string module;
  bool underscored = false;
  std::string prefix;
  Part part = Part::kDown;
};

bool StripPrefix(std::string& s, std::string_view prefix) {
  if (!s.starts_with(prefix)) return false;
  s.erase(0, prefix.size());
  return true;
}

bool StripSuffix(std::string& s, std::string_view suffix) {
  if (!s.ends_with(suffix)) return false;
  s.erase(s.size() - suffix.size());
  return true;
}

// The attention-processor names of early diffusers LoRAs ("attn1.processor.to_q_lora") and
// their text-encoder twins ("self_attn.to_q_lora") as the module they update.
std::string ProcessorModule(std::string module, LoraNetwork network) {
  struct Rename {
    const char* from;
    const char* unet;
    const char* text;
  };
  static const Rename kRenames[] = {{"to_q_lora", "to_q", "q_proj"},
                                    {"to_k_lora", "to_k", "k_proj"},
                                    {"to_v_lora", "to_v", "v_proj"},
                                    {"to_out_lora", "to_out.0", "out_proj"}};
  for (const auto& r : kRenames) {
    if (!StripSuffix(module, r.from)) continue;
    StripSuffix(module, "processor.");
    return module + (network == LoraNetwork::kUnet ? r.unet : r.text);
  }
  return {};
}

// kohya's prefix of `key` and the network it names, or none.
std::optional<std::pair<std::string_view, LoraNetwork>> KohyaPrefix(const std::string& key) {
  static const std::pair<std::string_view, LoraNetwork> kPrefixes[] = {
      {"lora_unet_", LoraNetwork::kUnet},
      {"lora_te_", LoraNetwork::kTextEncoder},
      {"lora_te1_", LoraNetwork::kTextEncoder},  // SDXL's first: the same CLIP as SD 1.x's
      {"lora_te2_", LoraNetwork::kTextEncoder2}};
  for (const auto& entry : kPrefixes) {
    if (key.starts_with(entry.first)) return entry;
  }
  return std::nullopt;
}

std::optional<ParsedKey> ParseKohyaKey(std::string key, std::string_view prefix,
                                       LoraNetwork network, std::string* why) {
  ParsedKey k;
  k.network = network;
  k.underscored = true;
  k.prefix = prefix;
  StripPrefix(key, prefix);
  if (StripSuffix(key, ".lora_down.weight")) {
    k.part = Part::kDown;
  } else if (StripSuffix(key, ".lora_up.weight")) {
    k.part = Part::kUp;
  } else if (StripSuffix(key, ".alpha")) {
    k.part = Part::kAlpha;
  } else {
    *why = "key not understood: " + std::string(prefix) + key;
    return std::nullopt;
  }
  k.module = key;
  return k;
}

// What the key of one tensor says, or an error message (empty optional + `why`).
std::optional<ParsedKey> ParseKey(std::string key, std::string* why) {
  ParsedKey k;
  if (key.find("hada_") != std::string::npos || key.find("lokr_") != std::string::npos) {
    *why = "LyCORIS LoHa/LoKr layers are not supported (only LoRA's down/up pairs): " + key;
    return std::nullopt;
  }
  if (auto kohya = KohyaPrefix(key)) return ParseKohyaKey(key, kohya->first, kohya->second, why);
  static const std::pair<std::string_view, LoraNetwork> kPrefixes[] = {
      {"text_encoder.", LoraNetwork::kTextEncoder},
      {"text_encoder_2.", LoraNetwork::kTextEncoder2},
      {"unet.", LoraNetwork::kUnet}};
  // The oldest files name the UNet's modules without a prefix: the UNet is what is left.
  for (const auto& [prefix, network] : kPrefixes) {
    if (!StripPrefix(key, prefix)) continue;
    k.network = network;
    k.prefix = prefix;
    break;
  }
  static const std::pair<const char*, Part> kSuffixes[] = {
      {".lora_A.weight", Part::kDown},
      {".lora_B.weight", Part::kUp},
      {".lora.down.weight", Part::kDown},
      {".lora.up.weight", Part::kUp},
      {".lora_linear_layer.down.weight", Part::kDown},
      {".lora_linear_layer.up.weight", Part::kUp},
      {".down.weight", Part::kDown},  // processor names: "...to_q_lora.down.weight"
      {".up.weight", Part::kUp},
      {".alpha", Part::kAlpha}};
  for (const auto& [suffix, part] : kSuffixes) {
    if (!StripSuffix(key, suffix)) continue;
    k.part = part;
    const bool bare =
        std::strcmp(suffix, ".down.weight") == 0 || std::strcmp(suffix, ".up.weight") == 0;
    if (key.ends_with("_lora")) {
      k.module = ProcessorModule(key, k.network);
    } else if (!bare) {
      k.module = key;
    }
    if (k.module.empty()) break;
    return k;
  }
  *why = "key not understood: " + key;
  return std::nullopt;
}

torch::ScalarType StoredType(const std::string& dtype) {
  if (dtype == "F32") return torch::kFloat;
  if (dtype == "F16") return torch::kHalf;
  if (dtype == "BF16") return torch::kBFloat16;
  if (dtype == "F64") return torch::kDouble;
  return torch::ScalarType::Undefined;
}

Result<torch::Tensor> ToFloat(const std::string& name, const TensorEntry& entry) {
  const auto type = StoredType(entry.dtype);
  if (type == torch::ScalarType::Undefined) {
    return Error::Make(ErrorCode::kInvalidRequest,
                       "tensor " + name + " has dtype " + entry.dtype + " (F32, F16, BF16, F64)");
  }
  torch::Tensor stored = torch::empty(entry.shape, torch::TensorOptions().dtype(type));
  if (!entry.bytes.empty()) std::memcpy(stored.data_ptr(), entry.bytes.data(), entry.bytes.size());
  return stored.to(torch::kFloat);
}

Status CheckShapes(const LoraLayer& layer, const std::string& name) {
  const auto& d = layer.down;
  const auto& u = layer.up;
  auto bad = [&](const std::string& what) {
    return Error::Make(ErrorCode::kInvalidRequest, "layer " + name + ": " + what);
  };
  if (!d.defined() || !u.defined()) return bad("a down matrix without its up, or the reverse");
  if ((d.dim() != 2 && d.dim() != 4) || u.dim() != d.dim()) {
    return bad("down and up must both be matrices or both 4-d kernels");
  }
  if (d.size(0) != u.size(1)) return bad("the down and up ranks differ");
  if (d.dim() == 4 && (u.size(2) != 1 || u.size(3) != 1)) return bad("the up kernel is not 1x1");
  return Status::Ok();
}

}  // namespace

torch::Tensor LoraLayer::Delta() const {
  const double rank = static_cast<double>(down.size(0));
  const double scale = alpha > 0 ? alpha / rank : 1.0;
  auto product = torch::mm(up.flatten(1), down.flatten(1)) * scale;
  auto shape = down.sizes().vec();
  shape[0] = up.size(0);
  return product.view(shape);
}

Result<LoraFile> ReadLoraFile(const fs::path& path) {
  auto invalid = [&](const std::string& why) {
    return Error::Make(ErrorCode::kInvalidRequest, "LoRA " + path.string() + ": " + why);
  };
  static const std::set<std::string> kPickled = {".pt", ".pth", ".ckpt", ".bin", ".pkl"};
  if (kPickled.count(path.extension().string())) {
    return invalid("pickled files are refused (unpickling runs code); convert it to .safetensors");
  }
  auto mapped = MappedFile::Open(path);
  if (!mapped) return mapped.error();
  auto view = ParseSafetensorsView(mapped->bytes());
  if (!view) return invalid(view.error().message);
  std::map<std::tuple<int, std::string, bool>, LoraLayer> layers;
  for (const auto& [name, entry] : view->tensors) {
    std::string why;
    auto key = ParseKey(name, &why);
    if (!key) return invalid(why);
    auto tensor = ToFloat(name, entry);
    if (!tensor) return invalid(tensor.error().message);
    LoraLayer& layer = layers[{static_cast<int>(key->network), key->module, key->underscored}];
    layer.network = key->network;
    layer.module = key->module;
    layer.underscored = key->underscored;
    layer.prefix = key->prefix;
    if (key->part == Part::kAlpha) {
      if (tensor->numel() != 1) return invalid("alpha " + name + " is not one number");
      layer.alpha = tensor->item<double>();
    } else {
      (key->part == Part::kDown ? layer.down : layer.up) = *tensor;
    }
  }
  LoraFile file;
  for (auto& [id, layer] : layers) {
    if (auto s = CheckShapes(layer, layer.module); !s) return invalid(s.error().message);
    file.layers.push_back(std::move(layer));
  }
  if (file.layers.empty()) return invalid("it holds no LoRA layers");
  return file;
}

}  // namespace imagegen::sd
