// The Lambda Runtime API (2018-06-01) and the loop that serves it: get the next event, hand it
// to the handler, post the response or an invocation error, repeat.
//
// Differences from aws-lambda-cpp worth knowing: every invocation runs inside try/catch (one bad
// event never ends the process), invocation errors carry Lambda-Runtime-Function-Error-Type,
// init failures go to /runtime/init/error, _X_AMZN_TRACE_ID is set per invocation, and the
// handler gets the deadline (minus a safety margin) so that it answers before Lambda kills it.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "core/context.h"
#include "core/error.h"

namespace imagegen::lambda {

struct Invocation {
  std::string request_id;    // Lambda-Runtime-Aws-Request-Id
  std::string function_arn;  // Lambda-Runtime-Invoked-Function-Arn
  std::string trace_id;      // Lambda-Runtime-Trace-Id
  int64_t deadline_ms = 0;   // Lambda-Runtime-Deadline-Ms (epoch ms); 0: none given
  // When work must stop: the invocation's deadline minus the safety margin that leaves time to
  // answer (steady clock).
  Clock::time_point deadline = Clock::time_point::max();
};

struct InvocationResult {
  bool ok = true;
  std::string payload;     // ok: the response document
  std::string error_type;  // !ok: errorType and Lambda-Runtime-Function-Error-Type
  std::string error_message;

  static InvocationResult Error(std::string type, std::string message) {
    InvocationResult r;
    r.ok = false;
    r.error_type = std::move(type);
    r.error_message = std::move(message);
    return r;
  }
};

struct NextEvent {
  Invocation invocation;  // deadline not yet set: the loop applies the margin
  std::string event;
};

// The seam between the loop and the HTTP exchange, so the loop can be driven without sockets.
class RuntimeApi {
 public:
  virtual ~RuntimeApi() = default;
  // Blocks until an event arrives (no timeout: the sandbox may be frozen in between).
  virtual Result<NextEvent> Next() = 0;
  // The HTTP status the Runtime API answered (202 accepted; 413 too large; 500 exit now), or
  // an error when the exchange itself failed.
  virtual Result<int> PostResponse(const std::string& request_id, const std::string& payload) = 0;
  virtual Result<int> PostError(const std::string& request_id, const std::string& error_type,
                                const std::string& message) = 0;
  virtual Result<int> PostInitError(const std::string& error_type, const std::string& message) = 0;
};

// libcurl over http://{host_port}/2018-06-01/... (host_port: AWS_LAMBDA_RUNTIME_API). One
// keep-alive connection; proxies are never used for it.
std::unique_ptr<RuntimeApi> MakeCurlRuntimeApi(const std::string& host_port);

// {"errorMessage", "errorType", "stackTrace": []}, the shape Lambda shows to the caller.
std::string ErrorDocument(const std::string& error_type, const std::string& message);

using InvocationHandler =
    std::function<InvocationResult(const std::string& event, const Invocation& invocation)>;

struct LoopOptions {
  // Time kept back from the invocation deadline to build and post the answer. Capped at a fifth
  // of the time remaining, so short timeouts still leave most of their time for work.
  int deadline_margin_ms = 500;
  int max_invocations = 0;  // > 0: return after this many (tests); 0: forever
  int max_next_failures = 3;
};

// Runs until the Runtime API fails `max_next_failures` times in a row, answers 500, or
// `max_invocations` were served. Returns the process exit code (0 only for max_invocations).
int RunLoop(RuntimeApi& api, const InvocationHandler& handler, const LoopOptions& options);

// The steady-clock point at which work on an invocation must stop. `deadline_ms` is epoch ms
// (Lambda-Runtime-Deadline-Ms); `now_ms` the current epoch ms. 0 means no deadline.
Clock::time_point WorkDeadline(int64_t deadline_ms, int64_t now_ms, Clock::time_point steady_now,
                               int margin_ms);

}  // namespace imagegen::lambda
