#include "model/openai/openai_model.h"

#include <algorithm>
#include <chrono>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <thread>

#include "aws/config.h"
#include "aws/encoding.h"
#include "aws/http.h"
#include "aws/retry.h"
#include "core/strings.h"
#include "image/codec.h"
#include "image/png.h"

namespace imagegen {
namespace {

using json = nlohmann::json;

constexpr int64_t kMaxBackoffMs = 8'000;
constexpr int64_t kMaxRetryAfterMs = 20'000;  // a longer Retry-After is passed on, not waited
constexpr int kDefaultRetryAfterS = 5;        // the hint for a throttled or absent upstream

// What one failed exchange says, before it is mapped.
struct Failure {
  int status = 0;  // 0: the transport failed
  aws::TransportFailure transport = aws::TransportFailure::kNone;
  std::string message;  // the upstream's error.message, or the transport's words
  std::string code;     // the upstream's error.code, if any
  std::string param;    // the upstream's error.param, if any
  int retry_after_s = 0;
};

Failure Describe(const aws::HttpResponse& response) {
  Failure f;
  f.status = response.status;
  f.transport = response.failure;
  if (response.failure != aws::TransportFailure::kNone) {
    f.message = response.failure_message;
    return f;
  }
  std::string after = Trim(response.Header("retry-after"));
  if (!after.empty() && after.size() < 6 &&
      std::all_of(after.begin(), after.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    f.retry_after_s = std::stoi(after);
  }
  json body = json::parse(response.body, nullptr, false);
  // OpenAI's {"error": {"message", "type", "param", "code"}}; imagegen's {"error": {"code",
  // "message", "field"}}; sd-server's {"error": "..."}; FastAPI's {"detail": ...}.
  if (body.is_object() && body.contains("error") && body["error"].is_object()) {
    const json& e = body["error"];
    auto text = [&e](const char* name) {
      return e.contains(name) && e[name].is_string() ? e[name].get<std::string>() : "";
    };
    f.message = text("message");
    f.code = text("code");
    f.param = text("param").empty() ? text("field") : text("param");
  } else if (body.is_object() && body.contains("error") && body["error"].is_string()) {
    f.message = body["error"].get<std::string>();  // stable-diffusion.cpp's {"error": "..."}
    if (body.contains("message") && body["message"].is_string()) {
      f.message += ": " + body["message"].get<std::string>();
    }
  } else if (body.is_object() && body.contains("detail") && body["detail"].is_string()) {
    f.message = body["detail"].get<std::string>();
  }
  if (f.message.empty()) f.message = response.body.substr(0, 300);
  return f;
}

bool IsRetryable(const Failure& f) {
  if (f.transport != aws::TransportFailure::kNone) {
    return f.transport != aws::TransportFailure::kOther;
  }
  if (f.status == 429) return f.code != "insufficient_quota";  // quota needs a human
  return f.status == 408 || f.status >= 500;
}

bool IsContentPolicy(const Failure& f) {
  return f.code == "content_policy_violation" || f.code == "moderation_blocked" ||
         f.code == "content_rejected";
}

// The upstream's names for request fields, as imagegen's own.
std::string NativeField(const std::string& param) {
  if (param == "n") return "count";
  if (param == "guidance_scale") return "guidance";
  return param;
}

class OpenAiModel final : public ImageModel {
 public:
  OpenAiModel(std::string base_url, std::string upstream_model, OpenAiModelOptions options,
              OpenAiExtras extras)
      : base_url_(std::move(base_url)),
        upstream_model_(std::move(upstream_model)),
        options_(std::move(options)),
        extras_(extras) {
    limits_.sizes = options_.sizes;
    limits_.max_count = std::max(1, options_.max_count);
    limits_.max_prompt_chars = 32000;
    limits_.max_negative_prompt_chars = 32000;
    limits_.max_steps = 150;
    limits_.max_guidance = 30;
    if (!options_.transport) options_.transport = aws::DefaultTransport();
    retry_.base_delay_ms = std::max(1, options_.retry_base_ms);
    retry_.max_backoff_ms = kMaxBackoffMs;
  }

  std::string Name() const override {
    return "openai:" + base_url_ + (upstream_model_.empty() ? "" : "#" + upstream_model_);
  }
  const ModelLimits& Limits() const override { return limits_; }

  Result<ModelOutput> Generate(const ValidRequest& request, const GenerateContext& ctx) override {
    aws::HttpRequest call;
    call.method = "POST";
    call.url = GenerationsUrl();
    call.headers = {{"Content-Type", "application/json"}, {"Accept", "application/json"}};
    if (!options_.api_key.empty()) {
      call.headers.emplace_back("Authorization", "Bearer " + options_.api_key);
    }
    call.body = Body(request).dump(-1, ' ', false, json::error_handler_t::replace);
    auto response = Send(call, ctx);
    if (!response.ok()) return response.error();
    return ParseImages(request, response.value(), ctx);
  }

 private:
  std::string GenerationsUrl() const {
    bool has_v1 = base_url_.size() >= 3 && base_url_.compare(base_url_.size() - 3, 3, "/v1") == 0;
    return base_url_ + (has_v1 ? "" : "/v1") + "/images/generations";
  }

  json Body(const ValidRequest& request) const {
    json body = {{"prompt", request.prompt},
                 {"n", request.count},
                 {"size", std::to_string(request.width) + "x" + std::to_string(request.height)}};
    // gpt-image models always answer base64 and refuse the parameter.
    if (upstream_model_.rfind("gpt-image", 0) != 0) body["response_format"] = "b64_json";
    if (!upstream_model_.empty()) body["model"] = upstream_model_;
    if (!request.quality_preset.empty()) body["quality"] = request.quality_preset;
    if (extras_ == OpenAiExtras::kTopLevel) {
      if (!request.negative_prompt.empty()) body["negative_prompt"] = request.negative_prompt;
      body["seed"] = request.seed;
      body["steps"] = request.steps;
      body["guidance_scale"] = request.guidance;
    } else if (extras_ == OpenAiExtras::kSdCpp) {
      json args = {
          {"seed", request.seed},
          {"negative_prompt", request.negative_prompt},
          {"sample_params",
           {{"sample_steps", request.steps}, {"guidance", {{"txt_cfg", request.guidance}}}}}};
      body["prompt"] =
          request.prompt + "<sd_cpp_extra_args>" + args.dump() + "</sd_cpp_extra_args>";
    }
    return body;
  }

  // One call, retried per the header's rules; the 2xx response or a mapped error.
  Result<aws::HttpResponse> Send(const aws::HttpRequest& call, const GenerateContext& ctx) {
    thread_local std::mt19937_64 random(std::random_device{}());
    for (int attempt = 1;; ++attempt) {
      if (auto stop = ctx.ShouldStop()) return *stop;
      aws::HttpRequest exchange = call;
      exchange.timeout_ms = AttemptTimeoutMs(ctx);
      aws::HttpResponse response = options_.transport->Perform(exchange);
      if (response.failure == aws::TransportFailure::kNone && response.status >= 200 &&
          response.status < 300) {
        return response;
      }
      Failure failure = Describe(response);
      if (!IsRetryable(failure) || attempt >= options_.max_attempts) {
        return Map(failure, attempt);
      }
      int64_t wait = aws::BackoffDelayMs(retry_, attempt,
                                         std::uniform_real_distribution<double>(0, 1)(random));
      if (failure.retry_after_s * int64_t{1000} > kMaxRetryAfterMs) return Map(failure, attempt);
      wait = std::max<int64_t>(wait, failure.retry_after_s * int64_t{1000});
      if (Clock::now() + std::chrono::milliseconds(wait) >= ctx.deadline) {
        return Map(failure, attempt);  // no time left for another attempt
      }
      if (auto stopped = SleepUnlessStopped(wait, ctx)) return *stopped;
    }
  }

  int AttemptTimeoutMs(const GenerateContext& ctx) const {
    if (ctx.deadline == Clock::time_point::max()) return options_.timeout_ms;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(ctx.deadline - Clock::now());
    return static_cast<int>(std::clamp<int64_t>(left.count(), 1, options_.timeout_ms));
  }

  static std::optional<Error> SleepUnlessStopped(int64_t ms, const GenerateContext& ctx) {
    auto until = Clock::now() + std::chrono::milliseconds(ms);
    while (Clock::now() < until) {
      if (auto stop = ctx.ShouldStop()) return stop;
      auto slice = std::min<Clock::duration>(until - Clock::now(), std::chrono::milliseconds(100));
      std::this_thread::sleep_for(slice);
    }
    return std::nullopt;
  }

  // Every upstream failure meets the taxonomy here.
  Error Map(const Failure& f, int attempts) const {
    std::string where = "upstream " + Name();
    std::string tries = attempts > 1 ? " (after " + std::to_string(attempts) + " attempts)" : "";
    if (f.transport != aws::TransportFailure::kNone) {
      bool timeout = f.transport == aws::TransportFailure::kTimeout;
      Error e = Error::Make(timeout ? ErrorCode::kUpstreamTimeout : ErrorCode::kUpstreamUnavailable,
                            where + (timeout ? ": timed out" : ": connection failed") + tries +
                                " (" + f.message + ")");
      e.retry_after_s = kDefaultRetryAfterS;
      return e;
    }
    const int s = f.status;
    if ((s == 400 || s == 422) && IsContentPolicy(f)) {
      return Error::Make(ErrorCode::kContentRejected, f.message);
    }
    if (s == 401 || s == 403) {
      return Error::Make(
          ErrorCode::kForbidden,
          where + " refused imagegen's credentials (HTTP " + std::to_string(s) + "): " + f.message +
              " — set OPENAI_API_KEY or IMAGEGEN_OPENAI_API_KEY to a key it accepts");
    }
    if (s == 404) {
      return Error::Make(
          ErrorCode::kUpstreamUnavailable,
          where + " answered 404 (check the base URL and the model name): " + f.message);
    }
    if (s == 429) {
      Error e = Error::Make(ErrorCode::kRateLimited,
                            where + " is rate limiting" + tries + ": " + f.message);
      e.retry_after_s = std::max(f.retry_after_s, kDefaultRetryAfterS);
      return e;
    }
    if (s == 408 || s == 504) {
      return Error::Make(ErrorCode::kUpstreamTimeout,
                         where + ": HTTP " + std::to_string(s) + tries + ": " + f.message);
    }
    if (s >= 500) {
      Error e = Error::Make(ErrorCode::kUpstreamUnavailable,
                            where + ": HTTP " + std::to_string(s) + tries + ": " + f.message);
      e.retry_after_s = std::max(f.retry_after_s, kDefaultRetryAfterS);
      return e;
    }
    // The caller's request, refused: the upstream's words are the most useful answer.
    Error e = Error::Make(ErrorCode::kInvalidRequest, f.message);
    e.field = NativeField(f.param);
    return e;
  }

  Error Malformed(const std::string& what) const {
    return Error::Make(ErrorCode::kUpstreamUnavailable,
                       "upstream " + Name() + " answered with " + what);
  }

  Result<std::string> ImageBytes(const json& item, const GenerateContext& ctx) {
    if (item.contains("b64_json") && item["b64_json"].is_string()) {
      auto bytes = aws::Base64Decode(item["b64_json"].get<std::string>());
      if (!bytes) return Malformed("an image that is not valid base64");
      return std::move(*bytes);
    }
    if (item.contains("url") && item["url"].is_string()) {
      aws::HttpRequest get;
      get.url = item["url"].get<std::string>();
      if (get.url.rfind("http://", 0) != 0 && get.url.rfind("https://", 0) != 0) {
        return Malformed("an image URL that is not http(s)");
      }
      auto response = Send(get, ctx);  // no credentials: the URL may be anyone's
      if (!response.ok()) return response.error();
      return std::move(response->body);
    }
    return Malformed("an image with neither b64_json nor url");
  }

  Result<ModelOutput> ParseImages(const ValidRequest& request, const aws::HttpResponse& response,
                                  const GenerateContext& ctx) {
    json body = json::parse(response.body, nullptr, false);
    if (!body.is_object() || !body.contains("data") || !body["data"].is_array()) {
      return Malformed("no data array");
    }
    ModelOutput out;
    bool seeds_known = true;
    for (const json& item : body["data"]) {
      if (!item.is_object()) return Malformed("a data item that is not an object");
      auto bytes = ImageBytes(item, ctx);
      if (!bytes.ok()) return bytes.error();
      auto decoded = DecodeImage(bytes.value());
      if (!decoded.ok()) return Malformed("an image imagegen cannot decode");
      Image image = std::move(decoded->image);
      if (image.width != request.width || image.height != request.height) {
        out.warnings.push_back("the upstream returned " + std::to_string(image.width) + "x" +
                               std::to_string(image.height) + "; resized to " +
                               std::to_string(request.width) + "x" +
                               std::to_string(request.height));
        image = ResizeNearest(image, request.width, request.height);
      }
      out.images.push_back(std::move(image));
      seeds_known &= item.contains("seed") && item["seed"].is_number_integer();
      if (seeds_known) out.seeds.push_back(item["seed"].get<int64_t>());
      std::string revised = item.contains("revised_prompt") && item["revised_prompt"].is_string()
                                ? item["revised_prompt"].get<std::string>()
                                : "";
      if (!revised.empty() && revised != request.prompt) {
        out.warnings.push_back("the upstream revised the prompt to: " + revised);
      }
    }
    if (static_cast<int>(out.images.size()) < request.count) {
      return Malformed(std::to_string(out.images.size()) + " of " + std::to_string(request.count) +
                       " images");
    }
    out.images.resize(static_cast<size_t>(request.count));
    if (seeds_known) {
      out.seeds.resize(out.images.size());
    } else {
      out.seeds.clear();
    }
    AddUpstreamWarnings(body, request, &out);
    return out;
  }

  void AddUpstreamWarnings(const json& body, const ValidRequest& request, ModelOutput* out) const {
    if (body.contains("warnings") && body["warnings"].is_array()) {  // another imagegen's
      for (const json& w : body["warnings"]) {
        if (w.is_string()) out->warnings.push_back("upstream: " + w.get<std::string>());
      }
    }
    if (extras_ == OpenAiExtras::kOff) {
      out->warnings.push_back(
          "the upstream chose its own seed, steps and guidance" +
          std::string(request.negative_prompt.empty() ? "" : ", and got no negative prompt") +
          " (imagegen's extra fields are off for this upstream)");
    }
  }

  std::string base_url_;
  std::string upstream_model_;
  OpenAiModelOptions options_;
  OpenAiExtras extras_;
  ModelLimits limits_;
  aws::RetryOptions retry_;
};

bool IsOpenAiHost(const std::string& authority) {
  std::string host = Lower(authority.substr(0, authority.rfind(':')));
  for (std::string_view domain : {"openai.com", "openai.azure.com"}) {
    if (host == domain || host.ends_with("." + std::string(domain))) return true;
  }
  return false;
}

}  // namespace

Result<std::vector<std::pair<int, int>>> ParseSizeList(const std::string& text,
                                                       const std::string& field) {
  std::vector<std::pair<int, int>> sizes;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');) {
    auto size = ParseSize(Trim(item));
    if (!size) {
      return Error::Invalid(field, field + ": \"" + Trim(item) +
                                       "\" is not a size WIDTHxHEIGHT (e.g. 512x512,1024x1024)");
    }
    sizes.push_back(*size);
  }
  if (sizes.empty()) return Error::Invalid(field, field + " names no size");
  return sizes;
}

Result<std::unique_ptr<ImageModel>> MakeOpenAiModel(const std::string& spec,
                                                    const OpenAiModelOptions& options) {
  std::string rest = spec.rfind("openai:", 0) == 0 ? spec.substr(7) : spec;
  std::string spec_model;
  if (size_t hash = rest.find('#'); hash != std::string::npos) {
    spec_model = rest.substr(hash + 1);
    rest.resize(hash);
  }
  while (!rest.empty() && rest.back() == '/') rest.pop_back();
  auto parts = aws::SplitUrl(rest);
  if (rest.empty() || !parts.ok()) {
    return Error::Invalid("model",
                          "openai: needs a base URL, e.g. openai:http://127.0.0.1:8080 "
                          "or openai:https://api.openai.com/v1#gpt-image-1");
  }
  if (parts->authority.find('@') != std::string::npos) {
    return Error::Invalid("model",
                          "openai: the base URL may not carry credentials; put the key "
                          "in OPENAI_API_KEY or IMAGEGEN_OPENAI_API_KEY");
  }
  OpenAiModelOptions resolved = options;
  if (resolved.sizes.empty()) {
    auto sizes = ParseSizeList(kDefaultOpenAiSizes, "sizes");
    if (!sizes.ok()) return sizes.error();
    resolved.sizes = sizes.value();
  }
  std::string model = options.model.empty() ? spec_model : options.model;
  OpenAiExtras extras = options.extras.value_or(
      IsOpenAiHost(parts->authority) ? OpenAiExtras::kOff : OpenAiExtras::kTopLevel);
  return std::unique_ptr<ImageModel>(
      std::make_unique<OpenAiModel>(rest, model, std::move(resolved), extras));
}

}  // namespace imagegen
