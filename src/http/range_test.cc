#include "http/range.h"

#include <gtest/gtest.h>

namespace imagegen {
namespace {

HttpResponse Image() {
  HttpResponse response;
  response.body = "0123456789";
  response.SetHeader("Accept-Ranges", "bytes");
  response.SetHeader("ETag", "\"e\"");
  return response;
}

TEST(RangeTest, OneRange) {
  auto r = Image();
  ApplyRange("bytes=2-4", "", &r);
  EXPECT_EQ(r.status, 206);
  EXPECT_EQ(r.body, "234");
  auto suffix = Image();
  ApplyRange("bytes=-3", "", &suffix);
  EXPECT_EQ(suffix.body, "789");
  auto open = Image();
  ApplyRange("bytes=8-", "", &open);
  EXPECT_EQ(open.body, "89");
}

TEST(RangeTest, ManyRangesAreServedWhole) {
  std::string many = "bytes=0-";
  for (int i = 0; i < 2700; ++i) many += ",0-";
  auto r = Image();
  ApplyRange(many, "", &r);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "0123456789");
}

TEST(RangeTest, UnsatisfiableAndIgnored) {
  auto r = Image();
  ApplyRange("bytes=99-", "", &r);
  EXPECT_EQ(r.status, 416);
  EXPECT_TRUE(r.body.empty());
  auto stale = Image();
  ApplyRange("bytes=0-1", "\"other\"", &stale);
  EXPECT_EQ(stale.status, 200);
  HttpResponse json;
  json.body = "{}";
  ApplyRange("bytes=0-0", "", &json);  // not declared rangeable
  EXPECT_EQ(json.status, 200);
}

}  // namespace
}  // namespace imagegen
