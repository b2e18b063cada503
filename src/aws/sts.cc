#include "aws/sts.h"

#include <algorithm>
#include <chrono>
#include <random>
#include <thread>

#include "aws/client.h"
#include "aws/credentials_util.h"
#include "aws/encoding.h"
#include "aws/errors.h"
#include "aws/retry.h"
#include "aws/xml.h"

namespace imagegen::aws {
namespace {

constexpr const char* kStsVersion = "2011-06-15";

std::string FormBody(const QueryList& params) {
  std::string body;
  for (const auto& [k, v] : params) {
    if (!body.empty()) body += '&';
    body += UriEncode(k, false) + "=" + UriEncode(v, false);
  }
  return body;
}

std::string StsRegion(const StsOptions& options) {
  if (!options.region.empty()) return options.region;
  std::string region = ResolveRegion(options.env);
  return region.empty() ? "us-east-1" : region;
}

void Sleep(const StsOptions& options, int64_t ms) {
  if (options.sleep_ms) {
    options.sleep_ms(ms);
  } else {
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  }
}

double Random01() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
}

// Besides the standard mode's transient failures, a web identity call fails transiently when
// STS cannot reach the identity provider, or (briefly, while the file rotates) when the token
// was just replaced.
bool IsRetryableWebIdentity(const AwsFailure& f) {
  return IsRetryable(f) || f.aws_code == "IDPCommunicationError" ||
         f.aws_code == "InvalidIdentityToken";
}

QueryList RoleParams(const char* action, const std::string& role_arn,
                     const std::string& session_name, int duration_s) {
  QueryList q = {{"Action", action},
                 {"Version", kStsVersion},
                 {"RoleArn", role_arn},
                 {"RoleSessionName", session_name}};
  if (duration_s > 0) q.emplace_back("DurationSeconds", std::to_string(duration_s));
  return q;
}

}  // namespace

ServiceId StsService() { return {"sts", "sts", "STS"}; }

Result<Credentials> ParseStsCredentials(std::string_view xml, const std::string& source) {
  auto doc = ParseXml(xml);
  if (!doc.ok()) {
    return Error::Make(ErrorCode::kUpstreamUnavailable,
                       source + ": STS answer is not XML: " + doc.error().message);
  }
  const XmlNode* creds = doc->name == "Credentials" ? &*doc : doc->Find("Credentials");
  if (!creds) {
    return Error::Make(ErrorCode::kUpstreamUnavailable,
                       source + ": STS answer without <Credentials> (root <" + doc->name + ">)");
  }
  Credentials c;
  c.keys = {Trim(creds->ChildText("AccessKeyId")), Trim(creds->ChildText("SecretAccessKey")),
            Trim(creds->ChildText("SessionToken"))};
  c.source = source;
  if (c.keys.access_key_id.empty() || c.keys.secret_access_key.empty() ||
      c.keys.session_token.empty()) {
    return Error::Make(ErrorCode::kUpstreamUnavailable,
                       source + ": STS answer lacks AccessKeyId, SecretAccessKey or SessionToken");
  }
  std::string expiration = Trim(creds->ChildText("Expiration"));
  auto ms = ParseIso8601Ms(expiration);
  if (!ms) {
    return Error::Make(ErrorCode::kUpstreamUnavailable,
                       source + ": STS answer has a bad Expiration '" + expiration + "'");
  }
  c.expiration_ms = *ms;
  return c;
}

Result<Credentials> AssumeRoleWithWebIdentity(const WebIdentityParams& params,
                                              const StsOptions& options) {
  const std::string source = "web-identity " + params.role_arn;
  std::string region = StsRegion(options);
  auto endpoint = ResolveEndpoint(StsService(), region, "", options.env);
  if (!endpoint.ok()) return endpoint.error();
  auto transport = options.transport ? options.transport : DefaultTransport();
  int64_t now = options.now_ms ? options.now_ms() : CredentialsNowMs();
  std::string session =
      params.session_name.empty() ? DefaultRoleSessionName(now) : params.session_name;

  RetryOptions retry;
  retry.max_attempts = std::max(1, options.max_attempts);
  AwsFailure failure;
  for (int attempt = 1; attempt <= retry.max_attempts; ++attempt) {
    if (attempt > 1) Sleep(options, BackoffDelayMs(retry, attempt - 1, Random01()));
    // Read at every attempt: the token may have rotated since the last one.
    auto token = ReadSmallFile(params.token_file);
    if (!token || Trim(*token).empty()) {
      return Error::Make(ErrorCode::kForbidden, source +
                                                    ": cannot read the web identity token "
                                                    "file " +
                                                    params.token_file +
                                                    " (AWS_WEB_IDENTITY_TOKEN_FILE or the "
                                                    "profile's web_identity_token_file)");
    }
    QueryList form =
        RoleParams("AssumeRoleWithWebIdentity", params.role_arn, session, params.duration_s);
    form.emplace_back("WebIdentityToken", Trim(*token));
    HttpRequest req;
    req.method = "POST";
    req.url = *endpoint + "/";
    req.headers = {{"Content-Type", "application/x-www-form-urlencoded; charset=utf-8"},
                   {"Accept", "text/xml"}};
    req.body = FormBody(form);
    req.timeout_ms = options.timeout_ms;
    req.connect_timeout_ms = std::min(options.timeout_ms, 3000);
    HttpResponse resp = transport->Perform(req);
    if (resp.failure == TransportFailure::kNone && resp.status >= 200 && resp.status < 300) {
      return ParseStsCredentials(resp.body, source);
    }
    failure = ParseFailure(resp);
    failure.operation = "STS.AssumeRoleWithWebIdentity";
    failure.resource = params.role_arn;
    if (!IsRetryableWebIdentity(failure)) break;
  }
  return CredentialsServiceError(failure);
}

Result<Credentials> AssumeRole(const AssumeRoleParams& params, const Credentials& source_creds,
                               const StsOptions& options) {
  const std::string source = "assume-role " + params.role_arn;
  ClientOptions co;
  co.region = StsRegion(options);
  co.env = options.env;
  co.transport = options.transport;
  co.credentials = MakeStaticCredentials(source_creds);
  co.timeout_ms = options.timeout_ms;
  co.retry.max_attempts = std::max(1, options.max_attempts);
  co.retry.use_quota = false;
  co.refine_error = [](const AwsFailure& f) -> std::optional<Error> {
    return CredentialsServiceError(f);
  };
  if (options.sleep_ms) co.sleep_ms = options.sleep_ms;
  if (options.now_ms) co.now_s = [now = options.now_ms] { return now() / 1000; };
  auto client = Client::Make(StsService(), std::move(co));
  if (!client.ok()) return client.error();

  int64_t now = options.now_ms ? options.now_ms() : CredentialsNowMs();
  QueryList form =
      RoleParams("AssumeRole", params.role_arn,
                 params.session_name.empty() ? DefaultRoleSessionName(now) : params.session_name,
                 params.duration_s);
  if (!params.external_id.empty()) form.emplace_back("ExternalId", params.external_id);
  Request req;
  req.operation = "STS.AssumeRole";
  req.resource = params.role_arn;
  req.method = "POST";
  req.headers = {{"Content-Type", "application/x-www-form-urlencoded; charset=utf-8"}};
  req.body = FormBody(form);
  auto resp = (*client)->Send(req);
  if (!resp.ok()) return resp.error();
  return ParseStsCredentials(resp->body, source);
}

}  // namespace imagegen::aws
