#include "image/webp.h"

#include <webp/decode.h>
#include <webp/encode.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "image/metadata.h"
#include "image/png.h"

namespace imagegen {
namespace {

constexpr int kMaxDimension = 16384;
// VP8X flags (WebP container spec): ICC 0x20, alpha 0x10, EXIF 0x08, XMP 0x04, animation 0x02.
constexpr uint8_t kFlagAlpha = 0x10, kFlagExif = 0x08, kFlagXmp = 0x04;

struct Chunk {
  std::string fourcc;
  std::string data;
};

uint32_t Le32(const std::string& s, size_t at) {
  return static_cast<uint32_t>(static_cast<unsigned char>(s[at])) |
         static_cast<uint32_t>(static_cast<unsigned char>(s[at + 1])) << 8 |
         static_cast<uint32_t>(static_cast<unsigned char>(s[at + 2])) << 16 |
         static_cast<uint32_t>(static_cast<unsigned char>(s[at + 3])) << 24;
}

void PutLe(std::string* out, uint32_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}

// The chunks of a RIFF/WEBP file; false when the container is malformed. Lengths are checked
// against the buffer before anything is copied.
bool SplitChunks(const std::string& file, std::vector<Chunk>* chunks) {
  if (file.size() < 12 || file.compare(0, 4, "RIFF") != 0 || file.compare(8, 4, "WEBP") != 0) {
    return false;
  }
  uint64_t end = std::min<uint64_t>(file.size(), uint64_t{Le32(file, 4)} + 8);
  uint64_t at = 12;
  while (at + 8 <= end) {
    uint64_t size = Le32(file, static_cast<size_t>(at + 4));
    if (at + 8 + size > end) return false;
    chunks->push_back({file.substr(static_cast<size_t>(at), 4),
                       file.substr(static_cast<size_t>(at + 8), static_cast<size_t>(size))});
    at += 8 + size + (size & 1);
  }
  return !chunks->empty();
}

void AppendChunk(const std::string& fourcc, const std::string& data, std::string* out) {
  out->append(fourcc);
  PutLe(out, static_cast<uint32_t>(data.size()), 4);
  out->append(data);
  if (data.size() % 2 != 0) out->push_back('\0');
}

// Rewrites the encoder's simple file as an extended one with the metadata chunks appended, in
// the order the container spec requires (VP8X, ALPH, VP8/VP8L, EXIF, XMP).
Result<std::string> WithMetadata(const std::string& encoded, const Image& image,
                                 const std::string& exif, const std::string& xmp) {
  std::vector<Chunk> chunks;
  if (!SplitChunks(encoded, &chunks)) {
    return Error::Make(ErrorCode::kInternal, "WebP: the encoder's output is not a RIFF file");
  }
  uint8_t flags = (image.HasAlpha() ? kFlagAlpha : 0) | (exif.empty() ? 0 : kFlagExif) |
                  (xmp.empty() ? 0 : kFlagXmp);
  std::string vp8x;
  PutLe(&vp8x, flags, 4);  // flags byte and three reserved bytes
  PutLe(&vp8x, static_cast<uint32_t>(image.width - 1), 3);
  PutLe(&vp8x, static_cast<uint32_t>(image.height - 1), 3);
  std::string body = "WEBP";
  AppendChunk("VP8X", vp8x, &body);
  for (const Chunk& chunk : chunks) {
    if (chunk.fourcc != "VP8X") AppendChunk(chunk.fourcc, chunk.data, &body);
  }
  if (!exif.empty()) AppendChunk("EXIF", exif, &body);
  if (!xmp.empty()) AppendChunk("XMP ", xmp, &body);
  std::string out = "RIFF";
  PutLe(&out, static_cast<uint32_t>(body.size()), 4);
  return out + body;
}

}  // namespace

Result<std::string> EncodeWebp(const Image& image, const TextChunks& text, int quality) {
  if (image.width <= 0 || image.height <= 0 || image.width > WEBP_MAX_DIMENSION ||
      image.height > WEBP_MAX_DIMENSION ||
      image.rgb.size() != static_cast<size_t>(image.width) * image.height * 3 ||
      (image.HasAlpha() && image.alpha.size() != static_cast<size_t>(image.width) * image.height)) {
    return Error::Make(ErrorCode::kInternal, "EncodeWebp: image buffer does not match its size");
  }
  uint8_t* out = nullptr;
  size_t size = 0;
  if (image.HasAlpha()) {
    std::vector<uint8_t> rgba = image.Rgba();
    int stride = image.width * 4;
    size = quality >= 100
               ? WebPEncodeLosslessRGBA(rgba.data(), image.width, image.height, stride, &out)
               : WebPEncodeRGBA(rgba.data(), image.width, image.height, stride,
                                static_cast<float>(quality), &out);
  } else {
    int stride = image.width * 3;
    size = quality >= 100
               ? WebPEncodeLosslessRGB(image.rgb.data(), image.width, image.height, stride, &out)
               : WebPEncodeRGB(image.rgb.data(), image.width, image.height, stride,
                               static_cast<float>(quality), &out);
  }
  std::string encoded = size == 0 ? "" : std::string(reinterpret_cast<char*>(out), size);
  WebPFree(out);
  if (encoded.empty()) return Error::Make(ErrorCode::kInternal, "WebP encoding failed");
  if (text.empty()) return encoded;
  auto xmp = BuildXmp(text);
  if (!xmp.ok()) return xmp.error();
  return WithMetadata(encoded, image, BuildExif(text), xmp.value());
}

Result<Image> DecodeWebp(const std::string& bytes, TextChunks* text) {
  std::vector<Chunk> chunks;
  if (!SplitChunks(bytes, &chunks)) return Error::Invalid("image", "not a WebP file");
  auto data = reinterpret_cast<const uint8_t*>(bytes.data());
  WebPBitstreamFeatures features;
  if (WebPGetFeatures(data, bytes.size(), &features) != VP8_STATUS_OK) {
    return Error::Invalid("image", "corrupt WebP: unreadable header");
  }
  if (features.has_animation) return Error::Invalid("image", "animated WebP is not supported");
  if (features.width > kMaxDimension || features.height > kMaxDimension) {
    return Error::Invalid("image", "WebP larger than 16384x16384");
  }
  int width = 0, height = 0;
  uint8_t* rgba = WebPDecodeRGBA(data, bytes.size(), &width, &height);
  if (rgba == nullptr) return Error::Invalid("image", "corrupt WebP: cannot decode");
  std::vector<uint8_t> pixels(rgba, rgba + static_cast<size_t>(width) * height * 4);
  WebPFree(rgba);
  Image image = FromRgba(width, height, pixels, features.has_alpha != 0);
  if (text != nullptr) {
    for (const Chunk& chunk : chunks) {
      if (chunk.fourcc == "XMP ") ParseXmp(chunk.data, text);
    }
    for (const Chunk& chunk : chunks) {
      // Some writers keep the JPEG-style "Exif\0\0" prefix in the chunk; accept both.
      std::string tiff = chunk.data.compare(0, 6, std::string("Exif\0\0", 6)) == 0
                             ? chunk.data.substr(6)
                             : chunk.data;
      if (chunk.fourcc == "EXIF") ParseExif(tiff, text);
    }
  }
  return image;
}

}  // namespace imagegen
