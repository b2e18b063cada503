// imagegen-sd-inspect: loads a Stable Diffusion checkpoint (folder or single file) as the engine
// does and prints what it found as one JSON object: family, format, prediction type, tokenizer,
// per component the config, tensor and parameter counts, ignored and unknown keys, load time
// and peak RSS. Optionally it runs the text encoder and writes tensors as safetensors (F32):
//   --ids '[[49406, ...], ...]'  -> "hidden" [B, T, H] from ClipTextEncoder::Encode
//   --prompt TEXT                -> "prompt_embeds" [1, 77k, H] from EncodePrompt (tokenizer)
//   --dump-weights FILE          -> every weight as "<component>.<diffusers name>"
// On failure it prints {"error": {"code", "message"}} and exits with the error's CLI code.
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "model/sd/checkpoint/checkpoint.h"
#include "model/sd/nets/clip_text.h"
#include "model/sd/nets/q8_weight.h"
#include "model/sd/text/clip_tokenizer.h"

namespace {

using imagegen::Error;
using imagegen::ErrorCode;
using imagegen::Status;
using nlohmann::json;
namespace sd = imagegen::sd;

int Fail(const Error& error) {
  std::cout << json{{"error",
                     {{"code", std::string(imagegen::ErrorCodeName(error.code))},
                      {"message", error.message}}}}
                   .dump()
            << "\n";
  return imagegen::ExitCodeFor(error.code);
}

// Writes float32 tensors as a safetensors file, in the order given.
Status WriteTensors(const std::string& path,
                    const std::vector<std::pair<std::string, torch::Tensor>>& tensors) {
  json header = json::object();
  size_t offset = 0;
  std::vector<torch::Tensor> data;
  for (const auto& [name, tensor] : tensors) {
    torch::Tensor t = sd::IsQ8Matrix(tensor) ? sd::DequantizeQ8(tensor, torch::kFloat)
                                             : tensor.to(torch::kFloat).contiguous();
    const size_t bytes = static_cast<size_t>(t.numel()) * sizeof(float);
    header[name] = {
        {"dtype", "F32"}, {"shape", t.sizes().vec()}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    data.push_back(t);
  }
  std::string text = header.dump();
  while (text.size() % 8 != 0) text.push_back(' ');
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  const uint64_t n = text.size();
  char length[8];
  for (int i = 0; i < 8; ++i) length[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  out.write(length, 8);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  for (const auto& t : data) {
    out.write(static_cast<const char*>(t.data_ptr()),
              static_cast<std::streamsize>(static_cast<size_t>(t.numel()) * sizeof(float)));
  }
  if (!out) return Error::Make(ErrorCode::kInternal, "cannot write " + path);
  return Status::Ok();
}

json Describe(const sd::Component& component) {
  int64_t parameters = 0, q8_matrices = 0;
  for (const auto& [name, tensor] : component.weights) {
    const bool q8 = sd::IsQ8Matrix(tensor);
    q8_matrices += q8 ? 1 : 0;
    parameters += q8 ? tensor.numel() / sd::kQ8BlockBytes * sd::kQ8BlockValues : tensor.numel();
  }
  return {{"tensors", component.weights.size()},
          {"parameters", parameters},
          {"q8_0_matrices", q8_matrices},  // kept 8-bit (nets/q8_weight.h)
          {"config", component.config}};
}

json Describe(const sd::Checkpoint& ck, double seconds) {
  struct rusage usage {};
  getrusage(RUSAGE_SELF, &usage);
  json components = {{"text_encoder", Describe(ck.text_encoder)},
                     {"unet", Describe(ck.unet)},
                     {"vae", Describe(ck.vae)}};
  json described = {{"family", ck.family_name},
                    {"format", ck.format},
                    {"prediction_type", ck.prediction_type},
                    {"inpainting", ck.inpainting},
                    {"tokenizer_dir", ck.tokenizer_dir.string()},
                    {"scheduler_config", ck.scheduler_config},
                    {"ignored_keys", ck.ignored_keys},
                    {"unknown_keys", ck.unknown_keys},
                    {"load_seconds", seconds},
                    {"peak_rss_kb", usage.ru_maxrss}};
  if (!ck.tokenizer_2_dir.empty()) {  // SDXL
    components["text_encoder_2"] = Describe(ck.text_encoder_2);
    described["tokenizer_2_dir"] = ck.tokenizer_2_dir.string();
    described["force_zeros_for_empty_prompt"] = ck.force_zeros_for_empty_prompt;
  }
  described["components"] = std::move(components);
  return described;
}

// --ids: a JSON array of equally long arrays of integers.
imagegen::Result<torch::Tensor> ParseIds(const std::string& text) {
  json ids = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (ids.is_discarded() || !ids.is_array() || ids.empty() || !ids[0].is_array()) {
    return Error::Invalid("ids", "--ids must be a JSON array of arrays of token ids");
  }
  std::vector<int64_t> flat;
  for (const auto& row : ids) {
    if (!row.is_array() || row.size() != ids[0].size()) {
      return Error::Invalid("ids", "--ids rows must have equal lengths");
    }
    for (const auto& id : row) {
      if (!id.is_number_integer()) return Error::Invalid("ids", "--ids must hold integers");
      flat.push_back(id.get<int64_t>());
    }
  }
  return torch::tensor(flat, torch::kLong)
      .view({static_cast<int64_t>(ids.size()), static_cast<int64_t>(ids[0].size())});
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Loads a Stable Diffusion checkpoint and reports it as JSON"};
  std::string path, ids_json, prompt, out_path, dump_path, tokenizer, prediction, variant;
  std::string precision = "f32";
  int clip_skip = 1;
  int threads = 0;
  app.add_option("checkpoint", path, "diffusers folder or single-file .safetensors")->required();
  app.add_option("--tokenizer", tokenizer, "tokenizer folder (vocab.json, merges.txt)");
  app.add_option("--prediction", prediction, "epsilon or v_prediction (overrides the checkpoint)");
  app.add_option("--variant", variant, "prefer this weights variant in folders (e.g. fp16)");
  app.add_option("--ids", ids_json, "JSON [[id, ...], ...] to run the text encoder on");
  app.add_option("--prompt", prompt, "text to tokenize and encode in 77-token chunks");
  app.add_option("--clip-skip", clip_skip, "1 = last layer, 2 = penultimate, ...");
  app.add_option("--out", out_path, "safetensors file for the encoder's outputs");
  app.add_option("--dump-weights", dump_path, "safetensors file for every loaded weight");
  app.add_option("--threads", threads, "intra-op threads (0: LibTorch's default)");
  app.add_option("--precision", precision, "weights and text encoder in f32 (default) or bf16");
  CLI11_PARSE(app, argc, argv);
  auto compute = sd::ComputeTypeNamed(precision);
  if (!compute) return Fail(compute.error());
  if (threads > 0) torch::set_num_threads(threads);

  const auto start = std::chrono::steady_clock::now();
  auto ck = sd::LoadCheckpoint(path, sd::LoadOptions{tokenizer, prediction, variant, *compute});
  if (!ck) return Fail(ck.error());
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  std::vector<std::pair<std::string, torch::Tensor>> outputs;
  if (!ids_json.empty() || !prompt.empty()) {
    auto encoder = sd::ClipTextEncoder::Create(ck->text_encoder, *compute);
    if (!encoder) return Fail(encoder.error());
    if (clip_skip < 1 || clip_skip > encoder->layers()) {
      return Fail(Error::Invalid("clip_skip",
                                 "--clip-skip must be 1.." + std::to_string(encoder->layers())));
    }
    if (!ids_json.empty()) {
      auto ids = ParseIds(ids_json);
      if (!ids) return Fail(ids.error());
      try {
        outputs.emplace_back("hidden", encoder->Encode(*ids, clip_skip));
      } catch (const std::invalid_argument& e) {
        return Fail(Error::Invalid("ids", e.what()));
      }
    }
    if (!prompt.empty()) {
      auto clip = sd::ClipTokenizer::LoadFolder(ck->tokenizer_dir);
      if (!clip) return Fail(clip.error());
      auto embeds = sd::EncodePrompt(*clip, *encoder, prompt, clip_skip);
      if (!embeds) return Fail(embeds.error());
      outputs.emplace_back("prompt_embeds", *embeds);
    }
  }
  if (!outputs.empty()) {
    if (out_path.empty()) return Fail(Error::Invalid("out", "--ids/--prompt need --out FILE"));
    if (auto written = WriteTensors(out_path, outputs); !written) return Fail(written.error());
  }
  if (!dump_path.empty()) {
    std::vector<std::pair<std::string, torch::Tensor>> all;
    const std::pair<const char*, const sd::Component*> parts[] = {
        {"text_encoder", &ck->text_encoder}, {"unet", &ck->unet}, {"vae", &ck->vae}};
    for (const auto& [name, component] : parts) {
      for (const auto& [key, tensor] : component->weights)
        all.emplace_back(std::string(name) + "." + key, tensor);
    }
    if (auto written = WriteTensors(dump_path, all); !written) return Fail(written.error());
  }
  std::cout << Describe(*ck, seconds).dump() << "\n";
  return 0;
}
