// `imagegen lambda`: the process that Lambda starts as `bootstrap` on provided.al2023.
// Init (once per sandbox, before the first event): the door's services from the composition
// root (cli/lambda_cmd.cc calls app::BuildServices through `make_handler`), then the Runtime API
// loop. An init failure is reported to /runtime/init/error and the process exits 1, so Lambda
// shows the reason instead of a timeout.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "lambda/emf.h"
#include "lambda/handler.h"

namespace imagegen::lambda {

struct BootstrapOptions {
  std::string runtime_api;  // host:port; AWS_LAMBDA_RUNTIME_API
  int deadline_margin_ms = 500;
  int max_invocations = 0;  // 0: serve forever
};

// Builds the handler; `emf` is the writer its metered model and metrics must use.
using HandlerFactory =
    std::function<Result<std::unique_ptr<LambdaHandler>>(std::shared_ptr<EmfWriter> emf)>;

// Returns the exit code.
int RunBootstrap(const BootstrapOptions& options, const HandlerFactory& make_handler);

}  // namespace imagegen::lambda
