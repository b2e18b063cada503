// ImageModel: the seam between the pipeline and whatever makes pixels
// (the embedded engine, Amazon Bedrock, the test model).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/context.h"
#include "core/error.h"
#include "core/request.h"
#include "image/image.h"

namespace imagegen {

struct ModelOutput {
  std::vector<Image> images;          // request.count images of request.width x request.height
  std::vector<std::string> warnings;  // e.g. words the model does not know
  // The seed each image was made with, where the model knows better than request.seed + index
  // (Stability reports the seed it chose; seed 0 asks it for a random one). Empty: seed + index.
  std::vector<int64_t> seeds;
};

class ImageModel {
 public:
  virtual ~ImageModel() = default;
  // The model's identifier as reported in results, e.g. "local", "bedrock:amazon.nova-canvas-v1:0".
  virtual std::string Name() const = 0;
  virtual const ModelLimits& Limits() const = 0;
  // Thread-safe: may be called concurrently from several requests.
  virtual Result<ModelOutput> Generate(const ValidRequest& request, const GenerateContext& ctx) = 0;
};

}  // namespace imagegen
