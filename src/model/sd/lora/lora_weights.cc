#include "model/sd/lora/lora_weights.h"

#include <algorithm>
#include <cctype>

namespace imagegen::sd {
namespace {

namespace fs = std::filesystem;

// Files kept read at once; when full, one is dropped to make room.
constexpr size_t kCachedFiles = 16;

Error PromptError(const std::string& message) { return Error::Invalid("prompt", message); }

bool SafeName(const std::string& name) {
  if (name.empty() || name.size() > 200 || name.front() == '.') return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.' ||
           c == '+' || c == ' ';
  });
}

std::string Underscored(std::string s) {
  std::replace(s.begin(), s.end(), '.', '_');
  return s;
}

// The weight key each underscored module name (kohya's) stands for, over one network's keys.
std::map<std::string, std::string> UnderscoredKeys(const WeightTargets& targets) {
  std::map<std::string, std::string> keys;
  for (const auto& key : targets.Keys()) {
    if (key.ends_with(".weight")) keys[Underscored(key.substr(0, key.size() - 7))] = key;
  }
  return keys;
}

// Whether the update of `layer` has the out size and the number of elements of a weight shaped
// `shape` (a 1x1 kernel's update may be stored as a matrix, and the reverse).
bool Fits(const LoraLayer& layer, const std::vector<int64_t>& shape) {
  int64_t numel = 1;
  for (int64_t d : shape) numel *= d;
  const int64_t update_numel = layer.up.size(0) * layer.down.numel() / layer.down.size(0);
  return !shape.empty() && shape[0] == layer.up.size(0) && numel == update_numel;
}

}  // namespace

Result<LoraWeights::Lease> LoraWeights::Use(const std::vector<LoraChoice>& choices) {
  // Another request may switch to its own set between our switch and our shared lock; then we
  // switch again. Each pass lets some request run, so this ends.
  for (;;) {
    {
      std::shared_lock lock(weights_mutex_);
      if (current_ == choices) {
        return Lease(std::make_shared<std::shared_lock<std::shared_mutex>>(std::move(lock)));
      }
    }
    std::vector<std::shared_ptr<const Loaded>> loras;
    for (const auto& choice : choices) {
      auto loaded = Load(choice.name);
      if (!loaded) return loaded.error();
      loras.push_back(*loaded);
    }
    std::unique_lock lock(weights_mutex_);
    if (current_ == choices) continue;
    if (auto s = Switch(choices, loras); !s) return s.error();
  }
}

Status LoraWeights::Switch(const std::vector<LoraChoice>& choices,
                           const std::vector<std::shared_ptr<const Loaded>>& loras) {
  torch::NoGradGuard no_grad;
  const auto all = AllTargets();
  for (auto* targets : all) targets->RestoreAll();
  current_.clear();
  std::map<std::pair<WeightTargets*, std::string>, torch::Tensor> sums;
  for (size_t i = 0; i < choices.size(); ++i) {
    if (choices[i].scale == 0) continue;
    for (const auto& update : loras[i]->updates) {
      auto delta = update.layer->Delta() * choices[i].scale;
      auto [it, fresh] = sums.try_emplace({update.targets, update.key}, delta);
      if (!fresh) it->second += delta;
    }
  }
  for (const auto& [target, delta] : sums) {
    if (auto s = target.first->Add(target.second, delta); !s) {
      for (auto* targets : all) targets->RestoreAll();
      return s;
    }
  }
  current_ = choices;
  return Status::Ok();
}

Result<std::shared_ptr<const LoraWeights::Loaded>> LoraWeights::Load(const std::string& name) {
  if (dir_.empty()) {
    return PromptError("the prompt asks for LoRA \"" + name +
                       "\", but no LoRA folder is set (--lora-dir, IMAGEGEN_LORA_DIR)");
  }
  if (!SafeName(name)) {
    return PromptError("LoRA name \"" + name +
                       "\" is not a file name (letters, digits, space, _ - . +; no path)");
  }
  fs::path path = dir_ / (name.ends_with(".safetensors") ? name : name + ".safetensors");
  std::error_code ec;
  const auto mtime = fs::last_write_time(path, ec);
  if (ec) return PromptError("LoRA \"" + name + "\" is not in " + dir_.string());
  const auto size = fs::file_size(path, ec);
  {
    std::lock_guard lock(cache_mutex_);
    auto it = cache_.find(name);
    if (it != cache_.end() && it->second->mtime == mtime && it->second->size == size) {
      return it->second;
    }
  }
  auto loaded = Read(name, path);
  if (!loaded) return loaded.error();
  std::lock_guard lock(cache_mutex_);
  if (cache_.size() >= kCachedFiles && !cache_.count(name)) cache_.erase(cache_.begin());
  cache_[name] = *loaded;
  return loaded;
}

Result<std::shared_ptr<const LoraWeights::Loaded>> LoraWeights::Read(const std::string& name,
                                                                     const fs::path& path) {
  auto loaded = std::make_shared<Loaded>();
  std::error_code ec;
  loaded->mtime = fs::last_write_time(path, ec);
  loaded->size = fs::file_size(path, ec);
  auto file = ReadLoraFile(path);
  if (!file) return PromptError(file.error().message);
  loaded->file = std::move(file).value();
  if (auto s = Match(name, *loaded); !s) return s.error();
  return std::shared_ptr<const Loaded>(std::move(loaded));
}

Status LoraWeights::NeedsSecondEncoder(const std::string& name,
                                       const std::vector<LoraLayer>& layers) const {
  if (text_2_ != nullptr) return Status::Ok();
  auto second = std::find_if(layers.begin(), layers.end(), [](const LoraLayer& layer) {
    return layer.network == LoraNetwork::kTextEncoder2;
  });
  if (second == layers.end()) return Status::Ok();
  return PromptError("LoRA \"" + name + "\" is an SDXL LoRA (its layer " + second->prefix +
                     second->module +
                     " is for SDXL's second text encoder); this model has one text encoder");
}

std::vector<WeightTargets*> LoraWeights::AllTargets() const {
  std::vector<WeightTargets*> all = {text_, unet_};
  if (text_2_ != nullptr) all.push_back(text_2_);
  return all;
}

// Finds each layer's weight in this model and checks the update's shape against it.
Status LoraWeights::Match(const std::string& name, Loaded& loaded) const {
  const auto& layers = loaded.file.layers;
  // Said first: its other layers may fit the first encoder and the UNet, or fit in part.
  if (auto s = NeedsSecondEncoder(name, layers); !s) return s;
  std::map<const WeightTargets*, std::map<std::string, std::string>> underscored;
  for (const auto& layer : layers) {
    const Network network = NetworkOf(layer.network);
    std::string key = layer.module + ".weight";
    if (layer.underscored) {
      auto [keys, fresh] = underscored.try_emplace(network.targets);
      if (fresh) keys->second = UnderscoredKeys(*network.targets);
      auto it = keys->second.find(layer.module);
      key = it == keys->second.end() ? "" : it->second;
    }
    const std::string shown = layer.prefix + layer.module;
    if (key.empty() || !network.targets->Has(key)) {
      return PromptError("LoRA \"" + name + "\": its layer " + shown + " matches no weight of " +
                         network.what + " of this model (a LoRA for another model family?)");
    }
    if (!Fits(layer, network.targets->ShapeOf(key))) {
      return PromptError("LoRA \"" + name + "\": its layer " + shown +
                         " does not fit the shape of " + key + " (a LoRA for another model?)");
    }
    loaded.updates.push_back({network.targets, key, &layer});
  }
  return Status::Ok();
}

LoraWeights::Network LoraWeights::NetworkOf(LoraNetwork network) const {
  switch (network) {
    case LoraNetwork::kTextEncoder:
      return {text_, "the text encoder"};
    case LoraNetwork::kTextEncoder2:
      return {text_2_, "the second text encoder"};
    case LoraNetwork::kUnet:
      break;
  }
  return {unet_, "the UNet"};
}

}  // namespace imagegen::sd
