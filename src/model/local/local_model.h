// The embedded text-to-image engine ("local" provider): a small pixel-space diffusion model
// (word tokenizer, transformer text encoder, UNet with cross-attention, DDIM sampler with
// classifier-free guidance) run with LibTorch on the CPU. LibTorch stays out of this header.
//
// Contract of the returned ImageModel:
//  - Limits(): the native size (config.json "native_size") first and default, then larger
//    squares up to 512 produced by bilinear upscaling of the native image.
//  - Generate() is thread-safe (weights shared read-only, all sampler state per call), checks
//    ctx.ShouldStop() before every sampler step, reports ctx.on_progress(step, total).
//  - Image i of a request starts from noise seeded by request.seed + i, so a request with
//    count 4 returns the same images as four requests with count 1 and consecutive seeds.
//  - Same prompt, negative prompt, seed, steps, guidance, size and thread count give
//    byte-identical pixels.
//  - Words the tokenizer does not know are reported as warnings (`unknown word: "x"`) and
//    skipped; the image is still generated. The negative prompt replaces the empty prompt as
//    the unconditional branch of guidance.
#pragma once

#include <memory>
#include <string>

#include "model/image_model.h"

namespace imagegen {

// Sets LibTorch's intra-op thread count (process-wide; `threads` <= 0 leaves it) and keeps
// OpenBLAS, when it is the system BLAS, at one thread of its own: torch's threads are the
// parallelism, and OpenBLAS's per-core threads inside each of them made 2-thread generation
// 2.8x slower (BENCHMARKS.md).
void SetEngineThreads(int threads);

// Loads config.json + model.safetensors from `path` (a directory, or a .safetensors file with
// config.json beside it). Refuses (kInvalidRequest / kNotFound, with a message naming the file
// and the problem) a missing, corrupt, truncated or mismatched file. `threads` goes to
// SetEngineThreads.
Result<std::unique_ptr<ImageModel>> LoadLocalModel(const std::string& path, int threads);

// Directory of a model shipped in models/NAME: the first existing of <dir of
// /proc/self/exe>/../models/NAME, <exe dir>/models/NAME, ./models/NAME,
// /usr/share/imagegen/models/NAME (the last one when none exists).
std::string BundledModelPath(const std::string& name);
// BundledModelPath("local"), the shapes model (app/config's IMAGEGEN_MODEL_DIR overrides it).
std::string DefaultLocalModelPath();

}  // namespace imagegen
