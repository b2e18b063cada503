#include "aws/sso.h"

#include <gtest/gtest.h>

#include "aws/credentials_testing.h"
#include "aws/fake_transport.h"

namespace imagegen::aws {
namespace {

constexpr int64_t kNowMs = 1'800'000'000'000;  // 2027-01-15T08:00:00Z
constexpr const char* kSessionCache = "0ad374308c5a4e22f723adf10145eafad7c4031c.json";  // my-sso
constexpr const char* kLegacyCache =  // https://example.awsapps.com/start
    "e8be5486177c5b5392bd9aa76563515b29358e6e.json";

constexpr const char* kConfig = R"([profile dev]
sso_session = my-sso
sso_account_id = 123456789012
sso_role_name = Developer
region = eu-west-1

[sso-session my-sso]
sso_start_url = https://example.awsapps.com/start
sso_region = eu-central-1
sso_registration_scopes = sso:account:access

[profile legacy]
sso_start_url = https://example.awsapps.com/start
sso_region = us-west-2
sso_account_id = 210987654321
sso_role_name = ReadOnly

[profile broken]
sso_session = nowhere
sso_account_id = 1
sso_role_name = R

[profile partial]
sso_start_url = https://example.awsapps.com/start
sso_role_name = R
)";

std::string CachedToken(const std::string& expires_at) {
  return R"({"startUrl":"https://example.awsapps.com/start","region":"eu-central-1",)"
         R"("accessToken":"bearer-abc","expiresAt":")" +
         expires_at + "\"}";
}

constexpr const char* kRoleCredentials =
    R"({"roleCredentials":{"accessKeyId":"ASIASSO","secretAccessKey":"sso-secret",)"
    R"("sessionToken":"sso-token","expiration":1800003600000}})";

struct SsoHarness {
  using Env = std::map<std::string, std::string>;
  ScratchDir home;
  std::shared_ptr<FakeTransport> transport = std::make_shared<FakeTransport>();
  EnvLookup env;
  SsoOptions options;

  explicit SsoHarness(std::map<std::string, std::string> extra = {
                          {"AWS_ENDPOINT_URL_SSO", "http://127.0.0.1:6000"}}) {
    home.Write(".aws/config", kConfig);
    extra["HOME"] = home.Path();
    env = MapEnv(std::move(extra));
    options.env = env;
    options.transport = transport;
    options.now_ms = [] { return kNowMs; };
  }
  Result<SsoProfile> Load(const std::string& name) {
    return LoadSsoProfile(
        LoadProfile([this, name](const std::string& k) -> std::optional<std::string> {
          return k == "AWS_PROFILE" ? std::optional<std::string>(name) : env(k);
        }),
        env);
  }
};

TEST(Sso, CacheFileNameIsSha1Hex) {
  EXPECT_EQ(SsoCacheFileName("my-sso"), kSessionCache);
  EXPECT_EQ(SsoCacheFileName("https://example.awsapps.com/start"), kLegacyCache);
}

TEST(Sso, SessionProfileGetsRoleCredentials) {
  SsoHarness h;
  h.home.Write(std::string(".aws/sso/cache/") + kSessionCache, CachedToken("2027-01-15T12:00:00Z"));
  auto p = h.Load("dev");
  ASSERT_TRUE(p.ok()) << p.error().message;
  EXPECT_EQ(p->session_name, "my-sso");
  EXPECT_EQ(p->region, "eu-central-1");
  h.transport->Push(200, kRoleCredentials);
  auto c = GetSsoCredentials(*p, h.options);
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->keys.access_key_id, "ASIASSO");
  EXPECT_EQ(c->keys.secret_access_key, "sso-secret");
  EXPECT_EQ(c->keys.session_token, "sso-token");
  EXPECT_EQ(c->expiration_ms, 1800003600000);
  EXPECT_EQ(c->source, "sso:dev");
  const HttpRequest& req = h.transport->requests.at(0);
  EXPECT_EQ(req.method, "GET");
  EXPECT_EQ(req.url,
            "http://127.0.0.1:6000/federation/credentials?account_id=123456789012&role_name="
            "Developer");
  EXPECT_EQ(FakeTransport::HeaderOf(req, "x-amz-sso_bearer_token"), "bearer-abc");
  EXPECT_EQ(FakeTransport::HeaderOf(req, "authorization"), "");
}

TEST(Sso, LegacyProfileUsesStartUrlCacheAndPortalRegion) {
  SsoHarness h(SsoHarness::Env{});
  // The older CLI wrote "UTC" instead of "Z".
  h.home.Write(std::string(".aws/sso/cache/") + kLegacyCache,
               CachedToken("2027-01-15T12:00:00UTC"));
  auto p = h.Load("legacy");
  ASSERT_TRUE(p.ok()) << p.error().message;
  EXPECT_EQ(p->session_name, "");
  h.transport->Push(200, kRoleCredentials);
  auto c = GetSsoCredentials(*p, h.options);
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(h.transport->requests.at(0).url,
            "https://portal.sso.us-west-2.amazonaws.com/federation/credentials?account_id="
            "210987654321&role_name=ReadOnly");
}

TEST(Sso, ExpiredOrMissingTokenSaysToLogIn) {
  SsoHarness h;
  auto p = h.Load("dev");
  ASSERT_TRUE(p.ok());
  auto missing = GetSsoCredentials(*p, h.options);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, ErrorCode::kForbidden);
  EXPECT_NE(missing.error().message.find("run `aws sso login --profile dev`"), std::string::npos)
      << missing.error().message;

  h.home.Write(std::string(".aws/sso/cache/") + kSessionCache, CachedToken("2027-01-15T07:59:59Z"));
  auto expired = GetSsoCredentials(*p, h.options);
  ASSERT_FALSE(expired.ok());
  EXPECT_EQ(expired.error().code, ErrorCode::kForbidden);
  EXPECT_NE(expired.error().message.find("expired"), std::string::npos);
  EXPECT_NE(expired.error().message.find("aws sso login --profile dev"), std::string::npos);

  h.home.Write(std::string(".aws/sso/cache/") + kSessionCache, "{not json");
  EXPECT_EQ(GetSsoCredentials(*p, h.options).error().code, ErrorCode::kForbidden);
  EXPECT_TRUE(h.transport->requests.empty());
}

TEST(Sso, PortalRefusalAndBadAnswers) {
  SsoHarness h;
  h.home.Write(std::string(".aws/sso/cache/") + kSessionCache, CachedToken("2027-01-15T12:00:00Z"));
  auto p = h.Load("dev");
  ASSERT_TRUE(p.ok());
  h.transport->Push(401, R"({"message":"Session token not found or invalid"})",
                    {{"x-amzn-errortype", "UnauthorizedException:http://internal"}});
  auto refused = GetSsoCredentials(*p, h.options);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, ErrorCode::kForbidden);
  EXPECT_NE(refused.error().message.find("UnauthorizedException"), std::string::npos);
  EXPECT_NE(refused.error().message.find("aws sso login --profile dev"), std::string::npos);

  h.transport->Push(500, "");
  EXPECT_EQ(GetSsoCredentials(*p, h.options).error().code, ErrorCode::kUpstreamUnavailable);
  h.transport->Push(200, "<html>");
  EXPECT_EQ(GetSsoCredentials(*p, h.options).error().code, ErrorCode::kUpstreamUnavailable);
  h.transport->Push(200, R"({"roleCredentials":{"accessKeyId":"A","secretAccessKey":"S"}})");
  auto no_exp = GetSsoCredentials(*p, h.options);
  EXPECT_NE(no_exp.error().message.find("expiration"), std::string::npos);
}

TEST(Sso, IncompleteProfilesNameWhatIsMissing) {
  SsoHarness h;
  auto broken = h.Load("broken");
  ASSERT_FALSE(broken.ok());
  EXPECT_EQ(broken.error().code, ErrorCode::kInvalidRequest);
  EXPECT_NE(broken.error().message.find("[sso-session nowhere]"), std::string::npos);
  auto partial = h.Load("partial");
  ASSERT_FALSE(partial.ok());
  EXPECT_NE(partial.error().message.find("missing sso_region, sso_account_id"), std::string::npos)
      << partial.error().message;
}

}  // namespace
}  // namespace imagegen::aws
