// IAM Identity Center (SSO) role credentials, as the AWS CLI leaves them after `aws sso login`:
// a bearer token cached in ~/.aws/sso/cache/<sha1>.json, exchanged for role credentials by the
// portal's GetRoleCredentials (GET /federation/credentials on portal.sso.<region>). imagegen
// never logs in and never refreshes the token itself; an expired token is the user's to renew.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "aws/config.h"
#include "aws/credentials.h"
#include "aws/http.h"
#include "core/error.h"

namespace imagegen::aws {

// Host prefix "portal.sso"; AWS_ENDPOINT_URL_SSO overrides the endpoint.
ServiceId SsoPortalService();

// What a profile says. With an sso-session (`sso_session = NAME` and a [sso-session NAME]
// section), the cache is keyed by the session name; legacy profiles (sso_start_url and
// sso_region in the profile itself) key it by the start URL.
struct SsoProfile {
  std::string profile_name;  // for messages: "run `aws sso login --profile NAME`"
  std::string session_name;  // "": legacy profile
  std::string start_url;
  std::string region;  // sso_region: where the portal is
  std::string account_id;
  std::string role_name;
};

// Reads `profile`'s SSO settings (and its [sso-session] section from the shared config file).
// kInvalidRequest, naming the missing keys, when the profile is incomplete.
Result<SsoProfile> LoadSsoProfile(const Profile& profile, const EnvLookup& env);

// "<hex sha1 of the key>.json": the file name the AWS CLI caches the token under.
std::string SsoCacheFileName(const std::string& key);

struct SsoOptions {
  EnvLookup env = ProcessEnv();              // HOME (the cache), AWS_ENDPOINT_URL_SSO
  std::shared_ptr<HttpTransport> transport;  // null: DefaultTransport()
  std::function<int64_t()> now_ms;           // null: system clock
  std::string cache_dir;                     // "": $HOME/.aws/sso/cache
  int timeout_ms = 10000;
};

// The cached token, then GetRoleCredentials. Errors name the profile:
//   kForbidden   no cached token, an expired one, or the portal refused it (401/403): the
//                message says to run `aws sso login --profile NAME`
//   kUpstreamUnavailable/kUpstreamTimeout/kRateLimited  the portal failed, or answered
//                something other than the expected JSON
Result<Credentials> GetSsoCredentials(const SsoProfile& profile, const SsoOptions& options);

}  // namespace imagegen::aws
