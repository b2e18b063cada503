#include "lambda/runtime.h"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/clock.h"
#include "core/log.h"

namespace imagegen::lambda {
namespace {

using json = nlohmann::json;

constexpr const char* kApiVersion = "/2018-06-01";

size_t WriteBody(char* data, size_t size, size_t count, void* user) {
  static_cast<std::string*>(user)->append(data, size * count);
  return size * count;
}

size_t WriteHeader(char* data, size_t size, size_t count, void* user) {
  auto* headers = static_cast<std::map<std::string, std::string>*>(user);
  std::string line(data, size * count);
  size_t colon = line.find(':');
  if (colon != std::string::npos) {
    std::string name = line.substr(0, colon);
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char c) { return std::tolower(c); });
    size_t b = line.find_first_not_of(" \t", colon + 1);
    size_t e = line.find_last_not_of(" \t\r\n");
    (*headers)[name] = b == std::string::npos || e < b ? "" : line.substr(b, e - b + 1);
  }
  return size * count;
}

class CurlRuntimeApi final : public RuntimeApi {
 public:
  explicit CurlRuntimeApi(std::string host_port)
      : base_("http://" + std::move(host_port) + kApiVersion), curl_(curl_easy_init()) {}
  ~CurlRuntimeApi() override {
    if (curl_ != nullptr) curl_easy_cleanup(curl_);
  }
  CurlRuntimeApi(const CurlRuntimeApi&) = delete;
  CurlRuntimeApi& operator=(const CurlRuntimeApi&) = delete;

  Result<NextEvent> Next() override {
    Exchange ex;
    if (auto s = Perform("GET", base_ + "/runtime/invocation/next", nullptr, {}, 0, &ex); !s) {
      return s.error();
    }
    if (ex.status != 200) {
      return Error::Make(
          ErrorCode::kUpstreamUnavailable,
          "runtime API /next answered " + std::to_string(ex.status) + ": " + ex.body);
    }
    NextEvent next;
    next.event = std::move(ex.body);
    next.invocation.request_id = ex.headers["lambda-runtime-aws-request-id"];
    next.invocation.function_arn = ex.headers["lambda-runtime-invoked-function-arn"];
    next.invocation.trace_id = ex.headers["lambda-runtime-trace-id"];
    next.invocation.deadline_ms = std::atoll(ex.headers["lambda-runtime-deadline-ms"].c_str());
    if (next.invocation.request_id.empty()) {
      return Error::Make(ErrorCode::kUpstreamUnavailable,
                         "runtime API /next answered without Lambda-Runtime-Aws-Request-Id");
    }
    return next;
  }

  Result<int> PostResponse(const std::string& request_id, const std::string& payload) override {
    Exchange ex;
    if (auto s = Perform("POST", base_ + "/runtime/invocation/" + request_id + "/response",
                         &payload, {"Content-Type: application/json"}, 60000, &ex);
        !s) {
      return s.error();
    }
    return ex.status;
  }

  Result<int> PostError(const std::string& request_id, const std::string& error_type,
                        const std::string& message) override {
    return PostErrorTo(base_ + "/runtime/invocation/" + request_id + "/error", error_type, message);
  }

  Result<int> PostInitError(const std::string& error_type, const std::string& message) override {
    return PostErrorTo(base_ + "/runtime/init/error", error_type, message);
  }

 private:
  struct Exchange {
    long status = 0;
    std::map<std::string, std::string> headers;
    std::string body;
  };

  Result<int> PostErrorTo(const std::string& url, const std::string& error_type,
                          const std::string& message) {
    std::string doc = ErrorDocument(error_type, message);
    // Header values must be one line of visible ASCII.
    std::string type_header = error_type;
    for (char& c : type_header) {
      if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7e) c = '_';
    }
    Exchange ex;
    if (auto s = Perform("POST", url, &doc,
                         {"Content-Type: application/json",
                          "Lambda-Runtime-Function-Error-Type: " + type_header},
                         10000, &ex);
        !s) {
      return s.error();
    }
    return ex.status;
  }

  Status Perform(const char* method, const std::string& url, const std::string* body,
                 const std::vector<std::string>& headers, long timeout_ms, Exchange* ex) {
    if (curl_ == nullptr) return Error::Make(ErrorCode::kInternal, "curl_easy_init failed");
    curl_easy_reset(curl_);
    curl_easy_setopt(curl_, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl_, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl_, CURLOPT_PROXY, "");  // the Runtime API is local; never proxy it
    curl_easy_setopt(curl_, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(curl_, CURLOPT_TIMEOUT_MS, timeout_ms);  // 0: none (for /next)
    curl_easy_setopt(curl_, CURLOPT_WRITEFUNCTION, WriteBody);
    curl_easy_setopt(curl_, CURLOPT_WRITEDATA, &ex->body);
    curl_easy_setopt(curl_, CURLOPT_HEADERFUNCTION, WriteHeader);
    curl_easy_setopt(curl_, CURLOPT_HEADERDATA, &ex->headers);
    curl_slist* list = nullptr;
    for (const auto& h : headers) list = curl_slist_append(list, h.c_str());
    list = curl_slist_append(list, "Expect:");  // no 100-continue round trip for big payloads
    curl_easy_setopt(curl_, CURLOPT_HTTPHEADER, list);
    if (body != nullptr) {
      curl_easy_setopt(curl_, CURLOPT_POST, 1L);
      curl_easy_setopt(curl_, CURLOPT_POSTFIELDS, body->data());
      curl_easy_setopt(curl_, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body->size()));
    } else {
      curl_easy_setopt(curl_, CURLOPT_HTTPGET, 1L);
    }
    (void)method;
    CURLcode rc = curl_easy_perform(curl_);
    curl_slist_free_all(list);
    if (rc != CURLE_OK) {
      return Error::Make(rc == CURLE_OPERATION_TIMEDOUT ? ErrorCode::kUpstreamTimeout
                                                        : ErrorCode::kUpstreamUnavailable,
                         std::string("runtime API ") + url + ": " + curl_easy_strerror(rc));
    }
    curl_easy_getinfo(curl_, CURLINFO_RESPONSE_CODE, &ex->status);
    return Status::Ok();
  }

  std::string base_;
  CURL* curl_;
};

void SetTraceId(const std::string& trace_id) {
  // X-Ray SDKs and our own outgoing calls read it from the environment, as in managed runtimes.
  if (trace_id.empty()) {
    unsetenv("_X_AMZN_TRACE_ID");
  } else {
    setenv("_X_AMZN_TRACE_ID", trace_id.c_str(), 1);
  }
}

}  // namespace

std::unique_ptr<RuntimeApi> MakeCurlRuntimeApi(const std::string& host_port) {
  return std::make_unique<CurlRuntimeApi>(host_port);
}

std::string ErrorDocument(const std::string& error_type, const std::string& message) {
  return json{{"errorMessage", message}, {"errorType", error_type}, {"stackTrace", json::array()}}
      .dump(-1, ' ', false, json::error_handler_t::replace);
}

Clock::time_point WorkDeadline(int64_t deadline_ms, int64_t now_ms, Clock::time_point steady_now,
                               int margin_ms) {
  if (deadline_ms <= 0) return Clock::time_point::max();
  int64_t remaining = deadline_ms - now_ms;
  int64_t margin = std::min<int64_t>(margin_ms, std::max<int64_t>(remaining / 5, 0));
  return steady_now + std::chrono::milliseconds(remaining - margin);
}

int RunLoop(RuntimeApi& api, const InvocationHandler& handler, const LoopOptions& options) {
  int next_failures = 0;
  int served = 0;
  while (options.max_invocations <= 0 || served < options.max_invocations) {
    auto next = api.Next();
    if (!next.ok()) {
      Log("error", "runtime API next failed", {{"error", next.error().message}});
      if (++next_failures >= options.max_next_failures) return 1;
      std::this_thread::sleep_for(std::chrono::milliseconds(100 << next_failures));
      continue;
    }
    next_failures = 0;
    Invocation invocation = next->invocation;
    invocation.deadline = WorkDeadline(invocation.deadline_ms, NowEpochMs(), Clock::now(),
                                       options.deadline_margin_ms);
    SetTraceId(invocation.trace_id);
    InvocationResult result;
    try {
      result = handler(next->event, invocation);
    } catch (const std::exception& e) {
      result = InvocationResult::Error("Runtime.UnhandledException", e.what());
    } catch (...) {
      result = InvocationResult::Error("Runtime.UnhandledException", "unknown exception");
    }
    Result<int> posted = 0;
    if (result.ok) {
      posted = api.PostResponse(invocation.request_id, result.payload);
      if (posted.ok() && posted.value() == 413) {
        // The payload was refused; the caller still deserves an answer.
        posted = api.PostError(invocation.request_id, "Function.ResponseSizeTooLarge",
                               "response of " + std::to_string(result.payload.size()) +
                                   " bytes exceeds Lambda's limit");
      }
    } else {
      posted = api.PostError(invocation.request_id, result.error_type, result.error_message);
    }
    ++served;
    if (!posted.ok()) {
      Log("error", "runtime API post failed",
          {{"lambda_request_id", invocation.request_id}, {"error", posted.error().message}});
    } else if (posted.value() == 500) {
      // The Runtime API's word for "unrecoverable": exit and let Lambda start afresh.
      Log("error", "runtime API answered 500; exiting",
          {{"lambda_request_id", invocation.request_id}});
      return 1;
    } else if (posted.value() >= 300) {
      Log("warn", "runtime API refused the answer",
          {{"lambda_request_id", invocation.request_id}, {"status", posted.value()}});
    }
  }
  return 0;
}

}  // namespace imagegen::lambda
