// A profile's credential_process: an external command that prints credentials as JSON on stdout
// (https://docs.aws.amazon.com/cli/latest/userguide/cli-configure-sourcing-external.html):
//   {"Version": 1, "AccessKeyId": "...", "SecretAccessKey": "...",
//    "SessionToken": "...", "Expiration": "2026-11-25T08:00:00Z"}    (the last two optional)
//
// The command line is run by /bin/sh -c, as the AWS CLI and SDKs do, so quoting in the config
// file means what it means in a shell. It is written by whoever controls the config file, never
// by a request. The command inherits the environment and stdin; stdout and stderr are captured.
#pragma once

#include <cstddef>
#include <string>

#include "aws/credentials.h"
#include "core/error.h"

namespace imagegen::aws {

struct ProcessOptions {
  int timeout_ms = 60000;               // then the process group is killed
  size_t max_output_bytes = 64 * 1024;  // stdout beyond this is an error (and kills it)
  size_t max_stderr_bytes = 4 * 1024;   // stderr beyond this is dropped
};

struct ProcessOutput {
  int exit_code = 0;  // 128 + signal number when a signal ended it
  std::string out;
  std::string err;
};

// Runs `command` with /bin/sh -c in its own process group and waits for it. An Error only when
// it could not be started (kInternal), ran past the timeout (kUpstreamTimeout) or printed too
// much (kUpstreamUnavailable); a non-zero exit is an OK result with that exit code. Safe to
// call from any thread (posix_spawn; only pipes of its own are passed to the child).
Result<ProcessOutput> RunShellCommand(const std::string& command, const ProcessOptions& options);

// The JSON above; Version must be 1. kUpstreamUnavailable, naming `source`, otherwise.
Result<Credentials> ParseProcessCredentials(const std::string& json, const std::string& source);

// RunShellCommand + ParseProcessCredentials. A non-zero exit is kUpstreamUnavailable with the
// first line of the command's stderr. Credentials::source is `source`.
Result<Credentials> CredentialsFromProcess(const std::string& command, const std::string& source,
                                           const ProcessOptions& options);

}  // namespace imagegen::aws
