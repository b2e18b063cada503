#include "aws/credentials_process.h"

#include <gtest/gtest.h>

#include <chrono>

#include "aws/credentials_testing.h"

namespace imagegen::aws {
namespace {

TEST(CredentialsProcess, RunsThroughTheShell) {
  auto out = RunShellCommand("printf '%s' \"a b\"; echo oops >&2; exit 3", {});
  ASSERT_TRUE(out.ok()) << out.error().message;
  EXPECT_EQ(out->exit_code, 3);
  EXPECT_EQ(out->out, "a b");
  EXPECT_EQ(out->err, "oops\n");
}

TEST(CredentialsProcess, ParsesFullAndMinimalOutput) {
  ScratchDir dir;
  std::string script = dir.Write(
      "creds.sh",
      "#!/bin/sh\ncat <<'J'\n{\"Version\": 1, \"AccessKeyId\": \"ASIAPROC\", \"SecretAccessKey\": "
      "\"proc-secret\", \"SessionToken\": \"proc-token\", \"Expiration\": "
      "\"2027-01-15T09:00:00Z\"}\nJ\n");
  auto c = CredentialsFromProcess("sh '" + script + "' --profile x", "profile p", {});
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->keys.access_key_id, "ASIAPROC");
  EXPECT_EQ(c->keys.secret_access_key, "proc-secret");
  EXPECT_EQ(c->keys.session_token, "proc-token");
  EXPECT_EQ(c->expiration_ms, 1'800'003'600'000);

  auto minimal = ParseProcessCredentials(
      R"({"Version":1,"AccessKeyId":"AKIA","SecretAccessKey":"S"})", "profile p");
  ASSERT_TRUE(minimal.ok());
  EXPECT_EQ(minimal->expiration_ms, 0);  // long-term keys: never refreshed
  EXPECT_EQ(minimal->keys.session_token, "");
}

TEST(CredentialsProcess, NonZeroExitGivesFirstStderrLine) {
  auto c = CredentialsFromProcess("echo '  token expired: log in again' >&2; echo more >&2; exit 2",
                                  "profile p", {});
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().code, ErrorCode::kUpstreamUnavailable);
  EXPECT_EQ(c.error().message,
            "profile p: credential_process exited with status 2: token expired: log in again");
}

TEST(CredentialsProcess, TimeoutKillsTheProcessGroup) {
  ProcessOptions o;
  o.timeout_ms = 300;
  auto start = std::chrono::steady_clock::now();
  // The child holds stdout open in the background; the group kill must end it too.
  auto c = CredentialsFromProcess("sleep 30 & sleep 30", "profile slow", o);
  auto took = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().code, ErrorCode::kUpstreamTimeout);
  EXPECT_NE(c.error().message.find("profile slow: credential_process timed out"), std::string::npos)
      << c.error().message;
  EXPECT_LT(took, std::chrono::seconds(5));

  // Closing stdout early does not escape the timeout either.
  auto closed = RunShellCommand("exec >&- 2>&-; sleep 30", o);
  EXPECT_EQ(closed.error().code, ErrorCode::kUpstreamTimeout);
}

TEST(CredentialsProcess, OutputIsBounded) {
  ProcessOptions o;
  o.max_output_bytes = 1000;
  auto c = RunShellCommand("while :; do echo xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; done", o);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().code, ErrorCode::kUpstreamUnavailable);
  EXPECT_NE(c.error().message.find("more than 1000 bytes"), std::string::npos);

  o.max_stderr_bytes = 10;
  auto err = RunShellCommand("echo 0123456789abcdef >&2", o);
  ASSERT_TRUE(err.ok());
  EXPECT_EQ(err->err, "0123456789");
}

TEST(CredentialsProcess, BadOutputs) {
  auto not_json = CredentialsFromProcess("echo hello", "profile p", {});
  EXPECT_EQ(not_json.error().code, ErrorCode::kUpstreamUnavailable);
  EXPECT_NE(not_json.error().message.find("not a JSON object"), std::string::npos);
  for (const char* json : {R"({"AccessKeyId":"A","SecretAccessKey":"S"})",
                           R"({"Version":2,"AccessKeyId":"A","SecretAccessKey":"S"})",
                           R"({"Version":"1","AccessKeyId":"A","SecretAccessKey":"S"})"}) {
    auto c = ParseProcessCredentials(json, "p");
    ASSERT_FALSE(c.ok()) << json;
    EXPECT_NE(c.error().message.find("Version"), std::string::npos);
  }
  EXPECT_NE(ParseProcessCredentials(R"({"Version":1,"AccessKeyId":"A"})", "p")
                .error()
                .message.find("SecretAccessKey"),
            std::string::npos);
  EXPECT_NE(
      ParseProcessCredentials(
          R"({"Version":1,"AccessKeyId":"A","SecretAccessKey":"S","Expiration":"never"})", "p")
          .error()
          .message.find("Expiration"),
      std::string::npos);
  auto missing = CredentialsFromProcess("/nonexistent/creds-helper", "profile p", {});
  EXPECT_EQ(missing.error().code, ErrorCode::kUpstreamUnavailable);
  EXPECT_NE(missing.error().message.find("status 127"), std::string::npos);
}

}  // namespace
}  // namespace imagegen::aws
