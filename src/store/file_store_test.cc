#include "store/file_store.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <thread>

namespace imagegen {
namespace {

namespace fs = std::filesystem;

class FileStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("imagegen-store-" + std::to_string(::getpid()) + "-" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    store_ = std::move(MakeFileStore(root_.string()).value());
  }
  void TearDown() override { fs::remove_all(root_); }
  fs::path root_;
  std::unique_ptr<ObjectStore> store_;
};

TEST_F(FileStoreTest, PutGetHeadWithMetadata) {
  ASSERT_TRUE(store_->Put("a/b c+~%é.png", "data", "image/png", {{"seed", "5"}}).ok());
  ObjectInfo info;
  auto data = store_->Get("a/b c+~%é.png", &info);
  ASSERT_TRUE(data.ok());
  EXPECT_EQ(data.value(), "data");
  EXPECT_EQ(info.content_type, "image/png");
  EXPECT_EQ(info.metadata.at("seed"), "5");
  EXPECT_EQ(info.size, 4u);
  EXPECT_FALSE(info.etag.empty());
  EXPECT_EQ(store_->Head("missing.png").error().code, ErrorCode::kNotFound);
}

TEST_F(FileStoreTest, DeleteRemovesObjectAndMetadataAndIgnoresAbsentKeys) {
  ASSERT_TRUE(store_->Put("jobs/j1.json", "{}", "application/json", {{"a", "b"}}).ok());
  ASSERT_TRUE(store_->Delete("jobs/j1.json").ok());
  EXPECT_EQ(store_->Head("jobs/j1.json").error().code, ErrorCode::kNotFound);
  EXPECT_FALSE(fs::exists(root_ / ".meta" / "jobs" / "j1.json.json"));
  EXPECT_TRUE(store_->Delete("jobs/j1.json").ok());  // already gone: fine, as in S3
  EXPECT_EQ(store_->Delete("../escape").error().code, ErrorCode::kInvalidRequest);
}

TEST_F(FileStoreTest, KeysNeverEscapeTheRoot) {
  for (const char* key :
       {"../x", "a/../../x", "/etc/passwd", "a//b", "./a", "a/.", ".meta/x", "a\\b", "", "a\nb"}) {
    EXPECT_FALSE(store_->Put(key, "x", "text/plain", {}).ok()) << key;
    EXPECT_FALSE(store_->Get(key, nullptr).ok()) << key;
  }
  std::string with_nul("a\0b", 3);
  EXPECT_FALSE(store_->Put(with_nul, "x", "text/plain", {}).ok());
  EXPECT_FALSE(fs::exists(root_.parent_path() / "x"));
}

TEST_F(FileStoreTest, OverwriteIsAtomicAndLeavesNoTemporaryFiles) {
  ASSERT_TRUE(store_->Put("k.png", std::string(1 << 20, 'a'), "image/png", {}).ok());
  std::atomic<bool> stop{false};
  std::atomic<int> torn{0};
  std::thread reader([&] {
    while (!stop) {
      auto data = store_->Get("k.png", nullptr);
      if (data.ok() && data->size() != (1u << 20)) ++torn;
      if (data.ok() && data->find_first_not_of(data->front()) != std::string::npos) ++torn;
    }
  });
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(store_->Put("k.png", std::string(1 << 20, "ab"[i % 2]), "image/png", {}).ok());
  }
  stop = true;
  reader.join();
  EXPECT_EQ(torn.load(), 0);
  for (const auto& entry : fs::directory_iterator(root_)) {
    EXPECT_EQ(entry.path().filename().string().rfind(".tmp-", 0), std::string::npos);
  }
}

TEST_F(FileStoreTest, ListIsSortedPaginatedAndHidesInternalFiles) {
  for (const char* key : {"p/c.png", "p/a.png", "p/b.png", "q/z.png"}) {
    ASSERT_TRUE(store_->Put(key, "x", "image/png", {}).ok());
  }
  auto page = store_->List("p/", 2, "");
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->objects.size(), 2u);
  EXPECT_EQ(page->objects[0].key, "p/a.png");
  EXPECT_EQ(page->objects[1].key, "p/b.png");
  auto next = store_->List("p/", 2, page->next_cursor);
  ASSERT_EQ(next->objects.size(), 1u);
  EXPECT_EQ(next->objects[0].key, "p/c.png");
  EXPECT_TRUE(next->next_cursor.empty());
  auto all = store_->List("", 100, "");
  EXPECT_EQ(all->objects.size(), 4u);  // .meta sidecars are not objects
}

TEST_F(FileStoreTest, CreateNeverReplacesAnObject) {
  auto first = store_->Create("c/k.png", "first", "image/png", {{"owner", "a"}});
  ASSERT_TRUE(first.ok()) << first.error().message;
  EXPECT_EQ(first.value(), CreateOutcome::kCreated);
  auto second = store_->Create("c/k.png", "second", "text/plain", {{"owner", "b"}});
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second.value(), CreateOutcome::kExists);
  ObjectInfo info;
  EXPECT_EQ(store_->Get("c/k.png", &info).value(), "first");
  EXPECT_EQ(info.metadata.at("owner"), "a");  // the loser never touched the metadata
  EXPECT_EQ(info.content_type, "image/png");
  EXPECT_EQ(store_->Create("../x", "x", "", {}).error().code, ErrorCode::kInvalidRequest);
  for (const auto& entry : fs::recursive_directory_iterator(root_)) {
    EXPECT_EQ(entry.path().filename().string().rfind(".tmp-", 0), std::string::npos);
  }
}

TEST_F(FileStoreTest, RacingCreatesHaveExactlyOneWinner) {
  for (int round = 0; round < 20; ++round) {
    const std::string key = "race/" + std::to_string(round) + ".png";
    std::atomic<int> created{0}, exists{0};
    std::vector<std::thread> writers;
    for (int w = 0; w < 8; ++w) {
      writers.emplace_back([&, w] {
        auto got = store_->Create(key, "writer-" + std::to_string(w), "image/png",
                                  {{"writer", std::to_string(w)}});
        ASSERT_TRUE(got.ok());
        ++(got.value() == CreateOutcome::kCreated ? created : exists);
      });
    }
    for (auto& t : writers) t.join();
    EXPECT_EQ(created.load(), 1);
    EXPECT_EQ(exists.load(), 7);
    ObjectInfo info;
    std::string data = store_->Get(key, &info).value();
    EXPECT_EQ(data, "writer-" + info.metadata.at("writer"));  // bytes and metadata agree
  }
}

TEST_F(FileStoreTest, ListWalksNestedDirectoriesInKeyOrderWithCursors) {
  // '-' (0x2D) sorts before '/' (0x2F): "a-b" comes before everything under "a/".
  std::vector<std::string> keys = {"a/x",   "a-b",     "a/y/z", "a/y-1", "ab",
                                   "a/y/a", "b/c/d/e", "a.txt", "a/y/zz"};
  for (const auto& key : keys) ASSERT_TRUE(store_->Put(key, "x", "", {}).ok());
  std::sort(keys.begin(), keys.end());
  for (int limit : {1, 2, 3, 100}) {
    std::vector<std::string> seen;
    std::string cursor;
    int pages = 0;
    do {
      auto page = store_->List("", limit, cursor);
      ASSERT_TRUE(page.ok());
      for (const auto& o : page->objects) seen.push_back(o.key);
      cursor = page->next_cursor;
      ASSERT_LT(++pages, 50);
    } while (!cursor.empty());
    EXPECT_EQ(seen, keys) << "limit " << limit;
  }
  auto sub = store_->List("a/y", 10, "a/y-1");  // a prefix that is not a directory
  ASSERT_TRUE(sub.ok());
  std::vector<std::string> got;
  for (const auto& o : sub->objects) got.push_back(o.key);
  EXPECT_EQ(got, (std::vector<std::string>{"a/y/a", "a/y/z", "a/y/zz"}));
  EXPECT_TRUE(store_->List("nothing/", 10, "")->objects.empty());
}

}  // namespace
}  // namespace imagegen
