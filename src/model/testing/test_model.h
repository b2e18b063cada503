// A deterministic, fast ImageModel for tests and benchmarks. Compiled only when
// IMAGEGEN_TEST_MODEL is ON (development builds); release packaging turns it off.
#pragma once

#include <memory>
#include <string>

#include "model/image_model.h"

namespace imagegen {

// spec: "test" or "test?delay_ms=N&fail=CODE" (delay per image; fail every call with CODE,
// e.g. fail=upstream_timeout) — knobs that let tests exercise saturation and error paths.
Result<std::unique_ptr<ImageModel>> MakeTestModel(const std::string& spec);

}  // namespace imagegen
