// imagegen generate PROMPT: one image through the pipeline, the result as one JSON object.
#include <fstream>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <tuple>

#include "app/services.h"
#include "cli/command.h"

namespace imagegen {
namespace {

struct GenerateArgs {
  Config config = ConfigFromEnv();
  GenerateRequest request;
  int64_t seed = -1;
  std::string size;
  std::string out;
  int quality = -1;
  std::string init_image_path, mask_path;
};

// The whole file as bytes, for --init-image and --mask; kInvalidRequest naming `field` when it
// cannot be read.
Result<std::string> ReadInputFile(const std::string& path, const std::string& field) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return Error::Invalid(field, "cannot open " + path);
  std::string bytes((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  if (file.bad()) return Error::Invalid(field, "cannot read " + path);
  return bytes;
}

int RunGenerate(GenerateArgs& args) {
  if (args.seed >= 0) args.request.seed = args.seed;
  if (args.quality >= 0) args.request.quality = args.quality;
  if (!args.size.empty()) {
    auto size = ParseSize(args.size);
    if (!size) return ReportError(Error::Invalid("size", "--size must look like 512x512"));
    args.request.width = size->first;
    args.request.height = size->second;
  }
  for (auto [path, field, target] :
       {std::tuple{&args.init_image_path, "init_image", &args.request.init_image},
        std::tuple{&args.mask_path, "mask", &args.request.mask}}) {
    if (path->empty()) continue;
    auto bytes = ReadInputFile(*path, field);
    if (!bytes.ok()) return ReportError(bytes.error());
    *target = std::move(bytes).value();
  }
  auto services = BuildServices(args.config);
  if (!services.ok()) return ReportError(services.error());
  auto result = services->pipeline->Run(args.request, GenerateContext{});
  if (!result.ok()) return ReportError(result.error());
  if (!args.out.empty()) {
    auto image = services->store->Get(result->images.front().key, nullptr);
    if (!image.ok()) return ReportError(image.error());
    std::ofstream file(args.out, std::ios::binary);
    file << image.value();
    if (!file.flush()) {
      return ReportError(Error::Invalid("out", "cannot write " + args.out));
    }
  }
  // Local output: the store's full URI (a file store's absolute path) is useful here.
  nlohmann::json j = ResultToJson(result.value(), nullptr);
  j["uri"] = services->store->Uri(result->images.front().key);
  for (auto& image : j["images"]) image["uri"] = services->store->Uri(image["key"]);
  std::cout << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << std::endl;
  return 0;
}

}  // namespace

void AddGenerateCommand(CLI::App& app) {
  auto args = std::make_shared<GenerateArgs>();
  CLI::App* cmd = app.add_subcommand("generate", "Generate an image from a prompt and store it");
  cmd->add_option("prompt", args->request.prompt, "What to draw")->required();
  cmd->add_option("--out,-o", args->out, "Also write the (first) image to this file");
  cmd->add_option("--seed", args->seed, "Seed, 0..2147483647 (random when absent)")
      ->check(CLI::Range(int64_t{0}, int64_t{2147483647}));
  AddOptional(cmd, "--width", &args->request.width, "Width in pixels (model's allowed sizes)")
      ->check(CLI::Range(1, 16384));
  AddOptional(cmd, "--height", &args->request.height, "Height in pixels")
      ->check(CLI::Range(1, 16384));
  cmd->add_option("--size", args->size, "WIDTHxHEIGHT, instead of --width/--height");
  AddOptional(cmd, "--steps", &args->request.steps, "Sampler steps (model default when absent)")
      ->check(CLI::Range(1, 1000));
  AddOptional(cmd, "--guidance", &args->request.guidance, "Classifier-free guidance scale");
  cmd->add_option("--negative", args->request.negative_prompt, "Negative prompt");
  cmd->add_option("--count", args->request.count, "Number of images")->check(CLI::Range(1, 16));
  cmd->add_option("--format", args->request.format, "Output format: png (default), jpeg or webp");
  cmd->add_option("--quality", args->quality, "JPEG/WebP quality 0..100 (100: lossless WebP)");
  cmd->add_option("--background", args->request.background,
                  "auto (default), opaque or transparent (png/webp, where the model makes alpha)");
  cmd->add_option("--sampler", args->request.sampler,
                  "Sampler: euler, euler_a, dpmpp_2m, dpmpp_2m_karras, ddim or turbo (model "
                  "default when absent; models without a choice warn)");
  cmd->add_option("--init-image", args->init_image_path,
                  "Image-to-image: the source image file (PNG, JPEG or WebP)");
  cmd->add_option("--mask", args->mask_path,
                  "Inpainting: a mask file the size of --init-image (white = repaint)");
  AddOptional(cmd, "--strength", &args->request.strength,
              "How far from --init-image, 0 < strength <= 1 (model default when absent)");
  cmd->add_option("--job-id", args->request.job_id,
                  "Names the output; re-running finds the same image");
  AddCommonFlags(cmd, &args->config);
  cmd->callback([args] { SetExitCode(RunGenerate(*args)); });
}

}  // namespace imagegen
