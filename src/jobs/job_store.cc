#include "jobs/job_store.h"

#include <array>
#include <chrono>
#include <concepts>
#include <cstdlib>

#include "core/clock.h"
#include "core/ids.h"
#include "store/reverse_time.h"

namespace imagegen {
namespace {

using json = nlohmann::json;

constexpr std::array<std::pair<JobStatus, std::string_view>, 5> kStatusNames = {{
    {JobStatus::kQueued, "queued"},
    {JobStatus::kRunning, "running"},
    {JobStatus::kSucceeded, "succeeded"},
    {JobStatus::kFailed, "failed"},
    {JobStatus::kCancelled, "cancelled"},
}};

constexpr std::string_view kRecordSuffix = ".json";
// The listing index lives in each scope under a name no job id or owner can take (they start
// with a letter or digit); the marker says the records of a store from before the index are in.
constexpr std::string_view kIndexDir = "_index/";
constexpr std::string_view kIndexMarker = "_index.v1";
constexpr const char* kIndexType = "application/x-imagegen-index";

json ErrorToJson(const Error& error) {
  json j = {{"code", ErrorCodeName(error.code)}, {"message", error.message}};
  if (!error.field.empty()) j["field"] = error.field;
  return j;
}

std::optional<Error> ErrorFromJson(const json& j) {
  if (!j.is_object()) return std::nullopt;
  Error error;
  auto code = ErrorCodeFromName(j.value("code", ""));
  error.code = code.value_or(ErrorCode::kInternal);
  error.message = j.value("message", "");
  error.field = j.value("field", "");
  return error;
}

}  // namespace

std::string JobsPrefix(const std::string& key_prefix) { return key_prefix + "jobs/"; }

std::string_view JobStatusName(JobStatus status) {
  for (const auto& [s, name] : kStatusNames) {
    if (s == status) return name;
  }
  return "queued";
}

std::optional<JobStatus> JobStatusFromName(std::string_view name) {
  for (const auto& [s, n] : kStatusNames) {
    if (n == name) return s;
  }
  return std::nullopt;
}

json JobRecordToJson(const JobRecord& r) {
  json j = {
      {"job_id", r.job_id},         {"status", JobStatusName(r.status)},
      {"created_ms", r.created_ms}, {"updated_ms", r.updated_ms},
      {"attempts", r.attempts},     {"request", r.request.is_null() ? json::object() : r.request}};
  if (r.started_ms > 0) j["started_ms"] = r.started_ms;
  if (r.finished_ms > 0) j["finished_ms"] = r.finished_ms;
  if (r.total_steps > 0) {
    j["progress"] = {{"step", r.step},
                     {"total_steps", r.total_steps},
                     {"fraction", static_cast<double>(r.step) / r.total_steps}};
  }
  if (!r.request_hash.empty()) j["request_hash"] = r.request_hash;
  if (r.error) j["error"] = ErrorToJson(*r.error);
  if (!r.result.is_null()) j["result"] = r.result;
  if (!r.worker.empty()) j["worker"] = r.worker;
  if (r.cancel_requested) j["cancel_requested"] = true;
  if (!r.enqueued) j["enqueued"] = false;
  if (!r.owner.empty()) j["owner"] = r.owner;
  if (r.max_attempts > 0) j["max_attempts"] = r.max_attempts;
  if (r.lease_expires_ms > 0) j["lease_expires_ms"] = r.lease_expires_ms;
  if (!r.preview.empty()) j["preview"] = r.preview;
  if (!r.webhook.is_null()) j["webhook"] = r.webhook;
  return j;
}

Result<JobRecord> JobRecordFromJson(const json& j) {
  if (!j.is_object()) return Error::Make(ErrorCode::kInternal, "job record is not an object");
  try {
    JobRecord r;
    r.job_id = j.at("job_id").get<std::string>();
    auto status = JobStatusFromName(j.at("status").get<std::string>());
    if (!status) return Error::Make(ErrorCode::kInternal, "job record has an unknown status");
    r.status = *status;
    r.created_ms = j.value("created_ms", int64_t{0});
    r.updated_ms = j.value("updated_ms", int64_t{0});
    r.started_ms = j.value("started_ms", int64_t{0});
    r.finished_ms = j.value("finished_ms", int64_t{0});
    r.attempts = j.value("attempts", 0);
    if (j.contains("progress")) {
      r.step = j["progress"].value("step", 0);
      r.total_steps = j["progress"].value("total_steps", 0);
    }
    r.request = j.value("request", json::object());
    r.request_hash = j.value("request_hash", "");
    if (j.contains("error")) r.error = ErrorFromJson(j["error"]);
    if (j.contains("result")) r.result = j["result"];
    r.worker = j.value("worker", "");
    r.enqueued = j.value("enqueued", true);
    r.owner = j.value("owner", "");
    if (j.contains("webhook")) r.webhook = j["webhook"];
    r.max_attempts = j.value("max_attempts", 0);
    r.lease_expires_ms = j.value("lease_expires_ms", int64_t{0});
    r.preview = j.value("preview", "");
    return r;
  } catch (const json::exception& e) {
    return Error::Make(ErrorCode::kInternal, std::string("malformed job record: ") + e.what());
  }
}

JobStore::JobStore(ObjectStore& store, JobStoreOptions options)
    : store_(store), options_(std::move(options)) {}

std::string JobStore::Scope(const std::string& owner) const {
  return owner.empty() ? options_.prefix : options_.prefix + owner + "/";
}

std::string JobStore::RecordKey(const std::string& job_id, const std::string& owner) const {
  return Scope(owner) + job_id + std::string(kRecordSuffix);
}

std::string JobStore::CancelKey(const std::string& job_id, const std::string& owner) const {
  return Scope(owner) + job_id + ".cancel";
}

bool JobStore::Expired(const JobRecord& record, int64_t now_ms) const {
  if (!IsFinished(record.status)) return false;
  int64_t finished = record.finished_ms > 0 ? record.finished_ms : record.updated_ms;
  return now_ms - finished > options_.retention_s * 1000;
}

std::string JobStore::IndexKey(const JobRecord& record) const {
  return Scope(record.owner) + std::string(kIndexDir) + ReverseTimePath(record.created_ms) +
         record.job_id;
}

Status JobStore::IndexRecord(const JobRecord& record) {
  auto created = store_.Create(IndexKey(record), "", kIndexType, {});
  if (!created.ok()) return created.error();
  return Status::Ok();  // kExists: an earlier write of this record indexed it
}

void JobStore::Forget(const JobRecord& record) {
  // Best effort: a record that stays (a failed delete, or no s3:DeleteObject) is still hidden,
  // and an S3 lifecycle rule on the prefix removes it in the end. The index entry goes last: a
  // record never loses its entry while it can still be read.
  (void)store_.Delete(RecordKey(record.job_id, record.owner));
  (void)store_.Delete(CancelKey(record.job_id, record.owner));
  (void)store_.Delete(IndexKey(record));
}

void JobStore::SettleAbandoned(JobRecord* record) {
  if (record->status != JobStatus::kRunning || record->lease_expires_ms <= 0) return;
  const int64_t now = Now();
  if (now <= record->lease_expires_ms) return;
  const std::string attempt = "attempt " + std::to_string(record->attempts);
  if (record->max_attempts > 0 && record->attempts >= record->max_attempts) {
    // No outcome on the last delivery: the queue dead-letters the message, nobody runs it again.
    record->status = JobStatus::kFailed;
    record->finished_ms = now;
    record->error = Error::Make(ErrorCode::kInternal,
                                attempt + " of " + std::to_string(record->max_attempts) +
                                    " stopped without an outcome (the worker crashed or timed "
                                    "out); the message was dead-lettered");
    if (options_.on_settled && !options_.on_settled(*record).ok()) return;
    (void)Put(*record);  // best effort; the next read settles it again
    return;
  }
  // Not written down: the next delivery's runner writes "running" over it, and a stale read
  // must not overwrite that.
  record->status = JobStatus::kQueued;
  record->error = Error::Make(ErrorCode::kUpstreamUnavailable,
                              attempt + " stopped without an outcome; it will be retried");
}

Result<JobRecord> JobStore::Get(const std::string& job_id, const std::string& owner) {
  if (auto s = CheckJobId(job_id); !s) {
    // Not a name any job can have: as unknown as any other missing job.
    return Error::Make(ErrorCode::kNotFound, "no such job: " + job_id);
  }
  if (!owner.empty() && !CheckJobId(owner)) {
    return Error::Make(ErrorCode::kNotFound, "no such job: " + job_id);
  }
  auto data = store_.Get(RecordKey(job_id, owner), nullptr);
  if (!data.ok()) {
    if (data.error().code == ErrorCode::kNotFound) {
      return Error::Make(ErrorCode::kNotFound, "no such job: " + job_id);
    }
    return data.error();
  }
  auto parsed = json::parse(data.value(), nullptr, false);
  auto record = JobRecordFromJson(parsed);
  if (!record.ok()) return record.error();
  if (Expired(record.value(), Now())) {
    Forget(record.value());
    return Error::Make(ErrorCode::kNotFound, "no such job: " + job_id + " (expired)");
  }
  SettleAbandoned(&record.value());
  if (!IsFinished(record->status)) {
    auto cancel = CancelRequested(job_id, owner);
    if (!cancel.ok()) return cancel.error();
    record->cancel_requested = cancel.value();
    // A queued job is cancelled the moment it is asked to be: no worker will run it (the one
    // that receives it only acknowledges it). A running one is cancelled when its worker
    // notices, between steps.
    if (record->cancel_requested && record->status == JobStatus::kQueued) {
      record->status = JobStatus::kCancelled;
    }
  }
  return record;
}

Status JobStore::Put(JobRecord record) {
  if (auto s = CheckJobId(record.job_id); !s) return s;
  // The entry before the record (create-only, named from the record's fixed created_ms): a
  // record that exists is always listed. Repeated writes of one record find it there.
  if (auto s = IndexRecord(record); !s) return s;
  return PutProgress(std::move(record));
}

Status JobStore::PutProgress(JobRecord record) {
  if (auto s = CheckJobId(record.job_id); !s) return s;
  record.updated_ms = Now();
  record.cancel_requested = false;  // lives in its own object
  return store_.Put(RecordKey(record.job_id, record.owner), JobRecordToJson(record).dump(),
                    "application/json",
                    {{"job-status", std::string(JobStatusName(record.status))}});
}

Result<CreateOutcome> JobStore::Create(JobRecord record) {
  if (auto s = CheckJobId(record.job_id); !s) return s.error();
  if (auto s = IndexRecord(record); !s) return s.error();
  record.updated_ms = Now();
  record.cancel_requested = false;
  return store_.Create(RecordKey(record.job_id, record.owner), JobRecordToJson(record).dump(),
                       "application/json",
                       {{"job-status", std::string(JobStatusName(record.status))}});
}

Status JobStore::RequestCancel(const std::string& job_id, const std::string& owner) {
  if (auto s = CheckJobId(job_id); !s) return s;
  return store_.Put(CancelKey(job_id, owner), std::to_string(Now()), "text/plain", {});
}

Result<bool> JobStore::CancelRequested(const std::string& job_id, const std::string& owner) {
  auto head = store_.Head(CancelKey(job_id, owner));
  if (head.ok()) return true;
  if (head.error().code == ErrorCode::kNotFound) return false;
  return head.error();
}

Status JobStore::EnsureIndex() {
  if (index_ready_) return Status::Ok();
  std::lock_guard<std::mutex> lock(index_mu_);
  if (index_ready_) return Status::Ok();
  const std::string marker = options_.prefix + std::string(kIndexMarker);
  auto head = store_.Head(marker);
  if (!head.ok() && head.error().code != ErrorCode::kNotFound) return head.error();
  if (!head.ok()) {
    // Records written before the index: one scan of every scope, entries named as the record
    // writes name them (so a writer indexing at the same time makes the same entries).
    std::string after;
    for (;;) {
      auto listed = store_.List(options_.prefix, 1000, after);
      if (!listed.ok()) return listed.error();
      for (const auto& object : listed->objects) {
        after = object.key;
        if (!object.key.ends_with(kRecordSuffix)) continue;  // entries, markers, cancellations
        auto data = store_.Get(object.key, nullptr);
        if (!data.ok()) continue;  // deleted meanwhile
        auto record = JobRecordFromJson(json::parse(data.value(), nullptr, false));
        if (!record.ok() || RecordKey(record->job_id, record->owner) != object.key) continue;
        if (auto s = IndexRecord(record.value()); !s) return s;
      }
      if (listed->next_cursor.empty()) break;
    }
    if (auto s = store_.Put(marker, "1\n", "text/plain", {}); !s) return s;
  }
  index_ready_ = true;
  return Status::Ok();
}

Result<JobPage> JobStore::List(int limit, const std::string& cursor, const std::string& owner) {
  if (limit < 1 || limit > 100) return Error::Invalid("limit", "limit must be between 1 and 100");
  if (!owner.empty() && !CheckJobId(owner)) return JobPage{};
  const std::string index = Scope(owner) + std::string(kIndexDir);
  if (!cursor.empty() && !CheckKey(index + cursor)) {
    return Error::Invalid("cursor", "malformed cursor");
  }
  if (auto s = EnsureIndex(); !s) return s.error();
  JobPage page;
  std::string after = cursor.empty() ? "" : index + cursor;
  // Entries of expired or deleted records (and a second entry of a record whose first writer
  // named it from another time) are skipped: read on until the page is full.
  for (;;) {
    auto listed = store_.List(index, limit, after);
    if (!listed.ok()) return listed.error();
    for (const auto& entry : listed->objects) {
      after = entry.key;
      std::string rest = entry.key.substr(index.size());  // rrrr/rrr/rrr/rrr-<job_id>
      std::string id = AfterReverseTime(rest);
      if (id.empty() || !CheckJobId(id)) continue;
      auto record = Get(id, owner);
      if (!record.ok()) {
        if (record.error().code == ErrorCode::kNotFound) continue;  // expired or just deleted
        return record.error();
      }
      if (IndexKey(record.value()) != entry.key) continue;  // listed under its own entry
      page.jobs.push_back(std::move(record.value()));
      if (static_cast<int>(page.jobs.size()) == limit) {
        page.next_cursor = rest;
        return page;
      }
    }
    if (listed->next_cursor.empty()) return page;
  }
}

}  // namespace imagegen
