// `openai:BASE_URL[#MODEL]`: any OpenAI-compatible images server as imagegen's model (OpenAI
// itself, LocalAI, stable-diffusion.cpp's sd-server, another imagegen).
//
// The call: POST {BASE_URL}/v1/images/generations, or {BASE_URL}/images/generations when
// BASE_URL already ends in /v1 (so both "http://host:8080" and "https://api.openai.com/v1"
// work), with {"prompt", "n", "size": "WxH", "response_format": "b64_json"} (response_format is
// left out for gpt-image-* models, which always answer base64 and refuse it), "model" when one
// is configured, and "quality" when the request named an OpenAI quality. The returned images
// (b64_json, or a url fetched with a GET that carries no credentials) are decoded by the image
// codec (PNG, JPEG, WebP); the pipeline encodes them again in the asked format with imagegen's
// provenance. A size other than the one asked for is resized, with a warning. A "seed" per
// image (imagegen's own extension) is recorded as the image's seed.
//
// imagegen's own fields (negative_prompt, seed, steps, guidance_scale) are "extras": stock
// OpenAI refuses unknown parameters, so they are sent only as `extras` says:
//   kTopLevel   as members of the body, as imagegen's own OpenAI route (and LocalAI) read them;
//   kSdCpp      inside the prompt as <sd_cpp_extra_args>{"seed", "negative_prompt",
//               "sample_params": {"sample_steps", "guidance": {"txt_cfg"}}}</sd_cpp_extra_args>,
//               which stable-diffusion.cpp's sd-server takes out of the prompt and applies;
//   kOff        not at all: the upstream chooses its own seed, steps and guidance, and a warning
//               says so.
// Default (nullopt): kOff for hosts under openai.com and openai.azure.com, kTopLevel for any
// other.
//
// The API key (OPENAI_API_KEY or IMAGEGEN_OPENAI_API_KEY, read by app/config) travels as
// "Authorization: Bearer"; it never appears in Name(), messages or logs. A URL with
// credentials in it (user:pass@host) is refused.
//
// Retries: 429, 408, 5xx, and connection failures (refused, reset, timed out) are retried, at
// most `max_attempts` attempts in all, with the AWS standard mode's jittered exponential backoff
// (aws/retry.h, base `retry_base_ms`, at most 8 s), or the upstream's Retry-After when longer
// (up to 20 s; a longer one ends the retries at once, passing the hint on). No attempt starts
// or waits past the request's deadline, and an attempt's timeout is cut to the time left; a
// cancelled request stops before its next attempt or during a backoff (an exchange in progress
// runs to its timeout).
//
// Error mapping (the one place the upstream's errors meet the taxonomy):
//   400 / 422, content policy (content_policy_violation, moderation_blocked, content_rejected)
//                                      -> kContentRejected, the upstream's message
//   other 400 / 422 and 4xx not below  -> kInvalidRequest, the upstream's message unchanged
//   401 / 403                          -> kForbidden: the upstream refused imagegen's key
//   404                                -> kUpstreamUnavailable (wrong base URL or model)
//   429 (insufficient_quota: not retried) -> kRateLimited, Retry-After passed on
//   408, 504, timeouts                 -> kUpstreamTimeout
//   5xx, refused/reset connections, a malformed answer -> kUpstreamUnavailable
//
// Limits: `sizes` (default kDefaultOpenAiSizes, the first being the default size), `max_count`
// images per call (default 4; OpenAI allows up to 10, dall-e-3 only 1), prompts up to 32000
// characters (gpt-image's limit; the upstream refuses what it will not take), steps 1..150 and
// guidance 0..30 (sent only as extras), no sampler choice, no edits.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "model/image_model.h"

namespace imagegen {

namespace aws {
class HttpTransport;
}  // namespace aws

enum class OpenAiExtras { kOff, kTopLevel, kSdCpp };

inline constexpr const char* kDefaultOpenAiSizes = "1024x1024,1536x1024,1024x1536,512x512,256x256";

struct OpenAiModelOptions {
  std::string api_key;  // "": no Authorization header (local servers)
  std::string model;    // the upstream's model name; "": the spec's #MODEL, else none sent
  std::vector<std::pair<int, int>> sizes;  // empty: kDefaultOpenAiSizes
  int max_count = 4;
  std::optional<OpenAiExtras> extras;  // nullopt: by host (above)
  int retry_base_ms = 500;
  int max_attempts = 4;                           // the first included
  int timeout_ms = 300'000;                       // one attempt, whole exchange
  std::shared_ptr<aws::HttpTransport> transport;  // null: aws::DefaultTransport()
};

// spec: "openai:http://host:port", "openai:https://api.openai.com/v1#gpt-image-1".
// kInvalidRequest (field "model") for a URL that is not http(s), or carries credentials.
Result<std::unique_ptr<ImageModel>> MakeOpenAiModel(const std::string& spec,
                                                    const OpenAiModelOptions& options);

// "512x512,1024x768" -> sizes; kInvalidRequest naming `field` for anything else.
Result<std::vector<std::pair<int, int>>> ParseSizeList(const std::string& text,
                                                       const std::string& field);

}  // namespace imagegen
