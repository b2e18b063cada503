// The one pipeline every door uses: validate -> generate -> encode (PNG, JPEG or WebP, with the
// provenance inside) -> store.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
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

// Who runs a request: a door answering its caller (POST /generate, the CLI), or the job runner
// delivering a queued job. A job id reserved by a job is only ever filled by the job's runner.
enum class RunOrigin { kDirect, kJob };

// A job id's reservation (see Pipeline::ClaimJobId).
struct JobIdClaim {
  bool created = false;    // this call reserved the id
  bool by_job = false;     // the id was reserved by a job submission
  int64_t created_ms = 0;  // when the id was first reserved: the images' listing time
  int64_t seed = 0;        // the seed the id was reserved with (a request without one uses it)
};

// A page of GET /images: stored images, newest first, with their metadata (Head).
struct ListedImage {
  std::string key;
  ObjectInfo info;
};
struct ImagePage {
  std::vector<ListedImage> images;
  std::string next_cursor;  // empty: no more
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

  // Validation alone, for doors that accept work now and generate later (jobs). A named
  // request (job_id) without a seed gets one derived from its owner and job id, so that every
  // replay of the same body renders the same image.
  Result<ValidRequest> Check(const GenerateRequest& request) const;

  // Reserves a named request's job id, in its owner's namespace, for this request: a
  // create-only object <key_prefix>ids/[<owner>/]<job_id> holding RequestHash and the seed.
  // The same request again finds its own claim; any other request under that id is
  // kConflict (field "job_id"). A request that gave no seed (`seed_given` false) matches
  // whatever seed the claim holds, and is to be run with it (JobIdClaim::seed). This is what
  // makes a job id name exactly one request, on every door.
  Result<JobIdClaim> ClaimJobId(const ValidRequest& request, RunOrigin origin, bool seed_given);
  // Undoes a claim this caller just created, for a submission that failed before it was
  // accepted (no job exists under the id, so the id must be free again).
  Status DropClaim(const ValidRequest& request);

  // Runs the whole pipeline. A named request first claims its id (kConflict when the id names
  // another request, or, for kDirect, a job whose worker has not stored its images yet); with
  // its images already stored, returns them without generating again (the at-least-once
  // delivery of queues relies on this); with one of them deleted (DeleteImage), kGone, and
  // nothing is generated or stored: a replay, a redelivery or a retry never brings a deleted
  // image back. Images are stored create-only: an existing object is
  // never replaced; one of the same request is reused, one of another request is kConflict.
  // Thread-safe.
  Result<GenerateResult> Run(const GenerateRequest& request, const GenerateContext& ctx,
                             RunOrigin origin = RunOrigin::kDirect);

  // Newest first, `limit` (1..100) images after `cursor` (a next_cursor, "" = start), from the
  // listing index: every image has a zero-byte entry
  //   <key_prefix>index/images/rrrr/rrr/rrr/rrr-<key without key_prefix>
  // (r: the 13 digits of 10^13-1-created_ms)
  // written (create-only) before the image itself, so an ascending key listing - what S3's
  // ListObjectsV2 and the file store return - is newest first and a page costs O(limit) on
  // both. An entry whose image is absent (its generation failed) is skipped. A store written
  // before the index is indexed once, on the first listing (a full scan, then the marker
  // <key_prefix>index/images.v1).
  // An image deleted by DELETE /images/{key} is skipped too (its tombstone, below).
  Result<ImagePage> ListImages(int limit, const std::string& cursor);

  // Deletes the image `key` (as GET /images lists it) of `owner` (ScopePrefix: the caller's
  // images only; "" without API keys: every image under the key prefix). kNotFound: no such
  // image of this owner (or not an image key at all); kGone: it was deleted before (the call
  // still finishes an interrupted deletion). Order, for crash safety:
  //   1. a tombstone <key_prefix>_deleted/<key without key_prefix>.json, create-only, holding
  //      the image's job id, request hash and listing time;
  //   2. the image's listing entry;  3. the image (and a file store's metadata sidecar).
  // Every reader checks the tombstone, so from step 1 on the image is gone for good: GET
  // answers 410, listings skip it, and the pipeline never stores that key again (Run). A crash
  // after step 1 leaves the image unreachable; the next DELETE (410) completes steps 2 and 3.
  // The job id's claim (ids/...) stays: the id keeps naming its request, so a different
  // request under it is still kConflict, and the same one is kGone.
  Status DeleteImage(const std::string& key, const std::string& owner);
  // Whether `key` has a tombstone (false for keys outside the key prefix: never deletable).
  Result<bool> IsDeleted(const std::string& key);
  // Whether GET /images may serve `key`: an image under the key prefix, not one of the
  // pipeline's own objects (job records, id claims, the index, tombstones), which carry other
  // owners' requests.
  bool IsImageKey(const std::string& key) const { return IsDeletableImageKey(key, ""); }

  ImageModel& model() { return *model_; }
  ObjectStore& store() { return *store_; }
  const PipelineOptions& options() const { return options_; }

 private:
  Result<std::optional<GenerateResult>> FindExisting(const ValidRequest& request);
  Result<StoredImage> StoreImage(const ValidRequest& request, int index, const Image& image,
                                 int64_t seed, int64_t created_ms, GenerateResult* result);
  Result<StoredImage> ReuseStored(const ValidRequest& request, const std::string& key,
                                  GenerateResult* result);
  std::string ScopePrefix(const std::string& owner) const;
  std::string ClaimKey(const ValidRequest& request) const;
  std::string IndexKey(int64_t created_ms, const std::string& key) const;
  std::string TombstoneKey(const std::string& key) const;
  // The tombstone's metadata, or nullopt when `key` has none.
  Result<std::optional<ObjectInfo>> FindTombstone(const std::string& key);
  bool IsDeletableImageKey(const std::string& key, const std::string& owner) const;
  Result<CreateOutcome> WriteTombstone(const std::string& key, const ObjectInfo& image);
  Status FinishDelete(const std::string& key, int64_t created_ms);
  // kGone when an image of this named request was deleted (checked before generating).
  Status CheckNotDeleted(const ValidRequest& request);
  // After storing `key`: a DELETE that raced the run wins; what was just stored is removed.
  Status DropIfDeleted(const std::string& key, int64_t created_ms);
  Status EnsureImageIndex();
  Status IndexExisting(const std::vector<std::string>& keys);
  // The listing entry of `key`, an image stored before the index (none for one deleted).
  Status IndexOne(const std::string& key);

  std::shared_ptr<ImageModel> model_;
  std::shared_ptr<ObjectStore> store_;
  PipelineOptions options_;
  std::mutex index_mu_;
  std::atomic<bool> index_ready_{false};  // the index marker was seen (or written)
};

// The fingerprint that tells one request from another under a job id: SHA-256 (hex) of the
// validated request's canonical JSON (prompt, negative prompt, width, height, steps, guidance,
// count, model, and the output: format, quality (lossy formats only), background; job id and
// owner excluded, as they are the name, not the request). The seed is
// kept beside it and compared only when the caller gave one: "the same prompt, any seed"
// replays a job that was stored with a seed. Stored in the job id's claim, the job record and
// every image's metadata ("request-hash", with "request-seed").
std::string RequestHash(const ValidRequest& request);

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
