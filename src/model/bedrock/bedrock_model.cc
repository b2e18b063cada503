#include "model/bedrock/bedrock_model.h"

#include <algorithm>
#include <atomic>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <thread>

#include "aws/config.h"
#include "aws/credentials.h"
#include "aws/encoding.h"
#include "aws/errors.h"
#include "aws/http.h"
#include "aws/retry.h"
#include "aws/sigv4.h"
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

int64_t NowS() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

double Random01() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
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

struct Attempts {
  int throttling = 4, timeout = 2, not_ready = 5, transient = 3;
};

class BedrockModel final : public ImageModel {
 public:
  BedrockModel(std::string model_id, std::string region, std::string endpoint,
               const BedrockOptions& options)
      : model_id_(std::move(model_id)),
        family_(bedrock::FamilyOf(model_id_)),
        limits_(bedrock::LimitsFor(family_)),
        region_(std::move(region)),
        endpoint_(std::move(endpoint)),
        credentials_(options.credentials ? options.credentials
                                         : aws::MakeDefaultCredentialsChain()),
        transport_(options.transport ? options.transport : aws::DefaultTransport()) {
    retry_.base_delay_ms = std::max(1, options.retry_base_ms);
    retry_.max_backoff_ms = 20000;
  }

  std::string Name() const override { return "bedrock:" + model_id_; }
  const ModelLimits& Limits() const override { return limits_; }

  Result<ModelOutput> Generate(const ValidRequest& request, const GenerateContext& ctx) override {
    const int calls = bedrock::CallsFor(family_, request);
    std::vector<std::string> payloads;
    for (int i = 0; i < calls; ++i)
      payloads.push_back(bedrock::BuildBody(family_, request, i).dump());

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
  static Error Upstream(std::string message) {
    return Error::Make(ErrorCode::kUpstreamUnavailable, std::move(message));
  }

  std::string ModelArn() const {
    if (model_id_.rfind("arn:", 0) == 0) return model_id_;
    return "arn:aws:bedrock:" + region_ + "::foundation-model/" + model_id_;
  }

  // One InvokeModel call with Bedrock's retry rules; the 2xx body or a mapped error. `stop`
  // set (another image's call failed) ends it before its next attempt.
  Result<std::string> Invoke(const std::string& payload, const GenerateContext& ctx,
                             const std::atomic<bool>* stop) {
    auto parts = aws::SplitUrl(endpoint_);
    if (!parts.ok()) return parts.error();
    aws::SignableRequest signable;
    signable.method = "POST";
    signable.host = aws::HostHeaderForUrl(endpoint_);
    // The model id (or ARN) is one path segment: ':' travels as %3A and '/' as %2F, and the
    // signer encodes the wire path again (%253A, %252F) for the canonical URI, as non-S3
    // services expect.
    signable.path = aws::UriEncode(parts->path, /*keep_slash=*/true) + "/model/" +
                    aws::UriEncode(model_id_, /*keep_slash=*/false) + "/invoke";
    signable.path_encoded = true;
    signable.body = payload;
    aws::SigningParams params;
    params.service = "bedrock";  // not "bedrock-runtime"
    params.region = region_;
    std::string url = parts->scheme + "://" + parts->authority + signable.path;

    Attempts limits;
    int attempts = 0;
    bool refreshed = false;
    for (;;) {
      ++attempts;
      if (auto stopped = ctx.ShouldStop()) return *stopped;
      if (stop->load()) return Error::Make(ErrorCode::kCancelled, "stopped: another call failed");
      auto credentials = credentials_->Get();
      if (!credentials.ok()) {
        Error e = credentials.error();
        e.message = "Bedrock InvokeModel " + model_id_ + ": " + e.message;
        return e;
      }
      aws::SignableRequest attempt = signable;
      attempt.headers = {{"Content-Type", "application/json"}, {"Accept", "application/json"}};
      params.time_s = NowS();
      aws::SignHeaders(&attempt, credentials->keys, params);

      aws::HttpRequest http;
      http.method = "POST";
      http.url = url;
      http.headers = std::move(attempt.headers);
      if (const char* trace = std::getenv("_X_AMZN_TRACE_ID"); trace != nullptr && *trace) {
        http.headers.emplace_back("X-Amzn-Trace-Id", trace);  // unsigned: X-Ray propagation
      }
      http.body = payload;
      int64_t remaining_ms = kReadTimeoutMs;
      bool deadline_bound = false;
      if (ctx.deadline != Clock::time_point::max()) {
        auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(ctx.deadline - Clock::now())
                .count();
        if (left <= 0) {
          return Error::Make(ErrorCode::kDeadlineExceeded, "generation stopped at its deadline");
        }
        if (left < remaining_ms) {
          remaining_ms = left;
          deadline_bound = true;
        }
      }
      http.timeout_ms = static_cast<int>(remaining_ms);
      http.connect_timeout_ms = 3000;
      aws::HttpResponse response = transport_->Perform(http);
      if (response.failure == aws::TransportFailure::kNone && response.status >= 200 &&
          response.status < 300) {
        return std::move(response.body);
      }
      if (response.failure == aws::TransportFailure::kTimeout && deadline_bound) {
        return Error::Make(
            ErrorCode::kDeadlineExceeded,
            "Bedrock InvokeModel " + model_id_ + " did not answer before the request's deadline");
      }
      aws::AwsFailure failure = aws::ParseFailure(response);
      failure.operation = "Bedrock.InvokeModel";
      failure.resource = model_id_;
      if (failure.aws_code == "ExpiredTokenException" && !refreshed) {
        refreshed = true;
        credentials_->Invalidate();
        --attempts;
        continue;
      }
      int max_attempts = 1;
      const std::string& code = failure.aws_code;
      if (aws::IsThrottlingCode(code) || response.status == 429) {
        max_attempts = code == "ModelNotReadyException" ? limits.not_ready : limits.throttling;
      }
      if (code == "ModelNotReadyException") max_attempts = limits.not_ready;
      if (code == "ModelTimeoutException" || response.status == 408 ||
          failure.transport == aws::TransportFailure::kTimeout) {
        max_attempts = limits.timeout;
      }
      if (code == "InternalServerException" || code == "ServiceUnavailableException" ||
          response.status >= 500 || failure.transport == aws::TransportFailure::kConnect ||
          failure.transport == aws::TransportFailure::kReset) {
        max_attempts = limits.transient;
      }
      if (attempts >= max_attempts) return MapFailure(failure, response.status, attempts);
      auto delay = std::chrono::milliseconds(aws::BackoffDelayMs(retry_, attempts, Random01()));
      if (failure.retry_after_s > 0) {
        delay = std::max<std::chrono::milliseconds>(
            delay, std::chrono::milliseconds(std::min(failure.retry_after_s, 20) * 1000));
      }
      if (Clock::now() + delay >= ctx.deadline)
        return MapFailure(failure, response.status, attempts);
      // In slices, so a failure of another image's call ends this wait early.
      for (auto until = Clock::now() + delay; Clock::now() < until && !stop->load();) {
        std::this_thread::sleep_for(
            std::min<Clock::duration>(std::chrono::milliseconds(100), until - Clock::now()));
      }
    }
  }

  Error MapFailure(const aws::AwsFailure& f, int status, int attempts) const {
    const std::string& code = f.aws_code;
    std::string said = f.message.empty() ? code : f.message;
    std::string where = "Bedrock InvokeModel " + model_id_ + " (" + region_ + ")";
    std::string tail = f.request_id.empty() ? "" : " [request id " + f.request_id + "]";
    std::string tries = attempts > 1 ? " after " + std::to_string(attempts) + " attempts" : "";
    if (f.transport != aws::TransportFailure::kNone) {
      return Error::Make(
          f.transport == aws::TransportFailure::kTimeout ? ErrorCode::kUpstreamTimeout
                                                         : ErrorCode::kUpstreamUnavailable,
          where + ": " +
              (f.transport == aws::TransportFailure::kTimeout ? "timed out" : "connection failed") +
              tries + " (" + f.transport_message + ")");
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
                           where + ": the model is not ready" + tries + ": " + said + tail);
      }
      Error e = Error::Make(ErrorCode::kRateLimited,
                            where + ": throttled by Bedrock" + tries + ": " + said + tail);
      e.retry_after_s = std::max(f.retry_after_s, 5);
      return e;
    }
    if (code == "ModelTimeoutException" || status == 408) {
      return Error::Make(ErrorCode::kUpstreamTimeout,
                         where + ": the model timed out" + tries + ": " + said + tail);
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
          where + ": HTTP " + std::to_string(status) + " " + code + tries + ": " + said + tail);
    }
    return aws::MapAwsError(f);
  }

  std::string model_id_;
  bedrock::Family family_;
  ModelLimits limits_;
  std::string region_;
  std::string endpoint_;
  std::shared_ptr<aws::CredentialsProvider> credentials_;
  std::shared_ptr<aws::HttpTransport> transport_;
  aws::RetryOptions retry_;
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
  return std::unique_ptr<ImageModel>(
      std::make_unique<BedrockModel>(model_id, region, endpoint.value(), options));
}

}  // namespace imagegen
