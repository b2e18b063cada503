#include "http/openai.h"

#include <openssl/evp.h>

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

}  // namespace

Result<OpenAiRequest> ParseOpenAiRequest(const json& body, const std::string& model_name) {
  static const std::set<std::string> kKnown = {
      "prompt",          "n",    "size",  "response_format", "quality", "style", "user", "model",
      "negative_prompt", "seed", "steps", "guidance_scale"};
  if (auto s = CheckKnownFields(body, kKnown); !s) return s.error();
  json native = json::object();
  for (const char* name :
       {"prompt", "n", "size", "negative_prompt", "seed", "steps", "guidance_scale"}) {
    if (body.contains(name)) native[name] = body[name];
  }
  for (const char* name : {"quality", "style", "user", "model"}) {
    std::string ignored;
    if (auto s = ReadString(body, name, &ignored); !s) return s.error();
  }
  auto request = ParseGenerateJson(native);
  if (!request.ok()) return request.error();
  OpenAiRequest out{std::move(request.value()), false};
  out.request.model = model_name;
  std::string format = "url";
  if (auto s = ReadString(body, "response_format", &format); !s) return s.error();
  if (format != "url" && format != "b64_json") {
    return Error::Invalid("response_format", "response_format must be \"url\" or \"b64_json\"");
  }
  out.b64_json = format == "b64_json";
  return out;
}

HttpResponse OpenAiSuccessResponse(
    const GenerateResult& result, bool b64_json, ObjectStore& store,
    const std::function<std::string(const std::string&)>& url_for_key) {
  json data = json::array();
  for (const auto& image : result.images) {
    json item = {{"revised_prompt", result.prompt}, {"seed", image.seed}, {"key", image.key}};
    if (b64_json) {
      auto png = store.Get(image.key, nullptr);
      if (!png.ok()) return OpenAiErrorResponse(png.error());
      item["b64_json"] = Base64(png.value());
    } else {
      item["url"] = image.links.presigned_url ? *image.links.presigned_url : url_for_key(image.key);
    }
    data.push_back(std::move(item));
  }
  auto created = std::chrono::duration_cast<std::chrono::seconds>(
                     std::chrono::system_clock::now().time_since_epoch())
                     .count();
  return JsonResponse(200, json{{"created", created}, {"data", data}, {"model", result.model}}.dump(
                               -1, ' ', false, json::error_handler_t::replace));
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
                {"param", error.field.empty() ? json(nullptr) : json(error.field)},
                {"code", ErrorCodeName(error.code)}};
  response.body = json{{"error", inner}}.dump(-1, ' ', false, json::error_handler_t::replace);
  return response;
}

}  // namespace imagegen
