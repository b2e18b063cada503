#include "jobs/job_events.h"

#include <algorithm>
#include <charconv>
#include <nlohmann/json.hpp>

#include "jobs/jobs_http.h"

namespace imagegen {
namespace {

using json = nlohmann::json;

constexpr const char* kRoute = "/jobs/{id}/events";
// How soon an EventSource reconnects after a stream ends without its final event.
constexpr const char* kRetryField = "retry: 1000\n\n";
constexpr const char* kHeartbeat = ": heartbeat\n\n";

std::string Dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

HttpResponse Fail(const Error& error) {
  HttpResponse response = ErrorResponse(error);
  response.route = kRoute;
  return response;
}

std::optional<int> ParseCount(std::string_view text) {
  int value = 0;
  if (text.empty() || text.size() > 9) return std::nullopt;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value < 0) return std::nullopt;
  return value;
}

// The id a client last saw: the Last-Event-ID header (what EventSource sends when it
// reconnects) or, for clients that cannot set headers, ?last_event_id=. Absent: nullopt.
Result<std::optional<JobEventId>> LastSeen(const HttpRequest& request) {
  std::string text = request.Header("last-event-id");
  if (text.empty()) text = request.Query("last_event_id");
  if (text.empty()) return std::optional<JobEventId>();
  auto id = JobEventId::Parse(text);
  if (!id) {
    return Error::Invalid("Last-Event-ID",
                          "Last-Event-ID must be an event id of this stream (A.P.S)");
  }
  return std::optional<JobEventId>(*id);
}

}  // namespace

std::string JobEventId::ToString() const {
  return std::to_string(attempt) + "." + std::to_string(phase) + "." + std::to_string(step);
}

std::optional<JobEventId> JobEventId::Parse(const std::string& text) {
  size_t first = text.find('.');
  size_t second = first == std::string::npos ? first : text.find('.', first + 1);
  if (second == std::string::npos) return std::nullopt;
  std::string_view view(text);
  auto attempt = ParseCount(view.substr(0, first));
  auto phase = ParseCount(view.substr(first + 1, second - first - 1));
  auto step = ParseCount(view.substr(second + 1));
  if (!attempt || !phase || !step || *phase > 2) return std::nullopt;
  return JobEventId{*attempt, *phase, *step};
}

JobEvent EventForRecord(const JobRecord& record, const HttpRequest& request, bool with_preview) {
  JobEvent event;
  event.name = std::string(JobStatusName(record.status));
  if (IsFinished(record.status)) {
    // Past every id the job had: a job cancelled while waiting for attempt A+1 finishes after
    // the "A+1.0.0" its client may have seen.
    event.id = {record.attempts + 1, 2, 0};
    event.final = true;
    event.data = Dump(JobView(record, request));
    return event;
  }
  json data = {{"job_id", record.job_id}, {"status", event.name}};
  if (record.status == JobStatus::kRunning) {
    event.id = {record.attempts, 1, record.step};
    data["attempt"] = record.attempts;
    data["step"] = record.step;
    data["total"] = record.total_steps;
    if (with_preview && !record.preview.empty()) data["preview"] = record.preview;
  } else {
    event.id = {record.attempts + 1, 0, 0};  // waiting for the next attempt
    data["attempt"] = record.attempts + 1;
    if (record.error)
      data["last_error"] = {{"code", ErrorCodeName(record.error->code)},
                            {"message", record.error->message}};
  }
  event.data = Dump(data);
  return event;
}

std::string FormatEvent(const JobEvent& event) {
  return "id: " + event.id.ToString() + "\nevent: " + event.name + "\ndata: " + event.data + "\n\n";
}

// One open stream, counted while its response exists (a HEAD request's stream is never run,
// but its slot is still given back).
class JobEvents::Slot {
 public:
  explicit Slot(std::atomic<int>* open) : open_(open) {}
  ~Slot() { open_->fetch_sub(1); }
  Slot(const Slot&) = delete;
  Slot& operator=(const Slot&) = delete;

 private:
  std::atomic<int>* open_;
};

JobEvents::JobEvents(std::shared_ptr<JobService> service, JobEventsOptions options)
    : service_(std::move(service)), options_(options) {
  options_.max_streams = std::max(1, options_.max_streams);
  options_.poll_min_ms = std::max(10, options_.poll_min_ms);
  options_.poll_max_ms = std::max(options_.poll_min_ms, options_.poll_max_ms);
}

HttpResponse JobEvents::Handle(HttpRequest& request) {
  const std::string job_id = request.path_params["id"];
  auto last = LastSeen(request);
  if (!last.ok()) return Fail(last.error());
  auto record = service_->Get(job_id, request.principal);
  if (!record.ok()) return Fail(record.error());
  if (last.value() && IsFinished(record->status) &&
      !(*last.value() < EventForRecord(record.value(), request, false).id)) {
    HttpResponse done = JsonResponse(204, "");  // seen it all: EventSource stops on 204
    done.content_type.clear();
    done.route = kRoute;
    return done;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) {
      Error e = Error::Make(ErrorCode::kOverloaded, "the server is shutting down");
      e.retry_after_s = 1;
      return Fail(e);
    }
  }
  if (open_.fetch_add(1) >= options_.max_streams) {
    open_.fetch_sub(1);
    Error e = Error::Make(ErrorCode::kOverloaded, "too many event streams are open; retry shortly");
    e.retry_after_s = 2;
    return Fail(e);
  }
  auto slot = std::make_shared<Slot>(&open_);
  auto view = std::make_shared<HttpRequest>(request);
  view->body.clear();
  const bool with_preview = request.Query("preview") == "1";
  HttpResponse response;
  response.content_type = "text/event-stream; charset=utf-8";
  response.route = kRoute;
  response.SetHeader("Cache-Control", "no-cache");
  response.SetHeader("X-Accel-Buffering", "no");  // nginx and friends: pass events on at once
  std::optional<JobEventId> seen = last.value();
  response.stream = [self = shared_from_this(), slot, view, job_id, seen,
                     with_preview](const BodyWriter& write) {
    self->Serve(job_id, view->principal, *view, seen, with_preview, write);
  };
  return response;
}

void JobEvents::Serve(const std::string& job_id, const std::string& owner,
                      const HttpRequest& request, std::optional<JobEventId> last, bool with_preview,
                      const BodyWriter& write) {
  const auto started = Clock::now();
  auto end = started + std::chrono::seconds(options_.max_stream_s);
  // Only the Lambda door gives requests a deadline, and it buffers the stream: the client sees
  // nothing until the stream ends. There a stream is a long poll: it ends after the first new
  // events (or before the deadline), and the client's reconnect with Last-Event-ID asks for
  // the next ones.
  const bool buffered = request.deadline != Clock::time_point::max();
  if (buffered) end = std::min(end, request.deadline - std::chrono::milliseconds(500));
  if (!write(kRetryField)) return;
  auto last_write = Clock::now();
  int pause_ms = options_.poll_min_ms;
  for (;;) {
    if (request.cancelled != nullptr && request.cancelled->load()) return;  // client gone
    auto record = service_->Get(job_id, owner);
    if (!record.ok() && record.error().code == ErrorCode::kNotFound) return;  // expired
    if (record.ok()) {
      JobEvent event = EventForRecord(record.value(), request, with_preview);
      if (!last || *last < event.id) {
        if (!write(FormatEvent(event))) return;
        last = event.id;
        last_write = Clock::now();
        pause_ms = options_.poll_min_ms;
        if (event.final || buffered) return;
      } else if (event.final) {
        return;
      } else {
        pause_ms = std::min(pause_ms * 2, options_.poll_max_ms);
      }
    } else {
      pause_ms = options_.poll_max_ms;  // the store failed this read: try again later
    }
    if (Clock::now() - last_write >= std::chrono::seconds(options_.heartbeat_s)) {
      if (!write(kHeartbeat)) return;
      last_write = Clock::now();
    }
    if (Clock::now() + std::chrono::milliseconds(pause_ms) >= end) return;
    if (!Pause(pause_ms)) return;
  }
}

bool JobEvents::Pause(int ms) {
  std::unique_lock<std::mutex> lock(mu_);
  wake_.wait_for(lock, std::chrono::milliseconds(ms), [this] { return stopping_; });
  return !stopping_;
}

void JobEvents::Shutdown() {
  std::lock_guard<std::mutex> lock(mu_);
  stopping_ = true;
  wake_.notify_all();
}

std::vector<RouteSpec> JobEventRoutes(std::shared_ptr<JobEvents> events) {
  return {{"GET", kRoute, [events](HttpRequest& request) { return events->Handle(request); }}};
}

}  // namespace imagegen
