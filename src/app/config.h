// Configuration shared by every door: defaults < environment < flags.
// Environment names follow the SAM and Terraform stacks (BUCKET_NAME, KEY_PREFIX, MODEL_ID,
// SQS_QUEUE_URL) as well as imagegen's own IMAGEGEN_* names.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/pipeline.h"
#include "queue/job_queue.h"

namespace imagegen {

struct Config {
  std::string store = "file://./data/images";
  std::string s3_endpoint;  // override for S3-compatible servers
  bool s3_path_style = false;
  std::string key_prefix;  // owner prefix for image keys, e.g. "candidate-42/"
  std::string model = "local";
  std::string queue = "sqlite://./data/queue.db";
  int threads = 0;  // model threads; 0: the engine's choice
  int presign_expiry_s = 3600;
};

// Reads IMAGEGEN_STORE / BUCKET_NAME, AWS_ENDPOINT_URL_S3, IMAGEGEN_S3_PATH_STYLE,
// IMAGEGEN_KEY_PREFIX / KEY_PREFIX, IMAGEGEN_MODEL / MODEL_ID, IMAGEGEN_QUEUE / SQS_QUEUE_URL,
// IMAGEGEN_THREADS, IMAGEGEN_PRESIGN_EXPIRY.
Config ConfigFromEnv();

// "" -> "", "a" -> "a/", "a/" -> "a/"; rejects what CheckKey would.
Result<std::string> NormalizeKeyPrefix(const std::string& prefix);

using ModelFactory =
    std::function<Result<std::unique_ptr<ImageModel>>(const std::string& spec, int threads)>;
// Providers register by scheme: "local", "test", "bedrock", "openai". The engine registers
// itself from main() (it lives in a library of its own, see src/model/local).
void RegisterModelProvider(const std::string& scheme, ModelFactory factory);

// spec: "local", "local:/path/to/model", "test?delay_ms=5", "bedrock:<model-id>", ...
Result<std::unique_ptr<ImageModel>> MakeImageModel(const std::string& spec, int threads);
Result<std::unique_ptr<ObjectStore>> MakeObjectStore(const Config& config);
Result<std::unique_ptr<JobQueue>> MakeJobQueue(const Config& config);
Result<std::shared_ptr<Pipeline>> MakePipeline(const Config& config);

}  // namespace imagegen
