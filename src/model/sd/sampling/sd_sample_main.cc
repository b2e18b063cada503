// imagegen-sd-sample: runs one sampler (sampler.h) over a fixed fake denoiser for the parity
// test (tests/integration/test_sd_samplers.py), which runs diffusers' scheduler over the same
// one. Reads one JSON object per stdin line:
//   {"sampler": "euler_a", "steps": 20, "scheduler": {scheduler_config.json fields},
//    "shape": [1, 4, 8, 8], "seed": 1, "strength": 1.0, "init_seed": 2, "a": 0.1, "b": 1.0}
// The latents start as torch.randn(shape, generator=Generator().manual_seed(seed)) times
// init_noise_sigma; with strength < 1 they start instead from add_noise(x0, noise) at the
// start step, x0 = randn(shape) from init_seed's generator and noise the next randn of seed's.
// The denoiser's output is a * scale_model_input(x) + b * sin(timestep). Writes one JSON object
// per line: {"timesteps": [...], "trajectory": [[latents after each step, flattened]...],
// "x0": [[predicted x0 per step]...]} or {"error": {"code", "message"}}.
#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/InferenceMode.h>

#include <cmath>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "model/sd/sampling/sampler.h"

namespace {

using imagegen::Error;
using nlohmann::json;
namespace sd = imagegen::sd;

json ErrorJson(const Error& error) {
  return json{
      {"error",
       {{"code", std::string(imagegen::ErrorCodeName(error.code))}, {"message", error.message}}}};
}

std::vector<float> Flat(const torch::Tensor& t) {
  torch::Tensor c = t.contiguous();
  const float* p = c.data_ptr<float>();
  return {p, p + c.numel()};
}

json Run(const json& in) {
  const std::string name = in.value("sampler", std::string("euler"));
  auto kind = sd::SamplerFromName(name);
  if (!kind) return ErrorJson(Error::Invalid("sampler", "unknown sampler \"" + name + "\""));
  auto options = sd::SamplerOptionsFromConfig(in.value("scheduler", json::object()), *kind);
  if (!options) return ErrorJson(options.error());
  auto sampler =
      sd::Sampler::Create(*kind, *options, in.value("steps", 20), in.value("strength", 1.0));
  if (!sampler) return ErrorJson(sampler.error());
  const auto shape = in.value("shape", std::vector<int64_t>{1, 4, 8, 8});
  const double a = in.value("a", 0.1), b = in.value("b", 1.0);
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(in.value("seed", 0));
  torch::Tensor x;
  if (in.value("strength", 1.0) < 1.0) {
    at::Generator init = at::make_generator<at::CPUGeneratorImpl>(in.value("init_seed", 0));
    torch::Tensor x0 = torch::randn(shape, init);
    x = sampler->AddNoise(x0, torch::randn(shape, generator), 0);
  } else {
    x = torch::randn(shape, generator) * sampler->InitNoiseSigma();
  }
  json timesteps = json::array(), trajectory = json::array(), predicted = json::array();
  for (int i = 0; i < sampler->StepCount(); ++i) {
    const double t = sampler->Timestep(i);
    torch::Tensor output = a * sampler->ScaleInput(x, i) + b * std::sin(t);
    auto step = sampler->Step(i, output, x, &generator);
    if (!step) return ErrorJson(step.error());
    x = step->prev_sample;
    timesteps.push_back(t);
    trajectory.push_back(Flat(x));
    predicted.push_back(Flat(step->x0));
  }
  return json{{"timesteps", timesteps}, {"trajectory", trajectory}, {"x0", predicted}};
}

json Answer(const std::string& line) {
  json in = json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (in.is_discarded() || !in.is_object()) {
    return ErrorJson(Error::Invalid("line", "each input line must be one JSON object"));
  }
  try {
    return Run(in);
  } catch (const std::exception& e) {  // a field of the wrong type, a bad shape
    return ErrorJson(Error::Invalid("line", e.what()));
  }
}

}  // namespace

int main() {
  std::ios::sync_with_stdio(false);
  c10::InferenceMode inference;
  std::string line;
  while (std::getline(std::cin, line)) std::cout << Answer(line).dump() << "\n";
  return 0;
}
