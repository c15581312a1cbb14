// Internal to the HTTP layer (http.cc and the session sources): what
// HttpServer and its connections share, and how the server hands an
// accepted connection to a session. Kept free of Beast so that http.cc
// (router, listeners, shutdown) compiles without the session templates.
//
// The sessions (http_session.h) are templates over the stream type,
// instantiated in sources of their own: plain TCP (HTTP and WebSocket) in
// http_plain.cc; over TLS, HTTP in http_tls.cc and WebSocket in
// http_wss.cc. They are the slowest sources of the build (Beast's composed
// operations, about twice as heavy over TLS), so they are split into three
// of about equal compile time that compile in parallel, beside http.cc,
// and an edit to one rebuilds only it.
//
// Threading: ServerShared is shared by the server and every session, its
// counters guarded by its mutex; a session's work runs on its connection's
// strand, and Session::shutdown() may be called from any thread (it posts).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/thread_pool.hpp>

#include "engine/server/http.h"
#include "engine/server/tls.h"

namespace df::server::internal {

inline constexpr std::string_view kLog = "http";
// After a response that closes the connection, unread request bytes are
// drained (bounded) before the socket closes: closing a socket with unread
// data sends a reset, which can destroy the response before the client
// reads it (the "lingering close" of RFC 7230 §6.6).
inline constexpr std::chrono::milliseconds kLingerTime{1000};
inline constexpr size_t kLingerBytes = 1 << 20;

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
  boost::asio::thread_pool* handlers = nullptr;
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

// Serve one accepted connection until it closes; `slot` travels with it.
// Over TLS, `tls_context` (the listener's current one) wraps the socket and
// is held as long as the connection is open.
void serve_plain(std::shared_ptr<ServerShared> shared, std::shared_ptr<const Router> router,
                 boost::asio::ip::tcp::socket socket, ConnectionSlot slot);  // http_plain.cc
void serve_tls(std::shared_ptr<ServerShared> shared, std::shared_ptr<const Router> router,
               boost::asio::ip::tcp::socket socket,
               std::shared_ptr<boost::asio::ssl::context> tls_context,
               ConnectionSlot slot);  // http_tls.cc

}  // namespace df::server::internal
