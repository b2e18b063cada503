// LoRAs applied to a loaded checkpoint per request, the way A1111 does it: the wanted set
// (name, scale) is merged into the text encoders' and the UNet's weights in place — W +=
// scale * (alpha / rank) * up @ down, summed over the set, rounded once to the compute type —
// and taken back exactly (from kept copies of the changed weights) when a request wants
// another set. Requests with the same set run together; a request with another set waits for
// them to finish, switches, and runs. Switching costs one up @ down product per updated layer;
// a generation never sees weights half-switched.
//
// SDXL LoRAs update its second text encoder as well (lora_te2_, text_encoder_2.). A LoRA for
// another family is refused when first used: an SDXL LoRA on a model with one text encoder by
// its second encoder's layers (without them, by UNet layers or shapes that do not fit), an
// SD 1.x LoRA on SDXL by its UNet's.
//
// Files are found by name in one folder (`<dir>/<name>.safetensors`), read once and kept
// (their low-rank factors: small) until the file changes on disk.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <vector>

#include "core/error.h"
#include "model/sd/lora/lora_file.h"
#include "model/sd/nets/weight_targets.h"

namespace imagegen::sd {

struct LoraChoice {
  std::string name;  // the file's name in the folder, without ".safetensors"
  double scale = 1.0;
  bool operator==(const LoraChoice&) const = default;
};

class LoraWeights {
 public:
  // `dir`: the LoRA folder ("": none; asking for a LoRA is then an error). `text`, `unet`: the
  // built networks' weight targets, `text_2` SDXL's second text encoder's (null: none); they
  // must outlive this object.
  LoraWeights(std::filesystem::path dir, WeightTargets* text, WeightTargets* unet,
              WeightTargets* text_2 = nullptr)
      : dir_(std::move(dir)), text_(text), text_2_(text_2), unet_(unet) {}

  // A lease that holds the weights at the checkpoint's plus `choices` (empty: the checkpoint's
  // own) until it is dropped. kInvalidRequest (field "prompt") naming the LoRA for: no folder
  // configured, a name with a path in it, a file that is missing, unreadable or not a LoRA,
  // and a LoRA whose layers this model does not have (one made for another family).
  using Lease = std::shared_ptr<void>;
  Result<Lease> Use(const std::vector<LoraChoice>& choices);

 private:
  struct Update {
    WeightTargets* targets;
    std::string key;  // the weight's diffusers name
    const LoraLayer* layer;
  };
  // One file, read and matched to this model's weights.
  struct Loaded {
    LoraFile file;
    std::vector<Update> updates;
    std::filesystem::file_time_type mtime;
    uintmax_t size = 0;
  };

  Result<std::shared_ptr<const Loaded>> Load(const std::string& name);
  Result<std::shared_ptr<const Loaded>> Read(const std::string& name,
                                             const std::filesystem::path& path);
  Status Match(const std::string& name, Loaded& loaded) const;
  // Refuses layers for a second text encoder where this model has none (an SDXL LoRA).
  Status NeedsSecondEncoder(const std::string& name, const std::vector<LoraLayer>& layers) const;
  // Every network's targets that this model has.
  std::vector<WeightTargets*> AllTargets() const;
  struct Network {
    WeightTargets* targets;  // null: this model has no such network
    const char* what;        // for messages: "the UNet"
  };
  Network NetworkOf(LoraNetwork network) const;
  // Under the exclusive lock.
  Status Switch(const std::vector<LoraChoice>& choices,
                const std::vector<std::shared_ptr<const Loaded>>& loras);

  std::filesystem::path dir_;
  WeightTargets* text_;
  WeightTargets* text_2_;
  WeightTargets* unet_;
  std::shared_mutex weights_mutex_;  // shared: generating; exclusive: switching
  std::vector<LoraChoice> current_;
  std::mutex cache_mutex_;
  std::map<std::string, std::shared_ptr<const Loaded>> cache_;
};

}  // namespace imagegen::sd
