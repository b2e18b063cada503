#include "app/services.h"

#include <mutex>
#include <optional>

#include "jobs/jobs_http.h"

namespace imagegen {
namespace {

// Tries again before each generation until the store's location is known; an error, once
// seen, is permanent (the configuration has to change).
class LocationCheckedModel final : public ModelDecorator {
 public:
  LocationCheckedModel(std::shared_ptr<ImageModel> model, std::shared_ptr<ObjectStore> store)
      : ModelDecorator(std::move(model)), store_(std::move(store)) {}
  Result<ModelOutput> Generate(const ValidRequest& request, const GenerateContext& ctx) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (error_) return *error_;
      if (!confirmed_) {
        auto checked = store_->CheckLocation();
        if (!checked.ok()) {
          error_ = checked.error();
          return *error_;
        }
        confirmed_ = checked.value();
      }
    }
    return inner().Generate(request, ctx);
  }

 private:
  std::shared_ptr<ObjectStore> store_;
  std::mutex mu_;
  bool confirmed_ = false;      // GUARDED_BY(mu_)
  std::optional<Error> error_;  // GUARDED_BY(mu_)
};

Result<std::shared_ptr<Pipeline>> BuildPipeline(const Config& config,
                                                std::shared_ptr<ObjectStore> store,
                                                const ServiceOptions& options) {
  auto prefix = NormalizeKeyPrefix(config.key_prefix);
  if (!prefix.ok()) return prefix.error();
  auto made_model = MakeImageModel(config.model, config);
  if (!made_model.ok()) return made_model.error();
  std::shared_ptr<ImageModel> model = std::move(made_model.value());
  // The store's location is checked before the first (paid) generation, not here: a bucket in
  // another region would only fail at Put, after the model was paid for, but a HeadBucket at
  // start-up would double a Lambda's init time (bench/lambda) for every cold start.
  model = std::make_shared<LocationCheckedModel>(model, store);
  if (options.wrap_model) model = options.wrap_model(std::move(model));
  PipelineOptions pipeline_options{prefix.value(), config.presign_expiry_s};
  return std::make_shared<Pipeline>(std::move(model), std::move(store), pipeline_options);
}

Result<std::shared_ptr<WebhookOutbox>> BuildWebhooks(const Config& config, ObjectStore& store,
                                                     const std::string& key_prefix) {
  WebhookOptions options;
  if (!config.webhook_secret.empty()) {
    auto key = DecodeWebhookSecret(config.webhook_secret, "IMAGEGEN_WEBHOOK_SECRET");
    if (!key.ok()) return key.error();
    options.key = key.value();
  }
  auto policy = WebhookAddressPolicy::Parse(config.webhook_allow, "IMAGEGEN_WEBHOOK_ALLOW");
  if (!policy.ok()) return policy.error();
  options.policy = policy.value();
  options.prefix = key_prefix + "webhooks/";
  options.retry_base_ms = config.webhook_retry_base_ms;
  options.max_attempts = config.webhook_max_attempts;
  options.max_age_ms = int64_t{config.webhook_max_age_s} * 1000;
  // A process's own entries wake its deliverer at once; the poll only finds other processes'
  // (a crashed one's, or a worker's elsewhere on S3), so it can be slow: on S3 every poll is
  // a ListObjectsV2 (about 43k a day per process at 2 s).
  options.poll_ms = 2000;
  return std::make_shared<WebhookOutbox>(store, options, aws::DefaultTransport());
}

}  // namespace

QueueFactory LazyQueue(const Config& config) {
  auto mu = std::make_shared<std::mutex>();
  auto holder = std::make_shared<std::shared_ptr<JobQueue>>();
  return [config, mu, holder]() -> Result<std::shared_ptr<JobQueue>> {
    std::lock_guard<std::mutex> lock(*mu);
    if (*holder) return *holder;
    auto queue = MakeJobQueue(config);
    if (!queue.ok()) return queue.error();
    *holder = std::shared_ptr<JobQueue>(std::move(queue.value()));
    return *holder;
  };
}

Result<Services> BuildServices(const Config& config, const ServiceOptions& options) {
  if (config.env_error) return *config.env_error;
  Services services;
  auto store = MakeObjectStore(config);
  if (!store.ok()) return store.error();
  services.store = std::move(store.value());
  auto pipeline = BuildPipeline(config, services.store, options);
  if (!pipeline.ok()) return pipeline.error();
  services.pipeline = pipeline.value();

  const std::string& key_prefix = services.pipeline->options().key_prefix;
  auto webhooks = BuildWebhooks(config, *services.store, key_prefix);
  if (!webhooks.ok()) return webhooks.error();
  services.webhooks = webhooks.value();
  JobStoreOptions job_options;
  job_options.prefix = JobsPrefix(key_prefix);
  job_options.retention_s = config.job_retention_s;
  job_options.on_settled = [outbox = services.webhooks](const JobRecord& record) {
    return outbox->Enqueue(record, WebhookEvent::kCompleted);
  };
  services.jobs = std::make_shared<JobStore>(*services.store, job_options);
  services.queue = LazyQueue(config);
  JobServiceOptions job_service_options{services.webhooks, config.max_jobs_per_key};
  services.job_service = std::make_shared<JobService>(services.pipeline, services.jobs,
                                                      services.queue, job_service_options);

  ApiOptions api_options = options.api;
  auto keys = LoadApiKeys(config.api_keys, config.api_keys_file);
  if (!keys.ok()) return keys.error();
  api_options.api_keys = keys.value();
  api_options.cors_origins = config.cors_origins;
  api_options.rate_limit.rate_per_s = config.rate_limit_per_s;
  api_options.rate_limit.burst = config.rate_limit_burst;
  JobEventsOptions events_options;
  events_options.max_streams = config.events_max_streams;
  events_options.max_stream_s = config.events_max_stream_s;
  events_options.heartbeat_s = config.events_heartbeat_s;
  services.job_events = std::make_shared<JobEvents>(services.job_service, events_options);
  std::vector<RouteSpec> routes = JobRoutes(services.job_service);
  for (auto& route : JobEventRoutes(services.job_events)) routes.push_back(std::move(route));
  services.api = std::make_shared<Api>(services.pipeline, api_options, std::move(routes));
  return services;
}

}  // namespace imagegen
