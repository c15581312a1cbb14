// A small synchronous HTTP/1.1 and WebSocket client for tests (Boost.Beast
// over TCP). Each call runs the client's own io_context until the operation
// completes or its timeout passes, so every call is bounded in time; a
// transport failure is reported in `error`, never thrown.
//
// Threading: one client object per thread; separate objects are independent.
//
//   auto r = df::test::http_request(port, "POST", "/api/v1/pipelines", yaml,
//                                   {{"Content-Type", "application/yaml"}});
//   EXPECT_EQ(r.status, 201) << r.body;
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

namespace df::test {

namespace http_client_detail {

namespace beast = boost::beast;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using error_code = boost::system::error_code;

inline std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

// Starts an operation with a completion handler, runs `ioc` until it
// completes or `timeout` passes; on timeout closes `socket` (which ends the
// operation) and returns timed_out.
template <class Start>
error_code run_bounded(net::io_context& ioc, tcp::socket& socket, std::chrono::milliseconds timeout,
                       Start&& start) {
  std::optional<error_code> result;
  start([&result](error_code ec, auto&&...) { result = ec; });
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  ioc.restart();
  while (!result && ioc.run_one_until(deadline) > 0) {
  }
  if (result) return *result;
  error_code ignored;
  socket.close(ignored);
  ioc.restart();
  while (!result && ioc.run_one_for(std::chrono::seconds(5)) > 0) {
  }
  return net::error::timed_out;
}

}  // namespace http_client_detail

// Request header fields, in order ({"Content-Type", "application/json"}).
using HttpFields = std::vector<std::pair<std::string, std::string>>;

struct HttpResult {
  int status = 0;                              // 0: no response (see error)
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  std::string error;  // transport failure; empty when a response arrived

  // The header's value, or "" when absent.
  const std::string& header(std::string_view name) const {
    static const std::string kNone;
    auto it = headers.find(http_client_detail::lower(name));
    return it == headers.end() ? kNone : it->second;
  }
};

// One keep-alive connection to 127.0.0.1:port (or `host`).
class HttpConnection {
 public:
  explicit HttpConnection(uint16_t port,
                          std::chrono::milliseconds timeout = std::chrono::seconds(10),
                          std::string host = "127.0.0.1")
      : socket_(ioc_), timeout_(timeout), host_(host + ":" + std::to_string(port)) {
    namespace d = http_client_detail;
    const d::tcp::endpoint endpoint(d::net::ip::make_address(host), port);
    const d::error_code ec = d::run_bounded(
        ioc_, socket_, timeout_, [&](auto handler) { socket_.async_connect(endpoint, handler); });
    if (ec) error_ = "connect to " + host_ + ": " + ec.message();
  }

  bool connected() const { return error_.empty(); }
  const std::string& error() const { return error_; }

  // Sends one request and reads its response. A body is sent with
  // Content-Length; `fields` may override any header.
  HttpResult request(std::string_view method, std::string_view target, std::string body = {},
                     const HttpFields& fields = {}) {
    namespace d = http_client_detail;
    namespace http = d::beast::http;
    http::request<http::string_body> req;
    req.version(11);
    const http::verb verb = http::string_to_verb({method.data(), method.size()});
    if (verb == http::verb::unknown) {
      req.method_string({method.data(), method.size()});
    } else {
      req.method(verb);
    }
    req.target({target.data(), target.size()});
    req.set(http::field::host, host_);
    req.set(http::field::user_agent, "dataflow-test");
    const bool has_body = !body.empty() || method == "POST" || method == "PUT" || method == "PATCH";
    req.body() = std::move(body);
    if (has_body) req.prepare_payload();
    for (const auto& [name, value] : fields) req.set(name, value);
    HttpResult result;
    if (!connected()) {
      result.error = error_;
      return result;
    }
    const d::error_code ec = d::run_bounded(
        ioc_, socket_, timeout_, [&](auto handler) { http::async_write(socket_, req, handler); });
    if (ec) {
      result.error = "write: " + ec.message();
      return result;
    }
    return read_response(method == "HEAD");
  }

  // Writes raw bytes (for malformed or partial requests).
  std::string write_raw(std::string_view bytes) {
    namespace d = http_client_detail;
    const d::error_code ec = d::run_bounded(ioc_, socket_, timeout_, [&](auto handler) {
      d::net::async_write(socket_, d::net::buffer(bytes.data(), bytes.size()), handler);
    });
    return ec ? "write: " + ec.message() : std::string();
  }

  // Reads one response (after write_raw).
  HttpResult read_response(bool head = false) {
    namespace d = http_client_detail;
    namespace http = d::beast::http;
    HttpResult result;
    http::response_parser<http::string_body> parser;
    parser.body_limit(boost::none);
    parser.skip(head);
    const d::error_code ec = d::run_bounded(ioc_, socket_, timeout_, [&](auto handler) {
      http::async_read(socket_, buffer_, parser, handler);
    });
    if (ec) {
      result.error = "read: " + ec.message();
      return result;
    }
    auto& response = parser.get();
    result.status = static_cast<int>(response.result_int());
    for (const auto& field : response) {
      const auto name = field.name_string();
      const auto value = field.value();
      result.headers[d::lower({name.data(), name.size()})] =
          std::string(value.data(), value.size());
    }
    result.body = std::move(response.body());
    return result;
  }

  // True when the server closes the connection within the timeout (any
  // bytes it still sends are skipped).
  bool wait_for_close() {
    namespace d = http_client_detail;
    char scratch[4096];
    const auto deadline = std::chrono::steady_clock::now() + timeout_;
    while (std::chrono::steady_clock::now() < deadline) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      const d::error_code ec = d::run_bounded(ioc_, socket_, left, [&](auto handler) {
        socket_.async_read_some(d::net::buffer(scratch), handler);
      });
      if (ec == d::net::error::timed_out) return false;
      if (ec) return true;  // eof or reset
    }
    return false;
  }

 private:
  http_client_detail::net::io_context ioc_;  // before the socket: destroyed after it
  http_client_detail::tcp::socket socket_;
  http_client_detail::beast::flat_buffer buffer_;
  std::chrono::milliseconds timeout_;
  std::string host_;
  std::string error_;
};

// One request on a fresh connection.
inline HttpResult http_request(uint16_t port, std::string_view method, std::string_view target,
                               std::string body = {}, const HttpFields& fields = {},
                               std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  HttpConnection connection(port, timeout);
  return connection.request(method, target, std::move(body), fields);
}

// A WebSocket client connection to ws://127.0.0.1:port<target>.
class WebSocketClient {
 public:
  WebSocketClient(uint16_t port, std::string target, const HttpFields& fields = {},
                  std::chrono::milliseconds timeout = std::chrono::seconds(10))
      : ws_(ioc_), timeout_(timeout) {
    namespace d = http_client_detail;
    namespace websocket = d::beast::websocket;
    const d::tcp::endpoint endpoint(d::net::ip::make_address("127.0.0.1"), port);
    d::error_code ec = run([&](auto handler) { socket().async_connect(endpoint, handler); });
    if (ec) {
      error_ = "connect: " + ec.message();
      return;
    }
    ws_.set_option(websocket::stream_base::decorator([fields](websocket::request_type& req) {
      for (const auto& [name, value] : fields) req.set(name, value);
    }));
    ec = run([&](auto handler) {
      ws_.async_handshake(handshake_, "127.0.0.1:" + std::to_string(port), target, handler);
    });
    if (ec) error_ = "handshake: " + ec.message();
  }

  // The handshake succeeded (101).
  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }
  // The server's answer to the upgrade: 101, or the refusal's status.
  int handshake_status() const { return static_cast<int>(handshake_.result_int()); }
  std::string handshake_header(std::string_view name) const {
    auto value = handshake_[boost::beast::string_view(name.data(), name.size())];
    return std::string(value.data(), value.size());
  }

  // The next text message; nullopt when the connection closed (see
  // close_code()), failed, or nothing arrived within `timeout`.
  std::optional<std::string> read(std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    namespace d = http_client_detail;
    if (!ok() || closed_) return std::nullopt;
    d::beast::flat_buffer buffer;
    const d::error_code ec = d::run_bounded(ioc_, socket(), timeout,
                                            [&](auto handler) { ws_.async_read(buffer, handler); });
    if (ec) {
      closed_ = true;
      close_code_ = static_cast<int>(ws_.reason().code);
      return std::nullopt;
    }
    return d::beast::buffers_to_string(buffer.data());
  }

  bool send(std::string_view text) {
    namespace d = http_client_detail;
    if (!ok() || closed_) return false;
    ws_.text(true);
    return !run(
        [&](auto handler) { ws_.async_write(d::net::buffer(text.data(), text.size()), handler); });
  }

  // Sends a close frame and waits for the server's.
  void close() {
    if (!ok() || closed_) return;
    closed_ = true;
    run([&](auto handler) {
      ws_.async_close(boost::beast::websocket::close_code::normal, handler);
    }).clear();
  }

  bool closed() const { return closed_; }
  // The close frame's code (1000 normal, 1001 going away), 0 if none came.
  int close_code() const { return close_code_; }

 private:
  http_client_detail::tcp::socket& socket() { return ws_.next_layer(); }

  template <class Start>
  http_client_detail::error_code run(Start&& start) {
    return http_client_detail::run_bounded(ioc_, socket(), timeout_, std::forward<Start>(start));
  }

  http_client_detail::net::io_context ioc_;
  boost::beast::websocket::stream<http_client_detail::tcp::socket> ws_;
  boost::beast::websocket::response_type handshake_;
  std::chrono::milliseconds timeout_;
  std::string error_;
  bool closed_ = false;
  int close_code_ = 0;
};

}  // namespace df::test
