// Request bodies sent with Content-Encoding: gzip or deflate, inflated with zlib and refused
// (413) the moment the decoded size passes the limit, so a small compressed body can never
// become a large allocation.
#pragma once

#include <string>
#include <string_view>

#include "core/error.h"

namespace imagegen {

// `coding`: "" (identity: returned as is), "gzip" or "deflate" (zlib or raw deflate).
Result<std::string> DecodeBody(std::string_view coding, std::string body, size_t max_bytes);

}  // namespace imagegen
