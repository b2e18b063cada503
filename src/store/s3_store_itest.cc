// S3 store against a real S3-compatible server. Started by tests/integration/test_aws_s3_sqs.py:
//   IMAGEGEN_ITEST_S3_ENDPOINT  http://127.0.0.1:PORT
//   IMAGEGEN_ITEST_S3_BUCKET    an existing, empty bucket
//   AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_REGION   as the server expects
// Suite S3VerifyingServerITest also needs IMAGEGEN_ITEST_VERIFYING_SERVER=1: a server that
// checks SigV4 signatures (moto with IAM authentication on), where wrong keys must fail.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "aws/http.h"
#include "store/s3_store.h"

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

class S3ITest : public ::testing::Test {
 protected:
  void SetUp() override {
    endpoint_ = RequireEnv("IMAGEGEN_ITEST_S3_ENDPOINT");
    bucket_ = RequireEnv("IMAGEGEN_ITEST_S3_BUCKET");
    ASSERT_FALSE(endpoint_.empty() || bucket_.empty());
    // Each test writes under its own prefix, so tests do not see each other's objects.
    prefix_ =
        std::string("itest/") + ::testing::UnitTest::GetInstance()->current_test_info()->name();
    auto s = MakeS3Store("s3://" + bucket_ + "/" + prefix_, {.endpoint = endpoint_, .region = ""});
    ASSERT_TRUE(s.ok()) << s.error().message;
    store_ = std::move(s).value();
  }
  std::string endpoint_, bucket_, prefix_;
  std::unique_ptr<ObjectStore> store_;
};

// Keys that S3 clients commonly get wrong: space, '+', '~', '%', UTF-8, '=' and '&', '@'.
const std::vector<std::string> kOddKeys = {
    "plain.png",      "with space.png",        "plus+sign.png",
    "tilde~.png",     "percent%20literal.png", "ünïcödé/中文/😀.png",
    "eq=amp&at@.png", "deep/er/path/x.png",    "quote'paren().png"};

TEST_F(S3ITest, PutGetHeadRoundTripOddKeys) {
  for (const std::string& key : kOddKeys) {
    std::string data = "bytes of " + key + std::string("\0\x01\xff", 3);
    Metadata meta = {
        {"prompt", "a red circle, ünïcode  and  spaces"}, {"seed", "42"}, {"key", key}};
    Status put = store_->Put(key, data, "image/png", meta);
    ASSERT_TRUE(put.ok()) << key << ": " << put.error().message;
    ObjectInfo info;
    auto got = store_->Get(key, &info);
    ASSERT_TRUE(got.ok()) << key << ": " << got.error().message;
    EXPECT_EQ(*got, data) << key;
    EXPECT_EQ(info.content_type, "image/png") << key;
    EXPECT_EQ(info.size, data.size()) << key;
    EXPECT_EQ(info.metadata["prompt"], meta["prompt"]) << key;
    EXPECT_EQ(info.metadata["key"], key) << key;
    EXPECT_FALSE(info.etag.empty());
    EXPECT_GT(info.modified_ms, 1'600'000'000'000);
    auto head = store_->Head(key);
    ASSERT_TRUE(head.ok()) << key << ": " << head.error().message;
    EXPECT_EQ(head->size, data.size());
    EXPECT_EQ(head->metadata["seed"], "42");
  }
}

TEST_F(S3ITest, ListPaginatesInKeyOrderWithoutPrefix) {
  std::set<std::string> want(kOddKeys.begin(), kOddKeys.end());
  for (const std::string& key : want) ASSERT_TRUE(store_->Put(key, "x", "text/plain", {}).ok());
  std::vector<std::string> seen;
  std::string cursor;
  int pages = 0;
  do {
    auto page = store_->List("", 2, cursor);
    ASSERT_TRUE(page.ok()) << page.error().message;
    EXPECT_LE(page->objects.size(), 2u);
    for (const auto& o : page->objects) {
      seen.push_back(o.key);
      EXPECT_EQ(o.size, 1u);
    }
    cursor = page->next_cursor;
    ASSERT_LT(++pages, 50);
  } while (!cursor.empty());
  EXPECT_EQ(seen, std::vector<std::string>(want.begin(), want.end()));
  EXPECT_GE(pages, 5);

  auto sub = store_->List("deep/", 100, "");
  ASSERT_TRUE(sub.ok());
  ASSERT_EQ(sub->objects.size(), 1u);
  EXPECT_EQ(sub->objects[0].key, "deep/er/path/x.png");
}

TEST_F(S3ITest, OverwriteReplacesWhole) {
  ASSERT_TRUE(store_->Put("k.png", std::string(100000, 'a'), "image/png", {{"v", "1"}}).ok());
  ASSERT_TRUE(store_->Put("k.png", "short", "image/png", {{"v", "2"}}).ok());
  ObjectInfo info;
  auto got = store_->Get("k.png", &info);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(*got, "short");
  EXPECT_EQ(info.metadata["v"], "2");
}

TEST_F(S3ITest, DeleteRemovesTheObjectAndAbsentKeysAreFine) {
  ASSERT_TRUE(store_->Put("jobs/a b+.json", "{}", "application/json", {}).ok());
  Status deleted = store_->Delete("jobs/a b+.json");
  ASSERT_TRUE(deleted.ok()) << deleted.error().message;
  EXPECT_EQ(store_->Head("jobs/a b+.json").error().code, ErrorCode::kNotFound);
  Status again = store_->Delete("jobs/a b+.json");
  EXPECT_TRUE(again.ok()) << again.error().message;
}

TEST_F(S3ITest, MissingObjectIsNotFound) {
  auto got = store_->Get("does/not/exist.png", nullptr);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.error().code, ErrorCode::kNotFound) << got.error().message;
  auto head = store_->Head("does/not/exist.png");
  EXPECT_EQ(head.error().code, ErrorCode::kNotFound) << head.error().message;
}

TEST_F(S3ITest, MissingBucketIsNotFound) {
  auto s = MakeS3Store("s3://no-such-bucket-imagegen/x", {.endpoint = endpoint_, .region = ""});
  ASSERT_TRUE(s.ok());
  Status put = (*s)->Put("k", "v", "text/plain", {});
  ASSERT_FALSE(put.ok());
  EXPECT_EQ(put.error().code, ErrorCode::kNotFound) << put.error().message;
}

TEST_F(S3ITest, PresignedAndPlainUrlsFetchTheObject) {
  const std::string key = "shared/ü +~.png";
  ASSERT_TRUE(store_->Put(key, "PNG-BYTES", "image/png", {}).ok());
  auto url = store_->PresignGet(key, 300);
  ASSERT_TRUE(url.has_value());
  aws::HttpRequest get;
  get.url = *url;
  aws::HttpResponse resp = aws::DefaultTransport()->Perform(get);
  EXPECT_EQ(resp.status, 200) << *url << "\n" << resp.body;
  EXPECT_EQ(resp.body, "PNG-BYTES");
  auto plain = store_->ObjectUrl(key);
  ASSERT_TRUE(plain.has_value());
  EXPECT_EQ(*plain, endpoint_ + "/" + bucket_ + "/" + prefix_ + "/shared/%C3%BC%20%2B~.png");
  EXPECT_EQ(store_->Uri(key), "s3://" + bucket_ + "/" + prefix_ + "/" + key);
}

TEST_F(S3ITest, ConcurrentPutsAndGets) {
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 10; ++i) {
        std::string key = "c/" + std::to_string(t) + "/" + std::to_string(i);
        std::string data = key + std::string(1000, 'z');
        if (!store_->Put(key, data, "application/octet-stream", {}).ok()) ++failures;
        auto got = store_->Get(key, nullptr);
        if (!got.ok() || *got != data) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
}

// Objects written by an independent client (boto3, from the pytest driver) under "foreign/":
// IMAGEGEN_ITEST_S3_FOREIGN is a JSON object {key: body}. Each must read back byte for byte,
// and List must name exactly those keys.
TEST_F(S3ITest, ReadsObjectsWrittenByAnotherClient) {
  nlohmann::json foreign =
      nlohmann::json::parse(RequireEnv("IMAGEGEN_ITEST_S3_FOREIGN"), nullptr, false);
  ASSERT_TRUE(foreign.is_object() && !foreign.empty());
  auto s = MakeS3Store("s3://" + bucket_ + "/foreign", {.endpoint = endpoint_, .region = ""});
  ASSERT_TRUE(s.ok());
  std::set<std::string> want;
  for (const auto& [key, body] : foreign.items()) {
    want.insert(key);
    ObjectInfo info;
    auto got = (*s)->Get(key, &info);
    ASSERT_TRUE(got.ok()) << key << ": " << got.error().message;
    EXPECT_EQ(*got, body.get<std::string>()) << key;
    EXPECT_EQ(info.metadata["origin"], "boto3") << key;
  }
  auto page = (*s)->List("", 1000, "");
  ASSERT_TRUE(page.ok()) << page.error().message;
  std::set<std::string> listed;
  for (const auto& o : page->objects) listed.insert(o.key);
  EXPECT_EQ(listed, want);
}

class S3VerifyingServerITest : public S3ITest {
 protected:
  void SetUp() override {
    ASSERT_EQ(RequireEnv("IMAGEGEN_ITEST_VERIFYING_SERVER"), "1");
    S3ITest::SetUp();
  }
};

TEST_F(S3VerifyingServerITest, SignedCallsPassAndWrongSecretIsForbidden) {
  // Keys with every awkward byte go through a server that recomputes the signature.
  for (const std::string& key : kOddKeys) {
    Status put = store_->Put(key, "signed", "text/plain", {{"note", "ünï  x"}});
    ASSERT_TRUE(put.ok()) << key << ": " << put.error().message;
    ASSERT_TRUE(store_->Get(key, nullptr).ok()) << key;
  }
  auto page = store_->List("", 3, "");
  ASSERT_TRUE(page.ok()) << page.error().message;
  ASSERT_FALSE(page->next_cursor.empty());
  auto next = store_->List("", 3, page->next_cursor);  // the cursor is signed too
  ASSERT_TRUE(next.ok()) << next.error().message;
  Status deleted = store_->Delete(kOddKeys[0]);
  ASSERT_TRUE(deleted.ok()) << deleted.error().message;

  aws::ClientOptions bad;
  aws::Credentials wrong;
  wrong.keys = {RequireEnv("AWS_ACCESS_KEY_ID"), "not-the-secret", ""};
  bad.credentials = aws::MakeStaticCredentials(wrong);
  auto s =
      MakeS3Store("s3://" + bucket_ + "/" + prefix_, {.endpoint = endpoint_, .region = ""}, bad);
  ASSERT_TRUE(s.ok());
  Status put = (*s)->Put("k", "v", "text/plain", {});
  ASSERT_FALSE(put.ok());
  EXPECT_EQ(put.error().code, ErrorCode::kForbidden) << put.error().message;
  EXPECT_EQ(put.error().message.find("not-the-secret"), std::string::npos);
}

TEST_F(S3ITest, CreateIsConditionalAndNeverReplaces) {
  auto first = store_->Create("create/k.png", "first", "image/png", {{"owner", "a"}});
  ASSERT_TRUE(first.ok()) << first.error().message;
  EXPECT_EQ(first.value(), CreateOutcome::kCreated);
  auto second = store_->Create("create/k.png", "second", "image/png", {{"owner", "b"}});
  ASSERT_TRUE(second.ok()) << second.error().message;
  EXPECT_EQ(second.value(), CreateOutcome::kExists);
  ObjectInfo info;
  EXPECT_EQ(store_->Get("create/k.png", &info).value(), "first");
  EXPECT_EQ(info.metadata["owner"], "a");
  // Racing creates: one winner, and the stored object is the winner's.
  std::atomic<int> created{0}, exists{0};
  std::vector<std::thread> writers;
  for (int w = 0; w < 6; ++w) {
    writers.emplace_back([&, w] {
      auto got = store_->Create("create/race.png", "w" + std::to_string(w), "image/png",
                                {{"writer", std::to_string(w)}});
      ASSERT_TRUE(got.ok()) << got.error().message;
      ++(got.value() == CreateOutcome::kCreated ? created : exists);
    });
  }
  for (auto& t : writers) t.join();
  EXPECT_EQ(created.load(), 1);
  EXPECT_EQ(exists.load(), 5);
  std::string winner = store_->Get("create/race.png", &info).value();
  EXPECT_EQ(winner, "w" + info.metadata["writer"]);  // bytes and metadata of one writer
}

TEST_F(S3ITest, ListPagesWithKeyCursors) {
  for (const char* key : {"l/a", "l/b", "l/c", "l/d", "m/x"}) {
    ASSERT_TRUE(store_->Put(key, "x", "text/plain", {}).ok());
  }
  auto page = store_->List("l/", 2, "");
  ASSERT_TRUE(page.ok()) << page.error().message;
  ASSERT_EQ(page->objects.size(), 2u);
  EXPECT_EQ(page->next_cursor, "l/b");
  auto next = store_->List("l/", 2, "l/b");
  ASSERT_TRUE(next.ok());
  ASSERT_EQ(next->objects.size(), 2u);
  EXPECT_EQ(next->objects[0].key, "l/c");
  auto from_any_key = store_->List("l/", 10, "l/bb");  // any key is a cursor
  ASSERT_EQ(from_any_key->objects.size(), 2u);
  EXPECT_TRUE(from_any_key->next_cursor.empty());
}

}  // namespace
}  // namespace imagegen
