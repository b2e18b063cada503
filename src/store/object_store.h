// ObjectStore: where images (and job records) live. file:// by default, s3:// in production.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/error.h"

namespace imagegen {

using Metadata = std::map<std::string, std::string>;  // lower-case ASCII names

struct ObjectInfo {
  std::string key;
  uint64_t size = 0;
  int64_t modified_ms = 0;  // epoch milliseconds
  std::string etag;         // quoted, as in HTTP
  std::string content_type;
  Metadata metadata;  // filled by Head/Get, not by List
};

struct ListPage {
  std::vector<ObjectInfo> objects;  // ascending key order
  std::string next_cursor;          // empty: no more
};

// What a create-only write did: wrote the object, or found the key already taken (by an earlier
// write, or by a concurrent one that won the race). Either way the stored bytes are the first
// writer's; a create never replaces them.
enum class CreateOutcome { kCreated, kExists };

struct ObjectLinks {
  // The store's own name for the object: s3://bucket/key, or file:KEY for a file store (results
  // travel over HTTP, which must not learn the server's paths; Uri() has the absolute one).
  std::string uri;
  std::optional<std::string> s3_uri;         // s3://bucket/key, where the store is S3
  std::optional<std::string> object_url;     // the object's plain URL
  std::optional<std::string> presigned_url;  // a time-limited URL that needs no credentials
};

class ObjectStore {
 public:
  virtual ~ObjectStore() = default;
  // Atomic: readers see the old object, or the new one whole; never a partial one.
  virtual Status Put(const std::string& key, const std::string& data,
                     const std::string& content_type, const Metadata& metadata) = 0;
  // Create-only Put: atomic as Put, and never replaces an object. When two writers race on one
  // key exactly one gets kCreated; the other (and any later writer) gets kExists and the stored
  // object is the winner's, bytes and metadata alike. Errors only for failed writes.
  virtual Result<CreateOutcome> Create(const std::string& key, const std::string& data,
                                       const std::string& content_type,
                                       const Metadata& metadata) = 0;
  // kNotFound when absent. `info` (optional) receives size, etag, type and metadata.
  virtual Result<std::string> Get(const std::string& key, ObjectInfo* info) = 0;
  virtual Result<ObjectInfo> Head(const std::string& key) = 0;
  // Removes the object (and its metadata). An absent key is not an error, as in S3.
  virtual Status Delete(const std::string& key) = 0;
  // Keys under `prefix` in ascending order, at most `limit`, starting after `cursor`.
  virtual Result<ListPage> List(const std::string& prefix, int limit,
                                const std::string& cursor) = 0;
  // Checks that the store is where the configuration says it is, before paid work depends on
  // it; writes nothing. true: confirmed, or nothing to check (file stores); false: the store did
  // not answer, ask again later; an error: the configuration is wrong (S3: the bucket lives in
  // another region; kInvalidRequest with field "IMAGEGEN_S3_REGION", naming the bucket's region).
  virtual Result<bool> CheckLocation() { return true; }
  // A URI naming the object in the store's own scheme (file:///abs/path, s3://bucket/key).
  virtual std::string Uri(const std::string& key) const = 0;
  // A time-limited URL that fetches the object without credentials, where the store has one.
  virtual std::optional<std::string> PresignGet(const std::string& key, int expires_s) const {
    (void)key;
    (void)expires_s;
    return std::nullopt;
  }
  // The object's plain URL (https://bucket.s3.region.amazonaws.com/key), where the store has one.
  virtual std::optional<std::string> ObjectUrl(const std::string& key) const {
    (void)key;
    return std::nullopt;
  }
  // Every link the store knows for `key`, as results report them (so no caller has to guess
  // the store's kind from a URI scheme).
  virtual ObjectLinks Links(const std::string& key, int presign_expiry_s) const {
    return ObjectLinks{Uri(key), std::nullopt, ObjectUrl(key), PresignGet(key, presign_expiry_s)};
  }
};

// Rejects keys that could escape a root or confuse a store: empty, absolute, "..", "." or
// empty segments, NUL or control characters, backslashes, over 1024 bytes.
Status CheckKey(const std::string& key);

}  // namespace imagegen
