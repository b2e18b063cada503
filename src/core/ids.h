// Identifiers that name outputs. A job id names its image keys, so a retried or redelivered job
// finds or overwrites the same object instead of creating a second one.
#pragma once

#include <string>
#include <string_view>

#include "core/error.h"

namespace imagegen {

// A new id that sorts newest-first as a string: 13 digits of (10^13 - 1 - epoch ms), a dash,
// 12 random hex digits, e.g. "8235901234567-3fa9c2b01d7e". Listing keys in ascending order
// (what S3 and the file store do) then lists images newest first.
std::string NewJobId();

// Client-supplied job ids: 1-64 of [A-Za-z0-9_-], not starting with '-' or '_'.
Status CheckJobId(const std::string& id);

// Object key of image `index` of a job: PREFIX + ID + EXT, and ID + "-N" + EXT for N > 0, where
// EXT is the format's extension (".png", ".jpg", ".webp").
std::string ImageKey(const std::string& key_prefix, const std::string& job_id, int index,
                     std::string_view extension = ".png");

// Percent-encodes bytes outside printable ASCII (and '%'), so values survive S3 metadata.
std::string EncodeMetadataValue(const std::string& value);
std::string DecodeMetadataValue(const std::string& value);

}  // namespace imagegen
