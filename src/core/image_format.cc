#include "core/image_format.h"

namespace imagegen {

std::string_view ImageFormatName(ImageFormat format) {
  switch (format) {
    case ImageFormat::kPng:
      return "png";
    case ImageFormat::kJpeg:
      return "jpeg";
    case ImageFormat::kWebp:
      return "webp";
  }
  return "png";
}

std::optional<ImageFormat> ImageFormatFromName(std::string_view name) {
  if (name == "png") return ImageFormat::kPng;
  if (name == "jpeg" || name == "jpg") return ImageFormat::kJpeg;
  if (name == "webp") return ImageFormat::kWebp;
  return std::nullopt;
}

std::string_view ImageMediaType(ImageFormat format) {
  switch (format) {
    case ImageFormat::kPng:
      return "image/png";
    case ImageFormat::kJpeg:
      return "image/jpeg";
    case ImageFormat::kWebp:
      return "image/webp";
  }
  return "image/png";
}

std::string_view ImageExtension(ImageFormat format) {
  switch (format) {
    case ImageFormat::kPng:
      return ".png";
    case ImageFormat::kJpeg:
      return ".jpg";
    case ImageFormat::kWebp:
      return ".webp";
  }
  return ".png";
}

bool HasImageExtension(std::string_view key) {
  for (ImageFormat format : {ImageFormat::kPng, ImageFormat::kJpeg, ImageFormat::kWebp}) {
    std::string_view ext = ImageExtension(format);
    if (key.size() > ext.size() && key.substr(key.size() - ext.size()) == ext) return true;
  }
  return false;
}

bool FormatHasAlpha(ImageFormat format) { return format != ImageFormat::kJpeg; }

bool FormatIsLossy(ImageFormat format) { return format != ImageFormat::kPng; }

std::string_view BackgroundName(Background background) {
  switch (background) {
    case Background::kAuto:
      return "auto";
    case Background::kOpaque:
      return "opaque";
    case Background::kTransparent:
      return "transparent";
  }
  return "auto";
}

std::optional<Background> BackgroundFromName(std::string_view name) {
  if (name == "auto") return Background::kAuto;
  if (name == "opaque") return Background::kOpaque;
  if (name == "transparent") return Background::kTransparent;
  return std::nullopt;
}

}  // namespace imagegen
