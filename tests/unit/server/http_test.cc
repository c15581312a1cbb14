// The HTTP layer over real TCP on 127.0.0.1: routing, limits, headers,
// keep-alive, WebSockets and shutdown.
#include "engine/server/http.h"

#include <gtest/gtest.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/core/log.h"
#include "tests/unit/server/http_client.h"

namespace df::server {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::json;
using test::http_request;
using test::HttpConnection;
using test::WebSocketClient;

// A started server on one port-0 listener of `router`.
struct TestServer {
  explicit TestServer(std::shared_ptr<const Router> router, HttpServerOptions options = {}) {
    options.listeners = {HttpListener{"127.0.0.1", 0, std::move(router)}};
    server = std::make_unique<HttpServer>(std::move(options));
    Status started = server->start();
    EXPECT_TRUE(started.ok()) << started.to_string();
    port = server->port(0);
  }
  std::unique_ptr<HttpServer> server;
  uint16_t port = 0;
};

// Waits (bounded) until `flag` is set.
bool wait_for(const std::atomic<bool>& flag, std::chrono::milliseconds limit = 5s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!flag.load() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(1ms);
  }
  return flag.load();
}

HttpResponse echo(const HttpRequest& request) {
  Json body;
  body["method"] = request.method;
  body["path"] = request.path;
  body["params"] = request.path_params;
  body["query"] = request.query;
  body["body"] = request.body;
  body["request_id"] = request.request_id;
  body["remote"] = request.remote;
  return HttpResponse::json(200, body.dump());
}

TEST(HttpResponseTest, ErrorBodyAndStatusMapping) {
  HttpResponse error = HttpResponse::error(400, "bad \"thing\"", {"a.yaml:1:2: x", "y"});
  EXPECT_EQ(error.status, 400);
  EXPECT_EQ(error.headers["content-type"], "application/json");
  Json body = Json::parse(error.body);
  EXPECT_EQ(body["error"], "bad \"thing\"");
  EXPECT_EQ(body["details"], Json::array({"a.yaml:1:2: x", "y"}));

  EXPECT_EQ(HttpResponse::from_status(Status::invalid("x")).status, 400);
  EXPECT_EQ(HttpResponse::from_status(Status::not_found("x")).status, 404);
  EXPECT_EQ(HttpResponse::from_status(Status::already_exists("x")).status, 409);
  EXPECT_EQ(HttpResponse::from_status(Status::failed_precondition("x")).status, 409);
  EXPECT_EQ(HttpResponse::from_status(Status::unavailable("x")).status, 503);
  EXPECT_EQ(HttpResponse::from_status(Status::io_error("x")).status, 500);
  EXPECT_EQ(Json::parse(HttpResponse::from_status(Status::not_found("no run r-1")).body)["error"],
            "no run r-1");
}

TEST(HttpServerTest, RoutesWithDecodedParamsAndQuery) {
  auto router = std::make_shared<Router>();
  router->add("GET", "/api/v1/pipelines/{name}/runs", echo);
  router->add("POST", "/api/v1/pipelines/{name}/start", echo);
  EXPECT_EQ(router->routes(), (std::vector<std::string>{"GET /api/v1/pipelines/{name}/runs",
                                                        "POST /api/v1/pipelines/{name}/start"}));
  TestServer server(router);

  auto r =
      http_request(server.port, "GET", "/api/v1/pipelines/hot%20items/runs?limit=5&q=a+b%26c&flag");
  ASSERT_EQ(r.status, 200) << r.error << r.body;
  Json body = Json::parse(r.body);
  EXPECT_EQ(body["path"], "/api/v1/pipelines/hot items/runs");
  EXPECT_EQ(body["params"]["name"], "hot items");
  EXPECT_EQ(body["query"]["limit"], "5");
  EXPECT_EQ(body["query"]["q"], "a b&c");
  EXPECT_EQ(body["query"]["flag"], "");

  // An encoded '/' stays inside its segment.
  r = http_request(server.port, "GET", "/api/v1/pipelines/a%2Fb/runs");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Json::parse(r.body)["params"]["name"], "a/b");

  r = http_request(server.port, "POST", "/api/v1/pipelines/p1/start", "payload");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Json::parse(r.body)["body"], "payload");
  EXPECT_EQ(Json::parse(r.body)["params"]["name"], "p1");
}

TEST(HttpServerTest, UnknownPathIs404AndWrongMethodIs405WithAllow) {
  auto router = std::make_shared<Router>();
  router->add("GET", "/api/v1/pipelines/{name}", echo);
  router->add("PUT", "/api/v1/pipelines/{name}", echo);
  router->add("DELETE", "/api/v1/pipelines/{name}", echo);
  router->add("GET", "/api/v1/pipelines",
              [](const HttpRequest&) { return HttpResponse::json(200, R"({"pipelines": []})"); });
  TestServer server(router);

  auto r = http_request(server.port, "GET", "/api/v1/nothing");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.header("content-type"), "application/json");
  EXPECT_TRUE(Json::parse(r.body)["error"].is_string());

  r = http_request(server.port, "POST", "/api/v1/pipelines/p1", "{}");
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.header("allow"), "DELETE, GET, HEAD, PUT");
  EXPECT_TRUE(Json::parse(r.body)["error"].is_string());

  // HEAD is served by the GET route: same headers, no body.
  auto get = http_request(server.port, "GET", "/api/v1/pipelines");
  auto head = http_request(server.port, "HEAD", "/api/v1/pipelines");
  ASSERT_FALSE(get.body.empty());
  EXPECT_EQ(head.status, 200) << head.error;
  EXPECT_EQ(head.header("content-length"), std::to_string(get.body.size()));
  EXPECT_TRUE(head.body.empty());
}

TEST(HttpServerTest, LiteralSegmentBeatsParameter) {
  auto router = std::make_shared<Router>();
  router->add("GET", "/api/v1/pipelines/{name}",
              [](const HttpRequest&) { return HttpResponse::json(200, R"({"route": "param"})"); });
  router->add("GET", "/api/v1/pipelines/openapi", [](const HttpRequest&) {
    return HttpResponse::json(200, R"({"route": "literal"})");
  });
  TestServer server(router);
  EXPECT_EQ(
      Json::parse(http_request(server.port, "GET", "/api/v1/pipelines/openapi").body)["route"],
      "literal");
  EXPECT_EQ(Json::parse(http_request(server.port, "GET", "/api/v1/pipelines/other").body)["route"],
            "param");
}

TEST(HttpServerTest, LinesAHandlerLogsCarryTheRequestId) {
  std::mutex mu;
  std::vector<std::string> seen;  // request ids of "api" lines
  const uint64_t listener = add_log_listener([&](const LogRecord& record) {
    if (record.component != "api-test") return;
    std::lock_guard lock(mu);
    seen.push_back(record.context.request_id);
  });
  auto router = std::make_shared<Router>();
  router->add("GET", "/log", [](const HttpRequest&) {
    log_info("api-test", "handling the request");
    return HttpResponse::json(200, "{}");
  });
  {
    TestServer server(router);
    auto r = http_request(server.port, "GET", "/log", "", {{"X-Request-Id", "req-7"}});
    ASSERT_EQ(r.status, 200) << r.error;
  }
  remove_log_listener(listener);
  std::lock_guard lock(mu);
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0], "req-7");
}

TEST(HttpServerTest, EveryResponseCarriesRequestIdServerTypeAndLength) {
  auto router = std::make_shared<Router>();
  router->add("GET", "/x", echo);
  router->add("GET", "/text", [](const HttpRequest&) {
    return HttpResponse::text(200, "hello", "text/plain; version=0.0.4");
  });
  router->add("DELETE", "/x", [](const HttpRequest&) { return HttpResponse{204, {}, ""}; });
  TestServer server(router);

  auto r = http_request(server.port, "GET", "/x", "", {{"X-Request-Id", "client-id-42"}});
  ASSERT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(r.header("x-request-id"), "client-id-42");
  EXPECT_EQ(Json::parse(r.body)["request_id"], "client-id-42");
  EXPECT_EQ(r.header("server"), "dataflow");
  EXPECT_EQ(r.header("content-type"), "application/json");
  EXPECT_EQ(r.header("content-length"), std::to_string(r.body.size()));

  r = http_request(server.port, "GET", "/x");
  const std::string generated = r.header("x-request-id");
  EXPECT_EQ(generated.size(), 16u);
  EXPECT_EQ(generated.find_first_not_of("0123456789abcdef"), std::string::npos) << generated;
  EXPECT_EQ(Json::parse(r.body)["request_id"], generated);
  EXPECT_NE(http_request(server.port, "GET", "/x").header("x-request-id"), generated);

  // Errors produced by the server itself carry it too.
  r = http_request(server.port, "GET", "/missing", "", {{"X-Request-Id", "abc"}});
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.header("x-request-id"), "abc");

  r = http_request(server.port, "GET", "/text");
  EXPECT_EQ(r.header("content-type"), "text/plain; version=0.0.4");
  EXPECT_EQ(r.body, "hello");

  r = http_request(server.port, "DELETE", "/x");
  EXPECT_EQ(r.status, 204);
  EXPECT_EQ(r.header("content-length"), "");
  EXPECT_FALSE(r.header("x-request-id").empty());
}

TEST(HttpServerTest, KeepAliveServesSeveralRequestsOnOneConnection) {
  auto router = std::make_shared<Router>();
  router->add("POST", "/echo", echo);
  TestServer server(router);
  HttpConnection connection(server.port);
  ASSERT_TRUE(connection.connected()) << connection.error();
  auto first = connection.request("POST", "/echo", "one");
  auto second = connection.request("POST", "/echo", "two");
  ASSERT_EQ(first.status, 200) << first.error;
  ASSERT_EQ(second.status, 200) << second.error;
  EXPECT_EQ(Json::parse(first.body)["body"], "one");
  EXPECT_EQ(Json::parse(second.body)["body"], "two");
  // The same client port: one connection served both.
  EXPECT_EQ(Json::parse(first.body)["remote"], Json::parse(second.body)["remote"]);

  // Connection: close is honoured.
  auto last = connection.request("POST", "/echo", "three", {{"Connection", "close"}});
  EXPECT_EQ(last.status, 200);
  EXPECT_EQ(last.header("connection"), "close");
  EXPECT_TRUE(connection.wait_for_close());
}

TEST(HttpServerTest, BodyOverLimitGets413WithoutReadingIt) {
  std::atomic<int> calls{0};
  auto router = std::make_shared<Router>();
  router->add("POST", "/upload", [&](const HttpRequest&) {
    ++calls;
    return HttpResponse::json(200, "{}");
  });
  HttpServerOptions options;
  options.max_body_size = 1024;
  TestServer server(router, options);

  // A 1 GiB Content-Length: the answer comes at once, nothing of it is sent.
  HttpConnection connection(server.port, 5s);
  ASSERT_TRUE(connection.connected());
  const auto started = std::chrono::steady_clock::now();
  ASSERT_EQ(connection.write_raw("POST /upload HTTP/1.1\r\nHost: x\r\nX-Request-Id: big-1\r\n"
                                 "Content-Type: application/json\r\n"
                                 "Content-Length: 1073741824\r\n\r\n"),
            "");
  auto r = connection.read_response();
  EXPECT_EQ(r.status, 413) << r.error;
  EXPECT_EQ(r.header("x-request-id"), "big-1");
  EXPECT_EQ(r.header("connection"), "close");
  EXPECT_TRUE(Json::parse(r.body)["error"].is_string());
  EXPECT_TRUE(connection.wait_for_close());
  EXPECT_LT(std::chrono::steady_clock::now() - started, 3s);

  // A chunked body that grows past the limit.
  HttpConnection chunked(server.port, 5s);
  const std::string chunk(1000, 'x');
  char size_line[16];
  std::snprintf(size_line, sizeof size_line, "%zx\r\n", chunk.size());
  std::string raw = "POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (int i = 0; i < 3; ++i) raw += size_line + chunk + "\r\n";
  ASSERT_EQ(chunked.write_raw(raw), "");
  r = chunked.read_response();
  EXPECT_EQ(r.status, 413) << r.error;
  EXPECT_TRUE(chunked.wait_for_close());

  // At the limit is fine.
  r = http_request(server.port, "POST", "/upload", std::string(1024, 'y'));
  EXPECT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(calls.load(), 1);
}

TEST(HttpServerTest, MalformedRequestsGet400) {
  std::atomic<int> calls{0};
  auto router = std::make_shared<Router>();
  router->add("POST", "/x", [&](const HttpRequest&) {
    ++calls;
    return HttpResponse::json(200, "{}");
  });
  TestServer server(router);

  HttpConnection garbage(server.port, 5s);
  ASSERT_EQ(garbage.write_raw("THIS IS NOT HTTP\r\n\r\n"), "");
  EXPECT_EQ(garbage.read_response().status, 400);

  HttpConnection bad_length(server.port, 5s);
  ASSERT_EQ(bad_length.write_raw("POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: ten\r\n\r\n"), "");
  EXPECT_EQ(bad_length.read_response().status, 400);

  HttpConnection bad_chunk(server.port, 5s);
  ASSERT_EQ(bad_chunk.write_raw("POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                                "zz\r\nhello\r\n0\r\n\r\n"),
            "");
  auto r = bad_chunk.read_response();
  EXPECT_EQ(r.status, 400) << r.error;
  EXPECT_TRUE(bad_chunk.wait_for_close());

  r = http_request(server.port, "POST", "/x%zz", "{}");
  EXPECT_EQ(r.status, 400);
  EXPECT_TRUE(Json::parse(r.body)["error"].is_string());
  EXPECT_EQ(calls.load(), 0);
}

TEST(HttpServerTest, OversizedHeaderGets431) {
  auto router = std::make_shared<Router>();
  router->add("GET", "/x", echo);
  TestServer server(router);
  HttpConnection connection(server.port, 5s);
  ASSERT_EQ(connection.write_raw("GET /x HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(20000, 'a') +
                                 "\r\n\r\n"),
            "");
  EXPECT_EQ(connection.read_response().status, 431);
  EXPECT_TRUE(connection.wait_for_close());
}

// Oversized headers are refused early when their first read shows no end
// within the limit; one that arrives in pieces goes through the parser's own
// limit; a small header followed at once by a large body is not refused.
TEST(HttpServerTest, HeaderLimitWhateverTheReadsAndNotForABodyInTheSameRead) {
  auto router = std::make_shared<Router>();
  router->add("GET", "/x", echo);
  router->add("POST", "/x", echo);
  TestServer server(router);
  {
    HttpConnection connection(server.port, 5s);
    ASSERT_EQ(
        connection.write_raw("GET /x HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(8000, 'a')), "");
    std::this_thread::sleep_for(50ms);  // so the server reads the first piece alone
    ASSERT_EQ(connection.write_raw(std::string(12000, 'a') + "\r\n\r\n"), "");
    EXPECT_EQ(connection.read_response().status, 431);
    EXPECT_TRUE(connection.wait_for_close());
  }
  HttpConnection connection(server.port, 5s);
  const std::string body(40000, 'b');
  ASSERT_EQ(connection.write_raw("POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: " +
                                 std::to_string(body.size()) + "\r\n\r\n" + body),
            "");
  const auto response = connection.read_response();
  EXPECT_EQ(response.status, 200) << response.body;
  EXPECT_EQ(Json::parse(response.body)["body"].get<std::string>().size(), body.size());
}

int thread_nice(const std::string& stat_path) {
  std::ifstream in(stat_path);
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // Fields after the command's closing parenthesis; the nice value is the 19th field.
  std::istringstream fields(stat.substr(stat.rfind(')') + 2));
  std::string field;
  for (int i = 3; i <= 19 && fields >> field; ++i) {
  }
  return std::stoi(field);
}

// The io threads (named df-http) run io_nice below the process; handlers
// and the threads they start (a pipeline's) run at the process's priority.
TEST(HttpServerTest, IoThreadsRunBelowTheProcessPriorityHandlersDoNot) {
  errno = 0;
  const int base = ::getpriority(PRIO_PROCESS, 0);  // this thread's (Linux)
  ASSERT_EQ(errno, 0);
  std::atomic<int> handler_nice{-100}, started_thread_nice{-100};
  auto router = std::make_shared<Router>();
  router->add("GET", "/nice", [&](const HttpRequest&) {
    handler_nice = ::getpriority(PRIO_PROCESS, 0);
    std::thread([&] { started_thread_nice = ::getpriority(PRIO_PROCESS, 0); }).join();
    return HttpResponse::json(200, "{}");
  });
  HttpServerOptions options;
  options.threads = 2;
  options.io_nice = 10;
  TestServer server(router, options);
  EXPECT_EQ(http_request(server.port, "GET", "/nice").status, 200);
  EXPECT_EQ(handler_nice.load(), base);
  EXPECT_EQ(started_thread_nice.load(), base);
  // The io thread that did not serve the request may still be starting
  // (naming itself) on a loaded machine: look again for up to 5 s.
  std::vector<int> io_nice;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  for (int scan = 0; scan < 100; ++scan) {
    io_nice.clear();
    for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
      std::ifstream comm(task.path() / "comm");
      std::string name;
      std::getline(comm, name);
      if (name == "df-http") io_nice.push_back(thread_nice((task.path() / "stat").string()));
    }
    if (io_nice.size() >= 2 || std::chrono::steady_clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(io_nice, std::vector<int>(2, std::min(19, base + 10)));
}

TEST(HttpServerTest, ExpectContinueGets100BeforeTheBody) {
  auto router = std::make_shared<Router>();
  router->add("PUT", "/x", echo);
  TestServer server(router);
  HttpConnection connection(server.port, 5s);
  ASSERT_EQ(connection.write_raw("PUT /x HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                                 "Content-Length: 5\r\n\r\n"),
            "");
  EXPECT_EQ(connection.read_response().status, 100);
  ASSERT_EQ(connection.write_raw("hello"), "");
  auto r = connection.read_response();
  ASSERT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(Json::parse(r.body)["body"], "hello");
}

TEST(HttpServerTest, IdleKeepAliveConnectionTimesOut) {
  auto router = std::make_shared<Router>();
  router->add("GET", "/x", echo);
  HttpServerOptions options;
  options.idle_timeout = 100ms;
  TestServer server(router, options);
  HttpConnection connection(server.port, 5s);
  ASSERT_EQ(connection.request("GET", "/x").status, 200);
  const auto started = std::chrono::steady_clock::now();
  EXPECT_TRUE(connection.wait_for_close());
  EXPECT_LT(std::chrono::steady_clock::now() - started, 3s);
}

TEST(HttpServerTest, HandlerExceptionBecomes500AndTheConnectionStaysUsable) {
  auto router = std::make_shared<Router>();
  router->add("GET", "/boom", [](const HttpRequest&) -> HttpResponse {
    throw std::runtime_error("bug in the handler");
  });
  router->add("GET", "/ok", echo);
  TestServer server(router);
  HttpConnection connection(server.port);
  auto r = connection.request("GET", "/boom", "", {{"X-Request-Id", "req-500"}});
  EXPECT_EQ(r.status, 500) << r.error;
  EXPECT_EQ(r.header("x-request-id"), "req-500");
  Json body = Json::parse(r.body);
  EXPECT_NE(body["error"].get<std::string>().find("req-500"), std::string::npos);
  EXPECT_EQ(connection.request("GET", "/ok").status, 200);
}

TEST(HttpServerTest, ConcurrentRequestsFromSeveralThreads) {
  std::atomic<int> calls{0};
  auto router = std::make_shared<Router>();
  router->add("POST", "/echo/{n}", [&](const HttpRequest& request) {
    ++calls;
    return echo(request);
  });
  HttpServerOptions options;
  options.threads = 4;
  TestServer server(router, options);

  constexpr int kThreads = 6;
  constexpr int kRequests = 20;
  std::atomic<int> good{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < kThreads; ++t) {
    clients.emplace_back([&, t] {
      HttpConnection connection(server.port);
      for (int i = 0; i < kRequests; ++i) {
        const std::string n = std::to_string(t * 1000 + i);
        auto r = connection.request("POST", "/echo/" + n, "body-" + n);
        if (r.status != 200) continue;
        Json body = Json::parse(r.body);
        if (body["params"]["n"] == n && body["body"] == "body-" + n) ++good;
      }
    });
  }
  for (auto& c : clients) c.join();
  EXPECT_EQ(good.load(), kThreads * kRequests);
  EXPECT_EQ(calls.load(), kThreads * kRequests);
}

TEST(HttpServerTest, SeveralListenersServeTheirOwnRouters) {
  auto api = std::make_shared<Router>();
  api->add("GET", "/api", [](const HttpRequest&) { return HttpResponse::json(200, "{}"); });
  auto health = std::make_shared<Router>();
  health->add("GET", "/health", [](const HttpRequest&) { return HttpResponse::json(200, "{}"); });
  HttpServerOptions options;
  options.listeners = {HttpListener{"127.0.0.1", 0, api}, HttpListener{"127.0.0.1", 0, health}};
  HttpServer server(options);
  ASSERT_TRUE(server.start().ok());
  EXPECT_NE(server.port(0), server.port(1));
  EXPECT_EQ(http_request(server.port(0), "GET", "/api").status, 200);
  EXPECT_EQ(http_request(server.port(0), "GET", "/health").status, 404);
  EXPECT_EQ(http_request(server.port(1), "GET", "/health").status, 200);
  EXPECT_EQ(http_request(server.port(1), "GET", "/api").status, 404);
  EXPECT_EQ(server.stop(1s), 0u);
}

TEST(HttpServerTest, PortConflictFailsNamingTheAddress) {
  auto router = std::make_shared<Router>();
  TestServer first(router);
  HttpServerOptions options;
  options.listeners = {HttpListener{"127.0.0.1", first.port, router}};
  HttpServer second(options);
  Status status = second.start();
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find("127.0.0.1:" + std::to_string(first.port)), std::string::npos)
      << status.message();
  // The first server still serves.
  EXPECT_EQ(http_request(first.port, "GET", "/nothing").status, 404);
}

// Collects what a WebSocket route was handed.
struct WebSocketProbe {
  std::mutex mu;
  std::shared_ptr<WebSocketConnection> connection;
  std::map<std::string, std::string> params;
  std::atomic<bool> connected{false};
  std::atomic<int> closed{0};

  WebSocketHandler handler() {
    return [this](const HttpRequest& request,
                  std::shared_ptr<WebSocketConnection> ws) -> std::optional<HttpResponse> {
      if (request.path_params.at("id") == "missing") {
        return HttpResponse::error(404, "no run missing");
      }
      ws->on_close([this] { ++closed; });
      ws->send("hello " + request.path_params.at("id"));
      std::lock_guard lock(mu);
      connection = ws;
      params = request.path_params;
      connected = true;
      return std::nullopt;
    };
  }
  std::shared_ptr<WebSocketConnection> get() {
    std::lock_guard lock(mu);
    return connection;
  }
};

bool wait_for_count(const std::atomic<int>& value, int at_least,
                    std::chrono::milliseconds limit = 5s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (value.load() < at_least && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(1ms);
  }
  return value.load() >= at_least;
}

TEST(HttpServerTest, WebSocketMessagesArriveInOrderThenServerClose) {
  WebSocketProbe probe;
  auto router = std::make_shared<Router>();
  router->add_websocket("/api/v1/runs/{id}/stream", probe.handler());
  TestServer server(router);

  WebSocketClient client(server.port, "/api/v1/runs/r-1/stream", {{"X-Request-Id", "ws-1"}});
  ASSERT_TRUE(client.ok()) << client.error();
  EXPECT_EQ(client.handshake_header("X-Request-Id"), "ws-1");
  EXPECT_EQ(client.handshake_header("Server"), "dataflow");
  ASSERT_TRUE(wait_for(probe.connected));
  auto ws = probe.get();
  EXPECT_TRUE(ws->open());

  // Sends from two threads, each in its own order; plus one sent in the handler.
  constexpr int kPerThread = 200;
  std::vector<std::thread> senders;
  for (int t = 0; t < 2; ++t) {
    senders.emplace_back([ws, t] {
      for (int i = 0; i < kPerThread; ++i) ws->send(std::to_string(t) + ":" + std::to_string(i));
    });
  }
  for (auto& s : senders) s.join();
  EXPECT_EQ(client.read(), "hello r-1");
  int next[2] = {0, 0};
  for (int i = 0; i < 2 * kPerThread; ++i) {
    auto message = client.read();
    ASSERT_TRUE(message) << "message " << i;
    const int t = (*message)[0] - '0';
    ASSERT_TRUE(t == 0 || t == 1) << *message;
    EXPECT_EQ(*message, std::to_string(t) + ":" + std::to_string(next[t]));
    ++next[t];
  }
  ws->send("last");
  ws->close();
  ws->send("dropped after close");
  EXPECT_FALSE(ws->open());
  EXPECT_EQ(client.read(), "last");
  EXPECT_FALSE(client.read().has_value());
  EXPECT_EQ(client.close_code(), 1000);
  EXPECT_TRUE(wait_for_count(probe.closed, 1));

  // on_close registered after the close runs at once.
  std::atomic<bool> late{false};
  ws->on_close([&] { late = true; });
  EXPECT_TRUE(late.load());
}

TEST(HttpServerTest, WebSocketClientCloseRunsOnClose) {
  WebSocketProbe probe;
  auto router = std::make_shared<Router>();
  router->add_websocket("/runs/{id}/stream", probe.handler());
  TestServer server(router);
  WebSocketClient client(server.port, "/runs/r-2/stream");
  ASSERT_TRUE(client.ok()) << client.error();
  EXPECT_EQ(client.read(), "hello r-2");
  EXPECT_TRUE(client.send("ignored by the server"));
  client.close();
  EXPECT_TRUE(wait_for_count(probe.closed, 1));
  EXPECT_FALSE(probe.get()->open());
  probe.get()->send("dropped");  // no effect, no crash
}

TEST(HttpServerTest, WebSocketRefusalAndPlainGet) {
  WebSocketProbe probe;
  auto router = std::make_shared<Router>();
  router->add_websocket("/runs/{id}/stream", probe.handler());
  TestServer server(router);
  WebSocketClient refused(server.port, "/runs/missing/stream");
  EXPECT_FALSE(refused.ok());
  EXPECT_EQ(refused.handshake_status(), 404);

  WebSocketClient unknown(server.port, "/elsewhere");
  EXPECT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.handshake_status(), 404);

  auto r = http_request(server.port, "GET", "/runs/r-1/stream");
  EXPECT_EQ(r.status, 426);
  EXPECT_EQ(r.header("upgrade"), "websocket");
  EXPECT_EQ(router->routes(), std::vector<std::string>{"GET /runs/{id}/stream"});
}

// A handler that blocks until released (or a time limit), to hold a
// request in flight.
struct SlowHandler {
  std::atomic<bool> entered{false};
  std::chrono::milliseconds duration;
  explicit SlowHandler(std::chrono::milliseconds d) : duration(d) {}
  Handler handler() {
    return [this](const HttpRequest&) {
      entered = true;
      std::this_thread::sleep_for(duration);
      return HttpResponse::json(200, R"({"slow": true})");
    };
  }
};

TEST(HttpServerTest, StopLetsAnInFlightRequestFinishWithinGrace) {
  SlowHandler slow(300ms);
  auto router = std::make_shared<Router>();
  router->add("GET", "/slow", slow.handler());
  TestServer server(router);
  test::HttpResult result;
  std::thread client([&] { result = http_request(server.port, "GET", "/slow"); });
  ASSERT_TRUE(wait_for(slow.entered));
  EXPECT_EQ(server.server->stop(5s), 0u);
  client.join();
  EXPECT_EQ(result.status, 200) << result.error;
  EXPECT_EQ(result.header("connection"), "close");
  EXPECT_EQ(server.server->stop(5s), 0u);  // idempotent
  EXPECT_FALSE(HttpConnection(server.port, 2s).connected());
}

TEST(HttpServerTest, StopCutsOffAHandlerSlowerThanGrace) {
  SlowHandler slow(800ms);
  auto router = std::make_shared<Router>();
  router->add("GET", "/slow", slow.handler());
  TestServer server(router);
  test::HttpResult result;
  std::thread client([&] { result = http_request(server.port, "GET", "/slow"); });
  ASSERT_TRUE(wait_for(slow.entered));
  EXPECT_EQ(server.server->stop(50ms), 1u);
  client.join();
  EXPECT_EQ(result.status, 0);
  EXPECT_FALSE(result.error.empty());
}

TEST(HttpServerTest, StopClosesIdleConnectionsAndWebSockets) {
  WebSocketProbe probe;
  auto router = std::make_shared<Router>();
  router->add("GET", "/x", echo);
  router->add_websocket("/runs/{id}/stream", probe.handler());
  TestServer server(router);

  HttpConnection idle(server.port);
  ASSERT_EQ(idle.request("GET", "/x").status, 200);
  WebSocketClient client(server.port, "/runs/r-3/stream");
  ASSERT_TRUE(client.ok()) << client.error();
  ASSERT_TRUE(wait_for(probe.connected));
  // The client keeps reading, so it answers the server's close frame.
  std::vector<std::string> received;
  std::thread reader([&] {
    for (int i = 0; i < 10; ++i) {
      auto message = client.read();
      if (!message) break;
      received.push_back(*message);
    }
  });
  const auto started = std::chrono::steady_clock::now();
  EXPECT_EQ(server.server->stop(5s), 0u);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 4s);
  reader.join();
  EXPECT_EQ(received, std::vector<std::string>{"hello r-3"});
  EXPECT_EQ(client.close_code(), 1001);  // going away
  EXPECT_EQ(probe.closed.load(), 1);
  EXPECT_TRUE(idle.wait_for_close());
  probe.get()->send("after stop");  // dropped
}

TEST(HttpServerTest, StopBeforeStartAndDestructorWithOpenConnections) {
  auto router = std::make_shared<Router>();
  router->add("GET", "/x", echo);
  {
    HttpServerOptions options;
    options.listeners = {HttpListener{"127.0.0.1", 0, router}};
    HttpServer never_started(options);
    EXPECT_EQ(never_started.stop(1s), 0u);
  }
  auto server = std::make_unique<TestServer>(router);
  HttpConnection idle(server->port);
  ASSERT_EQ(idle.request("GET", "/x").status, 200);
  server.reset();  // ~HttpServer: stop(0)
  EXPECT_TRUE(idle.wait_for_close());
}

}  // namespace
}  // namespace df::server
