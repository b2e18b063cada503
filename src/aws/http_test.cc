// The libcurl transport and the client's retries against a real loopback HTTP server.
#include "aws/http.h"

#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <thread>

#include "aws/client.h"

namespace imagegen::aws {
namespace {

class LoopbackServer {
 public:
  LoopbackServer() {
    server_.Get("/hello", [this](const httplib::Request& req, httplib::Response& res) {
      Record(req);
      res.set_header("X-Amzn-RequestId", "rid-42");
      res.set_content("hi " + req.get_header_value("X-Custom"), "text/plain");
    });
    server_.Put("/echo", [this](const httplib::Request& req, httplib::Response& res) {
      Record(req);
      res.set_content(req.body, "application/octet-stream");
    });
    server_.Get("/slow", [](const httplib::Request&, httplib::Response& res) {
      std::this_thread::sleep_for(std::chrono::milliseconds(700));
      res.set_content("late", "text/plain");
    });
    server_.Post("/flaky", [this](const httplib::Request& req, httplib::Response& res) {
      Record(req);
      if (++flaky_calls_ < 3) {
        res.status = 503;
        res.set_content("<Error><Code>ServiceUnavailable</Code></Error>", "application/xml");
      } else {
        res.set_content("{}", "application/json");
      }
    });
    // Anything else: recorded and answered 404, so tests can see the raw target that arrived.
    server_.Get(".*", [this](const httplib::Request& req, httplib::Response& res) {
      Record(req);
      res.status = 404;
    });
    // The server holds idle keep-alive connections this long; it bounds how long stop() waits.
    server_.set_keep_alive_timeout(1);
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~LoopbackServer() {
    server_.stop();
    thread_.join();
  }
  std::string url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  std::set<int> remote_ports() {
    std::lock_guard<std::mutex> lock(mu_);
    return remote_ports_;
  }
  std::vector<std::string> paths() {
    std::lock_guard<std::mutex> lock(mu_);
    return paths_;
  }

 private:
  void Record(const httplib::Request& req) {
    std::lock_guard<std::mutex> lock(mu_);
    remote_ports_.insert(req.remote_port);
    paths_.push_back(req.target);
  }
  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
  std::atomic<int> flaky_calls_{0};
  std::mutex mu_;
  std::set<int> remote_ports_;
  std::vector<std::string> paths_;
};

TEST(CurlTransport, StatusHeadersBodyAndKeepAlive) {
  LoopbackServer server;
  auto transport = DefaultTransport();
  for (int i = 0; i < 5; ++i) {
    HttpRequest req;
    req.url = server.url("/hello");
    req.headers = {{"X-Custom", "v" + std::to_string(i)}};
    HttpResponse resp = transport->Perform(req);
    ASSERT_EQ(resp.failure, TransportFailure::kNone) << resp.failure_message;
    EXPECT_EQ(resp.status, 200);
    EXPECT_EQ(resp.body, "hi v" + std::to_string(i));
    EXPECT_EQ(resp.Header("x-amzn-requestid"), "rid-42");  // names lower-cased
  }
  // Sequential calls reuse one pooled handle and its kept-alive connection.
  EXPECT_EQ(server.remote_ports().size(), 1u);
}

TEST(CurlTransport, PutsBinaryBodiesAndSendsEncodedPathsAsIs) {
  LoopbackServer server;
  HttpRequest req;
  req.method = "PUT";
  req.url = server.url("/echo");
  req.body = std::string("\0\x01\xff binary", 10);
  HttpResponse resp = DefaultTransport()->Perform(req);
  ASSERT_EQ(resp.status, 200);
  EXPECT_EQ(resp.body, req.body);

  HttpRequest odd;
  odd.url = server.url("/a/../%2e%2E/b%20c");  // must not be normalised by curl
  (void)DefaultTransport()->Perform(odd);
  EXPECT_EQ(server.paths().back(), "/a/../%2e%2E/b%20c");
}

TEST(CurlTransport, ClassifiesTimeoutsAndRefusedConnections) {
  LoopbackServer server;
  HttpRequest slow;
  slow.url = server.url("/slow");
  slow.timeout_ms = 200;
  HttpResponse resp = DefaultTransport()->Perform(slow);
  EXPECT_EQ(resp.failure, TransportFailure::kTimeout) << resp.failure_message;
  EXPECT_EQ(resp.status, 0);

  // A port that was bound but never listened on refuses connections.
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  int closed_port = ntohs(addr.sin_port);
  HttpRequest refused;
  refused.url = "http://127.0.0.1:" + std::to_string(closed_port) + "/";
  resp = DefaultTransport()->Perform(refused);
  EXPECT_EQ(resp.failure, TransportFailure::kConnect) << resp.failure_message;
  ::close(fd);
}

TEST(CurlTransport, ConcurrentCallsEachGetAHandle) {
  LoopbackServer server;
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 20; ++i) {
        HttpRequest req;
        req.url = server.url("/hello");
        if (DefaultTransport()->Perform(req).status == 200) ++ok;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(ok.load(), 160);
}

TEST(ClientOverCurl, RetriesServiceUnavailableThenSucceeds) {
  LoopbackServer server;
  ClientOptions o;
  o.endpoint = server.url("");
  o.env = MapEnv({});
  o.credentials = MakeStaticCredentials({{"AKID", "SECRET", ""}, 0, "test"});
  std::vector<int64_t> sleeps;
  o.sleep_ms = [&](int64_t ms) { sleeps.push_back(ms); };
  auto client = Client::Make(SqsService(), std::move(o));
  ASSERT_TRUE(client.ok());
  Request req;
  req.operation = "Test.Flaky";
  req.method = "POST";
  req.path = "/flaky";
  req.body = "{}";
  auto resp = (*client)->Send(req);
  ASSERT_TRUE(resp.ok()) << resp.error().message;
  EXPECT_EQ(resp->attempts, 3);
  EXPECT_EQ(sleeps.size(), 2u);
  for (int64_t ms : sleeps) EXPECT_LE(ms, 20000);
}

}  // namespace
}  // namespace imagegen::aws
