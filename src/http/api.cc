#include "http/api.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/ids.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/request_json.h"
#include "core/strings.h"
#include "http/a1111.h"
#include "http/assets.h"
#include "http/openai.h"

namespace imagegen {
namespace {

using json = nlohmann::json;

std::string Dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

bool IsPublicRoute(const HttpRequest& request) {
  if (request.method != "GET" && request.method != "HEAD") return false;
  return request.path == "/" || request.path == "/healthz" || request.path == "/readyz" ||
         request.path == "/openapi.json";
}

std::array<unsigned char, SHA256_DIGEST_LENGTH> Digest(const std::string& s) {
  std::array<unsigned char, SHA256_DIGEST_LENGTH> out{};
  SHA256(reinterpret_cast<const unsigned char*>(s.data()), s.size(), out.data());
  return out;
}

// Every answer: no content sniffing. HTML pages may not be framed (clickjacking), whatever
// policy their route already set.
void ApplySecurityHeaders(HttpResponse* response) {
  response->SetHeader("X-Content-Type-Options", "nosniff");
  if (!Lower(response->content_type).starts_with("text/html")) return;
  std::string policy;
  for (const auto& [name, value] : response->headers) {
    if (name == "Content-Security-Policy") policy = value;
  }
  if (policy.find("frame-ancestors") == std::string::npos) {
    policy += policy.empty() ? "frame-ancestors 'none'" : "; frame-ancestors 'none'";
  }
  response->SetHeader("Content-Security-Policy", policy);
  response->SetHeader("X-Frame-Options", "DENY");
}

// The error shape the clients of `path` read: OpenAI's under /v1/, A1111's under /sdapi/
// (`transport`: refused by the HTTP front, before any handler validated the request).
HttpResponse ErrorInShapeOf(const std::string& path, const Error& error, bool transport = false) {
  if (path.rfind("/v1/", 0) == 0) return OpenAiErrorResponse(error);
  if (path.rfind("/sdapi/", 0) == 0) return A1111ErrorResponse(error, !transport);
  return ErrorResponse(error);
}

// An internal error's message may name server paths or upstream details: the log gets it, the
// client gets a generic message with the request id to quote. Our and OpenAI's error shapes
// keep the message at error.message, A1111's at detail and errors.
void HideInternalDetail(const HttpRequest& request, HttpResponse* response) {
  if (response->error_code != ErrorCodeName(ErrorCode::kInternal)) return;
  json body = json::parse(response->body, nullptr, false);
  std::string generic = "internal error; request id " + request.request_id;
  if (body.is_object() && body.contains("detail") && body["detail"].is_string()) {
    Log("error", "internal error", {{"request_id", request.request_id}, {"error", body["detail"]}});
    body["detail"] = generic;
    body["errors"] = generic;
    response->body = Dump(body);
    return;
  }
  if (!body.is_object() || !body.contains("error") || !body["error"].is_object()) return;
  std::string detail = body["error"].value("message", "");
  if (detail == generic) return;  // already generic (a handler that threw; logged in Route)
  Log("error", "internal error", {{"request_id", request.request_id}, {"error", detail}});
  body["error"]["message"] = generic;
  response->body = Dump(body);
}

}  // namespace

bool Admission::Acquire(Clock::time_point deadline) {
  std::unique_lock<std::mutex> lock(mu_);
  if (running_ < max_concurrent_) {
    ++running_;
    return true;
  }
  if (waiting_ >= max_waiting_) return false;
  ++waiting_;
  bool got = cv_.wait_until(lock, deadline, [&] { return running_ < max_concurrent_; });
  --waiting_;
  if (got) ++running_;
  return got;
}

void Admission::Release() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    --running_;
  }
  cv_.notify_one();
}

Status CheckJsonContentType(const HttpRequest& request) {
  std::string type = Lower(request.Header("content-type"));
  if (type.empty()) return Status::Ok();
  std::string media = Trim(type.substr(0, type.find(';')));
  if (media == "application/json" ||
      (media.size() > 5 && media.compare(media.size() - 5, 5, "+json") == 0)) {
    return Status::Ok();
  }
  return Error::Make(ErrorCode::kUnsupportedMediaType,
                     "Content-Type must be application/json (got " + type + ")");
}

Result<std::vector<std::string>> LoadApiKeys(const std::string& env_value,
                                             const std::string& file) {
  std::vector<std::string> keys;
  std::stringstream env(env_value);
  for (std::string key; std::getline(env, key, ',');) {
    if (!Trim(key).empty()) keys.push_back(Trim(key));
  }
  if (!file.empty()) {
    std::ifstream in(file);
    if (!in) return Error::Invalid("api_keys_file", "cannot read API keys file " + file);
    for (std::string line; std::getline(in, line);) {
      line = Trim(line);
      if (!line.empty() && line.front() != '#') keys.push_back(line);
    }
  }
  return keys;
}

Api::Api(std::shared_ptr<Pipeline> pipeline, ApiOptions options, std::vector<RouteSpec> routes)
    : pipeline_(std::move(pipeline)),
      options_(std::move(options)),
      admission_(options_.max_concurrent, options_.max_waiting),
      rate_limiter_(options_.rate_limit) {
  router_.Add("POST", "/generate", [this](HttpRequest& r) { return Generate(r); });
  router_.Add("POST", "/v1/images/generations",
              [this](HttpRequest& r) { return OpenAiGenerate(r); });
  router_.Add("POST", "/v1/images/edits", [this](HttpRequest& r) { return OpenAiEdit(r); });
  router_.Add("GET", "/v1/models",
              [this](HttpRequest&) { return OpenAiModelsResponse(pipeline_->model().Name()); });
  router_.Add("GET", "/v1/models/{id...}", [this](HttpRequest& r) {
    return OpenAiModelResponse(pipeline_->model().Name(), r.path_params["id"]);
  });
  router_.Add("GET", "/images", [this](HttpRequest& r) { return ListImages(r); });
  router_.Add("GET", "/images/{key...}", [this](HttpRequest& r) { return GetImage(r); });
  router_.Add("DELETE", "/images/{key...}", [this](HttpRequest& r) { return DeleteImage(r); });
  router_.Add("GET", "/", [](HttpRequest&) {
    HttpResponse response = JsonResponse(200, std::string(WebIndexHtml()));
    response.content_type = "text/html; charset=utf-8";
    response.SetHeader("Content-Security-Policy",
                       "default-src 'self'; img-src 'self' blob: data:; style-src 'self' "
                       "'unsafe-inline'; script-src 'self' 'unsafe-inline'");
    return response;
  });
  router_.Add("GET", "/openapi.json",
              [](HttpRequest&) { return JsonResponse(200, std::string(OpenApiJson())); });
  router_.Add("GET", "/healthz",
              [](HttpRequest&) { return JsonResponse(200, R"({"status":"ok"})"); });
  router_.Add("GET", "/readyz", [this](HttpRequest& r) { return Ready(r); });
  router_.Add("GET", "/metrics", [](HttpRequest&) {
    HttpResponse response = JsonResponse(200, GlobalMetrics().Render());
    response.content_type = "text/plain; version=0.0.4; charset=utf-8";
    return response;
  });
  a1111_ = std::make_shared<A1111Api>(
      pipeline_, [this](const GenerateRequest& g, const HttpRequest& r, GenerateContext ctx) {
        return RunAdmitted(g, r, std::move(ctx));
      });
  for (auto& route : a1111_->Routes()) routes.push_back(std::move(route));
  for (auto& route : routes) router_.Add(route.method, route.pattern, std::move(route.handler));
}

namespace {

std::string PresentedKey(const HttpRequest& request) {
  std::string presented = request.Header("x-api-key");
  std::string auth = request.Header("authorization");
  if (presented.empty() && auth.size() > 7 && Lower(auth.substr(0, 7)) == "bearer ") {
    presented = Trim(auth.substr(7));
  }
  return presented;
}

// A key's namespace: a digest, so that neither records nor object keys reveal the key.
std::string PrincipalOf(const std::string& key) {
  auto digest = Digest("imagegen-principal\n" + key);
  static const char* kHex = "0123456789abcdef";
  std::string out = "k";
  for (size_t i = 0; i < 8; ++i) {
    out += kHex[digest[i] >> 4];
    out += kHex[digest[i] & 0xF];
  }
  return out;
}

}  // namespace

bool Api::Authorized(const HttpRequest& request) const {
  if (options_.api_keys.empty()) return true;
  std::string presented = PresentedKey(request);
  if (presented.empty()) return false;
  // Compare digests, in constant time, against every key: neither the length nor the position
  // of a near-miss leaks through timing.
  auto digest = Digest(presented);
  bool match = false;
  for (const auto& key : options_.api_keys) {
    auto expected = Digest(key);
    match |= CRYPTO_memcmp(digest.data(), expected.data(), digest.size()) == 0;
  }
  return match;
}

namespace {

// Where generation (paid work) starts, on every door.
bool IsGenerationRoute(const HttpRequest& request) {
  if (request.method != "POST") return false;
  const std::string& path = request.path;
  return path == "/generate" || path == "/jobs" || path.starts_with("/v1/images/") ||
         path.starts_with("/sdapi/");
}

}  // namespace

std::optional<HttpResponse> Api::RateLimited(const HttpRequest& request) {
  if (!rate_limiter_.enabled() || !IsGenerationRoute(request)) return std::nullopt;
  std::string key = request.principal.empty() ? "addr:" + request.remote_addr : request.principal;
  RateDecision decision = rate_limiter_.Take(key);
  if (decision.allowed) return std::nullopt;
  Error error =
      Error::Make(ErrorCode::kRateLimited, "rate limit exceeded for this API key; retry after " +
                                               std::to_string(decision.retry_after_s) + " s");
  error.retry_after_s = decision.retry_after_s;
  bool openai = request.path.rfind("/v1/", 0) == 0;
  HttpResponse response = openai ? OpenAiErrorResponse(error) : ErrorResponse(error);
  response.route = "rate_limited";
  return response;
}

void Api::ApplyCors(const HttpRequest& request, HttpResponse* response) const {
  std::string origin = request.Header("origin");
  if (origin.empty()) return;
  bool allowed = std::find(options_.cors_origins.begin(), options_.cors_origins.end(), origin) !=
                 options_.cors_origins.end();
  response->SetHeader("Vary", "Origin");
  if (!allowed) return;  // never reflect an origin that is not on the list
  response->SetHeader("Access-Control-Allow-Origin", origin);
  response->SetHeader("Access-Control-Expose-Headers", "X-Request-Id, Retry-After, Location");
}

HttpResponse Api::TransportError(const Error& error, const std::string& path) const {
  HttpResponse response = ErrorInShapeOf(path, error, /*transport=*/true);
  ApplySecurityHeaders(&response);
  return response;
}

HttpResponse Api::Route(HttpRequest& request) {
  if (request.method == "OPTIONS" && !request.Header("origin").empty()) {
    HttpResponse response = JsonResponse(204, "");
    response.route = "preflight";
    response.content_type.clear();
    response.SetHeader("Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS");
    response.SetHeader("Access-Control-Allow-Headers",
                       "Content-Type, Authorization, X-Api-Key, Idempotency-Key, X-Request-Id");
    response.SetHeader("Access-Control-Max-Age", "600");
    return response;
  }
  if (!IsPublicRoute(request) && !Authorized(request)) {
    Error error = Error::Make(ErrorCode::kUnauthorized, "a valid API key is required");
    // OpenAI clients read only OpenAI's error shape (the SDK's AuthenticationError).
    HttpResponse response = ErrorInShapeOf(request.path, error);
    response.SetHeader("WWW-Authenticate", "Bearer");
    return response;
  }
  if (!options_.api_keys.empty()) request.principal = PrincipalOf(PresentedKey(request));
  if (auto limited = RateLimited(request)) return *limited;
  try {
    return router_.Dispatch(request);
  } catch (const std::exception& e) {
    Log("error", "handler threw", {{"request_id", request.request_id}, {"error", e.what()}});
  } catch (...) {
  }
  return ErrorResponse(
      Error::Make(ErrorCode::kInternal, "internal error; request id " + request.request_id));
}

HttpResponse Api::Handle(HttpRequest& request) {
  auto start = Clock::now();
  if (request.request_id.empty()) request.request_id = NewJobId();
  HttpResponse response = Route(request);
  HideInternalDetail(request, &response);
  ApplyCors(request, &response);
  ApplySecurityHeaders(&response);
  response.SetHeader("X-Request-Id", request.request_id);
  if (request.method == "HEAD") response.body.clear();
  Record(request, response,
         std::chrono::duration<double, std::milli>(Clock::now() - start).count());
  return response;
}

void Api::Record(const HttpRequest& request, const HttpResponse& response, double ms) const {
  GlobalMetrics().Add("imagegen_http_requests_total",
                      {{"route", response.route},
                       {"method", request.method},
                       {"status", std::to_string(response.status)}});
  if (!response.error_code.empty()) {
    GlobalMetrics().Add("imagegen_errors_total", {{"code", response.error_code}});
  }
  if (!options_.log_requests) return;
  json line = {
      {"request_id", request.request_id}, {"method", request.method},  {"path", request.path},
      {"route", response.route},          {"status", response.status}, {"duration_ms", ms},
      {"remote", request.remote_addr}};
  if (!response.error_code.empty()) line["error_code"] = response.error_code;
  Log(response.status >= 500 ? "error" : "info", "request", std::move(line));
}

Clock::time_point Api::DeadlineFor(const HttpRequest& request) const {
  return std::min(request.deadline,
                  Clock::now() + std::chrono::seconds(options_.generate_timeout_s));
}

Result<std::shared_ptr<Admission>> Api::Admit(Clock::time_point deadline) {
  // Wait for a slot only briefly: a client waiting minutes in our queue is better served by
  // a fast 503 + Retry-After (or by POST /jobs).
  auto wait_until = std::min(deadline, Clock::now() + std::chrono::seconds(10));
  if (!admission_.Acquire(wait_until)) {
    Error busy = Error::Make(ErrorCode::kOverloaded,
                             "all generation slots are busy; retry shortly or use POST /jobs");
    busy.retry_after_s = 2;
    return busy;
  }
  return std::shared_ptr<Admission>(&admission_, [](Admission* a) { a->Release(); });
}

Result<GenerateResult> Api::RunAdmitted(const GenerateRequest& generate, const HttpRequest& request,
                                        GenerateContext ctx) {
  auto deadline = DeadlineFor(request);
  auto slot = Admit(deadline);
  if (!slot.ok()) return slot.error();
  ctx.deadline = deadline;
  ctx.cancelled = request.cancelled;
  return pipeline_->Run(generate, ctx);
}

HttpResponse Api::Generate(HttpRequest& request) {
  if (auto s = CheckJsonContentType(request); !s) return ErrorResponse(s.error());
  auto body = ParseJsonObject(request.body);
  if (!body.ok()) return ErrorResponse(body.error());
  auto generate = ParseGenerateJson(body.value());
  if (!generate.ok()) return ErrorResponse(generate.error());
  generate->owner = request.principal;
  auto result = RunAdmitted(generate.value(), request);
  if (!result.ok()) return ErrorResponse(result.error());
  json j =
      ResultToJson(result.value(), [&](const std::string& key) { return ImageUrl(request, key); });
  return JsonResponse(200, Dump(j));
}

HttpResponse Api::OpenAiGenerate(HttpRequest& request) {
  if (auto s = CheckJsonContentType(request); !s) return OpenAiErrorResponse(s.error());
  auto body = ParseJsonObject(request.body);
  if (!body.ok()) return OpenAiErrorResponse(body.error());
  auto parsed = ParseOpenAiRequest(body.value(), pipeline_->model().Name());
  if (!parsed.ok()) return OpenAiErrorResponse(parsed.error());
  return OpenAiRun(parsed.value(), request, "image_generation");
}

namespace {

// An edit comes as multipart/form-data (what OpenAI's SDKs send) or as JSON with data URLs.
Result<OpenAiRequest> ParseEditBody(const HttpRequest& request, const std::string& model_name) {
  std::string type = request.Header("content-type");
  if (!type.empty() && CheckJsonContentType(request).ok()) {
    auto body = ParseJsonObject(request.body);
    if (!body.ok()) return body.error();
    return ParseOpenAiEditJson(body.value(), model_name);
  }
  auto boundary = MultipartBoundary(type);
  if (!boundary.ok()) return boundary.error();
  auto parts = ParseMultipart(request.body, boundary.value());
  if (!parts.ok()) return parts.error();
  return ParseOpenAiEditForm(parts.value(), model_name);
}

}  // namespace

HttpResponse Api::OpenAiEdit(HttpRequest& request) {
  auto parsed = ParseEditBody(request, pipeline_->model().Name());
  if (!parsed.ok()) return OpenAiErrorResponse(parsed.error());
  return OpenAiRun(parsed.value(), request, "image_edit");
}

HttpResponse Api::OpenAiRun(const OpenAiRequest& parsed, HttpRequest& request,
                            const std::string& event_prefix) {
  if (parsed.stream) return OpenAiStream(parsed, request, event_prefix);
  GenerateRequest generate = parsed.request;
  generate.owner = request.principal;
  auto result = RunAdmitted(generate, request);
  if (!result.ok()) return OpenAiErrorResponse(result.error());
  return OpenAiSuccessResponse(parsed, result.value(), pipeline_->store(),
                               [&](const std::string& key) { return ImageUrl(request, key); });
}

// Validation and admission answer before the stream starts, with their own status (400, 503);
// once the 200 head is out, a failure can only be an `error` event.
HttpResponse Api::OpenAiStream(const OpenAiRequest& parsed, HttpRequest& request,
                               const std::string& event_prefix) {
  auto stream_request = std::make_shared<OpenAiRequest>(parsed);
  stream_request->request.owner = request.principal;
  auto valid = pipeline_->Check(stream_request->request);
  if (!valid.ok()) return OpenAiErrorResponse(valid.error());
  auto deadline = DeadlineFor(request);
  auto slot = Admit(deadline);
  if (!slot.ok()) return OpenAiErrorResponse(slot.error());
  HttpResponse response;
  response.content_type = "text/event-stream";
  response.SetHeader("Cache-Control", "no-cache");
  response.SetHeader("X-Accel-Buffering", "no");  // proxies (nginx) must not hold events back
  response.stream = [this, stream_request, valid = std::move(valid.value()), event_prefix,
                     slot = std::move(slot.value()), deadline, cancelled = request.cancelled,
                     request_id = request.request_id](const BodyWriter& write) {
    auto run = [&](GenerateContext& ctx) {
      ctx.deadline = deadline;
      ctx.cancelled = cancelled;
      return pipeline_->Run(stream_request->request, ctx);
    };
    WriteOpenAiStream(*stream_request, valid, event_prefix, request_id, run, pipeline_->store(),
                      write);
  };
  return response;
}

HttpResponse Api::ListImages(HttpRequest& request) {
  int limit = 20;
  std::string limit_text = request.Query("limit");
  if (!limit_text.empty()) {
    bool digits = limit_text.size() <= 4 &&
                  std::all_of(limit_text.begin(), limit_text.end(),
                              [](char c) { return std::isdigit(static_cast<unsigned char>(c)); });
    limit = digits ? std::stoi(limit_text) : -1;
    if (limit < 1 || limit > 100) {
      return ErrorResponse(Error::Invalid("limit", "limit must be between 1 and 100"));
    }
  }
  auto page = pipeline_->ListImages(limit, request.Query("cursor"));
  if (!page.ok()) return ErrorResponse(page.error());
  json images = json::array();
  for (const auto& [key, info] : page->images) {
    const ObjectInfo& object = info;  // clang 14 (the Lambda toolchain) cannot capture a binding
    auto meta = [&object](const char* name) {
      auto it = object.metadata.find(name);
      return it == object.metadata.end() ? std::string() : DecodeMetadataValue(it->second);
    };
    images.push_back({{"key", key},
                      {"url", ImageUrl(request, key)},
                      {"size_bytes", info.size},
                      {"modified_ms", info.modified_ms},
                      {"prompt", meta("prompt")},
                      {"negative_prompt", meta("negative-prompt")},
                      {"seed", std::atoll(meta("seed").c_str())},
                      {"model", meta("model")},
                      {"width", std::atoi(meta("width").c_str())},
                      {"height", std::atoi(meta("height").c_str())},
                      // The rest of the provenance, for the page's detail view and "use these
                      // settings again".
                      {"steps", std::atoi(meta("steps").c_str())},
                      {"guidance_scale", std::strtod(meta("guidance").c_str(), nullptr)},
                      {"format", meta("format")},
                      {"job_id", meta("job-id")},
                      {"created_ms", std::atoll(meta("created-ms").c_str())}});
  }
  const std::string& next = page->next_cursor;
  return JsonResponse(
      200, Dump({{"images", images}, {"next_cursor", next.empty() ? json(nullptr) : json(next)}}));
}

HttpResponse Api::GetImage(HttpRequest& request) {
  const std::string& key = request.path_params["key"];
  if (auto s = CheckKey(key); !s) return ErrorResponse(s.error());
  if (!pipeline_->IsImageKey(key)) {
    return ErrorResponse(Error::Make(ErrorCode::kNotFound, "no such image: " + key));
  }
  // The tombstone first: an image whose DELETE crashed before removing it is gone too.
  auto deleted = pipeline_->IsDeleted(key);
  if (!deleted.ok()) return ErrorResponse(deleted.error());
  if (deleted.value()) {
    return ErrorResponse(Error::Make(ErrorCode::kGone, "image " + key + " was deleted"));
  }
  ObjectInfo info;
  auto data = pipeline_->store().Get(key, &info);
  if (!data.ok()) return ErrorResponse(data.error());
  HttpResponse response;
  response.content_type =
      info.content_type.empty() ? "application/octet-stream" : info.content_type;
  response.SetHeader("ETag", info.etag);
  response.SetHeader("Cache-Control", "private, max-age=86400, immutable");
  response.SetHeader("Accept-Ranges", "bytes");  // the HTTP server serves single ranges
  if (!info.etag.empty() && request.Header("if-none-match") == info.etag) {
    response.status = 304;
    response.content_type.clear();
    return response;
  }
  response.body = std::move(data.value());
  return response;
}

HttpResponse Api::DeleteImage(HttpRequest& request) {
  const std::string& key = request.path_params["key"];
  if (auto s = pipeline_->DeleteImage(key, request.principal); !s) {
    return ErrorResponse(s.error());
  }
  HttpResponse response = JsonResponse(204, "");
  response.content_type.clear();
  return response;
}

HttpResponse Api::Ready(HttpRequest& request) {
  // The probe stays inside the key prefix: a role scoped to BUCKET/PREFIX/* (the SAM stack's:
  // s3:GetObject + s3:PutObject there) cannot touch the bucket root. It is written, not just
  // read: a full or read-only store still answers reads (see StoreReadiness).
  const std::string key = pipeline_->options().key_prefix + kReadyProbeKey;
  if (Status status = readiness_.Check(pipeline_->store(), key); !status.ok()) {
    Log("warn", "not ready: the store refused the readiness probe",
        {{"request_id", request.request_id}, {"error", status.error().message}});
    return JsonResponse(
        503, Dump({{"status", "unavailable"},
                   {"store", std::string(ErrorCodeName(status.error().code))},
                   {"reason", "the image store refused a probe write or its read-back"}}));
  }
  return JsonResponse(200, Dump({{"status", "ready"}, {"model", pipeline_->model().Name()}}));
}

}  // namespace imagegen
