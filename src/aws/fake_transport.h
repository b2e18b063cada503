// A scripted HttpTransport for tests: answers from a queue (or a handler) and records what was
// sent. Header-only and test-only; nothing in the library includes it.
#pragma once

#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "aws/http.h"

namespace imagegen::aws {

class FakeTransport : public HttpTransport {
 public:
  HttpResponse Perform(const HttpRequest& request) override {
    std::lock_guard<std::mutex> lock(mu_);
    requests.push_back(request);
    if (handler) return handler(request);
    if (responses.empty()) return Failure(TransportFailure::kConnect, "no scripted response");
    HttpResponse r = responses.front();
    responses.pop_front();
    return r;
  }

  void Push(int status, std::string body = "", HeaderList headers = {}) {
    HttpResponse r;
    r.status = status;
    r.body = std::move(body);
    r.headers = std::move(headers);
    responses.push_back(std::move(r));
  }
  void PushFailure(TransportFailure failure, std::string message = "scripted") {
    responses.push_back(Failure(failure, std::move(message)));
  }

  static HttpResponse Failure(TransportFailure failure, std::string message) {
    HttpResponse r;
    r.failure = failure;
    r.failure_message = std::move(message);
    return r;
  }

  static std::string HeaderOf(const HttpRequest& request, const std::string& name) {
    for (const auto& [n, v] : request.headers) {
      std::string lower;
      for (char c : n)
        lower.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
      if (lower == name) return v;
    }
    return "";
  }

  std::deque<HttpResponse> responses;
  std::vector<HttpRequest> requests;
  std::function<HttpResponse(const HttpRequest&)> handler;

 private:
  std::mutex mu_;
};

}  // namespace imagegen::aws
