#include "image/codec.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <random>

#include "image/jpeg.h"
#include "image/metadata.h"
#include "image/png.h"
#include "image/webp.h"

namespace imagegen {
namespace {

const char* kParameters =
    "un croissant doré, \"quoted\" & <angled> 😀\nNegative prompt: blur\nSteps: 4, Seed: 7";

TextChunks Provenance() {
  return {{"prompt", "un croissant doré & <b> \"q\" 😀"},
          {"seed", "7"},
          {"parameters", kParameters},
          {"Software", "imagegen 0.1.0"}};
}

// Smooth content, as generated images are: lossy codecs keep it within a few levels.
Image Smooth(int w, int h) {
  Image image(w, h);
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      uint8_t* p = image.Pixel(x, y);
      p[0] = static_cast<uint8_t>(x * 255 / w);
      p[1] = static_cast<uint8_t>(y * 255 / h);
      p[2] = static_cast<uint8_t>((x + y) * 127 / (w + h));
    }
  }
  return image;
}

Image WithDisc(Image image) {
  image.alpha.assign(static_cast<size_t>(image.width) * image.height, 0);
  for (int y = 0; y < image.height; ++y) {
    for (int x = 0; x < image.width; ++x) {
      int dx = x - image.width / 2, dy = y - image.height / 2;
      if (dx * dx + dy * dy <= 100) image.alpha[static_cast<size_t>(y) * image.width + x] = 255;
    }
  }
  return image;
}

double MeanAbsDiff(const Image& a, const Image& b) {
  double sum = 0;
  for (size_t i = 0; i < a.rgb.size(); ++i) sum += std::abs(int{a.rgb[i]} - int{b.rgb[i]});
  return sum / static_cast<double>(a.rgb.size());
}

std::string Text(const TextChunks& text, const std::string& key) {
  for (const auto& [k, v] : text) {
    if (k == key) return v;
  }
  return "<absent>";
}

class CodecTest : public ::testing::TestWithParam<ImageFormat> {};

TEST_P(CodecTest, RoundTripsSizePixelsAndProvenance) {
  Image image = Smooth(64, 48);
  auto encoded = EncodeImage(image, Provenance(), GetParam(), 95);
  ASSERT_TRUE(encoded.ok()) << encoded.error().message;
  EXPECT_TRUE(encoded->warnings.empty());
  EXPECT_EQ(SniffImageFormat(encoded->bytes), GetParam());
  auto decoded = DecodeImage(encoded->bytes);
  ASSERT_TRUE(decoded.ok()) << decoded.error().message;
  EXPECT_EQ(decoded->format, GetParam());
  EXPECT_EQ(decoded->image.width, 64);
  EXPECT_EQ(decoded->image.height, 48);
  EXPECT_FALSE(decoded->image.HasAlpha());
  EXPECT_LT(MeanAbsDiff(image, decoded->image), GetParam() == ImageFormat::kPng ? 0.0001 : 3.0);
  for (const auto& [key, value] : Provenance()) EXPECT_EQ(Text(decoded->text, key), value) << key;
}

TEST_P(CodecTest, SameInputSameBytes) {
  auto a = EncodeImage(Smooth(32, 32), Provenance(), GetParam(), 80);
  auto b = EncodeImage(Smooth(32, 32), Provenance(), GetParam(), 80);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->bytes, b->bytes);
}

TEST_P(CodecTest, AlphaKeptWhereTheFormatHasIt) {
  Image image = WithDisc(Smooth(40, 40));
  auto encoded = EncodeImage(image, {}, GetParam(), 90);
  ASSERT_TRUE(encoded.ok());
  auto decoded = DecodeImage(encoded->bytes);
  ASSERT_TRUE(decoded.ok());
  if (GetParam() == ImageFormat::kJpeg) {
    EXPECT_FALSE(decoded->image.HasAlpha());
    ASSERT_EQ(encoded->warnings.size(), 1u);
    EXPECT_NE(encoded->warnings[0].find("alpha"), std::string::npos);
  } else {
    EXPECT_TRUE(encoded->warnings.empty());
    ASSERT_TRUE(decoded->image.HasAlpha());
    EXPECT_EQ(decoded->image.alpha, image.alpha);  // WebP's alpha plane is lossless too
  }
}

TEST_P(CodecTest, CorruptInputIsAnErrorNeverACrash) {
  std::string bytes = EncodeImage(Smooth(32, 32), Provenance(), GetParam(), 80)->bytes;
  EXPECT_FALSE(DecodeImage(bytes.substr(0, bytes.size() / 2)).ok() &&
               GetParam() != ImageFormat::kJpeg);  // libjpeg pads a truncated scan with grey
  for (size_t cut = 0; cut < bytes.size(); cut += 7) (void)DecodeImage(bytes.substr(0, cut));
  std::mt19937 rng(static_cast<unsigned>(GetParam()) + 1);
  for (int i = 0; i < 300; ++i) {
    std::string mutated = bytes;
    for (int k = 0; k < 4; ++k) {
      mutated[12 + rng() % (mutated.size() - 12)] = static_cast<char>(rng());
    }
    (void)DecodeImage(mutated);  // must return, whatever it returns
  }
}

INSTANTIATE_TEST_SUITE_P(Formats, CodecTest,
                         ::testing::Values(ImageFormat::kPng, ImageFormat::kJpeg,
                                           ImageFormat::kWebp),
                         [](const auto& param_info) {
                           return std::string(ImageFormatName(param_info.param));
                         });

TEST(PngTest, AnAllOpaqueAlphaPlaneIsDropped) {
  Image image = Smooth(8, 8);
  image.alpha.assign(64, 255);
  auto decoded = DecodeImage(EncodeImage(image, {}, ImageFormat::kPng, 0)->bytes);
  ASSERT_TRUE(decoded.ok());
  EXPECT_FALSE(decoded->image.HasAlpha());  // so a JPEG re-encode warns about nothing
  EXPECT_EQ(decoded->image.rgb, image.rgb);
  image.alpha[5] = 254;
  decoded = DecodeImage(EncodeImage(image, {}, ImageFormat::kPng, 0)->bytes);
  ASSERT_TRUE(decoded.ok() && decoded->image.HasAlpha());
  EXPECT_EQ(decoded->image.alpha, image.alpha);
}

TEST(JpegTest, LowerQualityIsSmaller) {
  Image image = Smooth(128, 128);
  for (int y = 0; y < 128; y += 2) image.Pixel(y, y)[0] = 255;  // some detail to spend bits on
  auto low = EncodeJpeg(image, {}, 20), high = EncodeJpeg(image, {}, 95);
  ASSERT_TRUE(low.ok() && high.ok());
  EXPECT_LT(low->size(), high->size());
}

TEST(JpegTest, ExifIsTheFirstSegment) {
  std::string jpeg = EncodeJpeg(Smooth(16, 16), Provenance(), 90).value();
  ASSERT_GT(jpeg.size(), 12u);
  EXPECT_EQ(jpeg.substr(0, 4), "\xFF\xD8\xFF\xE1");
  EXPECT_EQ(jpeg.substr(6, 6), std::string("Exif\0\0", 6));
}

TEST(WebpTest, QualityHundredIsLossless) {
  Image image = Smooth(50, 30);
  auto lossless = EncodeWebp(image, Provenance(), 100);
  ASSERT_TRUE(lossless.ok());
  auto decoded = DecodeWebp(lossless.value(), nullptr);
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(decoded->rgb, image.rgb);
  EXPECT_NE(lossless->find("VP8L"), std::string::npos);
  auto lossy = EncodeWebp(image, {}, 50);
  ASSERT_TRUE(lossy.ok());
  EXPECT_NE(lossy->find("VP8 "), std::string::npos);
}

TEST(WebpTest, ExtendedHeaderNamesTheMetadata) {
  std::string webp = EncodeWebp(Smooth(20, 10), Provenance(), 80).value();
  ASSERT_EQ(webp.substr(12, 4), "VP8X");
  uint8_t flags = static_cast<uint8_t>(webp[20]);
  EXPECT_EQ(flags & 0x08, 0x08);  // EXIF
  EXPECT_EQ(flags & 0x04, 0x04);  // XMP
  EXPECT_EQ(flags & 0x10, 0);     // no alpha
  // Canvas size minus one, 24-bit little-endian.
  EXPECT_EQ(static_cast<uint8_t>(webp[24]), 19);
  EXPECT_EQ(static_cast<uint8_t>(webp[27]), 9);
  uint32_t riff = static_cast<uint8_t>(webp[4]) | static_cast<uint8_t>(webp[5]) << 8 |
                  static_cast<uint8_t>(webp[6]) << 16 | static_cast<uint32_t>(webp[7]) << 24;
  EXPECT_EQ(riff + 8, webp.size());
}

TEST(WebpTest, ChunkLongerThanTheFileIsRefused) {
  std::string webp = EncodeWebp(Smooth(8, 8), Provenance(), 80).value();
  std::string bad = webp;
  bad[16] = '\xFF';  // the VP8X chunk's size
  bad[17] = '\xFF';
  TextChunks text;
  EXPECT_FALSE(DecodeWebp(bad, &text).ok());
  EXPECT_FALSE(DecodeImage("RIFF\x04\0\0\0WEBP").ok());
}

TEST(ExifTest, UserCommentIsUnicodeInTiffOrder) {
  std::string tiff = BuildExif({{"parameters", "aé"}});
  // "UNICODE\0" then UTF-16 big-endian (the "MM" header), as A1111 (piexif) writes it.
  EXPECT_EQ(tiff.substr(0, 4), std::string("MM\0*", 4));
  EXPECT_NE(tiff.find(std::string("UNICODE\0\0a\0\xE9", 12)), std::string::npos);
  TextChunks text;
  EXPECT_TRUE(ParseExif(tiff, &text));
  EXPECT_EQ(Text(text, "parameters"), "aé");
}

TEST(ExifTest, ReadsLittleEndianAndSurrogatePairs) {
  // A hand-built little-endian TIFF: IFD0 {ExifIFD -> 26}, Exif IFD {UserComment}.
  std::string comment = std::string("UNICODE\0", 8) + std::string("\x3D\xD8\x00\xDE", 4);  // 😀
  std::string tiff("II*\0\x08\0\0\0", 8);
  tiff += std::string("\x01\0\x69\x87\x04\0\x01\0\0\0\x1A\0\0\0\0\0\0\0", 18);
  tiff += std::string("\x01\0\x86\x92\x07\0", 6) + static_cast<char>(comment.size()) +
          std::string("\0\0\0\x2C\0\0\0\0\0\0\0", 11);
  tiff += comment;
  TextChunks text;
  EXPECT_TRUE(ParseExif(tiff, &text));
  EXPECT_EQ(Text(text, "parameters"), "😀");
}

TEST(ExifTest, TruncatedOrHostileExifNeverYieldsGarbage) {
  std::string tiff = BuildExif(Provenance());
  for (size_t cut = 0; cut <= tiff.size(); ++cut) {
    TextChunks text;
    ParseExif(tiff.substr(0, cut), &text);
    for (const auto& [key, value] : text) {
      // Anything reported is whole: a value that does not fit is skipped, not cut short.
      EXPECT_EQ(value, Text(Provenance(), key)) << "cut at " << cut;
    }
    if (cut == tiff.size()) {
      EXPECT_EQ(text.size(), 2u);
    }
  }
  std::mt19937 rng(3);
  for (int i = 0; i < 2000; ++i) {
    std::string mutated = tiff;
    for (int k = 0; k < 3; ++k) mutated[rng() % mutated.size()] = static_cast<char>(rng());
    TextChunks text;
    ParseExif(mutated, &text);  // bounded: must return
  }
  // An entry count far beyond the buffer, and offsets at the end of the 32-bit range.
  TextChunks text;
  EXPECT_TRUE(ParseExif(std::string("MM\0*\0\0\0\x08\xFF\xFF", 10), &text));
  EXPECT_TRUE(ParseExif(std::string("MM\0*\xFF\xFF\xFF\xFF", 8), &text));
  EXPECT_FALSE(ParseExif("not a tiff", &text));
  EXPECT_TRUE(text.empty());
}

TEST(XmpTest, RoundTripsEscapesAndRefusesBadKeys) {
  auto xmp = BuildXmp(Provenance());
  ASSERT_TRUE(xmp.ok());
  EXPECT_NE(xmp->find(kXmpNamespace), std::string::npos);
  EXPECT_NE(xmp->find("&quot;quoted&quot; &amp; &lt;angled&gt;"), std::string::npos);
  EXPECT_NE(xmp->find("&#10;"), std::string::npos);  // newlines survive XML normalisation
  TextChunks text;
  ParseXmp(xmp.value(), &text);
  EXPECT_EQ(text, Provenance());
  EXPECT_FALSE(BuildXmp({{"bad key", "v"}}).ok());
  EXPECT_FALSE(BuildXmp({{"1st", "v"}}).ok());
}

TEST(XmpTest, HostilePacketsAreBounded) {
  std::string xmp = BuildXmp(Provenance()).value();
  for (size_t cut = 0; cut <= xmp.size(); cut += 3) {
    TextChunks text;
    ParseXmp(xmp.substr(0, cut), &text);
  }
  TextChunks text;
  ParseXmp(" imagegen:a=\"&#xFFFFFFFFFF; &#99999999; &#xD800; &bogus; &", &text);
  EXPECT_TRUE(text.empty());  // no closing quote: nothing reported
  ParseXmp(" imagegen:a=\"&#x41;&#66;&#x110000;\"", &text);
  ASSERT_EQ(text.size(), 1u);
  EXPECT_EQ(text[0].second, "AB\xEF\xBF\xBD");
}

TEST(CodecTest, UnknownBytesAreNotAnImage) {
  EXPECT_FALSE(SniffImageFormat("GIF89a"));
  auto decoded = DecodeImage("GIF89a....");
  ASSERT_FALSE(decoded.ok());
  EXPECT_EQ(decoded.error().code, ErrorCode::kInvalidRequest);
}

}  // namespace
}  // namespace imagegen
