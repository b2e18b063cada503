// imagegen submit PROMPT: enqueue a job and print its id (the seed's queue client).
// The queue comes from --queue, IMAGEGEN_QUEUE or SQS_QUEUE_URL (as the seed's client read it).
#include <iostream>
#include <random>

#include "app/services.h"
#include "cli/command.h"
#include "core/ids.h"
#include "jobs/job_service.h"

namespace imagegen {
namespace {

struct SubmitArgs {
  Config config = ConfigFromEnv();
  GenerateRequest request;
  int64_t seed = -1;
  std::string size;
  int quality = -1;
  bool raw = false;
};

int RunSubmit(SubmitArgs& args) {
  GenerateRequest& request = args.request;
  if (request.prompt.empty()) return ReportError(Error::Invalid("prompt", "prompt is empty"));
  auto queue = LazyQueue(args.config)();
  if (!queue.ok()) return ReportError(queue.error());
  if (args.raw) {
    // Exactly what `aws sqs send-message --message-body "PROMPT"` sends: the worker takes the
    // body as the prompt and the message id as the job id.
    auto id = (*queue)->Send(request.prompt);
    if (!id.ok()) return ReportError(id.error());
    std::cout << id.value() << std::endl;
    return 0;
  }
  if (args.quality >= 0) request.quality = args.quality;
  if (args.seed >= 0) {
    request.seed = args.seed;
  } else {
    // Chosen here, so every delivery of the message renders the same image.
    std::mt19937_64 rng{std::random_device{}()};
    request.seed = static_cast<int64_t>(rng() % static_cast<uint64_t>(kMaxSeed + 1));
  }
  if (!args.size.empty()) {
    auto size = ParseSize(args.size);
    if (!size) return ReportError(Error::Invalid("size", "--size must look like 512x512"));
    request.width = size->first;
    request.height = size->second;
  }
  if (request.job_id.empty()) request.job_id = NewJobId();
  if (auto s = CheckJobId(request.job_id); !s) return ReportError(s.error());
  auto sent = (*queue)->Send(JobMessageBody(request));
  if (!sent.ok()) return ReportError(sent.error());
  std::cout << request.job_id << std::endl;
  return 0;
}

}  // namespace

void AddSubmitCommand(CLI::App& app) {
  auto args = std::make_shared<SubmitArgs>();
  CLI::App* cmd =
      app.add_subcommand("submit", "Enqueue a generation job and print its id (see: worker)");
  cmd->add_option("prompt", args->request.prompt, "What to draw")->required();
  cmd->add_option("--job-id", args->request.job_id,
                  "Names the job and its output; submitting it again makes no second image");
  cmd->add_option("--seed", args->seed, "Seed, 0..2147483647 (random when absent)")
      ->check(CLI::Range(int64_t{0}, int64_t{2147483647}));
  AddOptional(cmd, "--width", &args->request.width, "Width in pixels")->check(CLI::Range(1, 16384));
  AddOptional(cmd, "--height", &args->request.height, "Height in pixels")
      ->check(CLI::Range(1, 16384));
  cmd->add_option("--size", args->size, "WIDTHxHEIGHT, instead of --width/--height");
  AddOptional(cmd, "--steps", &args->request.steps, "Sampler steps")->check(CLI::Range(1, 1000));
  AddOptional(cmd, "--guidance", &args->request.guidance, "Classifier-free guidance scale");
  cmd->add_option("--negative", args->request.negative_prompt, "Negative prompt");
  cmd->add_option("--count", args->request.count, "Number of images")->check(CLI::Range(1, 16));
  cmd->add_option("--format", args->request.format, "Output format: png (default), jpeg or webp");
  cmd->add_option("--quality", args->quality, "JPEG/WebP quality 0..100 (100: lossless WebP)");
  cmd->add_option("--background", args->request.background,
                  "auto (default), opaque or transparent");
  cmd->add_flag("--raw", args->raw,
                "Send the prompt as a plain-text body (as aws sqs send-message does); prints "
                "the message id, which names the job");
  AddCommonFlags(cmd, &args->config);
  cmd->callback([args] { SetExitCode(RunSubmit(*args)); });
}

}  // namespace imagegen
