#include "queue/sqs_queue.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "aws/encoding.h"

namespace imagegen {
namespace {

using nlohmann::json;

std::string JsonString(const json& j, const char* key) {
  if (!j.is_object() || !j.contains(key)) return "";
  const json& v = j[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number_integer()) return std::to_string(v.get<int64_t>());
  return "";
}

int64_t ToInt64(const std::string& s) {
  try {
    return std::stoll(s);
  } catch (...) {
    return 0;
  }
}

// AWS's queue URLs name their region in the host: sqs.<region>.amazonaws.com (current) or
// <region>.queue.amazonaws.com (legacy).
std::string RegionFromHost(const std::string& host) {
  if (host.starts_with("sqs.")) {
    size_t end = host.find('.', 4);
    if (end != std::string::npos && host.find(".amazonaws.com") != std::string::npos) {
      return host.substr(4, end - 4);
    }
  }
  size_t q = host.find(".queue.amazonaws.com");
  if (q != std::string::npos) return host.substr(0, q);
  return "";
}

class SqsQueueImpl : public SqsQueue {
 public:
  SqsQueueImpl(std::unique_ptr<aws::Client> client, std::string queue_url)
      : client_(std::move(client)), queue_url_(std::move(queue_url)) {}

  const std::string& queue_url() const override { return queue_url_; }

  Result<std::string> Send(const std::string& body) override {
    auto resp = Call("SendMessage", {{"QueueUrl", queue_url_}, {"MessageBody", body}});
    if (!resp.ok()) return resp.error();
    std::string id = JsonString(*resp, "MessageId");
    std::string md5 = JsonString(*resp, "MD5OfMessageBody");
    if (!md5.empty() && md5 != aws::HexEncode(aws::Md5(body))) {
      return Error::Make(ErrorCode::kUpstreamUnavailable,
                         "SQS.SendMessage " + queue_url_ + ": MD5OfMessageBody mismatch");
    }
    return id;
  }

  Result<std::vector<QueueMessage>> Receive(int max, int visibility_s, int wait_s) override {
    max = std::clamp(max, 1, 10);
    wait_s = std::clamp(wait_s, 0, 20);
    json request = {
        {"QueueUrl", queue_url_},
        {"MaxNumberOfMessages", max},
        {"VisibilityTimeout", std::clamp(visibility_s, 0, 43200)},
        {"WaitTimeSeconds", wait_s},
        // The first name is current; servers that predate it read the second.
        {"MessageSystemAttributeNames", {"ApproximateReceiveCount", "SentTimestamp"}},
        {"AttributeNames", {"ApproximateReceiveCount", "SentTimestamp"}},
    };
    // A long poll legitimately takes wait_s; only time beyond that is a timeout.
    auto resp = Call("ReceiveMessage", request, wait_s * 1000 + kTimeoutMs);
    if (!resp.ok()) return resp.error();
    std::vector<QueueMessage> out;
    if (!resp->contains("Messages") || !(*resp)["Messages"].is_array()) return out;
    for (const json& m : (*resp)["Messages"]) {
      QueueMessage msg;
      msg.id = JsonString(m, "MessageId");
      msg.receipt = JsonString(m, "ReceiptHandle");
      msg.body = JsonString(m, "Body");
      std::string md5 = JsonString(m, "MD5OfBody");
      if (!md5.empty() && md5 != aws::HexEncode(aws::Md5(msg.body))) {
        // Not ours to delete: it will come back after the visibility timeout.
        return Error::Make(
            ErrorCode::kUpstreamUnavailable,
            "SQS.ReceiveMessage " + queue_url_ + ": MD5OfBody mismatch for " + msg.id);
      }
      if (m.contains("Attributes") && m["Attributes"].is_object()) {
        const json& a = m["Attributes"];
        msg.receive_count = static_cast<int>(ToInt64(JsonString(a, "ApproximateReceiveCount")));
        msg.sent_ms = ToInt64(JsonString(a, "SentTimestamp"));
      }
      if (msg.receive_count <= 0) msg.receive_count = 1;
      out.push_back(std::move(msg));
    }
    return out;
  }

  Status Delete(const std::string& receipt) override {
    auto resp = Call("DeleteMessage", {{"QueueUrl", queue_url_}, {"ReceiptHandle", receipt}},
                     kTimeoutMs, kAcknowledgeAttempts);
    if (!resp.ok()) return resp.error();
    return Status::Ok();
  }

  Status ChangeVisibility(const std::string& receipt, int visibility_s) override {
    auto resp = Call("ChangeMessageVisibility",
                     {{"QueueUrl", queue_url_},
                      {"ReceiptHandle", receipt},
                      {"VisibilityTimeout", std::clamp(visibility_s, 0, 43200)}},
                     kTimeoutMs, kAcknowledgeAttempts);
    if (!resp.ok()) return resp.error();
    return Status::Ok();
  }

  Status DeadLetter(const std::string& receipt, const std::string& /*reason*/) override {
    // SQS has no "move to DLQ" call: release it now; the redrive policy moves it once its
    // receive count passes maxReceiveCount.
    return ChangeVisibility(receipt, 0);
  }

  Result<QueueStats> Stats() override {
    auto resp = Call("GetQueueAttributes",
                     {{"QueueUrl", queue_url_},
                      {"AttributeNames",
                       {"ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"}}});
    if (!resp.ok()) return resp.error();
    QueueStats stats;
    if (resp->contains("Attributes")) {
      const json& a = (*resp)["Attributes"];
      stats.visible = ToInt64(JsonString(a, "ApproximateNumberOfMessages"));
      stats.in_flight = ToInt64(JsonString(a, "ApproximateNumberOfMessagesNotVisible"));
    }
    stats.oldest_age_s = 0;  // not available from the SQS API; see the header
    return stats;
  }

  Result<std::vector<SqsBatchEntryResult>> SendBatch(
      const std::vector<std::string>& bodies) override {
    if (bodies.empty()) return std::vector<SqsBatchEntryResult>{};
    if (bodies.size() > 10) return Error::Invalid("bodies", "SQS batches hold at most 10 messages");
    json entries = json::array();
    for (size_t i = 0; i < bodies.size(); ++i) {
      entries.push_back({{"Id", std::to_string(i)}, {"MessageBody", bodies[i]}});
    }
    auto resp = Call("SendMessageBatch", {{"QueueUrl", queue_url_}, {"Entries", entries}});
    if (!resp.ok()) return resp.error();
    return BatchResults(*resp, bodies, "SQS.SendMessageBatch");
  }

  Result<std::vector<SqsBatchEntryResult>> DeleteBatch(
      const std::vector<std::string>& receipts) override {
    if (receipts.empty()) return std::vector<SqsBatchEntryResult>{};
    if (receipts.size() > 10)
      return Error::Invalid("receipts", "SQS batches hold at most 10 receipts");
    json entries = json::array();
    for (size_t i = 0; i < receipts.size(); ++i) {
      entries.push_back({{"Id", std::to_string(i)}, {"ReceiptHandle", receipts[i]}});
    }
    auto resp = Call("DeleteMessageBatch", {{"QueueUrl", queue_url_}, {"Entries", entries}},
                     kTimeoutMs, kAcknowledgeAttempts);
    if (!resp.ok()) return resp.error();
    return BatchResults(*resp, {}, "SQS.DeleteMessageBatch");
  }

 private:
  static constexpr int kTimeoutMs = 20000;
  // Deletes and visibility changes retry longer than other calls (with the client's backoff,
  // about a minute in all at worst): a lost delete leaves the message in flight until its
  // visibility timeout and then runs its job's delivery again; both calls are idempotent.
  static constexpr int kAcknowledgeAttempts = 7;

  Result<json> Call(const std::string& op, const json& body, int timeout_ms = kTimeoutMs,
                    int max_attempts = 0) {
    return CallSqs(*client_, op, body, queue_url_, timeout_ms, max_attempts);
  }

 public:
  static Result<json> CallSqs(aws::Client& client, const std::string& op, const json& body,
                              const std::string& resource, int timeout_ms, int max_attempts = 0) {
    aws::Request req;
    req.operation = "SQS." + op;
    req.resource = resource;
    req.method = "POST";
    req.path = "/";
    req.headers = {{"Content-Type", "application/x-amz-json-1.0"},
                   {"X-Amz-Target", "AmazonSQS." + op}};
    req.body = body.dump();
    req.timeout_ms = timeout_ms;
    req.max_attempts = max_attempts;
    auto resp = client.Send(req);
    if (!resp.ok()) return resp.error();
    if (resp->body.empty()) return json::object();
    json parsed = json::parse(resp->body, nullptr, false);
    if (parsed.is_discarded()) {
      return Error::Make(ErrorCode::kUpstreamUnavailable,
                         req.operation + " " + resource + ": response is not JSON");
    }
    return parsed;
  }

 private:
  std::vector<SqsBatchEntryResult> BatchResults(const json& resp,
                                                const std::vector<std::string>& bodies,
                                                const std::string& op) {
    size_t n = bodies.empty() ? 0 : bodies.size();
    std::vector<SqsBatchEntryResult> out;
    // Entry ids are indexes; size the answer by the highest one seen if bodies is empty.
    auto index_of = [](const json& e) { return static_cast<size_t>(ToInt64(JsonString(e, "Id"))); };
    if (n == 0) {
      for (const char* list : {"Successful", "Failed"}) {
        if (resp.contains(list)) {
          for (const json& e : resp[list]) n = std::max(n, index_of(e) + 1);
        }
      }
    }
    out.resize(n);
    for (auto& r : out) {
      r.error = Error::Make(ErrorCode::kUpstreamUnavailable,
                            op + " " + queue_url_ + ": entry missing from the answer");
    }
    if (resp.contains("Successful")) {
      for (const json& e : resp["Successful"]) {
        size_t i = index_of(e);
        if (i >= out.size()) continue;
        out[i].ok = true;
        out[i].message_id = JsonString(e, "MessageId");
        if (!bodies.empty()) {
          std::string md5 = JsonString(e, "MD5OfMessageBody");
          if (!md5.empty() && md5 != aws::HexEncode(aws::Md5(bodies[i]))) {
            out[i].ok = false;
            out[i].error = Error::Make(ErrorCode::kUpstreamUnavailable,
                                       op + " " + queue_url_ + ": MD5OfMessageBody mismatch");
          }
        }
      }
    }
    if (resp.contains("Failed")) {
      for (const json& e : resp["Failed"]) {
        size_t i = index_of(e);
        if (i >= out.size()) continue;
        bool sender = e.contains("SenderFault") && e["SenderFault"].is_boolean() &&
                      e["SenderFault"].get<bool>();
        out[i].ok = false;
        out[i].error = Error::Make(
            sender ? ErrorCode::kInvalidRequest : ErrorCode::kUpstreamUnavailable,
            op + " " + queue_url_ + ": " + JsonString(e, "Code") + ": " + JsonString(e, "Message"));
      }
    }
    return out;
  }

  std::unique_ptr<aws::Client> client_;
  std::string queue_url_;
};

}  // namespace

Result<std::unique_ptr<SqsQueue>> OpenSqsQueue(const std::string& url, const SqsOptions& options,
                                               aws::ClientOptions client_options) {
  if (!options.endpoint.empty()) client_options.endpoint = options.endpoint;
  if (!options.region.empty()) client_options.region = options.region;
  if (!client_options.env) client_options.env = aws::ProcessEnv();

  if (url.starts_with("sqs://")) {
    std::string rest = url.substr(6);
    while (!rest.empty() && rest.back() == '/') rest.pop_back();
    std::string account;
    std::string name = rest;
    size_t slash = rest.find('/');
    if (slash != std::string::npos) {
      account = rest.substr(0, slash);
      name = rest.substr(slash + 1);
    }
    if (name.empty() || name.find('/') != std::string::npos) {
      return Error::Invalid("queue", "expected sqs://NAME or sqs://ACCOUNT/NAME: " + url);
    }
    auto client = aws::Client::Make(aws::SqsService(), std::move(client_options));
    if (!client.ok()) return client.error();
    nlohmann::json body = {{"QueueName", name}};
    if (!account.empty()) body["QueueOwnerAWSAccountId"] = account;
    auto resp = SqsQueueImpl::CallSqs(**client, "GetQueueUrl", body, url, 20000);
    if (!resp.ok()) return resp.error();
    std::string queue_url = JsonString(*resp, "QueueUrl");
    if (queue_url.empty()) {
      return Error::Make(ErrorCode::kUpstreamUnavailable,
                         "SQS.GetQueueUrl " + url + ": no QueueUrl");
    }
    return std::unique_ptr<SqsQueue>(new SqsQueueImpl(std::move(*client), queue_url));
  }

  auto parts = aws::SplitUrl(url);
  if (!parts.ok() || parts->path.empty() || parts->path == "/") {
    return Error::Invalid("queue", "expected an SQS queue URL or sqs://NAME: " + url);
  }
  if (client_options.endpoint.empty()) {
    // The queue URL names the endpoint that owns the queue, unless one was configured.
    if (!aws::HasEndpointOverride(aws::SqsService(), "", client_options.env)) {
      client_options.endpoint = parts->scheme + "://" + parts->authority;
    }
  }
  if (client_options.region.empty()) {
    client_options.region = RegionFromHost(aws::HostHeaderForUrl(url));
  }
  auto client = aws::Client::Make(aws::SqsService(), std::move(client_options));
  if (!client.ok()) return client.error();
  return std::unique_ptr<SqsQueue>(new SqsQueueImpl(std::move(*client), url));
}

Result<std::unique_ptr<JobQueue>> MakeSqsQueue(const std::string& url, const SqsOptions& options) {
  auto q = OpenSqsQueue(url, options);
  if (!q.ok()) return q.error();
  return std::unique_ptr<JobQueue>(std::move(*q));
}

}  // namespace imagegen
