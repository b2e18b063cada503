// sqlite://PATH — the embedded JobQueue: one SQLite file, shared by every process that opens it.
//
// Semantics (modelled on SQS standard queues, so code written against one works on the other):
//  - At-least-once delivery. A received message is invisible for `visibility_s`; unless it is
//    deleted (or its visibility extended) before then, it becomes visible again and is
//    delivered again with receive_count + 1 and a new receipt.
//  - FIFO by enqueue order: among visible messages the oldest enqueued is delivered first
//    (a redelivered message keeps its place at the head).
//  - Dead-lettering: a message whose receive_count has reached `max_receives` is moved to the
//    dead-letter table instead of being delivered again (SQS's maxReceiveCount redrive), and a
//    consumer may dead-letter a message it holds at once with a reason (a poison message).
//  - Durability: WAL journal. With `synchronous_full` (the default) a Send that returned has
//    been fsynced and survives a power loss; with it off (synchronous=NORMAL) a Send survives a
//    crash of any process but the last commits may roll back on an OS crash or power loss —
//    an order of magnitude more enqueues per second (one fsync per commit is the cost of
//    FULL; see bench/queue/RESULTS.md), for callers that can re-submit.
//  - Several processes may use one file: every write is a BEGIN IMMEDIATE transaction (one
//    writer at a time, readers never blocked in WAL mode) and a lock held by another process
//    is waited for up to `busy_timeout_ms` before a Status of kUpstreamUnavailable.
//  - Long polling: Receive with wait_s > 0 returns as soon as a message is visible. Sends from
//    the same process wake it at once; other processes' sends are seen within
//    `poll_interval_ms` (a cheap read that takes no write lock).
//
// Thread-safety: all methods are thread-safe (one connection, guarded by a mutex that is not
// held while a Receive waits).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "queue/job_queue.h"

namespace imagegen {

struct SqliteQueueOptions {
  int max_receives = 5;  // deliveries before a message is dead-lettered (>= 1)
  bool synchronous_full = true;
  int busy_timeout_ms = 10000;
  int poll_interval_ms = 20;  // how often a waiting Receive looks for other processes' sends
};

struct DeadLetterEntry {
  std::string id;  // the original message id
  std::string body;
  std::string reason;  // why it was dead-lettered
  int receive_count = 0;
  int64_t sent_ms = 0;
  int64_t dead_ms = 0;  // when it was dead-lettered, epoch ms
};

// The embedded queue's own operations beyond JobQueue: inspecting and redriving the dead-letter
// table (`imagegen dead-letters`).
class SqliteQueue : public JobQueue {
 public:
  // Oldest first, at most `limit`, with ids after `after_id` in dead-letter order ("" = start).
  virtual Result<std::vector<DeadLetterEntry>> ListDeadLetters(int limit,
                                                               const std::string& after) = 0;
  virtual Result<int64_t> DeadLetterCount() = 0;
  // Moves dead letters back to the queue's tail with receive_count 0 (all when `ids` is empty).
  // Returns how many moved.
  virtual Result<int64_t> Redrive(const std::vector<std::string>& ids) = 0;
};

// Opens (creating if needed, with its parent directory) the queue at `path`. Errors:
// kInvalidRequest for bad options or a path that cannot be a database, kInternal otherwise.
Result<std::unique_ptr<SqliteQueue>> OpenSqliteQueue(const std::string& path,
                                                     const SqliteQueueOptions& options);
Result<std::unique_ptr<JobQueue>> MakeSqliteQueue(const std::string& path,
                                                  const SqliteQueueOptions& options);

// Parses "sqlite://PATH[?max_receives=N&synchronous=full|normal&busy_timeout_ms=N]"
// (PATH relative or absolute: sqlite://./data/q.db, sqlite:///var/lib/q.db) into a path and
// options.
Status ParseSqliteQueueUrl(const std::string& url, std::string* path, SqliteQueueOptions* options);

}  // namespace imagegen
