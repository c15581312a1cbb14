// OpenID Connect for `security.authentication.oauth2`: the provider's
// signing keys (its JWKS), found through discovery
// (<issuer>/.well-known/openid-configuration -> jwks_uri), fetched over
// HTTPS and cached. A token whose `kid` is not in the cache makes one
// fetch again (the provider rotated its keys), at most once per
// `jwks_refresh_interval` however many such tokens arrive. RSA (RS256) and
// P-256 (ES256) keys are kept; others are skipped.
//
// Also the small HTTPS GET (libcurl) the JWKS fetch and the Vault secrets
// provider (config/secrets.h) share.
//
// Threading: an OidcKeys is shared by every server thread; key() and
// fetches() lock an internal mutex (a fetch holds it, so concurrent
// lookups of an unknown kid make one fetch, not many).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "engine/core/status.h"
#include "engine/core/time.h"
#include "engine/server/server_config.h"

typedef struct evp_pkey_st EVP_PKEY;

namespace df::server {

// ---- HTTPS GET

struct HttpsGet {
  std::string url;                   // https:// only
  std::vector<std::string> headers;  // "Name: value"
  std::string ca_file;               // PEM CA bundle; empty: the system's
  Millis timeout{10000};             // the whole request
  size_t max_body = 1 << 20;         // a longer body is an error
};
struct HttpsResponse {
  int status = 0;
  std::string body;
};
// The response of any status; an error when the URL is not https, the
// connection or TLS verification fails, or the body is too long. Errors
// name the URL without its query.
Result<HttpsResponse> https_get(const HttpsGet& request);

// ---- JWKS

// A public key of a JWKS (RFC 7517) as OpenSSL holds it.
using PublicKey = std::shared_ptr<EVP_PKEY>;
// The RSA and P-256 EC keys of a JWKS document by `kid` (keys without kid
// are named ""); `use: enc` keys and other types are skipped.
Result<std::map<std::string, PublicKey>> parse_jwks(std::string_view json_text);

class OidcKeys {
 public:
  using Clock = std::chrono::steady_clock;

  // Checks the settings (an https issuer, an audience); fetches nothing.
  static Result<std::shared_ptr<OidcKeys>> create(const OAuth2Section& settings);

  // The key named `kid`: from the cache, else after fetching the JWKS
  // (discovery first, once) when the last fetch is older than
  // jwks_refresh_interval. Errors never quote a token.
  Result<PublicKey> key(std::string_view kid, Clock::time_point now = Clock::now());

  // Fetches discovery (if not done) and the JWKS now, whatever the interval.
  Status refresh(Clock::time_point now = Clock::now());

  // JWKS documents fetched so far (tests and logs).
  uint64_t fetches() const;

  const OAuth2Section& settings() const { return settings_; }

 private:
  explicit OidcKeys(OAuth2Section settings) : settings_(std::move(settings)) {}
  Status fetch_locked(Clock::time_point now);

  const OAuth2Section settings_;
  mutable std::mutex mu_;
  std::string jwks_uri_;                   // from discovery; guarded by mu_
  std::map<std::string, PublicKey> keys_;  // guarded by mu_
  bool attempted_ = false;                 // a fetch was tried; guarded by mu_
  bool fetched_once_ = false;              // a fetch succeeded; guarded by mu_
  Clock::time_point last_fetch_{};         // guarded by mu_
  uint64_t fetches_ = 0;                   // guarded by mu_
};

}  // namespace df::server
