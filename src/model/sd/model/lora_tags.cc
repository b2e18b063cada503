#include "model/sd/model/lora_tags.h"

#include <cmath>
#include <cstdlib>

namespace imagegen::sd {
namespace {

constexpr std::string_view kOpen = "<lora:";
constexpr size_t kMaxTags = 8;
constexpr double kMaxScale = 10.0;

Error TagError(const std::string& message) { return Error::Invalid("prompt", message); }

std::string Trim(const std::string& s) {
  const auto begin = s.find_first_not_of(' ');
  if (begin == std::string::npos) return "";
  return s.substr(begin, s.find_last_not_of(' ') - begin + 1);
}

Result<LoraUse> ParseTag(const std::string& body) {
  const std::string shown = "<lora:" + body + ">";
  LoraUse use;
  const auto colon = body.find(':');
  use.name = Trim(body.substr(0, colon));
  if (use.name.empty()) return TagError("the LoRA tag " + shown + " has no name");
  if (colon == std::string::npos) return use;
  const std::string scale = Trim(body.substr(colon + 1));
  if (scale.find(':') != std::string::npos) {
    return TagError("the LoRA tag " + shown +
                    " has two multipliers; one scale applies to the text encoder and the UNet");
  }
  char* end = nullptr;
  use.scale = std::strtod(scale.c_str(), &end);
  if (scale.empty() || end != scale.c_str() + scale.size() || !std::isfinite(use.scale) ||
      std::abs(use.scale) > kMaxScale) {
    return TagError("the LoRA tag " + shown + " has scale \"" + scale +
                    "\": a number from -10 to 10");
  }
  return use;
}

}  // namespace

Result<PromptLoras> ExtractLoraTags(const std::string& prompt) {
  PromptLoras out;
  size_t pos = 0;
  for (;;) {
    const size_t open = prompt.find(kOpen, pos);
    out.prompt += prompt.substr(pos, open == std::string::npos ? std::string::npos : open - pos);
    if (open == std::string::npos) break;
    const size_t close = prompt.find('>', open);
    if (close == std::string::npos) return TagError("a <lora: tag in the prompt is not closed");
    auto use = ParseTag(prompt.substr(open + kOpen.size(), close - open - kOpen.size()));
    if (!use) return use.error();
    if (out.loras.size() == kMaxTags) {
      return TagError("the prompt asks for more than " + std::to_string(kMaxTags) + " LoRAs");
    }
    out.loras.push_back(std::move(use).value());
    pos = close + 1;
  }
  return out;
}

}  // namespace imagegen::sd
