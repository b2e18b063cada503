// s3://bucket/prefix — the ObjectStore on Amazon S3 or any S3-compatible server (MinIO, moto).
#pragma once

#include <memory>
#include <string>

#include "aws/client.h"
#include "store/object_store.h"

namespace imagegen {

struct S3Options {
  // "" : AWS_ENDPOINT_URL_S3, then AWS_ENDPOINT_URL, then https://s3.<region>.amazonaws.com.
  std::string endpoint;
  // "" : AWS_REGION, AWS_DEFAULT_REGION, the profile's region, else us-east-1.
  std::string region;
  // Path-style addressing (https://endpoint/bucket/key) is used automatically when an endpoint
  // is configured (local servers rarely resolve bucket subdomains) or when the bucket name is
  // not a DNS label (dots would break the TLS wildcard); this forces it everywhere else too.
  bool force_path_style = false;
};

// `url` is s3://bucket or s3://bucket/prefix. Keys given to the store are relative to the
// prefix: Put("a/b.png") writes s3://bucket/prefix/a/b.png, and List returns keys without the
// prefix. Keys are checked with CheckKey; any other byte (spaces, '+', '~', '%', UTF-8) is
// percent-encoded on the wire and round-trips.
//
// Put sends Content-Type, Content-MD5 (S3 rejects a corrupted upload) and the metadata as
// x-amz-meta-<name>; values that are not printable ASCII are sent RFC 2047-encoded
// (=?UTF-8?B?...?=, as S3 itself does) and decoded again by Get/Head.
// PresignGet signs with the credentials of the moment; temporary credentials cap the URL's
// life at their own expiry. Thread-safe. Nothing is sent to S3 by the factory itself.
Result<std::unique_ptr<ObjectStore>> MakeS3Store(const std::string& url, const S3Options& options);
// The same with the AWS client's settings exposed (credentials, transport, retry; tests).
// S3Options' endpoint and region win over those in `client_options` when non-empty.
Result<std::unique_ptr<ObjectStore>> MakeS3Store(const std::string& url, const S3Options& options,
                                                 aws::ClientOptions client_options);

}  // namespace imagegen
