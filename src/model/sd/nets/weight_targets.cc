#include "model/sd/nets/weight_targets.h"

namespace imagegen::sd {

void WeightTargets::Set(const std::string& key, torch::Tensor weight, double factor) {
  targets_[key] = Target{std::move(weight), factor, {}};
}

std::vector<std::string> WeightTargets::Keys() const {
  std::vector<std::string> keys;
  keys.reserve(targets_.size());
  for (const auto& entry : targets_) keys.push_back(entry.first);
  return keys;
}

std::vector<int64_t> WeightTargets::ShapeOf(const std::string& key) const {
  auto it = targets_.find(key);
  return it == targets_.end() ? std::vector<int64_t>{} : it->second.weight.sizes().vec();
}

Status WeightTargets::Add(const std::string& key, const torch::Tensor& delta) {
  auto it = targets_.find(key);
  if (it == targets_.end()) {
    return Error::Make(ErrorCode::kInvalidRequest, "no weight " + key + " to update");
  }
  Target& t = it->second;
  if (delta.numel() != t.weight.numel()) {
    return Error::Make(ErrorCode::kInvalidRequest, "an update of " + std::to_string(delta.numel()) +
                                                       " values for " + key + ", which has " +
                                                       std::to_string(t.weight.numel()));
  }
  torch::NoGradGuard no_grad;
  if (!t.original.defined()) {
    t.original = t.weight.clone();
    ++changed_;
  }
  auto updated =
      t.weight.to(torch::kFloat) + delta.to(torch::kFloat).reshape(t.weight.sizes()) * t.factor;
  t.weight.copy_(updated);
  return Status::Ok();
}

void WeightTargets::RestoreAll() {
  torch::NoGradGuard no_grad;
  for (auto& entry : targets_) {
    Target& t = entry.second;
    if (!t.original.defined()) continue;
    t.weight.copy_(t.original);
    t.original = torch::Tensor();
  }
  changed_ = 0;
}

}  // namespace imagegen::sd
