#include "http/range.h"

#include <algorithm>
#include <optional>

namespace imagegen {
namespace {

struct ByteRange {
  size_t first = 0;
  size_t last = 0;  // inclusive
};

std::optional<size_t> ParseDigits(const std::string& text) {
  if (text.empty() || text.size() > 18) return std::nullopt;
  if (!std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  return static_cast<size_t>(std::stoull(text));
}

// nullopt: ignore the Range field; a range with first > last: unsatisfiable.
std::optional<ByteRange> ParseSingleRange(const std::string& range, size_t size) {
  const std::string unit = "bytes=";
  if (range.compare(0, unit.size(), unit) != 0) return std::nullopt;
  std::string spec = range.substr(unit.size());
  if (spec.find(',') != std::string::npos) return std::nullopt;  // several: serve it whole
  size_t dash = spec.find('-');
  if (dash == std::string::npos) return std::nullopt;
  auto first = ParseDigits(spec.substr(0, dash));
  auto last = ParseDigits(spec.substr(dash + 1));
  if (!first && !last) return std::nullopt;
  if (!first) {  // suffix: the last N bytes
    if (*last == 0) return ByteRange{1, 0};
    return ByteRange{size - std::min(*last, size), size - 1};
  }
  if (last && *last < *first) return std::nullopt;  // invalid: ignored, per RFC 9110
  if (*first >= size) return ByteRange{1, 0};
  return ByteRange{*first, std::min(last.value_or(size - 1), size - 1)};
}

bool Declares(const HttpResponse& response, const std::string& name, const std::string& value) {
  return std::any_of(response.headers.begin(), response.headers.end(),
                     [&](const auto& h) { return h.first == name && h.second == value; });
}

std::string HeaderValue(const HttpResponse& response, const std::string& name) {
  for (const auto& [n, v] : response.headers) {
    if (n == name) return v;
  }
  return "";
}

}  // namespace

void ApplyRange(const std::string& range, const std::string& if_range, HttpResponse* response) {
  if (range.empty() || response->status != 200 || response->stream) return;
  if (!Declares(*response, "Accept-Ranges", "bytes")) return;
  if (!if_range.empty() && if_range != HeaderValue(*response, "ETag")) return;
  size_t size = response->body.size();
  auto parsed = ParseSingleRange(range, size);
  if (!parsed) return;
  if (parsed->first > parsed->last || size == 0) {
    response->status = 416;
    response->body.clear();
    response->SetHeader("Content-Range", "bytes */" + std::to_string(size));
    return;
  }
  response->status = 206;
  response->SetHeader("Content-Range", "bytes " + std::to_string(parsed->first) + "-" +
                                           std::to_string(parsed->last) + "/" +
                                           std::to_string(size));
  response->body = response->body.substr(parsed->first, parsed->last - parsed->first + 1);
}

}  // namespace imagegen
