// A token-bucket rate limit per caller: each key (an API key's principal, or the client address
// where no keys are configured) holds up to `burst` tokens, refilled at `rate_per_s`; a request
// takes one or is refused with the time until the next token (Retry-After). The limit is that of
// one process: servers behind a load balancer, or Lambda sandboxes, each count on their own.
//
// Memory is bounded: at most `max_keys` buckets, the least recently used forgotten first (a
// forgotten key starts again with a full bucket). Thread-safe.
#pragma once

#include <cstddef>
#include <functional>
#include <list>
#include <mutex>
#include <string>
#include <unordered_map>

#include "core/context.h"

namespace imagegen {

struct RateLimitOptions {
  double rate_per_s = 0;  // tokens per second; 0: no limit
  int burst = 0;          // bucket size; 0: max(1, rate_per_s)
  size_t max_keys = 10000;
  std::function<Clock::time_point()> now;  // empty: Clock::now (tests step their own)
};

struct RateDecision {
  bool allowed = true;
  int retry_after_s = 0;  // refused: whole seconds until a token is back (at least 1)
};

class RateLimiter {
 public:
  explicit RateLimiter(RateLimitOptions options);
  bool enabled() const { return options_.rate_per_s > 0; }
  RateDecision Take(const std::string& key);
  size_t tracked_keys() const;

 private:
  struct Bucket {
    double tokens = 0;
    Clock::time_point refilled;
    std::list<std::string>::iterator lru;
  };

  RateLimitOptions options_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, Bucket> buckets_;  // GUARDED_BY(mu_)
  std::list<std::string> lru_;                       // most recent first; GUARDED_BY(mu_)
};

}  // namespace imagegen
