// imagegen: one binary for every door. With AWS_LAMBDA_RUNTIME_API set it is a Lambda bootstrap.
#include <cstdlib>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "cli/signals.h"

namespace imagegen {
namespace {

int g_exit_code = 0;

}  // namespace

void SetExitCode(int code) { g_exit_code = code; }

void AddWebhookFlags(CLI::App* command, Config* config) {
  command->add_option("--webhook-allow", config->webhook_allow,
                      "CIDRs job webhooks may reach although loopback/private/link-local, e.g. "
                      "10.1.0.0/16,127.0.0.1 [env IMAGEGEN_WEBHOOK_ALLOW; the signing secret: "
                      "env IMAGEGEN_WEBHOOK_SECRET=whsec_...]");
}

void AddCommonFlags(CLI::App* command, Config* config) {
  command
      ->add_option(
          "--store", config->store,
          "Object store URL: file://DIR or s3://BUCKET/PREFIX [env IMAGEGEN_STORE, BUCKET_NAME]")
      ->capture_default_str();
  command->add_option("--s3-endpoint", config->s3_endpoint,
                      "S3-compatible endpoint URL [env AWS_ENDPOINT_URL_S3]");
  command->add_flag("--s3-path-style", config->s3_path_style,
                    "Path-style S3 addressing [env IMAGEGEN_S3_PATH_STYLE]");
  command->add_option("--key-prefix", config->key_prefix,
                      "Owner prefix for image keys [env IMAGEGEN_KEY_PREFIX, KEY_PREFIX]");
  command
      ->add_option("--model", config->model,
                   "bundled | local | local:PATH | sd:PATH | bedrock:MODEL_ID | "
                   "openai:BASE_URL[#MODEL] [env "
                   "IMAGEGEN_MODEL, MODEL_ID]")
      ->capture_default_str();
  command->add_option("--openai-model", config->openai_model,
                      "Upstream model name for openai:BASE_URL [env IMAGEGEN_OPENAI_MODEL]");
  command->add_option("--openai-sizes", config->openai_sizes,
                      "Sizes the openai:BASE_URL upstream accepts, the default first, e.g. "
                      "512x512,1024x1024 [env IMAGEGEN_OPENAI_SIZES]");
  command
      ->add_option("--queue", config->queue,
                   "Job queue: sqlite://PATH, sqs://NAME or an SQS queue URL [env IMAGEGEN_QUEUE, "
                   "SQS_QUEUE_URL]")
      ->capture_default_str();
  command
      ->add_option("--threads", config->threads,
                   "Threads for the embedded engine (0: automatic) [env IMAGEGEN_THREADS]")
      ->check(CLI::Range(0, 256));
  command
      ->add_option("--precision", config->precision,
                   "Compute precision of sd: checkpoints: f32, or bf16 (about 2x faster on CPUs "
                   "with AVX512-BF16, half the memory) [env IMAGEGEN_PRECISION]")
      ->check(CLI::IsMember({"f32", "bf16"}));
  command->add_option("--lora-dir", config->lora_dir,
                      "Folder of LoRA *.safetensors files that sd: prompts name with "
                      "<lora:NAME:SCALE> [env IMAGEGEN_LORA_DIR]");
}

int ReportError(const Error& error) {
  std::cerr << "imagegen: " << ErrorCodeName(error.code) << ": " << error.message << std::endl;
  return ExitCodeFor(error.code);
}

}  // namespace imagegen

int main(int argc, char** argv) {
  using namespace imagegen;
  InstallSignalHandling();
  CLI::App app{"imagegen: text-to-image generation service", "imagegen"};
  app.require_subcommand(0, 1);
  app.set_version_flag("--version", IMAGEGEN_VERSION);
  for (auto* add : {AddGenerateCommand, AddServeCommand, AddWorkerCommand, AddInspectCommand,
                    AddDeadLettersCommand, AddSubmitCommand, AddLambdaCommand}) {
    add(app);
  }
  bool lambda_env = !ConfigFromEnv().lambda_runtime_api.empty();
  if (argc == 1 && lambda_env) {
    // Lambda runs the bootstrap with no arguments: enter the runtime loop.
    static char lambda_arg[] = "lambda";
    static char* lambda_argv[] = {argv[0], lambda_arg, nullptr};
    argc = 2;
    argv = lambda_argv;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::cout << app.help();
    return 0;
  } catch (const CLI::CallForAllHelp&) {
    std::cout << app.help("", CLI::AppFormatMode::All);
    return 0;
  } catch (const CLI::CallForVersion&) {
    std::cout << IMAGEGEN_VERSION << std::endl;
    return 0;
  } catch (const CLI::ParseError& e) {
    // Help requested on a subcommand arrives as a CallForHelp from that subcommand.
    if (e.get_exit_code() == 0) {
      std::cout << e.what() << std::endl;
      return 0;
    }
    std::string message = e.what();
    std::replace(message.begin(), message.end(), '\n', ' ');
    std::cerr << "imagegen: error: " << message << " (see imagegen --help)" << std::endl;
    return 2;
  }
  if (app.get_subcommands().empty()) {
    std::cout << app.help();
    return 0;
  }
  return g_exit_code;
}
