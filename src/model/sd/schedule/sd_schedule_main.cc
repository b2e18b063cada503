// imagegen-sd-schedule: the samplers' timestep and sigma tables (noise_schedule.h) for parity
// tests. Reads one JSON object per stdin line, e.g. {"sampler": "euler", "steps": 20,
// "spacing": "leading", "steps_offset": 1, "karras": false} (also train_steps, beta_start,
// beta_end, beta_schedule, set_alpha_to_one), and writes one JSON object per line:
// {"timesteps", "sigmas", "init_noise_sigma"} (euler, dpmpp_2m) or {"timesteps",
// "alphas_cumprod", "final_alpha_cumprod"} (ddim), or {"error": {"code", "message"}}.
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>

#include "model/sd/schedule/noise_schedule.h"

namespace {

using imagegen::Error;
using imagegen::sd::NoiseScheduleConfig;
using nlohmann::json;

json ErrorJson(const Error& error) {
  return json{
      {"error",
       {{"code", std::string(imagegen::ErrorCodeName(error.code))}, {"message", error.message}}}};
}

imagegen::Result<NoiseScheduleConfig> ConfigFrom(const json& in) {
  NoiseScheduleConfig config;
  config.train_steps = in.value("train_steps", config.train_steps);
  config.beta_start = in.value("beta_start", config.beta_start);
  config.beta_end = in.value("beta_end", config.beta_end);
  config.steps_offset = in.value("steps_offset", config.steps_offset);
  config.set_alpha_to_one = in.value("set_alpha_to_one", config.set_alpha_to_one);
  const std::string beta = in.value("beta_schedule", std::string("scaled_linear"));
  const std::string spacing = in.value("spacing", std::string("leading"));
  if (beta == "linear") {
    config.beta_schedule = imagegen::sd::BetaSchedule::kLinear;
  } else if (beta != "scaled_linear") {
    return Error::Invalid("beta_schedule", "beta_schedule must be scaled_linear or linear");
  }
  if (spacing == "trailing") {
    config.spacing = imagegen::sd::TimestepSpacing::kTrailing;
  } else if (spacing == "linspace") {
    config.spacing = imagegen::sd::TimestepSpacing::kLinspace;
  } else if (spacing != "leading") {
    return Error::Invalid("spacing", "spacing must be leading, trailing or linspace");
  }
  if (config.train_steps < 2) return Error::Invalid("train_steps", "train_steps must be >= 2");
  return config;
}

json Answer(const std::string& line) {
  json in = json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (in.is_discarded() || !in.is_object()) {
    return ErrorJson(Error::Invalid("line", "each input line must be one JSON object"));
  }
  try {
    auto config = ConfigFrom(in);
    if (!config) return ErrorJson(config.error());
    const std::string sampler = in.value("sampler", std::string("euler"));
    const int steps = in.value("steps", 20);
    const bool karras = in.value("karras", false);
    if (sampler == "ddim") {
      auto table = imagegen::sd::DdimTimesteps(*config, steps);
      if (!table) return ErrorJson(table.error());
      return json{{"timesteps", table->timesteps},
                  {"alphas_cumprod", table->alphas_cumprod},
                  {"final_alpha_cumprod", table->final_alpha_cumprod}};
    }
    auto table = sampler == "dpmpp_2m"
                     ? imagegen::sd::DpmSolverMultistepSchedule(*config, steps, karras)
                     : imagegen::sd::EulerSchedule(*config, steps, karras);
    if (!table) return ErrorJson(table.error());
    return json{{"timesteps", table->timesteps},
                {"sigmas", table->sigmas},
                {"init_noise_sigma", table->init_noise_sigma}};
  } catch (const json::exception& e) {  // a field of the wrong type
    return ErrorJson(Error::Invalid("line", e.what()));
  }
}

}  // namespace

int main() {
  std::ios::sync_with_stdio(false);
  std::string line;
  while (std::getline(std::cin, line)) std::cout << Answer(line).dump() << "\n";
  return 0;
}
