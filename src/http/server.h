// The HTTP door: an event-driven HTTP/1.1 server (Boost.Asio sockets, Boost.Beast's body
// parser) in front of a plain HttpRequest -> HttpResponse handler, built for hostile networks:
//   - strict RFC 9112 framing (request_head.h); the connection is closed after any framing error
//   - limits on head bytes and fields (431) and on the body, raw and decoded, on every framing
//     (413, answered before the body is read and before any handler or auth sees it)
//   - a deadline for the head and one for the whole request (408); idle connections cost a
//     socket and a few KB, never a thread; handlers run on a bounded pool of threads
//   - pipelined requests answered in order; single byte ranges only (range.h)
//   - a client that disconnects while its request is handled sets the request's cancel flag
//   - Stop(): no new connections, idle ones closed, in-flight requests get `drain_timeout_s`
//   - refuses to start on a port another socket listens on
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "http/http_types.h"

namespace imagegen {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;                  // 0: any free port (see Run's callback)
  size_t max_body_bytes = 1 << 20;  // larger bodies (raw or decoded) get 413
  size_t max_head_bytes = 16 << 10;
  int max_head_fields = 100;
  int threads = 32;             // handler threads: requests handled at once
  int io_threads = 2;           // socket I/O
  int max_connections = 16384;  // more are closed as soon as accepted
  int head_timeout_s = 10;      // from waiting for a request (new or kept-alive) to its head
  int request_timeout_s = 30;   // from the head to the end of the body
  int write_timeout_s = 60;     // a client that stops reading its response is dropped
  int drain_timeout_s = 10;     // Stop(): how long in-flight requests may still finish
  // Absolute links (HttpRequest::base_url) start with this when set (behind a proxy, e.g.
  // "https://images.example.com"). Unset: from Host only when it names a loopback or IP
  // address with our port, so a client's Host cannot put another site into our answers.
  std::string public_url;
  bool trust_forwarded = false;  // honour X-Forwarded-Proto/-Host (only behind your own proxy)
};

using RequestHandler = std::function<HttpResponse(HttpRequest&)>;

class HttpServer {
 public:
  HttpServer(RequestHandler handler, ServerOptions options);
  ~HttpServer();
  // Binds, calls `on_listening` with the port, then serves until Stop() and the drain end.
  Status Run(const std::function<void(int bound_port)>& on_listening);
  // Thread-safe; returns at once (Run does the draining).
  void Stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace imagegen
