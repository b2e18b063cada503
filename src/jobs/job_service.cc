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
  return j;
}

std::string JobMessageBody(const GenerateRequest& request) {
  json j = GenerateRequestToJson(request);
  j["job_id"] = request.job_id;
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
  // The fingerprint is of what the client sent (before a random seed is chosen), so a replay
  // of the same body matches and a different body under the same name does not.
  std::string hash = Sha256Hex(GenerateRequestToJson(request).dump());
  auto valid = pipeline_->Check(request);
  if (!valid.ok()) return valid.error();
  if (!named) request.job_id = NewJobId();

  if (named) {
    auto existing = jobs_->Get(request.job_id);
    if (existing.ok() && existing->enqueued) {
      if (!existing->request_hash.empty() && existing->request_hash != hash) {
        return Error::Invalid(name_field,
                              name_field + " \"" +
                                  (name_field == "job_id" ? request.job_id : idempotency_key) +
                                  "\" was already used for a different request");
      }
      return SubmitResult{std::move(existing.value()), false};
    }
    if (!existing.ok() && existing.error().code != ErrorCode::kNotFound) return existing.error();
  }

  auto queue = Queue();
  if (!queue.ok()) return queue.error();

  // Resolve the seed now, so every delivery of the message (a redelivery after a crash
  // included) renders the same image.
  request.seed = valid->seed;
  JobRecord record;
  record.job_id = request.job_id;
  record.status = JobStatus::kQueued;
  record.created_ms = jobs_->Now();
  record.request = GenerateRequestToJson(request);
  record.request_hash = hash;
  // The record first: a worker that receives the message at once must find it, and must not
  // have its "running" overwritten by a late "queued".
  if (auto s = jobs_->Put(record); !s) return s.error();
  auto sent = (*queue)->Send(JobMessageBody(request));
  if (!sent.ok()) {
    record.enqueued = false;
    record.error = sent.error();
    (void)jobs_->Put(record);
    return sent.error();
  }
  return SubmitResult{std::move(record), true};
}

Result<JobRecord> JobService::Get(const std::string& job_id) {
  auto record = jobs_->Get(job_id);
  if (record.ok() && !record->enqueued) {
    return Error::Make(ErrorCode::kNotFound, "no such job: " + job_id);
  }
  return record;
}

Result<JobRecord> JobService::Cancel(const std::string& job_id) {
  auto record = Get(job_id);
  if (!record.ok() || IsFinished(record->status)) return record;
  if (auto s = jobs_->RequestCancel(job_id); !s) return s.error();
  return jobs_->Get(job_id);
}

Result<JobPage> JobService::List(int limit, const std::string& cursor) {
  auto page = jobs_->List(limit, cursor);
  if (!page.ok()) return page;
  std::erase_if(page->jobs, [](const JobRecord& r) { return !r.enqueued; });
  return page;
}

}  // namespace imagegen
