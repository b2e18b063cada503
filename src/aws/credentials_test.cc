#include "aws/credentials.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "aws/credentials_testing.h"
#include "aws/encoding.h"
#include "aws/fake_transport.h"
#include "aws/sso.h"

namespace imagegen::aws {
namespace {

constexpr int64_t kNowMs = 1'800'000'000'000;

std::string CredsJson(const std::string& expiration) {
  return R"({"Code":"Success","AccessKeyId":"ASIAX","SecretAccessKey":"S","Token":"T","Expiration":")" +
         expiration + "\"}";
}

std::shared_ptr<CredentialsProvider> Chain(std::map<std::string, std::string> env,
                                           std::shared_ptr<FakeTransport> transport,
                                           int64_t* now_ms) {
  ChainOptions o;
  env.emplace("HOME", "/nonexistent-home");
  o.env = MapEnv(std::move(env));
  o.transport = std::move(transport);
  o.now_ms = [now_ms] { return *now_ms; };
  return MakeDefaultCredentialsChain(std::move(o));
}

TEST(Credentials, EnvironmentFirst) {
  auto t = std::make_shared<FakeTransport>();
  int64_t now = kNowMs;
  auto p = Chain({{"AWS_ACCESS_KEY_ID", "AK"},
                  {"AWS_SECRET_ACCESS_KEY", "SK"},
                  {"AWS_SESSION_TOKEN", "TOK"},
                  {"AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://127.0.0.1:1/creds"}},
                 t, &now);
  auto c = p->Get();
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->keys.access_key_id, "AK");
  EXPECT_EQ(c->keys.session_token, "TOK");
  EXPECT_EQ(c->source, "environment");
  EXPECT_TRUE(t->requests.empty());
}

TEST(Credentials, ProfileFromSharedFile) {
  auto dir = std::filesystem::temp_directory_path() / ("cred_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "credentials")
      << "[ci]\naws_access_key_id = PK\naws_secret_access_key = PS\n";
  auto t = std::make_shared<FakeTransport>();
  int64_t now = kNowMs;
  auto p = Chain({{"AWS_SHARED_CREDENTIALS_FILE", (dir / "credentials").string()},
                  {"AWS_CONFIG_FILE", (dir / "config").string()},
                  {"AWS_PROFILE", "ci"},
                  {"AWS_EC2_METADATA_DISABLED", "true"}},
                 t, &now);
  auto c = p->Get();
  std::filesystem::remove_all(dir);
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->keys.access_key_id, "PK");
  EXPECT_EQ(c->source, "profile:ci");
}

TEST(Credentials, ContainerEndpointWithTokenAndRefresh) {
  auto t = std::make_shared<FakeTransport>();
  int64_t now = kNowMs;
  auto p = Chain({{"AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://127.0.0.1:9/get"},
                  {"AWS_CONTAINER_AUTHORIZATION_TOKEN", "Bearer xyz"}},
                 t, &now);
  // Expires in one hour: cached until 5 minutes before that.
  t->Push(200, CredsJson("2027-01-15T09:00:00Z"));  // kNowMs + 1 h
  auto c = p->Get();
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->keys.access_key_id, "ASIAX");
  EXPECT_EQ(c->keys.session_token, "T");
  ASSERT_EQ(t->requests.size(), 1u);
  EXPECT_EQ(t->requests[0].url, "http://127.0.0.1:9/get");
  EXPECT_EQ(FakeTransport::HeaderOf(t->requests[0], "authorization"), "Bearer xyz");

  now = c->expiration_ms - 10 * 60 * 1000;
  ASSERT_TRUE(p->Get().ok());
  EXPECT_EQ(t->requests.size(), 1u);   // cached
  now = c->expiration_ms - 60 * 1000;  // inside the refresh margin
  t->Push(200, CredsJson("2027-01-15T10:00:00Z"));
  ASSERT_TRUE(p->Get().ok());
  EXPECT_EQ(t->requests.size(), 2u);
  // A failed refresh still serves unexpired credentials.
  now = c->expiration_ms + 3600 * 1000 - 60 * 1000;
  t->Push(500);
  t->Push(500);
  auto stale = p->Get();
  ASSERT_TRUE(stale.ok());
  // ... but not expired ones.
  now = c->expiration_ms + 2 * 3600 * 1000;
  t->Push(500);
  t->Push(500);
  EXPECT_EQ(p->Get().error().code, ErrorCode::kUpstreamUnavailable);
}

TEST(Credentials, ContainerRelativeUriAndRemoteHostRejected) {
  auto t = std::make_shared<FakeTransport>();
  int64_t now = kNowMs;
  auto p = Chain({{"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/creds/abc"}}, t, &now);
  t->Push(200, CredsJson("2027-01-15T08:00:00Z"));
  ASSERT_TRUE(p->Get().ok());
  EXPECT_EQ(t->requests[0].url, "http://169.254.170.2/v2/creds/abc");

  auto bad =
      Chain({{"AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://evil.example.com/creds"}}, t, &now);
  EXPECT_EQ(bad->Get().error().code, ErrorCode::kInvalidRequest);
}

TEST(Credentials, ImdsV2TokenThenRoleThenCredentials) {
  auto t = std::make_shared<FakeTransport>();
  int64_t now = kNowMs;
  auto p = Chain({{"AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:7/"}}, t, &now);
  t->Push(200, "TOKEN123");
  t->Push(200, "my-role\n");
  t->Push(200, CredsJson("2027-01-15T08:00:00Z"));
  auto c = p->Get();
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->source, "imds");
  ASSERT_EQ(t->requests.size(), 3u);
  EXPECT_EQ(t->requests[0].method, "PUT");
  EXPECT_EQ(t->requests[0].url, "http://127.0.0.1:7/latest/api/token");
  EXPECT_EQ(FakeTransport::HeaderOf(t->requests[0], "x-aws-ec2-metadata-token-ttl-seconds"),
            "21600");
  EXPECT_EQ(t->requests[0].timeout_ms, 1000);
  EXPECT_EQ(t->requests[2].url,
            "http://127.0.0.1:7/latest/meta-data/iam/security-credentials/my-role");
  EXPECT_EQ(FakeTransport::HeaderOf(t->requests[2], "x-aws-ec2-metadata-token"), "TOKEN123");
}

TEST(Credentials, NothingFoundIsForbiddenAndListsSources) {
  auto t = std::make_shared<FakeTransport>();
  int64_t now = kNowMs;
  t->PushFailure(TransportFailure::kTimeout);  // IMDS not reachable: not on EC2
  auto c = Chain({}, t, &now)->Get();
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().code, ErrorCode::kForbidden);
  EXPECT_NE(c.error().message.find("IMDSv2"), std::string::npos);

  auto disabled = Chain({{"AWS_EC2_METADATA_DISABLED", "true"}}, t, &now)->Get();
  EXPECT_NE(disabled.error().message.find("[disabled]"), std::string::npos);
  EXPECT_EQ(t->requests.size(), 1u);  // no IMDS call when disabled
}

// The form field `name` of a POST body, decoded.
std::string FormField(const std::string& body, const std::string& name) {
  size_t at = ("&" + body).find("&" + name + "=");
  if (at == std::string::npos) return "";
  size_t start = at + name.size() + 1;
  size_t end = body.find('&', start);
  return UriDecode(body.substr(start, end == std::string::npos ? end : end - start), true);
}

TEST(Credentials, WebIdentityFromEnvironmentRefreshesWithTheRotatedToken) {
  ScratchDir dir;
  std::string token = dir.Write("token", "first-token");
  auto t = std::make_shared<FakeTransport>();
  int64_t now = kNowMs;
  auto p = Chain({{"AWS_WEB_IDENTITY_TOKEN_FILE", token},
                  {"AWS_ROLE_ARN", "arn:aws:iam::1:role/irsa"},
                  {"AWS_ROLE_SESSION_NAME", "pod-1"},
                  {"AWS_ENDPOINT_URL_STS", "http://127.0.0.1:5000"},
                  {"AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://127.0.0.1:1/creds"}},
                 t, &now);
  t->Push(200, StsAnswer("AssumeRoleWithWebIdentity", "ASIA1", "2027-01-15T09:00:00Z"));
  auto c = p->Get();
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->source, "web-identity");
  EXPECT_EQ(c->keys.access_key_id, "ASIA1");
  ASSERT_EQ(t->requests.size(), 1u);  // the container endpoint comes later in the chain
  EXPECT_EQ(FormField(t->requests[0].body, "RoleSessionName"), "pod-1");
  EXPECT_EQ(FormField(t->requests[0].body, "WebIdentityToken"), "first-token");

  now += 30 * 60 * 1000;
  ASSERT_TRUE(p->Get().ok());
  EXPECT_EQ(t->requests.size(), 1u);  // cached
  dir.Write("token", "second-token");
  now = c->expiration_ms - 4 * 60 * 1000;  // inside the refresh margin
  t->Push(200, StsAnswer("AssumeRoleWithWebIdentity", "ASIA2", "2027-01-15T10:00:00Z"));
  auto refreshed = p->Get();
  ASSERT_TRUE(refreshed.ok());
  EXPECT_EQ(refreshed->keys.access_key_id, "ASIA2");
  EXPECT_EQ(FormField(t->requests.at(1).body, "WebIdentityToken"), "second-token");
}

TEST(Credentials, EnvironmentKeysComeBeforeWebIdentity) {
  auto t = std::make_shared<FakeTransport>();
  int64_t now = kNowMs;
  auto p = Chain({{"AWS_ACCESS_KEY_ID", "AK"},
                  {"AWS_SECRET_ACCESS_KEY", "SK"},
                  {"AWS_WEB_IDENTITY_TOKEN_FILE", "/nonexistent/token"},
                  {"AWS_ROLE_ARN", "arn:aws:iam::1:role/irsa"}},
                 t, &now);
  ASSERT_EQ(p->Get()->source, "environment");
  EXPECT_TRUE(t->requests.empty());
}

TEST(Credentials, HalfAWebIdentityIsNotASource) {
  auto t = std::make_shared<FakeTransport>();
  int64_t now = kNowMs;
  auto c =
      Chain({{"AWS_ROLE_ARN", "arn:aws:iam::1:role/irsa"}, {"AWS_EC2_METADATA_DISABLED", "true"}},
            t, &now)
          ->Get();
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().code, ErrorCode::kForbidden);
  EXPECT_NE(c.error().message.find("web identity (AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN) "
                                   "[token file unset]"),
            std::string::npos)
      << c.error().message;
  EXPECT_TRUE(t->requests.empty());
}

TEST(Credentials, WebIdentityFailureStopsTheChain) {
  ScratchDir dir;
  auto t = std::make_shared<FakeTransport>();
  int64_t now = kNowMs;
  ChainOptions o;
  o.env = MapEnv({{"HOME", dir.Path()},
                  {"AWS_WEB_IDENTITY_TOKEN_FILE", dir.Write("token", "tok")},
                  {"AWS_ROLE_ARN", "arn:aws:iam::1:role/irsa"},
                  {"AWS_ENDPOINT_URL_STS", "http://127.0.0.1:5000"}});
  o.transport = t;
  o.now_ms = [&now] { return now; };
  o.sleep_ms = [](int64_t) {};
  t->Push(400, StsErrorAnswer("InvalidIdentityToken", "No OpenIDConnect provider found"));
  t->Push(400, StsErrorAnswer("InvalidIdentityToken", "No OpenIDConnect provider found"));
  t->Push(400, StsErrorAnswer("InvalidIdentityToken", "No OpenIDConnect provider found"));
  auto c = MakeDefaultCredentialsChain(std::move(o))->Get();
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().code, ErrorCode::kForbidden);
  EXPECT_NE(c.error().message.find("InvalidIdentityToken"), std::string::npos);
  EXPECT_EQ(t->requests.size(), 3u);  // retried (the token may be mid-rotation), no IMDS call
}

// A HOME with ~/.aws/config and ~/.aws/credentials, and a chain over it.
struct ProfileHarness {
  ScratchDir home;
  std::shared_ptr<FakeTransport> transport = std::make_shared<FakeTransport>();
  int64_t now = kNowMs;

  ProfileHarness(const std::string& config, const std::string& credentials = "") {
    home.Write(".aws/config", config);
    home.Write(".aws/credentials", credentials);
  }
  std::shared_ptr<CredentialsProvider> For(const std::string& profile,
                                           std::map<std::string, std::string> env = {}) {
    env["HOME"] = home.Path();
    env["AWS_PROFILE"] = profile;
    env["AWS_ENDPOINT_URL_STS"] = "http://127.0.0.1:5000";
    env["AWS_ENDPOINT_URL_SSO"] = "http://127.0.0.1:6000";
    env["AWS_EC2_METADATA_DISABLED"] = "true";
    ChainOptions o;
    o.env = MapEnv(std::move(env));
    o.transport = transport;
    o.now_ms = [this] { return now; };
    o.sleep_ms = [](int64_t) {};
    o.process_timeout_ms = 5000;
    return MakeDefaultCredentialsChain(std::move(o));
  }
};

TEST(Credentials, ProfileWebIdentityTokenFile) {
  ProfileHarness h(
      "[profile ci]\nrole_arn = arn:aws:iam::1:role/gha\nweb_identity_token_file = "
      "~/oidc-token\nrole_session_name = run-7\n");
  h.home.Write("oidc-token", "gha-token");
  h.transport->Push(200, StsAnswer("AssumeRoleWithWebIdentity", "ASIAGHA"));
  auto c = h.For("ci")->Get();
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->source, "web-identity:ci");
  EXPECT_EQ(FormField(h.transport->requests.at(0).body, "WebIdentityToken"), "gha-token");
  EXPECT_EQ(FormField(h.transport->requests.at(0).body, "RoleSessionName"), "run-7");
}

TEST(Credentials, ProfileAssumeRoleChainsSourceProfiles) {
  ProfileHarness h(
      "[profile app]\nrole_arn = arn:aws:iam::1:role/app\nsource_profile = base\n"
      "external_id = x-1\nregion = eu-west-1\n"
      "[profile admin]\nrole_arn = arn:aws:iam::1:role/admin\nsource_profile = app\n"
      "[profile self]\nrole_arn = arn:aws:iam::1:role/self\nsource_profile = self\n"
      "aws_access_key_id = AKIASELF\naws_secret_access_key = self-secret\n",
      "[base]\naws_access_key_id = AKIABASE\naws_secret_access_key = base-secret\n");
  h.transport->Push(200, StsAnswer("AssumeRole", "ASIAAPP"));
  auto app = h.For("app")->Get();
  ASSERT_TRUE(app.ok()) << app.error().message;
  EXPECT_EQ(app->source, "assume-role:app");
  EXPECT_EQ(app->keys.access_key_id, "ASIAAPP");
  const HttpRequest& req = h.transport->requests.at(0);
  EXPECT_TRUE(FakeTransport::HeaderOf(req, "authorization")
                  .starts_with("AWS4-HMAC-SHA256 Credential=AKIABASE/20270115/eu-west-1/sts/"))
      << FakeTransport::HeaderOf(req, "authorization");
  EXPECT_EQ(FormField(req.body, "ExternalId"), "x-1");

  // admin <- app <- base: two calls, the second signed with the first role's keys.
  h.transport->Push(200, StsAnswer("AssumeRole", "ASIAAPP"));
  h.transport->Push(200, StsAnswer("AssumeRole", "ASIAADMIN"));
  auto admin = h.For("admin")->Get();
  ASSERT_TRUE(admin.ok()) << admin.error().message;
  EXPECT_EQ(admin->keys.access_key_id, "ASIAADMIN");
  ASSERT_EQ(h.transport->requests.size(), 3u);
  EXPECT_NE(FakeTransport::HeaderOf(h.transport->requests[2], "authorization")
                .find("Credential=ASIAAPP/"),
            std::string::npos);
  EXPECT_EQ(FakeTransport::HeaderOf(h.transport->requests[2], "x-amz-security-token"),
            "token-ASIAAPP");

  // A profile that names itself uses its own keys.
  h.transport->Push(200, StsAnswer("AssumeRole", "ASIASELF"));
  auto self = h.For("self")->Get();
  ASSERT_TRUE(self.ok()) << self.error().message;
  EXPECT_NE(FakeTransport::HeaderOf(h.transport->requests[3], "authorization")
                .find("Credential=AKIASELF/"),
            std::string::npos);
}

TEST(Credentials, ProfileRoleMisconfigurations) {
  ProfileHarness h(
      "[profile a]\nrole_arn = arn:aws:iam::1:role/a\nsource_profile = b\n"
      "[profile b]\nrole_arn = arn:aws:iam::1:role/b\nsource_profile = a\n"
      "[profile lonely]\nrole_arn = arn:aws:iam::1:role/l\n"
      "[profile ghost]\nrole_arn = arn:aws:iam::1:role/g\nsource_profile = nobody\n"
      "[profile mfa]\nrole_arn = arn:aws:iam::1:role/m\nsource_profile = b\nmfa_serial = x\n");
  auto cycle = h.For("a")->Get();
  ASSERT_FALSE(cycle.ok());
  EXPECT_EQ(cycle.error().code, ErrorCode::kInvalidRequest);
  EXPECT_NE(cycle.error().message.find("cycle"), std::string::npos);
  auto lonely = h.For("lonely")->Get();
  EXPECT_EQ(lonely.error().code, ErrorCode::kInvalidRequest);
  EXPECT_NE(lonely.error().message.find("source_profile, credential_source"), std::string::npos);
  auto ghost = h.For("ghost")->Get();
  EXPECT_EQ(ghost.error().code, ErrorCode::kForbidden);
  EXPECT_NE(ghost.error().message.find("source_profile nobody"), std::string::npos);
  EXPECT_NE(h.For("mfa")->Get().error().message.find("mfa_serial"), std::string::npos);
  EXPECT_TRUE(h.transport->requests.empty());
}

TEST(Credentials, ProfileCredentialSourceEnvironment) {
  ProfileHarness h(
      "[profile ecs]\nrole_arn = arn:aws:iam::1:role/r\ncredential_source = Environment\n"
      "[profile odd]\nrole_arn = arn:aws:iam::1:role/r\ncredential_source = Floppy\n");
  // (With environment keys set, step 1 of the chain would use them before any profile.)
  auto odd = h.For("odd")->Get();
  EXPECT_EQ(odd.error().code, ErrorCode::kInvalidRequest);
  auto none = h.For("ecs")->Get();
  EXPECT_EQ(none.error().code, ErrorCode::kForbidden);
  EXPECT_NE(none.error().message.find("credential_source Environment"), std::string::npos);
}

TEST(Credentials, ProfileCredentialProcess) {
  ProfileHarness h(
      "[profile tool]\ncredential_process = printf "
      "'{\"Version\":1,\"AccessKeyId\":\"ASIATOOL\",\"SecretAccessKey\":\"s\","
      "\"SessionToken\":\"t\",\"Expiration\":\"2027-01-15T09:00:00Z\"}'\n"
      "[profile failing]\ncredential_process = sh -c 'echo denied by helper >&2; exit 9'\n"
      "[profile keys]\naws_access_key_id = AKIAKEYS\naws_secret_access_key = k\n"
      "credential_process = false\n");
  auto c = h.For("tool")->Get();
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->source, "process:tool");
  EXPECT_EQ(c->keys.access_key_id, "ASIATOOL");
  EXPECT_EQ(c->expiration_ms, kNowMs + 3600 * 1000);

  auto failing = h.For("failing")->Get();
  ASSERT_FALSE(failing.ok());
  EXPECT_EQ(failing.error().code, ErrorCode::kUpstreamUnavailable);
  EXPECT_EQ(failing.error().message,
            "profile failing: credential_process exited with status 9: denied by helper");

  // Static keys in the same profile come first, as with the AWS CLI.
  EXPECT_EQ(h.For("keys")->Get()->source, "profile:keys");
}

TEST(Credentials, ProfileSso) {
  ProfileHarness h(
      "[profile dev]\nsso_session = corp\nsso_account_id = 123456789012\n"
      "sso_role_name = Dev\n[sso-session corp]\nsso_start_url = https://corp.awsapps.com/start\n"
      "sso_region = eu-west-1\n");
  auto missing = h.For("dev")->Get();
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, ErrorCode::kForbidden);
  EXPECT_NE(missing.error().message.find("aws sso login --profile dev"), std::string::npos);

  h.home.Write(".aws/sso/cache/" + SsoCacheFileName("corp"),
               R"({"accessToken":"tok","expiresAt":"2027-01-15T10:00:00Z"})");
  h.transport->Push(200, R"({"roleCredentials":{"accessKeyId":"ASIASSO","secretAccessKey":"s",)"
                         R"("sessionToken":"t","expiration":1800001800000}})");
  auto c = h.For("dev")->Get();
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->source, "sso:dev");
  EXPECT_EQ(c->expiration_ms, 1800001800000);
  EXPECT_EQ(FakeTransport::HeaderOf(h.transport->requests.at(0), "x-amz-sso_bearer_token"), "tok");
}

}  // namespace
}  // namespace imagegen::aws
