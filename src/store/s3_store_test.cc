#include "store/s3_store.h"

#include <gtest/gtest.h>

#include "aws/encoding.h"
#include "aws/fake_transport.h"

namespace imagegen {
namespace {

using aws::FakeTransport;

struct S3Harness {
  std::shared_ptr<FakeTransport> transport = std::make_shared<FakeTransport>();
  std::unique_ptr<ObjectStore> store;

  S3Harness(const std::string& url, S3Options options,
            std::map<std::string, std::string> env = {}) {
    aws::ClientOptions o;
    o.env = aws::MapEnv(std::move(env));
    o.transport = transport;
    o.credentials = aws::MakeStaticCredentials({{"AKID", "SECRET", ""}, 0, "test"});
    o.sleep_ms = [](int64_t) {};
    o.now_s = [] { return int64_t{1440938160}; };
    auto s = MakeS3Store(url, options, std::move(o));
    EXPECT_TRUE(s.ok()) << (s.ok() ? "" : s.error().message);
    if (s.ok()) store = std::move(s).value();
  }
};

TEST(S3Store, VirtualHostStyleOnAwsAndPathStyleWithEndpoint) {
  S3Harness aws("s3://my-bucket/images/", {.endpoint = "", .region = "eu-west-1"});
  EXPECT_EQ(*aws.store->ObjectUrl("a b+c.png"),
            "https://my-bucket.s3.eu-west-1.amazonaws.com/images/a%20b%2Bc.png");
  EXPECT_EQ(aws.store->Uri("x/y.png"), "s3://my-bucket/images/x/y.png");

  S3Harness local("s3://my-bucket/images", {.endpoint = "http://127.0.0.1:9000", .region = ""});
  EXPECT_EQ(*local.store->ObjectUrl("k.png"), "http://127.0.0.1:9000/my-bucket/images/k.png");

  S3Harness env("s3://my-bucket", {}, {{"AWS_ENDPOINT_URL_S3", "http://localhost:5000"}});
  EXPECT_EQ(*env.store->ObjectUrl("k"), "http://localhost:5000/my-bucket/k");

  S3Harness dotted("s3://my.bucket/p", {.endpoint = "", .region = "us-east-1"});
  EXPECT_EQ(*dotted.store->ObjectUrl("k"), "https://s3.us-east-1.amazonaws.com/my.bucket/p/k");

  S3Harness forced("s3://bucket",
                   {.endpoint = "", .region = "us-west-2", .force_path_style = true});
  EXPECT_EQ(*forced.store->ObjectUrl("k"), "https://s3.us-west-2.amazonaws.com/bucket/k");
}

TEST(S3Store, PutSendsTypeMd5AndEncodedMetadata) {
  S3Harness h("s3://bucket/pre", {.endpoint = "http://127.0.0.1:9000", .region = "us-east-1"});
  h.transport->Push(200, "", {{"etag", "\"abc\""}});
  Status s = h.store->Put("dir/ü +~%.png", "PNGDATA", "image/png",
                          {{"prompt", "a red cat  with ünïcode"}, {"seed", "42"}});
  ASSERT_TRUE(s.ok()) << s.error().message;
  const auto& req = h.transport->requests.at(0);
  EXPECT_EQ(req.method, "PUT");
  EXPECT_EQ(req.url, "http://127.0.0.1:9000/bucket/pre/dir/%C3%BC%20%2B~%25.png");
  EXPECT_EQ(req.body, "PNGDATA");
  EXPECT_EQ(FakeTransport::HeaderOf(req, "content-type"), "image/png");
  EXPECT_EQ(FakeTransport::HeaderOf(req, "content-md5"), aws::Base64Encode(aws::Md5("PNGDATA")));
  EXPECT_EQ(FakeTransport::HeaderOf(req, "x-amz-meta-seed"), "42");
  EXPECT_EQ(FakeTransport::HeaderOf(req, "x-amz-meta-prompt"),
            "=?UTF-8?B?" + aws::Base64Encode("a red cat  with ünïcode") + "?=");
  EXPECT_EQ(FakeTransport::HeaderOf(req, "x-amz-content-sha256"), aws::Sha256Hex("PNGDATA"));
}

TEST(S3Store, GetAndHeadDecodeHeaders) {
  S3Harness h("s3://bucket", {.endpoint = "http://127.0.0.1:9000", .region = ""});
  aws::HeaderList headers = {{"content-type", "image/png"},
                             {"content-length", "4"},
                             {"etag", "\"e1\""},
                             {"last-modified", "Sun, 30 Aug 2015 12:36:00 GMT"},
                             {"x-amz-meta-prompt", "=?UTF-8?B?" + aws::Base64Encode("ünï") + "?="},
                             {"x-amz-meta-seed", "7"}};
  h.transport->Push(200, "DATA", headers);
  ObjectInfo info;
  auto data = h.store->Get("k.png", &info);
  ASSERT_TRUE(data.ok());
  EXPECT_EQ(*data, "DATA");
  EXPECT_EQ(info.size, 4u);
  EXPECT_EQ(info.etag, "\"e1\"");
  EXPECT_EQ(info.content_type, "image/png");
  EXPECT_EQ(info.modified_ms, 1440938160000);
  EXPECT_EQ(info.metadata["prompt"], "ünï");
  EXPECT_EQ(info.metadata["seed"], "7");

  h.transport->Push(200, "", headers);
  auto head = h.store->Head("k.png");
  ASSERT_TRUE(head.ok());
  EXPECT_EQ(h.transport->requests.back().method, "HEAD");
  EXPECT_EQ(head->size, 4u);
  EXPECT_EQ(head->metadata["prompt"], "ünï");
}

TEST(S3Store, MissingObjectIsNotFoundAndBadKeysAreRejected) {
  S3Harness h("s3://bucket", {.endpoint = "http://127.0.0.1:9000", .region = ""});
  h.transport->Push(404, "<Error><Code>NoSuchKey</Code><Message>nope</Message></Error>");
  auto r = h.store->Get("missing.png", nullptr);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kNotFound);
  EXPECT_NE(r.error().message.find("s3://bucket/missing.png"), std::string::npos);
  h.transport->Push(404, "");  // HEAD has no body
  EXPECT_EQ(h.store->Head("missing.png").error().code, ErrorCode::kNotFound);
  EXPECT_EQ(h.store->Get("../escape", nullptr).error().code, ErrorCode::kInvalidRequest);
  EXPECT_EQ(h.transport->requests.size(), 2u);
}

TEST(S3Store, ListDecodesUrlEncodedKeysAndPaginates) {
  S3Harness h("s3://bucket/pre", {.endpoint = "http://127.0.0.1:9000", .region = ""});
  h.transport->Push(
      200,
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?><ListBucketResult><Name>bucket</Name>"
      "<EncodingType>url</EncodingType><IsTruncated>true</IsTruncated>"
      "<Contents><Key>pre/b%2Bc+d.png</Key><Size>10</Size><ETag>&quot;x&quot;</ETag>"
      "<LastModified>2015-08-30T12:36:00.000Z</LastModified></Contents>"
      "<Contents><Key>pre/a%C3%BC.png</Key><Size>3</Size></Contents>"
      "<NextContinuationToken>tok/1=</NextContinuationToken></ListBucketResult>");
  auto page = h.store->List("", 2, "");
  ASSERT_TRUE(page.ok()) << page.error().message;
  ASSERT_EQ(page->objects.size(), 2u);
  EXPECT_EQ(page->objects[0].key, "aü.png");
  EXPECT_EQ(page->objects[1].key, "b+c d.png");
  EXPECT_EQ(page->objects[1].size, 10u);
  EXPECT_EQ(page->objects[1].etag, "\"x\"");
  EXPECT_EQ(page->objects[1].modified_ms, 1440938160000);
  EXPECT_EQ(page->next_cursor, "b+c d.png");  // keys are the cursors (start-after)
  EXPECT_EQ(h.transport->requests[0].url,
            "http://127.0.0.1:9000/bucket?encoding-type=url&list-type=2&max-keys=2&prefix=pre%2F");

  h.transport->Push(200, "<ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult>");
  page = h.store->List("sub/", 0, "sub/b+c d.png");
  ASSERT_TRUE(page.ok());
  EXPECT_TRUE(page->objects.empty());
  EXPECT_EQ(page->next_cursor, "");
  EXPECT_EQ(h.transport->requests[1].url,
            "http://127.0.0.1:9000/"
            "bucket?encoding-type=url&list-type=2&max-keys=1000&prefix=pre%2Fsub%2F&"
            "start-after=pre%2Fsub%2Fb%2Bc%20d.png");
}

TEST(S3Store, PresignedGet) {
  S3Harness h("s3://my-bucket/p", {.endpoint = "", .region = "us-east-1"});
  auto url = h.store->PresignGet("a b.png", 900);
  ASSERT_TRUE(url.has_value());
  EXPECT_TRUE(
      url->starts_with("https://my-bucket.s3.us-east-1.amazonaws.com/p/a%20b.png?X-Amz-Algorithm="))
      << *url;
  EXPECT_NE(url->find("X-Amz-Expires=900"), std::string::npos);
  EXPECT_NE(url->find("X-Amz-SignedHeaders=host&X-Amz-Signature="), std::string::npos);
}

TEST(S3Store, FactoryRejectsBadUrls) {
  EXPECT_FALSE(MakeS3Store("file:///x", {}).ok());
  EXPECT_FALSE(MakeS3Store("s3://", {}).ok());
  EXPECT_FALSE(MakeS3Store("s3://bucket/../x", {.endpoint = "http://h", .region = "r"}).ok());
}

}  // namespace
}  // namespace imagegen

namespace imagegen {
namespace {

// The bucket lives in us-west-2 but the store was configured for eu-west-1: S3 answers a
// HeadBucket elsewhere with 301 + x-amz-bucket-region. The error names the real region and the
// setting to change, and is not retried.
TEST(S3Store, CheckLocationNamesTheBucketsRegion) {
  S3Harness h("s3://my-bucket/p", {.endpoint = "", .region = "eu-west-1"});
  h.transport->Push(301, "", {{"x-amz-bucket-region", "us-west-2"}});
  auto checked = h.store->CheckLocation();
  ASSERT_FALSE(checked.ok());
  EXPECT_EQ(checked.error().field, "IMAGEGEN_S3_REGION");
  EXPECT_NE(checked.error().message.find("IMAGEGEN_S3_REGION=us-west-2"), std::string::npos)
      << checked.error().message;
  EXPECT_NE(checked.error().message.find("my-bucket"), std::string::npos);
  ASSERT_EQ(h.transport->requests.size(), 1u);
  EXPECT_EQ(h.transport->requests[0].method, "HEAD");
  EXPECT_EQ(h.transport->requests[0].url, "https://my-bucket.s3.eu-west-1.amazonaws.com/");

  // Any other call answered from the wrong region says the same (400 with the header).
  h.transport->Push(400, "<Error><Code>AuthorizationHeaderMalformed</Code></Error>",
                    {{"x-amz-bucket-region", "us-west-2"}});
  auto got = h.store->Get("k.png", nullptr);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.error().field, "IMAGEGEN_S3_REGION");
}

TEST(S3Store, CheckLocationAcceptsTheRightRegionAndWaitsOutOutages) {
  S3Harness h("s3://my-bucket", {.endpoint = "", .region = "us-west-2"});
  h.transport->Push(200, "", {{"x-amz-bucket-region", "us-west-2"}});
  auto ok = h.store->CheckLocation();
  ASSERT_TRUE(ok.ok());
  EXPECT_TRUE(ok.value());
  // A role without s3:ListBucket gets 403 from HeadBucket: the region was still the right one.
  h.transport->Push(403, "", {{"x-amz-bucket-region", "us-west-2"}});
  auto denied = h.store->CheckLocation();
  ASSERT_TRUE(denied.ok());
  EXPECT_TRUE(denied.value());
  // S3 unreachable: cannot tell yet.
  h.transport->handler = [](const aws::HttpRequest&) {
    return FakeTransport::Failure(aws::TransportFailure::kConnect, "refused");
  };
  auto unknown = h.store->CheckLocation();
  ASSERT_TRUE(unknown.ok());
  EXPECT_FALSE(unknown.value());
}

}  // namespace
}  // namespace imagegen
