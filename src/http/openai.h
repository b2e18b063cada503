// POST /v1/images/generations: the OpenAI Images API request and response shapes, mapped onto
// the same pipeline. imagegen's own fields (negative_prompt, seed, steps, guidance_scale) are
// accepted too, since OpenAI-compatible clients otherwise lose them.
//
// Every documented request field is accepted. Honoured: prompt, n, size (incl. "auto"),
// response_format, output_format, output_compression (the JPEG/WebP quality), background,
// quality (low/medium/high/standard/hd choose the sampler steps; auto is the model default).
// Accepted and reported in "warnings" because imagegen cannot honour them: moderation (no
// moderation of imagegen's own; a model's own filters still apply), style, partial_images
// without stream. `user` is accepted and unused. `stream: true` is refused (400, param
// "stream"): streaming is not implemented yet.
#pragma once

#include <functional>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "http/http_types.h"
#include "pipeline/pipeline.h"

namespace imagegen {

struct OpenAiRequest {
  GenerateRequest request;
  bool b64_json = false;              // response_format
  std::vector<std::string> warnings;  // fields accepted but not honoured
};

// `model_name`: the server's model. OpenAI clients send their own model names ("dall-e-3");
// any value is accepted and the server's model is used (reported in the response).
Result<OpenAiRequest> ParseOpenAiRequest(const nlohmann::json& body, const std::string& model_name);

// The response: created, data[] (b64_json or url, revised_prompt), background ("transparent"
// only when an image kept its alpha), output_format, quality, size, usage, plus imagegen's model
// and warnings. usage counts text tokens as words (whitespace-separated runs) of the prompt and
// negative prompt: imagegen's models do not share one tokenizer, and images are not tokens
// here, so output_tokens and image_tokens are 0.
HttpResponse OpenAiSuccessResponse(
    const OpenAiRequest& request, const GenerateResult& result, ObjectStore& store,
    const std::function<std::string(const std::string&)>& url_for_key);

// OpenAI's error shape: {"error": {"message", "type", "param", "code"}}, with param in OpenAI's
// names (n, output_format, output_compression) where the native field differs.
HttpResponse OpenAiErrorResponse(const Error& error);

// The number of words (maximal runs of non-space characters) in `text`: usage's token count.
int CountWords(const std::string& text);

}  // namespace imagegen
