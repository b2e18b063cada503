// Subcommands register themselves here, so each lives in its own file and main() stays short.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <string>

#include "app/config.h"

namespace imagegen {

// A registrar adds one subcommand to the app. It runs at start-up; the subcommand's callback
// does the work and returns the process exit code through SetExitCode.
using CommandRegistrar = std::function<void(CLI::App& app)>;

struct RegisterCommand {
  RegisterCommand(int order, CommandRegistrar registrar);
};

void SetExitCode(int code);

// --store, --s3-endpoint, --s3-path-style, --key-prefix, --model, --threads over `config`,
// whose fields already hold the environment's values (flags win).
void AddCommonFlags(CLI::App* command, Config* config);

// One readable line on stderr for an error, and its exit code.
int ReportError(const Error& error);

}  // namespace imagegen
