#include "core/request.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <sstream>

#include "core/strings.h"

namespace imagegen {
namespace {

// Characters, not bytes: a prompt limit is about what a person typed.
size_t Utf8Length(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) {
    if ((c & 0xC0) != 0x80) ++n;
  }
  return n;
}

bool IsValidUtf8(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    int extra = c < 0x80           ? 0
                : (c >> 5) == 0x6  ? 1
                : (c >> 4) == 0xE  ? 2
                : (c >> 3) == 0x1E ? 3
                                   : -1;
    if (extra < 0 || i + extra >= s.size() + (extra == 0 ? 1 : 0)) return false;
    for (int k = 1; k <= extra; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    }
    i += static_cast<size_t>(extra) + 1;
  }
  return true;
}

bool HasControlChars(const std::string& s) {
  return std::any_of(s.begin(), s.end(), [](char ch) {
    unsigned char c = static_cast<unsigned char>(ch);
    return (c < 0x20 && c != '\n' && c != '\t' && c != '\r') || c == 0x7F;
  });
}

std::string SizeList(const ModelLimits& limits) {
  std::ostringstream out;
  for (size_t i = 0; i < limits.sizes.size(); ++i) {
    if (i > 0) out << ", ";
    out << limits.sizes[i].first << "x" << limits.sizes[i].second;
  }
  return out.str();
}

Status CheckText(const std::string& field, const std::string& text, size_t max_chars) {
  if (!IsValidUtf8(text)) return Error::Invalid(field, field + " must be valid UTF-8");
  if (HasControlChars(text)) {
    return Error::Invalid(field, field + " must not contain control characters");
  }
  if (Utf8Length(text) > max_chars) {
    return Error::Invalid(field, field + " must be at most " + std::to_string(max_chars) +
                                     " characters (got " + std::to_string(Utf8Length(text)) + ")");
  }
  return Status::Ok();
}

template <typename T>
Status CheckRange(const std::string& field, T value, T lo, T hi) {
  if (value < lo || value > hi || (std::is_floating_point_v<T> && !std::isfinite(value))) {
    std::ostringstream msg;
    msg << field << " must be between " << lo << " and " << hi << " (got " << value << ")";
    return Error::Invalid(field, msg.str());
  }
  return Status::Ok();
}

int64_t RandomSeed() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  return static_cast<int64_t>(rng() % (static_cast<uint64_t>(kMaxSeed) + 1));
}

Status ResolveSize(const GenerateRequest& in, const ModelLimits& limits, ValidRequest* out) {
  if (limits.sizes.empty()) return Error::Make(ErrorCode::kInternal, "model declares no sizes");
  if (!in.width && !in.height) {
    out->width = limits.sizes.front().first;
    out->height = limits.sizes.front().second;
    return Status::Ok();
  }
  // Only one of the two given: a square is the natural reading.
  int w = in.width.value_or(in.height.value_or(0));
  int h = in.height.value_or(in.width.value_or(0));
  for (const auto& [sw, sh] : limits.sizes) {
    if (sw == w && sh == h) {
      out->width = w;
      out->height = h;
      return Status::Ok();
    }
  }
  return Error::Invalid("size",
                        "size " + std::to_string(w) + "x" + std::to_string(h) +
                            " is not supported by this model; allowed: " + SizeList(limits));
}

// OpenAI's quality names mapped onto the sampler's steps: the one knob that trades time for
// detail in every model imagegen has. "auto" is the model's default ("medium").
Status ResolvePreset(const GenerateRequest& in, const ModelLimits& limits, ValidRequest* out) {
  const std::string& preset = in.quality_preset;
  int steps = limits.default_steps;
  if (preset.empty()) {
    out->steps = in.steps.value_or(limits.default_steps);
    return Status::Ok();
  }
  if (preset == "low") {
    steps = std::max(limits.min_steps, limits.default_steps / 2);
  } else if (preset == "high" || preset == "hd") {
    steps = std::min(limits.max_steps, limits.default_steps * 2);
  } else if (preset != "medium" && preset != "standard" && preset != "auto") {
    return Error::Invalid(
        "quality",
        "quality must be one of auto, low, medium, high, standard, hd (got \"" + preset + "\")");
  }
  out->quality_preset = preset == "auto" ? "medium" : preset;
  out->steps = in.steps.value_or(steps);  // explicit steps win over the preset
  return Status::Ok();
}

Status ResolveOutput(const GenerateRequest& in, const ModelLimits& limits, ValidRequest* out) {
  auto format = ImageFormatFromName(in.format.empty() ? "png" : in.format);
  if (!format) {
    return Error::Invalid("format", "format must be png, jpeg or webp (got \"" + in.format + "\")");
  }
  out->format = *format;
  auto background = BackgroundFromName(in.background.empty() ? "auto" : in.background);
  if (!background) {
    return Error::Invalid("background", "background must be auto, opaque or transparent (got \"" +
                                            in.background + "\")");
  }
  out->background = *background;
  if (*background == Background::kTransparent && !FormatHasAlpha(*format)) {
    return Error::Invalid("background",
                          "a transparent background needs png or webp; jpeg has no alpha channel");
  }
  if (*background == Background::kTransparent && !limits.makes_alpha) {
    out->warnings.push_back(
        "background \"transparent\" ignored: this model cannot make alpha; the image is opaque");
  }
  out->quality = in.quality.value_or(limits.default_quality);
  if (auto s = CheckRange("quality", out->quality, 0, 100); !s) return s;
  if (in.quality.has_value() && !FormatIsLossy(*format)) {
    out->warnings.push_back("quality has no effect on png, which is lossless");
  }
  return Status::Ok();
}

Status ResolveSampler(const GenerateRequest& in, const ModelLimits& limits, ValidRequest* out) {
  if (limits.samplers.empty()) {
    if (!in.sampler.empty()) {
      out->warnings.push_back("sampler \"" + in.sampler +
                              "\" ignored: this model has no sampler choice");
    }
    return Status::Ok();
  }
  if (in.sampler.empty()) {
    out->sampler = limits.samplers.front();
    return Status::Ok();
  }
  if (std::find(limits.samplers.begin(), limits.samplers.end(), in.sampler) ==
      limits.samplers.end()) {
    std::string list;
    for (const auto& name : limits.samplers) list += (list.empty() ? "" : ", ") + name;
    return Error::Invalid("sampler",
                          "sampler must be one of " + list + " (got \"" + in.sampler + "\")");
  }
  out->sampler = in.sampler;
  return Status::Ok();
}

// The edit inputs: only for a model that can edit, within the byte limit, a mask only with an
// image. The images' contents are the model's to decode (it knows the size it needs).
Status ResolveEdit(const GenerateRequest& in, const ModelLimits& limits, ValidRequest* out) {
  if (in.init_image.empty()) {
    if (!in.mask.empty()) return Error::Invalid("mask", "a mask needs an image to apply to");
    if (in.strength) out->warnings.push_back("strength ignored: there is no image to edit");
    return Status::Ok();
  }
  if (!limits.edits) {
    return Error::Invalid("image", "this model cannot edit images (text-to-image only)");
  }
  if (!in.mask.empty() && !limits.masks) {
    return Error::Invalid("mask",
                          "this model cannot inpaint with a mask (image-to-image only): send the "
                          "image without a mask to edit all of it");
  }
  using Input = std::pair<const char*, const std::string*>;
  for (const auto& [field, bytes] : {Input{"image", &in.init_image}, Input{"mask", &in.mask}}) {
    if (bytes->size() > limits.max_init_image_bytes) {
      return Error::Invalid(field, std::string(field) + " must be at most " +
                                       std::to_string(limits.max_init_image_bytes) + " bytes");
    }
  }
  out->strength = in.strength.value_or(limits.default_strength);
  if (out->strength <= 0 || out->strength > 1 || !std::isfinite(out->strength)) {
    return Error::Invalid("strength", "strength must be greater than 0 and at most 1");
  }
  out->init_image = in.init_image;
  out->mask = in.mask;
  return Status::Ok();
}

}  // namespace

Result<ValidRequest> Validate(const GenerateRequest& in, const ModelLimits& limits) {
  ValidRequest out;
  out.prompt = Trim(in.prompt);
  if (out.prompt.empty())
    return Error::Invalid("prompt", "prompt is required and must not be empty");
  if (auto s = CheckText("prompt", out.prompt, limits.max_prompt_chars); !s) return s.error();
  out.negative_prompt = Trim(in.negative_prompt);
  if (auto s = CheckText("negative_prompt", out.negative_prompt, limits.max_negative_prompt_chars);
      !s) {
    return s.error();
  }
  if (auto s = ResolveSize(in, limits, &out); !s) return s.error();

  if (in.seed.has_value()) {
    if (auto s = CheckRange<int64_t>("seed", *in.seed, 0, limits.max_seed); !s) return s.error();
    out.seed = *in.seed;
  } else {
    out.seed = RandomSeed() % (limits.max_seed + 1);
  }
  if (auto s = ResolvePreset(in, limits, &out); !s) return s.error();
  if (auto s = CheckRange("steps", out.steps, limits.min_steps, limits.max_steps); !s) {
    return s.error();
  }
  out.guidance = in.guidance.value_or(limits.default_guidance);
  if (auto s = CheckRange("guidance_scale", out.guidance, limits.min_guidance, limits.max_guidance);
      !s) {
    return s.error();
  }
  out.count = in.count;
  if (auto s = CheckRange("count", out.count, 1, limits.max_count); !s) return s.error();
  if (auto s = ResolveOutput(in, limits, &out); !s) return s.error();
  if (auto s = ResolveSampler(in, limits, &out); !s) return s.error();
  if (auto s = ResolveEdit(in, limits, &out); !s) return s.error();
  out.model = in.model;
  out.job_id = in.job_id;
  out.owner = in.owner;
  return out;
}

std::optional<std::pair<int, int>> ParseSize(const std::string& text) {
  size_t x = text.find_first_of("xX");
  if (x == std::string::npos || x == 0 || x + 1 >= text.size() || x > 5 || text.size() - x > 6) {
    return std::nullopt;
  }
  auto digits = [](const std::string& s) {
    return !s.empty() &&
           std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
  };
  std::string w = text.substr(0, x), h = text.substr(x + 1);
  if (!digits(w) || !digits(h)) return std::nullopt;
  return std::make_pair(std::stoi(w), std::stoi(h));
}

}  // namespace imagegen
