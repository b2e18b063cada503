#include "http/body_coding.h"

#include <gtest/gtest.h>
#include <zlib.h>

namespace imagegen {
namespace {

std::string Gzip(const std::string& data) {
  z_stream zs{};
  deflateInit2(&zs, 9, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY);
  std::string out(deflateBound(&zs, data.size()) + 32, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(data.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  deflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

TEST(BodyCodingTest, InflatesWithinTheLimit) {
  auto body = DecodeBody("gzip", Gzip(R"({"prompt":"a"})"), 1024);
  ASSERT_TRUE(body.ok());
  EXPECT_EQ(*body, R"({"prompt":"a"})");
}

TEST(BodyCodingTest, ABombStopsAtTheLimit) {
  std::string bomb = Gzip(std::string(50 << 20, '\0'));
  EXPECT_LT(bomb.size(), 100000u);
  auto body = DecodeBody("gzip", bomb, 1 << 20);
  ASSERT_FALSE(body.ok());
  EXPECT_EQ(body.error().code, ErrorCode::kPayloadTooLarge);
}

TEST(BodyCodingTest, CorruptAndTruncatedAreRefused) {
  std::string good = Gzip("hello hello hello");
  EXPECT_EQ(DecodeBody("gzip", good.substr(0, good.size() - 4), 1024).error().code,
            ErrorCode::kInvalidRequest);
  EXPECT_EQ(DecodeBody("gzip", "not gzip", 1024).error().code, ErrorCode::kInvalidRequest);
  EXPECT_EQ(*DecodeBody("", "plain", 1024), "plain");
}

}  // namespace
}  // namespace imagegen
