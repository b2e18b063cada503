#include "http/openai.h"

#include <openssl/evp.h>

#include <cctype>
#include <chrono>
#include <nlohmann/json.hpp>

#include "core/request_json.h"

namespace imagegen {
namespace {

using json = nlohmann::json;

std::string Base64(const std::string& data) {
  std::string out(4 * ((data.size() + 2) / 3), '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(data.data()),
                          static_cast<int>(data.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

// OpenAI's names for the native fields they map onto.
std::string OpenAiParam(const std::string& field) {
  if (field == "count") return "n";
  if (field == "format") return "output_format";
  return field;
}

Status ReadBool(const json& body, const char* name, bool* out) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) return Status::Ok();
  if (!it->is_boolean()) return Error::Invalid(name, std::string(name) + " must be a boolean");
  *out = it->get<bool>();
  return Status::Ok();
}

// The fields with no pixels behind them: checked, then reported where they change nothing.
Status ReadUnhonoured(const json& body, OpenAiRequest* out) {
  bool stream = false;
  if (auto s = ReadBool(body, "stream", &stream); !s) return s;
  if (stream) {
    return Error::Invalid("stream",
                          "streaming (stream: true) is not supported yet; send stream: false");
  }
  int64_t partial_images = 0;
  if (auto s = ReadInt(body, "partial_images", 0, 3, &partial_images); !s) return s;
  if (partial_images > 0) out->warnings.push_back("partial_images has no effect without stream");
  std::string moderation, style, user;
  if (auto s = ReadString(body, "moderation", &moderation); !s) return s;
  if (!moderation.empty() && moderation != "auto" && moderation != "low") {
    return Error::Invalid("moderation", "moderation must be \"auto\" or \"low\"");
  }
  if (!moderation.empty()) {
    out->warnings.push_back("moderation \"" + moderation +
                            "\" accepted: imagegen applies no moderation of its own (the "
                            "model's own content filters, if any, still apply)");
  }
  if (auto s = ReadString(body, "style", &style); !s) return s;
  if (!style.empty()) out->warnings.push_back("style \"" + style + "\" is not supported; ignored");
  if (auto s = ReadString(body, "user", &user); !s) return s;  // an end-user id; unused
  return Status::Ok();
}

}  // namespace

int CountWords(const std::string& text) {
  int words = 0;
  bool in_word = false;
  for (unsigned char c : text) {
    bool space = std::isspace(c) != 0;
    if (!space && !in_word) ++words;
    in_word = !space;
  }
  return words;
}

Result<OpenAiRequest> ParseOpenAiRequest(const json& body, const std::string& model_name) {
  static const std::set<std::string> kKnown = {"prompt",
                                               "n",
                                               "size",
                                               "response_format",
                                               "quality",
                                               "style",
                                               "user",
                                               "model",
                                               "negative_prompt",
                                               "seed",
                                               "steps",
                                               "guidance_scale",
                                               "background",
                                               "moderation",
                                               "output_format",
                                               "output_compression",
                                               "stream",
                                               "partial_images"};
  if (auto s = CheckKnownFields(body, kKnown); !s) return s.error();
  json native = json::object();
  for (const char* name : {"prompt", "n", "size", "negative_prompt", "seed", "steps",
                           "guidance_scale", "background"}) {
    if (body.contains(name)) native[name] = body[name];
  }
  OpenAiRequest out;
  if (auto s = ReadUnhonoured(body, &out); !s) return s.error();
  std::string output_format;
  if (auto s = ReadString(body, "output_format", &output_format); !s) return s.error();
  if (!output_format.empty()) native["format"] = output_format;
  int64_t compression = -1;
  if (auto s = ReadInt(body, "output_compression", 0, 100, &compression); !s) return s.error();
  if (compression >= 0) native["quality"] = compression;
  std::string quality, model;
  if (auto s = ReadString(body, "quality", &quality); !s) return s.error();
  if (auto s = ReadString(body, "model", &model); !s) return s.error();
  auto request = ParseGenerateJson(native);
  if (!request.ok()) return request.error();
  out.request = std::move(request.value());
  out.request.model = model_name;
  out.request.quality_preset = quality.empty() ? "auto" : quality;
  std::string format = "url";
  if (auto s = ReadString(body, "response_format", &format); !s) return s.error();
  if (format != "url" && format != "b64_json") {
    return Error::Invalid("response_format", "response_format must be \"url\" or \"b64_json\"");
  }
  out.b64_json = format == "b64_json";
  return out;
}

HttpResponse OpenAiSuccessResponse(
    const OpenAiRequest& request, const GenerateResult& result, ObjectStore& store,
    const std::function<std::string(const std::string&)>& url_for_key) {
  json data = json::array();
  for (const auto& image : result.images) {
    json item = {{"revised_prompt", result.prompt}, {"seed", image.seed}, {"key", image.key}};
    if (request.b64_json) {
      auto bytes = store.Get(image.key, nullptr);
      if (!bytes.ok()) return OpenAiErrorResponse(bytes.error());
      item["b64_json"] = Base64(bytes.value());
    } else {
      item["url"] = image.links.presigned_url ? *image.links.presigned_url : url_for_key(image.key);
    }
    data.push_back(std::move(item));
  }
  auto created = std::chrono::duration_cast<std::chrono::seconds>(
                     std::chrono::system_clock::now().time_since_epoch())
                     .count();
  int text_tokens = CountWords(result.prompt) + CountWords(result.negative_prompt);
  json usage = {{"input_tokens", text_tokens},
                {"input_tokens_details", {{"text_tokens", text_tokens}, {"image_tokens", 0}}},
                {"output_tokens", 0},
                {"total_tokens", text_tokens}};
  std::vector<std::string> warnings = request.warnings;
  warnings.insert(warnings.end(), result.warnings.begin(), result.warnings.end());
  json body = {{"created", created},
               {"data", data},
               {"background", result.transparent ? "transparent" : "opaque"},
               {"output_format", ImageFormatName(result.format)},
               {"quality", result.quality_preset.empty() ? "medium" : result.quality_preset},
               {"size", std::to_string(result.width) + "x" + std::to_string(result.height)},
               {"usage", usage},
               {"model", result.model},
               {"warnings", warnings}};
  return JsonResponse(200, body.dump(-1, ' ', false, json::error_handler_t::replace));
}

HttpResponse OpenAiErrorResponse(const Error& error) {
  HttpResponse response = ErrorResponse(error);
  std::string type = HttpStatusFor(error.code) >= 500 ? "server_error" : "invalid_request_error";
  if (error.code == ErrorCode::kRateLimited || error.code == ErrorCode::kOverloaded) {
    type = "rate_limit_error";
  } else if (error.code == ErrorCode::kUnauthorized) {
    type = "authentication_error";
  }
  json inner = {{"message", error.message},
                {"type", type},
                {"param", error.field.empty() ? json(nullptr) : json(OpenAiParam(error.field))},
                {"code", ErrorCodeName(error.code)}};
  response.body = json{{"error", inner}}.dump(-1, ' ', false, json::error_handler_t::replace);
  return response;
}

}  // namespace imagegen
