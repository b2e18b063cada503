// The generation request, the per-model table of limits, and the one validation function.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/image_format.h"

namespace imagegen {

// What a caller asks for, as received from any door. An absent field means "use the model
// default"; a present one is checked as given (guidance 0 is no guidance, steps 0 an error).
struct GenerateRequest {
  std::string prompt;
  std::string negative_prompt;
  std::optional<int> width;
  std::optional<int> height;
  std::optional<int64_t> seed;  // 0..2147483647; random when absent, always reported
  std::optional<int> steps;
  std::optional<double> guidance;  // classifier-free guidance scale
  int count = 1;
  std::string model;   // empty: the server's configured model
  std::string job_id;  // names the output key; generated when empty
  // The namespace of job_id: the authenticated caller ("" without API keys), set by doors from
  // the credential, never read from a client's body. Another owner's ids are other names.
  std::string owner;
  std::string format;          // "png" | "jpeg" | "webp"; empty: png
  std::optional<int> quality;  // 0..100 for JPEG and WebP (100 = WebP lossless); model default
  std::string background;      // "auto" | "opaque" | "transparent"; empty: auto
  // OpenAI's quality ("low" | "medium" | "high" | "auto" | "standard" | "hd"): chooses the steps
  // when steps are not given. Empty: no preset.
  std::string quality_preset;
  // The sampler by imagegen's name ("euler", "euler_a", "dpmpp_2m", "dpmpp_2m_karras", "ddim",
  // "turbo"); empty: the model's default. Doors map their clients' names onto these.
  std::string sampler;
  // Image-to-image and inpainting: the encoded source image (PNG, JPEG or WebP bytes) and an
  // optional mask of the same size (white = repaint). Empty: text-to-image.
  std::string init_image;
  std::string mask;
  std::optional<double> strength;  // how far from init_image, 0 < strength <= 1; model default
};

// One row of limits per model. Validation reads only this table.
struct ModelLimits {
  size_t max_prompt_chars = 512;
  size_t max_negative_prompt_chars = 512;
  std::vector<std::pair<int, int>> sizes;  // allowed (width, height); first is the default
  int min_steps = 1, max_steps = 100, default_steps = 30;
  double min_guidance = 0.0, max_guidance = 20.0, default_guidance = 7.5;
  int max_count = 4;
  int64_t max_seed = 2147483647;
  int default_quality = 90;  // JPEG/WebP quality when the request names none (0..100 allowed)
  bool makes_alpha = false;  // whether the model can draw a transparent background
  // Sampler names the model accepts, its default first; empty: the model has no choice (a named
  // sampler is then reported in warnings).
  std::vector<std::string> samplers;
  bool edits = false;  // image-to-image / inpainting (init_image, mask) supported
  bool masks = true;   // with edits: whether a mask is taken (false: image-to-image only)
  double default_strength = 0.8;
  size_t max_init_image_bytes = 16u << 20;
};

// A request with every field resolved: defaults applied, seed chosen, limits checked.
struct ValidRequest {
  std::string prompt;
  std::string negative_prompt;
  int width = 0;
  int height = 0;
  int64_t seed = 0;
  int steps = 0;
  double guidance = 0;
  int count = 1;
  std::string model;
  std::string job_id;
  std::string owner;  // as GenerateRequest::owner
  ImageFormat format = ImageFormat::kPng;
  int quality = 90;
  Background background = Background::kAuto;
  std::string quality_preset;  // the preset that chose the steps ("medium" for "auto"), or empty
  std::string sampler;         // the model's sampler name, or empty where it has no choice
  std::string init_image;      // as GenerateRequest (encoded bytes); empty: text-to-image
  std::string mask;
  double strength = 1.0;  // meaningful only with init_image
  // Asked-for things that will not happen as asked (transparency from a model without alpha,
  // a quality for lossless PNG); every door reports them with the result.
  std::vector<std::string> warnings;
};

constexpr int64_t kMaxSeed = 2147483647;

// Checks `request` against `limits`, trims the prompt, applies defaults, and picks a random
// seed when none was given. A transparent background in JPEG is an error (JPEG has no alpha);
// one from a model that cannot make alpha is a warning. Errors are kInvalidRequest with `field` set
// and a message that names the field and the allowed range.
Result<ValidRequest> Validate(const GenerateRequest& request, const ModelLimits& limits);

// Parses "WxH" (e.g. "512x512"). Returns nullopt when malformed.
std::optional<std::pair<int, int>> ParseSize(const std::string& text);

}  // namespace imagegen
