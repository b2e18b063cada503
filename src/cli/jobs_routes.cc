// POST /jobs, GET /jobs, GET /jobs/{id}, DELETE /jobs/{id}: the asynchronous door, attached to
// `imagegen serve` as a ServeExtension (src/jobs/job_service.h has the logic).
//
// Environment: IMAGEGEN_JOB_RETENTION (seconds finished records are kept; default 7 days) and
// IMAGEGEN_SERVE_WORKERS (N > 0: also run N in-process workers on the same queue, so a single
// `imagegen serve` completes its own jobs; default 0: run `imagegen worker` beside it).
#include <cstdlib>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>

#include "cli/signals.h"
#include "core/request_json.h"
#include "jobs/job_service.h"
#include "jobs/worker.h"

namespace imagegen {
namespace {

using json = nlohmann::json;

std::string Dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

// The record as clients see it: absolute status URL, and HTTP URLs for stored images.
json JobView(const JobRecord& record, const HttpRequest& request) {
  json j = JobRecordToJson(record);
  j.erase("request_hash");
  j.erase("enqueued");
  j["status_url"] = request.base_url + "/jobs/" + record.job_id;
  if (j.contains("result") && j["result"].is_object()) {
    json& result = j["result"];
    if (result.contains("key")) result["url"] = Api::ImageUrl(request, result["key"]);
    if (result.contains("images") && result["images"].is_array()) {
      for (auto& image : result["images"]) {
        if (image.contains("key")) image["url"] = Api::ImageUrl(request, image["key"]);
      }
    }
  }
  return j;
}

HttpResponse Respond(int status, const json& body, const std::string& route) {
  HttpResponse response = JsonResponse(status, Dump(body));
  response.route = route;
  return response;
}

HttpResponse Fail(const Error& error, const std::string& route) {
  HttpResponse response = ErrorResponse(error);
  response.route = route;
  return response;
}

int ParseLimit(const std::string& text) {
  if (text.empty()) return 20;
  if (text.size() > 4 || text.find_first_not_of("0123456789") != std::string::npos) return -1;
  return std::stoi(text);
}

void AttachJobs(Api& api, const Config& config) {
  JobStoreOptions options;
  options.prefix = api.pipeline().options().key_prefix + "jobs/";
  options.retention_s = JobRetentionFromEnv();
  // The Api (which owns the router and so these handlers) holds the pipeline and its store
  // for the life of the server; the shared pointers below live as long as the handlers.
  auto jobs = std::make_shared<JobStore>(api.pipeline().store(), options);
  auto queue_url = config;
  auto queue_mu = std::make_shared<std::mutex>();
  auto queue_holder = std::make_shared<std::shared_ptr<JobQueue>>();
  QueueFactory factory = [queue_url, queue_mu,
                          queue_holder]() -> Result<std::shared_ptr<JobQueue>> {
    std::lock_guard<std::mutex> lock(*queue_mu);
    if (*queue_holder) return *queue_holder;
    auto queue = MakeJobQueue(queue_url);
    if (!queue.ok()) return queue.error();
    *queue_holder = std::shared_ptr<JobQueue>(std::move(queue.value()));
    return *queue_holder;
  };
  auto service = std::make_shared<JobService>(api.pipeline(), *jobs, factory);

  Router& router = api.router();
  router.Add("POST", "/jobs", [service, jobs](HttpRequest& request) {
    const std::string route = "/jobs";
    if (auto s = CheckJsonContentType(request); !s) return Fail(s.error(), route);
    auto body = ParseJsonObject(request.body);
    if (!body.ok()) return Fail(body.error(), route);
    auto generate = ParseGenerateJson(body.value());
    if (!generate.ok()) return Fail(generate.error(), route);
    // Idempotency keys are per caller: scope them by the credential presented (if any).
    std::string scope = request.Header("x-api-key") + "\n" + request.Header("authorization");
    auto submitted = service->Submit(generate.value(), scope, request.Header("idempotency-key"));
    if (!submitted.ok()) return Fail(submitted.error(), route);
    HttpResponse response = Respond(202, JobView(submitted->record, request), route);
    response.SetHeader("Location", "/jobs/" + submitted->record.job_id);
    if (!submitted->created) response.SetHeader("Idempotent-Replayed", "true");
    return response;
  });
  router.Add("GET", "/jobs", [service, jobs](HttpRequest& request) {
    const std::string route = "/jobs";
    int limit = ParseLimit(request.Query("limit"));
    if (limit < 1 || limit > 100) {
      return Fail(Error::Invalid("limit", "limit must be between 1 and 100"), route);
    }
    auto page = service->List(limit, request.Query("cursor"));
    if (!page.ok()) return Fail(page.error(), route);
    json list = json::array();
    for (const auto& record : page->jobs) list.push_back(JobView(record, request));
    return Respond(
        200,
        {{"jobs", list},
         {"next_cursor", page->next_cursor.empty() ? json(nullptr) : json(page->next_cursor)}},
        route);
  });
  router.Add("GET", "/jobs/{id}", [service, jobs](HttpRequest& request) {
    const std::string route = "/jobs/{id}";
    auto record = service->Get(request.path_params["id"]);
    if (!record.ok()) return Fail(record.error(), route);
    HttpResponse response = Respond(200, JobView(record.value(), request), route);
    if (!IsFinished(record->status)) response.SetHeader("Retry-After", "1");
    return response;
  });
  router.Add("DELETE", "/jobs/{id}", [service, jobs](HttpRequest& request) {
    const std::string route = "/jobs/{id}";
    auto record = service->Cancel(request.path_params["id"]);
    if (!record.ok()) return Fail(record.error(), route);
    return Respond(200, JobView(record.value(), request), route);
  });

  const char* workers_env = std::getenv("IMAGEGEN_SERVE_WORKERS");
  int workers = workers_env == nullptr ? 0 : std::atoi(workers_env);
  if (workers > 0) {
    auto queue = factory();
    if (!queue.ok()) {
      std::cerr << Dump({{"level", "error"},
                         {"msg", "in-process workers not started"},
                         {"error", queue.error().message}})
                << std::endl;
      return;
    }
    WorkerOptions worker_options;
    worker_options.concurrency = workers;
    // The pipeline is shared with the HTTP door: an aliasing pointer, owned by the Api.
    std::shared_ptr<Pipeline> pipeline(std::shared_ptr<Pipeline>(), &api.pipeline());
    auto worker = std::make_shared<Worker>(pipeline, queue.value(), jobs, worker_options);
    auto thread = std::make_shared<std::thread>([worker] { worker->Run(); });
    // Runs before `serve` stops its listener (extensions attach first): in-flight jobs end,
    // then the server drains its requests.
    OnShutdown([worker, thread] {
      worker->Stop();
      if (thread->joinable()) thread->join();
    });
  }
}

struct Registration {
  Registration() { ServeExtensions().push_back(AttachJobs); }
} registration;

}  // namespace
}  // namespace imagegen
