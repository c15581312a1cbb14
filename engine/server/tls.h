// TlsContext: the TLS settings of one HTTPS listener (certificate chain,
// private key, the clients' CA and whether a client certificate is
// required), as an OpenSSL context that can be replaced while the server
// runs (SIGHUP re-reads the files).
//
// The context admits TLS 1.2 and 1.3 only, with forward-secret AEAD cipher
// suites. Each new connection takes the current context; connections already
// open keep the one they started with (held by shared_ptr).
//
// Threading: current() and reload() may be called from any thread.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "engine/core/status.h"

namespace boost::asio::ssl {
class context;
}  // namespace boost::asio::ssl

typedef struct ssl_st SSL;

namespace df::server {

struct TlsOptions {
  std::string cert_file{};     // PEM certificate chain (the server's first)
  std::string key_file{};      // PEM private key of the first certificate
  std::string ca_file{};       // PEM CA certificates clients' certificates are checked against
  bool verify_client = false;  // with ca_file: a client without a valid certificate is refused
};

class TlsContext {
 public:
  // Loads the files; fails with one sentence naming the file and the reason.
  static Result<std::shared_ptr<TlsContext>> create(TlsOptions options);

  // Re-reads the files. When they are unreadable or do not match, the
  // current context stays in use and the error says why.
  Status reload();

  // The context new connections use.
  std::shared_ptr<boost::asio::ssl::context> current() const;

  const TlsOptions& options() const { return options_; }

 private:
  explicit TlsContext(TlsOptions options) : options_(std::move(options)) {}

  const TlsOptions options_;
  mutable std::mutex mu_;
  std::shared_ptr<boost::asio::ssl::context> context_;  // guarded by mu_
};

// The peer certificate of an established connection, when it was verified:
// its subject DN (RFC 2253) and its DNS, URI and email alternative names.
struct TlsPeer {
  std::string subject;
  std::vector<std::string> sans;
};
TlsPeer verified_peer(SSL* ssl);

}  // namespace df::server
