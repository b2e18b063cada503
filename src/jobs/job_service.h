// The asynchronous door's logic, apart from HTTP: submit (idempotently), look up, cancel and
// list jobs. POST/GET/DELETE /jobs (src/cli/jobs_routes.cc) are thin adapters over this.
#pragma once

#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "jobs/job_store.h"
#include "jobs/webhook.h"
#include "pipeline/pipeline.h"
#include "queue/job_queue.h"

namespace imagegen {

// The request as the JSON object of POST /generate (what ParseGenerateJson reads back),
// without job_id; absent/default fields are left out.
nlohmann::json GenerateRequestToJson(const GenerateRequest& request);

// The queue message of a job: the request's JSON with its job_id (and the job's webhook,
// WebhookSpecToJson, when it has one).
std::string JobMessageBody(const GenerateRequest& request, const nlohmann::json& webhook = nullptr,
                           int64_t created_ms = 0);

// The job id an Idempotency-Key names: "idem-" + 40 hex digits of SHA-256(scope, key). Scoping
// by the caller's credential keeps two clients' keys apart. Deterministic, so concurrent
// retries with one key name one job (and one output key) without any locking.
std::string IdempotentJobId(const std::string& scope, const std::string& key);

struct SubmitResult {
  JobRecord record;
  bool created = false;  // false: an earlier submission with the same id/key is returned
};

using QueueFactory = std::function<Result<std::shared_ptr<JobQueue>>()>;

// A concurrent-job quota: at most `max_per_owner` jobs of one owner (API key) queued or running
// at once, counting the jobs this process submitted (another server on the same queue keeps
// its own count). Each check reads the records of the owner's counted jobs, so a job finished
// by any worker frees its place. Memory is bounded: at most `max_owners` owners are tracked,
// the least recently active forgotten first (its jobs stop counting). Thread-safe.
class JobQuota {
 public:
  using IsUnfinished = std::function<bool(const std::string& owner, const std::string& job_id)>;
  JobQuota(int max_per_owner, size_t max_owners, IsUnfinished unfinished);

  // Reserves a place for one submission of `owner`: kRateLimited (Retry-After 5 s) when full.
  Status Reserve(const std::string& owner);
  // Ends a reservation; `job_id` (the submitted job; "" if none was) counts from now on.
  void Release(const std::string& owner, const std::string& job_id);

 private:
  struct Owner {
    std::vector<std::string> jobs;  // submitted, not yet seen finished
    int reserved = 0;               // submissions in progress
    std::list<std::string>::iterator lru;
  };
  Owner& Touch(const std::string& owner);  // REQUIRES(mu_)

  int max_per_owner_;
  size_t max_owners_;
  IsUnfinished unfinished_;
  std::mutex mu_;
  std::unordered_map<std::string, Owner> owners_;  // GUARDED_BY(mu_)
  std::list<std::string> lru_;                     // most recent first; GUARDED_BY(mu_)
};

struct JobServiceOptions {
  // Checks and stores the webhooks of submissions (null: a webhook is refused, 400).
  std::shared_ptr<WebhookOutbox> webhooks;
  int max_jobs_per_owner = 0;  // the concurrent-job quota per API key; 0: none
};

// Thread-safe.
class JobService {
 public:
  // The queue is opened on first use (so a server that never sees POST /jobs never touches
  // it); a failed open is retried on the next submission.
  JobService(std::shared_ptr<Pipeline> pipeline, std::shared_ptr<JobStore> jobs,
             QueueFactory queue_factory, JobServiceOptions options = {});

  // Validates `request` (kInvalidRequest before anything is stored or sent), names the job
  // (request.job_id, else the Idempotency-Key's id, else a new id) in request.owner's
  // namespace, and returns the existing job when that name is taken by the same request
  // (RequestHash). The same name with a different request is kConflict (field
  // "Idempotency-Key" or "job_id"). Otherwise claims the id, sends the message, then writes
  // the queued record; if sending fails nothing is left behind (no record, the claim dropped)
  // and the error (kUpstreamUnavailable etc.) is returned. A `webhook` is checked
  // (WebhookOutbox::CheckTarget) and stored with the job; over the owner's quota: kRateLimited.
  Result<SubmitResult> Submit(GenerateRequest request, const std::string& idempotency_scope,
                              const std::string& idempotency_key,
                              const std::optional<WebhookSpec>& webhook = std::nullopt);
  // A succeeded job whose images were deleted since (DELETE /images) keeps its result, read
  // with "deleted": true on each deleted image and on the result (not written to the record).
  Result<JobRecord> Get(const std::string& job_id, const std::string& owner = "");
  // kNotFound for an unknown job. A finished job is returned unchanged; otherwise the
  // cancellation is recorded and the job as it now reads is returned.
  Result<JobRecord> Cancel(const std::string& job_id, const std::string& owner = "");
  Result<JobPage> List(int limit, const std::string& cursor, const std::string& owner = "");

 private:
  Result<std::shared_ptr<JobQueue>> Queue();
  void MarkDeletedImages(JobRecord* record) const;
  Result<SubmitResult> SubmitChecked(GenerateRequest request, const std::string& idempotency_scope,
                                     const std::string& idempotency_key,
                                     const nlohmann::json& webhook);

  std::shared_ptr<Pipeline> pipeline_;
  std::shared_ptr<JobStore> jobs_;
  QueueFactory queue_factory_;
  JobServiceOptions options_;
  std::unique_ptr<JobQuota> quota_;  // null: no quota
  std::mutex mu_;
  std::shared_ptr<JobQueue> queue_;  // GUARDED_BY(mu_)
};

}  // namespace imagegen
