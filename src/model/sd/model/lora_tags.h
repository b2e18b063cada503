// A1111's prompt syntax for LoRAs: "<lora:NAME>" or "<lora:NAME:SCALE>" anywhere in the prompt
// (scale 1 when left out; several tags add up). The tags are taken out of the text before it is
// tokenised, as A1111 and stable-diffusion.cpp do; the rest of the prompt is kept as written.
#pragma once

#include <string>
#include <vector>

#include "core/error.h"

namespace imagegen::sd {

struct LoraUse {
  std::string name;
  double scale = 1.0;
};

struct PromptLoras {
  std::string prompt;          // the prompt without its tags
  std::vector<LoraUse> loras;  // in the order written
};

// kInvalidRequest (field "prompt") for a tag that is not closed, has no name, has a scale that
// is not a finite number in [-10, 10], or has more than one scale (A1111's separate text
// encoder multiplier is not supported). At most 8 tags.
Result<PromptLoras> ExtractLoraTags(const std::string& prompt);

}  // namespace imagegen::sd
