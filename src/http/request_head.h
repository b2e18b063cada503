// Strict RFC 9112 checks on a request head, before any of it reaches a handler. The HTTP
// server runs them on the raw bytes (request line, field lines, the blank line) and refuses
// anything a lenient parser or a proxy in front of us might read differently: that gap is
// what request smuggling lives in. Pure functions, so tests and fuzzers drive them directly.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/error.h"

namespace imagegen {

struct HeadLimits {
  size_t max_bytes = 16 << 10;  // the whole head, request line to blank line
  int max_fields = 100;
};

// How the body of a request is framed, from its Content-Length / Transfer-Encoding fields.
enum class BodyFraming { kNone, kLength, kChunked };

struct RequestHead {
  std::string method;
  std::string target;     // origin-form ("/path?query") or "*" for OPTIONS
  int minor_version = 1;  // HTTP/1.<minor>
  std::vector<std::pair<std::string, std::string>> fields;  // lower-case names, trimmed values
  BodyFraming framing = BodyFraming::kNone;
  unsigned long long content_length = 0;
  std::string content_encoding;  // lower case; "" or "identity": none
  bool keep_alive = true;        // the client's wish, from the version and Connection
  bool expect_continue = false;

  // Comma-joined values of every field named `lower_name` ("" if absent).
  std::string Field(std::string_view lower_name) const;
};

// Position just past the blank line that ends the head in `bytes`, or nullopt if it is not
// complete yet. Leading blank lines (allowed before a request line) are part of the head.
std::optional<size_t> FindHeadEnd(std::string_view bytes);

// False when `partial` (an incomplete head) can no longer become a valid request line, e.g. a
// body sent without framing, or a TLS handshake on the plain port: refuse it now rather than
// wait for the head deadline.
bool MayBecomeRequestHead(std::string_view partial);

// Parses and checks a complete head (as delimited by FindHeadEnd). Errors: 400 for any framing
// or syntax fault, 431 for a head over the limits, 501 for a transfer coding other than
// chunked, 417 is not used (an unknown Expect is refused as 400).
Result<RequestHead> ParseRequestHead(std::string_view head, const HeadLimits& limits);

}  // namespace imagegen
