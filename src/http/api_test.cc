#include "http/api.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <future>
#include <nlohmann/json.hpp>

#include "app/services.h"
#include "model/testing/test_model.h"
#include "store/file_store.h"

namespace imagegen {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

class ApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("imagegen-api-" + std::to_string(::getpid()) + "-" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
  }
  void TearDown() override { fs::remove_all(root_); }

  std::unique_ptr<Api> MakeApi(ApiOptions options, const std::string& model = "test") {
    options.log_requests = false;
    auto store = MakeFileStore(root_.string());
    auto pipeline = std::make_shared<Pipeline>(std::move(MakeTestModel(model).value()),
                                               std::move(store.value()), PipelineOptions{});
    return std::make_unique<Api>(pipeline, options);
  }

  static HttpRequest Post(const std::string& path, const std::string& body) {
    HttpRequest r;
    r.method = "POST";
    r.path = path;
    r.body = body;
    r.headers["content-type"] = "application/json";
    r.base_url = "http://test";
    return r;
  }
  static HttpRequest Get(const std::string& path) {
    HttpRequest r;
    r.method = "GET";
    r.path = path;
    r.base_url = "http://test";
    return r;
  }
  static std::string Code(const HttpResponse& r) {
    return json::parse(r.body)["error"]["code"].get<std::string>();
  }

  fs::path root_;
};

TEST_F(ApiTest, GenerateThenFetchAndList) {
  auto api = MakeApi({});
  auto req = Post("/generate", R"({"prompt":"A croissant","seed":9})");
  HttpResponse gen = api->Handle(req);
  ASSERT_EQ(gen.status, 200) << gen.body;
  json body = json::parse(gen.body);
  EXPECT_EQ(body["seed"], 9);
  EXPECT_EQ(body["model"], "test");
  EXPECT_EQ(body["warnings"][0], "unknown word: \"croissant\"");
  std::string key = body["key"];
  EXPECT_EQ(body["url"], "http://test/images/" + key);

  auto get = Get("/images/" + key);
  HttpResponse image = api->Handle(get);
  EXPECT_EQ(image.status, 200);
  EXPECT_EQ(image.content_type, "image/png");
  EXPECT_EQ(image.body.substr(1, 3), "PNG");

  auto cached = Get("/images/" + key);
  for (auto& [name, value] : image.headers) {
    if (name == "ETag") cached.headers["if-none-match"] = value;
  }
  EXPECT_EQ(api->Handle(cached).status, 304);

  auto list = Get("/images");
  json page = json::parse(api->Handle(list).body);
  ASSERT_EQ(page["images"].size(), 1u);
  EXPECT_EQ(page["images"][0]["prompt"], "A croissant");
  EXPECT_EQ(page["images"][0]["seed"], 9);
}

TEST_F(ApiTest, DeleteAnswers204ThenGetHeadAndDeleteAnswer410) {
  auto api = MakeApi({});
  auto req = Post("/generate", R"({"prompt":"a red circle","seed":3,"job_id":"gone-1"})");
  ASSERT_EQ(api->Handle(req).status, 200);
  auto call = [&](const std::string& method, const std::string& path) {
    HttpRequest r = Get(path);
    r.method = method;
    return api->Handle(r);
  };
  // The pipeline's own objects are no images: the id's claim is not served.
  EXPECT_EQ(call("GET", "/images/ids/gone-1").status, 404);
  HttpResponse deleted = call("DELETE", "/images/gone-1.png");
  EXPECT_EQ(deleted.status, 204);
  EXPECT_TRUE(deleted.body.empty());
  for (const char* method : {"GET", "DELETE"}) {
    HttpResponse r = call(method, "/images/gone-1.png");
    EXPECT_EQ(r.status, 410) << method;
    EXPECT_EQ(Code(r), "gone") << method;
  }
  EXPECT_EQ(call("HEAD", "/images/gone-1.png").status, 410);
  EXPECT_EQ(call("GET", "/images/_deleted/gone-1.png.json").status, 404);
  HttpResponse missing = call("DELETE", "/images/never.png");
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(Code(missing), "not_found");
  EXPECT_EQ(call("DELETE", "/images/a/../b.png").status, 400);
  EXPECT_EQ(call("GET", "/images/never.png").status, 404);  // never stored: not gone
  HttpResponse list = call("GET", "/images");
  EXPECT_EQ(json::parse(list.body)["images"].size(), 0u);
}

TEST_F(ApiTest, ErrorContract) {
  auto api = MakeApi({});
  auto bad_json = Post("/generate", "{nope");
  HttpResponse r = api->Handle(bad_json);
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(Code(r), "invalid_request");
  auto form = Post("/generate", "prompt=x");
  form.headers["content-type"] = "application/x-www-form-urlencoded";
  EXPECT_EQ(api->Handle(form).status, 415);
  auto empty = Post("/generate", R"({"prompt":"  "})");
  EXPECT_EQ(json::parse(api->Handle(empty).body)["error"]["field"], "prompt");
  auto range = Post("/generate", R"({"prompt":"x","steps":100000})");
  EXPECT_EQ(api->Handle(range).status, 400);
  auto unknown_route = Get("/nope");
  EXPECT_EQ(api->Handle(unknown_route).status, 404);
  auto wrong_method = Get("/generate");
  HttpResponse m = api->Handle(wrong_method);
  EXPECT_EQ(m.status, 405);
  EXPECT_EQ(Code(m), "method_not_allowed");
  auto traversal = Get("/images/../etc/passwd");
  EXPECT_EQ(api->Handle(traversal).status, 400);
  auto missing = Get("/images/missing.png");
  EXPECT_EQ(api->Handle(missing).status, 404);
  auto bad_limit = Get("/images");
  bad_limit.query.emplace("limit", "0");
  EXPECT_EQ(api->Handle(bad_limit).status, 400);
}

TEST_F(ApiTest, ApiKeysProtectEverythingButPublicRoutes) {
  ApiOptions options;
  options.api_keys = {"secret-one", "secret-two"};
  auto api = MakeApi(options);
  auto health = Get("/healthz");
  EXPECT_EQ(api->Handle(health).status, 200);
  auto no_key = Post("/generate", R"({"prompt":"x"})");
  HttpResponse r = api->Handle(no_key);
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(r.body.find("secret"), std::string::npos);
  auto wrong = Post("/generate", R"({"prompt":"x"})");
  wrong.headers["authorization"] = "Bearer secret-on";
  EXPECT_EQ(api->Handle(wrong).status, 401);
  auto bearer = Post("/generate", R"({"prompt":"x"})");
  bearer.headers["authorization"] = "Bearer secret-two";
  EXPECT_EQ(api->Handle(bearer).status, 200);
  auto header = Get("/images");
  header.headers["x-api-key"] = "secret-one";
  EXPECT_EQ(api->Handle(header).status, 200);
}

TEST_F(ApiTest, CorsAllowsOnlyListedOrigins) {
  ApiOptions options;
  options.cors_origins = {"https://app.example"};
  auto api = MakeApi(options);
  auto allowed = Get("/healthz");
  allowed.headers["origin"] = "https://app.example";
  auto evil = Get("/healthz");
  evil.headers["origin"] = "https://evil.example";
  auto header = [](const HttpResponse& r, const std::string& name) {
    for (const auto& [n, v] : r.headers) {
      if (n == name) return v;
    }
    return std::string();
  };
  EXPECT_EQ(header(api->Handle(allowed), "Access-Control-Allow-Origin"), "https://app.example");
  EXPECT_EQ(header(api->Handle(evil), "Access-Control-Allow-Origin"), "");
}

TEST_F(ApiTest, SaturationAnswers503WithRetryAfter) {
  ApiOptions options;
  options.max_concurrent = 1;
  options.max_waiting = 0;
  auto api = MakeApi(options, "test?delay_ms=400");
  auto slow = std::async(std::launch::async, [&] {
    auto req = Post("/generate", R"({"prompt":"x"})");
    return api->Handle(req).status;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  auto req = Post("/generate", R"({"prompt":"y"})");
  HttpResponse busy = api->Handle(req);
  EXPECT_EQ(busy.status, 503);
  EXPECT_EQ(Code(busy), "overloaded");
  bool has_retry_after = false;
  for (const auto& [n, v] : busy.headers) has_retry_after |= n == "Retry-After";
  EXPECT_TRUE(has_retry_after);
  EXPECT_EQ(slow.get(), 200);
}

TEST_F(ApiTest, OpenAiShapes) {
  auto api = MakeApi({});
  auto req = Post("/v1/images/generations",
                  R"({"prompt":"x","n":2,"size":"128x128","response_format":"b64_json","seed":3})");
  HttpResponse r = api->Handle(req);
  ASSERT_EQ(r.status, 200) << r.body;
  json body = json::parse(r.body);
  ASSERT_EQ(body["data"].size(), 2u);
  EXPECT_TRUE(body["data"][0].contains("b64_json"));
  EXPECT_TRUE(body.contains("created"));
  auto bad = Post("/v1/images/generations", R"({"prompt":"x","response_format":"gif"})");
  json err = json::parse(api->Handle(bad).body);
  EXPECT_EQ(err["error"]["type"], "invalid_request_error");
  EXPECT_EQ(err["error"]["param"], "response_format");
}

// The doors that cannot stream (Lambda) buffer the events; the generation slot a stream holds
// is given back once the stream is done, and one that was never started gives it back too.
TEST_F(ApiTest, OpenAiStreamBuffersAndReleasesItsSlot) {
  ApiOptions options;
  options.max_concurrent = 1;
  options.max_waiting = 0;
  auto api = MakeApi(options);
  const std::string body =
      R"({"prompt":"x","size":"64x64","stream":true,"partial_images":1,"steps":4})";
  for (int round = 0; round < 3; ++round) {
    auto req = Post("/v1/images/generations", body);
    HttpResponse response = api->Handle(req);
    ASSERT_EQ(response.status, 200) << response.body;
    EXPECT_EQ(response.content_type, "text/event-stream");
    ASSERT_TRUE(static_cast<bool>(response.stream));
    if (round == 1) continue;  // dropped unstarted (a client gone before the head was written)
    BufferStream(&response);
    size_t partial = response.body.find("event: image_generation.partial_image\ndata: {");
    size_t completed = response.body.find("event: image_generation.completed\ndata: {");
    ASSERT_NE(partial, std::string::npos) << response.body.substr(0, 200);
    ASSERT_NE(completed, std::string::npos);
    EXPECT_LT(partial, completed);
  }
  auto plain = Post("/v1/images/generations", R"({"prompt":"x","size":"64x64"})");
  EXPECT_EQ(api->Handle(plain).status, 200);  // every slot came back
}

TEST_F(ApiTest, OpenAiModels) {
  auto api = MakeApi({});
  auto list = Get("/v1/models");
  json body = json::parse(api->Handle(list).body);
  EXPECT_EQ(body["object"], "list");
  ASSERT_EQ(body["data"].size(), 1u);
  EXPECT_EQ(body["data"][0]["id"], "test");
  auto one = Get("/v1/models/test");
  EXPECT_EQ(json::parse(api->Handle(one).body)["object"], "model");
  auto other = Get("/v1/models/gpt-image-1");
  HttpResponse missing = api->Handle(other);
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(json::parse(missing.body)["error"]["type"], "invalid_request_error");
}

TEST_F(ApiTest, HandlerRoutesMatchOpenApiDocument) {
  // The Api as every door gets it from the composition root: the document must cover it all.
  Config config;
  config.model = "test";
  config.store = "file://" + (root_ / "images").string();
  config.queue = "sqlite://" + (root_ / "queue.db").string();
  auto services = BuildServices(config);
  ASSERT_TRUE(services.ok()) << services.error().message;
  auto api = services->api;
  auto doc_req = Get("/openapi.json");
  json doc = json::parse(api->Handle(doc_req).body);
  for (const auto& [method, pattern] : api->Routes()) {
    std::string path = pattern;
    auto dots = path.find("...}");
    if (dots != std::string::npos) path.replace(dots, 4, "}");
    std::string lower = method;
    for (auto& c : lower) c = static_cast<char>(std::tolower(c));
    EXPECT_TRUE(doc["paths"].contains(path) && doc["paths"][path].contains(lower))
        << method << " " << pattern << " is not documented";
  }
  for (const auto& [path, ops] : doc["paths"].items()) {
    for (const auto& [op, unused] : ops.items()) {
      bool found = false;
      for (const auto& [method, pattern] : api->Routes()) {
        std::string p = pattern;
        auto dots = p.find("...}");
        if (dots != std::string::npos) p.replace(dots, 4, "}");
        std::string lower = method;
        for (auto& c : lower) c = static_cast<char>(std::tolower(c));
        found |= p == path && lower == op;
      }
      EXPECT_TRUE(found) << op << " " << path << " is documented but not routed";
    }
  }
}

}  // namespace
}  // namespace imagegen
