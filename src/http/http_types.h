// Plain request/response values: the HTTP server, the Lambda event adapters, tests and fuzzers
// all call the same handlers with these, so no handler knows its transport.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/context.h"
#include "core/error.h"

namespace imagegen {

struct HttpRequest {
  std::string method;  // upper case
  std::string path;    // decoded path, no query string
  std::multimap<std::string, std::string> query;
  std::map<std::string, std::string> headers;  // lower-case names; duplicates comma-joined
  std::string body;
  std::string remote_addr;
  std::string request_id;  // set by the door before Handle()
  std::string base_url;    // scheme://host[/stage] as the client sees us, for absolute links
  Clock::time_point deadline = Clock::time_point::max();
  const std::atomic<bool>* cancelled = nullptr;
  std::map<std::string, std::string> path_params;  // filled by the router
  // The authenticated caller's namespace for job ids ("k" + 16 hex digits of the SHA-256 of its
  // API key), set by Api once the key is checked; "" when API keys are off.
  std::string principal;

  std::string Header(const std::string& lower_name) const {
    auto it = headers.find(lower_name);
    return it == headers.end() ? "" : it->second;
  }
  std::string Query(const std::string& name) const {
    auto it = query.find(name);
    return it == query.end() ? "" : it->second;
  }
};

// Writes one piece of a streamed body; false once the client is gone (the producer should stop).
using BodyWriter = std::function<bool(std::string_view piece)>;

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // Set: the body is produced piece by piece after the head is sent (Server-Sent Events), and
  // `body` is ignored. The HTTP server sends it chunked as it comes; buffering doors (Lambda)
  // collect it with BufferStream first.
  std::function<void(const BodyWriter& write)> stream;
  std::string route = "unmatched";  // the route pattern, for metrics and logs
  std::string error_code;           // set for error responses, for logs and metrics

  void SetHeader(const std::string& name, const std::string& value) {
    for (auto& h : headers) {
      if (h.first == name) {
        h.second = value;
        return;
      }
    }
    headers.emplace_back(name, value);
  }
};

// Runs a streamed body to its end into `body` (for doors that cannot stream).
void BufferStream(HttpResponse* response);

// Checks that a Content-Type is JSON. An absent one is accepted; any other type is 415.
Status CheckJsonContentType(const HttpRequest& request);

// URL at which `key` is served by the API, e.g. "http://host/images/a%20b.png".
std::string ImageUrl(const HttpRequest& request, const std::string& key);
// The same under an explicit base URL (a webhook's body, written with no request at hand).
std::string ImageUrlAt(const std::string& base_url, const std::string& key);

HttpResponse JsonResponse(int status, const std::string& json_body);
// {"error": {"code", "message", "field"?}} with the taxonomy's status and Retry-After if set.
HttpResponse ErrorResponse(const Error& error);

// Percent-decoding for paths and query strings ('+' is a space only in queries).
std::string UrlDecode(const std::string& text, bool plus_is_space);
std::multimap<std::string, std::string> ParseQueryString(const std::string& query);

}  // namespace imagegen
