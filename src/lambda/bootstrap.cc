#include "lambda/bootstrap.h"

#include <curl/curl.h>

#include <cstdlib>
#include <iostream>
#include <nlohmann/json.hpp>

#include "core/log.h"
#include "lambda/runtime.h"

namespace imagegen::lambda {
namespace {

using json = nlohmann::json;

int InitFailed(RuntimeApi& api, const Error& error) {
  std::string type = "imagegen.InitError." + std::string(ErrorCodeName(error.code));
  Log("error", "init failed", {{"error_type", type}, {"error", error.message}});
  (void)api.PostInitError(type, error.message);
  return 1;
}

}  // namespace

int RunBootstrap(const BootstrapOptions& options, const HandlerFactory& make_handler) {
  if (options.runtime_api.empty()) {
    std::cerr << "imagegen: lambda: AWS_LAMBDA_RUNTIME_API is not set (run this as the "
                 "bootstrap of a Lambda function, or under the Runtime Interface Emulator)"
              << std::endl;
    return 2;
  }
  curl_global_init(CURL_GLOBAL_DEFAULT);
  auto runtime = MakeCurlRuntimeApi(options.runtime_api);
  auto handler = make_handler(std::make_shared<EmfWriter>(&std::cout));
  if (!handler.ok()) return InitFailed(*runtime, handler.error());

  LoopOptions loop;
  loop.deadline_margin_ms = options.deadline_margin_ms;
  loop.max_invocations = options.max_invocations;
  LambdaHandler& lambda_handler = *handler.value();
  return RunLoop(
      *runtime,
      [&lambda_handler](const std::string& event, const Invocation& invocation) {
        return lambda_handler.Handle(event, invocation);
      },
      loop);
}

}  // namespace imagegen::lambda
