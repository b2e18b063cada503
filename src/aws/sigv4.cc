#include "aws/sigv4.h"

#include <algorithm>
#include <map>

#include "aws/encoding.h"

namespace imagegen::aws {
namespace {

// Headers that proxies and HTTP stacks add, drop or rewrite; signing them breaks requests
// that pass through such a hop. The same list as botocore's SIGNED_HEADERS_BLACKLIST.
bool IsUnsignedHeader(const std::string& lower_name) {
  static const char* const kSkip[] = {"baggage",    "connection",         "expect",
                                      "keep-alive", "proxy-authenticate", "proxy-authorization",
                                      "te",         "traceparent",        "tracestate",
                                      "trailer",    "transfer-encoding",  "upgrade",
                                      "user-agent", "x-amzn-trace-id",    "authorization"};
  for (const char* s : kSkip) {
    if (lower_name == s) return true;
  }
  return false;
}

// Trimall from the SigV4 spec: no leading/trailing whitespace, inner runs collapsed to one space.
std::string TrimAll(std::string_view value) {
  std::string out;
  bool pending_space = false;
  for (char c : value) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f') {
      pending_space = !out.empty();
      continue;
    }
    if (pending_space) out.push_back(' ');
    pending_space = false;
    out.push_back(c);
  }
  return out;
}

// RFC 3986 5.2.4 dot-segment removal plus collapsing of empty segments, as AWS services other
// than S3 expect (and as botocore does before the second encoding).
std::string NormalizePath(std::string_view path) {
  if (path.empty()) return "/";
  std::vector<std::string_view> out;
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    std::string_view seg = path.substr(start, end - start);
    if (!seg.empty() && seg != ".") {
      if (seg == "..") {
        if (!out.empty()) out.pop_back();
      } else {
        out.push_back(seg);
      }
    }
    start = end + 1;
  }
  std::string result = path.front() == '/' ? "/" : "";
  for (size_t i = 0; i < out.size(); ++i) {
    if (i) result.push_back('/');
    result.append(out[i]);
  }
  if (path.back() == '/' && !out.empty()) result.push_back('/');
  return result;
}

void RemoveHeader(HeaderList* headers, std::string_view lower_name) {
  headers->erase(std::remove_if(headers->begin(), headers->end(),
                                [&](const auto& h) { return Lower(h.first) == lower_name; }),
                 headers->end());
}

struct CanonicalHeaders {
  std::string block;         // "name:value\n" for each, sorted
  std::string signed_names;  // "a;b;c"
};

CanonicalHeaders Canonicalize(const HeaderList& headers, const std::string& host) {
  std::map<std::string, std::string> merged;
  for (const auto& [name, value] : headers) {
    std::string lower = Lower(Trim(name));
    if (IsUnsignedHeader(lower)) continue;
    auto [it, inserted] = merged.emplace(lower, TrimAll(value));
    if (!inserted) it->second += "," + TrimAll(value);
  }
  if (!merged.count("host")) merged.emplace("host", host);
  CanonicalHeaders out;
  for (const auto& [name, value] : merged) {
    out.block += name + ":" + value + "\n";
    if (!out.signed_names.empty()) out.signed_names.push_back(';');
    out.signed_names += name;
  }
  return out;
}

std::string SigningKey(const SigningKeys& keys, const std::string& date,
                       const SigningParams& params) {
  std::string k_date = HmacSha256("AWS4" + keys.secret_access_key, date);
  std::string k_region = HmacSha256(k_date, params.region);
  std::string k_service = HmacSha256(k_region, params.service);
  return HmacSha256(k_service, "aws4_request");
}

// Shared tail of both signing styles: canonical request -> string to sign -> signature.
SignatureParts Sign(const std::string& method, const std::string& canonical_uri,
                    const std::string& canonical_query, const CanonicalHeaders& headers,
                    const std::string& payload_hash, const SigningKeys& keys,
                    const SigningParams& params, const std::string& amz_date) {
  SignatureParts parts;
  parts.canonical_request = method + "\n" + canonical_uri + "\n" + canonical_query + "\n" +
                            headers.block + "\n" + headers.signed_names + "\n" + payload_hash;
  std::string date = amz_date.substr(0, 8);
  std::string scope = date + "/" + params.region + "/" + params.service + "/aws4_request";
  parts.string_to_sign =
      "AWS4-HMAC-SHA256\n" + amz_date + "\n" + scope + "\n" + Sha256Hex(parts.canonical_request);
  parts.signature = HexEncode(HmacSha256(SigningKey(keys, date, params), parts.string_to_sign));
  parts.signed_headers = headers.signed_names;
  return parts;
}

std::string UpperMethod(std::string method) {
  for (char& c : method) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return method;
}

}  // namespace

std::string WirePath(std::string_view raw_path) {
  if (raw_path.empty()) return "/";
  return UriEncode(raw_path, /*keep_slash=*/true);
}

std::string CanonicalUri(std::string_view path, bool s3, bool encoded) {
  std::string wire =
      encoded ? (path.empty() ? std::string("/") : std::string(path)) : WirePath(path);
  if (s3) return wire;
  // Other services see the path after their front end decoded it once, so the canonical form
  // is the wire form (normalised) encoded a second time: "%20" becomes "%2520".
  return UriEncode(NormalizePath(wire), /*keep_slash=*/true);
}

std::string CanonicalQueryString(const QueryList& query) {
  std::vector<std::pair<std::string, std::string>> encoded;
  encoded.reserve(query.size());
  for (const auto& [k, v] : query) {
    encoded.emplace_back(UriEncode(k, false), UriEncode(v, false));
  }
  std::sort(encoded.begin(), encoded.end());
  std::string out;
  for (const auto& [k, v] : encoded) {
    if (!out.empty()) out.push_back('&');
    out += k + "=" + v;
  }
  return out;
}

SignatureParts SignHeaders(SignableRequest* request, const SigningKeys& keys,
                           const SigningParams& params) {
  const std::string amz_date = FormatAmzDate(params.time_s);
  HeaderList& headers = request->headers;
  RemoveHeader(&headers, "authorization");
  RemoveHeader(&headers, "x-amz-date");
  headers.emplace_back("X-Amz-Date", amz_date);
  if (!keys.session_token.empty()) {
    RemoveHeader(&headers, "x-amz-security-token");
    headers.emplace_back("X-Amz-Security-Token", keys.session_token);
  }
  std::string payload_hash =
      params.unsigned_payload ? std::string(kUnsignedPayload) : Sha256Hex(request->body);
  if (params.s3 || params.unsigned_payload) {
    RemoveHeader(&headers, "x-amz-content-sha256");
    headers.emplace_back("X-Amz-Content-SHA256", payload_hash);
  }
  CanonicalHeaders canonical = Canonicalize(headers, request->host);
  SignatureParts parts = Sign(
      UpperMethod(request->method), CanonicalUri(request->path, params.s3, request->path_encoded),
      CanonicalQueryString(request->query), canonical, payload_hash, keys, params, amz_date);
  headers.emplace_back("Authorization", "AWS4-HMAC-SHA256 Credential=" + keys.access_key_id + "/" +
                                            amz_date.substr(0, 8) + "/" + params.region + "/" +
                                            params.service +
                                            "/aws4_request, SignedHeaders=" + parts.signed_headers +
                                            ", Signature=" + parts.signature);
  return parts;
}

std::string PresignQuery(const SignableRequest& request, const SigningKeys& keys,
                         const SigningParams& params, int expires_s, SignatureParts* parts_out) {
  const std::string amz_date = FormatAmzDate(params.time_s);
  expires_s = std::clamp(expires_s, 1, 604800);
  CanonicalHeaders canonical = Canonicalize(request.headers, request.host);
  QueryList query = request.query;
  query.emplace_back("X-Amz-Algorithm", "AWS4-HMAC-SHA256");
  query.emplace_back("X-Amz-Credential", keys.access_key_id + "/" + amz_date.substr(0, 8) + "/" +
                                             params.region + "/" + params.service +
                                             "/aws4_request");
  query.emplace_back("X-Amz-Date", amz_date);
  query.emplace_back("X-Amz-Expires", std::to_string(expires_s));
  query.emplace_back("X-Amz-SignedHeaders", canonical.signed_names);
  if (!keys.session_token.empty()) query.emplace_back("X-Amz-Security-Token", keys.session_token);
  std::string canonical_query = CanonicalQueryString(query);
  SignatureParts parts =
      Sign(UpperMethod(request.method), CanonicalUri(request.path, params.s3, request.path_encoded),
           canonical_query, canonical, std::string(kUnsignedPayload), keys, params, amz_date);
  std::string out = canonical_query + "&X-Amz-Signature=" + parts.signature;
  if (parts_out) *parts_out = std::move(parts);
  return out;
}

}  // namespace imagegen::aws
