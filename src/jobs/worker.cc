#include "jobs/worker.h"

#include <unistd.h>

#include <iostream>
#include <thread>
#include <vector>

#include "core/ids.h"
#include "core/metrics.h"
#include "core/request_json.h"
#include "jobs/job_service.h"
#include "queue/sqlite_queue.h"

namespace imagegen {
namespace {

using json = nlohmann::json;

void Log(json line) {
  line["ts"] = NowEpochMs();
  std::cerr << line.dump(-1, ' ', false, json::error_handler_t::replace) + "\n" << std::flush;
}

std::string DefaultWorkerId() {
  char host[256] = {};
  if (::gethostname(host, sizeof(host) - 1) != 0) host[0] = '\0';
  return std::string(host) + ":" + std::to_string(::getpid());
}

std::string Reason(const Error& error) {
  std::string reason = std::string(ErrorCodeName(error.code)) + ": " + error.message;
  if (!error.field.empty()) reason += " (field " + error.field + ")";
  return reason;
}

void DescribeMetrics() {
  auto& m = GlobalMetrics();
  m.Describe("imagegen_jobs_total", "counter",
             "Job messages processed, by outcome (succeeded, failed, cancelled, retried, "
             "duplicate)");
  m.Describe("imagegen_job_duration_seconds", "histogram",
             "Time from receiving a job message to its outcome");
  m.Describe("imagegen_job_queue_wait_seconds", "histogram",
             "Time a job waited in the queue before its first delivery");
  m.Describe("imagegen_worker_jobs_in_flight", "gauge", "Jobs this worker is processing");
  m.Describe("imagegen_queue_messages", "gauge", "Messages in the job queue, by state");
  m.Describe("imagegen_queue_oldest_message_age_seconds", "gauge",
             "Age of the oldest message in the job queue (0 when empty or unknown)");
  m.Describe("imagegen_queue_dead_letters", "gauge", "Messages in the dead-letter table");
  m.Describe("imagegen_queue_errors_total", "counter", "Failed queue operations, by operation");
}

}  // namespace

std::string_view JobOutcomeName(JobOutcome outcome) {
  switch (outcome) {
    case JobOutcome::kSucceeded:
      return "succeeded";
    case JobOutcome::kCancelled:
      return "cancelled";
    case JobOutcome::kFailed:
      return "failed";
    case JobOutcome::kRetry:
      return "retried";
    case JobOutcome::kDuplicate:
      return "duplicate";
  }
  return "failed";
}

Worker::Worker(std::shared_ptr<Pipeline> pipeline, std::shared_ptr<JobQueue> queue,
               std::shared_ptr<JobStore> jobs, WorkerOptions options)
    : pipeline_(std::move(pipeline)),
      queue_(std::move(queue)),
      jobs_(std::move(jobs)),
      options_(std::move(options)) {
  if (options_.worker_id.empty()) options_.worker_id = DefaultWorkerId();
  options_.concurrency = std::max(1, options_.concurrency);
  options_.visibility_s = std::max(3, options_.visibility_s);
  DescribeMetrics();
}

Worker::~Worker() = default;

void Worker::Stop() {
  stopping_ = true;
  cv_.notify_all();
}

void Worker::Run() {
  std::atomic<bool> done{false};
  std::thread heartbeat([&] {
    std::unique_lock<std::mutex> lock(mu_);
    while (!done) {
      cv_.wait_for(lock, std::chrono::milliseconds(500));
      int64_t now = NowEpochMs();
      std::vector<std::string> due;
      for (auto& [receipt, last] : held_) {
        if (now - last >= options_.visibility_s * 1000 / 3) {
          due.push_back(receipt);
          last = now;
        }
      }
      lock.unlock();
      for (const auto& receipt : due) {
        // A failed extension is not fatal: at worst the message is redelivered and the next
        // holder finds (or overwrites) the same image.
        if (auto s = queue_->ChangeVisibility(receipt, options_.visibility_s); !s) {
          GlobalMetrics().Add("imagegen_queue_errors_total", {{"op", "change_visibility"}});
          Log({{"level", "warn"},
               {"msg", "visibility not extended"},
               {"error", Reason(s.error())}});
        }
      }
      lock.lock();
    }
  });
  std::thread stats;
  if (options_.stats_interval_s > 0) {
    stats = std::thread([&] {
      std::unique_lock<std::mutex> lock(mu_);
      while (!done) {
        lock.unlock();
        RefreshStats();
        lock.lock();
        cv_.wait_for(lock, std::chrono::seconds(options_.stats_interval_s),
                     [&] { return done.load(); });
      }
    });
  }
  std::vector<std::thread> loops;
  for (int i = 0; i < options_.concurrency; ++i) loops.emplace_back([this] { Loop(); });
  for (auto& t : loops) t.join();
  {
    std::lock_guard<std::mutex> lock(mu_);
    done = true;
  }
  cv_.notify_all();
  heartbeat.join();
  if (stats.joinable()) stats.join();
}

void Worker::RefreshStats() {
  auto& m = GlobalMetrics();
  auto stats = queue_->Stats();
  if (stats.ok()) {
    m.Set("imagegen_queue_messages", {{"state", "visible"}}, static_cast<double>(stats->visible));
    m.Set("imagegen_queue_messages", {{"state", "in_flight"}},
          static_cast<double>(stats->in_flight));
    m.Set("imagegen_queue_oldest_message_age_seconds", {},
          static_cast<double>(stats->oldest_age_s));
  } else {
    m.Add("imagegen_queue_errors_total", {{"op", "stats"}});
  }
  if (auto* sqlite = dynamic_cast<SqliteQueue*>(queue_.get())) {
    if (auto dead = sqlite->DeadLetterCount(); dead.ok()) {
      m.Set("imagegen_queue_dead_letters", {}, static_cast<double>(dead.value()));
    }
  }
}

void Worker::Loop() {
  while (!stopping_) {
    auto got = queue_->Receive(1, options_.visibility_s, options_.wait_s);
    if (!got.ok()) {
      GlobalMetrics().Add("imagegen_queue_errors_total", {{"op", "receive"}});
      Log({{"level", "error"}, {"msg", "receive failed"}, {"error", Reason(got.error())}});
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait_for(lock, std::chrono::seconds(1), [this] { return stopping_.load(); });
      continue;
    }
    if (got->empty()) {
      if (options_.drain) return;
      continue;
    }
    for (const auto& message : got.value()) {
      if (stopping_) {
        // Received while shutting down: hand it straight back rather than hold it unworked
        // for a whole visibility timeout.
        (void)queue_->ChangeVisibility(message.receipt, 0);
        continue;
      }
      Process(message);
    }
  }
}

void Worker::DeadLetter(const QueueMessage& message, const std::string& reason) {
  if (auto* sqlite = dynamic_cast<SqliteQueue*>(queue_.get())) {
    if (auto s = sqlite->DeadLetterMessage(message.receipt, reason); !s) {
      Log({{"level", "warn"}, {"msg", "dead-letter failed"}, {"error", Reason(s.error())}});
    }
    return;
  }
  // SQS has no "move to DLQ" call: release it at once, and the queue's redrive policy moves it
  // to the dead-letter queue when its receive count passes maxReceiveCount.
  (void)queue_->ChangeVisibility(message.receipt, 0);
}

JobOutcome Worker::Finish(const QueueMessage& message, JobRecord* record, const Error& error) {
  int64_t now = NowEpochMs();
  if (error.code == ErrorCode::kCancelled) {
    record->status = JobStatus::kCancelled;
    record->finished_ms = now;
    (void)jobs_->Put(*record);
    (void)queue_->Delete(message.receipt);
    return JobOutcome::kCancelled;
  }
  record->error = error;
  if (!IsRetryable(error.code) || message.receive_count >= options_.max_attempts) {
    record->status = JobStatus::kFailed;
    record->finished_ms = now;
    (void)jobs_->Put(*record);
    std::string reason = Reason(error);
    if (IsRetryable(error.code)) {
      reason += " (after " + std::to_string(message.receive_count) + " attempts)";
    }
    DeadLetter(message, reason);
    return JobOutcome::kFailed;
  }
  record->status = JobStatus::kQueued;
  (void)jobs_->Put(*record);
  int backoff_s = std::min(60, 1 << std::min(message.receive_count - 1, 6));
  (void)queue_->ChangeVisibility(message.receipt, backoff_s);
  return JobOutcome::kRetry;
}

JobOutcome Worker::Process(const QueueMessage& message) {
  auto start = Clock::now();
  auto& metrics = GlobalMetrics();
  {
    std::lock_guard<std::mutex> lock(mu_);
    held_[message.receipt] = NowEpochMs();
  }
  metrics.Add("imagegen_worker_jobs_in_flight", {}, 1);
  if (message.receive_count <= 1 && message.sent_ms > 0) {
    metrics.Observe("imagegen_job_queue_wait_seconds", {},
                    std::max<int64_t>(0, NowEpochMs() - message.sent_ms) / 1000.0);
  }

  auto outcome = [&]() -> std::pair<JobOutcome, std::string> {
    auto parsed = ParseJobMessage(message.body, message.id);
    if (parsed.ok()) {
      if (auto s = CheckJobId(parsed->job_id); !s) parsed = s.error();
    }
    std::string job_id = parsed.ok() ? parsed->job_id : message.id;
    auto existing = jobs_->Get(job_id);
    if (!existing.ok() && existing.error().code != ErrorCode::kNotFound) {
      // The store is down: try again later rather than run a job we cannot record.
      (void)queue_->ChangeVisibility(message.receipt, 5);
      return {JobOutcome::kRetry, job_id};
    }
    JobRecord record;
    if (existing.ok()) {
      record = std::move(existing.value());
    } else {
      // Sent straight to the queue (imagegen submit, aws sqs send-message): no record yet.
      record.job_id = job_id;
      record.created_ms = message.sent_ms > 0 ? message.sent_ms : NowEpochMs();
      record.request = parsed.ok() ? GenerateRequestToJson(parsed.value())
                                   : json{{"body", message.body.substr(0, 1024)}};
    }
    record.attempts = message.receive_count;
    record.worker = options_.worker_id;
    if (!parsed.ok()) return {Finish(message, &record, parsed.error()), job_id};

    if (record.status == JobStatus::kSucceeded) {
      // Redelivered after its image and record were written but before the delete landed.
      (void)queue_->Delete(message.receipt);
      return {JobOutcome::kDuplicate, job_id};
    }
    if (record.status == JobStatus::kCancelled || record.cancel_requested) {
      return {Finish(message, &record, Error::Make(ErrorCode::kCancelled, "cancelled")), job_id};
    }

    record.status = JobStatus::kRunning;
    record.started_ms = NowEpochMs();
    record.finished_ms = 0;
    record.error.reset();
    record.step = 0;
    record.total_steps = 0;
    (void)jobs_->Put(record);

    std::atomic<bool> cancelled{false};
    auto last_sync = Clock::now();
    GenerateContext ctx;
    ctx.cancelled = &cancelled;
    ctx.deadline = Clock::now() + std::chrono::seconds(options_.job_timeout_s);
    ctx.on_progress = [&](int step, int total) {
      record.step = step;
      record.total_steps = total;
      if (Clock::now() - last_sync < std::chrono::milliseconds(options_.progress_interval_ms)) {
        return;
      }
      last_sync = Clock::now();
      if (auto c = jobs_->CancelRequested(job_id); c.ok() && c.value()) cancelled = true;
      (void)jobs_->Put(record);
    };
    auto result = pipeline_->Run(parsed.value(), ctx);
    if (!result.ok()) return {Finish(message, &record, result.error()), job_id};

    record.status = JobStatus::kSucceeded;
    record.finished_ms = NowEpochMs();
    record.result = ResultToJson(result.value(), nullptr);
    if (record.total_steps > 0) record.step = record.total_steps;
    if (auto s = jobs_->Put(record); !s) {
      // The image is stored; the record is not. A redelivery finds the image and records it.
      (void)queue_->ChangeVisibility(message.receipt, 2);
      return {JobOutcome::kRetry, job_id};
    }
    if (auto s = queue_->Delete(message.receipt); !s) {
      // Redelivered meanwhile (visibility lapsed): the new holder will find the image.
      Log({{"level", "warn"},
           {"msg", "delete failed"},
           {"job_id", job_id},
           {"error", Reason(s.error())}});
    }
    return {JobOutcome::kSucceeded, job_id};
  }();

  {
    std::lock_guard<std::mutex> lock(mu_);
    held_.erase(message.receipt);
  }
  metrics.Add("imagegen_worker_jobs_in_flight", {}, -1);
  double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  std::string name(JobOutcomeName(outcome.first));
  metrics.Add("imagegen_jobs_total", {{"outcome", name}});
  metrics.Observe("imagegen_job_duration_seconds", {{"outcome", name}}, seconds);
  Log({{"level", outcome.first == JobOutcome::kFailed ? "warn" : "info"},
       {"msg", "job"},
       {"job_id", outcome.second},
       {"message_id", message.id},
       {"attempt", message.receive_count},
       {"outcome", name},
       {"duration_ms", seconds * 1000}});
  return outcome.first;
}

}  // namespace imagegen
