// file://ROOT — the embedded ObjectStore: one file per object under ROOT.
#pragma once

#include <memory>
#include <string>

#include "store/object_store.h"

namespace imagegen {

// Objects are written atomically (temporary file, fsync, rename, fsync of the directory), so a
// crash leaves the old object or the new one, never a torn one. Metadata and content type live
// in a sidecar under ROOT/.meta/. Thread-safe.
Result<std::unique_ptr<ObjectStore>> MakeFileStore(const std::string& root);

}  // namespace imagegen
