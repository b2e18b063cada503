#include "http/http_types.h"

#include <nlohmann/json.hpp>

namespace imagegen {
namespace {

std::string PercentEncodePath(const std::string& key) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : key) {
    bool safe = std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || c == '/';
    if (safe) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 0xF];
    }
  }
  return out;
}

}  // namespace

std::string ImageUrl(const HttpRequest& request, const std::string& key) {
  return ImageUrlAt(request.base_url, key);
}

std::string ImageUrlAt(const std::string& base_url, const std::string& key) {
  return base_url + "/images/" + PercentEncodePath(key);
}

HttpResponse JsonResponse(int status, const std::string& json_body) {
  HttpResponse response;
  response.status = status;
  response.body = json_body;
  return response;
}

HttpResponse ErrorResponse(const Error& error) {
  nlohmann::json inner = {{"code", ErrorCodeName(error.code)}, {"message", error.message}};
  if (!error.field.empty()) inner["field"] = error.field;
  HttpResponse response = JsonResponse(
      HttpStatusFor(error.code), nlohmann::json{{"error", inner}}.dump(
                                     -1, ' ', false, nlohmann::json::error_handler_t::replace));
  response.error_code = std::string(ErrorCodeName(error.code));
  if (error.retry_after_s > 0)
    response.SetHeader("Retry-After", std::to_string(error.retry_after_s));
  return response;
}

std::string UrlDecode(const std::string& text, bool plus_is_space) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '%' && i + 2 < text.size() && hex(text[i + 1]) >= 0 && hex(text[i + 2]) >= 0) {
      out += static_cast<char>(hex(text[i + 1]) * 16 + hex(text[i + 2]));
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out;
}

std::multimap<std::string, std::string> ParseQueryString(const std::string& query) {
  std::multimap<std::string, std::string> out;
  size_t start = 0;
  while (start < query.size()) {
    size_t end = query.find('&', start);
    if (end == std::string::npos) end = query.size();
    std::string pair = query.substr(start, end - start);
    if (!pair.empty()) {
      size_t eq = pair.find('=');
      std::string name = UrlDecode(pair.substr(0, eq), true);
      std::string value = eq == std::string::npos ? "" : UrlDecode(pair.substr(eq + 1), true);
      out.emplace(std::move(name), std::move(value));
    }
    start = end + 1;
  }
  return out;
}

void BufferStream(HttpResponse* response) {
  if (!response->stream) return;
  std::string body;
  response->stream([&body](std::string_view piece) {
    body.append(piece);
    return true;
  });
  response->stream = nullptr;
  response->body = std::move(body);
}

}  // namespace imagegen
