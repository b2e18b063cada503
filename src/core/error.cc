#include "core/error.h"

#include <array>

namespace imagegen {
namespace {

struct ErrorSpec {
  ErrorCode code;
  std::string_view name;
  int http_status;
  int exit_code;
  bool retryable;
};

// The single table that maps the taxonomy onto every door.
constexpr std::array<ErrorSpec, 20> kErrorTable = {{
    {ErrorCode::kInvalidRequest, "invalid_request", 400, 2, false},
    {ErrorCode::kUnauthorized, "unauthorized", 401, 4, false},
    {ErrorCode::kForbidden, "forbidden", 403, 4, false},
    {ErrorCode::kNotFound, "not_found", 404, 3, false},
    {ErrorCode::kMethodNotAllowed, "method_not_allowed", 405, 2, false},
    {ErrorCode::kPayloadTooLarge, "payload_too_large", 413, 2, false},
    {ErrorCode::kUnsupportedMediaType, "unsupported_media_type", 415, 2, false},
    {ErrorCode::kContentRejected, "content_rejected", 400, 4, false},
    {ErrorCode::kRateLimited, "rate_limited", 429, 5, true},
    {ErrorCode::kOverloaded, "overloaded", 503, 5, true},
    {ErrorCode::kCancelled, "cancelled", 409, 1, false},
    {ErrorCode::kDeadlineExceeded, "deadline_exceeded", 504, 5, true},
    {ErrorCode::kUpstreamTimeout, "upstream_timeout", 504, 5, true},
    {ErrorCode::kUpstreamUnavailable, "upstream_unavailable", 502, 5, true},
    {ErrorCode::kConflict, "conflict", 409, 2, false},
    {ErrorCode::kRequestTimeout, "request_timeout", 408, 5, true},
    {ErrorCode::kHeadersTooLarge, "headers_too_large", 431, 2, false},
    {ErrorCode::kNotImplemented, "not_implemented", 501, 2, false},
    {ErrorCode::kGone, "gone", 410, 3, false},
    {ErrorCode::kInternal, "internal", 500, 1, true},
}};

const ErrorSpec& SpecFor(ErrorCode code) {
  for (const auto& spec : kErrorTable) {
    if (spec.code == code) return spec;
  }
  return kErrorTable.back();
}

}  // namespace

std::string_view ErrorCodeName(ErrorCode code) { return SpecFor(code).name; }

std::optional<ErrorCode> ErrorCodeFromName(std::string_view name) {
  for (const auto& spec : kErrorTable) {
    if (spec.name == name) return spec.code;
  }
  return std::nullopt;
}

int HttpStatusFor(ErrorCode code) { return SpecFor(code).http_status; }
int ExitCodeFor(ErrorCode code) { return SpecFor(code).exit_code; }
bool IsRetryable(ErrorCode code) { return SpecFor(code).retryable; }

}  // namespace imagegen
