// One job message through the pipeline, with its job record kept up to date: the part of
// consuming a queue that does not depend on who holds the message. The worker (which holds its
// own receipts) and the queue-triggered Lambda (whose messages SQS's event source mapping
// holds) both run messages through a JobRunner and carry out the Disposition it returns.
//
// Outcomes: succeeded / cancelled / duplicate -> delete; gone (the job's image was deleted
// after an earlier delivery stored it, before a record said so) -> record failed, delete, as
// a redelivery never generates a deleted image again; not retryable (IsRetryable) ->
// record failed, dead-letter with the reason; retryable -> record queued with the last error,
// release with exponential backoff, and final (failed + dead-letter) once the receive count
// reaches max_attempts. A record that cannot be read or written -> release and try again: a
// job is never run, or acknowledged, without its record.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "jobs/job_store.h"
#include "jobs/webhook.h"
#include "pipeline/pipeline.h"
#include "queue/job_queue.h"

namespace imagegen {

enum class JobOutcome { kSucceeded, kCancelled, kFailed, kRetry, kDuplicate };
std::string_view JobOutcomeName(JobOutcome outcome);
// "code: message (field f)": how failures read in logs and dead-letter reasons.
std::string ErrorReason(const Error& error);

struct Disposition {
  enum class Action { kDelete, kRelease, kDeadLetter };
  Action action = Action::kDelete;
  int delay_s = 0;     // kRelease: when the message should be visible again
  std::string reason;  // kDeadLetter: why (error code and message)
  JobOutcome outcome = JobOutcome::kSucceeded;
  std::string job_id;
  std::optional<Error> error;  // kRelease / kDeadLetter: what went wrong
};

struct JobRunnerOptions {
  int max_attempts = 5;             // a retryable failure on this receive count is final
  int progress_interval_ms = 1000;  // how often a running job's record and cancel flag sync
  std::string worker_id;            // recorded in job records ("" : host:pid)
  // Where the job's webhook deliveries are written (null: none). Each is written before the
  // record showing its state change; one that cannot be written releases the message.
  std::shared_ptr<WebhookOutbox> webhooks;
};

// Thread-safe: Run may be called for several messages at once.
class JobRunner {
 public:
  JobRunner(std::shared_ptr<Pipeline> pipeline, std::shared_ptr<JobStore> jobs,
            JobRunnerOptions options);

  // Generates `message`'s job (stopping at `deadline`) and writes its record.
  Disposition Run(const QueueMessage& message, Clock::time_point deadline) const;

  const JobRunnerOptions& options() const { return options_; }

 private:
  Disposition Finish(const QueueMessage& message, JobRecord* record, const Error& error) const;
  // Writes the webhook delivery of `event` (if the job has a webhook that wants it).
  Status Notify(const JobRecord& record, WebhookEvent event, const std::string& seq = "") const;

  std::shared_ptr<Pipeline> pipeline_;
  std::shared_ptr<JobStore> jobs_;
  JobRunnerOptions options_;
};

}  // namespace imagegen
