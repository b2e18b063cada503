#include "aws/credentials.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "aws/fake_transport.h"

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

}  // namespace
}  // namespace imagegen::aws
