// JobQueue: at-least-once delivery of job messages. sqlite:// embedded, SQS in production.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/error.h"

namespace imagegen {

struct QueueMessage {
  std::string id;       // stable across redeliveries
  std::string receipt;  // names this delivery; needed to delete or extend it
  std::string body;
  int receive_count = 0;  // 1 on first delivery
  int64_t sent_ms = 0;    // epoch milliseconds
};

struct QueueStats {
  int64_t visible = 0;        // waiting to be received
  int64_t in_flight = 0;      // received, not yet deleted
  int64_t oldest_age_s = 0;   // age of the oldest message, 0 when empty
  int64_t dead_letters = -1;  // messages dead-lettered and kept by this queue; -1: not known here
};

class JobQueue {
 public:
  virtual ~JobQueue() = default;
  // Returns the message id.
  virtual Result<std::string> Send(const std::string& body) = 0;
  // Up to `max` messages, invisible to others for `visibility_s`; waits up to `wait_s` for one.
  virtual Result<std::vector<QueueMessage>> Receive(int max, int visibility_s, int wait_s) = 0;
  virtual Status Delete(const std::string& receipt) = 0;
  virtual Status ChangeVisibility(const std::string& receipt, int visibility_s) = 0;
  // Ends the delivery `receipt` names as a dead letter, for `reason`. The embedded queue moves
  // it to its dead-letter table at once (kNotFound when the receipt is no longer current); SQS
  // has no such call, so the message is released and the queue's redrive policy moves it to the
  // dead-letter queue once its receive count passes maxReceiveCount.
  virtual Status DeadLetter(const std::string& receipt, const std::string& reason) = 0;
  virtual Result<QueueStats> Stats() = 0;
};

}  // namespace imagegen
