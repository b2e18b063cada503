// Job records, idempotent submission and the worker's outcomes, over the real file store and
// the real embedded queue, with a scripted model and a fault-injecting store wrapper.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <set>
#include <thread>

#include "jobs/job_service.h"
#include "jobs/worker.h"
#include "queue/sqlite_queue.h"
#include "store/file_store.h"

namespace imagegen {
namespace {

namespace fs = std::filesystem;

// A model that draws a flat image, or fails with `fail`, and honours cancellation per step.
class ScriptedModel final : public ImageModel {
 public:
  std::string Name() const override { return "scripted"; }
  const ModelLimits& Limits() const override { return limits_; }
  Result<ModelOutput> Generate(const ValidRequest& request, const GenerateContext& ctx) override {
    ++calls;
    if (fail) return Error::Make(*fail, "scripted failure");
    for (int step = 1; step <= request.steps; ++step) {
      if (auto stop = ctx.ShouldStop()) return *stop;
      if (step_delay_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(step_delay_ms));
      if (ctx.on_progress) ctx.on_progress(step, request.steps);
    }
    ModelOutput out;
    for (int i = 0; i < request.count; ++i) out.images.emplace_back(request.width, request.height);
    return out;
  }

  std::atomic<int> calls{0};
  std::optional<ErrorCode> fail;
  int step_delay_ms = 0;

 private:
  ModelLimits limits_ = [] {
    ModelLimits limits;  // named fields: ModelLimits grows (an aggregate list broke -Werror)
    limits.sizes = {{8, 8}};
    limits.max_steps = 50;
    limits.default_steps = 2;
    limits.max_count = 4;
    limits.max_seed = kMaxSeed;
    return limits;
  }();
};

// Forwards to a real store; Put fails for keys containing `fail_put_containing`.
class FaultyStore final : public ObjectStore {
 public:
  explicit FaultyStore(std::unique_ptr<ObjectStore> base) : base_(std::move(base)) {}
  Status Put(const std::string& key, const std::string& data, const std::string& type,
             const Metadata& metadata) override {
    if (!fail_put_containing.empty() && key.find(fail_put_containing) != std::string::npos) {
      return Error::Make(ErrorCode::kUpstreamUnavailable, "injected put failure");
    }
    return base_->Put(key, data, type, metadata);
  }
  Result<CreateOutcome> Create(const std::string& key, const std::string& data,
                               const std::string& type, const Metadata& metadata) override {
    if (!fail_put_containing.empty() && key.find(fail_put_containing) != std::string::npos) {
      return Error::Make(ErrorCode::kUpstreamUnavailable, "injected put failure");
    }
    return base_->Create(key, data, type, metadata);
  }
  Result<std::string> Get(const std::string& key, ObjectInfo* info) override {
    return base_->Get(key, info);
  }
  Result<ObjectInfo> Head(const std::string& key) override { return base_->Head(key); }
  Status Delete(const std::string& key) override { return base_->Delete(key); }
  Result<ListPage> List(const std::string& prefix, int limit, const std::string& cursor) override {
    auto page = base_->List(prefix, limit, cursor);
    if (page.ok()) listed_objects += static_cast<int>(page->objects.size());
    return page;
  }
  std::string Uri(const std::string& key) const override { return base_->Uri(key); }

  std::string fail_put_containing;
  std::atomic<int> listed_objects{0};  // objects returned by List, all calls together

 private:
  std::unique_ptr<ObjectStore> base_;
};

class JobsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("jobs-test-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    auto base = MakeFileStore((dir_ / "store").string());
    ASSERT_TRUE(base.ok());
    store_ = std::make_shared<FaultyStore>(std::move(base.value()));
    model_ = std::make_shared<ScriptedModel>();
    pipeline_ = std::make_shared<Pipeline>(model_, store_, PipelineOptions{});
    auto queue = OpenSqliteQueue((dir_ / "queue.db").string(), {});
    ASSERT_TRUE(queue.ok());
    queue_ = std::shared_ptr<SqliteQueue>(std::move(queue.value()));
    jobs_ = std::make_shared<JobStore>(*store_, JobStoreOptions{});
    service_ = std::make_unique<JobService>(pipeline_, jobs_, [this] {
      return Result<std::shared_ptr<JobQueue>>(std::shared_ptr<JobQueue>(queue_));
    });
  }
  void TearDown() override { fs::remove_all(dir_); }

  Worker MakeWorker(int max_attempts = 5) {
    WorkerOptions options;
    options.max_attempts = max_attempts;
    options.progress_interval_ms = 0;
    options.stats_interval_s = 0;
    return Worker(pipeline_, queue_, jobs_, options);
  }

  QueueMessage ReceiveOne() {
    auto got = queue_->Receive(1, 30, 0);
    EXPECT_TRUE(got.ok());
    EXPECT_EQ(got->size(), 1u);
    return got->empty() ? QueueMessage{} : got->front();
  }

  GenerateRequest Request(const std::string& prompt) {
    GenerateRequest r;
    r.prompt = prompt;
    return r;
  }

  fs::path dir_;
  std::shared_ptr<FaultyStore> store_;
  std::shared_ptr<ScriptedModel> model_;
  std::shared_ptr<Pipeline> pipeline_;
  std::shared_ptr<SqliteQueue> queue_;
  std::shared_ptr<JobStore> jobs_;
  std::unique_ptr<JobService> service_;
};

TEST_F(JobsTest, RecordRoundTripsThroughJson) {
  JobRecord r;
  r.job_id = "abc";
  r.status = JobStatus::kFailed;
  r.attempts = 3;
  r.step = 2;
  r.total_steps = 4;
  r.error = Error::Invalid("prompt", "empty");
  r.request = {{"prompt", "x"}};
  auto back = JobRecordFromJson(JobRecordToJson(r));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->status, JobStatus::kFailed);
  EXPECT_EQ(back->error->code, ErrorCode::kInvalidRequest);
  EXPECT_EQ(back->error->field, "prompt");
  EXPECT_EQ(back->total_steps, 4);
  EXPECT_FALSE(JobRecordFromJson(nlohmann::json{{"job_id", "x"}, {"status", "bogus"}}).ok());
}

TEST_F(JobsTest, SubmitIsIdempotentPerKeyAndScope) {
  auto a = service_->Submit(Request("cat"), "client-a", "key-1");
  ASSERT_TRUE(a.ok()) << a.error().message;
  EXPECT_TRUE(a->created);
  auto again = service_->Submit(Request("cat"), "client-a", "key-1");
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again->created);
  EXPECT_EQ(again->record.job_id, a->record.job_id);
  auto other_scope = service_->Submit(Request("cat"), "client-b", "key-1");
  EXPECT_NE(other_scope->record.job_id, a->record.job_id);
  auto conflict = service_->Submit(Request("dog"), "client-a", "key-1");
  ASSERT_FALSE(conflict.ok());
  EXPECT_EQ(conflict.error().field, "Idempotency-Key");
  // The seed was chosen at submission and travels in the message.
  EXPECT_TRUE(a->record.request.contains("seed"));
  EXPECT_EQ(queue_->Stats()->visible, 2);  // one per distinct job, none for the replay
  auto invalid = service_->Submit(Request(""), "", "");
  ASSERT_FALSE(invalid.ok());
  EXPECT_EQ(invalid.error().code, ErrorCode::kInvalidRequest);
  EXPECT_EQ(queue_->Stats()->visible, 2);
}

TEST_F(JobsTest, WorkerRunsJobRecordsResultAndAcknowledges) {
  auto submitted = service_->Submit(Request("cat"), "", "");
  ASSERT_TRUE(submitted.ok());
  Worker worker = MakeWorker();
  EXPECT_EQ(worker.Process(ReceiveOne()), JobOutcome::kSucceeded);
  auto record = service_->Get(submitted->record.job_id);
  ASSERT_TRUE(record.ok());
  EXPECT_EQ(record->status, JobStatus::kSucceeded);
  EXPECT_EQ(record->step, record->total_steps);
  EXPECT_EQ(record->result["key"], submitted->record.job_id + ".png");
  EXPECT_TRUE(store_->Head(submitted->record.job_id + ".png").ok());
  auto stats = queue_->Stats().value();
  EXPECT_EQ(stats.visible + stats.in_flight, 0);
}

TEST_F(JobsTest, RedeliveryAfterAStoredImageDoesNotGenerateAgain) {
  auto submitted = service_->Submit(Request("cat"), "", "");
  ASSERT_TRUE(submitted.ok());
  Worker worker = MakeWorker();
  // First attempt: the image is stored, then writing the final record fails (store hiccup):
  // the message is released, not acknowledged.
  store_->fail_put_containing = "jobs/";
  auto first = ReceiveOne();
  EXPECT_EQ(worker.Process(first), JobOutcome::kRetry);
  EXPECT_EQ(model_->calls, 1);
  store_->fail_put_containing.clear();
  ASSERT_TRUE(queue_->ChangeVisibility(first.receipt, 0).ok() ||
              queue_->Stats()->in_flight == 1);  // released with a short backoff
  std::this_thread::sleep_for(std::chrono::milliseconds(2100));
  auto second = ReceiveOne();
  EXPECT_EQ(second.receive_count, 2);
  EXPECT_EQ(worker.Process(second), JobOutcome::kSucceeded);
  EXPECT_EQ(model_->calls, 1);  // found the image: no second generation
  auto record = service_->Get(submitted->record.job_id).value();
  EXPECT_EQ(record.status, JobStatus::kSucceeded);
  EXPECT_TRUE(record.result["reused"].get<bool>());
}

TEST_F(JobsTest, InvalidMessagesAreDeadLetteredWithTheReason) {
  ASSERT_TRUE(queue_->Send(R"({"prompt": "x", "width": 3, "height": 3})").ok());
  ASSERT_TRUE(queue_->Send(R"({"nope": 1})").ok());
  Worker worker = MakeWorker();
  EXPECT_EQ(worker.Process(ReceiveOne()), JobOutcome::kFailed);
  EXPECT_EQ(worker.Process(ReceiveOne()), JobOutcome::kFailed);
  auto dead = queue_->ListDeadLetters(10, "").value();
  ASSERT_EQ(dead.size(), 2u);
  EXPECT_NE(dead[0].reason.find("invalid_request"), std::string::npos);
  EXPECT_NE(dead[0].reason.find("(field "), std::string::npos) << dead[0].reason;
  auto record = jobs_->Get(dead[1].id).value();  // named by the message id
  EXPECT_EQ(record.status, JobStatus::kFailed);
  EXPECT_EQ(model_->calls, 0);
}

TEST_F(JobsTest, RetryableFailuresBackOffThenBecomeFinal) {
  model_->fail = ErrorCode::kUpstreamUnavailable;
  auto submitted = service_->Submit(Request("cat"), "", "");
  Worker worker = MakeWorker(/*max_attempts=*/2);
  EXPECT_EQ(worker.Process(ReceiveOne()), JobOutcome::kRetry);
  auto record = service_->Get(submitted->record.job_id).value();
  EXPECT_EQ(record.status, JobStatus::kQueued);
  EXPECT_EQ(record.error->code, ErrorCode::kUpstreamUnavailable);
  EXPECT_TRUE(queue_->Receive(1, 30, 0)->empty());  // backing off (1 s)
  auto second = queue_->Receive(1, 30, 3).value();
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(worker.Process(second[0]), JobOutcome::kFailed);
  EXPECT_EQ(service_->Get(submitted->record.job_id)->status, JobStatus::kFailed);
  EXPECT_EQ(queue_->DeadLetterCount().value(), 1);
}

TEST_F(JobsTest, CancellingQueuedAndRunningJobs) {
  auto queued = service_->Submit(Request("never"), "", "");
  auto cancelled = service_->Cancel(queued->record.job_id);
  ASSERT_TRUE(cancelled.ok());
  EXPECT_EQ(cancelled->status, JobStatus::kCancelled);
  Worker worker = MakeWorker();
  EXPECT_EQ(worker.Process(ReceiveOne()), JobOutcome::kCancelled);
  EXPECT_EQ(model_->calls, 0);

  model_->step_delay_ms = 50;
  GenerateRequest slow = Request("slow");
  slow.steps = 40;
  auto running = service_->Submit(slow, "", "");
  std::thread canceller([&] {
    for (int i = 0; i < 200; ++i) {
      auto r = service_->Get(running->record.job_id);
      if (r.ok() && r->status == JobStatus::kRunning) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    auto c = service_->Cancel(running->record.job_id);
    EXPECT_TRUE(c.ok() && c->cancel_requested);
  });
  EXPECT_EQ(worker.Process(ReceiveOne()), JobOutcome::kCancelled);
  canceller.join();
  EXPECT_EQ(service_->Get(running->record.job_id)->status, JobStatus::kCancelled);
  EXPECT_FALSE(store_->Head(running->record.job_id + ".png").ok());
  EXPECT_EQ(service_->Cancel("unknown-job").error().code, ErrorCode::kNotFound);
}

TEST_F(JobsTest, ListingReadsTheIndexNewestFirstInPagesOfItsOwnSize) {
  // Client-named ids sort in no particular order; the listing follows created_ms.
  auto put = [&](const std::string& id, int64_t created_ms, const std::string& owner = "") {
    JobRecord record;
    record.job_id = id;
    record.owner = owner;
    record.created_ms = created_ms;
    ASSERT_TRUE(jobs_->Put(record).ok());
  };
  const int64_t t = NowEpochMs();
  for (int i = 0; i < 300; ++i) put("bulk-" + std::to_string(i), t - 100000 + i);
  put("zeta", t + 1);
  put("alpha", t + 3);
  put("mid", t + 2);
  put("other", t + 4, "k1");
  put("alpha", t + 3);                   // rewritten: still one entry, listed once
  ASSERT_TRUE(jobs_->List(1, "").ok());  // the first listing checks for older records once
  store_->listed_objects = 0;
  auto first = jobs_->List(2, "");
  ASSERT_TRUE(first.ok()) << first.error().message;
  ASSERT_EQ(first->jobs.size(), 2u);
  EXPECT_EQ(first->jobs[0].job_id, "alpha");
  EXPECT_EQ(first->jobs[1].job_id, "mid");
  EXPECT_LE(store_->listed_objects.load(), 2);  // O(page), not O(records)
  auto second = jobs_->List(2, first->next_cursor);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->jobs[0].job_id, "zeta");
  EXPECT_EQ(second->jobs[1].job_id, "bulk-299");
  int total = 0;
  std::string cursor;
  do {
    auto page = jobs_->List(100, cursor);
    ASSERT_TRUE(page.ok());
    total += static_cast<int>(page->jobs.size());
    cursor = page->next_cursor;
  } while (!cursor.empty());
  EXPECT_EQ(total, 303);  // every record once; the other owner's not among them
  auto theirs = jobs_->List(10, "", "k1");
  ASSERT_EQ(theirs->jobs.size(), 1u);
  EXPECT_EQ(theirs->jobs[0].job_id, "other");
  EXPECT_EQ(jobs_->List(10, "../x").error().code, ErrorCode::kInvalidRequest);

  // A store written before the index: its records are indexed on the first listing.
  for (const auto& [id, ms] : {std::pair{"old-b", t - 5}, std::pair{"old-a", t - 9}}) {
    JobRecord record;
    record.job_id = id;
    record.created_ms = ms;
    ASSERT_TRUE(store_
                    ->Put(std::string("legacy/jobs/") + id + ".json",
                          JobRecordToJson(record).dump(), "application/json", {})
                    .ok());
  }
  JobStoreOptions legacy_options;
  legacy_options.prefix = "legacy/jobs/";
  JobStore legacy(*store_, legacy_options);
  auto listed = legacy.List(10, "");
  ASSERT_TRUE(listed.ok()) << listed.error().message;
  ASSERT_EQ(listed->jobs.size(), 2u);
  EXPECT_EQ(listed->jobs[0].job_id, "old-b");
  EXPECT_EQ(listed->jobs[1].job_id, "old-a");
  EXPECT_TRUE(store_->Head("legacy/jobs/_index.v1").ok());
}

TEST_F(JobsTest, ListingPaginatesAndHidesExpiredRecords) {
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) {
    ids.push_back(service_->Submit(Request("p" + std::to_string(i)), "", "")->record.job_id);
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  std::vector<std::string> seen;
  std::string cursor;
  do {
    auto page = service_->List(2, cursor);
    ASSERT_TRUE(page.ok());
    for (const auto& r : page->jobs) seen.push_back(r.job_id);
    cursor = page->next_cursor;
  } while (!cursor.empty());
  EXPECT_EQ(seen, std::vector<std::string>(ids.rbegin(), ids.rend()));  // newest first

  // An injected clock: the record expires when the clock passes finished + retention, with no
  // sleeping and whatever the wall clock says.
  int64_t fake_now = NowEpochMs();
  JobStoreOptions short_lived;
  short_lived.retention_s = 1;
  short_lived.now_ms = [&fake_now] { return fake_now; };
  JobStore expiring(*store_, short_lived);
  JobRecord done = expiring.Get(ids[0]).value();
  done.status = JobStatus::kSucceeded;
  done.finished_ms = fake_now;
  ASSERT_TRUE(expiring.Put(done).ok());
  EXPECT_EQ(expiring.Get(ids[0])->updated_ms, fake_now);  // stamped by the injected clock
  fake_now += 999;
  EXPECT_TRUE(expiring.Get(ids[0]).ok());  // within its retention
  fake_now += 5000;
  ASSERT_TRUE(store_->Head("jobs/" + ids[0] + ".json").ok());
  EXPECT_EQ(expiring.Get(ids[0]).error().code, ErrorCode::kNotFound);
  // Found expired: deleted from the store, not only hidden.
  EXPECT_EQ(store_->Head("jobs/" + ids[0] + ".json").error().code, ErrorCode::kNotFound);
  JobRecord cancelled = expiring.Get(ids[1]).value();
  ASSERT_TRUE(expiring.RequestCancel(ids[1]).ok());
  cancelled.status = JobStatus::kCancelled;
  cancelled.finished_ms = fake_now - 5000;
  ASSERT_TRUE(expiring.Put(cancelled).ok());
  EXPECT_EQ(expiring.List(100, "")->jobs.size(), 3u);
  EXPECT_FALSE(store_->Head("jobs/" + ids[1] + ".json").ok());
  EXPECT_FALSE(store_->Head("jobs/" + ids[1] + ".cancel").ok());
  EXPECT_TRUE(jobs_->Get(ids[2]).ok());
}

// A queue whose sends fail, as an unreachable SQS endpoint does.
class UnreachableQueue final : public JobQueue {
 public:
  Result<std::string> Send(const std::string&) override {
    return Error::Make(ErrorCode::kUpstreamUnavailable, "injected send failure");
  }
  Result<std::vector<QueueMessage>> Receive(int, int, int) override {
    return std::vector<QueueMessage>{};
  }
  Status Delete(const std::string&) override { return Status::Ok(); }
  Status ChangeVisibility(const std::string&, int) override { return Status::Ok(); }
  Status DeadLetter(const std::string&, const std::string&) override { return Status::Ok(); }
  Result<QueueStats> Stats() override { return QueueStats{}; }
};

TEST_F(JobsTest, AFailedSendLeavesNoRecordAndFreesTheId) {
  JobService failing(pipeline_, jobs_, [] {
    return Result<std::shared_ptr<JobQueue>>(std::make_shared<UnreachableQueue>());
  });
  GenerateRequest named = Request("cat");
  named.job_id = "lost-send";
  auto sent = failing.Submit(named, "", "");
  ASSERT_FALSE(sent.ok());
  EXPECT_EQ(sent.error().code, ErrorCode::kUpstreamUnavailable);
  EXPECT_EQ(jobs_->Get("lost-send").error().code, ErrorCode::kNotFound);
  EXPECT_FALSE(store_->Head("jobs/lost-send.json").ok());
  EXPECT_FALSE(store_->Head("ids/lost-send").ok());
  auto unnamed = failing.Submit(Request("dog"), "", "");
  ASSERT_FALSE(unnamed.ok());
  EXPECT_TRUE(store_->List("jobs/", 10, "")->objects.empty());
  // The id is free again: even another request may take it now.
  auto retried = service_->Submit(Request("another"), "", "");
  ASSERT_TRUE(retried.ok());
  named.prompt = "a different request";
  EXPECT_TRUE(service_->Submit(named, "", "").ok());
}

TEST_F(JobsTest, ARunnerThatWritesTheRecordFirstListsTheJobOnce) {
  // The submission's clock differs from the queue's: the runner must name the listing entry
  // from the submission's time (carried in the message), not from the message's sent time.
  JobStoreOptions options;
  options.now_ms = [] { return int64_t{1'000'000'000'000}; };
  jobs_ = std::make_shared<JobStore>(*store_, options);
  service_ = std::make_unique<JobService>(pipeline_, jobs_, [this] {
    return Result<std::shared_ptr<JobQueue>>(std::shared_ptr<JobQueue>(queue_));
  });
  GenerateRequest named = Request("cat");
  named.job_id = "race-1";
  store_->fail_put_containing = "race-1.json";  // the submission's record write is lost
  auto submitted = service_->Submit(named, "", "");
  ASSERT_TRUE(submitted.ok());
  store_->fail_put_containing.clear();
  Worker worker = MakeWorker();
  EXPECT_EQ(worker.Process(ReceiveOne()), JobOutcome::kSucceeded);
  auto record = jobs_->Get("race-1");
  ASSERT_TRUE(record.ok());
  EXPECT_EQ(record->created_ms, submitted->record.created_ms);
  EXPECT_EQ(store_->List("jobs/_index/", 100, "")->objects.size(), 1u);
  EXPECT_EQ(service_->List(10, "", "")->jobs.size(), 1u);
}

TEST_F(JobsTest, AJobIdNamesOneRequestOnEveryDoor) {
  GenerateRequest a = Request("cat");
  a.job_id = "shared-id";
  auto direct = pipeline_->Run(a, GenerateContext{});
  ASSERT_TRUE(direct.ok()) << direct.error().message;
  std::string bytes = store_->Get("shared-id.png", nullptr).value();
  EXPECT_EQ(model_->calls, 1);
  auto again = pipeline_->Run(a, GenerateContext{});  // idempotent: no second generation
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->reused);
  EXPECT_EQ(again->seed, direct->seed);  // the seed of a named request derives from its name
  EXPECT_EQ(model_->calls, 1);
  GenerateRequest b = a;
  b.prompt = "dog";
  auto overwrite = pipeline_->Run(b, GenerateContext{});
  ASSERT_FALSE(overwrite.ok());
  EXPECT_EQ(overwrite.error().code, ErrorCode::kConflict);
  EXPECT_EQ(overwrite.error().field, "job_id");
  auto as_job = service_->Submit(b, "", "");
  ASSERT_FALSE(as_job.ok());
  EXPECT_EQ(as_job.error().code, ErrorCode::kConflict);
  EXPECT_EQ(store_->Get("shared-id.png", nullptr).value(), bytes);
  EXPECT_EQ(model_->calls, 1);

  // A queued job's id cannot be filled by anyone but its runner, even with the same request.
  GenerateRequest job = Request("victim");
  job.job_id = "queued-id";
  ASSERT_TRUE(service_->Submit(job, "", "").ok());
  auto plant = pipeline_->Run(job, GenerateContext{});
  ASSERT_FALSE(plant.ok());
  EXPECT_EQ(plant.error().code, ErrorCode::kConflict);
  GenerateRequest attacker = job;
  attacker.prompt = "attacker";
  EXPECT_EQ(pipeline_->Run(attacker, GenerateContext{}).error().code, ErrorCode::kConflict);
  Worker worker = MakeWorker();
  EXPECT_EQ(worker.Process(ReceiveOne()), JobOutcome::kSucceeded);
  auto record = service_->Get("queued-id").value();
  EXPECT_EQ(record.status, JobStatus::kSucceeded);
  EXPECT_EQ(record.result["prompt"], "victim");
  // Once stored, the same request may read it on the synchronous door too.
  auto after = pipeline_->Run(job, GenerateContext{});
  ASSERT_TRUE(after.ok()) << after.error().message;
  EXPECT_TRUE(after->reused);
}

TEST_F(JobsTest, OwnersHaveSeparateNamespaces) {
  GenerateRequest mine = Request("mine");
  mine.job_id = "same-name";
  mine.owner = "kaaaa";
  GenerateRequest theirs = Request("theirs");
  theirs.job_id = "same-name";
  theirs.owner = "kbbbb";
  auto a = service_->Submit(mine, "", "");
  auto b = service_->Submit(theirs, "", "");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_TRUE(b->created);  // no collision with the other owner's job
  EXPECT_EQ(service_->Get("same-name", "kaaaa")->request["prompt"], "mine");
  EXPECT_EQ(service_->Get("same-name", "kbbbb")->request["prompt"], "theirs");
  EXPECT_EQ(service_->Get("same-name").error().code, ErrorCode::kNotFound);
  EXPECT_EQ(service_->Cancel("same-name", "kcccc").error().code, ErrorCode::kNotFound);
  EXPECT_EQ(service_->List(10, "", "kaaaa")->jobs.size(), 1u);
  EXPECT_TRUE(service_->List(10, "")->jobs.empty());
  Worker worker = MakeWorker();
  EXPECT_EQ(worker.Process(ReceiveOne()), JobOutcome::kSucceeded);
  EXPECT_EQ(worker.Process(ReceiveOne()), JobOutcome::kSucceeded);
  EXPECT_TRUE(store_->Head("kaaaa/same-name.png").ok());
  EXPECT_TRUE(store_->Head("kbbbb/same-name.png").ok());
  EXPECT_EQ(service_->Get("same-name", "kbbbb")->status, JobStatus::kSucceeded);
}

TEST_F(JobsTest, AbandonedRunningRecordsReachAFinalState) {
  int64_t fake_now = NowEpochMs();
  JobStoreOptions options;
  options.now_ms = [&fake_now] { return fake_now; };
  JobStore jobs(*store_, options);
  JobRecord r;
  r.job_id = "abandoned";
  r.status = JobStatus::kRunning;
  r.attempts = 2;
  r.max_attempts = 3;
  r.lease_expires_ms = fake_now + 1000;
  ASSERT_TRUE(jobs.Put(r).ok());
  EXPECT_EQ(jobs.Get("abandoned")->status, JobStatus::kRunning);  // within its lease
  fake_now += 2000;
  auto before_last = jobs.Get("abandoned").value();
  EXPECT_EQ(before_last.status, JobStatus::kQueued);  // one more delivery will come
  r.attempts = 3;                                     // the last delivery, then its runner died
  r.lease_expires_ms = fake_now + 1000;
  ASSERT_TRUE(jobs.Put(r).ok());
  fake_now += 2000;
  auto last = jobs.Get("abandoned").value();
  EXPECT_EQ(last.status, JobStatus::kFailed);
  ASSERT_TRUE(last.error.has_value());
  EXPECT_NE(last.error->message.find("dead-lettered"), std::string::npos);
  // Written down, not only read so.
  auto stored = nlohmann::json::parse(store_->Get("jobs/abandoned.json", nullptr).value());
  EXPECT_EQ(stored["status"], "failed");
}

TEST_F(JobsTest, AFinalRecordIsNeverRunAgain) {
  model_->fail = ErrorCode::kInvalidRequest;
  auto submitted = service_->Submit(Request("cat"), "", "");
  ASSERT_TRUE(submitted.ok());
  JobRunner runner(pipeline_, jobs_, JobRunnerOptions{3, 0, "t", nullptr});
  QueueMessage message = ReceiveOne();
  EXPECT_EQ(runner.Run(message, Clock::now() + std::chrono::seconds(10)).action,
            Disposition::Action::kDeadLetter);
  model_->fail.reset();
  message.receive_count = 2;  // SQS delivers it again until its redrive policy moves it
  Disposition again = runner.Run(message, Clock::now() + std::chrono::seconds(10));
  EXPECT_EQ(again.action, Disposition::Action::kDeadLetter);
  EXPECT_EQ(model_->calls, 1);
  EXPECT_EQ(service_->Get(submitted->record.job_id)->status, JobStatus::kFailed);
  // Delivered more often than max_attempts (a queue with a larger maxReceiveCount): final.
  auto other = service_->Submit(Request("dog"), "", "");
  QueueMessage extra = ReceiveOne();
  extra.receive_count = 4;
  EXPECT_EQ(runner.Run(extra, Clock::now() + std::chrono::seconds(10)).action,
            Disposition::Action::kDeadLetter);
  EXPECT_EQ(service_->Get(other->record.job_id)->status, JobStatus::kFailed);
  EXPECT_EQ(model_->calls, 1);
  // An operator's redrive restarts the receive count: a new life of the message, run again.
  message.receive_count = 1;
  EXPECT_EQ(runner.Run(message, Clock::now() + std::chrono::seconds(10)).action,
            Disposition::Action::kDelete);
  EXPECT_EQ(model_->calls, 2);
  EXPECT_EQ(service_->Get(submitted->record.job_id)->status, JobStatus::kSucceeded);
}

// A job's image deleted (DELETE /images) is never generated again by any delivery: a
// redelivery after the success stays a duplicate whose result reads "deleted"; one after a
// delivery that stored the image but not its record ends as failed "gone", acknowledged.
TEST_F(JobsTest, ADeletedImageIsNeverGeneratedAgainByARedelivery) {
  auto done = service_->Submit(Request("cat"), "", "");
  ASSERT_TRUE(done.ok());
  Worker worker = MakeWorker();
  QueueMessage message = ReceiveOne();
  EXPECT_EQ(worker.Process(message), JobOutcome::kSucceeded);
  const std::string key = done->record.job_id + ".png";
  ASSERT_TRUE(pipeline_->DeleteImage(key, "").ok());
  ASSERT_TRUE(queue_->Send(message.body).ok());  // at-least-once: the same message again
  EXPECT_EQ(worker.Process(ReceiveOne()), JobOutcome::kDuplicate);
  EXPECT_EQ(model_->calls, 1);
  EXPECT_FALSE(store_->Head(key).ok());
  auto record = service_->Get(done->record.job_id).value();
  EXPECT_EQ(record.status, JobStatus::kSucceeded);
  EXPECT_EQ(record.result["key"], key);
  EXPECT_TRUE(record.result.value("deleted", false));
  EXPECT_TRUE(record.result["images"][0].value("deleted", false));

  auto half = service_->Submit(Request("dog"), "", "");
  ASSERT_TRUE(half.ok());
  store_->fail_put_containing = "jobs/";  // the image is stored, its record is not
  QueueMessage first = ReceiveOne();
  EXPECT_EQ(worker.Process(first), JobOutcome::kRetry);
  store_->fail_put_containing.clear();
  const std::string half_key = half->record.job_id + ".png";
  ASSERT_TRUE(pipeline_->DeleteImage(half_key, "").ok());
  ASSERT_TRUE(queue_->ChangeVisibility(first.receipt, 0).ok());
  EXPECT_EQ(worker.Process(ReceiveOne()), JobOutcome::kFailed);
  EXPECT_EQ(model_->calls, 2);  // the first delivery's generation only
  EXPECT_FALSE(store_->Head(half_key).ok());
  auto failed = service_->Get(half->record.job_id).value();
  EXPECT_EQ(failed.status, JobStatus::kFailed);
  ASSERT_TRUE(failed.error.has_value());
  EXPECT_EQ(failed.error->code, ErrorCode::kGone);
  auto stats = queue_->Stats().value();
  EXPECT_EQ(stats.visible + stats.in_flight, 0);  // acknowledged
  EXPECT_LE(stats.dead_letters, 0);               // not dead-lettered
}

}  // namespace
}  // namespace imagegen
