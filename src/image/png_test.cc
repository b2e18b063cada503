#include "image/png.h"

#include <gtest/gtest.h>

#include <random>

namespace imagegen {
namespace {

Image Gradient(int w, int h) {
  Image image(w, h);
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      uint8_t* p = image.Pixel(x, y);
      p[0] = static_cast<uint8_t>(x * 4);
      p[1] = static_cast<uint8_t>(y * 4);
      p[2] = 7;
    }
  }
  return image;
}

TEST(PngTest, RoundTripsPixelsAndUtf8Text) {
  Image image = Gradient(33, 17);
  auto png = EncodePng(image, {{"prompt", "un croissant doré"}, {"seed", "42"}});
  ASSERT_TRUE(png.ok());
  TextChunks text;
  auto decoded = DecodePng(png.value(), &text);
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(decoded->width, 33);
  EXPECT_EQ(decoded->height, 17);
  EXPECT_EQ(decoded->rgb, image.rgb);
  ASSERT_EQ(text.size(), 2u);
  EXPECT_EQ(text[0].second, "un croissant doré");
  EXPECT_EQ(text[1].second, "42");
}

TEST(PngTest, SameInputSameBytes) {
  auto a = EncodePng(Gradient(16, 16), {{"k", "v"}});
  auto b = EncodePng(Gradient(16, 16), {{"k", "v"}});
  EXPECT_EQ(a.value(), b.value());
}

TEST(PngTest, CorruptInputIsAnErrorNeverACrash) {
  std::string png = EncodePng(Gradient(20, 20), {{"k", "v"}}).value();
  EXPECT_FALSE(DecodePng("", nullptr).ok());
  EXPECT_FALSE(DecodePng("not a png at all", nullptr).ok());
  EXPECT_FALSE(DecodePng(png.substr(0, png.size() / 2), nullptr).ok());
  std::mt19937 rng(1);
  for (int i = 0; i < 300; ++i) {
    std::string mutated = png;
    for (int k = 0; k < 4; ++k)
      mutated[8 + rng() % (mutated.size() - 8)] = static_cast<char>(rng());
    TextChunks text;
    (void)DecodePng(mutated, &text);  // must return, whatever it returns
  }
}

// A chunk length past the end of the file is refused before libpng allocates it.
TEST(PngTest, ChunkLongerThanTheFileIsRefused) {
  std::string png = EncodePng(Gradient(4, 4), {{"prompt", "x"}}).value();
  size_t ihdr_end = 8 + 12 + 13;  // signature, then IHDR (length, type, 13 bytes, CRC)
  std::string huge = png;
  huge[ihdr_end] = '\x7f';  // the next chunk's length's high byte: ~2 GB
  auto decoded = DecodePng(huge, nullptr);
  ASSERT_FALSE(decoded.ok());
  EXPECT_EQ(decoded.error().code, ErrorCode::kInvalidRequest);
  EXPECT_NE(decoded.error().message.find("declares"), std::string::npos) << decoded.error().message;
  EXPECT_TRUE(DecodePng(png, nullptr).ok());
  EXPECT_TRUE(DecodePng(png + "trailing bytes after IEND", nullptr).ok());
}

TEST(PngTest, ResizeNearestScalesBlocks) {
  Image small(2, 1);
  small.Pixel(0, 0)[0] = 10;
  small.Pixel(1, 0)[0] = 20;
  Image big = ResizeNearest(small, 4, 2);
  EXPECT_EQ(big.Pixel(0, 0)[0], 10);
  EXPECT_EQ(big.Pixel(1, 1)[0], 10);
  EXPECT_EQ(big.Pixel(2, 0)[0], 20);
  EXPECT_EQ(big.Pixel(3, 1)[0], 20);
}

}  // namespace
}  // namespace imagegen
