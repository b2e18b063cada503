#include "model/sd/sampling/sampler.h"

#include <algorithm>
#include <cmath>

namespace imagegen::sd {
namespace {

const std::vector<std::string> kSamplerNames = {"euler",           "euler_a", "dpmpp_2m",
                                                "dpmpp_2m_karras", "ddim",    "turbo"};

Error SchedulerError(const std::string& message) {
  return Error::Invalid("scheduler", "scheduler_config: " + message);
}

struct SchedulerDefaults {
  TimestepSpacing spacing;
  bool set_alpha_to_one;
  bool clip_sample;
};

// The constructor defaults of the diffusers scheduler behind each sampler: a field that a
// checkpoint's scheduler_config.json lacks takes these, as from_config does.
SchedulerDefaults DefaultsOf(SamplerKind kind) {
  if (kind == SamplerKind::kDdim) return {TimestepSpacing::kLeading, true, true};
  return {TimestepSpacing::kLinspace, true, false};
}

Result<TimestepSpacing> SpacingFrom(const std::string& name) {
  if (name == "leading") return TimestepSpacing::kLeading;
  if (name == "trailing") return TimestepSpacing::kTrailing;
  if (name == "linspace") return TimestepSpacing::kLinspace;
  return SchedulerError("timestep_spacing \"" + name + "\" is not leading, trailing or linspace");
}

Result<BetaSchedule> BetasFrom(const std::string& name) {
  if (name == "scaled_linear") return BetaSchedule::kScaledLinear;
  if (name == "linear") return BetaSchedule::kLinear;
  return SchedulerError("beta_schedule \"" + name + "\" is not supported (scaled_linear, linear)");
}

Result<Prediction> PredictionFrom(const std::string& name) {
  if (name == "epsilon") return Prediction::kEpsilon;
  if (name == "v_prediction") return Prediction::kVPrediction;
  return SchedulerError("prediction_type \"" + name +
                        "\" is not supported (epsilon, v_prediction)");
}

bool IsAncestral(SamplerKind kind) {
  return kind == SamplerKind::kEulerAncestral || kind == SamplerKind::kTurbo;
}

// diffusers' _sigma_to_alpha_sigma_t, in float32 as its tensors are.
struct AlphaSigma {
  float alpha, sigma;
};
AlphaSigma AlphaSigmaOf(float sigma) {
  const float alpha = 1.0f / std::sqrt(sigma * sigma + 1.0f);
  return {alpha, sigma * alpha};
}
float Lambda(AlphaSigma as) { return std::log(as.alpha) - std::log(as.sigma); }

}  // namespace

const std::vector<std::string>& SamplerNames() { return kSamplerNames; }

std::optional<SamplerKind> SamplerFromName(std::string_view name) {
  for (size_t i = 0; i < kSamplerNames.size(); ++i) {
    if (kSamplerNames[i] == name) return static_cast<SamplerKind>(i);
  }
  return std::nullopt;
}

std::string SamplerName(SamplerKind kind) { return kSamplerNames[static_cast<size_t>(kind)]; }

Result<SamplerOptions> SamplerOptionsFromConfig(const nlohmann::json& config, SamplerKind kind) {
  if (!config.is_object()) return SchedulerError("not a JSON object");
  const SchedulerDefaults defaults = DefaultsOf(kind);
  SamplerOptions out;
  NoiseScheduleConfig& s = out.schedule;
  try {
    s.train_steps = config.value("num_train_timesteps", 1000);
    s.beta_start = config.value("beta_start", 0.0001);
    s.beta_end = config.value("beta_end", 0.02);
    s.steps_offset = config.value("steps_offset", 0);
    s.set_alpha_to_one = config.value("set_alpha_to_one", defaults.set_alpha_to_one);
    auto betas = BetasFrom(config.value("beta_schedule", std::string("linear")));
    if (!betas) return betas.error();
    s.beta_schedule = *betas;
    s.spacing = defaults.spacing;
    if (config.contains("timestep_spacing")) {
      auto spacing = SpacingFrom(config["timestep_spacing"].get<std::string>());
      if (!spacing) return spacing.error();
      s.spacing = *spacing;
    }
    auto prediction = PredictionFrom(config.value("prediction_type", std::string("epsilon")));
    if (!prediction) return prediction.error();
    out.prediction = *prediction;
    out.clip_sample = config.value("clip_sample", defaults.clip_sample);
    out.clip_sample_range = config.value("clip_sample_range", 1.0);
    if (config.contains("trained_betas") && !config["trained_betas"].is_null()) {
      return SchedulerError("trained_betas is not supported");
    }
  } catch (const nlohmann::json::exception& e) {
    return SchedulerError(std::string("a field has the wrong type: ") + e.what());
  }
  if (s.train_steps < 2 || s.train_steps > 100000) {
    return SchedulerError("num_train_timesteps must be 2..100000");
  }
  if (!(s.beta_start > 0 && s.beta_end > s.beta_start && s.beta_end < 1)) {
    return SchedulerError("betas must satisfy 0 < beta_start < beta_end < 1");
  }
  return out;
}

Result<Sampler> Sampler::Create(SamplerKind kind, const SamplerOptions& options, int steps,
                                double strength) {
  if (!(strength > 0 && strength <= 1)) {
    return Error::Invalid("strength", "strength must be in (0, 1]");
  }
  Sampler sampler;
  sampler.kind_ = kind;
  sampler.options_ = options;
  if (kind == SamplerKind::kTurbo) sampler.options_.schedule.spacing = TimestepSpacing::kTrailing;
  if (Status st = sampler.InitSchedule(steps); !st) return st.error();
  // diffusers' img2img get_timesteps: int(steps * strength) steps from the end.
  const int run = std::clamp(static_cast<int>(steps * strength), 1, steps);
  sampler.start_ = steps - run;
  return sampler;
}

Status Sampler::InitSchedule(int steps) {
  steps_ = steps;
  const NoiseScheduleConfig& config = options_.schedule;
  if (kind_ == SamplerKind::kDdim) {
    auto table = DdimTimesteps(config, steps);
    if (!table) return table.error();
    timesteps_.assign(table->timesteps.begin(), table->timesteps.end());
    alphas_cumprod_ = std::move(table->alphas_cumprod);
    final_alpha_cumprod_ = table->final_alpha_cumprod;
    return Status::Ok();
  }
  const bool dpm = kind_ == SamplerKind::kDpmpp2m || kind_ == SamplerKind::kDpmpp2mKarras;
  auto table = dpm ? DpmSolverMultistepSchedule(config, steps, kind_ == SamplerKind::kDpmpp2mKarras)
                   : EulerSchedule(config, steps, /*karras=*/false);
  if (!table) return table.error();
  timesteps_ = std::move(table->timesteps);
  for (double s : table->sigmas) sigmas_.push_back(static_cast<float>(s));
  // DPMSolverMultistep's init_noise_sigma is 1 (its sigmas are VP, not VE).
  init_noise_sigma_ = dpm ? 1.0 : table->init_noise_sigma;
  return Status::Ok();
}

torch::Tensor Sampler::ScaleInput(const torch::Tensor& x, int i) const {
  if (kind_ == SamplerKind::kDdim || kind_ == SamplerKind::kDpmpp2m ||
      kind_ == SamplerKind::kDpmpp2mKarras) {
    return x;
  }
  const float sigma = sigmas_[Index(i)];
  return x / std::sqrt(sigma * sigma + 1.0f);
}

torch::Tensor Sampler::AddNoise(const torch::Tensor& x0, const torch::Tensor& noise, int i) const {
  if (i >= StepCount()) return x0;
  if (kind_ == SamplerKind::kDdim) {
    const auto a = static_cast<float>(alphas_cumprod_[static_cast<size_t>(timesteps_[Index(i)])]);
    return std::sqrt(a) * x0 + std::sqrt(1.0f - a) * noise;
  }
  const float sigma = sigmas_[Index(i)];
  if (kind_ == SamplerKind::kDpmpp2m || kind_ == SamplerKind::kDpmpp2mKarras) {
    const AlphaSigma as = AlphaSigmaOf(sigma);
    return as.alpha * x0 + as.sigma * noise;
  }
  return x0 + noise * sigma;
}

Result<Sampler::StepResult> Sampler::Step(int i, const torch::Tensor& model_output,
                                          const torch::Tensor& x, at::Generator* generator) {
  if (i != next_step_ || i >= StepCount()) {
    return Error::Make(ErrorCode::kInternal, "sampler: step " + std::to_string(i) +
                                                 " out of order (expected " +
                                                 std::to_string(next_step_) + ")");
  }
  if (IsAncestral(kind_) && generator == nullptr) {
    return Error::Make(ErrorCode::kInternal, "sampler: an ancestral step needs a generator");
  }
  ++next_step_;
  switch (kind_) {
    case SamplerKind::kEuler:
      return EulerStep(i, model_output, x);
    case SamplerKind::kEulerAncestral:
    case SamplerKind::kTurbo:
      return AncestralStep(i, model_output, x, *generator);
    case SamplerKind::kDpmpp2m:
    case SamplerKind::kDpmpp2mKarras:
      return DpmStep(i, model_output, x);
    case SamplerKind::kDdim:
      return DdimStep(i, model_output, x);
  }
  return Error::Make(ErrorCode::kInternal, "sampler: unknown kind");
}

// The Euler samplers' denoised prediction (their pred_original_sample).
torch::Tensor Sampler::PredictX0(const torch::Tensor& output, const torch::Tensor& x, int i) const {
  const float sigma = sigmas_[Index(i)];
  if (options_.prediction == Prediction::kEpsilon) return x - sigma * output;
  return output * (-sigma / std::sqrt(sigma * sigma + 1.0f)) + x / (sigma * sigma + 1.0f);
}

Sampler::StepResult Sampler::EulerStep(int i, const torch::Tensor& output,
                                       const torch::Tensor& x) const {
  // s_churn 0: sigma_hat is sigma, and no noise is added.
  const float sigma = sigmas_[Index(i)];
  torch::Tensor x0 = PredictX0(output, x, i);
  torch::Tensor derivative = (x - x0) / sigma;
  const float dt = sigmas_[Index(i) + 1] - sigma;
  return {x + derivative * dt, x0};
}

Sampler::StepResult Sampler::AncestralStep(int i, const torch::Tensor& output,
                                           const torch::Tensor& x, at::Generator& generator) const {
  const float sigma_from = sigmas_[Index(i)];
  const float sigma_to = sigmas_[Index(i) + 1];
  const float sigma_up =
      std::sqrt(sigma_to * sigma_to * (sigma_from * sigma_from - sigma_to * sigma_to) /
                (sigma_from * sigma_from));
  const float sigma_down = std::sqrt(sigma_to * sigma_to - sigma_up * sigma_up);
  torch::Tensor x0 = PredictX0(output, x, i);
  torch::Tensor derivative = (x - x0) / sigma_from;
  torch::Tensor prev = x + derivative * (sigma_down - sigma_from);
  torch::Tensor noise = torch::randn(output.sizes(), generator, output.options());
  return {prev + noise * sigma_up, x0};
}

Sampler::StepResult Sampler::DpmStep(int i, const torch::Tensor& output, const torch::Tensor& x) {
  const size_t k = Index(i);
  const AlphaSigma s0 = AlphaSigmaOf(sigmas_[k]);
  const AlphaSigma t = AlphaSigmaOf(sigmas_[k + 1]);
  // dpmsolver++: the model output becomes the denoised prediction first.
  torch::Tensor x0 = options_.prediction == Prediction::kEpsilon
                         ? (x - s0.sigma * output) / s0.alpha
                         : s0.alpha * x - s0.sigma * output;
  // diffusers' lower_order_final with final_sigmas_type "zero": the last step is first order.
  // (Its "second-last step" rule matters for order 3 only.) At the end sigma_t is 0: lambda_t
  // is +inf and exp(-h) 0, as in diffusers' float arithmetic.
  const bool last = k == timesteps_.size() - 1;
  const float lambda_s0 = Lambda(s0);
  const float h = Lambda(t) - lambda_s0;
  const float ratio = t.sigma / s0.sigma;
  const float decay = std::exp(-h) - 1.0f;
  torch::Tensor prev;
  if (lower_order_steps_ < 1 || last) {
    prev = ratio * x - (t.alpha * decay) * x0;
  } else {
    const float r0 = (lambda_s0 - Lambda(AlphaSigmaOf(sigmas_[k - 1]))) / h;
    torch::Tensor d1 = (1.0f / r0) * (x0 - previous_x0_);
    prev = ratio * x - (t.alpha * decay) * x0 - 0.5f * (t.alpha * decay) * d1;
  }
  previous_x0_ = x0;
  if (lower_order_steps_ < 2) ++lower_order_steps_;
  return {prev, x0};
}

Sampler::StepResult Sampler::DdimStep(int i, const torch::Tensor& output,
                                      const torch::Tensor& x) const {
  const auto t = static_cast<int64_t>(timesteps_[Index(i)]);
  const int64_t prev_t = t - options_.schedule.train_steps / steps_;
  const auto a = static_cast<float>(alphas_cumprod_[static_cast<size_t>(t)]);
  const auto a_prev = static_cast<float>(prev_t >= 0 ? alphas_cumprod_[static_cast<size_t>(prev_t)]
                                                     : final_alpha_cumprod_);
  const float beta = 1.0f - a;
  torch::Tensor x0, eps;
  if (options_.prediction == Prediction::kEpsilon) {
    x0 = (x - std::sqrt(beta) * output) / std::sqrt(a);
    eps = output;
  } else {
    x0 = std::sqrt(a) * x - std::sqrt(beta) * output;
    eps = std::sqrt(a) * output + std::sqrt(beta) * x;
  }
  if (options_.clip_sample) {
    const double r = options_.clip_sample_range;
    x0 = x0.clamp(-r, r);
  }
  // eta 0: no variance term.
  torch::Tensor direction = std::sqrt(1.0f - a_prev) * eps;
  return {std::sqrt(a_prev) * x0 + direction, x0};
}

}  // namespace imagegen::sd
