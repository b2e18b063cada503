#include "store/file_store.h"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace imagegen
