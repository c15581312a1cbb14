// The server's HTTP layer: plain request/response values, a router of
// method + path patterns, and an HTTP/1.1 server (Boost.Beast on Asio) that
// serves one router on one or more listeners. Beast stays inside the HTTP
// layer's sources (http.cc, http_session.h); handlers see only these types.
//
// Threading: HttpServer runs its own Asio io_context on `threads` io threads
// (accepting, reading, parsing and refusing requests, writing responses),
// at a lower priority (`io_nice`), and its handlers on a pool of `threads`
// handler threads at the process's priority, concurrently: handlers must be
// thread-safe and should not block long (a pipeline start is handed to the
// manager, not waited for). So a flood of hostile connections costs the
// pipelines' workers only the CPU they leave idle, and a pipeline a handler
// starts does not inherit the io threads' priority. WebSocket handlers run
// on the io threads. Router is immutable once the server starts.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/core/status.h"

namespace df::server {

class TlsContext;  // engine/server/tls.h

// Header names are compared case-insensitively; stored lower-case.
using Headers = std::map<std::string, std::string>;

struct HttpRequest {
  std::string method;                              // "GET", "POST", ...
  std::string target;                              // as received: path and query
  std::string path;                                // decoded path, no query
  std::map<std::string, std::string> query;        // decoded ?a=b&c=d
  std::map<std::string, std::string> path_params;  // {name} captures from the route
  Headers headers;                                 // lower-case names
  std::string body;
  std::string request_id;  // X-Request-Id from the client, else generated
  std::string remote;      // "127.0.0.1:54321"
  // Over TLS with a verified client certificate: its subject DN (RFC 2253,
  // "CN=alice,O=Example") and its DNS, URI and email subject alternative
  // names. Empty without a client certificate.
  std::string client_subject;
  std::vector<std::string> client_sans;

  // The header's value, or "" when absent.
  const std::string& header(std::string_view lower_name) const;
};

struct HttpResponse {
  int status = 200;
  Headers headers;  // Content-Type defaults to application/json
  std::string body;

  static HttpResponse json(int status, std::string body);
  static HttpResponse text(int status, std::string body, std::string content_type = "text/plain");
  // {"error": message, "details": [...]} (docs/rest-api.md).
  static HttpResponse error(int status, std::string_view message,
                            const std::vector<std::string>& details = {});
  // The HTTP status for a failed Status: kInvalidArgument 400, kNotFound
  // 404, kAlreadyExists/kFailedPrecondition 409, kUnavailable 503, else 500.
  static HttpResponse from_status(const Status& status);
};

// A live WebSocket connection, handed to a WebSocket route's handler.
// send() may be called from any thread; messages are queued and written in
// order. A closed socket drops sends. The server closes it on shutdown.
class WebSocketConnection {
 public:
  virtual ~WebSocketConnection() = default;
  virtual void send(std::string text) = 0;
  virtual void close() = 0;
  virtual bool open() const = 0;
  // Called once, on a server thread, when the peer or the server closes it.
  virtual void on_close(std::function<void()> callback) = 0;
  // The subprotocol the handshake's answer names (Sec-WebSocket-Protocol):
  // one the client offered, set by the route's handler before it returns.
  // Empty (the default): the answer names none.
  virtual void set_protocol(std::string protocol) = 0;
  virtual std::string protocol() const = 0;
};

using Handler = std::function<HttpResponse(const HttpRequest&)>;
// Accepts or refuses an upgrade: a non-null response refuses it (sent as is).
using WebSocketHandler = std::function<std::optional<HttpResponse>(
    const HttpRequest&, std::shared_ptr<WebSocketConnection>)>;

// Routes "METHOD /path/{param}/literal" patterns. A path that matches a
// pattern with another method gets 405 with Allow; no match gets 404.
// Path segments are percent-decoded one by one (so %2F stays inside a
// {param}); a literal segment beats a {param} where both match; HEAD is
// served by the GET route. A WebSocket route is listed as "GET pattern";
// a GET on it without Upgrade gets 426.
class Router {
 public:
  void add(std::string method, std::string pattern, Handler handler);
  void add_websocket(std::string pattern, WebSocketHandler handler);
  HttpResponse dispatch(HttpRequest& request) const;  // fills path_params
  // For the OpenAPI sync test: every "METHOD pattern" added, in order.
  std::vector<std::string> routes() const;
  // The WebSocket handler for `request`'s path (fills path_params), or null.
  const WebSocketHandler* websocket(HttpRequest& request) const;

 private:
  struct Route;
  std::vector<std::shared_ptr<Route>> routes_;
};

struct HttpListener {
  std::string host = "127.0.0.1";
  uint16_t port = 0;  // 0: any free port (see HttpServer::port())
  std::shared_ptr<const Router> router;
  // Set: the listener speaks HTTPS (and WSS) with this context's current
  // certificate; null: plain HTTP.
  std::shared_ptr<TlsContext> tls{};
};

struct HttpServerOptions {
  std::vector<HttpListener> listeners;
  size_t max_body_size = 4u << 20;  // over it: 413 before the body is read
  int threads = 2;
  // A connection that sends nothing this long (before a request, or between
  // keep-alive requests) is closed.
  std::chrono::milliseconds idle_timeout{60000};
  // From a request's first byte to the end of its header (and for a TLS
  // handshake): a client trickling its header is cut after this.
  std::chrono::milliseconds header_timeout{10000};
  // Reading a request's body, all of it: a trickled body is cut after this.
  std::chrono::milliseconds request_timeout{60000};
  // Open connections per listener; a connection beyond it gets 503 (over
  // TLS: is closed) at once.
  size_t max_connections = 1024;
  // Added to the io threads' nice value (Linux: per thread; 10 is a CPU
  // weight about 1/10 of a pipeline worker's when both want a core). 0:
  // they run at the process's priority.
  int io_nice = 10;
};

class HttpServer {
 public:
  explicit HttpServer(HttpServerOptions options);
  ~HttpServer();  // stop(0)

  // Binds every listener and starts serving. Fails with one sentence naming
  // the address when a port is taken.
  Status start();
  // The bound port of listener `i` (useful when it asked for port 0).
  uint16_t port(size_t listener) const;
  // Stops accepting new connections and waits up to `grace` for in-flight
  // requests to finish; then closes everything. Returns how many requests
  // were cut off. Idempotent. Not from a handler: it joins the io threads
  // (a handler still running past `grace` is waited for; its response is
  // not sent).
  size_t stop(std::chrono::milliseconds grace);

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace df::server
