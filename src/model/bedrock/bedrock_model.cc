#include "model/bedrock/bedrock_model.h"

#include <algorithm>
#include <atomic>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

#include "aws/client.h"
#include "aws/config.h"
#include "aws/encoding.h"
#include "aws/errors.h"
#include "image/png.h"
#include "model/bedrock/adapters.h"

namespace imagegen {
namespace {

using json = nlohmann::json;

constexpr int kReadTimeoutMs = 300'000;  // image calls can take minutes (AWS's Nova sample)

bool Contains(const std::string& haystack, const std::string& needle) {
  std::string h = Lower(haystack), n = Lower(needle);
  return h.find(n) != std::string::npos;
}

// https://bedrock-runtime.us-west-2.amazonaws.com, a VPC endpoint (*.vpce.amazonaws.com), China.
bool IsAwsEndpoint(const std::string& endpoint) {
  auto parts = aws::SplitUrl(endpoint);
  if (!parts.ok()) return false;
  std::string host = Lower(parts->authority.substr(0, parts->authority.rfind(':')));
  for (std::string_view domain : {".amazonaws.com", ".amazonaws.com.cn", ".api.aws"}) {
    if (host.ends_with(domain)) return true;
  }
  return false;
}

// Attempts per kind of failure, the first included (the client's max_attempts_for).
constexpr int kThrottlingAttempts = 4;
constexpr int kTimeoutAttempts = 2;  // a model timeout is likely to recur
constexpr int kNotReadyAttempts = 5;
constexpr int kTransientAttempts = 3;
constexpr int kMaxAttempts = kNotReadyAttempts;

class BedrockModel final : public ImageModel {
 public:
  BedrockModel(std::string model_id, std::string region)
      : model_id_(std::move(model_id)),
        family_(bedrock::FamilyOf(model_id_)),
        stability_edit_(bedrock::StabilityEditOf(model_id_)),
        limits_(bedrock::LimitsForModel(model_id_)),
        region_(std::move(region)) {}

  // Separate from the constructor: the client's error refinement refers back to this model.
  Status Connect(const std::string& endpoint, const BedrockOptions& options) {
    aws::ClientOptions client;
    client.region = region_;
    client.endpoint = endpoint;
    client.retry.max_attempts = kMaxAttempts;
    client.retry.base_delay_ms = std::max(1, options.retry_base_ms);
    client.retry.max_backoff_ms = 20000;
    client.timeout_ms = kReadTimeoutMs;
    client.credentials = options.credentials;
    client.transport = options.transport;
    client.is_retryable = [](const aws::AwsFailure& f) { return AttemptsFor(f) > 1; };
    client.max_attempts_for = AttemptsFor;
    client.refine_error = [this](const aws::AwsFailure& f) -> std::optional<Error> {
      return MapFailure(f);
    };
    auto made = aws::Client::Make(aws::BedrockRuntimeService(), std::move(client));
    if (!made.ok()) return made.error();
    client_ = std::move(made.value());
    return Status::Ok();
  }

  std::string Name() const override { return "bedrock:" + model_id_; }
  const ModelLimits& Limits() const override { return limits_; }

  Result<ModelOutput> Generate(const ValidRequest& request, const GenerateContext& ctx) override {
    std::vector<std::string> edit_warnings;
    auto built = Payloads(request, &edit_warnings);
    if (!built.ok()) return built.error();
    const std::vector<std::string>& payloads = built.value();
    const int calls = static_cast<int>(payloads.size());

    // One image per call (Stability): the calls run side by side, so count > 1 costs one call's
    // time, not count of them (API Gateway answers 504 after 29 s).
    std::vector<std::optional<bedrock::ParsedImages>> parsed(static_cast<size_t>(calls));
    std::atomic<int> next{0};
    std::atomic<bool> stop{false};
    std::mutex mu;
    std::optional<Error> first_error;  // GUARDED_BY(mu): the failure that stopped the others
    auto fail = [&](Error e) {
      std::lock_guard<std::mutex> lock(mu);
      if (!first_error) first_error = std::move(e);
      stop = true;
    };
    auto work = [&] {
      for (int i = next++; i < calls && !stop; i = next++) {
        try {
          auto body = Invoke(payloads[static_cast<size_t>(i)], ctx, &stop);
          if (!body.ok()) {
            if (!stop) fail(body.error());
            continue;
          }
          auto images = bedrock::ParseImages(family_, body.value());
          if (!images.ok()) {
            fail(images.error());
            continue;
          }
          parsed[static_cast<size_t>(i)] = std::move(images.value());
        } catch (const std::exception& e) {
          fail(Error::Make(ErrorCode::kInternal, std::string("Bedrock call failed: ") + e.what()));
        }
      }
    };
    std::vector<std::thread> helpers;
    for (int t = 1; t < std::min(calls, kMaxConcurrentCalls); ++t) helpers.emplace_back(work);
    work();
    for (auto& t : helpers) t.join();
    if (first_error) return *first_error;

    ModelOutput out;
    out.warnings = std::move(edit_warnings);
    bool per_call_seeds = calls > 1 || family_ == bedrock::Family::kStability;
    for (int i = 0; i < calls; ++i) {
      const bedrock::ParsedImages& call = *parsed[static_cast<size_t>(i)];
      for (size_t j = 0; j < call.images.size(); ++j) {
        auto png = aws::Base64Decode(call.images[j]);
        if (!png) return Upstream("Bedrock returned an image that is not valid base64");
        auto image = DecodePng(*png, nullptr);
        if (!image.ok()) return Upstream("Bedrock returned an image that is not a valid PNG");
        if (image->width != request.width || image->height != request.height) {
          out.warnings.push_back("Bedrock returned " + std::to_string(image->width) + "x" +
                                 std::to_string(image->height) + "; resized to " +
                                 std::to_string(request.width) + "x" +
                                 std::to_string(request.height));
          image = ResizeNearest(image.value(), request.width, request.height);
        }
        out.images.push_back(std::move(image.value()));
        // The seed the model says it used (Stability: also when it was asked for a random one
        // with seed 0); else the one that was sent.
        if (per_call_seeds) {
          out.seeds.push_back(j < call.seeds.size() ? call.seeds[j] : request.seed + i);
        }
      }
    }
    if (static_cast<int>(out.images.size()) < request.count) {
      return Error::Make(ErrorCode::kContentRejected,
                         "Bedrock returned " + std::to_string(out.images.size()) + " of " +
                             std::to_string(request.count) +
                             " images (the others were blocked by its content filters)");
    }
    out.images.resize(static_cast<size_t>(request.count));
    if (!out.seeds.empty()) out.seeds.resize(static_cast<size_t>(request.count));
    return out;
  }

 private:
  // The InvokeModel bodies for `request`, one per call (bedrock::CallsFor), and the warnings
  // about how an edit was sent.
  Result<std::vector<std::string>> Payloads(const ValidRequest& request,
                                            std::vector<std::string>* warnings) const {
    const int calls = bedrock::CallsFor(family_, request);
    std::vector<std::string> payloads;
    if (request.init_image.empty()) {
      for (int i = 0; i < calls; ++i)
        payloads.push_back(bedrock::BuildBody(family_, request, i).dump());
      return payloads;
    }
    // Validation refuses these (limits.edits, limits.masks); a request built elsewhere must not
    // lose its image or mask.
    if (!limits_.edits) return Error::Invalid("image", Name() + " cannot edit images");
    if (!limits_.masks && !request.mask.empty()) {
      return Error::Invalid("mask", Name() + " cannot inpaint with a mask (image-to-image only)");
    }
    auto images = bedrock::PrepareEditImages(request);
    if (!images.ok()) return images.error();
    if (family_ == bedrock::Family::kStability) {
      for (int i = 0; i < calls; ++i) {
        payloads.push_back(
            bedrock::BuildStabilityEditBody(stability_edit_, request, images->image, i).dump());
      }
      return payloads;
    }
    payloads.push_back(bedrock::BuildEditBody(family_, request, images.value()).dump());
    if (images->mask.empty() && 1.0 - request.strength < 0.2) {
      warnings->push_back(
          "strength above 0.8 is beyond what IMAGE_VARIATION allows; sent its lowest "
          "similarityStrength, 0.2 (strength 0.8)");
    }
    return payloads;
  }

  static Error Upstream(std::string message) {
    return Error::Make(ErrorCode::kUpstreamUnavailable, std::move(message));
  }

  std::string ModelArn() const {
    if (model_id_.rfind("arn:", 0) == 0) return model_id_;
    return "arn:aws:bedrock:" + region_ + "::foundation-model/" + model_id_;
  }

  // One InvokeModel call, retried by the client per Bedrock's rules (AttemptsFor); the 2xx
  // body or a mapped error. `stop` set (another image's call failed) ends it before its next
  // attempt or during a backoff.
  Result<std::string> Invoke(const std::string& payload, const GenerateContext& ctx,
                             const std::atomic<bool>* stop) {
    aws::Request req;
    req.operation = "Bedrock.InvokeModel";
    req.resource = model_id_;
    req.method = "POST";
    // The model id (or ARN) is one path segment: ':' travels as %3A and '/' as %2F, and the
    // signer encodes the wire path again (%253A, %252F) for the canonical URI, as non-S3
    // services expect.
    req.path = "/model/" + aws::UriEncode(model_id_, /*keep_slash=*/false) + "/invoke";
    req.path_encoded = true;
    req.headers = {{"Content-Type", "application/json"}, {"Accept", "application/json"}};
    // X-Ray propagation; the signer leaves this header unsigned. Per invocation, so read here.
    if (const char* trace = std::getenv("_X_AMZN_TRACE_ID"); trace != nullptr && *trace) {
      req.headers.emplace_back("X-Amzn-Trace-Id", trace);
    }
    req.body = payload;
    req.timeout_ms = kReadTimeoutMs;
    req.deadline = ctx.deadline;
    req.stop = [&ctx, stop]() -> std::optional<Error> {
      if (auto stopped = ctx.ShouldStop()) return stopped;
      if (stop->load()) return Error::Make(ErrorCode::kCancelled, "stopped: another call failed");
      return std::nullopt;
    };
    auto response = client_->Send(req);
    if (!response.ok()) return response.error();
    return std::move(response->body);
  }

  // Attempts (the first included) Bedrock's rules allow after this failure; 1: not retried.
  static int AttemptsFor(const aws::AwsFailure& f) {
    const std::string& code = f.aws_code;
    const int status = f.http_status;
    int attempts = 1;
    if (aws::IsThrottlingCode(code) || status == 429) attempts = kThrottlingAttempts;
    if (code == "ModelNotReadyException") attempts = kNotReadyAttempts;
    if (code == "ModelTimeoutException" || status == 408 ||
        f.transport == aws::TransportFailure::kTimeout) {
      attempts = kTimeoutAttempts;
    }
    if (code == "InternalServerException" || code == "ServiceUnavailableException" ||
        status >= 500 || f.transport == aws::TransportFailure::kConnect ||
        f.transport == aws::TransportFailure::kReset) {
      attempts = kTransientAttempts;
    }
    return attempts;
  }

  // The client's refine_error: every Bedrock failure meets the taxonomy here.
  Error MapFailure(const aws::AwsFailure& f) const {
    const std::string& code = f.aws_code;
    const int status = f.http_status;
    std::string said = f.message.empty() ? code : f.message;
    std::string where = "Bedrock InvokeModel " + model_id_ + " (" + region_ + ")";
    std::string tail = f.request_id.empty() ? "" : " [request id " + f.request_id + "]";
    if (f.transport != aws::TransportFailure::kNone) {
      return Error::Make(
          f.transport == aws::TransportFailure::kTimeout ? ErrorCode::kUpstreamTimeout
                                                         : ErrorCode::kUpstreamUnavailable,
          where + ": " +
              (f.transport == aws::TransportFailure::kTimeout ? "timed out" : "connection failed") +
              " (" + f.transport_message + ")");
    }
    if (code == "ValidationException" || (status == 400 && code.empty())) {
      if (Contains(said, "filter") || Contains(said, "blocked") ||
          Contains(said, "responsible ai")) {
        return Error::Make(ErrorCode::kContentRejected, said);
      }
      return Error::Make(ErrorCode::kInvalidRequest,
                         where + " rejected the request: " + said + tail);
    }
    if (aws::IsThrottlingCode(code) || code == "ServiceQuotaExceededException" || status == 429) {
      if (code == "ModelNotReadyException") {
        return Error::Make(ErrorCode::kUpstreamUnavailable,
                           where + ": the model is not ready: " + said + tail);
      }
      Error e =
          Error::Make(ErrorCode::kRateLimited, where + ": throttled by Bedrock: " + said + tail);
      e.retry_after_s = std::max(f.retry_after_s, 5);
      return e;
    }
    if (code == "ModelTimeoutException" || status == 408) {
      return Error::Make(ErrorCode::kUpstreamTimeout,
                         where + ": the model timed out: " + said + tail);
    }
    if (code == "AccessDeniedException" || code == "UnrecognizedClientException" ||
        code == "InvalidSignatureException" || code == "ExpiredTokenException" || status == 403 ||
        status == 401) {
      std::string hint;
      if (code == "AccessDeniedException") {
        hint = " — the caller needs bedrock:InvokeModel on " + ModelArn() + " (IAM)";
        if (bedrock::NeedsMarketplaceSubscription(model_id_)) {
          // The console's "Model access" page is retired: third-party models are enabled by
          // an AWS Marketplace subscription, made by the first InvokeModel of a caller allowed
          // to subscribe.
          hint +=
              ", and this third-party model needs the account's one-time AWS Marketplace "
              "subscription: the first InvokeModel makes it when the caller may "
              "aws-marketplace:Subscribe, aws-marketplace:Unsubscribe and "
              "aws-marketplace:ViewSubscriptions (deploy once with the SAM parameter "
              "AllowMarketplaceSubscription=true or Terraform allow_marketplace_subscription=true, "
              "or invoke the model once as an administrator in " +
              region_ + "); the Bedrock console's former Model access page no longer does this";
        } else {
          hint +=
              "; Amazon models need no subscription, so check the policy's Resource (model "
              "id and region), any SCP or permissions boundary denying bedrock:InvokeModel, and "
              "that the model is not Legacy for this account";
        }
      } else {
        hint =
            " — the request's credentials were not accepted; check the access key, secret "
            "and session token (and the clock)";
      }
      return Error::Make(ErrorCode::kForbidden, where + ": " + said + hint + tail);
    }
    if (code == "ResourceNotFoundException" || status == 404) {
      std::string lifecycle = bedrock::LifecycleNote(model_id_);
      bool legacy = Contains(said, "legacy") || Contains(said, "end of life") ||
                    Contains(said, "end-of-life") || !lifecycle.empty();
      if (legacy) {
        return Error::Make(ErrorCode::kNotFound,
                           where + " is not available to this account: " + said +
                               (lifecycle.empty() ? "" : " (" + lifecycle + ")") +
                               ". Use an active model instead, e.g. bedrock:" +
                               bedrock::kActiveAlternatives + tail);
      }
      return Error::Make(ErrorCode::kNotFound,
                         where + ": model not found in this region: " + said + tail);
    }
    if (code == "ModelErrorException" || status == 424) {
      return Error::Make(ErrorCode::kUpstreamUnavailable,
                         where + ": the model failed: " + said + tail);
    }
    if (status >= 500) {
      return Error::Make(
          ErrorCode::kUpstreamUnavailable,
          where + ": HTTP " + std::to_string(status) + " " + code + ": " + said + tail);
    }
    return aws::MapAwsError(f);
  }

  std::string model_id_;
  bedrock::Family family_;
  bedrock::StabilityEdit stability_edit_;
  ModelLimits limits_;
  std::string region_;
  std::unique_ptr<aws::Client> client_;
};

}  // namespace

Result<std::unique_ptr<ImageModel>> MakeBedrockModel(const std::string& spec,
                                                     const BedrockOptions& options) {
  std::string model_id;
  if (spec.rfind("bedrock:", 0) == 0) model_id = spec.substr(8);
  if (model_id.empty()) model_id = bedrock::kDefaultModelId;
  if (model_id.find('/') != std::string::npos && model_id.rfind("arn:", 0) != 0) {
    return Error::Invalid("model", "invalid Bedrock model id \"" + model_id + "\"");
  }
  if (bedrock::FamilyOf(model_id) == bedrock::Family::kUnknown) {
    return Error::Invalid("model", "unsupported Bedrock model \"" + model_id +
                                       "\"; supported: amazon.titan-image-generator-v1, "
                                       "amazon.titan-image-generator-v2:0, "
                                       "amazon.nova-canvas-v1:0, stability.* (e.g. " +
                                       bedrock::kActiveAlternatives + ")");
  }
  aws::EnvLookup env = aws::ProcessEnv();
  std::string region = options.region;
  auto endpoint = aws::ResolveEndpoint(aws::BedrockRuntimeService(), region, options.endpoint, env);
  if (!endpoint.ok()) {
    Error e = endpoint.error();
    e.field = "model";
    e.message = "bedrock: " + e.message + " (set IMAGEGEN_BEDROCK_REGION or AWS_REGION)";
    return e;
  }
  if (region.empty()) region = "us-east-1";  // a local endpoint without a region
  // Refused now rather than by a failed call per request. The table describes AWS's own
  // endpoints (regional or VPC); a local or third-party endpoint serves what it serves.
  if (std::string why = IsAwsEndpoint(endpoint.value()) ? bedrock::RegionRefusal(model_id, region)
                                                        : std::string();
      !why.empty()) {
    return Error::Invalid("model", "bedrock: " + why);
  }
  auto model = std::make_unique<BedrockModel>(model_id, region);
  if (Status connected = model->Connect(endpoint.value(), options); !connected.ok()) {
    return connected.error();
  }
  return std::unique_ptr<ImageModel>(std::move(model));
}

}  // namespace imagegen
