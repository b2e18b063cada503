// imagegen-sd-nets: runs one SD network (UNet, VAE decoder or encoder) of a diffusers
// component folder on tensors from a safetensors file, for parity tests against diffusers and
// for timing. Usage:
//   imagegen-sd-nets unet --component DIR --inputs in.safetensors --out out.safetensors
//     inputs: sample [B,C,H,W], timestep [B], context [B,T,D]; for an SDXL UNet also
//     text_embeds [B,P] (pooled text) and time_ids [B,6]
//   imagegen-sd-nets vae-decode ... inputs: latents (already divided by the scaling factor);
//     --tile T --overlap O decodes in tiles of T latent pixels
//   imagegen-sd-nets vae-encode ... inputs: images in [-1, 1]; writes the latent mean
//   --precision bf16 computes in bfloat16 (the output is still F32)
// DIR holds config.json and diffusion_pytorch_model.safetensors (F32, F16 or BF16). The output
// tensor is "out" (F32). stdout gets one JSON line: {"shape", "load_seconds", "seconds",
// "cpu_seconds"} with one entry per --repeat. Errors: a message on stderr and the taxonomy's exit
// code.
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstring>
#include <ctime>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "model/local/safetensors.h"
#include "model/sd/nets/unet.h"
#include "model/sd/nets/vae.h"

namespace {

using imagegen::Error;
using imagegen::ErrorCode;
using imagegen::Result;
using imagegen::sd::TensorMap;

Result<c10::ScalarType> TorchDtype(const std::string& name) {
  if (name == "F32") return c10::ScalarType::Float;
  if (name == "F16") return c10::ScalarType::Half;
  if (name == "BF16") return c10::ScalarType::BFloat16;
  if (name == "F64") return c10::ScalarType::Double;
  if (name == "I64") return c10::ScalarType::Long;
  return Error::Make(ErrorCode::kInvalidRequest, "tensor dtype " + name + " is not supported");
}

// The file in one exactly sized buffer: ReadSafetensors' stream copies would hold the 3.4 GB
// of an SD 1.5 UNet three times over.
Result<std::string> ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return Error::Make(ErrorCode::kNotFound, "cannot open " + path);
  std::string bytes(static_cast<size_t>(in.tellg()), '\0');
  in.seekg(0);
  if (!in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()))) {
    return Error::Make(ErrorCode::kInvalidRequest, "cannot read " + path);
  }
  return bytes;
}

// Every tensor of a file as float32. F32 tensors point into the file's buffer (kept alive by
// their deleters) instead of being copied, which halves the peak memory of a large UNet.
Result<TensorMap> ReadTensors(const std::string& path) {
  auto contents = ReadBytes(path);
  if (!contents) return contents.error();
  auto parsed = imagegen::ParseSafetensors(std::move(*contents));
  if (!parsed) return Error::Make(parsed.error().code, path + ": " + parsed.error().message);
  auto file = std::make_shared<imagegen::SafetensorsFile>(std::move(*parsed));
  TensorMap tensors;
  for (const auto& [name, info] : file->tensors) {
    auto dtype = TorchDtype(info.dtype);
    if (!dtype) return Error::Make(ErrorCode::kInvalidRequest, name + ": " + dtype.error().message);
    void* bytes = const_cast<uint8_t*>(file->Bytes(info));
    auto view = torch::from_blob(
        bytes, info.shape, [file](void*) {}, torch::TensorOptions().dtype(*dtype));
    tensors[name] = *dtype == c10::ScalarType::Float ? view : view.to(torch::kFloat);
  }
  return tensors;
}

Result<imagegen::sd::Component> ReadComponent(const std::string& dir) {
  std::ifstream in(dir + "/config.json");
  if (!in) return Error::Make(ErrorCode::kNotFound, "no " + dir + "/config.json");
  std::stringstream text;
  text << in.rdbuf();
  auto config = nlohmann::json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  if (config.is_discarded()) {
    return Error::Make(ErrorCode::kInvalidRequest, dir + "/config.json is not JSON");
  }
  auto weights = ReadTensors(dir + "/diffusion_pytorch_model.safetensors");
  if (!weights) return weights.error();
  return imagegen::sd::Component{std::move(config), std::move(*weights)};
}

Result<torch::Tensor> Input(const TensorMap& inputs, const std::string& name, int64_t dims) {
  auto it = inputs.find(name);
  if (it == inputs.end() || it->second.dim() != dims) {
    return Error::Make(ErrorCode::kInvalidRequest, "inputs need a " + std::to_string(dims) +
                                                       "-dimensional tensor \"" + name + "\"");
  }
  return it->second;
}

imagegen::Status WriteOutput(const std::string& path, const torch::Tensor& out) {
  auto t = out.to(torch::kFloat).contiguous();
  imagegen::TensorToWrite tensor{"out", "F32", t.sizes().vec(), {}};
  tensor.bytes.assign(static_cast<const char*>(t.data_ptr()), t.numel() * sizeof(float));
  return imagegen::WriteSafetensors(path, {tensor}, {});
}

struct Options {
  std::string mode, component, inputs, out, precision = "f32";
  int threads = 0, repeat = 1;
  int64_t tile = 0, overlap = 8;
};

using Run = std::function<torch::Tensor()>;

// Builds the network of `options.mode` and returns the call that runs it on the inputs.
Result<Run> Prepare(const Options& options, const TensorMap& inputs) {
  auto component = ReadComponent(options.component);
  if (!component) return component.error();
  auto compute = imagegen::sd::ComputeTypeNamed(options.precision);
  if (!compute) return compute.error();
  if (options.mode == "unet") {
    auto unet = imagegen::sd::Unet::Create(*component, *compute);
    if (!unet) return unet.error();
    auto sample = Input(inputs, "sample", 4);
    if (!sample) return sample.error();
    auto timestep = Input(inputs, "timestep", 1);
    if (!timestep) return timestep.error();
    auto context = Input(inputs, "context", 3);
    if (!context) return context.error();
    if (sample->size(1) != unet->InChannels() || context->size(2) != unet->CrossAttentionDim()) {
      return Error::Invalid("inputs", "this UNet takes " + std::to_string(unet->InChannels()) +
                                          " sample channels and a context of width " +
                                          std::to_string(unet->CrossAttentionDim()));
    }
    imagegen::sd::AddedConditions added;  // SDXL: the pooled text and the size ids
    if (unet->AddedTextDim() > 0) {
      auto text_embeds = Input(inputs, "text_embeds", 2);
      if (!text_embeds) return text_embeds.error();
      auto time_ids = Input(inputs, "time_ids", 2);
      if (!time_ids) return time_ids.error();
      added = {*text_embeds, *time_ids};
    }
    return Run([unet = *unet, s = *sample, t = *timestep, c = *context, added] {
      return unet.Forward(s, t, c, added);
    });
  }
  auto vae = imagegen::sd::Vae::Create(*component, *compute);
  if (!vae) return vae.error();
  if (options.mode == "vae-encode") {
    auto images = Input(inputs, "images", 4);
    if (!images) return images.error();
    return Run([vae = *vae, x = *images] { return vae.Encode(x); });
  }
  auto latents = Input(inputs, "latents", 4);
  if (!latents) return latents.error();
  if (options.tile > 0) {
    return Run([vae = *vae, z = *latents, tile = options.tile, overlap = options.overlap] {
      return vae.DecodeTiled(z, tile, overlap);
    });
  }
  return Run([vae = *vae, z = *latents] { return vae.Decode(z); });
}

double Since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// CPU seconds of the whole process (all threads): on a shared machine the wall clock also
// counts other people's work, this does not.
double CpuSeconds() { return static_cast<double>(std::clock()) / CLOCKS_PER_SEC; }

int Fail(const Error& error) {
  std::cerr << "imagegen-sd-nets: " << imagegen::ErrorCodeName(error.code) << ": " << error.message
            << "\n";
  return imagegen::ExitCodeFor(error.code);
}

int Main(const Options& options) {
  if (options.threads > 0) torch::set_num_threads(options.threads);
  auto inputs = ReadTensors(options.inputs);
  if (!inputs) return Fail(inputs.error());
  const auto load_start = std::chrono::steady_clock::now();
  auto run = Prepare(options, *inputs);
  if (!run) return Fail(run.error());
  const double load_seconds = Since(load_start);
  torch::Tensor out;
  std::vector<double> seconds, cpu_seconds;
  for (int i = 0; i < options.repeat; ++i) {
    const auto start = std::chrono::steady_clock::now();
    const double cpu_start = CpuSeconds();
    out = (*run)();
    seconds.push_back(Since(start));
    cpu_seconds.push_back(CpuSeconds() - cpu_start);
  }
  if (auto s = WriteOutput(options.out, out); !s) return Fail(s.error());
  std::cout << nlohmann::json{{"shape", out.sizes().vec()},
                              {"load_seconds", load_seconds},
                              {"seconds", seconds},
                              {"cpu_seconds", cpu_seconds}}
                   .dump()
            << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Runs a Stable Diffusion UNet or VAE of a diffusers component folder"};
  Options options;
  app.add_option("mode", options.mode, "unet, vae-decode or vae-encode")
      ->required()
      ->check(CLI::IsMember({"unet", "vae-decode", "vae-encode"}));
  app.add_option("--component", options.component, "diffusers component folder")->required();
  app.add_option("--inputs", options.inputs, "safetensors file with the input tensors")->required();
  app.add_option("--out", options.out, "safetensors file to write (tensor \"out\")")->required();
  app.add_option("--threads", options.threads, "intra-op threads (0: LibTorch's default)")
      ->check(CLI::Range(0, 256));
  app.add_option("--repeat", options.repeat, "forward passes to time")->check(CLI::Range(1, 100));
  app.add_option("--precision", options.precision, "compute in f32 (default) or bf16")
      ->check(CLI::IsMember({"f32", "bf16"}));
  app.add_option("--tile", options.tile, "vae-decode in tiles of this many latent pixels")
      ->check(CLI::Range(int64_t{0}, int64_t{4096}));
  app.add_option("--overlap", options.overlap, "latent pixels shared by neighbouring tiles")
      ->check(CLI::Range(int64_t{0}, int64_t{4095}));
  CLI11_PARSE(app, argc, argv);
  if (options.tile > 0 && options.overlap >= options.tile) {
    return Fail(Error::Invalid("overlap", "--overlap must be smaller than --tile"));
  }
  try {
    return Main(options);
  } catch (const c10::Error& e) {  // inputs of shapes the network cannot take
    return Fail(Error::Make(ErrorCode::kInvalidRequest, e.what_without_backtrace()));
  }
}
