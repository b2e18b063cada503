// libFuzzer target for the image readers that `imagegen inspect` runs on files from anywhere:
// PNG (libpng), JPEG (libjpeg-turbo + our EXIF/XMP readers), WebP (our RIFF walk + libwebp),
// and the EXIF and XMP readers on raw bytes. Any input must give an image or an error, never a
// crash or a read outside the buffer (build with clang -fsanitize=fuzzer,address,undefined; see
// tests/fuzz/run.sh). Inputs starting with a format's signature reach that decoder; the same
// bytes also go to the metadata readers directly.
#include <cstddef>
#include <cstdint>
#include <string>

#include "image/codec.h"
#include "image/metadata.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string input(reinterpret_cast<const char*>(data), size);
  auto decoded = imagegen::DecodeImage(input);
  if (decoded.ok() && decoded->image.rgb.size() !=
                          static_cast<size_t>(decoded->image.width) * decoded->image.height * 3) {
    __builtin_trap();
  }
  imagegen::TextChunks text;
  imagegen::ParseExif(input, &text);
  imagegen::ParseXmp(input, &text);
  return 0;
}
