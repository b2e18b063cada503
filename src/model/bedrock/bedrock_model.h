// `bedrock:<model-id>`: image generation through Amazon Bedrock's InvokeModel, sent by the
// project's aws::Client (SigV4 with signing name "bedrock", the credentials chain, the standard
// retry mode and its retry quota, libcurl); this adapter only supplies Bedrock's retry rules and
// error mapping (below) to it.
//
// Region: Config::bedrock_region (IMAGEGEN_BEDROCK_REGION), else AWS_REGION / AWS_DEFAULT_REGION
// / profile; it may differ from the bucket's. A model the region table (adapters.h) says is not
// served there is refused when the model is made, before anything is paid for (on AWS's own
// endpoints; a local endpoint such as a test double is not held to the table). Endpoint:
// AWS_ENDPOINT_URL_BEDROCK_RUNTIME, AWS_ENDPOINT_URL, else
// https://bedrock-runtime.{region}.amazonaws.com. `bedrock:` alone uses kDefaultModelId
// (adapters.h). Credentials and endpoint are resolved once, when the model is made (at a
// Lambda's init, not per request).
//
// Models that make one image per call (Stability) get their `count` calls concurrently, at most
// kMaxConcurrentCalls at once, so count > 1 fits API Gateway's 29 s; the first failure stops the
// calls not yet started. The seed recorded for each image is the one the model reports
// (Stability's "seeds"; seed 0 asks it for a random one).
//
// Error mapping (the one place Bedrock's errors meet the taxonomy):
//   ValidationException naming a content filter -> kContentRejected, Bedrock's message
//   other ValidationException                     -> kInvalidRequest
//   ThrottlingException / 429, ServiceQuotaExceeded -> retried with backoff, then kRateLimited
//   ModelTimeoutException (408)                   -> retried once, then kUpstreamTimeout
//   ModelNotReadyException                        -> retried (up to 5 attempts), then
//                                                    kUpstreamUnavailable
//   InternalServer/ServiceUnavailable/5xx, resets -> retried, then kUpstreamUnavailable
//   ModelErrorException (424)                     -> kUpstreamUnavailable
//   AccessDeniedException, 403                    -> kForbidden naming bedrock:InvokeModel on the
//                                                    model's ARN and, for Marketplace models
//                                                    (Stability), the one-time subscription
//   ResourceNotFoundException                     -> kNotFound; for legacy/EOL models a message
//                                                    naming the active alternatives
// Retries never run past the request's deadline; a deadline hit is kDeadlineExceeded. A
// failure's Retry-After is not waited for (the standard mode's jittered backoff is).
#pragma once

#include <memory>
#include <string>

#include "model/image_model.h"

namespace imagegen {

namespace aws {
class CredentialsProvider;
class HttpTransport;
}  // namespace aws

struct BedrockOptions {
  std::string region;       // "": us-east-1 (only with a local endpoint; otherwise required)
  std::string endpoint;     // "": AWS_ENDPOINT_URL_BEDROCK_RUNTIME, AWS_ENDPOINT_URL, AWS
  int retry_base_ms = 500;  // backoff base between attempts
  std::shared_ptr<aws::CredentialsProvider> credentials;  // null: the default chain
  std::shared_ptr<aws::HttpTransport> transport;          // null: aws::DefaultTransport()
};

inline constexpr int kMaxConcurrentCalls = 4;

// spec: "bedrock:<model-id>" or "bedrock:" / "bedrock" (the default model). kInvalidRequest
// (field "model") for an unsupported model, a region that does not serve it, or no region.
Result<std::unique_ptr<ImageModel>> MakeBedrockModel(const std::string& spec,
                                                     const BedrockOptions& options);

}  // namespace imagegen
