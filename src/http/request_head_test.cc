#include "http/request_head.h"

#include <gtest/gtest.h>

namespace imagegen {
namespace {

Result<RequestHead> Parse(const std::string& head, HeadLimits limits = {}) {
  return ParseRequestHead(head, limits);
}

ErrorCode CodeOf(const std::string& head) {
  auto parsed = Parse(head);
  EXPECT_FALSE(parsed.ok()) << head;
  return parsed.ok() ? ErrorCode::kInternal : parsed.error().code;
}

TEST(RequestHeadTest, ParsesAnOrdinaryRequest) {
  auto head = Parse(
      "POST /generate?x=1 HTTP/1.1\r\nHost: localhost:8080\r\nContent-Length: 12\r\n"
      "Content-Type:application/json \r\n\r\n");
  ASSERT_TRUE(head.ok()) << head.error().message;
  EXPECT_EQ(head->method, "POST");
  EXPECT_EQ(head->target, "/generate?x=1");
  EXPECT_EQ(head->framing, BodyFraming::kLength);
  EXPECT_EQ(head->content_length, 12u);
  EXPECT_EQ(head->Field("content-type"), "application/json");
  EXPECT_TRUE(head->keep_alive);
}

TEST(RequestHeadTest, ChunkedIsCaseInsensitiveAndOnlyOnce) {
  auto head = Parse("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n");
  ASSERT_TRUE(head.ok());
  EXPECT_EQ(head->framing, BodyFraming::kChunked);
  EXPECT_EQ(CodeOf("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n"),
            ErrorCode::kInvalidRequest);
  EXPECT_EQ(CodeOf("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
            ErrorCode::kNotImplemented);
}

TEST(RequestHeadTest, RefusesSmugglingShapes) {
  const char* cases[] = {
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: abc\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n folded\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\nX-A : 1\r\n\r\n",
      "GET / HTTP/1.1\nHost: a\n\n",
      "GET / HTTP/1.1\r\nHost: a\rX: 1\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\nX-A: a\x01b\r\n\r\n",
      "GET / HTTP/1.1\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n",
      "GET / HTTP/2.0\r\nHost: a\r\n\r\n",
      "GET / HTTP/1.1x\r\nHost: a\r\n\r\n",
      "GET /  HTTP/1.1\r\nHost: a\r\n\r\n",
      "GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n",
      "G(T / HTTP/1.1\r\nHost: a\r\n\r\n",
      "GET / HTTP/1.1\r\n: empty\r\n\r\n",
      "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n",
  };
  for (const char* head : cases) EXPECT_EQ(CodeOf(head), ErrorCode::kInvalidRequest) << head;
}

TEST(RequestHeadTest, LimitsGive431) {
  std::string many = "GET / HTTP/1.1\r\nHost: a\r\n";
  for (int i = 0; i < 101; ++i) many += "X-" + std::to_string(i) + ": v\r\n";
  EXPECT_EQ(CodeOf(many + "\r\n"), ErrorCode::kHeadersTooLarge);
  std::string big = "GET / HTTP/1.1\r\nHost: a\r\nX: " + std::string(17000, 'v') + "\r\n\r\n";
  EXPECT_EQ(CodeOf(big), ErrorCode::kHeadersTooLarge);
}

TEST(RequestHeadTest, ContentCodings) {
  auto gzip = Parse("POST / HTTP/1.1\r\nHost: a\r\nContent-Encoding: x-gzip\r\n\r\n");
  ASSERT_TRUE(gzip.ok());
  EXPECT_EQ(gzip->content_encoding, "gzip");
  EXPECT_EQ(CodeOf("POST / HTTP/1.1\r\nHost: a\r\nContent-Encoding: br\r\n\r\n"),
            ErrorCode::kUnsupportedMediaType);
}

TEST(RequestHeadTest, ConnectionAndVersion) {
  auto old = Parse("GET / HTTP/1.0\r\n\r\n");
  ASSERT_TRUE(old.ok());
  EXPECT_FALSE(old->keep_alive);
  auto close = Parse("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
  ASSERT_TRUE(close.ok());
  EXPECT_FALSE(close->keep_alive);
  auto asterisk = Parse("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n");
  EXPECT_TRUE(asterisk.ok());
}

TEST(RequestHeadTest, FindsTheEndAndStopsAtABareLf) {
  EXPECT_EQ(FindHeadEnd("GET / HTTP/1.1\r\nHost: a\r\n\r\nBODY"), 27u);
  EXPECT_FALSE(FindHeadEnd("GET / HTTP/1.1\r\nHost: a\r\n").has_value());
  EXPECT_EQ(FindHeadEnd("\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"), 31u);
  EXPECT_EQ(FindHeadEnd("GET / HTTP/1.1\nHost"), 15u);  // handed to the parser, which refuses
}

TEST(RequestHeadTest, RefusesEarlyWhatCannotBecomeARequestLine) {
  EXPECT_TRUE(MayBecomeRequestHead(""));
  EXPECT_TRUE(MayBecomeRequestHead("PO"));
  EXPECT_TRUE(MayBecomeRequestHead("\r\nGET /x"));
  EXPECT_FALSE(MayBecomeRequestHead("{\"prompt\":\"x\"}"));
  EXPECT_FALSE(MayBecomeRequestHead("\x16\x03\x01\x02"));  // a TLS ClientHello
  EXPECT_FALSE(MayBecomeRequestHead(std::string(40, 'A')));
}

}  // namespace
}  // namespace imagegen
