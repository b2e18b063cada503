// The one place where AWS failures become imagegen errors, and where it is decided whether a
// failure is worth another attempt.
#pragma once

#include <string>

#include "aws/http.h"
#include "core/error.h"

namespace imagegen::aws {

// Everything known about one failed AWS call.
struct AwsFailure {
  std::string operation;  // "S3.PutObject", "SQS.ReceiveMessage", "Bedrock.InvokeModel"
  std::string resource;   // "s3://bucket/key", a queue URL, a model id; never a secret
  int http_status = 0;    // 0 when the transport failed
  TransportFailure transport = TransportFailure::kNone;
  std::string transport_message;
  std::string aws_code;  // "NoSuchKey", "ThrottlingException", "QueueDoesNotExist"
  std::string message;   // the service's message
  std::string request_id;
  int retry_after_s = 0;      // from Retry-After, when the service sent one
  std::string bucket_region;  // S3's x-amz-bucket-region on a wrong-region redirect
};

// Extracts code, message and request id from an error response of any AWS protocol: JSON
// ("__type"/"code" + "message"), XML (<Code>/<Message>), the x-amzn-ErrorType and
// x-amzn-query-error headers, and the request-id headers. The code keeps only the part after
// '#' or before ':'.
AwsFailure ParseFailure(const HttpResponse& response);

// The mapping:
//   throttling codes or 429          -> kRateLimited
//   timeouts                         -> kUpstreamTimeout
//   5xx, connection refused/reset    -> kUpstreamUnavailable
//   AccessDenied, signature, token, 401/403 -> kForbidden
//   NoSuchKey, NotFound, QueueDoesNotExist, 404 -> kNotFound
//   other 3xx/4xx (ValidationException, ...)   -> kInvalidRequest
// The message names operation and resource and keeps the AWS code and request id.
Error MapAwsError(const AwsFailure& failure);

bool IsThrottlingCode(const std::string& aws_code);
// AWS "standard" retry mode: throttling, transient codes, 5xx, timeouts and broken
// connections are retried; other 4xx never are.
bool IsRetryable(const AwsFailure& failure);

}  // namespace imagegen::aws
