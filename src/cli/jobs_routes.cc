// Attaches the jobs routes (src/jobs/jobs_http.h) to `imagegen serve` as a ServeExtension.
//
// Environment: IMAGEGEN_JOB_RETENTION (seconds finished records are kept; default 7 days) and
// IMAGEGEN_SERVE_WORKERS (N > 0: also run N in-process workers on the same queue, so a single
// `imagegen serve` completes its own jobs; default 0: run `imagegen worker` beside it).
#include <cstdlib>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>

#include "cli/signals.h"
#include "jobs/jobs_http.h"
#include "jobs/worker.h"

namespace imagegen {
namespace {

void StartInProcessWorkers(Api& api, const JobRoutes& routes, int workers) {
  auto queue = routes.queue();
  if (!queue.ok()) {
    std::cerr << nlohmann::json{{"level", "error"},
                                {"msg", "in-process workers not started"},
                                {"error", queue.error().message}}
                     .dump()
              << std::endl;
    return;
  }
  WorkerOptions options;
  options.concurrency = workers;
  // The pipeline is the HTTP door's own (owned by the Api): a non-owning aliasing pointer.
  std::shared_ptr<Pipeline> pipeline(std::shared_ptr<Pipeline>(), &api.pipeline());
  auto worker = std::make_shared<Worker>(pipeline, queue.value(), routes.jobs, options);
  auto thread = std::make_shared<std::thread>([worker] { worker->Run(); });
  // Runs before `serve` stops its listener (extensions attach first): the jobs in hand end,
  // then the server drains its requests.
  OnShutdown([worker, thread] {
    worker->Stop();
    if (thread->joinable()) thread->join();
  });
}

void AttachJobs(Api& api, const Config& config) {
  JobRoutes routes = AttachJobRoutes(api, config);
  const char* env = std::getenv("IMAGEGEN_SERVE_WORKERS");
  int workers = env == nullptr ? 0 : std::atoi(env);
  if (workers > 0) StartInProcessWorkers(api, routes, std::min(workers, 256));
}

struct Registration {
  Registration() { ServeExtensions().push_back(AttachJobs); }
} registration;

}  // namespace
}  // namespace imagegen
