// AWS Signature Version 4: Authorization headers and presigned query URLs.
//
// Pure functions over a plain request description; no I/O, no clock (the caller passes the
// time), so the same code is checked byte-for-byte against botocore's signers
// (tests/integration/test_aws_sigv4.py) and reused by every service adapter.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace imagegen::aws {

using HeaderList = std::vector<std::pair<std::string, std::string>>;
using QueryList = std::vector<std::pair<std::string, std::string>>;

struct SigningKeys {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;  // empty: long-term keys
};

inline constexpr std::string_view kUnsignedPayload = "UNSIGNED-PAYLOAD";

// What is signed. `path` and `query` are raw (not yet percent-encoded): the signer and the HTTP
// client encode them the same way, so the bytes on the wire are the bytes that were signed.
struct SignableRequest {
  std::string method = "GET";
  std::string host;  // as in the Host header: lower-case, ":port" only when not the default
  std::string path = "/";
  // `path` is already in wire form (percent-encoded by the caller), for URI labels that must
  // encode '/' too, e.g. "/model/" + UriEncode(model_arn, false) + "/invoke" (Bedrock).
  bool path_encoded = false;
  QueryList query;
  HeaderList headers;  // any case; duplicates are joined with ',' as HTTP allows
  std::string body;
};

struct SigningParams {
  std::string service;  // signing name: "s3", "sqs", "bedrock"
  std::string region;
  int64_t time_s = 0;  // epoch seconds; X-Amz-Date and the credential scope derive from it
  // S3 rules: the path is encoded once and not normalised, and the payload hash is also sent
  // as X-Amz-Content-SHA256. Other services encode the (normalised) path twice.
  bool s3 = false;
  // Sign "UNSIGNED-PAYLOAD" instead of the body's SHA-256 (and send it as X-Amz-Content-SHA256).
  bool unsigned_payload = false;
};

// The encoded path as sent on the wire: UriEncode(path, keep_slash=true), "/" when empty.
std::string WirePath(std::string_view raw_path);
// The encoded query as sent on the wire and as canonicalised: each key and value
// UriEncode'd, pairs sorted by encoded key then encoded value, joined with '&'.
std::string CanonicalQueryString(const QueryList& query);
// The canonical URI: the wire path for S3; for other services the wire path with dot segments
// and empty segments removed, encoded a second time. `encoded`: `path` is already wire form.
std::string CanonicalUri(std::string_view path, bool s3, bool encoded = false);

struct SignatureParts {  // intermediate results, for tests and debugging
  std::string canonical_request;
  std::string string_to_sign;
  std::string signature;
  std::string signed_headers;
};

// Adds X-Amz-Date, X-Amz-Security-Token (with a session token), X-Amz-Content-SHA256 (S3 or
// unsigned payload) and Authorization to `request->headers`, replacing earlier values of
// those headers, so signing again (a retry) is safe. A Host header is signed (from
// `request->host`) but not added; the HTTP client sends the same value.
SignatureParts SignHeaders(SignableRequest* request, const SigningKeys& keys,
                           const SigningParams& params);

// The query string of a presigned URL for `request` (its own query first, then the X-Amz-*
// parameters, then X-Amz-Signature). Only `host` and the request's own headers are signed;
// the payload is always UNSIGNED-PAYLOAD. `expires_s` is clamped to [1, 604800].
std::string PresignQuery(const SignableRequest& request, const SigningKeys& keys,
                         const SigningParams& params, int expires_s,
                         SignatureParts* parts = nullptr);

}  // namespace imagegen::aws
