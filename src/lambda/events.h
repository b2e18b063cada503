// Lambda event shapes <-> imagegen's plain HTTP values. Pure functions: no I/O, no clock, so the
// unit tests drive them with the events AWS's own tooling generates.
//
// Supported shapes:
//   API Gateway REST proxy (payload 1.0): "httpMethod", "path", (multiValue)headers/query.
//   API Gateway HTTP API (payload 2.0) and Lambda Function URLs (2.0 with stage "$default").
//   SQS (Records[].eventSource == "aws:sqs"): handled by the caller, see handler.h.
//   A direct invocation whose payload is the body of POST /generate ({"prompt": ...}).
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <string>

#include "core/error.h"
#include "http/http_types.h"
#include "queue/job_queue.h"

namespace imagegen::lambda {

enum class EventKind {
  kApiGatewayV1,  // REST API proxy integration, payload format 1.0
  kApiGatewayV2,  // HTTP API payload 2.0, also Function URLs
  kSqs,           // SQS batch
  kDirect,        // aws lambda invoke --payload '{"prompt": ...}'
  kUnknown,
};

EventKind ClassifyEvent(const nlohmann::json& event);
const char* EventKindName(EventKind kind);  // "apigw-v1", "apigw-v2", "sqs", "direct", "unknown"

// Builds the request the HTTP handlers see. Header names are lower-cased (duplicates
// comma-joined), a base64 body is decoded, the query string is decoded, and `base_url` is the
// URL the client called (https://{domain}[/{stage}]) so that result URLs work from outside.
// kInvalidRequest when the event lacks the members that make it a request, or its base64 body is
// corrupt.
Result<HttpRequest> RequestFromApiGatewayV1(const nlohmann::json& event);
Result<HttpRequest> RequestFromApiGatewayV2(const nlohmann::json& event);

// The proxy response: {statusCode, headers, body, isBase64Encoded} (+ multiValueHeaders for
// 1.0). Text bodies (JSON, text/*, XML, JavaScript) travel as they are; any other type (PNG) is
// base64 with isBase64Encoded: true, which REST APIs turn back into bytes for the media types in
// binaryMediaTypes (the SAM stack declares "*/*").
nlohmann::json ProxyResponse(const HttpResponse& response, EventKind kind);

// One record of an SQS event as a queue message: messageId, body, and the attributes
// ApproximateReceiveCount and SentTimestamp (strings in the event; 1 and 0 when absent or
// malformed). The receipt stays empty: the event source mapping deletes or keeps the message.
QueueMessage MessageFromSqsRecord(const nlohmann::json& record);

// Whether a Content-Type is carried as text (true) or base64 (false).
bool IsTextContentType(const std::string& content_type);

// Lambda refuses synchronous responses over 6 MB (6,291,556 bytes); we stay under with room for
// the JSON envelope.
inline constexpr size_t kMaxResponseBytes = 6'000'000;

}  // namespace imagegen::lambda
