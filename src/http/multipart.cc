#include "http/multipart.h"

#include <cctype>
#include <utility>

#include "core/strings.h"

namespace imagegen {
namespace {

using Params = std::vector<std::pair<std::string, std::string>>;

Error Malformed(const std::string& why) {
  return Error::Invalid("body", "malformed multipart/form-data body: " + why);
}

bool IsSpace(char c) { return c == ' ' || c == '\t'; }

void SkipSpace(std::string_view text, size_t* pos) {
  while (*pos < text.size() && IsSpace(text[*pos])) ++(*pos);
}

// RFC 9110 token characters.
bool IsTokenChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

// A quoted-string starting at text[*pos] == '"', backslash escapes resolved.
bool ReadQuoted(std::string_view text, size_t* pos, std::string* out) {
  for (size_t i = *pos + 1; i < text.size(); ++i) {
    if (text[i] == '\\' && i + 1 < text.size()) {
      out->push_back(text[++i]);
    } else if (text[i] == '"') {
      *pos = i + 1;
      return true;
    } else {
      out->push_back(text[i]);
    }
  }
  return false;
}

// "value; name=value; name="quoted"": the first value (lower case) and the parameters (names in
// lower case). False when a parameter does not parse.
bool ParseParameters(std::string_view text, std::string* first, Params* params) {
  size_t pos = 0;
  SkipSpace(text, &pos);
  size_t start = pos;
  while (pos < text.size() && text[pos] != ';') ++pos;
  *first = Lower(Trim(std::string(text.substr(start, pos - start))));
  while (pos < text.size()) {
    ++pos;  // ';'
    SkipSpace(text, &pos);
    if (pos == text.size()) break;  // a trailing ';'
    start = pos;
    while (pos < text.size() && IsTokenChar(text[pos])) ++pos;
    std::string name = Lower(std::string(text.substr(start, pos - start)));
    SkipSpace(text, &pos);
    if (name.empty() || pos == text.size() || text[pos] != '=') return false;
    ++pos;
    SkipSpace(text, &pos);
    std::string value;
    if (pos < text.size() && text[pos] == '"') {
      if (!ReadQuoted(text, &pos, &value)) return false;
    } else {
      start = pos;
      while (pos < text.size() && text[pos] != ';' && !IsSpace(text[pos])) ++pos;
      value = std::string(text.substr(start, pos - start));
    }
    SkipSpace(text, &pos);
    if (pos < text.size() && text[pos] != ';') return false;
    params->emplace_back(std::move(name), std::move(value));
  }
  return true;
}

const std::string* Find(const Params& params, const std::string& name) {
  for (const auto& [key, value] : params) {
    if (key == name) return &value;
  }
  return nullptr;
}

// RFC 2046 bchars.
bool IsBoundaryChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) ||
         std::string_view("'()+_,-./:=? ").find(c) != std::string_view::npos;
}

// One header line (without its line end) into `part`; only the two headers form-data uses.
Status ReadHeader(std::string_view line, MultipartPart* part, bool* has_disposition) {
  size_t colon = line.find(':');
  if (colon == std::string_view::npos || colon == 0 || IsSpace(line[0])) {
    return Malformed("a part header is not \"Name: value\"");
  }
  std::string name = Lower(std::string(line.substr(0, colon)));
  std::string_view value = line.substr(colon + 1);
  if (name == "content-type") {
    part->content_type = Trim(std::string(value));
  } else if (name == "content-disposition") {
    std::string kind;
    Params params;
    if (!ParseParameters(value, &kind, &params)) {
      return Malformed("a Content-Disposition does not parse");
    }
    const std::string* field = Find(params, "name");
    if (kind != "form-data" || field == nullptr || field->empty()) {
      return Malformed("a part's Content-Disposition is not form-data with a name");
    }
    part->name = *field;
    if (const std::string* file = Find(params, "filename")) {
      part->filename = *file;
      part->is_file = true;
    }
    *has_disposition = true;
  }
  return Status::Ok();
}

// The header block of a part starting at body[*pos]; *pos ends after the blank line.
Status ReadHeaders(std::string_view body, const MultipartLimits& limits, size_t* pos,
                   MultipartPart* part) {
  size_t start = *pos;
  bool has_disposition = false;
  for (int count = 0;; ++count) {
    size_t end = body.find('\n', *pos);
    if (end == std::string_view::npos || end - start > limits.max_header_bytes) {
      return Malformed("a part's headers do not end within " +
                       std::to_string(limits.max_header_bytes) + " bytes");
    }
    std::string_view line = body.substr(*pos, end - *pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    *pos = end + 1;
    if (line.empty()) break;
    if (count >= limits.max_headers) {
      return Malformed("a part has more than " + std::to_string(limits.max_headers) + " headers");
    }
    if (auto s = ReadHeader(line, part, &has_disposition); !s) return s;
  }
  if (!has_disposition) return Malformed("a part has no Content-Disposition");
  return Status::Ok();
}

}  // namespace

Result<std::string> MultipartBoundary(std::string_view content_type) {
  std::string media;
  Params params;
  if (!ParseParameters(content_type, &media, &params)) {
    return Error::Invalid("body", "the Content-Type's parameters do not parse");
  }
  if (media != "multipart/form-data") {
    return Error::Make(ErrorCode::kUnsupportedMediaType,
                       "Content-Type must be multipart/form-data or application/json (got " +
                           std::string(content_type) + ")");
  }
  const std::string* boundary = Find(params, "boundary");
  if (boundary == nullptr || boundary->empty() || boundary->size() > 70 ||
      boundary->back() == ' ') {
    return Error::Invalid("body", "multipart/form-data needs a boundary of 1 to 70 characters");
  }
  for (char c : *boundary) {
    if (!IsBoundaryChar(c))
      return Error::Invalid("body",
                            "the multipart boundary has a character RFC 2046 does not allow");
  }
  return *boundary;
}

Result<std::vector<MultipartPart>> ParseMultipart(std::string_view body, std::string_view boundary,
                                                  const MultipartLimits& limits) {
  const std::string delimiter = "--" + std::string(boundary);
  const std::string inner = "\r\n" + delimiter;
  size_t pos = 0;
  if (body.substr(0, delimiter.size()) != delimiter) {
    size_t first = body.find(inner);
    if (first == std::string_view::npos) return Malformed("no boundary delimiter");
    pos = first + 2;
  }
  std::vector<MultipartPart> parts;
  while (true) {
    pos += delimiter.size();
    if (body.substr(pos, 2) == "--") return parts;  // the close delimiter; the epilogue is ignored
    SkipSpace(body, &pos);
    if (body.substr(pos, 2) == "\r\n") {
      pos += 2;
    } else if (body.substr(pos, 1) == "\n") {
      pos += 1;
    } else {
      return Malformed("a boundary delimiter is not followed by a line end");
    }
    if (parts.size() >= limits.max_parts) {
      return Malformed("more than " + std::to_string(limits.max_parts) + " parts");
    }
    MultipartPart part;
    if (auto s = ReadHeaders(body, limits, &pos, &part); !s) return s.error();
    size_t end = body.find(inner, pos);
    if (end == std::string_view::npos) return Malformed("the body has no closing delimiter");
    part.data = std::string(body.substr(pos, end - pos));
    parts.push_back(std::move(part));
    pos = end + 2;
  }
}

}  // namespace imagegen
