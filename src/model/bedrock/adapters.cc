#include "model/bedrock/adapters.h"

#include <algorithm>
#include <charconv>
#include <nlohmann/json.hpp>

#include "aws/encoding.h"
#include "core/strings.h"
#include "image/codec.h"
#include "image/png.h"

namespace imagegen::bedrock {
namespace {

using json = nlohmann::json;

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// "arn:aws:bedrock:us-west-2::foundation-model/amazon.nova-canvas-v1:0" -> "amazon.nova-...";
// "us.stability.sd3-5-large-v1:0" -> "stability.sd3-5-large-v1:0".
std::string BaseModelId(const std::string& model_id) {
  std::string id = model_id;
  size_t slash = id.rfind('/');
  if (id.rfind("arn:", 0) == 0 && slash != std::string::npos) id = id.substr(slash + 1);
  for (const char* geo : {"us.", "eu.", "apac.", "us-gov.", "global.", "jp.", "au.", "ca."}) {
    if (id.rfind(geo, 0) == 0) return id.substr(std::string(geo).size());
  }
  return id;
}

bool IsInferenceProfile(const std::string& model_id) {
  std::string id = model_id;
  if (id.rfind("arn:", 0) == 0) {
    if (id.find(":inference-profile/") != std::string::npos ||
        id.find(":application-inference-profile/") != std::string::npos) {
      return true;
    }
    size_t slash = id.rfind('/');
    if (slash != std::string::npos) id = id.substr(slash + 1);
  }
  return id != BaseModelId(id);
}

bool LooksFiltered(const std::string& text) {
  std::string t = Lower(text);
  return Contains(t, "filter") || Contains(t, "blocked") || Contains(t, "responsible ai") ||
         Contains(t, "content policy") || Contains(t, "moderation");
}

}  // namespace

Family FamilyOf(const std::string& model_id) {
  std::string id = BaseModelId(model_id);
  if (id.rfind("amazon.titan-image-generator", 0) == 0) return Family::kTitan;
  if (id.rfind("amazon.nova-canvas", 0) == 0) return Family::kNovaCanvas;
  if (id.rfind("stability.", 0) == 0) return Family::kStability;
  return Family::kUnknown;
}

const char* FamilyName(Family family) {
  switch (family) {
    case Family::kTitan:
      return "titan";
    case Family::kNovaCanvas:
      return "nova-canvas";
    case Family::kStability:
      return "stability";
    case Family::kUnknown:
      break;
  }
  return "unknown";
}

std::string LifecycleNote(const std::string& model_id) {
  std::string id = BaseModelId(model_id);
  if (id.rfind("amazon.titan-image-generator-v1", 0) == 0) {
    return "Titan Image Generator v1 is end of life for new users (AWS removed it from its "
           "samples as EOL in Sept 2025)";
  }
  if (id.rfind("amazon.titan-image-generator-v2", 0) == 0) {
    return "Titan Image Generator v2 is Legacy, end of life 2026-06-30";
  }
  if (id.rfind("amazon.nova-canvas", 0) == 0) {
    return "Nova Canvas is Legacy since 2026-03-30, end of life 2026-09-30";
  }
  return "";
}

const std::vector<std::pair<int, int>>& TitanSizes() {
  static const std::vector<std::pair<int, int>> kSizes = {
      {1024, 1024}, {768, 1152}, {1152, 768}, {768, 1280}, {1280, 768}, {896, 1152}, {1152, 896},
      {768, 1408},  {1408, 768}, {640, 1408}, {1408, 640}, {1152, 640}, {1173, 640}, {768, 768},
      {512, 512},   {384, 576},  {576, 384},  {384, 640},  {640, 384},  {448, 576},  {576, 448},
      {384, 704},   {704, 384},  {320, 704},  {704, 320}};
  return kSizes;
}

const std::vector<AspectSize>& StabilityAspects() {
  static const std::vector<AspectSize> kAspects = {
      {"1:1", 1024, 1024}, {"16:9", 1344, 768}, {"21:9", 1536, 640},
      {"2:3", 832, 1216},  {"3:2", 1216, 832},  {"4:5", 896, 1088},
      {"5:4", 1088, 896},  {"9:16", 768, 1344}, {"9:21", 640, 1536}};
  return kAspects;
}

std::string StabilityAspectRatio(int width, int height) {
  for (const auto& a : StabilityAspects()) {
    if (a.width == width && a.height == height) return a.ratio;
  }
  return "";
}

bool NovaSizeAllowed(int width, int height) {
  if (width < 320 || height < 320 || width > 4096 || height > 4096) return false;
  if (width % 16 != 0 || height % 16 != 0) return false;
  if (width > 4 * height || height > 4 * width) return false;
  return static_cast<int64_t>(width) * height < 4'194'304;
}

ModelLimits LimitsFor(Family family) {
  ModelLimits limits;
  // None of these models has a step count; accept the usual range and ignore it.
  limits.min_steps = 1;
  limits.max_steps = 150;
  limits.default_steps = 50;
  switch (family) {
    case Family::kTitan:
      limits.max_prompt_chars = 512;
      limits.max_negative_prompt_chars = 512;
      limits.sizes = TitanSizes();
      limits.min_guidance = 1.1;
      limits.max_guidance = 10.0;
      limits.default_guidance = 8.0;
      limits.max_count = 5;
      limits.max_seed = 2'147'483'646;
      limits.edits = true;
      limits.default_strength = 0.5;
      break;
    case Family::kNovaCanvas: {
      limits.max_prompt_chars = 1024;
      limits.max_negative_prompt_chars = 1024;
      // The common sizes (all multiples of 16 within Nova's limits); validation lists them.
      limits.sizes = {{1024, 1024}, {512, 512},   {768, 768},   {1280, 1280}, {1408, 1408},
                      {1280, 720},  {720, 1280},  {1152, 896},  {896, 1152},  {1280, 768},
                      {768, 1280},  {1024, 576},  {576, 1024},  {1920, 1088}, {1088, 1920},
                      {1536, 1024}, {1024, 1536}, {2048, 1024}, {1024, 2048}, {320, 320}};
      limits.min_guidance = 1.1;
      limits.max_guidance = 10.0;
      limits.default_guidance = 6.5;
      limits.max_count = 5;
      limits.max_seed = 858'993'459;
      limits.edits = true;
      limits.default_strength = 0.5;
      break;
    }
    case Family::kStability:
    case Family::kUnknown:
      limits.max_prompt_chars = 10'000;
      limits.max_negative_prompt_chars = 10'000;
      for (const auto& a : StabilityAspects()) limits.sizes.emplace_back(a.width, a.height);
      // No guidance parameter: keep the generic range so requests that send one still pass.
      limits.max_count = 4;  // one call per image
      limits.max_seed = 2'147'483'647;
      break;
  }
  return limits;
}

StabilityEdit StabilityEditOf(const std::string& model_id) {
  std::string id = BaseModelId(model_id);
  if (id.rfind("stability.sd3-5-large", 0) == 0) return StabilityEdit::kImageToImageMode;
  if (id.rfind("stability.stable-image-ultra", 0) == 0) return StabilityEdit::kImageAndStrength;
  return StabilityEdit::kNone;
}

ModelLimits LimitsForModel(const std::string& model_id) {
  Family family = FamilyOf(model_id);
  ModelLimits limits = LimitsFor(family);
  if (family == Family::kStability && StabilityEditOf(model_id) != StabilityEdit::kNone) {
    limits.edits = true;
    limits.masks = false;  // their image-to-image bodies have no mask field
    // Their strength is imagegen's (0 keeps the image, 1 ignores it); the local engine's default.
    limits.default_strength = 0.8;
  }
  return limits;
}

int CallsFor(Family family, const ValidRequest& request) {
  return family == Family::kStability ? request.count : 1;
}

json BuildBody(Family family, const ValidRequest& request, int index) {
  if (family == Family::kStability || family == Family::kUnknown) {
    json body = {
        {"prompt", request.prompt}, {"seed", request.seed + index}, {"output_format", "png"}};
    std::string ratio = StabilityAspectRatio(request.width, request.height);
    body["aspect_ratio"] = ratio.empty() ? "1:1" : ratio;
    if (!request.negative_prompt.empty()) body["negative_prompt"] = request.negative_prompt;
    return body;
  }
  json text = {{"text", request.prompt}};
  if (!request.negative_prompt.empty()) text["negativeText"] = request.negative_prompt;
  return {{"taskType", "TEXT_IMAGE"},
          {"textToImageParams", text},
          {"imageGenerationConfig",
           {{"numberOfImages", request.count},
            {"quality", "standard"},
            {"cfgScale", request.guidance},
            {"height", request.height},
            {"width", request.width},
            {"seed", request.seed}}}};
}

namespace {

Result<Image> DecodeAtSize(const std::string& bytes, const char* field, int width, int height) {
  auto decoded = DecodeImage(bytes);
  if (!decoded.ok()) {
    return Error::Invalid(field, std::string(field) + " is not a PNG, JPEG or WebP image: " +
                                     decoded.error().message);
  }
  Image image = std::move(decoded->image);
  image.alpha.clear();
  if (image.width == width && image.height == height) return image;
  return ResizeNearest(image, width, height);
}

Result<std::string> Base64Png(const Image& image) {
  auto encoded = EncodeImage(image, {}, ImageFormat::kPng, 0);
  if (!encoded.ok()) return encoded.error();
  return aws::Base64Encode(encoded->bytes);
}

}  // namespace

Result<EditImages> PrepareEditImages(const ValidRequest& request) {
  auto image = DecodeAtSize(request.init_image, "image", request.width, request.height);
  if (!image.ok()) return image.error();
  EditImages out;
  auto encoded = Base64Png(image.value());
  if (!encoded.ok()) return encoded.error();
  out.image = std::move(encoded.value());
  if (request.mask.empty()) return out;
  auto mask = DecodeAtSize(request.mask, "mask", request.width, request.height);
  if (!mask.ok()) return mask.error();
  for (size_t i = 0; i < mask->rgb.size(); i += 3) {
    uint8_t keep = mask->rgb[i] < 128 ? 255 : 0;  // theirs: black = change
    mask->rgb[i] = mask->rgb[i + 1] = mask->rgb[i + 2] = keep;
  }
  auto encoded_mask = Base64Png(mask.value());
  if (!encoded_mask.ok()) return encoded_mask.error();
  out.mask = std::move(encoded_mask.value());
  return out;
}

json BuildStabilityEditBody(StabilityEdit kind, const ValidRequest& request,
                            const std::string& image, int index) {
  json body = {{"prompt", request.prompt},
               {"image", image},
               {"strength", request.strength},
               {"seed", request.seed + index},
               {"output_format", "png"}};
  // No aspect_ratio: in image-to-image the output takes the image's shape (and the model
  // refuses the field there).
  if (kind == StabilityEdit::kImageToImageMode) body["mode"] = "image-to-image";
  if (!request.negative_prompt.empty()) body["negative_prompt"] = request.negative_prompt;
  return body;
}

double SimilarityFor(double strength) { return std::clamp(1.0 - strength, 0.2, 1.0); }

json BuildEditBody(Family family, const ValidRequest& request, const EditImages& images) {
  (void)family;  // Titan and Nova share the edit bodies
  json config = {{"numberOfImages", request.count},
                 {"quality", "standard"},
                 {"cfgScale", request.guidance},
                 {"seed", request.seed}};
  json params = {{"text", request.prompt}};
  if (!request.negative_prompt.empty()) params["negativeText"] = request.negative_prompt;
  if (!images.mask.empty()) {
    params["image"] = images.image;
    params["maskImage"] = images.mask;
    return {{"taskType", "INPAINTING"},
            {"inPaintingParams", params},
            {"imageGenerationConfig", config}};
  }
  params["images"] = json::array({images.image});
  params["similarityStrength"] = SimilarityFor(request.strength);
  config["width"] = request.width;
  config["height"] = request.height;
  return {{"taskType", "IMAGE_VARIATION"},
          {"imageVariationParams", params},
          {"imageGenerationConfig", config}};
}

Result<ParsedImages> ParseImages(Family family, const std::string& body) {
  json j = json::parse(body, nullptr, false);
  if (!j.is_object()) {
    return Error::Make(ErrorCode::kUpstreamUnavailable, "Bedrock answered with a non-JSON body");
  }
  ParsedImages parsed;
  if (j.contains("images") && j["images"].is_array()) {
    for (const auto& image : j["images"]) {
      if (image.is_string() && !image.get<std::string>().empty()) {
        parsed.images.push_back(image.get<std::string>());
      }
    }
  }
  std::string problem;
  if (family == Family::kStability || family == Family::kUnknown) {
    if (j.contains("finish_reasons") && j["finish_reasons"].is_array()) {
      for (const auto& reason : j["finish_reasons"]) {
        if (reason.is_string() && !reason.get<std::string>().empty()) {
          problem = reason.get<std::string>();
        }
      }
    }
    if (j.contains("seeds") && j["seeds"].is_array()) {
      for (const auto& seed : j["seeds"]) {
        int64_t value = -1;
        if (seed.is_number_unsigned() || seed.is_number_integer()) {
          value = seed.get<int64_t>();
        } else if (seed.is_string()) {
          const std::string& text = seed.get_ref<const std::string&>();
          auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
          if (ec != std::errc() || ptr != text.data() + text.size()) value = -1;
        }
        if (value < 0) {
          parsed.seeds.clear();  // unusable: keep the request's seeds rather than guess
          break;
        }
        parsed.seeds.push_back(value);
      }
    }
    if (parsed.seeds.size() != parsed.images.size()) parsed.seeds.clear();
  } else if (j.contains("error") && j["error"].is_string()) {
    problem = j["error"].get<std::string>();
  }
  if (!problem.empty()) {
    // Nova reports a blocked *output* as a 200 with "error" and fewer images; Stability as
    // "Filter reason: ...". Either way the caller cannot get what was asked for.
    return Error::Make(
        LooksFiltered(problem) ? ErrorCode::kContentRejected : ErrorCode::kUpstreamUnavailable,
        "Bedrock: " + problem);
  }
  if (parsed.images.empty()) {
    return Error::Make(ErrorCode::kUpstreamUnavailable, "Bedrock answered without images");
  }
  return parsed;
}

// Regions per model, for the models that are served in only a few. Source: AWS, "Supported
// foundation models in Amazon Bedrock" and "Model support by AWS Region"
// (docs.aws.amazon.com/bedrock/latest/userguide/models-regions.html), as collected in Nov 2026
// (see /work/shared/facts/bedrock-image-models.md). Stability's image models: us-west-2 only.
// Models missing here are not refused: the table only says "no" where AWS says so.
const std::vector<std::string>* RegionsServing(const std::string& model_id) {
  static const std::vector<std::pair<std::string, std::vector<std::string>>> kTable = {
      {"stability.sd3-5-large-v1:0", {"us-west-2"}},
      {"stability.stable-image-core-v1:1", {"us-west-2"}},
      {"stability.stable-image-ultra-v1:1", {"us-west-2"}},
      {"amazon.titan-image-generator-v1",
       {"us-east-1", "us-west-2", "ap-south-1", "eu-west-1", "eu-west-2"}},
  };
  if (IsInferenceProfile(model_id)) return nullptr;
  std::string id = BaseModelId(model_id);
  for (const auto& [model, regions] : kTable) {
    if (id == model) return &regions;
  }
  return nullptr;
}

std::string RegionRefusal(const std::string& model_id, const std::string& region) {
  // arn:aws:bedrock:REGION:ACCOUNT:foundation-model/ID: Bedrock refuses an ARN of another region.
  if (model_id.rfind("arn:", 0) == 0) {
    std::vector<std::string> fields;
    size_t start = 0;
    for (int i = 0; i < 4; ++i) {
      size_t colon = model_id.find(':', start);
      if (colon == std::string::npos) break;
      fields.push_back(model_id.substr(start, colon - start));
      start = colon + 1;
    }
    if (fields.size() == 4 && !fields[3].empty() && fields[3] != region) {
      return "the model ARN " + model_id + " is in region " + fields[3] +
             ", but Bedrock is called in " + region + ": set IMAGEGEN_BEDROCK_REGION=" + fields[3] +
             " or use an ARN of " + region;
    }
  }
  const std::vector<std::string>* regions = RegionsServing(model_id);
  if (regions == nullptr || region.empty() ||
      std::find(regions->begin(), regions->end(), region) != regions->end()) {
    return "";
  }
  std::string list;
  for (const auto& r : *regions) list += (list.empty() ? "" : ", ") + r;
  return "Bedrock model " + BaseModelId(model_id) + " is not served in " + region + " (only in " +
         list + "): set IMAGEGEN_BEDROCK_REGION=" + regions->front() +
         " (the bucket keeps its own region: IMAGEGEN_S3_REGION)";
}

bool NeedsMarketplaceSubscription(const std::string& model_id) {
  return BaseModelId(model_id).rfind("amazon.", 0) != 0;
}

}  // namespace imagegen::bedrock
