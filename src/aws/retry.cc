#include "aws/retry.h"

#include <algorithm>
#include <cmath>

namespace imagegen::aws {

int64_t BackoffDelayMs(const RetryOptions& options, int retry, double random01) {
  retry = std::max(1, retry);
  random01 = std::clamp(random01, 0.0, 1.0);
  // Past 2^30 the cap has long been reached; avoid overflowing the shift.
  double ceiling =
      static_cast<double>(options.base_delay_ms) * std::ldexp(1.0, std::min(retry - 1, 30));
  double capped = std::min(ceiling, static_cast<double>(options.max_backoff_ms));
  return static_cast<int64_t>(random01 * capped);
}

bool RetryQuota::Acquire(bool timeout, int* taken) {
  int cost = timeout ? kTimeoutRetryCost : kRetryCost;
  std::lock_guard<std::mutex> lock(mu_);
  if (tokens_ < cost) return false;
  tokens_ -= cost;
  *taken += cost;
  return true;
}

void RetryQuota::Release(int taken_by_this_call) {
  std::lock_guard<std::mutex> lock(mu_);
  tokens_ = std::min(kCapacity, tokens_ + (taken_by_this_call > 0 ? taken_by_this_call : 1));
}

int RetryQuota::available() const {
  std::lock_guard<std::mutex> lock(mu_);
  return tokens_;
}

}  // namespace imagegen::aws
