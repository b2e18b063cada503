// multipart/form-data (RFC 7578 over RFC 2046's multipart framing) for the OpenAI edits door:
// the boundary from the Content-Type, then each part's headers and bytes. A parser of our own,
// bounded in what it accepts, for bodies that arrive whole (the HTTP server has already capped
// the body's size, raw and decoded, with a 413).
//
// Accepted: a preamble before the first delimiter and an epilogue after the last; LF-only line
// ends inside part headers; transport padding (spaces, tabs) after a delimiter; quoted or bare
// boundary and disposition parameters, with backslash escapes in quoted strings. Refused, as
// kInvalidRequest with field "body": a missing or malformed boundary (RFC 2046: 1..70
// characters), a body without a closing delimiter, a part without a Content-Disposition of
// form-data with a name, headers that do not parse, and more parts or header bytes than the
// limits allow.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"

namespace imagegen {

struct MultipartPart {
  std::string name;          // the form field's name (Content-Disposition name=)
  std::string filename;      // Content-Disposition filename=, "" when absent
  bool is_file = false;      // a filename parameter was present (even an empty one)
  std::string content_type;  // the part's Content-Type, "" when absent
  std::string data;
};

struct MultipartLimits {
  size_t max_parts = 64;
  size_t max_header_bytes = 8 << 10;  // per part
  int max_headers = 16;               // per part
};

// The boundary parameter of a multipart/form-data Content-Type; an error when the media type
// is another or the boundary is missing or not RFC 2046's (1..70 characters, no trailing space).
Result<std::string> MultipartBoundary(std::string_view content_type);

// Splits `body` into its parts, in order.
Result<std::vector<MultipartPart>> ParseMultipart(std::string_view body, std::string_view boundary,
                                                  const MultipartLimits& limits = {});

}  // namespace imagegen
