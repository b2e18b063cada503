#include "model/testing/test_model.h"

#include <algorithm>
#include <cmath>
#include <thread>

#include "image/codec.h"
#include "image/png.h"

namespace imagegen {
namespace {

uint64_t Fnv1a(const std::string& text, uint64_t hash = 1469598103934665603ULL) {
  for (unsigned char c : text) {
    hash ^= c;
    hash *= 1099511628211ULL;
  }
  return hash;
}

// Transparency as a model that draws an object on nothing would: an opaque centred disc whose
// radius is a third of the smaller side, fully transparent outside it.
void AddDiscAlpha(Image* image) {
  image->alpha.assign(static_cast<size_t>(image->width) * image->height, 0);
  int64_t cx = image->width / 2, cy = image->height / 2;
  int64_t r = std::min(image->width, image->height) / 3;
  for (int y = 0; y < image->height; ++y) {
    for (int x = 0; x < image->width; ++x) {
      int64_t dx = x - cx, dy = y - cy;
      if (dx * dx + dy * dy <= r * r) image->alpha[static_cast<size_t>(y) * image->width + x] = 255;
    }
  }
}

// A gradient whose colours come from the prompt and seed: cheap, deterministic, and different
// for different inputs, which is all the tests need to tell outputs apart.
Image Render(const ValidRequest& request, int64_t seed, bool makes_alpha) {
  uint64_t h = Fnv1a(request.prompt + "\x1f" + request.negative_prompt,
                     static_cast<uint64_t>(seed) * 0x9E3779B97F4A7C15ULL + 1);
  Image image(request.width, request.height);
  for (int y = 0; y < image.height; ++y) {
    for (int x = 0; x < image.width; ++x) {
      uint8_t* p = image.Pixel(x, y);
      p[0] = static_cast<uint8_t>((h & 0xFF) ^ static_cast<uint64_t>(x * 255 / image.width));
      p[1] =
          static_cast<uint8_t>(((h >> 8) & 0xFF) ^ static_cast<uint64_t>(y * 255 / image.height));
      p[2] = static_cast<uint8_t>((h >> 16) & 0xFF);
    }
  }
  if (makes_alpha && request.background == Background::kTransparent) AddDiscAlpha(&image);
  return image;
}

Result<Image> DecodeAtSize(const std::string& bytes, const char* field, int width, int height) {
  auto decoded = DecodeImage(bytes);
  if (!decoded.ok()) {
    Error e = decoded.error();
    e.field = field;
    return e;
  }
  Image image = std::move(decoded->image);
  image.alpha.clear();
  if (image.width == width && image.height == height) return image;
  return ResizeNearest(image, width, height);
}

// See the header: the repaint area moves towards the negative by strength.
Result<Image> RenderEdit(const ValidRequest& request) {
  auto image = DecodeAtSize(request.init_image, "image", request.width, request.height);
  if (!image.ok()) return image;
  std::optional<Image> mask;
  if (!request.mask.empty()) {
    auto decoded = DecodeAtSize(request.mask, "mask", request.width, request.height);
    if (!decoded.ok()) return decoded;
    mask = std::move(decoded.value());
  }
  for (size_t i = 0, n = static_cast<size_t>(image->width) * image->height; i < n; ++i) {
    if (mask && mask->rgb[i * 3] < 128) continue;
    for (size_t c = 0; c < 3; ++c) {
      int v = image->rgb[i * 3 + c];
      v += static_cast<int>(std::lround(request.strength * (255 - 2 * v)));
      image->rgb[i * 3 + c] = static_cast<uint8_t>(std::clamp(v, 0, 255));
    }
  }
  return image;
}

Preview Fade(const Image& image, int index, int step, int total) {
  Preview preview{index, step, total, image.width, image.height, image.rgb};
  for (auto& v : preview.rgb) v = static_cast<uint8_t>(128 + (v - 128) * step / total);
  return preview;
}

class TestModel final : public ImageModel {
 public:
  TestModel(int delay_ms, std::optional<ErrorCode> fail, bool alpha, bool edits, bool previews)
      : delay_ms_(delay_ms), fail_(fail), previews_(previews) {
    limits_.makes_alpha = alpha;
    limits_.edits = edits;
    limits_.sizes = {{64, 64}, {128, 128}, {256, 256}, {512, 512}, {1024, 1024}, {768, 512}};
    limits_.default_steps = 4;
    limits_.max_steps = 50;
    limits_.max_count = 4;
  }
  std::string Name() const override { return "test"; }
  const ModelLimits& Limits() const override { return limits_; }

  Result<ModelOutput> Generate(const ValidRequest& request, const GenerateContext& ctx) override {
    if (fail_) return Error::Make(*fail_, "test model told to fail");
    ModelOutput out;
    for (int i = 0; i < request.count; ++i) {
      auto image = request.init_image.empty()
                       ? Result<Image>(Render(request, request.seed + i, limits_.makes_alpha))
                       : RenderEdit(request);
      if (!image.ok()) return image.error();
      for (int step = 1; step <= request.steps; ++step) {
        if (auto stop = ctx.ShouldStop()) return *stop;
        if (delay_ms_ > 0) {
          std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms_ / request.steps));
        }
        if (ctx.on_progress)
          ctx.on_progress(i * request.steps + step, request.count * request.steps);
        if (WantsPreview(ctx, step, request.steps)) {
          ctx.on_preview(Fade(image.value(), i, step, request.steps));
        }
      }
      out.images.push_back(std::move(image.value()));
    }
    if (request.prompt.find("croissant") != std::string::npos) {
      out.warnings.push_back("unknown word: \"croissant\"");
    }
    return out;
  }

 private:
  bool WantsPreview(const GenerateContext& ctx, int step, int total) const {
    return previews_ && ctx.on_preview && ctx.preview_every > 0 && step < total &&
           step % ctx.preview_every == 0;
  }

  int delay_ms_;
  std::optional<ErrorCode> fail_;
  bool previews_;
  ModelLimits limits_;
};

}  // namespace

Result<std::unique_ptr<ImageModel>> MakeTestModel(const std::string& spec) {
  int delay_ms = 0;
  std::optional<ErrorCode> fail;
  bool alpha = true, edits = true, previews = true;
  size_t q = spec.find('?');
  std::string query = q == std::string::npos ? "" : spec.substr(q + 1);
  size_t start = 0;
  while (start < query.size()) {
    size_t end = query.find('&', start);
    if (end == std::string::npos) end = query.size();
    std::string pair = query.substr(start, end - start);
    size_t eq = pair.find('=');
    std::string name = pair.substr(0, eq),
                value = eq == std::string::npos ? "" : pair.substr(eq + 1);
    if (name == "delay_ms") {
      delay_ms = std::atoi(value.c_str());
    } else if (name == "alpha") {  // alpha=0: a model that cannot make transparency
      alpha = value != "0";
    } else if (name == "edits") {  // edits=0: a model that cannot edit
      edits = value != "0";
    } else if (name == "previews") {  // previews=0: a model without intermediate images
      previews = value != "0";
    } else if (name == "fail") {
      fail = ErrorCodeFromName(value);
      if (!fail) return Error::Invalid("model", "unknown error code in test model spec: " + value);
    } else {
      return Error::Invalid("model", "unknown test model option: " + name);
    }
    start = end + 1;
  }
  return std::unique_ptr<ImageModel>(
      std::make_unique<TestModel>(delay_ms, fail, alpha, edits, previews));
}

}  // namespace imagegen
