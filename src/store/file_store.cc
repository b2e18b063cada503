#include "store/file_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "store/file_store_sweep.h"

namespace imagegen {
namespace fs = std::filesystem;
namespace {

// `name` is store-relative: messages reach job records and logs, never the server's paths.
Error IoError(const std::string& what, const std::string& name) {
  return Error::Make(ErrorCode::kInternal,
                     "file store: " + what + " " + name + ": " + std::strerror(errno));
}

Status WriteAll(int fd, const std::string& data, const std::string& name) {
  size_t written = 0;
  while (written < data.size()) {
    ssize_t n = ::write(fd, data.data() + written, data.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return IoError("write", name);
    written += static_cast<size_t>(n);
  }
  return Status::Ok();
}

Status FsyncDir(const fs::path& dir, const std::string& name) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return IoError("open the directory of", name);
  int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) return IoError("fsync the directory of", name);
  return Status::Ok();
}

Status MakeParent(const fs::path& target, const std::string& name) {
  std::error_code ec;
  fs::create_directories(target.parent_path(), ec);
  if (ec) {
    return Error::Make(ErrorCode::kInternal, "file store: mkdir for " + name + ": " + ec.message());
  }
  return Status::Ok();
}

// A fsynced temporary file beside `target`, holding `data`; its path on success.
Result<fs::path> WriteTemp(const fs::path& target, const std::string& data,
                           const std::string& name) {
  static std::atomic<uint64_t> counter{0};
  fs::path tmp = target.parent_path() /
                 (".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return IoError("create a temporary file for", name);
  Status s = WriteAll(fd, data, name);
  if (s && ::fsync(fd) != 0) s = IoError("fsync", name);
  ::close(fd);
  if (!s) {
    ::unlink(tmp.c_str());
    return s.error();
  }
  return tmp;
}

// temp file in the same directory, fsync, rename over the target, fsync the directory.
Status AtomicWrite(const fs::path& target, const std::string& data, const std::string& name) {
  if (auto s = MakeParent(target, name); !s) return s;
  auto tmp = WriteTemp(target, data, name);
  if (!tmp.ok()) return tmp.error();
  if (::rename(tmp->c_str(), target.c_str()) != 0) {
    Status s = IoError("rename into place", name);
    ::unlink(tmp->c_str());
    return s;
  }
  return FsyncDir(target.parent_path(), name);
}

// As AtomicWrite, but publishing with link(2), which (unlike rename) fails with EEXIST instead
// of replacing the target: of two racing writers exactly one links, and nobody ever replaces
// an existing object. false: the target already existed.
Result<bool> AtomicCreate(const fs::path& target, const std::string& data,
                          const std::string& name) {
  if (auto s = MakeParent(target, name); !s) return s.error();
  auto tmp = WriteTemp(target, data, name);
  if (!tmp.ok()) return tmp.error();
  int rc = ::link(tmp->c_str(), target.c_str());
  int link_errno = errno;
  ::unlink(tmp->c_str());
  if (rc != 0) {
    if (link_errno == EEXIST) return false;
    errno = link_errno;
    return IoError("link into place", name);
  }
  if (auto s = FsyncDir(target.parent_path(), name); !s) return s.error();
  return true;
}

// Directory entries (hidden names skipped) as key segments, directories with a trailing '/', in
// the order their keys sort: "a-b" before "a/" as '-' < '/', so walking them depth first in this
// order yields keys in ascending byte order.
std::vector<std::string> SortedSegments(const fs::path& dir, std::error_code& ec) {
  std::vector<std::string> names;
  for (auto it = fs::directory_iterator(dir, ec); !ec && it != fs::end(it); it.increment(ec)) {
    std::string name = it->path().filename().string();
    if (name.empty() || name.front() == '.') continue;
    std::error_code type_ec;
    if (it->is_directory(type_ec)) {
      names.push_back(name + "/");
    } else if (it->is_regular_file(type_ec)) {
      names.push_back(name);
    }
  }
  std::sort(names.begin(), names.end());
  return names;
}

Result<std::string> ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return Error::Make(ErrorCode::kNotFound, "no such object: " + path.filename().string());
  }
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

class FileStore final : public ObjectStore {
 public:
  explicit FileStore(fs::path root) : root_(std::move(root)) {}

  Status Put(const std::string& key, const std::string& data, const std::string& content_type,
             const Metadata& metadata) override {
    if (auto s = CheckKey(key); !s) return s;
    nlohmann::json meta = {{"content_type", content_type}, {"metadata", metadata}};
    // The sidecar goes first: an object that exists always has its metadata.
    if (auto s = AtomicWrite(MetaPath(key), meta.dump(), "the metadata of " + key); !s) return s;
    return AtomicWrite(root_ / key, data, key);
  }

  Result<std::string> Get(const std::string& key, ObjectInfo* info) override {
    if (auto s = CheckKey(key); !s) return s.error();
    auto data = ReadFile(root_ / key);
    if (!data.ok()) return data;
    if (info != nullptr) {
      auto head = Head(key);
      if (!head.ok()) return head.error();
      *info = std::move(head.value());
    }
    return data;
  }

  Result<ObjectInfo> Head(const std::string& key) override {
    if (auto s = CheckKey(key); !s) return s.error();
    struct stat st {};
    if (::stat((root_ / key).c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
      return Error::Make(ErrorCode::kNotFound, "no such object: " + key);
    }
    ObjectInfo info = InfoFromStat(key, st);
    if (auto meta = ReadFile(MetaPath(key)); meta.ok()) {
      auto json = nlohmann::json::parse(meta.value(), nullptr, false);
      if (json.is_object()) {
        info.content_type = json.value("content_type", "");
        info.metadata = json.value("metadata", Metadata{});
      }
    }
    return info;
  }

  Status Delete(const std::string& key) override {
    if (auto s = CheckKey(key); !s) return s;
    // The object first, then its sidecar: an object that exists always has its metadata.
    for (const fs::path& path : {root_ / key, MetaPath(key)}) {
      if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
        return IoError("delete", key);
      }
    }
    return Status::Ok();
  }

  // Walks only the directories under the prefix's own directory, depth first in key order, and
  // stops as soon as the page is full, skipping subtrees that sort entirely before the cursor: a
  // page costs the directories it touches, not the whole store.
  Result<ListPage> List(const std::string& prefix, int limit, const std::string& cursor) override {
    std::string base = prefix.substr(0, prefix.rfind('/') + 1);  // "" or "a/b/"
    ListPage page;
    std::error_code ec;
    if (!fs::is_directory(root_ / base, ec)) return page;
    ListWalk walk{prefix, cursor, limit > 0 ? static_cast<size_t>(limit) : 1000, &page};
    if (auto s = Walk(base, walk); !s) return s.error();
    return page;
  }

  Result<CreateOutcome> Create(const std::string& key, const std::string& data,
                               const std::string& content_type, const Metadata& metadata) override {
    if (auto s = CheckKey(key); !s) return s.error();
    auto created = AtomicCreate(root_ / key, data, key);
    if (!created.ok()) return created.error();
    if (!created.value()) {
      WaitForMetadata(key);
      return CreateOutcome::kExists;
    }
    // Only the writer that linked the object writes its sidecar, so a losing writer can never
    // replace the winner's metadata. A reader between the link and this rename sees the object
    // without metadata for that moment; a losing Create waits it out (WaitForMetadata).
    nlohmann::json meta = {{"content_type", content_type}, {"metadata", metadata}};
    if (auto s = AtomicWrite(MetaPath(key), meta.dump(), "the metadata of " + key); !s) {
      ::unlink((root_ / key).c_str());  // nothing published without its metadata
      return s.error();
    }
    return CreateOutcome::kCreated;
  }

  std::string Uri(const std::string& key) const override {
    return "file://" + (root_ / key).string();
  }

  // Results go over HTTP: name the object relative to the store, never by its server path.
  ObjectLinks Links(const std::string& key, int) const override {
    return ObjectLinks{"file:" + key, std::nullopt, std::nullopt, std::nullopt};
  }

 private:
  fs::path MetaPath(const std::string& key) const { return root_ / ".meta" / (key + ".json"); }

  struct ListWalk {
    const std::string& prefix;
    const std::string& cursor;
    size_t limit;
    ListPage* page;
  };

  // Lists directory `dir` (a key prefix ending in '/', or "") into walk.page. Returns ok;
  // walk.page->next_cursor is set once a key beyond the page was seen.
  Status Walk(const std::string& dir, ListWalk& walk) {
    std::error_code ec;
    std::vector<std::string> segments = SortedSegments(root_ / dir, ec);
    if (ec)
      return Error::Make(ErrorCode::kInternal, "file store: list " + dir + ": " + ec.message());
    for (const std::string& segment : segments) {
      if (!walk.page->next_cursor.empty()) return Status::Ok();
      std::string key = dir + segment;
      if (key.back() == '/') {
        bool may_match = key.starts_with(walk.prefix) || walk.prefix.starts_with(key);
        // Every key under `key` sorts before the cursor when `key` does and is not its prefix.
        bool before_cursor = key < walk.cursor && !walk.cursor.starts_with(key);
        if (!may_match || before_cursor) continue;
        if (auto s = Walk(key, walk); !s) return s;
        continue;
      }
      if (!key.starts_with(walk.prefix) || key <= walk.cursor) continue;
      if (walk.page->objects.size() == walk.limit) {
        walk.page->next_cursor = walk.page->objects.back().key;
        return Status::Ok();
      }
      struct stat st {};
      if (::stat((root_ / key).c_str(), &st) == 0) {
        walk.page->objects.push_back(InfoFromStat(key, st));
      }
    }
    return Status::Ok();
  }

  // The winner of a Create race links the object before it renames the sidecar in; a loser
  // returns once that sidecar is there (or after a bound, for an object whose writer died
  // between the two), so its caller's Head sees the winner's metadata.
  void WaitForMetadata(const std::string& key) const {
    for (int i = 0; i < 200; ++i) {
      struct stat st {};
      if (::stat(MetaPath(key).c_str(), &st) == 0) return;
      ::usleep(5000);
    }
  }

  static ObjectInfo InfoFromStat(const std::string& key, const struct stat& st) {
    ObjectInfo info;
    info.key = key;
    info.size = static_cast<uint64_t>(st.st_size);
    int64_t mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
    info.modified_ms = mtime_ns / 1000000;
    std::ostringstream etag;
    etag << '"' << std::hex << st.st_size << '-' << mtime_ns << '-' << st.st_ino << '"';
    info.etag = etag.str();
    return info;
  }

  fs::path root_;
};

}  // namespace

Result<std::unique_ptr<ObjectStore>> MakeFileStore(const std::string& root) {
  if (root.empty()) return Error::Invalid("store", "file store needs a directory: file://DIR");
  std::error_code ec;
  fs::path absolute = fs::absolute(root, ec);
  if (ec) return Error::Invalid("store", "bad store path " + root + ": " + ec.message());
  fs::create_directories(absolute, ec);
  if (ec) {
    return Error::Invalid(
        "store", "cannot create store directory " + absolute.string() + ": " + ec.message());
  }
  SweepFileStore(absolute, kFileStoreSweepGrace);
  return std::unique_ptr<ObjectStore>(std::make_unique<FileStore>(absolute.lexically_normal()));
}

}  // namespace imagegen
