#include "store/s3_store.h"

#include <algorithm>
#include <cctype>

#include "aws/encoding.h"
#include "aws/xml.h"

namespace imagegen {
namespace {

constexpr std::string_view kMetaPrefix = "x-amz-meta-";

// A bucket name usable as a DNS label under the S3 domain: lower-case letters, digits and '-'
// only. Anything else (dots, legacy upper-case or '_') goes path-style.
bool IsVirtualHostable(const std::string& bucket) {
  if (bucket.size() < 3 || bucket.size() > 63) return false;
  for (char c : bucket) {
    if (!(std::islower(static_cast<unsigned char>(c)) ||
          std::isdigit(static_cast<unsigned char>(c)) || c == '-')) {
      return false;
    }
  }
  return bucket.front() != '-' && bucket.back() != '-';
}

bool IsTokenChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) ||
         std::string_view("!#$&'*+-.^_`|~").find(c) != std::string_view::npos;
}

// Header values must be printable ASCII without surrounding blanks (servers trim them, and
// SigV4 collapses inner runs of spaces). Everything else travels as an RFC 2047 encoded word.
std::string EncodeMetaValue(const std::string& value) {
  bool plain = value.empty() || (value.front() != ' ' && value.back() != ' ');
  for (size_t i = 0; plain && i < value.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(value[i]);
    if (c < 0x20 || c > 0x7E) plain = false;
    if (c == ' ' && i + 1 < value.size() && value[i + 1] == ' ') plain = false;
  }
  if (value.starts_with("=?")) plain = false;  // would be mistaken for an encoded word
  if (plain) return value;
  return "=?UTF-8?B?" + aws::Base64Encode(value) + "?=";
}

std::string DecodeMetaValue(const std::string& value) {
  std::string lower = Lower(value.substr(0, 10));
  if (lower == "=?utf-8?b?" && value.size() >= 12 && value.ends_with("?=")) {
    if (auto decoded = aws::Base64Decode(value.substr(10, value.size() - 12))) return *decoded;
  }
  return value;
}

constexpr const char* kRegionVariable = "IMAGEGEN_S3_REGION";

Error WrongRegionError(const std::string& bucket, const std::string& bucket_region,
                       const std::string& our_region) {
  return Error::Invalid(
      kRegionVariable, "S3 bucket \"" + bucket + "\" is in region " + bucket_region +
                           ", but imagegen calls S3 in " + our_region + ": set " + kRegionVariable +
                           "=" + bucket_region +
                           " (the bucket's region; IMAGEGEN_BEDROCK_REGION is where Bedrock is "
                           "called and may differ)");
}

ObjectInfo InfoFromHeaders(const std::string& key, const aws::Response& resp) {
  ObjectInfo info;
  info.key = key;
  std::string length = resp.Header("content-length");
  if (!length.empty()) {
    try {
      info.size = std::stoull(length);
    } catch (...) {
      info.size = 0;
    }
  } else {
    info.size = resp.body.size();
  }
  info.etag = resp.Header("etag");
  info.content_type = resp.Header("content-type");
  if (auto ms = aws::ParseHttpDateMs(resp.Header("last-modified"))) info.modified_ms = *ms;
  for (const auto& [name, value] : resp.headers) {
    if (name.starts_with(kMetaPrefix)) {
      info.metadata[name.substr(kMetaPrefix.size())] = DecodeMetaValue(value);
    }
  }
  return info;
}

class S3Store : public ObjectStore {
 public:
  S3Store(std::unique_ptr<aws::Client> client, std::string bucket, std::string prefix,
          bool path_style)
      : client_(std::move(client)),
        bucket_(std::move(bucket)),
        prefix_(std::move(prefix)),
        path_style_(path_style) {
    if (!path_style_) {
      auto parts = aws::SplitUrl(client_->endpoint());
      if (parts.ok()) {
        vhost_endpoint_ = parts->scheme + "://" + bucket_ + "." + parts->authority + parts->path;
      }
    }
  }

  Status Put(const std::string& key, const std::string& data, const std::string& content_type,
             const Metadata& metadata) override {
    auto req = PutRequest(key, data, content_type, metadata);
    if (!req.ok()) return req.error();
    auto resp = client_->Send(req.value());
    if (!resp.ok()) return resp.error();
    return Status::Ok();
  }

  // A conditional PutObject (If-None-Match: *): S3 (since 2024), MinIO and moto write the
  // object only when the key is free and answer 412 PreconditionFailed otherwise, or 409
  // ConditionalRequestConflict while a concurrent conditional write of the key is in progress;
  // both mean another writer holds the key (MakeS3Store maps them to kConflict).
  Result<CreateOutcome> Create(const std::string& key, const std::string& data,
                               const std::string& content_type, const Metadata& metadata) override {
    auto req = PutRequest(key, data, content_type, metadata);
    if (!req.ok()) return req.error();
    req->headers.emplace_back("If-None-Match", "*");
    auto resp = client_->Send(req.value());
    if (resp.ok()) return CreateOutcome::kCreated;
    if (resp.error().code == ErrorCode::kConflict) return CreateOutcome::kExists;
    return resp.error();
  }

  Result<std::string> Get(const std::string& key, ObjectInfo* info) override {
    if (Status s = CheckKey(key); !s) return s.error();
    auto resp = client_->Send(ObjectRequest("S3.GetObject", "GET", key));
    if (!resp.ok()) return resp.error();
    if (info) *info = InfoFromHeaders(key, *resp);
    return std::move(resp->body);
  }

  Result<ObjectInfo> Head(const std::string& key) override {
    if (Status s = CheckKey(key); !s) return s.error();
    auto resp = client_->Send(ObjectRequest("S3.HeadObject", "HEAD", key));
    if (!resp.ok()) return resp.error();
    return InfoFromHeaders(key, *resp);
  }

  Status Delete(const std::string& key) override {
    if (Status s = CheckKey(key); !s) return s;
    auto resp = client_->Send(ObjectRequest("S3.DeleteObject", "DELETE", key));
    if (!resp.ok() && resp.error().code != ErrorCode::kNotFound) return resp.error();
    return Status::Ok();
  }

  Result<ListPage> List(const std::string& prefix, int limit, const std::string& cursor) override {
    aws::Request req;
    req.operation = "S3.ListObjectsV2";
    req.resource = "s3://" + bucket_ + "/" + FullKey(prefix);
    req.method = "GET";
    req.path = path_style_ ? "/" + bucket_ : "/";
    req.endpoint = vhost_endpoint_;
    req.query.emplace_back("list-type", "2");
    req.query.emplace_back("prefix", prefix_.empty() ? prefix : prefix_ + "/" + prefix);
    req.query.emplace_back("max-keys", std::to_string(limit > 0 ? std::min(limit, 1000) : 1000));
    // Keys are sent URL-encoded so that any byte survives the XML round trip.
    req.query.emplace_back("encoding-type", "url");
    // The cursor is a key (the ObjectStore contract: "starting after cursor"), so pages are
    // asked for with start-after: any key makes a valid cursor, whichever store wrote it.
    if (!cursor.empty()) req.query.emplace_back("start-after", FullKey(cursor));
    auto resp = client_->Send(req);
    if (!resp.ok()) return resp.error();
    auto doc = aws::ParseXml(resp->body);
    if (!doc.ok()) {
      return Error::Make(ErrorCode::kUpstreamUnavailable,
                         "S3.ListObjectsV2 " + req.resource + ": " + doc.error().message);
    }
    bool url_encoded = Lower(doc->ChildText("EncodingType")) == "url";
    ListPage page;
    const std::string strip = prefix_.empty() ? "" : prefix_ + "/";
    for (const aws::XmlNode* c : doc->Children("Contents")) {
      std::string key = c->ChildText("Key");
      if (url_encoded) key = aws::UriDecode(key, /*plus_is_space=*/true);
      if (!key.starts_with(strip)) continue;  // cannot happen with a correct server
      ObjectInfo info;
      info.key = key.substr(strip.size());
      try {
        info.size = std::stoull(c->ChildText("Size"));
      } catch (...) {
        info.size = 0;
      }
      info.etag = c->ChildText("ETag");
      if (auto ms = aws::ParseIso8601Ms(c->ChildText("LastModified"))) info.modified_ms = *ms;
      page.objects.push_back(std::move(info));
    }
    std::sort(page.objects.begin(), page.objects.end(),
              [](const ObjectInfo& a, const ObjectInfo& b) { return a.key < b.key; });
    if (Lower(doc->ChildText("IsTruncated")) == "true" && !page.objects.empty()) {
      page.next_cursor = page.objects.back().key;
    }
    return page;
  }

  // HeadBucket: x-amz-bucket-region says where the bucket lives, on a 200 and (in AWS) on the
  // 301/400/403 a bucket elsewhere or a role without s3:ListBucket gets; refine_error (set up in
  // MakeS3Store) has already turned a region that differs from ours into the error to report.
  Result<bool> CheckLocation() override {
    aws::Request req;
    req.operation = "S3.HeadBucket";
    req.resource = "s3://" + bucket_;
    req.method = "HEAD";
    req.path = path_style_ ? "/" + bucket_ : "/";
    req.endpoint = vhost_endpoint_;
    auto resp = client_->Send(req);
    if (resp.ok()) {
      std::string region = resp->Header("x-amz-bucket-region");
      if (!region.empty() && region != client_->region()) {
        return WrongRegionError(bucket_, region, client_->region());
      }
      return true;
    }
    const Error& e = resp.error();
    if (e.field == kRegionVariable) return e;
    switch (e.code) {
      case ErrorCode::kUpstreamUnavailable:
      case ErrorCode::kUpstreamTimeout:
      case ErrorCode::kRateLimited:
      case ErrorCode::kDeadlineExceeded:
      case ErrorCode::kInternal:
        return false;  // no answer yet: ask again before the next generation
      default:
        // S3 answered from the region we asked (403 without s3:ListBucket, 404 NoSuchBucket):
        // the region is not what is wrong; Put/Get report their own errors.
        return true;
    }
  }

  std::string Uri(const std::string& key) const override {
    return "s3://" + bucket_ + "/" + FullKey(key);
  }

  std::optional<std::string> PresignGet(const std::string& key, int expires_s) const override {
    if (!CheckKey(key)) return std::nullopt;
    auto url = client_->Presign(ObjectRequest("S3.GetObject", "GET", key), expires_s);
    if (!url.ok()) return std::nullopt;
    return *url;
  }

  ObjectLinks Links(const std::string& key, int presign_expiry_s) const override {
    std::string uri = Uri(key);
    return ObjectLinks{uri, uri, ObjectUrl(key), PresignGet(key, presign_expiry_s)};
  }

  std::optional<std::string> ObjectUrl(const std::string& key) const override {
    if (!CheckKey(key)) return std::nullopt;
    return client_->UrlFor(ObjectRequest("S3.GetObject", "GET", key));
  }

 private:
  Result<aws::Request> PutRequest(const std::string& key, const std::string& data,
                                  const std::string& content_type, const Metadata& metadata) const {
    if (Status s = CheckKey(key); !s) return s.error();
    aws::Request req = ObjectRequest("S3.PutObject", "PUT", key);
    req.body = data;
    req.headers.emplace_back("Content-Type",
                             content_type.empty() ? "application/octet-stream" : content_type);
    req.headers.emplace_back("Content-MD5", aws::Base64Encode(aws::Md5(data)));
    for (const auto& [name, value] : metadata) {
      std::string lower = Lower(name);
      if (lower.empty() || !std::all_of(lower.begin(), lower.end(), IsTokenChar)) {
        return Error::Invalid("metadata", "invalid metadata name: " + name);
      }
      req.headers.emplace_back(std::string(kMetaPrefix) + lower, EncodeMetaValue(value));
    }
    return req;
  }

  std::string FullKey(const std::string& key) const {
    return prefix_.empty() ? key : prefix_ + "/" + key;
  }

  aws::Request ObjectRequest(const char* operation, const char* method,
                             const std::string& key) const {
    aws::Request req;
    req.operation = operation;
    req.method = method;
    req.resource = Uri(key);
    req.path = (path_style_ ? "/" + bucket_ + "/" : "/") + FullKey(key);
    req.endpoint = vhost_endpoint_;
    return req;
  }

  std::unique_ptr<aws::Client> client_;  // Client is thread-safe; Presign is logically const
  std::string bucket_;
  std::string prefix_;  // no leading or trailing '/'
  bool path_style_;
  std::string vhost_endpoint_;  // "" for path-style
};

}  // namespace

Result<std::unique_ptr<ObjectStore>> MakeS3Store(const std::string& url, const S3Options& options,
                                                 aws::ClientOptions client_options) {
  constexpr std::string_view kScheme = "s3://";
  if (!url.starts_with(kScheme)) {
    return Error::Invalid("store", "not an s3:// URL: " + url);
  }
  std::string rest = url.substr(kScheme.size());
  size_t slash = rest.find('/');
  std::string bucket = rest.substr(0, slash);
  std::string prefix = slash == std::string::npos ? "" : rest.substr(slash + 1);
  while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
  while (!prefix.empty() && prefix.front() == '/') prefix.erase(prefix.begin());
  if (bucket.empty() || bucket.size() > 255 || bucket.find_first_of("/?#% ") != std::string::npos) {
    return Error::Invalid("store", "invalid S3 bucket name in " + url);
  }
  if (!prefix.empty()) {
    if (Status s = CheckKey(prefix); !s) {
      return Error::Invalid("store", "invalid S3 prefix in " + url + ": " + s.error().message);
    }
  }
  if (!options.endpoint.empty()) client_options.endpoint = options.endpoint;
  if (!options.region.empty()) client_options.region = options.region;
  if (!client_options.env) client_options.env = aws::ProcessEnv();
  if (client_options.region.empty()) {
    client_options.region = aws::ResolveRegion(client_options.env);
    if (client_options.region.empty()) client_options.region = "us-east-1";
  }
  // Any answer that names another region for the bucket (a 301 PermanentRedirect, a 400
  // AuthorizationHeaderMalformed) becomes an error saying which setting to change.
  client_options.refine_error =
      [previous = std::move(client_options.refine_error), bucket,
       region = client_options.region](const aws::AwsFailure& f) -> std::optional<Error> {
    if (!f.bucket_region.empty() && f.bucket_region != region) {
      return WrongRegionError(bucket, f.bucket_region, region);
    }
    if (f.operation == "S3.PutObject" &&
        (f.http_status == 412 || f.aws_code == "ConditionalRequestConflict")) {
      return Error::Make(ErrorCode::kConflict, "S3.PutObject " + f.resource + ": key exists");
    }
    return previous ? previous(f) : std::nullopt;
  };
  bool path_style =
      options.force_path_style || !IsVirtualHostable(bucket) ||
      aws::HasEndpointOverride(aws::S3Service(), client_options.endpoint, client_options.env);
  auto client = aws::Client::Make(aws::S3Service(), std::move(client_options));
  if (!client.ok()) return client.error();
  return std::unique_ptr<ObjectStore>(
      new S3Store(std::move(*client), std::move(bucket), std::move(prefix), path_style));
}

Result<std::unique_ptr<ObjectStore>> MakeS3Store(const std::string& url, const S3Options& options) {
  return MakeS3Store(url, options, aws::ClientOptions{});
}

}  // namespace imagegen
