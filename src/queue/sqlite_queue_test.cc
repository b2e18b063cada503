#include "queue/sqlite_queue.h"

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <set>
#include <thread>

namespace imagegen {
namespace {

namespace fs = std::filesystem;

class SqliteQueueTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ =
        fs::temp_directory_path() /
        ("sqlite-queue-test-" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
         "-" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    path_ = (dir_ / "sub" / "queue.db").string();  // the parent directory is created on open
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::unique_ptr<SqliteQueue> Open(SqliteQueueOptions options = {}) {
    auto queue = OpenSqliteQueue(path_, options);
    EXPECT_TRUE(queue.ok()) << (queue.ok() ? "" : queue.error().message);
    return queue.ok() ? std::move(queue.value()) : nullptr;
  }

  fs::path dir_;
  std::string path_;
};

TEST_F(SqliteQueueTest, DeliversInEnqueueOrderWithReceiveCount) {
  auto queue = Open();
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) ids.push_back(queue->Send("body-" + std::to_string(i)).value());
  auto got = queue->Receive(3, 30, 0);
  ASSERT_TRUE(got.ok());
  ASSERT_EQ(got->size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ((*got)[static_cast<size_t>(i)].id, ids[static_cast<size_t>(i)]);
    EXPECT_EQ((*got)[static_cast<size_t>(i)].body, "body-" + std::to_string(i));
    EXPECT_EQ((*got)[static_cast<size_t>(i)].receive_count, 1);
    EXPECT_GT((*got)[static_cast<size_t>(i)].sent_ms, 0);
  }
  auto rest = queue->Receive(10, 30, 0);
  ASSERT_EQ(rest->size(), 2u);
  EXPECT_EQ((*rest)[0].id, ids[3]);
  EXPECT_TRUE(queue->Receive(1, 30, 0)->empty());
}

TEST_F(SqliteQueueTest, BinaryAndEmptyBodiesRoundTrip) {
  auto queue = Open();
  std::string binary("a\0b\xff", 4);
  ASSERT_TRUE(queue->Send(binary).ok());
  ASSERT_TRUE(queue->Send("").ok());
  auto got = queue->Receive(2, 30, 0);
  ASSERT_EQ(got->size(), 2u);
  EXPECT_EQ((*got)[0].body, binary);
  EXPECT_EQ((*got)[1].body, "");
}

TEST_F(SqliteQueueTest, UndeletedMessageReturnsAfterVisibilityTimeout) {
  auto queue = Open();
  auto id = queue->Send("x").value();
  auto first = queue->Receive(1, 1, 0).value();
  ASSERT_EQ(first.size(), 1u);
  EXPECT_TRUE(queue->Receive(1, 1, 0)->empty());  // invisible while held
  auto second = queue->Receive(1, 1, 3).value();  // long poll until it reappears
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(second[0].id, id);
  EXPECT_EQ(second[0].receive_count, 2);
  EXPECT_NE(second[0].receipt, first[0].receipt);
  // The first delivery's receipt is stale now: it neither deletes nor extends.
  EXPECT_EQ(queue->Delete(first[0].receipt).error().code, ErrorCode::kNotFound);
  EXPECT_EQ(queue->ChangeVisibility(first[0].receipt, 30).error().code, ErrorCode::kNotFound);
  ASSERT_TRUE(queue->Delete(second[0].receipt).ok());
  EXPECT_EQ(queue->Delete(second[0].receipt).error().code, ErrorCode::kNotFound);
  EXPECT_EQ(queue->Delete("garbage").error().code, ErrorCode::kInvalidRequest);
}

TEST_F(SqliteQueueTest, ChangeVisibilityExtendsAndReleases) {
  auto queue = Open();
  ASSERT_TRUE(queue->Send("x").ok());
  auto held = queue->Receive(1, 1, 0).value();
  ASSERT_TRUE(queue->ChangeVisibility(held[0].receipt, 30).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(1200));
  EXPECT_TRUE(queue->Receive(1, 1, 0)->empty());  // extended: still held
  ASSERT_TRUE(queue->ChangeVisibility(held[0].receipt, 0).ok());
  auto again = queue->Receive(1, 30, 0).value();
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].receive_count, 2);
}

TEST_F(SqliteQueueTest, DeadLettersAfterMaxReceives) {
  SqliteQueueOptions options;
  options.max_receives = 2;
  auto queue = Open(options);
  auto id = queue->Send("poison").value();
  ASSERT_TRUE(queue->Send("good").ok());
  for (int i = 1; i <= 2; ++i) {
    auto got = queue->Receive(1, 30, 0).value();
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].id, id);
    EXPECT_EQ(got[0].receive_count, i);
    ASSERT_TRUE(queue->ChangeVisibility(got[0].receipt, 0).ok());  // a failed attempt
  }
  // The third receive moves it to the dead letters and delivers the next message instead.
  auto next = queue->Receive(1, 30, 0).value();
  ASSERT_EQ(next.size(), 1u);
  EXPECT_EQ(next[0].body, "good");
  auto dead = queue->ListDeadLetters(10, "").value();
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_EQ(dead[0].id, id);
  EXPECT_EQ(dead[0].body, "poison");
  EXPECT_EQ(dead[0].receive_count, 2);
  EXPECT_NE(dead[0].reason.find("max_receives 2"), std::string::npos);
  EXPECT_EQ(queue->DeadLetterCount().value(), 1);

  // Redrive puts it back with a fresh receive count and the same id.
  EXPECT_EQ(queue->Redrive({}).value(), 1);
  EXPECT_EQ(queue->DeadLetterCount().value(), 0);
  auto back = queue->Receive(1, 30, 0).value();
  ASSERT_EQ(back.size(), 1u);
  EXPECT_EQ(back[0].id, id);
  EXPECT_EQ(back[0].receive_count, 1);
}

TEST_F(SqliteQueueTest, ExplicitDeadLetterKeepsTheReason) {
  auto queue = Open();
  auto a = queue->Send("a").value();
  auto b = queue->Send("b").value();
  auto got = queue->Receive(2, 30, 0).value();
  ASSERT_TRUE(queue->DeadLetter(got[0].receipt, "invalid_request: prompt is empty").ok());
  ASSERT_TRUE(queue->DeadLetter(got[1].receipt, "second").ok());
  EXPECT_EQ(queue->DeadLetter(got[1].receipt, "again").error().code, ErrorCode::kNotFound);
  auto page1 = queue->ListDeadLetters(1, "").value();
  ASSERT_EQ(page1.size(), 1u);
  EXPECT_EQ(page1[0].id, a);
  EXPECT_EQ(page1[0].reason, "invalid_request: prompt is empty");
  auto page2 = queue->ListDeadLetters(1, page1[0].id).value();
  ASSERT_EQ(page2.size(), 1u);
  EXPECT_EQ(page2[0].id, b);
  EXPECT_TRUE(queue->ListDeadLetters(1, b)->empty());
  EXPECT_EQ(queue->Redrive({b}).value(), 1);
  EXPECT_EQ(queue->DeadLetterCount().value(), 1);
  auto stats = queue->Stats().value();
  EXPECT_EQ(stats.visible, 1);
  EXPECT_EQ(stats.in_flight, 0);
}

TEST_F(SqliteQueueTest, StatsCountVisibleInFlightAndOldestAge) {
  auto queue = Open();
  auto empty = queue->Stats().value();
  EXPECT_EQ(empty.visible, 0);
  EXPECT_EQ(empty.in_flight, 0);
  EXPECT_EQ(empty.oldest_age_s, 0);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(queue->Send("m").ok());
  ASSERT_EQ(queue->Receive(1, 30, 0)->size(), 1u);
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  auto stats = queue->Stats().value();
  EXPECT_EQ(stats.visible, 2);
  EXPECT_EQ(stats.in_flight, 1);
  EXPECT_GE(stats.oldest_age_s, 1);
}

TEST_F(SqliteQueueTest, LongPollWakesOnSendFromAnotherThread) {
  auto queue = Open();
  std::thread sender([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    ASSERT_TRUE(queue->Send("late").ok());
  });
  auto start = std::chrono::steady_clock::now();
  auto got = queue->Receive(1, 30, 5).value();
  auto waited = std::chrono::steady_clock::now() - start;
  sender.join();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_LT(waited, std::chrono::seconds(2));
  // And an empty long poll returns after its wait.
  start = std::chrono::steady_clock::now();
  EXPECT_TRUE(queue->Receive(1, 30, 1)->empty());
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(900));
}

TEST_F(SqliteQueueTest, SurvivesReopenAndSharesOneFileBetweenConnections) {
  {
    auto queue = Open();
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(queue->Send(std::to_string(i)).ok());
  }
  auto a = Open();
  auto b = Open();  // a second connection: what a second process sees
  ASSERT_EQ(a->Stats()->visible, 3);
  auto from_a = a->Receive(1, 30, 0).value();
  auto from_b = b->Receive(10, 30, 0).value();
  ASSERT_EQ(from_a.size(), 1u);
  ASSERT_EQ(from_b.size(), 2u);
  EXPECT_EQ(from_a[0].body, "0");
  // b can delete what a received if it has the receipt (receipts are queue-wide).
  EXPECT_TRUE(b->Delete(from_a[0].receipt).ok());
  // A send on one connection wakes a long poll on another within the poll interval.
  std::thread sender([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    ASSERT_TRUE(a->Send("cross").ok());
  });
  auto got = b->Receive(1, 30, 5).value();
  sender.join();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].body, "cross");
}

TEST_F(SqliteQueueTest, ConcurrentConsumersNeverShareAMessage) {
  constexpr int kMessages = 300;
  {
    auto producer = Open();
    for (int i = 0; i < kMessages; ++i) ASSERT_TRUE(producer->Send(std::to_string(i)).ok());
  }
  std::mutex mu;
  std::multiset<std::string> seen;
  std::vector<std::thread> consumers;
  for (int c = 0; c < 4; ++c) {
    consumers.emplace_back([&] {
      auto queue = Open();  // each consumer its own connection, as separate processes would
      for (;;) {
        auto got = queue->Receive(3, 60, 0);
        ASSERT_TRUE(got.ok()) << got.error().message;
        if (got->empty()) return;
        for (const auto& m : *got) {
          {
            std::lock_guard<std::mutex> lock(mu);
            seen.insert(m.body);
          }
          ASSERT_TRUE(queue->Delete(m.receipt).ok());
        }
      }
    });
  }
  for (auto& t : consumers) t.join();
  EXPECT_EQ(seen.size(), static_cast<size_t>(kMessages));
  EXPECT_EQ(std::set<std::string>(seen.begin(), seen.end()).size(), static_cast<size_t>(kMessages));
}

TEST_F(SqliteQueueTest, RejectsBadArguments) {
  auto queue = Open();
  EXPECT_EQ(queue->Receive(0, 30, 0).error().code, ErrorCode::kInvalidRequest);
  EXPECT_EQ(queue->Receive(11, 30, 0).error().code, ErrorCode::kInvalidRequest);
  EXPECT_EQ(queue->Receive(1, -1, 0).error().code, ErrorCode::kInvalidRequest);
  SqliteQueueOptions bad;
  bad.max_receives = 0;
  EXPECT_FALSE(OpenSqliteQueue(path_, bad).ok());
  EXPECT_FALSE(OpenSqliteQueue("", {}).ok());
}

TEST(SqliteQueueUrl, ParsesPathAndOptions) {
  std::string path;
  SqliteQueueOptions options;
  ASSERT_TRUE(ParseSqliteQueueUrl("sqlite://./data/queue.db", &path, &options).ok());
  EXPECT_EQ(path, "./data/queue.db");
  EXPECT_EQ(options.max_receives, 5);
  EXPECT_TRUE(options.synchronous_full);
  ASSERT_TRUE(
      ParseSqliteQueueUrl("sqlite:///var/q.db?max_receives=3&synchronous=normal", &path, &options)
          .ok());
  EXPECT_EQ(path, "/var/q.db");
  EXPECT_EQ(options.max_receives, 3);
  EXPECT_FALSE(options.synchronous_full);
  EXPECT_FALSE(ParseSqliteQueueUrl("sqlite://", &path, &options).ok());
  EXPECT_FALSE(ParseSqliteQueueUrl("sqlite://q.db?bogus=1", &path, &options).ok());
  EXPECT_FALSE(ParseSqliteQueueUrl("sqlite://q.db?max_receives=x", &path, &options).ok());
  EXPECT_FALSE(ParseSqliteQueueUrl("sqlite://q.db?synchronous=off", &path, &options).ok());
  EXPECT_FALSE(ParseSqliteQueueUrl("file://q.db", &path, &options).ok());
}

}  // namespace
}  // namespace imagegen
