// AWS credentials and the default provider chain.
//
// Order (the first source that is configured wins, as in the AWS SDKs):
//   1. environment: AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY [+ AWS_SESSION_TOKEN]
//   2. web identity: AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN [+ AWS_ROLE_SESSION_NAME]
//      (EKS IRSA): STS AssumeRoleWithWebIdentity, the token file re-read at every refresh
//   3. the active profile (AWS_PROFILE, else "default"; AWS_CONFIG_FILE,
//      AWS_SHARED_CREDENTIALS_FILE), whose keys are tried in this order:
//      a. role_arn + web_identity_token_file: AssumeRoleWithWebIdentity
//         role_arn + source_profile (chained, or the profile itself) or credential_source
//         (Environment, EcsContainer, Ec2InstanceMetadata): STS AssumeRole with those keys;
//         role_session_name, external_id, duration_seconds honoured; mfa_serial refused
//      b. SSO: sso_session + [sso-session NAME] (sso_start_url, sso_region), or the legacy
//         sso_start_url/sso_region in the profile, with sso_account_id + sso_role_name: the
//         token `aws sso login` cached in ~/.aws/sso/cache, exchanged at the SSO portal
//      c. aws_access_key_id/aws_secret_access_key[/aws_session_token]
//      d. credential_process: the command's JSON output (aws/credentials_process.h)
//   4. container endpoint: AWS_CONTAINER_CREDENTIALS_FULL_URI or _RELATIVE_URI (ECS, EKS pod
//      identity, Lambda SnapStart), with AWS_CONTAINER_AUTHORIZATION_TOKEN(_FILE)
//   5. EC2 instance metadata, IMDSv2 only (token first), 1 s timeouts, skipped when
//      AWS_EC2_METADATA_DISABLED=true; AWS_EC2_METADATA_SERVICE_ENDPOINT overrides the address.
// A source that is configured but fails is an error, never a reason to go on to the next one
// (that would act as another identity). Endpoints: AWS_ENDPOINT_URL_STS, AWS_ENDPOINT_URL_SSO.
// Not supported: SSO token refresh (the CLI's refresh token), MFA prompts, login_session.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "aws/config.h"
#include "aws/http.h"
#include "aws/sigv4.h"
#include "core/error.h"

namespace imagegen::aws {

struct Credentials {
  SigningKeys keys;
  int64_t expiration_ms = 0;  // epoch ms; 0 = does not expire
  // For logs: "environment", "web-identity", "web-identity:PROFILE", "assume-role:PROFILE",
  // "sso:PROFILE", "profile:PROFILE", "process:PROFILE", "container", "imds".
  std::string source;
};

class CredentialsProvider {
 public:
  virtual ~CredentialsProvider() = default;
  // Current credentials. Thread-safe; may block on the network when a refresh is due.
  // kForbidden when no source has credentials (the message lists what was tried),
  // kUpstreamUnavailable/kUpstreamTimeout when a credentials endpoint failed.
  virtual Result<Credentials> Get() = 0;
  // Forget cached credentials (e.g. after ExpiredToken) so the next Get() fetches new ones.
  virtual void Invalidate() {}
};

std::shared_ptr<CredentialsProvider> MakeStaticCredentials(Credentials credentials);

struct ChainOptions {
  EnvLookup env = ProcessEnv();
  std::shared_ptr<HttpTransport> transport;  // null: DefaultTransport()
  std::function<int64_t()> now_ms;           // null: system clock
  int metadata_timeout_ms = 1000;            // IMDS and container endpoint, per request
  int process_timeout_ms = 60000;            // credential_process, then it is killed
  std::function<void(int64_t ms)> sleep_ms;  // STS retry backoff; null: real sleep
};

// The chain above with a cache: credentials are kept until 5 minutes before they expire, then
// refreshed (by the first caller; others wait on it). When the refresh fails but the cached
// credentials have not yet expired, they are still returned.
std::shared_ptr<CredentialsProvider> MakeDefaultCredentialsChain(ChainOptions options = {});

}  // namespace imagegen::aws
