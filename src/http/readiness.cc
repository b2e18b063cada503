#include "http/readiness.h"

namespace imagegen {

Status StoreReadiness::Check(ObjectStore& store, const std::string& probe_key) {
  std::lock_guard<std::mutex> lock(mu_);
  if (checked_ && Clock::now() - *checked_ < interval_) return verdict_;
  verdict_ = store.Put(probe_key, "ready\n", "text/plain", {});
  if (verdict_.ok()) {
    // Read back too: ready means this service can both write and read where its images go.
    // (Other servers on the same store write the same bytes, so no content check.)
    if (auto read = store.Get(probe_key, nullptr); !read.ok()) verdict_ = read.error();
  }
  checked_ = Clock::now();
  return verdict_;
}

}  // namespace imagegen
