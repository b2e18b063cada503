// The JobQueue on Amazon SQS (or an SQS-compatible server), over the SQS JSON protocol.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "aws/client.h"
#include "queue/job_queue.h"

namespace imagegen {

struct SqsOptions {
  // "" : the queue URL's own origin; for sqs://name, AWS_ENDPOINT_URL_SQS, AWS_ENDPOINT_URL,
  // else https://sqs.<region>.amazonaws.com.
  std::string endpoint;
  // "" : taken from an AWS queue URL's host, else AWS_REGION / AWS_DEFAULT_REGION / profile.
  std::string region;
};

// One entry of a batch answer: `ok` or the error of that entry alone.
struct SqsBatchEntryResult {
  bool ok = false;
  std::string message_id;  // SendMessageBatch only
  Error error;             // when !ok; kInvalidRequest for SenderFault, else kUpstreamUnavailable
};

class SqsQueue : public JobQueue {
 public:
  // Send/Receive/Delete/ChangeVisibility/Stats as JobQueue documents, with SQS's limits:
  // Receive takes max in [1, 10] and wait_s in [0, 20] (clamped); the HTTP timeout of a long
  // poll is extended by wait_s. Each received body is checked against its MD5OfBody.
  // Delete, DeleteBatch and ChangeVisibility (acknowledgements, idempotent) make up to 7
  // attempts with the client's backoff, the other calls the client's default.
  // Stats(): visible = ApproximateNumberOfMessages, in_flight = ...NotVisible. SQS has no
  // attribute for the oldest message's age (only the CloudWatch metric
  // ApproximateAgeOfOldestMessage), so oldest_age_s is always 0 here.
  virtual const std::string& queue_url() const = 0;
  // Up to 10 bodies per call (SQS's limit; kInvalidRequest beyond). One result per body, in
  // order. The call fails as a whole only when the request itself fails.
  virtual Result<std::vector<SqsBatchEntryResult>> SendBatch(
      const std::vector<std::string>& bodies) = 0;
  virtual Result<std::vector<SqsBatchEntryResult>> DeleteBatch(
      const std::vector<std::string>& receipts) = 0;
};

// `url` is a queue URL (https://sqs.us-east-1.amazonaws.com/123456789012/name, or
// http://127.0.0.1:PORT/123456789012/name for local servers), or sqs://name /
// sqs://ACCOUNT/name, resolved once with GetQueueUrl (so this form does call SQS and fails
// with kNotFound for a missing queue).
Result<std::unique_ptr<SqsQueue>> OpenSqsQueue(const std::string& url, const SqsOptions& options,
                                               aws::ClientOptions client_options = {});
Result<std::unique_ptr<JobQueue>> MakeSqsQueue(const std::string& url, const SqsOptions& options);

}  // namespace imagegen
