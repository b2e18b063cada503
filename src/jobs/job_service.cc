#include "jobs/job_service.h"

#include <openssl/sha.h>

#include <algorithm>

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

std::string JobMessageBody(const GenerateRequest& request, const json& webhook,
                           int64_t created_ms) {
  json j = GenerateRequestToJson(request);
  j["job_id"] = request.job_id;
  if (!request.owner.empty()) j["owner"] = request.owner;
  if (!webhook.is_null()) j["webhook"] = webhook;
  // The submission's creation time: a runner that writes the record first names its listing
  // entry from the same time as the submission's create would, so a job has one entry.
  if (created_ms > 0) j["created_ms"] = created_ms;
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string IdempotentJobId(const std::string& scope, const std::string& key) {
  return "idem-" + Sha256Hex(scope + '\n' + key).substr(0, 40);
}

JobQuota::JobQuota(int max_per_owner, size_t max_owners, IsUnfinished unfinished)
    : max_per_owner_(max_per_owner), max_owners_(max_owners), unfinished_(std::move(unfinished)) {}

JobQuota::Owner& JobQuota::Touch(const std::string& owner) {
  auto it = owners_.find(owner);
  if (it != owners_.end()) {
    lru_.splice(lru_.begin(), lru_, it->second.lru);
    return it->second;
  }
  // Forget the least recently active owner with nothing in progress.
  if (owners_.size() >= max_owners_) {
    auto victim = std::find_if(lru_.rbegin(), lru_.rend(), [&](const std::string& name) {
      return owners_.at(name).reserved == 0;
    });
    if (victim != lru_.rend()) {
      owners_.erase(*victim);
      lru_.erase(std::next(victim).base());
    }
  }
  lru_.push_front(owner);
  Owner& entry = owners_[owner];
  entry.lru = lru_.begin();
  return entry;
}

Status JobQuota::Reserve(const std::string& owner) {
  std::vector<std::string> counted;
  {
    std::lock_guard<std::mutex> lock(mu_);
    counted = Touch(owner).jobs;
  }
  // The records are read without the lock (a store round trip each); the decision below is
  // taken under it, counting reservations made meanwhile.
  std::vector<std::string> finished;
  for (const auto& id : counted) {
    if (!unfinished_(owner, id)) finished.push_back(id);
  }
  std::lock_guard<std::mutex> lock(mu_);
  Owner& entry = Touch(owner);
  std::erase_if(entry.jobs, [&](const std::string& id) {
    return std::find(finished.begin(), finished.end(), id) != finished.end();
  });
  if (static_cast<int>(entry.jobs.size()) + entry.reserved >= max_per_owner_) {
    Error e = Error::Make(ErrorCode::kRateLimited,
                          "at most " + std::to_string(max_per_owner_) +
                              " jobs may be queued or running at once for this API key");
    e.retry_after_s = 5;
    return e;
  }
  ++entry.reserved;
  return Status::Ok();
}

void JobQuota::Release(const std::string& owner, const std::string& job_id) {
  std::lock_guard<std::mutex> lock(mu_);
  Owner& entry = Touch(owner);
  entry.reserved = std::max(0, entry.reserved - 1);
  if (!job_id.empty() &&
      std::find(entry.jobs.begin(), entry.jobs.end(), job_id) == entry.jobs.end()) {
    entry.jobs.push_back(job_id);
  }
}

JobService::JobService(std::shared_ptr<Pipeline> pipeline, std::shared_ptr<JobStore> jobs,
                       QueueFactory queue_factory, JobServiceOptions options)
    : pipeline_(std::move(pipeline)),
      jobs_(std::move(jobs)),
      queue_factory_(std::move(queue_factory)),
      options_(std::move(options)) {
  if (options_.max_jobs_per_owner > 0) {
    auto store = jobs_;
    quota_ = std::make_unique<JobQuota>(options_.max_jobs_per_owner, 10000,
                                        [store](const std::string& owner, const auto& id) {
                                          auto record = store->Get(id, owner);
                                          // A record that cannot be read (store down) keeps
                                          // counting: the quota errs on the side of refusing.
                                          if (!record.ok())
                                            return record.error().code != ErrorCode::kNotFound;
                                          return !IsFinished(record->status);
                                        });
  }
}

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
                                        const std::string& idempotency_key,
                                        const std::optional<WebhookSpec>& webhook) {
  json webhook_json;
  if (webhook) {
    if (options_.webhooks == nullptr) {
      return Error::Invalid("webhook", "webhooks are not configured on this server");
    }
    if (auto s = options_.webhooks->CheckTarget(webhook->url); !s) return s.error();
    webhook_json = WebhookSpecToJson(*webhook);
  }
  if (quota_ == nullptr) {
    return SubmitChecked(std::move(request), idempotency_scope, idempotency_key, webhook_json);
  }
  const std::string owner = request.owner;
  if (auto s = quota_->Reserve(owner); !s) return s.error();
  auto submitted =
      SubmitChecked(std::move(request), idempotency_scope, idempotency_key, webhook_json);
  quota_->Release(owner, submitted.ok() ? submitted->record.job_id : "");
  return submitted;
}

Result<SubmitResult> JobService::SubmitChecked(GenerateRequest request,
                                               const std::string& idempotency_scope,
                                               const std::string& idempotency_key,
                                               const json& webhook) {
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
  record.webhook = webhook;
  // The message first, the record after it, written create-only. A failed send leaves nothing
  // behind (no record, the claim released): the client was told it failed, and no ghost
  // "queued" job exists. A crash between the two loses nothing: the message carries the whole
  // request, and the runner writes the record when it finds none. A worker that received the
  // message before the record was written keeps its record: the late "queued" loses the
  // create.
  auto sent = (*queue)->Send(JobMessageBody(request, webhook, record.created_ms));
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

void JobService::MarkDeletedImages(JobRecord* record) const {
  if (record->status != JobStatus::kSucceeded || !record->result.is_object()) return;
  json& result = record->result;
  if (!result.contains("images") || !result["images"].is_array()) return;
  for (json& image : result["images"]) {
    if (!image.is_object() || !image.contains("key") || !image["key"].is_string()) continue;
    auto deleted = pipeline_->IsDeleted(image["key"].get<std::string>());
    if (!deleted.ok() || !deleted.value()) continue;  // unknown: shown as stored
    image["deleted"] = true;
    result["deleted"] = true;
  }
}

Result<JobRecord> JobService::Get(const std::string& job_id, const std::string& owner) {
  auto record = jobs_->Get(job_id, owner);
  if (record.ok() && !record->enqueued) {
    return Error::Make(ErrorCode::kNotFound, "no such job: " + job_id);
  }
  if (record.ok()) MarkDeletedImages(&record.value());
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
