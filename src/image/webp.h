// WebP (libwebp) in the extended format: a VP8X header, the encoder's image chunks (with ALPH
// when the image has alpha), then EXIF and XMP chunks with the provenance (see metadata.h).
#pragma once

#include <string>

#include "core/error.h"
#include "image/image.h"

namespace imagegen {

// `quality` 0..99: lossy at that quality; 100: lossless. Alpha is kept.
Result<std::string> EncodeWebp(const Image& image, const TextChunks& text, int quality);

// Decodes any still WebP into RGB8 (+ alpha when the file has it) and, into `text` (optional),
// the provenance from its EXIF and XMP chunks. Corrupt input is an error, never a crash.
Result<Image> DecodeWebp(const std::string& bytes, TextChunks* text);

}  // namespace imagegen
