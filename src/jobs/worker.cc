#include "jobs/worker.h"

#include <iostream>
#include <thread>
#include <vector>

#include "core/ids.h"
#include "core/log.h"
#include "core/metrics.h"

namespace imagegen {
namespace {

using json = nlohmann::json;

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

Worker::Worker(std::shared_ptr<Pipeline> pipeline, std::shared_ptr<JobQueue> queue,
               std::shared_ptr<JobStore> jobs, WorkerOptions options)
    : queue_(std::move(queue)),
      options_(std::move(options)),
      runner_(std::move(pipeline), std::move(jobs),
              JobRunnerOptions{options_.max_attempts, options_.progress_interval_ms,
                               options_.worker_id, options_.webhooks}) {
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
          ++extending_[receipt];
          last = now;
        }
      }
      lock.unlock();
      for (const auto& receipt : due) {
        // A failed extension is not fatal: at worst the message is redelivered and the next
        // holder finds the same image (or the finished record, and only deletes).
        if (auto s = queue_->ChangeVisibility(receipt, options_.visibility_s); !s) {
          GlobalMetrics().Add("imagegen_queue_errors_total", {{"op", "change_visibility"}});
          LogLine({{"level", "warn"},
                   {"msg", "visibility not extended"},
                   {"error", ErrorReason(s.error())}});
        }
        std::lock_guard<std::mutex> done_lock(mu_);
        if (--extending_[receipt] == 0) extending_.erase(receipt);
        extended_.notify_all();
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
    if (stats->dead_letters >= 0) {
      m.Set("imagegen_queue_dead_letters", {}, static_cast<double>(stats->dead_letters));
    }
  } else {
    m.Add("imagegen_queue_errors_total", {{"op", "stats"}});
  }
}

void Worker::Loop() {
  while (!stopping_) {
    auto got = queue_->Receive(1, options_.visibility_s, options_.wait_s);
    if (!got.ok()) {
      GlobalMetrics().Add("imagegen_queue_errors_total", {{"op", "receive"}});
      LogLine({{"level", "error"}, {"msg", "receive failed"}, {"error", ErrorReason(got.error())}});
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

void Worker::StopExtending(const std::string& receipt) {
  std::unique_lock<std::mutex> lock(mu_);
  held_.erase(receipt);
  extended_.wait(lock, [&] { return extending_.count(receipt) == 0; });
}

void Worker::DeadLetter(const QueueMessage& message, const std::string& reason) {
  if (auto s = queue_->DeadLetter(message.receipt, reason); !s) {
    LogLine({{"level", "warn"}, {"msg", "dead-letter failed"}, {"error", ErrorReason(s.error())}});
  }
}

void Worker::Carry(const QueueMessage& message, const Disposition& disposition) {
  switch (disposition.action) {
    case Disposition::Action::kDelete:
      if (auto s = queue_->Delete(message.receipt); !s) {
        // Redelivered meanwhile (visibility lapsed): the new holder finds the image.
        LogLine({{"level", "warn"},
                 {"msg", "delete failed"},
                 {"job_id", disposition.job_id},
                 {"error", ErrorReason(s.error())}});
      }
      return;
    case Disposition::Action::kRelease:
      (void)queue_->ChangeVisibility(message.receipt, disposition.delay_s);
      return;
    case Disposition::Action::kDeadLetter:
      DeadLetter(message, disposition.reason);
      return;
  }
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

  Disposition disposition =
      runner_.Run(message, Clock::now() + std::chrono::seconds(options_.job_timeout_s));
  // A delete keeps the message extended while it retries (an extension after it only fails);
  // a release or a dead-letter must be the last word on its visibility.
  bool deleting = disposition.action == Disposition::Action::kDelete;
  if (!deleting) StopExtending(message.receipt);
  Carry(message, disposition);
  if (deleting) StopExtending(message.receipt);
  metrics.Add("imagegen_worker_jobs_in_flight", {}, -1);
  double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  std::string name(JobOutcomeName(disposition.outcome));
  metrics.Add("imagegen_jobs_total", {{"outcome", name}});
  metrics.Observe("imagegen_job_duration_seconds", {{"outcome", name}}, seconds);
  LogLine({{"level", disposition.outcome == JobOutcome::kFailed ? "warn" : "info"},
           {"msg", "job"},
           {"job_id", disposition.job_id},
           {"message_id", message.id},
           {"attempt", message.receive_count},
           {"outcome", name},
           {"duration_ms", seconds * 1000}});
  return disposition.outcome;
}

}  // namespace imagegen
