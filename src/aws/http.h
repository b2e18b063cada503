// The HTTP seam of the AWS layer. Everything the layer sends goes through an HttpTransport, so
// tests substitute a scripted transport (no sockets) and production uses libcurl.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "aws/sigv4.h"

namespace imagegen::aws {

struct HttpRequest {
  std::string method = "GET";
  std::string url;  // fully encoded
  HeaderList headers;
  std::string body;
  int timeout_ms = 30000;         // whole exchange; 0 = none
  int connect_timeout_ms = 3000;  // TCP + TLS handshake
  // Non-empty: connect to this IP address (v4 dotted, v6 without brackets) for the URL's host
  // instead of resolving it, and through no proxy, so that the address a caller checked is the
  // one connected to (webhooks' SSRF guard; DNS may answer differently a second time).
  std::string pinned_address;
  // > 0: keep at most this many body bytes; the rest is read and dropped (the timeout bounds
  // how long that may take).
  size_t max_response_bytes = 0;
};

// Why an exchange produced no HTTP status. Mapped onto the error taxonomy (and retried or not)
// only in aws/errors.cc.
enum class TransportFailure {
  kNone,     // an HTTP response arrived (any status)
  kTimeout,  // connect or total timeout
  kConnect,  // refused, unreachable, DNS, TLS handshake
  kReset,    // the connection broke mid-exchange (reset, empty reply, partial body)
  kOther,    // anything else (bad URL, out of memory)
};

struct HttpResponse {
  int status = 0;      // 0 when `failure` != kNone
  HeaderList headers;  // names lower-cased, in arrival order
  std::string body;
  TransportFailure failure = TransportFailure::kNone;
  std::string failure_message;  // the transport's own words, for logs

  // First value of the header `lower_name` (lower-case), or "".
  std::string Header(std::string_view lower_name) const;
};

class HttpTransport {
 public:
  virtual ~HttpTransport() = default;
  // Performs one exchange; never retries. Thread-safe.
  virtual HttpResponse Perform(const HttpRequest& request) = 0;
};

// libcurl, with a small pool of easy handles so that keep-alive connections are reused across
// calls while concurrent calls each get their own handle. Process-wide singleton.
std::shared_ptr<HttpTransport> DefaultTransport();

// The Host header value for an URL: lower-case host, ":port" only when not the scheme's default.
std::string HostHeaderForUrl(std::string_view url);

}  // namespace imagegen::aws
