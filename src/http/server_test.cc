// The HTTP server in-process, over real sockets: streamed (chunked) bodies arrive piece by piece,
// a client that hangs up stops the stream and cancels the request, Stop drains.
#include "http/server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <future>
#include <thread>

namespace imagegen {
namespace {

using namespace std::chrono_literals;

class RunningServer {
 public:
  explicit RunningServer(RequestHandler handler) {
    ServerOptions options;
    options.port = 0;
    options.threads = 4;
    options.io_threads = 1;
    options.drain_timeout_s = 5;
    server_ = std::make_unique<HttpServer>(std::move(handler), options);
    std::promise<int> bound;
    auto port = bound.get_future();
    thread_ =
        std::thread([this, &bound] { status_ = server_->Run([&](int p) { bound.set_value(p); }); });
    port_ = port.get();
  }
  ~RunningServer() { Stop(); }
  void Stop() {
    server_->Stop();
    if (thread_.joinable()) thread_.join();
  }
  int port() const { return port_; }

 private:
  std::unique_ptr<HttpServer> server_;
  std::thread thread_;
  Status status_ = Status::Ok();
  int port_ = 0;
};

int Connect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  timeval timeout{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  return fd;
}

void Send(int fd, const std::string& data) {
  ASSERT_EQ(send(fd, data.data(), data.size(), MSG_NOSIGNAL), static_cast<ssize_t>(data.size()));
}

// Reads until `needle` has arrived (or the peer closes / 5 s pass); returns all bytes read.
std::string ReadUntil(int fd, const std::string& needle, std::string got = "") {
  char buf[4096];
  while (got.find(needle) == std::string::npos) {
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    got.append(buf, static_cast<size_t>(n));
  }
  return got;
}

const char kGet[] = "GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

TEST(HttpServerTest, StreamedBodyArrivesPieceByPiece) {
  std::promise<void> first_read;
  auto first_was_read = first_read.get_future().share();
  RunningServer server([first_was_read](HttpRequest&) {
    HttpResponse response;
    response.content_type = "text/event-stream";
    response.stream = [first_was_read](const BodyWriter& write) {
      write("data: one\n\n");
      // The second piece waits until the client has read the first: only a server that
      // sends each piece as it comes gets past this.
      first_was_read.wait_for(5s);
      write("data: two\n\n");
    };
    return response;
  });
  int fd = Connect(server.port());
  Send(fd, kGet);
  std::string got = ReadUntil(fd, "data: one");
  EXPECT_NE(got.find("Transfer-Encoding: chunked"), std::string::npos) << got;
  EXPECT_NE(got.find("Content-Type: text/event-stream"), std::string::npos);
  EXPECT_NE(got.find("b\r\ndata: one\n\n\r\n"), std::string::npos) << got;
  EXPECT_EQ(got.find("data: two"), std::string::npos);
  first_read.set_value();
  got = ReadUntil(fd, "0\r\n\r\n", got);
  EXPECT_NE(got.find("b\r\ndata: two\n\n\r\n0\r\n\r\n"), std::string::npos) << got;
  close(fd);
}

TEST(HttpServerTest, HangingUpStopsTheStreamAndCancelsTheRequest) {
  std::promise<bool> outcome;
  auto stopped = outcome.get_future();
  RunningServer server([&outcome](HttpRequest& request) {
    HttpResponse response;
    const std::atomic<bool>* cancelled = request.cancelled;
    response.stream = [&outcome, cancelled](const BodyWriter& write) {
      auto give_up = std::chrono::steady_clock::now() + 10s;
      while (std::chrono::steady_clock::now() < give_up) {
        if (!write("data: tick\n\n")) {
          outcome.set_value(cancelled->load());
          return;
        }
        std::this_thread::sleep_for(20ms);
      }
      outcome.set_value(false);
    };
    return response;
  });
  int fd = Connect(server.port());
  Send(fd, kGet);
  ReadUntil(fd, "data: tick");
  close(fd);
  ASSERT_EQ(stopped.wait_for(8s), std::future_status::ready);
  EXPECT_TRUE(stopped.get()) << "the writer failed, but the request was not marked cancelled";
}

TEST(HttpServerTest, StopLetsTheRequestInFlightFinish) {
  RunningServer server([](HttpRequest&) {
    std::this_thread::sleep_for(300ms);
    HttpResponse response;
    response.body = "finished";
    return response;
  });
  int fd = Connect(server.port());
  Send(fd, kGet);
  std::this_thread::sleep_for(100ms);  // the handler is running
  auto stopping = std::async(std::launch::async, [&] { server.Stop(); });
  std::string got = ReadUntil(fd, "finished");
  EXPECT_NE(got.find("HTTP/1.1 200"), std::string::npos) << got;
  EXPECT_NE(got.find("Connection: close"), std::string::npos) << got;
  EXPECT_EQ(stopping.wait_for(5s), std::future_status::ready);
  close(fd);
}

}  // namespace
}  // namespace imagegen
