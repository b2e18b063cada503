// imagegen serve: the HTTP service. SIGTERM/SIGINT stop accepting and let in-flight requests end.
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "cli/command.h"
#include "cli/signals.h"
#include "http/server.h"

namespace imagegen {
namespace {

struct ServeArgs {
  Config config = ConfigFromEnv();
  ServerOptions server;
  ApiOptions api;
  std::string api_keys_file;
  std::vector<std::string> cors_origins;
};

std::vector<std::string> SplitList(const char* value) {
  std::vector<std::string> out;
  if (value == nullptr) return out;
  std::stringstream in(value);
  for (std::string item; std::getline(in, item, ',');) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

int RunServe(ServeArgs& args) {
  const char* env_keys = std::getenv("IMAGEGEN_API_KEYS");
  const char* env_keys_file = std::getenv("IMAGEGEN_API_KEYS_FILE");
  if (args.api_keys_file.empty() && env_keys_file != nullptr) args.api_keys_file = env_keys_file;
  auto keys = LoadApiKeys(env_keys == nullptr ? "" : env_keys, args.api_keys_file);
  if (!keys.ok()) return ReportError(keys.error());
  args.api.api_keys = keys.value();
  args.api.cors_origins = args.cors_origins.empty()
                              ? SplitList(std::getenv("IMAGEGEN_CORS_ORIGINS"))
                              : args.cors_origins;
  auto pipeline = MakePipeline(args.config);
  if (!pipeline.ok()) return ReportError(pipeline.error());
  auto api = std::make_shared<Api>(pipeline.value(), args.api);
  for (const auto& attach : ServeExtensions()) attach(*api, args.config);
  HttpServer server(api, args.server);
  OnShutdown([&server] { server.Stop(); });
  Status status = server.Run([&](int port) {
    nlohmann::json line = {{"level", "info"},
                           {"msg", "listening"},
                           {"host", args.server.host},
                           {"port", port},
                           {"model", (*pipeline)->model().Name()},
                           {"store", (*pipeline)->store().Uri("")},
                           {"auth", args.api.api_keys.empty() ? "off" : "api-keys"}};
    std::cerr << line.dump() << std::endl;
  });
  if (!status.ok()) return ReportError(status.error());
  std::cerr << R"({"level":"info","msg":"stopped"})" << std::endl;
  return 0;
}

RegisterCommand registration(20, [](CLI::App& app) {
  auto args = std::make_shared<ServeArgs>();
  CLI::App* cmd = app.add_subcommand("serve", "Run the HTTP service");
  cmd->add_option("--host", args->server.host, "Address to listen on")->capture_default_str();
  cmd->add_option("--port", args->server.port, "Port (0: any free port)")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
  cmd->add_option("--max-body", args->server.max_body_bytes, "Largest request body in bytes")
      ->capture_default_str();
  cmd->add_option("--max-concurrent", args->api.max_concurrent, "Generations at once")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  cmd->add_option("--max-waiting", args->api.max_waiting, "Requests waiting for a slot before 503")
      ->check(CLI::Range(0, 100000))
      ->capture_default_str();
  cmd->add_option("--timeout", args->api.generate_timeout_s,
                  "Deadline of a synchronous generation, seconds")
      ->check(CLI::Range(1, 3600))
      ->capture_default_str();
  cmd->add_option(
      "--api-keys-file", args->api_keys_file,
      "File with one API key per line [env IMAGEGEN_API_KEYS_FILE; also IMAGEGEN_API_KEYS=k1,k2]");
  cmd->add_option("--cors-origin", args->cors_origins,
                  "Origin allowed to call from a browser (repeatable) [env IMAGEGEN_CORS_ORIGINS]");
  AddCommonFlags(cmd, &args->config);
  cmd->callback([args] { SetExitCode(RunServe(*args)); });
});

}  // namespace
}  // namespace imagegen
