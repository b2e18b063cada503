// The one encoding interface the pipeline uses: a format, a quality, and the provenance pairs,
// whatever the file type. Each format lives in its own file (png.*, jpeg.*, webp.*).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/image_format.h"
#include "image/image.h"

namespace imagegen {

struct EncodedImage {
  std::string bytes;
  std::vector<std::string> warnings;  // e.g. an alpha plane JPEG could not keep
};

// `quality` 0..100 applies to JPEG and WebP (100: WebP lossless); PNG is lossless and ignores it.
// Alpha is written where the format has it (PNG, WebP) and dropped, with a warning, in JPEG.
Result<EncodedImage> EncodeImage(const Image& image, const TextChunks& text, ImageFormat format,
                                 int quality);

struct DecodedImage {
  ImageFormat format = ImageFormat::kPng;
  Image image;
  TextChunks text;  // PNG text chunks, or the EXIF/XMP provenance of JPEG and WebP
};

// The format from the file's signature; nullopt for anything else.
std::optional<ImageFormat> SniffImageFormat(const std::string& bytes);

// Decodes PNG, JPEG or WebP, chosen by signature. Corrupt input is an invalid_request error.
Result<DecodedImage> DecodeImage(const std::string& bytes);

}  // namespace imagegen
