#include "http/openai.h"

#include <openssl/evp.h>

#include <cctype>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "aws/encoding.h"
#include "core/request_json.h"
#include "core/strings.h"
#include "image/codec.h"

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
  if (auto s = ReadBool(body, "stream", &out->stream); !s) return s;
  int64_t partial_images = 0;
  if (auto s = ReadInt(body, "partial_images", 0, 3, &partial_images); !s) return s;
  out->partial_images = static_cast<int>(partial_images);
  if (partial_images > 0 && !out->stream) {
    out->warnings.push_back("partial_images has no effect without stream");
  }
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
  if (auto s = ReadString(body, "user", &user); !s) return s;
  if (!user.empty()) {
    out->warnings.push_back("user accepted and not used: imagegen keeps no per-end-user records");
  }
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

namespace {

const std::set<std::string>& GenerationFields() {
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
  return kKnown;
}

// The fields generations and edits share. `native_names`: the members that pass unchanged to
// the native parser (ParseGenerateJson).
Result<OpenAiRequest> ParseFields(const json& body, const std::string& model_name,
                                  const std::vector<const char*>& native_names) {
  json native = json::object();
  for (const char* name : native_names) {
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
  if (out.stream && out.request.count > 1) {
    return Error::Invalid("n",
                          "stream: true makes one image (n = 1): the events carry no image index");
  }
  return out;
}

const std::vector<const char*> kGenerationNative = {
    "prompt", "n", "size", "negative_prompt", "seed", "steps", "guidance_scale", "background"};

}  // namespace

Result<OpenAiRequest> ParseOpenAiRequest(const json& body, const std::string& model_name) {
  if (auto s = CheckKnownFields(body, GenerationFields()); !s) return s.error();
  return ParseFields(body, model_name, kGenerationNative);
}

namespace {

// The edit fields beyond the generation fields: the images (multipart files, or data URLs in
// JSON), imagegen's strength, and OpenAI's input_fidelity (reported: imagegen has no such knob).
std::set<std::string> EditFields(std::initializer_list<const char*> inputs) {
  std::set<std::string> known = GenerationFields();
  known.insert({"strength", "input_fidelity"});
  for (const char* name : inputs) known.insert(name);
  return known;
}

std::vector<const char*> EditNative() {
  std::vector<const char*> names = kGenerationNative;
  names.push_back("strength");
  return names;
}

// OpenAI's mask (alpha 0 = edit here) as imagegen's (white = repaint), the image's size.
Result<std::string> RepaintMaskFromAlpha(const std::string& mask, const std::string& image) {
  auto decoded_mask = DecodeImage(mask);
  if (!decoded_mask.ok()) {
    return Error::Invalid("mask",
                          "mask is not a PNG, JPEG or WebP image: " + decoded_mask.error().message);
  }
  const Image& m = decoded_mask->image;
  if (!m.HasAlpha()) {
    return Error::Invalid("mask",
                          "mask needs an alpha channel: its fully transparent pixels mark the "
                          "area to edit");
  }
  auto decoded_image = DecodeImage(image);
  if (!decoded_image.ok()) {
    return Error::Invalid(
        "image", "image is not a PNG, JPEG or WebP image: " + decoded_image.error().message);
  }
  const Image& source = decoded_image->image;
  if (source.width != m.width || source.height != m.height) {
    return Error::Invalid("mask", "mask is " + std::to_string(m.width) + "x" +
                                      std::to_string(m.height) + " but the image is " +
                                      std::to_string(source.width) + "x" +
                                      std::to_string(source.height) + "; they must match");
  }
  Image repaint(m.width, m.height);
  for (size_t i = 0; i < m.alpha.size(); ++i) {
    uint8_t v = m.alpha[i] == 0 ? 255 : 0;
    repaint.rgb[i * 3] = repaint.rgb[i * 3 + 1] = repaint.rgb[i * 3 + 2] = v;
  }
  auto encoded = EncodeImage(repaint, {}, ImageFormat::kPng, 0);
  if (!encoded.ok()) return encoded.error();
  return std::move(encoded->bytes);
}

// The edit inputs into `out`: the first image is edited, the mask converted.
Status AttachEditImages(const std::vector<std::string>& images, const std::string& mask,
                        const json& fields, OpenAiRequest* out) {
  if (images.empty()) {
    return Error::Invalid("image", "an image to edit is required (image or image[])");
  }
  if (images.size() > 16) return Error::Invalid("image", "at most 16 images may be given");
  if (images.size() > 1) {
    out->warnings.push_back(std::to_string(images.size()) +
                            " images given: imagegen edits the first and ignores the others");
  }
  if (fields.contains("input_fidelity")) {
    out->warnings.push_back("input_fidelity is not supported; ignored");
  }
  out->request.init_image = images.front();
  if (mask.empty()) return Status::Ok();
  auto repaint = RepaintMaskFromAlpha(mask, images.front());
  if (!repaint.ok()) return repaint.error();
  out->request.mask = std::move(repaint.value());
  return Status::Ok();
}

// A form field's text as the JSON value the shared parser expects; text that is not of the
// field's type stays text, so the parser names the field and the type it wants.
json FormValue(const std::string& name, const std::string& text) {
  static const std::set<std::string> kIntegers = {"n", "output_compression", "partial_images",
                                                  "seed", "steps"};
  static const std::set<std::string> kNumbers = {"guidance_scale", "strength"};
  if (name == "stream" && (text == "true" || text == "false")) return text == "true";
  if (kIntegers.count(name) != 0) {
    int64_t value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec == std::errc() && end == text.data() + text.size()) return value;
  }
  if (kNumbers.count(name) != 0 && !text.empty()) {
    char* end = nullptr;
    double value = std::strtod(text.c_str(), &end);
    if (end == text.c_str() + text.size() && std::isfinite(value)) return value;
  }
  return text;
}

// {"image_url": "data:<type>;base64,<data>"} -> the bytes.
Result<std::string> DataUrlBytes(const json& reference, const std::string& field) {
  if (!reference.is_object()) {
    return Error::Invalid(field, field + " must be an object with an image_url");
  }
  if (reference.contains("file_id")) {
    return Error::Invalid(field, "file_id is not supported: send the image as a data URL");
  }
  auto url = reference.find("image_url");
  if (url == reference.end() || !url->is_string()) {
    return Error::Invalid(field, field + ".image_url must be a string");
  }
  const std::string& text = url->get_ref<const std::string&>();
  size_t comma = text.find(',');
  if (text.rfind("data:", 0) != 0 || comma == std::string::npos) {
    return Error::Invalid(field, field +
                                     ".image_url must be a data URL (data:image/png;base64,...): "
                                     "imagegen fetches no URLs");
  }
  std::string header = Lower(text.substr(0, comma));
  if (header.size() < 7 || header.compare(header.size() - 7, 7, ";base64") != 0) {
    return Error::Invalid(field, field + ".image_url must be a base64 data URL");
  }
  auto bytes = aws::Base64Decode(std::string_view(text).substr(comma + 1));
  if (!bytes || bytes->empty()) {
    return Error::Invalid(field, field + ".image_url holds no valid base64");
  }
  return std::move(*bytes);
}

}  // namespace

Result<OpenAiRequest> ParseOpenAiEditForm(const std::vector<MultipartPart>& parts,
                                          const std::string& model_name) {
  json fields = json::object();
  std::vector<std::string> images;
  std::string mask;
  for (const auto& part : parts) {
    if (part.name == "image" || part.name == "image[]") {
      images.push_back(part.data);
    } else if (part.name == "mask") {
      if (!mask.empty()) return Error::Invalid("mask", "mask given twice");
      mask = part.data;
    } else if (fields.contains(part.name)) {
      return Error::Invalid(part.name, part.name + " given twice");
    } else {
      fields[part.name] = FormValue(part.name, part.data);
    }
  }
  if (auto s = CheckKnownFields(fields, EditFields({"image", "image[]", "mask"})); !s) {
    return s.error();
  }
  auto out = ParseFields(fields, model_name, EditNative());
  if (!out.ok()) return out;
  if (auto s = AttachEditImages(images, mask, fields, &out.value()); !s) return s.error();
  return out;
}

Result<OpenAiRequest> ParseOpenAiEditJson(const json& body, const std::string& model_name) {
  if (auto s = CheckKnownFields(body, EditFields({"images", "mask"})); !s) return s.error();
  std::vector<std::string> images;
  if (auto it = body.find("images"); it != body.end() && !it->is_null()) {
    if (!it->is_array()) return Error::Invalid("images", "images must be an array");
    for (const auto& reference : *it) {
      auto bytes = DataUrlBytes(reference, "images");
      if (!bytes.ok()) return bytes.error();
      images.push_back(std::move(bytes.value()));
    }
  }
  std::string mask;
  if (auto it = body.find("mask"); it != body.end() && !it->is_null()) {
    auto bytes = DataUrlBytes(*it, "mask");
    if (!bytes.ok()) return bytes.error();
    mask = std::move(bytes.value());
  }
  auto out = ParseFields(body, model_name, EditNative());
  if (!out.ok()) return out;
  if (auto s = AttachEditImages(images, mask, body, &out.value()); !s) return s.error();
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
