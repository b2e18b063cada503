#include "aws/client.h"

#include <algorithm>
#include <chrono>
#include <random>
#include <thread>

#include "aws/encoding.h"
#include "aws/errors.h"

namespace imagegen::aws {

std::string Response::Header(std::string_view lower_name) const {
  for (const auto& [name, value] : headers) {
    if (name == lower_name) return value;
  }
  return "";
}

namespace {

int64_t SystemNowS() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

double ThreadRandom01() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
}

int DefaultMaxAttempts(const EnvLookup& env) {
  if (auto v = NonEmpty(env, "AWS_MAX_ATTEMPTS")) {
    try {
      int n = std::stoi(*v);
      if (n >= 1) return n;
    } catch (...) {
    }
  }
  return 3;
}

bool IsExpiredToken(const std::string& code) {
  return code == "ExpiredToken" || code == "ExpiredTokenException" || code == "RequestExpired";
}

}  // namespace

Client::Client(ServiceId service, ClientOptions options, std::string region, std::string endpoint)
    : service_(std::move(service)),
      options_(std::move(options)),
      region_(std::move(region)),
      endpoint_(std::move(endpoint)) {}

Client::~Client() = default;

Result<std::unique_ptr<Client>> Client::Make(const ServiceId& service, ClientOptions options) {
  if (!options.env) options.env = ProcessEnv();
  std::string region = options.region.empty() ? ResolveRegion(options.env) : options.region;
  auto endpoint = ResolveEndpoint(service, region, options.endpoint, options.env);
  if (!endpoint.ok()) return endpoint.error();
  // Local servers (moto, MinIO, ElasticMQ) accept any region; us-east-1 is their default.
  if (region.empty()) region = "us-east-1";
  if (!options.transport) options.transport = DefaultTransport();
  if (!options.credentials) {
    ChainOptions chain;
    chain.env = options.env;
    chain.transport = options.transport;
    options.credentials = MakeDefaultCredentialsChain(std::move(chain));
  }
  if (!options.sleep_ms) {
    options.sleep_ms = [](int64_t ms) {
      std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    };
  }
  if (!options.now_s) options.now_s = SystemNowS;
  if (!options.random01) options.random01 = ThreadRandom01;
  if (options.retry.max_attempts <= 0) options.retry.max_attempts = DefaultMaxAttempts(options.env);
  return std::unique_ptr<Client>(
      new Client(service, std::move(options), std::move(region), std::move(*endpoint)));
}

SignableRequest Client::ToSignable(const Request& request, std::string* url) const {
  const std::string& base = request.endpoint.empty() ? endpoint_ : request.endpoint;
  auto parts = SplitUrl(base);
  SignableRequest s;
  s.method = request.method;
  s.host = HostHeaderForUrl(base);
  std::string base_path = parts.ok() ? parts->path : "";
  std::string path = request.path.empty() ? "/" : request.path;
  if (path.front() != '/') path.insert(path.begin(), '/');
  s.path_encoded = request.path_encoded;
  s.path =
      request.path_encoded ? UriEncode(base_path, /*keep_slash=*/true) + path : base_path + path;
  s.query = request.query;
  s.headers = request.headers;
  s.body = request.body;
  if (url) {
    *url = (parts.ok() ? parts->scheme + "://" + parts->authority : base) +
           (s.path_encoded ? s.path : WirePath(s.path));
    std::string q = CanonicalQueryString(s.query);
    if (!q.empty()) *url += "?" + q;
  }
  return s;
}

std::string Client::UrlFor(const Request& request) const {
  std::string url;
  ToSignable(request, &url);
  return url;
}

Result<Response> Client::Send(const Request& request) {
  using SteadyClock = std::chrono::steady_clock;
  SigningParams params;
  params.service = service_.signing_name;
  params.region = region_;
  params.s3 = service_.signing_name == "s3";
  params.unsigned_payload = request.unsigned_payload;

  auto map_error = [&](const AwsFailure& failure) {
    if (options_.refine_error) {
      if (auto refined = options_.refine_error(failure)) return *refined;
    }
    return MapAwsError(failure);
  };
  auto deadline_error = [&](const std::string& why) {
    return Error::Make(ErrorCode::kDeadlineExceeded,
                       request.operation + " " + request.resource + ": " + why);
  };
  const bool has_deadline = request.deadline != SteadyClock::time_point::max();
  auto ms_left = [&] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(request.deadline -
                                                                 SteadyClock::now())
        .count();
  };

  const RetryOptions& retry = options_.retry;
  int quota_taken = 0;
  bool refreshed_credentials = false;
  for (int attempt = 1;; ++attempt) {
    if (request.stop) {
      if (auto stopped = request.stop()) return *stopped;
    }
    int timeout_ms = request.timeout_ms > 0 ? request.timeout_ms : options_.timeout_ms;
    bool deadline_bound = false;
    if (has_deadline) {
      int64_t left = ms_left();
      if (left <= 0) return deadline_error("deadline reached before the call");
      if (timeout_ms <= 0 || left < timeout_ms) {
        timeout_ms = static_cast<int>(left);
        deadline_bound = true;
      }
    }
    auto credentials = options_.credentials->Get();
    if (!credentials.ok()) {
      Error e = credentials.error();
      e.message = request.operation + " " + request.resource + ": " + e.message;
      return e;
    }
    std::string url;
    SignableRequest signable = ToSignable(request, &url);
    params.time_s = options_.now_s();  // re-signed per attempt: signatures age
    SignHeaders(&signable, credentials->keys, params);

    HttpRequest http;
    http.method = request.method;
    http.url = url;
    http.headers = std::move(signable.headers);
    http.body = request.body;
    http.timeout_ms = timeout_ms;
    http.connect_timeout_ms = std::min(options_.connect_timeout_ms, std::max(timeout_ms, 1));
    HttpResponse resp = options_.transport->Perform(http);

    if (resp.failure == TransportFailure::kNone && resp.status >= 200 && resp.status < 300) {
      if (retry.use_quota) quota_.Release(quota_taken);
      Response out;
      out.status = resp.status;
      out.body = std::move(resp.body);
      out.headers = std::move(resp.headers);
      out.request_id = out.Header("x-amzn-requestid");
      if (out.request_id.empty()) out.request_id = out.Header("x-amz-request-id");
      out.attempts = attempt;
      return out;
    }
    if (resp.failure == TransportFailure::kTimeout && deadline_bound) {
      return deadline_error("no answer before the deadline");
    }

    AwsFailure failure = ParseFailure(resp);
    failure.operation = request.operation;
    failure.resource = request.resource;
    // Temporary credentials can expire between the cache check and the service's; fetch new
    // ones once and try again, outside the retry budget (the request itself was fine).
    if (IsExpiredToken(failure.aws_code) && !refreshed_credentials) {
      refreshed_credentials = true;
      options_.credentials->Invalidate();
      --attempt;
      continue;
    }
    bool retryable = options_.is_retryable ? options_.is_retryable(failure) : IsRetryable(failure);
    int max_attempts =
        options_.max_attempts_for ? options_.max_attempts_for(failure) : retry.max_attempts;
    if (request.max_attempts > 0) max_attempts = std::max(max_attempts, request.max_attempts);
    if (!retryable || attempt >= max_attempts) return map_error(failure);
    int64_t delay_ms = BackoffDelayMs(retry, attempt, options_.random01());
    if (has_deadline && delay_ms >= ms_left()) return map_error(failure);  // no time to retry
    if (retry.use_quota &&
        !quota_.Acquire(failure.transport == TransportFailure::kTimeout, &quota_taken)) {
      return map_error(failure);
    }
    if (!request.stop) {
      options_.sleep_ms(delay_ms);
      continue;
    }
    for (int64_t left = delay_ms; left > 0;) {
      int64_t slice = std::min<int64_t>(left, 100);
      options_.sleep_ms(slice);
      left -= slice;
      if (auto stopped = request.stop()) return *stopped;
    }
  }
}

Result<std::string> Client::Presign(const Request& request, int expires_s) {
  auto credentials = options_.credentials->Get();
  if (!credentials.ok()) return credentials.error();
  std::string url;
  SignableRequest signable = ToSignable(request, &url);
  SigningParams params;
  params.service = service_.signing_name;
  params.region = region_;
  params.s3 = service_.signing_name == "s3";
  params.time_s = options_.now_s();
  std::string query = PresignQuery(signable, credentials->keys, params, expires_s);
  size_t q = url.find('?');
  if (q != std::string::npos) url.resize(q);
  return url + "?" + query;
}

}  // namespace imagegen::aws
