#include "model/sd/model/sd_pipeline.h"

#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "image/codec.h"
#include "image/png.h"
#include "model/sd/sampling/sampler.h"

namespace imagegen::sd {
namespace {

// Above this many latent pixels (768x768 images) the VAE decodes tile by tile: a full decode's
// activations grow with the area (several GB at 1024x1024).
constexpr int64_t kTiledDecodeAbove = 96 * 96;

// Previews map latents to RGB linearly: fitted (least squares, with a bias) once per model on
// one VAE decode of random latents, each f x f block of the decoded image averaged against its
// latent pixel. Costs one small decode at the first preview; fits whatever VAE the checkpoint
// has instead of trusting a table made for another.
constexpr int kPreviewFitLatents = 16;

struct SdFamilyDefaults {
  int native = 64;  // latent pixels a side
  std::string sampler;
  int steps = 25;
  double guidance = 7.5;
  int max_steps = 100;
};

SdFamilyDefaults DefaultsOf(SdFamily family) {
  switch (family) {
    case SdFamily::kSd2V:
      return {96, "dpmpp_2m_karras", 25, 7.5, 100};
    case SdFamily::kSdTurbo:
    case SdFamily::kSdxlTurbo:
      return {64, "turbo", 1, 0.0, 10};
    case SdFamily::kSdxl:
      return {128, "dpmpp_2m_karras", 25, 7.5, 100};
    case SdFamily::kSd1:
    case SdFamily::kSd2:
      break;
  }
  return {64, "dpmpp_2m_karras", 25, 7.5, 100};
}

// One image's edit inputs, as tensors at the request's size.
struct EditInputs {
  torch::Tensor image;  // [1, 3, H, W] in [-1, 1]
  torch::Tensor mask;   // [1, 1, H, W], 1 = repaint; undefined without a mask
};

torch::Tensor ImageToTensor(const Image& image) {
  auto bytes = torch::from_blob(const_cast<uint8_t*>(image.rgb.data()),
                                {image.height, image.width, 3}, torch::kUInt8);
  return (bytes.to(torch::kFloat32) / 255.0f * 2.0f - 1.0f).permute({2, 0, 1}).unsqueeze(0);
}

// diffusers' mask processor: grayscale as PIL's "L" (ITU-R 601-2 luma in 16-bit fixed point),
// then binarised at 0.5.
torch::Tensor MaskToTensor(const Image& mask) {
  auto out = torch::empty({1, 1, mask.height, mask.width});
  float* p = out.data_ptr<float>();
  for (size_t i = 0, n = static_cast<size_t>(mask.width) * mask.height; i < n; ++i) {
    const uint8_t* rgb = &mask.rgb[i * 3];
    const uint32_t luma = (rgb[0] * 19595u + rgb[1] * 38470u + rgb[2] * 7471u + 0x8000u) >> 16;
    p[i] = luma / 255.0f >= 0.5f ? 1.0f : 0.0f;
  }
  return out;
}

Result<Image> DecodeAtSize(const std::string& bytes, const std::string& field, int width,
                           int height, std::vector<std::string>* warnings) {
  auto decoded = DecodeImage(bytes);
  if (!decoded) {
    Error e = decoded.error();
    e.field = field;
    e.message = field + ": " + e.message;
    return e;
  }
  Image image = std::move(decoded->image);
  if (image.width != width || image.height != height) {
    warnings->push_back(field + " resized from " + std::to_string(image.width) + "x" +
                        std::to_string(image.height) + " to " + std::to_string(width) + "x" +
                        std::to_string(height));
    image = ResizeNearest(image, width, height);
  }
  return image;
}

Image TensorToImage(const torch::Tensor& chw) {
  // numpy_to_pil: (x * 255).round() of x = clamp(decoded / 2 + 0.5, 0, 1).
  auto bytes = ((chw / 2 + 0.5).clamp(0, 1) * 255).round().to(torch::kUInt8);
  bytes = bytes.permute({1, 2, 0}).contiguous();
  Image image(static_cast<int>(bytes.size(1)), static_cast<int>(bytes.size(0)));
  std::memcpy(image.rgb.data(), bytes.data_ptr<uint8_t>(), image.rgb.size());
  return image;
}

// [1, 4, h, w] latents -> an RGB preview of h x w through `map` ([5, 3]: 4 channels + bias).
Preview LatentPreview(const torch::Tensor& x0, const torch::Tensor& map, int index, int step,
                      int total) {
  auto pixels = x0[0].permute({1, 2, 0});  // [h, w, 4]
  auto rgb = torch::cat({pixels, torch::ones_like(pixels.select(2, 0)).unsqueeze(2)}, 2)
                 .matmul(map);  // [h, w, 3] in about [-1, 1]
  auto bytes = ((rgb / 2 + 0.5).clamp(0, 1) * 255).round().to(torch::kUInt8).contiguous();
  Preview preview;
  preview.index = index;
  preview.step = step;
  preview.total = total;
  preview.height = static_cast<int>(bytes.size(0));
  preview.width = static_cast<int>(bytes.size(1));
  preview.rgb.assign(bytes.data_ptr<uint8_t>(), bytes.data_ptr<uint8_t>() + bytes.numel());
  return preview;
}

class SdModel final : public ImageModel {
 public:
  SdModel(SdModelSpec spec, nlohmann::json scheduler_config)
      : spec_(std::move(spec)), scheduler_config_(std::move(scheduler_config)) {
    limits_ = SdLimits(spec_.family, spec_.networks->VaeDownscaleFactor(),
                       spec_.networks->UnetSampleSize(), spec_.networks->UnetSizeMultiple());
  }

  std::string Name() const override { return spec_.name; }
  const ModelLimits& Limits() const override { return limits_; }

  // Only imagegen's own checkpoints list their training words (training.json).
  std::optional<int> KnownWordCount(const std::string& prompt) const override {
    if (spec_.known_words.empty()) return std::nullopt;
    auto words = spec_.tokenizer->Words(prompt);
    if (!words) return 0;
    return static_cast<int>(std::count_if(words->begin(), words->end(), [&](const std::string& w) {
      return spec_.known_words.contains(w);
    }));
  }

  Result<ModelOutput> Generate(const ValidRequest& request, const GenerateContext& ctx) override {
    try {
      c10::InferenceMode inference;
      return GenerateImpl(request, ctx);
    } catch (const std::exception& e) {
      return Error::Make(ErrorCode::kInternal, std::string("sd model failed: ") + e.what());
    }
  }

 private:
  // One generation's fixed inputs, shared by its images.
  struct Job {
    SamplerKind sampler = SamplerKind::kEuler;
    SamplerOptions options;
    bool guided = false;
    TextStates text;         // [1 or 2, ...]: (uncond, cond) when guided
    torch::Tensor time_ids;  // SDXL's [1 or 2, 6]; undefined otherwise
    std::optional<EditInputs> edit;
  };

  Result<ModelOutput> GenerateImpl(const ValidRequest& request, const GenerateContext& ctx) {
    ModelOutput output;
    auto tagged = ExtractLoraTags(request.prompt);
    if (!tagged) return tagged.error();
    auto lease = spec_.networks->UseLoras(tagged->loras);
    if (!lease) return lease.error();
    auto job = PrepareJob(request, tagged->prompt, &output.warnings);
    if (!job) return job.error();
    for (int i = 0; i < request.count; ++i) {
      auto image = GenerateOne(request, *job, i, ctx);
      if (!image) return image.error();
      output.images.push_back(std::move(image).value());
      output.seeds.push_back(request.seed + i);
    }
    return output;
  }

  // `prompt`: the request's prompt without its LoRA tags.
  Result<Job> PrepareJob(const ValidRequest& request, const std::string& prompt,
                         std::vector<std::string>* warnings) const {
    Job job;
    const std::string& name = request.sampler.empty() ? limits_.samplers.front() : request.sampler;
    auto kind = SamplerFromName(name);
    if (!kind) return Error::Invalid("sampler", "unknown sampler \"" + name + "\"");
    job.sampler = *kind;
    auto options = SamplerOptionsFromConfig(scheduler_config_, job.sampler);
    if (!options) return options.error();
    job.options = *options;
    // diffusers guides only above 1; SD-Turbo's few-step mode is trained without guidance.
    job.guided = request.guidance > 1.0 && job.sampler != SamplerKind::kTurbo;
    auto cond = EncodePrompt(prompt, "prompt", warnings);
    if (!cond) return cond.error();
    job.text = *cond;
    if (job.guided) {
      auto uncond = EncodeNegative(request.negative_prompt, *cond, warnings);
      if (!uncond) return uncond.error();
      job.text = ConcatGuided(*uncond, *cond);
    }
    if (spec_.networks->SizeConditioned()) job.time_ids = SizeIds(request, job.guided ? 2 : 1);
    if (!request.init_image.empty()) {
      auto edit = PrepareEdit(request, warnings);
      if (!edit) return edit.error();
      job.edit = std::move(edit).value();
    }
    return job;
  }

  // The text encoders' states for `text`: one chunk of 77 ids per 75 tokens, concatenated
  // along the sequence (A1111's long prompts); for a short prompt exactly diffusers' input.
  // SDXL's pooled text comes from the first chunk, as A1111 takes it.
  Result<TextStates> EncodePrompt(const std::string& text, const std::string& field,
                                  std::vector<std::string>* warnings) const {
    auto chunks = Chunks(*spec_.tokenizer, text, field);
    if (!chunks) return chunks.error();
    std::vector<std::vector<int32_t>> chunks_2;
    if (spec_.tokenizer_2) {
      auto second = Chunks(*spec_.tokenizer_2, text, field);
      if (!second) return second.error();
      if (second->size() != chunks->size()) {
        return Error::Make(ErrorCode::kInternal,
                           "the two tokenizers split " + field + " into different chunks");
      }
      chunks_2 = std::move(second).value();
    }
    ReportUnknownWords(text, field, warnings);
    if (chunks->size() > 1) {
      warnings->push_back(field + " is longer than 75 tokens: encoded in " +
                          std::to_string(chunks->size()) + " chunks of 75 (A1111's way)");
    }
    std::vector<torch::Tensor> states;
    TextStates out;
    for (size_t i = 0; i < chunks->size(); ++i) {
      auto encoded = spec_.networks->EncodeText(
          IdsTensor((*chunks)[i]), chunks_2.empty() ? torch::Tensor() : IdsTensor(chunks_2[i]));
      if (i == 0) out.pooled = encoded.pooled;
      states.push_back(encoded.context);
    }
    out.context = torch::cat(states, 1);
    return out;
  }

  static Result<std::vector<std::vector<int32_t>>> Chunks(const ClipTokenizer& tokenizer,
                                                          const std::string& text,
                                                          const std::string& field) {
    auto chunks = tokenizer.EncodeChunks(text);
    if (!chunks) {
      Error e = chunks.error();
      e.field = field;
      return e;
    }
    return chunks;
  }

  static torch::Tensor IdsTensor(const std::vector<int32_t>& ids) {
    std::vector<int64_t> wide(ids.begin(), ids.end());
    return torch::tensor(wide, torch::kInt64).view({1, -1});
  }

  // The unconditional half: the negative prompt encoded, or for SDXL checkpoints that say so
  // and an empty negative prompt, zeros shaped as the prompt's states.
  Result<TextStates> EncodeNegative(const std::string& negative, const TextStates& cond,
                                    std::vector<std::string>* warnings) const {
    if (negative.empty() && spec_.zero_empty_negative) {
      return TextStates{torch::zeros_like(cond.context),
                        cond.pooled.defined() ? torch::zeros_like(cond.pooled) : torch::Tensor()};
    }
    return EncodePrompt(negative, "negative_prompt", warnings);
  }

  // SDXL's add_time_ids: original size, crop top-left, target size; (height, width) each.
  static torch::Tensor SizeIds(const ValidRequest& request, int batch) {
    const auto h = static_cast<float>(request.height), w = static_cast<float>(request.width);
    return torch::tensor({h, w, 0.0f, 0.0f, h, w}).view({1, 6}).expand({batch, 6}).contiguous();
  }

  void ReportUnknownWords(const std::string& text, const std::string& field,
                          std::vector<std::string>* warnings) const {
    if (spec_.known_words.empty()) return;
    auto words = spec_.tokenizer->Words(text);
    if (!words) return;  // EncodeChunks has refused the same text already
    const std::string what =
        field == "prompt" ? "unknown word: \"" : "unknown word in " + field + ": \"";
    std::set<std::string> reported;
    for (const std::string& word : *words) {
      if (spec_.known_words.contains(word) || !reported.insert(word).second) continue;
      warnings->push_back(what + word + "\"");
    }
  }

  // (uncond, cond) as one batch; the one with fewer chunks is padded with the empty prompt's
  // chunk, as A1111 pads.
  TextStates ConcatGuided(TextStates uncond, TextStates cond) const {
    if (uncond.context.size(1) != cond.context.size(1)) {
      auto empty = EncodeEmpty();
      while (uncond.context.size(1) < cond.context.size(1))
        uncond.context = torch::cat({uncond.context, empty}, 1);
      while (cond.context.size(1) < uncond.context.size(1))
        cond.context = torch::cat({cond.context, empty}, 1);
    }
    TextStates both{torch::cat({uncond.context, cond.context}, 0), torch::Tensor()};
    if (cond.pooled.defined()) both.pooled = torch::cat({uncond.pooled, cond.pooled}, 0);
    return both;
  }

  torch::Tensor EncodeEmpty() const {
    auto ids = IdsTensor(*spec_.tokenizer->Encode(""));
    auto ids_2 = spec_.tokenizer_2 ? IdsTensor(*spec_.tokenizer_2->Encode("")) : torch::Tensor();
    return spec_.networks->EncodeText(ids, ids_2).context;
  }

  Result<EditInputs> PrepareEdit(const ValidRequest& request,
                                 std::vector<std::string>* warnings) const {
    EditInputs edit;
    auto image =
        DecodeAtSize(request.init_image, "init_image", request.width, request.height, warnings);
    if (!image) return image.error();
    edit.image = ImageToTensor(*image);
    if (!request.mask.empty()) {
      auto mask = DecodeAtSize(request.mask, "mask", request.width, request.height, warnings);
      if (!mask) return mask.error();
      edit.mask = MaskToTensor(*mask);
    }
    return edit;
  }

  // The latents a step loop starts from, and what inpainting needs on every step.
  struct Start {
    torch::Tensor latents;
    torch::Tensor noise;           // the start noise (4-channel inpainting re-noises with it)
    torch::Tensor image_latents;   // the source's latents (4-channel inpainting)
    torch::Tensor mask_latents;    // [1, 1, h, w] (inpainting)
    torch::Tensor masked_latents;  // the masked source's latents (9-channel inpainting)
  };

  torch::Tensor EncodeScaled(const torch::Tensor& images, at::Generator& generator) const {
    return spec_.networks->EncodeImage(images, generator) * spec_.networks->VaeScalingFactor();
  }

  // diffusers' prepare_latents (and prepare_mask_latents), drawing from `generator` in the
  // same order.
  Start PrepareStart(const ValidRequest& request, const Job& job, const Sampler& sampler,
                     at::Generator& generator) const {
    Start start;
    const int f = spec_.networks->VaeDownscaleFactor();
    const std::vector<int64_t> shape = {1, 4, request.height / f, request.width / f};
    const bool full_strength = !job.edit || request.strength == 1.0;
    const bool inpaint = job.edit && job.edit->mask.defined();
    const bool nine = inpaint && spec_.networks->UnetInChannels() == 9;
    if (job.edit && (!full_strength || (inpaint && !nine))) {
      start.image_latents = EncodeScaled(job.edit->image, generator);
    }
    start.noise = torch::randn(shape, generator);
    start.latents = full_strength ? start.noise * sampler.InitNoiseSigma()
                                  : sampler.AddNoise(start.image_latents, start.noise, 0);
    if (inpaint) {
      // interpolate(mode="nearest") to the latent size: every f-th pixel.
      const auto& mask = job.edit->mask;
      start.mask_latents = mask.index({torch::indexing::Slice(), torch::indexing::Slice(),
                                       torch::indexing::Slice(0, torch::indexing::None, f),
                                       torch::indexing::Slice(0, torch::indexing::None, f)})
                               .contiguous();
      auto masked = job.edit->image * (mask < 0.5);
      start.masked_latents = EncodeScaled(masked, generator);
    }
    return start;
  }

  Result<Image> GenerateOne(const ValidRequest& request, const Job& job, int index,
                            const GenerateContext& ctx) const {
    auto sampler =
        Sampler::Create(job.sampler, job.options, request.steps, job.edit ? request.strength : 1.0);
    if (!sampler) return sampler.error();
    at::Generator generator =
        at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(request.seed + index));
    Start start = PrepareStart(request, job, *sampler, generator);
    const bool inpaint = start.mask_latents.defined();
    const bool nine = inpaint && spec_.networks->UnetInChannels() == 9;
    const int batch = job.guided ? 2 : 1;
    torch::Tensor x = start.latents;
    const int total = sampler->StepCount();
    for (int i = 0; i < total; ++i) {
      if (auto stop = ctx.ShouldStop()) return *stop;
      auto input = sampler->ScaleInput(batch == 2 ? torch::cat({x, x}, 0) : x, i);
      if (nine) {
        input = torch::cat({input, start.mask_latents.expand({batch, -1, -1, -1}),
                            start.masked_latents.expand({batch, -1, -1, -1})},
                           1);
      }
      auto t = torch::full({batch}, sampler->Timestep(i), torch::kFloat32);
      auto out = spec_.networks->Denoise(input, t, job.text.context, job.text.pooled, job.time_ids);
      if (job.guided) {
        auto parts = out.chunk(2, 0);
        out = parts[0] + request.guidance * (parts[1] - parts[0]);
      }
      auto step = sampler->Step(i, out, x, &generator);
      if (!step) return step.error();
      x = step->prev_sample;
      if (inpaint && !nine) {
        auto known = sampler->AddNoise(start.image_latents, start.noise, i + 1);
        x = (1 - start.mask_latents) * known + start.mask_latents * x;
      }
      if (ctx.on_progress) ctx.on_progress(i + 1, total);
      if (ctx.on_preview && ctx.preview_every > 0 && (i + 1) % ctx.preview_every == 0 &&
          i + 1 < total) {
        ctx.on_preview(LatentPreview(step->x0, PreviewMap(), index, i + 1, total));
      }
    }
    if (auto stop = ctx.ShouldStop()) return *stop;
    auto latents = x / spec_.networks->VaeScalingFactor();
    const bool tiled = latents.size(2) * latents.size(3) > kTiledDecodeAbove;
    return TensorToImage(spec_.networks->DecodeLatents(latents, tiled)[0]);
  }

  // The fitted latent->RGB map ([5, 3]), made at the first preview.
  torch::Tensor PreviewMap() const {
    std::call_once(preview_fit_once_, [this] {
      at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(0);
      const int n = kPreviewFitLatents;
      auto latents = torch::randn({1, 4, n, n}, generator);
      auto decoded = spec_.networks->DecodeLatents(latents / spec_.networks->VaeScalingFactor(),
                                                   /*tiled=*/false);
      auto blocks = torch::avg_pool2d(decoded, spec_.networks->VaeDownscaleFactor());
      auto a = torch::cat({latents[0].reshape({4, -1}).t(), torch::ones({n * n, 1})}, 1);
      auto b = blocks[0].reshape({3, -1}).t();
      // Normal equations with a little ridge, so a degenerate VAE still gives a finite map.
      auto ata = a.t().mm(a) + 1e-4 * torch::eye(5);
      // ATen's op, not torch::linalg::solve: LibTorch 2.x's C++ frontend dropped torch/linalg.h.
      preview_map_ = at::linalg_solve(ata, a.t().mm(b), /*left=*/true);
    });
    return preview_map_;
  }

  SdModelSpec spec_;
  nlohmann::json scheduler_config_;  // with the checkpoint's prediction type
  ModelLimits limits_;
  mutable std::once_flag preview_fit_once_;
  mutable torch::Tensor preview_map_;
};

}  // namespace

namespace {

// Latent sides: SD's 32..128 grid, and below it, for small models, half to twice the native
// side. Image sizes are those times the VAE's factor; the native one first (the default).
std::vector<std::pair<int, int>> SdSizes(int native, int multiple, int vae_factor) {
  std::vector<int> sides;
  if (native < 32) {
    const int step = std::max(multiple, native / 4);
    for (int s = std::max(step, native / 2 / step * step); s <= 2 * native; s += step) {
      if (s < 32) sides.push_back(s);
    }
  }
  for (int s = 32; s <= 128; s += 8) sides.push_back(s);
  std::vector<std::pair<int, int>> sizes = {{native * vae_factor, native * vae_factor}};
  for (int h : sides) {
    for (int w : sides) {
      if (w != native || h != native) sizes.emplace_back(w * vae_factor, h * vae_factor);
    }
  }
  return sizes;
}

}  // namespace

ModelLimits SdLimits(SdFamily family, int vae_factor, int native_latent, int multiple) {
  const SdFamilyDefaults defaults = DefaultsOf(family);
  const int native = native_latent > 0 ? native_latent : defaults.native;
  ModelLimits limits;
  limits.max_prompt_chars = 2000;  // long prompts go in chunks of 75 tokens
  limits.max_negative_prompt_chars = 2000;
  limits.sizes = SdSizes(native, std::max(1, multiple), vae_factor);
  limits.min_steps = 1;
  limits.max_steps = defaults.max_steps;
  limits.default_steps = defaults.steps;
  limits.min_guidance = 0;
  limits.max_guidance = 30;
  limits.default_guidance = defaults.guidance;
  limits.max_count = 4;
  limits.samplers.push_back(defaults.sampler);
  for (const auto& name : SamplerNames()) {
    if (name != defaults.sampler) limits.samplers.push_back(name);
  }
  limits.edits = true;
  limits.default_strength = 0.8;
  return limits;
}

Result<std::unique_ptr<ImageModel>> MakeSdModel(SdModelSpec spec) {
  if (!spec.tokenizer || !spec.networks) {
    return Error::Make(ErrorCode::kInternal, "sd model: tokenizer and networks are required");
  }
  if (spec.networks->SizeConditioned() != (spec.tokenizer_2 != nullptr)) {
    return Error::Make(ErrorCode::kInternal, "sd model: SDXL networks need a second tokenizer");
  }
  nlohmann::json config = spec.scheduler_config;
  if (!spec.prediction_type.empty()) config["prediction_type"] = spec.prediction_type;
  // Refused at load rather than per request: a configuration no sampler can run.
  for (const auto& name : SamplerNames()) {
    auto options = SamplerOptionsFromConfig(config, *SamplerFromName(name));
    if (!options) return options.error();
  }
  return std::unique_ptr<ImageModel>(new SdModel(std::move(spec), std::move(config)));
}

}  // namespace imagegen::sd
