#include "aws/sigv4.h"

#include <gtest/gtest.h>

#include "aws/encoding.h"

namespace imagegen::aws {
namespace {

// Vectors from AWS's SigV4 test suite and the S3 SigV4 documentation (also reproduced with
// botocore in tests/integration/test_aws_sigv4.py).
const SigningKeys kSuiteKeys{"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", ""};
const SigningKeys kS3DocKeys{"AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                             ""};
constexpr int64_t k20150830T123600Z = 1440938160;
constexpr int64_t k20130524T000000Z = 1369353600;

std::string HeaderValue(const SignableRequest& r, const std::string& name) {
  for (const auto& [n, v] : r.headers) {
    if (Lower(n) == name) return v;
  }
  return "";
}

TEST(SigV4, SuiteGetVanilla) {
  SignableRequest r;
  r.method = "GET";
  r.host = "example.amazonaws.com";
  SignHeaders(&r, kSuiteKeys, {"service", "us-east-1", k20150830T123600Z, false, false});
  EXPECT_EQ(HeaderValue(r, "authorization"),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
            "SignedHeaders=host;x-amz-date, "
            "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
  EXPECT_EQ(HeaderValue(r, "x-amz-date"), "20150830T123600Z");
  EXPECT_EQ(HeaderValue(r, "x-amz-content-sha256"), "");  // only S3 sends it
}

TEST(SigV4, SuiteQueryOrderAndPost) {
  SignableRequest r;
  r.host = "example.amazonaws.com";
  r.query = {{"Param2", "value2"}, {"Param1", "value1"}};
  auto parts =
      SignHeaders(&r, kSuiteKeys, {"service", "us-east-1", k20150830T123600Z, false, false});
  EXPECT_EQ(parts.signature, "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500");

  SignableRequest post;
  post.method = "POST";
  post.host = "example.amazonaws.com";
  parts = SignHeaders(&post, kSuiteKeys, {"service", "us-east-1", k20150830T123600Z, false, false});
  EXPECT_EQ(parts.signature, "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b");
}

TEST(SigV4, S3DocumentationGetObject) {
  SignableRequest r;
  r.host = "examplebucket.s3.amazonaws.com";
  r.path = "/test.txt";
  r.headers = {{"Range", "bytes=0-9"}};
  auto parts = SignHeaders(&r, kS3DocKeys, {"s3", "us-east-1", k20130524T000000Z, true, false});
  EXPECT_EQ(parts.signed_headers, "host;range;x-amz-content-sha256;x-amz-date");
  EXPECT_EQ(parts.signature, "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
  EXPECT_EQ(HeaderValue(r, "x-amz-content-sha256"), Sha256Hex(""));
}

TEST(SigV4, S3DocumentationPresignedUrl) {
  SignableRequest r;
  r.host = "examplebucket.s3.amazonaws.com";
  r.path = "/test.txt";
  std::string q =
      PresignQuery(r, kS3DocKeys, {"s3", "us-east-1", k20130524T000000Z, true, false}, 86400);
  EXPECT_EQ(
      q,
      "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-"
      "east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-"
      "SignedHeaders=host&X-Amz-Signature="
      "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404");
}

TEST(SigV4, SessionTokenIsSignedAndResigningReplacesHeaders) {
  SignableRequest r;
  r.host = "sqs.us-east-1.amazonaws.com";
  SigningKeys keys = kSuiteKeys;
  keys.session_token = "token/with+chars=";
  auto first = SignHeaders(&r, keys, {"sqs", "us-east-1", k20150830T123600Z, false, false});
  EXPECT_EQ(first.signed_headers, "host;x-amz-date;x-amz-security-token");
  EXPECT_EQ(HeaderValue(r, "x-amz-security-token"), "token/with+chars=");
  size_t count = r.headers.size();
  auto second = SignHeaders(&r, keys, {"sqs", "us-east-1", k20150830T123600Z + 60, false, false});
  EXPECT_EQ(r.headers.size(), count);  // replaced, not duplicated
  EXPECT_NE(first.signature, second.signature);
}

TEST(SigV4, UnsignedPayloadHeader) {
  SignableRequest r;
  r.method = "PUT";
  r.host = "b.s3.amazonaws.com";
  r.path = "/k";
  r.body = "data";
  auto parts = SignHeaders(&r, kS3DocKeys, {"s3", "us-east-1", k20130524T000000Z, true, true});
  EXPECT_EQ(HeaderValue(r, "x-amz-content-sha256"), "UNSIGNED-PAYLOAD");
  EXPECT_TRUE(parts.canonical_request.ends_with("\nUNSIGNED-PAYLOAD"));
}

TEST(SigV4, PathEncodingS3OnceOthersTwice) {
  EXPECT_EQ(CanonicalUri("/a b/c+d~e%f/ü", true), "/a%20b/c%2Bd~e%25f/%C3%BC");
  EXPECT_EQ(CanonicalUri("/a b/c+d~e%f/ü", false), "/a%2520b/c%252Bd~e%2525f/%25C3%25BC");
  // Only services other than S3 normalise the path.
  EXPECT_EQ(CanonicalUri("/a/./b/../c//d/", false), "/a/c/d/");
  EXPECT_EQ(CanonicalUri("/a/./b/../c//d/", true), "/a/./b/../c//d/");
  EXPECT_EQ(CanonicalUri("", false), "/");
}

TEST(SigV4, CanonicalQuerySortsEncodedPairs) {
  EXPECT_EQ(CanonicalQueryString({{"b", "2"}, {"a", "x y"}, {"a", "+"}, {"c", ""}, {"é", "/"}}),
            "%C3%A9=%2F&a=%2B&a=x%20y&b=2&c=");  // byte order: % < a
}

TEST(SigV4, HeaderValuesTrimmedAndDuplicatesJoined) {
  SignableRequest r;
  r.host = "h";
  r.headers = {{"X-Test", "  a   b\tc  "}, {"x-test", "d"}, {"User-Agent", "ignored"}};
  auto parts =
      SignHeaders(&r, kSuiteKeys, {"service", "us-east-1", k20150830T123600Z, false, false});
  EXPECT_NE(parts.canonical_request.find("x-test:a b c,d\n"), std::string::npos);
  EXPECT_EQ(parts.signed_headers, "host;x-amz-date;x-test");
}

}  // namespace
}  // namespace imagegen::aws
