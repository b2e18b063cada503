#include "model/local/safetensors.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>
#include <utility>

namespace imagegen {
namespace {

Error Corrupt(const std::string& what) {
  return Error::Make(ErrorCode::kInvalidRequest, "invalid safetensors file: " + what);
}

}  // namespace

size_t DtypeSize(const std::string& dtype) {
  if (dtype == "F64" || dtype == "I64" || dtype == "U64") return 8;
  if (dtype == "F32" || dtype == "I32" || dtype == "U32") return 4;
  if (dtype == "F16" || dtype == "BF16" || dtype == "I16" || dtype == "U16") return 2;
  if (dtype == "I8" || dtype == "U8" || dtype == "BOOL") return 1;
  return 0;
}

Result<SafetensorsFile> ParseSafetensors(std::string bytes) {
  if (bytes.size() < 8) return Corrupt("shorter than the 8-byte header length");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(bytes[static_cast<size_t>(i)]);
  if (n < 2 || n > kMaxSafetensorsHeader) {
    return Corrupt("header length " + std::to_string(n) + " out of bounds");
  }
  if (n > bytes.size() - 8) return Corrupt("truncated header");
  nlohmann::json header =
      nlohmann::json::parse(bytes.begin() + 8, bytes.begin() + 8 + static_cast<std::ptrdiff_t>(n),
                            nullptr, /*allow_exceptions=*/false);
  if (header.is_discarded() || !header.is_object()) return Corrupt("header is not a JSON object");
  SafetensorsFile file;
  file.data = bytes.substr(8 + n);
  const uint64_t data_size = file.data.size();
  std::vector<std::pair<size_t, size_t>> ranges;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) return Corrupt("__metadata__ is not an object");
      for (const auto& [k, v] : entry.items()) {
        if (!v.is_string()) return Corrupt("__metadata__ value for '" + k + "' is not a string");
        file.metadata[k] = v.get<std::string>();
      }
      continue;
    }
    if (!entry.is_object()) return Corrupt("entry '" + name + "' is not an object");
    auto dt = entry.find("dtype");
    auto sh = entry.find("shape");
    auto off = entry.find("data_offsets");
    if (dt == entry.end() || !dt->is_string() || sh == entry.end() || !sh->is_array() ||
        off == entry.end() || !off->is_array() || off->size() != 2) {
      return Corrupt("entry '" + name + "' lacks dtype, shape or data_offsets");
    }
    SafeTensor t;
    t.dtype = dt->get<std::string>();
    size_t elem = DtypeSize(t.dtype);
    if (elem == 0) return Corrupt("entry '" + name + "' has unknown dtype '" + t.dtype + "'");
    uint64_t count = 1;
    for (const auto& d : *sh) {
      if (!d.is_number_unsigned()) return Corrupt("entry '" + name + "' has a bad dimension");
      uint64_t v = d.get<uint64_t>();
      if (v != 0 && count > std::numeric_limits<uint64_t>::max() / 8 / v) {
        return Corrupt("entry '" + name + "' shape overflows");
      }
      count *= v;
      t.shape.push_back(static_cast<int64_t>(v));
    }
    if (!(*off)[0].is_number_unsigned() || !(*off)[1].is_number_unsigned()) {
      return Corrupt("entry '" + name + "' has bad data_offsets");
    }
    uint64_t b = (*off)[0].get<uint64_t>(), e = (*off)[1].get<uint64_t>();
    if (b > e || e > data_size) {
      return Corrupt("entry '" + name + "' data_offsets [" + std::to_string(b) + ", " +
                     std::to_string(e) + "] outside the " + std::to_string(data_size) +
                     "-byte data (truncated file?)");
    }
    if (e - b != count * elem) {
      return Corrupt("entry '" + name + "' has " + std::to_string(e - b) + " bytes but dtype " +
                     t.dtype + " and its shape need " + std::to_string(count * elem));
    }
    t.begin = static_cast<size_t>(b);
    t.end = static_cast<size_t>(e);
    ranges.emplace_back(t.begin, t.end);
    file.tensors.emplace(name, std::move(t));
  }
  std::sort(ranges.begin(), ranges.end());
  size_t cursor = 0;
  for (const auto& [b, e] : ranges) {
    if (b < cursor) return Corrupt("tensor data ranges overlap");
    if (b > cursor) return Corrupt("gap in tensor data");
    cursor = e;
  }
  if (cursor != data_size) return Corrupt("trailing bytes after the last tensor");
  return file;
}

Result<SafetensorsFile> ReadSafetensors(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error::Make(ErrorCode::kNotFound, "cannot open weights file " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  auto parsed = ParseSafetensors(ss.str());
  if (!parsed.ok()) {
    Error e = parsed.error();
    e.message = path + ": " + e.message;
    return e;
  }
  return parsed;
}

Status WriteSafetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                        const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  size_t offset = 0;
  for (const auto& t : tensors) {
    header[t.name] = {{"dtype", t.dtype},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + t.bytes.size()}}};
    offset += t.bytes.size();
  }
  std::string json = header.dump();
  // Pad the header with spaces to 8-byte alignment, as the reference writer does.
  while (json.size() % 8 != 0) json.push_back(' ');
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) return Error::Make(ErrorCode::kInternal, "cannot write " + tmp);
    uint64_t n = json.size();
    char len[8];
    for (int i = 0; i < 8; ++i) len[i] = static_cast<char>((n >> (8 * i)) & 0xff);
    out.write(len, 8);
    out.write(json.data(), static_cast<std::streamsize>(json.size()));
    for (const auto& t : tensors)
      out.write(t.bytes.data(), static_cast<std::streamsize>(t.bytes.size()));
    out.flush();
    if (!out) return Error::Make(ErrorCode::kInternal, "write failed: " + tmp);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    return Error::Make(ErrorCode::kInternal, "cannot rename " + tmp + " to " + path);
  }
  return Status::Ok();
}

}  // namespace imagegen
