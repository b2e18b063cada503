#include "image/png.h"

#include <png.h>

#include <csetjmp>
#include <cstdint>
#include <cstring>
#include <memory>

namespace imagegen {
namespace {

constexpr png_alloc_size_t kMaxAncillaryChunkBytes = 8 << 20;

struct WriteBuffer {
  std::string bytes;
};

void WriteToBuffer(png_structp png, png_bytep data, png_size_t length) {
  auto* buffer = static_cast<WriteBuffer*>(png_get_io_ptr(png));
  buffer->bytes.append(reinterpret_cast<const char*>(data), length);
}

void FlushNothing(png_structp) {}

struct ReadCursor {
  const std::string* bytes;
  size_t offset;
};

void ReadFromBuffer(png_structp png, png_bytep out, png_size_t length) {
  auto* cursor = static_cast<ReadCursor*>(png_get_io_ptr(png));
  if (cursor->offset + length > cursor->bytes->size()) png_error(png, "truncated PNG");
  std::memcpy(out, cursor->bytes->data() + cursor->offset, length);
  cursor->offset += length;
}

// Walks the chunk list before libpng sees it: libpng allocates a chunk's declared length before
// reading it, so an 85-byte file declaring a 2 GB tEXt chunk would cost 2 GB. Every chunk must
// fit inside the bytes we actually have.
Status CheckChunkLengths(const std::string& bytes) {
  size_t at = 8;  // after the signature
  while (at + 8 <= bytes.size()) {
    const auto* p = reinterpret_cast<const unsigned char*>(bytes.data() + at);
    uint64_t length =
        (uint64_t{p[0]} << 24) | (uint64_t{p[1]} << 16) | (uint64_t{p[2]} << 8) | p[3];
    if (length > 0x7fffffffu || length + 12 > bytes.size() - at) {
      return Error::Invalid("image", "corrupt PNG: a chunk at byte " + std::to_string(at) +
                                         " declares " + std::to_string(length) +
                                         " bytes, more than the file holds");
    }
    if (std::memcmp(p + 4, "IEND", 4) == 0) return Status::Ok();
    at += static_cast<size_t>(length) + 12;
  }
  return Error::Invalid("image", "corrupt PNG: truncated before IEND");
}

// libpng reports errors by longjmp; these handlers keep its messages for our Error.
void OnPngError(png_structp png, png_const_charp message) {
  auto* slot = static_cast<std::string*>(png_get_error_ptr(png));
  if (slot != nullptr) *slot = message;
  png_longjmp(png, 1);
}
void OnPngWarning(png_structp, png_const_charp) {}

}  // namespace

Image FromRgba(int width, int height, const std::vector<uint8_t>& rgba, bool keep_alpha) {
  Image image(width, height);
  size_t n = static_cast<size_t>(width) * height;
  // An alpha plane with every pixel opaque says nothing: dropping it keeps an RGBA file from a
  // model (or a re-encode) from turning into a spurious "transparency dropped" warning.
  bool any_transparent = false;
  for (size_t i = 0; keep_alpha && i < n && !any_transparent; ++i) {
    any_transparent = rgba[i * 4 + 3] != 255;
  }
  keep_alpha = keep_alpha && any_transparent;
  if (keep_alpha) image.alpha.resize(n);
  for (size_t i = 0; i < n; ++i) {
    image.rgb[i * 3] = rgba[i * 4];
    image.rgb[i * 3 + 1] = rgba[i * 4 + 1];
    image.rgb[i * 3 + 2] = rgba[i * 4 + 2];
    if (keep_alpha) image.alpha[i] = rgba[i * 4 + 3];
  }
  return image;
}

namespace {

// The libpng calls live in these two functions, which own no C++ objects: libpng reports errors
// by longjmp, which would skip destructors. Everything with a destructor belongs to the caller.
// `rgba`: the interleaved pixels when the image has alpha, else null (RGB rows of `image`).
bool WritePng(png_structp png, png_infop info, const Image& image, png_bytep rgba,
              std::vector<png_text>* chunks, WriteBuffer* buffer) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_set_write_fn(png, buffer, WriteToBuffer, FlushNothing);
  png_set_IHDR(png, info, static_cast<png_uint_32>(image.width),
               static_cast<png_uint_32>(image.height), 8,
               rgba == nullptr ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_RGBA, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  if (!chunks->empty()) png_set_text(png, info, chunks->data(), static_cast<int>(chunks->size()));
  png_write_info(png, info);
  for (int y = 0; y < image.height; ++y) {
    png_write_row(png, rgba == nullptr ? const_cast<png_bytep>(image.Pixel(0, y))
                                       : rgba + static_cast<size_t>(y) * image.width * 4);
  }
  png_write_end(png, info);
  return true;
}

// Reads every PNG as 8-bit RGBA into `rgba` (alpha 255 where the file has none) and says in
// `has_alpha` whether it had any (an alpha channel or a tRNS chunk).
bool ReadPng(png_structp png, png_infop info, ReadCursor* cursor, int* width, int* height,
             bool* has_alpha, std::vector<uint8_t>* rgba, std::vector<png_bytep>* rows) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_set_read_fn(png, cursor, ReadFromBuffer);
  // A decompression-bomb guard: nothing imagegen handles is larger than this.
  png_set_user_limits(png, 16384, 16384);
  // Decompressed text (zTXt/iTXt) and other ancillary chunks stay small too.
  png_set_chunk_malloc_max(png, kMaxAncillaryChunkBytes);
  png_read_info(png, info);
  *has_alpha = (png_get_color_type(png, info) & PNG_COLOR_MASK_ALPHA) != 0 ||
               png_get_valid(png, info, PNG_INFO_tRNS) != 0;
  png_set_expand(png);
  png_set_strip_16(png);
  png_set_gray_to_rgb(png);
  png_set_add_alpha(png, 0xFF, PNG_FILLER_AFTER);
  png_read_update_info(png, info);
  *width = static_cast<int>(png_get_image_width(png, info));
  *height = static_cast<int>(png_get_image_height(png, info));
  if (png_get_rowbytes(png, info) != static_cast<size_t>(*width) * 4) png_error(png, "bad layout");
  rgba->resize(static_cast<size_t>(*width) * *height * 4);
  rows->resize(static_cast<size_t>(*height));
  for (int y = 0; y < *height; ++y) {
    (*rows)[static_cast<size_t>(y)] = rgba->data() + static_cast<size_t>(y) * *width * 4;
  }
  png_read_image(png, rows->data());
  png_read_end(png, info);
  return true;
}

}  // namespace

Result<std::string> EncodePng(const Image& image, const TextChunks& text) {
  if (image.width <= 0 || image.height <= 0 ||
      image.rgb.size() != static_cast<size_t>(image.width) * image.height * 3) {
    return Error::Make(ErrorCode::kInternal, "EncodePng: image buffer does not match its size");
  }
  std::string error;
  png_structp png =
      png_create_write_struct(PNG_LIBPNG_VER_STRING, &error, OnPngError, OnPngWarning);
  if (png == nullptr) return Error::Make(ErrorCode::kInternal, "png_create_write_struct failed");
  png_infop info = png_create_info_struct(png);
  std::vector<png_text> chunks(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    std::memset(&chunks[i], 0, sizeof(png_text));
    chunks[i].compression = PNG_ITXT_COMPRESSION_NONE;
    chunks[i].key = const_cast<char*>(text[i].first.c_str());
    chunks[i].text = const_cast<char*>(text[i].second.c_str());
    chunks[i].itxt_length = text[i].second.size();
  }
  if (image.HasAlpha() && image.alpha.size() != static_cast<size_t>(image.width) * image.height) {
    png_destroy_write_struct(&png, &info);
    return Error::Make(ErrorCode::kInternal, "EncodePng: alpha plane does not match the size");
  }
  std::vector<uint8_t> rgba = image.HasAlpha() ? image.Rgba() : std::vector<uint8_t>();
  WriteBuffer buffer;
  bool ok = WritePng(png, info, image, rgba.empty() ? nullptr : rgba.data(), &chunks, &buffer);
  png_destroy_write_struct(&png, &info);
  if (!ok) return Error::Make(ErrorCode::kInternal, "PNG encoding failed: " + error);
  return std::move(buffer.bytes);
}

Result<Image> DecodePng(const std::string& bytes, TextChunks* text) {
  if (bytes.size() < 8 || png_sig_cmp(reinterpret_cast<png_const_bytep>(bytes.data()), 0, 8) != 0) {
    return Error::Invalid("image", "not a PNG file");
  }
  if (auto s = CheckChunkLengths(bytes); !s) return s.error();
  std::string error;
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &error, OnPngError, OnPngWarning);
  if (png == nullptr) return Error::Make(ErrorCode::kInternal, "png_create_read_struct failed");
  png_infop info = png_create_info_struct(png);
  ReadCursor cursor{&bytes, 0};
  int width = 0, height = 0;
  bool has_alpha = false;
  std::vector<uint8_t> rgba;
  std::vector<png_bytep> rows;
  if (!ReadPng(png, info, &cursor, &width, &height, &has_alpha, &rgba, &rows)) {
    png_destroy_read_struct(&png, &info, nullptr);
    return Error::Invalid("image", "corrupt PNG: " + error);
  }
  Image image = FromRgba(width, height, rgba, has_alpha);
  if (text != nullptr) {
    png_textp chunks = nullptr;
    int count = png_get_text(png, info, &chunks, nullptr);
    for (int i = 0; i < count; ++i) {
      size_t len = chunks[i].compression >= PNG_ITXT_COMPRESSION_NONE ? chunks[i].itxt_length
                                                                      : chunks[i].text_length;
      text->emplace_back(chunks[i].key, std::string(chunks[i].text, len));
    }
  }
  png_destroy_read_struct(&png, &info, nullptr);
  return image;
}

Image ResizeNearest(const Image& src, int width, int height) {
  if (src.width == width && src.height == height) return src;
  Image out(width, height);
  for (int y = 0; y < height; ++y) {
    int sy = static_cast<int>(static_cast<int64_t>(y) * src.height / height);
    for (int x = 0; x < width; ++x) {
      int sx = static_cast<int>(static_cast<int64_t>(x) * src.width / width);
      std::memcpy(out.Pixel(x, y), src.Pixel(sx, sy), 3);
      if (src.HasAlpha()) {
        if (out.alpha.empty()) out.alpha.resize(static_cast<size_t>(width) * height);
        out.alpha[static_cast<size_t>(y) * width + x] =
            src.alpha[static_cast<size_t>(sy) * src.width + sx];
      }
    }
  }
  return out;
}

}  // namespace imagegen
