// JPEG (libjpeg-turbo) with provenance in APP1 segments: EXIF (UserComment = the A1111
// "parameters") and XMP (every pair). JPEG has no alpha: an alpha plane is dropped.
#pragma once

#include <string>

#include "core/error.h"
#include "image/image.h"

namespace imagegen {

// `quality` 0..100 (libjpeg's scale; 4:2:0 chroma below 90, 4:4:4 from 90 on, where the colour
// detail of generated art survives).
Result<std::string> EncodeJpeg(const Image& image, const TextChunks& text, int quality);

// Decodes a baseline or progressive JPEG into RGB8 and, into `text` (optional), the provenance
// from its EXIF and XMP segments. Corrupt input is an invalid_request error, never a crash.
Result<Image> DecodeJpeg(const std::string& bytes, TextChunks* text);

}  // namespace imagegen
