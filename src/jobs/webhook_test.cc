// The webhook pieces below the HTTP layer: the SSRF address policy, the Standard Webhooks
// signature (against the scheme's published example), the POST /jobs fields, and the outbox's
// retry / give-up bookkeeping over the real file store with a scripted transport and clock.
#include "jobs/webhook.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "aws/fake_transport.h"
#include "store/file_store.h"

namespace imagegen {
namespace {

namespace fs = std::filesystem;

std::array<uint8_t, 16> Ip(const std::string& text) {
  std::array<uint8_t, 16> out{};
  EXPECT_TRUE(ParseIpAddress(text, &out)) << text;
  return out;
}

TEST(WebhookAddressPolicy, RefusesInternalAddressesByDefault) {
  WebhookAddressPolicy policy;
  for (const char* refused : {"127.0.0.1",
                              "127.8.9.10",
                              "10.0.0.1",
                              "172.16.0.1",
                              "172.31.255.255",
                              "192.168.1.1",
                              "169.254.169.254",
                              "100.64.0.1",
                              "100.127.255.254",
                              "0.0.0.0",
                              "224.0.0.1",
                              "255.255.255.255",
                              "::1",
                              "::",
                              "fe80::1",
                              "fc00::1",
                              "fd12:3456::1",
                              "ff02::1",
                              "::ffff:127.0.0.1",
                              "::ffff:10.1.2.3",
                              "64:ff9b::7f00:1",
                              "2002:a9fe:a9fe::1",
                              "2001:0:4136:e378::1"}) {
    EXPECT_FALSE(policy.Allows(Ip(refused))) << refused;
  }
  for (const char* allowed : {"93.184.216.34", "8.8.8.8", "172.32.0.1", "100.128.0.1",
                              "2606:2800:220:1::1", "64:ff9b::808:808", "::ffff:8.8.8.8"}) {
    EXPECT_TRUE(policy.Allows(Ip(allowed))) << allowed;
  }
}

TEST(WebhookAddressPolicy, TheOperatorAllowsNetworks) {
  auto policy = WebhookAddressPolicy::Parse("127.0.0.0/8, 10.1.0.0/16,fd00::/8", "allow");
  ASSERT_TRUE(policy.ok());
  EXPECT_TRUE(policy->Allows(Ip("127.0.0.1")));
  EXPECT_TRUE(policy->Allows(Ip("10.1.200.3")));
  EXPECT_FALSE(policy->Allows(Ip("10.2.0.1")));
  EXPECT_TRUE(policy->Allows(Ip("fd00::5")));
  EXPECT_FALSE(policy->Allows(Ip("169.254.169.254")));
  for (const char* bad : {"10.0.0.0/33", "fd00::/129", "nonsense", "10.0.0.0/x"}) {
    auto parsed = WebhookAddressPolicy::Parse(bad, "allow");
    ASSERT_FALSE(parsed.ok()) << bad;
    EXPECT_EQ(parsed.error().field, "allow");
  }
}

TEST(WebhookTarget, ResolvesAndChecksEveryAddress) {
  WebhookAddressPolicy policy;
  auto refused = ResolveWebhookTarget("http://localhost:9/x", policy, "webhook");
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().field, "webhook");
  auto allowed = ResolveWebhookTarget(
      "http://127.0.0.1:9/x", WebhookAddressPolicy::Parse("127.0.0.1", "a").value(), "webhook");
  ASSERT_TRUE(allowed.ok());
  EXPECT_EQ(allowed->address, "127.0.0.1");
  auto v6 = ResolveWebhookTarget("https://[::1]/x", WebhookAddressPolicy::Parse("::1", "a").value(),
                                 "webhook");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->host, "::1");
  for (const char* bad : {"ftp://a/", "http://", "http://a b/", "http://u@h/", "http://h:0/",
                          "http://h:65536/", "//h/x", "http://[::1/"}) {
    EXPECT_FALSE(CheckWebhookUrlSyntax(bad, "webhook").ok()) << bad;
  }
}

TEST(WebhookSignature, MatchesTheStandardWebhooksExample) {
  // The example of the Standard Webhooks specification (and its libraries' tests).
  auto key = DecodeWebhookSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "s");
  ASSERT_TRUE(key.ok());
  EXPECT_EQ(SignWebhook(key.value(), "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330,
                        "{\"test\": 2432232314}"),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
  EXPECT_FALSE(DecodeWebhookSecret("whsec_c2hvcnQ=", "s").ok());  // "short"
  EXPECT_FALSE(DecodeWebhookSecret("not base64 !", "s").ok());
}

TEST(WebhookFields, AreTakenOutOfTheJobBody) {
  auto body = nlohmann::json::parse(
      R"({"prompt":"p","webhook":"https://example.com/h","webhook_events_filter":["completed","start","completed"]})");
  auto spec = TakeWebhookFields(&body);
  ASSERT_TRUE(spec.ok());
  ASSERT_TRUE(spec.value().has_value());
  EXPECT_EQ(spec.value()->url, "https://example.com/h");
  EXPECT_EQ(spec.value()->events, (std::vector<std::string>{"completed", "start"}));
  EXPECT_EQ(body, nlohmann::json::parse(R"({"prompt":"p"})"));
  for (const char* bad : {R"({"webhook_events_filter":["start"]})", R"({"webhook":5})",
                          R"({"webhook":"https://e/","webhook_events_filter":[]})",
                          R"({"webhook":"https://e/","webhook_events_filter":["done"]})",
                          R"({"webhook":"https://e/","webhook_events_filter":"start"})"}) {
    auto j = nlohmann::json::parse(bad);
    EXPECT_FALSE(TakeWebhookFields(&j).ok()) << bad;
  }
}

class WebhookOutboxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("webhook-test-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    store_ = MakeFileStore(dir_.string()).value();
    transport_ = std::make_shared<aws::FakeTransport>();
    options_.key = "0123456789abcdef";
    options_.policy = WebhookAddressPolicy::Parse("127.0.0.1", "a").value();
    options_.retry_base_ms = 1000;
    options_.max_attempts = 3;
    options_.now_ms = [this] { return now_ms_; };
  }
  void TearDown() override { fs::remove_all(dir_); }

  JobRecord Record(std::vector<std::string> events = {}) {
    JobRecord record;
    record.job_id = "job-1";
    record.status = JobStatus::kSucceeded;
    record.webhook = WebhookSpecToJson({"http://127.0.0.1:9/h", events, "http://api"});
    return record;
  }
  size_t Count(const std::string& kind) {
    auto page = store_->List("webhooks/" + kind + "/", 100, "");
    return page.ok() ? page->objects.size() : 0;
  }

  fs::path dir_;
  std::unique_ptr<ObjectStore> store_;
  std::shared_ptr<aws::FakeTransport> transport_;
  WebhookOptions options_;
  int64_t now_ms_ = 1'000'000;
};

TEST_F(WebhookOutboxTest, OneDeliveryPerEventHoweverOftenItIsWritten) {
  WebhookOutbox outbox(*store_, options_, transport_);
  ASSERT_TRUE(outbox.Enqueue(Record(), WebhookEvent::kCompleted).ok());
  ASSERT_TRUE(outbox.Enqueue(Record(), WebhookEvent::kCompleted).ok());  // a redelivery
  ASSERT_TRUE(outbox.Enqueue(Record({"completed"}), WebhookEvent::kStart, "1").ok());  // filtered
  EXPECT_EQ(Count("outbox"), 1u);
  transport_->Push(204);
  EXPECT_EQ(outbox.DeliverDue(), 1);
  EXPECT_EQ(Count("outbox"), 0u);
  ASSERT_EQ(transport_->requests.size(), 1u);
  const aws::HttpRequest& sent = transport_->requests[0];
  EXPECT_EQ(sent.pinned_address, "127.0.0.1");
  auto body = nlohmann::json::parse(sent.body);
  EXPECT_EQ(body["event"], "completed");
  EXPECT_EQ(body["status_url"], "http://api/jobs/job-1");
}

TEST_F(WebhookOutboxTest, RetriesWithGrowingBackoffThenGivesUp) {
  WebhookOutbox outbox(*store_, options_, transport_);
  ASSERT_TRUE(outbox.Enqueue(Record(), WebhookEvent::kCompleted).ok());
  int64_t next = 0;
  for (int attempt = 1; attempt <= 2; ++attempt) {
    transport_->Push(503);
    EXPECT_EQ(outbox.DeliverDue(&next), 0);
    int64_t wait = next - now_ms_;
    int64_t full = options_.retry_base_ms << (attempt - 1);
    EXPECT_GE(wait, full / 2) << attempt;
    EXPECT_LE(wait, full) << attempt;
    EXPECT_EQ(outbox.DeliverDue(), 0);  // not due yet: nothing sent
    now_ms_ = next;
  }
  EXPECT_EQ(transport_->requests.size(), 2u);
  transport_->Push(302);
  EXPECT_EQ(outbox.DeliverDue(&next), 0);
  EXPECT_EQ(next, 0);
  EXPECT_EQ(Count("outbox"), 0u);
  ASSERT_EQ(Count("failed"), 1u);
  auto failed = store_->List("webhooks/failed/", 10, "").value().objects[0].key;
  auto entry = nlohmann::json::parse(store_->Get(failed, nullptr).value());
  EXPECT_EQ(entry["attempts"], 3);
  EXPECT_NE(entry["last_error"].get<std::string>().find("302"), std::string::npos);
  // Every attempt had the same id.
  const auto& requests = transport_->requests;
  auto id = [](const aws::HttpRequest& r) { return aws::FakeTransport::HeaderOf(r, "webhook-id"); };
  EXPECT_EQ(id(requests[0]), id(requests[2]));
  EXPECT_FALSE(id(requests[0]).empty());
}

}  // namespace
}  // namespace imagegen
