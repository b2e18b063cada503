// Image deletion with tombstones (Pipeline::DeleteImage): what a DELETE leaves behind, what
// readers see afterwards, and that no replay, retry or race writes a deleted key again, over
// the real file store with a fault-injecting wrapper and the test model.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <functional>

#include "model/testing/test_model.h"
#include "pipeline/pipeline.h"
#include "store/file_store.h"

namespace imagegen {
namespace {

namespace fs = std::filesystem;

// Forwards to the test model, counting calls and running `during` inside Generate (a DELETE
// racing the run).
class HookedModel final : public ImageModel {
 public:
  explicit HookedModel(std::unique_ptr<ImageModel> base) : base_(std::move(base)) {}
  std::string Name() const override { return base_->Name(); }
  const ModelLimits& Limits() const override { return base_->Limits(); }
  Result<ModelOutput> Generate(const ValidRequest& request, const GenerateContext& ctx) override {
    ++calls;
    if (during) during();
    return base_->Generate(request, ctx);
  }

  std::atomic<int> calls{0};
  std::function<void()> during;

 private:
  std::unique_ptr<ImageModel> base_;
};

// Forwards to a real store; Delete and Create fail for keys containing the given strings.
class FaultyStore final : public ObjectStore {
 public:
  explicit FaultyStore(std::unique_ptr<ObjectStore> base) : base_(std::move(base)) {}
  Status Put(const std::string& key, const std::string& data, const std::string& type,
             const Metadata& metadata) override {
    return base_->Put(key, data, type, metadata);
  }
  Result<CreateOutcome> Create(const std::string& key, const std::string& data,
                               const std::string& type, const Metadata& metadata) override {
    if (Matches(key, fail_create_containing)) return Injected();
    return base_->Create(key, data, type, metadata);
  }
  Result<std::string> Get(const std::string& key, ObjectInfo* info) override {
    return base_->Get(key, info);
  }
  Result<ObjectInfo> Head(const std::string& key) override { return base_->Head(key); }
  Status Delete(const std::string& key) override {
    if (fail_delete) return Injected();
    return base_->Delete(key);
  }
  Result<ListPage> List(const std::string& prefix, int limit, const std::string& cursor) override {
    return base_->List(prefix, limit, cursor);
  }
  std::string Uri(const std::string& key) const override { return base_->Uri(key); }

  bool fail_delete = false;  // a crash (or a store outage) right after the tombstone
  std::string fail_create_containing;

 private:
  static bool Matches(const std::string& key, const std::string& part) {
    return !part.empty() && key.find(part) != std::string::npos;
  }
  static Error Injected() { return Error::Make(ErrorCode::kUpstreamUnavailable, "injected"); }
  std::unique_ptr<ObjectStore> base_;
};

class PipelineDeleteTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("pipeline-delete-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    auto base = MakeFileStore(dir_.string());
    ASSERT_TRUE(base.ok());
    store_ = std::make_shared<FaultyStore>(std::move(base.value()));
    auto model = MakeTestModel("test");
    ASSERT_TRUE(model.ok());
    model_ = std::make_shared<HookedModel>(std::move(model.value()));
    pipeline_ = std::make_shared<Pipeline>(model_, store_, PipelineOptions{"team/", 60});
  }
  void TearDown() override { fs::remove_all(dir_); }

  static GenerateRequest Named(const std::string& job_id, int count = 1,
                               const std::string& owner = "") {
    GenerateRequest r;
    r.prompt = "a red circle";
    r.job_id = job_id;
    r.seed = 7;
    r.count = count;
    r.owner = owner;
    return r;
  }

  Result<GenerateResult> Run(const GenerateRequest& r, RunOrigin origin = RunOrigin::kDirect) {
    return pipeline_->Run(r, GenerateContext{}, origin);
  }

  std::vector<std::string> Listed() {
    auto page = pipeline_->ListImages(100, "");
    EXPECT_TRUE(page.ok());
    std::vector<std::string> keys;
    if (page.ok()) {
      for (const auto& image : page->images) keys.push_back(image.key);
    }
    return keys;
  }

  bool Exists(const std::string& key) { return store_->Head(key).ok(); }

  // Every object under `dir` of the store (the listing index, the tombstones).
  std::vector<std::string> KeysUnder(const std::string& dir) {
    auto page = store_->List(dir, 1000, "");
    EXPECT_TRUE(page.ok());
    std::vector<std::string> keys;
    if (page.ok()) {
      for (const auto& object : page->objects) keys.push_back(object.key);
    }
    return keys;
  }

  fs::path dir_;
  std::shared_ptr<FaultyStore> store_;
  std::shared_ptr<HookedModel> model_;
  std::shared_ptr<Pipeline> pipeline_;
};

TEST_F(PipelineDeleteTest, DeleteWritesATombstoneAndRemovesTheImageAndItsEntry) {
  ASSERT_TRUE(Run(Named("a")).ok());
  ASSERT_EQ(Listed(), std::vector<std::string>{"team/a.png"});
  ASSERT_EQ(KeysUnder("team/index/images/").size(), 1u);

  ASSERT_TRUE(pipeline_->DeleteImage("team/a.png", "").ok());
  EXPECT_FALSE(Exists("team/a.png"));
  EXPECT_FALSE(fs::exists(dir_ / ".meta" / "team" / "a.png.json"));  // the sidecar went too
  EXPECT_TRUE(KeysUnder("team/index/images/").empty());
  EXPECT_EQ(KeysUnder("team/_deleted/"), std::vector<std::string>{"team/_deleted/a.png.json"});
  auto tombstone = store_->Head("team/_deleted/a.png.json");
  ASSERT_TRUE(tombstone.ok());
  EXPECT_EQ(tombstone->metadata.at("job-id"), "a");
  EXPECT_TRUE(Exists("team/ids/a"));  // the id keeps naming its request
  EXPECT_TRUE(pipeline_->IsDeleted("team/a.png").value());
  EXPECT_TRUE(Listed().empty());

  auto again = pipeline_->DeleteImage("team/a.png", "");
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code, ErrorCode::kGone);
}

TEST_F(PipelineDeleteTest, ReplaysAndJobRunsOfADeletedImageNeverStoreItAgain) {
  ASSERT_TRUE(Run(Named("a")).ok());
  ASSERT_TRUE(pipeline_->DeleteImage("team/a.png", "").ok());
  int calls = model_->calls;
  for (RunOrigin origin : {RunOrigin::kDirect, RunOrigin::kJob}) {
    auto replay = Run(Named("a"), origin);
    ASSERT_FALSE(replay.ok());
    EXPECT_EQ(replay.error().code, ErrorCode::kGone);
  }
  GenerateRequest no_seed = Named("a");  // "the same request, any seed" is the same request
  no_seed.seed.reset();
  EXPECT_EQ(Run(no_seed).error().code, ErrorCode::kGone);
  EXPECT_EQ(model_->calls, calls);  // nothing generated
  EXPECT_FALSE(Exists("team/a.png"));
  EXPECT_TRUE(KeysUnder("team/index/images/").empty());

  // Another request under the id is still a conflict; brand-new requests are unaffected.
  GenerateRequest other = Named("a");
  other.prompt = "a blue square";
  EXPECT_EQ(Run(other).error().code, ErrorCode::kConflict);
  auto fresh = Run(Named("b"));
  ASSERT_TRUE(fresh.ok());
  GenerateRequest unnamed = Named("");
  auto anonymous = Run(unnamed);
  ASSERT_TRUE(anonymous.ok());
  EXPECT_EQ(Listed().size(), 2u);
}

TEST_F(PipelineDeleteTest, UnknownForeignInternalAndMalformedKeys) {
  ASSERT_TRUE(Run(Named("mine", 1, "alice")).ok());
  ASSERT_TRUE(Run(Named("a")).ok());
  auto code = [&](const std::string& key, const std::string& owner) {
    Status s = pipeline_->DeleteImage(key, owner);
    return s.ok() ? std::string("ok") : std::string(ErrorCodeName(s.error().code));
  };
  EXPECT_EQ(code("team/nope.png", ""), "not_found");
  EXPECT_EQ(code("team/alice/mine.png", "bob"), "not_found");  // another owner's image
  EXPECT_EQ(code("team/a.png", "bob"), "not_found");           // outside bob's namespace
  EXPECT_EQ(code("team/ids/a", ""), "not_found");              // not an image
  EXPECT_EQ(code("team/index/images.v1", ""), "not_found");
  EXPECT_EQ(code("other/a.png", ""), "not_found");  // outside the key prefix
  EXPECT_EQ(code("team/../a.png", ""), "invalid_request");
  EXPECT_EQ(code("team//a.png", ""), "invalid_request");
  EXPECT_EQ(code("/team/a.png", ""), "invalid_request");
  EXPECT_TRUE(Exists("team/alice/mine.png"));
  EXPECT_TRUE(Exists("team/ids/a"));
  EXPECT_TRUE(KeysUnder("team/_deleted/").empty());  // no tombstone for any of them
  EXPECT_EQ(code("team/alice/mine.png", "alice"), "ok");
  EXPECT_EQ(code("team/a.png", ""), "ok");  // without API keys: any image under the prefix
}

TEST_F(PipelineDeleteTest, ACrashAfterTheTombstoneLeavesTheImageGoneAndALaterDeleteFinishes) {
  ASSERT_TRUE(Run(Named("a")).ok());
  store_->fail_delete = true;
  EXPECT_FALSE(pipeline_->DeleteImage("team/a.png", "").ok());
  ASSERT_TRUE(Exists("team/a.png"));                        // still on disk ...
  EXPECT_TRUE(pipeline_->IsDeleted("team/a.png").value());  // ... but gone for every reader
  EXPECT_TRUE(Listed().empty());
  EXPECT_EQ(Run(Named("a")).error().code, ErrorCode::kGone);

  store_->fail_delete = false;
  auto finish = pipeline_->DeleteImage("team/a.png", "");
  EXPECT_EQ(finish.error().code, ErrorCode::kGone);
  EXPECT_FALSE(Exists("team/a.png"));
  EXPECT_TRUE(KeysUnder("team/index/images/").empty());
}

TEST_F(PipelineDeleteTest, TheOneTimeIndexingOfAnOlderStoreSkipsTombstonedImages) {
  ASSERT_TRUE(Run(Named("a")).ok());
  ASSERT_TRUE(Run(Named("b")).ok());
  store_->fail_delete = true;  // a's DELETE stops after its tombstone
  EXPECT_FALSE(pipeline_->DeleteImage("team/a.png", "").ok());
  store_->fail_delete = false;
  // A store from before the listing index: images only, no entries, no marker.
  for (const auto& entry : KeysUnder("team/index/")) ASSERT_TRUE(store_->Delete(entry).ok());
  pipeline_ = std::make_shared<Pipeline>(model_, store_, PipelineOptions{"team/", 60});
  EXPECT_EQ(Listed(), std::vector<std::string>{"team/b.png"});
  for (const auto& entry : KeysUnder("team/index/images/")) {
    EXPECT_EQ(entry.find("a.png"), std::string::npos) << entry;  // a is not indexed again
  }
}

TEST_F(PipelineDeleteTest, ADeleteThatRacesARetryWins) {
  // A run of two images stored the first and failed on the second (a crash, a store error).
  store_->fail_create_containing = "team/r-1.png";
  ASSERT_FALSE(Run(Named("r", 2), RunOrigin::kJob).ok());
  store_->fail_create_containing.clear();
  ASSERT_TRUE(Exists("team/r.png"));
  // Its retry generates both again; the owner deletes the first image meanwhile.
  Status deleted = Error::Make(ErrorCode::kInternal, "not called");
  model_->during = [&] { deleted = pipeline_->DeleteImage("team/r.png", ""); };
  auto retry = Run(Named("r", 2), RunOrigin::kJob);
  ASSERT_TRUE(deleted.ok());
  ASSERT_FALSE(retry.ok());
  EXPECT_EQ(retry.error().code, ErrorCode::kGone);
  EXPECT_FALSE(Exists("team/r.png"));  // the retry's Create was undone
  for (const auto& key : Listed()) EXPECT_NE(key, "team/r.png");
  model_->during = nullptr;
  int calls = model_->calls;
  EXPECT_EQ(Run(Named("r", 2), RunOrigin::kJob).error().code, ErrorCode::kGone);
  EXPECT_EQ(model_->calls, calls);
}

}  // namespace
}  // namespace imagegen
