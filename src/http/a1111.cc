#include "http/a1111.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <nlohmann/json.hpp>
#include <sstream>

#include "aws/encoding.h"
#include "core/request_json.h"
#include "core/strings.h"
#include "image/png.h"

namespace imagegen {
namespace {

using json = nlohmann::json;

std::string Dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

struct SamplerName {
  const char* imagegen;
  const char* a1111;
  std::vector<std::string> aliases;
  json options;
};

// A1111's names, aliases and options for the samplers imagegen has (A1111's sampler table).
const std::vector<SamplerName>& SamplerTable() {
  static const std::vector<SamplerName> table = {
      {"euler", "Euler", {"k_euler"}, json::object()},
      {"euler_a", "Euler a", {"k_euler_a", "k_euler_ancestral"}, {{"uses_ensd", "True"}}},
      {"dpmpp_2m", "DPM++ 2M", {"k_dpmpp_2m"}, json::object()},
      {"dpmpp_2m_karras", "DPM++ 2M Karras", {"k_dpmpp_2m_ka"}, {{"scheduler", "karras"}}},
      {"ddim", "DDIM", {"ddim"}, {{"default_eta_is_0", "True"}, {"uses_ensd", "True"}}},
  };
  return table;
}

// The entry /samplers lists for a model without a sampler choice.
constexpr const char* kNoChoiceSampler = "Default";

// The names the native request uses where A1111's differ, for errors' loc.
std::string A1111Field(const std::string& field) {
  if (field == "image") return "init_images";
  if (field == "strength") return "denoising_strength";
  if (field == "count") return "batch_size";
  if (field == "guidance") return "cfg_scale";
  if (field == "sampler") return "sampler_name";
  if (field == "format") return "override_settings";
  return field;
}

// Python's str() of a float, as A1111 writes its numbers: 7 -> "7.0", 7.5 -> "7.5".
std::string PyFloat(double v) {
  std::ostringstream out;
  out.precision(15);
  out << v;
  std::string s = out.str();
  if (s.find_first_of(".e") == std::string::npos) s += ".0";
  return s;
}

Status ReadBool(const json& body, const char* name, bool* out) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) return Status::Ok();
  if (!it->is_boolean()) return Error::Invalid(name, std::string(name) + " must be a boolean");
  *out = it->get<bool>();
  return Status::Ok();
}

Status ReadOptional(const json& body, const char* name, int64_t lo, int64_t hi,
                    std::optional<int>* out) {
  if (!body.contains(name) || body[name].is_null()) return Status::Ok();
  int64_t v = 0;
  if (auto s = ReadInt(body, name, lo, hi, &v); !s) return s;
  *out = static_cast<int>(v);
  return Status::Ok();
}

// A base64 image as A1111 clients send it, with or without a data: URL prefix.
Result<std::string> DecodeImageField(const json& value, const char* field) {
  if (!value.is_string()) return Error::Invalid(field, std::string(field) + " must be base64");
  std::string text = value.get<std::string>();
  if (text.rfind("data:", 0) == 0 && text.find(',') != std::string::npos) {
    text = text.substr(text.find(',') + 1);
  }
  auto bytes = aws::Base64Decode(text);
  if (!bytes || bytes->empty()) {
    return Error::Invalid(field, std::string(field) + " is not a base64-encoded image");
  }
  return std::move(*bytes);
}

// Members imagegen knows but cannot honour: each set one becomes a warning.
void WarnUnhonoured(const json& body, std::vector<std::string>* warnings) {
  for (const char* flag : {"enable_hr", "restore_faces", "tiling"}) {
    if (body.contains(flag) && body[flag].is_boolean() && body[flag].get<bool>()) {
      warnings->push_back(std::string(flag) + " is not supported; ignored");
    }
  }
  if (body.contains("styles") && body["styles"].is_array() && !body["styles"].empty()) {
    warnings->push_back("styles are not supported; ignored");
  }
  if (body.contains("subseed_strength") && body["subseed_strength"].is_number() &&
      body["subseed_strength"].get<double>() > 0) {
    warnings->push_back("variation seeds (subseed, subseed_strength) are not supported; ignored");
  }
  bool scripts = body.contains("alwayson_scripts") && body["alwayson_scripts"].is_object() &&
                 !body["alwayson_scripts"].empty();
  if (scripts || (body.contains("script_name") && body["script_name"].is_string() &&
                  !body["script_name"].get<std::string>().empty())) {
    warnings->push_back("scripts (script_name, alwayson_scripts) are not supported; ignored");
  }
}

// override_settings: samples_format chooses the output format; the checkpoint may only name
// the configured model; everything else is reported.
Status ReadOverrides(const json& body, A1111Request* out) {
  auto it = body.find("override_settings");
  if (it == body.end() || it->is_null()) return Status::Ok();
  if (!it->is_object()) {
    return Error::Invalid("override_settings", "override_settings must be an object");
  }
  for (const auto& [name, value] : it->items()) {
    if (name == "samples_format" && value.is_string()) {
      std::string format = value.get<std::string>();
      out->request.format = format == "jpg" ? "jpeg" : format;
    } else {
      out->warnings.push_back("override_settings." + name + " is not supported; ignored");
    }
  }
  return Status::Ok();
}

Status ReadSampler(const json& body, A1111Request* out) {
  std::string name, index, scheduler;
  if (auto s = ReadString(body, "sampler_name", &name); !s) return s;
  if (auto s = ReadString(body, "sampler_index", &index); !s) return s;
  if (auto s = ReadString(body, "scheduler", &scheduler); !s) return s;
  if (name.empty()) name = index;  // the older field, used when sampler_name is absent
  if (name.empty() || name == kNoChoiceSampler) return Status::Ok();
  auto sampler = SamplerFromA1111(name, scheduler);
  if (!sampler) {
    Error e = Error::Make(ErrorCode::kNotFound, "Sampler not found: \"" + name + "\"");
    e.field = "sampler_name";
    return e;
  }
  std::string lower = Lower(scheduler);
  if (!lower.empty() && lower != "automatic" && !(lower == "karras" && *sampler != "ddim")) {
    out->warnings.push_back("scheduler \"" + scheduler + "\" is not supported; ignored");
  }
  out->request.sampler = *sampler;
  out->sampler_label = name;
  return Status::Ok();
}

Status ReadEdit(const json& body, A1111Request* out) {
  auto images = body.find("init_images");
  if (images == body.end() || !images->is_array() || images->empty()) {
    return Error::Invalid("init_images", "init_images must be a list of base64 images");
  }
  if (images->size() > 1) {
    out->warnings.push_back("only the first of init_images is edited; the others are ignored");
  }
  auto image = DecodeImageField((*images)[0], "init_images");
  if (!image.ok()) return image.error();
  out->request.init_image = std::move(image.value());
  if (body.contains("mask") && !body["mask"].is_null()) {
    auto mask = DecodeImageField(body["mask"], "mask");
    if (!mask.ok()) return mask.error();
    out->request.mask = std::move(mask.value());
  }
  std::optional<double> strength;
  if (auto s = ReadNumber(body, "denoising_strength", &strength); !s) return s;
  out->request.strength = strength;
  return Status::Ok();
}

Status ReadCounts(const json& body, const ModelLimits& limits, A1111Request* out) {
  int64_t batch_size = 1, n_iter = 1;
  if (auto s = ReadInt(body, "batch_size", 1, 1000, &batch_size); !s) return s;
  if (auto s = ReadInt(body, "n_iter", 1, 1000, &n_iter); !s) return s;
  if (batch_size * n_iter > limits.max_count) {
    return Error::Invalid("batch_size", "batch_size x n_iter must be at most " +
                                            std::to_string(limits.max_count) + " (got " +
                                            std::to_string(batch_size * n_iter) + ")");
  }
  out->batch_size = static_cast<int>(batch_size);
  out->n_iter = static_cast<int>(n_iter);
  out->request.count = out->batch_size * out->n_iter;
  return Status::Ok();
}

Status ReadCore(const json& body, A1111Request* out) {
  GenerateRequest& r = out->request;
  if (auto s = ReadString(body, "prompt", &r.prompt); !s) return s;
  if (auto s = ReadString(body, "negative_prompt", &r.negative_prompt); !s) return s;
  int64_t seed = -1;
  if (auto s = ReadInt(body, "seed", -1, kMaxSeed, &seed); !s) return s;
  if (seed >= 0) r.seed = seed;  // -1: a random seed, as in A1111
  if (auto s = ReadOptional(body, "steps", 1, 10000, &r.steps); !s) return s;
  if (auto s = ReadOptional(body, "width", 1, 16384, &r.width); !s) return s;
  if (auto s = ReadOptional(body, "height", 1, 16384, &r.height); !s) return s;
  if (auto s = ReadNumber(body, "cfg_scale", &r.guidance); !s) return s;
  return ReadBool(body, "send_images", &out->send_images);
}

// The time A1111 stamps its jobs with: YYYYmmddHHMMSS, UTC here.
std::string JobTimestamp() {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%d%H%M%S", &tm);
  return buf;
}

// The request as A1111 echoes it: what was sent, with the defaults that were applied.
json EchoParameters(const json& body, const A1111Request& parsed, const GenerateResult& result,
                    bool img2img) {
  json echo = body;
  echo["prompt"] = result.prompt;
  echo["negative_prompt"] = result.negative_prompt;
  if (!echo.contains("seed") || echo["seed"].is_null()) echo["seed"] = -1;
  echo["steps"] = result.steps;
  echo["cfg_scale"] = result.guidance;
  echo["width"] = result.width;
  echo["height"] = result.height;
  echo["batch_size"] = parsed.batch_size;
  echo["n_iter"] = parsed.n_iter;
  if (img2img &&
      !(body.contains("include_init_images") && body["include_init_images"].is_boolean() &&
        body["include_init_images"].get<bool>())) {
    echo["init_images"] = nullptr;  // A1111 does not send the inputs back unless asked
    echo["mask"] = nullptr;
  }
  return echo;
}

// A1111's info object (sent as a JSON string), plus imagegen's job_id, keys and warnings.
json InfoJson(const GenerateResult& r, const A1111Request& parsed, const std::string& sampler,
              std::optional<double> strength) {
  json seeds = json::array(), infotexts = json::array(), keys = json::array();
  for (size_t i = 0; i < r.images.size(); ++i) {
    const StoredImage& image = r.images[i];
    seeds.push_back(image.seed);
    keys.push_back(image.key);
    int pos = static_cast<int>(i) % parsed.batch_size;
    infotexts.push_back(InfoText(r, sampler, image.seed, parsed.batch_size, pos, strength));
  }
  size_t n = r.images.size();
  std::vector<std::string> warnings = parsed.warnings;
  warnings.insert(warnings.end(), r.warnings.begin(), r.warnings.end());
  return {{"prompt", r.prompt},
          {"all_prompts", std::vector<std::string>(n, r.prompt)},
          {"negative_prompt", r.negative_prompt},
          {"all_negative_prompts", std::vector<std::string>(n, r.negative_prompt)},
          {"seed", r.seed},
          {"all_seeds", seeds},
          {"subseed", -1},  // no variation seeds
          {"all_subseeds", std::vector<int>(n, -1)},
          {"subseed_strength", 0},
          {"width", r.width},
          {"height", r.height},
          {"sampler_name", sampler},
          {"cfg_scale", r.guidance},
          {"steps", r.steps},
          {"batch_size", parsed.batch_size},
          {"restore_faces", false},
          {"face_restoration_model", nullptr},
          {"sd_model_name", r.model},
          {"sd_model_hash", nullptr},
          {"seed_resize_from_w", -1},
          {"seed_resize_from_h", -1},
          {"denoising_strength", strength ? json(*strength) : json(nullptr)},
          {"extra_generation_params", json::object()},
          {"index_of_first_image", 0},
          {"infotexts", infotexts},
          {"styles", json::array()},
          {"job_timestamp", JobTimestamp()},
          {"clip_skip", 1},
          {"is_using_inpainting_conditioning", false},
          {"version", "imagegen " IMAGEGEN_VERSION},
          {"job_id", r.job_id},
          {"keys", keys},
          {"warnings", warnings}};
}

}  // namespace

std::string A1111SamplerName(const std::string& imagegen_name) {
  for (const auto& s : SamplerTable()) {
    if (imagegen_name == s.imagegen) return s.a1111;
  }
  return imagegen_name;
}

std::optional<std::string> SamplerFromA1111(const std::string& name, const std::string& scheduler) {
  std::optional<std::string> found;
  for (const auto& s : SamplerTable()) {
    bool alias = std::find(s.aliases.begin(), s.aliases.end(), name) != s.aliases.end();
    if (name == s.a1111 || name == s.imagegen || alias) found = s.imagegen;
  }
  if (found == "dpmpp_2m" && Lower(scheduler) == "karras") found = "dpmpp_2m_karras";
  return found;
}

Result<A1111Request> ParseA1111Request(const json& body, bool img2img, const ModelLimits& limits) {
  A1111Request out;
  if (auto s = ReadCore(body, &out); !s) return s.error();
  if (auto s = ReadCounts(body, limits, &out); !s) return s.error();
  if (auto s = ReadSampler(body, &out); !s) return s.error();
  if (auto s = ReadOverrides(body, &out); !s) return s.error();
  if (img2img) {
    if (auto s = ReadEdit(body, &out); !s) return s.error();
  }
  WarnUnhonoured(body, &out.warnings);
  return out;
}

std::string InfoText(const GenerateResult& result, const std::string& sampler, int64_t seed,
                     int batch_size, int batch_pos, std::optional<double> denoising_strength) {
  std::string text = result.prompt;
  if (!result.negative_prompt.empty()) text += "\nNegative prompt: " + result.negative_prompt;
  text += "\nSteps: " + std::to_string(result.steps) + ", Sampler: " + sampler +
          ", CFG scale: " + PyFloat(result.guidance) + ", Seed: " + std::to_string(seed) +
          ", Size: " + std::to_string(result.width) + "x" + std::to_string(result.height) +
          ", Model: " + result.model;
  if (denoising_strength) text += ", Denoising strength: " + PyFloat(*denoising_strength);
  if (batch_size > 1) {
    text +=
        ", Batch size: " + std::to_string(batch_size) + ", Batch pos: " + std::to_string(batch_pos);
  }
  return text + ", Version: imagegen " IMAGEGEN_VERSION;
}

HttpResponse A1111ErrorResponse(const Error& error, bool validation) {
  HttpResponse response = ErrorResponse(error);  // status, Retry-After, error_code
  json body;
  if (validation && error.code == ErrorCode::kInvalidRequest) {
    // FastAPI's request validation error, which A1111 clients know: 422 with a list.
    response.status = 422;
    std::string field = error.field.empty() ? "__root__" : A1111Field(error.field);
    body = {{"detail",
             json::array(
                 {{{"loc", {"body", field}}, {"msg", error.message}, {"type", "value_error"}}})}};
  } else {
    body = {{"error", HttpStatusFor(error.code) >= 500 ? "RuntimeError" : "HTTPException"},
            {"detail", error.message},
            {"body", ""},
            {"errors", error.message}};
  }
  body["code"] = ErrorCodeName(error.code);
  response.body = Dump(body);
  return response;
}

int ProgressBoard::Begin(const std::string& job) {
  std::lock_guard<std::mutex> lock(mu_);
  int id = next_id_++;
  entries_[id] = Entry{job, Clock::now(), 0, 0, std::nullopt};
  return id;
}

void ProgressBoard::Update(int id, int step, int total) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(id);
  if (it == entries_.end()) return;
  it->second.step = step;
  it->second.total = total;
}

void ProgressBoard::SetPreview(int id, const Preview& preview) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(id);
  if (it != entries_.end()) it->second.preview = preview;
}

void ProgressBoard::End(int id) {
  std::lock_guard<std::mutex> lock(mu_);
  entries_.erase(id);
}

std::optional<ProgressBoard::Entry> ProgressBoard::Oldest(int* count) const {
  std::lock_guard<std::mutex> lock(mu_);
  *count = static_cast<int>(entries_.size());
  if (entries_.empty()) return std::nullopt;
  return entries_.begin()->second;
}

A1111Api::A1111Api(std::shared_ptr<Pipeline> pipeline, AdmittedRunner run)
    : pipeline_(std::move(pipeline)), run_(std::move(run)) {}

std::vector<RouteSpec> A1111Api::Routes() {
  return {
      {"POST", "/sdapi/v1/txt2img", [this](HttpRequest& r) { return Generate(r, false); }},
      {"POST", "/sdapi/v1/img2img", [this](HttpRequest& r) { return Generate(r, true); }},
      {"GET", "/sdapi/v1/samplers", [this](HttpRequest& r) { return Samplers(r); }},
      {"GET", "/sdapi/v1/sd-models", [this](HttpRequest& r) { return SdModels(r); }},
      {"GET", "/sdapi/v1/progress", [this](HttpRequest& r) { return Progress(r); }},
      {"GET", "/sdapi/v1/options", [this](HttpRequest& r) { return Options(r); }},
  };
}

Result<GenerateResult> A1111Api::RunTracked(const GenerateRequest& generate,
                                            const HttpRequest& request) {
  int id = progress_.Begin(request.request_id);
  GenerateContext ctx;
  ctx.on_progress = [this, id](int step, int total) { progress_.Update(id, step, total); };
  ctx.on_preview = [this, id](const Preview& preview) { progress_.SetPreview(id, preview); };
  ctx.preview_every = 5;  // a preview costs a decode; A1111's default "every N steps" is 10
  auto result = run_(generate, request, std::move(ctx));
  progress_.End(id);
  return result;
}

std::string A1111Api::SamplerUsed(const GenerateRequest& request) const {
  const auto& samplers = pipeline_->model().Limits().samplers;
  if (samplers.empty()) return kNoChoiceSampler;
  return A1111SamplerName(request.sampler.empty() ? samplers.front() : request.sampler);
}

HttpResponse A1111Api::Generate(HttpRequest& request, bool img2img) {
  if (auto s = CheckJsonContentType(request); !s) return A1111ErrorResponse(s.error());
  auto body = ParseJsonObject(request.body);
  if (!body.ok()) return A1111ErrorResponse(body.error());
  auto parsed = ParseA1111Request(body.value(), img2img, pipeline_->model().Limits());
  if (!parsed.ok()) return A1111ErrorResponse(parsed.error());
  parsed->request.owner = request.principal;
  auto result = RunTracked(parsed->request, request);
  if (!result.ok()) return A1111ErrorResponse(result.error());
  const GenerateResult& r = result.value();

  std::string sampler = SamplerUsed(parsed->request);
  std::optional<double> strength;
  if (img2img) {
    strength = parsed->request.strength.value_or(pipeline_->model().Limits().default_strength);
  }
  json images = json::array();
  for (const StoredImage& image : r.images) {
    if (!parsed->send_images) break;
    auto bytes = pipeline_->store().Get(image.key, nullptr);
    if (!bytes.ok()) return A1111ErrorResponse(bytes.error());
    images.push_back(aws::Base64Encode(bytes.value()));
  }
  json answer = {{"images", images},
                 {"parameters", EchoParameters(body.value(), parsed.value(), r, img2img)},
                 {"info", Dump(InfoJson(r, parsed.value(), sampler, strength))}};
  return JsonResponse(200, Dump(answer));
}

HttpResponse A1111Api::Samplers(HttpRequest&) {
  json out = json::array();
  const auto& samplers = pipeline_->model().Limits().samplers;
  if (samplers.empty()) {
    out.push_back({{"name", kNoChoiceSampler},
                   {"aliases", json::array()},
                   {"options", {{"note", "this model has no sampler choice"}}}});
  }
  for (const auto& name : samplers) {
    json entry = {
        {"name", A1111SamplerName(name)}, {"aliases", json::array()}, {"options", json::object()}};
    for (const auto& s : SamplerTable()) {
      if (name == s.imagegen) {
        entry["aliases"] = s.aliases;
        entry["options"] = s.options;
      }
    }
    out.push_back(std::move(entry));
  }
  return JsonResponse(200, Dump(out));
}

HttpResponse A1111Api::SdModels(HttpRequest&) {
  // A1111 lists checkpoint files with their hashes; imagegen has one configured model, whose
  // name is all it reveals (no paths, no URLs beyond what results already report).
  std::string name = pipeline_->model().Name();
  json model = {{"title", name},     {"model_name", name}, {"hash", nullptr},
                {"sha256", nullptr}, {"filename", name},   {"config", nullptr}};
  return JsonResponse(200, Dump(json::array({model})));
}

HttpResponse A1111Api::Options(HttpRequest&) {
  return JsonResponse(200, Dump({{"sd_model_checkpoint", pipeline_->model().Name()},
                                 {"sd_checkpoint_hash", nullptr},
                                 {"samples_format", "png"},
                                 {"CLIP_stop_at_last_layers", 1}}));
}

HttpResponse A1111Api::Progress(HttpRequest& request) {
  int count = 0;
  auto oldest = progress_.Oldest(&count);
  json state = {{"skipped", false}, {"interrupted", false}, {"stopping_generation", false},
                {"job", ""},        {"job_count", count},   {"job_timestamp", "0"},
                {"job_no", 0},      {"sampling_step", 0},   {"sampling_steps", 0}};
  json out = {{"progress", 0.0},          {"eta_relative", 0.0}, {"state", state},
              {"current_image", nullptr}, {"textinfo", nullptr}, {"current_task", nullptr}};
  if (!oldest) return JsonResponse(200, Dump(out));
  double progress = oldest->total > 0 ? static_cast<double>(oldest->step) / oldest->total : 0.0;
  double elapsed = std::chrono::duration<double>(Clock::now() - oldest->started).count();
  out["progress"] = progress;
  out["eta_relative"] = progress > 0 ? elapsed / progress - elapsed : 0.0;
  out["state"]["job"] = oldest->job;
  out["state"]["sampling_step"] = oldest->step;
  out["state"]["sampling_steps"] = oldest->total;
  out["current_task"] = oldest->job;
  out["textinfo"] =
      "Sampling step " + std::to_string(oldest->step) + "/" + std::to_string(oldest->total);
  const std::optional<Preview>& preview = oldest->preview;
  bool whole = preview && preview->rgb.size() == static_cast<size_t>(preview->width) *
                                                     static_cast<size_t>(preview->height) * 3;
  if (whole && request.Query("skip_current_image") != "true") {
    Image image(oldest->preview->width, oldest->preview->height);
    image.rgb = oldest->preview->rgb;
    auto png = EncodePng(image, {});
    if (png.ok()) out["current_image"] = aws::Base64Encode(png.value());
  }
  return JsonResponse(200, Dump(out));
}

}  // namespace imagegen
