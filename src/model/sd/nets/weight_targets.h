// Where each diffusers weight ended up inside a built network, so that low-rank updates (LoRA,
// src/model/sd/lora) can be added to the weights in place and taken back again. A network
// records a weight here as it is made: the tensor it computes with (or the slice of a joined
// one, e.g. to_q inside the self-attention's q/k/v matrix) and the factor it folded in (the
// query maps carry the attention scale).
//
// An 8-bit matrix (q8_weight.h) is updated by expanding it: while changed, its layer computes
// with the expanded matrix plus the update (so a LoRA costs the dense size of the layers it
// touches); RestoreAll drops the expansion and the layer is 8-bit again.
//
// Not thread-safe: whoever changes weights must keep every forward pass out meanwhile
// (lora/lora_weights.h holds a lock for that).
#pragma once

#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

#include "core/error.h"
#include "model/sd/nets/q8_weight.h"

namespace imagegen::sd {

class WeightTargets {
 public:
  // Records (or replaces) where the weight named `key` (a diffusers state_dict name ending in
  // ".weight") lives: `weight` shares storage with what the network computes with, and holds
  // `factor` times the stored weight.
  void Set(const std::string& key, torch::Tensor weight, double factor = 1.0);
  // The same for rows [row_begin, row_begin + rows) of an 8-bit matrix.
  void SetQ8(const std::string& key, std::shared_ptr<Q8Weight> weight, int64_t row_begin,
             int64_t rows, double factor = 1.0);
  bool Has(const std::string& key) const { return targets_.count(key) > 0; }
  // Every recorded key, sorted.
  std::vector<std::string> Keys() const;
  // The weight's shape as stored (the shape a delta for it has).
  std::vector<int64_t> ShapeOf(const std::string& key) const;

  // weight += factor * delta, computed in float32 and rounded once to the weight's type; the
  // weight's loaded value is kept (once) so that RestoreAll can bring it back exactly.
  // kInvalidRequest for an unknown key or a delta with another number of elements.
  Status Add(const std::string& key, const torch::Tensor& delta);
  // Every weight Add changed gets its loaded value back; the kept copies are freed.
  void RestoreAll();
  // Weights changed since the last RestoreAll.
  size_t Changed() const { return changed_; }

 private:
  struct Target {
    torch::Tensor weight;          // a view of the network's tensor
    double factor = 1.0;           // weight == factor * stored
    torch::Tensor original;        // its loaded value, while changed
    std::shared_ptr<Q8Weight> q8;  // instead of `weight`: these rows of an 8-bit matrix
    int64_t row_begin = 0, rows = 0;
    bool changed = false;
  };
  // The tensor an update of `t` is written into (expanding an 8-bit matrix first).
  torch::Tensor Writable(Target& t);
  std::map<std::string, Target> targets_;
  size_t changed_ = 0;
};

}  // namespace imagegen::sd
