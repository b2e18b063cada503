// The generation request, the per-model table of limits, and the one validation function.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"

namespace imagegen {

// What a caller asks for, as received from any door. Zero/empty means "use the model default".
struct GenerateRequest {
  std::string prompt;
  std::string negative_prompt;
  int width = 0;
  int height = 0;
  std::optional<int64_t> seed;  // 0..2147483647; random when absent, always reported
  int steps = 0;
  double guidance = 0;  // classifier-free guidance scale
  int count = 1;
  std::string model;   // empty: the server's configured model
  std::string job_id;  // names the output key; generated when empty
  // The namespace of job_id: the authenticated caller ("" without API keys), set by doors from
  // the credential, never read from a client's body. Another owner's ids are other names.
  std::string owner;
};

// One row of limits per model. Validation reads only this table.
struct ModelLimits {
  size_t max_prompt_chars = 512;
  size_t max_negative_prompt_chars = 512;
  std::vector<std::pair<int, int>> sizes;  // allowed (width, height); first is the default
  int min_steps = 1, max_steps = 100, default_steps = 30;
  double min_guidance = 0.0, max_guidance = 20.0, default_guidance = 7.5;
  int max_count = 4;
  int64_t max_seed = 2147483647;
};

// A request with every field resolved: defaults applied, seed chosen, limits checked.
struct ValidRequest {
  std::string prompt;
  std::string negative_prompt;
  int width = 0;
  int height = 0;
  int64_t seed = 0;
  int steps = 0;
  double guidance = 0;
  int count = 1;
  std::string model;
  std::string job_id;
  std::string owner;  // as GenerateRequest::owner
};

constexpr int64_t kMaxSeed = 2147483647;

// Checks `request` against `limits`, trims the prompt, applies defaults, and picks a random
// seed when none was given. Errors are kInvalidRequest with `field` set and a message that
// names the field and the allowed range.
Result<ValidRequest> Validate(const GenerateRequest& request, const ModelLimits& limits);

// Parses "WxH" (e.g. "512x512"). Returns nullopt when malformed.
std::optional<std::pair<int, int>> ParseSize(const std::string& text);

}  // namespace imagegen
