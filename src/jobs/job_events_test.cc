// The event ids of GET /jobs/{id}/events: every state a job's record passes through reads as a
// larger id than the states before it, so Last-Event-ID resumes without repeats. (The stream
// itself is tested through the real server: tests/integration/test_job_events.py.)
#include "jobs/job_events.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace imagegen {
namespace {

JobRecord State(JobStatus status, int attempts, int step = 0) {
  JobRecord record;
  record.job_id = "j1";
  record.status = status;
  record.attempts = attempts;
  record.step = step;
  record.total_steps = step > 0 ? 10 : 0;
  return record;
}

JobEventId IdOf(const JobRecord& record) {
  HttpRequest request;
  return EventForRecord(record, request, false).id;
}

TEST(JobEventsTest, IdsGrowThroughAJobsWholeLife) {
  // Queued, two steps of a first attempt that fails, queued again, the second attempt, done.
  std::vector<JobRecord> life = {State(JobStatus::kQueued, 0),     State(JobStatus::kRunning, 1, 0),
                                 State(JobStatus::kRunning, 1, 3), State(JobStatus::kQueued, 1),
                                 State(JobStatus::kRunning, 2, 1), State(JobStatus::kSucceeded, 2)};
  for (size_t i = 1; i < life.size(); ++i) {
    EXPECT_LT(IdOf(life[i - 1]), IdOf(life[i])) << i;
  }
  // Cancelled while waiting for its second attempt: still after the wait it was seen in.
  EXPECT_LT(IdOf(State(JobStatus::kQueued, 1)), IdOf(State(JobStatus::kCancelled, 1)));
  EXPECT_LT(IdOf(State(JobStatus::kQueued, 0)), IdOf(State(JobStatus::kCancelled, 0)));
}

TEST(JobEventsTest, IdsParseBackAndRejectAnythingElse) {
  JobEventId id{3, 1, 12};
  EXPECT_EQ(id.ToString(), "3.1.12");
  EXPECT_EQ(JobEventId::Parse("3.1.12"), id);
  for (const char* bad : {"", "3", "3.1", "3.1.", "3.3.0", "a.1.2", "-1.0.0", "1.0.0.0", " 1.0.0",
                          "1234567890.0.0", "1.0.+2"}) {
    EXPECT_FALSE(JobEventId::Parse(bad).has_value()) << bad;
  }
}

TEST(JobEventsTest, EventsCarryWhatTheirClientsRead) {
  HttpRequest request;
  request.base_url = "http://h";
  JobRecord running = State(JobStatus::kRunning, 1, 4);
  running.preview = "data:image/jpeg;base64,AAAA";
  JobEvent plain = EventForRecord(running, request, false);
  EXPECT_EQ(FormatEvent(plain),
            "id: 1.1.4\nevent: running\ndata: "
            R"({"attempt":1,"job_id":"j1","status":"running","step":4,"total":10})"
            "\n\n");
  auto with = nlohmann::json::parse(EventForRecord(running, request, true).data);
  EXPECT_EQ(with["preview"], running.preview);

  JobRecord failed = State(JobStatus::kFailed, 2);
  failed.error = Error::Make(ErrorCode::kContentRejected, "no");
  JobEvent end = EventForRecord(failed, request, true);
  EXPECT_TRUE(end.final);
  auto data = nlohmann::json::parse(end.data);
  EXPECT_EQ(data["error"]["code"], "content_rejected");
  EXPECT_EQ(data["status_url"], "http://h/jobs/j1");
  EXPECT_FALSE(data.contains("preview"));
}

}  // namespace
}  // namespace imagegen
