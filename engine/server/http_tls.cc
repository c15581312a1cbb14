// The HTTP sessions over TLS (HTTPS): http_session.h's HttpSession
// instantiated for TlsStream, in a source of their own; an upgrade to a
// WebSocket goes on in http_wss.cc (http_connection.h says why).
#include <memory>
#include <utility>

#include "engine/server/http_connection.h"
#include "engine/server/http_session.h"

namespace df::server::internal {

void serve_tls(std::shared_ptr<ServerShared> shared, std::shared_ptr<const Router> router,
               tcp::socket socket, std::shared_ptr<ssl::context> tls_context, ConnectionSlot slot) {
  std::make_shared<HttpSession<TlsStream>>(std::move(shared), std::move(router), std::move(socket),
                                           std::move(tls_context), std::move(slot))
      ->start();
}

}  // namespace df::server::internal
