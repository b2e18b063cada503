#include "image/jpeg.h"

// jpeglib.h needs size_t and FILE declared first.
#include <cstddef>
#include <cstdio>
// clang-format off
#include <jpeglib.h>
// clang-format on

#include <csetjmp>
#include <cstdlib>
#include <cstring>

#include "image/metadata.h"

namespace imagegen {
namespace {

constexpr char kExifHeader[] = {'E', 'x', 'i', 'f', '\0', '\0'};
constexpr char kXmpHeader[] = "http://ns.adobe.com/xap/1.0/";  // and its terminating NUL
constexpr size_t kMaxSegment = 65533;                          // 65535 minus the length field
constexpr int kMaxDimension = 16384;

// libjpeg reports errors through error_exit, which must not return: it longjmps back here.
struct ErrorManager {
  jpeg_error_mgr base;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

void OnJpegError(j_common_ptr cinfo) {
  auto* manager = reinterpret_cast<ErrorManager*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, manager->message);
  std::longjmp(manager->jump, 1);
}
void OnJpegMessage(j_common_ptr, int) {}  // warnings (e.g. corrupt data recovered) are silent

struct Segments {
  std::string exif;  // "Exif\0\0" + TIFF
  std::string xmp;   // XMP header + packet
};

// The libjpeg calls live in these two functions, which own no C++ objects (longjmp would skip
// their destructors); buffers belong to the callers.
bool Compress(jpeg_compress_struct* cinfo, ErrorManager* err, const Image& image, int quality,
              const Segments& segments, unsigned char** out, unsigned long* out_size) {
  if (setjmp(err->jump)) return false;
  jpeg_create_compress(cinfo);
  jpeg_mem_dest(cinfo, out, out_size);
  cinfo->image_width = static_cast<JDIMENSION>(image.width);
  cinfo->image_height = static_cast<JDIMENSION>(image.height);
  cinfo->input_components = 3;
  cinfo->in_color_space = JCS_RGB;
  jpeg_set_defaults(cinfo);
  jpeg_set_quality(cinfo, quality, TRUE);
  cinfo->optimize_coding = TRUE;
  if (quality >= 90) {
    for (int c = 0; c < 3; ++c)
      cinfo->comp_info[c].h_samp_factor = cinfo->comp_info[c].v_samp_factor = 1;
  }
  // EXIF must be the first segment after SOI (its spec), so no JFIF APP0.
  cinfo->write_JFIF_header = FALSE;
  jpeg_start_compress(cinfo, TRUE);
  for (const std::string* segment : {&segments.exif, &segments.xmp}) {
    if (segment->empty()) continue;
    jpeg_write_marker(cinfo, JPEG_APP0 + 1, reinterpret_cast<const JOCTET*>(segment->data()),
                      static_cast<unsigned int>(segment->size()));
  }
  while (cinfo->next_scanline < cinfo->image_height) {
    JSAMPROW row = const_cast<JSAMPROW>(image.Pixel(0, static_cast<int>(cinfo->next_scanline)));
    jpeg_write_scanlines(cinfo, &row, 1);
  }
  jpeg_finish_compress(cinfo);
  return true;
}

bool ReadHeader(jpeg_decompress_struct* cinfo, ErrorManager* err, const std::string& bytes) {
  if (setjmp(err->jump)) return false;
  jpeg_create_decompress(cinfo);
  jpeg_mem_src(cinfo, reinterpret_cast<const unsigned char*>(bytes.data()),
               static_cast<unsigned long>(bytes.size()));
  jpeg_save_markers(cinfo, JPEG_APP0 + 1, 0xFFFF);
  jpeg_read_header(cinfo, TRUE);
  cinfo->out_color_space = JCS_RGB;
  return true;
}

bool ReadPixels(jpeg_decompress_struct* cinfo, ErrorManager* err, unsigned char* rgb) {
  if (setjmp(err->jump)) return false;
  jpeg_start_decompress(cinfo);
  if (cinfo->output_components != 3) {
    std::strcpy(err->message, "unexpected component count");
    return false;
  }
  size_t stride = static_cast<size_t>(cinfo->output_width) * 3;
  while (cinfo->output_scanline < cinfo->output_height) {
    JSAMPROW row = rgb + cinfo->output_scanline * stride;
    jpeg_read_scanlines(cinfo, &row, 1);
  }
  jpeg_finish_decompress(cinfo);
  return true;
}

Result<Segments> BuildSegments(const TextChunks& text) {
  Segments segments;
  std::string tiff = BuildExif(text);
  if (!tiff.empty()) segments.exif = std::string(kExifHeader, sizeof kExifHeader) + tiff;
  auto xmp = BuildXmp(text);
  if (!xmp.ok()) return xmp.error();
  if (!text.empty()) segments.xmp = std::string(kXmpHeader, sizeof kXmpHeader) + xmp.value();
  if (segments.exif.size() > kMaxSegment || segments.xmp.size() > kMaxSegment) {
    return Error::Make(ErrorCode::kInternal, "JPEG: provenance larger than one APP1 segment");
  }
  return segments;
}

void ReadSegments(const jpeg_decompress_struct& cinfo, TextChunks* text) {
  for (jpeg_saved_marker_ptr m = cinfo.marker_list; m != nullptr; m = m->next) {
    std::string data(reinterpret_cast<const char*>(m->data), m->data_length);
    if (data.compare(0, sizeof kExifHeader, std::string(kExifHeader, sizeof kExifHeader)) == 0) {
      ParseExif(data.substr(sizeof kExifHeader), text);
    } else if (data.compare(0, sizeof kXmpHeader, std::string(kXmpHeader, sizeof kXmpHeader)) ==
               0) {
      ParseXmp(data.substr(sizeof kXmpHeader), text);
    }
  }
}

}  // namespace

Result<std::string> EncodeJpeg(const Image& image, const TextChunks& text, int quality) {
  if (image.width <= 0 || image.height <= 0 ||
      image.rgb.size() != static_cast<size_t>(image.width) * image.height * 3) {
    return Error::Make(ErrorCode::kInternal, "EncodeJpeg: image buffer does not match its size");
  }
  auto segments = BuildSegments(text);
  if (!segments.ok()) return segments.error();
  jpeg_compress_struct cinfo{};
  ErrorManager err{};
  cinfo.err = jpeg_std_error(&err.base);
  err.base.error_exit = OnJpegError;
  err.base.emit_message = OnJpegMessage;
  unsigned char* out = nullptr;
  unsigned long out_size = 0;
  bool ok = Compress(&cinfo, &err, image, quality, segments.value(), &out, &out_size);
  jpeg_destroy_compress(&cinfo);
  std::string bytes = ok ? std::string(reinterpret_cast<char*>(out), out_size) : std::string();
  std::free(out);
  if (!ok)
    return Error::Make(ErrorCode::kInternal, std::string("JPEG encoding failed: ") + err.message);
  return bytes;
}

Result<Image> DecodeJpeg(const std::string& bytes, TextChunks* text) {
  if (bytes.size() < 3 || static_cast<unsigned char>(bytes[0]) != 0xFF ||
      static_cast<unsigned char>(bytes[1]) != 0xD8) {
    return Error::Invalid("image", "not a JPEG file");
  }
  jpeg_decompress_struct cinfo{};
  ErrorManager err{};
  cinfo.err = jpeg_std_error(&err.base);
  err.base.error_exit = OnJpegError;
  err.base.emit_message = OnJpegMessage;
  if (!ReadHeader(&cinfo, &err, bytes)) {
    jpeg_destroy_decompress(&cinfo);
    return Error::Invalid("image", std::string("corrupt JPEG: ") + err.message);
  }
  if (cinfo.image_width > kMaxDimension || cinfo.image_height > kMaxDimension) {
    jpeg_destroy_decompress(&cinfo);
    return Error::Invalid("image", "JPEG larger than 16384x16384");
  }
  Image image(static_cast<int>(cinfo.image_width), static_cast<int>(cinfo.image_height));
  if (text != nullptr) ReadSegments(cinfo, text);
  bool ok = ReadPixels(&cinfo, &err, image.rgb.data());
  jpeg_destroy_decompress(&cinfo);
  if (!ok) return Error::Invalid("image", std::string("corrupt JPEG: ") + err.message);
  return image;
}

}  // namespace imagegen
