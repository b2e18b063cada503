// GGUF files (the format of ggml and stable-diffusion.cpp's converted checkpoints) read in
// place, as the same view safetensors files give: each tensor's dtype, shape (outermost first,
// as torch and safetensors order it; GGUF stores the innermost first) and bytes inside the
// mapping. No LibTorch here, so the parser can be fuzzed on its own (checkpoint_fuzz.cc).
//
// Format (little-endian): "GGUF", u32 version (2 or 3), u64 tensor count, u64 metadata count;
// each metadata pair a string key (u64 length + bytes), a u32 value type and the value; each
// tensor a name, u32 dimension count (1..4), u64 dimensions, u32 ggml type, u64 offset; the data
// after padding to general.alignment (default 32), each tensor at its offset from there.
#pragma once

#include <string_view>

#include "core/error.h"
#include "model/sd/checkpoint/safetensors_view.h"

namespace imagegen::sd {

// Tensor types read: F32, F16, BF16, F64 (as the safetensors names) and "Q8_0" (blocks of 32
// values: a float16 scale, then 32 int8; value = scale * q), whose innermost dimension must be
// a multiple of 32. Other ggml types (Q4_0, Q4_K, ...) are refused by name. String metadata is
// kept in `metadata`. kInvalidRequest, naming what is wrong, for: a wrong magic or version,
// counts or lengths past the end of the file, a bad alignment, dimensions that overflow,
// misaligned or overlapping data, a tensor past the end (a truncated file).
Result<SafetensorsView> ParseGgufView(std::string_view file);

// Whether `file` starts with GGUF's magic.
bool IsGguf(std::string_view file);

// Bytes of `count` values stored as `dtype` ("Q8_0" included); 0 when not a whole number of
// values (a Q8_0 count that is not a multiple of 32) or the dtype is unknown.
size_t StoredByteSize(std::string_view dtype, uint64_t count);

// Q8_0 blocks -> float32: `bytes` holds count / 32 blocks, `out` room for count values.
void DequantizeQ8_0(std::string_view bytes, float* out);

}  // namespace imagegen::sd
