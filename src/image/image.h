// An 8-bit RGB raster, row-major, no padding, with an optional alpha plane: the currency between
// models and the encoders.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace imagegen {

// Provenance as (keyword, UTF-8 text) pairs: PNG text chunks, or XMP/EXIF in JPEG and WebP.
using TextChunks = std::vector<std::pair<std::string, std::string>>;

struct Image {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> rgb;    // width * height * 3 bytes
  std::vector<uint8_t> alpha;  // empty: opaque; else width * height bytes, 0 = transparent

  Image() = default;
  Image(int w, int h) : width(w), height(h), rgb(static_cast<size_t>(w) * h * 3, 0) {}
  uint8_t* Pixel(int x, int y) { return &rgb[(static_cast<size_t>(y) * width + x) * 3]; }
  const uint8_t* Pixel(int x, int y) const {
    return &rgb[(static_cast<size_t>(y) * width + x) * 3];
  }
  bool HasAlpha() const { return !alpha.empty(); }
  // Interleaved RGBA (alpha 255 where the image has none), for encoders that want one buffer.
  std::vector<uint8_t> Rgba() const {
    std::vector<uint8_t> out(static_cast<size_t>(width) * height * 4);
    for (size_t i = 0, n = static_cast<size_t>(width) * height; i < n; ++i) {
      out[i * 4] = rgb[i * 3];
      out[i * 4 + 1] = rgb[i * 3 + 1];
      out[i * 4 + 2] = rgb[i * 3 + 2];
      out[i * 4 + 3] = alpha.empty() ? 255 : alpha[i];
    }
    return out;
  }
};

}  // namespace imagegen
