// imagegen serve: the HTTP service. SIGTERM/SIGINT stop accepting and let in-flight requests end.
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "app/services.h"
#include "cli/command.h"
#include "cli/signals.h"
#include "core/log.h"
#include "http/server.h"
#include "jobs/worker.h"

namespace imagegen {
namespace {

struct ServeArgs {
  Config config = ConfigFromEnv();
  ServerOptions server;
  ApiOptions api;
};

// IMAGEGEN_SERVE_WORKERS > 0: workers in this process on the same queue, store and pipeline,
// so one `imagegen serve` completes its own jobs. Stopped (jobs in hand finished) before the
// listener drains its requests.
void StartInProcessWorkers(const Services& services, int workers) {
  auto queue = services.queue();
  if (!queue.ok()) {
    Log("error", "in-process workers not started", {{"error", queue.error().message}});
    return;
  }
  WorkerOptions options;
  options.concurrency = workers;
  options.webhooks = services.webhooks;
  auto worker = std::make_shared<Worker>(services.pipeline, queue.value(), services.jobs, options);
  auto thread = std::make_shared<std::thread>([worker] { worker->Run(); });
  OnShutdown([worker, thread] {
    worker->Stop();
    if (thread->joinable()) thread->join();
  });
}

int RunServe(ServeArgs& args) {
  ServiceOptions options;
  options.api = args.api;
  auto services = BuildServices(args.config, options);
  if (!services.ok()) return ReportError(services.error());
  if (args.config.serve_workers > 0) StartInProcessWorkers(*services, args.config.serve_workers);
  // Deliveries pending in the store (this server's in-process workers', or a crashed
  // process's) go out from here too.
  auto webhooks = services->webhooks;
  webhooks->Start();
  OnShutdown([webhooks] { webhooks->Stop(); });
  auto api = services->api;
  args.server.error_response = [api](const Error& error, const std::string& path) {
    return api->TransportError(error, path);
  };
  HttpServer server([api](HttpRequest& request) { return api->Handle(request); }, args.server);
  OnShutdown([&server] { server.Stop(); });
  // After the in-process workers (their jobs' final events still reach open streams): the
  // streams end, so none holds the drain; clients reconnect with Last-Event-ID.
  OnShutdown([events = services->job_events] { events->Shutdown(); });
  Status status = server.Run([&](int port) {
    Log("info", "listening",
        {{"host", args.server.host},
         {"port", port},
         {"model", services->pipeline->model().Name()},
         {"store", services->store->Uri("")},
         {"auth", services->api->options().api_keys.empty() ? "off" : "api-keys"}});
  });
  if (!status.ok()) return ReportError(status.error());
  Log("info", "stopped");
  return 0;
}

}  // namespace

void AddServeCommand(CLI::App& app) {
  auto args = std::make_shared<ServeArgs>();
  CLI::App* cmd = app.add_subcommand("serve", "Run the HTTP service");
  cmd->add_option("--host", args->server.host, "Address to listen on")->capture_default_str();
  cmd->add_option("--port", args->server.port, "Port (0: any free port)")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
  cmd->add_option("--max-body", args->server.max_body_bytes,
                  "Largest request body in bytes, raw or decoded")
      ->check(CLI::Range(size_t{0}, size_t{1} << 30))
      ->capture_default_str();
  cmd->add_option("--public-url", args->server.public_url,
                  "Base of absolute links, e.g. https://images.example.com (behind a proxy) "
                  "[env IMAGEGEN_PUBLIC_URL]")
      ->envname("IMAGEGEN_PUBLIC_URL");
  cmd->add_flag("--trust-proxy", args->server.trust_forwarded,
                "Take the links' scheme and host from X-Forwarded-Proto/-Host (only behind "
                "your own proxy)");
  cmd->add_option("--drain-timeout", args->server.drain_timeout_s,
                  "On SIGTERM, seconds in-flight requests may still finish")
      ->check(CLI::Range(0, 3600))
      ->capture_default_str();
  cmd->add_option("--max-connections", args->server.max_connections,
                  "Open connections at most; more are closed when accepted")
      ->check(CLI::Range(1, 1000000))
      ->capture_default_str();
  cmd->add_option("--max-concurrent", args->api.max_concurrent, "Generations at once")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  cmd->add_option("--max-waiting", args->api.max_waiting, "Requests waiting for a slot before 503")
      ->check(CLI::Range(0, 100000))
      ->capture_default_str();
  cmd->add_option("--timeout", args->api.generate_timeout_s,
                  "Deadline of a synchronous generation, seconds")
      ->check(CLI::Range(1, 3600))
      ->capture_default_str();
  cmd->add_option(
      "--api-keys-file", args->config.api_keys_file,
      "File with one API key per line [env IMAGEGEN_API_KEYS_FILE; also IMAGEGEN_API_KEYS=k1,k2]");
  cmd->add_option("--rate-limit", args->config.rate_limit_per_s,
                  "Generation requests per second per API key (client address without keys); "
                  "0: off [env IMAGEGEN_RATE_LIMIT]")
      ->check(CLI::Range(0.0, 1e6));
  cmd->add_option("--rate-burst", args->config.rate_limit_burst,
                  "Requests a key may make at once before --rate-limit applies (0: the rate, "
                  "at least 1) [env IMAGEGEN_RATE_BURST]")
      ->check(CLI::Range(0, 1000000));
  cmd->add_option("--max-jobs-per-key", args->config.max_jobs_per_key,
                  "Queued + running jobs per API key submitted here; 0: no limit "
                  "[env IMAGEGEN_MAX_JOBS_PER_KEY]")
      ->check(CLI::Range(0, 1000000));
  AddWebhookFlags(cmd, &args->config);
  cmd->add_option("--cors-origin", args->config.cors_origins,
                  "Origin allowed to call from a browser (repeatable) [env IMAGEGEN_CORS_ORIGINS]");
  AddCommonFlags(cmd, &args->config);
  cmd->callback([args] { SetExitCode(RunServe(*args)); });
}

}  // namespace imagegen
