#include "jobs/job_runner.h"

#include <unistd.h>

#include <atomic>

#include "aws/encoding.h"
#include "core/ids.h"
#include "core/request_json.h"
#include "image/codec.h"
#include "image/png.h"
#include "jobs/job_service.h"

namespace imagegen {
namespace {

using json = nlohmann::json;
using Action = Disposition::Action;

std::string DefaultWorkerId() {
  char host[256] = {};
  if (::gethostname(host, sizeof(host) - 1) != 0) host[0] = '\0';
  return std::string(host) + ":" + std::to_string(::getpid());
}

Disposition Release(std::string job_id, int delay_s, Error error) {
  return {Action::kRelease, delay_s, "", JobOutcome::kRetry, std::move(job_id), std::move(error)};
}

Disposition Delete(JobOutcome outcome, std::string job_id) {
  return {Action::kDelete, 0, "", outcome, std::move(job_id), std::nullopt};
}

// When a running record's runner has certainly given up: its deadline (a steady-clock time)
// on the store's clock, plus a grace for writing the outcome.
int64_t LeaseEnd(int64_t now_ms, Clock::time_point deadline) {
  constexpr int64_t kGraceMs = 5000;
  constexpr int64_t kMaxLeaseMs = int64_t{7} * 24 * 3600 * 1000;
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return now_ms + std::clamp<int64_t>(left.count(), 0, kMaxLeaseMs) + kGraceMs;
}

// A preview small enough to ride in the job record at every progress write: at most
// kPreviewSide pixels a side, JPEG, as a data URL (a few KB).
std::string PreviewDataUrl(const Preview& preview) {
  constexpr int kPreviewSide = 128;
  if (preview.width <= 0 || preview.height <= 0 ||
      preview.rgb.size() != static_cast<size_t>(preview.width) * preview.height * 3) {
    return "";
  }
  Image image(preview.width, preview.height);
  image.rgb = preview.rgb;
  int scale = std::max(1, (std::max(image.width, image.height) + kPreviewSide - 1) / kPreviewSide);
  if (scale > 1) {
    image =
        ResizeNearest(image, std::max(1, image.width / scale), std::max(1, image.height / scale));
  }
  auto encoded = EncodeImage(image, {}, ImageFormat::kJpeg, 70);
  if (!encoded.ok()) return "";
  return "data:image/jpeg;base64," + aws::Base64Encode(encoded->bytes);
}

// How often a model is asked for a preview: about eight per image.
int PreviewEvery(const GenerateRequest& request) {
  return std::max(1, request.steps.value_or(8) / 8);
}

// The "webhook" object JobService put in the message, or null.
json MessageWebhook(const std::string& body) {
  json j = json::parse(body, nullptr, false);
  if (!j.is_object() || !j.contains("webhook") || !j["webhook"].is_object()) return nullptr;
  return j["webhook"];
}

int64_t MessageCreatedMs(const std::string& body) {
  json j = json::parse(body, nullptr, false);
  if (!j.is_object() || !j.contains("created_ms") || !j["created_ms"].is_number_integer()) return 0;
  return j["created_ms"].get<int64_t>();
}

}  // namespace

std::string ErrorReason(const Error& error) {
  std::string reason = std::string(ErrorCodeName(error.code)) + ": " + error.message;
  if (!error.field.empty()) reason += " (field " + error.field + ")";
  return reason;
}

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

JobRunner::JobRunner(std::shared_ptr<Pipeline> pipeline, std::shared_ptr<JobStore> jobs,
                     JobRunnerOptions options)
    : pipeline_(std::move(pipeline)), jobs_(std::move(jobs)), options_(std::move(options)) {
  if (options_.worker_id.empty()) options_.worker_id = DefaultWorkerId();
  options_.max_attempts = std::max(1, options_.max_attempts);
}

Status JobRunner::Notify(const JobRecord& record, WebhookEvent event,
                         const std::string& seq) const {
  if (options_.webhooks == nullptr || record.webhook.is_null()) return Status::Ok();
  return options_.webhooks->Enqueue(record, event, seq);
}

Disposition JobRunner::Finish(const QueueMessage& message, JobRecord* record,
                              const Error& error) const {
  int64_t now = jobs_->Now();
  if (error.code == ErrorCode::kCancelled) {
    record->status = JobStatus::kCancelled;
    record->finished_ms = now;
    if (auto s = Notify(*record, WebhookEvent::kCompleted); !s) {
      return Release(record->job_id, 5, s.error());
    }
    (void)jobs_->Put(*record);
    return Delete(JobOutcome::kCancelled, record->job_id);
  }
  record->error = error;
  if (error.code == ErrorCode::kGone) {
    // The job's image was stored by an earlier delivery and deleted since (DELETE /images),
    // before that delivery wrote its record: final, and nothing a dead-letter queue could
    // retry. The record says failed with code "gone"; the message is acknowledged.
    record->status = JobStatus::kFailed;
    record->finished_ms = now;
    if (auto s = Notify(*record, WebhookEvent::kCompleted); !s) {
      return Release(record->job_id, 5, s.error());
    }
    (void)jobs_->Put(*record);
    return {Action::kDelete, 0, ErrorReason(error), JobOutcome::kFailed, record->job_id, error};
  }
  if (!IsRetryable(error.code) || message.receive_count >= options_.max_attempts) {
    record->status = JobStatus::kFailed;
    record->finished_ms = now;
    if (auto s = Notify(*record, WebhookEvent::kCompleted); !s) {
      return Release(record->job_id, 5, s.error());
    }
    (void)jobs_->Put(*record);
    std::string reason = ErrorReason(error);
    if (IsRetryable(error.code)) {
      reason += " (after " + std::to_string(message.receive_count) + " attempts)";
    }
    return {Action::kDeadLetter, 0, reason, JobOutcome::kFailed, record->job_id, error};
  }
  record->status = JobStatus::kQueued;
  (void)jobs_->Put(*record);
  int backoff_s = std::min(60, 1 << std::clamp(message.receive_count - 1, 0, 6));
  return Release(record->job_id, backoff_s, error);
}

Disposition JobRunner::Run(const QueueMessage& message, Clock::time_point deadline) const {
  auto parsed = ParseJobMessage(message.body, message.id);
  if (parsed.ok()) {
    if (auto s = CheckJobId(parsed->job_id); !s) parsed = s.error();
  }
  std::string job_id = parsed.ok() ? parsed->job_id : message.id;
  std::string owner = parsed.ok() ? parsed->owner : "";
  auto existing = jobs_->Get(job_id, owner);
  if (!existing.ok() && existing.error().code != ErrorCode::kNotFound) {
    // The store is down: try again later rather than run a job we cannot record.
    return Release(job_id, 5, existing.error());
  }
  JobRecord record;
  if (existing.ok()) {
    record = std::move(existing.value());
  } else {
    // Sent straight to the queue (imagegen submit, aws sqs send-message): no record yet.
    record.job_id = job_id;
    record.owner = owner;
    record.created_ms = MessageCreatedMs(message.body);
    if (record.created_ms <= 0)
      record.created_ms = message.sent_ms > 0 ? message.sent_ms : jobs_->Now();
    record.request = parsed.ok() ? GenerateRequestToJson(parsed.value())
                                 : json{{"body", message.body.substr(0, 1024)}};
  }
  // A failed record's message delivered again with a higher receive count is the same life of
  // the message (SQS re-delivers a dead-lettered message until its redrive policy moves it); a
  // lower or equal one is a new life (an operator's redrive restarts the count): run again.
  // The message carries the webhook too: a worker that received it before the submission's
  // record was written has only the message.
  if (record.webhook.is_null()) record.webhook = MessageWebhook(message.body);
  const bool redelivered_after_final =
      record.status == JobStatus::kFailed && message.receive_count > record.attempts;
  record.attempts = message.receive_count;
  record.worker = options_.worker_id;
  if (!parsed.ok()) return Finish(message, &record, parsed.error());

  if (record.status == JobStatus::kSucceeded) {
    // Redelivered after its image and record were written but before the delete landed.
    return Delete(JobOutcome::kDuplicate, job_id);
  }
  if (redelivered_after_final || message.receive_count > options_.max_attempts) {
    // Final already, or delivered more often than a job may run: end it, never run it again.
    if (record.status != JobStatus::kFailed) {
      record.status = JobStatus::kFailed;
      record.finished_ms = jobs_->Now();
      record.error =
          Error::Make(ErrorCode::kInternal,
                      "delivered " + std::to_string(message.receive_count) + " times; at most " +
                          std::to_string(options_.max_attempts) + " attempts are made");
      if (auto s = Notify(record, WebhookEvent::kCompleted); !s) {
        return Release(job_id, 5, s.error());
      }
      (void)jobs_->Put(record);
    }
    std::string reason = record.error ? ErrorReason(*record.error) : "failed";
    return {Action::kDeadLetter, 0, reason, JobOutcome::kFailed, job_id, record.error};
  }
  if (record.status == JobStatus::kCancelled || record.cancel_requested) {
    return Finish(message, &record, Error::Make(ErrorCode::kCancelled, "cancelled"));
  }

  record.status = JobStatus::kRunning;
  record.started_ms = jobs_->Now();
  record.finished_ms = 0;
  record.error.reset();
  record.step = 0;
  record.total_steps = 0;
  record.preview.clear();
  record.max_attempts = options_.max_attempts;
  record.lease_expires_ms = LeaseEnd(jobs_->Now(), deadline);
  if (record.request_hash.empty()) {
    if (auto valid = pipeline_->Check(parsed.value()); valid.ok()) {
      record.request_hash = RequestHash(valid.value());
    }
  }
  if (auto s = Notify(record, WebhookEvent::kStart, std::to_string(record.attempts)); !s) {
    return Release(job_id, 5, s.error());
  }
  (void)jobs_->Put(record);

  std::atomic<bool> cancelled{false};
  auto last_sync = Clock::now();
  std::optional<Preview> preview;  // the latest, encoded only when the record is written
  GenerateContext ctx;
  ctx.cancelled = &cancelled;
  ctx.deadline = deadline;
  ctx.preview_every = PreviewEvery(parsed.value());
  ctx.on_preview = [&](const Preview& p) { preview = p; };
  ctx.on_progress = [&](int step, int total) {
    record.step = step;
    record.total_steps = total;
    if (Clock::now() - last_sync < std::chrono::milliseconds(options_.progress_interval_ms)) {
      return;
    }
    last_sync = Clock::now();
    if (auto c = jobs_->CancelRequested(job_id, owner); c.ok() && c.value()) cancelled = true;
    if (preview) record.preview = PreviewDataUrl(*preview);
    preview.reset();
    // Progress deliveries are best effort: a lost one is superseded by the next.
    (void)Notify(record, WebhookEvent::kLogs,
                 std::to_string(record.attempts) + "/" + std::to_string(step));
    (void)jobs_->PutProgress(record);  // "running" was written (and indexed) before the run
  };
  auto result = pipeline_->Run(parsed.value(), ctx, RunOrigin::kJob);
  record.preview.clear();  // only a running job shows one
  if (!result.ok()) return Finish(message, &record, result.error());

  record.status = JobStatus::kSucceeded;
  record.finished_ms = jobs_->Now();
  record.lease_expires_ms = 0;
  record.result = ResultToJson(result.value(), nullptr);
  if (record.total_steps > 0) record.step = record.total_steps;
  for (auto event : {WebhookEvent::kOutput, WebhookEvent::kCompleted}) {
    if (auto s = Notify(record, event); !s) return Release(job_id, 2, s.error());
  }
  if (auto s = jobs_->Put(record); !s) {
    // The image is stored; the record is not. A redelivery finds the image and records it.
    return Release(job_id, 2, s.error());
  }
  return Delete(JobOutcome::kSucceeded, job_id);
}

}  // namespace imagegen
