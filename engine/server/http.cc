// The HTTP layer: request/response helpers, the router and the Beast server.
//
// Connection model: one session per TCP connection, all its work on one
// strand. A session waits (idle_timeout) for a request's first bytes, reads
// the header (header_timeout; so a Content-Length over max_body_size is
// refused before any body is read), then the body (request_timeout), calls
// the router on the handler pool and, back on the strand, writes the
// response; keep-alive loops back
// to waiting for the next request. An upgrade to a WebSocket hands the
// stream to a WebSocketSession. Sessions are templates over the stream type:
// a plain tcp_stream, or an ssl_stream over one (a TLS listener), which
// first runs the TLS handshake (header_timeout) and notes the verified
// client certificate. A listener over max_connections refuses at accept.
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
#include <type_traits>
#include <utility>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <unordered_map>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>

#include "engine/core/log.h"
#include "engine/server/tls.h"

namespace df::server {

namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using error_code = boost::system::error_code;
namespace ssl = net::ssl;
using PlainStream = beast::tcp_stream;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;
template <class Stream>
constexpr bool kIsTls = std::is_same_v<Stream, TlsStream>;

constexpr char kRequestIdHeader[] = "X-Request-Id";

constexpr std::string_view kLog = "http";
constexpr uint32_t kHeaderLimit = 16 * 1024;
// After a response that closes the connection, unread request bytes are
// drained (bounded) before the socket closes: closing a socket with unread
// data sends a reset, which can destroy the response before the client
// reads it (the "lingering close" of RFC 7230 §6.6).
constexpr std::chrono::milliseconds kLingerTime{1000};
constexpr size_t kLingerBytes = 1 << 20;
// How long stop() waits for sessions to wind down after closing them before
// it stops the io_context outright.
constexpr std::chrono::seconds kForcedCloseWait{5};

const std::string kEmpty;

std::string_view to_std(beast::string_view s) { return {s.data(), s.size()}; }

std::string to_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

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
      const int hi = hex_digit(in[i + 1]);
      const int lo = hex_digit(in[i + 2]);
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
// What the server and its sessions share.

namespace {

// A connection, as stop() sees it.
class Session {
 public:
  virtual ~Session() = default;
  // Posted to the session's strand. Graceful: close when idle, else after
  // the current response (a WebSocket sends a close frame). Forced: close
  // the socket now.
  virtual void shutdown(bool force) = 0;
};

// Shared by the server and its sessions (held by shared_ptr, so a session
// never outlives what it reports to). Counters are guarded by `mu`;
// `changed` is notified whenever one of them drops.
struct ServerShared {
  size_t max_body_size = 0;
  std::chrono::milliseconds idle_timeout{0};
  std::chrono::milliseconds header_timeout{0};
  std::chrono::milliseconds request_timeout{0};
  // Where HTTP handlers run (HttpServer::Impl owns it and joins it after
  // the io threads).
  net::thread_pool* handlers = nullptr;
  std::atomic<bool> stopping{false};
  // stop() is closing every connection: a response not yet started is not
  // sent (its request counts as cut off).
  std::atomic<bool> forced{false};

  std::mutex mu;
  std::condition_variable changed;
  size_t in_flight = 0;   // requests between header and written response
  size_t websockets = 0;  // WebSocket sessions not yet finished
  uint64_t next_session_id = 0;
  std::unordered_map<uint64_t, std::weak_ptr<Session>> sessions;

  // False once stop() closed everything; the caller then drops its socket.
  bool add_session(const std::shared_ptr<Session>& session, uint64_t& id) {
    std::lock_guard lock(mu);
    if (forced.load()) return false;
    id = ++next_session_id;
    sessions[id] = session;
    return true;
  }
  void remove_session(uint64_t id) {
    std::lock_guard lock(mu);
    sessions.erase(id);
    changed.notify_all();
  }
  void request_started() {
    std::lock_guard lock(mu);
    ++in_flight;
  }
  void request_finished() {
    std::lock_guard lock(mu);
    --in_flight;
    changed.notify_all();
  }
  void websocket_opened() {
    std::lock_guard lock(mu);
    ++websockets;
  }
  void websocket_closed() {
    std::lock_guard lock(mu);
    --websockets;
    changed.notify_all();
  }
  // The sessions alive now; `final` also refuses sessions from now on.
  std::vector<std::shared_ptr<Session>> live_sessions(bool final) {
    std::lock_guard lock(mu);
    if (final) forced.store(true);
    std::vector<std::shared_ptr<Session>> out;
    for (auto& entry : sessions) {
      if (auto session = entry.second.lock()) out.push_back(std::move(session));
    }
    return out;
  }
};

// One of a listener's max_connections, held by whichever session owns the
// connection (moved along when an HTTP session becomes a WebSocket).
class ConnectionSlot {
 public:
  explicit ConnectionSlot(std::shared_ptr<std::atomic<size_t>> open) : open_(std::move(open)) {}
  ConnectionSlot(ConnectionSlot&&) noexcept = default;
  ConnectionSlot& operator=(ConnectionSlot&&) = delete;
  ~ConnectionSlot() {
    if (open_) open_->fetch_sub(1);
  }

 private:
  std::shared_ptr<std::atomic<size_t>> open_;
};

// The stream a session starts with: TLS ones wrap the socket with `context`.
template <class Stream>
Stream make_stream(tcp::socket socket, ssl::context* context) {
  if constexpr (kIsTls<Stream>) {
    return Stream(beast::tcp_stream(std::move(socket)), *context);
  } else {
    return Stream(std::move(socket));
  }
}

std::string endpoint_text(const tcp::socket& socket) {
  error_code ec;
  const tcp::endpoint ep = socket.remote_endpoint(ec);
  if (ec) return "unknown";
  const std::string address = ep.address().to_string();
  return (ep.address().is_v6() ? "[" + address + "]" : address) + ":" + std::to_string(ep.port());
}

// Whether the header's blank line ("\r\n\r\n", all Beast accepts) is in the
// first `limit` bytes of `buffer`.
bool header_ends_within(const beast::flat_buffer& buffer, size_t limit) {
  const std::string_view bytes(static_cast<const char*>(buffer.data().data()),
                               std::min(buffer.size(), limit));
  return bytes.find("\r\n\r\n") != std::string_view::npos;
}

bool is_http_parse_error(const error_code& ec) {
  return ec.category() == http::make_error_code(http::error::bad_target).category() &&
         ec != http::error::end_of_stream && ec != http::error::partial_message &&
         ec != http::error::need_more && ec != http::error::need_buffer;
}

// ---------------------------------------------------------------------------
// WebSockets

// What the handle needs of a WebSocket session, whatever its stream.
class WebSocketWriter : public Session {
 public:
  // Posted by the handle when messages or a close are queued.
  virtual void post_write_loop() = 0;
};

// The handle a WebSocket handler keeps. Its state is guarded by `mu_`
// because send()/close() come from any thread; the session (on its strand)
// takes queued messages through next(). The handle holds the session only
// weakly: a handle kept after the server stopped just drops sends.
class WebSocketConnectionImpl final : public WebSocketConnection {
 public:
  void send(std::string text) override {
    std::lock_guard lock(mu_);
    if (!open_) return;
    outbox_.push_back(std::move(text));
    kick_locked();
  }

  void close() override { close_with(websocket::close_code::normal); }

  bool open() const override {
    std::lock_guard lock(mu_);
    return open_;
  }

  void on_close(std::function<void()> callback) override {
    std::unique_lock lock(mu_);
    if (finished_) {
      lock.unlock();
      run_callback(callback);
      return;
    }
    on_close_ = std::move(callback);
  }

  void set_protocol(std::string protocol) override {
    std::lock_guard lock(mu_);
    protocol_ = std::move(protocol);
  }

  std::string protocol() const override {
    std::lock_guard lock(mu_);
    return protocol_;
  }

  // Queued messages are still written, then the close frame.
  void close_with(websocket::close_code code) {
    std::lock_guard lock(mu_);
    if (!open_) return;
    open_ = false;
    close_code_ = code;
    close_requested_ = true;
    kick_locked();
  }

  // The handshake is done: from now on `session` writes what is queued.
  void attach(const std::shared_ptr<WebSocketWriter>& session) {
    std::lock_guard lock(mu_);
    session_ = session;
    kick_locked();
  }

  struct Next {
    enum class Kind { kNone, kMessage, kClose } kind = Kind::kNone;
    std::string text;
    websocket::close_code code = websocket::close_code::normal;
  };
  // What the session writes next; kNone ends its write loop.
  Next next() {
    std::lock_guard lock(mu_);
    Next next;
    if (finished_) {
      pumping_ = false;
    } else if (!outbox_.empty()) {
      next.kind = Next::Kind::kMessage;
      next.text = std::move(outbox_.front());
      outbox_.pop_front();
    } else if (close_requested_ && !close_sent_) {
      close_sent_ = true;
      next.kind = Next::Kind::kClose;
      next.code = close_code_;
    } else {
      pumping_ = false;
    }
    return next;
  }

  // The connection is gone (or was refused): drop sends, run on_close once.
  void finish() {
    std::function<void()> callback;
    {
      std::lock_guard lock(mu_);
      if (finished_) return;
      finished_ = true;
      open_ = false;
      outbox_.clear();
      session_.reset();
      callback = std::move(on_close_);
      on_close_ = nullptr;  // it may hold this handle
    }
    if (callback) run_callback(callback);
  }

 private:
  static void run_callback(const std::function<void()>& callback) {
    try {
      callback();
    } catch (const std::exception& e) {
      log_error(kLog, std::string("a WebSocket on_close callback threw: ") + e.what());
    } catch (...) {
      log_error(kLog, "a WebSocket on_close callback threw a non-standard exception");
    }
  }

  void kick_locked();  // starts the session's write loop unless it runs

  mutable std::mutex mu_;
  bool open_ = true;       // sends are accepted
  bool finished_ = false;  // the connection is gone; on_close ran
  bool close_requested_ = false;
  bool close_sent_ = false;
  bool pumping_ = false;  // the session's write loop is posted or writing
  websocket::close_code close_code_ = websocket::close_code::normal;
  std::deque<std::string> outbox_;
  std::function<void()> on_close_;
  std::weak_ptr<WebSocketWriter> session_;
  std::string protocol_;  // the subprotocol the handshake answers with
};

// One accepted WebSocket: handshake, a read loop that answers control
// frames and discards text (the streams are server to client), and a write
// loop fed by the handle. Everything runs on the connection's strand.
template <class Stream>
class WebSocketSession : public WebSocketWriter,
                         public std::enable_shared_from_this<WebSocketSession<Stream>> {
 public:
  WebSocketSession(std::shared_ptr<ServerShared> shared, Stream stream,
                   http::request<http::string_body> upgrade, std::string request_id,
                   std::shared_ptr<WebSocketConnectionImpl> connection,
                   std::shared_ptr<ssl::context> tls_context, ConnectionSlot slot)
      : shared_(std::move(shared)),
        tls_context_(std::move(tls_context)),
        slot_(std::move(slot)),
        ws_(std::move(stream)),
        executor_(ws_.get_executor()),
        upgrade_(std::move(upgrade)),
        request_id_(std::move(request_id)),
        connection_(std::move(connection)) {}

  ~WebSocketSession() override {
    connection_->finish();
    if (request_open_) shared_->request_finished();
    if (counted_) shared_->websocket_closed();
    if (id_ != 0) shared_->remove_session(id_);
  }

  // Takes over the upgrade request counted in ServerShared::in_flight.
  void start() {
    request_open_ = true;
    counted_ = true;
    shared_->websocket_opened();
    if (!shared_->add_session(this->shared_from_this(), id_)) return;
    net::dispatch(executor_, [self = this->shared_from_this()] { self->accept(); });
  }

  void shutdown(bool force) override {
    net::post(executor_, [self = this->shared_from_this(), force] {
      if (force) {
        self->finish();
      } else {
        self->connection_->close_with(websocket::close_code::going_away);
      }
    });
  }

  void post_write_loop() override {
    net::post(executor_, [self = this->shared_from_this()] { self->write_next(); });
  }

 private:
  void accept() {
    websocket::stream_base::timeout timeouts{};
    timeouts.handshake_timeout = std::chrono::seconds(10);
    timeouts.idle_timeout = shared_->idle_timeout;
    timeouts.keep_alive_pings = true;
    beast::get_lowest_layer(ws_).expires_never();  // the websocket's own timeouts apply
    ws_.set_option(timeouts);
    ws_.set_option(websocket::stream_base::decorator(
        [id = request_id_, protocol = connection_->protocol()](websocket::response_type& response) {
          response.set(http::field::server, "dataflow");
          response.set(kRequestIdHeader, id);
          if (!protocol.empty()) response.set(http::field::sec_websocket_protocol, protocol);
        }));
    ws_.read_message_max(shared_->max_body_size);
    ws_.async_accept(upgrade_,
                     [self = this->shared_from_this()](error_code ec) { self->on_accept(ec); });
  }

  void on_accept(error_code ec) {
    request_open_ = false;
    shared_->request_finished();
    if (ec) {
      log_debug(kLog, "WebSocket handshake failed (request " + request_id_ + "): " + ec.message());
      return finish();
    }
    if (finished_) return;
    connection_->attach(this->shared_from_this());
    read();
  }

  void read() {
    ws_.async_read(read_buffer_, [self = this->shared_from_this()](error_code ec, size_t) {
      if (ec) return self->finish();
      self->read_buffer_.consume(self->read_buffer_.size());
      self->read();
    });
  }

  void write_next() {
    if (finished_) return;
    WebSocketConnectionImpl::Next next = connection_->next();
    switch (next.kind) {
      case WebSocketConnectionImpl::Next::Kind::kNone:
        return;
      case WebSocketConnectionImpl::Next::Kind::kMessage:
        writing_ = std::move(next.text);
        ws_.text(true);
        ws_.async_write(net::buffer(writing_),
                        [self = this->shared_from_this()](error_code ec, size_t) {
                          if (ec) return self->finish();
                          self->write_next();
                        });
        return;
      case WebSocketConnectionImpl::Next::Kind::kClose:
        ws_.async_close(next.code,
                        [self = this->shared_from_this()](error_code) { self->finish(); });
        return;
    }
  }

  void finish() {
    if (finished_) return;
    finished_ = true;
    error_code ec;
    beast::get_lowest_layer(ws_).socket().shutdown(tcp::socket::shutdown_both, ec);
    beast::get_lowest_layer(ws_).close();
    connection_->finish();
    if (counted_) {
      counted_ = false;
      shared_->websocket_closed();
    }
  }

  std::shared_ptr<ServerShared> shared_;
  std::shared_ptr<ssl::context> tls_context_;  // outlives ws_, which uses it
  ConnectionSlot slot_;
  websocket::stream<Stream> ws_;
  net::any_io_executor executor_;  // the connection's strand
  http::request<http::string_body> upgrade_;
  std::string request_id_;
  std::shared_ptr<WebSocketConnectionImpl> connection_;
  beast::flat_buffer read_buffer_;
  std::string writing_;  // the message being written
  uint64_t id_ = 0;
  bool request_open_ = false;  // the upgrade request, until the handshake ends
  bool counted_ = false;       // in ServerShared::websockets
  bool finished_ = false;
};

void WebSocketConnectionImpl::kick_locked() {
  if (pumping_ || finished_) return;
  auto session = session_.lock();
  if (!session) return;
  pumping_ = true;
  session->post_write_loop();
}

// ---------------------------------------------------------------------------
// HttpSession: one keep-alive HTTP connection.

template <class Stream>
class HttpSession : public Session, public std::enable_shared_from_this<HttpSession<Stream>> {
 public:
  // `tls_context` is set exactly when Stream is TlsStream.
  HttpSession(std::shared_ptr<ServerShared> shared, std::shared_ptr<const Router> router,
              tcp::socket socket, std::shared_ptr<ssl::context> tls_context, ConnectionSlot slot)
      : shared_(std::move(shared)),
        router_(std::move(router)),
        tls_context_(std::move(tls_context)),
        slot_(std::move(slot)),
        stream_(make_stream<Stream>(std::move(socket), tls_context_.get())),
        executor_(stream_.get_executor()) {
    remote_ = endpoint_text(lowest().socket());
  }

  ~HttpSession() override {
    if (request_open_) shared_->request_finished();
    if (id_ != 0) shared_->remove_session(id_);
  }

  void start() {
    if (!shared_->add_session(this->shared_from_this(), id_)) return;  // closed with the socket
    net::dispatch(executor_, [self = this->shared_from_this()] {
      if constexpr (kIsTls<Stream>) {
        self->handshake();
      } else {
        self->read_header();
      }
    });
  }

  void shutdown(bool force) override {
    net::post(executor_, [self = this->shared_from_this(), force] {
      self->close_after_response_ = true;
      if (force || self->phase_ != Phase::kRequest) self->close();
    });
  }

 private:
  enum class Phase { kIdle, kRequest, kLingering, kClosed, kHandedOff };

  beast::tcp_stream& lowest() { return beast::get_lowest_layer(stream_); }

  void handshake() {
    lowest().expires_after(shared_->header_timeout);
    stream_.async_handshake(
        ssl::stream_base::server, [self = this->shared_from_this()](error_code ec) {
          if (ec) {
            if (log_enabled(LogLevel::kDebug)) {
              log_debug(kLog, "TLS handshake with " + self->remote_ + " failed: " + ec.message());
            }
            return self->close();
          }
          if constexpr (kIsTls<Stream>) {
            self->peer_ = verified_peer(self->stream_.native_handle());
          }
          self->read_header();
        });
  }

  // Waits up to idle_timeout for a request's first bytes; its header then
  // has header_timeout to arrive in full.
  void read_header() {
    if (phase_ == Phase::kClosed) return;
    if (shared_->stopping.load() || close_after_response_) return close();
    phase_ = Phase::kIdle;
    if (buffer_.size() > 0) return read_header_rest();
    lowest().expires_after(shared_->idle_timeout);
    stream_.async_read_some(buffer_.prepare(kHeaderLimit),
                            [self = this->shared_from_this()](error_code ec, size_t n) {
                              self->buffer_.commit(n);
                              if (ec) return self->close();
                              self->read_header_rest();
                            });
  }

  void read_header_rest() {
    if (phase_ == Phase::kClosed) return;
    if (shared_->stopping.load() || close_after_response_) return close();
    parser_.emplace();
    // A header that cannot end within the limit is refused before Beast
    // parses (and copies) its fields, so a flood of them stays cheap.
    if (buffer_.size() >= kHeaderLimit && !header_ends_within(buffer_, kHeaderLimit)) {
      begin_request();
      return respond_failure(http::error::header_limit);
    }
    parser_->header_limit(kHeaderLimit);
    parser_->body_limit(shared_->max_body_size);
    lowest().expires_after(shared_->header_timeout);
    http::async_read_header(
        stream_, buffer_, *parser_,
        [self = this->shared_from_this()](error_code ec, size_t) { self->on_header(ec); });
  }

  void begin_request() {
    phase_ = Phase::kRequest;
    request_open_ = true;
    shared_->request_started();
    request_id_ = new_http_request_id(to_std(parser_->get()[kRequestIdHeader]));
  }

  void end_request() {
    if (!request_open_) return;
    request_open_ = false;
    shared_->request_finished();
  }

  void on_header(error_code ec) {
    if (ec) {
      if (ec == http::error::body_limit || ec == http::error::header_limit ||
          is_http_parse_error(ec)) {
        begin_request();
        return respond_failure(ec);
      }
      return close();
    }
    begin_request();
    if (shared_->stopping.load()) {
      close_after_response_ = true;
      return respond(HttpResponse::error(503, "the server is shutting down"), false, false);
    }
    const auto& header = parser_->get();
    if (beast::iequals(header[http::field::expect], "100-continue") && !parser_->is_done()) {
      continue_.version(11);
      continue_.result(http::status::continue_);
      lowest().expires_after(shared_->request_timeout);
      return http::async_write(stream_, continue_,
                               [self = this->shared_from_this()](error_code ec2, size_t) {
                                 if (ec2) return self->close();
                                 self->read_body();
                               });
    }
    read_body();
  }

  void read_body() {
    lowest().expires_after(shared_->request_timeout);
    http::async_read(
        stream_, buffer_, *parser_,
        [self = this->shared_from_this()](error_code ec, size_t) { self->on_body(ec); });
  }

  // A request the parser refused: 413, 431 or 400, and the connection closes
  // (the rest of its bytes cannot be trusted to frame a next request).
  void respond_failure(error_code ec) {
    close_after_response_ = true;
    if (ec == http::error::body_limit) {
      return respond(
          HttpResponse::error(413, "the request body is larger than the limit of " +
                                       std::to_string(shared_->max_body_size) + " bytes"),
          false, false);
    }
    if (ec == http::error::header_limit) {
      return respond(HttpResponse::error(431, "the request header is too large"), false, false);
    }
    respond(HttpResponse::error(400, "malformed HTTP request: " + ec.message()), false, false);
  }

  void on_body(error_code ec) {
    if (ec) {
      if (ec == http::error::body_limit || is_http_parse_error(ec)) return respond_failure(ec);
      return close();
    }
    lowest().expires_never();
    auto& message = parser_->get();
    HttpRequest request;
    request.method = std::string(message.method_string());
    request.target = std::string(message.target());
    for (const auto& field : message) {
      std::string name = to_lower(to_std(field.name_string()));
      auto [it, inserted] = request.headers.emplace(name, std::string(field.value()));
      if (!inserted) it->second += ", " + std::string(field.value());
    }
    request.request_id = request_id_;
    request.remote = remote_;
    request.client_subject = peer_.subject;
    request.client_sans = peer_.sans;
    const bool keep_alive = message.keep_alive();
    const bool head = request.method == "HEAD";
    if (Status parsed = parse_target(request.target, request); !parsed.ok()) {
      close_after_response_ = true;
      return respond(HttpResponse::error(400, parsed.message()), head, false);
    }
    if (websocket::is_upgrade(message)) {
      if (const WebSocketHandler* handler = router_->websocket(request)) {
        return upgrade(*handler, request);
      }
    }
    request.body = std::move(message.body());
    // The handler runs on the handler pool; its response comes back to the
    // strand through `back`, which counts as io_context work meanwhile (the
    // io threads wait for it).
    net::post(*shared_->handlers,
              [self = this->shared_from_this(), request = std::move(request), head, keep_alive,
               back = net::prefer(executor_, net::execution::outstanding_work.tracked)]() mutable {
                HttpResponse response;
                {
                  // Every line the handler logs carries the request's id.
                  LogContext log_context({.request_id = request.request_id});
                  response = self->router_->dispatch(request);
                }
                net::post(back, [self, response = std::move(response), head, keep_alive]() mutable {
                  self->respond(std::move(response), head, keep_alive);
                });
              });
  }

  void upgrade(const WebSocketHandler& handler, HttpRequest& request) {
    auto connection = std::make_shared<WebSocketConnectionImpl>();
    std::optional<HttpResponse> refusal;
    try {
      refusal = handler(request, connection);
    } catch (const std::exception& e) {
      log_error(kLog, "WebSocket " + request.path + " (request " + request_id_ +
                          ") failed with an exception: " + e.what());
      refusal = HttpResponse::error(500, "internal error (request " + request_id_ + ")");
    } catch (...) {
      log_error(kLog, "WebSocket " + request.path + " (request " + request_id_ +
                          ") failed with a non-standard exception");
      refusal = HttpResponse::error(500, "internal error (request " + request_id_ + ")");
    }
    if (refusal) {
      connection->finish();
      return respond(std::move(*refusal), false, parser_->get().keep_alive());
    }
    // The WebSocket session takes over the socket and the request count.
    phase_ = Phase::kHandedOff;
    request_open_ = false;
    std::make_shared<WebSocketSession<Stream>>(shared_, std::move(stream_), parser_->release(),
                                               request_id_, std::move(connection),
                                               std::move(tls_context_), std::move(slot_))
        ->start();
  }

  void respond(HttpResponse response, bool head, bool keep_alive) {
    if (phase_ == Phase::kClosed) return end_request();
    if (shared_->forced.load()) return close();
    response_ = {};
    response_.version(11);
    int status = response.status;
    if (status < 100 || status > 599) {
      log_error(kLog, "a handler returned HTTP status " + std::to_string(status) + " (request " +
                          request_id_ + ")");
      response = HttpResponse::error(500, "internal error (request " + request_id_ + ")");
      status = 500;
    }
    response_.result(static_cast<unsigned>(status));
    const bool no_body = status < 200 || status == 204 || status == 304;
    for (auto& [name, value] : response.headers) {
      const http::field field = http::string_to_field(name);
      if (field == http::field::content_length) continue;  // ours to set
      if (field != http::field::unknown) {
        response_.set(field, value);
      } else {
        response_.set(name, value);
      }
    }
    if (!no_body && response_.find(http::field::content_type) == response_.end()) {
      response_.set(http::field::content_type, "application/json");
    }
    response_.set(http::field::server, "dataflow");
    response_.set(kRequestIdHeader, request_id_);
    if (no_body) {
      response_.body().clear();
    } else {
      response_.content_length(response.body.size());
      if (!head) response_.body() = std::move(response.body);
    }
    keep_alive_ = keep_alive && !close_after_response_ && !shared_->stopping.load();
    response_.keep_alive(keep_alive_);
    lowest().expires_after(shared_->idle_timeout);
    http::async_write(stream_, response_, [self = this->shared_from_this()](error_code ec, size_t) {
      self->on_write(ec);
    });
  }

  void on_write(error_code ec) {
    end_request();
    if (ec) return close();
    if (!keep_alive_) return linger();
    read_header();
  }

  void linger() {
    if (phase_ == Phase::kClosed) return;
    phase_ = Phase::kLingering;
    lowest().expires_after(kLingerTime);
    if constexpr (kIsTls<Stream>) {
      // close_notify, then wait (bounded) for the client's.
      stream_.async_shutdown([self = this->shared_from_this()](error_code) { self->close(); });
      return;
    }
    error_code ec;
    lowest().socket().shutdown(tcp::socket::shutdown_send, ec);
    if (ec) return close();
    drain();
  }

  void drain() {
    buffer_.consume(buffer_.size());
    stream_.async_read_some(buffer_.prepare(64 * 1024),
                            [self = this->shared_from_this()](error_code ec, size_t n) {
                              self->lingered_ += n;
                              if (ec || self->lingered_ > kLingerBytes) return self->close();
                              self->drain();
                            });
  }

  void close() {
    if (phase_ == Phase::kClosed || phase_ == Phase::kHandedOff) return;
    phase_ = Phase::kClosed;
    error_code ec;
    lowest().socket().shutdown(tcp::socket::shutdown_both, ec);
    lowest().close();
    end_request();
  }

  std::shared_ptr<ServerShared> shared_;
  std::shared_ptr<const Router> router_;
  std::shared_ptr<ssl::context> tls_context_;  // outlives stream_, which uses it
  ConnectionSlot slot_;
  Stream stream_;
  net::any_io_executor executor_;  // the connection's strand (outlives a hand-off of stream_)
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::response<http::string_body> response_;
  http::response<http::empty_body> continue_;
  std::string remote_;
  std::string request_id_;
  uint64_t id_ = 0;
  Phase phase_ = Phase::kIdle;
  bool request_open_ = false;          // counted in ServerShared::in_flight
  bool keep_alive_ = false;            // of the response being written
  bool close_after_response_ = false;  // shutting down, or the request was unparseable
  size_t lingered_ = 0;
  TlsPeer peer_;  // the verified client certificate, over TLS
};

}  // namespace

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
          std::make_shared<HttpSession<TlsStream>>(shared_, l->config.router, std::move(socket),
                                                   l->config.tls->current(),
                                                   ConnectionSlot(l->open))
              ->start();
        } else {
          std::make_shared<HttpSession<PlainStream>>(shared_, l->config.router, std::move(socket),
                                                     nullptr, ConnectionSlot(l->open))
              ->start();
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
