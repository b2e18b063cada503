// PNG encoding with provenance: generation parameters travel inside the file as tEXt/iTXt chunks.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "image/image.h"

namespace imagegen {

// Encodes RGB8 (RGBA8 when the image has alpha) to PNG bytes. Text values are written as iTXt
// (UTF-8), uncompressed.
Result<std::string> EncodePng(const Image& image, const TextChunks& text);

// Decodes any PNG libpng reads into RGB8 (palette, grey and 16-bit are converted); the alpha
// plane is kept when the file has alpha (an alpha channel or tRNS) that is not all opaque. `text`
// (optional) receives every tEXt/zTXt/iTXt chunk. Corrupt input is an error.
Result<Image> DecodePng(const std::string& bytes, TextChunks* text);

// An Image from interleaved RGBA8; the alpha plane only when `keep_alpha` and some pixel is not
// fully opaque.
Image FromRgba(int width, int height, const std::vector<uint8_t>& rgba, bool keep_alpha);

// Nearest-neighbour resize: exact for integer factors, which is how the embedded model's
// native images are scaled up (each pixel becomes a block; no invented detail).
Image ResizeNearest(const Image& src, int width, int height);

}  // namespace imagegen
