// The AWS "standard" retry mode: bounded attempts, exponential backoff with full jitter, and a
// retry quota so that a failing dependency is not hammered by every caller at once.
#pragma once

#include <cstdint>
#include <mutex>

namespace imagegen::aws {

struct RetryOptions {
  int max_attempts = 0;            // first try included; 0: AWS_MAX_ATTEMPTS, else 3
  int64_t base_delay_ms = 1000;    // attempt i waits rand[0,1) * base * 2^(i-1) ...
  int64_t max_backoff_ms = 20000;  // ... but never more than this
  bool use_quota = true;
};

// Delay before retry number `retry` (1 = the first retry), given a uniform [0,1) sample.
int64_t BackoffDelayMs(const RetryOptions& options, int retry, double random01);

// The standard mode's token bucket: 500 tokens; a retry costs 5 (10 after a timeout); a
// success gives back what its retries took, or 1 when it needed none. An empty bucket means
// "fail now" instead of retrying. Thread-safe.
class RetryQuota {
 public:
  static constexpr int kCapacity = 500;
  static constexpr int kRetryCost = 5;
  static constexpr int kTimeoutRetryCost = 10;

  // Takes the cost of one retry; false (and nothing taken) when the bucket cannot pay.
  bool Acquire(bool timeout, int* taken);
  void Release(int taken_by_this_call);
  int available() const;

 private:
  mutable std::mutex mu_;
  int tokens_ = kCapacity;  // guarded by mu_
};

}  // namespace imagegen::aws
