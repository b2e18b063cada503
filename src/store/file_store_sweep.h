// What a killed writer leaves in a file store, and the sweep that removes it when a store opens.
#pragma once

#include <chrono>
#include <filesystem>

namespace imagegen {

struct FileStoreSweep {
  int temp_files = 0;       // ".tmp-*" files of writes that never reached their rename
  int orphan_sidecars = 0;  // ROOT/.meta/KEY.json whose object ROOT/KEY is missing
  bool skipped = false;     // swept less than `grace` ago (see SweepFileStore)
};

// A write is temp file -> rename, the sidecar before its object (file_store.cc), so SIGKILL can
// leave a temp file, or a sidecar whose object was never renamed into place. Removes both when
// older than `grace`: a live writer's temp file, and a sidecar written just before its object,
// are younger. Objects are never removed, sidecar or not: a create-only write (Create: images,
// listing index entries, job-id claims) links its object before its sidecar, so a crash there
// leaves an object without one, and deleting it would lose data or free a claimed job id. The walk
// costs O(store), so it runs at most once per `grace` per store (stamped in ROOT/.meta/.swept);
// errors are ignored: a sweep only ever removes litter.
FileStoreSweep SweepFileStore(const std::filesystem::path& root, std::chrono::seconds grace);

// Default grace period: longer than any single write takes.
inline constexpr std::chrono::seconds kFileStoreSweepGrace{3600};

}  // namespace imagegen
