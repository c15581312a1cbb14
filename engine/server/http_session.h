// Internal to the HTTP layer: the session templates, over the stream type
// (plain tcp_stream, or an ssl_stream over one). The one copy of the
// connection logic; only the session sources include it, each instantiating
// one stream type (http_connection.h says why).
//
// Connection model: one session per TCP connection, all its work on one
// strand. A session waits (idle_timeout) for a request's first bytes, reads
// the header (header_timeout; so a Content-Length over max_body_size is
// refused before any body is read), then the body (request_timeout), calls
// the router on the handler pool and, back on the strand, writes the
// response; keep-alive loops back to waiting for the next request. An
// upgrade to a WebSocket hands the stream to a WebSocketSession. A TLS
// session first runs the TLS handshake (header_timeout) and notes the
// verified client certificate.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>

#include "engine/core/log.h"
#include "engine/core/status.h"
#include "engine/server/http.h"
#include "engine/server/http_connection.h"
#include "engine/server/tls.h"

namespace df::server::internal {

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

inline constexpr char kRequestIdHeader[] = "X-Request-Id";
inline constexpr uint32_t kHeaderLimit = 16 * 1024;

inline std::string_view to_std(beast::string_view s) { return {s.data(), s.size()}; }

// Defined in http.cc, beside the router's parsing.
std::string to_lower(std::string_view s);
// The client's X-Request-Id when it is usable, else a new one.
std::string new_http_request_id(std::string_view from_client);
// Fills request.path and request.query from an origin-form target.
Status parse_target(std::string_view target, HttpRequest& request);

template <class Stream>
Stream make_stream(tcp::socket socket, ssl::context* context) {
  if constexpr (kIsTls<Stream>) {
    return Stream(beast::tcp_stream(std::move(socket)), *context);
  } else {
    return Stream(std::move(socket));
  }
}

inline std::string endpoint_text(const tcp::socket& socket) {
  error_code ec;
  const tcp::endpoint ep = socket.remote_endpoint(ec);
  if (ec) return "unknown";
  const std::string address = ep.address().to_string();
  return (ep.address().is_v6() ? "[" + address + "]" : address) + ":" + std::to_string(ep.port());
}

// Whether the header's blank line ("\r\n\r\n", all Beast accepts) is in the
// first `limit` bytes of `buffer`.
inline bool header_ends_within(const beast::flat_buffer& buffer, size_t limit) {
  const std::string_view bytes(static_cast<const char*>(buffer.data().data()),
                               std::min(buffer.size(), limit));
  return bytes.find("\r\n\r\n") != std::string_view::npos;
}

inline bool is_http_parse_error(const error_code& ec) {
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

// An upgraded connection, as its HttpSession hands it to a WebSocketSession.
template <class Stream>
struct WebSocketHandoff {
  std::shared_ptr<ServerShared> shared;
  Stream stream;
  http::request<http::string_body> upgrade;  // counted in ServerShared::in_flight
  std::string request_id;
  std::shared_ptr<WebSocketConnectionImpl> connection;
  std::shared_ptr<ssl::context> tls_context;  // over TLS: what `stream` uses
  ConnectionSlot slot;
};

// Serve an upgraded connection until it closes. Each defined in its own
// source, not instantiated where HttpSession calls it: the WebSocket
// sessions over TLS are about half of the TLS sessions' compile time, so
// they compile apart from the HTTP ones (http_tls.cc).
void serve_websocket(WebSocketHandoff<PlainStream> handoff);  // http_plain.cc
void serve_websocket(WebSocketHandoff<TlsStream> handoff);    // http_wss.cc

// One accepted WebSocket: handshake, a read loop that answers control
// frames and discards text (the streams are server to client), and a write
// loop fed by the handle. Everything runs on the connection's strand.
template <class Stream>
class WebSocketSession : public WebSocketWriter,
                         public std::enable_shared_from_this<WebSocketSession<Stream>> {
 public:
  explicit WebSocketSession(WebSocketHandoff<Stream> handoff)
      : shared_(std::move(handoff.shared)),
        tls_context_(std::move(handoff.tls_context)),
        slot_(std::move(handoff.slot)),
        ws_(std::move(handoff.stream)),
        executor_(ws_.get_executor()),
        upgrade_(std::move(handoff.upgrade)),
        request_id_(std::move(handoff.request_id)),
        connection_(std::move(handoff.connection)) {}

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

inline void WebSocketConnectionImpl::kick_locked() {
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
    serve_websocket(WebSocketHandoff<Stream>{.shared = shared_,
                                             .stream = std::move(stream_),
                                             .upgrade = parser_->release(),
                                             .request_id = request_id_,
                                             .connection = std::move(connection),
                                             .tls_context = std::move(tls_context_),
                                             .slot = std::move(slot_)});
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

}  // namespace df::server::internal
