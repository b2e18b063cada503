#include "jobs/webhook.h"

#include <algorithm>
#include <random>

#include "aws/encoding.h"
#include "core/log.h"
#include "core/metrics.h"
#include "jobs/jobs_http.h"

namespace imagegen {
namespace {

using json = nlohmann::json;

constexpr const char* kEventNames[] = {"start", "output", "logs", "completed"};
constexpr const char* kUrlField = "webhook";
constexpr const char* kFilterField = "webhook_events_filter";

std::string Dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

// The delivery's id: stable across attempts and across redeliveries of the job's message.
std::string DeliveryId(const JobRecord& record, WebhookEvent event, const std::string& seq) {
  std::string name = record.owner + "\n" + record.job_id + "\n" +
                     std::string(WebhookEventName(event)) + "\n" + seq;
  return "msg_" + aws::Sha256Hex(name).substr(0, 32);
}

bool Wants(const WebhookSpec& spec, WebhookEvent event) {
  if (spec.events.empty()) return true;
  return std::find(spec.events.begin(), spec.events.end(), WebhookEventName(event)) !=
         spec.events.end();
}

void CountDelivery(const char* outcome) {
  GlobalMetrics().Add("imagegen_webhook_deliveries_total", {{"outcome", outcome}});
}

}  // namespace

std::string_view WebhookEventName(WebhookEvent event) {
  return kEventNames[static_cast<int>(event)];
}

std::optional<WebhookEvent> WebhookEventFromName(std::string_view name) {
  for (int i = 0; i < 4; ++i) {
    if (name == kEventNames[i]) return static_cast<WebhookEvent>(i);
  }
  return std::nullopt;
}

json WebhookSpecToJson(const WebhookSpec& spec) {
  return {{"url", spec.url}, {"events", spec.events}, {"base_url", spec.base_url}};
}

std::optional<WebhookSpec> WebhookSpecFromJson(const json& j) {
  if (!j.is_object() || !j.contains("url") || !j["url"].is_string()) return std::nullopt;
  WebhookSpec spec;
  spec.url = j["url"].get<std::string>();
  spec.base_url = j.value("base_url", "");
  if (j.contains("events") && j["events"].is_array()) {
    for (const auto& e : j["events"]) {
      if (e.is_string()) spec.events.push_back(e.get<std::string>());
    }
  }
  return spec;
}

Result<std::optional<WebhookSpec>> TakeWebhookFields(json* body) {
  json url = body->contains(kUrlField) ? (*body)[kUrlField] : json();
  json filter = body->contains(kFilterField) ? (*body)[kFilterField] : json();
  body->erase(kUrlField);
  body->erase(kFilterField);
  if (url.is_null()) {
    if (!filter.is_null()) {
      return Error::Invalid(kFilterField, "webhook_events_filter needs a webhook");
    }
    return std::optional<WebhookSpec>();
  }
  if (!url.is_string()) return Error::Invalid(kUrlField, "webhook must be a URL string");
  WebhookSpec spec;
  spec.url = url.get<std::string>();
  if (auto s = CheckWebhookUrlSyntax(spec.url, kUrlField); !s) return s.error();
  if (!filter.is_null()) {
    if (!filter.is_array()) {
      return Error::Invalid(kFilterField, "webhook_events_filter must be an array of events");
    }
    for (const auto& e : filter) {
      if (!e.is_string() || !WebhookEventFromName(e.get<std::string>())) {
        return Error::Invalid(kFilterField,
                              "webhook_events_filter entries must be start, output, logs or "
                              "completed");
      }
      std::string name = e.get<std::string>();
      if (std::find(spec.events.begin(), spec.events.end(), name) == spec.events.end()) {
        spec.events.push_back(name);
      }
    }
    if (spec.events.empty()) {
      return Error::Invalid(kFilterField, "webhook_events_filter must name at least one event");
    }
  }
  return std::optional<WebhookSpec>(std::move(spec));
}

Result<std::string> DecodeWebhookSecret(const std::string& text, const std::string& field) {
  std::string_view encoded = text;
  if (encoded.starts_with("whsec_")) encoded.remove_prefix(6);
  auto key = aws::Base64Decode(encoded);
  if (!key || key->size() < 16) {
    return Error::Invalid(field, field +
                                     " must be \"whsec_\" followed by the base64 of at least 16 "
                                     "random bytes (e.g. whsec_$(openssl rand -base64 32))");
  }
  return *key;
}

std::string SignWebhook(const std::string& key, const std::string& id, int64_t timestamp_s,
                        const std::string& body) {
  std::string signed_content = id + "." + std::to_string(timestamp_s) + "." + body;
  return "v1," + aws::Base64Encode(aws::HmacSha256(key, signed_content));
}

WebhookOutbox::WebhookOutbox(ObjectStore& store, WebhookOptions options,
                             std::shared_ptr<aws::HttpTransport> transport)
    : store_(store), options_(std::move(options)), transport_(std::move(transport)) {
  GlobalMetrics().Describe("imagegen_webhook_deliveries_total", "counter",
                           "Webhook delivery attempts, by outcome (delivered, retried, gave_up)");
}

WebhookOutbox::~WebhookOutbox() { Stop(); }

int64_t WebhookOutbox::Now() const { return options_.now_ms ? options_.now_ms() : NowEpochMs(); }

std::string WebhookOutbox::OutboxKey(const std::string& id) const {
  return options_.prefix + "outbox/" + id + ".json";
}

Status WebhookOutbox::CheckTarget(const std::string& url) const {
  if (!enabled()) {
    return Error::Invalid(kUrlField,
                          "webhooks are not configured on this server (IMAGEGEN_WEBHOOK_SECRET)");
  }
  auto target = ResolveWebhookTarget(url, options_.policy, kUrlField);
  if (!target.ok()) return target.error();
  return Status::Ok();
}

Status WebhookOutbox::Enqueue(const JobRecord& record, WebhookEvent event, const std::string& seq) {
  auto spec = WebhookSpecFromJson(record.webhook);
  if (!spec || !enabled() || !Wants(*spec, event)) return Status::Ok();
  json body = JobViewJson(record, spec->base_url);
  body["event"] = std::string(WebhookEventName(event));
  std::string id = DeliveryId(record, event, seq);
  int64_t now = Now();
  json entry = {{"id", id},
                {"job_id", record.job_id},
                {"event", std::string(WebhookEventName(event))},
                {"url", spec->url},
                {"body", Dump(body)},
                {"created_ms", now},
                {"attempts", 0},
                {"next_attempt_ms", now}};
  auto created = store_.Create(OutboxKey(id), Dump(entry), "application/json", {});
  if (!created.ok()) return created.error();
  {
    std::lock_guard<std::mutex> lock(mu_);
    pending_ = true;
  }
  wake_.notify_all();
  return Status::Ok();
}

int64_t WebhookOutbox::BackoffMs(int attempts) const {
  int64_t delay = options_.retry_base_ms;
  for (int i = 1; i < attempts && delay < options_.retry_cap_ms; ++i) delay *= 2;
  delay = std::min<int64_t>(delay, options_.retry_cap_ms);
  // "Equal jitter": half fixed, half random, so that receivers coming back from an outage are
  // not hit by every pending delivery at once and the wait still grows.
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return delay / 2 + std::uniform_int_distribution<int64_t>(0, delay / 2)(rng);
}

// nullopt: delivered; otherwise why not.
std::optional<std::string> WebhookOutbox::Attempt(const json& entry) {
  const std::string url = entry.value("url", "");
  auto target = ResolveWebhookTarget(url, options_.policy, kUrlField);
  if (!target.ok()) return target.error().message;
  const std::string id = entry.value("id", "");
  const std::string body = entry.value("body", "");
  int64_t timestamp_s = Now() / 1000;
  aws::HttpRequest request;
  request.method = "POST";
  request.url = target->url;
  request.body = body;
  request.pinned_address = target->address;
  request.timeout_ms = options_.timeout_ms;
  request.connect_timeout_ms = std::min(options_.timeout_ms, 5000);
  request.max_response_bytes = options_.max_response_bytes;
  request.headers = {{"Content-Type", "application/json"},
                     {"webhook-id", id},
                     {"webhook-timestamp", std::to_string(timestamp_s)},
                     {"webhook-signature", SignWebhook(options_.key, id, timestamp_s, body)}};
  aws::HttpResponse response = transport_->Perform(request);
  if (response.failure != aws::TransportFailure::kNone) return response.failure_message;
  if (response.status >= 200 && response.status < 300) return std::nullopt;
  return "HTTP " + std::to_string(response.status) +
         (response.status >= 300 && response.status < 400 ? " (redirects are not followed)" : "");
}

int64_t WebhookOutbox::Retry(const std::string& key, json entry, const std::string& error) {
  int attempts = entry.value("attempts", 0) + 1;
  int64_t now = Now();
  entry["attempts"] = attempts;
  entry["last_error"] = error;
  entry["last_attempt_ms"] = now;
  bool too_old = now - entry.value("created_ms", now) >= options_.max_age_ms;
  if (attempts >= options_.max_attempts || too_old) {
    entry["gave_up_ms"] = now;
    std::string failed_key = options_.prefix + "failed/" + entry.value("id", "") + ".json";
    if (store_.Put(failed_key, Dump(entry), "application/json", {}).ok()) {
      (void)store_.Delete(key);
    }
    CountDelivery("gave_up");
    Log("warn", "webhook delivery given up",
        {{"webhook_id", entry.value("id", "")},
         {"job_id", entry.value("job_id", "")},
         {"attempts", attempts},
         {"error", error}});
    return 0;
  }
  int64_t next = now + BackoffMs(attempts);
  entry["next_attempt_ms"] = next;
  (void)store_.Put(key, Dump(entry), "application/json", {});
  CountDelivery("retried");
  Log("info", "webhook delivery failed; will retry",
      {{"webhook_id", entry.value("id", "")},
       {"attempts", attempts},
       {"next_attempt_ms", next},
       {"error", error}});
  return next;
}

namespace {

void LowerTo(int64_t* earliest, int64_t when) {
  if (when > 0 && (*earliest == 0 || when < *earliest)) *earliest = when;
}

}  // namespace

bool WebhookOutbox::DeliverEntry(const std::string& key, int64_t* next_due_ms) {
  auto data = store_.Get(key, nullptr);
  if (!data.ok()) return false;
  json entry = json::parse(data.value(), nullptr, false);
  if (!entry.is_object()) {
    Log("error", "unreadable webhook outbox entry", {{"key", key}});
    return false;
  }
  int64_t now = Now();
  if (int64_t due = entry.value("next_attempt_ms", int64_t{0}); due > now) {
    LowerTo(next_due_ms, due);
    return false;
  }
  // Claim it for the length of one attempt, so that another deliverer on the store skips it.
  json claimed = entry;
  claimed["next_attempt_ms"] = now + options_.timeout_ms + 5000;
  (void)store_.Put(key, Dump(claimed), "application/json", {});
  auto failure = Attempt(entry);
  if (!failure) {
    (void)store_.Delete(key);
    CountDelivery("delivered");
    Log("info", "webhook delivered",
        {{"webhook_id", entry.value("id", "")},
         {"job_id", entry.value("job_id", "")},
         {"event", entry.value("event", "")}});
    return true;
  }
  LowerTo(next_due_ms, Retry(key, std::move(entry), *failure));
  return false;
}

int WebhookOutbox::DeliverDue(int64_t* next_due_ms) {
  int delivered = 0;
  int64_t earliest = 0;
  std::string cursor;
  do {
    auto page = store_.List(options_.prefix + "outbox/", 100, cursor);
    if (!page.ok()) return delivered;
    for (const auto& object : page->objects) {
      if (!object.key.ends_with(".json")) continue;
      if (DeliverEntry(object.key, &earliest)) ++delivered;
    }
    cursor = page->next_cursor;
  } while (!cursor.empty());
  if (next_due_ms != nullptr) *next_due_ms = earliest;
  return delivered;
}

void WebhookOutbox::Start() {
  if (!enabled() || thread_.joinable()) return;
  thread_ = std::thread([this] {
    std::unique_lock<std::mutex> lock(mu_);
    while (!stopping_) {
      pending_ = false;
      lock.unlock();
      int64_t next_due = 0;
      DeliverDue(&next_due);
      // Wake for the earliest retry of ours, or poll for entries other processes wrote.
      int64_t wait_ms = options_.poll_ms;
      if (next_due > 0) wait_ms = std::clamp<int64_t>(next_due - Now(), 1, wait_ms);
      lock.lock();
      wake_.wait_for(lock, std::chrono::milliseconds(wait_ms),
                     [this] { return stopping_ || pending_; });
    }
  });
}

void WebhookOutbox::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

}  // namespace imagegen
