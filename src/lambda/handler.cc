#include "lambda/handler.h"

#include <iostream>
#include <nlohmann/json.hpp>

#include "core/clock.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/request_json.h"

namespace imagegen::lambda {
namespace {

using json = nlohmann::json;

// The invocation being handled on this thread (the runtime handles one at a time).
thread_local std::map<std::string, std::string> t_properties;

std::string Dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

// Sets the thread's EMF properties for the duration of one invocation.
class PropertiesScope {
 public:
  explicit PropertiesScope(const Invocation& invocation) {
    t_properties = {{"lambda_request_id", invocation.request_id}};
    if (!invocation.trace_id.empty()) t_properties["trace_id"] = invocation.trace_id;
  }
  ~PropertiesScope() { t_properties.clear(); }
  PropertiesScope(const PropertiesScope&) = delete;
  PropertiesScope& operator=(const PropertiesScope&) = delete;
};

}  // namespace

LambdaHandler::LambdaHandler(std::shared_ptr<Pipeline> pipeline, std::shared_ptr<Api> api,
                             std::shared_ptr<JobRunner> jobs, std::shared_ptr<EmfWriter> emf,
                             HandlerOptions options)
    : pipeline_(std::move(pipeline)),
      api_(std::move(api)),
      jobs_(std::move(jobs)),
      emf_(std::move(emf)),
      options_(options) {}

std::map<std::string, std::string> LambdaHandler::CurrentProperties() { return t_properties; }

void LambdaHandler::RecordFailure(const std::string& code) {
  emf_->Failure(pipeline_->model().Name(), code, t_properties);
}

InvocationResult LambdaHandler::Handle(const std::string& event_text,
                                       const Invocation& invocation) {
  PropertiesScope scope(invocation);
  GlobalMetrics().Add("imagegen_lambda_invocations_total", {});
  try {
    json event = json::parse(event_text, nullptr, /*allow_exceptions=*/false);
    EventKind kind = ClassifyEvent(event);
    switch (kind) {
      case EventKind::kApiGatewayV1:
      case EventKind::kApiGatewayV2:
        return HandleHttp(event, kind, invocation);
      case EventKind::kSqs:
        return HandleSqs(event, invocation);
      case EventKind::kDirect:
        return HandleDirect(event, invocation);
      case EventKind::kUnknown:
        break;
    }
    RecordFailure("invalid_request");
    return InvocationResult::Error(
        "imagegen.UnsupportedEvent",
        event.is_discarded()
            ? "the event is not JSON"
            : "unsupported event: expected an API Gateway (REST or HTTP API), Function URL or "
              "SQS event, or a generation request {\"prompt\": ...}");
  } catch (const std::exception& e) {
    Log("error", "invocation threw",
        {{"lambda_request_id", invocation.request_id}, {"error", e.what()}});
    RecordFailure("internal");
    return InvocationResult::Error("Runtime.UnhandledException", e.what());
  } catch (...) {
    RecordFailure("internal");
    return InvocationResult::Error("Runtime.UnhandledException", "unknown exception");
  }
}

InvocationResult LambdaHandler::HandleHttp(const json& event, EventKind kind,
                                           const Invocation& invocation) {
  auto parsed = kind == EventKind::kApiGatewayV1 ? RequestFromApiGatewayV1(event)
                                                 : RequestFromApiGatewayV2(event);
  HttpResponse response;
  if (!parsed.ok()) {
    response = ErrorResponse(parsed.error());
    RecordFailure(response.error_code);
  } else {
    HttpRequest& request = parsed.value();
    if (request.request_id.empty()) request.request_id = invocation.request_id;
    request.deadline = invocation.deadline;
    bool function_url = request.base_url.find(".lambda-url.") != std::string::npos;
    if (options_.api_gateway_timeout_ms > 0 && !function_url) {
      auto gateway = Clock::now() + std::chrono::milliseconds(options_.api_gateway_timeout_ms -
                                                              options_.deadline_margin_ms);
      request.deadline = std::min(request.deadline, gateway);
    }
    response = api_->Handle(request);  // never throws; logs one line; counts HTTP metrics
    BufferStream(&response);           // API Gateway takes one body: a stream is sent whole
    if (!response.error_code.empty()) RecordFailure(response.error_code);
  }
  json out = ProxyResponse(response, kind);
  std::string payload = Dump(out);
  if (payload.size() > kMaxResponseBytes) {
    // Lambda would refuse the response and API Gateway would answer a bare 502; say why instead.
    HttpResponse too_large = ErrorResponse(
        Error::Make(ErrorCode::kPayloadTooLarge,
                    "the response is larger than Lambda's 6 MB limit; fetch the image through its "
                    "presigned_url instead"));
    too_large.SetHeader("X-Request-Id", parsed.ok() ? parsed->request_id : invocation.request_id);
    RecordFailure(too_large.error_code);
    payload = Dump(ProxyResponse(too_large, kind));
  }
  return InvocationResult{true, std::move(payload), {}, {}};
}

InvocationResult LambdaHandler::HandleSqs(const json& event, const Invocation& invocation) {
  json failures = json::array();
  for (const auto& record : event["Records"]) {
    QueueMessage message = MessageFromSqsRecord(record);
    json log = {{"lambda_request_id", invocation.request_id},
                {"message_id", message.id},
                {"receive_count", message.receive_count}};
    auto fail = [&](const Error& error, const char* msg, bool final) {
      std::string code(ErrorCodeName(error.code));
      log["error_code"] = code;
      log["error"] = error.message;
      // A final failure is reported too: SQS's redrive moves it to the DLQ after
      // maxReceiveCount receives, and this log line carries its reason.
      log["disposition"] = final ? "dead-letter" : "retry";
      Log(final ? "error" : "warn", msg, log);
      GlobalMetrics().Add("imagegen_errors_total", {{"code", code}});
      RecordFailure(code);
      // A record without a messageId makes the answer malformed, and SQS then retries the
      // whole batch: the safe outcome when we cannot say which record failed.
      failures.push_back({{"itemIdentifier", message.id}});
    };
    if (Clock::now() >= invocation.deadline) {
      fail(Error::Make(ErrorCode::kDeadlineExceeded,
                       "not attempted: the invocation's deadline is too close"),
           "job skipped", false);
      continue;
    }
    Disposition done = jobs_->Run(message, invocation.deadline);
    log["job_id"] = done.job_id;
    log["outcome"] = JobOutcomeName(done.outcome);
    if (done.action != Disposition::Action::kDelete) {
      fail(done.error.value_or(Error::Make(ErrorCode::kInternal, done.reason)), "job failed",
           done.action == Disposition::Action::kDeadLetter);
      continue;
    }
    Log("info", "job done", log);
  }
  return InvocationResult{true, Dump({{"batchItemFailures", failures}}), {}, {}};
}

InvocationResult LambdaHandler::HandleDirect(const json& event, const Invocation& invocation) {
  auto failed = [&](const Error& error) {
    std::string code(ErrorCodeName(error.code));
    GlobalMetrics().Add("imagegen_errors_total", {{"code", code}});
    RecordFailure(code);
    Log("error", "invocation failed",
        {{"lambda_request_id", invocation.request_id},
         {"error_code", code},
         {"error", error.message}});
    return InvocationResult::Error(code, error.message);
  };
  auto request = ParseGenerateJson(event);
  if (!request.ok()) return failed(request.error());
  GenerateContext ctx;
  ctx.deadline = invocation.deadline;
  auto result = pipeline_->Run(request.value(), ctx);
  if (!result.ok()) return failed(result.error());
  return InvocationResult{true, Dump(ResultToJson(result.value(), {})), {}, {}};
}

}  // namespace imagegen::lambda
