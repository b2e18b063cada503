// The per-call context every generation runs under: a deadline, a cancel flag and a progress
// callback. Lives in core because every layer passes it down (doors set it, the pipeline and the
// models honour it).
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <optional>
#include <vector>

#include "core/error.h"

namespace imagegen {

using Clock = std::chrono::steady_clock;

// An intermediate picture of image `index` after `step` of `total`: 8-bit RGB, row-major, at
// whatever size the model finds cheap (doors scale or encode it as they need).
struct Preview {
  int index = 0;
  int step = 0, total = 0;
  int width = 0, height = 0;
  std::vector<uint8_t> rgb;
};

// A model must check ShouldStop() between steps and return kDeadlineExceeded / kCancelled
// promptly when it says so.
struct GenerateContext {
  Clock::time_point deadline = Clock::time_point::max();
  const std::atomic<bool>* cancelled = nullptr;          // may be null
  std::function<void(int step, int total)> on_progress;  // may be empty
  // Set by doors that show intermediate images (SSE partial images, job previews): a model that
  // can decode its state cheaply calls it at most every `preview_every` steps. May be empty.
  std::function<void(const Preview&)> on_preview;
  int preview_every = 0;

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

}  // namespace imagegen
