// One Lambda invocation: an event in, a payload (or an invocation error) out. Transport-free —
// the Runtime API loop (runtime.h) feeds it, and so can tests.
//
// Event routing:
//   API Gateway REST (1.0), HTTP API (2.0), Function URL -> Api::Handle, the same handlers and
//       error contract as `imagegen serve`; the answer is the proxy response shape.
//   SQS -> for each record the JobRunner (the worker's: pipeline + job record, so GET /jobs/{id}
//       reads the same whichever consumer ran the job), answering
//       {"batchItemFailures": [{"itemIdentifier": messageId}, ...]} (ReportBatchItemFailures).
//       Every record not finished is reported, retryable or not: a retryable one comes back
//       after the visibility timeout; a final one (invalid message, content rejected, or
//       max_attempts reached) is recorded failed, logged with its reason and, being reported on
//       every receive, is moved by SQS's redrive policy to the dead-letter queue after
//       maxReceiveCount receives. (Sending it to the DLQ directly would need the queue URL and
//       sqs:SendMessage; the redrive keeps the function's IAM to what the event source mapping
//       already needs.) Records left when the deadline is near are reported without being
//       attempted.
//   {"prompt": ...} (aws lambda invoke) -> Pipeline::Run; the result JSON, or an invocation
//       error whose errorType is the taxonomy's code ("content_rejected", ...).
//   anything else -> invocation error "imagegen.UnsupportedEvent".
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "http/api.h"
#include "jobs/job_runner.h"
#include "lambda/emf.h"
#include "lambda/events.h"
#include "lambda/runtime.h"

namespace imagegen::lambda {

struct HandlerOptions {
  // API Gateway gives up on an integration after this long (REST: 29 s unless raised; HTTP API:
  // 30 s) and answers 504 itself; we stop first so the client gets our error document and the
  // function does not go on generating for nobody. 0: only the invocation deadline applies.
  // Not applied to Function URLs, which wait for the function's own timeout.
  int api_gateway_timeout_ms = 29000;
  int deadline_margin_ms = 500;  // subtracted from the API Gateway timeout too
};

class LambdaHandler {
 public:
  // `pipeline` is the one `api` serves (direct invocations run it without HTTP).
  LambdaHandler(std::shared_ptr<Pipeline> pipeline, std::shared_ptr<Api> api,
                std::shared_ptr<JobRunner> jobs, std::shared_ptr<EmfWriter> emf,
                HandlerOptions options);

  // Never throws (a throwing handler becomes a 500 proxy response or an invocation error).
  InvocationResult Handle(const std::string& event, const Invocation& invocation);

  // Per-invocation properties of EMF lines (request id, trace id), for the metered model,
  // which runs on the invoking thread.
  static std::map<std::string, std::string> CurrentProperties();

 private:
  InvocationResult HandleHttp(const nlohmann::json& event, EventKind kind,
                              const Invocation& invocation);
  InvocationResult HandleSqs(const nlohmann::json& event, const Invocation& invocation);
  InvocationResult HandleDirect(const nlohmann::json& event, const Invocation& invocation);
  void RecordFailure(const std::string& code);

  std::shared_ptr<Pipeline> pipeline_;
  std::shared_ptr<Api> api_;
  std::shared_ptr<JobRunner> jobs_;
  std::shared_ptr<EmfWriter> emf_;
  HandlerOptions options_;
};

}  // namespace imagegen::lambda
