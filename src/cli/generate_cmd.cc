// imagegen generate PROMPT: one image through the pipeline, the result as one JSON object.
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

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
};

int RunGenerate(GenerateArgs& args) {
  if (args.seed >= 0) args.request.seed = args.seed;
  if (args.quality >= 0) args.request.quality = args.quality;
  if (!args.size.empty()) {
    auto size = ParseSize(args.size);
    if (!size) return ReportError(Error::Invalid("size", "--size must look like 512x512"));
    args.request.width = size->first;
    args.request.height = size->second;
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
  cmd->add_option("--job-id", args->request.job_id,
                  "Names the output; re-running finds the same image");
  AddCommonFlags(cmd, &args->config);
  cmd->callback([args] { SetExitCode(RunGenerate(*args)); });
}

}  // namespace imagegen
