#include "app/config.h"

#include <algorithm>
#include <charconv>
#include <map>
#include <mutex>
#include <sstream>

#include "aws/encoding.h"
#include "core/strings.h"
#include "model/bedrock/bedrock_model.h"
#include "model/openai/openai_model.h"
#include "model/routed/routed_model.h"
#include "queue/sqlite_queue.h"
#include "queue/sqs_queue.h"
#include "store/file_store.h"
#include "store/object_store.h"
#include "store/s3_store.h"
#ifdef IMAGEGEN_WITH_TEST_MODEL
#include "model/testing/test_model.h"
#endif
#ifdef IMAGEGEN_HAS_ENGINE
#include "model/local/local_model.h"
#include "model/sd/load/sd_model.h"
#endif

namespace imagegen {
namespace {

std::string SchemeOf(const std::string& spec) {
  size_t end = spec.find_first_of(":?");
  return end == std::string::npos ? spec : spec.substr(0, end);
}

// The environment as seen by ParseConfigEnv: a value, or "" when unset.
class EnvReader {
 public:
  explicit EnvReader(const aws::EnvLookup& env) : env_(env) {}
  std::string operator()(const std::string& name) const {
    auto value = env_(name);
    return value ? *value : "";
  }
  // The value of the first of `names` that is set and not empty.
  std::string First(std::initializer_list<const char*> names) const {
    for (const char* name : names) {
      std::string value = (*this)(name);
      if (!value.empty()) return value;
    }
    return "";
  }

 private:
  const aws::EnvLookup& env_;
};

std::vector<std::string> SplitList(const std::string& value) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= value.size()) {
    size_t comma = value.find(',', start);
    std::string item =
        Trim(value.substr(start, comma == std::string::npos ? comma : comma - start));
    if (!item.empty()) out.push_back(item);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

// What Lambda itself sets; read even when another variable is invalid, so that the bootstrap
// still reaches the Runtime API to report that error as its init error.
void ReadLambdaEnvironment(const EnvReader& env, Config* config) {
  config->lambda_runtime_api = env("AWS_LAMBDA_RUNTIME_API");
  config->lambda_function_name = env("AWS_LAMBDA_FUNCTION_NAME");
  config->lambda_log_stream = env("AWS_LAMBDA_LOG_STREAM_NAME");
}

Error BadVariable(const std::string& name, const std::string& value, const std::string& wants) {
  return Error::Invalid(name, name + "=\"" + value + "\" is not valid: " + wants);
}

Result<int> IntVariable(const std::string& name, const std::string& value, int lo, int hi) {
  int parsed = 0;
  const char* end = value.data() + value.size();
  auto [ptr, ec] = std::from_chars(value.data(), end, parsed);
  if (ec != std::errc() || ptr != end || parsed < lo || parsed > hi) {
    return BadVariable(
        name, value,
        "expected an integer from " + std::to_string(lo) + " to " + std::to_string(hi));
  }
  return parsed;
}

Result<double> NumberVariable(const std::string& name, const std::string& value, double lo,
                              double hi) {
  double parsed = 0;
  const char* end = value.data() + value.size();
  auto [ptr, ec] = std::from_chars(value.data(), end, parsed);
  if (ec != std::errc() || ptr != end || !(parsed >= lo && parsed <= hi)) {
    std::ostringstream range;
    range << "expected a number from " << lo << " to " << hi;
    return BadVariable(name, value, range.str());
  }
  return parsed;
}

Result<bool> BoolVariable(const std::string& name, const std::string& value) {
  std::string v = Lower(value);
  if (v == "1" || v == "true" || v == "yes" || v == "on") return true;
  if (v == "0" || v == "false" || v == "no" || v == "off") return false;
  return BadVariable(name, value, "expected 1/true/yes/on or 0/false/no/off");
}

// AWS region names: "us-west-2", "eu-central-1", "us-gov-west-1", "cn-north-1", "ap-southeast-4".
bool IsAwsRegionName(const std::string& region) {
  std::vector<std::string> parts;
  size_t start = 0;
  for (;;) {
    size_t dash = region.find('-', start);
    parts.push_back(region.substr(start, dash == std::string::npos ? dash : dash - start));
    if (dash == std::string::npos) break;
    start = dash + 1;
  }
  if (parts.size() < 3 || parts.front().size() != 2) return false;
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    if (parts[i].empty() || !std::all_of(parts[i].begin(), parts[i].end(),
                                         [](char c) { return c >= 'a' && c <= 'z'; })) {
      return false;
    }
  }
  const std::string& last = parts.back();
  return !last.empty() && last.size() <= 2 &&
         std::all_of(last.begin(), last.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// A region for `name`. With an endpoint override (S3-compatible servers use names such as
// "auto" or "local") only the characters are checked; otherwise it must be an AWS region name,
// which catches an availability zone ("us-west-2a") or upper case.
Status CheckRegion(const std::string& name, const std::string& value, bool endpoint_override) {
  if (value.empty()) return Status::Ok();
  bool charset = value.size() <= 32 && value.front() != '-' && value.back() != '-' &&
                 std::all_of(value.begin(), value.end(), [](char c) {
                   return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
                 });
  if (!charset || (!endpoint_override && !IsAwsRegionName(value))) {
    return BadVariable(name, value, "expected an AWS region name such as us-west-2");
  }
  return Status::Ok();
}

// The openai: model's settings (see Config). The key: imagegen's own name first, so that a
// deployment can give imagegen a key other than the one its shell has for OpenAI.
Status ReadOpenAiEnvironment(const EnvReader& env, Config* config) {
  config->openai_api_key = env.First({"IMAGEGEN_OPENAI_API_KEY", "OPENAI_API_KEY"});
  config->openai_model = env("IMAGEGEN_OPENAI_MODEL");
  config->openai_sizes = env("IMAGEGEN_OPENAI_SIZES");
  if (auto v = Lower(env("IMAGEGEN_OPENAI_EXTRAS")); !v.empty()) {
    if (v != "auto" && v != "imagegen" && v != "sdcpp" && v != "off") {
      return BadVariable("IMAGEGEN_OPENAI_EXTRAS", v, "expected auto, imagegen, sdcpp or off");
    }
    config->openai_extras = v;
  }
  if (auto v = env("IMAGEGEN_OPENAI_MAX_N"); !v.empty()) {
    auto n = IntVariable("IMAGEGEN_OPENAI_MAX_N", v, 1, 10);
    if (!n.ok()) return n.error();
    config->openai_max_n = n.value();
  }
  if (auto v = env("IMAGEGEN_OPENAI_RETRY_BASE_MS"); !v.empty()) {
    auto ms = IntVariable("IMAGEGEN_OPENAI_RETRY_BASE_MS", v, 1, 60'000);
    if (!ms.ok()) return ms.error();
    config->openai_retry_base_ms = ms.value();
  }
  return Status::Ok();
}

Result<std::unique_ptr<ImageModel>> MakeOpenAiFromConfig(const std::string& spec,
                                                         const Config& config) {
  OpenAiModelOptions options;
  options.api_key = config.openai_api_key;
  options.model = config.openai_model;
  if (!config.openai_sizes.empty()) {
    auto sizes = ParseSizeList(config.openai_sizes, "openai_sizes");
    if (!sizes.ok()) return sizes.error();
    options.sizes = sizes.value();
  }
  options.max_count = config.openai_max_n;
  if (config.openai_extras == "imagegen") options.extras = OpenAiExtras::kTopLevel;
  if (config.openai_extras == "sdcpp") options.extras = OpenAiExtras::kSdCpp;
  if (config.openai_extras == "off") options.extras = OpenAiExtras::kOff;
  options.retry_base_ms = config.openai_retry_base_ms;
  return MakeOpenAiModel(spec, options);
}

}  // namespace

Result<Config> ParseConfigEnv(const aws::EnvLookup& lookup) {
  EnvReader env(lookup);
  Config config;
  if (auto store = env("IMAGEGEN_STORE"); !store.empty()) {
    config.store = store;
  } else if (auto bucket = env("BUCKET_NAME"); !bucket.empty()) {
    config.store = "s3://" + bucket;
  } else if (auto fallback = env("IMAGEGEN_DEFAULT_STORE"); !fallback.empty()) {
    config.store = fallback;
  }
  config.s3_endpoint = env("AWS_ENDPOINT_URL_S3");
  bool s3_override = !config.s3_endpoint.empty() || !env("AWS_ENDPOINT_URL").empty();
  bool bedrock_override =
      !env("AWS_ENDPOINT_URL_BEDROCK_RUNTIME").empty() || !env("AWS_ENDPOINT_URL").empty();
  for (const char* name : {"AWS_REGION", "AWS_DEFAULT_REGION"}) {
    if (Status s = CheckRegion(name, env(name), s3_override || bedrock_override); !s) {
      return s.error();
    }
  }
  config.s3_region = env("IMAGEGEN_S3_REGION");
  if (Status s = CheckRegion("IMAGEGEN_S3_REGION", config.s3_region, s3_override); !s) {
    return s.error();
  }
  config.bedrock_region = env("IMAGEGEN_BEDROCK_REGION");
  if (Status s = CheckRegion("IMAGEGEN_BEDROCK_REGION", config.bedrock_region, bedrock_override);
      !s) {
    return s.error();
  }
  if (auto v = env("IMAGEGEN_S3_PATH_STYLE"); !v.empty()) {
    auto flag = BoolVariable("IMAGEGEN_S3_PATH_STYLE", v);
    if (!flag.ok()) return flag.error();
    config.s3_path_style = flag.value();
  }
  config.key_prefix = env.First({"IMAGEGEN_KEY_PREFIX", "KEY_PREFIX"});
  if (auto v = env("IMAGEGEN_MODEL"); !v.empty()) {
    config.model = v;
  } else if (auto id = env("MODEL_ID"); !id.empty()) {
    config.model = "bedrock:" + id;
  }
  if (auto v = env("IMAGEGEN_BEDROCK_RETRY_BASE_MS"); !v.empty()) {
    auto ms = IntVariable("IMAGEGEN_BEDROCK_RETRY_BASE_MS", v, 1, 60'000);
    if (!ms.ok()) return ms.error();
    config.bedrock_retry_base_ms = ms.value();
  }
  if (auto queue = env.First({"IMAGEGEN_QUEUE", "SQS_QUEUE_URL", "IMAGEGEN_DEFAULT_QUEUE"});
      !queue.empty()) {
    config.queue = queue;
  }
  if (auto v = env("IMAGEGEN_THREADS"); !v.empty()) {
    auto threads = IntVariable("IMAGEGEN_THREADS", v, 0, 256);
    if (!threads.ok()) return threads.error();
    config.threads = threads.value();
  }
  if (auto v = env("IMAGEGEN_PRECISION"); !v.empty()) {
    if (v != "f32" && v != "bf16") {
      return Error::Invalid("IMAGEGEN_PRECISION",
                            "IMAGEGEN_PRECISION=\"" + v + "\" is not valid: f32 or bf16");
    }
    config.precision = v;
  }
  if (auto v = env("IMAGEGEN_LORA_DIR"); !v.empty()) config.lora_dir = v;
  struct IntSetting {
    const char* name;
    int lo, hi;
    int* field;
  };
  int retention_s = static_cast<int>(config.job_retention_s);
  for (const IntSetting& setting : {
           IntSetting{"IMAGEGEN_JOB_RETENTION", 1, 10 * 365 * 86400, &retention_s},
           IntSetting{"IMAGEGEN_SERVE_WORKERS", 0, 256, &config.serve_workers},
           IntSetting{"IMAGEGEN_EVENTS_MAX_STREAMS", 1, 10'000, &config.events_max_streams},
           IntSetting{"IMAGEGEN_EVENTS_MAX_STREAM_S", 1, 86'400, &config.events_max_stream_s},
           IntSetting{"IMAGEGEN_EVENTS_HEARTBEAT_S", 1, 3600, &config.events_heartbeat_s},
           IntSetting{"IMAGEGEN_DEADLINE_MARGIN_MS", 0, 60'000, &config.lambda_deadline_margin_ms},
           IntSetting{"IMAGEGEN_API_GATEWAY_TIMEOUT_MS", 0, 900'000,
                      &config.lambda_api_gateway_timeout_ms},
           IntSetting{"IMAGEGEN_MAX_ATTEMPTS", 1, 1000, &config.max_attempts},
           IntSetting{"IMAGEGEN_RATE_BURST", 0, 1'000'000, &config.rate_limit_burst},
           IntSetting{"IMAGEGEN_MAX_JOBS_PER_KEY", 0, 1'000'000, &config.max_jobs_per_key},
           IntSetting{"IMAGEGEN_WEBHOOK_RETRY_BASE_MS", 1, 3'600'000,
                      &config.webhook_retry_base_ms},
           IntSetting{"IMAGEGEN_WEBHOOK_MAX_ATTEMPTS", 1, 1000, &config.webhook_max_attempts},
           IntSetting{"IMAGEGEN_WEBHOOK_MAX_AGE", 1, 30 * 86400, &config.webhook_max_age_s},
       }) {
    if (auto v = env(setting.name); !v.empty()) {
      auto parsed = IntVariable(setting.name, v, setting.lo, setting.hi);
      if (!parsed.ok()) return parsed.error();
      *setting.field = parsed.value();
    }
  }
  config.job_retention_s = retention_s;
  config.model_dir = env("IMAGEGEN_MODEL_DIR");
  if (Status s = ReadOpenAiEnvironment(env, &config); !s) return s.error();
  ReadLambdaEnvironment(env, &config);
  config.api_keys = env("IMAGEGEN_API_KEYS");
  config.api_keys_file = env("IMAGEGEN_API_KEYS_FILE");
  config.cors_origins = SplitList(env("IMAGEGEN_CORS_ORIGINS"));
  if (auto v = env("IMAGEGEN_RATE_LIMIT"); !v.empty()) {
    auto rate = NumberVariable("IMAGEGEN_RATE_LIMIT", v, 0, 1e6);
    if (!rate.ok()) return rate.error();
    config.rate_limit_per_s = rate.value();
  }
  config.webhook_secret = env("IMAGEGEN_WEBHOOK_SECRET");
  config.webhook_allow = env("IMAGEGEN_WEBHOOK_ALLOW");
  if (auto v = env("IMAGEGEN_PRESIGN_EXPIRY"); !v.empty()) {
    // SigV4 presigned URLs live at most 7 days.
    auto expiry = IntVariable("IMAGEGEN_PRESIGN_EXPIRY", v, 1, 604'800);
    if (!expiry.ok()) return expiry.error();
    config.presign_expiry_s = expiry.value();
  }
  return config;
}

Config ConfigFromEnv() {
  auto parsed = ParseConfigEnv(aws::ProcessEnv());
  if (parsed.ok()) return parsed.value();
  Config config;
  config.env_error = parsed.error();
  aws::EnvLookup lookup = aws::ProcessEnv();
  ReadLambdaEnvironment(EnvReader(lookup), &config);
  return config;
}

Result<std::string> NormalizeKeyPrefix(const std::string& prefix) {
  if (prefix.empty()) return std::string();
  std::string p = prefix.back() == '/' ? prefix : prefix + "/";
  if (auto s = CheckKey(p.substr(0, p.size() - 1)); !s) {
    return Error::Invalid("key_prefix",
                          "invalid key prefix \"" + prefix + "\": " + s.error().message);
  }
  return p;
}

std::vector<std::string> ModelProviders() {
  std::vector<std::string> providers;
#ifdef IMAGEGEN_HAS_ENGINE
  providers.push_back("bundled");
  providers.push_back("local");
  providers.push_back("sd:PATH");
#endif
  providers.push_back("bedrock");
  providers.push_back("openai");
#ifdef IMAGEGEN_WITH_TEST_MODEL
  providers.push_back("test");
#endif
  return providers;
}

#ifdef IMAGEGEN_HAS_ENGINE
namespace {
// The default: the shapes model (models/local, or IMAGEGEN_MODEL_DIR) and the emoji model
// (models/emoji-64) behind one router; a prompt goes to the one that knows more of its words,
// the shapes model on a tie (README, "Models").
Result<std::unique_ptr<ImageModel>> MakeBundledModel(const Config& config) {
  std::vector<std::unique_ptr<ImageModel>> members;
  auto shapes = MakeImageModel("local", config);
  if (!shapes.ok()) return shapes.error();
  members.push_back(std::move(shapes).value());
  auto emoji = LoadSdModel(BundledModelPath("emoji-64"), config.threads, config.precision, "");
  if (!emoji.ok()) return emoji.error();
  members.push_back(std::move(emoji).value());
  return MakeRoutedModel("bundled", std::move(members));
}
}  // namespace
#endif

// The one place a model is chosen: by the scheme of `spec`.
Result<std::unique_ptr<ImageModel>> MakeImageModel(const std::string& spec, const Config& config) {
  if (config.env_error) return *config.env_error;
  std::string scheme = SchemeOf(spec);
#ifdef IMAGEGEN_HAS_ENGINE
  if (spec == "bundled") return MakeBundledModel(config);
  if (scheme == "local") {
    std::string path = spec.size() > 6             ? spec.substr(6)
                       : !config.model_dir.empty() ? config.model_dir
                                                   : DefaultLocalModelPath();
    if (config.precision != "f32") {
      return Error::Invalid("precision", "precision " + config.precision +
                                             " is for sd: checkpoints; the local model is f32");
    }
    return LoadLocalModel(path, config.threads);
  }
  if (scheme == "sd") {
    if (spec.size() <= 3) {
      return Error::Invalid("model",
                            "sd needs a checkpoint: sd:PATH (a diffusers folder or a "
                            "single-file .safetensors)");
    }
    return LoadSdModel(spec.substr(3), config.threads, config.precision, config.lora_dir);
  }
#endif
  if (scheme == "bedrock") {
    BedrockOptions options;
    options.region = config.bedrock_region.empty() ? aws::ResolveRegion(aws::ProcessEnv())
                                                   : config.bedrock_region;
    options.retry_base_ms = config.bedrock_retry_base_ms;
    return MakeBedrockModel(spec, options);
  }
  if (scheme == "openai") return MakeOpenAiFromConfig(spec, config);
#ifdef IMAGEGEN_WITH_TEST_MODEL
  if (scheme == "test") return MakeTestModel(spec);
#endif
  std::string known;
  for (const auto& name : ModelProviders()) known += (known.empty() ? "" : ", ") + name;
  std::string hint = scheme == "local" || scheme == "bundled" || scheme == "sd"
                         ? " (this build has no embedded engine)"
                         : "";
  return Error::Invalid("model", "unknown model \"" + spec + "\"" + hint + "; available: " + known);
}

Result<std::unique_ptr<ObjectStore>> MakeObjectStore(const Config& config) {
  if (config.env_error) return *config.env_error;
  const std::string& url = config.store;
  if (url.rfind("file://", 0) == 0) return MakeFileStore(url.substr(7));
  if (url.rfind("s3://", 0) == 0) {
    S3Options options;
    options.endpoint = config.s3_endpoint;
    options.region = config.s3_region;
    options.force_path_style = config.s3_path_style;
    return MakeS3Store(url, options);
  }
  if (url.find("://") == std::string::npos) return MakeFileStore(url);  // a plain directory
  return Error::Invalid(
      "store", "unsupported store URL \"" + url + "\"; use file://DIR or s3://BUCKET/PREFIX");
}

Result<std::unique_ptr<JobQueue>> MakeJobQueue(const Config& config) {
  if (config.env_error) return *config.env_error;
  const std::string& url = config.queue;
  if (url.rfind("sqlite://", 0) == 0) {
    std::string path;
    SqliteQueueOptions options;
    if (auto s = ParseSqliteQueueUrl(url, &path, &options); !s) return s.error();
    return MakeSqliteQueue(path, options);
  }
  if (url.rfind("sqs://", 0) == 0 || url.rfind("https://", 0) == 0 ||
      url.rfind("http://", 0) == 0) {
    return MakeSqsQueue(url, SqsOptions{});
  }
  return Error::Invalid("queue", "unsupported queue URL \"" + url +
                                     "\"; use sqlite://PATH, sqs://NAME or an SQS queue URL");
}

}  // namespace imagegen
