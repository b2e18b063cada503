// ImageModel: the seam between the pipeline and whatever makes pixels
// (the embedded engine, Amazon Bedrock, an OpenAI-compatible server, the test model).
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/request.h"
#include "image/image.h"

namespace imagegen {

using Clock = std::chrono::steady_clock;

// Per-call context. A model must check ShouldStop() between steps and return
// kDeadlineExceeded / kCancelled promptly when it says so.
struct GenerateContext {
  Clock::time_point deadline = Clock::time_point::max();
  const std::atomic<bool>* cancelled = nullptr;          // may be null
  std::function<void(int step, int total)> on_progress;  // may be empty

  // nullopt: keep going; otherwise the error to return.
  std::optional<Error> ShouldStop() const {
    if (cancelled != nullptr && cancelled->load()) {
      return Error::Make(ErrorCode::kCancelled, "generation was cancelled");
    }
    if (Clock::now() >= deadline) {
      return Error::Make(ErrorCode::kDeadlineExceeded, "generation stopped at its deadline");
    }
    return std::nullopt;
  }
};

struct ModelOutput {
  std::vector<Image> images;          // request.count images of request.width x request.height
  std::vector<std::string> warnings;  // e.g. words the model does not know
  // The seed each image was made with, where the model knows better than request.seed + index
  // (Stability reports the seed it chose; seed 0 asks it for a random one). Empty: seed + index.
  std::vector<int64_t> seeds;
};

class ImageModel {
 public:
  virtual ~ImageModel() = default;
  // The model's identifier as reported in results, e.g. "local", "bedrock:amazon.nova-canvas-v1:0".
  virtual std::string Name() const = 0;
  virtual const ModelLimits& Limits() const = 0;
  // Thread-safe: may be called concurrently from several requests.
  virtual Result<ModelOutput> Generate(const ValidRequest& request, const GenerateContext& ctx) = 0;
};

}  // namespace imagegen
