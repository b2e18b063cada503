#include "aws/credentials.h"

#include <algorithm>
#include <chrono>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

#include "aws/credentials_process.h"
#include "aws/credentials_util.h"
#include "aws/encoding.h"
#include "aws/sso.h"
#include "aws/sts.h"

namespace imagegen::aws {
namespace {

constexpr int64_t kRefreshMarginMs = 5 * 60 * 1000;
constexpr const char* kEcsHost = "http://169.254.170.2";
constexpr const char* kImdsDefault = "http://169.254.169.254";

class StaticProvider : public CredentialsProvider {
 public:
  explicit StaticProvider(Credentials c) : credentials_(std::move(c)) {}
  Result<Credentials> Get() override { return credentials_; }

 private:
  Credentials credentials_;
};

// Outcome of one source: keys, "not configured here" (try the next), or a hard failure.
struct SourceResult {
  std::optional<Credentials> credentials;
  std::optional<Error> error;
  std::string tried;  // what was looked at, for the final "no credentials" message
};

SourceResult FromEnvironment(const EnvLookup& env) {
  SourceResult r;
  r.tried = "environment (AWS_ACCESS_KEY_ID)";
  auto id = NonEmpty(env, "AWS_ACCESS_KEY_ID");
  auto secret = NonEmpty(env, "AWS_SECRET_ACCESS_KEY");
  if (id && secret) {
    Credentials c;
    c.keys = {*id, *secret, NonEmpty(env, "AWS_SESSION_TOKEN").value_or("")};
    c.source = "environment";
    r.credentials = c;
  }
  return r;
}

// Container endpoints answer {"AccessKeyId", "SecretAccessKey", "Token", "Expiration"}; IMDS
// adds "Code": "Success".
Result<Credentials> ParseCredentialsJson(const std::string& body, const std::string& source) {
  auto j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return Error::Make(ErrorCode::kUpstreamUnavailable, source + " credentials: not JSON");
  }
  if (j.contains("Code") && j["Code"].is_string() && j["Code"] != "Success") {
    return Error::Make(ErrorCode::kUpstreamUnavailable,
                       source + " credentials: Code=" + j["Code"].get<std::string>());
  }
  auto str = [&](const char* k) {
    return j.contains(k) && j[k].is_string() ? j[k].get<std::string>() : std::string();
  };
  Credentials c;
  c.keys = {str("AccessKeyId"), str("SecretAccessKey"), str("Token")};
  c.source = source;
  if (c.keys.access_key_id.empty() || c.keys.secret_access_key.empty()) {
    return Error::Make(ErrorCode::kUpstreamUnavailable, source + " credentials: keys missing");
  }
  std::string expiration = str("Expiration");
  if (!expiration.empty()) {
    auto ms = ParseIso8601Ms(expiration);
    if (!ms) {
      return Error::Make(ErrorCode::kUpstreamUnavailable,
                         source + " credentials: bad Expiration " + expiration);
    }
    c.expiration_ms = *ms;
  }
  return c;
}

Error TransportError(const std::string& what, const HttpResponse& resp) {
  if (resp.failure == TransportFailure::kTimeout) {
    return Error::Make(ErrorCode::kUpstreamTimeout, what + ": timed out");
  }
  if (resp.failure != TransportFailure::kNone) {
    return Error::Make(ErrorCode::kUpstreamUnavailable, what + ": " + resp.failure_message);
  }
  return Error::Make(resp.status == 403 || resp.status == 401 ? ErrorCode::kForbidden
                                                              : ErrorCode::kUpstreamUnavailable,
                     what + ": HTTP " + std::to_string(resp.status));
}

// The container endpoint must be local (or TLS): the token it is sent would otherwise travel
// in clear text to an arbitrary host. Same allow-list as the SDKs.
bool IsAllowedContainerHost(const std::string& url) {
  auto parts = SplitUrl(url);
  if (!parts.ok()) return false;
  if (parts->scheme == "https") return true;
  std::string host = HostHeaderForUrl(url);
  size_t colon = host.rfind(':');
  if (colon != std::string::npos && host.find(']') == std::string::npos) host.resize(colon);
  return host == "localhost" || host.starts_with("127.") || host == "[::1]" ||
         host == "169.254.170.2" || host == "169.254.170.23" || host == "[fd00:ec2::23]";
}

SourceResult FromContainer(const EnvLookup& env, HttpTransport& transport, int timeout_ms) {
  SourceResult r;
  r.tried = "container endpoint (AWS_CONTAINER_CREDENTIALS_*_URI)";
  std::string url;
  if (auto rel = NonEmpty(env, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")) {
    url = std::string(kEcsHost) + (rel->starts_with("/") ? "" : "/") + *rel;
  } else if (auto full = NonEmpty(env, "AWS_CONTAINER_CREDENTIALS_FULL_URI")) {
    url = *full;
    if (!IsAllowedContainerHost(url)) {
      r.error = Error::Make(ErrorCode::kInvalidRequest,
                            "AWS_CONTAINER_CREDENTIALS_FULL_URI must be https or a loopback/"
                            "container address: " +
                                url);
      return r;
    }
  } else {
    return r;
  }
  HttpRequest req;
  req.url = url;
  req.timeout_ms = timeout_ms;
  req.connect_timeout_ms = timeout_ms;
  std::string token;
  if (auto file = NonEmpty(env, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")) {
    std::ifstream f(*file);
    std::ostringstream ss;
    ss << f.rdbuf();
    token = Trim(ss.str());  // re-read each time: EKS rotates the file
  } else if (auto t = NonEmpty(env, "AWS_CONTAINER_AUTHORIZATION_TOKEN")) {
    token = *t;
  }
  if (!token.empty()) req.headers.emplace_back("Authorization", token);
  HttpResponse resp;
  for (int attempt = 0; attempt < 2; ++attempt) {  // one quick retry: the agent may be starting
    resp = transport.Perform(req);
    if (resp.failure == TransportFailure::kNone && resp.status < 500) break;
  }
  if (resp.failure != TransportFailure::kNone || resp.status != 200) {
    r.error = TransportError("container credentials endpoint", resp);
    return r;
  }
  auto c = ParseCredentialsJson(resp.body, "container");
  if (!c.ok()) {
    r.error = c.error();
  } else {
    r.credentials = *c;
  }
  return r;
}

SourceResult FromImds(const EnvLookup& env, HttpTransport& transport, int timeout_ms) {
  SourceResult r;
  r.tried = "EC2 instance metadata (IMDSv2)";
  auto disabled = NonEmpty(env, "AWS_EC2_METADATA_DISABLED");
  if (disabled && Lower(*disabled) == "true") {
    r.tried += " [disabled]";
    return r;
  }
  std::string base = NonEmpty(env, "AWS_EC2_METADATA_SERVICE_ENDPOINT").value_or(kImdsDefault);
  while (!base.empty() && base.back() == '/') base.pop_back();

  HttpRequest token_req;
  token_req.method = "PUT";
  token_req.url = base + "/latest/api/token";
  token_req.headers.emplace_back("X-aws-ec2-metadata-token-ttl-seconds", "21600");
  token_req.timeout_ms = timeout_ms;
  token_req.connect_timeout_ms = timeout_ms;
  HttpResponse token_resp = transport.Perform(token_req);
  if (token_resp.failure != TransportFailure::kNone) {
    // Not on EC2 (the usual case on a laptop or in CI): not an error, just no credentials.
    r.tried += " [unreachable]";
    return r;
  }
  if (token_resp.status >= 500) {
    r.error = TransportError("IMDSv2 token", token_resp);
    return r;
  }
  if (token_resp.status != 200) {
    // 403: IMDS switched off for this instance; 404/405: no IMDSv2. Either way, no keys here.
    r.tried += " [token HTTP " + std::to_string(token_resp.status) + "]";
    return r;
  }
  std::string token = Trim(token_resp.body);

  HttpRequest role_req;
  role_req.url = base + "/latest/meta-data/iam/security-credentials/";
  role_req.headers.emplace_back("X-aws-ec2-metadata-token", token);
  role_req.timeout_ms = timeout_ms;
  role_req.connect_timeout_ms = timeout_ms;
  HttpResponse role_resp = transport.Perform(role_req);
  if (role_resp.failure != TransportFailure::kNone || role_resp.status != 200) {
    if (role_resp.status == 404) {
      r.tried += " [no instance role]";
      return r;
    }
    r.error = TransportError("IMDS role name", role_resp);
    return r;
  }
  std::string role = Trim(role_resp.body);
  size_t nl = role.find('\n');
  if (nl != std::string::npos) role = Trim(role.substr(0, nl));
  if (role.empty()) {
    r.tried += " [no instance role]";
    return r;
  }
  HttpRequest cred_req = role_req;
  cred_req.url += UriEncode(role, false);
  HttpResponse cred_resp = transport.Perform(cred_req);
  if (cred_resp.failure != TransportFailure::kNone || cred_resp.status != 200) {
    r.error = TransportError("IMDS credentials", cred_resp);
    return r;
  }
  auto c = ParseCredentialsJson(cred_resp.body, "imds");
  if (!c.ok()) {
    r.error = c.error();
  } else {
    r.credentials = *c;
  }
  return r;
}

StsOptions MakeStsOptions(const ChainOptions& o) {
  StsOptions sts;
  sts.env = o.env;
  sts.transport = o.transport;
  sts.sleep_ms = o.sleep_ms;
  sts.now_ms = o.now_ms;
  return sts;
}

int ParseDurationSeconds(const std::string& text) {
  if (text.empty()) return 0;
  try {
    size_t used = 0;
    int v = std::stoi(text, &used);
    return used == text.size() && v > 0 ? v : -1;
  } catch (...) {
    return -1;
  }
}

// EKS IRSA (and any OIDC issuer): AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN.
SourceResult FromWebIdentityEnv(const ChainOptions& o) {
  SourceResult r;
  r.tried = "web identity (AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN)";
  auto file = NonEmpty(o.env, "AWS_WEB_IDENTITY_TOKEN_FILE");
  auto role = NonEmpty(o.env, "AWS_ROLE_ARN");
  if (!file || !role) {
    if (file || role) r.tried += file ? " [AWS_ROLE_ARN unset]" : " [token file unset]";
    return r;
  }
  WebIdentityParams p;
  p.role_arn = *role;
  p.token_file = *file;
  p.session_name = NonEmpty(o.env, "AWS_ROLE_SESSION_NAME").value_or("");
  auto c = AssumeRoleWithWebIdentity(p, MakeStsOptions(o));
  if (!c.ok()) {
    r.error = c.error();
  } else {
    r.credentials = *c;
    r.credentials->source = "web-identity";
  }
  return r;
}

// The profile `name` from the shared files: LoadProfile with AWS_PROFILE pointed at it.
Profile LoadNamedProfile(const EnvLookup& env, const std::string& name) {
  return LoadProfile([env, name](const std::string& key) -> std::optional<std::string> {
    if (key == "AWS_PROFILE") return name;
    return env(key);
  });
}

constexpr int kMaxRoleChain = 8;

// One profile's credentials. Within a profile the kinds are tried as the AWS CLI does: a role
// (role_arn with web_identity_token_file, source_profile or credential_source), then SSO, then
// static keys, then credential_process. `chain` holds the profiles already on the way here
// (source_profile cycles).
SourceResult FromProfileNamed(const Profile& profile, const ChainOptions& o,
                              std::vector<std::string>* chain) {
  SourceResult r;
  r.tried = "shared config/credentials files (profile " + profile.name + ")";
  const std::string where = "profile " + profile.name;
  auto fail = [&r](Error e) {
    r.error = std::move(e);
    return r;
  };
  auto static_keys = [&]() -> std::optional<Credentials> {
    std::string id = profile.Get("aws_access_key_id");
    std::string secret = profile.Get("aws_secret_access_key");
    if (id.empty() || secret.empty()) return std::nullopt;
    Credentials c;
    c.keys = {id, secret, profile.Get("aws_session_token")};
    c.source = "profile:" + profile.name;
    return c;
  };

  if (std::string role_arn = profile.Get("role_arn"); !role_arn.empty()) {
    int duration_s = ParseDurationSeconds(profile.Get("duration_seconds"));
    if (duration_s < 0) {
      return fail(Error::Invalid("duration_seconds",
                                 where + ": duration_seconds is not a positive integer"));
    }
    if (std::string token_file = profile.Get("web_identity_token_file"); !token_file.empty()) {
      WebIdentityParams p;
      p.role_arn = role_arn;
      p.token_file = ExpandUserPath(token_file, o.env);
      p.session_name = profile.Get("role_session_name");
      p.duration_s = duration_s;
      auto c = AssumeRoleWithWebIdentity(p, MakeStsOptions(o));
      if (!c.ok()) return fail(c.error());
      r.credentials = *c;
      r.credentials->source = "web-identity:" + profile.name;
      return r;
    }
    if (!profile.Get("mfa_serial").empty()) {
      return fail(Error::Invalid("mfa_serial", where + ": mfa_serial needs an interactive MFA "
                                                       "code, which imagegen cannot ask for"));
    }
    std::optional<Credentials> source;
    std::string source_profile = profile.Get("source_profile");
    std::string credential_source = profile.Get("credential_source");
    if (!source_profile.empty()) {
      if (source_profile == profile.name) {
        // A profile may name itself: its own static keys assume its own role.
        source = static_keys();
        if (!source) {
          return fail(Error::Invalid("source_profile", where + ": source_profile is the profile "
                                                               "itself but it has no keys"));
        }
      } else {
        if (std::find(chain->begin(), chain->end(), source_profile) != chain->end() ||
            chain->size() >= kMaxRoleChain) {
          return fail(
              Error::Invalid("source_profile", where + ": source_profile " + source_profile +
                                                   " makes a cycle (or a chain over " +
                                                   std::to_string(kMaxRoleChain) + " roles)"));
        }
        chain->push_back(profile.name);
        SourceResult inner = FromProfileNamed(LoadNamedProfile(o.env, source_profile), o, chain);
        chain->pop_back();
        if (inner.error) return fail(*inner.error);
        if (!inner.credentials) {
          return fail(
              Error::Make(ErrorCode::kForbidden, where + ": source_profile " + source_profile +
                                                     " has no credentials (or does not exist)"));
        }
        source = inner.credentials;
      }
    } else if (!credential_source.empty()) {
      SourceResult inner;
      if (credential_source == "Environment") {
        inner = FromEnvironment(o.env);
      } else if (credential_source == "EcsContainer") {
        inner = FromContainer(o.env, *o.transport, o.metadata_timeout_ms);
      } else if (credential_source == "Ec2InstanceMetadata") {
        inner = FromImds(o.env, *o.transport, o.metadata_timeout_ms);
      } else {
        return fail(
            Error::Invalid("credential_source", where +
                                                    ": credential_source must be Environment, "
                                                    "EcsContainer or Ec2InstanceMetadata, not " +
                                                    credential_source));
      }
      if (inner.error) return fail(*inner.error);
      if (!inner.credentials) {
        return fail(Error::Make(
            ErrorCode::kForbidden,
            where + ": credential_source " + credential_source + " has no credentials"));
      }
      source = inner.credentials;
    } else {
      return fail(Error::Invalid("role_arn", where +
                                                 ": role_arn needs source_profile, "
                                                 "credential_source or web_identity_token_file"));
    }
    AssumeRoleParams p;
    p.role_arn = role_arn;
    p.session_name = profile.Get("role_session_name");
    p.external_id = profile.Get("external_id");
    p.duration_s = duration_s;
    auto c = AssumeRole(p, *source, MakeStsOptions(o));
    if (!c.ok()) {
      Error e = c.error();
      e.message = where + ": " + e.message;
      return fail(e);
    }
    r.credentials = *c;
    r.credentials->source = "assume-role:" + profile.name;
    return r;
  }

  if (!profile.Get("sso_session").empty() || !profile.Get("sso_start_url").empty() ||
      !profile.Get("sso_account_id").empty()) {
    auto sso = LoadSsoProfile(profile, o.env);
    if (!sso.ok()) return fail(sso.error());
    SsoOptions so;
    so.env = o.env;
    so.transport = o.transport;
    so.now_ms = o.now_ms;
    auto c = GetSsoCredentials(*sso, so);
    if (!c.ok()) return fail(c.error());
    r.credentials = *c;
    return r;
  }

  if (auto c = static_keys()) {
    r.credentials = *c;
    return r;
  }

  if (std::string command = profile.Get("credential_process"); !command.empty()) {
    ProcessOptions po;
    po.timeout_ms = o.process_timeout_ms;
    auto c = CredentialsFromProcess(command, where, po);
    if (!c.ok()) return fail(c.error());
    r.credentials = *c;
    r.credentials->source = "process:" + profile.name;
    return r;
  }
  return r;
}

SourceResult FromProfile(const ChainOptions& o) {
  std::vector<std::string> chain;
  return FromProfileNamed(LoadProfile(o.env), o, &chain);
}

class ChainProvider : public CredentialsProvider {
 public:
  explicit ChainProvider(ChainOptions options) : options_(std::move(options)) {
    if (!options_.transport) options_.transport = DefaultTransport();
    if (!options_.now_ms) options_.now_ms = CredentialsNowMs;
  }

  Result<Credentials> Get() override {
    std::lock_guard<std::mutex> lock(mu_);
    int64_t now = options_.now_ms();
    if (cached_ &&
        (cached_->expiration_ms == 0 || now < cached_->expiration_ms - kRefreshMarginMs)) {
      return *cached_;
    }
    Result<Credentials> fresh = Resolve();
    if (fresh.ok()) {
      cached_ = *fresh;
      return fresh;
    }
    // A failed refresh need not stop work while the old credentials are still valid.
    if (cached_ && cached_->expiration_ms != 0 && now < cached_->expiration_ms) return *cached_;
    return fresh;
  }

  void Invalidate() override {
    std::lock_guard<std::mutex> lock(mu_);
    cached_.reset();
  }

 private:
  Result<Credentials> Resolve() {
    const EnvLookup& env = options_.env;
    std::vector<std::string> tried;
    std::vector<std::function<SourceResult()>> sources = {
        [&] { return FromEnvironment(env); },
        [&] { return FromWebIdentityEnv(options_); },
        [&] { return FromProfile(options_); },
        [&] { return FromContainer(env, *options_.transport, options_.metadata_timeout_ms); },
        [&] { return FromImds(env, *options_.transport, options_.metadata_timeout_ms); },
    };
    for (auto& source : sources) {
      SourceResult r = source();
      if (r.credentials) return *r.credentials;
      // A configured source that fails is an error, not a reason to fall through: silently
      // using other keys would act as another identity.
      if (r.error) return *r.error;
      tried.push_back(r.tried);
    }
    std::string message = "no AWS credentials found; tried:";
    for (const auto& t : tried) message += " " + t + ";";
    return Error::Make(ErrorCode::kForbidden, message);
  }

  ChainOptions options_;
  std::mutex mu_;
  std::optional<Credentials> cached_;  // guarded by mu_
};

}  // namespace

std::shared_ptr<CredentialsProvider> MakeStaticCredentials(Credentials credentials) {
  return std::make_shared<StaticProvider>(std::move(credentials));
}

std::shared_ptr<CredentialsProvider> MakeDefaultCredentialsChain(ChainOptions options) {
  return std::make_shared<ChainProvider>(std::move(options));
}

}  // namespace imagegen::aws
