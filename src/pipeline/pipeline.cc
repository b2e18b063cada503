#include "pipeline/pipeline.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/ids.h"
#include "core/metrics.h"
#include "image/codec.h"

namespace imagegen {
namespace {

double MsSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

std::string FormatGuidance(double g) {
  std::ostringstream out;
  out << g;
  return out.str();
}

Metadata ImageMetadata(const ValidRequest& request, const std::string& model, int64_t seed,
                       bool alpha) {
  auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::system_clock::now().time_since_epoch())
                    .count();
  return {{"prompt", EncodeMetadataValue(request.prompt)},
          {"negative-prompt", EncodeMetadataValue(request.negative_prompt)},
          {"seed", std::to_string(seed)},
          {"model", EncodeMetadataValue(model)},
          {"steps", std::to_string(request.steps)},
          {"guidance", FormatGuidance(request.guidance)},
          {"width", std::to_string(request.width)},
          {"height", std::to_string(request.height)},
          {"job-id", request.job_id},
          {"format", std::string(ImageFormatName(request.format))},
          {"alpha", alpha ? "1" : "0"},
          {"created-ms", std::to_string(now_ms)}};
}

// One copy of each warning: a model's and an encoder's warnings repeat for every image.
void AddWarning(std::string warning, std::vector<std::string>* warnings) {
  if (std::find(warnings->begin(), warnings->end(), warning) == warnings->end()) {
    warnings->push_back(std::move(warning));
  }
}

// RAII for the in-flight gauge, so every exit path decrements it.
class InFlight {
 public:
  InFlight() { GlobalMetrics().Add("imagegen_generations_in_flight", {}, 1); }
  ~InFlight() { GlobalMetrics().Add("imagegen_generations_in_flight", {}, -1); }
  InFlight(const InFlight&) = delete;
  InFlight& operator=(const InFlight&) = delete;
};

}  // namespace

std::vector<std::pair<std::string, std::string>> ProvenanceChunks(const ValidRequest& request,
                                                                  const std::string& model,
                                                                  int64_t seed) {
  std::ostringstream parameters;
  parameters << request.prompt << "\n";
  if (!request.negative_prompt.empty()) {
    parameters << "Negative prompt: " << request.negative_prompt << "\n";
  }
  parameters << "Steps: " << request.steps << ", CFG scale: " << FormatGuidance(request.guidance)
             << ", Seed: " << seed << ", Size: " << request.width << "x" << request.height
             << ", Model: " << model;
  return {{"prompt", request.prompt},
          {"negative_prompt", request.negative_prompt},
          {"seed", std::to_string(seed)},
          {"model", model},
          {"steps", std::to_string(request.steps)},
          {"guidance", FormatGuidance(request.guidance)},
          {"parameters", parameters.str()},
          {"Software", std::string("imagegen ") + IMAGEGEN_VERSION}};
}

Pipeline::Pipeline(std::shared_ptr<ImageModel> model, std::shared_ptr<ObjectStore> store,
                   PipelineOptions options)
    : model_(std::move(model)), store_(std::move(store)), options_(std::move(options)) {}

Result<ValidRequest> Pipeline::Check(const GenerateRequest& request) const {
  if (!request.model.empty() && request.model != model_->Name()) {
    return Error::Invalid("model", "unknown model \"" + request.model +
                                       "\"; this server serves \"" + model_->Name() + "\"");
  }
  if (!request.job_id.empty()) {
    if (auto s = CheckJobId(request.job_id); !s) return s.error();
  }
  auto valid = Validate(request, model_->Limits());
  if (valid.ok()) valid->model = model_->Name();
  return valid;
}

std::optional<GenerateResult> Pipeline::FindExisting(const ValidRequest& request) {
  GenerateResult result;
  for (int i = 0; i < request.count; ++i) {
    std::string key =
        ImageKey(options_.key_prefix, request.job_id, i, ImageExtension(request.format));
    auto head = store_->Head(key);
    if (!head.ok()) return std::nullopt;
    auto seed = head->metadata.find("seed");
    StoredImage image{key, store_->Links(key, options_.presign_expiry_s),
                      seed == head->metadata.end() ? 0 : std::atoll(seed->second.c_str())};
    auto alpha = head->metadata.find("alpha");
    result.transparent |= alpha != head->metadata.end() && alpha->second == "1";
    result.images.push_back(std::move(image));
  }
  result.seed = result.images.front().seed;
  result.reused = true;
  return result;
}

Result<StoredImage> Pipeline::StoreImage(const ValidRequest& request, int index, const Image& image,
                                         int64_t seed, GenerateResult* result) {
  Timings* timings = &result->timings;
  auto start = Clock::now();
  auto encoded = EncodeImage(image, ProvenanceChunks(request, model_->Name(), seed), request.format,
                             request.quality);
  timings->encode_ms += MsSince(start);
  if (!encoded.ok()) return encoded.error();
  bool alpha = image.HasAlpha() && FormatHasAlpha(request.format);
  result->transparent |= alpha;
  for (auto& warning : encoded->warnings) AddWarning(std::move(warning), &result->warnings);
  start = Clock::now();
  std::string key =
      ImageKey(options_.key_prefix, request.job_id, index, ImageExtension(request.format));
  Status put = store_->Put(key, encoded->bytes, std::string(ImageMediaType(request.format)),
                           ImageMetadata(request, model_->Name(), seed, alpha));
  timings->store_ms += MsSince(start);
  if (!put.ok()) return put.error();
  GlobalMetrics().Add("imagegen_images_stored_total", {});
  return StoredImage{key, store_->Links(key, options_.presign_expiry_s), seed};
}

Result<GenerateResult> Pipeline::Run(const GenerateRequest& request, const GenerateContext& ctx) {
  auto start = Clock::now();
  auto valid = Check(request);
  if (!valid.ok()) return valid.error();
  ValidRequest& req = valid.value();
  bool client_named = !req.job_id.empty();
  if (!client_named) req.job_id = NewJobId();

  GenerateResult result;
  if (client_named) {
    if (auto existing = FindExisting(req)) result = std::move(*existing);
  }
  result.timings.validate_ms = MsSince(start);
  if (!result.reused) {
    InFlight in_flight;
    auto gen_start = Clock::now();
    auto output = model_->Generate(req, ctx);
    result.timings.generate_ms = MsSince(gen_start);
    if (!output.ok()) return output.error();
    GlobalMetrics().Observe("imagegen_generation_seconds", {{"model", model_->Name()}},
                            result.timings.generate_ms / 1000.0);
    for (auto& warning : output->warnings) AddWarning(std::move(warning), &result.warnings);
    for (int i = 0; i < static_cast<int>(output->images.size()); ++i) {
      // The model's own account of the seed where it gives one (Stability), else seed + index.
      size_t at = static_cast<size_t>(i);
      int64_t seed = at < output->seeds.size() ? output->seeds[at] : req.seed + i;
      Image& image = output->images[at];
      if (req.background == Background::kOpaque) image.alpha.clear();  // asked for, kept opaque
      auto stored = StoreImage(req, i, image, seed, &result);
      if (!stored.ok()) return stored.error();
      result.images.push_back(std::move(stored.value()));
    }
    result.seed = result.images.empty() ? req.seed : result.images.front().seed;
  }
  result.job_id = req.job_id;
  result.model = model_->Name();
  result.prompt = req.prompt;
  result.negative_prompt = req.negative_prompt;
  result.width = req.width;
  result.height = req.height;
  result.steps = req.steps;
  result.guidance = req.guidance;
  result.format = req.format;
  result.quality = req.quality;
  result.background = req.background;
  result.quality_preset = req.quality_preset;
  for (auto& warning : req.warnings) AddWarning(std::move(warning), &result.warnings);
  result.timings.total_ms = MsSince(start);
  return result;
}

nlohmann::json ResultToJson(const GenerateResult& result,
                            const std::function<std::string(const std::string&)>& url_for_key) {
  auto image_json = [&](const StoredImage& image) {
    const ObjectLinks& links = image.links;
    nlohmann::json j = {{"key", image.key}, {"seed", image.seed}, {"uri", links.uri}};
    if (url_for_key) j["url"] = url_for_key(image.key);
    if (links.s3_uri) j["s3_uri"] = *links.s3_uri;
    if (links.object_url) j["object_url"] = *links.object_url;
    if (links.presigned_url) j["presigned_url"] = *links.presigned_url;
    return j;
  };
  // The first image's fields sit at the top level: the seed contract is one prompt, one image.
  nlohmann::json j = image_json(result.images.front());
  j["job_id"] = result.job_id;
  j["model"] = result.model;
  j["prompt"] = result.prompt;
  j["negative_prompt"] = result.negative_prompt;
  j["width"] = result.width;
  j["height"] = result.height;
  j["steps"] = result.steps;
  j["guidance_scale"] = result.guidance;
  j["format"] = ImageFormatName(result.format);
  j["quality"] = result.quality;
  j["background"] = BackgroundName(result.background);
  j["seed"] = result.seed;
  j["images"] = nlohmann::json::array();
  for (const auto& image : result.images) j["images"].push_back(image_json(image));
  j["warnings"] = result.warnings;
  j["reused"] = result.reused;
  j["timings"] = {{"validate_ms", result.timings.validate_ms},
                  {"generate_ms", result.timings.generate_ms},
                  {"encode_ms", result.timings.encode_ms},
                  {"store_ms", result.timings.store_ms},
                  {"total_ms", result.timings.total_ms}};
  return j;
}

}  // namespace imagegen
