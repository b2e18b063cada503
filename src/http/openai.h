// POST /v1/images/generations: the OpenAI Images API request and response shapes, mapped onto
// the same pipeline. imagegen's own fields (negative_prompt, seed, steps, guidance_scale) are
// accepted too, since OpenAI-compatible clients otherwise lose them.
#pragma once

#include <functional>
#include <nlohmann/json_fwd.hpp>
#include <string>

#include "http/http_types.h"
#include "pipeline/pipeline.h"

namespace imagegen {

struct OpenAiRequest {
  GenerateRequest request;
  bool b64_json = false;  // response_format
};

// `model_name`: the server's model. OpenAI clients send their own model names ("dall-e-3");
// any value is accepted and the server's model is used (reported in the response).
Result<OpenAiRequest> ParseOpenAiRequest(const nlohmann::json& body, const std::string& model_name);

HttpResponse OpenAiSuccessResponse(
    const GenerateResult& result, bool b64_json, ObjectStore& store,
    const std::function<std::string(const std::string&)>& url_for_key);

// OpenAI's error shape: {"error": {"message", "type", "param", "code"}}.
HttpResponse OpenAiErrorResponse(const Error& error);

}  // namespace imagegen
