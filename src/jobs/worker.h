// The queue consumer: receive a job message, keep it invisible while generating (heartbeat),
// run it through the JobRunner (pipeline + job record), then carry out the runner's
// disposition on the queue: delete, release with backoff, or dead-letter.
//
// Delivery guarantees, given an at-least-once queue:
//  - never lost: a message is deleted only after its image is stored and its record written;
//    a worker that dies (SIGKILL, OOM, power) leaves the message to reappear after the
//    visibility timeout;
//  - never a second image: the output key is derived from the job id (ImageKey), and
//    Pipeline::Run returns an existing image instead of generating again, so a redelivery
//    finds the first attempt's image, or (if that attempt died before storing) writes the one
//    image itself, atomically.
// Dead letters: sqlite:// moves the message at once; SQS has no such call, so the message is
// released and the queue's redrive policy moves it after maxReceiveCount receives.
#pragma once

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "jobs/job_runner.h"
#include "jobs/job_store.h"
#include "pipeline/pipeline.h"
#include "queue/job_queue.h"

namespace imagegen {

struct WorkerOptions {
  int concurrency = 1;              // jobs at once (one receiving thread each)
  int visibility_s = 60;            // held this long per receive; renewed every visibility_s / 3
  int wait_s = 5;                   // long-poll wait per receive (also bounds shutdown latency)
  int max_attempts = 5;             // a retryable failure on this receive count is final
  int job_timeout_s = 900;          // deadline handed to the model
  int progress_interval_ms = 1000;  // how often a running job's record and cancel flag are synced
  int stats_interval_s = 5;         // queue depth gauges refresh (0: never)
  bool drain = false;               // exit once a receive finds the queue empty
  std::string worker_id;            // recorded in job records ("" : host:pid)
  std::shared_ptr<WebhookOutbox> webhooks;  // where job webhooks are written (null: none)
};

class Worker {
 public:
  Worker(std::shared_ptr<Pipeline> pipeline, std::shared_ptr<JobQueue> queue,
         std::shared_ptr<JobStore> jobs, WorkerOptions options);
  ~Worker();

  // Runs until Stop() (or, with drain, an empty queue); returns after in-flight jobs end.
  void Run();
  // Thread-safe, callable from a signal-watching thread: stop receiving; in-flight jobs finish.
  void Stop();

  // Processes one received message to its outcome and acknowledges / releases / dead-letters
  // it accordingly. Thread-safe. Public for doors that receive messages themselves.
  JobOutcome Process(const QueueMessage& message);

 private:
  void Loop();
  void Heartbeat();
  void RefreshStats();
  void Carry(const QueueMessage& message, const Disposition& disposition);
  // Ends the heartbeat's extensions of `receipt`, waiting for one on the wire to return.
  void StopExtending(const std::string& receipt);
  void DeadLetter(const QueueMessage& message, const std::string& reason);

  std::shared_ptr<JobQueue> queue_;
  WorkerOptions options_;
  JobRunner runner_;

  std::atomic<bool> stopping_{false};
  std::mutex mu_;
  std::condition_variable cv_;           // wakes the heartbeat thread on Stop()
  std::map<std::string, int64_t> held_;  // receipt -> last extension, ms; GUARDED_BY(mu_)
  // Receipts whose extension the heartbeat is sending now; GUARDED_BY(mu_). A message's
  // outcome (delete, release with a delay, dead-letter) waits for it, so no extension can land
  // after the outcome and undo a release's delay or a dead-letter's hand-back.
  std::map<std::string, int> extending_;
  std::condition_variable extended_;  // signalled when an extension returns
};

}  // namespace imagegen
