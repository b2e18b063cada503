#include "model/sd/checkpoint/family.h"

namespace imagegen::sd {

std::string_view FamilyName(Family family) {
  switch (family) {
    case Family::kSd1:
      return "sd1";
    case Family::kSd2:
      return "sd2";
    case Family::kSd2V:
      return "sd2-v";
    case Family::kSdTurbo:
      return "sd-turbo";
    case Family::kSdxl:
      return "sdxl";
    case Family::kSdxlTurbo:
      return "sdxl-turbo";
  }
  return "sd1";
}

nlohmann::json DefaultSchedulerConfig(Family family) {
  nlohmann::json config = {
      {"num_train_timesteps", 1000}, {"beta_start", 0.00085},
      {"beta_end", 0.012},           {"beta_schedule", "scaled_linear"},
      {"steps_offset", 1},           {"prediction_type", std::string(PredictionTypeOf(family))}};
  switch (family) {
    case Family::kSdTurbo:
      config["_class_name"] = "EulerDiscreteScheduler";
      config["timestep_spacing"] = "trailing";
      config["interpolation_type"] = "linear";
      config["use_karras_sigmas"] = false;
      break;
    case Family::kSdxl:
    case Family::kSdxlTurbo:
      config["_class_name"] =
          family == Family::kSdxl ? "EulerDiscreteScheduler" : "EulerAncestralDiscreteScheduler";
      config["timestep_spacing"] = family == Family::kSdxl ? "leading" : "trailing";
      config["interpolation_type"] = "linear";
      config["use_karras_sigmas"] = false;
      config["clip_sample"] = false;  // as SDXL base's scheduler_config.json (read by DDIM)
      config["set_alpha_to_one"] = false;
      break;
    case Family::kSd2V:
      config["_class_name"] = "DDIMScheduler";
      config["clip_sample"] = false;
      config["set_alpha_to_one"] = false;
      config["timestep_spacing"] = "leading";
      break;
    default:
      config["_class_name"] = "PNDMScheduler";
      config["skip_prk_steps"] = true;
      config["set_alpha_to_one"] = false;
      config["timestep_spacing"] = "leading";
      break;
  }
  return config;
}

}  // namespace imagegen::sd
