#include "http/server.h"

#include <arpa/inet.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <ctime>
#include <deque>
#include <future>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>

#include "core/ids.h"
#include "core/log.h"
#include "core/strings.h"
#include "http/body_coding.h"
#include "http/range.h"
#include "http/request_head.h"

namespace imagegen {
namespace {

namespace asio = boost::asio;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using boost::system::error_code;

// Handler threads. A handler may block for a whole generation, so handlers never run on the
// I/O threads; the pool's state is shared with its threads so Shutdown can leave a stuck one.
class TaskPool {
 public:
  explicit TaskPool(int threads) : state_(std::make_shared<State>()) {
    for (int i = 0; i < threads; ++i) {
      std::thread([state = state_] { Loop(*state); }).detach();
    }
  }
  void Post(std::function<void()> task) {
    std::lock_guard lock(state_->mu);
    state_->tasks.push_back(std::move(task));
    state_->cv.notify_one();
  }
  // Waits for queued and running tasks until `deadline`, then lets the threads end.
  void Shutdown(Clock::time_point deadline) {
    std::unique_lock lock(state_->mu);
    state_->idle.wait_until(lock, deadline,
                            [&] { return state_->tasks.empty() && state_->busy == 0; });
    state_->stop = true;
    state_->cv.notify_all();
  }

 private:
  struct State {
    std::mutex mu;
    std::condition_variable cv, idle;
    std::deque<std::function<void()>> tasks;
    int busy = 0;
    bool stop = false;
  };
  static void Loop(State& state) {
    for (;;) {
      std::function<void()> task;
      {
        std::unique_lock lock(state.mu);
        state.cv.wait(lock, [&] { return state.stop || !state.tasks.empty(); });
        if (state.stop) return;
        task = std::move(state.tasks.front());
        state.tasks.pop_front();
        ++state.busy;
      }
      task();
      std::lock_guard lock(state.mu);
      --state.busy;
      state.idle.notify_all();
    }
  }
  std::shared_ptr<State> state_;
};

class Connection;

// What every connection shares: options, the handler, the pool and the registry of connections.
struct ServerState {
  RequestHandler handler;
  ServerOptions options;
  HeadLimits limits;
  std::unique_ptr<TaskPool> pool;
  int bound_port = 0;
  std::atomic<bool> draining{false};
  std::mutex mu;
  std::unordered_map<Connection*, std::weak_ptr<Connection>> connections;  // GUARDED_BY(mu)

  std::vector<std::shared_ptr<Connection>> Live() {
    std::lock_guard lock(mu);
    std::vector<std::shared_ptr<Connection>> live;
    for (auto& [raw, weak] : connections) {
      if (auto c = weak.lock()) live.push_back(std::move(c));
    }
    return live;
  }
  size_t Count() {
    std::lock_guard lock(mu);
    return connections.size();
  }
};

const char* Reason(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 202:
      return "Accepted";
    case 204:
      return "No Content";
    case 206:
      return "Partial Content";
    case 304:
      return "Not Modified";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 411:
      return "Length Required";
    case 413:
      return "Content Too Large";
    case 415:
      return "Unsupported Media Type";
    case 416:
      return "Range Not Satisfiable";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    default:
      return "Status";
  }
}

std::string HttpDate() {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char text[64];
  std::strftime(text, sizeof text, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return text;
}

bool HasBody(int status) { return status >= 200 && status != 204 && status != 304; }

// Status line and fields. Values with CR or LF are dropped: no handler can split a response.
std::string SerializeHead(const HttpResponse& response, std::optional<size_t> length, bool close,
                          int minor_version) {
  std::string head =
      "HTTP/1.1 " + std::to_string(response.status) + " " + Reason(response.status) + "\r\n";
  bool nosniff = false;
  for (const auto& [name, value] : response.headers) {
    std::string lower = Lower(name);
    if (lower == "content-length" || lower == "transfer-encoding" || lower == "connection") {
      continue;
    }
    if (value.find_first_of("\r\n") != std::string::npos ||
        name.find_first_of("\r\n: ") != std::string::npos) {
      continue;
    }
    nosniff = nosniff || lower == "x-content-type-options";
    head += name + ": " + value + "\r\n";
  }
  if (!nosniff) head += "X-Content-Type-Options: nosniff\r\n";
  if (!response.content_type.empty() && HasBody(response.status)) {
    head += "Content-Type: " + response.content_type + "\r\n";
  }
  head += "Date: " + HttpDate() + "\r\n";
  if (!length) {
    head += "Transfer-Encoding: chunked\r\n";
  } else if (HasBody(response.status)) {
    head += "Content-Length: " + std::to_string(*length) + "\r\n";
  }
  if (close) {
    head += "Connection: close\r\n";
  } else if (minor_version == 0) {
    head += "Connection: keep-alive\r\n";
  }
  return head + "\r\n";
}

std::string Chunk(std::string_view piece) {
  char size[20];
  std::snprintf(size, sizeof size, "%zx\r\n", piece.size());
  return size + std::string(piece) + "\r\n";
}

bool ValidRequestId(const std::string& id) {
  return !id.empty() && id.size() <= 64 && std::all_of(id.begin(), id.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
  });
}

bool IsIpLiteral(const std::string& host) {
  unsigned char buf[16];
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    return inet_pton(AF_INET6, host.substr(1, host.size() - 2).c_str(), buf) == 1;
  }
  return inet_pton(AF_INET, host.c_str(), buf) == 1;
}

// Host is believed only when it names this server by address (or localhost) and port.
bool HostNamesUs(const std::string& host_port, int port) {
  size_t colon = host_port.rfind(':');
  bool has_port = colon != std::string::npos && host_port.find(']', colon) == std::string::npos;
  std::string host = has_port ? host_port.substr(0, colon) : host_port;
  std::string port_text = has_port ? host_port.substr(colon + 1) : "80";
  if (port_text != std::to_string(port)) return false;
  return Lower(host) == "localhost" || IsIpLiteral(host);
}

std::string BaseUrl(const RequestHead& head, const ServerState& server) {
  const ServerOptions& options = server.options;
  if (!options.public_url.empty()) {
    std::string url = options.public_url;
    while (!url.empty() && url.back() == '/') url.pop_back();
    return url;
  }
  std::string host = head.Field("host");
  if (options.trust_forwarded) {
    std::string proto = Lower(head.Field("x-forwarded-proto"));
    std::string forwarded_host = head.Field("x-forwarded-host");
    if (!forwarded_host.empty() && forwarded_host.find_first_of("/@ ,") == std::string::npos) {
      host = forwarded_host;
    }
    return (proto == "https" ? "https://" : "http://") + (host.empty() ? "localhost" : host);
  }
  if (HostNamesUs(host, server.bound_port)) return "http://" + host;
  bool wildcard = options.host.empty() || options.host == "0.0.0.0" || options.host == "::";
  std::string self = wildcard                                      ? "localhost"
                     : options.host.find(':') != std::string::npos ? "[" + options.host + "]"
                                                                   : options.host;
  return "http://" + self + ":" + std::to_string(server.bound_port);
}

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(tcp::socket socket, std::shared_ptr<ServerState> server)
      : socket_(std::move(socket)),
        timer_(socket_.get_executor()),
        server_(std::move(server)),
        buffer_(server_->limits.max_bytes + (64 << 10)) {
    error_code ec;
    auto remote = socket_.remote_endpoint(ec);
    if (!ec) remote_ = remote.address().to_string();
  }
  ~Connection() {
    std::lock_guard lock(server_->mu);
    server_->connections.erase(this);
  }

  void Start() {
    asio::dispatch(socket_.get_executor(), [self = shared_from_this()] { self->WaitForHead(); });
  }
  // Shutdown: a connection not in the middle of handling a request is closed now; one that is
  // gets its response, then is closed.
  void Drain() {
    asio::post(socket_.get_executor(), [self = shared_from_this()] {
      if (self->state_ == State::kWaiting || self->state_ == State::kReadingBody) self->Close();
    });
  }
  // The drain deadline passed: stop the handler and drop the client.
  void ForceClose() {
    asio::post(socket_.get_executor(), [self = shared_from_this()] {
      self->cancelled_->store(true);
      self->Close();
    });
  }

 private:
  enum class State { kWaiting, kReadingBody, kHandling, kWriting, kClosing, kClosed };

  void WaitForHead() {
    if (server_->draining) return Close();
    state_ = State::kWaiting;
    if (TryParseHead()) return;
    ArmTimer(server_->options.head_timeout_s);
    ReadMore();
  }

  void ReadMore() {
    if (buffer_.size() > server_->limits.max_bytes) {
      return Reject(Error::Make(ErrorCode::kHeadersTooLarge, "request head too large"));
    }
    if (buffer_.size() == 0) {
      // An idle connection holds no buffer: wait until bytes arrive, then allocate.
      buffer_.shrink_to_fit();
      socket_.async_wait(tcp::socket::wait_read, [self = shared_from_this()](error_code ec) {
        if (self->state_ != State::kWaiting) return;
        if (ec) return self->OnRead(ec, 0);
        self->ReadSome();
      });
      return;
    }
    ReadSome();
  }

  void ReadSome() {
    size_t room = std::min<size_t>(8192, buffer_.max_size() - buffer_.size());
    socket_.async_read_some(
        buffer_.prepare(room),
        [self = shared_from_this()](error_code ec, size_t n) { self->OnRead(ec, n); });
  }

  void OnRead(error_code ec, size_t n) {
    if (state_ != State::kWaiting) return;
    if (ec) {
      if (timed_out_ && buffer_.size() > 0) {
        return Reject(Error::Make(ErrorCode::kRequestTimeout, "request head not sent in time"));
      }
      return Close();
    }
    buffer_.commit(n);
    if (!TryParseHead()) ReadMore();
  }

  std::string_view Buffered() const {
    auto data = buffer_.data();
    return {static_cast<const char*>(data.data()), data.size()};
  }

  // True when the head was complete (and handled: refused, or the body read started).
  bool TryParseHead() {
    std::string_view bytes = Buffered();
    auto end = FindHeadEnd(bytes);
    if (!end) {
      if (MayBecomeRequestHead(bytes)) return false;
      Reject(Error::Invalid("", "malformed request: not an HTTP/1.1 request line"), "");
      return true;
    }
    auto head = ParseRequestHead(bytes.substr(0, *end), server_->limits);
    if (!head) {
      Reject(head.error(), RequestPathOf(bytes));
      return true;
    }
    head_ = std::move(*head);
    StartBody(bytes.substr(0, *end));
    return true;
  }

  // Hands the head to Beast's parser, which then frames the body (chunked or by length).
  void StartBody(std::string_view raw_head) {
    size_t skip = 0;
    while (raw_head.substr(skip, 2) == "\r\n") skip += 2;
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(server_->limits.max_bytes + 1));
    parser_->body_limit(server_->options.max_body_bytes);
    parser_->eager(true);
    error_code ec;
    parser_->put(asio::buffer(raw_head.data() + skip, raw_head.size() - skip), ec);
    buffer_.consume(raw_head.size());
    CancelTimer();
    if (head_.framing == BodyFraming::kLength &&
        head_.content_length > server_->options.max_body_bytes) {
      ec = bhttp::error::body_limit;
    }
    if (ec == bhttp::error::body_limit) return Reject(TooLarge());
    if (ec && ec != bhttp::error::need_more) {
      return Reject(Error::Invalid("", "malformed request: " + ec.message()));
    }
    if (parser_->is_done()) return Dispatch();
    if (head_.expect_continue) {
      interim_ = "HTTP/1.1 100 Continue\r\n\r\n";
      asio::async_write(socket_, asio::buffer(interim_),
                        [self = shared_from_this()](error_code e, size_t) {
                          if (e) return self->Close();
                          self->ReadBody();
                        });
      return;
    }
    ReadBody();
  }

  Error TooLarge() const {
    return Error::Make(
        ErrorCode::kPayloadTooLarge,
        "request body over " + std::to_string(server_->options.max_body_bytes) + " bytes");
  }

  void ReadBody() {
    state_ = State::kReadingBody;
    ArmTimer(server_->options.request_timeout_s);
    bhttp::async_read(socket_, buffer_, *parser_,
                      [self = shared_from_this()](error_code ec, size_t) { self->OnBody(ec); });
  }

  void OnBody(error_code ec) {
    if (state_ != State::kReadingBody) return;
    CancelTimer();
    if (!ec) return Dispatch();
    if (timed_out_) return Reject(Error::Make(ErrorCode::kRequestTimeout, "body not sent in time"));
    if (ec == bhttp::error::body_limit) return Reject(TooLarge());
    if (ec == bhttp::error::end_of_stream || ec == asio::error::eof ||
        ec == asio::error::connection_reset || ec == asio::error::operation_aborted) {
      return Close();
    }
    Reject(Error::Invalid("", "malformed request body: " + ec.message()));
  }

  HttpRequest MakeRequest() {
    HttpRequest request;
    head_only_ = head_.method == "HEAD";
    request.method = head_only_ ? "GET" : head_.method;
    size_t question = head_.target.find('?');
    request.path = UrlDecode(head_.target.substr(0, question), false);
    if (question != std::string::npos) {
      request.query = ParseQueryString(head_.target.substr(question + 1));
    }
    for (const auto& [name, value] : head_.fields) {
      auto [it, inserted] = request.headers.emplace(name, value);
      if (!inserted) it->second += ", " + value;
    }
    request.body = std::move(parser_->get().body());
    request.remote_addr = remote_;
    std::string id = request.Header("x-request-id");
    request.request_id = ValidRequestId(id) ? id : NewJobId();
    request.base_url = BaseUrl(head_, *server_);
    cancelled_ = std::make_shared<std::atomic<bool>>(false);
    request.cancelled = cancelled_.get();
    return request;
  }

  void Dispatch() {
    state_ = State::kHandling;
    peer_gone_ = false;
    HttpRequest request = MakeRequest();
    server_->pool->Post(
        [self = shared_from_this(), request = std::move(request),
         coding = head_.content_encoding]() mutable { self->Handle(std::move(request), coding); });
    WatchForDisconnect();
  }

  // On a pool thread.
  void Handle(HttpRequest request, const std::string& coding) {
    HttpResponse response;
    auto body = DecodeBody(coding, std::move(request.body), server_->options.max_body_bytes);
    if (!body) {
      response = ErrorFor(body.error(), request.request_id, request.path);
    } else {
      request.body = std::move(*body);
      response = CallHandler(request);
    }
    if (response.stream) return Stream(std::move(response));
    asio::post(socket_.get_executor(),
               [self = shared_from_this(), response = std::move(response)]() mutable {
                 self->OnHandled(std::move(response));
               });
  }

  HttpResponse CallHandler(HttpRequest& request) {
    try {
      return server_->handler(request);
    } catch (const std::exception& e) {
      Log("error", "handler threw", {{"request_id", request.request_id}, {"error", e.what()}});
    } catch (...) {
      Log("error", "handler threw", {{"request_id", request.request_id}});
    }
    return ErrorFor(
        Error::Make(ErrorCode::kInternal, "internal error; request id " + request.request_id),
        request.request_id, request.path);
  }

  HttpResponse ErrorFor(const Error& error, const std::string& request_id,
                        const std::string& path) const {
    const auto& shape = server_->options.error_response;
    HttpResponse response = shape ? shape(error, path) : ErrorResponse(error);
    response.SetHeader("X-Request-Id", request_id);
    return response;
  }

  // While a handler runs, a client that hangs up cancels it. Bytes after the request
  // (pipelining) end the watch: then a hang-up is noticed when the response is written.
  void WatchForDisconnect() {
    if (buffer_.size() > 0) return;
    socket_.async_wait(tcp::socket::wait_read,
                       [self = shared_from_this(), generation = watch_](error_code ec) {
                         if (ec || generation != self->watch_) return;
                         if (self->state_ != State::kHandling) return;
                         self->CheckPeer();
                       });
  }

  // Readiness can be stale (edge-triggered epoll), so the peek never blocks: nothing there
  // yet means watch again.
  void CheckPeer() {
    char byte;
    ssize_t n = ::recv(socket_.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
      return WatchForDisconnect();
    }
    if (n <= 0) {
      peer_gone_ = true;
      cancelled_->store(true);
    }
  }

  void StopWatching() {
    ++watch_;
    error_code ec;
    socket_.cancel(ec);
  }

  void OnHandled(HttpResponse response) {
    if (state_ != State::kHandling) return;
    StopWatching();
    if (peer_gone_) return Close();
    if (head_.method == "GET") ApplyRange(head_.Field("range"), head_.Field("if-range"), &response);
    bool close = !head_.keep_alive || server_->draining;
    out_head_ = SerializeHead(response, response.body.size(), close, head_.minor_version);
    out_body_ = head_only_ ? std::string() : std::move(response.body);
    state_ = State::kWriting;
    ArmTimer(server_->options.write_timeout_s);
    std::array<asio::const_buffer, 2> pieces{asio::buffer(out_head_), asio::buffer(out_body_)};
    asio::async_write(socket_, pieces, [self = shared_from_this(), close](error_code ec, size_t) {
      self->OnWritten(ec, close);
    });
  }

  void OnWritten(error_code ec, bool close) {
    CancelTimer();
    out_body_.clear();
    if (ec) return Close();
    if (close) return Linger();
    WaitForHead();
  }

  // On a pool thread: the head, then each piece as a chunk, each written before the next.
  void Stream(HttpResponse response) {
    bool close = !head_.keep_alive || server_->draining;
    bool ok = WriteFromPool(SerializeHead(response, std::nullopt, close, head_.minor_version));
    if (ok && !head_only_) {
      response.stream([&](std::string_view piece) {
        if (ok && !piece.empty()) ok = WriteFromPool(Chunk(piece));
        return ok && !cancelled_->load();
      });
      if (ok) ok = WriteFromPool("0\r\n\r\n");
    }
    asio::post(socket_.get_executor(), [self = shared_from_this(), ok, close] {
      if (self->state_ != State::kHandling) return;
      self->StopWatching();
      if (!ok) return self->Close();
      self->OnWritten({}, close);
    });
  }

  bool WriteFromPool(std::string data) {
    std::promise<bool> done;
    auto written = done.get_future();
    asio::post(socket_.get_executor(), [this, &data, &done] {
      if (state_ != State::kHandling || peer_gone_) return done.set_value(false);
      ArmTimer(server_->options.write_timeout_s);
      asio::async_write(socket_, asio::buffer(data), [this, &done](error_code ec, size_t) {
        CancelTimer();
        done.set_value(!ec);
      });
    });
    return written.get();
  }

  // A server-made error: answered, then the connection is closed (its framing is suspect).
  void Reject(const Error& error) { Reject(error, head_.target.substr(0, head_.target.find('?'))); }
  void Reject(const Error& error, const std::string& path) {
    std::string request_id = NewJobId();
    HttpResponse response = ErrorFor(error, request_id, path);
    Log("info", "request refused",
        {{"request_id", request_id},
         {"remote", remote_},
         {"status", response.status},
         {"error", error.message}});
    CancelTimer();
    out_head_ = SerializeHead(response, response.body.size(), true, 1);
    out_body_ = std::move(response.body);
    state_ = State::kWriting;
    ArmTimer(server_->options.write_timeout_s);
    std::array<asio::const_buffer, 2> pieces{asio::buffer(out_head_), asio::buffer(out_body_)};
    asio::async_write(socket_, pieces, [self = shared_from_this()](error_code ec, size_t) {
      self->OnWritten(ec, true);
    });
  }

  // Half-close, then read and discard for a moment, so the client reads our last response
  // instead of a reset caused by the bytes it was still sending.
  void Linger() {
    state_ = State::kClosing;
    error_code ec;
    socket_.shutdown(tcp::socket::shutdown_send, ec);
    ArmTimer(1);
    lingered_ = 0;
    discard_.resize(4096);
    Discard();
  }

  void Discard() {
    socket_.async_read_some(asio::buffer(discard_),
                            [self = shared_from_this()](error_code ec, size_t n) {
                              self->lingered_ += n;
                              if (ec || self->lingered_ > (1 << 20)) return self->Close();
                              self->Discard();
                            });
  }

  void Close() {
    if (state_ == State::kClosed) return;
    state_ = State::kClosed;
    CancelTimer();
    error_code ec;
    socket_.shutdown(tcp::socket::shutdown_both, ec);
    socket_.close(ec);
  }

  void ArmTimer(int seconds) {
    timed_out_ = false;
    timer_.expires_after(std::chrono::seconds(seconds));
    timer_.async_wait([self = shared_from_this(), generation = ++timer_generation_](error_code ec) {
      if (ec || generation != self->timer_generation_) return;
      self->timed_out_ = true;
      error_code cancel;
      self->socket_.cancel(cancel);
    });
  }

  void CancelTimer() {
    ++timer_generation_;
    timer_.cancel();
  }

  tcp::socket socket_;  // its executor is this connection's strand: all members below use it
  asio::steady_timer timer_;
  std::shared_ptr<ServerState> server_;
  boost::beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  RequestHead head_;
  State state_ = State::kWaiting;
  std::string remote_;
  std::string interim_, out_head_, out_body_;
  std::vector<char> discard_;  // allocated only when lingering
  size_t lingered_ = 0;
  std::shared_ptr<std::atomic<bool>> cancelled_ = std::make_shared<std::atomic<bool>>(false);
  bool head_only_ = false;
  bool peer_gone_ = false;
  bool timed_out_ = false;
  unsigned timer_generation_ = 0;
  unsigned watch_ = 0;
};

void RaiseFileLimit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
}

}  // namespace

struct HttpServer::Impl {
  std::shared_ptr<ServerState> state = std::make_shared<ServerState>();
  asio::io_context io;
  tcp::acceptor acceptor{io};
  asio::steady_timer accept_pause{io};
  std::mutex mu;
  std::condition_variable cv;
  bool stop_requested = false;  // GUARDED_BY(mu)

  void Accept() {
    acceptor.async_accept(asio::make_strand(io), [this](error_code ec, tcp::socket socket) {
      if (!acceptor.is_open()) return;
      if (ec) return PauseAccepting(ec);
      if (state->Count() >= static_cast<size_t>(state->options.max_connections)) {
        error_code ignored;
        socket.close(ignored);
      } else {
        error_code ignored;
        socket.set_option(tcp::no_delay(true), ignored);  // no 40 ms delayed-ACK stalls
        auto connection = std::make_shared<Connection>(std::move(socket), state);
        {
          std::lock_guard lock(state->mu);
          state->connections.emplace(connection.get(), connection);
        }
        connection->Start();
      }
      Accept();
    });
  }

  // Out of file descriptors (or another accept error): wait a little instead of spinning.
  void PauseAccepting(error_code ec) {
    Log("warn", "accept failed", {{"error", ec.message()}});
    accept_pause.expires_after(std::chrono::milliseconds(50));
    accept_pause.async_wait([this](error_code) {
      if (acceptor.is_open()) Accept();
    });
  }

  Status Bind() {
    const ServerOptions& options = state->options;
    error_code ec;
    auto address = asio::ip::make_address(options.host, ec);
    if (ec) {
      tcp::resolver resolver(io);
      auto found = resolver.resolve(options.host, "", ec);
      if (!ec && !found.empty()) address = found.begin()->endpoint().address();
    }
    tcp::endpoint endpoint(address, static_cast<unsigned short>(options.port));
    // SO_REUSEADDR (not SO_REUSEPORT): restarts can bind past TIME_WAIT, but a port that
    // another socket listens on is refused.
    if (!ec) acceptor.open(endpoint.protocol(), ec);
    if (!ec) acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) acceptor.bind(endpoint, ec);
    if (!ec) acceptor.listen(4096, ec);
    if (ec) {
      return Error::Invalid("port", "cannot listen on " + options.host + ":" +
                                        std::to_string(options.port) + " (" + ec.message() + ")");
    }
    state->bound_port = acceptor.local_endpoint().port();
    return Status::Ok();
  }

  void WaitForStop() {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return stop_requested; });
  }

  // Stop accepting; close idle connections; give in-flight requests the drain timeout.
  void Drain() {
    asio::post(io, [this] {
      error_code ec;
      acceptor.close(ec);
      accept_pause.cancel();
    });
    state->draining = true;
    for (auto& c : state->Live()) c->Drain();
    auto deadline = Clock::now() + std::chrono::seconds(state->options.drain_timeout_s);
    while (state->Count() > 0 && Clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (state->Count() > 0) {
      Log("warn", "drain timeout: closing connections", {{"connections", state->Count()}});
      for (auto& c : state->Live()) c->ForceClose();
    }
    state->pool->Shutdown(Clock::now() + std::chrono::seconds(1));
  }
};

HttpServer::HttpServer(RequestHandler handler, ServerOptions options)
    : impl_(std::make_unique<Impl>()) {
  impl_->state->handler = std::move(handler);
  impl_->state->limits.max_bytes = options.max_head_bytes;
  impl_->state->limits.max_fields = options.max_head_fields;
  impl_->state->options = std::move(options);
}

HttpServer::~HttpServer() = default;

Status HttpServer::Run(const std::function<void(int)>& on_listening) {
  RaiseFileLimit();
  if (auto s = impl_->Bind(); !s) return s;
  auto& state = *impl_->state;
  state.pool = std::make_unique<TaskPool>(std::max(1, state.options.threads));
  if (on_listening) on_listening(state.bound_port);
  auto guard = asio::make_work_guard(impl_->io);
  impl_->Accept();
  std::vector<std::thread> io_threads;
  for (int i = 0; i < std::max(1, state.options.io_threads); ++i) {
    io_threads.emplace_back([this] { impl_->io.run(); });
  }
  impl_->WaitForStop();
  impl_->Drain();
  guard.reset();
  impl_->io.stop();
  for (auto& t : io_threads) t.join();
  return Status::Ok();
}

void HttpServer::Stop() {
  std::lock_guard lock(impl_->mu);
  impl_->stop_requested = true;
  impl_->cv.notify_all();
}

}  // namespace imagegen
