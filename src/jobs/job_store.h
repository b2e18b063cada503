// Job records: what GET /jobs/{id} answers. They live in the ObjectStore under a "jobs/" key
// prefix (next to the images), so every door and every worker sees them whatever the store is:
// file:// on one machine, s3:// for a fleet of workers and the queue-triggered Lambda alike,
// with no database of their own to run.
//
// Layout (PREFIX is the owner key prefix + "jobs/"; SCOPE is "" without API keys, else the
// caller's namespace + "/", so that each API key has ids of its own):
//   PREFIX SCOPE<job_id>.json    the record (JobRecord as JSON)
//   PREFIX SCOPE<job_id>.cancel  a cancellation request, written only by DELETE /jobs/{id}
//   PREFIX SCOPE_index/rrrr/rrr/rrr/rrr-<job_id>
//                                the listing index: a zero-byte entry per record, r the digits
//                                of 10^13-1-created_ms (store/reverse_time.h), written
//                                create-only before the record, so that GET /jobs pages newest
//                                first in O(page) on the file store and on S3 (ListObjectsV2
//                                start-after). '_' starts no job id or owner. A store written
//                                before the index is indexed once, on the first listing (a full
//                                scan, then the marker PREFIX_index.v1).
// Keeping the cancellation apart from the record means the one writer that races the worker
// (DELETE) never overwrites the worker's progress and the worker never erases a cancellation;
// readers merge the two. Record writes themselves are last-writer-wins (object stores have no
// compare-and-swap); while a message is held, only its holder writes the record.
//
// Retention: a finished record (succeeded / failed / cancelled) is kept `retention_s` after it
// finished; after that Get answers kNotFound, List skips it, and the read that finds it expired
// deletes it (best effort; for S3, deploy/terraform also sets a lifecycle rule on the prefix).
// Unfinished
// records are kept until they finish.
//
// Final states on every path: a running record carries a lease (the deadline its runner was
// given, plus a grace). A runner that dies or hangs past it never wrote an outcome; if that was
// the last attempt (attempts >= max_attempts) the queue dead-letters the message without
// delivering it again, so Get reads the record as failed (and writes that down); before the
// last attempt it reads as queued, as the message will be delivered again.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/error.h"
#include "store/object_store.h"

namespace imagegen {

enum class JobStatus { kQueued, kRunning, kSucceeded, kFailed, kCancelled };

std::string_view JobStatusName(JobStatus status);  // "queued", "running", ...
std::optional<JobStatus> JobStatusFromName(std::string_view name);
inline bool IsFinished(JobStatus status) {
  return status == JobStatus::kSucceeded || status == JobStatus::kFailed ||
         status == JobStatus::kCancelled;
}

struct JobRecord {
  std::string job_id;
  JobStatus status = JobStatus::kQueued;
  int64_t created_ms = 0, updated_ms = 0, started_ms = 0, finished_ms = 0;  // epoch ms
  int attempts = 0;               // deliveries that started work (the receive count)
  int step = 0, total_steps = 0;  // progress of a running job
  nlohmann::json request;         // the generation request as submitted (+ resolved seed)
  std::string request_hash;       // tells an idempotent replay from a conflicting reuse
  std::optional<Error> error;     // failed: why; queued after a failed attempt: the last error
  nlohmann::json result;          // succeeded: the pipeline's result (ResultToJson)
  std::string worker;             // who ran it last (host:pid)
  bool cancel_requested = false;  // a DELETE arrived; not stored in the record
  bool enqueued = true;           // false: a record of an older version whose send failed
  std::string owner;              // the namespace of job_id ("" without API keys)
  int max_attempts = 0;           // running: deliveries the queue makes before dead-lettering
  int64_t lease_expires_ms = 0;   // running: its runner has given up by then (epoch ms)
  std::string preview;            // running: a small picture of the latest step (a data URL)
  nlohmann::json webhook;         // the job's webhook (WebhookSpecToJson), or null
};

nlohmann::json JobRecordToJson(const JobRecord& record);
Result<JobRecord> JobRecordFromJson(const nlohmann::json& json);

struct JobPage {
  std::vector<JobRecord> jobs;  // newest first
  std::string next_cursor;      // empty: no more
};

struct JobStoreOptions {
  std::string prefix = "jobs/";         // key prefix of the records (owner prefix included)
  int64_t retention_s = 7 * 24 * 3600;  // how long finished records are kept
  EpochClock now_ms;                    // stamps and expiry; empty: NowEpochMs
  // Called with a record the store itself makes final (an abandoned last attempt, read as
  // failed) before writing it; an error leaves it unwritten, for the next read to settle again.
  // Where the job's "completed" webhook is written (app/services.cc): no runner is left to.
  std::function<Status(const JobRecord&)> on_settled;
};

// Thread-safe (the ObjectStore is). `store` must outlive the JobStore.
class JobStore {
 public:
  JobStore(ObjectStore& store, JobStoreOptions options);

  // The store's clock (JobStoreOptions::now_ms): what the job service and runner stamp records
  // with, so one injected clock drives a job's whole lifecycle.
  int64_t Now() const { return options_.now_ms ? options_.now_ms() : NowEpochMs(); }

  // kNotFound when there is no record or it expired. cancel_requested reflects the marker, and
  // an unfinished job with a cancellation request that no worker holds reads as cancelled.
  // `owner` is the namespace of job_id (JobRecord::owner).
  Result<JobRecord> Get(const std::string& job_id, const std::string& owner = "");
  // Writes `record` whole (updated_ms is set to now), its listing entry first.
  Status Put(JobRecord record);
  // Put for a record already written by this writer (a running job's progress): no entry.
  Status PutProgress(JobRecord record);
  // Writes `record` only when no record has its id: a submission's "queued" never replaces
  // what a worker that received the message first has written. kExists: a record was there.
  Result<CreateOutcome> Create(JobRecord record);
  // Writes the cancellation marker.
  Status RequestCancel(const std::string& job_id, const std::string& owner = "");
  Result<bool> CancelRequested(const std::string& job_id, const std::string& owner = "");
  // At most `limit` unexpired records of `owner`, newest first (by created_ms), after `cursor`
  // (a next_cursor; "" = start).
  Result<JobPage> List(int limit, const std::string& cursor, const std::string& owner = "");

  const JobStoreOptions& options() const { return options_; }

 private:
  std::string Scope(const std::string& owner) const;
  std::string RecordKey(const std::string& job_id, const std::string& owner) const;
  std::string CancelKey(const std::string& job_id, const std::string& owner) const;
  bool Expired(const JobRecord& record, int64_t now_ms) const;
  std::string IndexKey(const JobRecord& record) const;
  Status IndexRecord(const JobRecord& record);
  Status EnsureIndex();
  void Forget(const JobRecord& record);
  void SettleAbandoned(JobRecord* record);

  ObjectStore& store_;
  JobStoreOptions options_;
  std::mutex index_mu_;
  std::atomic<bool> index_ready_{false};  // the index marker was seen (or written)
};

// Where the job records of images under `key_prefix` live: "<key_prefix>jobs/".
std::string JobsPrefix(const std::string& key_prefix);

}  // namespace imagegen
