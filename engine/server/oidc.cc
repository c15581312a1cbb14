#include "engine/server/oidc.h"

#include <curl/curl.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

#include <nlohmann/json.hpp>
#include <optional>

#include "engine/core/log.h"
#include "engine/server/auth.h"

namespace df::server {

namespace {

using nlohmann::json;

// libcurl's global state, made once before the first handle (thread-safe
// by the static's initialization).
void init_curl() {
  static const bool done = [] {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    return true;
  }();
  (void)done;
}

// The URL without query or fragment, for messages.
std::string url_for_message(const std::string& url) {
  return url.substr(0, url.find_first_of("?#"));
}

struct Body {
  std::string text;
  size_t max = 0;
  bool too_long = false;
};

size_t append_body(char* data, size_t size, size_t count, void* user) {
  auto* body = static_cast<Body*>(user);
  const size_t n = size * count;
  if (body->text.size() + n > body->max) {
    body->too_long = true;
    return 0;  // aborts the transfer
  }
  body->text.append(data, n);
  return n;
}

struct PkeyDelete {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};

// A key from OpenSSL parameters of `type` ("RSA", "EC").
PublicKey key_from_params(const char* type, OSSL_PARAM_BLD* bld) {
  OSSL_PARAM* params = OSSL_PARAM_BLD_to_param(bld);
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr);
  EVP_PKEY* key = nullptr;
  if (params && ctx && EVP_PKEY_fromdata_init(ctx) == 1) {
    if (EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params) != 1) key = nullptr;
  }
  EVP_PKEY_CTX_free(ctx);
  OSSL_PARAM_free(params);
  return PublicKey(key, PkeyDelete());
}

PublicKey rsa_key(const std::string& n, const std::string& e) {
  BIGNUM* bn_n = BN_bin2bn(reinterpret_cast<const unsigned char*>(n.data()),
                           static_cast<int>(n.size()), nullptr);
  BIGNUM* bn_e = BN_bin2bn(reinterpret_cast<const unsigned char*>(e.data()),
                           static_cast<int>(e.size()), nullptr);
  OSSL_PARAM_BLD* bld = OSSL_PARAM_BLD_new();
  PublicKey key;
  if (bn_n && bn_e && bld && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n) == 1 &&
      OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e) == 1) {
    key = key_from_params("RSA", bld);
  }
  OSSL_PARAM_BLD_free(bld);
  BN_free(bn_n);
  BN_free(bn_e);
  return key;
}

PublicKey p256_key(const std::string& x, const std::string& y) {
  if (x.size() != 32 || y.size() != 32) return nullptr;
  const std::string point = std::string(1, '\x04') + x + y;  // uncompressed
  OSSL_PARAM_BLD* bld = OSSL_PARAM_BLD_new();
  PublicKey key;
  if (bld &&
      OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) == 1 &&
      OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size()) ==
          1) {
    key = key_from_params("EC", bld);
  }
  OSSL_PARAM_BLD_free(bld);
  return key;
}

std::string string_member(const json& object, const char* name) {
  auto it = object.find(name);
  return it != object.end() && it->is_string() ? it->get<std::string>() : std::string();
}

}  // namespace

Result<HttpsResponse> https_get(const HttpsGet& request) {
  const std::string shown = url_for_message(request.url);
  if (request.url.rfind("https://", 0) != 0) {
    return Status::invalid(shown + " is not an https:// URL");
  }
  init_curl();
  CURL* h = curl_easy_init();
  if (!h) return Status::internal("cannot make a libcurl handle");
  char errbuf[CURL_ERROR_SIZE] = {0};
  curl_slist* headers = nullptr;
  for (const std::string& header : request.headers)
    headers = curl_slist_append(headers, header.c_str());
  Body body{{}, request.max_body, false};
  curl_easy_setopt(h, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https");
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(request.timeout.count()));
  curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
  curl_easy_setopt(h, CURLOPT_SSLVERSION, static_cast<long>(CURL_SSLVERSION_TLSv1_2));
  if (!request.ca_file.empty()) curl_easy_setopt(h, CURLOPT_CAINFO, request.ca_file.c_str());
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, append_body);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
  const CURLcode rc = curl_easy_perform(h);
  long status = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  curl_slist_free_all(headers);
  curl_easy_cleanup(h);
  if (body.too_long) {
    return Status::data_error(shown + " answered more than " + std::to_string(request.max_body) +
                              " bytes");
  }
  if (rc != CURLE_OK) {
    return Status::unavailable(
        "GET " + shown + " failed: " + (errbuf[0] ? std::string(errbuf) : curl_easy_strerror(rc)));
  }
  return HttpsResponse{static_cast<int>(status), std::move(body.text)};
}

Result<std::map<std::string, PublicKey>> parse_jwks(std::string_view json_text) {
  const json doc = json::parse(json_text, nullptr, false);
  auto keys = doc.is_object() ? doc.find("keys") : doc.end();
  if (!doc.is_object() || keys == doc.end() || !keys->is_array()) {
    return Status::data_error("the JWKS is not a JSON object with a 'keys' list");
  }
  std::map<std::string, PublicKey> out;
  for (const json& jwk : *keys) {
    if (!jwk.is_object() || string_member(jwk, "use") == "enc") continue;
    const std::string kty = string_member(jwk, "kty");
    PublicKey key;
    if (kty == "RSA") {
      auto n = decode_base64(string_member(jwk, "n"), true);
      auto e = decode_base64(string_member(jwk, "e"), true);
      if (n && e && !n->empty() && !e->empty()) key = rsa_key(*n, *e);
    } else if (kty == "EC" && string_member(jwk, "crv") == "P-256") {
      auto x = decode_base64(string_member(jwk, "x"), true);
      auto y = decode_base64(string_member(jwk, "y"), true);
      if (x && y) key = p256_key(*x, *y);
    }
    if (key) out.emplace(string_member(jwk, "kid"), std::move(key));
  }
  return out;
}

Result<std::shared_ptr<OidcKeys>> OidcKeys::create(const OAuth2Section& settings) {
  if (settings.issuer.rfind("https://", 0) != 0) {
    return Status::invalid("security.authentication.oauth2.issuer must be an https:// URL, not '" +
                           settings.issuer + "'");
  }
  if (settings.audience.empty()) {
    return Status::invalid("security.authentication.oauth2.audience is empty");
  }
  return std::shared_ptr<OidcKeys>(new OidcKeys(settings));
}

Status OidcKeys::fetch_locked(Clock::time_point now) {
  last_fetch_ = now;
  attempted_ = true;
  HttpsGet get;
  get.ca_file = settings_.ca_file;
  get.headers = {"Accept: application/json"};
  if (jwks_uri_.empty()) {
    std::string issuer = settings_.issuer;
    while (!issuer.empty() && issuer.back() == '/') issuer.pop_back();
    get.url = issuer + "/.well-known/openid-configuration";
    DF_ASSIGN_OR_RETURN(HttpsResponse discovery, https_get(get));
    if (discovery.status != 200) {
      return Status::unavailable("OIDC discovery at " + get.url + " answered HTTP " +
                                 std::to_string(discovery.status));
    }
    const json doc = json::parse(discovery.body, nullptr, false);
    if (!doc.is_object())
      return Status::data_error("OIDC discovery at " + get.url + " is not JSON");
    // OpenID Connect Discovery §4.3: the document's issuer is the one asked for.
    if (string_member(doc, "issuer") != settings_.issuer) {
      return Status::data_error("OIDC discovery at " + get.url + " names issuer '" +
                                string_member(doc, "issuer") + "', not " + settings_.issuer);
    }
    const std::string uri = string_member(doc, "jwks_uri");
    if (uri.rfind("https://", 0) != 0) {
      return Status::data_error("OIDC discovery at " + get.url + " has no https jwks_uri");
    }
    jwks_uri_ = uri;
  }
  get.url = jwks_uri_;
  DF_ASSIGN_OR_RETURN(HttpsResponse jwks, https_get(get));
  ++fetches_;
  if (jwks.status != 200) {
    return Status::unavailable("the JWKS at " + url_for_message(jwks_uri_) + " answered HTTP " +
                               std::to_string(jwks.status));
  }
  DF_ASSIGN_OR_RETURN(auto keys, parse_jwks(jwks.body));
  keys_ = std::move(keys);
  fetched_once_ = true;
  log_info("auth", "oauth2: " + std::to_string(keys_.size()) + " signing key(s) of " +
                       settings_.issuer + " fetched from " + url_for_message(jwks_uri_));
  return Status::OK();
}

Status OidcKeys::refresh(Clock::time_point now) {
  std::lock_guard lock(mu_);
  return fetch_locked(now);
}

Result<PublicKey> OidcKeys::key(std::string_view kid, Clock::time_point now) {
  std::lock_guard lock(mu_);
  auto it = keys_.find(std::string(kid));
  if (it != keys_.end()) return it->second;
  if (attempted_ && now - last_fetch_ < settings_.jwks_refresh_interval) {
    // Rate-limited: tokens naming made-up kids must not make us hammer the provider.
    if (!fetched_once_) return Status::unavailable("the provider's signing keys cannot be fetched");
    return Status::invalid("the token's key is not among the provider's signing keys");
  }
  if (Status s = fetch_locked(now); !s.ok()) {
    log_warn("auth",
             "oauth2: cannot fetch the signing keys of " + settings_.issuer + ": " + s.message());
    return Status::unavailable("the provider's signing keys cannot be fetched");
  }
  it = keys_.find(std::string(kid));
  if (it == keys_.end()) {
    return Status::invalid("the token's key is not among the provider's signing keys");
  }
  return it->second;
}

uint64_t OidcKeys::fetches() const {
  std::lock_guard lock(mu_);
  return fetches_;
}

}  // namespace df::server
