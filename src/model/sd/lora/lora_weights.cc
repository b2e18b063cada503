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
  text_->RestoreAll();
  unet_->RestoreAll();
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
      text_->RestoreAll();
      unet_->RestoreAll();
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

// Finds each layer's weight in this model and checks the update's shape against it.
Status LoraWeights::Match(const std::string& name, Loaded& loaded) const {
  const auto text_keys = UnderscoredKeys(*text_);
  const auto unet_keys = UnderscoredKeys(*unet_);
  for (const auto& layer : loaded.file.layers) {
    const bool text = layer.network == LoraNetwork::kTextEncoder;
    WeightTargets* targets = text ? text_ : unet_;
    const auto& by_underscore = text ? text_keys : unet_keys;
    std::string key = layer.module + ".weight";
    if (layer.underscored) {
      auto it = by_underscore.find(layer.module);
      key = it == by_underscore.end() ? "" : it->second;
    }
    const std::string shown =
        (layer.underscored ? (text ? "lora_te_" : "lora_unet_") : "") + layer.module;
    if (key.empty() || !targets->Has(key)) {
      return PromptError("LoRA \"" + name + "\": its layer " + shown + " matches no weight of " +
                         (text ? "the text encoder" : "the UNet") +
                         " of this model (a LoRA for another model family?)");
    }
    const auto shape = targets->ShapeOf(key);
    int64_t numel = 1;
    for (int64_t d : shape) numel *= d;
    const int64_t update_numel = layer.up.size(0) * layer.down.numel() / layer.down.size(0);
    if (shape.empty() || shape[0] != layer.up.size(0) || numel != update_numel) {
      return PromptError("LoRA \"" + name + "\": its layer " + shown +
                         " does not fit the shape of " + key + " (a LoRA for another model?)");
    }
    loaded.updates.push_back({targets, key, &layer});
  }
  return Status::Ok();
}

}  // namespace imagegen::sd
