#include "model/sd/checkpoint/checkpoint.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <numeric>
#include <set>
#include <sstream>
#include <tuple>
#include <utility>

#include "model/sd/checkpoint/gguf_view.h"
#include "model/sd/checkpoint/ldm_layout.h"
#include "model/sd/checkpoint/safetensors_view.h"
#include "model/sd/nets/q8_weight.h"

namespace imagegen::sd {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

Error Invalid(const std::string& message) {
  return Error::Make(ErrorCode::kInvalidRequest, message);
}

// A mapped safetensors or GGUF file and its parsed header (whose views point into the mapping).
struct OpenedFile {
  fs::path path;
  MappedFile map;
  SafetensorsView view;
};
using OpenedFiles = std::vector<std::unique_ptr<OpenedFile>>;

// GGUF by its magic or name (stable-diffusion.cpp's converted files), safetensors otherwise.
Result<const OpenedFile*> OpenWeightFile(const fs::path& path, OpenedFiles& files) {
  auto map = MappedFile::Open(path);
  if (!map) return map.error();
  const bool gguf = IsGguf(map->bytes()) || path.extension() == ".gguf";
  auto view = gguf ? ParseGgufView(map->bytes()) : ParseSafetensorsView(map->bytes());
  if (!view) return Invalid(path.string() + ": " + view.error().message);
  files.push_back(
      std::make_unique<OpenedFile>(OpenedFile{path, std::move(*map), std::move(*view)}));
  return files.back().get();
}

bool IsPickleExtension(const fs::path& path) {
  static const std::set<std::string> kPickled = {".ckpt", ".pt", ".pth", ".bin", ".pkl"};
  return kPickled.count(path.extension().string()) != 0;
}

Error PickleRefusal(const fs::path& path) {
  return Invalid(path.string() +
                 " is a pickled checkpoint; pickled checkpoints can run code when loaded, so "
                 "imagegen does not read them: convert it to safetensors");
}

Result<json> ReadJson(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Invalid("missing " + path.string());
  std::stringstream text;
  text << in.rdbuf();
  json parsed = json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded() || !parsed.is_object()) {
    return Invalid(path.string() + " is not a JSON object");
  }
  return parsed;
}

// A string field, "" when absent or not a string (configs come from the user's files).
std::string StringField(const json& config, const char* name) {
  auto it = config.find(name);
  return it != config.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// --- tensors ---------------------------------------------------------------------------------

torch::ScalarType StoredType(const std::string& dtype) {
  if (dtype == "F32") return torch::kFloat;
  if (dtype == "F16") return torch::kHalf;
  if (dtype == "BF16") return torch::kBFloat16;
  if (dtype == "F64") return torch::kDouble;
  return torch::ScalarType::Undefined;
}

// The bytes of `source` inside `entry`: the whole tensor or a block of its rows.
Result<std::string_view> SourceBytes(const TensorEntry& entry, const WeightSource& source) {
  if (source.row_count < 0) return entry.bytes;
  const int64_t rows = entry.shape.empty() ? 0 : entry.shape[0];
  if (rows <= 0 || source.row_begin < 0 || source.row_begin + source.row_count > rows) {
    return Invalid("tensor " + source.key + " has too few rows for its q/k/v split");
  }
  const size_t stride = entry.bytes.size() / static_cast<size_t>(rows);
  return entry.bytes.substr(static_cast<size_t>(source.row_begin) * stride,
                            static_cast<size_t>(source.row_count) * stride);
}

// GGUF's 8-bit blocks, dequantised straight out of the mapping into float32. A row block (q, k
// or v of a joined projection) is cut from the whole dequantised tensor: blocks of 32 values
// need not end where a row of a 1-D bias does.
Result<torch::Tensor> Dequantized(const TensorEntry& entry, const WeightSource& source,
                                  const std::vector<int64_t>& shape, torch::ScalarType target) {
  int64_t count = 1;
  for (int64_t d : entry.shape) count *= d;
  torch::Tensor values = torch::empty(entry.shape, torch::kFloat);
  if (StoredByteSize("Q8_0", static_cast<uint64_t>(count)) != entry.bytes.size()) {
    return Invalid("tensor " + source.key + " has the wrong size for Q8_0");
  }
  DequantizeQ8_0(entry.bytes, values.data_ptr<float>());
  if (source.row_count >= 0) {
    const int64_t rows = entry.shape.empty() ? 0 : entry.shape[0];
    if (rows <= 0 || source.row_begin < 0 || source.row_begin + source.row_count > rows) {
      return Invalid("tensor " + source.key + " has too few rows for its q/k/v split");
    }
    values = values.narrow(0, source.row_begin, source.row_count);
  }
  if (values.numel() !=
      std::accumulate(shape.begin(), shape.end(), int64_t{1}, std::multiplies<int64_t>())) {
    return Invalid("tensor " + source.key + " does not fit the shape its component needs");
  }
  return values.reshape(shape).contiguous().to(target);
}

// Whether a Q8_0 tensor can stay 8-bit (nets/q8_weight.h): a matrix taken whole or by rows, as
// stored (not transposed), whose rows are whole blocks. The rest (1-D norms, reshaped or
// transposed tensors) is dequantised at load.
bool KeepsQ8(const TensorEntry& entry, const WeightSource& source) {
  if (entry.dtype != "Q8_0" || entry.shape.size() != 2 || source.shape.size() != 2) return false;
  if (source.transposed || entry.shape[1] % kQ8BlockValues != 0) return false;
  const int64_t rows = source.row_count >= 0 ? source.row_count : entry.shape[0];
  return source.shape[0] == rows && source.shape[1] == entry.shape[1];
}

// The tensor's (or its row block's) Q8_0 blocks copied out of the mapping as they are.
Result<torch::Tensor> Q8Blocks(const TensorEntry& entry, const WeightSource& source) {
  const int64_t rows = entry.shape[0], cols = entry.shape[1];
  if (StoredByteSize("Q8_0", static_cast<uint64_t>(rows * cols)) != entry.bytes.size()) {
    return Invalid("tensor " + source.key + " has the wrong size for Q8_0");
  }
  auto bytes = SourceBytes(entry, source);
  if (!bytes) return bytes.error();
  auto blocks = torch::empty({source.shape[0], cols / kQ8BlockValues, kQ8BlockBytes}, torch::kByte);
  if (static_cast<size_t>(blocks.numel()) != bytes->size()) {
    return Invalid("tensor " + source.key + " does not fit the shape its component needs");
  }
  std::memcpy(blocks.data_ptr(), bytes->data(), bytes->size());
  return blocks;
}

Result<torch::Tensor> MakeStoredTensor(const TensorEntry& entry, const WeightSource& source,
                                       const std::vector<int64_t>& shape,
                                       torch::ScalarType target) {
  if (KeepsQ8(entry, source)) return Q8Blocks(entry, source);
  if (entry.dtype == "Q8_0") return Dequantized(entry, source, shape, target);
  const torch::ScalarType type = StoredType(entry.dtype);
  if (type == torch::ScalarType::Undefined) {
    return Invalid("tensor " + source.key + " has dtype " + entry.dtype +
                   "; weights must be F32, F16, BF16, F64 or (GGUF) Q8_0");
  }
  auto bytes = SourceBytes(entry, source);
  if (!bytes) return bytes.error();
  int64_t count = 1;
  for (int64_t d : shape) count *= d;
  if (static_cast<size_t>(count) * SafetensorsDtypeSize(entry.dtype) != bytes->size()) {
    return Invalid("tensor " + source.key + " does not fit the shape its component needs");
  }
  const auto stored_as = torch::TensorOptions().dtype(type);
  const bool aligned =
      reinterpret_cast<uintptr_t>(bytes->data()) % SafetensorsDtypeSize(entry.dtype) == 0;
  if (type != target && aligned && !bytes->empty()) {
    // Converted straight out of the mapping: a stored-type copy first would be a transient as
    // large as the tensor, whose freed blocks fragment the heap (the peak RSS it left behind).
    void* mapped = const_cast<char*>(bytes->data());  // read only: to() writes a new tensor
    return torch::from_blob(mapped, shape, stored_as).to(target);
  }
  torch::Tensor stored = torch::empty(shape, stored_as);
  if (!bytes->empty()) std::memcpy(stored.data_ptr(), bytes->data(), bytes->size());
  return type == target ? stored : stored.to(target);
}

Result<torch::Tensor> MakeTensor(const TensorEntry& entry, const WeightSource& source,
                                 torch::ScalarType target) {
  if (!source.transposed) return MakeStoredTensor(entry, source, source.shape, target);
  std::vector<int64_t> stored(source.shape.rbegin(), source.shape.rend());
  auto tensor = MakeStoredTensor(entry, source, stored, target);
  if (!tensor) return tensor;
  return tensor->t().contiguous();
}

struct Located {
  const OpenedFile* file;
  WeightSource source;
};

// Makes every tensor of `weights` as `target`, releasing each file range once its last user is
// made.
Result<TensorMap> Materialise(const std::map<std::string, Located>& weights,
                              torch::ScalarType target) {
  std::map<std::pair<const OpenedFile*, std::string>, int> users;
  for (const auto& [name, w] : weights) ++users[{w.file, w.source.key}];
  TensorMap out;
  for (const auto& [name, w] : weights) {
    const TensorEntry& entry = w.file->view.tensors.at(w.source.key);
    auto tensor = MakeTensor(entry, w.source, target);
    if (!tensor) return Invalid(w.file->path.string() + ": " + tensor.error().message);
    out.emplace(name, std::move(*tensor));
    if (--users[{w.file, w.source.key}] == 0) w.file->map.Release(entry.bytes);
  }
  return out;
}

// --- diffusers folders -----------------------------------------------------------------------

// The safetensors files of one component, preferring the variant when one is asked for.
Result<std::vector<fs::path>> WeightFiles(const fs::path& dir, const std::string& base,
                                          const std::string& variant) {
  std::vector<std::string> stems = {base, base + ".fp16"};
  if (!variant.empty()) stems = {base + "." + variant, base};
  for (const auto& stem : stems) {
    if (fs::is_regular_file(dir / (stem + ".safetensors"))) {
      return std::vector<fs::path>{dir / (stem + ".safetensors")};
    }
    const fs::path index = dir / (stem + ".safetensors.index.json");
    if (!fs::is_regular_file(index)) continue;
    auto parsed = ReadJson(index);
    if (!parsed) return parsed.error();
    auto map = parsed->find("weight_map");
    if (map == parsed->end() || !map->is_object())
      return Invalid(index.string() + " has no weight_map");
    std::set<std::string> shards;
    for (const auto& [name, file] : map->items()) {
      if (!file.is_string() || file.get<std::string>().find('/') != std::string::npos ||
          file.get<std::string>().starts_with(".")) {
        return Invalid(index.string() + " names a shard outside its folder");
      }
      shards.insert(file.get<std::string>());
    }
    std::vector<fs::path> out;
    for (const auto& shard : shards) out.push_back(dir / shard);
    return out;
  }
  for (const char* pickled : {".bin", ".fp16.bin", ".ckpt"}) {
    if (fs::exists(dir / (base + pickled))) return PickleRefusal(dir / (base + pickled));
  }
  return Invalid("missing component weights: " + (dir / (base + ".safetensors")).string());
}

// diffusers before 0.14 named the VAE's attention query/key/value/proj_attn.
std::string ModernVaeName(std::string name) {
  static const std::pair<const char*, const char*> kOld[] = {{".query.", ".to_q."},
                                                             {".key.", ".to_k."},
                                                             {".value.", ".to_v."},
                                                             {".proj_attn.", ".to_out.0."}};
  if (name.find("mid_block.attentions.") == std::string::npos) return name;
  for (const auto& [old_name, new_name] : kOld) {
    const size_t at = name.find(old_name);
    if (at != std::string::npos) return name.replace(at, std::strlen(old_name), new_name);
  }
  return name;
}

Result<Component> LoadFolderComponent(const fs::path& folder, const std::string& name,
                                      ComponentKind kind, const LoadOptions& options,
                                      OpenedFiles& files) {
  const fs::path dir = folder / name;
  if (!fs::is_directory(dir))
    return Invalid("missing component " + name + "/ in " + folder.string());
  auto config = ReadJson(dir / "config.json");
  if (!config) return config.error();
  const std::string base =
      kind == ComponentKind::kTextEncoder ? "model" : "diffusion_pytorch_model";
  auto paths = WeightFiles(dir, base, options.variant);
  if (!paths) return paths.error();
  std::map<std::string, Located> weights;
  ShapeMap shapes;
  for (const auto& path : *paths) {
    auto opened = OpenWeightFile(path, files);
    if (!opened) return opened.error();
    for (const auto& [key, entry] : (*opened)->view.tensors) {
      if (key.ends_with("position_ids")) continue;  // a buffer, not a weight
      const std::string diffusers = kind == ComponentKind::kVae ? ModernVaeName(key) : key;
      weights[diffusers] = Located{*opened, WeightSource{key, 0, -1, entry.shape}};
      shapes[diffusers] = entry.shape;
    }
  }
  if (auto checked = CheckComponentShapes(kind, *config, shapes); !checked) {
    return Invalid(dir.string() + ": " + checked.error().message);
  }
  auto tensors = Materialise(weights, options.weight_type);
  if (!tensors) return tensors.error();
  return Component{std::move(*config), std::move(*tensors)};
}

Result<std::string> PredictionFrom(const LoadOptions& options, const json& scheduler) {
  std::string prediction = options.prediction_type;
  if (prediction.empty()) prediction = StringField(scheduler, "prediction_type");
  if (prediction.empty()) prediction = "epsilon";
  if (prediction != "epsilon" && prediction != "v_prediction") {
    return Invalid("prediction type '" + prediction + "' is not supported (epsilon, v_prediction)");
  }
  return prediction;
}

Result<Family> FolderFamily(const json& text, const json& unet, const json& scheduler,
                            const std::string& prediction) {
  const std::string spacing = StringField(scheduler, "timestep_spacing");
  const std::string sampler = StringField(scheduler, "_class_name");
  const bool turbo = spacing == "trailing" && sampler.starts_with("Euler");
  if (unet.value("addition_embed_type", json()) == "text_time") {
    return turbo ? Family::kSdxlTurbo : Family::kSdxl;
  }
  const json context = unet.value("cross_attention_dim", json());
  bool open_clip = StringField(text, "hidden_act") != "quick_gelu";
  if (context == 768) open_clip = false;
  if (context == 1024) open_clip = true;
  if (!open_clip) return Family::kSd1;
  if (turbo) return Family::kSdTurbo;
  return prediction == "v_prediction" ? Family::kSd2V : Family::kSd2;
}

// SDXL folders name a second text encoder and tokenizer; a refiner names only the second.
Status CheckSdxlComponents(const json& index, const fs::path& folder) {
  const bool second = index.contains("text_encoder_2") && !index["text_encoder_2"].is_null();
  const bool first = index.contains("text_encoder") && !index["text_encoder"].is_null();
  if (second && !first) {
    return Invalid(folder.string() +
                   ": an SDXL refiner (one text encoder, aesthetic-score "
                   "conditioning) is not supported");
  }
  if (second && !fs::is_directory(folder / "text_encoder_2")) {
    return Invalid("missing component text_encoder_2/ in " + folder.string());
  }
  return Status::Ok();
}

Result<Checkpoint> LoadFolder(const fs::path& folder, const LoadOptions& options) {
  auto index = ReadJson(folder / "model_index.json");
  if (!index) return Invalid(folder.string() + " is not a diffusers folder (no model_index.json)");
  if (auto sdxl = CheckSdxlComponents(*index, folder); !sdxl) return sdxl.error();
  const bool two_encoders = index->contains("text_encoder_2");
  Checkpoint ck;
  ck.format = "diffusers";
  // diffusers' SDXL pipelines default to zeros for an empty negative prompt.
  ck.force_zeros_for_empty_prompt = index->value("force_zeros_for_empty_prompt", two_encoders);
  auto scheduler = ReadJson(folder / "scheduler" / "scheduler_config.json");
  if (!scheduler) return Invalid("missing component scheduler/: " + scheduler.error().message);
  ck.scheduler_config = std::move(*scheduler);
  OpenedFiles files;
  std::vector<std::tuple<const char*, ComponentKind, Component*>> parts = {
      {"text_encoder", ComponentKind::kTextEncoder, &ck.text_encoder},
      {"unet", ComponentKind::kUnet, &ck.unet},
      {"vae", ComponentKind::kVae, &ck.vae}};
  if (two_encoders) {
    parts.insert(parts.begin() + 1,
                 {"text_encoder_2", ComponentKind::kTextEncoder, &ck.text_encoder_2});
  }
  for (const auto& [name, kind, target] : parts) {
    auto component = LoadFolderComponent(folder, name, kind, options, files);
    if (!component) return component.error();
    *target = std::move(*component);
    files.clear();  // unmap what is copied
  }
  auto prediction = PredictionFrom(options, ck.scheduler_config);
  if (!prediction) return prediction.error();
  ck.prediction_type = *prediction;
  auto family =
      FolderFamily(ck.text_encoder.config, ck.unet.config, ck.scheduler_config, ck.prediction_type);
  if (!family) return family.error();
  ck.family = *family;
  if (IsSdxl(ck.family) != two_encoders) {
    return Invalid(folder.string() + (two_encoders ? ": two text encoders but no SDXL UNet"
                                                   : ": an SDXL UNet needs text_encoder_2/"));
  }
  ck.tokenizer_dir = options.tokenizer_dir.empty() ? folder / "tokenizer" : options.tokenizer_dir;
  if (two_encoders) ck.tokenizer_2_dir = folder / "tokenizer_2";
  return ck;
}

// --- single files ----------------------------------------------------------------------------

Result<Checkpoint> LoadSingleFile(const fs::path& path, const LoadOptions& options) {
  OpenedFiles files;
  auto opened = OpenWeightFile(path, files);
  if (!opened) return opened.error();
  ShapeMap shapes;
  for (const auto& [key, entry] : (*opened)->view.tensors) shapes[key] = entry.shape;
  auto plan =
      PlanSingleFile(shapes, SingleFileHints{path.stem().string(), options.prediction_type});
  if (!plan) return Invalid(path.string() + ": " + plan.error().message);
  Checkpoint ck;
  ck.format = "single-file";
  ck.family = plan->family;
  ck.prediction_type = plan->prediction_type;
  ck.ignored_keys = plan->ignored_keys;
  ck.unknown_keys = plan->unknown_keys;
  ck.scheduler_config = DefaultSchedulerConfig(ck.family);
  ck.scheduler_config["prediction_type"] = ck.prediction_type;
  const std::pair<ComponentPlan*, Component*> parts[] = {
      {&plan->text_encoder, &ck.text_encoder},
      {&plan->text_encoder_2, &ck.text_encoder_2},
      {&plan->unet, &ck.unet},
      {&plan->vae, &ck.vae}};
  for (const auto& [part, target] : parts) {
    std::map<std::string, Located> weights;
    for (auto& [name, source] : part->weights) weights[name] = Located{*opened, source};
    auto tensors = Materialise(weights, options.weight_type);
    if (!tensors) return tensors.error();
    *target = Component{std::move(part->config), std::move(*tensors)};
  }
  ck.tokenizer_dir =
      options.tokenizer_dir.empty() ? path.parent_path() / "tokenizer" : options.tokenizer_dir;
  if (IsSdxl(ck.family)) {
    ck.force_zeros_for_empty_prompt = true;
    // SDXL's second tokenizer differs from the first only in its padding ("!").
    ck.tokenizer_2_dir = ck.tokenizer_dir.parent_path() / "tokenizer_2";
  }
  return ck;
}

Status CheckTokenizerFolder(const fs::path& dir, const fs::path& path) {
  for (const char* file : {"vocab.json", "merges.txt"}) {
    if (!fs::is_regular_file(dir / file)) {
      return Invalid("no tokenizer for " + path.string() + ": " + (dir / file).string() +
                     " is missing (a folder's tokenizer/ and, for SDXL, tokenizer_2/; for a "
                     "single file the same folders beside it, or --tokenizer DIR with "
                     "vocab.json and merges.txt)");
    }
  }
  return Status::Ok();
}

Status CheckTokenizer(const Checkpoint& ck, const fs::path& path) {
  if (auto first = CheckTokenizerFolder(ck.tokenizer_dir, path); !first) return first;
  if (ck.tokenizer_2_dir.empty()) return Status::Ok();
  return CheckTokenizerFolder(ck.tokenizer_2_dir, path);
}

// The UNet attends to the text encoders' hidden states side by side (SDXL: both).
Status CheckContextWidth(const Checkpoint& ck, const fs::path& path) {
  const json context = ck.unet.config.value("cross_attention_dim", json());
  json width = ck.text_encoder.config.value("hidden_size", json());
  if (!ck.text_encoder_2.config.is_null() && width.is_number_integer()) {
    const json second = ck.text_encoder_2.config.value("hidden_size", json());
    width =
        second.is_number_integer() ? json(width.get<int64_t>() + second.get<int64_t>()) : json();
  }
  if (context == width) return Status::Ok();
  return Invalid(path.string() + ": the UNet's cross_attention_dim (" + context.dump() +
                 ") differs from the text encoders' hidden_size (" + width.dump() + ")");
}

}  // namespace

Result<Checkpoint> LoadCheckpoint(const fs::path& path, const LoadOptions& options) {
  std::error_code ec;
  if (!fs::exists(path, ec))
    return Error::Make(ErrorCode::kNotFound, "no checkpoint at " + path.string());
  torch::NoGradGuard no_grad;
  Result<Checkpoint> loaded = Invalid("");
  if (fs::is_directory(path)) {
    loaded = LoadFolder(path, options);
  } else if (IsPickleExtension(path)) {
    return PickleRefusal(path);
  } else if (path.extension() == ".safetensors" || path.extension() == ".gguf") {
    loaded = LoadSingleFile(path, options);
  } else {
    return Invalid(path.string() +
                   " is neither a diffusers folder nor a .safetensors or .gguf file");
  }
  if (!loaded) return loaded;
  Checkpoint& ck = *loaded;
  ck.family_name = std::string(FamilyName(ck.family));
  ck.inpainting = ck.unet.config.value("in_channels", json()) == 9;
  if (auto width = CheckContextWidth(ck, path); !width) return width.error();
  if (auto tokenizer = CheckTokenizer(ck, path); !tokenizer) return tokenizer.error();
  return loaded;
}

}  // namespace imagegen::sd
