// ImageModel: the seam between the pipeline and whatever makes pixels
// (the embedded engine, Amazon Bedrock, the test model).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <utility>
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

  // The model that serves a request naming `model` (empty: none) for `prompt`: this one when the
  // name is empty or its own; a router (routed/) answers with one of its members. nullptr: the
  // name is of no model here. The pipeline validates against the answer's Limits() and reports
  // its Name() (in ValidRequest::model); generation still goes through this model's Generate().
  virtual const ImageModel* Serving(const std::string& model, const std::string& prompt) const {
    (void)prompt;
    return model.empty() || model == Name() ? this : nullptr;
  }
  // Every name Serving() answers to: the model's own, and a router's members'.
  virtual std::vector<std::string> ServedNames() const { return {Name()}; }
  // How many of the prompt's words the model knows, for a model with a closed vocabulary (the
  // models this project trains); nullopt where the model does not say. A router picks by it.
  virtual std::optional<int> KnownWordCount(const std::string& prompt) const {
    (void)prompt;
    return std::nullopt;
  }
};

// Base of decorators (metering, checks before generating): everything but Generate() answers as
// the wrapped model does, so a decorated router still routes.
class ModelDecorator : public ImageModel {
 public:
  explicit ModelDecorator(std::shared_ptr<ImageModel> inner) : inner_(std::move(inner)) {}
  std::string Name() const override { return inner_->Name(); }
  const ModelLimits& Limits() const override { return inner_->Limits(); }
  const ImageModel* Serving(const std::string& model, const std::string& prompt) const override {
    return inner_->Serving(model, prompt);
  }
  std::vector<std::string> ServedNames() const override { return inner_->ServedNames(); }
  std::optional<int> KnownWordCount(const std::string& prompt) const override {
    return inner_->KnownWordCount(prompt);
  }

 protected:
  ImageModel& inner() { return *inner_; }

 private:
  std::shared_ptr<ImageModel> inner_;
};

}  // namespace imagegen
