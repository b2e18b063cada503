// libFuzzer target for the safetensors reader (built with -DIMAGEGEN_FUZZ=ON and clang):
// any input must give an error or a self-consistent file, never a crash.
#include <cstddef>
#include <cstdint>
#include <string>

#include "model/local/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto f = imagegen::ParseSafetensors(std::string(reinterpret_cast<const char*>(data), size));
  if (f.ok()) {
    for (const auto& [name, t] : f->tensors) {
      if (t.end > f->data.size() || t.begin > t.end) __builtin_trap();
    }
  }
  return 0;
}
