#include "model/sd/nets/weight_targets.h"

namespace imagegen::sd {

void WeightTargets::Set(const std::string& key, torch::Tensor weight, double factor) {
  Target t;
  t.weight = std::move(weight);
  t.factor = factor;
  targets_[key] = std::move(t);
}

void WeightTargets::SetQ8(const std::string& key, std::shared_ptr<Q8Weight> weight,
                          int64_t row_begin, int64_t rows, double factor) {
  Target t;
  t.factor = factor;
  t.q8 = std::move(weight);
  t.row_begin = row_begin;
  t.rows = rows;
  targets_[key] = std::move(t);
}

std::vector<std::string> WeightTargets::Keys() const {
  std::vector<std::string> keys;
  keys.reserve(targets_.size());
  for (const auto& entry : targets_) keys.push_back(entry.first);
  return keys;
}

std::vector<int64_t> WeightTargets::ShapeOf(const std::string& key) const {
  auto it = targets_.find(key);
  if (it == targets_.end()) return {};
  const Target& t = it->second;
  return t.q8 ? std::vector<int64_t>{t.rows, t.q8->cols()} : t.weight.sizes().vec();
}

torch::Tensor WeightTargets::Writable(Target& t) {
  if (!t.changed) ++changed_;
  t.changed = true;
  if (!t.q8) {
    if (!t.original.defined()) t.original = t.weight.clone();
    return t.weight;
  }
  if (!t.q8->dense.defined()) t.q8->dense = t.q8->Expand();
  return t.q8->dense.narrow(0, t.row_begin, t.rows);
}

Status WeightTargets::Add(const std::string& key, const torch::Tensor& delta) {
  auto it = targets_.find(key);
  if (it == targets_.end()) {
    return Error::Make(ErrorCode::kInvalidRequest, "no weight " + key + " to update");
  }
  Target& t = it->second;
  const int64_t count = t.q8 ? t.rows * t.q8->cols() : t.weight.numel();
  if (delta.numel() != count) {
    return Error::Make(ErrorCode::kInvalidRequest, "an update of " + std::to_string(delta.numel()) +
                                                       " values for " + key + ", which has " +
                                                       std::to_string(count));
  }
  torch::NoGradGuard no_grad;
  torch::Tensor weight = Writable(t);
  auto updated =
      weight.to(torch::kFloat) + delta.to(torch::kFloat).reshape(weight.sizes()) * t.factor;
  weight.copy_(updated);
  return Status::Ok();
}

void WeightTargets::RestoreAll() {
  torch::NoGradGuard no_grad;
  for (auto& entry : targets_) {
    Target& t = entry.second;
    if (!t.changed) continue;
    t.changed = false;
    if (t.q8) {
      t.q8->dense = torch::Tensor();
      continue;
    }
    t.weight.copy_(t.original);
    t.original = torch::Tensor();
  }
  changed_ = 0;
}

}  // namespace imagegen::sd
