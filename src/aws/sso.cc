#include "aws/sso.h"

#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <nlohmann/json.hpp>

#include "aws/credentials_util.h"
#include "aws/encoding.h"
#include "aws/errors.h"

namespace imagegen::aws {
namespace {

std::string Sha1Hex(const std::string& data) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> out{};
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), out.data(), &len, EVP_sha1(), nullptr);
  return HexEncode(std::string_view(reinterpret_cast<const char*>(out.data()), len));
}

std::string LoginHint(const SsoProfile& p) {
  return "run `aws sso login --profile " + p.profile_name + "`";
}

// The CLI has written both "2026-01-01T00:00:00Z" and "2026-01-01T00:00:00UTC".
std::optional<int64_t> ParseCacheTime(std::string text) {
  text = Trim(text);
  if (text.ends_with("UTC")) text.replace(text.size() - 3, 3, "Z");
  return ParseIso8601Ms(text);
}

}  // namespace

ServiceId SsoPortalService() { return {"awsssoportal", "portal.sso", "SSO"}; }

std::string SsoCacheFileName(const std::string& key) { return Sha1Hex(key) + ".json"; }

Result<SsoProfile> LoadSsoProfile(const Profile& profile, const EnvLookup& env) {
  SsoProfile p;
  p.profile_name = profile.name;
  p.account_id = profile.Get("sso_account_id");
  p.role_name = profile.Get("sso_role_name");
  p.session_name = profile.Get("sso_session");
  std::string where = "profile " + profile.name;
  if (!p.session_name.empty()) {
    std::string section = "sso-session " + p.session_name;
    std::string path = SharedConfigPath(env);
    auto text = path.empty() ? std::nullopt : ReadSmallFile(path);
    IniSections ini = text ? ParseIni(*text) : IniSections{};
    auto it = ini.find(section);
    if (it == ini.end()) {
      return Error::Invalid("sso_session", where + ": sso_session = " + p.session_name +
                                               " but no [" + section + "] section in " +
                                               (path.empty() ? "the config file" : path));
    }
    auto get = [&](const char* k) {
      auto kv = it->second.find(k);
      return kv == it->second.end() ? std::string() : kv->second;
    };
    p.start_url = get("sso_start_url");
    p.region = get("sso_region");
    where += " / [" + section + "]";
  } else {
    p.start_url = profile.Get("sso_start_url");
    p.region = profile.Get("sso_region");
  }
  std::string missing;
  for (const auto& [key, value] :
       {std::pair<const char*, const std::string&>{"sso_start_url", p.start_url},
        {"sso_region", p.region},
        {"sso_account_id", p.account_id},
        {"sso_role_name", p.role_name}}) {
    if (value.empty()) missing += std::string(missing.empty() ? "" : ", ") + key;
  }
  if (!missing.empty()) {
    return Error::Invalid("sso", where + ": SSO settings incomplete, missing " + missing);
  }
  return p;
}

Result<Credentials> GetSsoCredentials(const SsoProfile& p, const SsoOptions& options) {
  const std::string source = "sso profile " + p.profile_name;
  std::string dir = options.cache_dir;
  if (dir.empty()) {
    auto home = NonEmpty(options.env, "HOME");
    if (!home) {
      return Error::Make(
          ErrorCode::kForbidden,
          source + ": HOME is not set, so the SSO token cache cannot be found; " + LoginHint(p));
    }
    dir = *home + "/.aws/sso/cache";
  }
  std::string path =
      dir + "/" + SsoCacheFileName(p.session_name.empty() ? p.start_url : p.session_name);
  auto text = ReadSmallFile(path);
  if (!text) {
    return Error::Make(ErrorCode::kForbidden,
                       source + ": no cached SSO token (" + path + "); " + LoginHint(p));
  }
  auto j = nlohmann::json::parse(*text, nullptr, false);
  auto str = [](const nlohmann::json& o, const char* k) {
    return o.is_object() && o.contains(k) && o[k].is_string() ? o[k].get<std::string>()
                                                              : std::string();
  };
  std::string token = str(j, "accessToken");
  std::string expires_at = str(j, "expiresAt");
  auto expires_ms = ParseCacheTime(expires_at);
  if (token.empty() || !expires_ms) {
    return Error::Make(ErrorCode::kForbidden, source + ": the cached SSO token " + path +
                                                  " is unreadable (no accessToken/expiresAt); " +
                                                  LoginHint(p));
  }
  int64_t now = options.now_ms ? options.now_ms() : CredentialsNowMs();
  if (now >= *expires_ms) {
    return Error::Make(ErrorCode::kForbidden,
                       source + ": the SSO token expired at " + expires_at + "; " + LoginHint(p));
  }

  auto endpoint = ResolveEndpoint(SsoPortalService(), p.region, "", options.env);
  if (!endpoint.ok()) return endpoint.error();
  HttpRequest req;
  req.url = *endpoint + "/federation/credentials?account_id=" + UriEncode(p.account_id, false) +
            "&role_name=" + UriEncode(p.role_name, false);
  req.headers = {{"x-amz-sso_bearer_token", token}, {"Accept", "application/json"}};
  req.timeout_ms = options.timeout_ms;
  req.connect_timeout_ms = std::min(options.timeout_ms, 3000);
  auto transport = options.transport ? options.transport : DefaultTransport();
  HttpResponse resp = transport->Perform(req);
  if (resp.failure != TransportFailure::kNone || resp.status < 200 || resp.status >= 300) {
    AwsFailure f = ParseFailure(resp);
    f.operation = "SSO.GetRoleCredentials";
    f.resource = p.account_id + "/" + p.role_name;
    Error e = CredentialsServiceError(f);
    if (resp.failure == TransportFailure::kNone && (resp.status == 401 || resp.status == 403)) {
      e.message =
          source + ": " + e.message + "; the SSO token may have been revoked: " + LoginHint(p);
    } else {
      e.message = source + ": " + e.message;
    }
    return e;
  }
  auto body = nlohmann::json::parse(resp.body, nullptr, false);
  const nlohmann::json* rc = nullptr;
  if (body.is_object() && body.contains("roleCredentials") && body["roleCredentials"].is_object()) {
    rc = &body["roleCredentials"];
  }
  if (!rc) {
    return Error::Make(ErrorCode::kUpstreamUnavailable,
                       source + ": GetRoleCredentials answer without roleCredentials");
  }
  Credentials c;
  c.keys = {str(*rc, "accessKeyId"), str(*rc, "secretAccessKey"), str(*rc, "sessionToken")};
  c.source = "sso:" + p.profile_name;
  if (c.keys.access_key_id.empty() || c.keys.secret_access_key.empty()) {
    return Error::Make(ErrorCode::kUpstreamUnavailable,
                       source + ": GetRoleCredentials answer lacks accessKeyId/secretAccessKey");
  }
  if (!rc->contains("expiration") || !(*rc)["expiration"].is_number_integer()) {
    return Error::Make(ErrorCode::kUpstreamUnavailable,
                       source + ": GetRoleCredentials answer lacks expiration (epoch ms)");
  }
  c.expiration_ms = (*rc)["expiration"].get<int64_t>();
  return c;
}

}  // namespace imagegen::aws
