#include "pipeline/pipeline.h"

#include <algorithm>
#include <array>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "aws/encoding.h"
#include "core/clock.h"
#include "core/ids.h"
#include "core/metrics.h"
#include "image/codec.h"
#include "store/reverse_time.h"

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

using json = nlohmann::json;

constexpr const char* kIndexDir = "index/images/";
constexpr const char* kIndexMarker = "index/images.v1";
// '_' starts no job id or owner, so no image key of any owner lies under it.
constexpr const char* kTombstoneDir = "_deleted/";

// Directories under the key prefix that hold the pipeline's and the jobs' own objects, never
// images a caller may delete.
constexpr std::array<std::string_view, 4> kInternalDirs = {"index/", "ids/", "jobs/",
                                                           kTombstoneDir};

// When an image was made, for its listing entry: its "created-ms" (or, for an image stored
// before that was recorded, its modification time).
int64_t ListingTime(const ObjectInfo& info) {
  auto created = info.metadata.find("created-ms");
  return created == info.metadata.end() ? info.modified_ms : std::atoll(created->second.c_str());
}

Error Gone(const std::string& key) {
  Error e = Error::Make(ErrorCode::kGone, "image " + key + " was deleted");
  e.field = "key";
  return e;
}

Metadata ImageMetadata(const ValidRequest& request, const std::string& model, int64_t seed,
                       int64_t created_ms, bool alpha) {
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
          {"request-hash", RequestHash(request)},
          {"request-seed", std::to_string(request.seed)},
          {"created-ms", std::to_string(created_ms)}};
}

// One copy of each warning: a model's and an encoder's warnings repeat for every image.
void AddWarning(std::string warning, std::vector<std::string>* warnings) {
  if (std::find(warnings->begin(), warnings->end(), warning) == warnings->end()) {
    warnings->push_back(std::move(warning));
  }
}

Error IdConflict(const ValidRequest& request, const std::string& why) {
  Error e = Error::Make(ErrorCode::kConflict, "job_id \"" + request.job_id + "\" " + why);
  e.field = "job_id";
  return e;
}

// A seed for a named request that gave none: the same for every replay of that name.
int64_t DerivedSeed(const std::string& owner, const std::string& job_id, int64_t max_seed) {
  std::string digest = aws::Sha256Hex("seed\n" + owner + "\n" + job_id);
  uint64_t value = std::stoull(digest.substr(0, 15), nullptr, 16);
  return static_cast<int64_t>(value % static_cast<uint64_t>(max_seed + 1));
}

// RAII for the in-flight gauge, so every exit path decrements it.
class InFlight {
 public:
  InFlight() { GlobalMetrics().Add("imagegen_generations_in_flight", {}, 1); }
  ~InFlight() { GlobalMetrics().Add("imagegen_generations_in_flight", {}, -1); }
  InFlight(const InFlight&) = delete;
  InFlight& operator=(const InFlight&) = delete;
};

// A request that names a model this server does not serve: say which it does.
Error UnknownModel(const std::string& asked, const ImageModel& model) {
  std::string served;
  for (const auto& name : model.ServedNames()) {
    served += (served.empty() ? "\"" : ", \"") + name + "\"";
  }
  return Error::Invalid("model", "unknown model \"" + asked + "\"; this server serves " + served);
}

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

std::string RequestHash(const ValidRequest& r) {
  // The output fields change the stored bytes (and the keys' extension), so they are part of
  // the request; a PNG's quality is not (lossless whatever it says), so it hashes as 0.
  json canonical = {{"prompt", r.prompt},
                    {"negative_prompt", r.negative_prompt},
                    {"width", r.width},
                    {"height", r.height},
                    {"steps", r.steps},
                    {"guidance", r.guidance},
                    {"count", r.count},
                    {"model", r.model},
                    {"format", ImageFormatName(r.format)},
                    {"quality", FormatIsLossy(r.format) ? r.quality : 0},
                    {"background", BackgroundName(r.background)},
                    {"sampler", r.sampler}};
  if (!r.init_image.empty()) {  // an edit: the same prompt on another image is another request
    canonical["init_image"] = aws::Sha256Hex(r.init_image);
    canonical["mask"] = aws::Sha256Hex(r.mask);
    canonical["strength"] = r.strength;
  }
  return aws::Sha256Hex(canonical.dump(-1, ' ', true, json::error_handler_t::replace));
}

Result<ValidRequest> Pipeline::Check(const GenerateRequest& request) const {
  const ImageModel* serving = model_->Serving(request.model, request.prompt);
  if (!serving) return UnknownModel(request.model, *model_);
  GenerateRequest resolved = request;
  if (!request.job_id.empty()) {
    if (auto s = CheckJobId(request.job_id); !s) return s.error();
    if (!resolved.seed) {
      resolved.seed = DerivedSeed(request.owner, request.job_id, serving->Limits().max_seed);
    }
  }
  if (!request.owner.empty()) {
    if (auto s = CheckJobId(request.owner); !s) return Error::Invalid("owner", "malformed owner");
  }
  auto valid = Validate(resolved, serving->Limits());
  if (valid.ok()) valid->model = serving->Name();
  return valid;
}

std::string Pipeline::ScopePrefix(const std::string& owner) const {
  return owner.empty() ? options_.key_prefix : options_.key_prefix + owner + "/";
}

std::string Pipeline::ClaimKey(const ValidRequest& request) const {
  std::string scope = request.owner.empty() ? "" : request.owner + "/";
  return options_.key_prefix + "ids/" + scope + request.job_id;
}

std::string Pipeline::IndexKey(int64_t created_ms, const std::string& key) const {
  return options_.key_prefix + kIndexDir + ReverseTimePath(created_ms) +
         key.substr(options_.key_prefix.size());
}

std::string Pipeline::TombstoneKey(const std::string& key) const {
  if (!key.starts_with(options_.key_prefix)) return "";
  return options_.key_prefix + kTombstoneDir + key.substr(options_.key_prefix.size()) + ".json";
}

bool Pipeline::IsDeletableImageKey(const std::string& key, const std::string& owner) const {
  if (!CheckKey(key) || !HasImageExtension(key) || !key.starts_with(ScopePrefix(owner))) {
    return false;
  }
  std::string_view rest = std::string_view(key).substr(options_.key_prefix.size());
  return std::none_of(kInternalDirs.begin(), kInternalDirs.end(),
                      [&](std::string_view dir) { return rest.starts_with(dir); });
}

Result<std::optional<ObjectInfo>> Pipeline::FindTombstone(const std::string& key) {
  std::string tombstone = TombstoneKey(key);
  if (tombstone.empty() || !CheckKey(tombstone)) return std::optional<ObjectInfo>();
  auto head = store_->Head(tombstone);
  if (head.ok()) return std::optional<ObjectInfo>(std::move(head.value()));
  // S3 answers a missing key with 403 to a role without s3:ListBucket (the SAM stack's unless
  // listing is enabled). Such a role still reads the whole prefix, tombstones included, so a
  // tombstone that exists answers 200: a 403 here says there is none.
  ErrorCode code = head.error().code;
  if (code == ErrorCode::kNotFound || code == ErrorCode::kForbidden) {
    return std::optional<ObjectInfo>();
  }
  return head.error();
}

Result<bool> Pipeline::IsDeleted(const std::string& key) {
  auto tombstone = FindTombstone(key);
  if (!tombstone.ok()) return tombstone.error();
  return tombstone->has_value();
}

Status Pipeline::FinishDelete(const std::string& key, int64_t created_ms) {
  if (auto s = store_->Delete(IndexKey(created_ms, key)); !s) return s;
  return store_->Delete(key);
}

Result<CreateOutcome> Pipeline::WriteTombstone(const std::string& key, const ObjectInfo& image) {
  auto field = [&image](const char* name) {
    auto it = image.metadata.find(name);
    return it == image.metadata.end() ? std::string() : it->second;
  };
  // The listing time lets a later DELETE remove the listing entry once the image is gone.
  Metadata record = {{"created-ms", std::to_string(ListingTime(image))},
                     {"deleted-ms", std::to_string(NowEpochMs())},
                     {"job-id", field("job-id")},
                     {"request-hash", field("request-hash")}};
  json body = {{"key", key}, {"metadata", record}};
  return store_->Create(TombstoneKey(key), body.dump(), "application/json", record);
}

Status Pipeline::DeleteImage(const std::string& key, const std::string& owner) {
  if (auto s = CheckKey(key); !s) return s;
  if (!IsDeletableImageKey(key, owner)) {
    return Error::Make(ErrorCode::kNotFound, "no image " + key + " to delete");
  }
  auto deleted = FindTombstone(key);
  if (!deleted.ok()) return deleted.error();
  if (deleted->has_value()) {
    // Deleted before, perhaps by a DELETE that crashed after its tombstone: finish it.
    if (auto s = FinishDelete(key, ListingTime(**deleted)); !s) return s;
    return Gone(key);
  }
  auto image = store_->Head(key);
  if (!image.ok()) {
    if (image.error().code != ErrorCode::kNotFound) return image.error();
    return Error::Make(ErrorCode::kNotFound, "no image " + key + " to delete");
  }
  auto created = WriteTombstone(key, image.value());
  if (!created.ok()) return created.error();
  // From here on the image is gone whatever happens to the two deletes below.
  if (auto s = FinishDelete(key, ListingTime(image.value())); !s) return s;
  if (created.value() == CreateOutcome::kExists) return Gone(key);  // a concurrent DELETE won
  GlobalMetrics().Add("imagegen_images_deleted_total", {});
  return Status::Ok();
}

Status Pipeline::CheckNotDeleted(const ValidRequest& request) {
  for (int i = 0; i < request.count; ++i) {
    std::string key =
        ImageKey(ScopePrefix(request.owner), request.job_id, i, ImageExtension(request.format));
    auto deleted = IsDeleted(key);
    if (!deleted.ok()) return deleted.error();
    if (deleted.value()) return Gone(key);
  }
  return Status::Ok();
}

Status Pipeline::DropIfDeleted(const std::string& key, int64_t created_ms) {
  auto deleted = IsDeleted(key);
  if (!deleted.ok()) return deleted.error();
  if (!deleted.value()) return Status::Ok();
  // The tombstone was written after CheckNotDeleted looked: the DELETE may have run before
  // this run's Create, which then stored the key again. Undo that. Should the undo fail (a
  // role that may not delete, as the Terraform stack's queue function), the tombstone still
  // hides the image and the next DELETE removes it: the run's answer is gone either way.
  (void)FinishDelete(key, created_ms);
  return Gone(key);
}

Result<JobIdClaim> Pipeline::ClaimJobId(const ValidRequest& request, RunOrigin origin,
                                        bool seed_given) {
  const std::string key = ClaimKey(request);
  const std::string hash = RequestHash(request);
  const bool by_job = origin == RunOrigin::kJob;
  const int64_t now = NowEpochMs();
  json body = {{"request_hash", hash},
               {"seed", request.seed},
               {"origin", by_job ? "job" : "generate"},
               {"created_ms", now}};
  auto created = store_->Create(key, body.dump(), "application/json", {{"request-hash", hash}});
  if (!created.ok()) return created.error();
  if (created.value() == CreateOutcome::kCreated) {
    return JobIdClaim{true, by_job, now, request.seed};
  }
  auto data = store_->Get(key, nullptr);
  if (!data.ok()) return data.error();
  auto claim = json::parse(data.value(), nullptr, false);
  if (!claim.is_object() || claim.value("request_hash", "") != hash ||
      (seed_given && claim.value("seed", int64_t{-1}) != request.seed)) {
    return IdConflict(request, "is already used for a different request");
  }
  return JobIdClaim{false, claim.value("origin", "") == "job", claim.value("created_ms", now),
                    claim.value("seed", request.seed)};
}

Status Pipeline::DropClaim(const ValidRequest& request) {
  return store_->Delete(ClaimKey(request));
}

// The stored image at `key` as this request's output, when it is this request's (kConflict
// when it is another's, or carries no fingerprint: an image is never taken over on a guess).
Result<StoredImage> Pipeline::ReuseStored(const ValidRequest& request, const std::string& key,
                                          GenerateResult* result) {
  auto head = store_->Head(key);
  for (int i = 0; !head.ok() && head.error().code == ErrorCode::kNotFound && i < 20; ++i) {
    // S3's 409 ConditionalRequestConflict: the winning write may not be visible yet.
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    head = store_->Head(key);
  }
  if (!head.ok()) return head.error();
  // `request` carries the claim's seed by now (Run), so the seed must match too.
  auto hash = head->metadata.find("request-hash");
  auto request_seed = head->metadata.find("request-seed");
  if (hash == head->metadata.end() || hash->second != RequestHash(request) ||
      request_seed == head->metadata.end() ||
      request_seed->second != std::to_string(request.seed)) {
    return IdConflict(request, "names a stored image of a different request");
  }
  auto alpha = head->metadata.find("alpha");
  result->transparent |= alpha != head->metadata.end() && alpha->second == "1";
  auto seed = head->metadata.find("seed");
  return StoredImage{key, store_->Links(key, options_.presign_expiry_s),
                     seed == head->metadata.end() ? 0 : std::atoll(seed->second.c_str())};
}

Result<std::optional<GenerateResult>> Pipeline::FindExisting(const ValidRequest& request) {
  GenerateResult result;
  for (int i = 0; i < request.count; ++i) {
    std::string key =
        ImageKey(ScopePrefix(request.owner), request.job_id, i, ImageExtension(request.format));
    auto head = store_->Head(key);
    if (!head.ok()) {
      if (head.error().code != ErrorCode::kNotFound) return head.error();
      return std::optional<GenerateResult>();  // not (all) stored yet: generate
    }
    auto stored = ReuseStored(request, key, &result);
    if (!stored.ok()) return stored.error();
    result.images.push_back(std::move(stored.value()));
  }
  result.seed = result.images.front().seed;
  result.reused = true;
  return std::optional<GenerateResult>(std::move(result));
}

Result<StoredImage> Pipeline::StoreImage(const ValidRequest& request, int index, const Image& image,
                                         int64_t seed, int64_t created_ms, GenerateResult* result) {
  Timings* timings = &result->timings;
  auto start = Clock::now();
  auto encoded = EncodeImage(image, ProvenanceChunks(request, request.model, seed), request.format,
                             request.quality);
  timings->encode_ms += MsSince(start);
  if (!encoded.ok()) return encoded.error();
  bool alpha = image.HasAlpha() && FormatHasAlpha(request.format);
  for (auto& warning : encoded->warnings) AddWarning(std::move(warning), &result->warnings);
  start = Clock::now();
  std::string key =
      ImageKey(ScopePrefix(request.owner), request.job_id, index, ImageExtension(request.format));
  // The listing entry first: a crash between the two leaves an entry without an image (skipped
  // by listings, and filled by the redelivery, which derives the same entry name from the
  // claim's time), never an image that no listing shows.
  std::string index_key = IndexKey(created_ms, key);
  auto indexed = store_->Create(index_key, "", "application/x-imagegen-index", {});
  if (!indexed.ok()) return indexed.error();
  auto created = store_->Create(key, encoded->bytes, std::string(ImageMediaType(request.format)),
                                ImageMetadata(request, request.model, seed, created_ms, alpha));
  timings->store_ms += MsSince(start);
  if (!created.ok()) return created.error();
  if (created.value() == CreateOutcome::kExists) {
    auto reused = ReuseStored(request, key, result);
    if (!reused.ok() && indexed.value() == CreateOutcome::kCreated) {
      (void)store_->Delete(index_key);  // not our image: do not list it twice
    }
    return reused;
  }
  result->transparent |= alpha;
  GlobalMetrics().Add("imagegen_images_stored_total", {});
  return StoredImage{key, store_->Links(key, options_.presign_expiry_s), seed};
}

Result<GenerateResult> Pipeline::Run(const GenerateRequest& request, const GenerateContext& ctx,
                                     RunOrigin origin) {
  auto start = Clock::now();
  auto valid = Check(request);
  if (!valid.ok()) return valid.error();
  ValidRequest& req = valid.value();
  bool client_named = !req.job_id.empty();
  if (!client_named) req.job_id = NewJobId();
  int64_t created_ms = NowEpochMs();

  GenerateResult result;
  if (client_named) {
    auto claim = ClaimJobId(req, origin, request.seed.has_value());
    if (!claim.ok()) return claim.error();
    created_ms = claim->created_ms;
    req.seed = claim->seed;  // the id's seed, for a request that gave none
    if (auto s = CheckNotDeleted(req); !s) return s.error();
    auto existing = FindExisting(req);
    if (!existing.ok()) return existing.error();
    if (existing.value()) {
      result = std::move(*existing.value());
    } else if (claim->by_job && origin == RunOrigin::kDirect) {
      // Someone's queued job: only its runner may produce its output.
      return IdConflict(req, "names a queued or running job; poll GET /jobs/" + req.job_id);
    }
  }
  result.timings.validate_ms = MsSince(start);
  if (!result.reused) {
    InFlight in_flight;
    auto gen_start = Clock::now();
    auto output = model_->Generate(req, ctx);
    result.timings.generate_ms = MsSince(gen_start);
    if (!output.ok()) return output.error();
    GlobalMetrics().Observe("imagegen_generation_seconds", {{"model", req.model}},
                            result.timings.generate_ms / 1000.0);
    for (auto& warning : output->warnings) AddWarning(std::move(warning), &result.warnings);
    for (int i = 0; i < static_cast<int>(output->images.size()); ++i) {
      // The model's own account of the seed where it gives one (Stability), else seed + index.
      size_t at = static_cast<size_t>(i);
      int64_t seed = at < output->seeds.size() ? output->seeds[at] : req.seed + i;
      Image& image = output->images[at];
      if (req.background == Background::kOpaque) image.alpha.clear();  // asked for, kept opaque
      auto stored = StoreImage(req, i, image, seed, created_ms, &result);
      if (!stored.ok()) return stored.error();
      // Only a named request's keys can have been deleted: a new id names keys nobody has seen.
      if (client_named) {
        if (auto s = DropIfDeleted(stored->key, created_ms); !s) return s.error();
      }
      result.images.push_back(std::move(stored.value()));
    }
    result.seed = result.images.empty() ? req.seed : result.images.front().seed;
  }
  result.job_id = req.job_id;
  result.model = req.model;
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

Status Pipeline::IndexOne(const std::string& key) {
  auto info = store_->Head(key);
  if (!info.ok()) return Status::Ok();  // deleted meanwhile
  auto gone = IsDeleted(key);           // a DELETE that stopped after its tombstone
  if (!gone.ok()) return gone.error();
  if (gone.value()) return Status::Ok();
  std::string entry = IndexKey(ListingTime(info.value()), key);
  if (store_->Head(entry).ok()) return Status::Ok();  // indexed when it was stored
  auto made = store_->Create(entry, "", "application/x-imagegen-index", {});
  if (!made.ok()) return made.error();
  return Status::Ok();
}

Status Pipeline::IndexExisting(const std::vector<std::string>& keys) {
  constexpr size_t kThreads = 8;
  std::atomic<size_t> next{0};
  std::mutex mu;
  Status failed = Status::Ok();
  auto work = [&] {
    for (size_t i = next++; i < keys.size(); i = next++) {
      if (auto s = IndexOne(keys[i]); !s) {
        std::lock_guard<std::mutex> lock(mu);
        failed = s.error();
      }
    }
  };
  std::vector<std::thread> threads;
  for (size_t t = 0; t < std::min(kThreads, keys.size()); ++t) threads.emplace_back(work);
  for (auto& t : threads) t.join();
  return failed;
}

Status Pipeline::EnsureImageIndex() {
  if (index_ready_) return Status::Ok();
  std::lock_guard<std::mutex> lock(index_mu_);
  if (index_ready_) return Status::Ok();
  const std::string marker = options_.key_prefix + kIndexMarker;
  auto head = store_->Head(marker);
  if (!head.ok() && head.error().code != ErrorCode::kNotFound) return head.error();
  if (head.ok()) {
    index_ready_ = true;
    return Status::Ok();
  }
  // Images stored before the index existed: one full scan. Entry names derive from each
  // image's key and creation time, so a writer (or another server) indexing at the same time
  // writes the same names; a race costs time, not duplicates. Each page of keys is indexed by
  // a few threads: a durable create is a few fsyncs (file) or a round trip (S3), not CPU.
  const std::string own = options_.key_prefix + "index/";
  std::string after;
  for (;;) {
    auto listed = store_->List(options_.key_prefix, 1000, after);
    if (!listed.ok()) return listed.error();
    std::vector<std::string> keys;
    for (const auto& object : listed->objects) {
      after = object.key;
      if (HasImageExtension(object.key) && !object.key.starts_with(own)) keys.push_back(object.key);
    }
    if (auto s = IndexExisting(keys); !s) return s;
    if (listed->next_cursor.empty()) break;
  }
  if (auto s = store_->Put(marker, "1\n", "text/plain", {}); !s) return s;
  index_ready_ = true;
  return Status::Ok();
}

Result<ImagePage> Pipeline::ListImages(int limit, const std::string& cursor) {
  if (limit < 1 || limit > 100) return Error::Invalid("limit", "limit must be between 1 and 100");
  const std::string index = options_.key_prefix + kIndexDir;
  if (!cursor.empty() && !CheckKey(index + cursor)) {
    return Error::Invalid("cursor", "malformed cursor");
  }
  if (auto s = EnsureImageIndex(); !s) return s.error();
  ImagePage page;
  std::string after = cursor.empty() ? "" : index + cursor;
  for (;;) {
    auto listed = store_->List(index, limit, after);
    if (!listed.ok()) return listed.error();
    for (const auto& entry : listed->objects) {
      after = entry.key;
      std::string rest = entry.key.substr(index.size());  // rrrr/rrr/rrr/rrr-<key>
      std::string name = AfterReverseTime(rest);
      if (name.empty()) continue;
      std::string key = options_.key_prefix + name;
      auto head = store_->Head(key);
      if (!head.ok()) continue;  // its generation failed, or has not stored it yet
      // A DELETE that has written its tombstone but not yet removed the entry (or crashed).
      auto gone = IsDeleted(key);
      if (!gone.ok()) return gone.error();
      if (gone.value()) continue;
      page.images.push_back({key, std::move(head.value())});
      if (static_cast<int>(page.images.size()) == limit) {
        // A full page may be followed by nothing; one extra empty page is cheaper than a
        // look-ahead.
        page.next_cursor = rest;
        return page;
      }
    }
    if (listed->next_cursor.empty()) return page;
  }
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
