#include "model/sd/load/sd_model.h"

#include <malloc.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>

#include "model/sd/checkpoint/checkpoint.h"
#include "model/sd/lora/lora_weights.h"
#include "model/sd/model/sd_pipeline.h"
#include "model/sd/nets/clip_text.h"
#include "model/sd/nets/unet.h"
#include "model/sd/nets/vae.h"

namespace imagegen {
namespace {

namespace fs = std::filesystem;
using sd::SdFamily;

// Tiles of 64 latent pixels (512 image pixels) with a quarter shared: the size the VAE was
// trained at, and enough overlap to hide the seams.
constexpr int64_t kDecodeTile = 64;
constexpr int64_t kDecodeOverlap = 16;

// Where the text encoders' and the UNet's weights live, for LoRA updates; filled while the
// networks are made, so it comes first. `text_2`: SDXL's second encoder's (empty otherwise).
struct Targets {
  sd::WeightTargets text, text_2, unet;
};

class CheckpointNetworks final : public sd::SdNetworks {
 public:
  // `text_2`: SDXL's second text encoder (with its projection), or none.
  CheckpointNetworks(sd::ClipTextEncoder text, std::optional<sd::ClipTextEncoder> text_2,
                     sd::Unet unet, sd::Vae vae, std::unique_ptr<Targets> targets,
                     const std::string& lora_dir)
      : text_(std::move(text)),
        text_2_(std::move(text_2)),
        unet_(std::move(unet)),
        vae_(std::move(vae)),
        targets_(std::move(targets)),
        loras_(std::make_unique<sd::LoraWeights>(lora_dir, &targets_->text, &targets_->unet,
                                                 text_2_ ? &targets_->text_2 : nullptr)) {}

  sd::TextStates EncodeText(const torch::Tensor& ids, const torch::Tensor& ids_2) const override {
    if (!text_2_) return {text_.Encode(ids), torch::Tensor()};
    // diffusers' SDXL encode_prompt: both penultimate layers, un-normalised, side by side.
    auto first = text_.EncodePenultimate(ids);
    auto second = text_2_->EncodePenultimate(ids_2);
    return {torch::cat({first.hidden, second.hidden}, -1), second.pooled};
  }
  torch::Tensor Denoise(const torch::Tensor& sample, const torch::Tensor& timestep,
                        const torch::Tensor& context, const torch::Tensor& pooled,
                        const torch::Tensor& time_ids) const override {
    return unet_.Forward(sample, timestep, context, sd::AddedConditions{pooled, time_ids});
  }
  bool SizeConditioned() const override { return text_2_.has_value(); }
  int UnetInChannels() const override { return unet_.InChannels(); }
  torch::Tensor DecodeLatents(const torch::Tensor& latents, bool tiled) const override {
    return tiled ? vae_.DecodeTiled(latents, kDecodeTile, kDecodeOverlap) : vae_.Decode(latents);
  }
  // A sample of the posterior as diffusers' latent_dist.sample(generator) draws it.
  torch::Tensor EncodeImage(const torch::Tensor& images, at::Generator& generator) const override {
    auto posterior = vae_.EncodeDistribution(images);
    return posterior.mean + posterior.std * torch::randn(posterior.mean.sizes(), generator);
  }
  double VaeScalingFactor() const override { return vae_.ScalingFactor(); }
  int VaeDownscaleFactor() const override { return vae_.DownscaleFactor(); }
  int UnetSampleSize() const override { return unet_.SampleSize(); }
  int UnetSizeMultiple() const override { return unet_.SizeMultiple(); }
  Result<std::shared_ptr<void>> UseLoras(const std::vector<sd::LoraUse>& loras) const override {
    std::vector<sd::LoraChoice> choices;
    for (const auto& use : loras) choices.push_back({use.name, use.scale});
    return loras_->Use(choices);
  }

 private:
  sd::ClipTextEncoder text_;
  std::optional<sd::ClipTextEncoder> text_2_;
  sd::Unet unet_;
  sd::Vae vae_;
  std::unique_ptr<Targets> targets_;
  std::unique_ptr<sd::LoraWeights> loras_;  // changes weights in place, under its own lock
};

template <typename T>
Result<T> Named(Result<T> result, const std::string& what) {
  if (result.ok()) return result;
  Error e = result.error();
  e.message = what + ": " + e.message;
  return e;
}

Result<SdFamily> FamilyOf(const sd::Checkpoint& checkpoint) {
  switch (checkpoint.family) {
    case sd::Family::kSd1:
      return SdFamily::kSd1;
    case sd::Family::kSd2:
      return SdFamily::kSd2;
    case sd::Family::kSd2V:
      return SdFamily::kSd2V;
    case sd::Family::kSdTurbo:
      return SdFamily::kSdTurbo;
    case sd::Family::kSdxl:
      return SdFamily::kSdxl;
    case sd::Family::kSdxlTurbo:
      return SdFamily::kSdxlTurbo;
  }
  return Error::Invalid("model", "sd: the " + checkpoint.family_name + " family is not supported");
}

// SDXL's second text encoder, and its tokenizer; none for the other families.
struct SecondText {
  std::optional<sd::ClipTextEncoder> encoder;
  std::unique_ptr<sd::ClipTokenizer> tokenizer;
};

Result<SecondText> LoadSecondText(sd::Checkpoint& checkpoint, torch::ScalarType compute,
                                  sd::WeightTargets* targets) {
  SecondText out;
  if (checkpoint.tokenizer_2_dir.empty()) return out;
  auto tokenizer = Named(sd::ClipTokenizer::LoadFolder(checkpoint.tokenizer_2_dir), "tokenizer_2");
  if (!tokenizer) return tokenizer.error();
  auto encoder = Named(sd::ClipTextEncoder::Create(checkpoint.text_encoder_2, compute, targets),
                       "text_encoder_2");
  if (!encoder) return encoder.error();
  checkpoint.text_encoder_2.weights.clear();
  if (encoder->projection_dim() == 0) {
    return Error::Invalid("model",
                          "text_encoder_2: SDXL's second text encoder needs its "
                          "text_projection (CLIPTextModelWithProjection)");
  }
  out.tokenizer = std::make_unique<sd::ClipTokenizer>(std::move(tokenizer).value());
  out.encoder = std::move(encoder).value();
  return out;
}

// The UNet's added embedding takes exactly the second encoder's pooled width (none without it).
Status CheckPooledWidth(const sd::Unet& unet, const SecondText& second) {
  const int64_t pooled = second.encoder ? second.encoder->projection_dim() : 0;
  if (unet.AddedTextDim() == pooled) return Status::Ok();
  return Error::Invalid(
      "model", "unet: its added embedding takes " + std::to_string(unet.AddedTextDim()) +
                   " pooled text channels, the text encoders give " + std::to_string(pooled));
}

// imagegen's own models (tools/emoji/train_sd.py) list the words of their training captions
// in training.json; other checkpoints have no such list, and their unknown words go unreported.
Result<std::set<std::string>> KnownWords(const std::string& path) {
  const fs::path record = fs::path(path) / "training.json";
  std::error_code ec;
  if (!fs::is_regular_file(record, ec)) return std::set<std::string>{};
  std::ifstream in(record);
  auto json = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object()) {
    return Error::Invalid("model", record.string() + " is not a JSON object");
  }
  std::set<std::string> words;
  auto list = json.find("words");
  if (list == json.end()) return words;
  if (!list->is_array()) return Error::Invalid("model", record.string() + ": words is not a list");
  for (const auto& word : *list) {
    if (!word.is_string()) return Error::Invalid("model", record.string() + ": a word is not text");
    words.insert(word.get<std::string>());
  }
  return words;
}

// glibc serves blocks under its mmap threshold from the heap and keeps them mapped when freed;
// the threshold grows to the largest block freed so far (up to 32 MiB), so the activations
// of one phase (UNet steps) stay resident while the next (VAE decode) maps its own: 0.1 GB of
// the peak at 256x256 in bf16. A fixed 1 MiB threshold maps every tensor-sized block on its
// own and unmaps it when freed (same speed within noise here; BENCHMARKS.md).
void KeepLargeBlocksOutOfTheHeap() {
#ifdef __GLIBC__
  ::mallopt(M_MMAP_THRESHOLD, 1 << 20);
#endif
}

// The blocks under that threshold that loading freed (small tensors, configs, the JSON).
void ReturnFreedHeapToTheSystem() {
#ifdef __GLIBC__
  ::malloc_trim(0);
#endif
}

std::string ModelName(const std::string& path) {
  fs::path p = fs::path(path).lexically_normal();
  if (!p.has_filename()) p = p.parent_path();
  return "sd:" + p.filename().string();
}

}  // namespace

Result<std::unique_ptr<ImageModel>> LoadSdModel(const std::string& path, int threads,
                                                const std::string& precision,
                                                const std::string& lora_dir) {
  auto compute = sd::ComputeTypeNamed(precision);
  if (!compute) return compute.error();
  if (threads > 0) torch::set_num_threads(threads);
  KeepLargeBlocksOutOfTheHeap();
  try {
    sd::LoadOptions options;
    options.weight_type = *compute;
    auto checkpoint = sd::LoadCheckpoint(path, options);
    if (!checkpoint) return checkpoint.error();
    auto family = FamilyOf(*checkpoint);
    if (!family) return family.error();
    auto known_words = KnownWords(path);
    if (!known_words) return known_words.error();
    auto tokenizer = Named(sd::ClipTokenizer::LoadFolder(checkpoint->tokenizer_dir), "tokenizer");
    if (!tokenizer) return tokenizer.error();
    auto targets = std::make_unique<Targets>();
    auto text =
        Named(sd::ClipTextEncoder::Create(checkpoint->text_encoder, *compute, &targets->text),
              "text_encoder");
    if (!text) return text.error();
    // Each network keeps what it uses; the rest (q, k and v before they are joined) is freed
    // as each is made, not at the end, so it never adds to the peak.
    checkpoint->text_encoder.weights.clear();
    auto second = LoadSecondText(*checkpoint, *compute, &targets->text_2);
    if (!second) return second.error();
    auto unet = Named(sd::Unet::Create(checkpoint->unet, *compute, &targets->unet), "unet");
    if (!unet) return unet.error();
    checkpoint->unet.weights.clear();
    if (auto pooled = CheckPooledWidth(*unet, *second); !pooled) return pooled.error();
    auto vae = Named(sd::Vae::Create(checkpoint->vae, *compute), "vae");
    if (!vae) return vae.error();
    checkpoint->vae.weights.clear();
    sd::SdModelSpec spec;
    spec.name = ModelName(path);
    spec.family = *family;
    spec.tokenizer = std::make_unique<sd::ClipTokenizer>(std::move(tokenizer).value());
    spec.tokenizer_2 = std::move(second->tokenizer);
    spec.zero_empty_negative = checkpoint->force_zeros_for_empty_prompt;
    spec.networks = std::make_unique<CheckpointNetworks>(
        std::move(text).value(), std::move(second->encoder), std::move(unet).value(),
        std::move(vae).value(), std::move(targets), lora_dir);
    spec.scheduler_config = checkpoint->scheduler_config;
    spec.prediction_type = checkpoint->prediction_type;
    spec.known_words = std::move(known_words).value();
    auto model = sd::MakeSdModel(std::move(spec));
    ReturnFreedHeapToTheSystem();
    return model;
  } catch (const std::exception& e) {
    return Error::Make(ErrorCode::kInternal, std::string("sd model: ") + e.what());
  }
}

}  // namespace imagegen
