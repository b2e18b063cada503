// Configuration shared by every door: defaults < environment < flags. All environment parsing
// of imagegen's settings lives here (ParseConfigEnv); adapters receive typed values.
//
// Environment names follow the SAM and Terraform stacks (BUCKET_NAME, KEY_PREFIX, MODEL_ID,
// SQS_QUEUE_URL) as well as imagegen's own IMAGEGEN_* names. Precedence for each setting, first
// non-empty wins:
//   store  IMAGEGEN_STORE > BUCKET_NAME (s3://BUCKET) > IMAGEGEN_DEFAULT_STORE >
//   file://./data/images queue  IMAGEGEN_QUEUE > SQS_QUEUE_URL > IMAGEGEN_DEFAULT_QUEUE >
//   sqlite://./data/queue.db model  IMAGEGEN_MODEL > MODEL_ID (bedrock:MODEL_ID) > local
// IMAGEGEN_DEFAULT_* are for images and packagers: a container image bakes its embedded
// defaults under those names, so the names a deployment gives it (BUCKET_NAME, SQS_QUEUE_URL)
// always win over what was baked in. A job must never silently go to a local file when a
// queue URL was given.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "aws/config.h"
#include "core/error.h"
#include "core/pipeline.h"
#include "queue/job_queue.h"

namespace imagegen {

struct Config {
  std::string store = "file://./data/images";
  std::string s3_endpoint;  // override for S3-compatible servers
  // The bucket's region (IMAGEGEN_S3_REGION); "": AWS_REGION, AWS_DEFAULT_REGION, the profile.
  std::string s3_region;
  bool s3_path_style = false;
  std::string key_prefix;  // owner prefix for image keys, e.g. "candidate-42/"
  std::string model = "local";
  // Where Bedrock is called (IMAGEGEN_BEDROCK_REGION); "": AWS_REGION, AWS_DEFAULT_REGION, the
  // profile. May differ from the bucket's: the Stability models are served in us-west-2 only.
  std::string bedrock_region;
  int bedrock_retry_base_ms = 500;  // IMAGEGEN_BEDROCK_RETRY_BASE_MS: backoff base (tests)
  std::string queue = "sqlite://./data/queue.db";
  int threads = 0;  // model threads; 0: the engine's choice
  int presign_expiry_s = 3600;
  // The first environment variable ConfigFromEnv could not accept. MakePipeline, MakeObjectStore,
  // MakeJobQueue and MakeImageModel(spec, config) report it instead of building anything, so
  // every door fails the same way (a Lambda's init error names the variable).
  std::optional<Error> env_error;
};

// Reads IMAGEGEN_STORE / BUCKET_NAME / IMAGEGEN_DEFAULT_STORE, AWS_ENDPOINT_URL_S3,
// IMAGEGEN_S3_REGION, IMAGEGEN_S3_PATH_STYLE, IMAGEGEN_KEY_PREFIX / KEY_PREFIX,
// IMAGEGEN_MODEL / MODEL_ID, IMAGEGEN_BEDROCK_REGION, IMAGEGEN_BEDROCK_RETRY_BASE_MS,
// IMAGEGEN_QUEUE / SQS_QUEUE_URL / IMAGEGEN_DEFAULT_QUEUE, IMAGEGEN_THREADS,
// IMAGEGEN_PRESIGN_EXPIRY (precedence above). Errors are kInvalidRequest with `field` set to the
// variable's name and a message naming it and what it accepts.
Result<Config> ParseConfigEnv(const aws::EnvLookup& env);
// ParseConfigEnv on the process environment; an error is kept in Config::env_error.
Config ConfigFromEnv();

// "" -> "", "a" -> "a/", "a/" -> "a/"; rejects what CheckKey would.
Result<std::string> NormalizeKeyPrefix(const std::string& prefix);

using ModelFactory =
    std::function<Result<std::unique_ptr<ImageModel>>(const std::string& spec, int threads)>;
// A factory that reads the rest of the configuration (regions, retry settings).
using ConfiguredModelFactory =
    std::function<Result<std::unique_ptr<ImageModel>>(const std::string& spec, const Config&)>;
// Providers register by scheme: "local", "test", "bedrock", "openai". The engine registers
// itself from main() (it lives in a library of its own, see src/model/local).
void RegisterModelProvider(const std::string& scheme, ModelFactory factory);
void RegisterConfiguredModelProvider(const std::string& scheme, ConfiguredModelFactory factory);

// spec: "local", "local:/path/to/model", "test?delay_ms=5", "bedrock:<model-id>", ...
Result<std::unique_ptr<ImageModel>> MakeImageModel(const std::string& spec, const Config& config);
// The same with ConfigFromEnv() and `threads`.
Result<std::unique_ptr<ImageModel>> MakeImageModel(const std::string& spec, int threads);
Result<std::unique_ptr<ObjectStore>> MakeObjectStore(const Config& config);
Result<std::unique_ptr<JobQueue>> MakeJobQueue(const Config& config);
// Builds model and store, then checks the store's location once before any paid generation
// can depend on it (ObjectStore::CheckLocation: an S3 bucket in another region than the one
// configured is an error naming the bucket's region and IMAGEGEN_S3_REGION). When the check
// cannot tell yet (S3 unreachable), it runs again before each generation until it can.
Result<std::shared_ptr<Pipeline>> MakePipeline(const Config& config);

}  // namespace imagegen
