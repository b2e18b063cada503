#include "app/config.h"

#include <cstdlib>
#include <map>
#include <mutex>

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

std::string Env(const char* name) {
  const char* value = std::getenv(name);
  return value == nullptr ? "" : value;
}

std::mutex& ProvidersMutex() {
  static std::mutex mu;
  return mu;
}

std::map<std::string, ModelFactory>& Providers() {
  static auto* providers = new std::map<std::string, ModelFactory>();
  return *providers;
}

std::string SchemeOf(const std::string& spec) {
  size_t end = spec.find_first_of(":?");
  return end == std::string::npos ? spec : spec.substr(0, end);
}

}  // namespace

Config ConfigFromEnv() {
  Config config;
  if (!Env("IMAGEGEN_STORE").empty()) {
    config.store = Env("IMAGEGEN_STORE");
  } else if (!Env("BUCKET_NAME").empty()) {
    config.store = "s3://" + Env("BUCKET_NAME");
  }
  config.s3_endpoint = Env("AWS_ENDPOINT_URL_S3");
  config.s3_path_style =
      Env("IMAGEGEN_S3_PATH_STYLE") == "1" || Env("IMAGEGEN_S3_PATH_STYLE") == "true";
  config.key_prefix =
      !Env("IMAGEGEN_KEY_PREFIX").empty() ? Env("IMAGEGEN_KEY_PREFIX") : Env("KEY_PREFIX");
  if (!Env("IMAGEGEN_MODEL").empty()) {
    config.model = Env("IMAGEGEN_MODEL");
  } else if (!Env("MODEL_ID").empty()) {
    config.model = "bedrock:" + Env("MODEL_ID");
  }
  if (!Env("IMAGEGEN_QUEUE").empty()) {
    config.queue = Env("IMAGEGEN_QUEUE");
  } else if (!Env("SQS_QUEUE_URL").empty()) {
    config.queue = Env("SQS_QUEUE_URL");
  }
  if (!Env("IMAGEGEN_THREADS").empty()) config.threads = std::atoi(Env("IMAGEGEN_THREADS").c_str());
  if (!Env("IMAGEGEN_PRESIGN_EXPIRY").empty()) {
    config.presign_expiry_s = std::atoi(Env("IMAGEGEN_PRESIGN_EXPIRY").c_str());
  }
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
  std::lock_guard<std::mutex> lock(ProvidersMutex());
  Providers()[scheme] = std::move(factory);
}

Result<std::unique_ptr<ImageModel>> MakeImageModel(const std::string& spec, int threads) {
  std::string scheme = SchemeOf(spec);
#ifdef IMAGEGEN_WITH_TEST_MODEL
  if (scheme == "test") return MakeTestModel(spec);
#endif
  ModelFactory factory;
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
  return factory(spec, threads);
}

Result<std::unique_ptr<ObjectStore>> MakeObjectStore(const Config& config) {
  const std::string& url = config.store;
  if (url.rfind("file://", 0) == 0) return MakeFileStore(url.substr(7));
  if (url.rfind("s3://", 0) == 0) {
    S3Options options;
    options.endpoint = config.s3_endpoint;
    options.force_path_style = config.s3_path_style;
    return MakeS3Store(url, options);
  }
  if (url.find("://") == std::string::npos) return MakeFileStore(url);  // a plain directory
  return Error::Invalid(
      "store", "unsupported store URL \"" + url + "\"; use file://DIR or s3://BUCKET/PREFIX");
}

Result<std::unique_ptr<JobQueue>> MakeJobQueue(const Config& config) {
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
  auto prefix = NormalizeKeyPrefix(config.key_prefix);
  if (!prefix.ok()) return prefix.error();
  auto store = MakeObjectStore(config);
  if (!store.ok()) return store.error();
  auto model = MakeImageModel(config.model, config.threads);
  if (!model.ok()) return model.error();
  PipelineOptions options{prefix.value(), config.presign_expiry_s};
  return std::make_shared<Pipeline>(std::move(model.value()), std::move(store.value()), options);
}

}  // namespace imagegen
