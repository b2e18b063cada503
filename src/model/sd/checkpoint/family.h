// The Stable Diffusion families the checkpoint loader tells apart, and what each implies where
// a checkpoint does not say it (single files carry no configs): heads, prediction, scheduler.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace imagegen::sd {

enum class Family { kSd1, kSd2, kSd2V, kSdTurbo, kSdxl, kSdxlTurbo };

// "sd1", "sd2", "sd2-v", "sd-turbo", "sdxl", "sdxl-turbo".
std::string_view FamilyName(Family family);

// Two text encoders, pooled text and size conditioning (SDXL base and SDXL-Turbo).
inline bool IsSdxl(Family family) {
  return family == Family::kSdxl || family == Family::kSdxlTurbo;
}

// OpenCLIP alone (SD 2.x and SD-Turbo, gelu), as opposed to OpenAI CLIP (SD 1.x) or SDXL's
// pair.
inline bool UsesOpenClip(Family family) { return family != Family::kSd1 && !IsSdxl(family); }

inline std::string_view PredictionTypeOf(Family family) {
  return family == Family::kSd2V ? "v_prediction" : "epsilon";
}

// The scheduler_config.json the family's released diffusers folders ship: PNDM (sd1, sd2),
// DDIM with v_prediction (sd2-v), Euler with trailing spacing (sd-turbo), Euler with leading
// spacing (sdxl), Euler ancestral with trailing spacing (sdxl-turbo); all with SD's
// scaled_linear betas 0.00085..0.012 over 1000 steps and steps_offset 1.
nlohmann::json DefaultSchedulerConfig(Family family);

}  // namespace imagegen::sd
