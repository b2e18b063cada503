#include "model/sd/checkpoint/safetensors_view.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <limits>
#include <nlohmann/json.hpp>
#include <utility>

namespace imagegen::sd {
namespace {

// Real headers are a few hundred kB (SDXL: ~2,500 tensors); anything larger is hostile.
constexpr uint64_t kMaxHeaderBytes = 64u << 20;

Error Corrupt(const std::string& what) {
  return Error::Make(ErrorCode::kInvalidRequest, "invalid safetensors file: " + what);
}

// The element count of `dims`, or an error for a non-integer dimension or an overflow.
Result<uint64_t> ElementCount(const std::string& name, const nlohmann::json& dims,
                              std::vector<int64_t>& shape) {
  uint64_t count = 1;
  for (const auto& d : dims) {
    if (!d.is_number_unsigned()) return Corrupt("tensor '" + name + "' has a bad dimension");
    const uint64_t v = d.get<uint64_t>();
    if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
        (v != 0 && count > std::numeric_limits<uint64_t>::max() / 8 / v)) {
      return Corrupt("tensor '" + name + "' shape overflows");
    }
    count *= v;
    shape.push_back(static_cast<int64_t>(v));
  }
  return count;
}

struct Range {
  uint64_t begin, end;
};

Result<TensorEntry> ParseEntry(const std::string& name, const nlohmann::json& entry,
                               std::string_view data, Range& range) {
  if (!entry.is_object()) return Corrupt("entry '" + name + "' is not an object");
  auto dtype = entry.find("dtype");
  auto shape = entry.find("shape");
  auto offsets = entry.find("data_offsets");
  if (dtype == entry.end() || !dtype->is_string() || shape == entry.end() || !shape->is_array() ||
      offsets == entry.end() || !offsets->is_array() || offsets->size() != 2 ||
      !(*offsets)[0].is_number_unsigned() || !(*offsets)[1].is_number_unsigned()) {
    return Corrupt("entry '" + name + "' lacks dtype, shape or data_offsets");
  }
  TensorEntry t;
  t.dtype = dtype->get<std::string>();
  const size_t element = SafetensorsDtypeSize(t.dtype);
  if (element == 0) return Corrupt("tensor '" + name + "' has unknown dtype '" + t.dtype + "'");
  auto count = ElementCount(name, *shape, t.shape);
  if (!count) return count.error();
  range = {(*offsets)[0].get<uint64_t>(), (*offsets)[1].get<uint64_t>()};
  if (range.begin > range.end || range.end > data.size()) {
    return Corrupt("tensor '" + name + "' data_offsets [" + std::to_string(range.begin) + ", " +
                   std::to_string(range.end) + "] lie outside the " + std::to_string(data.size()) +
                   "-byte data (truncated file?)");
  }
  if (range.end - range.begin != *count * element) {
    return Corrupt("tensor '" + name + "' has " + std::to_string(range.end - range.begin) +
                   " bytes but its dtype and shape need " + std::to_string(*count * element));
  }
  t.bytes = data.substr(range.begin, range.end - range.begin);
  return t;
}

Status CheckCoverage(std::vector<Range> ranges, uint64_t data_size) {
  std::sort(ranges.begin(), ranges.end(),
            [](const Range& a, const Range& b) { return a.begin < b.begin; });
  uint64_t cursor = 0;
  for (const auto& r : ranges) {
    if (r.begin < cursor) return Corrupt("tensor data ranges overlap");
    if (r.begin > cursor) return Corrupt("gap in the tensor data");
    cursor = r.end;
  }
  if (cursor != data_size) return Corrupt("trailing bytes after the last tensor");
  return Status::Ok();
}

}  // namespace

size_t SafetensorsDtypeSize(std::string_view dtype) {
  if (dtype == "F64" || dtype == "I64" || dtype == "U64") return 8;
  if (dtype == "F32" || dtype == "I32" || dtype == "U32") return 4;
  if (dtype == "F16" || dtype == "BF16" || dtype == "I16" || dtype == "U16") return 2;
  if (dtype == "I8" || dtype == "U8" || dtype == "BOOL" || dtype == "F8_E4M3" ||
      dtype == "F8_E5M2") {
    return 1;
  }
  return 0;
}

Result<SafetensorsView> ParseSafetensorsView(std::string_view file) {
  if (file.size() < 8) return Corrupt("shorter than the 8-byte header length (truncated?)");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(file[static_cast<size_t>(i)]);
  if (n < 2 || n > kMaxHeaderBytes) {
    return Corrupt("header length " + std::to_string(n) + " out of bounds");
  }
  if (n > file.size() - 8) return Corrupt("the header is truncated");
  const std::string_view json_text = file.substr(8, n);
  nlohmann::json header = nlohmann::json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (header.is_discarded() || !header.is_object()) return Corrupt("header is not a JSON object");
  const std::string_view data = file.substr(8 + n);
  SafetensorsView view;
  std::vector<Range> ranges;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) return Corrupt("__metadata__ is not an object");
      for (const auto& [k, v] : entry.items()) {
        if (!v.is_string()) return Corrupt("__metadata__ value of '" + k + "' is not a string");
        view.metadata[k] = v.get<std::string>();
      }
      continue;
    }
    Range range{};
    auto parsed = ParseEntry(name, entry, data, range);
    if (!parsed) return parsed.error();
    ranges.push_back(range);
    view.tensors.emplace(name, std::move(*parsed));
  }
  if (auto covered = CheckCoverage(std::move(ranges), data.size()); !covered) {
    return covered.error();
  }
  return view;
}

Result<MappedFile> MappedFile::Open(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Error::Make(ErrorCode::kNotFound, "cannot open " + path.string());
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return Error::Make(ErrorCode::kInvalidRequest, path.string() + " is not a regular file");
  }
  const auto size = static_cast<size_t>(st.st_size);
  if (size == 0) {
    ::close(fd);
    return MappedFile(nullptr, 0);
  }
  void* data = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);  // the mapping keeps the file
  if (data == MAP_FAILED) {
    return Error::Make(ErrorCode::kInternal, "cannot map " + path.string());
  }
  return MappedFile(static_cast<const char*>(data), size);
}

MappedFile::MappedFile(MappedFile&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}

MappedFile& MappedFile::operator=(MappedFile&& other) noexcept {
  std::swap(data_, other.data_);
  std::swap(size_, other.size_);
  return *this;
}

MappedFile::~MappedFile() {
  if (data_ != nullptr) ::munmap(const_cast<char*>(data_), size_);
}

void MappedFile::Release(std::string_view range) const {
  if (data_ == nullptr || range.empty()) return;
  const auto page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  // Only whole pages inside the range: a neighbour tensor may share the first or last page.
  const auto begin = (reinterpret_cast<uintptr_t>(range.data()) + page - 1) / page * page;
  const auto end = (reinterpret_cast<uintptr_t>(range.data()) + range.size()) / page * page;
  if (end > begin) {
    ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
  }
}

}  // namespace imagegen::sd
