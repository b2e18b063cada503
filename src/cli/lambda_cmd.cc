// imagegen lambda: the AWS Lambda custom runtime. main() runs it when AWS_LAMBDA_RUNTIME_API is
// set and there are no arguments, so the binary itself is the function's `bootstrap` (no shell
// hop on the cold-start path).
#include <memory>

#include "app/services.h"
#include "cli/command.h"
#include "core/log.h"
#include "jobs/job_runner.h"
#include "lambda/bootstrap.h"

namespace imagegen {
namespace {

struct LambdaArgs {
  Config config = ConfigFromEnv();
  lambda::BootstrapOptions options;
};

// The door's services: the composition root's, with the model metered into EMF lines, one
// generation at a time per sandbox, and the job runner for SQS records.
Result<std::unique_ptr<lambda::LambdaHandler>> MakeHandler(const Config& config,
                                                           std::shared_ptr<lambda::EmfWriter> emf) {
  ServiceOptions options;
  options.api.max_concurrent = 1;        // one invocation at a time per sandbox: one slot,
  options.api.max_waiting = 0;           // nobody waiting
  options.api.generate_timeout_s = 900;  // Lambda's own maximum; the invocation deadline rules
  options.wrap_model = [emf](std::shared_ptr<ImageModel> model) -> std::shared_ptr<ImageModel> {
    return std::make_shared<lambda::MeteredModel>(
        std::move(model), emf, [] { return lambda::LambdaHandler::CurrentProperties(); });
  };
  auto services = BuildServices(config, options);
  if (!services.ok()) return services.error();
  JobRunnerOptions runner_options;
  runner_options.max_attempts = config.max_attempts;
  runner_options.worker_id = "lambda:" + config.lambda_log_stream;
  // Deliveries go out while the sandbox runs (it is frozen between invocations); any serve or
  // worker on the same store delivers what is left.
  runner_options.webhooks = services->webhooks;
  services->webhooks->Start();
  auto runner = std::make_shared<JobRunner>(services->pipeline, services->jobs, runner_options);
  lambda::HandlerOptions handler_options;
  handler_options.api_gateway_timeout_ms = config.lambda_api_gateway_timeout_ms;
  handler_options.deadline_margin_ms = config.lambda_deadline_margin_ms;
  Log("info", "lambda runtime ready",
      {{"model", services->pipeline->model().Name()},
       {"store", services->store->Uri("")},
       {"function", config.lambda_function_name},
       {"auth", config.api_keys.empty() && config.api_keys_file.empty() ? "off" : "api-keys"}});
  // The handler holds what it uses; the rest of Services (store, job service) is held by them.
  return std::make_unique<lambda::LambdaHandler>(services->pipeline, services->api, runner, emf,
                                                 handler_options);
}

}  // namespace

void AddLambdaCommand(CLI::App& app) {
  auto args = std::make_shared<LambdaArgs>();
  args->options.runtime_api = args->config.lambda_runtime_api;
  args->options.deadline_margin_ms = args->config.lambda_deadline_margin_ms;
  CLI::App* cmd =
      app.add_subcommand("lambda",
                         "Run as an AWS Lambda bootstrap: serve the Runtime API loop (API Gateway, "
                         "Function URL and SQS events)");
  cmd->add_option("--runtime-api", args->options.runtime_api,
                  "Runtime API host:port [env AWS_LAMBDA_RUNTIME_API]");
  cmd->add_option("--deadline-margin-ms", args->config.lambda_deadline_margin_ms,
                  "Time kept back from each invocation's deadline to answer "
                  "[env IMAGEGEN_DEADLINE_MARGIN_MS]")
      ->check(CLI::Range(0, 60000))
      ->capture_default_str();
  cmd->add_option("--api-gateway-timeout-ms", args->config.lambda_api_gateway_timeout_ms,
                  "Stop API Gateway requests before the gateway's own timeout; 0: off "
                  "[env IMAGEGEN_API_GATEWAY_TIMEOUT_MS]")
      ->check(CLI::Range(0, 900000))
      ->capture_default_str();
  cmd->add_option("--max-attempts", args->config.max_attempts,
                  "SQS records: receives after which a retryable failure is final (match the "
                  "queue's maxReceiveCount) [env IMAGEGEN_MAX_ATTEMPTS]")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  cmd->add_option("--max-invocations", args->options.max_invocations,
                  "Exit after this many invocations (0: never)")
      ->check(CLI::Range(0, 1 << 30));
  AddCommonFlags(cmd, &args->config);
  cmd->callback([args] {
    args->options.deadline_margin_ms = args->config.lambda_deadline_margin_ms;
    SetExitCode(lambda::RunBootstrap(args->options, [args](std::shared_ptr<lambda::EmfWriter> emf) {
      return MakeHandler(args->config, std::move(emf));
    }));
  });
}

}  // namespace imagegen
