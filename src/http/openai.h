// The OpenAI Images API mapped onto the same pipeline: POST /v1/images/generations, POST
// /v1/images/edits (multipart/form-data, or JSON with data-URL images) and GET /v1/models.
// imagegen's own fields (negative_prompt, seed, steps, guidance_scale; strength on edits) are
// accepted too, since OpenAI-compatible clients otherwise lose them.
//
// Every documented request field is accepted. Honoured: prompt, n, size (incl. "auto"),
// response_format, output_format, output_compression (the JPEG/WebP quality), background,
// quality (low/medium/high/standard/hd choose the sampler steps; auto is the model default),
// stream with partial_images (Server-Sent Events; partial images are the model's previews).
// Accepted and reported in "warnings" because imagegen cannot honour them: moderation (no
// moderation of imagegen's own; a model's own filters still apply), style, partial_images
// without stream, input_fidelity, images after the first on edits, and partial images a model
// did not make (Bedrock makes none: its stream is the completed event alone), and `user` (an
// end-user id imagegen has no use for). stream with n > 1 is refused (400, param "n"): OpenAI's
// events carry no image index, so a client could not tell two completed images apart.
#pragma once

#include <functional>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "http/http_types.h"
#include "http/multipart.h"
#include "pipeline/pipeline.h"

namespace imagegen {

struct OpenAiRequest {
  GenerateRequest request;
  bool b64_json = false;              // response_format
  bool stream = false;                // answer Server-Sent Events
  int partial_images = 0;             // 0..3, with stream
  std::vector<std::string> warnings;  // fields accepted but not honoured
};

// `model_name`: the server's model. OpenAI clients send their own model names ("dall-e-3");
// any value is accepted and the server's model is used (reported in the response).
Result<OpenAiRequest> ParseOpenAiRequest(const nlohmann::json& body, const std::string& model_name);

// POST /v1/images/edits as multipart/form-data: the text fields as for generations (numbers and
// booleans as their text), files in `image` or `image[]` (the first is edited) and `mask`.
// OpenAI's mask marks the area to edit with its transparent pixels (alpha 0); it becomes the
// request's white = repaint mask here, so it must be an image with an alpha channel and the
// size of the image (400, param "mask", otherwise).
Result<OpenAiRequest> ParseOpenAiEditForm(const std::vector<MultipartPart>& parts,
                                          const std::string& model_name);
// The same as JSON: "images": [{"image_url": "data:image/png;base64,..."}], "mask":
// {"image_url": ...}. Only data URLs: imagegen fetches no URLs (400 for http(s) URLs and
// file_id).
Result<OpenAiRequest> ParseOpenAiEditJson(const nlohmann::json& body,
                                          const std::string& model_name);

// The response: created, data[] (b64_json or url, revised_prompt), background ("transparent"
// only when an image kept its alpha), output_format, quality, size, usage, plus imagegen's model
// and warnings. usage counts text tokens as words (whitespace-separated runs) of the prompt and
// negative prompt: imagegen's models do not share one tokenizer, and images are not tokens
// here, so output_tokens and image_tokens are 0.
HttpResponse OpenAiSuccessResponse(
    const OpenAiRequest& request, const GenerateResult& result, ObjectStore& store,
    const std::function<std::string(const std::string&)>& url_for_key);

// The events of a streamed generation or edit ("image_generation" or "image_edit" events):
// `<prefix>.partial_image` for up to partial_images of the model's previews (encoded in the
// requested output format at the requested size), then `<prefix>.completed` with the image and
// usage, or one `error` event ({"error": {...}} as OpenAiErrorResponse) when it fails. `run`
// runs the pipeline under the context it is given (previews wired in). `request_id` names an
// internal error in its generic message (the detail is logged, as for other answers).
void WriteOpenAiStream(const OpenAiRequest& request, const ValidRequest& valid,
                       const std::string& event_prefix, const std::string& request_id,
                       const std::function<Result<GenerateResult>(GenerateContext&)>& run,
                       ObjectStore& store, const BodyWriter& write);

// GET /v1/models: {"object": "list", "data": [<model>]} with the configured model, and GET
// /v1/models/{id} for it (404 in OpenAI's shape for any other id). "created" is when this
// process started; "owned_by" is "imagegen".
HttpResponse OpenAiModelsResponse(const std::string& model_name);
HttpResponse OpenAiModelResponse(const std::string& model_name, const std::string& id);

// OpenAI's error shape: {"error": {"message", "type", "param", "code"}}, with param in OpenAI's
// names (n, output_format, output_compression) where the native field differs.
HttpResponse OpenAiErrorResponse(const Error& error);

// The number of words (maximal runs of non-space characters) in `text`: usage's token count.
int CountWords(const std::string& text);

}  // namespace imagegen
