// The OpenAI door's Server-Sent Events (stream: true) and GET /v1/models; see openai.h.
#include <algorithm>
#include <chrono>
#include <nlohmann/json.hpp>

#include "aws/encoding.h"
#include "core/log.h"
#include "http/openai.h"
#include "image/codec.h"
#include "image/png.h"

namespace imagegen {
namespace {

using json = nlohmann::json;

int64_t NowSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string Dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

// One event: the JSON holds no raw line break (dump escapes them), so one data line suffices.
std::string SseEvent(const std::string& type, const json& data) {
  return "event: " + type + "\ndata: " + Dump(data) + "\n\n";
}

std::string SizeText(int width, int height) {
  return std::to_string(width) + "x" + std::to_string(height);
}

// What every event of the stream says about the image asked for.
json CommonFields(const std::string& type, const ValidRequest& valid) {
  return {{"type", type},
          {"created_at", NowSeconds()},
          {"size", SizeText(valid.width, valid.height)},
          {"quality", valid.quality_preset.empty() ? "medium" : valid.quality_preset},
          {"background", std::string(BackgroundName(valid.background))},
          {"output_format", std::string(ImageFormatName(valid.format))}};
}

// A preview at the requested size, in the requested format.
Result<std::string> EncodePreview(const Preview& preview, const ValidRequest& valid) {
  Image image(preview.width, preview.height);
  if (preview.rgb.size() != image.rgb.size()) {
    return Error::Make(ErrorCode::kInternal, "a model's preview has the wrong size");
  }
  image.rgb = preview.rgb;
  if (image.width != valid.width || image.height != valid.height) {
    image = ResizeNearest(image, valid.width, valid.height);
  }
  auto encoded = EncodeImage(image, {}, valid.format, valid.quality);
  if (!encoded.ok()) return encoded.error();
  return aws::Base64Encode(encoded->bytes);
}

json Usage(const GenerateResult& result) {
  int text_tokens = CountWords(result.prompt) + CountWords(result.negative_prompt);
  return {{"input_tokens", text_tokens},
          {"input_tokens_details", {{"text_tokens", text_tokens}, {"image_tokens", 0}}},
          {"output_tokens", 0},
          {"total_tokens", text_tokens}};
}

// The error event's body, in OpenAI's shape; an internal error's detail is logged, not sent.
std::string ErrorEvent(const Error& error, const std::string& request_id) {
  Error shown = error;
  if (error.code == ErrorCode::kInternal) {
    Log("error", "internal error in a stream",
        {{"request_id", request_id}, {"error", error.message}});
    shown.message = "internal error; request id " + request_id;
  }
  json body = json::parse(OpenAiErrorResponse(shown).body, nullptr, false);
  return SseEvent("error", body);
}

}  // namespace

void WriteOpenAiStream(const OpenAiRequest& request, const ValidRequest& valid,
                       const std::string& event_prefix, const std::string& request_id,
                       const std::function<Result<GenerateResult>(GenerateContext&)>& run,
                       ObjectStore& store, const BodyWriter& write) {
  GenerateContext ctx;
  int sent = 0;
  bool client_gone = false;
  if (request.partial_images > 0) {
    // Evenly spread over the steps; the last step is the completed image itself.
    ctx.preview_every = std::max(1, valid.steps / (request.partial_images + 1));
    ctx.on_preview = [&](const Preview& preview) {
      if (sent >= request.partial_images || client_gone || preview.index != 0) return;
      auto b64 = EncodePreview(preview, valid);
      if (!b64.ok()) return;  // a preview is a courtesy: the image itself still comes
      json event = CommonFields(event_prefix + ".partial_image", valid);
      event["b64_json"] = std::move(b64.value());
      event["partial_image_index"] = sent++;
      client_gone = !write(SseEvent(event_prefix + ".partial_image", event));
    };
  }
  // The head is already out: a throw here could not become a 500, so it becomes an event.
  Result<GenerateResult> result = Error::Make(ErrorCode::kInternal, "generation threw");
  try {
    result = run(ctx);
  } catch (const std::exception& e) {
    result = Error::Make(ErrorCode::kInternal, std::string("generation threw: ") + e.what());
  }
  if (client_gone) return;
  if (!result.ok()) {
    write(ErrorEvent(result.error(), request_id));
    return;
  }
  const StoredImage& image = result->images.front();
  auto bytes = store.Get(image.key, nullptr);
  if (!bytes.ok()) {
    write(ErrorEvent(bytes.error(), request_id));
    return;
  }
  std::vector<std::string> warnings = request.warnings;
  warnings.insert(warnings.end(), result->warnings.begin(), result->warnings.end());
  if (sent < request.partial_images) {
    warnings.push_back("partial_images: " + std::to_string(request.partial_images) + " asked, " +
                       std::to_string(sent) + " sent (model " + result->model +
                       (sent == 0 ? " makes no intermediate images)" : " made no more)"));
  }
  json event = CommonFields(event_prefix + ".completed", valid);
  event["b64_json"] = aws::Base64Encode(bytes.value());
  event["background"] = result->transparent ? "transparent" : "opaque";
  event["usage"] = Usage(result.value());
  event["model"] = result->model;
  event["seed"] = image.seed;
  event["key"] = image.key;
  event["warnings"] = warnings;
  write(SseEvent(event_prefix + ".completed", event));
}

namespace {

// "created" of the model list: when this process started serving.
const int64_t kProcessStart = NowSeconds();

json ModelObject(const std::string& model_name) {
  return {{"id", model_name},
          {"object", "model"},
          {"created", kProcessStart},
          {"owned_by", "imagegen"}};
}

}  // namespace

HttpResponse OpenAiModelsResponse(const std::string& model_name) {
  json body = {{"object", "list"}, {"data", json::array({ModelObject(model_name)})}};
  return JsonResponse(200, Dump(body));
}

HttpResponse OpenAiModelResponse(const std::string& model_name, const std::string& id) {
  if (id != model_name) {
    return OpenAiErrorResponse(Error::Make(
        ErrorCode::kNotFound, "the model '" + id + "' does not exist; this server serves '" +
                                  model_name + "' (GET /v1/models)"));
  }
  return JsonResponse(200, Dump(ModelObject(model_name)));
}

}  // namespace imagegen
