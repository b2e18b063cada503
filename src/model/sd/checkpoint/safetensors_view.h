// Safetensors files read in place: the file is memory-mapped, its header validated, and each
// tensor is a view into the mapping, so loading copies every weight once (into the tensor the
// network keeps) and never holds a second whole copy of the file. No LibTorch here, so the
// parser can be fuzzed on its own (checkpoint_fuzz.cc).
//
// Format: 8-byte little-endian header length N, N bytes of JSON {name: {dtype, shape,
// data_offsets: [begin, end]}, "__metadata__": {str: str}}, then the data those offsets index.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"

namespace imagegen::sd {

struct TensorEntry {
  std::string dtype;           // "F32", "F16", "BF16", "I64", ...
  std::vector<int64_t> shape;  // empty for a scalar
  std::string_view bytes;      // the tensor's data inside the parsed buffer
};

struct SafetensorsView {
  std::map<std::string, TensorEntry> tensors;
  std::map<std::string, std::string> metadata;
};

// Bytes per element of a safetensors dtype name; 0 when unknown.
size_t SafetensorsDtypeSize(std::string_view dtype);

// Parses a whole file held in `file` (the views point into it). kInvalidRequest, naming what is
// wrong, for: a file shorter than its header, a header length over 64 MiB, JSON that is not an
// object, an unknown dtype, a shape whose byte size differs from its offsets, offsets past the
// end (a truncated file), overlapping or gapped data, trailing bytes.
Result<SafetensorsView> ParseSafetensorsView(std::string_view file);

// A read-only memory mapping of a whole file, unmapped on destruction. Move-only.
class MappedFile {
 public:
  // kNotFound when the file cannot be opened; kInvalidRequest when it is not a regular file.
  static Result<MappedFile> Open(const std::filesystem::path& path);
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  std::string_view bytes() const { return {data_, size_}; }
  // Tells the kernel the pages under `range` (a view into bytes()) are not needed any more, so
  // weights already copied out stop counting in the resident set while the rest load.
  void Release(std::string_view range) const;

 private:
  MappedFile(const char* data, size_t size) : data_(data), size_(size) {}
  const char* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace imagegen::sd
