#include "queue/sqlite_queue.h"

#include <sqlite3.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <random>

#include "core/clock.h"
#include "core/ids.h"

namespace imagegen {
namespace {

constexpr int kMaxVisibilityS = 12 * 3600;  // SQS's limit, kept so both queues behave alike
constexpr int kMaxBatch = 10;               // SQS's limit on one Receive

// SQLite result codes -> the taxonomy, in this one place. A lock held past busy_timeout is
// temporary (another process is writing); anything else is ours to investigate.
Error DbError(sqlite3* db, int rc, const std::string& what) {
  std::string message = "queue database: " + what;
  if (db != nullptr) message += std::string(": ") + sqlite3_errmsg(db);
  int primary = rc & 0xFF;
  if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED) {
    Error e = Error::Make(ErrorCode::kUpstreamUnavailable, message);
    e.retry_after_s = 1;
    return e;
  }
  return Error::Make(ErrorCode::kInternal, message);
}

// A prepared statement, finalized on scope exit.
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) { rc_ = sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr); }
  ~Stmt() { sqlite3_finalize(stmt_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  bool prepared() const { return rc_ == SQLITE_OK; }
  int prepare_rc() const { return rc_; }
  void Bind(int index, int64_t value) { sqlite3_bind_int64(stmt_, index, value); }
  void Bind(int index, const std::string& value) {
    sqlite3_bind_text(stmt_, index, value.data(), static_cast<int>(value.size()), SQLITE_TRANSIENT);
  }
  void BindBlob(int index, const std::string& value) {
    sqlite3_bind_blob(stmt_, index, value.data(), static_cast<int>(value.size()), SQLITE_TRANSIENT);
  }
  // SQLITE_ROW, SQLITE_DONE or an error code.
  int Step() { return sqlite3_step(stmt_); }
  int64_t Int(int column) const { return sqlite3_column_int64(stmt_, column); }
  std::string Text(int column) const {
    const void* data = sqlite3_column_blob(stmt_, column);
    int size = sqlite3_column_bytes(stmt_, column);
    return data == nullptr ? std::string()
                           : std::string(static_cast<const char*>(data), static_cast<size_t>(size));
  }

 private:
  sqlite3_stmt* stmt_ = nullptr;
  int rc_ = SQLITE_OK;
};

const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS messages (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- enqueue order: FIFO delivery follows it
  id TEXT NOT NULL UNIQUE,
  body BLOB NOT NULL,
  sent_ms INTEGER NOT NULL,
  visible_ms INTEGER NOT NULL,            -- deliverable when visible_ms <= now
  receive_count INTEGER NOT NULL DEFAULT 0,
  receipt TEXT                            -- token of the current delivery
);
CREATE INDEX IF NOT EXISTS messages_by_visibility ON messages(visible_ms);
CREATE TABLE IF NOT EXISTS dead_letters (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  body BLOB NOT NULL,
  reason TEXT NOT NULL,
  receive_count INTEGER NOT NULL,
  sent_ms INTEGER NOT NULL,
  dead_ms INTEGER NOT NULL
);
PRAGMA user_version = 1;
)sql";

class SqliteQueueImpl final : public SqliteQueue {
 public:
  explicit SqliteQueueImpl(SqliteQueueOptions options)
      : options_(options), random_(std::random_device{}()) {}
  ~SqliteQueueImpl() override { sqlite3_close_v2(db_); }

  Status Open(const std::string& path) {
    int rc =
        sqlite3_open_v2(path.c_str(), &db_,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
    if (rc != SQLITE_OK) return DbError(db_, rc, "open " + path);
    sqlite3_busy_timeout(db_, options_.busy_timeout_ms);
    // WAL: readers never block the writer, and a commit is one append (+ fsync) to the log.
    {
      Stmt wal(db_, "PRAGMA journal_mode=WAL");
      if (!wal.prepared()) return DbError(db_, wal.prepare_rc(), "journal_mode");
      rc = wal.Step();
      if (rc != SQLITE_ROW) return DbError(db_, rc, "journal_mode");
      if (wal.Text(0) != "wal") {
        return Error::Invalid("queue",
                              "cannot use WAL journal for " + path + " (got " + wal.Text(0) + ")");
      }
    }
    // FULL fsyncs the log on every commit: an acknowledged Send survives a power loss.
    // NORMAL fsyncs only at checkpoints: still safe against process crashes (SIGKILL), which
    // is what the tests inflict, but an OS crash may roll back the last commits.
    if (auto s = Exec(options_.synchronous_full ? "PRAGMA synchronous=FULL"
                                                : "PRAGMA synchronous=NORMAL");
        !s) {
      return s;
    }
    if (auto s = Exec("BEGIN IMMEDIATE"); !s) return s;
    if (auto s = Exec(kSchema); !s) {
      (void)Exec("ROLLBACK");
      return s;
    }
    return Exec("COMMIT");
  }

  Result<std::string> Send(const std::string& body) override {
    std::string id = NewJobId();
    int64_t now = NowEpochMs();
    {
      std::lock_guard<std::mutex> lock(mu_);
      Status s = InTransaction([&]() -> Status {
        Stmt insert(db_,
                    "INSERT INTO messages(id, body, sent_ms, visible_ms) VALUES (?1, ?2, ?3, ?3)");
        if (!insert.prepared()) return DbError(db_, insert.prepare_rc(), "prepare send");
        insert.Bind(1, id);
        insert.BindBlob(2, body);
        insert.Bind(3, now);
        if (int rc = insert.Step(); rc != SQLITE_DONE) return DbError(db_, rc, "send");
        return Status::Ok();
      });
      if (!s) return s.error();
    }
    cv_.notify_all();
    return id;
  }

  Result<std::vector<QueueMessage>> Receive(int max, int visibility_s, int wait_s) override {
    if (max < 1 || max > kMaxBatch) {
      return Error::Invalid("max", "receive between 1 and 10 messages at once");
    }
    if (visibility_s < 0 || visibility_s > kMaxVisibilityS) {
      return Error::Invalid("visibility_s", "visibility timeout must be 0..43200 seconds");
    }
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(std::max(0, wait_s));
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      auto got = TryReceive(max, visibility_s);
      if (!got.ok() || !got->empty()) return got;
      auto now = std::chrono::steady_clock::now();
      if (now >= deadline) return got;
      // Woken early by a Send in this process; otherwise look again after the poll interval
      // for sends from other processes.
      cv_.wait_until(
          lock, std::min(deadline, now + std::chrono::milliseconds(options_.poll_interval_ms)));
    }
  }

  Status Delete(const std::string& receipt) override {
    int64_t seq = 0;
    if (auto s = ParseReceipt(receipt, &seq); !s) return s;
    std::lock_guard<std::mutex> lock(mu_);
    return InTransaction([&]() -> Status {
      Stmt del(db_, "DELETE FROM messages WHERE seq = ?1 AND receipt = ?2");
      if (!del.prepared()) return DbError(db_, del.prepare_rc(), "prepare delete");
      del.Bind(1, seq);
      del.Bind(2, receipt);
      if (int rc = del.Step(); rc != SQLITE_DONE) return DbError(db_, rc, "delete");
      if (sqlite3_changes(db_) == 0) return StaleReceipt();
      return Status::Ok();
    });
  }

  Status ChangeVisibility(const std::string& receipt, int visibility_s) override {
    if (visibility_s < 0 || visibility_s > kMaxVisibilityS) {
      return Error::Invalid("visibility_s", "visibility timeout must be 0..43200 seconds");
    }
    int64_t seq = 0;
    if (auto s = ParseReceipt(receipt, &seq); !s) return s;
    Status s;
    {
      std::lock_guard<std::mutex> lock(mu_);
      s = InTransaction([&]() -> Status {
        Stmt update(db_, "UPDATE messages SET visible_ms = ?1 WHERE seq = ?2 AND receipt = ?3");
        if (!update.prepared()) return DbError(db_, update.prepare_rc(), "prepare visibility");
        update.Bind(1, NowEpochMs() + int64_t{visibility_s} * 1000);
        update.Bind(2, seq);
        update.Bind(3, receipt);
        if (int rc = update.Step(); rc != SQLITE_DONE) return DbError(db_, rc, "visibility");
        if (sqlite3_changes(db_) == 0) return StaleReceipt();
        return Status::Ok();
      });
    }
    if (s && visibility_s == 0) cv_.notify_all();
    return s;
  }

  Result<QueueStats> Stats() override {
    std::lock_guard<std::mutex> lock(mu_);
    int64_t now = NowEpochMs();
    QueueStats stats;
    // One read transaction, so the three numbers describe the same moment.
    if (auto s = Exec("BEGIN"); !s) return s.error();
    auto finish = [&](Status s) -> Status {
      (void)Exec(s ? "COMMIT" : "ROLLBACK");
      return s;
    };
    int64_t total = 0;
    if (auto s = QueryInt("SELECT COUNT(*) FROM messages", -1, &total); !s)
      return finish(s).error();
    if (auto s =
            QueryInt("SELECT COUNT(*) FROM messages WHERE visible_ms <= ?1", now, &stats.visible);
        !s) {
      return finish(s).error();
    }
    int64_t oldest_ms = 0;
    // seq order is enqueue order, so the first row is the oldest without scanning.
    if (auto s = QueryInt("SELECT sent_ms FROM messages ORDER BY seq LIMIT 1", -1, &oldest_ms);
        !s) {
      return finish(s).error();
    }
    if (auto s = QueryInt("SELECT COUNT(*) FROM dead_letters", -1, &stats.dead_letters); !s) {
      return finish(s).error();
    }
    if (auto s = finish(Status::Ok()); !s) return s.error();
    stats.in_flight = total - stats.visible;
    stats.oldest_age_s = oldest_ms > 0 ? std::max<int64_t>(0, (now - oldest_ms) / 1000) : 0;
    return stats;
  }

  Status DeadLetter(const std::string& receipt, const std::string& reason) override {
    int64_t seq = 0;
    if (auto s = ParseReceipt(receipt, &seq); !s) return s;
    std::lock_guard<std::mutex> lock(mu_);
    return InTransaction([&]() -> Status {
      Stmt find(db_, "SELECT seq FROM messages WHERE seq = ?1 AND receipt = ?2");
      if (!find.prepared()) return DbError(db_, find.prepare_rc(), "prepare dead-letter");
      find.Bind(1, seq);
      find.Bind(2, receipt);
      int rc = find.Step();
      if (rc == SQLITE_DONE) return StaleReceipt();
      if (rc != SQLITE_ROW) return DbError(db_, rc, "dead-letter");
      return MoveToDeadLetters(seq, reason, NowEpochMs());
    });
  }

  Result<std::vector<DeadLetterEntry>> ListDeadLetters(int limit,
                                                       const std::string& after) override {
    if (limit < 1 || limit > 1000) return Error::Invalid("limit", "limit must be 1..1000");
    std::lock_guard<std::mutex> lock(mu_);
    Stmt list(db_,
              "SELECT id, body, reason, receive_count, sent_ms, dead_ms FROM dead_letters "
              "WHERE seq > COALESCE((SELECT seq FROM dead_letters WHERE id = ?1), 0) "
              "ORDER BY seq LIMIT ?2");
    if (!list.prepared()) return DbError(db_, list.prepare_rc(), "prepare list dead letters");
    list.Bind(1, after);
    list.Bind(2, int64_t{limit});
    std::vector<DeadLetterEntry> out;
    int rc = SQLITE_OK;
    while ((rc = list.Step()) == SQLITE_ROW) {
      out.push_back(DeadLetterEntry{list.Text(0), list.Text(1), list.Text(2),
                                    static_cast<int>(list.Int(3)), list.Int(4), list.Int(5)});
    }
    if (rc != SQLITE_DONE) return DbError(db_, rc, "list dead letters");
    return out;
  }

  Result<int64_t> DeadLetterCount() override {
    std::lock_guard<std::mutex> lock(mu_);
    int64_t count = 0;
    if (auto s = QueryInt("SELECT COUNT(*) FROM dead_letters", -1, &count); !s) return s.error();
    return count;
  }

  Result<int64_t> Redrive(const std::vector<std::string>& ids) override {
    int64_t moved = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      int64_t now = NowEpochMs();
      auto move_where = [&](const char* insert_sql, const char* delete_sql,
                            const std::string* id) -> Status {
        Stmt insert(db_, insert_sql);
        Stmt del(db_, delete_sql);
        if (!insert.prepared()) return DbError(db_, insert.prepare_rc(), "prepare redrive");
        if (!del.prepared()) return DbError(db_, del.prepare_rc(), "prepare redrive");
        insert.Bind(1, now);
        if (id != nullptr) {
          insert.Bind(2, *id);
          del.Bind(1, *id);
        }
        if (int rc = insert.Step(); rc != SQLITE_DONE) return DbError(db_, rc, "redrive");
        moved += sqlite3_changes(db_);
        if (int rc = del.Step(); rc != SQLITE_DONE) return DbError(db_, rc, "redrive");
        return Status::Ok();
      };
      // A redriven message goes to the tail as a new enqueue (a fresh receive count and age);
      // it keeps its id, so the job it carries keeps naming the same output.
      Status s = InTransaction([&]() -> Status {
        if (ids.empty()) {
          return move_where(
              "INSERT OR IGNORE INTO messages(id, body, sent_ms, visible_ms) "
              "SELECT id, body, ?1, ?1 FROM dead_letters ORDER BY seq",
              "DELETE FROM dead_letters", nullptr);
        }
        for (const auto& id : ids) {
          if (auto st = move_where("INSERT OR IGNORE INTO messages(id, body, sent_ms, visible_ms) "
                                   "SELECT id, body, ?1, ?1 FROM dead_letters WHERE id = ?2",
                                   "DELETE FROM dead_letters WHERE id = ?1", &id);
              !st) {
            return st;
          }
        }
        return Status::Ok();
      });
      if (!s) return s.error();
    }
    cv_.notify_all();
    return moved;
  }

 private:
  // REQUIRES: mu_ held.
  Status Exec(const char* sql) {
    char* message = nullptr;
    int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &message);
    if (rc == SQLITE_OK) return Status::Ok();
    std::string text = message != nullptr ? message : sqlite3_errstr(rc);
    sqlite3_free(message);
    return DbError(nullptr, rc, text);
  }

  // REQUIRES: mu_ held. Runs `body` inside BEGIN IMMEDIATE ... COMMIT: the write lock is taken
  // up front (waiting up to busy_timeout), so two processes never deadlock upgrading a read.
  template <typename F>
  Status InTransaction(F body) {
    if (auto s = Exec("BEGIN IMMEDIATE"); !s) return s;
    Status s = body();
    if (!s) {
      (void)Exec("ROLLBACK");
      return s;
    }
    if (auto c = Exec("COMMIT"); !c) {
      (void)Exec("ROLLBACK");
      return c;
    }
    return Status::Ok();
  }

  // REQUIRES: mu_ held. `bind` < 0: no parameter.
  Status QueryInt(const char* sql, int64_t bind, int64_t* out) {
    Stmt q(db_, sql);
    if (!q.prepared()) return DbError(db_, q.prepare_rc(), "prepare query");
    if (bind >= 0) q.Bind(1, bind);
    int rc = q.Step();
    if (rc == SQLITE_ROW) {
      *out = q.Int(0);
      return Status::Ok();
    }
    if (rc == SQLITE_DONE) {
      *out = 0;
      return Status::Ok();
    }
    return DbError(db_, rc, "query");
  }

  // REQUIRES: mu_ held, inside a transaction.
  Status MoveToDeadLetters(int64_t seq, const std::string& reason, int64_t now) {
    Stmt insert(db_,
                "INSERT OR REPLACE INTO dead_letters(id, body, reason, receive_count, sent_ms, "
                "dead_ms) SELECT id, body, ?2, receive_count, sent_ms, ?3 FROM messages "
                "WHERE seq = ?1");
    if (!insert.prepared()) return DbError(db_, insert.prepare_rc(), "prepare dead-letter");
    insert.Bind(1, seq);
    insert.Bind(2, reason);
    insert.Bind(3, now);
    if (int rc = insert.Step(); rc != SQLITE_DONE) return DbError(db_, rc, "dead-letter");
    Stmt del(db_, "DELETE FROM messages WHERE seq = ?1");
    if (!del.prepared()) return DbError(db_, del.prepare_rc(), "prepare dead-letter");
    del.Bind(1, seq);
    if (int rc = del.Step(); rc != SQLITE_DONE) return DbError(db_, rc, "dead-letter");
    return Status::Ok();
  }

  // REQUIRES: mu_ held.
  Result<std::vector<QueueMessage>> TryReceive(int max, int visibility_s) {
    int64_t now = NowEpochMs();
    // A read without the write lock first: idle pollers (several workers, several processes)
    // then never queue behind each other or behind a Send's fsync.
    int64_t any = 0;
    if (auto s = QueryInt("SELECT COUNT(*) FROM (SELECT 1 FROM messages WHERE visible_ms <= ?1 "
                          "LIMIT 1)",
                          now, &any);
        !s) {
      return s.error();
    }
    if (any == 0) return std::vector<QueueMessage>{};

    std::vector<QueueMessage> out;
    Status s = InTransaction([&]() -> Status {
      now = NowEpochMs();
      int64_t last_seq = 0;
      while (static_cast<int>(out.size()) < max) {
        // "+visible_ms" keeps the planner on the rowid (enqueue order) instead of the
        // visibility index, so no sort is needed; the rows it skips are the in-flight ones at
        // the head of the queue, at most as many as there are consumers.
        Stmt next(db_,
                  "SELECT seq, id, body, sent_ms, receive_count FROM messages "
                  "WHERE seq > ?1 AND +visible_ms <= ?2 ORDER BY seq LIMIT 1");
        if (!next.prepared()) return DbError(db_, next.prepare_rc(), "prepare receive");
        next.Bind(1, last_seq);
        next.Bind(2, now);
        int rc = next.Step();
        if (rc == SQLITE_DONE) break;
        if (rc != SQLITE_ROW) return DbError(db_, rc, "receive");
        QueueMessage message;
        int64_t seq = next.Int(0);
        last_seq = seq;
        message.id = next.Text(1);
        message.body = next.Text(2);
        message.sent_ms = next.Int(3);
        int received = static_cast<int>(next.Int(4));
        if (received >= options_.max_receives) {
          if (auto st = MoveToDeadLetters(seq,
                                          "received " + std::to_string(received) +
                                              " times without being deleted (max_receives " +
                                              std::to_string(options_.max_receives) + ")",
                                          now);
              !st) {
            return st;
          }
          continue;
        }
        message.receive_count = received + 1;
        message.receipt = std::to_string(seq) + "." + NewToken();
        Stmt claim(db_,
                   "UPDATE messages SET receive_count = ?1, receipt = ?2, visible_ms = ?3 "
                   "WHERE seq = ?4");
        if (!claim.prepared()) return DbError(db_, claim.prepare_rc(), "prepare claim");
        claim.Bind(1, int64_t{message.receive_count});
        claim.Bind(2, message.receipt);
        claim.Bind(3, now + int64_t{visibility_s} * 1000);
        claim.Bind(4, seq);
        if (int crc = claim.Step(); crc != SQLITE_DONE) return DbError(db_, crc, "claim");
        out.push_back(std::move(message));
      }
      return Status::Ok();
    });
    if (!s) return s.error();
    return out;
  }

  std::string NewToken() {
    static const char* kHex = "0123456789abcdef";
    std::string token;
    uint64_t a = random_(), b = random_();
    for (int i = 0; i < 16; ++i) token += kHex[(a >> (i * 4)) & 0xF];
    for (int i = 0; i < 16; ++i) token += kHex[(b >> (i * 4)) & 0xF];
    return token;
  }

  static Status ParseReceipt(const std::string& receipt, int64_t* seq) {
    size_t dot = receipt.find('.');
    if (dot == std::string::npos || dot == 0 || dot > 18) {
      return Error::Invalid("receipt", "malformed receipt handle");
    }
    int64_t value = 0;
    for (size_t i = 0; i < dot; ++i) {
      if (receipt[i] < '0' || receipt[i] > '9') {
        return Error::Invalid("receipt", "malformed receipt handle");
      }
      value = value * 10 + (receipt[i] - '0');
    }
    *seq = value;
    return Status::Ok();
  }

  static Error StaleReceipt() {
    return Error::Make(ErrorCode::kNotFound,
                       "receipt is not current: the message was deleted or delivered again");
  }

  SqliteQueueOptions options_;
  std::mutex mu_;
  std::condition_variable cv_;  // signalled when this process makes a message visible
  sqlite3* db_ = nullptr;       // GUARDED_BY(mu_)
  std::mt19937_64 random_;      // GUARDED_BY(mu_)
};

}  // namespace

Result<std::unique_ptr<SqliteQueue>> OpenSqliteQueue(const std::string& path,
                                                     const SqliteQueueOptions& options) {
  if (path.empty()) return Error::Invalid("queue", "sqlite queue needs a path: sqlite://PATH");
  if (options.max_receives < 1 || options.max_receives > 1000) {
    return Error::Invalid("queue", "max_receives must be 1..1000");
  }
  if (options.busy_timeout_ms < 0 || options.poll_interval_ms < 1) {
    return Error::Invalid("queue", "busy_timeout_ms must be >= 0 and poll_interval_ms >= 1");
  }
  std::error_code ec;
  auto parent = std::filesystem::absolute(path, ec).parent_path();
  if (!ec && !parent.empty()) std::filesystem::create_directories(parent, ec);
  if (ec)
    return Error::Invalid("queue", "cannot create directory for " + path + ": " + ec.message());
  auto queue = std::make_unique<SqliteQueueImpl>(options);
  if (auto s = queue->Open(path); !s) return s.error();
  return std::unique_ptr<SqliteQueue>(std::move(queue));
}

Result<std::unique_ptr<JobQueue>> MakeSqliteQueue(const std::string& path,
                                                  const SqliteQueueOptions& options) {
  auto queue = OpenSqliteQueue(path, options);
  if (!queue.ok()) return queue.error();
  return std::unique_ptr<JobQueue>(std::move(queue.value()));
}

Status ParseSqliteQueueUrl(const std::string& url, std::string* path, SqliteQueueOptions* options) {
  const std::string scheme = "sqlite://";
  if (url.compare(0, scheme.size(), scheme) != 0) {
    return Error::Invalid("queue", "not a sqlite:// URL: " + url);
  }
  std::string rest = url.substr(scheme.size());
  size_t q = rest.find('?');
  *path = rest.substr(0, q);
  if (path->empty()) return Error::Invalid("queue", "sqlite queue needs a path: sqlite://PATH");
  std::string query = q == std::string::npos ? "" : rest.substr(q + 1);
  size_t start = 0;
  while (start < query.size()) {
    size_t end = query.find('&', start);
    if (end == std::string::npos) end = query.size();
    std::string pair = query.substr(start, end - start);
    start = end + 1;
    if (pair.empty()) continue;
    size_t eq = pair.find('=');
    std::string name = pair.substr(0, eq);
    std::string value = eq == std::string::npos ? "" : pair.substr(eq + 1);
    auto number = [&](int* out) -> Status {
      if (value.empty() || value.size() > 9 ||
          value.find_first_not_of("0123456789") != std::string::npos) {
        return Error::Invalid("queue", "queue option " + name + " must be a number");
      }
      *out = std::stoi(value);
      return Status::Ok();
    };
    Status s;
    if (name == "max_receives") {
      s = number(&options->max_receives);
    } else if (name == "busy_timeout_ms") {
      s = number(&options->busy_timeout_ms);
    } else if (name == "poll_interval_ms") {
      s = number(&options->poll_interval_ms);
    } else if (name == "synchronous") {
      if (value == "full") {
        options->synchronous_full = true;
      } else if (value == "normal") {
        options->synchronous_full = false;
      } else {
        s = Error::Invalid("queue", "synchronous must be full or normal");
      }
    } else {
      s = Error::Invalid("queue", "unknown sqlite queue option \"" + name +
                                      "\" (max_receives, synchronous, busy_timeout_ms, "
                                      "poll_interval_ms)");
    }
    if (!s) return s;
  }
  return Status::Ok();
}

}  // namespace imagegen
