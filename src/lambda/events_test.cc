#include "lambda/events.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <nlohmann/json.hpp>

#include "lambda/emf.h"
#include "lambda/runtime.h"

namespace imagegen::lambda {
namespace {

using json = nlohmann::json;

TEST(Events, ClassifiesShapes) {
  EXPECT_EQ(ClassifyEvent(json::parse(R"({"httpMethod":"GET","path":"/","requestContext":{}})")),
            EventKind::kApiGatewayV1);
  EXPECT_EQ(ClassifyEvent(json::parse(
                R"({"version":"2.0","rawPath":"/","requestContext":{"http":{"method":"GET"}}})")),
            EventKind::kApiGatewayV2);
  EXPECT_EQ(ClassifyEvent(json::parse(R"({"Records":[{"eventSource":"aws:sqs"}]})")),
            EventKind::kSqs);
  EXPECT_EQ(ClassifyEvent(json::parse(R"({"prompt":"x"})")), EventKind::kDirect);
  EXPECT_EQ(ClassifyEvent(json::parse(R"({"foo":1})")), EventKind::kUnknown);
  EXPECT_EQ(ClassifyEvent(json::parse("[1]")), EventKind::kUnknown);
}

TEST(Events, V1DecodesBodyHeadersAndBaseUrl) {
  json event = {
      {"httpMethod", "POST"},
      {"path", "/generate"},
      {"body", "eyJwcm9tcHQiOiJ4In0="},
      {"isBase64Encoded", true},
      {"multiValueHeaders",
       {{"Host", {"abc.execute-api.us-east-1.amazonaws.com"}}, {"X-A", {"1", "2"}}}},
      {"multiValueQueryStringParameters", {{"limit", {"5"}}}},
      {"pathParameters", nullptr},
      {"requestContext",
       {{"stage", "prod"}, {"requestId", "rid"}, {"identity", {{"sourceIp", "1.2.3.4"}}}}}};
  auto r = RequestFromApiGatewayV1(event);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->body, R"({"prompt":"x"})");
  EXPECT_EQ(r->Header("x-a"), "1,2");
  EXPECT_EQ(r->Query("limit"), "5");
  EXPECT_EQ(r->base_url, "https://abc.execute-api.us-east-1.amazonaws.com/prod");
  EXPECT_EQ(r->request_id, "rid");
  EXPECT_EQ(r->remote_addr, "1.2.3.4");
}

TEST(Events, V2StripsNamedStageAndJoinsCookies) {
  json event = {{"version", "2.0"},
                {"rawPath", "/dev/images/a%20b.png"},
                {"rawQueryString", "x=1&y=a%2Bb"},
                {"cookies", {"a=1", "b=2"}},
                {"headers", {{"host", "id.execute-api.eu-west-1.amazonaws.com"}}},
                {"requestContext",
                 {{"stage", "dev"},
                  {"domainName", "id.execute-api.eu-west-1.amazonaws.com"},
                  {"http", {{"method", "get"}, {"sourceIp", "9.9.9.9"}}}}}};
  auto r = RequestFromApiGatewayV2(event);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->method, "GET");
  EXPECT_EQ(r->path, "/images/a b.png");
  EXPECT_EQ(r->Query("y"), "a+b");
  EXPECT_EQ(r->Header("cookie"), "a=1; b=2");
  EXPECT_EQ(r->base_url, "https://id.execute-api.eu-west-1.amazonaws.com/dev");
}

TEST(Events, CorruptBase64IsInvalid) {
  json event = {{"httpMethod", "POST"},
                {"path", "/generate"},
                {"body", "!!!"},
                {"isBase64Encoded", true},
                {"requestContext", json::object()}};
  auto r = RequestFromApiGatewayV1(event);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidRequest);
}

TEST(Events, BinaryResponsesAreBase64) {
  HttpResponse png;
  png.content_type = "image/png";
  png.body = std::string("\x89PNG\r\n", 6);
  json out = ProxyResponse(png, EventKind::kApiGatewayV1);
  EXPECT_TRUE(out["isBase64Encoded"].get<bool>());
  EXPECT_EQ(out["body"], "iVBORw0K");
  EXPECT_TRUE(out.contains("multiValueHeaders"));
  HttpResponse text = JsonResponse(404, "{}");
  json t = ProxyResponse(text, EventKind::kApiGatewayV2);
  EXPECT_FALSE(t["isBase64Encoded"].get<bool>());
  EXPECT_EQ(t["statusCode"], 404);
  EXPECT_FALSE(t.contains("multiValueHeaders"));
}

TEST(Emf, LineFollowsTheSpecification) {
  json line = json::parse(EmfLine(1234, {{"Model"}}, {{"Model", "test"}},
                                  {{"ImagesGenerated", "Count", 2}}, {{"request_id", "r"}}));
  EXPECT_EQ(line["_aws"]["Timestamp"], 1234);
  EXPECT_EQ(line["_aws"]["CloudWatchMetrics"][0]["Namespace"], "imagegen");
  EXPECT_EQ(line["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0][0], "Model");
  EXPECT_EQ(line["ImagesGenerated"], 2);
  EXPECT_EQ(line["Model"], "test");
  EXPECT_EQ(line["request_id"], "r");
}

TEST(Runtime, WorkDeadlineKeepsAMargin) {
  auto steady = Clock::now();
  auto d = WorkDeadline(10'000, 7'000, steady, 500);  // 3 s left, 500 ms margin
  EXPECT_EQ(std::chrono::duration_cast<std::chrono::milliseconds>(d - steady).count(), 2500);
  auto shortd = WorkDeadline(10'000, 9'000, steady, 500);  // 1 s left: margin capped at 200 ms
  EXPECT_EQ(std::chrono::duration_cast<std::chrono::milliseconds>(shortd - steady).count(), 800);
  EXPECT_EQ(WorkDeadline(0, 1, steady, 500), Clock::time_point::max());
}

// A scripted Runtime API: the loop survives a throwing handler and reports it as an error.
class ScriptedApi : public RuntimeApi {
 public:
  std::vector<std::string> events;
  std::vector<std::string> posted;
  Result<NextEvent> Next() override {
    NextEvent e;
    e.invocation.trace_id = next_ == 1 ? "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1" : "";
    e.invocation.request_id = "id" + std::to_string(next_++);
    e.event = events.at(next_ - 1);
    return e;
  }
  Result<int> PostResponse(const std::string& id, const std::string& payload) override {
    posted.push_back(id + " ok " + payload);
    return 202;
  }
  Result<int> PostError(const std::string& id, const std::string& type,
                        const std::string&) override {
    posted.push_back(id + " error " + type);
    return 202;
  }
  Result<int> PostInitError(const std::string&, const std::string&) override { return 202; }

 private:
  size_t next_ = 0;
};

TEST(Runtime, OneBadEventDoesNotEndTheLoop) {
  ScriptedApi api;
  api.events = {"boom", "fine", "fine"};
  LoopOptions options;
  options.max_invocations = 3;
  std::vector<std::string> traces;
  int rc = RunLoop(
      api,
      [&traces](const std::string& event, const Invocation&) -> InvocationResult {
        const char* trace = std::getenv("_X_AMZN_TRACE_ID");
        traces.push_back(trace == nullptr ? "-" : trace);
        if (event == "boom") throw std::runtime_error("bad event");
        return InvocationResult{true, "{}", {}, {}};
      },
      options);
  EXPECT_EQ(rc, 0);
  ASSERT_EQ(api.posted.size(), 3u);
  EXPECT_EQ(api.posted[0], "id0 error Runtime.UnhandledException");
  EXPECT_EQ(api.posted[1], "id1 ok {}");
  // The trace id is set for its invocation only.
  EXPECT_EQ(traces, (std::vector<std::string>{
                        "-", "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1", "-"}));
}

TEST(EventsTest, SqsRecordBecomesAQueueMessage) {
  auto record = nlohmann::json::parse(R"({"messageId": "m-1", "body": "a red circle",
      "attributes": {"ApproximateReceiveCount": "3", "SentTimestamp": "1700000000123"}})");
  QueueMessage m = MessageFromSqsRecord(record);
  EXPECT_EQ(m.id, "m-1");
  EXPECT_EQ(m.body, "a red circle");
  EXPECT_EQ(m.receive_count, 3);
  EXPECT_EQ(m.sent_ms, 1700000000123);
  EXPECT_TRUE(m.receipt.empty());
  // Missing or malformed attributes read as a first delivery at an unknown time.
  for (const char* text : {R"({"messageId": "m"})", R"({"attributes": {"ApproximateReceiveCount":
      "-2", "SentTimestamp": 5}})",
                           R"({"attributes": {"ApproximateReceiveCount":
      "99999999999999999999"}})",
                           R"([1, 2])", R"("text")"}) {
    QueueMessage bad = MessageFromSqsRecord(nlohmann::json::parse(text));
    EXPECT_EQ(bad.receive_count, 1) << text;
    EXPECT_EQ(bad.sent_ms, 0) << text;
  }
}

}  // namespace
}  // namespace imagegen::lambda
