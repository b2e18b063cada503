// AWS credentials and the default provider chain.
//
// Order (the first source that yields keys wins, as in the AWS SDKs):
//   1. environment: AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY [+ AWS_SESSION_TOKEN]
//   2. shared files: aws_access_key_id/aws_secret_access_key[/aws_session_token] of the active
//      profile (AWS_PROFILE; AWS_SHARED_CREDENTIALS_FILE, AWS_CONFIG_FILE)
//   3. container endpoint: AWS_CONTAINER_CREDENTIALS_FULL_URI or _RELATIVE_URI (ECS, EKS pod
//      identity, Lambda SnapStart), with AWS_CONTAINER_AUTHORIZATION_TOKEN(_FILE)
//   4. EC2 instance metadata, IMDSv2 only (token first), 1 s timeouts, skipped when
//      AWS_EC2_METADATA_DISABLED=true; AWS_EC2_METADATA_SERVICE_ENDPOINT overrides the address.
// Not supported (yet): credential_process, role assumption (role_arn/source_profile), SSO,
// web identity; a profile that uses them yields no keys and the chain goes on.
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
  std::string source;         // "environment", "profile:NAME", "container", "imds"; for logs
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
};

// The chain above with a cache: credentials are kept until 5 minutes before they expire, then
// refreshed (by the first caller; others wait on it). When the refresh fails but the cached
// credentials have not yet expired, they are still returned.
std::shared_ptr<CredentialsProvider> MakeDefaultCredentialsChain(ChainOptions options = {});

}  // namespace imagegen::aws
