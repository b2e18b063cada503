// Small pieces shared by the credential sources (credentials.cc, sts.cc, sso.cc,
// credentials_process.cc). Internal to src/aws; not part of the layer's contract.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "aws/config.h"
#include "aws/errors.h"
#include "core/error.h"

namespace imagegen::aws {

int64_t CredentialsNowMs();  // system clock, epoch ms

// The whole file, or nullopt when it cannot be opened. Reads at most `max_bytes` (a token or a
// cache entry is small; a wrong path to something huge should not be slurped).
std::optional<std::string> ReadSmallFile(const std::string& path, size_t max_bytes = 1 << 20);

// "~/x" -> "$HOME/x"; other paths unchanged.
std::string ExpandUserPath(const std::string& path, const EnvLookup& env);

// The shared config file: AWS_CONFIG_FILE, else ~/.aws/config (the rule LoadProfile uses);
// "" when neither is known.
std::string SharedConfigPath(const EnvLookup& env);

// A failed call to a credentials service (STS, the SSO portal): MapAwsError, except that a
// refusal (any 4xx that is not throttling) is kForbidden. To the caller of imagegen that is
// "no access", not "your request was bad".
Error CredentialsServiceError(const AwsFailure& failure);

// "imagegen-<epoch ms>": a role session name when none is configured (STS allows [\w+=,.@-],
// 2 to 64 characters).
std::string DefaultRoleSessionName(int64_t now_ms);

}  // namespace imagegen::aws
