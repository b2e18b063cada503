#include "store/object_store.h"

namespace imagegen {

Status CheckKey(const std::string& key) {
  auto bad = [&](const std::string& why) {
    return Error::Invalid("key", "invalid object key: " + why);
  };
  if (key.empty()) return bad("empty");
  if (key.size() > 1024) return bad("longer than 1024 bytes");
  if (key.front() == '/') return bad("absolute path");
  for (char ch : key) {
    unsigned char c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c == 0x7F) return bad("control character");
    if (c == '\\') return bad("backslash");
  }
  size_t start = 0;
  while (start <= key.size()) {
    size_t end = key.find('/', start);
    if (end == std::string::npos) end = key.size();
    std::string segment = key.substr(start, end - start);
    if (segment.empty()) return bad("empty path segment");
    // Segments starting with '.' cover "." and "..", and keep the store's own hidden files
    // (metadata, temporary files) out of reach of any caller.
    if (segment.front() == '.') return bad("path segment starting with '.'");
    start = end + 1;
  }
  return Status::Ok();
}

}  // namespace imagegen
