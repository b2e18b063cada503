// The store half of GET /readyz: can this service write (and read back) where its images go?
#pragma once

#include <chrono>
#include <mutex>
#include <optional>
#include <string>

#include "core/context.h"
#include "core/error.h"
#include "store/object_store.h"

namespace imagegen {

// Writes a small probe object and reads it back, at most once per `interval`; calls in between
// get the cached verdict, so a load balancer polling /readyz does not turn into a write load.
// A write is the only honest check: a full disk or a read-only mount still serves reads.
// Overwriting one object (rather than create + delete) needs only PutObject + GetObject, the
// SAM stack's grant inside the key prefix. Thread-safe; concurrent callers share one probe.
class StoreReadiness {
 public:
  explicit StoreReadiness(std::chrono::milliseconds interval = std::chrono::seconds(3))
      : interval_(interval) {}
  // OK, or why the store is not usable (the store's own error, for the log).
  Status Check(ObjectStore& store, const std::string& probe_key);

 private:
  std::chrono::milliseconds interval_;
  std::mutex mu_;
  std::optional<Clock::time_point> checked_;  // GUARDED_BY(mu_)
  Status verdict_;                            // GUARDED_BY(mu_)
};

}  // namespace imagegen
