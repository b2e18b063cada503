// The timesteps and noise levels of Stable Diffusion's samplers, equal to those of diffusers'
// schedulers for the same configuration (scheduler/scheduler_config.json): EulerDiscrete and
// EulerAncestralDiscrete (one table), DPMSolverMultistep, DDIM. Plain double arrays; the
// samplers that step with them live elsewhere. alphas_cumprod is computed in float32 the way
// torch computes it, so the tables agree with diffusers' (which it returns as float32) to 1e-6
// relative (tests/integration/test_sd_schedules.py).
#pragma once

#include <cstdint>
#include <vector>

#include "core/error.h"

namespace imagegen::sd {

enum class BetaSchedule { kScaledLinear, kLinear };
enum class TimestepSpacing { kLeading, kTrailing, kLinspace };

// SD 1.x/2.x: scaled_linear 0.00085..0.012 over 1000 training steps; SD 1.5 and 2.x folders
// say "leading" with steps_offset 1, SD-Turbo "trailing".
struct NoiseScheduleConfig {
  int train_steps = 1000;
  double beta_start = 0.00085;
  double beta_end = 0.012;
  BetaSchedule beta_schedule = BetaSchedule::kScaledLinear;
  TimestepSpacing spacing = TimestepSpacing::kLeading;
  int steps_offset = 1;
  bool set_alpha_to_one = false;  // DDIM: the alpha after the last step (false: alphas_cumprod[0])
};

// The product of (1 - beta) up to each training step.
std::vector<double> AlphasCumprod(const NoiseScheduleConfig& config);

struct SigmaSchedule {
  std::vector<double> timesteps;  // one per step, decreasing (fractional with Karras sigmas)
  std::vector<double> sigmas;     // one per step and a final 0
  double init_noise_sigma = 1;    // the initial latent noise's scale
};

// EulerDiscreteScheduler / EulerAncestralDiscreteScheduler.set_timesteps(steps); karras as
// use_karras_sigmas. kInvalidRequest ("steps") unless 1 <= steps <= train_steps.
Result<SigmaSchedule> EulerSchedule(const NoiseScheduleConfig& config, int steps, bool karras);
// DPMSolverMultistepScheduler.set_timesteps(steps) (final_sigmas_type "zero").
Result<SigmaSchedule> DpmSolverMultistepSchedule(const NoiseScheduleConfig& config, int steps,
                                                 bool karras);

struct DdimSchedule {
  std::vector<int64_t> timesteps;      // one per step, decreasing
  std::vector<double> alphas_cumprod;  // per training step
  double final_alpha_cumprod = 1;      // the alpha "before" step 0
};
// DDIMScheduler.set_timesteps(steps).
Result<DdimSchedule> DdimTimesteps(const NoiseScheduleConfig& config, int steps);

}  // namespace imagegen::sd
