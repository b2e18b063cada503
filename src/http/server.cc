#include "http/server.h"

#include <httplib.h>

#include <algorithm>

#include "core/strings.h"

namespace imagegen {

struct HttpServer::Impl {
  std::shared_ptr<Api> api;
  ServerOptions options;
  httplib::Server server;
};

namespace {

HttpRequest ToRequest(const httplib::Request& in) {
  HttpRequest out;
  out.method = in.method;
  out.path = in.path;  // httplib has percent-decoded it
  for (const auto& [name, value] : in.params) out.query.emplace(name, value);
  for (const auto& [name, value] : in.headers) {
    std::string lower = Lower(name);
    auto [it, inserted] = out.headers.emplace(lower, value);
    if (!inserted) it->second += ", " + value;
  }
  out.body = in.body;
  out.remote_addr = in.remote_addr;
  std::string id = out.Header("x-request-id");
  bool id_ok = !id.empty() && id.size() <= 64 && std::all_of(id.begin(), id.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
  });
  if (id_ok) out.request_id = id;
  std::string proto = out.Header("x-forwarded-proto") == "https" ? "https" : "http";
  std::string host = out.Header("host");
  out.base_url = proto + "://" + (host.empty() ? "localhost" : host);
  return out;
}

void WriteResponse(const HttpResponse& in, httplib::Response* out) {
  out->status = in.status;
  for (const auto& [name, value] : in.headers) out->set_header(name, value);
  if (!in.content_type.empty()) {
    out->set_content(in.body, in.content_type.c_str());
  } else {
    out->body = in.body;
  }
}

}  // namespace

HttpServer::HttpServer(std::shared_ptr<Api> api, ServerOptions options)
    : impl_(std::make_unique<Impl>()) {
  impl_->api = std::move(api);
  impl_->options = std::move(options);
  auto& server = impl_->server;
  Api* raw_api = impl_->api.get();
  auto handler = [raw_api](const httplib::Request& req, httplib::Response& res) {
    HttpRequest request = ToRequest(req);
    WriteResponse(raw_api->Handle(request), &res);
  };
  const char* kAnyPath = ".*";
  server.Get(kAnyPath, handler);
  server.Post(kAnyPath, handler);
  server.Put(kAnyPath, handler);
  server.Delete(kAnyPath, handler);
  server.Patch(kAnyPath, handler);
  server.Options(kAnyPath, handler);
  // Errors httplib answers itself (413 body too large, 400 unparsable request) get our shape;
  // responses our handlers already wrote are left alone.
  httplib::Server::HandlerWithResponse on_error = [](const httplib::Request&,
                                                     httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    ErrorCode code = res.status == 413   ? ErrorCode::kPayloadTooLarge
                     : res.status == 404 ? ErrorCode::kNotFound
                     : res.status >= 500 ? ErrorCode::kInternal
                                         : ErrorCode::kInvalidRequest;
    std::string message = code == ErrorCode::kPayloadTooLarge ? "request body is too large"
                                                              : "malformed HTTP request";
    HttpResponse response = ErrorResponse(Error::Make(code, message));
    res.set_content(response.body, "application/json");
    return httplib::Server::HandlerResponse::Handled;
  };
  server.set_error_handler(on_error);
  server.set_payload_max_length(impl_->options.max_body_bytes);
  server.set_read_timeout(impl_->options.read_timeout_s, 0);
  server.set_keep_alive_timeout(2);
  // Without TCP_NODELAY, small responses wait for the delayed ACK: ~40 ms per request.
  server.set_tcp_nodelay(true);
  int threads = impl_->options.threads;
  server.new_task_queue = [threads] {
    return new httplib::ThreadPool(static_cast<size_t>(threads));
  };
}

HttpServer::~HttpServer() = default;

Status HttpServer::Run(const std::function<void(int)>& on_listening) {
  auto& server = impl_->server;
  int port = impl_->options.port;
  if (port == 0) {
    port = server.bind_to_any_port(impl_->options.host.c_str());
  } else if (!server.bind_to_port(impl_->options.host.c_str(), port)) {
    port = -1;
  }
  if (port < 0) {
    return Error::Invalid("port", "cannot listen on " + impl_->options.host + ":" +
                                      std::to_string(impl_->options.port) +
                                      " (in use, or not allowed)");
  }
  if (on_listening) on_listening(port);
  if (!server.listen_after_bind()) {
    if (server.is_running()) return Error::Make(ErrorCode::kInternal, "HTTP server failed");
  }
  return Status::Ok();
}

void HttpServer::Stop() { impl_->server.stop(); }

}  // namespace imagegen
