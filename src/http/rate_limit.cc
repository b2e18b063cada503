#include "http/rate_limit.h"

#include <algorithm>
#include <cmath>

namespace imagegen {

RateLimiter::RateLimiter(RateLimitOptions options) : options_(std::move(options)) {
  if (options_.burst <= 0) {
    options_.burst = std::max(1, static_cast<int>(std::ceil(options_.rate_per_s)));
  }
  options_.max_keys = std::max<size_t>(1, options_.max_keys);
}

size_t RateLimiter::tracked_keys() const {
  std::lock_guard<std::mutex> lock(mu_);
  return buckets_.size();
}

RateDecision RateLimiter::Take(const std::string& key) {
  if (!enabled()) return {};
  auto now = options_.now ? options_.now() : Clock::now();
  std::lock_guard<std::mutex> lock(mu_);
  auto it = buckets_.find(key);
  if (it == buckets_.end()) {
    if (buckets_.size() >= options_.max_keys) {
      buckets_.erase(lru_.back());
      lru_.pop_back();
    }
    lru_.push_front(key);
    it =
        buckets_.emplace(key, Bucket{static_cast<double>(options_.burst), now, lru_.begin()}).first;
  } else {
    lru_.splice(lru_.begin(), lru_, it->second.lru);
  }
  Bucket& bucket = it->second;
  double elapsed_s = std::chrono::duration<double>(now - bucket.refilled).count();
  if (elapsed_s > 0) {
    bucket.tokens =
        std::min<double>(options_.burst, bucket.tokens + elapsed_s * options_.rate_per_s);
    bucket.refilled = now;
  }
  if (bucket.tokens >= 1) {
    bucket.tokens -= 1;
    return {};
  }
  double wait_s = (1 - bucket.tokens) / options_.rate_per_s;
  return {false, std::max(1, static_cast<int>(std::ceil(wait_s)))};
}

}  // namespace imagegen
