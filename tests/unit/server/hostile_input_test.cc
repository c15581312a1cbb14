// Hostile clients against the real HTTP server on 127.0.0.1: oversized
// headers and bodies, trickled (slowloris) headers and bodies, and more
// connections than allowed. Each must be refused or cut while other clients
// are still served.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "engine/server/http.h"
#include "tests/unit/server/http_client.h"

namespace df::server {
namespace {

using namespace std::chrono_literals;
using test::http_request;
using test::HttpConnection;
using Clock = std::chrono::steady_clock;

std::shared_ptr<Router> ok_router() {
  auto router = std::make_shared<Router>();
  router->add("GET", "/ok", [](const HttpRequest&) { return HttpResponse::json(200, "{}"); });
  router->add("POST", "/upload", [](const HttpRequest& r) {
    return HttpResponse::json(200, "{\"size\": " + std::to_string(r.body.size()) + "}");
  });
  return router;
}

struct Server {
  explicit Server(HttpServerOptions options) {
    options.listeners = {HttpListener{"127.0.0.1", 0, ok_router()}};
    server = std::make_unique<HttpServer>(std::move(options));
    const Status started = server->start();
    EXPECT_TRUE(started.ok()) << started.to_string();
    port = server->port(0);
  }
  std::unique_ptr<HttpServer> server;
  uint16_t port = 0;
};

TEST(HostileInputTest, OversizedHeaderGets431) {
  Server s({});
  HttpConnection connection(s.port, 5s);
  const std::string raw =
      "GET /ok HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(64 * 1024, 'a') + "\r\n\r\n";
  ASSERT_EQ(connection.write_raw(raw), "");
  const auto r = connection.read_response();
  EXPECT_EQ(r.status, 431) << r.error;
  EXPECT_EQ(http_request(s.port, "GET", "/ok").status, 200);
}

TEST(HostileInputTest, ChunkedBodyDeclaringAHugeChunkGets413) {
  HttpServerOptions options;
  options.max_body_size = 1024;
  Server s(std::move(options));
  HttpConnection connection(s.port, 5s);
  // One chunk header announcing 1 GiB: refused before any of it is read.
  ASSERT_EQ(connection.write_raw("POST /upload HTTP/1.1\r\nHost: x\r\n"
                                 "Transfer-Encoding: chunked\r\n\r\n40000000\r\nxxxx"),
            "");
  const auto r = connection.read_response();
  EXPECT_EQ(r.status, 413) << r.error;
  // A chunked body within the limit is fine.
  HttpConnection small(s.port, 5s);
  ASSERT_EQ(small.write_raw("POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                            "5\r\nhello\r\n0\r\n\r\n"),
            "");
  const auto ok = small.read_response();
  EXPECT_EQ(ok.status, 200) << ok.error;
  EXPECT_EQ(ok.body, "{\"size\": 5}");
}

// Sends `bytes` one byte at a time, `gap` apart, until the server closes the
// connection or the bytes run out; returns how long the server took to close
// it (nullopt: it never did).
std::optional<Clock::duration> trickle(HttpConnection& connection, const std::string& bytes,
                                       std::chrono::milliseconds gap) {
  const auto started = Clock::now();
  for (char c : bytes) {
    if (!connection.write_raw(std::string(1, c)).empty()) return Clock::now() - started;
    std::this_thread::sleep_for(gap);
  }
  if (connection.wait_for_close()) return Clock::now() - started;
  return std::nullopt;
}

TEST(HostileInputTest, SlowlorisHeaderIsCutAfterTheHeaderTimeoutWhileOthersAreServed) {
  HttpServerOptions options;
  options.header_timeout = 300ms;
  options.idle_timeout = 10s;
  Server s(std::move(options));
  std::string header = "GET /ok HTTP/1.1\r\nHost: x\r\n";
  for (int i = 0; i < 200; ++i) header += "X-" + std::to_string(i) + ": y\r\n";
  std::optional<Clock::duration> cut;
  std::thread slow([&] {
    HttpConnection connection(s.port, 5s);
    cut = trickle(connection, header, 20ms);
  });
  // Meanwhile other clients get answers at once.
  for (int i = 0; i < 5; ++i) {
    const auto started = Clock::now();
    EXPECT_EQ(http_request(s.port, "GET", "/ok").status, 200);
    EXPECT_LT(Clock::now() - started, 1s);
    std::this_thread::sleep_for(20ms);
  }
  slow.join();
  ASSERT_TRUE(cut.has_value()) << "the slow header was never cut";
  EXPECT_GE(*cut, 250ms);
  EXPECT_LT(*cut, 3s);
}

TEST(HostileInputTest, SlowBodyIsCutAfterTheRequestTimeout) {
  HttpServerOptions options;
  options.request_timeout = 300ms;
  Server s(std::move(options));
  HttpConnection connection(s.port, 5s);
  ASSERT_EQ(connection.write_raw("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 200\r\n\r\n"),
            "");
  const auto cut = trickle(connection, std::string(200, 'b'), 20ms);
  ASSERT_TRUE(cut.has_value()) << "the slow body was never cut";
  EXPECT_LT(*cut, 3s);
  EXPECT_EQ(http_request(s.port, "GET", "/ok").status, 200);
}

TEST(HostileInputTest, ConnectionsBeyondTheCapGet503AndTheCapFreesUp) {
  HttpServerOptions options;
  options.max_connections = 3;
  Server s(std::move(options));
  std::vector<std::unique_ptr<HttpConnection>> held;
  for (int i = 0; i < 3; ++i) {
    held.push_back(std::make_unique<HttpConnection>(s.port, 5s));
    // A request proves the server accepted (and counts) the connection.
    ASSERT_EQ(held.back()->request("GET", "/ok").status, 200);
  }
  const auto refused = http_request(s.port, "GET", "/ok");
  EXPECT_EQ(refused.status, 503) << refused.error;
  EXPECT_EQ(refused.header("retry-after"), "1");
  // Held connections still work.
  EXPECT_EQ(held[0]->request("GET", "/ok").status, 200);
  held.pop_back();
  // Once the server notices the close, a new connection is served (bounded wait).
  int status = 0;
  const auto deadline = Clock::now() + 5s;
  while (status != 200 && Clock::now() < deadline) {
    status = http_request(s.port, "GET", "/ok").status;
    if (status != 200) std::this_thread::sleep_for(10ms);
  }
  EXPECT_EQ(status, 200);
}

}  // namespace
}  // namespace df::server
