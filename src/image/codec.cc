#include "image/codec.h"

#include "image/jpeg.h"
#include "image/png.h"
#include "image/webp.h"

namespace imagegen {

Result<EncodedImage> EncodeImage(const Image& image, const TextChunks& text, ImageFormat format,
                                 int quality) {
  EncodedImage out;
  Result<std::string> bytes = std::string();
  switch (format) {
    case ImageFormat::kPng:
      bytes = EncodePng(image, text);
      break;
    case ImageFormat::kJpeg:
      if (image.HasAlpha()) {
        out.warnings.push_back("jpeg has no alpha channel: the transparency was dropped");
      }
      bytes = EncodeJpeg(image, text, quality);
      break;
    case ImageFormat::kWebp:
      bytes = EncodeWebp(image, text, quality);
      break;
  }
  if (!bytes.ok()) return bytes.error();
  out.bytes = std::move(bytes.value());
  return out;
}

std::optional<ImageFormat> SniffImageFormat(const std::string& bytes) {
  if (bytes.size() >= 8 && bytes.compare(0, 8, "\x89PNG\r\n\x1a\n") == 0) return ImageFormat::kPng;
  if (bytes.size() >= 3 && bytes.compare(0, 3, "\xFF\xD8\xFF") == 0) return ImageFormat::kJpeg;
  if (bytes.size() >= 12 && bytes.compare(0, 4, "RIFF") == 0 && bytes.compare(8, 4, "WEBP") == 0) {
    return ImageFormat::kWebp;
  }
  return std::nullopt;
}

Result<DecodedImage> DecodeImage(const std::string& bytes) {
  auto format = SniffImageFormat(bytes);
  if (!format) return Error::Invalid("image", "not a PNG, JPEG or WebP file");
  DecodedImage out;
  out.format = *format;
  Result<Image> image = Image();
  switch (*format) {
    case ImageFormat::kPng:
      image = DecodePng(bytes, &out.text);
      break;
    case ImageFormat::kJpeg:
      image = DecodeJpeg(bytes, &out.text);
      break;
    case ImageFormat::kWebp:
      image = DecodeWebp(bytes, &out.text);
      break;
  }
  if (!image.ok()) return image.error();
  out.image = std::move(image.value());
  return out;
}

}  // namespace imagegen
