// imagegen lambda: the AWS Lambda custom runtime. main() runs it when AWS_LAMBDA_RUNTIME_API is
// set and there are no arguments, so the binary itself is the function's `bootstrap` (no shell
// hop on the cold-start path).
#include <cstdlib>
#include <memory>

#include "cli/command.h"
#include "lambda/bootstrap.h"

namespace imagegen {
namespace {

int EnvInt(const char* name, int fallback) {
  const char* value = std::getenv(name);
  return value == nullptr || *value == '\0' ? fallback : std::atoi(value);
}

struct LambdaArgs {
  Config config = ConfigFromEnv();
  lambda::BootstrapOptions options;
};

RegisterCommand registration(70, [](CLI::App& app) {
  auto args = std::make_shared<LambdaArgs>();
  const char* runtime_api = std::getenv("AWS_LAMBDA_RUNTIME_API");
  args->options.runtime_api = runtime_api == nullptr ? "" : runtime_api;
  args->options.deadline_margin_ms = EnvInt("IMAGEGEN_DEADLINE_MARGIN_MS", 500);
  args->options.api_gateway_timeout_ms = EnvInt("IMAGEGEN_API_GATEWAY_TIMEOUT_MS", 29000);
  args->options.max_attempts = EnvInt("IMAGEGEN_MAX_ATTEMPTS", 5);
  CLI::App* cmd =
      app.add_subcommand("lambda",
                         "Run as an AWS Lambda bootstrap: serve the Runtime API loop (API Gateway, "
                         "Function URL and SQS events)");
  cmd->add_option("--runtime-api", args->options.runtime_api,
                  "Runtime API host:port [env AWS_LAMBDA_RUNTIME_API]");
  cmd->add_option("--deadline-margin-ms", args->options.deadline_margin_ms,
                  "Time kept back from each invocation's deadline to answer "
                  "[env IMAGEGEN_DEADLINE_MARGIN_MS]")
      ->check(CLI::Range(0, 60000))
      ->capture_default_str();
  cmd->add_option("--api-gateway-timeout-ms", args->options.api_gateway_timeout_ms,
                  "Stop API Gateway requests before the gateway's own timeout; 0: off "
                  "[env IMAGEGEN_API_GATEWAY_TIMEOUT_MS]")
      ->check(CLI::Range(0, 900000))
      ->capture_default_str();
  cmd->add_option("--max-attempts", args->options.max_attempts,
                  "SQS records: receives after which a retryable failure is final (match the "
                  "queue's maxReceiveCount) [env IMAGEGEN_MAX_ATTEMPTS]")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  cmd->add_option("--max-invocations", args->options.max_invocations,
                  "Exit after this many invocations (0: never)")
      ->check(CLI::Range(0, 1 << 30));
  AddCommonFlags(cmd, &args->config);
  cmd->callback([args] { SetExitCode(lambda::RunBootstrap(args->config, args->options)); });
});

}  // namespace
}  // namespace imagegen
