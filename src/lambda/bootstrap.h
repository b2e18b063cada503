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
};

// Reads IMAGEGEN_API_KEYS / IMAGEGEN_API_KEYS_FILE like `serve`. Returns the exit code.
int RunBootstrap(const Config& config, const BootstrapOptions& options);

}  // namespace imagegen::lambda
