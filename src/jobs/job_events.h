// GET /jobs/{id}/events: a job's progress as Server-Sent Events, for the web page and curl.
//
//   event: queued      data: {"job_id", "status": "queued", "attempt"}
//   event: running     data: {"job_id", "status": "running", "attempt", "step", "total",
//                             "preview"?: "data:image/jpeg;base64,..." (with ?preview=1)}
//   event: succeeded | failed | cancelled
//                      data: the job as GET /jobs/{id} answers it (result, or error code and
//                      message); the stream ends after it.
//
// Where progress comes from: the job record (JobStore), which the runner holding the job writes
// every JobRunnerOptions::progress_interval_ms (1 s) wherever it runs (an in-process worker,
// `imagegen worker` on another machine, the SQS-triggered Lambda). A stream polls the record,
// every poll_min_ms after a change, backing off to poll_max_ms while nothing changes; so an
// event reaches the client at most progress_interval_ms + poll_max_ms (about 2 s) after the
// step it reports, plus a store read. There is no event log: events are the states the polls
// see, so quick steps between two polls are reported once, at the latest step.
//
// Event ids: "A.P.S" (attempt, phase 0 queued / 1 running / 2 finished, step), ordered as
// tuples. A queued record after a failed attempt A is "A+1.0.0": the next attempt's wait. A
// client resuming with Last-Event-ID (the header, or ?last_event_id= for clients without
// EventSource) gets only events with a larger id, so nothing it saw is repeated. A client that
// already saw the final event gets 204 (EventSource stops reconnecting on 204).
//
// Bounds: at most max_streams streams at once (more: 503 overloaded + Retry-After); each ends
// after max_stream_s (or the request's deadline, e.g. the Lambda door's) without a final event:
// the client reconnects with Last-Event-ID. A comment line every heartbeat_s keeps proxies from
// closing an idle stream. Shutdown() ends every stream at once (a draining server then has no
// stream holding its drain). A stream holds one of the HTTP server's handler threads while it
// is open: keep max_streams well below ServerOptions::threads. Where the door buffers the
// stream (Lambda: the request has a deadline) a stream is a long poll: it ends after the first
// new event, and EventSource's reconnect (retry: 1000) with Last-Event-ID fetches the next.
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "http/router.h"
#include "jobs/job_service.h"

namespace imagegen {

struct JobEventsOptions {
  int max_streams = 16;
  int max_stream_s = 300;
  int heartbeat_s = 15;
  int poll_min_ms = 100;
  int poll_max_ms = 1000;
};

// The position of an event in a job's life: ordered, comparable, printed as "A.P.S".
struct JobEventId {
  int attempt = 0, phase = 0, step = 0;
  auto operator<=>(const JobEventId&) const = default;
  std::string ToString() const;
  static std::optional<JobEventId> Parse(const std::string& text);
};

// One event as it goes on the wire.
struct JobEvent {
  JobEventId id;
  std::string name;  // queued | running | succeeded | failed | cancelled
  std::string data;  // one line of JSON
  bool final = false;
};

// The event a record reads as. `with_preview`: running events carry the record's preview.
JobEvent EventForRecord(const JobRecord& record, const HttpRequest& request, bool with_preview);
// "id: ...\nevent: ...\ndata: ...\n\n".
std::string FormatEvent(const JobEvent& event);

// Thread-safe. Made with std::make_shared (streams hold it).
class JobEvents : public std::enable_shared_from_this<JobEvents> {
 public:
  JobEvents(std::shared_ptr<JobService> service, JobEventsOptions options);

  // GET /jobs/{id}/events: 404 as GET /jobs/{id}, 400 for a malformed Last-Event-ID, 503 when
  // max_streams are open, else 200 text/event-stream (or 204, see above).
  HttpResponse Handle(HttpRequest& request);
  // Ends every open stream and refuses new ones (503); for a server that is draining.
  void Shutdown();
  int OpenStreams() const { return open_.load(); }

 private:
  class Slot;
  void Serve(const std::string& job_id, const std::string& owner, const HttpRequest& request,
             std::optional<JobEventId> last, bool with_preview, const BodyWriter& write);
  // Sleeps `ms` or until Shutdown(); false once shut down.
  bool Pause(int ms);

  std::shared_ptr<JobService> service_;
  JobEventsOptions options_;
  std::atomic<int> open_{0};
  std::mutex mu_;
  std::condition_variable wake_;
  bool stopping_ = false;  // GUARDED_BY(mu_)
};

// The route, for the Api's constructor (app/services.cc wires it beside JobRoutes).
std::vector<RouteSpec> JobEventRoutes(std::shared_ptr<JobEvents> events);

}  // namespace imagegen
