// imagegen worker: consume the job queue (see src/jobs/worker.h), with Prometheus metrics on
// --metrics-port. SIGTERM/SIGINT: stop receiving, finish the jobs in hand, exit 0.
// imagegen dead-letters: list or redrive the embedded queue's dead letters.
#include <future>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>

#include "app/services.h"
#include "cli/command.h"
#include "cli/signals.h"
#include "core/log.h"
#include "core/metrics.h"
#include "http/server.h"
#include "jobs/worker.h"
#include "queue/sqlite_queue.h"

namespace imagegen {
namespace {

struct WorkerArgs {
  Config config = ConfigFromEnv();
  WorkerOptions worker;
  int metrics_port = -1;
  std::string metrics_host = "127.0.0.1";
};

// /metrics and /healthz only, on the same HTTP server as `serve`: the worker serves no
// generation routes.
class MetricsServer {
 public:
  Status Start(const std::string& host, int port) {
    ServerOptions options;
    options.host = host;
    options.port = port;
    options.threads = 2;
    options.io_threads = 1;
    options.drain_timeout_s = 1;
    server_ = std::make_unique<HttpServer>(Respond, options);
    std::promise<Status> bound;
    auto listening = bound.get_future();
    thread_ = std::thread([this, &bound] {
      bool told = false;
      Status status = server_->Run([&](int p) {
        port_ = p;
        told = true;
        bound.set_value(Status::Ok());
      });
      if (!told) bound.set_value(status);
    });
    Status status = listening.get();
    if (!status.ok() && thread_.joinable()) thread_.join();
    return status;
  }
  void Stop() {
    if (!server_) return;
    server_->Stop();
    if (thread_.joinable()) thread_.join();
  }
  int port() const { return port_; }

 private:
  static HttpResponse Respond(HttpRequest& request) {
    HttpResponse response;
    bool known = request.path == "/metrics" || request.path == "/healthz";
    if (!known) {
      response = ErrorResponse(Error::Make(ErrorCode::kNotFound, "only /metrics and /healthz"));
    } else if (request.method != "GET") {
      response = ErrorResponse(Error::Make(ErrorCode::kMethodNotAllowed, "only GET"));
      response.SetHeader("Allow", "GET");
    } else if (request.path == "/metrics") {
      response.content_type = "text/plain; version=0.0.4; charset=utf-8";
      response.body = GlobalMetrics().Render();
    } else {
      response.body = R"({"status":"ok"})";
    }
    response.SetHeader("X-Request-Id", request.request_id);
    return response;
  }

  std::unique_ptr<HttpServer> server_;
  std::thread thread_;
  int port_ = 0;
};

int RunWorker(WorkerArgs& args) {
  auto services = BuildServices(args.config);
  if (!services.ok()) return ReportError(services.error());
  auto queue = services->queue();
  if (!queue.ok()) return ReportError(queue.error());
  args.worker.webhooks = services->webhooks;
  Worker worker(services->pipeline, queue.value(), services->jobs, args.worker);
  services->webhooks->Start();
  MetricsServer metrics;
  if (args.metrics_port >= 0) {
    if (auto s = metrics.Start(args.metrics_host, args.metrics_port); !s) {
      return ReportError(s.error());
    }
  }
  OnShutdown([&worker] { worker.Stop(); });
  nlohmann::json line = {{"queue", args.config.queue},
                         {"store", services->store->Uri("")},
                         {"model", services->pipeline->model().Name()},
                         {"concurrency", args.worker.concurrency}};
  if (args.metrics_port >= 0) line["metrics_port"] = metrics.port();
  Log("info", "worker started", std::move(line));
  worker.Run();
  services->webhooks->Stop();  // after the jobs in hand wrote their deliveries
  metrics.Stop();
  Log("info", "worker stopped");
  return 0;
}

}  // namespace

void AddWorkerCommand(CLI::App& app) {
  auto args = std::make_shared<WorkerArgs>();
  CLI::App* cmd = app.add_subcommand("worker", "Consume the job queue: generate and store images");
  cmd->add_option("--concurrency,-c", args->worker.concurrency, "Jobs at once")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  cmd->add_option("--metrics-port", args->metrics_port,
                  "Serve /metrics and /healthz on this port (0: any free port; default: off)")
      ->check(CLI::Range(0, 65535));
  cmd->add_option("--metrics-host", args->metrics_host, "Address for --metrics-port")
      ->capture_default_str();
  cmd->add_option("--visibility", args->worker.visibility_s,
                  "Seconds a received job stays hidden; renewed every third of it while working")
      ->check(CLI::Range(3, 43200))
      ->capture_default_str();
  cmd->add_option("--wait", args->worker.wait_s, "Long-poll wait per receive, seconds")
      ->check(CLI::Range(0, 20))
      ->capture_default_str();
  cmd->add_option("--max-attempts", args->worker.max_attempts,
                  "Receives after which a retryable failure is final (match the queue's "
                  "max_receives / maxReceiveCount)")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  cmd->add_option("--job-timeout", args->worker.job_timeout_s, "Deadline per job, seconds")
      ->check(CLI::Range(1, 86400))
      ->capture_default_str();
  cmd->add_option("--job-retention", args->config.job_retention_s,
                  "Seconds finished job records are kept [env IMAGEGEN_JOB_RETENTION]")
      ->check(CLI::Range(int64_t{1}, int64_t{10} * 365 * 86400))
      ->capture_default_str();
  cmd->add_flag("--drain", args->worker.drain, "Exit once the queue is empty");
  AddWebhookFlags(cmd, &args->config);
  AddCommonFlags(cmd, &args->config);
  cmd->callback([args] { SetExitCode(RunWorker(*args)); });
}

namespace {

// --- dead letters -------------------------------------------------------------------------

struct DeadLetterArgs {
  Config config = ConfigFromEnv();
  int limit = 100;
  std::string after;
  bool redrive = false;
  std::vector<std::string> ids;
};

int RunDeadLetters(DeadLetterArgs& args) {
  std::string path;
  SqliteQueueOptions options;
  if (auto s = ParseSqliteQueueUrl(args.config.queue, &path, &options); !s) {
    return ReportError(
        Error::Invalid("queue",
                       "dead-letters works on the embedded sqlite:// queue; for SQS use the "
                       "dead-letter queue's own tools (aws sqs start-message-move-task)"));
  }
  auto queue = OpenSqliteQueue(path, options);
  if (!queue.ok()) return ReportError(queue.error());
  if (args.redrive) {
    auto moved = (*queue)->Redrive(args.ids);
    if (!moved.ok()) return ReportError(moved.error());
    std::cout << nlohmann::json{{"redriven", moved.value()}}.dump() << std::endl;
    return 0;
  }
  auto dead = (*queue)->ListDeadLetters(args.limit, args.after);
  if (!dead.ok()) return ReportError(dead.error());
  for (const auto& d : dead.value()) {
    std::cout << nlohmann::json{{"id", d.id},
                                {"reason", d.reason},
                                {"receive_count", d.receive_count},
                                {"sent_ms", d.sent_ms},
                                {"dead_ms", d.dead_ms},
                                {"body", d.body}}
                     .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
              << std::endl;
  }
  return 0;
}

}  // namespace

void AddDeadLettersCommand(CLI::App& app) {
  auto args = std::make_shared<DeadLetterArgs>();
  CLI::App* cmd = app.add_subcommand(
      "dead-letters", "List (one JSON line each) or redrive the embedded queue's dead letters");
  cmd->add_option("--limit", args->limit, "Most to list")->check(CLI::Range(1, 1000));
  cmd->add_option("--after", args->after, "List those after this message id");
  cmd->add_flag("--redrive", args->redrive, "Move dead letters back to the queue");
  cmd->add_option("--id", args->ids, "With --redrive: only these message ids (repeatable)");
  AddCommonFlags(cmd, &args->config);
  cmd->callback([args] { SetExitCode(RunDeadLetters(*args)); });
}

}  // namespace imagegen
