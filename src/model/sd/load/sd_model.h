// `--model sd:PATH`: a Stable Diffusion checkpoint as users have it (a diffusers folder or a
// single-file original-layout *.safetensors; src/model/sd/checkpoint says what is read and
// refused), run by the pipeline of model/sd/model/sd_pipeline.h. LibTorch stays out of this header:
// the composition root includes it.
#pragma once

#include <memory>
#include <string>

#include "model/image_model.h"

namespace imagegen {

// Loads the checkpoint at `path` once (weights as float32 on the CPU) and returns its model,
// named "sd:<last component of path>". `threads` > 0 sets LibTorch's intra-op threads
// (process-wide). Errors: kNotFound for a missing path; kInvalidRequest naming the problem for
// a checkpoint that cannot be read or whose family is not SD 1.x, 2.x or SD-Turbo (SDXL is
// refused).
Result<std::unique_ptr<ImageModel>> LoadSdModel(const std::string& path, int threads);

}  // namespace imagegen
