#include "model/sd/schedule/noise_schedule.h"

#include <algorithm>
#include <cmath>
#include <string>

namespace imagegen::sd {
namespace {

// numpy.linspace(start, stop, count): start + i * step, the last value exactly stop.
std::vector<double> Linspace(double start, double stop, int count) {
  std::vector<double> out(static_cast<size_t>(count), start);
  if (count > 1) {
    const double step = (stop - start) / (count - 1);
    for (int i = 0; i < count; ++i) out[static_cast<size_t>(i)] = i * step + start;
    out.back() = stop;
  }
  return out;
}

// numpy.arange(start, stop, step) for a negative float step.
std::vector<double> ArangeDown(double start, double stop, double step) {
  const auto count = static_cast<int64_t>(std::ceil((stop - start) / step));
  std::vector<double> out;
  for (int64_t i = 0; i < count; ++i) out.push_back(start + static_cast<double>(i) * step);
  return out;
}

// numpy.round: halves to even, as the default floating-point rounding mode does.
double RoundHalfEven(double x) { return std::nearbyint(x); }

// The timesteps of `steps` inference steps, as diffusers' schedulers space them. `extra` is 1
// for DPMSolverMultistep, which spaces steps + 1 points and drops the last.
std::vector<double> SpacedTimesteps(const NoiseScheduleConfig& config, int steps, int extra,
                                    bool round_linspace) {
  const int total = config.train_steps;
  std::vector<double> t;
  switch (config.spacing) {
    case TimestepSpacing::kLinspace: {
      t = Linspace(0, total - 1, steps + extra);
      if (round_linspace) {
        for (double& x : t) x = RoundHalfEven(x);
      }
      std::reverse(t.begin(), t.end());
      break;
    }
    case TimestepSpacing::kLeading: {
      const int ratio = total / (steps + extra);
      for (int i = steps + extra - 1; i >= 0; --i) t.push_back(i * ratio + config.steps_offset);
      break;
    }
    case TimestepSpacing::kTrailing: {
      const double ratio = static_cast<double>(total) / steps;
      for (double x : ArangeDown(total, 0, -ratio)) t.push_back(RoundHalfEven(x) - 1);
      return t;  // trailing spacing has no extra point to drop
    }
  }
  t.resize(static_cast<size_t>(steps));
  return t;
}

// numpy.interp(x, arange(len(ys)), ys).
double Interp(double x, const std::vector<double>& ys) {
  if (x <= 0) return ys.front();
  if (x >= static_cast<double>(ys.size() - 1)) return ys.back();
  const auto i = static_cast<size_t>(std::floor(x));
  const double w = x - static_cast<double>(i);
  return ys[i] + w * (ys[i + 1] - ys[i]);
}

// torch.linspace(start, stop, count, dtype=float32): float steps, the first half counted from
// start and the second from stop.
std::vector<float> TorchLinspaceFloat(double start, double stop, int count) {
  const auto begin = static_cast<float>(start);
  const auto end = static_cast<float>(stop);
  const float step = count > 1 ? (end - begin) / static_cast<float>(count - 1) : 0.0f;
  std::vector<float> out(static_cast<size_t>(count));
  for (int i = 0; i < count; ++i) {
    out[static_cast<size_t>(i)] = i < count / 2 ? begin + step * static_cast<float>(i)
                                                : end - step * static_cast<float>(count - i - 1);
  }
  return out;
}

// sqrt((1 - a) / a) in float32, as diffusers computes it from its float32 tensor.
std::vector<double> TrainSigmas(const std::vector<double>& alphas_cumprod) {
  std::vector<double> sigmas;
  for (double a : alphas_cumprod) {
    const auto af = static_cast<float>(a);
    sigmas.push_back(std::sqrt((1.0f - af) / af));
  }
  return sigmas;
}

std::vector<double> LogSigmas(const std::vector<double>& sigmas) {
  std::vector<double> out;
  for (double s : sigmas) out.push_back(std::log(static_cast<float>(s)));
  return out;
}

// Karras et al. (2022)'s rho = 7 ramp from sigma_max down to sigma_min.
std::vector<double> KarrasSigmas(double sigma_max, double sigma_min, int steps) {
  const double rho = 7.0;
  const double min_inv = std::pow(sigma_min, 1 / rho);
  const double max_inv = std::pow(sigma_max, 1 / rho);
  std::vector<double> out;
  for (double ramp : Linspace(0, 1, steps)) {
    out.push_back(std::pow(max_inv + ramp * (min_inv - max_inv), rho));
  }
  return out;
}

// The fractional training step whose log-sigma `sigma` interpolates (diffusers' _sigma_to_t).
double SigmaToTimestep(double sigma, const std::vector<double>& log_sigmas) {
  const double log_sigma = std::log(std::max(sigma, 1e-10));
  const size_t n = log_sigmas.size();
  // The last index whose log-sigma is <= log_sigma (they increase with t), at most n - 2.
  size_t low = 0;
  for (size_t i = 0; i < n; ++i) {
    if (log_sigma - log_sigmas[i] >= 0) low = i;
  }
  low = std::min(low, n - 2);
  const double w =
      std::clamp((log_sigmas[low] - log_sigma) / (log_sigmas[low] - log_sigmas[low + 1]), 0.0, 1.0);
  return (1 - w) * static_cast<double>(low) + w * static_cast<double>(low + 1);
}

Status CheckSteps(const NoiseScheduleConfig& config, int steps) {
  if (steps < 1 || steps > config.train_steps) {
    return Error::Invalid("steps", "steps must be 1.." + std::to_string(config.train_steps));
  }
  return Status::Ok();
}

}  // namespace

std::vector<double> AlphasCumprod(const NoiseScheduleConfig& config) {
  // In float32, step by step as torch does, so that the sigmas match diffusers' to the last
  // bits rather than to float32's accumulated error over 1000 products (~3e-5).
  std::vector<float> betas;
  if (config.beta_schedule == BetaSchedule::kScaledLinear) {
    for (float b : TorchLinspaceFloat(std::sqrt(config.beta_start), std::sqrt(config.beta_end),
                                      config.train_steps)) {
      betas.push_back(b * b);
    }
  } else {
    betas = TorchLinspaceFloat(config.beta_start, config.beta_end, config.train_steps);
  }
  // torch's CPU cumprod multiplies in double and stores each partial product as float.
  std::vector<double> out;
  double product = 1;
  for (float beta : betas) {
    product *= static_cast<double>(1.0f - beta);
    out.push_back(static_cast<float>(product));
  }
  return out;
}

Result<SigmaSchedule> EulerSchedule(const NoiseScheduleConfig& config, int steps, bool karras) {
  if (Status s = CheckSteps(config, steps); !s) return s.error();
  const std::vector<double> train_sigmas = TrainSigmas(AlphasCumprod(config));
  SigmaSchedule out;
  // Euler keeps fractional linspace timesteps and interpolates sigma between training steps.
  out.timesteps = SpacedTimesteps(config, steps, 0, /*round_linspace=*/false);
  for (double t : out.timesteps) out.sigmas.push_back(Interp(t, train_sigmas));
  if (karras) {
    out.sigmas = KarrasSigmas(out.sigmas.front(), out.sigmas.back(), steps);
    const std::vector<double> log_sigmas = LogSigmas(train_sigmas);
    for (size_t i = 0; i < out.sigmas.size(); ++i) {
      out.timesteps[i] = SigmaToTimestep(out.sigmas[i], log_sigmas);
    }
  }
  const double max_sigma = *std::max_element(out.sigmas.begin(), out.sigmas.end());
  out.sigmas.push_back(0);
  const auto max_f = static_cast<float>(max_sigma);  // diffusers: a float32 tensor's max
  out.init_noise_sigma =
      config.spacing == TimestepSpacing::kLeading ? std::sqrt(max_f * max_f + 1.0f) : max_f;
  return out;
}

Result<SigmaSchedule> DpmSolverMultistepSchedule(const NoiseScheduleConfig& config, int steps,
                                                 bool karras) {
  if (Status s = CheckSteps(config, steps); !s) return s.error();
  const std::vector<double> train_sigmas = TrainSigmas(AlphasCumprod(config));
  SigmaSchedule out;
  out.timesteps = SpacedTimesteps(config, steps, 1, /*round_linspace=*/true);
  if (karras) {
    out.sigmas = KarrasSigmas(train_sigmas.back(), train_sigmas.front(), steps);
    const std::vector<double> log_sigmas = LogSigmas(train_sigmas);
    for (size_t i = 0; i < out.sigmas.size(); ++i) {
      out.timesteps[i] = RoundHalfEven(SigmaToTimestep(out.sigmas[i], log_sigmas));
    }
  } else {
    for (double t : out.timesteps) out.sigmas.push_back(Interp(t, train_sigmas));
  }
  out.sigmas.push_back(0);
  return out;
}

Result<DdimSchedule> DdimTimesteps(const NoiseScheduleConfig& config, int steps) {
  if (Status s = CheckSteps(config, steps); !s) return s.error();
  DdimSchedule out;
  for (double t : SpacedTimesteps(config, steps, 0, /*round_linspace=*/true)) {
    out.timesteps.push_back(static_cast<int64_t>(t));
  }
  out.alphas_cumprod = AlphasCumprod(config);
  out.final_alpha_cumprod = config.set_alpha_to_one ? 1.0 : out.alphas_cumprod.front();
  return out;
}

}  // namespace imagegen::sd
