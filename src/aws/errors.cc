#include "aws/errors.h"

#include <nlohmann/json.hpp>

#include "aws/encoding.h"
#include "aws/xml.h"

namespace imagegen::aws {
namespace {

bool OneOf(const std::string& code, std::initializer_list<const char*> list) {
  for (const char* c : list) {
    if (code == c) return true;
  }
  return false;
}

// "com.amazonaws.sqs#QueueDoesNotExist" -> "QueueDoesNotExist";
// "ValidationException:http://internal.amazon.com/coral/..." -> "ValidationException".
std::string CleanCode(std::string code) {
  size_t hash = code.rfind('#');
  if (hash != std::string::npos) code = code.substr(hash + 1);
  size_t colon = code.find(':');
  if (colon != std::string::npos) code = code.substr(0, colon);
  return Trim(code);
}

}  // namespace

AwsFailure ParseFailure(const HttpResponse& response) {
  AwsFailure f;
  f.http_status = response.status;
  f.transport = response.failure;
  f.transport_message = response.failure_message;
  for (const char* h : {"x-amzn-requestid", "x-amz-request-id", "x-amzn-request-id"}) {
    if (f.request_id.empty()) f.request_id = response.Header(h);
  }
  if (auto ra = response.Header("retry-after"); !ra.empty()) {
    try {
      f.retry_after_s = std::max(0, std::stoi(ra));
    } catch (...) {
      f.retry_after_s = 0;
    }
  }
  f.bucket_region = response.Header("x-amz-bucket-region");
  const std::string& body = response.body;
  std::string first;
  for (char c : body) {
    if (!std::isspace(static_cast<unsigned char>(c))) {
      first = c;
      break;
    }
  }
  if (first == "{") {
    auto j = nlohmann::json::parse(body, nullptr, false);
    if (j.is_object()) {
      for (const char* k : {"__type", "code", "Code"}) {
        if (f.aws_code.empty() && j.contains(k) && j[k].is_string()) {
          f.aws_code = CleanCode(j[k].get<std::string>());
        }
      }
      for (const char* k : {"message", "Message", "errorMessage"}) {
        if (f.message.empty() && j.contains(k) && j[k].is_string()) {
          f.message = j[k].get<std::string>();
        }
      }
    }
  } else if (first == "<") {
    auto doc = ParseXml(body);
    if (doc.ok()) {
      // S3: <Error><Code/>...; query protocols: <ErrorResponse><Error><Code/>...
      const XmlNode* err = doc->name == "Error" ? &*doc : doc->Find("Error");
      if (err) {
        f.aws_code = CleanCode(err->ChildText("Code"));
        f.message = err->ChildText("Message");
        if (f.request_id.empty()) f.request_id = err->ChildText("RequestId");
      }
      if (f.request_id.empty()) f.request_id = doc->ChildText("RequestId");
    }
  }
  // The SQS JSON protocol names the legacy query error code here, e.g.
  // "AWS.SimpleQueueService.NonExistentQueue;Sender"; x-amzn-ErrorType is the REST-JSON one.
  if (f.aws_code.empty()) f.aws_code = CleanCode(response.Header("x-amzn-errortype"));
  if (f.aws_code.empty()) {
    std::string q = response.Header("x-amzn-query-error");
    f.aws_code = Trim(q.substr(0, q.find(';')));
  }
  return f;
}

bool IsThrottlingCode(const std::string& code) {
  return OneOf(
      code, {"Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException",
             "TooManyRequestsException", "ProvisionedThroughputExceededException",
             "TransactionInProgressException", "RequestLimitExceeded", "BandwidthLimitExceeded",
             "LimitExceededException", "RequestThrottled", "SlowDown", "PriorRequestNotComplete",
             "EC2ThrottledException", "AWS.SimpleQueueService.RequestThrottled"});
}

namespace {

bool IsTransientCode(const std::string& code) {
  return OneOf(code,
               {"RequestTimeout", "RequestTimeoutException", "InternalError", "InternalFailure",
                "ServiceUnavailable", "ServiceUnavailableException", "ModelNotReadyException"});
}

bool IsForbiddenCode(const std::string& code) {
  return OneOf(code, {"AccessDenied",
                      "AccessDeniedException",
                      "InvalidSignature",
                      "InvalidSignatureException",
                      "SignatureDoesNotMatch",
                      "ExpiredToken",
                      "ExpiredTokenException",
                      "UnrecognizedClient",
                      "UnrecognizedClientException",
                      "InvalidAccessKeyId",
                      "InvalidClientTokenId",
                      "MissingAuthenticationToken",
                      "IncompleteSignature",
                      "InvalidToken",
                      "AccountProblem",
                      "AllAccessDisabled",
                      "RequestExpired",
                      "RequestTimeTooSkewed",
                      "AWS.SimpleQueueService.AccessDenied",
                      "KMS.AccessDeniedException"});
}

bool IsNotFoundCode(const std::string& code) {
  return OneOf(code, {"NoSuchKey", "NoSuchBucket", "NotFound", "ResourceNotFoundException",
                      "QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue",
                      "NoSuchUpload", "NoSuchVersion"});
}

}  // namespace

bool IsRetryable(const AwsFailure& f) {
  if (f.transport != TransportFailure::kNone) return f.transport != TransportFailure::kOther;
  if (IsThrottlingCode(f.aws_code) || IsTransientCode(f.aws_code)) return true;
  if (f.http_status == 429) return true;
  return f.http_status == 500 || f.http_status == 502 || f.http_status == 503 ||
         f.http_status == 504;
}

Error MapAwsError(const AwsFailure& f) {
  ErrorCode code;
  if (f.transport == TransportFailure::kTimeout) {
    code = ErrorCode::kUpstreamTimeout;
  } else if (f.transport != TransportFailure::kNone) {
    code = f.transport == TransportFailure::kOther ? ErrorCode::kInternal
                                                   : ErrorCode::kUpstreamUnavailable;
  } else if (IsThrottlingCode(f.aws_code) || f.http_status == 429) {
    code = ErrorCode::kRateLimited;
  } else if (f.aws_code == "RequestTimeout" || f.aws_code == "RequestTimeoutException") {
    code = ErrorCode::kUpstreamTimeout;
  } else if (f.http_status >= 500 || IsTransientCode(f.aws_code)) {
    code = f.http_status == 504 ? ErrorCode::kUpstreamTimeout : ErrorCode::kUpstreamUnavailable;
  } else if (IsForbiddenCode(f.aws_code) || f.http_status == 401 || f.http_status == 403) {
    code = ErrorCode::kForbidden;
  } else if (IsNotFoundCode(f.aws_code) || f.http_status == 404) {
    code = ErrorCode::kNotFound;
  } else if (f.http_status >= 300 && f.http_status < 500) {
    code = ErrorCode::kInvalidRequest;
  } else {
    code = ErrorCode::kUpstreamUnavailable;  // a 1xx/2xx we could not use
  }

  std::string message = f.operation;
  if (!f.resource.empty()) message += " " + f.resource;
  message += ": ";
  if (f.transport != TransportFailure::kNone) {
    message += f.transport == TransportFailure::kTimeout ? "timed out" : "connection failed";
    if (!f.transport_message.empty()) message += " (" + f.transport_message + ")";
  } else {
    message += "HTTP " + std::to_string(f.http_status);
    if (!f.aws_code.empty()) message += " " + f.aws_code;
    if (!f.message.empty()) message += ": " + f.message;
    if (f.http_status == 301 || f.http_status == 307) {
      message += f.bucket_region.empty()
                     ? " (the bucket is in another region or needs another endpoint)"
                     : " (the bucket is in region " + f.bucket_region + ")";
    }
  }
  if (!f.request_id.empty()) message += " [request id " + f.request_id + "]";
  Error error = Error::Make(code, std::move(message));
  if (code == ErrorCode::kRateLimited || code == ErrorCode::kUpstreamUnavailable) {
    error.retry_after_s = f.retry_after_s > 0 ? f.retry_after_s : 1;
  }
  return error;
}

}  // namespace imagegen::aws
