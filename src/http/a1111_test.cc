#include "http/a1111.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <future>
#include <nlohmann/json.hpp>
#include <thread>

#include "aws/encoding.h"
#include "http/api.h"
#include "image/png.h"
#include "model/testing/test_model.h"
#include "store/file_store.h"

namespace imagegen {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// The test model with a sampler choice, as the Stable Diffusion engine offers one: the pixels
// do not depend on it, the door's mapping and reporting do.
class ChoosingModel final : public ImageModel {
 public:
  explicit ChoosingModel(std::unique_ptr<ImageModel> inner) : inner_(std::move(inner)) {
    limits_ = inner_->Limits();
    limits_.samplers = {"euler_a", "dpmpp_2m_karras", "euler"};
  }
  std::string Name() const override { return inner_->Name(); }
  const ModelLimits& Limits() const override { return limits_; }
  Result<ModelOutput> Generate(const ValidRequest& request, const GenerateContext& ctx) override {
    return inner_->Generate(request, ctx);
  }

 private:
  std::unique_ptr<ImageModel> inner_;
  ModelLimits limits_;
};

// Reports half its steps and a preview, then waits for the test to let it finish: what
// GET /progress shows of a generation in flight.
class PausingModel final : public ImageModel {
 public:
  PausingModel(std::unique_ptr<ImageModel> inner, std::shared_future<void> go)
      : inner_(std::move(inner)), go_(std::move(go)) {}
  std::string Name() const override { return inner_->Name(); }
  const ModelLimits& Limits() const override { return inner_->Limits(); }
  Result<ModelOutput> Generate(const ValidRequest& request, const GenerateContext& ctx) override {
    ctx.on_progress(1, 2);
    Preview preview;
    preview.step = 1;
    preview.total = 2;
    preview.width = 8;
    preview.height = 4;
    preview.rgb.assign(8 * 4 * 3, 200);
    if (ctx.on_preview) ctx.on_preview(preview);
    go_.wait();
    return inner_->Generate(request, ctx);
  }

 private:
  std::unique_ptr<ImageModel> inner_;
  std::shared_future<void> go_;
};

class A1111Test : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("imagegen-a1111-" + std::to_string(::getpid()) + "-" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    Use(std::make_shared<ChoosingModel>(std::move(MakeTestModel("test").value())));
  }
  void Use(std::shared_ptr<ImageModel> model) {
    auto pipeline = std::make_shared<Pipeline>(
        std::move(model), std::move(MakeFileStore(root_.string()).value()), PipelineOptions{});
    ApiOptions options;
    options.log_requests = false;
    api_ = std::make_unique<Api>(pipeline, options);
  }
  void TearDown() override { fs::remove_all(root_); }

  HttpResponse Call(const std::string& method, const std::string& path,
                    const std::string& body = "") {
    HttpRequest r;
    r.method = method;
    r.path = path.substr(0, path.find('?'));
    if (path.find('?') != std::string::npos)
      r.query = ParseQueryString(path.substr(path.find('?') + 1));
    r.body = body;
    r.base_url = "http://test";
    return api_->Handle(r);
  }
  json Info(const HttpResponse& response) {
    return json::parse(json::parse(response.body)["info"].get<std::string>());
  }

  fs::path root_;
  std::unique_ptr<Api> api_;
};

TEST_F(A1111Test, SamplersAreListedByA1111Names) {
  auto response = Call("GET", "/sdapi/v1/samplers");
  ASSERT_EQ(response.status, 200);
  json list = json::parse(response.body);
  ASSERT_EQ(list.size(), 3u);
  EXPECT_EQ(list[0]["name"], "Euler a");
  EXPECT_EQ(list[0]["aliases"], json({"k_euler_a", "k_euler_ancestral"}));
  EXPECT_EQ(list[1]["name"], "DPM++ 2M Karras");
  EXPECT_EQ(list[1]["options"]["scheduler"], "karras");
  EXPECT_EQ(list[2]["name"], "Euler");
}

TEST_F(A1111Test, TheSamplerUsedIsNamedInTheInfotext) {
  std::string base = R"("prompt": "p", "width": 64, "height": 64, "seed": 5, "steps": 3)";
  auto chosen = Call("POST", "/sdapi/v1/txt2img",
                     "{" + base + R"(, "sampler_name": "DPM++ 2M", "scheduler": "Karras"})");
  ASSERT_EQ(chosen.status, 200) << chosen.body;
  EXPECT_EQ(Info(chosen)["infotexts"][0],
            "p\nSteps: 3, Sampler: DPM++ 2M Karras, CFG scale: 7.5, Seed: 5, Size: 64x64, "
            "Model: test, Version: imagegen " IMAGEGEN_VERSION);
  EXPECT_EQ(Info(chosen)["sampler_name"], "DPM++ 2M Karras");
  EXPECT_TRUE(Info(chosen)["warnings"].empty()) << Info(chosen)["warnings"];
  auto by_alias =
      Call("POST", "/sdapi/v1/txt2img", "{" + base + R"(, "sampler_index": "k_euler"})");
  EXPECT_EQ(Info(by_alias)["sampler_name"], "Euler");
  auto by_default = Call("POST", "/sdapi/v1/txt2img", "{" + base + "}");
  EXPECT_EQ(Info(by_default)["sampler_name"], "Euler a");
}

TEST_F(A1111Test, ASamplerTheModelLacksIsA422AndAnUnknownOneA404) {
  auto ddim = Call("POST", "/sdapi/v1/txt2img", R"({"prompt": "p", "sampler_name": "DDIM"})");
  EXPECT_EQ(ddim.status, 422);
  json body = json::parse(ddim.body);
  EXPECT_EQ(body["detail"][0]["loc"], json({"body", "sampler_name"}));
  EXPECT_EQ(body["code"], "invalid_request");
  auto unknown = Call("POST", "/sdapi/v1/txt2img", R"({"prompt": "p", "sampler_name": "UniPC"})");
  EXPECT_EQ(unknown.status, 404);
  EXPECT_EQ(json::parse(unknown.body)["detail"], "Sampler not found: \"UniPC\"");
  EXPECT_EQ(json::parse(unknown.body)["error"], "HTTPException");
}

TEST_F(A1111Test, ProgressShowsTheStepsAndPreviewOfAGenerationInFlight) {
  std::promise<void> go;
  Use(std::make_shared<PausingModel>(std::move(MakeTestModel("test").value()),
                                     go.get_future().share()));
  auto running = std::async(std::launch::async, [this] {
    return Call("POST", "/sdapi/v1/txt2img", R"({"prompt": "p", "width": 64, "height": 64})");
  });
  json progress;
  for (int i = 0; i < 500 && !progress.contains("current_task"); ++i) {
    json p = json::parse(Call("GET", "/sdapi/v1/progress").body);
    if (p["state"]["job_count"] == 1 && !p["current_image"].is_null()) progress = p;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_FALSE(progress.is_null()) << "no progress seen";
  EXPECT_DOUBLE_EQ(progress["progress"].get<double>(), 0.5);
  EXPECT_EQ(progress["state"]["sampling_step"], 1);
  EXPECT_EQ(progress["state"]["sampling_steps"], 2);
  auto png = aws::Base64Decode(progress["current_image"].get<std::string>());
  ASSERT_TRUE(png.has_value());
  auto preview = DecodePng(*png, nullptr);
  ASSERT_TRUE(preview.ok());
  EXPECT_EQ(preview->width, 8);
  EXPECT_EQ(preview->rgb[0], 200);
  json skipped = json::parse(Call("GET", "/sdapi/v1/progress?skip_current_image=true").body);
  EXPECT_TRUE(skipped["current_image"].is_null());
  EXPECT_EQ(skipped["state"]["job_count"], 1);
  go.set_value();
  EXPECT_EQ(running.get().status, 200);
  EXPECT_EQ(json::parse(Call("GET", "/sdapi/v1/progress").body)["state"]["job_count"], 0);
}

TEST_F(A1111Test, AnInternalErrorsDetailStaysInTheLog) {
  Use(std::shared_ptr<ImageModel>(std::move(MakeTestModel("test?fail=internal").value())));
  auto response = Call("POST", "/sdapi/v1/txt2img", R"({"prompt": "p"})");
  EXPECT_EQ(response.status, 500);
  json body = json::parse(response.body);
  EXPECT_EQ(body["code"], "internal");
  EXPECT_EQ(body["detail"].get<std::string>().rfind("internal error; request id ", 0), 0u);
  EXPECT_EQ(response.body.find("told to fail"), std::string::npos) << response.body;
}

TEST(A1111Mapping, SamplerNamesRoundTrip) {
  for (const char* name : {"euler", "euler_a", "dpmpp_2m", "dpmpp_2m_karras", "ddim"}) {
    EXPECT_EQ(SamplerFromA1111(A1111SamplerName(name), ""), name);
  }
  EXPECT_EQ(SamplerFromA1111("k_dpmpp_2m", "karras"), "dpmpp_2m_karras");
  EXPECT_EQ(SamplerFromA1111("DPM++ 2M", "automatic"), "dpmpp_2m");
  EXPECT_EQ(SamplerFromA1111("LMS", ""), std::nullopt);
  EXPECT_EQ(A1111SamplerName("turbo"), "turbo");  // no A1111 name: imagegen's
}

TEST(A1111Mapping, InfoTextHasA1111sLayout) {
  GenerateResult r;
  r.prompt = "a cat";
  r.negative_prompt = "dog";
  r.steps = 20;
  r.guidance = 7;
  r.width = 512;
  r.height = 512;
  r.model = "m";
  EXPECT_EQ(InfoText(r, "Euler a", 11, 2, 1, 0.75),
            "a cat\nNegative prompt: dog\nSteps: 20, Sampler: Euler a, CFG scale: 7.0, Seed: 11, "
            "Size: 512x512, Model: m, Denoising strength: 0.75, Batch size: 2, Batch pos: 1, "
            "Version: imagegen " IMAGEGEN_VERSION);
}

TEST(A1111Mapping, ErrorsInFastApiShape) {
  Error invalid = Error::Invalid("guidance", "guidance must be between 0 and 20");
  HttpResponse r = A1111ErrorResponse(invalid);
  EXPECT_EQ(r.status, 422);
  json body = json::parse(r.body);
  EXPECT_EQ(body["detail"][0]["loc"], json({"body", "cfg_scale"}));
  EXPECT_EQ(body["detail"][0]["msg"], "guidance must be between 0 and 20");
  HttpResponse framing = A1111ErrorResponse(Error::Make(ErrorCode::kInvalidRequest, "bad chunk"),
                                            /*validation=*/false);
  EXPECT_EQ(framing.status, 400);
  EXPECT_EQ(json::parse(framing.body)["detail"], "bad chunk");
  Error busy = Error::Make(ErrorCode::kOverloaded, "busy");
  busy.retry_after_s = 2;
  HttpResponse b = A1111ErrorResponse(busy);
  EXPECT_EQ(b.status, 503);
  EXPECT_EQ(json::parse(b.body)["code"], "overloaded");
  EXPECT_EQ(json::parse(b.body)["detail"], "busy");
  ASSERT_FALSE(b.headers.empty());
  EXPECT_EQ(b.headers[0], (std::pair<std::string, std::string>{"Retry-After", "2"}));
}

TEST(A1111Progress, TheOldestEntryIsReported) {
  ProgressBoard board;
  int count = -1;
  EXPECT_FALSE(board.Oldest(&count).has_value());
  EXPECT_EQ(count, 0);
  int first = board.Begin("one");
  int second = board.Begin("two");
  board.Update(second, 3, 4);
  board.Update(first, 1, 8);
  auto oldest = board.Oldest(&count);
  ASSERT_TRUE(oldest.has_value());
  EXPECT_EQ(count, 2);
  EXPECT_EQ(oldest->job, "one");
  EXPECT_EQ(oldest->step, 1);
  board.End(first);
  EXPECT_EQ(board.Oldest(&count)->job, "two");
  board.End(second);
  EXPECT_FALSE(board.Oldest(&count).has_value());
}

}  // namespace
}  // namespace imagegen
