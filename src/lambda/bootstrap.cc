#include "lambda/bootstrap.h"

#include <curl/curl.h>

#include <cstdlib>
#include <iostream>
#include <nlohmann/json.hpp>

#include "http/api.h"
#include "jobs/job_runner.h"
#include "jobs/job_store.h"
#include "lambda/emf.h"
#include "lambda/handler.h"
#include "lambda/runtime.h"

namespace imagegen::lambda {
namespace {

using json = nlohmann::json;

std::string Env(const char* name) {
  const char* value = std::getenv(name);
  return value == nullptr ? "" : value;
}

int InitFailed(RuntimeApi& api, const Error& error) {
  std::string type = "imagegen.InitError." + std::string(ErrorCodeName(error.code));
  std::cerr << json{{"level", "error"},
                    {"msg", "init failed"},
                    {"error_type", type},
                    {"error", error.message}}
                   .dump(-1, ' ', false, json::error_handler_t::replace)
            << std::endl;
  (void)api.PostInitError(type, error.message);
  return 1;
}

}  // namespace

int RunBootstrap(const Config& config, const BootstrapOptions& options) {
  if (options.runtime_api.empty()) {
    std::cerr << "imagegen: lambda: AWS_LAMBDA_RUNTIME_API is not set (run this as the "
                 "bootstrap of a Lambda function, or under the Runtime Interface Emulator)"
              << std::endl;
    return 2;
  }
  curl_global_init(CURL_GLOBAL_DEFAULT);
  auto runtime = MakeCurlRuntimeApi(options.runtime_api);

  auto base = MakePipeline(config);
  if (!base.ok()) return InitFailed(*runtime, base.error());
  // Re-wrap the configured pipeline so every generation also writes its EMF line. The aliasing
  // shared_ptrs keep `base` (which owns the model and the store) alive.
  std::shared_ptr<Pipeline> base_pipeline = base.value();
  auto emf = std::make_shared<EmfWriter>(&std::cout);
  auto model = std::make_shared<MeteredModel>(
      std::shared_ptr<ImageModel>(base_pipeline, &base_pipeline->model()), emf,
      [] { return LambdaHandler::CurrentProperties(); });
  auto pipeline = std::make_shared<Pipeline>(
      model, std::shared_ptr<ObjectStore>(base_pipeline, &base_pipeline->store()),
      base_pipeline->options());

  auto keys = LoadApiKeys(Env("IMAGEGEN_API_KEYS"), Env("IMAGEGEN_API_KEYS_FILE"));
  if (!keys.ok()) return InitFailed(*runtime, keys.error());
  ApiOptions api_options;
  api_options.api_keys = keys.value();
  // One invocation at a time per sandbox: one slot, nobody waiting.
  api_options.max_concurrent = 1;
  api_options.max_waiting = 0;
  api_options.generate_timeout_s = 900;  // Lambda's own maximum; the invocation deadline rules
  auto api = std::make_shared<Api>(pipeline, api_options);

  HandlerOptions handler_options;
  handler_options.api_gateway_timeout_ms = options.api_gateway_timeout_ms;
  handler_options.deadline_margin_ms = options.deadline_margin_ms;
  JobStoreOptions job_store_options;
  job_store_options.prefix = pipeline->options().key_prefix + "jobs/";
  auto job_store = std::make_shared<JobStore>(pipeline->store(), job_store_options);
  JobRunnerOptions runner_options;
  runner_options.max_attempts = options.max_attempts;
  runner_options.worker_id = "lambda:" + Env("AWS_LAMBDA_LOG_STREAM_NAME");
  auto jobs = std::make_shared<JobRunner>(pipeline, job_store, runner_options);
  LambdaHandler handler(api, jobs, emf, handler_options);

  std::cerr << json{{"level", "info"},
                    {"msg", "lambda runtime ready"},
                    {"model", pipeline->model().Name()},
                    {"store", pipeline->store().Uri("")},
                    {"function", Env("AWS_LAMBDA_FUNCTION_NAME")},
                    {"auth", api_options.api_keys.empty() ? "off" : "api-keys"}}
                   .dump(-1, ' ', false, json::error_handler_t::replace)
            << std::endl;

  LoopOptions loop;
  loop.deadline_margin_ms = options.deadline_margin_ms;
  loop.max_invocations = options.max_invocations;
  return RunLoop(
      *runtime,
      [&handler](const std::string& event, const Invocation& invocation) {
        return handler.Handle(event, invocation);
      },
      loop);
}

}  // namespace imagegen::lambda
