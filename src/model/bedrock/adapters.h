// Request and response adapters for the image models on Amazon Bedrock, and each model's limits.
// Pure functions (no I/O), so unit tests check them against the documented shapes.
//
// Families and their InvokeModel bodies:
//   Titan Image Generator v1/v2, Nova Canvas: {"taskType":"TEXT_IMAGE","textToImageParams":{..},
//       "imageGenerationConfig":{numberOfImages, quality, cfgScale, height, width, seed}}
//       -> {"images":["<base64 PNG>",...], "error"?}
//     Edits (init_image set): with a mask, {"taskType":"INPAINTING","inPaintingParams":{image,
//       text, negativeText?, maskImage}}; without one, {"taskType":"IMAGE_VARIATION",
//       "imageVariationParams":{images:[image], text, negativeText?, similarityStrength}}; the
//       same imageGenerationConfig (INPAINTING's output has the image's size, so no width or
//       height there).
//   Stability (SD3.5 Large, Stable Image Core/Ultra): {"prompt","negative_prompt"?,
//       "aspect_ratio","seed","output_format":"png"} -> {"seeds","finish_reasons","images"};
//       one image per call, sizes chosen by aspect ratio.
//     Edits (image-to-image only; no Stability model on Bedrock takes a mask in this body):
//       SD3.5 Large {"mode":"image-to-image","image","strength","prompt",...}, Ultra {"image",
//       "strength","prompt",...}; no aspect_ratio (the output follows the image). Core is
//       text-to-image only.
#pragma once

#include <cstdint>
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
// How a Stability model takes an image to edit: SD3.5 Large wants "mode":"image-to-image"
// beside image and strength; Ultra takes image and strength alone; the others (Core) none.
enum class StabilityEdit { kNone, kImageToImageMode, kImageAndStrength };
StabilityEdit StabilityEditOf(const std::string& model_id);
// The limits of one model: its family's, with what that model can edit (Stability's differ per
// model: SD3.5 Large and Ultra do image-to-image without a mask, Core does not edit).
ModelLimits LimitsForModel(const std::string& model_id);

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
// it is called once per image with seed + index; Titan/Nova once with index 0). Stability reads
// seed 0 as "random"; the seed it chose comes back in the response (ParsedImages::seeds).
nlohmann::json BuildBody(Family family, const ValidRequest& request, int index);
// The edit inputs as Titan and Nova take them: the image as a base64 PNG scaled (nearest) to
// the requested size, and the mask the same size in their convention, pure black where the
// image may change and white where it is kept (imagegen's mask is white = repaint).
struct EditImages {
  std::string image;  // base64 PNG
  std::string mask;   // base64 PNG; empty without a mask
};
Result<EditImages> PrepareEditImages(const ValidRequest& request);
// The edit body for Titan or Nova (see the top of this file).
nlohmann::json BuildEditBody(Family family, const ValidRequest& request, const EditImages& images);
// The Stability edit body for image `index` (seed + index, as BuildBody) of `request`, with
// `image` the base64 PNG from PrepareEditImages. `kind` must not be kNone.
nlohmann::json BuildStabilityEditBody(StabilityEdit kind, const ValidRequest& request,
                                      const std::string& image, int index);
// IMAGE_VARIATION's similarityStrength for imagegen's strength (how far from the image):
// 1 - strength, within the 0.2..1.0 the models accept.
double SimilarityFor(double strength);

// How many InvokeModel calls `request` needs.
int CallsFor(Family family, const ValidRequest& request);

// What a 2xx response holds: base64 images and, where the model reports them (Stability's
// "seeds", numbers or strings), the seed each image was made with, in the same order. Seeds
// are empty when the model does not report them (Titan, Nova: the request's seed was used).
struct ParsedImages {
  std::vector<std::string> images;
  std::vector<int64_t> seeds;
};
// A response that reports a filtered or failed generation (Titan/Nova "error", Stability
// finish_reasons) becomes kContentRejected (filters) or kUpstreamUnavailable (anything else),
// with the model's own words.
Result<ParsedImages> ParseImages(Family family, const std::string& body);

// Where a model is served, for the models served in only some regions; nullptr when the table
// does not know the model (then nothing is refused). Cross-region inference profiles
// ("us.stability...") route across regions themselves and are not looked up.
const std::vector<std::string>* RegionsServing(const std::string& model_id);
// Why `model_id` cannot be invoked in `region` (a message naming IMAGEGEN_BEDROCK_REGION and
// the regions that serve it), or "" when it is, or may be, served there. A foundation-model or
// inference-profile ARN must also name `region` itself.
std::string RegionRefusal(const std::string& model_id, const std::string& region);
// Whether the model is sold through AWS Marketplace (third-party: Stability), which needs the
// account's one-time subscription before the first InvokeModel succeeds.
bool NeedsMarketplaceSubscription(const std::string& model_id);

}  // namespace imagegen::bedrock
