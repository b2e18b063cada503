#include "aws/config.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace imagegen::aws {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    path_ = fs::temp_directory_path() /
            ("aws_config_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter_++));
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string Write(const std::string& name, const std::string& text) {
    fs::path p = path_ / name;
    fs::create_directories(p.parent_path());
    std::ofstream(p) << text;
    return p.string();
  }
  std::string path() const { return path_.string(); }

 private:
  static inline int counter_ = 0;
  fs::path path_;
};

TEST(Ini, ParsesSectionsCommentsAndNestedKeys) {
  auto ini = ParseIni(
      "# comment\n[default]\nregion = eu-west-1 ; trailing\naws_secret_access_key = a#b\n"
      "s3 =\n  addressing_style = path\n\n[profile dev]\r\nRegion=us-west-2\r\n");
  EXPECT_EQ(ini["default"]["region"], "eu-west-1");
  EXPECT_EQ(ini["default"]["aws_secret_access_key"], "a#b");
  EXPECT_EQ(ini["default"]["s3.addressing_style"], "path");
  EXPECT_EQ(ini["profile dev"]["region"], "us-west-2");
}

TEST(Profile, MergesConfigAndCredentialsFiles) {
  TempDir dir;
  std::string config = dir.Write("config",
                                 "[default]\nregion = eu-west-1\n[profile dev]\nregion = "
                                 "ap-south-1\naws_access_key_id = FROMCONFIG\n");
  std::string creds = dir.Write("credentials",
                                "[default]\naws_access_key_id = D\n[dev]\naws_access_key_id = "
                                "DEVKEY\naws_secret_access_key = DEVSECRET\n");
  auto env = MapEnv({{"AWS_CONFIG_FILE", config},
                     {"AWS_SHARED_CREDENTIALS_FILE", creds},
                     {"AWS_PROFILE", "dev"}});
  Profile p = LoadProfile(env);
  EXPECT_EQ(p.name, "dev");
  EXPECT_EQ(p.Get("region"), "ap-south-1");
  EXPECT_EQ(p.Get("aws_access_key_id"), "DEVKEY");  // the credentials file wins
  EXPECT_EQ(p.Get("aws_secret_access_key"), "DEVSECRET");
  EXPECT_EQ(ResolveRegion(env), "ap-south-1");
}

TEST(Profile, HomeDefaultsAndMissingFiles) {
  TempDir dir;
  dir.Write(".aws/config", "[default]\nregion = sa-east-1\n");
  EXPECT_EQ(ResolveRegion(MapEnv({{"HOME", dir.path()}})), "sa-east-1");
  EXPECT_EQ(ResolveRegion(MapEnv({{"HOME", dir.path() + "/nowhere"}})), "");
  EXPECT_EQ(ResolveRegion(MapEnv({})), "");
}

TEST(Region, EnvironmentOrder) {
  EXPECT_EQ(ResolveRegion(MapEnv({{"AWS_REGION", "a"}, {"AWS_DEFAULT_REGION", "b"}})), "a");
  EXPECT_EQ(ResolveRegion(MapEnv({{"AWS_REGION", ""}, {"AWS_DEFAULT_REGION", "b"}})), "b");
}

TEST(Endpoint, Resolution) {
  auto none = MapEnv({});
  EXPECT_EQ(*ResolveEndpoint(S3Service(), "eu-west-1", "", none),
            "https://s3.eu-west-1.amazonaws.com");
  EXPECT_EQ(*ResolveEndpoint(BedrockRuntimeService(), "us-east-1", "", none),
            "https://bedrock-runtime.us-east-1.amazonaws.com");
  EXPECT_EQ(*ResolveEndpoint(SqsService(), "cn-north-1", "", none),
            "https://sqs.cn-north-1.amazonaws.com.cn");
  EXPECT_EQ(ResolveEndpoint(SqsService(), "", "", none).error().code, ErrorCode::kInvalidRequest);

  auto env = MapEnv({{"AWS_ENDPOINT_URL", "http://127.0.0.1:5000/"},
                     {"AWS_ENDPOINT_URL_BEDROCK_RUNTIME", "http://localhost:9/base/"}});
  EXPECT_EQ(*ResolveEndpoint(S3Service(), "", "", env), "http://127.0.0.1:5000");
  EXPECT_EQ(*ResolveEndpoint(BedrockRuntimeService(), "", "", env), "http://localhost:9/base");
  EXPECT_EQ(*ResolveEndpoint(S3Service(), "", "https://explicit", env), "https://explicit");
  EXPECT_TRUE(HasEndpointOverride(S3Service(), "", env));
  EXPECT_FALSE(HasEndpointOverride(S3Service(), "", none));

  auto ignored = MapEnv({{"AWS_ENDPOINT_URL", "http://127.0.0.1:5000"},
                         {"AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true"}});
  EXPECT_EQ(*ResolveEndpoint(S3Service(), "us-east-1", "", ignored),
            "https://s3.us-east-1.amazonaws.com");
  EXPECT_FALSE(ResolveEndpoint(S3Service(), "", "ftp://x", none).ok());
}

TEST(Url, Split) {
  auto p = SplitUrl("HTTP://Host:80/a/b/?q#f");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->scheme, "http");
  EXPECT_EQ(p->authority, "Host:80");
  EXPECT_EQ(p->path, "/a/b");
  EXPECT_FALSE(SplitUrl("http://").ok());
}

}  // namespace
}  // namespace imagegen::aws
