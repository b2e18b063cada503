// A deterministic, fast ImageModel for tests and benchmarks. Compiled only when
// IMAGEGEN_TEST_MODEL is ON (development builds); release packaging turns it off.
#pragma once

#include <memory>
#include <string>

#include "model/image_model.h"

namespace imagegen {

// spec: "test" or "test?delay_ms=N&fail=CODE&alpha=0" (delay per image; fail every call with
// CODE, e.g. fail=upstream_timeout; alpha=0: no transparency, as the real models) — knobs that
// let tests exercise saturation and error paths. With alpha (the default) a transparent
// background gives an opaque centred disc on transparent pixels.
Result<std::unique_ptr<ImageModel>> MakeTestModel(const std::string& spec);

}  // namespace imagegen
