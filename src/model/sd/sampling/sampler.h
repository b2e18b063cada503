// Stable Diffusion's samplers, one step at a time, each equal to the diffusers scheduler of the
// same configuration (diffusers 0.27.2; tests/integration/test_sd_samplers.py drives both with
// one fake denoiser and compares the trajectories):
//   euler            EulerDiscreteScheduler
//   euler_a          EulerAncestralDiscreteScheduler (noise from the caller's CPU generator)
//   dpmpp_2m         DPMSolverMultistepScheduler: dpmsolver++, order 2, midpoint,
//                    lower_order_final, final_sigmas_type "zero"
//   dpmpp_2m_karras  the same with use_karras_sigmas
//   ddim             DDIMScheduler with eta 0
//   turbo            SD-Turbo's few-step mode: EulerAncestralDiscrete with "trailing" spacing
//                    whatever the checkpoint's configuration says (guidance is the caller's)
// The timestep spacing, betas and prediction type come from the checkpoint's
// scheduler_config.json, as diffusers' `Scheduler.from_config(pipe.scheduler.config)` reads them.
//
// A Sampler is one generation's state (DPM++ keeps the previous model output): create one per
// image, call Step(0), Step(1), ... in order. Image-to-image starts at the step diffusers'
// img2img pipelines start at for `strength` (get_timesteps); StepCount() counts the steps run.
#pragma once

#include <torch/torch.h>

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "model/sd/schedule/noise_schedule.h"

namespace imagegen::sd {

enum class SamplerKind { kEuler, kEulerAncestral, kDpmpp2m, kDpmpp2mKarras, kDdim, kTurbo };

// The request's names of the samplers ("euler", "euler_a", "dpmpp_2m", "dpmpp_2m_karras",
// "ddim", "turbo"), in SamplerKind order.
const std::vector<std::string>& SamplerNames();
std::optional<SamplerKind> SamplerFromName(std::string_view name);
std::string SamplerName(SamplerKind kind);

// What the model's output means: the noise (SD 1.x, SD 2.x base, SD-Turbo) or the velocity
// (SD 2.x 768-v).
enum class Prediction { kEpsilon, kVPrediction };

struct SamplerOptions {
  NoiseScheduleConfig schedule;
  Prediction prediction = Prediction::kEpsilon;
  // DDIM's clip_sample: clamp the predicted x0 to +-clip_sample_range (SD's configs say false).
  bool clip_sample = false;
  double clip_sample_range = 1.0;
};

// Reads diffusers' scheduler_config.json fields (num_train_timesteps, beta_start, beta_end,
// beta_schedule, timestep_spacing, steps_offset, prediction_type, set_alpha_to_one,
// clip_sample, clip_sample_range) as `kind`'s diffusers scheduler would from_config them:
// absent ones take that scheduler's defaults. kInvalidRequest (field "scheduler") for values
// imagegen does not implement (e.g. beta_schedule "squaredcos_cap_v2", prediction "sample").
Result<SamplerOptions> SamplerOptionsFromConfig(const nlohmann::json& scheduler_config,
                                                SamplerKind kind);

class Sampler {
 public:
  // kInvalidRequest ("steps") unless 1 <= steps <= train_steps; ("strength") unless
  // 0 < strength <= 1. A strength so small that diffusers would run no step runs one.
  static Result<Sampler> Create(SamplerKind kind, const SamplerOptions& options, int steps,
                                double strength = 1.0);

  SamplerKind kind() const { return kind_; }
  // The steps run from the start step to the end (steps for text-to-image).
  int StepCount() const { return static_cast<int>(timesteps_.size()) - start_; }
  // The scale of text-to-image's initial noise (scheduler.init_noise_sigma).
  double InitNoiseSigma() const { return init_noise_sigma_; }
  // The UNet's timestep at step i (0 <= i < StepCount()); fractional only where diffusers' is.
  double Timestep(int i) const { return timesteps_[Index(i)]; }
  // scheduler.scale_model_input(x, Timestep(i)).
  torch::Tensor ScaleInput(const torch::Tensor& x, int i) const;
  // scheduler.add_noise(x0, noise, Timestep(i)): image-to-image's start latents at i = 0, and
  // inpainting's known region before step i. i == StepCount() is the end (no noise).
  torch::Tensor AddNoise(const torch::Tensor& x0, const torch::Tensor& noise, int i) const;

  struct StepResult {
    torch::Tensor prev_sample;  // the latents after the step
    torch::Tensor x0;           // the denoised latents the model predicts (for previews)
  };
  // scheduler.step(model_output, Timestep(i), x, generator=generator). `generator` is needed
  // by the ancestral samplers only (may be null otherwise). Steps must come in order 0, 1, ...
  Result<StepResult> Step(int i, const torch::Tensor& model_output, const torch::Tensor& x,
                          at::Generator* generator);

 private:
  Sampler() = default;
  size_t Index(int i) const { return static_cast<size_t>(start_ + i); }
  Status InitSchedule(int steps);
  torch::Tensor PredictX0(const torch::Tensor& output, const torch::Tensor& x, int i) const;
  StepResult EulerStep(int i, const torch::Tensor& output, const torch::Tensor& x) const;
  StepResult AncestralStep(int i, const torch::Tensor& output, const torch::Tensor& x,
                           at::Generator& generator) const;
  StepResult DpmStep(int i, const torch::Tensor& output, const torch::Tensor& x);
  StepResult DdimStep(int i, const torch::Tensor& output, const torch::Tensor& x) const;

  SamplerKind kind_ = SamplerKind::kEuler;
  SamplerOptions options_;
  int steps_ = 0;  // the inference steps the schedule was made for
  int start_ = 0;  // the first step run (image-to-image skips the noisiest ones)
  std::vector<double> timesteps_;
  std::vector<float> sigmas_;           // Euler and DPM++: one per timestep and a final 0
  std::vector<double> alphas_cumprod_;  // DDIM: per training step
  double final_alpha_cumprod_ = 1;
  double init_noise_sigma_ = 1;
  int next_step_ = 0;
  // DPM++ 2M: the previous step's denoised prediction, and how many lower-order steps ran.
  torch::Tensor previous_x0_;
  int lower_order_steps_ = 0;
};

}  // namespace imagegen::sd
