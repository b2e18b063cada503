// The HTTP door: cpp-httplib on a socket, translating to and from HttpRequest/HttpResponse.
#pragma once

#include <memory>
#include <string>

#include "http/api.h"

namespace imagegen {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;                  // 0: any free port (see BoundPort)
  size_t max_body_bytes = 1 << 20;  // larger bodies get 413
  int threads = 32;                 // connection-handling threads
  int read_timeout_s = 30;          // a client that stalls mid-request is dropped
};

class HttpServer {
 public:
  HttpServer(std::shared_ptr<Api> api, ServerOptions options);
  ~HttpServer();
  // Binds, then serves until Stop(). In-flight requests finish before Run returns.
  Status Run(const std::function<void(int bound_port)>& on_listening);
  // Thread-safe; stops accepting new connections.
  void Stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace imagegen
