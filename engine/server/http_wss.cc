// The WebSocket sessions over TLS (WSS): http_session.h's WebSocketSession
// instantiated for TlsStream, in a source of their own, apart from the HTTP
// sessions over TLS (http_tls.cc): the two are the slowest sources of the
// build, about equally (http_connection.h says why they are apart).
#include <memory>
#include <utility>

#include "engine/server/http_session.h"

namespace df::server::internal {

void serve_websocket(WebSocketHandoff<TlsStream> handoff) {
  std::make_shared<WebSocketSession<TlsStream>>(std::move(handoff))->start();
}

}  // namespace df::server::internal
