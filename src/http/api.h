// The HTTP API as a plain function of HttpRequest -> HttpResponse: authentication, CORS,
// request ids, routing, admission control, metrics and one log line per request. The HTTP
// server and the Lambda event adapters both call Api::Handle.
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "http/rate_limit.h"
#include "http/readiness.h"
#include "http/router.h"
#include "pipeline/pipeline.h"

namespace imagegen {

struct OpenAiRequest;

struct ApiOptions {
  std::vector<std::string> api_keys;      // empty: no authentication
  std::vector<std::string> cors_origins;  // exact origins allowed to call from a browser
  int max_concurrent = 2;                 // generations at once
  int max_waiting = 16;                   // requests queued behind them; more get 503
  int generate_timeout_s = 300;           // deadline of a synchronous generation
  bool log_requests = true;               // one JSON line per request on stderr
  // Per caller on the generation routes (POST /generate, /jobs, /v1/images/*, /sdapi/*): the
  // API key's principal, or the client address without keys. Off by default (rate 0).
  RateLimitOptions rate_limit;
};

// Bounded admission: up to `max_concurrent` holders, `max_waiting` waiters; others are refused.
class Admission {
 public:
  Admission(int max_concurrent, int max_waiting)
      : max_concurrent_(max_concurrent), max_waiting_(max_waiting) {}
  // Waits until a slot is free or `deadline` passes. False: refused (queue full or timed out).
  bool Acquire(Clock::time_point deadline);
  void Release();

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int max_concurrent_, max_waiting_;
  int running_ = 0, waiting_ = 0;  // GUARDED_BY(mu_)
};

class A1111Api;

class Api {
 public:
  // The generation, image, health and document routes, plus `routes` (e.g. the jobs routes):
  // every route is known once the Api is constructed.
  Api(std::shared_ptr<Pipeline> pipeline, ApiOptions options, std::vector<RouteSpec> routes = {});
  // Never throws; a throwing handler becomes a 500 "internal" response.
  HttpResponse Handle(HttpRequest& request);
  // An error the transport answers itself (framing, limits, deadlines), in the shape of the
  // route at `path` (OpenAI's under /v1/) and with the headers every answer carries.
  HttpResponse TransportError(const Error& error, const std::string& path) const;
  // (method, pattern) of every route, for checking the OpenAPI document against the code.
  std::vector<std::pair<std::string, std::string>> Routes() const { return router_.Routes(); }
  const ApiOptions& options() const { return options_; }

 private:
  HttpResponse Route(HttpRequest& request);
  bool Authorized(const HttpRequest& request) const;
  // 429 rate_limited (in the route's error shape) when the caller's bucket is empty.
  std::optional<HttpResponse> RateLimited(const HttpRequest& request);
  void ApplyCors(const HttpRequest& request, HttpResponse* response) const;
  void Record(const HttpRequest& request, const HttpResponse& response, double ms) const;

  HttpResponse Generate(HttpRequest& request);
  HttpResponse OpenAiGenerate(HttpRequest& request);
  HttpResponse OpenAiEdit(HttpRequest& request);
  // Runs a parsed OpenAI request: one JSON answer, or Server-Sent Events with stream (events
  // named "<event_prefix>.partial_image" / ".completed").
  HttpResponse OpenAiRun(const OpenAiRequest& parsed, HttpRequest& request,
                         const std::string& event_prefix);
  HttpResponse OpenAiStream(const OpenAiRequest& parsed, HttpRequest& request,
                            const std::string& event_prefix);
  HttpResponse ListImages(HttpRequest& request);
  HttpResponse GetImage(HttpRequest& request);
  // 204, or 404 not_found / 410 gone (Pipeline::DeleteImage), for the caller's own images.
  HttpResponse DeleteImage(HttpRequest& request);
  HttpResponse Ready(HttpRequest& request);
  // `ctx` carries a door's callbacks (progress, previews); its deadline and cancel flag are
  // set here from the request and the generate timeout.
  Result<GenerateResult> RunAdmitted(const GenerateRequest& generate, const HttpRequest& request,
                                     GenerateContext ctx = {});
  // A generation slot, held until the last copy of the pointer is gone (a stream keeps it for
  // as long as it runs); kOverloaded with Retry-After when none frees up in time.
  Result<std::shared_ptr<Admission>> Admit(Clock::time_point deadline);
  Clock::time_point DeadlineFor(const HttpRequest& request) const;

  std::shared_ptr<Pipeline> pipeline_;
  ApiOptions options_;
  Router router_;
  Admission admission_;
  RateLimiter rate_limiter_;
  StoreReadiness readiness_;
  std::shared_ptr<A1111Api> a1111_;  // /sdapi/v1/... (http/a1111.h)
};

// GET /readyz writes and reads back this object under the key prefix (at most every few
// seconds); see Api::Ready and StoreReadiness.
inline constexpr const char* kReadyProbeKey = "readyz.probe";

// Keys: IMAGEGEN_API_KEYS (comma-separated) and/or a file with one key per line ('#' comments).
Result<std::vector<std::string>> LoadApiKeys(const std::string& env_value, const std::string& file);

}  // namespace imagegen
