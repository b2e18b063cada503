#include "aws/sts.h"

#include <gtest/gtest.h>

#include "aws/credentials_testing.h"
#include "aws/encoding.h"
#include "aws/fake_transport.h"

namespace imagegen::aws {
namespace {

constexpr int64_t kNowMs = 1'800'000'000'000;  // 2027-01-15T08:00:00Z

using Env = std::map<std::string, std::string>;

struct StsHarness {
  ScratchDir dir;
  std::shared_ptr<FakeTransport> transport = std::make_shared<FakeTransport>();
  std::vector<int64_t> sleeps;
  StsOptions options;
  WebIdentityParams params;

  explicit StsHarness(std::map<std::string, std::string> env = {
                          {"AWS_ENDPOINT_URL_STS", "http://127.0.0.1:5000"}}) {
    options.env = MapEnv(std::move(env));
    options.transport = transport;
    options.sleep_ms = [this](int64_t ms) { sleeps.push_back(ms); };
    options.now_ms = [] { return kNowMs; };
    params.role_arn = "arn:aws:iam::123456789012:role/pod-role";
    params.token_file = dir.Write("token", "eyJ.first.token\n");
  }
};

// The decoded form fields of a POST body.
std::map<std::string, std::string> Form(const std::string& body) {
  std::map<std::string, std::string> out;
  size_t start = 0;
  while (start <= body.size()) {
    size_t amp = body.find('&', start);
    std::string pair = body.substr(start, amp == std::string::npos ? amp : amp - start);
    size_t eq = pair.find('=');
    out[UriDecode(pair.substr(0, eq), true)] =
        eq == std::string::npos ? "" : UriDecode(pair.substr(eq + 1), true);
    if (amp == std::string::npos) break;
    start = amp + 1;
  }
  return out;
}

TEST(Sts, WebIdentitySendsTokenUnsigned) {
  StsHarness h;
  h.params.session_name = "my-session";
  h.params.duration_s = 900;
  h.transport->Push(200, StsAnswer("AssumeRoleWithWebIdentity", "ASIAWEB"));
  auto c = AssumeRoleWithWebIdentity(h.params, h.options);
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->keys.access_key_id, "ASIAWEB");
  EXPECT_EQ(c->keys.secret_access_key, "secret/ASIAWEB");
  EXPECT_EQ(c->keys.session_token, "token-ASIAWEB");
  EXPECT_EQ(c->expiration_ms, kNowMs + 3600 * 1000);
  ASSERT_EQ(h.transport->requests.size(), 1u);
  const HttpRequest& req = h.transport->requests[0];
  EXPECT_EQ(req.method, "POST");
  EXPECT_EQ(req.url, "http://127.0.0.1:5000/");
  EXPECT_EQ(FakeTransport::HeaderOf(req, "authorization"), "");
  EXPECT_TRUE(FakeTransport::HeaderOf(req, "content-type")
                  .starts_with("application/x-www-form-urlencoded"));
  auto form = Form(req.body);
  EXPECT_EQ(form["Action"], "AssumeRoleWithWebIdentity");
  EXPECT_EQ(form["Version"], "2011-06-15");
  EXPECT_EQ(form["RoleArn"], "arn:aws:iam::123456789012:role/pod-role");
  EXPECT_EQ(form["RoleSessionName"], "my-session");
  EXPECT_EQ(form["WebIdentityToken"], "eyJ.first.token");  // trimmed
  EXPECT_EQ(form["DurationSeconds"], "900");
}

TEST(Sts, WebIdentityRegionalEndpointAndGeneratedSessionName) {
  StsHarness h(Env{{"AWS_REGION", "eu-central-1"}});
  h.transport->Push(200, StsAnswer("AssumeRoleWithWebIdentity", "ASIAWEB"));
  ASSERT_TRUE(AssumeRoleWithWebIdentity(h.params, h.options).ok());
  EXPECT_EQ(h.transport->requests[0].url, "https://sts.eu-central-1.amazonaws.com/");
  EXPECT_EQ(Form(h.transport->requests[0].body)["RoleSessionName"],
            "imagegen-" + std::to_string(kNowMs));

  StsHarness none(Env{});
  none.transport->Push(200, StsAnswer("AssumeRoleWithWebIdentity", "ASIAWEB"));
  ASSERT_TRUE(AssumeRoleWithWebIdentity(none.params, none.options).ok());
  EXPECT_EQ(none.transport->requests[0].url, "https://sts.us-east-1.amazonaws.com/");
}

TEST(Sts, WebIdentityRereadsTheTokenFile) {
  StsHarness h;
  h.transport->Push(200, StsAnswer("AssumeRoleWithWebIdentity", "A1"));
  ASSERT_TRUE(AssumeRoleWithWebIdentity(h.params, h.options).ok());
  h.dir.Write("token", "eyJ.rotated.token");
  h.transport->Push(200, StsAnswer("AssumeRoleWithWebIdentity", "A2"));
  auto c = AssumeRoleWithWebIdentity(h.params, h.options);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->keys.access_key_id, "A2");
  EXPECT_EQ(Form(h.transport->requests[1].body)["WebIdentityToken"], "eyJ.rotated.token");
}

TEST(Sts, WebIdentityStsErrorIsForbiddenAndNamesTheCode) {
  StsHarness h;
  h.options.max_attempts = 1;
  h.transport->Push(403, StsErrorAnswer("AccessDenied",
                                        "Not authorized to perform "
                                        "sts:AssumeRoleWithWebIdentity"));
  auto c = AssumeRoleWithWebIdentity(h.params, h.options);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().code, ErrorCode::kForbidden);
  EXPECT_NE(c.error().message.find("STS.AssumeRoleWithWebIdentity"), std::string::npos);
  EXPECT_NE(c.error().message.find("AccessDenied"), std::string::npos);
  EXPECT_NE(c.error().message.find("pod-role"), std::string::npos);
  EXPECT_NE(c.error().message.find("rid-err"), std::string::npos);

  // A 400 (say, a malformed role ARN) is also "no access", not the caller's bad request.
  h.transport->Push(400, StsErrorAnswer("ValidationError", "bad arn"));
  EXPECT_EQ(AssumeRoleWithWebIdentity(h.params, h.options).error().code, ErrorCode::kForbidden);
}

TEST(Sts, WebIdentityRetriesTransientFailures) {
  StsHarness h;
  h.transport->Push(400, StsErrorAnswer("IDPCommunicationError", "IdP unreachable"));
  h.transport->Push(503, "");
  h.transport->Push(200, StsAnswer("AssumeRoleWithWebIdentity", "ASIAOK"));
  auto c = AssumeRoleWithWebIdentity(h.params, h.options);
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(h.transport->requests.size(), 3u);
  EXPECT_EQ(h.sleeps.size(), 2u);

  // Bounded: three attempts, then the last failure.
  for (int i = 0; i < 3; ++i) h.transport->PushFailure(TransportFailure::kTimeout);
  auto t = AssumeRoleWithWebIdentity(h.params, h.options);
  EXPECT_EQ(t.error().code, ErrorCode::kUpstreamTimeout);
  EXPECT_EQ(h.transport->requests.size(), 6u);
}

TEST(Sts, WebIdentityBadAnswers) {
  StsHarness h;
  h.transport->Push(200, "<AssumeRoleWithWebIdentityResponse><oops>");
  auto garbled = AssumeRoleWithWebIdentity(h.params, h.options);
  EXPECT_EQ(garbled.error().code, ErrorCode::kUpstreamUnavailable);
  EXPECT_NE(garbled.error().message.find("not XML"), std::string::npos);

  h.transport->Push(200, "<AssumeRoleWithWebIdentityResponse/>");
  auto empty = AssumeRoleWithWebIdentity(h.params, h.options);
  EXPECT_EQ(empty.error().code, ErrorCode::kUpstreamUnavailable);
  EXPECT_NE(empty.error().message.find("<Credentials>"), std::string::npos);

  h.transport->Push(200, StsAnswer("AssumeRoleWithWebIdentity", "A", "soon"));
  auto bad_date = AssumeRoleWithWebIdentity(h.params, h.options);
  EXPECT_NE(bad_date.error().message.find("Expiration"), std::string::npos);
}

TEST(Sts, WebIdentityMissingTokenFile) {
  StsHarness h;
  h.params.token_file = h.dir.Path("absent");
  auto c = AssumeRoleWithWebIdentity(h.params, h.options);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().code, ErrorCode::kForbidden);
  EXPECT_NE(c.error().message.find(h.dir.Path("absent")), std::string::npos);
  EXPECT_TRUE(h.transport->requests.empty());
}

TEST(Sts, AssumeRoleIsSignedWithTheSourceKeys) {
  StsHarness h(Env{{"AWS_ENDPOINT_URL_STS", "http://127.0.0.1:5000"}, {"AWS_REGION", "eu-west-1"}});
  h.transport->Push(200, StsAnswer("AssumeRole", "ASIAROLE"));
  AssumeRoleParams p;
  p.role_arn = "arn:aws:iam::123456789012:role/deployer";
  p.session_name = "ci";
  p.external_id = "ext-42";
  Credentials source;
  source.keys = {"AKIASOURCE", "source-secret", ""};
  auto c = AssumeRole(p, source, h.options);
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->keys.access_key_id, "ASIAROLE");
  const HttpRequest& req = h.transport->requests.at(0);
  EXPECT_EQ(req.url, "http://127.0.0.1:5000/");
  std::string auth = FakeTransport::HeaderOf(req, "authorization");
  EXPECT_TRUE(auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIASOURCE/20270115/eu-west-1/sts/"))
      << auth;
  auto form = Form(req.body);
  EXPECT_EQ(form["Action"], "AssumeRole");
  EXPECT_EQ(form["RoleArn"], "arn:aws:iam::123456789012:role/deployer");
  EXPECT_EQ(form["RoleSessionName"], "ci");
  EXPECT_EQ(form["ExternalId"], "ext-42");

  h.transport->Push(403, StsErrorAnswer("AccessDenied", "no trust"));
  auto denied = AssumeRole(p, source, h.options);
  EXPECT_EQ(denied.error().code, ErrorCode::kForbidden);
  EXPECT_NE(denied.error().message.find("STS.AssumeRole"), std::string::npos);
}

TEST(Sts, ParseStsCredentialsNeedsAllFields) {
  std::string xml = StsAnswer("AssumeRole", "A");
  EXPECT_TRUE(ParseStsCredentials(xml, "t").ok());
  std::string no_token = xml;
  no_token.replace(no_token.find("<SessionToken>"),
                   no_token.find("</SessionToken>") + 15 - no_token.find("<SessionToken>"), "");
  EXPECT_EQ(ParseStsCredentials(no_token, "t").error().code, ErrorCode::kUpstreamUnavailable);
}

}  // namespace
}  // namespace imagegen::aws
