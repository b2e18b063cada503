// Request and response adapters for the image models on Amazon Bedrock, and each model's limits.
// Pure functions (no I/O), so unit tests check them against the documented shapes.
//
// Families and their InvokeModel bodies:
//   Titan Image Generator v1/v2, Nova Canvas: {"taskType":"TEXT_IMAGE","textToImageParams":{..},
//       "imageGenerationConfig":{numberOfImages, quality, cfgScale, height, width, seed}}
//       -> {"images":["<base64 PNG>",...], "error"?}
//   Stability (SD3.5 Large, Stable Image Core/Ultra): {"prompt","negative_prompt"?,
//       "aspect_ratio","seed","output_format":"png"} -> {"seeds","finish_reasons","images"};
//       one image per call, sizes chosen by aspect ratio.
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/request.h"

namespace imagegen::bedrock {

enum class Family { kTitan, kNovaCanvas, kStability, kUnknown };

// Families by model id; cross-region inference profile ids ("us.stability....") and
// foundation-model ARNs are recognised too.
Family FamilyOf(const std::string& model_id);
const char* FamilyName(Family family);

// The default when `bedrock:` names no model: active (not Legacy) as of Nov 2026, in us-west-2.
inline constexpr const char* kDefaultModelId = "stability.stable-image-core-v1:1";
// Named in the message of a legacy/end-of-life refusal.
inline constexpr const char* kActiveAlternatives =
    "stability.stable-image-core-v1:1, stability.sd3-5-large-v1:0, "
    "stability.stable-image-ultra-v1:1";
// Lifecycle facts per model (for messages and the README); "" when unknown.
std::string LifecycleNote(const std::string& model_id);

// Per-family limits for request validation (core/request.h).
ModelLimits LimitsFor(Family family);

// Nova Canvas's own size rule: each side 320..4096 and divisible by 16, aspect ratio within
// 1:4..4:1, fewer than 4,194,304 pixels. (LimitsFor lists the common sizes that satisfy it;
// validation works from that list.)
bool NovaSizeAllowed(int width, int height);
// Titan's 25 fixed (width, height) pairs, 1024x1024 first.
const std::vector<std::pair<int, int>>& TitanSizes();
// Stability's aspect ratios and the pixel size each produces, 1:1 first.
struct AspectSize {
  const char* ratio;
  int width, height;
};
const std::vector<AspectSize>& StabilityAspects();
// "16:9" for 1344x768 etc.; "" when the size is not one of StabilityAspects().
std::string StabilityAspectRatio(int width, int height);

// The InvokeModel body for image `index` of `request` (Stability makes one image per call, so
// it is called once per image with seed + index; Titan/Nova once with index 0).
nlohmann::json BuildBody(Family family, const ValidRequest& request, int index);
// How many InvokeModel calls `request` needs.
int CallsFor(Family family, const ValidRequest& request);

// The base64 images of a 2xx response. A response that reports a filtered or failed generation
// (Titan/Nova "error", Stability finish_reasons) becomes kContentRejected (filters) or
// kUpstreamUnavailable (anything else), with the model's own words.
Result<std::vector<std::string>> ParseImages(Family family, const std::string& body);

}  // namespace imagegen::bedrock
