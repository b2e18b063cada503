// `imagegen lambda`: the process that Lambda starts as `bootstrap` on provided.al2023.
// Init (once per sandbox, before the first event): the pipeline from the configuration (model
// loaded, store and credentials resolved), the API with the same handlers as `imagegen serve`.
// Then the Runtime API loop. An init failure is reported to /runtime/init/error, and the
// process exits 1, so Lambda shows the reason instead of a timeout.
#pragma once

#include <string>

#include "app/config.h"

namespace imagegen::lambda {

struct BootstrapOptions {
  std::string runtime_api;  // host:port; AWS_LAMBDA_RUNTIME_API
  int deadline_margin_ms = 500;
  int api_gateway_timeout_ms = 29000;
  int max_invocations = 0;  // 0: serve forever
  // SQS records: a retryable failure on this receive count is recorded as final (match the
  // queue's maxReceiveCount, after which the redrive moves the message to the DLQ).
  int max_attempts = 5;
};

// Reads IMAGEGEN_API_KEYS / IMAGEGEN_API_KEYS_FILE like `serve`. Returns the exit code.
int RunBootstrap(const Config& config, const BootstrapOptions& options);

}  // namespace imagegen::lambda
