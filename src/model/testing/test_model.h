// A deterministic, fast ImageModel for tests and benchmarks. Compiled only when
// IMAGEGEN_TEST_MODEL is ON (development builds); release packaging turns it off.
#pragma once

#include <memory>
#include <string>

#include "model/image_model.h"

namespace imagegen {

// spec: "test" or "test?delay_ms=N&fail=CODE&alpha=0&edits=0&previews=0" (delay per image; fail
// every call with CODE, e.g. fail=upstream_timeout; alpha=0: no transparency, as the real
// models; edits=0: text-to-image only; previews=0: no intermediate images) — knobs that let
// tests exercise saturation and error paths. With alpha (the default) a transparent background
// gives an opaque centred disc on transparent pixels.
//
// Edits (init_image, optional mask) are a transform a test can recompute: the source is scaled
// (nearest) to the requested size, and every pixel to repaint (all of them without a mask;
// with one, those whose mask red channel is >= 128) moves towards its negative by strength:
// v + round(strength * (255 - 2v)). Pixels outside the mask stay as they were.
// Previews (GenerateContext::on_preview) come every preview_every steps before the last: the
// final image faded towards grey 128 as step/total, at the requested size.
Result<std::unique_ptr<ImageModel>> MakeTestModel(const std::string& spec);

}  // namespace imagegen
