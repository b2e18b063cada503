#include "app/config.h"

#include <gtest/gtest.h>

#include <map>

#include "app/services.h"

namespace imagegen {
namespace {

Result<Config> Parse(std::map<std::string, std::string> vars) {
  return ParseConfigEnv(aws::MapEnv(std::move(vars)));
}

TEST(ConfigFromEnv, DefaultsWithAnEmptyEnvironment) {
  auto config = Parse({});
  ASSERT_TRUE(config.ok());
  EXPECT_EQ(config->store, "file://./data/images");
  EXPECT_EQ(config->queue, "sqlite://./data/queue.db");
  EXPECT_EQ(config->model, "bundled");
  EXPECT_EQ(config->s3_region, "");
  EXPECT_EQ(config->bedrock_region, "");
}

// The container image bakes IMAGEGEN_DEFAULT_*; what a deployment passes (SQS_QUEUE_URL,
// BUCKET_NAME) must win, or `submit` would write the job into a local file and exit 0.
TEST(ConfigFromEnv, DeploymentNamesWinOverBakedDefaults) {
  auto config = Parse({{"IMAGEGEN_DEFAULT_QUEUE", "sqlite:///var/lib/imagegen/data/queue.db"},
                       {"IMAGEGEN_DEFAULT_STORE", "file:///var/lib/imagegen/data/images"},
                       {"SQS_QUEUE_URL", "https://sqs.us-east-1.amazonaws.com/1/jobs"},
                       {"BUCKET_NAME", "my-bucket"}});
  ASSERT_TRUE(config.ok());
  EXPECT_EQ(config->queue, "https://sqs.us-east-1.amazonaws.com/1/jobs");
  EXPECT_EQ(config->store, "s3://my-bucket");
  auto baked = Parse(
      {{"IMAGEGEN_DEFAULT_QUEUE", "sqlite:///q.db"}, {"IMAGEGEN_DEFAULT_STORE", "file:///images"}});
  ASSERT_TRUE(baked.ok());
  EXPECT_EQ(baked->queue, "sqlite:///q.db");
  EXPECT_EQ(baked->store, "file:///images");
}

TEST(ConfigFromEnv, ImagegenNamesWinOverDeploymentNames) {
  auto config = Parse({{"IMAGEGEN_QUEUE", "sqs://explicit"},
                       {"SQS_QUEUE_URL", "https://sqs.us-east-1.amazonaws.com/1/jobs"},
                       {"IMAGEGEN_STORE", "s3://explicit/p"},
                       {"BUCKET_NAME", "my-bucket"},
                       {"IMAGEGEN_MODEL", "test"},
                       {"MODEL_ID", "amazon.nova-canvas-v1:0"}});
  ASSERT_TRUE(config.ok());
  EXPECT_EQ(config->queue, "sqs://explicit");
  EXPECT_EQ(config->store, "s3://explicit/p");
  EXPECT_EQ(config->model, "test");
  EXPECT_EQ(Parse({{"MODEL_ID", "amazon.nova-canvas-v1:0"}})->model,
            "bedrock:amazon.nova-canvas-v1:0");
}

TEST(ConfigFromEnv, TheOpenAiProvidersSettings) {
  auto defaults = Parse({{"OPENAI_API_KEY", "sk-shell"}});
  ASSERT_TRUE(defaults.ok());
  EXPECT_EQ(defaults->openai_api_key, "sk-shell");
  EXPECT_EQ(defaults->openai_extras, "auto");
  EXPECT_EQ(defaults->openai_max_n, 4);
  auto config = Parse({{"OPENAI_API_KEY", "sk-shell"},
                       {"IMAGEGEN_OPENAI_API_KEY", "sk-imagegen"},
                       {"IMAGEGEN_OPENAI_MODEL", "gpt-image-1"},
                       {"IMAGEGEN_OPENAI_SIZES", "64x64,128x128"},
                       {"IMAGEGEN_OPENAI_MAX_N", "2"},
                       {"IMAGEGEN_OPENAI_EXTRAS", "SdCpp"},
                       {"IMAGEGEN_OPENAI_RETRY_BASE_MS", "10"}});
  ASSERT_TRUE(config.ok()) << config.error().message;
  EXPECT_EQ(config->openai_api_key, "sk-imagegen");  // imagegen's own name wins
  EXPECT_EQ(config->openai_extras, "sdcpp");
  EXPECT_EQ(config->openai_retry_base_ms, 10);
  auto model = MakeImageModel("openai:http://127.0.0.1:1", config.value());
  ASSERT_TRUE(model.ok()) << model.error().message;
  EXPECT_EQ(model.value()->Name(), "openai:http://127.0.0.1:1#gpt-image-1");
  EXPECT_EQ(model.value()->Limits().sizes.size(), 2u);
  EXPECT_EQ(model.value()->Limits().max_count, 2);
  for (const auto& [name, value] : std::map<std::string, std::string>{
           {"IMAGEGEN_OPENAI_EXTRAS", "maybe"}, {"IMAGEGEN_OPENAI_MAX_N", "11"}}) {
    auto bad = Parse({{name, value}});
    ASSERT_FALSE(bad.ok()) << name;
    EXPECT_EQ(bad.error().field, name);
  }
  Config sizes = config.value();
  sizes.openai_sizes = "64";
  EXPECT_EQ(MakeImageModel("openai:http://127.0.0.1:1", sizes).error().code,
            ErrorCode::kInvalidRequest);
}

TEST(ConfigFromEnv, SeparateRegionsForTheBucketAndBedrock) {
  auto config = Parse({{"AWS_REGION", "eu-west-1"},
                       {"IMAGEGEN_S3_REGION", "eu-west-1"},
                       {"IMAGEGEN_BEDROCK_REGION", "us-west-2"}});
  ASSERT_TRUE(config.ok());
  EXPECT_EQ(config->s3_region, "eu-west-1");
  EXPECT_EQ(config->bedrock_region, "us-west-2");
  EXPECT_TRUE(Parse({{"IMAGEGEN_BEDROCK_REGION", "us-gov-west-1"}}).ok());
}

TEST(ConfigFromEnv, BadValuesNameTheVariable) {
  struct Case {
    const char* name;
    const char* value;
  };
  for (const Case& c :
       {Case{"IMAGEGEN_BEDROCK_REGION", "us-west-2a"}, Case{"IMAGEGEN_BEDROCK_REGION", "US-WEST-2"},
        Case{"IMAGEGEN_S3_REGION", "eu west 1"}, Case{"AWS_REGION", "oregon"},
        Case{"IMAGEGEN_THREADS", "four"}, Case{"IMAGEGEN_THREADS", "-1"},
        Case{"IMAGEGEN_THREADS", "8x"}, Case{"IMAGEGEN_PRESIGN_EXPIRY", "0"},
        Case{"IMAGEGEN_PRESIGN_EXPIRY", "999999999999"}, Case{"IMAGEGEN_S3_PATH_STYLE", "maybe"},
        Case{"IMAGEGEN_BEDROCK_RETRY_BASE_MS", "0"}, Case{"IMAGEGEN_PRECISION", "fp16"},
        Case{"IMAGEGEN_PRECISION", "BF16"}}) {
    auto config = Parse({{c.name, c.value}});
    ASSERT_FALSE(config.ok()) << c.name << "=" << c.value;
    EXPECT_EQ(config.error().code, ErrorCode::kInvalidRequest);
    EXPECT_EQ(config.error().field, c.name);
    EXPECT_NE(config.error().message.find(c.name), std::string::npos) << config.error().message;
    EXPECT_NE(config.error().message.find(c.value), std::string::npos) << config.error().message;
  }
}

TEST(ConfigFromEnv, LocalEndpointsMayUseTheirOwnRegionNames) {
  EXPECT_FALSE(Parse({{"IMAGEGEN_S3_REGION", "auto"}}).ok());
  EXPECT_TRUE(
      Parse({{"IMAGEGEN_S3_REGION", "auto"}, {"AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9"}}).ok());
}

TEST(ConfigFromEnv, TypedValues) {
  auto config = Parse({{"IMAGEGEN_THREADS", "3"},
                       {"IMAGEGEN_PRECISION", "bf16"},
                       {"IMAGEGEN_PRESIGN_EXPIRY", "60"},
                       {"IMAGEGEN_S3_PATH_STYLE", "true"},
                       {"IMAGEGEN_BEDROCK_RETRY_BASE_MS", "50"},
                       {"KEY_PREFIX", "candidate-42"}});
  ASSERT_TRUE(config.ok());
  EXPECT_EQ(config->threads, 3);
  EXPECT_EQ(config->precision, "bf16");
  EXPECT_EQ(config->presign_expiry_s, 60);
  EXPECT_TRUE(config->s3_path_style);
  EXPECT_EQ(config->bedrock_retry_base_ms, 50);
  EXPECT_EQ(config->key_prefix, "candidate-42");
  EXPECT_FALSE(Parse({{"IMAGEGEN_S3_PATH_STYLE", "0"}})->s3_path_style);
}

TEST(ConfigFromEnv, AnEnvironmentErrorStopsEveryFactory) {
  Config config;
  config.env_error = Error::Invalid("IMAGEGEN_THREADS", "IMAGEGEN_THREADS=\"x\" is not valid");
  auto services = BuildServices(config);
  ASSERT_FALSE(services.ok());
  EXPECT_EQ(services.error().field, "IMAGEGEN_THREADS");
  EXPECT_FALSE(MakeJobQueue(config).ok());
  EXPECT_FALSE(MakeObjectStore(config).ok());
}

}  // namespace
}  // namespace imagegen

namespace imagegen {
namespace {

TEST(ConfigFromEnv, ABadVariableStillLeavesTheLambdaRuntimeToReportIt) {
  ::setenv("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001", 1);
  ::setenv("IMAGEGEN_THREADS", "many", 1);
  Config config = ConfigFromEnv();
  ::unsetenv("IMAGEGEN_THREADS");
  ::unsetenv("AWS_LAMBDA_RUNTIME_API");
  ASSERT_TRUE(config.env_error.has_value());
  EXPECT_EQ(config.env_error->field, "IMAGEGEN_THREADS");
  EXPECT_EQ(config.lambda_runtime_api, "127.0.0.1:9001");
}

}  // namespace
}  // namespace imagegen
