#include "core/strings.h"

#include <gtest/gtest.h>

namespace imagegen {
namespace {

std::string Encode(uint32_t code_point) {
  std::string out;
  AppendCodePoint(code_point, &out);
  return out;
}

TEST(StringsTest, AppendCodePointWritesUtf8) {
  EXPECT_EQ(Encode(0x41), "A");
  EXPECT_EQ(Encode(0xE9), "\xC3\xA9");
  EXPECT_EQ(Encode(0x20AC), "\xE2\x82\xAC");
  EXPECT_EQ(Encode(0x1F950), "\xF0\x9F\xA5\x90");  // croissant
}

TEST(StringsTest, AppendCodePointReplacesWhatUtf8CannotCarry) {
  EXPECT_EQ(Encode(0xD800), "\xEF\xBF\xBD");
  EXPECT_EQ(Encode(0x110000), "\xEF\xBF\xBD");
}

}  // namespace
}  // namespace imagegen
