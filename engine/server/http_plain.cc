// The sessions over plain TCP (HTTP and WebSocket): http_session.h's
// templates instantiated for PlainStream, in a source of their own
// (http_connection.h says why).
#include <memory>
#include <utility>

#include "engine/server/http_connection.h"
#include "engine/server/http_session.h"

namespace df::server::internal {

void serve_plain(std::shared_ptr<ServerShared> shared, std::shared_ptr<const Router> router,
                 tcp::socket socket, ConnectionSlot slot) {
  std::make_shared<HttpSession<PlainStream>>(std::move(shared), std::move(router),
                                             std::move(socket), nullptr, std::move(slot))
      ->start();
}

void serve_websocket(WebSocketHandoff<PlainStream> handoff) {
  std::make_shared<WebSocketSession<PlainStream>>(std::move(handoff))->start();
}

}  // namespace df::server::internal
