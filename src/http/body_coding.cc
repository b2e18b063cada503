#include "http/body_coding.h"

#include <zlib.h>

namespace imagegen {
namespace {

Error TooLarge(size_t max_bytes) {
  return Error::Make(ErrorCode::kPayloadTooLarge,
                     "decoded request body over " + std::to_string(max_bytes) + " bytes");
}

Error Corrupt(const char* coding) {
  return Error::Invalid("", std::string("the request body is not valid ") + coding);
}

// Inflates `body` with the given windowBits (31: gzip, 15: zlib, -15: raw deflate).
Result<std::string> Inflate(const std::string& body, int window_bits, size_t max_bytes,
                            const char* coding) {
  z_stream zs{};
  if (inflateInit2(&zs, window_bits) != Z_OK) return Error::Make(ErrorCode::kInternal, "zlib");
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(body.data()));
  zs.avail_in = static_cast<uInt>(body.size());
  std::string out;
  char chunk[16384];
  int rc = Z_OK;
  while (rc != Z_STREAM_END) {
    zs.next_out = reinterpret_cast<Bytef*>(chunk);
    zs.avail_out = sizeof chunk;
    rc = inflate(&zs, Z_NO_FLUSH);
    if (rc != Z_OK && rc != Z_STREAM_END) break;
    size_t produced = sizeof chunk - zs.avail_out;
    if (out.size() + produced > max_bytes) {
      inflateEnd(&zs);
      return TooLarge(max_bytes);
    }
    out.append(chunk, produced);
    if (rc == Z_OK && produced == 0 && zs.avail_in == 0) break;  // truncated input
  }
  bool complete = rc == Z_STREAM_END && zs.avail_in == 0;
  inflateEnd(&zs);
  if (!complete) return Corrupt(coding);
  return out;
}

}  // namespace

Result<std::string> DecodeBody(std::string_view coding, std::string body, size_t max_bytes) {
  if (coding.empty()) return body;
  if (body.size() > 0xffffffffu) return TooLarge(max_bytes);
  if (coding == "gzip") return Inflate(body, 31, max_bytes, "gzip");
  // "deflate" is the zlib format per RFC 9110, but some clients send raw deflate.
  bool zlib_header =
      body.size() >= 2 &&
      ((static_cast<unsigned char>(body[0]) << 8) | static_cast<unsigned char>(body[1])) % 31 == 0;
  return Inflate(body, zlib_header ? 15 : -15, max_bytes, "deflate");
}

}  // namespace imagegen
