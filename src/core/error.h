// The one error taxonomy of imagegen, and the one place where it is mapped onto
// every door's outcome: HTTP status, CLI exit code, and queue disposition.
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace imagegen {

enum class ErrorCode {
  kInvalidRequest,        // the caller sent something we will never accept
  kUnauthorized,          // missing or wrong API key
  kForbidden,             // upstream denied access (IAM, model access)
  kNotFound,              // unknown route, key, job or model
  kMethodNotAllowed,      // route exists, method does not
  kPayloadTooLarge,       // body over the configured limit
  kUnsupportedMediaType,  // body is not JSON where JSON is required
  kContentRejected,       // a content filter refused the prompt
  kRateLimited,           // too many requests (ours or upstream's throttling)
  kOverloaded,            // all generation slots busy; try again shortly
  kCancelled,             // the job was cancelled by its owner
  kDeadlineExceeded,      // our own deadline (Lambda invocation, request timeout)
  kUpstreamTimeout,       // a dependency did not answer in time
  kUpstreamUnavailable,   // a dependency failed (5xx, reset, refused)
  kInternal,              // a bug or an impossible state
  kConflict,              // the name (job id, key) is taken by a different request
  kRequestTimeout,        // the client did not send the whole request in time
  kHeadersTooLarge,       // request header section over the size or count limit
  kNotImplemented,        // a transfer coding or method the server does not implement
  kGone,                  // the object existed and was deleted on purpose (DELETE /images)
};

// Stable machine-readable name, e.g. "invalid_request". Part of the API contract.
std::string_view ErrorCodeName(ErrorCode code);
std::optional<ErrorCode> ErrorCodeFromName(std::string_view name);
int HttpStatusFor(ErrorCode code);
// CLI exit codes: 2 for bad input (as for bad arguments), 3 not found, 4 refused by policy,
// 5 temporary (retry may succeed), 1 internal.
int ExitCodeFor(ErrorCode code);
// Whether a queued job that failed with this code should be retried (true) or dead-lettered.
bool IsRetryable(ErrorCode code);

struct Error {
  ErrorCode code = ErrorCode::kInternal;
  std::string message;    // human readable; names the field and the allowed range
  std::string field;      // the request field at fault, if any
  int retry_after_s = 0;  // > 0: a hint for Retry-After

  static Error Invalid(std::string field, std::string message) {
    return Error{ErrorCode::kInvalidRequest, std::move(message), std::move(field), 0};
  }
  static Error Make(ErrorCode code, std::string message) {
    return Error{code, std::move(message), {}, 0};
  }
};

// A value or an Error. Cheap to move; OK results carry no error allocation.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}      // NOLINT: implicit by design
  Result(Error error) : v_(std::move(error)) {}  // NOLINT: implicit by design

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() & {
    assert(ok());
    return std::get<0>(v_);
  }
  const T& value() const& {
    assert(ok());
    return std::get<0>(v_);
  }
  T&& value() && {
    assert(ok());
    return std::get<0>(std::move(v_));
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  const Error& error() const {
    assert(!ok());
    return std::get<1>(v_);
  }

 private:
  std::variant<T, Error> v_;
};

// Result<void>: OK or an Error.
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Error error) : error_(std::move(error)) {}  // NOLINT: implicit by design
  static Status Ok() { return Status(); }
  bool ok() const { return !error_.has_value(); }
  explicit operator bool() const { return ok(); }
  const Error& error() const {
    assert(!ok());
    return *error_;
  }

 private:
  std::optional<Error> error_;
};

}  // namespace imagegen
