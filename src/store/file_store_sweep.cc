#include "store/file_store_sweep.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>

#include "core/log.h"

namespace imagegen {
namespace fs = std::filesystem;
namespace {

constexpr const char* kSidecarDir = ".meta";
constexpr const char* kStampName = ".swept";

bool OlderThan(const fs::path& path, std::chrono::seconds age, struct stat* st) {
  if (::lstat(path.c_str(), st) != 0) return false;
  return ::time(nullptr) - st->st_mtim.tv_sec > age.count();
}

bool IsTempFile(const fs::path& path) { return path.filename().string().starts_with(".tmp-"); }

// ROOT/.meta/KEY.json -> ROOT/KEY; empty when `path` is not a sidecar.
fs::path ObjectOfSidecar(const fs::path& root, const fs::path& path) {
  fs::path relative = path.lexically_relative(root / kSidecarDir);
  std::string name = relative.generic_string();
  if (name.empty() || name.starts_with("..") || !name.ends_with(".json")) return {};
  return root / name.substr(0, name.size() - 5);
}

void Stamp(const fs::path& stamp) {
  int fd = ::open(stamp.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return;
  (void)::futimens(fd, nullptr);  // now
  ::close(fd);
}

}  // namespace

FileStoreSweep SweepFileStore(const fs::path& root, std::chrono::seconds grace) {
  FileStoreSweep sweep;
  const fs::path stamp = root / kSidecarDir / kStampName;
  struct stat st {};
  if (::lstat(stamp.c_str(), &st) == 0 && !OlderThan(stamp, grace, &st)) {
    sweep.skipped = true;
    return sweep;
  }
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(root, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    const fs::path& path = it->path();
    std::error_code entry_ec;  // one unreadable entry must not end the walk
    if (!it->is_regular_file(entry_ec) || !OlderThan(path, grace, &st)) continue;
    if (IsTempFile(path)) {
      if (::unlink(path.c_str()) == 0) ++sweep.temp_files;
      continue;
    }
    fs::path object = ObjectOfSidecar(root, path);
    struct stat object_st {};
    if (!object.empty() && ::lstat(object.c_str(), &object_st) != 0 && errno == ENOENT) {
      if (::unlink(path.c_str()) == 0) ++sweep.orphan_sidecars;
    }
  }
  fs::create_directories(root / kSidecarDir, ec);
  Stamp(stamp);
  if (sweep.temp_files > 0 || sweep.orphan_sidecars > 0) {
    Log("info", "file store swept",
        {{"temp_files", sweep.temp_files}, {"orphan_sidecars", sweep.orphan_sidecars}});
  }
  return sweep;
}

}  // namespace imagegen
