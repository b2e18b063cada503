// The subcommands, one file each; main() adds them in this order.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <optional>
#include <string>

#include "app/config.h"

namespace imagegen {

// Each adds one subcommand; its callback does the work and returns the process exit code
// through SetExitCode.
void AddGenerateCommand(CLI::App& app);
void AddServeCommand(CLI::App& app);
void AddWorkerCommand(CLI::App& app);
void AddInspectCommand(CLI::App& app);
void AddDeadLettersCommand(CLI::App& app);
void AddSubmitCommand(CLI::App& app);
void AddLambdaCommand(CLI::App& app);

void SetExitCode(int code);

// --store, --s3-endpoint, --s3-path-style, --key-prefix, --model, --threads over `config`,
// whose fields already hold the environment's values (flags win).
void AddCommonFlags(CLI::App* command, Config* config);
// --webhook-allow over `config` (the doors that check or deliver job webhooks).
void AddWebhookFlags(CLI::App* command, Config* config);

// An option a request must see as absent when not given (the model's default then applies), so
// that a given 0 is checked as given instead of being read as "absent".
template <typename T>
CLI::Option* AddOptional(CLI::App* command, const std::string& name, std::optional<T>* target,
                         const std::string& help) {
  return command->add_option_function<T>(
      name, [target](const T& value) { *target = value; }, help);
}

// One readable line on stderr for an error, and its exit code.
int ReportError(const Error& error);

}  // namespace imagegen
