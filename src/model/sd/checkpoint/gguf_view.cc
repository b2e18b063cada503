#include "model/sd/checkpoint/gguf_view.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

namespace imagegen::sd {
namespace {

constexpr uint64_t kMaxCount = 1u << 20;  // tensors or metadata pairs; SDXL has ~2,500 tensors
constexpr int kMaxDims = 4;               // ggml's GGML_MAX_DIMS
constexpr int kMaxNesting = 4;            // arrays of arrays of ...
constexpr uint64_t kQ8Block = 32, kQ8BlockBytes = 34;

Error Corrupt(const std::string& what) {
  return Error::Make(ErrorCode::kInvalidRequest, "invalid GGUF file: " + what);
}

// Reads little-endian values from a byte range; every read checks the room left.
class Cursor {
 public:
  explicit Cursor(std::string_view bytes) : bytes_(bytes) {}
  template <typename T>
  bool Read(T* value) {
    if (Left() < sizeof(T)) return false;
    std::memcpy(value, bytes_.data() + at_, sizeof(T));
    at_ += sizeof(T);
    return true;
  }
  bool ReadString(std::string* out) {
    uint64_t n = 0;
    if (!Read(&n) || n > Left()) return false;
    out->assign(bytes_.data() + at_, n);
    at_ += n;
    return true;
  }
  bool Skip(uint64_t n) {
    if (n > Left()) return false;
    at_ += n;
    return true;
  }
  size_t Left() const { return bytes_.size() - at_; }
  size_t At() const { return at_; }

 private:
  std::string_view bytes_;
  size_t at_ = 0;
};

// GGUF metadata value types.
enum ValueType : uint32_t {
  kU8 = 0,
  kI8,
  kU16,
  kI16,
  kU32,
  kI32,
  kF32,
  kBool,
  kString,
  kArray,
  kU64,
  kI64,
  kF64
};

size_t ScalarSize(uint32_t type) {
  switch (type) {
    case kU8:
    case kI8:
    case kBool:
      return 1;
    case kU16:
    case kI16:
      return 2;
    case kU32:
    case kI32:
    case kF32:
      return 4;
    case kU64:
    case kI64:
    case kF64:
      return 8;
    default:
      return 0;
  }
}

Status SkipValue(Cursor& in, uint32_t type, int depth) {
  if (type == kString) {
    std::string ignored;
    return in.ReadString(&ignored) ? Status::Ok() : Corrupt("a metadata string runs past the end");
  }
  if (type == kArray) {
    uint32_t element = 0;
    uint64_t count = 0;
    if (depth >= kMaxNesting) return Corrupt("metadata arrays nested too deep");
    if (!in.Read(&element) || !in.Read(&count)) return Corrupt("a metadata array is truncated");
    if (const size_t size = ScalarSize(element)) {
      if (count > in.Left() / size || !in.Skip(count * size)) {
        return Corrupt("a metadata array runs past the end");
      }
      return Status::Ok();
    }
    if (element != kString && element != kArray) return Corrupt("unknown metadata array type");
    if (count > in.Left() / 8) return Corrupt("a metadata array runs past the end");
    for (uint64_t i = 0; i < count; ++i) {
      if (auto s = SkipValue(in, element, depth + 1); !s) return s;
    }
    return Status::Ok();
  }
  const size_t size = ScalarSize(type);
  if (size == 0) return Corrupt("unknown metadata value type " + std::to_string(type));
  return in.Skip(size) ? Status::Ok() : Corrupt("a metadata value runs past the end");
}

// One metadata pair: strings are kept, general.alignment read, the rest skipped.
Status ReadPair(Cursor& in, SafetensorsView& view, uint64_t* alignment) {
  std::string key;
  uint32_t type = 0;
  if (!in.ReadString(&key) || !in.Read(&type)) return Corrupt("a metadata key is truncated");
  if (type == kString) {
    std::string value;
    if (!in.ReadString(&value)) return Corrupt("metadata '" + key + "' runs past the end");
    view.metadata[key] = std::move(value);
    return Status::Ok();
  }
  if (key == "general.alignment" && type == kU32) {
    uint32_t value = 0;
    if (!in.Read(&value)) return Corrupt("general.alignment is truncated");
    if (value == 0 || (value & (value - 1)) != 0 || value > (1u << 20)) {
      return Corrupt("general.alignment " + std::to_string(value) + " is not a power of two");
    }
    *alignment = value;
    return Status::Ok();
  }
  return SkipValue(in, type, 0);
}

// The ggml type's name as the views carry it ("" for one imagegen does not read).
std::string TypeName(uint32_t type) {
  switch (type) {
    case 0:
      return "F32";
    case 1:
      return "F16";
    case 8:
      return "Q8_0";
    case 28:
      return "F64";
    case 30:
      return "BF16";
    default:
      return "";
  }
}

std::string ForeignTypeName(uint32_t type) {
  static const char* kNames[] = {"F32",  "F16",  "Q4_0", "Q4_1", "Q4_2", "Q4_3", "Q5_0", "Q5_1",
                                 "Q8_0", "Q8_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q8_K"};
  if (type < std::size(kNames)) return kNames[type];
  return "ggml type " + std::to_string(type);
}

struct Placed {
  std::string name;
  uint64_t offset, size;
};

Result<TensorEntry> ReadTensorInfo(Cursor& in, std::string* name, uint64_t* offset) {
  uint32_t dims = 0, type = 0;
  if (!in.ReadString(name) || !in.Read(&dims)) return Corrupt("a tensor entry is truncated");
  if (dims < 1 || dims > kMaxDims) {
    return Corrupt("tensor '" + *name + "' has " + std::to_string(dims) + " dimensions");
  }
  TensorEntry entry;
  uint64_t count = 1;
  for (uint32_t d = 0; d < dims; ++d) {
    uint64_t n = 0;
    if (!in.Read(&n)) return Corrupt("tensor '" + *name + "' is truncated");
    if (n > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
        (n != 0 && count > std::numeric_limits<uint64_t>::max() / 8 / n)) {
      return Corrupt("tensor '" + *name + "' shape overflows");
    }
    count *= n;
    entry.shape.insert(entry.shape.begin(), static_cast<int64_t>(n));  // outermost first
  }
  if (!in.Read(&type) || !in.Read(offset)) return Corrupt("tensor '" + *name + "' is truncated");
  entry.dtype = TypeName(type);
  if (entry.dtype.empty()) {
    return Error::Invalid("model", "tensor '" + *name + "' is " + ForeignTypeName(type) +
                                       "; imagegen reads GGUF tensors of F32, F16, BF16 and Q8_0");
  }
  if (entry.dtype == "Q8_0" && entry.shape.back() % static_cast<int64_t>(kQ8Block) != 0) {
    return Corrupt("Q8_0 tensor '" + *name + "' has rows that are not whole blocks of 32");
  }
  return entry;
}

Status CheckPlacement(std::vector<Placed> placed) {
  std::sort(placed.begin(), placed.end(),
            [](const Placed& a, const Placed& b) { return a.offset < b.offset; });
  for (size_t i = 1; i < placed.size(); ++i) {
    if (placed[i].offset < placed[i - 1].offset + placed[i - 1].size) {
      return Corrupt("tensors '" + placed[i - 1].name + "' and '" + placed[i].name + "' overlap");
    }
  }
  return Status::Ok();
}

float HalfToFloat(uint16_t h) {
  const uint32_t sign = (h >> 15) & 1, exponent = (h >> 10) & 0x1f, mantissa = h & 0x3ff;
  float magnitude;
  if (exponent == 0) {
    magnitude = std::ldexp(static_cast<float>(mantissa), -24);
  } else if (exponent == 31) {
    magnitude =
        mantissa ? std::numeric_limits<float>::quiet_NaN() : std::numeric_limits<float>::infinity();
  } else {
    magnitude = std::ldexp(static_cast<float>(mantissa | 0x400), static_cast<int>(exponent) - 25);
  }
  return sign ? -magnitude : magnitude;
}

}  // namespace

bool IsGguf(std::string_view file) { return file.substr(0, 4) == "GGUF"; }

size_t StoredByteSize(std::string_view dtype, uint64_t count) {
  if (dtype == "Q8_0") return count % kQ8Block ? 0 : count / kQ8Block * kQ8BlockBytes;
  return SafetensorsDtypeSize(dtype) * count;
}

void DequantizeQ8_0(std::string_view bytes, float* out) {
  for (size_t block = 0; block + kQ8BlockBytes <= bytes.size(); block += kQ8BlockBytes) {
    uint16_t half = 0;
    std::memcpy(&half, bytes.data() + block, 2);
    const float scale = HalfToFloat(half);
    const auto* q = reinterpret_cast<const int8_t*>(bytes.data() + block + 2);
    for (uint64_t i = 0; i < kQ8Block; ++i) *out++ = scale * static_cast<float>(q[i]);
  }
}

Result<SafetensorsView> ParseGgufView(std::string_view file) {
  Cursor in(file);
  uint32_t magic = 0, version = 0;
  uint64_t tensors = 0, pairs = 0;
  if (!IsGguf(file) || !in.Read(&magic)) return Corrupt("no GGUF magic");
  if (!in.Read(&version) || (version != 2 && version != 3)) {
    return Corrupt("version " + std::to_string(version) + " (imagegen reads 2 and 3)");
  }
  if (!in.Read(&tensors) || !in.Read(&pairs)) return Corrupt("the header is truncated");
  if (tensors > kMaxCount || pairs > kMaxCount) return Corrupt("implausible tensor or key count");
  SafetensorsView view;
  uint64_t alignment = 32;
  for (uint64_t i = 0; i < pairs; ++i) {
    if (auto s = ReadPair(in, view, &alignment); !s) return s.error();
  }
  std::vector<std::pair<std::string, uint64_t>> offsets;
  for (uint64_t i = 0; i < tensors; ++i) {
    std::string name;
    uint64_t offset = 0;
    auto entry = ReadTensorInfo(in, &name, &offset);
    if (!entry) return entry.error();
    if (!view.tensors.emplace(name, std::move(*entry)).second) {
      return Corrupt("tensor '" + name + "' appears twice");
    }
    offsets.emplace_back(name, offset);
  }
  const uint64_t data_begin = (in.At() + alignment - 1) / alignment * alignment;
  if (data_begin > file.size()) return Corrupt("the tensor data is missing (truncated file?)");
  const std::string_view data = file.substr(data_begin);
  std::vector<Placed> placed;
  for (const auto& [name, offset] : offsets) {
    TensorEntry& entry = view.tensors.at(name);
    uint64_t count = 1;
    for (int64_t d : entry.shape) count *= static_cast<uint64_t>(d);
    const uint64_t size = StoredByteSize(entry.dtype, count);
    if (offset % alignment != 0) return Corrupt("tensor '" + name + "' is not aligned");
    if (offset > data.size() || size > data.size() - offset) {
      return Corrupt("tensor '" + name + "' lies past the end of the file (truncated file?)");
    }
    entry.bytes = data.substr(offset, size);
    placed.push_back({name, offset, size});
  }
  if (auto s = CheckPlacement(std::move(placed)); !s) return s.error();
  return view;
}

}  // namespace imagegen::sd
