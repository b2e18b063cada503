#include "jobs/job_service.h"

#include <openssl/sha.h>

#include "core/ids.h"

namespace imagegen {
namespace {

using json = nlohmann::json;

std::string Sha256Hex(const std::string& text) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(), digest);
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (unsigned char c : digest) {
    out += kHex[c >> 4];
    out += kHex[c & 0xF];
  }
  return out;
}

}  // namespace

json GenerateRequestToJson(const GenerateRequest& r) {
  json j = {{"prompt", r.prompt}};
  if (!r.negative_prompt.empty()) j["negative_prompt"] = r.negative_prompt;
  if (r.width) j["width"] = *r.width;
  if (r.height) j["height"] = *r.height;
  if (r.seed) j["seed"] = *r.seed;
  if (r.steps) j["steps"] = *r.steps;
  if (r.guidance) j["guidance_scale"] = *r.guidance;
  if (r.count != 1) j["count"] = r.count;
  if (!r.model.empty()) j["model"] = r.model;
  if (!r.format.empty()) j["format"] = r.format;
  if (r.quality) j["quality"] = *r.quality;
  if (!r.background.empty()) j["background"] = r.background;
  if (!r.sampler.empty()) j["sampler"] = r.sampler;
  if (r.strength) j["strength"] = *r.strength;
  return j;
}

std::string JobMessageBody(const GenerateRequest& request) {
  json j = GenerateRequestToJson(request);
  j["job_id"] = request.job_id;
  if (!request.owner.empty()) j["owner"] = request.owner;
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string IdempotentJobId(const std::string& scope, const std::string& key) {
  return "idem-" + Sha256Hex(scope + '\n' + key).substr(0, 40);
}

JobService::JobService(std::shared_ptr<Pipeline> pipeline, std::shared_ptr<JobStore> jobs,
                       QueueFactory queue_factory)
    : pipeline_(std::move(pipeline)),
      jobs_(std::move(jobs)),
      queue_factory_(std::move(queue_factory)) {}

Result<std::shared_ptr<JobQueue>> JobService::Queue() {
  std::lock_guard<std::mutex> lock(mu_);
  if (queue_ != nullptr) return queue_;
  auto queue = queue_factory_();
  if (!queue.ok()) {
    Error e = queue.error();
    // The server is fine; the queue behind it is not (yet): a retry may succeed.
    if (e.code == ErrorCode::kInternal) e.code = ErrorCode::kUpstreamUnavailable;
    e.message = "job queue unavailable: " + e.message;
    return e;
  }
  queue_ = queue.value();
  return queue_;
}

Result<SubmitResult> JobService::Submit(GenerateRequest request,
                                        const std::string& idempotency_scope,
                                        const std::string& idempotency_key) {
  if (idempotency_key.size() > 255) {
    return Error::Invalid("Idempotency-Key", "Idempotency-Key must be at most 255 characters");
  }
  std::string name_field = "job_id";
  if (request.job_id.empty() && !idempotency_key.empty()) {
    request.job_id = IdempotentJobId(idempotency_scope, idempotency_key);
    name_field = "Idempotency-Key";
  }
  bool named = !request.job_id.empty();
  if (!named) request.job_id = NewJobId();
  // Validation resolves the seed (a named request's from its name), so every delivery of the
  // message renders the same image and a replay of the same body has the same fingerprint.
  auto valid = pipeline_->Check(request);
  if (!valid.ok()) return valid.error();
  const std::string hash = RequestHash(valid.value());
  auto conflict = [&] {
    Error e = Error::Make(ErrorCode::kConflict,
                          name_field + " \"" +
                              (name_field == "job_id" ? request.job_id : idempotency_key) +
                              "\" was already used for a different request");
    e.field = name_field;
    return e;
  };

  if (named) {
    auto existing = jobs_->Get(request.job_id, request.owner);
    if (existing.ok() && existing->enqueued) {
      bool same_seed =
          !request.seed || existing->request.value("seed", int64_t{-1}) == *request.seed;
      if (existing->request_hash != hash || !same_seed) return conflict();
      return SubmitResult{std::move(existing.value()), false};
    }
    if (!existing.ok() && existing.error().code != ErrorCode::kNotFound) return existing.error();
  }
  // The id is reserved for this request on every door (a POST /generate under it is refused
  // while the job has not stored its images).
  auto claim = pipeline_->ClaimJobId(valid.value(), RunOrigin::kJob, request.seed.has_value());
  if (!claim.ok()) {
    if (claim.error().code == ErrorCode::kConflict) return conflict();
    return claim.error();
  }

  auto queue = Queue();
  if (!queue.ok()) {
    if (claim->created) (void)pipeline_->DropClaim(valid.value());
    return queue.error();
  }
  request.seed = claim->seed;  // the id's seed (a request without one takes it)
  JobRecord record;
  record.job_id = request.job_id;
  record.owner = request.owner;
  record.status = JobStatus::kQueued;
  record.created_ms = jobs_->Now();
  record.request = GenerateRequestToJson(request);
  record.request_hash = hash;
  // The message first, the record after it, written create-only. A failed send leaves nothing
  // behind (no record, the claim released): the client was told it failed, and no ghost
  // "queued" job exists. A crash between the two loses nothing: the message carries the whole
  // request, and the runner writes the record when it finds none. A worker that received the
  // message before the record was written keeps its record: the late "queued" loses the
  // create.
  auto sent = (*queue)->Send(JobMessageBody(request));
  if (!sent.ok()) {
    if (claim->created) (void)pipeline_->DropClaim(valid.value());
    return sent.error();
  }
  auto created = jobs_->Create(record);
  if (created.ok() && created.value() == CreateOutcome::kExists) {
    if (auto current = jobs_->Get(record.job_id, record.owner); current.ok()) {
      return SubmitResult{std::move(current.value()), true};
    }
  }
  // A failed record write is not a failed submission: the message is on the queue, and its
  // runner records the job.
  return SubmitResult{std::move(record), true};
}

Result<JobRecord> JobService::Get(const std::string& job_id, const std::string& owner) {
  auto record = jobs_->Get(job_id, owner);
  if (record.ok() && !record->enqueued) {
    return Error::Make(ErrorCode::kNotFound, "no such job: " + job_id);
  }
  return record;
}

Result<JobRecord> JobService::Cancel(const std::string& job_id, const std::string& owner) {
  auto record = Get(job_id, owner);
  if (!record.ok() || IsFinished(record->status)) return record;
  if (auto s = jobs_->RequestCancel(job_id, owner); !s) return s.error();
  return jobs_->Get(job_id, owner);
}

Result<JobPage> JobService::List(int limit, const std::string& cursor, const std::string& owner) {
  auto page = jobs_->List(limit, cursor, owner);
  if (!page.ok()) return page;
  std::erase_if(page->jobs, [](const JobRecord& r) { return !r.enqueued; });
  return page;
}

}  // namespace imagegen
