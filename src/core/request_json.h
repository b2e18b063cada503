// JSON bodies -> GenerateRequest, with typed errors that name the field.
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <set>
#include <string>

#include "core/request.h"

namespace imagegen {

// Unknown-field policy: strict. A member that is not a known field is an invalid_request
// naming it, so a typo ("negative_promt") never silently changes the result.
// The body of POST /generate, POST /jobs and queue messages.
Result<GenerateRequest> ParseGenerateJson(const nlohmann::json& body);

// A queue message body (SQS, the embedded queue, a Lambda SQS record): a JSON object with the
// fields of POST /generate (job_id included), or, as the seed's
// `aws sqs send-message --message-body "a croissant"` sends, plain text taken as the prompt
// (a JSON string is taken as the prompt too). When the body names no job_id, `fallback_job_id`
// (e.g. the queue's message id) names the output, so a redelivery finds the same key. An
// "owner" member (written by JobMessageBody) sets GenerateRequest::owner.
Result<GenerateRequest> ParseJobMessage(const std::string& body,
                                        const std::string& fallback_job_id);

// Parses text as a JSON object; errors are invalid_request with the parser's position.
Result<nlohmann::json> ParseJsonObject(const std::string& text);

// Field readers shared by the native and OpenAI-compatible parsers.
Status ReadString(const nlohmann::json& body, const char* name, std::string* out);
Status ReadInt(const nlohmann::json& body, const char* name, int64_t lo, int64_t hi, int64_t* out);
Status ReadNumber(const nlohmann::json& body, const char* name, std::optional<double>* out);
Status CheckKnownFields(const nlohmann::json& body, const std::set<std::string>& known);

}  // namespace imagegen
