// `bedrock:<model-id>`: image generation through Amazon Bedrock's InvokeModel, over the
// project's own AWS layer (SigV4 with signing name "bedrock", the credentials chain, libcurl).
//
// Region: AWS_REGION / AWS_DEFAULT_REGION / profile. Endpoint: AWS_ENDPOINT_URL_BEDROCK_RUNTIME,
// AWS_ENDPOINT_URL, else https://bedrock-runtime.{region}.amazonaws.com. `bedrock:` alone uses
// kDefaultModelId (adapters.h). Credentials and endpoint are resolved once, when the model is
// made (at a Lambda's init, not per request).
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
//                                                    model's ARN and Bedrock model access
//   ResourceNotFoundException                     -> kNotFound; for legacy/EOL models a message
//                                                    naming the active alternatives
// Retries never run past the request's deadline; a deadline hit is kDeadlineExceeded.
#pragma once

#include <memory>
#include <string>

#include "model/image_model.h"

namespace imagegen {

// Registers the "bedrock" scheme with MakeImageModel (app/config.h).
void RegisterBedrockProvider();

// spec: "bedrock:<model-id>" or "bedrock:" / "bedrock" (the default model).
Result<std::unique_ptr<ImageModel>> MakeBedrockModel(const std::string& spec);

}  // namespace imagegen
