#include "model/openai/openai_model.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "aws/encoding.h"
#include "aws/fake_transport.h"
#include "image/png.h"

namespace imagegen {
namespace {

using json = nlohmann::json;
using aws::FakeTransport;

std::string PngB64(int w, int h, uint8_t shade) {
  Image image(w, h);
  std::fill(image.rgb.begin(), image.rgb.end(), shade);
  return aws::Base64Encode(EncodePng(image, {}).value());
}

std::string Images(int n, int w = 64, int h = 64, bool seeds = false) {
  json data = json::array();
  for (int i = 0; i < n; ++i) {
    json item = {{"b64_json", PngB64(w, h, static_cast<uint8_t>(10 * i))}};
    if (seeds) item["seed"] = 100 + i;
    data.push_back(item);
  }
  return json{{"created", 1}, {"data", data}}.dump();
}

std::string OpenAiError(const std::string& message, const std::string& code,
                        const std::string& param = "") {
  json e = {{"message", message}, {"type", "invalid_request_error"}, {"code", code}};
  e["param"] = param.empty() ? json(nullptr) : json(param);
  return json{{"error", e}}.dump();
}

ValidRequest Request(int count = 1) {
  ValidRequest r;
  r.prompt = "a red square";
  r.negative_prompt = "blue";
  r.width = 64;
  r.height = 64;
  r.seed = 42;
  r.steps = 6;
  r.guidance = 5.5;
  r.count = count;
  return r;
}

class OpenAiModelTest : public ::testing::Test {
 protected:
  std::unique_ptr<ImageModel> Make(const std::string& spec,
                                   std::optional<OpenAiExtras> extras = std::nullopt) {
    OpenAiModelOptions options;
    options.api_key = "sk-secret";
    options.retry_base_ms = 1;
    options.transport = transport_;
    options.extras = extras;
    options.sizes = {{64, 64}, {128, 128}};
    auto model = MakeOpenAiModel(spec, options);
    EXPECT_TRUE(model.ok()) << (model.ok() ? "" : model.error().message);
    return std::move(model.value());
  }
  json SentBody(size_t i = 0) { return json::parse(transport_->requests.at(i).body); }

  std::shared_ptr<FakeTransport> transport_ = std::make_shared<FakeTransport>();
  GenerateContext ctx_;
};

TEST_F(OpenAiModelTest, SendsTheRequestWithImagegensFieldsToAnotherServer) {
  auto model = Make("openai:http://upstream:8080/#sd-model");
  transport_->Push(200, Images(2, 64, 64, /*seeds=*/true));
  auto out = model->Generate(Request(2), ctx_);
  ASSERT_TRUE(out.ok()) << out.error().message;
  ASSERT_EQ(transport_->requests.size(), 1u);
  const auto& sent = transport_->requests[0];
  EXPECT_EQ(sent.method, "POST");
  EXPECT_EQ(sent.url, "http://upstream:8080/v1/images/generations");
  EXPECT_EQ(FakeTransport::HeaderOf(sent, "authorization"), "Bearer sk-secret");
  json body = SentBody();
  EXPECT_EQ(body["prompt"], "a red square");
  EXPECT_EQ(body["n"], 2);
  EXPECT_EQ(body["size"], "64x64");
  EXPECT_EQ(body["response_format"], "b64_json");
  EXPECT_EQ(body["model"], "sd-model");
  EXPECT_EQ(body["seed"], 42);
  EXPECT_EQ(body["steps"], 6);
  EXPECT_EQ(body["guidance_scale"], 5.5);
  EXPECT_EQ(body["negative_prompt"], "blue");
  ASSERT_EQ(out->images.size(), 2u);
  EXPECT_EQ(out->images[1].rgb[0], 10);
  EXPECT_EQ(out->seeds, (std::vector<int64_t>{100, 101}));
  EXPECT_EQ(model->Name(), "openai:http://upstream:8080#sd-model");
  EXPECT_EQ(model->Limits().sizes.front(), (std::pair<int, int>{64, 64}));
}

TEST_F(OpenAiModelTest, OpenAiItselfGetsNoExtrasAndABaseUrlWithV1IsKept) {
  auto model = Make("openai:https://api.openai.com/v1#gpt-image-1");
  transport_->Push(200, Images(1));
  auto out = model->Generate(Request(), ctx_);
  ASSERT_TRUE(out.ok()) << out.error().message;
  EXPECT_EQ(transport_->requests[0].url, "https://api.openai.com/v1/images/generations");
  json body = SentBody();
  EXPECT_FALSE(body.contains("seed") || body.contains("steps") || body.contains("negative_prompt"));
  EXPECT_FALSE(body.contains("response_format"));  // gpt-image models refuse it
  EXPECT_TRUE(out->seeds.empty());
  ASSERT_FALSE(out->warnings.empty());
  EXPECT_NE(out->warnings.back().find("chose its own seed"), std::string::npos);
}

TEST_F(OpenAiModelTest, SdCppExtrasTravelInsideThePrompt) {
  auto model = Make("openai:http://sd:1234", OpenAiExtras::kSdCpp);
  transport_->Push(200, Images(1));
  ASSERT_TRUE(model->Generate(Request(), ctx_).ok());
  std::string prompt = SentBody()["prompt"];
  const std::string open = "a red square<sd_cpp_extra_args>";
  ASSERT_EQ(prompt.rfind(open, 0), 0u) << prompt;
  std::string args = prompt.substr(open.size(), prompt.size() - open.size() - 20);
  EXPECT_EQ(prompt.substr(prompt.size() - 20), "</sd_cpp_extra_args>");
  json extra = json::parse(args);
  EXPECT_EQ(extra["seed"], 42);
  EXPECT_EQ(extra["negative_prompt"], "blue");
  EXPECT_EQ(extra["sample_params"]["sample_steps"], 6);
  EXPECT_EQ(extra["sample_params"]["guidance"]["txt_cfg"], 5.5);
  EXPECT_FALSE(SentBody().contains("seed"));
}

TEST_F(OpenAiModelTest, ThrottlingAndServerErrorsAreRetriedThenSucceed) {
  auto model = Make("openai:http://upstream");
  transport_->Push(429, OpenAiError("slow down", "rate_limit_exceeded"), {{"retry-after", "0"}});
  transport_->PushFailure(aws::TransportFailure::kReset);
  transport_->Push(503, "busy");
  transport_->Push(200, Images(1));
  auto out = model->Generate(Request(), ctx_);
  ASSERT_TRUE(out.ok()) << out.error().message;
  EXPECT_EQ(transport_->requests.size(), 4u);
}

TEST_F(OpenAiModelTest, AttemptsAreBoundedAndTheLastFailureIsMapped) {
  auto model = Make("openai:http://upstream");
  for (int i = 0; i < 6; ++i) transport_->Push(502, "bad gateway");
  auto out = model->Generate(Request(), ctx_);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.error().code, ErrorCode::kUpstreamUnavailable);
  EXPECT_NE(out.error().message.find("after 4 attempts"), std::string::npos) << out.error().message;
  EXPECT_EQ(transport_->requests.size(), 4u);
}

TEST_F(OpenAiModelTest, ARefusalPassesThroughUnretried) {
  auto model = Make("openai:http://upstream");
  transport_->Push(
      400, OpenAiError("prompt must be at most 512 characters", "invalid_request", "prompt"));
  auto out = model->Generate(Request(), ctx_);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.error().code, ErrorCode::kInvalidRequest);
  EXPECT_EQ(out.error().message, "prompt must be at most 512 characters");
  EXPECT_EQ(out.error().field, "prompt");
  EXPECT_EQ(transport_->requests.size(), 1u);
}

TEST_F(OpenAiModelTest, ContentPolicyAuthAndQuotaMapToTheTaxonomy) {
  auto model = Make("openai:http://upstream");
  transport_->Push(400, OpenAiError("blocked by the safety system", "content_policy_violation"));
  EXPECT_EQ(model->Generate(Request(), ctx_).error().code, ErrorCode::kContentRejected);
  transport_->Push(401, OpenAiError("Incorrect API key provided", "invalid_api_key"));
  auto auth = model->Generate(Request(), ctx_);
  EXPECT_EQ(auth.error().code, ErrorCode::kForbidden);
  EXPECT_EQ(auth.error().message.find("sk-secret"), std::string::npos);
  transport_->Push(429, OpenAiError("You exceeded your quota", "insufficient_quota"));
  size_t before = transport_->requests.size();
  auto quota = model->Generate(Request(), ctx_);
  EXPECT_EQ(quota.error().code, ErrorCode::kRateLimited);
  EXPECT_EQ(transport_->requests.size(), before + 1);  // a quota is not waited out
}

TEST_F(OpenAiModelTest, ALongRetryAfterIsPassedOnNotWaited) {
  auto model = Make("openai:http://upstream");
  transport_->Push(429, OpenAiError("slow down", "rate_limit_exceeded"), {{"retry-after", "60"}});
  auto out = model->Generate(Request(), ctx_);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.error().code, ErrorCode::kRateLimited);
  EXPECT_EQ(out.error().retry_after_s, 60);
  EXPECT_EQ(transport_->requests.size(), 1u);
}

TEST_F(OpenAiModelTest, APassedDeadlineOrCancelStopsBeforeAnyCall) {
  auto model = Make("openai:http://upstream");
  GenerateContext late;
  late.deadline = Clock::now() - std::chrono::seconds(1);
  EXPECT_EQ(model->Generate(Request(), late).error().code, ErrorCode::kDeadlineExceeded);
  std::atomic<bool> cancelled{true};
  GenerateContext cancel;
  cancel.cancelled = &cancelled;
  EXPECT_EQ(model->Generate(Request(), cancel).error().code, ErrorCode::kCancelled);
  EXPECT_TRUE(transport_->requests.empty());
}

TEST_F(OpenAiModelTest, UrlsAreFetchedWithoutCredentialsAndSizesFixed) {
  auto model = Make("openai:http://upstream");
  transport_->Push(200, json{{"data", {{{"url", "http://cdn.example/img.png"}}}}}.dump());
  transport_->Push(200, aws::Base64Decode(PngB64(32, 32, 7)).value());
  auto out = model->Generate(Request(), ctx_);
  ASSERT_TRUE(out.ok()) << out.error().message;
  ASSERT_EQ(transport_->requests.size(), 2u);
  EXPECT_EQ(transport_->requests[1].method, "GET");
  EXPECT_EQ(transport_->requests[1].url, "http://cdn.example/img.png");
  EXPECT_EQ(FakeTransport::HeaderOf(transport_->requests[1], "authorization"), "");
  EXPECT_EQ(out->images[0].width, 64);
  EXPECT_NE(out->warnings[0].find("resized"), std::string::npos);
}

TEST_F(OpenAiModelTest, MalformedAnswersAreUpstreamFailures) {
  auto model = Make("openai:http://upstream");
  transport_->Push(200, R"({"created": 1})");
  EXPECT_EQ(model->Generate(Request(), ctx_).error().code, ErrorCode::kUpstreamUnavailable);
  transport_->Push(200, Images(1));
  EXPECT_EQ(model->Generate(Request(2), ctx_).error().code, ErrorCode::kUpstreamUnavailable);
  transport_->Push(200, R"({"data": [{"b64_json": "bm90IGFuIGltYWdl"}]})");
  EXPECT_EQ(model->Generate(Request(), ctx_).error().code, ErrorCode::kUpstreamUnavailable);
}

TEST(OpenAiSpec, BadSpecsAndSizeLists) {
  OpenAiModelOptions options;
  EXPECT_FALSE(MakeOpenAiModel("openai:", options).ok());
  EXPECT_FALSE(MakeOpenAiModel("openai:ftp://x", options).ok());
  auto creds = MakeOpenAiModel("openai:http://u:p@host", options);
  ASSERT_FALSE(creds.ok());
  EXPECT_EQ(creds.error().field, "model");
  EXPECT_EQ(ParseSizeList("512x512, 1024x768", "s").value(),
            (std::vector<std::pair<int, int>>{{512, 512}, {1024, 768}}));
  EXPECT_FALSE(ParseSizeList("512", "s").ok());
  auto defaults = MakeOpenAiModel("openai:http://host", options);
  ASSERT_TRUE(defaults.ok());
  EXPECT_EQ(defaults.value()->Limits().sizes.front(), (std::pair<int, int>{1024, 1024}));
}

}  // namespace
}  // namespace imagegen
