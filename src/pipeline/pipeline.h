// The one pipeline every door uses: validate -> generate -> encode (PNG, JPEG or WebP, with the
// provenance inside) -> store.
#pragma once

#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/request.h"
#include "model/image_model.h"
#include "store/object_store.h"

namespace imagegen {

struct PipelineOptions {
  std::string key_prefix;       // owner prefix inside the store, e.g. "alice/" (may be empty)
  int presign_expiry_s = 3600;  // lifetime of presigned GET URLs, where the store has them
};

struct StoredImage {
  std::string key;
  ObjectLinks links;
  int64_t seed = 0;
};

struct Timings {
  double validate_ms = 0, generate_ms = 0, encode_ms = 0, store_ms = 0, total_ms = 0;
};

struct GenerateResult {
  std::string job_id;
  std::string model;
  std::string prompt, negative_prompt;
  int width = 0, height = 0, steps = 0;
  double guidance = 0;
  int64_t seed = 0;
  ImageFormat format = ImageFormat::kPng;
  int quality = 0;  // the JPEG/WebP quality used (PNG: lossless, reported as given)
  Background background = Background::kAuto;
  bool transparent = false;    // an image kept an alpha plane (so "background" was honoured)
  std::string quality_preset;  // OpenAI's quality name that chose the steps, if any
  std::vector<StoredImage> images;
  std::vector<std::string> warnings;
  Timings timings;
  bool reused = false;  // true when the job's images already existed (a retry or redelivery)
};

class Pipeline {
 public:
  Pipeline(std::shared_ptr<ImageModel> model, std::shared_ptr<ObjectStore> store,
           PipelineOptions options);

  // Validation alone, for doors that accept work now and generate later (jobs).
  Result<ValidRequest> Check(const GenerateRequest& request) const;

  // Runs the whole pipeline. With a request.job_id whose images are already stored, returns
  // them without generating again (the at-least-once delivery of queues relies on this).
  // Thread-safe.
  Result<GenerateResult> Run(const GenerateRequest& request, const GenerateContext& ctx);

  ImageModel& model() { return *model_; }
  ObjectStore& store() { return *store_; }
  const PipelineOptions& options() const { return options_; }

 private:
  std::optional<GenerateResult> FindExisting(const ValidRequest& request);
  Result<StoredImage> StoreImage(const ValidRequest& request, int index, const Image& image,
                                 int64_t seed, GenerateResult* result);

  std::shared_ptr<ImageModel> model_;
  std::shared_ptr<ObjectStore> store_;
  PipelineOptions options_;
};

// The pairs that carry an image's provenance (also an A1111-style "parameters"): PNG text
// chunks, or EXIF/XMP in JPEG and WebP.
std::vector<std::pair<std::string, std::string>> ProvenanceChunks(const ValidRequest& request,
                                                                  const std::string& model,
                                                                  int64_t seed);

// The result as the JSON every door answers with. `url_for_key` makes the HTTP URL of a key
// (empty function: no "url" member).
nlohmann::json ResultToJson(const GenerateResult& result,
                            const std::function<std::string(const std::string&)>& url_for_key);

}  // namespace imagegen
