// Names that sort newest first: the listing indexes of images (pipeline) and job records (jobs)
// are zero-byte objects named ReverseTimePath(created_ms) + <name>, so an ascending key listing,
// what S3's ListObjectsV2 and the file store return, is newest first and a page costs O(page).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <string>

namespace imagegen {

inline constexpr int64_t kMaxEpochMs = 9999999999999LL;
inline constexpr size_t kReverseTimeChars = 17;  // "rrrr/rrr/rrr/rrr-"

// "rrrr/rrr/rrr/rrr-" for r = the 13 digits of kMaxEpochMs - epoch_ms: fixed width, so S3's flat
// lexicographic order is newest first, and split so that no directory of the file store holds
// more than a thousand entries per level (a page reads a few small directories).
inline std::string ReverseTimePath(int64_t epoch_ms) {
  long long rev = kMaxEpochMs - std::clamp<int64_t>(epoch_ms, 0, kMaxEpochMs);
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%04lld/%03lld/%03lld/%03lld-", rev / 1000000000,
                rev / 1000000 % 1000, rev / 1000 % 1000, rev % 1000);
  return buf;
}

// The name after a ReverseTimePath prefix; empty when `entry` does not start with one.
inline std::string AfterReverseTime(const std::string& entry) {
  if (entry.size() <= kReverseTimeChars || entry[kReverseTimeChars - 1] != '-') return "";
  return entry.substr(kReverseTimeChars);
}

}  // namespace imagegen
