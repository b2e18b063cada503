// The composition root: every service imagegen runs, built once from the configuration. Every
// door (CLI generate / submit / worker / serve, the Lambda API Gateway and SQS handlers) gets
// its objects from BuildServices, so they all serve the same system: the same pipeline, the same
// job records under the same prefix, the same Api with every route.
#pragma once

#include <functional>
#include <memory>

#include "app/config.h"
#include "http/api.h"
#include "jobs/job_events.h"
#include "jobs/job_service.h"
#include "jobs/job_store.h"
#include "jobs/webhook.h"

namespace imagegen {

struct ServiceOptions {
  // The Api's limits (concurrency, waiting, timeout). Keys and CORS origins come from the
  // configuration (Config::api_keys, api_keys_file, cors_origins).
  ApiOptions api;
  // Wraps the configured model before the pipeline is built (the Lambda door's EMF metering).
  std::function<std::shared_ptr<ImageModel>(std::shared_ptr<ImageModel>)> wrap_model;
};

// Owns everything it hands out; members refer to each other (the job store to the pipeline's
// object store), so keep the Services alive while any of them is in use.
struct Services {
  std::shared_ptr<ObjectStore> store;
  std::shared_ptr<Pipeline> pipeline;
  std::shared_ptr<JobStore> jobs;  // records under JobsPrefix(key prefix)
  // The configured queue, opened once on first use (a server that never sees POST /jobs never
  // touches it); a failed open is retried by the next call.
  QueueFactory queue;
  std::shared_ptr<JobService> job_service;
  std::shared_ptr<JobEvents> job_events;  // GET /jobs/{id}/events; Shutdown() when draining
  // Job webhooks' durable outbox under <key prefix>webhooks/. Doors that run jobs hand it to
  // their runners and Start() its deliverer (serve, worker, the Lambda bootstrap).
  std::shared_ptr<WebhookOutbox> webhooks;
  std::shared_ptr<Api> api;  // generation, images, jobs, health, metrics, document, page
};

// The configured queue, opened once on first use and shared by every caller of the factory. For
// a door that only enqueues (`imagegen submit`, the seed's queue client): no model, no store.
QueueFactory LazyQueue(const Config& config);

// Fails (with the error taxonomy) on a bad configuration, an unknown model, an unreadable API
// keys file or a store in another region. Never opens the queue.
Result<Services> BuildServices(const Config& config, const ServiceOptions& options = {});

}  // namespace imagegen
