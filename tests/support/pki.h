// A throwaway public-key infrastructure for TLS tests: a CA and certificates
// it signs, made with the `openssl` CLI (Debian openssl) in a TempDir.
//
// Ownership: a Pki owns its directory (removed with it). Not thread-safe;
// one test uses one.
#pragma once

#include <cstdint>
#include <string>

#include "tests/support/temp_dir.h"

namespace df::test {

class Pki {
 public:
  // Makes ca.key and ca.crt (an EC P-256 CA, valid two days). A failing
  // openssl command fails the test.
  Pki();

  std::string path(const std::string& name) const { return dir_.file(name); }
  const TempDir& dir() const { return dir_; }

  // <name>.key and <name>.crt signed by the CA, for `subject` ("/CN=alice"),
  // with subjectAltName `san` ("DNS:a,IP:127.0.0.1") and extendedKeyUsage
  // `usage` ("serverAuth", "clientAuth"). Issuing a name again replaces it.
  void issue(const std::string& name, const std::string& subject, const std::string& san,
             const std::string& usage);
  // A server certificate for localhost and 127.0.0.1.
  void server_cert(const std::string& name);

  // The SHA-256 fingerprint line of a certificate file
  // ("sha256 Fingerprint=AB:...").
  std::string fingerprint(const std::string& cert_file) const;

 private:
  TempDir dir_;
};

// The fingerprint line (as Pki::fingerprint) of the certificate a TLS server
// on 127.0.0.1:`port` presents now; empty when the handshake fails.
std::string served_fingerprint(uint16_t port);

}  // namespace df::test
