// CloudWatch metrics through the Embedded Metric Format: one JSON object per line on stdout,
// which Lambda ships to CloudWatch Logs, where the metrics are extracted (no API call, no
// credentials, nothing on the invocation's critical path).
//
// Namespace "imagegen". Dimensions stay low-cardinality (each combination is a billed metric):
//   GenerationLatency (Milliseconds), ImagesGenerated (Count)   by [Model]
//   Errors (Count)                                               by [Model, Code] and [Model]
// Request ids and the like travel as plain properties (searchable in Logs Insights, not
// dimensions).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "model/image_model.h"

namespace imagegen::lambda {

inline constexpr const char* kEmfNamespace = "imagegen";

struct EmfMetric {
  std::string name;
  std::string unit;  // CloudWatch unit: "Milliseconds", "Count", ...
  double value = 0;
};

// One EMF document (no trailing newline). `dimension_sets` name members of `dimensions`.
std::string EmfLine(int64_t timestamp_ms,
                    const std::vector<std::vector<std::string>>& dimension_sets,
                    const std::map<std::string, std::string>& dimensions,
                    const std::vector<EmfMetric>& metrics,
                    const std::map<std::string, std::string>& properties);

// Writes EMF lines to a stream (stdout in Lambda), whole lines under a lock, flushed at once so
// a frozen or killed sandbox loses nothing already recorded. Thread-safe.
class EmfWriter {
 public:
  explicit EmfWriter(std::ostream* out, std::function<int64_t()> now_ms = {});

  void Generation(const std::string& model, double latency_ms, int images,
                  const std::map<std::string, std::string>& properties);
  void Failure(const std::string& model, const std::string& code,
               const std::map<std::string, std::string>& properties);

 private:
  void Write(const std::string& line);
  std::mutex mu_;
  std::ostream* out_;  // GUARDED_BY(mu_)
  std::function<int64_t()> now_ms_;
};

// An ImageModel decorator that writes each successful generation's latency and image count as
// EMF (the pipeline already keeps the same numbers in GlobalMetrics()). `properties` supplies
// per-invocation context (the request id) for the line. Errors are recorded by the door, which
// also sees the errors that never reach the model (validation, storage).
class MeteredModel final : public ModelDecorator {
 public:
  MeteredModel(std::shared_ptr<ImageModel> inner, std::shared_ptr<EmfWriter> emf,
               std::function<std::map<std::string, std::string>()> properties);
  Result<ModelOutput> Generate(const ValidRequest& request, const GenerateContext& ctx) override;

 private:
  std::shared_ptr<EmfWriter> emf_;
  std::function<std::map<std::string, std::string>()> properties_;
};

}  // namespace imagegen::lambda
