// Byte-level helpers the AWS layer needs: percent-encoding as SigV4 defines it, hex, base64,
// SHA-256/MD5/HMAC through OpenSSL's EVP interface, and the two date formats AWS speaks.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/strings.h"

namespace imagegen::aws {

// RFC 3986 percent-encoding as SigV4 requires: A-Z a-z 0-9 - _ . ~ pass through, every other
// byte becomes %XX with upper-case hex. With `keep_slash`, '/' passes too (paths); without,
// it becomes %2F (query keys and values).
std::string UriEncode(std::string_view input, bool keep_slash);
// Inverse of UriEncode; also accepts lower-case hex. With `plus_is_space`, '+' decodes to ' '
// (S3's "encoding-type=url" listings use form encoding). Malformed escapes pass through as-is.
std::string UriDecode(std::string_view input, bool plus_is_space = false);

std::string HexEncode(std::string_view bytes);  // lower-case
std::string Base64Encode(std::string_view bytes);
std::optional<std::string> Base64Decode(std::string_view text);

std::string Sha256(std::string_view data);  // 32 raw bytes
std::string Sha256Hex(std::string_view data);
std::string Md5(std::string_view data);                               // 16 raw bytes
std::string HmacSha256(std::string_view key, std::string_view data);  // 32 raw bytes

// 20150830T123600Z (SigV4's X-Amz-Date) from epoch seconds.
std::string FormatAmzDate(int64_t epoch_s);
// 2026-11-25T08:00:00Z or with fractional seconds / numeric offset; epoch milliseconds.
std::optional<int64_t> ParseIso8601Ms(std::string_view text);
// RFC 7231 IMF-fixdate (Last-Modified): "Wed, 25 Nov 2026 08:00:00 GMT"; epoch milliseconds.
std::optional<int64_t> ParseHttpDateMs(std::string_view text);

}  // namespace imagegen::aws
