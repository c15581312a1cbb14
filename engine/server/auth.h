// Authentication of API requests (`security.authentication`, `security.auth`)
// and the guard that puts authentication, authorization (rbac.h) and the
// audit log in front of a route.
//
//  - api_key: `Authorization: Bearer <key>`, one of security.auth.api_keys.
//  - basic:   `Authorization: Basic`, against a users file of bcrypt or
//             argon2id hashes (never plaintext).
//  - jwt:     `Authorization: Bearer <JWT>` signed with a configured
//             algorithm (HS256, RS256, ES256; `alg: none` and any other
//             algorithm are refused); exp/nbf (with clock skew), iss, aud
//             checked; roles from a configurable claim.
//  - oauth2:  `Authorization: Bearer <JWT>` access tokens of an OpenID
//             provider (RS256, ES256), verified like jwt with the keys of
//             the provider's JWKS (oidc.h); `iss` must be the issuer and
//             `aud` must hold the configured audience.
//  - mtls:    the client certificate the TLS layer verified
//             (HttpRequest::client_subject / client_sans), mapped to roles.
// Failed logins are counted per client address: over the limit, 429 with
// Retry-After. Failures are logged (component "auth") without the
// credentials; every mutating call gets an audit line (component "audit").
//
// Threading: an AccessControl is shared by every server thread; it is
// immutable after create() except the failed-login counts (own mutex).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "engine/core/status.h"
#include "engine/server/http.h"
#include "engine/server/oidc.h"
#include "engine/server/rbac.h"
#include "engine/server/server_config.h"

namespace df::server {

// Who made a request, once authenticated.
struct Principal {
  std::string name;    // the API key's name, the user, the JWT subject, the certificate subject
  std::string method;  // "api_key", "basic", "jwt", "oauth2", "mtls"
  std::vector<std::string> roles;

  std::string describe() const { return method + ":" + name; }  // for logs
};

// ---- passwords

enum class PasswordScheme { kBcrypt, kArgon2id };

struct PasswordCost {
  int bcrypt_rounds = 12;              // log2 of the iterations (4..31)
  uint32_t argon2_memory_kib = 19456;  // OWASP's argon2id minimum: 19 MiB, 2 passes
  uint32_t argon2_passes = 2;
};

// A new salted hash of `password` in the scheme's usual text form
// ("$2b$12$...", "$argon2id$v=19$m=...").
Result<std::string> hash_password(std::string_view password, PasswordScheme scheme,
                                  const PasswordCost& cost = {});
// Whether `password` matches `hash` (bcrypt or argon2id; anything else,
// plaintext included, never matches). Constant time in the comparison.
bool verify_password(std::string_view password, std::string_view hash);

// RFC 4648 base64: standard alphabet with '=' padding (Basic credentials),
// or url-safe without padding (JWT parts, JWKS members, the WebSocket
// credential subprotocol). nullopt for a character outside the alphabet or
// a length no encoding has.
std::optional<std::string> decode_base64(std::string_view text, bool url);

// ---- failed logins

// Failed logins per client address within a sliding window. Bounded memory:
// at most kMaxAddresses addresses are tracked (expired ones go first).
class FailedLoginLimiter {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr size_t kMaxAddresses = 10000;

  FailedLoginLimiter(int max_failures, Millis window)
      : max_failures_(max_failures), window_(window) {}

  // How long `address` must wait before trying again; nullopt when it may
  // try now.
  std::optional<Millis> blocked(const std::string& address, Clock::time_point now) const;
  void record_failure(const std::string& address, Clock::time_point now);

 private:
  const size_t max_failures_;
  const Millis window_;
  mutable std::mutex mutex_;
  // Oldest first; at most max_failures_ times each.
  std::unordered_map<std::string, std::vector<Clock::time_point>> failures_;
};

// ---- JWT

// Verifies JSON Web Tokens (RFC 7519, compact JWS) as `security.authentication.jwt` says.
class JwtVerifier {
 public:
  // Reads the public key file when RS256/ES256 is configured; fails on an
  // unknown algorithm, a missing key or one of the wrong type.
  static Result<std::unique_ptr<JwtVerifier>> create(const JwtSection& settings);
  // Access tokens of an OpenID provider (security.authentication.oauth2):
  // RS256 or ES256 with the provider's key named by the token's `kid`.
  static std::unique_ptr<JwtVerifier> create_oauth2(std::shared_ptr<OidcKeys> provider);
  ~JwtVerifier();

  // The token's principal (method "jwt" or "oauth2"), or why it is refused
  // (one sentence that never quotes the token).
  Result<Principal> verify(std::string_view token, std::chrono::system_clock::time_point now) const;

 private:
  struct Keys;
  JwtVerifier(JwtSection settings, std::unique_ptr<Keys> keys);
  JwtSection settings_;
  std::unique_ptr<Keys> keys_;
  std::shared_ptr<OidcKeys> provider_;  // oauth2: keys by kid
  std::string method_ = "jwt";
};

// ---- the whole check

class AccessControl : public std::enable_shared_from_this<AccessControl> {
 public:
  // Reads the users file and the JWT key; fails with one sentence naming
  // the file or setting. `security` comes checked from config/server_config.
  static Result<std::shared_ptr<AccessControl>> create(const SecuritySection& security);
  // No authentication: every request may do anything (the default).
  static std::shared_ptr<AccessControl> open();
  ~AccessControl();

  // Whether requests must authenticate.
  bool enabled() const { return !methods_.empty(); }
  bool protect_health() const { return protect_health_; }
  bool protect_metrics() const { return protect_metrics_; }

  // What check() decided: `refusal` unset lets the request through.
  struct Decision {
    std::optional<Principal> who;         // the authenticated caller, if any
    std::optional<HttpResponse> refusal;  // 401, 403 or 429
  };
  // Whether `request` may perform `action`: refused with 401 and
  // WWW-Authenticate (no or bad credentials), 403 (a known principal
  // lacking the action), 429 with Retry-After (too many failed logins from
  // its address).
  Decision check(const HttpRequest& request, Action action,
                 std::chrono::system_clock::time_point now = std::chrono::system_clock::now());

  // `handler` behind check(); mutating calls get an audit line (who,
  // method, path, status), refused ones too.
  Handler guard(Action action, Handler handler);
  // Every route of `inner` (e.g. the health routes) added to `outer`
  // behind guard(action).
  void mount(Router& outer, std::shared_ptr<const Router> inner, Action action);

  const Policy& policy() const { return policy_; }

 private:
  AccessControl() = default;
  struct BasicUser;
  std::optional<Principal> api_key(std::string_view token) const;
  Result<Principal> basic(std::string_view credentials) const;
  std::optional<Principal> certificate(const HttpRequest& request) const;
  HttpResponse unauthorized(bool bad_credentials) const;

  // Basic logins verified lately: user -> SHA-256(salt, password) and
  // when it expires, so a client sending the same Basic credentials on
  // every call pays for bcrypt/argon2 once per kVerifiedFor, not per call.
  struct Verified {
    std::string digest;
    std::chrono::steady_clock::time_point until;
  };
  static constexpr std::chrono::minutes kVerifiedFor{5};
  std::string digest(std::string_view user, std::string_view password) const;

  std::vector<std::string> methods_;
  std::string cache_salt_;  // random, per process
  mutable std::mutex verified_mutex_;
  mutable std::unordered_map<std::string, Verified> verified_;
  std::vector<ApiKey> api_keys_;
  std::unordered_map<std::string, BasicUser> users_;
  std::unique_ptr<JwtVerifier> jwt_;
  std::unique_ptr<JwtVerifier> oauth2_;
  std::vector<CertRoleMapping> cert_mappings_;
  Policy policy_;
  bool protect_health_ = false;
  bool protect_metrics_ = false;
  std::unique_ptr<FailedLoginLimiter> limiter_;
};

// Writes one audit line (component "audit"): who, method, path, status.
void audit(const Principal* who, const HttpRequest& request, int status);

}  // namespace df::server
