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

// temp file in the same directory, fsync, rename over the target, fsync the directory.
Status AtomicWrite(const fs::path& target, const std::string& data, const std::string& name) {
  std::error_code ec;
  fs::create_directories(target.parent_path(), ec);
  if (ec) {
    return Error::Make(ErrorCode::kInternal, "file store: mkdir for " + name + ": " + ec.message());
  }
  static std::atomic<uint64_t> counter{0};
  fs::path tmp = target.parent_path() /
                 (".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return IoError("create a temporary file for", name);
  Status s = WriteAll(fd, data, name);
  if (s && ::fsync(fd) != 0) s = IoError("fsync", name);
  ::close(fd);
  if (s && ::rename(tmp.c_str(), target.c_str()) != 0) s = IoError("rename into place", name);
  if (!s) {
    ::unlink(tmp.c_str());
    return s;
  }
  return FsyncDir(target.parent_path(), name);
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

  Result<ListPage> List(const std::string& prefix, int limit, const std::string& cursor) override {
    std::vector<std::string> keys;
    std::error_code ec;
    if (!fs::exists(root_, ec)) return ListPage{};
    for (auto it = fs::recursive_directory_iterator(root_, ec); !ec && it != fs::end(it);
         it.increment(ec)) {
      const std::string name = it->path().filename().string();
      if (!name.empty() && name.front() == '.') {
        if (it->is_directory()) it.disable_recursion_pending();
        continue;
      }
      if (!it->is_regular_file()) continue;
      std::string key = fs::relative(it->path(), root_).generic_string();
      if (key.compare(0, prefix.size(), prefix) == 0 && key > cursor) keys.push_back(key);
    }
    if (ec) return Error::Make(ErrorCode::kInternal, "file store: list: " + ec.message());
    std::sort(keys.begin(), keys.end());
    ListPage page;
    for (const auto& key : keys) {
      if (static_cast<int>(page.objects.size()) == limit) {
        page.next_cursor = page.objects.back().key;
        break;
      }
      struct stat st {};
      if (::stat((root_ / key).c_str(), &st) == 0) page.objects.push_back(InfoFromStat(key, st));
    }
    return page;
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
