// Configuration shared by every door: defaults < environment < flags. All environment parsing
// of imagegen's settings lives here (ParseConfigEnv); adapters receive typed values.
//
// Environment names follow the SAM and Terraform stacks (BUCKET_NAME, KEY_PREFIX, MODEL_ID,
// SQS_QUEUE_URL) as well as imagegen's own IMAGEGEN_* names. Precedence for each setting, first
// non-empty wins:
//   store  IMAGEGEN_STORE > BUCKET_NAME (s3://BUCKET) > IMAGEGEN_DEFAULT_STORE >
//   file://./data/images queue  IMAGEGEN_QUEUE > SQS_QUEUE_URL > IMAGEGEN_DEFAULT_QUEUE >
//   sqlite://./data/queue.db model  IMAGEGEN_MODEL > MODEL_ID (bedrock:MODEL_ID) > bundled
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
#include "pipeline/pipeline.h"
#include "queue/job_queue.h"

namespace imagegen {

struct Config {
  std::string store = "file://./data/images";
  std::string s3_endpoint;  // override for S3-compatible servers
  // The bucket's region (IMAGEGEN_S3_REGION); "": AWS_REGION, AWS_DEFAULT_REGION, the profile.
  std::string s3_region;
  bool s3_path_style = false;
  std::string key_prefix;  // owner prefix for image keys, e.g. "candidate-42/"
  std::string model = "bundled";
  // Where Bedrock is called (IMAGEGEN_BEDROCK_REGION); "": AWS_REGION, AWS_DEFAULT_REGION, the
  // profile. May differ from the bucket's: the Stability models are served in us-west-2 only.
  std::string bedrock_region;
  int bedrock_retry_base_ms = 500;  // IMAGEGEN_BEDROCK_RETRY_BASE_MS: backoff base (tests)
  // The openai:BASE_URL model (src/model/openai): the key (IMAGEGEN_OPENAI_API_KEY, else
  // OPENAI_API_KEY), the upstream's model name (IMAGEGEN_OPENAI_MODEL, --openai-model; the
  // spec's #MODEL otherwise), its sizes (IMAGEGEN_OPENAI_SIZES, --openai-sizes: "512x512,..."; "":
  // kDefaultOpenAiSizes), images per call (IMAGEGEN_OPENAI_MAX_N), imagegen's extra fields
  // (IMAGEGEN_OPENAI_EXTRAS: auto | imagegen | sdcpp | off) and the retry backoff base
  // (IMAGEGEN_OPENAI_RETRY_BASE_MS).
  std::string openai_api_key;
  std::string openai_model;
  std::string openai_sizes;
  int openai_max_n = 4;
  std::string openai_extras = "auto";
  int openai_retry_base_ms = 500;
  std::string queue = "sqlite://./data/queue.db";
  int threads = 0;                // model threads; 0: the engine's choice
  std::string precision = "f32";  // IMAGEGEN_PRECISION: sd: models' compute precision (f32, bf16)
  std::string lora_dir;           // IMAGEGEN_LORA_DIR: where sd: prompts' <lora:NAME> files are
  std::string model_dir;  // IMAGEGEN_MODEL_DIR: the bundled model ("": found beside the binary)
  int presign_expiry_s = 3600;
  int64_t job_retention_s = 7 * 24 * 3600;  // IMAGEGEN_JOB_RETENTION: finished job records kept
  int serve_workers = 0;                    // IMAGEGEN_SERVE_WORKERS: in-process workers of serve
  // GET /jobs/{id}/events (jobs/job_events.h): IMAGEGEN_EVENTS_MAX_STREAMS (open at once),
  // IMAGEGEN_EVENTS_MAX_STREAM_S (a stream's lifetime), IMAGEGEN_EVENTS_HEARTBEAT_S.
  int events_max_streams = 16;
  int events_max_stream_s = 300;
  int events_heartbeat_s = 15;
  std::string api_keys;                   // IMAGEGEN_API_KEYS: comma-separated
  std::string api_keys_file;              // IMAGEGEN_API_KEYS_FILE: one key per line
  std::vector<std::string> cors_origins;  // IMAGEGEN_CORS_ORIGINS: comma-separated
  // Per-key limits (src/http/rate_limit.h, JobQuota), per process; 0: off.
  double rate_limit_per_s = 0;  // IMAGEGEN_RATE_LIMIT: generation requests per second per key
  int rate_limit_burst = 0;     // IMAGEGEN_RATE_BURST: bucket size (0: the rate, at least 1)
  int max_jobs_per_key = 0;     // IMAGEGEN_MAX_JOBS_PER_KEY: queued + running jobs per key
  // Webhooks (src/jobs/webhook.h). Without a secret, a job naming a webhook is refused.
  std::string webhook_secret;        // IMAGEGEN_WEBHOOK_SECRET: whsec_<base64>
  std::string webhook_allow;         // IMAGEGEN_WEBHOOK_ALLOW: CIDRs allowed despite the SSRF guard
  int webhook_retry_base_ms = 5000;  // IMAGEGEN_WEBHOOK_RETRY_BASE_MS: first retry's delay
  int webhook_max_attempts = 12;     // IMAGEGEN_WEBHOOK_MAX_ATTEMPTS
  int webhook_max_age_s = 86400;     // IMAGEGEN_WEBHOOK_MAX_AGE: give up after this long
  // The Lambda door: IMAGEGEN_DEADLINE_MARGIN_MS, IMAGEGEN_API_GATEWAY_TIMEOUT_MS,
  // IMAGEGEN_MAX_ATTEMPTS (receives after which a retryable SQS record is final).
  int lambda_deadline_margin_ms = 500;
  int lambda_api_gateway_timeout_ms = 29000;
  int max_attempts = 5;
  // Set by Lambda itself: AWS_LAMBDA_RUNTIME_API, AWS_LAMBDA_FUNCTION_NAME,
  // AWS_LAMBDA_LOG_STREAM_NAME.
  std::string lambda_runtime_api;
  std::string lambda_function_name;
  std::string lambda_log_stream;
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

// The model schemes this build has: "bundled", "local" and "sd:PATH" (the embedded engine, when
// built), "bedrock", "openai", "test" (dev builds).
std::vector<std::string> ModelProviders();
// The one place a model is chosen, by the scheme of `spec`: "bundled" (the default: the shapes
// model and the emoji model behind a router, model/routed), "local", "local:/path/to/model",
// "bedrock:<model-id>", "openai:http://host:port[#model]", "test?delay_ms=5". An unknown scheme is
// kInvalidRequest listing ModelProviders().
Result<std::unique_ptr<ImageModel>> MakeImageModel(const std::string& spec, const Config& config);
Result<std::unique_ptr<ObjectStore>> MakeObjectStore(const Config& config);
Result<std::unique_ptr<JobQueue>> MakeJobQueue(const Config& config);

}  // namespace imagegen
