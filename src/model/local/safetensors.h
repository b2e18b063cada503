// A hand-written reader and writer for the safetensors format (no LibTorch, so it can be
// fuzzed on its own): 8-byte little-endian header length N, N bytes of JSON
// {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {str: str}}, then data.
// The reader validates everything and returns errors, never crashes, on hostile input.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/error.h"

namespace imagegen {

struct SafeTensor {
  std::string dtype;           // "F32", "F16", "BF16", "I64", ...
  std::vector<int64_t> shape;  // empty for a scalar
  size_t begin = 0, end = 0;   // byte range in SafetensorsFile::data
};

struct SafetensorsFile {
  std::map<std::string, SafeTensor> tensors;
  std::map<std::string, std::string> metadata;
  std::string data;  // the byte buffer after the header

  // Views tensor `name`'s bytes; valid while the file object lives.
  const uint8_t* Bytes(const SafeTensor& t) const {
    return reinterpret_cast<const uint8_t*>(data.data()) + t.begin;
  }
};

// Upper bound on the JSON header; real headers of small models are a few kB.
constexpr uint64_t kMaxSafetensorsHeader = 16u << 20;

// Parses an in-memory file. Errors (kInvalidRequest, message says what is wrong): truncated
// file, header length out of bounds, malformed JSON, unknown dtype, shape/byte-length
// mismatch, offsets outside the data or overlapping, data not fully covered.
Result<SafetensorsFile> ParseSafetensors(std::string bytes);
Result<SafetensorsFile> ReadSafetensors(const std::string& path);

// Bytes per element of a dtype name, 0 when unknown.
size_t DtypeSize(const std::string& dtype);

struct TensorToWrite {
  std::string name;
  std::string dtype;
  std::vector<int64_t> shape;
  std::string bytes;
};
// Writes atomically (temporary file, then rename) so an interrupted writer leaves the old
// file intact. Tensors are laid out in the order given.
Status WriteSafetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                        const std::map<std::string, std::string>& metadata);

}  // namespace imagegen
