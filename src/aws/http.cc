#include "aws/http.h"

#include <curl/curl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <vector>

#include "aws/encoding.h"

namespace imagegen::aws {

std::string HttpResponse::Header(std::string_view lower_name) const {
  for (const auto& [name, value] : headers) {
    if (name == lower_name) return value;
  }
  return "";
}

std::string HostHeaderForUrl(std::string_view url) {
  size_t scheme_end = url.find("://");
  std::string scheme =
      scheme_end == std::string_view::npos ? "https" : Lower(url.substr(0, scheme_end));
  std::string_view rest = scheme_end == std::string_view::npos ? url : url.substr(scheme_end + 3);
  size_t end = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, end);
  size_t at = authority.rfind('@');
  if (at != std::string_view::npos) authority = authority.substr(at + 1);
  std::string host = Lower(authority);
  // Split a port off (IPv6 literals keep their brackets).
  size_t colon = host.rfind(':');
  size_t bracket = host.rfind(']');
  if (colon != std::string::npos && (bracket == std::string::npos || colon > bracket)) {
    std::string port = host.substr(colon + 1);
    if ((scheme == "https" && port == "443") || (scheme == "http" && port == "80") ||
        port.empty()) {
      host.resize(colon);
    }
  }
  return host;
}

namespace {

struct BodySink {
  std::string* body;
  size_t limit;  // 0: unbounded
};

size_t WriteBody(char* data, size_t size, size_t nmemb, void* user) {
  auto* sink = static_cast<BodySink*>(user);
  size_t n = size * nmemb;
  size_t room = sink->limit == 0 ? n : sink->limit - std::min(sink->limit, sink->body->size());
  sink->body->append(data, std::min(n, room));
  return n;
}

// "host:port:address" for CURLOPT_RESOLVE; IPv6 addresses in brackets.
std::string ResolveEntry(std::string_view url, const std::string& address) {
  std::string scheme = Lower(url.substr(0, url.find("://")));
  std::string authority = HostHeaderForUrl(url);
  std::string host = authority, port = scheme == "http" ? "80" : "443";
  size_t colon = authority.rfind(':');
  size_t bracket = authority.rfind(']');
  if (colon != std::string::npos && (bracket == std::string::npos || colon > bracket)) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
  }
  bool v6 = address.find(':') != std::string::npos;
  return host + ":" + port + ":" + (v6 ? "[" + address + "]" : address);
}

size_t WriteHeader(char* data, size_t size, size_t nmemb, void* user) {
  auto* headers = static_cast<HeaderList*>(user);
  std::string_view line(data, size * nmemb);
  if (line.starts_with("HTTP/")) {
    headers->clear();  // a new response (after 100-continue or a redirect) starts afresh
    return size * nmemb;
  }
  size_t colon = line.find(':');
  if (colon != std::string_view::npos) {
    headers->emplace_back(Lower(Trim(line.substr(0, colon))), Trim(line.substr(colon + 1)));
  }
  return size * nmemb;
}

TransportFailure Classify(CURLcode code) {
  switch (code) {
    case CURLE_OPERATION_TIMEDOUT:
      return TransportFailure::kTimeout;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
      return TransportFailure::kConnect;
    case CURLE_GOT_NOTHING:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
      return TransportFailure::kReset;
    default:
      return TransportFailure::kOther;
  }
}

// The system's CA bundle. libcurl's compiled-in default is the build host's path; the Lambda
// bootstrap is built against a Debian sysroot (/etc/ssl/certs/...) but runs on Amazon Linux
// (/etc/pki/tls/certs/...), so the well-known locations are probed at start.
std::string SystemCaBundle() {
  static constexpr const char* kBundles[] = {
      "/etc/ssl/certs/ca-certificates.crt",  // Debian, Ubuntu, Alpine
      "/etc/pki/tls/certs/ca-bundle.crt",    // Amazon Linux, Fedora, RHEL
      "/etc/ssl/ca-bundle.pem",              // openSUSE
      "/etc/ssl/cert.pem",                   // Alpine, macOS-like layouts
  };
  for (const char* path : kBundles) {
    if (::access(path, R_OK) == 0) return path;
  }
  return "";
}

class CurlTransport : public HttpTransport {
 public:
  CurlTransport() {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    // The AWS SDKs' variable for a private CA bundle (corporate proxies, local TLS endpoints).
    if (const char* bundle = std::getenv("AWS_CA_BUNDLE"); bundle && *bundle) {
      ca_bundle_ = bundle;
    } else {
      ca_bundle_ = SystemCaBundle();
    }
  }
  ~CurlTransport() override {
    for (CURL* h : idle_) curl_easy_cleanup(h);
  }

  HttpResponse Perform(const HttpRequest& request) override {
    CURL* handle = Acquire();
    HttpResponse response;
    curl_slist* header_list = nullptr;
    bool has_content_type = false;
    for (const auto& [name, value] : request.headers) {
      if (Lower(name) == "content-type") has_content_type = true;
      // "Name;" is curl's way to send a header with an empty value.
      std::string line = value.empty() ? name + ";" : name + ": " + value;
      header_list = curl_slist_append(header_list, line.c_str());
    }
    // curl would otherwise add headers we did not sign or do not want.
    header_list = curl_slist_append(header_list, "Expect:");
    if (!has_content_type) header_list = curl_slist_append(header_list, "Content-Type:");
    header_list = curl_slist_append(header_list, "Accept:");

    curl_easy_setopt(handle, CURLOPT_URL, request.url.c_str());
    curl_easy_setopt(handle, CURLOPT_HTTPHEADER, header_list);
    curl_easy_setopt(handle, CURLOPT_NOSIGNAL, 1L);  // threads: no SIGALRM for DNS timeouts
    curl_easy_setopt(handle, CURLOPT_TIMEOUT_MS, static_cast<long>(request.timeout_ms));
    curl_easy_setopt(handle, CURLOPT_CONNECTTIMEOUT_MS,
                     static_cast<long>(request.connect_timeout_ms));
    curl_easy_setopt(handle, CURLOPT_WRITEFUNCTION, WriteBody);
    BodySink sink{&response.body, request.max_response_bytes};
    curl_easy_setopt(handle, CURLOPT_WRITEDATA, &sink);
    curl_slist* resolve = nullptr;
    if (!request.pinned_address.empty()) {
      resolve =
          curl_slist_append(nullptr, ResolveEntry(request.url, request.pinned_address).c_str());
      curl_easy_setopt(handle, CURLOPT_RESOLVE, resolve);
      curl_easy_setopt(handle, CURLOPT_NOPROXY, "*");
    }
    curl_easy_setopt(handle, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(handle, CURLOPT_HEADERFUNCTION, WriteHeader);
    curl_easy_setopt(handle, CURLOPT_HEADERDATA, &response.headers);
    curl_easy_setopt(handle, CURLOPT_FOLLOWLOCATION, 0L);  // a redirect changes what was signed
    curl_easy_setopt(handle, CURLOPT_USERAGENT, "imagegen/" IMAGEGEN_VERSION);
    curl_easy_setopt(handle, CURLOPT_TCP_KEEPALIVE, 1L);
    if (!ca_bundle_.empty()) curl_easy_setopt(handle, CURLOPT_CAINFO, ca_bundle_.c_str());
    // Callers (the signer) already encoded the path; curl must send it byte for byte.
    curl_easy_setopt(handle, CURLOPT_PATH_AS_IS, 1L);
    const std::string& method = request.method;
    if (method == "HEAD") {
      curl_easy_setopt(handle, CURLOPT_NOBODY, 1L);
    } else if (method == "GET") {
      curl_easy_setopt(handle, CURLOPT_HTTPGET, 1L);
    } else {
      curl_easy_setopt(handle, CURLOPT_POSTFIELDS, request.body.data());
      curl_easy_setopt(handle, CURLOPT_POSTFIELDSIZE_LARGE,
                       static_cast<curl_off_t>(request.body.size()));
      if (method != "POST") curl_easy_setopt(handle, CURLOPT_CUSTOMREQUEST, method.c_str());
    }
    char error_buffer[CURL_ERROR_SIZE] = {0};
    curl_easy_setopt(handle, CURLOPT_ERRORBUFFER, error_buffer);

    CURLcode code = curl_easy_perform(handle);
    if (code == CURLE_OK) {
      long status = 0;
      curl_easy_getinfo(handle, CURLINFO_RESPONSE_CODE, &status);
      response.status = static_cast<int>(status);
    } else {
      response.failure = Classify(code);
      response.failure_message = error_buffer[0] ? error_buffer : curl_easy_strerror(code);
      response.status = 0;
      response.body.clear();
      response.headers.clear();
    }
    curl_slist_free_all(header_list);
    curl_slist_free_all(resolve);
    // A pinned handle keeps its DNS cache entry: it must not serve the next caller.
    Release(handle, code == CURLE_OK && resolve == nullptr);
    return response;
  }

 private:
  static constexpr size_t kMaxIdle = 16;

  CURL* Acquire() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!idle_.empty()) {
        CURL* h = idle_.back();
        idle_.pop_back();
        return h;
      }
    }
    return curl_easy_init();
  }

  void Release(CURL* handle, bool healthy) {
    // Options are reset, but the handle keeps its connection cache (keep-alive) and DNS cache.
    curl_easy_reset(handle);
    std::lock_guard<std::mutex> lock(mu_);
    if (healthy && idle_.size() < kMaxIdle) {
      idle_.push_back(handle);
    } else {
      curl_easy_cleanup(handle);  // a failed handle may hold a broken connection
    }
  }

  std::string ca_bundle_;
  std::mutex mu_;
  std::vector<CURL*> idle_;  // guarded by mu_
};

}  // namespace

std::shared_ptr<HttpTransport> DefaultTransport() {
  static std::shared_ptr<HttpTransport> transport = std::make_shared<CurlTransport>();
  return transport;
}

}  // namespace imagegen::aws
