// SQS queue against a real SQS-compatible server. Started by tests/integration/test_aws_s3_sqs.py:
//   IMAGEGEN_ITEST_SQS_ENDPOINT   http://127.0.0.1:PORT
//   IMAGEGEN_ITEST_SQS_QUEUE_URL  an existing, empty queue (its URL as CreateQueue returned it)
//   IMAGEGEN_ITEST_SQS_QUEUE_NAME its name (for the sqs://NAME form)
//   AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_REGION
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <set>
#include <thread>

#include "queue/sqs_queue.h"

namespace imagegen {
namespace {

std::string RequireEnv(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) {
    ADD_FAILURE() << name << " is not set; run tests/integration/test_aws_s3_sqs.py";
    return "";
  }
  return v;
}

class SqsITest : public ::testing::Test {
 protected:
  void SetUp() override {
    endpoint_ = RequireEnv("IMAGEGEN_ITEST_SQS_ENDPOINT");
    url_ = RequireEnv("IMAGEGEN_ITEST_SQS_QUEUE_URL");
    ASSERT_FALSE(endpoint_.empty() || url_.empty());
    auto q = OpenSqsQueue(url_, {.endpoint = endpoint_, .region = ""});
    ASSERT_TRUE(q.ok()) << q.error().message;
    queue_ = std::move(q).value();
    Drain();
  }
  void TearDown() override {
    if (queue_) Drain();
  }
  void Drain() {
    for (int i = 0; i < 20; ++i) {
      auto msgs = queue_->Receive(10, 0, 0);
      if (!msgs.ok() || msgs->empty()) return;
      for (const auto& m : *msgs) (void)queue_->Delete(m.receipt);
    }
  }
  std::string endpoint_, url_;
  std::unique_ptr<SqsQueue> queue_;
};

TEST_F(SqsITest, SendReceiveDelete) {
  const std::string body = R"({"prompt":"ünïcode 中文 😀 \"quoted\"","seed":1})";
  auto id = queue_->Send(body);
  ASSERT_TRUE(id.ok()) << id.error().message;
  auto msgs = queue_->Receive(10, 30, 1);
  ASSERT_TRUE(msgs.ok()) << msgs.error().message;
  ASSERT_EQ(msgs->size(), 1u);
  const QueueMessage& m = (*msgs)[0];
  EXPECT_EQ(m.id, *id);
  EXPECT_EQ(m.body, body);
  EXPECT_EQ(m.receive_count, 1);
  int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  EXPECT_NEAR(static_cast<double>(m.sent_ms), static_cast<double>(now_ms), 60'000.0);
  ASSERT_TRUE(queue_->Delete(m.receipt).ok());
  auto again = queue_->Receive(10, 30, 0);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->empty());
}

TEST_F(SqsITest, RedeliveryAfterVisibilityTimeoutCountsReceives) {
  ASSERT_TRUE(queue_->Send("job-redeliver").ok());
  auto first = queue_->Receive(1, 1, 1);
  ASSERT_TRUE(first.ok() && first->size() == 1u);
  EXPECT_TRUE(queue_->Receive(1, 1, 0)->empty());  // invisible while in flight
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  auto second = queue_->Receive(1, 30, 2);
  ASSERT_TRUE(second.ok()) << second.error().message;
  ASSERT_EQ(second->size(), 1u);
  EXPECT_EQ((*second)[0].id, (*first)[0].id);
  EXPECT_EQ((*second)[0].receive_count, 2);
  ASSERT_TRUE(queue_->Delete((*second)[0].receipt).ok());
}

TEST_F(SqsITest, ChangeVisibilityReleasesAndExtends) {
  ASSERT_TRUE(queue_->Send("job-visibility").ok());
  auto got = queue_->Receive(1, 60, 1);
  ASSERT_TRUE(got.ok() && got->size() == 1u);
  ASSERT_TRUE(queue_->ChangeVisibility((*got)[0].receipt, 0).ok());  // give it back now
  auto back = queue_->Receive(1, 60, 1);
  ASSERT_TRUE(back.ok());
  ASSERT_EQ(back->size(), 1u);
  EXPECT_EQ((*back)[0].receive_count, 2);
  ASSERT_TRUE(queue_->ChangeVisibility((*back)[0].receipt, 120).ok());  // extend while working
  EXPECT_TRUE(queue_->Receive(1, 60, 0)->empty());
  ASSERT_TRUE(queue_->Delete((*back)[0].receipt).ok());
}

TEST_F(SqsITest, StatsCountVisibleAndInFlight) {
  // Relative to a baseline: messages left in flight by an earlier, interrupted run stay
  // invisible to the drain until their visibility timeout ends.
  auto base = queue_->Stats();
  ASSERT_TRUE(base.ok()) << base.error().message;
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(queue_->Send("s" + std::to_string(i)).ok());
  auto stats = queue_->Stats();
  ASSERT_TRUE(stats.ok()) << stats.error().message;
  EXPECT_EQ(stats->visible, base->visible + 3);
  EXPECT_EQ(stats->in_flight, base->in_flight);
  auto got = queue_->Receive(1, 60, 0);
  ASSERT_TRUE(got.ok() && got->size() == 1u);
  stats = queue_->Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->visible, base->visible + 2);
  EXPECT_EQ(stats->in_flight, base->in_flight + 1);
  EXPECT_EQ(stats->oldest_age_s, 0);
  ASSERT_TRUE(queue_->Delete((*got)[0].receipt).ok());
}

TEST_F(SqsITest, BatchSendAndDelete) {
  std::vector<std::string> bodies;
  for (int i = 0; i < 10; ++i) bodies.push_back("batch-" + std::to_string(i));
  auto sent = queue_->SendBatch(bodies);
  ASSERT_TRUE(sent.ok()) << sent.error().message;
  ASSERT_EQ(sent->size(), 10u);
  for (const auto& r : *sent) EXPECT_TRUE(r.ok) << r.error.message;
  std::set<std::string> seen;
  std::vector<std::string> receipts;
  for (int round = 0; round < 10 && seen.size() < 10; ++round) {
    auto got = queue_->Receive(10, 60, 1);
    ASSERT_TRUE(got.ok());
    for (const auto& m : *got) {
      seen.insert(m.body);
      receipts.push_back(m.receipt);
    }
  }
  EXPECT_EQ(seen.size(), 10u);
  for (size_t i = 0; i < receipts.size(); i += 10) {
    std::vector<std::string> chunk(
        receipts.begin() + static_cast<long>(i),
        receipts.begin() + static_cast<long>(std::min(receipts.size(), i + 10)));
    auto deleted = queue_->DeleteBatch(chunk);
    ASSERT_TRUE(deleted.ok()) << deleted.error().message;
    for (const auto& r : *deleted) EXPECT_TRUE(r.ok) << r.error.message;
  }
  auto stats = queue_->Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->visible, 0);
}

TEST_F(SqsITest, LongPollWaitsThenReturnsEmpty) {
  auto start = std::chrono::steady_clock::now();
  auto got = queue_->Receive(1, 30, 2);
  double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_TRUE(got.ok()) << got.error().message;
  EXPECT_TRUE(got->empty());
  EXPECT_GE(waited, 1.5);
}

TEST_F(SqsITest, SqsSchemeResolvesQueueUrl) {
  std::string name = RequireEnv("IMAGEGEN_ITEST_SQS_QUEUE_NAME");
  auto q = MakeSqsQueue("sqs://" + name, {.endpoint = endpoint_, .region = ""});
  ASSERT_TRUE(q.ok()) << q.error().message;
  auto id = (*q)->Send("via-name");
  ASSERT_TRUE(id.ok()) << id.error().message;
  auto got = queue_->Receive(1, 30, 1);
  ASSERT_TRUE(got.ok() && got->size() == 1u);
  EXPECT_EQ((*got)[0].body, "via-name");
  ASSERT_TRUE(queue_->Delete((*got)[0].receipt).ok());
}

TEST_F(SqsITest, MissingQueueIsNotFound) {
  auto q = MakeSqsQueue("sqs://imagegen-no-such-queue", {.endpoint = endpoint_, .region = ""});
  ASSERT_FALSE(q.ok());
  EXPECT_EQ(q.error().code, ErrorCode::kNotFound) << q.error().message;
  std::string missing_url = url_.substr(0, url_.rfind('/') + 1) + "imagegen-no-such-queue";
  auto direct = OpenSqsQueue(missing_url, {.endpoint = endpoint_, .region = ""});
  ASSERT_TRUE(direct.ok());  // a URL is not checked until used
  auto sent = (*direct)->Send("x");
  ASSERT_FALSE(sent.ok());
  EXPECT_EQ(sent.error().code, ErrorCode::kNotFound) << sent.error().message;
}

}  // namespace
}  // namespace imagegen

namespace imagegen {
namespace {

// Needs IMAGEGEN_ITEST_VERIFYING_SERVER=1: a server that checks SigV4 signatures.
TEST(SqsVerifyingServerITest, WrongSecretIsForbidden) {
  ASSERT_EQ(RequireEnv("IMAGEGEN_ITEST_VERIFYING_SERVER"), "1");
  aws::ClientOptions bad;
  aws::Credentials wrong;
  wrong.keys = {RequireEnv("AWS_ACCESS_KEY_ID"), "not-the-secret", ""};
  bad.credentials = aws::MakeStaticCredentials(wrong);
  auto q = OpenSqsQueue(RequireEnv("IMAGEGEN_ITEST_SQS_QUEUE_URL"),
                        {.endpoint = RequireEnv("IMAGEGEN_ITEST_SQS_ENDPOINT"), .region = ""}, bad);
  ASSERT_TRUE(q.ok());
  auto sent = (*q)->Send("x");
  ASSERT_FALSE(sent.ok());
  EXPECT_EQ(sent.error().code, ErrorCode::kForbidden) << sent.error().message;
  EXPECT_EQ(sent.error().message.find("not-the-secret"), std::string::npos);
}

}  // namespace
}  // namespace imagegen
