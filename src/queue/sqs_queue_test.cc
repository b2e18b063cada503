#include "queue/sqs_queue.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "aws/encoding.h"
#include "aws/fake_transport.h"

namespace imagegen {
namespace {

using aws::FakeTransport;
using nlohmann::json;

constexpr const char* kQueueUrl = "http://127.0.0.1:9324/123456789012/jobs";

aws::ClientOptions TestOptions(std::shared_ptr<FakeTransport> transport,
                               std::map<std::string, std::string> env = {}) {
  aws::ClientOptions o;
  o.env = aws::MapEnv(std::move(env));
  o.transport = std::move(transport);
  o.credentials = aws::MakeStaticCredentials({{"AKID", "SECRET", ""}, 0, "test"});
  o.sleep_ms = [](int64_t) {};
  return o;
}

std::unique_ptr<SqsQueue> Open(std::shared_ptr<FakeTransport> t, const std::string& url = kQueueUrl,
                               std::map<std::string, std::string> env = {}) {
  auto q = OpenSqsQueue(url, {}, TestOptions(std::move(t), std::move(env)));
  EXPECT_TRUE(q.ok()) << (q.ok() ? "" : q.error().message);
  return q.ok() ? std::move(q).value() : nullptr;
}

std::string Md5Hex(const std::string& s) { return aws::HexEncode(aws::Md5(s)); }

TEST(SqsQueue, SendUsesJsonProtocol) {
  auto t = std::make_shared<FakeTransport>();
  auto q = Open(t);
  t->Push(200, json{{"MessageId", "m-1"}, {"MD5OfMessageBody", Md5Hex("hello")}}.dump());
  auto id = q->Send("hello");
  ASSERT_TRUE(id.ok()) << id.error().message;
  EXPECT_EQ(*id, "m-1");
  const auto& req = t->requests.at(0);
  EXPECT_EQ(req.method, "POST");
  EXPECT_EQ(req.url, "http://127.0.0.1:9324/");
  EXPECT_EQ(FakeTransport::HeaderOf(req, "x-amz-target"), "AmazonSQS.SendMessage");
  EXPECT_EQ(FakeTransport::HeaderOf(req, "content-type"), "application/x-amz-json-1.0");
  EXPECT_NE(FakeTransport::HeaderOf(req, "authorization").find("/sqs/aws4_request"),
            std::string::npos);
  json body = json::parse(req.body);
  EXPECT_EQ(body["QueueUrl"], kQueueUrl);
  EXPECT_EQ(body["MessageBody"], "hello");
}

TEST(SqsQueue, ReceiveParsesAttributesAndChecksMd5) {
  auto t = std::make_shared<FakeTransport>();
  auto q = Open(t);
  json answer = {
      {"Messages",
       {{{"MessageId", "m-1"},
         {"ReceiptHandle", "r-1"},
         {"Body", "job"},
         {"MD5OfBody", Md5Hex("job")},
         {"Attributes", {{"ApproximateReceiveCount", "3"}, {"SentTimestamp", "1440938160000"}}}}}}};
  t->Push(200, answer.dump());
  auto msgs = q->Receive(50, 30, 20);
  ASSERT_TRUE(msgs.ok()) << msgs.error().message;
  ASSERT_EQ(msgs->size(), 1u);
  EXPECT_EQ((*msgs)[0].id, "m-1");
  EXPECT_EQ((*msgs)[0].receipt, "r-1");
  EXPECT_EQ((*msgs)[0].body, "job");
  EXPECT_EQ((*msgs)[0].receive_count, 3);
  EXPECT_EQ((*msgs)[0].sent_ms, 1440938160000);
  json body = json::parse(t->requests[0].body);
  EXPECT_EQ(body["MaxNumberOfMessages"], 10);  // clamped
  EXPECT_EQ(body["WaitTimeSeconds"], 20);
  EXPECT_EQ(body["VisibilityTimeout"], 30);
  EXPECT_EQ(body["MessageSystemAttributeNames"][0], "ApproximateReceiveCount");
  EXPECT_GT(t->requests[0].timeout_ms, 20000);  // long poll is not a timeout

  answer["Messages"][0]["MD5OfBody"] = Md5Hex("other");
  t->Push(200, answer.dump());
  EXPECT_EQ(q->Receive(1, 30, 0).error().code, ErrorCode::kUpstreamUnavailable);

  t->Push(200, "{}");
  auto none = q->Receive(1, 30, 0);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

TEST(SqsQueue, DeleteVisibilityAndStats) {
  auto t = std::make_shared<FakeTransport>();
  auto q = Open(t);
  t->Push(200, "{}");
  ASSERT_TRUE(q->Delete("r-1").ok());
  EXPECT_EQ(FakeTransport::HeaderOf(t->requests[0], "x-amz-target"), "AmazonSQS.DeleteMessage");
  t->Push(200, "{}");
  ASSERT_TRUE(q->ChangeVisibility("r-1", 120).ok());
  EXPECT_EQ(json::parse(t->requests[1].body)["VisibilityTimeout"], 120);
  t->Push(
      200,
      R"({"Attributes":{"ApproximateNumberOfMessages":"5","ApproximateNumberOfMessagesNotVisible":"2"}})");
  auto stats = q->Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->visible, 5);
  EXPECT_EQ(stats->in_flight, 2);
  EXPECT_EQ(stats->oldest_age_s, 0);
}

TEST(SqsQueue, ErrorsAreMapped) {
  auto t = std::make_shared<FakeTransport>();
  auto q = Open(t);
  t->Push(
      400,
      R"({"__type":"com.amazonaws.sqs#QueueDoesNotExist","message":"The specified queue does not exist."})",
      {{"x-amzn-requestid", "req-9"}});
  auto r = q->Send("x");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kNotFound);
  EXPECT_NE(r.error().message.find("SQS.SendMessage"), std::string::npos);
  EXPECT_NE(r.error().message.find("QueueDoesNotExist"), std::string::npos);
  EXPECT_NE(r.error().message.find("req-9"), std::string::npos);
  t->Push(400, R"({"__type":"com.amazonaws.sqs#ReceiptHandleIsInvalid","message":"bad"})");
  EXPECT_EQ(q->Delete("bad").error().code, ErrorCode::kInvalidRequest);
}

TEST(SqsQueue, BatchesReportPerEntry) {
  auto t = std::make_shared<FakeTransport>();
  auto q = Open(t);
  t->Push(200, json{{"Successful",
                     {{{"Id", "0"}, {"MessageId", "m0"}, {"MD5OfMessageBody", Md5Hex("a")}}}},
                    {"Failed",
                     {{{"Id", "1"},
                       {"SenderFault", true},
                       {"Code", "InvalidMessageContents"},
                       {"Message", "no"}}}}}
                   .dump());
  auto r = q->SendBatch({"a", "b"});
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->size(), 2u);
  EXPECT_TRUE((*r)[0].ok);
  EXPECT_EQ((*r)[0].message_id, "m0");
  EXPECT_FALSE((*r)[1].ok);
  EXPECT_EQ((*r)[1].error.code, ErrorCode::kInvalidRequest);
  json body = json::parse(t->requests[0].body);
  EXPECT_EQ(body["Entries"][1]["MessageBody"], "b");
  EXPECT_EQ(FakeTransport::HeaderOf(t->requests[0], "x-amz-target"), "AmazonSQS.SendMessageBatch");

  t->Push(200, json{{"Successful", {{{"Id", "0"}}, {{"Id", "1"}}}}}.dump());
  auto d = q->DeleteBatch({"r0", "r1"});
  ASSERT_TRUE(d.ok());
  EXPECT_TRUE((*d)[0].ok && (*d)[1].ok);
  EXPECT_FALSE(q->SendBatch(std::vector<std::string>(11, "x")).ok());
}

TEST(SqsQueue, SqsSchemeResolvesWithGetQueueUrl) {
  auto t = std::make_shared<FakeTransport>();
  t->Push(200, json{{"QueueUrl", "http://127.0.0.1:9324/000000000000/jobs"}}.dump());
  auto q = Open(t, "sqs://jobs",
                {{"AWS_ENDPOINT_URL_SQS", "http://127.0.0.1:9324"}, {"AWS_REGION", "eu-west-1"}});
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->queue_url(), "http://127.0.0.1:9324/000000000000/jobs");
  EXPECT_EQ(FakeTransport::HeaderOf(t->requests[0], "x-amz-target"), "AmazonSQS.GetQueueUrl");
  EXPECT_EQ(json::parse(t->requests[0].body)["QueueName"], "jobs");

  t->Push(400, R"({"__type":"com.amazonaws.sqs#QueueDoesNotExist"})");
  auto missing = OpenSqsQueue("sqs://nope", {},
                              TestOptions(t, {{"AWS_ENDPOINT_URL", "http://127.0.0.1:9324"}}));
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
}

// Acknowledgements outlast the client's three attempts: five lost answers in a row (the
// message may already be deleted; deleting it again succeeds), then the delete lands.
TEST(SqsQueue, DeleteAndVisibilityRetryLongerThanOtherCalls) {
  auto t = std::make_shared<FakeTransport>();
  auto q = Open(t);
  for (int i = 0; i < 5; ++i) t->PushFailure(aws::TransportFailure::kReset);
  t->Push(200, "{}");
  ASSERT_TRUE(q->Delete("r-1").ok());
  EXPECT_EQ(t->requests.size(), 6u);
  for (int i = 0; i < 4; ++i) t->Push(500, R"({"__type":"InternalError"})");
  t->Push(200, "{}");
  ASSERT_TRUE(q->ChangeVisibility("r-1", 30).ok());
  EXPECT_EQ(t->requests.size(), 11u);
  // Other calls keep the client's policy (3 attempts).
  for (int i = 0; i < 3; ++i) t->PushFailure(aws::TransportFailure::kReset);
  EXPECT_FALSE(q->Send("x").ok());
  EXPECT_EQ(t->requests.size(), 14u);
  // Bounded: after 7 attempts the failure is reported.
  for (int i = 0; i < 8; ++i) t->PushFailure(aws::TransportFailure::kReset);
  EXPECT_FALSE(q->Delete("r-2").ok());
  EXPECT_EQ(t->requests.size(), 21u);
}

TEST(SqsQueue, AwsQueueUrlGivesRegionAndEndpoint) {
  auto t = std::make_shared<FakeTransport>();
  auto q = Open(t, "https://sqs.eu-central-1.amazonaws.com/123456789012/jobs");
  t->Push(200, "{}");
  ASSERT_TRUE(q->Delete("r").ok());
  EXPECT_EQ(t->requests[0].url, "https://sqs.eu-central-1.amazonaws.com/");
  EXPECT_NE(FakeTransport::HeaderOf(t->requests[0], "authorization")
                .find("/eu-central-1/sqs/aws4_request"),
            std::string::npos);
  EXPECT_FALSE(OpenSqsQueue("https://sqs.eu-central-1.amazonaws.com", {}, TestOptions(t)).ok());
  EXPECT_FALSE(OpenSqsQueue("sqs://", {}, TestOptions(t)).ok());
}

}  // namespace
}  // namespace imagegen
