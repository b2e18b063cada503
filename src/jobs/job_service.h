// The asynchronous door's logic, apart from HTTP: submit (idempotently), look up, cancel and
// list jobs. POST/GET/DELETE /jobs (src/cli/jobs_routes.cc) are thin adapters over this.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>

#include "jobs/job_store.h"
#include "pipeline/pipeline.h"
#include "queue/job_queue.h"

namespace imagegen {

// The request as the JSON object of POST /generate (what ParseGenerateJson reads back),
// without job_id; absent/default fields are left out.
nlohmann::json GenerateRequestToJson(const GenerateRequest& request);

// The queue message of a job: the request's JSON with its job_id.
std::string JobMessageBody(const GenerateRequest& request);

// The job id an Idempotency-Key names: "idem-" + 40 hex digits of SHA-256(scope, key). Scoping
// by the caller's credential keeps two clients' keys apart. Deterministic, so concurrent
// retries with one key name one job (and one output key) without any locking.
std::string IdempotentJobId(const std::string& scope, const std::string& key);

struct SubmitResult {
  JobRecord record;
  bool created = false;  // false: an earlier submission with the same id/key is returned
};

using QueueFactory = std::function<Result<std::shared_ptr<JobQueue>>()>;

// Thread-safe.
class JobService {
 public:
  // The queue is opened on first use (so a server that never sees POST /jobs never touches
  // it); a failed open is retried on the next submission.
  JobService(std::shared_ptr<Pipeline> pipeline, std::shared_ptr<JobStore> jobs,
             QueueFactory queue_factory);

  // Validates `request` (kInvalidRequest before anything is stored or sent), names the job
  // (request.job_id, else the Idempotency-Key's id, else a new id) in request.owner's
  // namespace, and returns the existing job when that name is taken by the same request
  // (RequestHash). The same name with a different request is kConflict (field
  // "Idempotency-Key" or "job_id"). Otherwise claims the id, sends the message, then writes
  // the queued record; if sending fails nothing is left behind (no record, the claim dropped)
  // and the error (kUpstreamUnavailable etc.) is returned.
  Result<SubmitResult> Submit(GenerateRequest request, const std::string& idempotency_scope,
                              const std::string& idempotency_key);
  Result<JobRecord> Get(const std::string& job_id, const std::string& owner = "");
  // kNotFound for an unknown job. A finished job is returned unchanged; otherwise the
  // cancellation is recorded and the job as it now reads is returned.
  Result<JobRecord> Cancel(const std::string& job_id, const std::string& owner = "");
  Result<JobPage> List(int limit, const std::string& cursor, const std::string& owner = "");

 private:
  Result<std::shared_ptr<JobQueue>> Queue();

  std::shared_ptr<Pipeline> pipeline_;
  std::shared_ptr<JobStore> jobs_;
  QueueFactory queue_factory_;
  std::mutex mu_;
  std::shared_ptr<JobQueue> queue_;  // GUARDED_BY(mu_)
};

}  // namespace imagegen
