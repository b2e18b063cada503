// AWS STS, the two calls the credentials chain needs: AssumeRoleWithWebIdentity (EKS IRSA, any
// OIDC provider; unsigned) and AssumeRole (a profile's role_arn + source_profile; signed with the
// source's keys). Both speak the query protocol: a form-encoded POST, an XML answer.
//
// The endpoint is regional, https://sts.<region>.amazonaws.com, or AWS_ENDPOINT_URL_STS /
// AWS_ENDPOINT_URL (local fakes such as moto). With no region at all, us-east-1.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "aws/config.h"
#include "aws/credentials.h"
#include "aws/http.h"
#include "core/error.h"

namespace imagegen::aws {

ServiceId StsService();  // signing name "sts", host prefix "sts", AWS_ENDPOINT_URL_STS

struct StsOptions {
  std::string region;  // "": ResolveRegion(env), else us-east-1
  EnvLookup env = ProcessEnv();
  std::shared_ptr<HttpTransport> transport;  // null: DefaultTransport()
  std::function<void(int64_t ms)> sleep_ms;  // backoff between attempts; null: real sleep
  std::function<int64_t()> now_ms;           // signing clock; null: system clock
  int timeout_ms = 10000;                    // per attempt
  int max_attempts = 3;                      // first try included
};

struct WebIdentityParams {
  std::string role_arn;
  std::string token_file;    // read at every call: the issuer rotates it (EKS: hourly)
  std::string session_name;  // "": "imagegen-<epoch ms>"
  int duration_s = 0;        // 0: STS's default (1 hour)
};

// AssumeRoleWithWebIdentity. Errors name the role and the token file:
//   kForbidden         token file unreadable or empty; STS refused (InvalidIdentityToken,
//                      ExpiredTokenException, AccessDenied, any other 4xx)
//   kRateLimited, kUpstreamUnavailable, kUpstreamTimeout  after the retries (5xx, throttling,
//                      IDPCommunicationError, broken connections)
//   kUpstreamUnavailable  an answer that is not the expected XML
Result<Credentials> AssumeRoleWithWebIdentity(const WebIdentityParams& params,
                                              const StsOptions& options);

struct AssumeRoleParams {
  std::string role_arn;
  std::string session_name;  // "": "imagegen-<epoch ms>"
  std::string external_id;   // "": none
  int duration_s = 0;        // 0: STS's default (1 hour)
};

// AssumeRole, signed (SigV4) with `source`. Errors as for AssumeRoleWithWebIdentity.
Result<Credentials> AssumeRole(const AssumeRoleParams& params, const Credentials& source,
                               const StsOptions& options);

// The <Credentials> element of an AssumeRole* answer (found anywhere in the document):
// AccessKeyId, SecretAccessKey, SessionToken, Expiration (ISO 8601). `source` goes into
// Credentials::source and into error messages. kUpstreamUnavailable for anything else.
Result<Credentials> ParseStsCredentials(std::string_view xml, const std::string& source);

}  // namespace imagegen::aws
