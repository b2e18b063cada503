// Webhooks: a job may name a URL that is told of its progress (POST /jobs "webhook" and
// "webhook_events_filter", Cog's names). Deliveries follow the Standard Webhooks scheme so a
// receiver can verify them with any of its libraries:
//   webhook-id         msg_<32 hex>, the same for every attempt of one delivery (dedupe on it)
//   webhook-timestamp  epoch seconds of this attempt
//   webhook-signature  v1,<base64 HMAC-SHA256(secret, "<id>.<timestamp>.<body>")>
// with the per-deployment secret IMAGEGEN_WEBHOOK_SECRET ("whsec_<base64>"). Receivers should
// refuse timestamps more than 5 minutes from their clock (the libraries' default) and ids they
// have seen: that makes a captured delivery useless for a replay.
//
// Events (Cog's names): "start" (a run began: running), "logs" (progress, at most once per
// progress sync of the runner), "output" (the images are stored: succeeded), "completed" (the
// job is final: succeeded, failed or cancelled). No filter means all four. The body is the job
// as GET /jobs/{id} returns it at that moment, plus "event".
//
// The outbox is durable and lives in the ObjectStore next to the job records
// (<key prefix>webhooks/outbox/<id>.json, create-only, so one delivery is written once however
// often its job's message is redelivered). The runner writes an entry before the record that
// makes the state change visible, and so before the queue message is acknowledged; a crash
// after the write leaves the entry for whoever delivers next. Delivery is at-least-once: the
// deliverer (a thread of every `imagegen serve` and `imagegen worker` on the store) sends due
// entries, deletes an entry only after a 2xx, and otherwise retries with exponential backoff
// and jitter; after max_attempts attempts or max_age_ms it gives up, moving the entry to
// <key prefix>webhooks/failed/<id>.json with the last error (and a log line and metric).
// Several deliverers on one store may both send an entry (the claim is not atomic); receivers
// dedupe on webhook-id.
//
// Each attempt re-checks the URL's address (webhook_target.h) and connects only to it; no
// redirect is followed (a 3xx is a failed attempt), at most max_response_bytes of the
// answer are kept (the rest is dropped as it arrives), and the exchange is bounded by timeout_ms.
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "aws/http.h"
#include "core/clock.h"
#include "jobs/job_store.h"
#include "jobs/webhook_target.h"
#include "store/object_store.h"

namespace imagegen {

enum class WebhookEvent { kStart, kOutput, kLogs, kCompleted };
std::string_view WebhookEventName(WebhookEvent event);
std::optional<WebhookEvent> WebhookEventFromName(std::string_view name);

// What a job asked for; JobRecord::webhook holds it as {"url", "events", "base_url"}.
struct WebhookSpec {
  std::string url;
  std::vector<std::string> events;  // event names; empty: all
  std::string base_url;             // the API's base URL at submission (links in the body)
};
nlohmann::json WebhookSpecToJson(const WebhookSpec& spec);
// nullopt for null or a malformed value.
std::optional<WebhookSpec> WebhookSpecFromJson(const nlohmann::json& json);
// Reads "webhook" and "webhook_events_filter" from a POST /jobs body and removes them, so the
// rest is a generation request. nullopt when there is no webhook; kInvalidRequest for a filter
// without a webhook, an unknown event or a malformed URL.
Result<std::optional<WebhookSpec>> TakeWebhookFields(nlohmann::json* body);

// IMAGEGEN_WEBHOOK_SECRET: "whsec_<base64>" or "<base64>", at least 16 bytes once decoded
// (the Standard Webhooks libraries decode it the same way). The raw key bytes.
Result<std::string> DecodeWebhookSecret(const std::string& text, const std::string& field);
// "v1,<base64 HMAC-SHA256(key, id.timestamp.body)>".
std::string SignWebhook(const std::string& key, const std::string& id, int64_t timestamp_s,
                        const std::string& body);

struct WebhookOptions {
  std::string key;  // the decoded secret; empty: webhooks are refused at submission
  WebhookAddressPolicy policy;
  std::string prefix = "webhooks/";       // key prefix (owner prefix included) of the outbox
  int retry_base_ms = 5000;               // first retry after about this long, doubling
  int retry_cap_ms = 15 * 60 * 1000;      // longest wait between attempts
  int max_attempts = 12;                  // then give up
  int64_t max_age_ms = 24 * 3600 * 1000;  // or when the first attempt is this old
  int timeout_ms = 10000;                 // one attempt, connect included
  size_t max_response_bytes = 64 * 1024;  // kept of the receiver's answer
  int poll_ms = 500;                      // how often the deliverer looks for due entries
  EpochClock now_ms;                      // empty: NowEpochMs
};

// Thread-safe. `store` must outlive the outbox.
class WebhookOutbox {
 public:
  WebhookOutbox(ObjectStore& store, WebhookOptions options,
                std::shared_ptr<aws::HttpTransport> transport);
  ~WebhookOutbox();

  bool enabled() const { return !options_.key.empty(); }
  // Whether a job may name `url`: webhooks configured, URL syntax, the address policy.
  // kInvalidRequest (field "webhook") otherwise.
  Status CheckTarget(const std::string& url) const;

  // Writes the delivery of `event` for `record`, if its webhook wants that event; returns once
  // the entry is stored. `seq` tells apart deliveries of one event (the attempt of "start",
  // attempt and step of "logs"). Create-only: the same (job, event, seq) is one delivery.
  Status Enqueue(const JobRecord& record, WebhookEvent event, const std::string& seq = "");

  // One pass over the outbox: sends every due entry. Returns how many were delivered; `next_due_ms`
  // (optional) receives the earliest time an entry left pending becomes due (0: none).
  int DeliverDue(int64_t* next_due_ms = nullptr);
  // A thread running DeliverDue every poll_ms (sooner after an Enqueue) until Stop.
  void Start();
  void Stop();

 private:
  int64_t Now() const;
  std::string OutboxKey(const std::string& id) const;
  // True when delivered; otherwise *next_due_ms is lowered to the entry's next attempt.
  bool DeliverEntry(const std::string& key, int64_t* next_due_ms);
  std::optional<std::string> Attempt(const nlohmann::json& entry);
  // Records a failed attempt: the next one's time (returned), or the entry given up (0).
  int64_t Retry(const std::string& key, nlohmann::json entry, const std::string& error);
  int64_t BackoffMs(int attempts) const;

  ObjectStore& store_;
  WebhookOptions options_;
  std::shared_ptr<aws::HttpTransport> transport_;
  std::mutex mu_;
  std::condition_variable wake_;
  bool stopping_ = false;  // GUARDED_BY(mu_)
  bool pending_ = false;   // GUARDED_BY(mu_): an Enqueue since the last pass
  std::thread thread_;
};

}  // namespace imagegen
