#include "model/bedrock/bedrock_model.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <thread>

#include "aws/credentials.h"
#include "aws/encoding.h"
#include "aws/fake_transport.h"
#include "image/png.h"

namespace imagegen {
namespace {

using json = nlohmann::json;

std::string PngBase64(int w, int h) {
  auto png = EncodePng(Image(w, h), {});
  EXPECT_TRUE(png.ok());
  return aws::Base64Encode(png.value());
}

// Calls the handler without holding a lock (FakeTransport serialises its calls).
class ConcurrentTransport : public aws::HttpTransport {
 public:
  explicit ConcurrentTransport(std::function<aws::HttpResponse(const aws::HttpRequest&)> handler)
      : handler_(std::move(handler)) {}
  aws::HttpResponse Perform(const aws::HttpRequest& request) override {
    ++calls;
    return handler_(request);
  }
  std::atomic<int> calls{0};

 private:
  std::function<aws::HttpResponse(const aws::HttpRequest&)> handler_;
};

struct Harness {
  std::shared_ptr<aws::FakeTransport> transport = std::make_shared<aws::FakeTransport>();
  BedrockOptions options;
  explicit Harness(std::string region = "us-west-2") {
    options.region = std::move(region);
    options.endpoint = "http://127.0.0.1:9";
    options.retry_base_ms = 1;
    options.credentials = aws::MakeStaticCredentials({{"AKID", "SECRET", ""}, 0, "test"});
    options.transport = transport;
  }
  Result<std::unique_ptr<ImageModel>> Make(const std::string& spec) {
    return MakeBedrockModel(spec, options);
  }
};

ValidRequest Request(int count, int64_t seed) {
  ValidRequest r;
  r.prompt = "a lighthouse";
  r.width = 1024;
  r.height = 1024;
  r.seed = seed;
  r.count = count;
  return r;
}

TEST(BedrockModel, StabilityIsRefusedWhereItIsNotServed) {
  Harness h("eu-west-1");
  h.options.endpoint = "https://bedrock-runtime.eu-west-1.amazonaws.com";
  auto model = h.Make("bedrock:stability.stable-image-core-v1:1");
  ASSERT_FALSE(model.ok());
  EXPECT_EQ(model.error().code, ErrorCode::kInvalidRequest);
  EXPECT_NE(model.error().message.find("IMAGEGEN_BEDROCK_REGION=us-west-2"), std::string::npos)
      << model.error().message;
  EXPECT_TRUE(h.transport->requests.empty());  // refused before any call
  // Cross-region inference profiles route themselves; models the table does not list pass.
  EXPECT_TRUE(h.Make("bedrock:us.stability.sd3-5-large-v1:0").ok());
  EXPECT_TRUE(h.Make("bedrock:amazon.nova-canvas-v1:0").ok());
  auto arn = h.Make("bedrock:arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-canvas-v1:0");
  ASSERT_FALSE(arn.ok());
  EXPECT_NE(arn.error().message.find("IMAGEGEN_BEDROCK_REGION=us-east-1"), std::string::npos);
  Harness west("us-west-2");
  west.options.endpoint = "https://bedrock-runtime.us-west-2.amazonaws.com";
  EXPECT_TRUE(west.Make("bedrock:").ok());  // the default model's region
  // A local endpoint (a test double, a proxy) is not held to AWS's table.
  EXPECT_TRUE(Harness("eu-west-1").Make("bedrock:stability.stable-image-core-v1:1").ok());
}

// count > 1 with one image per call: the calls overlap (4 calls of 300 ms take ~300 ms, not
// 1.2 s), and each image records the seed Stability reports.
TEST(BedrockModel, StabilityCallsRunConcurrentlyAndRecordTheReportedSeeds) {
  Harness h;
  std::atomic<int> in_flight{0}, most{0};
  auto transport = std::make_shared<ConcurrentTransport>([&](const aws::HttpRequest& request) {
    int now = ++in_flight;
    for (int seen = most.load(); now > seen && !most.compare_exchange_weak(seen, now);) {
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    --in_flight;
    json body = json::parse(request.body);
    int64_t sent = body["seed"].get<int64_t>();
    aws::HttpResponse r;
    r.status = 200;
    // Seed 0 means "random": the model reports what it chose (as a string, as it may).
    json seed = sent == 0 ? json("123456") : json(sent);
    r.body =
        json{{"seeds", {seed}}, {"finish_reasons", {nullptr}}, {"images", {PngBase64(1024, 1024)}}}
            .dump();
    return r;
  });
  h.options.transport = transport;
  auto model = h.Make("bedrock:stability.stable-image-core-v1:1");
  ASSERT_TRUE(model.ok()) << model.error().message;
  auto out = (*model)->Generate(Request(4, 0), GenerateContext{});
  ASSERT_TRUE(out.ok()) << out.error().message;
  EXPECT_EQ(out->images.size(), 4u);
  EXPECT_EQ(out->seeds, (std::vector<int64_t>{123456, 1, 2, 3}));
  // All four in flight at once: concurrency measured directly, not by a wall-clock bound.
  EXPECT_EQ(most.load(), 4);
  EXPECT_EQ(transport->calls.load(), 4);
}

// An SD3.5 Large edit: one image-to-image call per image (seed + i), the limits saying so, and
// a mask (in a request that skipped validation) refused before any call rather than dropped.
TEST(BedrockModel, StabilityEditsAreOneImageToImageCallPerImage) {
  Harness h;
  auto transport = std::make_shared<ConcurrentTransport>([&](const aws::HttpRequest& request) {
    json body = json::parse(request.body);
    aws::HttpResponse r;
    r.status = 200;
    bool ok = body.value("mode", "") == "image-to-image" && body.contains("image") &&
              body.contains("strength") && !body.contains("aspect_ratio");
    r.body = json{{"seeds", {body["seed"]}},
                  {"finish_reasons", {ok ? json(nullptr) : json("Inference error")}},
                  {"images", {PngBase64(1024, 1024)}}}
                 .dump();
    return r;
  });
  h.options.transport = transport;
  auto model = h.Make("bedrock:stability.sd3-5-large-v1:0");
  ASSERT_TRUE(model.ok()) << model.error().message;
  EXPECT_TRUE((*model)->Limits().edits);
  EXPECT_FALSE((*model)->Limits().masks);
  ValidRequest r = Request(2, 40);
  r.init_image = EncodePng(Image(8, 8), {}).value();
  r.strength = 0.5;
  auto out = (*model)->Generate(r, GenerateContext{});
  ASSERT_TRUE(out.ok()) << out.error().message;
  EXPECT_EQ(out->seeds, (std::vector<int64_t>{40, 41}));
  EXPECT_EQ(transport->calls.load(), 2);
  r.mask = r.init_image;
  auto masked = (*model)->Generate(r, GenerateContext{});
  ASSERT_FALSE(masked.ok());
  EXPECT_EQ(masked.error().field, "mask");
  EXPECT_EQ(transport->calls.load(), 2);
  auto core = h.Make("bedrock:stability.stable-image-core-v1:1");
  ASSERT_TRUE(core.ok());
  r.mask.clear();
  EXPECT_EQ((*core)->Generate(r, GenerateContext{}).error().field, "image");
  EXPECT_EQ(transport->calls.load(), 2);
}

TEST(BedrockModel, OneFailedCallFailsTheRequestWithItsError) {
  Harness h;
  h.transport->handler = [&](const aws::HttpRequest& request) {
    aws::HttpResponse r;
    if (json::parse(request.body)["seed"] == 11) {
      r.status = 400;
      r.headers = {{"x-amzn-errortype", "ValidationException"}};
      r.body = R"({"message":"This request has been blocked by our content filters."})";
      return r;
    }
    r.status = 200;
    r.body =
        json{{"seeds", {1}}, {"finish_reasons", {nullptr}}, {"images", {PngBase64(1024, 1024)}}}
            .dump();
    return r;
  };
  auto model = h.Make("bedrock:stability.stable-image-core-v1:1");
  ASSERT_TRUE(model.ok());
  auto out = (*model)->Generate(Request(3, 10), GenerateContext{});
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.error().code, ErrorCode::kContentRejected);
}

TEST(BedrockModel, AccessDeniedSaysHowToGetAccessToday) {
  Harness h;
  h.transport->Push(403, R"({"message":"You don't have access to the model."})",
                    {{"x-amzn-errortype", "AccessDeniedException"}});
  auto stability = h.Make("bedrock:stability.stable-image-core-v1:1");
  ASSERT_TRUE(stability.ok());
  auto out = (*stability)->Generate(Request(1, 5), GenerateContext{});
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.error().code, ErrorCode::kForbidden);
  const std::string& m = out.error().message;
  for (const char* needle :
       {"bedrock:InvokeModel", "arn:aws:bedrock:us-west-2::foundation-model/stability.",
        "aws-marketplace:Subscribe", "aws-marketplace:Unsubscribe",
        "aws-marketplace:ViewSubscriptions", "AllowMarketplaceSubscription=true",
        "allow_marketplace_subscription=true"}) {
    EXPECT_NE(m.find(needle), std::string::npos) << needle << " in " << m;
  }

  h.transport->Push(403, R"({"message":"denied"})",
                    {{"x-amzn-errortype", "AccessDeniedException"}});
  auto nova = h.Make("bedrock:amazon.nova-canvas-v1:0");
  ASSERT_TRUE(nova.ok());
  ValidRequest r = Request(1, 5);
  auto denied = (*nova)->Generate(r, GenerateContext{});
  ASSERT_FALSE(denied.ok());
  EXPECT_EQ(denied.error().message.find("aws-marketplace"), std::string::npos);
  EXPECT_NE(denied.error().message.find("no subscription"), std::string::npos);
}

TEST(BedrockModel, NovaCanvasSeedLimitIsEnforcedByValidation) {
  Harness h;
  auto nova = h.Make("bedrock:amazon.nova-canvas-v1:0");
  ASSERT_TRUE(nova.ok());
  GenerateRequest in;
  in.prompt = "a kite";
  in.seed = 858'993'459;
  EXPECT_TRUE(Validate(in, (*nova)->Limits()).ok());
  in.seed = 858'993'460;
  auto bad = Validate(in, (*nova)->Limits());
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().field, "seed");
  in.seed.reset();
  for (int i = 0; i < 50; ++i) {
    auto random = Validate(in, (*nova)->Limits());
    ASSERT_TRUE(random.ok());
    EXPECT_LE(random->seed, 858'993'459);
  }
}

// Retries and error mapping go through aws::Client with Bedrock's rules; these drive the whole
// path (signing, retries, refine_error) over the fake transport.

aws::HttpResponse Failure(int status, const std::string& type, const std::string& message) {
  aws::HttpResponse r;
  r.status = status;
  r.headers = {{"x-amzn-errortype", type + ":http://internal.amazon.com/coral/com.amazon.bedrock/"},
               {"x-amzn-requestid", "rid-" + type}};
  r.body = json{{"message", message}}.dump();
  return r;
}

void PushFailure(aws::FakeTransport& t, int status, const std::string& type,
                 const std::string& message = "scripted") {
  t.responses.push_back(Failure(status, type, message));
}

void PushNovaImage(aws::FakeTransport& t) {
  t.Push(200, json{{"images", {PngBase64(1024, 1024)}}}.dump());
}

Result<ModelOutput> GenerateNova(Harness& h,
                                 const std::string& spec = "bedrock:amazon.nova-canvas-v1:0") {
  auto model = h.Make(spec);
  if (!model.ok()) return model.error();
  return (*model)->Generate(Request(1, 7), GenerateContext{});
}

TEST(BedrockRetries, ThrottlingIsRetriedThenSucceeds) {
  Harness h;
  PushFailure(*h.transport, 429, "ThrottlingException", "Too many requests");
  PushFailure(*h.transport, 429, "ThrottlingException", "Too many requests");
  PushNovaImage(*h.transport);
  auto out = GenerateNova(h);
  ASSERT_TRUE(out.ok()) << out.error().message;
  EXPECT_EQ(out->images.size(), 1u);
  ASSERT_EQ(h.transport->requests.size(), 3u);
  for (const auto& sent : h.transport->requests) {  // every attempt signed, same body
    EXPECT_NE(aws::FakeTransport::HeaderOf(sent, "authorization").find("/us-west-2/bedrock/"),
              std::string::npos);
    EXPECT_EQ(sent.body, h.transport->requests[0].body);
  }
}

TEST(BedrockRetries, ThrottlingIsBoundedThenRateLimited) {
  Harness h;
  h.transport->handler = [](const aws::HttpRequest&) {
    return Failure(429, "ThrottlingException", "Too many requests");
  };
  auto out = GenerateNova(h);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.error().code, ErrorCode::kRateLimited);
  EXPECT_GE(out.error().retry_after_s, 5);
  EXPECT_NE(out.error().message.find("throttled by Bedrock"), std::string::npos);
  EXPECT_NE(out.error().message.find("rid-ThrottlingException"), std::string::npos);
  EXPECT_EQ(h.transport->requests.size(), 4u);
}

TEST(BedrockRetries, TransientFailuresAreRetriedThenUpstreamUnavailable) {
  struct Case {
    int status;
    const char* type;
    size_t attempts;
  };
  for (Case c :
       {Case{503, "ServiceUnavailableException", 3}, Case{500, "InternalServerException", 3},
        Case{502, "BadGateway", 3}, Case{429, "ModelNotReadyException", 5}}) {
    Harness h;
    h.transport->handler = [&](const aws::HttpRequest&) {
      return Failure(c.status, c.type, "try later");
    };
    auto out = GenerateNova(h);
    ASSERT_FALSE(out.ok()) << c.type;
    EXPECT_EQ(out.error().code, ErrorCode::kUpstreamUnavailable) << c.type;
    EXPECT_EQ(h.transport->requests.size(), c.attempts) << c.type;
  }
  Harness h;  // and a transient failure followed by an answer is a success
  PushFailure(*h.transport, 503, "ServiceUnavailableException");
  PushNovaImage(*h.transport);
  EXPECT_TRUE(GenerateNova(h).ok());
  EXPECT_EQ(h.transport->requests.size(), 2u);
}

TEST(BedrockRetries, TimeoutsAreRetriedOnceThenUpstreamTimeout) {
  Harness h;
  h.transport->handler = [](const aws::HttpRequest&) {
    return Failure(408, "ModelTimeoutException", "Model has timed out");
  };
  auto out = GenerateNova(h);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.error().code, ErrorCode::kUpstreamTimeout);
  EXPECT_EQ(h.transport->requests.size(), 2u);

  Harness slow;
  slow.transport->PushFailure(aws::TransportFailure::kTimeout, "read timed out");
  slow.transport->PushFailure(aws::TransportFailure::kTimeout, "read timed out");
  auto timed_out = GenerateNova(slow);
  ASSERT_FALSE(timed_out.ok());
  EXPECT_EQ(timed_out.error().code, ErrorCode::kUpstreamTimeout);
  EXPECT_EQ(slow.transport->requests.size(), 2u);
  EXPECT_EQ(slow.transport->requests[0].timeout_ms, 300'000);  // image calls may take minutes
}

TEST(BedrockRetries, ClientErrorsAreNotRetried) {
  struct Case {
    int status;
    const char* type;
    const char* message;
    ErrorCode code;
    const char* says;
  };
  for (Case c : {
           Case{400, "ValidationException", "width must be a multiple of 64",
                ErrorCode::kInvalidRequest, "rejected the request: width must be"},
           Case{400, "ValidationException", "This request has been blocked by our content filters.",
                ErrorCode::kContentRejected, "blocked by our content filters"},
           Case{403, "AccessDeniedException", "denied", ErrorCode::kForbidden,
                "bedrock:InvokeModel on arn:aws:bedrock:us-west-2::foundation-model/"},
           Case{403, "UnrecognizedClientException", "bad token", ErrorCode::kForbidden,
                "credentials were not accepted"},
           Case{404, "ResourceNotFoundException", "no such model", ErrorCode::kNotFound,
                "is not available to this account"},
           Case{424, "ModelErrorException", "boom", ErrorCode::kUpstreamUnavailable,
                "the model failed"},
       }) {
    Harness h;
    PushFailure(*h.transport, c.status, c.type, c.message);
    PushNovaImage(*h.transport);  // never reached
    auto out = GenerateNova(h);
    ASSERT_FALSE(out.ok()) << c.type;
    EXPECT_EQ(out.error().code, c.code) << c.type << ": " << out.error().message;
    EXPECT_NE(out.error().message.find(c.says), std::string::npos) << out.error().message;
    EXPECT_EQ(h.transport->requests.size(), 1u) << c.type;
  }
}

TEST(BedrockRetries, LegacyModelNamesTheActiveAlternatives) {
  Harness h;
  PushFailure(*h.transport, 404, "ResourceNotFoundException",
              "This model version has reached the end of its life.");
  auto model = h.Make("bedrock:amazon.titan-image-generator-v1");
  ASSERT_TRUE(model.ok()) << model.error().message;
  auto out = (*model)->Generate(Request(1, 7), GenerateContext{});
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.error().code, ErrorCode::kNotFound);
  EXPECT_NE(out.error().message.find("Use an active model instead"), std::string::npos)
      << out.error().message;
  EXPECT_NE(out.error().message.find("stability.stable-image-core-v1:1"), std::string::npos);
  EXPECT_EQ(h.transport->requests.size(), 1u);
}

TEST(BedrockRetries, ExpiredTokenRefreshesCredentialsOnceOutsideTheRetries) {
  Harness h;
  PushFailure(*h.transport, 403, "ExpiredTokenException", "The security token has expired");
  PushNovaImage(*h.transport);
  EXPECT_TRUE(GenerateNova(h).ok());
  EXPECT_EQ(h.transport->requests.size(), 2u);
}

TEST(BedrockRequest, ArnIsOneEncodedSegmentSignedAsSent) {
  Harness h;
  h.options.endpoint = "http://127.0.0.1:9/base";
  PushNovaImage(*h.transport);
  ::setenv("_X_AMZN_TRACE_ID", "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1", 1);
  auto out = GenerateNova(
      h, "bedrock:arn:aws:bedrock:us-west-2::foundation-model/amazon.nova-canvas-v1:0");
  ::unsetenv("_X_AMZN_TRACE_ID");
  ASSERT_TRUE(out.ok()) << out.error().message;
  const aws::HttpRequest& sent = h.transport->requests.at(0);
  EXPECT_EQ(sent.method, "POST");
  EXPECT_EQ(sent.url,
            "http://127.0.0.1:9/base/model/"
            "arn%3Aaws%3Abedrock%3Aus-west-2%3A%3Afoundation-model%2Famazon.nova-canvas-v1%3A0/"
            "invoke");
  EXPECT_EQ(aws::FakeTransport::HeaderOf(sent, "x-amzn-trace-id"),
            "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1");
  std::string auth = aws::FakeTransport::HeaderOf(sent, "authorization");
  EXPECT_NE(auth.find("Credential=AKID/"), std::string::npos) << auth;
  EXPECT_NE(auth.find("/us-west-2/bedrock/aws4_request"), std::string::npos) << auth;
  EXPECT_EQ(auth.find("x-amzn-trace-id"), std::string::npos) << auth;  // X-Ray may rewrite it
  EXPECT_EQ(aws::FakeTransport::HeaderOf(sent, "content-type"), "application/json");
}

// One call failing for good stops the others, also one waiting out a long backoff.
TEST(BedrockRetries, AFailedCallEndsTheOthersBackoff) {
  Harness h;
  h.options.retry_base_ms = 4000;
  std::atomic<int> throttled{0};
  auto transport = std::make_shared<ConcurrentTransport>([&](const aws::HttpRequest& request) {
    if (json::parse(request.body)["seed"] == 11) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      return Failure(400, "ValidationException", "bad prompt");
    }
    ++throttled;
    return Failure(429, "ThrottlingException", "Too many requests");
  });
  h.options.transport = transport;
  auto model = h.Make("bedrock:stability.stable-image-core-v1:1");
  ASSERT_TRUE(model.ok());
  auto start = std::chrono::steady_clock::now();
  auto out = (*model)->Generate(Request(2, 10), GenerateContext{});
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.error().code, ErrorCode::kInvalidRequest) << out.error().message;
  EXPECT_LT(s, 2.0);
  EXPECT_LT(throttled.load(), 4);  // stopped before its last attempt
}

// A backoff that would cross the request's deadline is not waited out.
TEST(BedrockRetries, RetriesStopAtTheDeadline) {
  Harness h;
  h.options.retry_base_ms = 60'000;
  h.transport->handler = [](const aws::HttpRequest&) {
    return Failure(429, "ThrottlingException", "Too many requests");
  };
  auto model = h.Make("bedrock:amazon.nova-canvas-v1:0");
  ASSERT_TRUE(model.ok());
  GenerateContext ctx;
  ctx.deadline = Clock::now() + std::chrono::milliseconds(300);
  auto start = std::chrono::steady_clock::now();
  auto out = (*model)->Generate(Request(1, 7), ctx);
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_FALSE(out.ok());
  EXPECT_TRUE(out.error().code == ErrorCode::kRateLimited ||
              out.error().code == ErrorCode::kDeadlineExceeded)
      << out.error().message;
  EXPECT_LT(s, 1.0);
}

}  // namespace
}  // namespace imagegen
