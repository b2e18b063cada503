#include "model/bedrock/bedrock_model.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
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
  auto start = std::chrono::steady_clock::now();
  auto out = (*model)->Generate(Request(4, 0), GenerateContext{});
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_TRUE(out.ok()) << out.error().message;
  EXPECT_EQ(out->images.size(), 4u);
  EXPECT_EQ(out->seeds, (std::vector<int64_t>{123456, 1, 2, 3}));
  EXPECT_EQ(most.load(), 4);
  EXPECT_LT(s, 1.0);
  EXPECT_EQ(transport->calls.load(), 4);
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

}  // namespace
}  // namespace imagegen
