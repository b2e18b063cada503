#include "core/ids.h"

#include <chrono>
#include <cstdio>
#include <random>

namespace imagegen {

std::string NewJobId() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::system_clock::now().time_since_epoch())
                    .count();
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%013lld-%012llx",
                static_cast<long long>(9999999999999LL - now_ms),
                static_cast<unsigned long long>(rng() & 0xFFFFFFFFFFFFULL));
  return buf;
}

Status CheckJobId(const std::string& id) {
  if (id.empty() || id.size() > 64) {
    return Error::Invalid("job_id", "job_id must be 1 to 64 characters of [A-Za-z0-9_-]");
  }
  for (char c : id) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_';
    if (!ok) return Error::Invalid("job_id", "job_id must be 1 to 64 characters of [A-Za-z0-9_-]");
  }
  if (id.front() == '-' || id.front() == '_') {
    return Error::Invalid("job_id", "job_id must start with a letter or digit");
  }
  return Status::Ok();
}

std::string ImageKey(const std::string& key_prefix, const std::string& job_id, int index,
                     std::string_view extension) {
  // Appends into one reserved string: GCC 12 at -O3 reports a false -Wrestrict for the
  // equivalent chain of operator+ on temporaries.
  std::string key;
  key.reserve(key_prefix.size() + job_id.size() + 16);
  key.append(key_prefix).append(job_id);
  if (index > 0) key.append("-").append(std::to_string(index));
  key.append(extension);
  return key;
}

std::string EncodeMetadataValue(const std::string& value) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : value) {
    if (c < 0x20 || c >= 0x7F || c == '%') {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 0xF];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

std::string DecodeMetadataValue(const std::string& value) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  std::string out;
  for (size_t i = 0; i < value.size(); ++i) {
    if (value[i] == '%' && i + 2 < value.size() && hex(value[i + 1]) >= 0 &&
        hex(value[i + 2]) >= 0) {
      out += static_cast<char>(hex(value[i + 1]) * 16 + hex(value[i + 2]));
      i += 2;
    } else {
      out += value[i];
    }
  }
  return out;
}

}  // namespace imagegen
