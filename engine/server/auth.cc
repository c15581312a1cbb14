#include "engine/server/auth.h"

#include <argon2.h>
#include <crypt.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "engine/core/log.h"

namespace df::server {

namespace {

using nlohmann::json;

bool equal_secrets(std::string_view a, std::string_view b) {
  // CRYPTO_memcmp is constant time for equal lengths; a length mismatch
  // only tells the length.
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

// The address of "ip:port" / "[v6]:port" (failed logins count per address).
std::string client_address(const std::string& remote) {
  const size_t colon = remote.rfind(':');
  std::string host = colon == std::string::npos ? remote : remote.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  return host;
}

std::string trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return std::string(s);
}

std::vector<std::string> split(std::string_view s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    const size_t at = s.find(sep, start);
    out.push_back(trim(s.substr(start, at == std::string_view::npos ? s.npos : at - start)));
    if (at == std::string_view::npos) return out;
    start = at + 1;
  }
}

bool prefix_match(std::string_view pattern, std::string_view value) {
  if (pattern.empty()) return false;
  if (pattern.back() == '*') {
    pattern.remove_suffix(1);
    return value.substr(0, pattern.size()) == pattern;
  }
  return pattern == value;
}

// The scheme of an Authorization header ("basic", "bearer") and its rest.
std::pair<std::string, std::string> authorization(const HttpRequest& request) {
  const std::string& header = request.header("authorization");
  const size_t space = header.find(' ');
  std::string scheme = header.substr(0, space);
  for (char& c : scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return {scheme, space == std::string::npos ? std::string() : trim(header.substr(space + 1))};
}

struct EvpPkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, EvpPkeyFree>;

}  // namespace

// ---- base64 (RFC 4648): standard for Basic, url-safe without padding for JWTs

std::optional<std::string> decode_base64(std::string_view text, bool url) {
  std::string out;
  out.reserve(text.size() * 3 / 4);
  uint32_t bits = 0;
  int count = 0;
  size_t padding = 0;
  for (char c : text) {
    int v;
    if (c >= 'A' && c <= 'Z') {
      v = c - 'A';
    } else if (c >= 'a' && c <= 'z') {
      v = c - 'a' + 26;
    } else if (c >= '0' && c <= '9') {
      v = c - '0' + 52;
    } else if (c == (url ? '-' : '+')) {
      v = 62;
    } else if (c == (url ? '_' : '/')) {
      v = 63;
    } else if (c == '=' && !url) {
      ++padding;
      continue;
    } else {
      return std::nullopt;
    }
    if (padding) return std::nullopt;  // data after '='
    bits = (bits << 6) | static_cast<uint32_t>(v);
    if (++count == 4) {
      out += static_cast<char>((bits >> 16) & 0xff);
      out += static_cast<char>((bits >> 8) & 0xff);
      out += static_cast<char>(bits & 0xff);
      bits = 0;
      count = 0;
    }
  }
  if (count == 1 || padding > 2) return std::nullopt;
  if (count == 2) out += static_cast<char>((bits >> 4) & 0xff);
  if (count == 3) {
    out += static_cast<char>((bits >> 10) & 0xff);
    out += static_cast<char>((bits >> 2) & 0xff);
  }
  return out;
}

// ---------------------------------------------------------------- passwords

Result<std::string> hash_password(std::string_view password, PasswordScheme scheme,
                                  const PasswordCost& cost) {
  const std::string pw(password);
  if (scheme == PasswordScheme::kBcrypt) {
    char salt[CRYPT_GENSALT_OUTPUT_SIZE];
    if (!crypt_gensalt_rn("$2b$", static_cast<unsigned long>(cost.bcrypt_rounds), nullptr, 0, salt,
                          sizeof salt)) {
      return Status::internal("cannot make a bcrypt salt");
    }
    auto data = std::make_unique<crypt_data>();
    const char* hash = crypt_r(pw.c_str(), salt, data.get());
    if (!hash || hash[0] == '*') return Status::internal("bcrypt hashing failed");
    return std::string(hash);
  }
  unsigned char salt[16];
  if (RAND_bytes(salt, sizeof salt) != 1) return Status::internal("cannot make an argon2 salt");
  constexpr size_t kHashLen = 32;
  const size_t encoded_len = argon2_encodedlen(cost.argon2_passes, cost.argon2_memory_kib, 1,
                                               sizeof salt, kHashLen, Argon2_id);
  std::string encoded(encoded_len, '\0');
  const int rc =
      argon2id_hash_encoded(cost.argon2_passes, cost.argon2_memory_kib, 1, pw.data(), pw.size(),
                            salt, sizeof salt, kHashLen, encoded.data(), encoded.size());
  if (rc != ARGON2_OK) return Status::internal(std::string("argon2: ") + argon2_error_message(rc));
  encoded.resize(encoded.find('\0'));
  return encoded;
}

bool verify_password(std::string_view password, std::string_view hash) {
  const std::string pw(password);
  const std::string h(hash);
  if (h.rfind("$argon2id$", 0) == 0) {
    return argon2id_verify(h.c_str(), pw.data(), pw.size()) == ARGON2_OK;
  }
  if (h.rfind("$2b$", 0) == 0 || h.rfind("$2y$", 0) == 0 || h.rfind("$2a$", 0) == 0) {
    auto data = std::make_unique<crypt_data>();
    const char* out = crypt_r(pw.c_str(), h.c_str(), data.get());
    return out && out[0] != '*' && equal_secrets(out, h);
  }
  return false;
}

// ---------------------------------------------------------------- failed logins

std::optional<Millis> FailedLoginLimiter::blocked(const std::string& address,
                                                  Clock::time_point now) const {
  std::lock_guard lock(mutex_);
  auto it = failures_.find(address);
  if (it == failures_.end() || it->second.size() < max_failures_) return std::nullopt;
  const auto until = it->second.front() + window_;
  if (until <= now) return std::nullopt;
  return std::chrono::ceil<Millis>(until - now);
}

void FailedLoginLimiter::record_failure(const std::string& address, Clock::time_point now) {
  std::lock_guard lock(mutex_);
  if (failures_.size() >= kMaxAddresses && !failures_.count(address)) {
    std::erase_if(failures_,
                  [&](const auto& entry) { return entry.second.back() + window_ <= now; });
    if (failures_.size() >= kMaxAddresses) failures_.erase(failures_.begin());
  }
  auto& times = failures_[address];
  std::erase_if(times, [&](Clock::time_point t) { return t + window_ <= now; });
  if (times.size() >= max_failures_) times.erase(times.begin());
  times.push_back(now);
}

// ---------------------------------------------------------------- JWT

struct JwtVerifier::Keys {
  PkeyPtr public_key;  // RS256 or ES256
};

JwtVerifier::JwtVerifier(JwtSection settings, std::unique_ptr<Keys> keys)
    : settings_(std::move(settings)), keys_(std::move(keys)) {}
JwtVerifier::~JwtVerifier() = default;

Result<std::unique_ptr<JwtVerifier>> JwtVerifier::create(const JwtSection& settings) {
  auto keys = std::make_unique<Keys>();
  bool wants_public_key = false;
  if (settings.algorithms.empty()) {
    return Status::invalid("security.authentication.jwt.algorithms is empty");
  }
  for (const std::string& alg : settings.algorithms) {
    if (alg == "HS256") {
      if (settings.secret.empty()) {
        return Status::invalid("security.authentication.jwt: HS256 needs a secret");
      }
    } else if (alg == "RS256" || alg == "ES256") {
      wants_public_key = true;
    } else {
      return Status::invalid("security.authentication.jwt.algorithms: '" + alg +
                             "' is not supported (HS256, RS256, ES256)");
    }
  }
  if (wants_public_key) {
    const std::string& path = settings.public_key_file;
    FILE* f = path.empty() ? nullptr : std::fopen(path.c_str(), "r");
    if (!f) {
      return Status::invalid("security.authentication.jwt: cannot read public_key_file '" + path +
                             "'");
    }
    keys->public_key.reset(PEM_read_PUBKEY(f, nullptr, nullptr, nullptr));
    std::fclose(f);
    if (!keys->public_key) {
      return Status::invalid("security.authentication.jwt: " + path + " holds no PEM public key");
    }
    const int type = EVP_PKEY_get_base_id(keys->public_key.get());
    for (const std::string& alg : settings.algorithms) {
      if (alg == "RS256" && type != EVP_PKEY_RSA) {
        return Status::invalid("security.authentication.jwt: RS256 needs an RSA key; " + path +
                               " holds another kind");
      }
      if (alg == "ES256") {
        char group[64] = {0};
        size_t len = 0;
        if (type != EVP_PKEY_EC ||
            !EVP_PKEY_get_group_name(keys->public_key.get(), group, sizeof group, &len) ||
            std::string_view(group) != "prime256v1") {
          return Status::invalid("security.authentication.jwt: ES256 needs a P-256 EC key; " +
                                 path + " holds another kind");
        }
      }
    }
  }
  return std::unique_ptr<JwtVerifier>(new JwtVerifier(settings, std::move(keys)));
}

std::unique_ptr<JwtVerifier> JwtVerifier::create_oauth2(std::shared_ptr<OidcKeys> provider) {
  const OAuth2Section& o = provider->settings();
  JwtSection settings;
  settings.algorithms = {"RS256", "ES256"};
  settings.issuer = o.issuer;
  settings.audience = o.audience;
  settings.clock_skew = o.clock_skew;
  settings.roles_claim = o.roles_claim;
  settings.subject_claim = o.subject_claim;
  std::unique_ptr<JwtVerifier> verifier(new JwtVerifier(settings, std::make_unique<Keys>()));
  verifier->provider_ = std::move(provider);
  verifier->method_ = "oauth2";
  return verifier;
}

namespace {

// The claim at a dotted path ("realm_access.roles"), or null.
const json* claim_at(const json& payload, const std::string& path) {
  const json* node = &payload;
  for (const std::string& part : split(path, '.')) {
    if (!node->is_object()) return nullptr;
    auto it = node->find(part);
    if (it == node->end()) return nullptr;
    node = &*it;
  }
  return node;
}

bool verify_hs256(std::string_view signed_part, std::string_view signature,
                  const std::string& secret) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len = 0;
  if (!HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
            reinterpret_cast<const unsigned char*>(signed_part.data()), signed_part.size(), mac,
            &mac_len)) {
    return false;
  }
  return equal_secrets(std::string_view(reinterpret_cast<const char*>(mac), mac_len), signature);
}

bool verify_with_key(EVP_PKEY* key, std::string_view signed_part,
                     const std::string& der_signature) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  if (!ctx) return false;
  bool ok = EVP_DigestVerifyInit(ctx, nullptr, EVP_sha256(), nullptr, key) == 1 &&
            EVP_DigestVerify(ctx, reinterpret_cast<const unsigned char*>(der_signature.data()),
                             der_signature.size(),
                             reinterpret_cast<const unsigned char*>(signed_part.data()),
                             signed_part.size()) == 1;
  EVP_MD_CTX_free(ctx);
  return ok;
}

// A JWS ES256 signature is r || s (32 bytes each); OpenSSL wants DER.
std::optional<std::string> es256_to_der(std::string_view raw) {
  if (raw.size() != 64) return std::nullopt;
  ECDSA_SIG* sig = ECDSA_SIG_new();
  if (!sig) return std::nullopt;
  BIGNUM* r = BN_bin2bn(reinterpret_cast<const unsigned char*>(raw.data()), 32, nullptr);
  BIGNUM* s = BN_bin2bn(reinterpret_cast<const unsigned char*>(raw.data()) + 32, 32, nullptr);
  if (!r || !s || ECDSA_SIG_set0(sig, r, s) != 1) {
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(sig);
    return std::nullopt;
  }
  unsigned char* der = nullptr;
  const int len = i2d_ECDSA_SIG(sig, &der);
  ECDSA_SIG_free(sig);
  if (len <= 0) return std::nullopt;
  std::string out(reinterpret_cast<char*>(der), static_cast<size_t>(len));
  OPENSSL_free(der);
  return out;
}

// A NumericDate claim as seconds, or nullopt when absent; a claim of the
// wrong type is an error.
Result<std::optional<int64_t>> numeric_date(const json& payload, const char* name) {
  auto it = payload.find(name);
  if (it == payload.end()) return std::optional<int64_t>();
  if (!it->is_number())
    return Status::invalid(std::string("the token's '") + name + "' is not a number");
  return std::optional<int64_t>(static_cast<int64_t>(it->get<double>()));
}

}  // namespace

Result<Principal> JwtVerifier::verify(std::string_view token,
                                      std::chrono::system_clock::time_point now) const {
  const size_t dot1 = token.find('.');
  const size_t dot2 = dot1 == token.npos ? token.npos : token.find('.', dot1 + 1);
  if (dot2 == token.npos || token.find('.', dot2 + 1) != token.npos) {
    return Status::invalid("not a signed JWT (header.payload.signature)");
  }
  auto header_text = decode_base64(token.substr(0, dot1), true);
  auto payload_text = decode_base64(token.substr(dot1 + 1, dot2 - dot1 - 1), true);
  auto signature = decode_base64(token.substr(dot2 + 1), true);
  if (!header_text || !payload_text || !signature) {
    return Status::invalid("the token is not base64url");
  }
  const json header = json::parse(*header_text, nullptr, false);
  const json payload = json::parse(*payload_text, nullptr, false);
  if (!header.is_object() || !payload.is_object()) {
    return Status::invalid("the token's header or payload is not a JSON object");
  }
  auto alg_it = header.find("alg");
  if (alg_it == header.end() || !alg_it->is_string()) {
    return Status::invalid("the token's header has no 'alg'");
  }
  const std::string alg = alg_it->get<std::string>();
  // Only configured algorithms: this refuses `none` and an RS256 public key
  // used as an HS256 secret (algorithm confusion).
  if (std::find(settings_.algorithms.begin(), settings_.algorithms.end(), alg) ==
      settings_.algorithms.end()) {
    return Status::invalid("the token's algorithm '" + alg.substr(0, 16) + "' is not accepted");
  }
  const std::string_view signed_part = token.substr(0, dot2);
  EVP_PKEY* public_key = keys_->public_key.get();
  PublicKey provider_key;  // holds an oauth2 key while it is used
  if (provider_) {
    auto kid = header.find("kid");
    DF_ASSIGN_OR_RETURN(provider_key, provider_->key(kid != header.end() && kid->is_string()
                                                         ? kid->get<std::string>()
                                                         : std::string()));
    public_key = provider_key.get();
    // The key's type must be the algorithm's: an RSA key never checks an ES256 token.
    if (EVP_PKEY_get_base_id(public_key) != (alg == "RS256" ? EVP_PKEY_RSA : EVP_PKEY_EC)) {
      return Status::invalid("the token's key is not a key for " + alg);
    }
  }
  bool valid = false;
  if (alg == "HS256") {
    valid = verify_hs256(signed_part, *signature, settings_.secret);
  } else if (alg == "RS256") {
    valid = verify_with_key(public_key, signed_part, *signature);
  } else if (alg == "ES256") {
    auto der = es256_to_der(*signature);
    valid = der && verify_with_key(public_key, signed_part, *der);
  }
  if (!valid) return Status::invalid("the token's signature does not verify");

  const int64_t now_s =
      std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
  const int64_t skew =
      std::chrono::duration_cast<std::chrono::seconds>(settings_.clock_skew).count();
  DF_ASSIGN_OR_RETURN(std::optional<int64_t> exp, numeric_date(payload, "exp"));
  DF_ASSIGN_OR_RETURN(std::optional<int64_t> nbf, numeric_date(payload, "nbf"));
  if (!exp) return Status::invalid("the token has no 'exp'");
  if (now_s > *exp + skew) return Status::invalid("the token has expired");
  if (nbf && now_s + skew < *nbf) return Status::invalid("the token is not valid yet");
  if (!settings_.issuer.empty()) {
    auto iss = payload.find("iss");
    if (iss == payload.end() || !iss->is_string() || *iss != settings_.issuer) {
      return Status::invalid("the token's issuer is not " + settings_.issuer);
    }
  }
  if (!settings_.audience.empty()) {
    auto aud = payload.find("aud");
    bool found = false;
    if (aud != payload.end() && aud->is_string()) found = *aud == settings_.audience;
    if (aud != payload.end() && aud->is_array()) {
      for (const json& a : *aud) found = found || (a.is_string() && a == settings_.audience);
    }
    if (!found)
      return Status::invalid("the token's audience does not include " + settings_.audience);
  }
  Principal who;
  who.method = method_;
  const json* subject = claim_at(payload, settings_.subject_claim);
  who.name = subject && subject->is_string() ? subject->get<std::string>() : "(no subject)";
  if (const json* roles = claim_at(payload, settings_.roles_claim)) {
    if (roles->is_string()) {
      // A space-separated list, as OAuth scopes are.
      std::istringstream in(roles->get<std::string>());
      for (std::string r; in >> r;) who.roles.push_back(r);
    } else if (roles->is_array()) {
      for (const json& r : *roles) {
        if (r.is_string()) who.roles.push_back(r.get<std::string>());
      }
    }
  }
  return who;
}

// ---------------------------------------------------------------- AccessControl

struct AccessControl::BasicUser {
  std::string hash;
  std::vector<std::string> roles;
};

AccessControl::~AccessControl() = default;

std::shared_ptr<AccessControl> AccessControl::open() {
  return std::shared_ptr<AccessControl>(new AccessControl());
}

Result<std::shared_ptr<AccessControl>> AccessControl::create(const SecuritySection& security) {
  std::shared_ptr<AccessControl> ac(new AccessControl());
  ac->cache_salt_.resize(32);
  if (RAND_bytes(reinterpret_cast<unsigned char*>(ac->cache_salt_.data()), 32) != 1) {
    return Status::internal("cannot draw random bytes");
  }
  const AuthenticationSection& a = security.authentication;
  ac->methods_ = a.methods;
  if (ac->methods_.empty() && security.auth.enabled) ac->methods_ = {"api_key"};
  if (!ac->methods_.empty() && security.auth.enabled &&
      std::find(ac->methods_.begin(), ac->methods_.end(), "api_key") == ac->methods_.end() &&
      !security.auth.api_keys.empty()) {
    // security.auth.enabled with keys keeps them working next to other methods.
    ac->methods_.insert(ac->methods_.begin(), "api_key");
  }
  ac->policy_ = Policy(security.rbac.roles);
  ac->protect_health_ = a.protect_health;
  ac->protect_metrics_ = a.protect_metrics;
  ac->limiter_ = std::make_unique<FailedLoginLimiter>(a.failed_logins.max, a.failed_logins.window);
  for (const std::string& method : ac->methods_) {
    if (method == "api_key") {
      ac->api_keys_ = security.auth.api_keys;
    } else if (method == "basic") {
      const std::string& path = a.basic.users_file;
      std::ifstream in(path);
      if (path.empty() || !in) {
        return Status::invalid("security.authentication.basic: cannot read users_file '" + path +
                               "'");
      }
      std::string line;
      for (int number = 1; std::getline(in, line); ++number) {
        line = trim(line);
        if (line.empty() || line[0] == '#') continue;
        const auto fields = split(line, ':');
        const std::string where = path + ":" + std::to_string(number) + ": ";
        if (fields.size() != 3 || fields[0].empty()) {
          return Status::invalid(where + "expected name:hash:role[,role...]");
        }
        const std::string& hash = fields[1];
        if (hash.rfind("$argon2id$", 0) != 0 && hash.rfind("$2b$", 0) != 0 &&
            hash.rfind("$2y$", 0) != 0 && hash.rfind("$2a$", 0) != 0) {
          // Never echo the field: it may be a plaintext password.
          return Status::invalid(where + "user '" + fields[0] +
                                 "' has no bcrypt ($2b$) or argon2id ($argon2id$) hash; "
                                 "plaintext passwords are not accepted");
        }
        BasicUser user{hash, {}};
        for (const std::string& role : split(fields[2], ',')) {
          if (role.empty()) continue;
          if (!ac->policy_.has_role(role)) {
            return Status::invalid(where + "user '" + fields[0] + "': unknown role '" + role + "'");
          }
          user.roles.push_back(role);
        }
        if (!ac->users_.emplace(fields[0], std::move(user)).second) {
          return Status::invalid(where + "user '" + fields[0] + "' is listed twice");
        }
      }
    } else if (method == "jwt") {
      DF_ASSIGN_OR_RETURN(ac->jwt_, JwtVerifier::create(a.jwt));
    } else if (method == "oauth2") {
      DF_ASSIGN_OR_RETURN(std::shared_ptr<OidcKeys> provider, OidcKeys::create(a.oauth2));
      // A provider that is down now is tried again on the first token.
      if (Status s = provider->refresh(); !s.ok()) {
        log_warn("auth", "oauth2: cannot fetch the signing keys of " + a.oauth2.issuer +
                             " yet: " + s.message());
      }
      ac->oauth2_ = JwtVerifier::create_oauth2(std::move(provider));
    } else if (method == "mtls") {
      ac->cert_mappings_ = a.mtls.mappings;
    } else {
      return Status::invalid("security.authentication.methods: unknown method '" + method + "'");
    }
  }
  return ac;
}

std::optional<Principal> AccessControl::api_key(std::string_view token) const {
  std::optional<Principal> found;
  // Every key is compared, so the time taken does not tell which one matched.
  for (const ApiKey& k : api_keys_) {
    if (equal_secrets(k.key, token) && !found) found = Principal{k.name, "api_key", {k.role}};
  }
  return found;
}

Result<Principal> AccessControl::basic(std::string_view credentials) const {
  auto decoded = decode_base64(credentials, false);
  if (!decoded) return Status::invalid("Basic credentials that are not base64");
  const size_t colon = decoded->find(':');
  if (colon == std::string::npos) return Status::invalid("Basic credentials without user:password");
  const std::string user = decoded->substr(0, colon);
  auto it = users_.find(user);
  // The user is named only when known: a password typed as a user name
  // stays out of the log.
  if (it == users_.end()) return Status::invalid("unknown user");
  const std::string_view password = std::string_view(*decoded).substr(colon + 1);
  const std::string seen = digest(user, password);
  const auto now = std::chrono::steady_clock::now();
  {
    std::lock_guard lock(verified_mutex_);
    auto v = verified_.find(user);
    if (v != verified_.end() && v->second.until > now && equal_secrets(v->second.digest, seen)) {
      return Principal{user, "basic", it->second.roles};
    }
  }
  if (!verify_password(password, it->second.hash)) {
    return Status::invalid("wrong password for user '" + user + "'");
  }
  {
    std::lock_guard lock(verified_mutex_);
    verified_[user] = Verified{seen, now + kVerifiedFor};  // at most one per user of the file
  }
  return Principal{user, "basic", it->second.roles};
}

std::string AccessControl::digest(std::string_view user, std::string_view password) const {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  const std::string input = std::string(user) + '\0' + std::string(password);
  HMAC(EVP_sha256(), cache_salt_.data(), static_cast<int>(cache_salt_.size()),
       reinterpret_cast<const unsigned char*>(input.data()), input.size(), md, &len);
  return std::string(reinterpret_cast<const char*>(md), len);
}

std::optional<Principal> AccessControl::certificate(const HttpRequest& request) const {
  if (request.client_subject.empty() && request.client_sans.empty()) return std::nullopt;
  Principal who{
      request.client_subject.empty() ? request.client_sans.front() : request.client_subject,
      "mtls",
      {}};
  for (const CertRoleMapping& m : cert_mappings_) {
    bool match = prefix_match(m.subject, request.client_subject);
    for (const std::string& san : request.client_sans) match = match || prefix_match(m.san, san);
    if (match && std::find(who.roles.begin(), who.roles.end(), m.role) == who.roles.end()) {
      who.roles.push_back(m.role);
    }
  }
  return who;
}

HttpResponse AccessControl::unauthorized(bool bad_credentials) const {
  HttpResponse r =
      HttpResponse::error(401, bad_credentials ? "the credentials are not valid"
                                               : "this server requires authentication");
  std::string challenge;
  auto has = [&](const char* m) {
    return std::find(methods_.begin(), methods_.end(), m) != methods_.end();
  };
  if (has("api_key") || has("jwt") || has("oauth2")) {
    challenge = "Bearer realm=\"dataflow\"";
    if (bad_credentials) challenge += ", error=\"invalid_token\"";
  }
  if (has("basic")) {
    challenge += std::string(challenge.empty() ? "" : ", ") + "Basic realm=\"dataflow\"";
  }
  if (challenge.empty()) challenge = "Mutual realm=\"dataflow\"";  // client certificates only
  r.headers["www-authenticate"] = challenge;
  return r;
}

AccessControl::Decision AccessControl::check(const HttpRequest& request, Action action,
                                             std::chrono::system_clock::time_point now) {
  if (!enabled()) return {Principal{"anonymous", "none", {}}, std::nullopt};
  const std::string address = client_address(request.remote);
  const auto steady_now = FailedLoginLimiter::Clock::now();
  if (auto wait = limiter_->blocked(address, steady_now)) {
    HttpResponse r =
        HttpResponse::error(429, "too many failed logins from " + address + "; try again later");
    r.headers["retry-after"] = std::to_string((wait->count() + 999) / 1000);
    return {std::nullopt, std::move(r)};
  }
  auto has = [&](const char* m) {
    return std::find(methods_.begin(), methods_.end(), m) != methods_.end();
  };
  const auto [scheme, credentials] = authorization(request);
  std::optional<Principal> who;
  std::string failure;  // why the credentials were refused (no secret in it)
  std::string method;
  if (scheme == "basic" && has("basic")) {
    method = "basic";
    auto p = basic(credentials);
    if (p.ok()) {
      who = std::move(*p);
    } else {
      failure = p.status().message();
    }
  } else if (scheme == "bearer" && (has("api_key") || has("jwt") || has("oauth2"))) {
    method = has("jwt") || has("oauth2") ? "bearer token" : "api_key";
    if (has("api_key")) who = api_key(credentials);
    if (who) {
      method = "api_key";
    } else if (has("jwt") || has("oauth2")) {
      // jwt first, then the provider's tokens: the last refusal is the one logged.
      for (const JwtVerifier* verifier : {jwt_.get(), oauth2_.get()}) {
        if (!verifier || who) continue;
        auto p = verifier->verify(credentials, now);
        if (p.ok()) {
          who = std::move(*p);
          failure.clear();
        } else {
          failure = p.status().message();
        }
      }
    } else {
      failure = "unknown API key";
    }
  } else if (!scheme.empty()) {
    // The scheme is not named: a client that sent a bare token would find it here.
    method = "authorization header";
    failure = "an authorization scheme this server does not accept";
  } else if (has("mtls")) {
    who = certificate(request);
  }
  if (!who && failure.empty()) return {std::nullopt, unauthorized(/*bad_credentials=*/false)};
  if (!who) {
    limiter_->record_failure(address, steady_now);
    log_warn("auth", "failed login from " + address + " (" + method + "): " + failure);
    return {std::nullopt, unauthorized(/*bad_credentials=*/true)};
  }
  if (!policy_.allows(who->roles, action)) {
    HttpResponse r =
        HttpResponse::error(403, who->describe() + " may not " + std::string(action_name(action)));
    return {std::move(who), std::move(r)};
  }
  return {std::move(who), std::nullopt};
}

Handler AccessControl::guard(Action action, Handler handler) {
  if (!enabled()) return handler;
  std::shared_ptr<AccessControl> self = shared_from_this();
  return [self, action, handler = std::move(handler)](const HttpRequest& request) {
    Decision decision = self->check(request, action);
    const Principal* who = decision.who ? &*decision.who : nullptr;
    HttpResponse response = decision.refusal ? std::move(*decision.refusal) : handler(request);
    if (is_mutating(request.method)) audit(who, request, response.status);
    return response;
  };
}

void AccessControl::mount(Router& outer, std::shared_ptr<const Router> inner, Action action) {
  for (const std::string& route : inner->routes()) {
    const size_t space = route.find(' ');
    outer.add(route.substr(0, space), route.substr(space + 1),
              guard(action, [inner](const HttpRequest& request) {
                HttpRequest copy = request;
                return inner->dispatch(copy);
              }));
  }
}

void audit(const Principal* who, const HttpRequest& request, int status) {
  log_info("audit", (who ? who->describe() : std::string("unauthenticated")) + " " +
                        request.method + " " + request.path + " -> " + std::to_string(status) +
                        " from " + client_address(request.remote));
}

}  // namespace df::server
