#include "app/config.h"

#include <algorithm>
#include <charconv>
#include <map>
#include <mutex>

#include "aws/encoding.h"
#include "queue/sqlite_queue.h"
#include "queue/sqs_queue.h"
#include "store/file_store.h"
#include "store/object_store.h"
#include "store/s3_store.h"
#ifdef IMAGEGEN_WITH_TEST_MODEL
#include "model/testing/test_model.h"
#endif

namespace imagegen {
namespace {

std::mutex& ProvidersMutex() {
  static std::mutex mu;
  return mu;
}

std::map<std::string, ConfiguredModelFactory>& Providers() {
  static auto* providers = new std::map<std::string, ConfiguredModelFactory>();
  return *providers;
}

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
  // The first non-empty of `names`, and which one it was.
  std::pair<std::string, std::string> First(std::initializer_list<const char*> names) const {
    for (const char* name : names) {
      std::string value = (*this)(name);
      if (!value.empty()) return {name, value};
    }
    return {"", ""};
  }

 private:
  const aws::EnvLookup& env_;
};

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

Result<bool> BoolVariable(const std::string& name, const std::string& value) {
  std::string v = aws::ToLower(value);
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

// Tries again before each generation until the store's location is known; an error, once
// seen, is permanent (the configuration has to change).
class LocationCheckedModel final : public ImageModel {
 public:
  LocationCheckedModel(std::shared_ptr<ImageModel> model, std::shared_ptr<ObjectStore> store)
      : model_(std::move(model)), store_(std::move(store)) {}
  std::string Name() const override { return model_->Name(); }
  const ModelLimits& Limits() const override { return model_->Limits(); }
  Result<ModelOutput> Generate(const ValidRequest& request, const GenerateContext& ctx) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (error_) return *error_;
      if (!confirmed_) {
        auto checked = store_->CheckLocation();
        if (!checked.ok()) {
          error_ = checked.error();
          return *error_;
        }
        confirmed_ = checked.value();
      }
    }
    return model_->Generate(request, ctx);
  }

 private:
  std::shared_ptr<ImageModel> model_;
  std::shared_ptr<ObjectStore> store_;
  std::mutex mu_;
  bool confirmed_ = false;      // GUARDED_BY(mu_)
  std::optional<Error> error_;  // GUARDED_BY(mu_)
};

}  // namespace

Result<Config> ParseConfigEnv(const aws::EnvLookup& lookup) {
  EnvReader env(lookup);
  Config config;
  if (auto [name, value] = env.First({"IMAGEGEN_STORE"}); !value.empty()) {
    config.store = value;
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
  config.key_prefix = env.First({"IMAGEGEN_KEY_PREFIX", "KEY_PREFIX"}).second;
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
  if (auto [name, value] = env.First({"IMAGEGEN_QUEUE", "SQS_QUEUE_URL", "IMAGEGEN_DEFAULT_QUEUE"});
      !value.empty()) {
    config.queue = value;
  }
  if (auto v = env("IMAGEGEN_THREADS"); !v.empty()) {
    auto threads = IntVariable("IMAGEGEN_THREADS", v, 0, 256);
    if (!threads.ok()) return threads.error();
    config.threads = threads.value();
  }
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

void RegisterModelProvider(const std::string& scheme, ModelFactory factory) {
  RegisterConfiguredModelProvider(
      scheme, [factory = std::move(factory)](const std::string& spec, const Config& config) {
        return factory(spec, config.threads);
      });
}

void RegisterConfiguredModelProvider(const std::string& scheme, ConfiguredModelFactory factory) {
  std::lock_guard<std::mutex> lock(ProvidersMutex());
  Providers()[scheme] = std::move(factory);
}

Result<std::unique_ptr<ImageModel>> MakeImageModel(const std::string& spec, const Config& config) {
  if (config.env_error) return *config.env_error;
  std::string scheme = SchemeOf(spec);
#ifdef IMAGEGEN_WITH_TEST_MODEL
  if (scheme == "test") return MakeTestModel(spec);
#endif
  ConfiguredModelFactory factory;
  std::string known;
  {
    std::lock_guard<std::mutex> lock(ProvidersMutex());
    auto it = Providers().find(scheme);
    if (it != Providers().end()) factory = it->second;
    for (const auto& [name, unused] : Providers()) known += (known.empty() ? "" : ", ") + name;
  }
  if (!factory) {
    return Error::Invalid("model", "unknown model \"" + spec + "\"; available: " + known);
  }
  return factory(spec, config);
}

Result<std::unique_ptr<ImageModel>> MakeImageModel(const std::string& spec, int threads) {
  Config config = ConfigFromEnv();
  config.threads = threads;
  return MakeImageModel(spec, config);
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

Result<std::shared_ptr<Pipeline>> MakePipeline(const Config& config) {
  if (config.env_error) return *config.env_error;
  auto prefix = NormalizeKeyPrefix(config.key_prefix);
  if (!prefix.ok()) return prefix.error();
  auto made_store = MakeObjectStore(config);
  if (!made_store.ok()) return made_store.error();
  std::shared_ptr<ObjectStore> store = std::move(made_store.value());
  auto made_model = MakeImageModel(config.model, config);
  if (!made_model.ok()) return made_model.error();
  std::shared_ptr<ImageModel> model = std::move(made_model.value());
  // Before the first (paid) generation: a bucket in another region would only fail at Put,
  // after the model was paid for.
  auto location = store->CheckLocation();
  if (!location.ok()) return location.error();
  if (!location.value()) model = std::make_shared<LocationCheckedModel>(model, store);
  PipelineOptions options{prefix.value(), config.presign_expiry_s};
  return std::make_shared<Pipeline>(std::move(model), std::move(store), options);
}

}  // namespace imagegen
