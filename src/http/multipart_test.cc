#include "http/multipart.h"

#include <gtest/gtest.h>

#include <random>

namespace imagegen {
namespace {

const std::string kBody =
    "preamble to ignore\r\n"
    "--XyZ\r\n"
    "Content-Disposition: form-data; name=\"prompt\"\r\n"
    "\r\n"
    "a red \"circle\"\r\n"
    "--XyZ  \r\n"
    "Content-Disposition: form-data; name=\"image[]\"; filename=\"a \\\"b\\\".png\"\r\n"
    "Content-Type: image/png\r\n"
    "\r\n"
    "\x89PNG\r\n--XyYnear-miss\r\n-XyZ\r\n"
    "--XyZ\n"
    "content-disposition: FORM-DATA; name=mask; filename=\"\"\n"
    "\n"
    "\r\n"
    "--XyZ--\r\n"
    "epilogue";

TEST(Multipart, SplitsPartsWithNamesFilesAndBytes) {
  auto parts = ParseMultipart(kBody, "XyZ");
  ASSERT_TRUE(parts.ok()) << parts.error().message;
  ASSERT_EQ(parts->size(), 3u);
  EXPECT_EQ((*parts)[0].name, "prompt");
  EXPECT_FALSE((*parts)[0].is_file);
  EXPECT_EQ((*parts)[0].data, "a red \"circle\"");
  EXPECT_EQ((*parts)[1].name, "image[]");
  EXPECT_EQ((*parts)[1].filename, "a \"b\".png");
  EXPECT_EQ((*parts)[1].content_type, "image/png");
  EXPECT_EQ((*parts)[1].data, "\x89PNG\r\n--XyYnear-miss\r\n-XyZ");
  EXPECT_EQ((*parts)[2].name, "mask");
  EXPECT_TRUE((*parts)[2].is_file);
  EXPECT_EQ((*parts)[2].data, "");
}

TEST(Multipart, BoundaryFromContentType) {
  EXPECT_EQ(MultipartBoundary("multipart/form-data; boundary=abc").value(), "abc");
  EXPECT_EQ(MultipartBoundary("Multipart/Form-Data;boundary=\"a b:c\"; charset=utf-8").value(),
            "a b:c");
  EXPECT_EQ(MultipartBoundary("application/xml").error().code, ErrorCode::kUnsupportedMediaType);
  for (const char* bad :
       {"multipart/form-data",
        "multipart/form-data; boundary=", "multipart/form-data; boundary=\"unterminated",
        "multipart/form-data; boundary=\"trailing \"", "multipart/form-data; boundary=a<b"}) {
    auto b = MultipartBoundary(bad);
    ASSERT_FALSE(b.ok()) << bad;
    EXPECT_EQ(b.error().code, ErrorCode::kInvalidRequest) << bad;
  }
  std::string longest(70, 'b');
  EXPECT_TRUE(MultipartBoundary("multipart/form-data; boundary=" + longest).ok());
  EXPECT_FALSE(MultipartBoundary("multipart/form-data; boundary=" + longest + "b").ok());
}

TEST(Multipart, RefusesMalformedBodies) {
  const std::string head = "--b\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\n";
  for (const std::string& body : {
           std::string("no delimiter at all"),
           head + "value without a closing delimiter",
           head + "v\r\n--b",  // no line end, no "--"
           std::string("--b\r\nContent-Type: text/plain\r\n\r\nv\r\n--b--"),  // no disposition
           std::string("--b\r\nContent-Disposition: attachment; name=x\r\n\r\nv\r\n--b--"),
           std::string("--b\r\nContent-Disposition: form-data\r\n\r\nv\r\n--b--"),  // no name
           std::string("--b\r\nContent-Disposition: form-data; name=\"x\r\n\r\nv\r\n--b--"),
           std::string("--b\r\nno colon here\r\n\r\nv\r\n--b--"),
           std::string("--b\r\n folded: header\r\n\r\nv\r\n--b--"),
           std::string("--bgarbage\r\n"),
       }) {
    auto parts = ParseMultipart(body, "b");
    ASSERT_FALSE(parts.ok()) << body;
    EXPECT_EQ(parts.error().code, ErrorCode::kInvalidRequest) << body;
    EXPECT_EQ(parts.error().field, "body") << body;
  }
}

TEST(Multipart, LimitsPartsAndHeaders) {
  std::string body;
  for (int i = 0; i < 5; ++i) {
    body +=
        "--b\r\nContent-Disposition: form-data; name=\"f" + std::to_string(i) + "\"\r\n\r\nv\r\n";
  }
  body += "--b--";
  MultipartLimits limits;
  limits.max_parts = 5;
  EXPECT_TRUE(ParseMultipart(body, "b", limits).ok());
  limits.max_parts = 4;
  EXPECT_FALSE(ParseMultipart(body, "b", limits).ok());
  std::string big =
      "--b\r\nContent-Disposition: form-data; name=\"x\"\r\nX-Pad: " + std::string(10000, 'p') +
      "\r\n\r\nv\r\n--b--";
  EXPECT_FALSE(ParseMultipart(big, "b").ok());
  std::string many = "--b\r\nContent-Disposition: form-data; name=\"x\"\r\n";
  for (int i = 0; i < 20; ++i) many += "X-H: 1\r\n";
  EXPECT_FALSE(ParseMultipart(many + "\r\nv\r\n--b--", "b").ok());
}

// Random damage to a valid body (the unit-test side of http_parsers_fuzz): never a crash, and
// whatever parses keeps within the body and the limits.
TEST(Multipart, SurvivesMutatedBodies) {
  std::mt19937 rng(7);
  MultipartLimits limits;
  limits.max_parts = 3;
  for (int round = 0; round < 20000; ++round) {
    std::string body = kBody;
    int edits = 1 + static_cast<int>(rng() % 8);
    for (int e = 0; e < edits && !body.empty(); ++e) {
      size_t at = rng() % body.size();
      switch (rng() % 3) {
        case 0:
          body[at] = static_cast<char>(rng() % 256);
          break;
        case 1:
          body.erase(at, 1 + rng() % 8);
          break;
        default:
          body.insert(at, std::string(1 + rng() % 4, "-\r\n\"XyZ;="[rng() % 9]));
      }
    }
    auto parts = ParseMultipart(body, "XyZ", limits);
    if (!parts.ok()) continue;
    ASSERT_LE(parts->size(), limits.max_parts);
    size_t total = 0;
    for (const auto& part : *parts) total += part.data.size() + part.name.size();
    ASSERT_LE(total, body.size());
  }
}

}  // namespace
}  // namespace imagegen
