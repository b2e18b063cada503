// PNG encoding with provenance: generation parameters travel inside the file as tEXt/iTXt chunks.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "image/image.h"

namespace imagegen {

using TextChunks = std::vector<std::pair<std::string, std::string>>;  // keyword, UTF-8 text

// Encodes RGB8 to PNG bytes. Text values are written as iTXt (UTF-8), uncompressed.
Result<std::string> EncodePng(const Image& image, const TextChunks& text);

// Decodes any PNG libpng reads into RGB8 (palette, grey and 16-bit are converted; alpha is
// dropped). `text` (optional) receives every tEXt/zTXt/iTXt chunk. Corrupt input is an error.
Result<Image> DecodePng(const std::string& bytes, TextChunks* text);

// Nearest-neighbour resize: exact for integer factors, which is how the embedded model's
// native images are scaled up (each pixel becomes a block; no invented detail).
Image ResizeNearest(const Image& src, int width, int height);

}  // namespace imagegen
