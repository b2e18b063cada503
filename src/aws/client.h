// aws::Client: one AWS service endpoint, signed calls, retries, and error mapping. Adapters
// (S3 store, SQS queue, Bedrock model) build an aws::Request and call Send(); everything that
// is the same for every AWS API lives here.
//
//   aws::ClientOptions options;
//   options.region = region;      // "" : AWS_REGION, AWS_DEFAULT_REGION, profile
//   options.endpoint = endpoint;  // "" : AWS_ENDPOINT_URL_BEDROCK_RUNTIME, AWS_ENDPOINT_URL, AWS
//   auto client = aws::Client::Make(aws::BedrockRuntimeService(), std::move(options));
//   aws::Request req;
//   req.operation = "Bedrock.InvokeModel";
//   req.resource = model_id;
//   req.method = "POST";
//   req.path = "/model/" + aws::UriEncode(model_id, false) + "/invoke";  // ':' and '/' encoded
//   req.path_encoded = true;
//   req.headers = {{"Content-Type", "application/json"}, {"Accept", "application/json"}};
//   req.body = payload.dump();
//   req.timeout_ms = 60000;
//   req.deadline = ctx.deadline;  // optional
//   Result<aws::Response> resp = (*client)->Send(req);  // error already in imagegen's taxonomy
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "aws/config.h"
#include "aws/credentials.h"
#include "aws/errors.h"
#include "aws/http.h"
#include "aws/retry.h"
#include "aws/sigv4.h"
#include "core/error.h"

namespace imagegen::aws {

struct Request {
  std::string operation;  // "Service.Operation", named in error messages
  std::string resource;   // what the call is about (bucket/key, queue, model); for messages
  std::string method = "GET";
  std::string path = "/";  // raw (unencoded), after the endpoint's own base path
  // `path` is already percent-encoded (wire form). Use it when a URI label may contain '/',
  // which must then travel as %2F: "/model/" + aws::UriEncode(model_id, false) + "/invoke".
  bool path_encoded = false;
  QueryList query;     // raw keys and values
  HeaderList headers;  // Host, X-Amz-Date, Authorization etc. are added by the client
  std::string body;
  bool unsigned_payload = false;  // sign "UNSIGNED-PAYLOAD" instead of the body hash
  int timeout_ms = 0;             // whole exchange per attempt; 0: the client's default
  // At least this many attempts (the first included) for this call, where the client's retry
  // policy allows fewer (retryable failures only; 0: the policy as it is). For calls whose
  // loss costs more than their delay, e.g. acknowledging a queue message: a lost SQS delete
  // leaves the message in flight until its visibility timeout and then redelivers it.
  int max_attempts = 0;
  std::string endpoint;  // "": the client's endpoint; else a base URL (S3 vhosts)
  // No attempt starts, waits or runs past this (a Lambda invocation's deadline, say): attempt
  // timeouts are cut to the time left, a backoff that would cross it ends the retries, and
  // running out of time is kDeadlineExceeded.
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
  // Consulted before each attempt and while backing off (in slices of at most 100 ms); a value
  // ends the call with that error. For a caller whose sibling calls may fail first, or whose
  // work was cancelled. Null: never stops early.
  std::function<std::optional<Error>()> stop;
};

struct Response {
  int status = 0;
  HeaderList headers;  // lower-case names
  std::string body;
  std::string request_id;
  int attempts = 1;
  std::string Header(std::string_view lower_name) const;
};

struct ClientOptions {
  std::string region;    // "": ResolveRegion(env) (AWS_REGION, AWS_DEFAULT_REGION, profile)
  std::string endpoint;  // "": AWS_ENDPOINT_URL_<SERVICE>, AWS_ENDPOINT_URL, AWS default
  RetryOptions retry;
  int timeout_ms = 30000;
  int connect_timeout_ms = 3000;
  std::shared_ptr<CredentialsProvider> credentials;  // null: MakeDefaultCredentialsChain()
  std::shared_ptr<HttpTransport> transport;          // null: DefaultTransport()
  EnvLookup env = ProcessEnv();
  // Service-specific refinements, consulted before the defaults (null: defaults only). E.g. a
  // Bedrock adapter maps a content-filter ValidationException to kContentRejected, or retries
  // ModelNotReadyException. `refine_error` returning nullopt falls back to MapAwsError.
  std::function<std::optional<Error>(const AwsFailure&)> refine_error;
  std::function<bool(const AwsFailure&)> is_retryable;  // null: aws::IsRetryable
  // Attempts (the first included) a call may make when it has just failed this way, so that a
  // service can retry throttling longer than a timeout. Null: retry.max_attempts for all.
  std::function<int(const AwsFailure&)> max_attempts_for;
  // Seams for tests; null means the real thing.
  std::function<void(int64_t ms)> sleep_ms;
  std::function<int64_t()> now_s;  // signing clock, epoch seconds
  std::function<double()> random01;
};

class Client {
 public:
  // kInvalidRequest when neither a region nor an endpoint can be found. With an endpoint but
  // no region, signing uses "us-east-1" (what local servers expect).
  static Result<std::unique_ptr<Client>> Make(const ServiceId& service, ClientOptions options);

  // Signs and sends `request`, retrying per the standard mode. Any non-2xx answer is an
  // Error (MapAwsError); a 2xx answer is returned whole. Thread-safe.
  Result<Response> Send(const Request& request);

  // A presigned URL for `request` (method, path, query; the body is not signed). Fails only
  // when no credentials can be found.
  Result<std::string> Presign(const Request& request, int expires_s);

  // The URL `request` is sent to (without the signature), e.g. for an S3 object's plain URL.
  std::string UrlFor(const Request& request) const;

  const ServiceId& service() const { return service_; }
  const std::string& region() const { return region_; }
  const std::string& endpoint() const { return endpoint_; }
  CredentialsProvider& credentials() { return *options_.credentials; }
  int retry_tokens() const { return quota_.available(); }

  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

 private:
  Client(ServiceId service, ClientOptions options, std::string region, std::string endpoint);
  SignableRequest ToSignable(const Request& request, std::string* url) const;

  ServiceId service_;
  ClientOptions options_;
  std::string region_;
  std::string endpoint_;  // scheme://authority[/base], no trailing '/'
  RetryQuota quota_;
};

}  // namespace imagegen::aws
