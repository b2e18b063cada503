#include "aws/client.h"

#include <gtest/gtest.h>

#include "aws/encoding.h"
#include "aws/errors.h"
#include "aws/fake_transport.h"
#include "aws/retry.h"

namespace imagegen::aws {
namespace {

struct Harness {
  std::shared_ptr<FakeTransport> transport = std::make_shared<FakeTransport>();
  std::vector<int64_t> sleeps;
  std::unique_ptr<Client> client;

  explicit Harness(ServiceId service = SqsService(), std::map<std::string, std::string> env = {},
                   std::string endpoint = "http://127.0.0.1:4566") {
    ClientOptions o;
    o.endpoint = std::move(endpoint);
    o.region = "eu-west-1";
    o.env = MapEnv(std::move(env));
    o.transport = transport;
    o.credentials = MakeStaticCredentials({{"AKID", "SECRET", "SESSION"}, 0, "test"});
    o.sleep_ms = [this](int64_t ms) { sleeps.push_back(ms); };
    o.now_s = [] { return int64_t{1440938160}; };
    o.random01 = [] { return 0.5; };
    client = Client::Make(service, std::move(o)).value();
  }
};

Request SqsRequest() {
  Request r;
  r.operation = "SQS.SendMessage";
  r.resource = "queue-url";
  r.method = "POST";
  r.headers = {{"Content-Type", "application/x-amz-json-1.0"},
               {"X-Amz-Target", "AmazonSQS.SendMessage"}};
  r.body = "{}";
  return r;
}

TEST(Client, SignsAndSends) {
  Harness h;
  h.transport->Push(200, "{\"ok\":1}", {{"x-amzn-requestid", "rid-1"}});
  auto resp = h.client->Send(SqsRequest());
  ASSERT_TRUE(resp.ok()) << resp.error().message;
  EXPECT_EQ(resp->body, "{\"ok\":1}");
  EXPECT_EQ(resp->request_id, "rid-1");
  const HttpRequest& sent = h.transport->requests.at(0);
  EXPECT_EQ(sent.url, "http://127.0.0.1:4566/");
  std::string auth = FakeTransport::HeaderOf(sent, "authorization");
  EXPECT_TRUE(auth.starts_with(
      "AWS4-HMAC-SHA256 Credential=AKID/20150830/eu-west-1/sqs/aws4_request, "
      "SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target, "))
      << auth;
  EXPECT_EQ(FakeTransport::HeaderOf(sent, "x-amz-security-token"), "SESSION");
}

TEST(Client, EncodesPathAndQueryOnce) {
  Harness h(S3Service());
  h.transport->Push(200);
  Request r;
  r.operation = "S3.GetObject";
  r.path = "/bucket/a b+c~d%e/ü";
  r.query = {{"x", "1 2"}};
  ASSERT_TRUE(h.client->Send(r).ok());
  EXPECT_EQ(h.transport->requests[0].url,
            "http://127.0.0.1:4566/bucket/a%20b%2Bc~d%25e/%C3%BC?x=1%202");
  EXPECT_EQ(FakeTransport::HeaderOf(h.transport->requests[0], "x-amz-content-sha256"),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(Client, CallerEncodedPathIsSentAsIs) {
  Harness h(BedrockRuntimeService());
  h.transport->Push(200);
  Request r;
  r.method = "POST";
  r.path =
      "/model/" + UriEncode("arn:aws:bedrock:us-east-1::foundation-model/x.y:0", false) + "/invoke";
  r.path_encoded = true;
  ASSERT_TRUE(h.client->Send(r).ok());
  EXPECT_EQ(h.transport->requests[0].url,
            "http://127.0.0.1:4566/model/"
            "arn%3Aaws%3Abedrock%3Aus-east-1%3A%3Afoundation-model%2Fx.y%3A0/invoke");
  EXPECT_NE(FakeTransport::HeaderOf(h.transport->requests[0], "authorization")
                .find("/eu-west-1/bedrock/aws4_request"),
            std::string::npos);
}

TEST(Client, RetriesThrottlingAnd5xxThenSucceeds) {
  Harness h;
  h.transport->Push(400, R"({"__type":"com.amazonaws.sqs#ThrottlingException","message":"slow"})");
  h.transport->Push(503, "");
  h.transport->Push(200, "{}");
  auto resp = h.client->Send(SqsRequest());
  ASSERT_TRUE(resp.ok());
  EXPECT_EQ(resp->attempts, 3);
  // Full jitter: rand * base * 2^(retry-1), rand = 0.5 here.
  EXPECT_EQ(h.sleeps, (std::vector<int64_t>{500, 1000}));
  // The retries' tokens are paid back on success.
  EXPECT_EQ(h.client->retry_tokens(), RetryQuota::kCapacity);
}

TEST(Client, GivesUpAfterMaxAttempts) {
  Harness h;
  for (int i = 0; i < 5; ++i) h.transport->Push(500, "<Error><Code>InternalError</Code></Error>");
  auto resp = h.client->Send(SqsRequest());
  ASSERT_FALSE(resp.ok());
  EXPECT_EQ(resp.error().code, ErrorCode::kUpstreamUnavailable);
  EXPECT_EQ(h.transport->requests.size(), 3u);
  EXPECT_EQ(h.client->retry_tokens(), RetryQuota::kCapacity - 2 * RetryQuota::kRetryCost);
}

TEST(Client, RequestMayAskForMoreAttempts) {
  Harness h;
  for (int i = 0; i < 6; ++i) h.transport->PushFailure(TransportFailure::kReset);
  h.transport->Push(200, "{}");
  Request r = SqsRequest();
  r.max_attempts = 7;  // an acknowledgement: its loss costs more than its delay
  auto resp = h.client->Send(r);
  ASSERT_TRUE(resp.ok()) << resp.error().message;
  EXPECT_EQ(resp->attempts, 7);
  EXPECT_EQ(h.sleeps, (std::vector<int64_t>{500, 1000, 2000, 4000, 8000, 10000}));
  // Fewer than the client's own never lowers the client's policy.
  for (int i = 0; i < 3; ++i) h.transport->Push(500, "<Error><Code>InternalError</Code></Error>");
  r.max_attempts = 1;
  EXPECT_FALSE(h.client->Send(r).ok());
  EXPECT_EQ(h.transport->requests.size(), 7u + 3u);
}

TEST(Client, MaxAttemptsFromEnvironment) {
  Harness h(SqsService(), {{"AWS_MAX_ATTEMPTS", "5"}});
  for (int i = 0; i < 5; ++i) h.transport->PushFailure(TransportFailure::kReset);
  auto resp = h.client->Send(SqsRequest());
  EXPECT_EQ(resp.error().code, ErrorCode::kUpstreamUnavailable);
  EXPECT_EQ(h.transport->requests.size(), 5u);
}

TEST(Client, NeverRetriesClientErrors) {
  for (int status : {400, 403, 404, 409}) {
    Harness h;
    h.transport->Push(status, R"({"__type":"ValidationException","message":"bad"})");
    auto resp = h.client->Send(SqsRequest());
    ASSERT_FALSE(resp.ok());
    EXPECT_EQ(h.transport->requests.size(), 1u) << status;
    EXPECT_TRUE(h.sleeps.empty());
  }
}

TEST(Client, TimeoutsRetriedAndMapped) {
  Harness h;
  for (int i = 0; i < 3; ++i)
    h.transport->PushFailure(TransportFailure::kTimeout, "Operation timed out");
  auto resp = h.client->Send(SqsRequest());
  EXPECT_EQ(resp.error().code, ErrorCode::kUpstreamTimeout);
  EXPECT_EQ(h.transport->requests.size(), 3u);
  EXPECT_EQ(h.client->retry_tokens(), RetryQuota::kCapacity - 2 * RetryQuota::kTimeoutRetryCost);
}

TEST(Client, EmptyQuotaStopsRetrying) {
  Harness h;
  h.transport->handler = [](const HttpRequest&) {
    return FakeTransport::Failure(TransportFailure::kTimeout, "t");
  };
  int calls = 0;
  while (h.client->retry_tokens() >= RetryQuota::kTimeoutRetryCost && calls < 1000) {
    (void)h.client->Send(SqsRequest());
    ++calls;
  }
  size_t before = h.transport->requests.size();
  (void)h.client->Send(SqsRequest());
  EXPECT_EQ(h.transport->requests.size(), before + 1);  // one attempt, no retry
}

TEST(Client, ExpiredTokenRefreshesCredentialsOnce) {
  Harness h;
  h.transport->Push(403, R"({"__type":"ExpiredTokenException","message":"expired"})");
  h.transport->Push(200, "{}");
  EXPECT_TRUE(h.client->Send(SqsRequest()).ok());
  h.transport->Push(403, R"({"__type":"ExpiredTokenException"})");
  h.transport->Push(403, R"({"__type":"ExpiredTokenException"})");
  EXPECT_EQ(h.client->Send(SqsRequest()).error().code, ErrorCode::kForbidden);
}

TEST(Client, DeadlineBoundsAttemptsAndBackoff) {
  using SteadyClock = std::chrono::steady_clock;
  Harness h;
  Request past = SqsRequest();
  past.deadline = SteadyClock::now() - std::chrono::milliseconds(1);
  EXPECT_EQ(h.client->Send(past).error().code, ErrorCode::kDeadlineExceeded);
  EXPECT_TRUE(h.transport->requests.empty());

  // 5 s left: the attempt's timeout is cut to it; a 500 ms backoff still fits.
  Request soon = SqsRequest();
  soon.deadline = SteadyClock::now() + std::chrono::seconds(5);
  h.transport->Push(503);
  h.transport->Push(200, "{}");
  ASSERT_TRUE(h.client->Send(soon).ok());
  EXPECT_LE(h.transport->requests[0].timeout_ms, 5000);
  EXPECT_EQ(h.sleeps, (std::vector<int64_t>{500}));

  // 100 ms left: a 500 ms backoff would cross the deadline, so the 503 is the answer.
  Request tight = SqsRequest();
  tight.deadline = SteadyClock::now() + std::chrono::milliseconds(100);
  h.transport->Push(503);
  EXPECT_EQ(h.client->Send(tight).error().code, ErrorCode::kUpstreamUnavailable);
  EXPECT_EQ(h.sleeps.size(), 1u);

  // A timeout caused by the deadline is the deadline's error, not the upstream's.
  Request bound = SqsRequest();
  bound.deadline = SteadyClock::now() + std::chrono::seconds(2);
  h.transport->PushFailure(TransportFailure::kTimeout);
  EXPECT_EQ(h.client->Send(bound).error().code, ErrorCode::kDeadlineExceeded);
}

TEST(Client, ServiceSpecificErrorRefinementAndRetryRules) {
  ClientOptions o;
  auto transport = std::make_shared<FakeTransport>();
  o.endpoint = "http://127.0.0.1:1";
  o.env = MapEnv({});
  o.transport = transport;
  o.credentials = MakeStaticCredentials({{"AKID", "SECRET", ""}, 0, "test"});
  o.sleep_ms = [](int64_t) {};
  o.refine_error = [](const AwsFailure& f) -> std::optional<Error> {
    if (f.aws_code == "ValidationException" && f.message.find("filter") != std::string::npos) {
      return Error::Make(ErrorCode::kContentRejected, f.message);
    }
    return std::nullopt;
  };
  o.is_retryable = [](const AwsFailure& f) {
    return f.aws_code == "ModelNotReadyException" || IsRetryable(f);
  };
  auto client = Client::Make(BedrockRuntimeService(), std::move(o)).value();
  transport->Push(400, R"({"message":"blocked by our content filters"})",
                  {{"x-amzn-errortype", "ValidationException:http://internal"}});
  EXPECT_EQ(client->Send(Request{}).error().code, ErrorCode::kContentRejected);
  transport->Push(400, R"({"message":"bad size"})", {{"x-amzn-errortype", "ValidationException"}});
  EXPECT_EQ(client->Send(Request{}).error().code, ErrorCode::kInvalidRequest);
  transport->Push(429, R"({"message":"not ready"})",
                  {{"x-amzn-errortype", "ModelNotReadyException"}});
  transport->Push(200, "{}");
  EXPECT_TRUE(client->Send(Request{}).ok());
}

TEST(Client, MissingRegionWithoutEndpointFails) {
  ClientOptions o;
  o.env = MapEnv({});
  auto c = Client::Make(S3Service(), std::move(o));
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().code, ErrorCode::kInvalidRequest);
}

TEST(Client, PresignUsesQueryAuthentication) {
  Harness h(S3Service());
  Request r;
  r.path = "/bucket/key with space";
  auto url = h.client->Presign(r, 600);
  ASSERT_TRUE(url.ok());
  EXPECT_TRUE(url->starts_with(
      "http://127.0.0.1:4566/bucket/key%20with%20space?X-Amz-Algorithm=AWS4-HMAC-SHA256&"))
      << *url;
  EXPECT_NE(url->find("X-Amz-Expires=600"), std::string::npos);
  EXPECT_NE(url->find("X-Amz-Security-Token=SESSION"), std::string::npos);
  EXPECT_NE(url->find("&X-Amz-Signature="), std::string::npos);
  EXPECT_TRUE(h.transport->requests.empty());
}

// --- error mapping ---------------------------------------------------------------------------

AwsFailure Failure(int status, std::string code = "") {
  AwsFailure f;
  f.operation = "S3.GetObject";
  f.resource = "s3://b/k";
  f.http_status = status;
  f.aws_code = std::move(code);
  return f;
}

TEST(Errors, MappingTable) {
  struct Case {
    AwsFailure f;
    ErrorCode want;
    bool retry;
  };
  AwsFailure timeout;
  timeout.transport = TransportFailure::kTimeout;
  AwsFailure refused;
  refused.transport = TransportFailure::kConnect;
  AwsFailure reset;
  reset.transport = TransportFailure::kReset;
  std::vector<Case> cases = {
      {Failure(400, "ThrottlingException"), ErrorCode::kRateLimited, true},
      {Failure(400, "Throttling"), ErrorCode::kRateLimited, true},
      {Failure(503, "SlowDown"), ErrorCode::kRateLimited, true},
      {Failure(400, "TooManyRequestsException"), ErrorCode::kRateLimited, true},
      {Failure(400, "RequestThrottled"), ErrorCode::kRateLimited, true},
      {Failure(429), ErrorCode::kRateLimited, true},
      {Failure(500), ErrorCode::kUpstreamUnavailable, true},
      {Failure(502), ErrorCode::kUpstreamUnavailable, true},
      {Failure(503, "ServiceUnavailable"), ErrorCode::kUpstreamUnavailable, true},
      {Failure(504), ErrorCode::kUpstreamTimeout, true},
      {timeout, ErrorCode::kUpstreamTimeout, true},
      {refused, ErrorCode::kUpstreamUnavailable, true},
      {reset, ErrorCode::kUpstreamUnavailable, true},
      {Failure(403, "AccessDenied"), ErrorCode::kForbidden, false},
      {Failure(403, "SignatureDoesNotMatch"), ErrorCode::kForbidden, false},
      {Failure(400, "InvalidSignatureException"), ErrorCode::kForbidden, false},
      {Failure(400, "ExpiredToken"), ErrorCode::kForbidden, false},
      {Failure(400, "UnrecognizedClientException"), ErrorCode::kForbidden, false},
      {Failure(403), ErrorCode::kForbidden, false},
      {Failure(404, "NoSuchKey"), ErrorCode::kNotFound, false},
      {Failure(404), ErrorCode::kNotFound, false},
      {Failure(400, "QueueDoesNotExist"), ErrorCode::kNotFound, false},
      {Failure(400, "AWS.SimpleQueueService.NonExistentQueue"), ErrorCode::kNotFound, false},
      {Failure(400, "ValidationException"), ErrorCode::kInvalidRequest, false},
      {Failure(409, "BucketAlreadyExists"), ErrorCode::kInvalidRequest, false},
      {Failure(301, "PermanentRedirect"), ErrorCode::kInvalidRequest, false},
  };
  for (const auto& c : cases) {
    Error e = MapAwsError(c.f);
    EXPECT_EQ(e.code, c.want) << c.f.http_status << " " << c.f.aws_code;
    EXPECT_EQ(IsRetryable(c.f), c.retry) << c.f.http_status << " " << c.f.aws_code;
  }
}

TEST(Errors, MessageNamesOperationResourceCodeAndRequestId) {
  AwsFailure f = Failure(403, "AccessDenied");
  f.message = "Access Denied";
  f.request_id = "REQ123";
  Error e = MapAwsError(f);
  EXPECT_EQ(e.message,
            "S3.GetObject s3://b/k: HTTP 403 AccessDenied: Access Denied [request id REQ123]");
}

TEST(Errors, ParseAllProtocols) {
  HttpResponse json;
  json.status = 400;
  json.body =
      R"({"__type":"com.amazonaws.sqs#QueueDoesNotExist","message":"The specified queue does not exist."})";
  json.headers = {{"x-amzn-requestid", "r1"}};
  AwsFailure f = ParseFailure(json);
  EXPECT_EQ(f.aws_code, "QueueDoesNotExist");
  EXPECT_EQ(f.message, "The specified queue does not exist.");
  EXPECT_EQ(f.request_id, "r1");

  HttpResponse xml;
  xml.status = 404;
  xml.body =
      "<?xml version=\"1.0\"?><Error><Code>NoSuchKey</Code><Message>gone</Message>"
      "<RequestId>r2</RequestId></Error>";
  f = ParseFailure(xml);
  EXPECT_EQ(f.aws_code, "NoSuchKey");
  EXPECT_EQ(f.request_id, "r2");

  HttpResponse query;
  query.status = 400;
  query.body =
      "<ErrorResponse><Error><Code>InvalidParameterValue</Code></Error><RequestId>r3</RequestId></"
      "ErrorResponse>";
  f = ParseFailure(query);
  EXPECT_EQ(f.aws_code, "InvalidParameterValue");
  EXPECT_EQ(f.request_id, "r3");

  HttpResponse header;
  header.status = 400;
  header.headers = {{"x-amzn-errortype", "ValidationException:http://internal/"}};
  EXPECT_EQ(ParseFailure(header).aws_code, "ValidationException");
  header.headers = {{"x-amzn-query-error", "AWS.SimpleQueueService.NonExistentQueue;Sender"}};
  EXPECT_EQ(ParseFailure(header).aws_code, "AWS.SimpleQueueService.NonExistentQueue");

  HttpResponse garbage;
  garbage.status = 502;
  garbage.body = "<html>bad gateway";
  EXPECT_EQ(MapAwsError(ParseFailure(garbage)).code, ErrorCode::kUpstreamUnavailable);
}

TEST(Retry, BackoffIsCappedFullJitter) {
  RetryOptions o;
  o.base_delay_ms = 1000;
  EXPECT_EQ(BackoffDelayMs(o, 1, 1.0), 1000);
  EXPECT_EQ(BackoffDelayMs(o, 3, 1.0), 4000);
  EXPECT_EQ(BackoffDelayMs(o, 10, 1.0), 20000);
  EXPECT_EQ(BackoffDelayMs(o, 100, 0.5), 10000);
  EXPECT_EQ(BackoffDelayMs(o, 2, 0.0), 0);
}

}  // namespace
}  // namespace imagegen::aws
