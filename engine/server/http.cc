// The HTTP layer: request/response helpers, the router and the server
// (listeners, connection cap, shutdown). The connections themselves are
// served by the session templates of http_session.h, instantiated in
// http_plain.cc, http_tls.cc and http_wss.cc (http_connection.h says why
// they are apart).
//
// Shutdown: stop() closes the acceptors, tells every session to finish (idle
// ones close at once, busy ones close after their response), waits up to the
// grace period for in-flight requests and WebSockets, then closes whatever
// is left and joins the io threads once their work has run out.
#include "engine/server/http.h"

#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <random>
#include <stdexcept>
#include <thread>
#include <utility>

#include <atomic>
#include <mutex>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/write.hpp>

#include "engine/core/digits.h"
#include "engine/core/log.h"
#include "engine/server/http_connection.h"
#include "engine/server/tls.h"

namespace df::server {

namespace {

namespace net = boost::asio;
using tcp = net::ip::tcp;
using error_code = boost::system::error_code;
using internal::ConnectionSlot;
using internal::kLingerBytes;
using internal::kLingerTime;
using internal::kLog;
using internal::ServerShared;

// How long stop() waits for sessions to wind down after closing them before
// it stops the io_context outright.
constexpr std::chrono::seconds kForcedCloseWait{5};

const std::string kEmpty;

// A client's X-Request-Id is echoed only when it is short visible ASCII, so
// it cannot smuggle anything into logs or headers.
bool usable_request_id(std::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  return std::all_of(id.begin(), id.end(), [](char c) { return c > 0x20 && c < 0x7f; });
}

std::string new_request_id() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(rng()));
  return text;
}

// "/a/b/" -> {"a", "b"}; "/" -> {}. One trailing slash is ignored.
std::vector<std::string_view> split_path(std::string_view path) {
  std::vector<std::string_view> segments;
  if (!path.empty() && path.front() == '/') path.remove_prefix(1);
  if (!path.empty() && path.back() == '/') path.remove_suffix(1);
  if (path.empty()) return segments;
  size_t start = 0;
  while (true) {
    const size_t slash = path.find('/', start);
    segments.push_back(path.substr(start, slash == std::string_view::npos ? slash : slash - start));
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  return segments;
}

// Percent-decodes `in`; with plus_is_space (query strings) '+' is a space.
// nullopt for a malformed escape.
std::optional<std::string> percent_decode(std::string_view in, bool plus_is_space) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    const char c = in[i];
    if (c == '%') {
      if (i + 2 >= in.size()) return std::nullopt;
      const int hi = hex_digit_value(in[i + 1]);
      const int lo = hex_digit_value(in[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out.push_back(' ');
    } else {
      out.push_back(c);
    }
  }
  return out;
}

}  // namespace

namespace internal {

std::string to_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Fills request.path and request.query from an origin-form target.
Status parse_target(std::string_view target, HttpRequest& request) {
  if (target.empty() || target.front() != '/') {
    return Status::invalid("the request target must be a path starting with '/'");
  }
  const size_t question = target.find('?');
  auto path = percent_decode(target.substr(0, question), false);
  if (!path) return Status::invalid("the request path has a malformed percent-encoding");
  request.path = std::move(*path);
  request.query.clear();
  if (question == std::string_view::npos) return Status::OK();
  std::string_view query = target.substr(question + 1);
  while (!query.empty()) {
    const size_t amp = query.find('&');
    const std::string_view item = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (item.empty()) continue;
    const size_t eq = item.find('=');
    auto key = percent_decode(item.substr(0, eq), true);
    auto value = percent_decode(eq == std::string_view::npos ? "" : item.substr(eq + 1), true);
    if (!key || !value) return Status::invalid("the query string has a malformed percent-encoding");
    request.query[std::move(*key)] = std::move(*value);
  }
  return Status::OK();
}

std::string new_http_request_id(std::string_view from_client) {
  return usable_request_id(from_client) ? std::string(from_client) : new_request_id();
}

}  // namespace internal

namespace {

// The decoded segments of the request's path. Segments are split before
// decoding, so an encoded '/' (%2F) stays inside its segment.
std::optional<std::vector<std::string>> request_segments(const HttpRequest& request) {
  std::vector<std::string> out;
  if (request.target.empty()) {
    for (std::string_view s : split_path(request.path)) out.emplace_back(s);
    return out;
  }
  std::string_view raw = request.target;
  raw = raw.substr(0, raw.find('?'));
  for (std::string_view s : split_path(raw)) {
    auto decoded = percent_decode(s, false);
    if (!decoded) return std::nullopt;
    out.push_back(std::move(*decoded));
  }
  return out;
}

bool is_parameter(const std::string& segment) {
  return segment.size() >= 2 && segment.front() == '{' && segment.back() == '}';
}

}  // namespace

// ---------------------------------------------------------------------------
// Requests and responses

const std::string& HttpRequest::header(std::string_view lower_name) const {
  auto it = headers.find(std::string(lower_name));
  return it == headers.end() ? kEmpty : it->second;
}

HttpResponse HttpResponse::json(int status, std::string body) {
  HttpResponse response;
  response.status = status;
  response.headers["content-type"] = "application/json";
  response.body = std::move(body);
  return response;
}

HttpResponse HttpResponse::text(int status, std::string body, std::string content_type) {
  HttpResponse response;
  response.status = status;
  response.headers["content-type"] = std::move(content_type);
  response.body = std::move(body);
  return response;
}

HttpResponse HttpResponse::error(int status, std::string_view message,
                                 const std::vector<std::string>& details) {
  std::string body = "{\"error\": ";
  append_json_string(message, body);
  body += ", \"details\": [";
  for (size_t i = 0; i < details.size(); ++i) {
    if (i > 0) body += ", ";
    append_json_string(details[i], body);
  }
  body += "]}";
  return json(status, std::move(body));
}

HttpResponse HttpResponse::from_status(const Status& status) {
  int code = 500;
  switch (status.code()) {
    case StatusCode::kInvalidArgument:
      code = 400;
      break;
    case StatusCode::kNotFound:
      code = 404;
      break;
    case StatusCode::kAlreadyExists:
    case StatusCode::kFailedPrecondition:
      code = 409;
      break;
    case StatusCode::kUnavailable:
      code = 503;
      break;
    default:
      break;
  }
  return error(code, status.message());
}

// ---------------------------------------------------------------------------
// Router

struct Router::Route {
  std::string method;  // websocket routes: "GET"
  std::string pattern;
  std::vector<std::string> segments;  // literal text, or "{name}"
  Handler handler;                    // set for HTTP routes
  WebSocketHandler websocket;         // set for WebSocket routes

  bool is_websocket() const { return static_cast<bool>(websocket); }

  bool match(const std::vector<std::string>& path,
             std::map<std::string, std::string>& params) const {
    if (path.size() != segments.size()) return false;
    for (size_t i = 0; i < path.size(); ++i) {
      if (is_parameter(segments[i])) {
        if (path[i].empty()) return false;
      } else if (segments[i] != path[i]) {
        return false;
      }
    }
    params.clear();
    for (size_t i = 0; i < path.size(); ++i) {
      if (is_parameter(segments[i])) {
        params[segments[i].substr(1, segments[i].size() - 2)] = path[i];
      }
    }
    return true;
  }

  // "/pipelines/openapi" beats "/pipelines/{name}": at the first segment
  // where the two differ in kind, the literal one wins.
  bool more_specific_than(const Route& other) const {
    for (size_t i = 0; i < segments.size() && i < other.segments.size(); ++i) {
      const bool mine = !is_parameter(segments[i]);
      const bool theirs = !is_parameter(other.segments[i]);
      if (mine != theirs) return mine;
    }
    return false;
  }
};

namespace {

// A malformed pattern is a bug in the code that builds the router.
std::vector<std::string> pattern_segments(const std::string& pattern) {
  if (pattern.empty() || pattern.front() != '/') {
    throw std::invalid_argument("route pattern must start with '/': " + pattern);
  }
  std::vector<std::string> segments;
  for (std::string_view s : split_path(pattern)) segments.emplace_back(s);
  return segments;
}

}  // namespace

void Router::add(std::string method, std::string pattern, Handler handler) {
  auto route = std::make_shared<Route>();
  route->segments = pattern_segments(pattern);
  route->method = std::move(method);
  route->pattern = std::move(pattern);
  route->handler = std::move(handler);
  routes_.push_back(std::move(route));
}

void Router::add_websocket(std::string pattern, WebSocketHandler handler) {
  auto route = std::make_shared<Route>();
  route->segments = pattern_segments(pattern);
  route->method = "GET";
  route->pattern = std::move(pattern);
  route->websocket = std::move(handler);
  routes_.push_back(std::move(route));
}

std::vector<std::string> Router::routes() const {
  std::vector<std::string> out;
  out.reserve(routes_.size());
  for (const auto& route : routes_) out.push_back(route->method + " " + route->pattern);
  return out;
}

HttpResponse Router::dispatch(HttpRequest& request) const {
  auto path = request_segments(request);
  if (!path) return HttpResponse::error(400, "the request path has a malformed percent-encoding");
  // A HEAD request is served by the GET route when there is no HEAD route.
  const bool head = request.method == "HEAD";
  const Route* best = nullptr;
  bool best_exact = false;
  std::map<std::string, std::string> params, best_params;
  std::vector<std::string> allowed;
  for (const auto& route : routes_) {
    if (!route->match(*path, params)) continue;
    allowed.push_back(route->method);
    if (route->method == "GET") allowed.push_back("HEAD");
    const bool exact = route->method == request.method;
    if (!exact && !(head && route->method == "GET")) continue;
    if (!best || (exact && !best_exact) ||
        (exact == best_exact && route->more_specific_than(*best))) {
      best = route.get();
      best_exact = exact;
      best_params = params;
    }
  }
  if (!best) {
    if (allowed.empty()) return HttpResponse::error(404, "no such path: " + request.path);
    std::sort(allowed.begin(), allowed.end());
    allowed.erase(std::unique(allowed.begin(), allowed.end()), allowed.end());
    std::string allow;
    for (const auto& m : allowed) allow += (allow.empty() ? "" : ", ") + m;
    HttpResponse response =
        HttpResponse::error(405, "method " + request.method + " is not allowed on " + request.path +
                                     " (allowed: " + allow + ")");
    response.headers["allow"] = allow;
    return response;
  }
  request.path_params = std::move(best_params);
  if (best->is_websocket()) {
    HttpResponse response =
        HttpResponse::error(426, request.path + " is a WebSocket; send Upgrade: websocket");
    response.headers["upgrade"] = "websocket";
    return response;
  }
  // Exceptions are bugs; this is the boundary where they become a 500.
  try {
    return best->handler(request);
  } catch (const std::exception& e) {
    log_error(kLog, request.method + " " + request.path + " (request " + request.request_id +
                        ") failed with an exception: " + e.what());
  } catch (...) {
    log_error(kLog, request.method + " " + request.path + " (request " + request.request_id +
                        ") failed with a non-standard exception");
  }
  return HttpResponse::error(500, "internal error (request " + request.request_id + ")");
}

const WebSocketHandler* Router::websocket(HttpRequest& request) const {
  auto path = request_segments(request);
  if (!path) return nullptr;
  const Route* best = nullptr;
  std::map<std::string, std::string> params, best_params;
  for (const auto& route : routes_) {
    if (!route->is_websocket() || !route->match(*path, params)) continue;
    if (!best || route->more_specific_than(*best)) {
      best = route.get();
      best_params = params;
    }
  }
  if (!best) return nullptr;
  request.path_params = std::move(best_params);
  return &best->websocket;
}

// ---------------------------------------------------------------------------
// HttpServer

class HttpServer::Impl {
 public:
  explicit Impl(HttpServerOptions options)
      : ioc_(std::max(1, options.threads)),
        options_(std::move(options)),
        handlers_(static_cast<size_t>(std::max(1, options_.threads))) {
    shared_ = std::make_shared<ServerShared>();
    shared_->handlers = &handlers_;
    shared_->max_body_size = options_.max_body_size;
    shared_->idle_timeout = options_.idle_timeout;
    shared_->header_timeout = options_.header_timeout;
    shared_->request_timeout = options_.request_timeout;
  }

  Status start() {
    std::lock_guard lock(state_mu_);
    if (state_ != State::kNew)
      return Status::failed_precondition("the HTTP server was already started");
    if (options_.listeners.empty()) return Status::invalid("the HTTP server has no listeners");
    state_ = State::kStopped;  // unless everything below succeeds
    for (const HttpListener& config : options_.listeners) {
      if (!config.router) return Status::invalid("an HTTP listener has no router");
      const std::string address = config.host + ":" + std::to_string(config.port);
      tcp::endpoint endpoint;
      error_code ec;
      const net::ip::address ip = net::ip::make_address(config.host, ec);
      if (!ec) {
        endpoint = tcp::endpoint(ip, config.port);
      } else {
        tcp::resolver resolver(ioc_);
        auto results = resolver.resolve(config.host, std::to_string(config.port), ec);
        if (ec || results.empty()) {
          listeners_.clear();
          return Status::invalid("cannot listen on " + address + ": cannot resolve host '" +
                                 config.host + "'");
        }
        endpoint = results.begin()->endpoint();
      }
      auto listener = std::make_unique<Listener>(ioc_, config);
      auto fail = [&](std::string_view what) {
        listeners_.clear();
        return Status::io_error("cannot listen on " + address + ": " + std::string(what) + ": " +
                                ec.message());
      };
      listener->acceptor.open(endpoint.protocol(), ec);
      if (ec) return fail("open");
      listener->acceptor.set_option(net::socket_base::reuse_address(true), ec);
      if (ec) return fail("SO_REUSEADDR");
      listener->acceptor.bind(endpoint, ec);
      if (ec) return fail("bind");
      listener->acceptor.listen(net::socket_base::max_listen_connections, ec);
      if (ec) return fail("listen");
      listener->port = listener->acceptor.local_endpoint(ec).port();
      listeners_.push_back(std::move(listener));
    }
    for (auto& listener : listeners_) {
      Listener* l = listener.get();
      net::dispatch(l->acceptor.get_executor(), [this, l] { accept(l); });
      log_info(kLog, "listening on " + l->config.host + ":" + std::to_string(l->port) +
                         (l->config.tls ? " (TLS)" : ""));
    }
    work_.emplace(ioc_.get_executor());
    for (int i = 0; i < std::max(1, options_.threads); ++i) {
      threads_.emplace_back([this] {
        // Named so that top -H, perf and bench/http_load.sh tell them from
        // the pipelines' threads (which handlers start: not on these).
        pthread_setname_np(pthread_self(), "df-http");
        lower_priority();
        run_io();
      });
    }
    state_ = State::kRunning;
    return Status::OK();
  }

  // Not under state_mu_ (stop() holds it while handlers finish, and a
  // handler may ask): listeners_ only changes in start(), before any thread
  // that could call this one starts serving.
  uint16_t port(size_t i) const { return i < listeners_.size() ? listeners_[i]->port : 0; }

  size_t stop(std::chrono::milliseconds grace) {
    std::lock_guard lock(state_mu_);
    if (state_ != State::kRunning) return cut_off_;
    state_ = State::kStopped;
    shared_->stopping.store(true);
    for (auto& listener : listeners_) {
      Listener* l = listener.get();
      net::post(l->acceptor.get_executor(), [l] {
        error_code ec;
        l->acceptor.close(ec);
        l->retry.cancel();
      });
    }
    for (auto& session : shared_->live_sessions(false)) session->shutdown(false);
    {
      std::unique_lock wait_lock(shared_->mu);
      shared_->changed.wait_for(
          wait_lock, grace, [&] { return shared_->in_flight == 0 && shared_->websockets == 0; });
      cut_off_ = shared_->in_flight;
    }
    for (auto& session : shared_->live_sessions(true)) session->shutdown(true);
    {
      // Closed sessions end once their pending operations complete; only a
      // handler that still runs keeps one alive.
      std::unique_lock wait_lock(shared_->mu);
      if (!shared_->changed.wait_for(wait_lock, kForcedCloseWait,
                                     [&] { return shared_->sessions.empty(); })) {
        log_warn(kLog, std::to_string(shared_->sessions.size()) +
                           " connections did not close in time; stopping the io threads");
        ioc_.stop();
      }
    }
    work_.reset();
    for (auto& thread : threads_) thread.join();
    threads_.clear();
    // A handler still running past the grace period is waited for (its
    // response is not sent).
    handlers_.join();
    if (cut_off_ > 0) {
      log_warn(kLog, "stopped; " + std::to_string(cut_off_) + " requests were cut off");
    } else {
      log_info(kLog, "stopped");
    }
    return cut_off_;
  }

 private:
  enum class State { kNew, kRunning, kStopped };

  struct Listener {
    Listener(net::io_context& ioc, HttpListener c)
        : config(std::move(c)), acceptor(net::make_strand(ioc)), retry(acceptor.get_executor()) {}
    HttpListener config;
    tcp::acceptor acceptor;
    net::steady_timer retry;  // after a failed accept (e.g. out of file descriptors)
    uint16_t port = 0;
    // Connections open now (ConnectionSlot); at most max_connections.
    std::shared_ptr<std::atomic<size_t>> open = std::make_shared<std::atomic<size_t>>(0);
  };

  // A connection over the listener's max_connections: a plain one is told
  // 503 (the response fits in the socket's send buffer), a TLS one is closed
  // (a response would need a handshake first). Like a lingering close, the
  // client's request is drained (bounded) so that closing does not reset
  // the connection before the client reads the 503.
  struct Refusal : std::enable_shared_from_this<Refusal> {
    explicit Refusal(tcp::socket s) : socket(std::move(s)), timer(socket.get_executor()) {}
    tcp::socket socket;
    net::steady_timer timer;
    std::array<char, 4096> scratch{};
    size_t drained = 0;

    void start(const std::string& response) {
      timer.expires_after(kLingerTime);
      timer.async_wait([self = shared_from_this()](error_code ec) {
        if (!ec) self->close();
      });
      net::async_write(socket, net::buffer(response),
                       [self = shared_from_this()](error_code ec, size_t) {
                         error_code ignored;
                         self->socket.shutdown(tcp::socket::shutdown_send, ignored);
                         if (ec) return self->close();
                         self->drain();
                       });
    }
    void drain() {
      socket.async_read_some(net::buffer(scratch),
                             [self = shared_from_this()](error_code ec, size_t n) {
                               self->drained += n;
                               if (ec || self->drained > kLingerBytes) return self->close();
                               self->drain();
                             });
    }
    void close() {
      error_code ignored;
      timer.cancel();
      socket.close(ignored);
    }
  };

  void refuse(Listener* l, tcp::socket socket) {
    // Built only when it is written: a flood of refusals stays cheap.
    if (log_enabled(LogLevel::kDebug)) {
      log_debug(kLog, "refusing a connection on port " + std::to_string(l->port) + ": " +
                          std::to_string(options_.max_connections) + " connections are open");
    }
    if (l->config.tls) {
      error_code ignored;
      socket.close(ignored);
      return;
    }
    static const std::string kBusy = [] {
      const std::string body =
          HttpResponse::error(503, "too many open connections; retry later").body;
      return "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
             "Connection: close\r\nRetry-After: 1\r\nContent-Length: " +
             std::to_string(body.size()) + "\r\n\r\n" + body;
    }();
    // The socket's executor is its own strand (see accept), shared by the timer.
    std::make_shared<Refusal>(std::move(socket))->start(kBusy);
  }

  void accept(Listener* l) {
    l->acceptor.async_accept(net::make_strand(ioc_), [this, l](error_code ec, tcp::socket socket) {
      if (ec == net::error::operation_aborted || !l->acceptor.is_open()) return;
      if (ec) {
        log_warn(kLog, "accept on port " + std::to_string(l->port) + " failed: " + ec.message());
        l->retry.expires_after(std::chrono::milliseconds(100));
        l->retry.async_wait([this, l](error_code wait_ec) {
          if (!wait_ec && l->acceptor.is_open()) accept(l);
        });
        return;
      }
      if (!shared_->stopping.load()) {
        if (l->open->fetch_add(1) >= options_.max_connections) {
          l->open->fetch_sub(1);
          refuse(l, std::move(socket));
        } else if (l->config.tls) {
          internal::serve_tls(shared_, l->config.router, std::move(socket),
                              l->config.tls->current(), ConnectionSlot(l->open));
        } else {
          internal::serve_plain(shared_, l->config.router, std::move(socket),
                                ConnectionSlot(l->open));
        }
      }
      accept(l);
    });
  }

  // On Linux a nice value is per thread: this io thread's only.
  void lower_priority() const {
    if (options_.io_nice <= 0) return;
    errno = 0;
    if (::nice(options_.io_nice) == -1 && errno != 0) {
      log_warn(kLog, std::string("cannot lower the priority of an HTTP io thread: ") +
                         std::strerror(errno));
    }
  }

  void run_io() {
    while (true) {
      try {
        ioc_.run();
        return;
      } catch (const std::exception& e) {
        log_error(kLog, std::string("an io thread caught an exception: ") + e.what());
      }
    }
  }

  net::io_context ioc_;  // first member: destroyed last, after everything using it
  HttpServerOptions options_;
  std::shared_ptr<ServerShared> shared_;
  std::mutex state_mu_;  // start/stop; stop holds it throughout
  State state_ = State::kNew;
  std::vector<std::unique_ptr<Listener>> listeners_;
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work_;
  std::vector<std::thread> threads_;
  // Runs the handlers at the process's own priority, so what they start (a
  // pipeline's threads) inherits that, not the io threads' lower one.
  // Joined by stop(); destroyed before ioc_.
  net::thread_pool handlers_;
  size_t cut_off_ = 0;
};

HttpServer::HttpServer(HttpServerOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}

HttpServer::~HttpServer() { stop(std::chrono::milliseconds(0)); }

Status HttpServer::start() { return impl_->start(); }

uint16_t HttpServer::port(size_t listener) const { return impl_->port(listener); }

size_t HttpServer::stop(std::chrono::milliseconds grace) { return impl_->stop(grace); }

}  // namespace df::server