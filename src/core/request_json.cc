#include "core/request_json.h"

#include <cmath>
#include <nlohmann/json.hpp>

namespace imagegen {

Result<nlohmann::json> ParseJsonObject(const std::string& text) {
  try {
    auto json = nlohmann::json::parse(text);
    if (!json.is_object()) return Error::Invalid("body", "request body must be a JSON object");
    return json;
  } catch (const nlohmann::json::exception& e) {
    // parse_error, but also out_of_range for numbers beyond double (found by the fuzzer:
    // {"seed": 3e333} escaped as an uncaught exception, i.e. a 500).
    return Error::Invalid("body", std::string("malformed JSON: ") + e.what());
  }
}

Status CheckKnownFields(const nlohmann::json& body, const std::set<std::string>& known) {
  for (const auto& [name, value] : body.items()) {
    if (known.count(name) == 0) {
      std::string list;
      for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
      return Error::Invalid(name, "unknown field \"" + name + "\"; known fields: " + list);
    }
  }
  return Status::Ok();
}

Status ReadString(const nlohmann::json& body, const char* name, std::string* out) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) return Status::Ok();
  if (!it->is_string()) return Error::Invalid(name, std::string(name) + " must be a string");
  *out = it->get<std::string>();
  return Status::Ok();
}

Status ReadInt(const nlohmann::json& body, const char* name, int64_t lo, int64_t hi, int64_t* out) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) return Status::Ok();
  // 3.0 is an integer to a JSON client; 3.5 is not.
  bool integral = it->is_number_integer() ||
                  (it->is_number_float() && std::floor(it->get<double>()) == it->get<double>() &&
                   std::abs(it->get<double>()) < 9e15);
  if (!integral) return Error::Invalid(name, std::string(name) + " must be an integer");
  if (it->is_number_unsigned() && it->get<uint64_t>() > static_cast<uint64_t>(hi)) {
    return Error::Invalid(name, std::string(name) + " must be between " + std::to_string(lo) +
                                    " and " + std::to_string(hi));
  }
  int64_t v = it->is_number_float() ? static_cast<int64_t>(it->get<double>()) : it->get<int64_t>();
  if (v < lo || v > hi) {
    return Error::Invalid(name, std::string(name) + " must be between " + std::to_string(lo) +
                                    " and " + std::to_string(hi) + " (got " + std::to_string(v) +
                                    ")");
  }
  *out = v;
  return Status::Ok();
}

Status ReadNumber(const nlohmann::json& body, const char* name, std::optional<double>* out) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) return Status::Ok();
  if (!it->is_number()) return Error::Invalid(name, std::string(name) + " must be a number");
  *out = it->get<double>();
  return Status::Ok();
}

// An integer field that may be absent (null counts as absent); kept within [-max, max] so it
// fits an int, the real range being the model's (Validate).
Status ReadOptionalInt(const nlohmann::json& body, const char* name, int64_t max,
                       std::optional<int>* out) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) return Status::Ok();
  int64_t value = 0;
  if (auto s = ReadInt(body, name, -max, max, &value); !s) return s;
  *out = static_cast<int>(value);
  return Status::Ok();
}

Result<GenerateRequest> ParseGenerateJson(const nlohmann::json& body) {
  static const std::set<std::string> kKnown = {
      "prompt", "negative_prompt", "width",      "height",  "size",    "seed",
      "steps",  "guidance_scale",  "count",      "n",       "model",   "job_id",
      "format", "quality",         "background", "sampler", "strength"};
  if (auto s = CheckKnownFields(body, kKnown); !s) return s.error();
  GenerateRequest req;
  if (!body.contains("prompt")) return Error::Invalid("prompt", "prompt is required");
  if (auto s = ReadString(body, "prompt", &req.prompt); !s) return s.error();
  if (auto s = ReadString(body, "negative_prompt", &req.negative_prompt); !s) return s.error();
  if (auto s = ReadString(body, "model", &req.model); !s) return s.error();
  if (auto s = ReadString(body, "job_id", &req.job_id); !s) return s.error();
  if (auto s = ReadString(body, "format", &req.format); !s) return s.error();
  if (auto s = ReadString(body, "background", &req.background); !s) return s.error();
  if (auto s = ReadString(body, "sampler", &req.sampler); !s) return s.error();
  if (auto s = ReadNumber(body, "strength", &req.strength); !s) return s.error();
  int64_t count = 1;
  // Range checks here only keep numbers in int; the model's limits are checked by Validate,
  // which names the model's range (so 0 is read as given, not as "absent").
  constexpr int64_t kBig = 1 << 20;
  if (auto s = ReadOptionalInt(body, "width", kBig, &req.width); !s) return s.error();
  if (auto s = ReadOptionalInt(body, "height", kBig, &req.height); !s) return s.error();
  if (auto s = ReadOptionalInt(body, "steps", kBig, &req.steps); !s) return s.error();
  if (auto s = ReadInt(body, "count", 1, kBig, &count); !s) return s.error();
  if (auto s = ReadInt(body, "n", 1, kBig, &count); !s) return s.error();
  std::string size;
  if (auto s = ReadString(body, "size", &size); !s) return s.error();
  if (!size.empty() && size != "auto") {  // "auto" (OpenAI's): the model's default size
    auto parsed = ParseSize(size);
    if (!parsed) return Error::Invalid("size", "size must look like \"512x512\" or be \"auto\"");
    req.width = parsed->first;
    req.height = parsed->second;
  }
  if (body.contains("seed") && !body["seed"].is_null()) {
    int64_t seed = 0;
    if (auto s = ReadInt(body, "seed", 0, kMaxSeed, &seed); !s) return s.error();
    req.seed = seed;
  }
  if (auto s = ReadNumber(body, "guidance_scale", &req.guidance); !s) return s.error();
  if (body.contains("quality") && !body["quality"].is_null()) {
    int64_t quality = 0;  // the range (0..100) is Validate's
    if (auto s = ReadInt(body, "quality", -kBig, kBig, &quality); !s) return s.error();
    req.quality = static_cast<int>(quality);
  }
  req.count = static_cast<int>(count);
  return req;
}

Result<GenerateRequest> ParseJobMessage(const std::string& body,
                                        const std::string& fallback_job_id) {
  GenerateRequest request;
  auto json = nlohmann::json::parse(body, nullptr, false);
  if (!json.is_discarded() && json.is_object()) {
    // The owner namespace is set by the door that enqueued the job (JobMessageBody); clients'
    // bodies never carry it (ParseGenerateJson rejects it).
    std::string owner;
    if (auto s = ReadString(json, "owner", &owner); !s) return s.error();
    json.erase("owner");
    // The job's webhook travels with the message for the runner (jobs/webhook.h), which reads
    // it itself; it is no part of the generation request.
    json.erase("webhook");
    json.erase("created_ms");  // the submission's time, read by the runner for the record
    auto parsed = ParseGenerateJson(json);
    if (!parsed.ok()) return parsed.error();
    request = std::move(parsed.value());
    request.owner = std::move(owner);
  } else if (!json.is_discarded() && json.is_string()) {
    request.prompt = json.get<std::string>();
  } else if (!json.is_discarded() && !json.is_number()) {
    return Error::Invalid("body", "message body must be a JSON object or plain-text prompt");
  } else {
    request.prompt = body;
  }
  if (request.job_id.empty()) request.job_id = fallback_job_id;
  return request;
}

}  // namespace imagegen
