#include "http/request_head.h"

#include <algorithm>
#include <cstring>

#include "core/strings.h"

namespace imagegen {
namespace {

Error Bad(const std::string& message) {
  return Error::Invalid("", "malformed request: " + message);
}

bool IsTchar(unsigned char c) {
  return std::isalnum(c) || std::strchr("!#$%&'*+-.^_`|~", c) != nullptr;
}

bool IsToken(std::string_view text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) { return IsTchar(c); });
}

// Field values: visible ASCII, SP, HT and obs-text; no other control bytes (NUL, CR, LF, DEL...).
bool IsFieldValue(std::string_view value) {
  return std::all_of(value.begin(), value.end(), [](char ch) {
    auto c = static_cast<unsigned char>(ch);
    return c == '\t' || c == ' ' || (c > 0x20 && c != 0x7f);
  });
}

std::string_view TrimOws(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

std::vector<std::string> ListTokens(const std::string& value) {
  std::vector<std::string> tokens;
  size_t start = 0;
  while (start <= value.size()) {
    size_t comma = value.find(',', start);
    if (comma == std::string::npos) comma = value.size();
    tokens.emplace_back(
        Lower(std::string(TrimOws(std::string_view(value).substr(start, comma - start)))));
    start = comma + 1;
  }
  return tokens;
}

// Splits the head into lines at CRLF; a CR or LF anywhere else is an error.
Result<std::vector<std::string_view>> SplitLines(std::string_view head) {
  std::vector<std::string_view> lines;
  size_t start = 0;
  for (size_t i = 0; i < head.size(); ++i) {
    if (head[i] == '\n') return Bad("a bare LF ends a line (lines end with CRLF)");
    if (head[i] != '\r') continue;
    if (i + 1 >= head.size() || head[i + 1] != '\n') return Bad("a bare CR in the head");
    lines.push_back(head.substr(start, i - start));
    start = i + 2;
    ++i;
  }
  if (start != head.size()) return Bad("the head does not end with CRLF");
  return lines;
}

Status ParseRequestLine(std::string_view line, RequestHead* head) {
  size_t sp1 = line.find(' ');
  size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos) {
    return Bad("the request line is not METHOD SP TARGET SP VERSION");
  }
  std::string_view method = line.substr(0, sp1);
  std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  std::string_view version = line.substr(sp2 + 1);
  if (!IsToken(method)) return Bad("the method is not a token");
  bool visible = std::all_of(target.begin(), target.end(), [](char ch) {
    auto c = static_cast<unsigned char>(ch);
    return c > 0x20 && c < 0x7f;
  });
  bool asterisk = target == "*" && method == "OPTIONS";
  if (!visible || target.empty() || (target.front() != '/' && !asterisk)) {
    return Bad("the request target must be a path starting with /");
  }
  if (version == "HTTP/1.1") {
    head->minor_version = 1;
  } else if (version == "HTTP/1.0") {
    head->minor_version = 0;
  } else {
    return Bad("only HTTP/1.0 and HTTP/1.1 are served");
  }
  head->method = std::string(method);
  head->target = std::string(target);
  return Status::Ok();
}

Status ParseField(std::string_view line, RequestHead* head) {
  if (line.empty()) return Bad("an empty header line");
  if (line.front() == ' ' || line.front() == '\t') return Bad("obsolete line folding");
  size_t colon = line.find(':');
  if (colon == std::string_view::npos) return Bad("a header line without a colon");
  std::string_view name = line.substr(0, colon);
  if (!IsToken(name))
    return Bad("a header name that is empty, or has spaces or other non-token bytes");
  std::string_view value = TrimOws(line.substr(colon + 1));
  if (!IsFieldValue(value)) return Bad("a control byte in the value of " + std::string(name));
  head->fields.emplace_back(Lower(std::string(name)), std::string(value));
  return Status::Ok();
}

int CountField(const RequestHead& head, std::string_view name) {
  return static_cast<int>(std::count_if(head.fields.begin(), head.fields.end(),
                                        [&](const auto& f) { return f.first == name; }));
}

bool IsHostValue(const std::string& host) {
  return std::all_of(host.begin(), host.end(), [](char ch) {
    auto c = static_cast<unsigned char>(ch);
    return std::isalnum(c) || std::strchr(".-_:[]%", c) != nullptr;
  });
}

Status CheckHost(const RequestHead& head) {
  int hosts = CountField(head, "host");
  if (hosts > 1) return Bad("more than one Host");
  if (hosts == 0 && head.minor_version == 1) return Bad("HTTP/1.1 requires Host");
  if (!IsHostValue(head.Field("host"))) return Bad("Host is not a host[:port]");
  return Status::Ok();
}

Result<unsigned long long> ParseContentLength(const std::string& value) {
  if (value.empty() || value.size() > 18 ||
      !std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return Bad("Content-Length is not a decimal number of at most 18 digits");
  }
  return std::stoull(value);
}

Status CheckTransferEncoding(const std::string& value, RequestHead* head) {
  auto codings = ListTokens(value);
  for (const auto& coding : codings) {
    if (coding.empty()) return Bad("an empty transfer coding");
    if (coding != "chunked") {
      return Error::Make(ErrorCode::kNotImplemented,
                         "transfer coding \"" + coding + "\" is not implemented (only chunked)");
    }
  }
  if (codings.size() != 1) return Bad("chunked applied more than once");
  head->framing = BodyFraming::kChunked;
  return Status::Ok();
}

Status CheckFraming(RequestHead* head) {
  int lengths = CountField(*head, "content-length");
  int codings = CountField(*head, "transfer-encoding");
  if (lengths > 1) return Bad("more than one Content-Length");
  if (lengths && codings) return Bad("both Content-Length and Transfer-Encoding");
  if (codings) {
    if (head->minor_version == 0) return Bad("Transfer-Encoding in an HTTP/1.0 request");
    return CheckTransferEncoding(head->Field("transfer-encoding"), head);
  }
  if (lengths) {
    auto length = ParseContentLength(head->Field("content-length"));
    if (!length) return length.error();
    head->framing = BodyFraming::kLength;
    head->content_length = *length;
  }
  return Status::Ok();
}

Status CheckContentEncoding(RequestHead* head) {
  if (CountField(*head, "content-encoding") > 1) return Bad("more than one Content-Encoding");
  std::string coding = Lower(head->Field("content-encoding"));
  if (coding == "x-gzip") coding = "gzip";
  if (!coding.empty() && coding != "identity" && coding != "gzip" && coding != "deflate") {
    return Error::Make(ErrorCode::kUnsupportedMediaType,
                       "content coding \"" + coding + "\" is not supported (gzip, deflate)");
  }
  head->content_encoding = coding == "identity" ? "" : coding;
  return Status::Ok();
}

Status CheckConnectionAndExpect(RequestHead* head) {
  head->keep_alive = head->minor_version == 1;
  for (const auto& token : ListTokens(head->Field("connection"))) {
    if (token == "close") head->keep_alive = false;
    if (token == "keep-alive" && head->minor_version == 0) head->keep_alive = true;
  }
  std::string expect = Lower(head->Field("expect"));
  if (!expect.empty() && expect != "100-continue") return Bad("Expect other than 100-continue");
  head->expect_continue = !expect.empty() && head->minor_version == 1;
  return Status::Ok();
}

}  // namespace

std::string RequestHead::Field(std::string_view lower_name) const {
  std::string joined;
  for (const auto& [name, value] : fields) {
    if (name != lower_name) continue;
    if (!joined.empty()) joined += ", ";
    joined += value;
  }
  return joined;
}

std::optional<size_t> FindHeadEnd(std::string_view bytes) {
  size_t i = 0;
  while (i + 1 < bytes.size() && bytes[i] == '\r' && bytes[i + 1] == '\n') i += 2;
  for (; i < bytes.size(); ++i) {
    if (bytes[i] == '\r' && i + 1 < bytes.size() && bytes[i + 1] != '\n') return i + 1;
    if (bytes[i] != '\n') continue;
    if (i == 0 || bytes[i - 1] != '\r') return i + 1;  // a bare LF: let the parser refuse it
    if (i >= 3 && bytes.substr(i - 3, 4) == "\r\n\r\n") return i + 1;
  }
  return std::nullopt;
}

bool MayBecomeRequestHead(std::string_view partial) {
  while (partial.substr(0, 2) == "\r\n") partial.remove_prefix(2);
  if (partial == "\r") return true;
  for (char c : partial) {
    if (c == ' ') return true;  // the method is complete; the rest is checked whole
    if (!IsTchar(static_cast<unsigned char>(c))) return false;
  }
  return partial.size() <= 32;  // no method is this long
}

Result<RequestHead> ParseRequestHead(std::string_view head, const HeadLimits& limits) {
  if (head.size() > limits.max_bytes) {
    return Error::Make(ErrorCode::kHeadersTooLarge,
                       "request head over " + std::to_string(limits.max_bytes) + " bytes");
  }
  while (head.size() >= 2 && head.substr(0, 2) == "\r\n") head.remove_prefix(2);
  auto lines = SplitLines(head);
  if (!lines) return lines.error();
  if (lines->size() < 2 || !lines->back().empty()) return Bad("the head is not complete");
  if (static_cast<int>(lines->size()) - 2 > limits.max_fields) {
    return Error::Make(ErrorCode::kHeadersTooLarge,
                       "more than " + std::to_string(limits.max_fields) + " header fields");
  }
  RequestHead parsed;
  if (auto s = ParseRequestLine(lines->front(), &parsed); !s) return s.error();
  for (size_t i = 1; i + 1 < lines->size(); ++i) {
    if (auto s = ParseField((*lines)[i], &parsed); !s) return s.error();
  }
  if (auto s = CheckHost(parsed); !s) return s.error();
  for (auto check : {CheckFraming, CheckContentEncoding, CheckConnectionAndExpect}) {
    if (auto s = check(&parsed); !s) return s.error();
  }
  return parsed;
}

}  // namespace imagegen
