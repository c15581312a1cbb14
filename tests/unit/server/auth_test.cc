// Authentication and authorization (engine/server/auth.h, rbac.h): bcrypt
// and argon2id users, JWTs signed here with OpenSSL (HS256, RS256, ES256)
// and every way a token is refused, client certificates mapped to roles,
// failed-login rate limiting, 401 vs 403, the audit log, and a permission
// on every route of the API router; the oauth2 pieces that need no provider
// (JWKS parsing, settings, https_get's refusals; tests/integration/oauth2_test.cc
// runs them against a real OpenID provider).
#include "engine/server/auth.h"

#include <gtest/gtest.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>

#include "config/server_config.h"
#include "engine/core/log.h"
#include "engine/server/api.h"
#include "tests/support/temp_dir.h"
#include "tests/unit/server/manager_fixture.h"

namespace df::server {
namespace {

using nlohmann::json;
using SystemClock = std::chrono::system_clock;

// ---- signing JWTs with OpenSSL

std::string base64url(std::string_view data) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  size_t i = 0;
  for (; i + 2 < data.size(); i += 3) {
    const uint32_t n =
        (uint8_t(data[i]) << 16) | (uint8_t(data[i + 1]) << 8) | uint8_t(data[i + 2]);
    for (int shift : {18, 12, 6, 0}) out += kAlphabet[(n >> shift) & 63];
  }
  if (data.size() - i == 1) {
    const uint32_t n = uint8_t(data[i]) << 16;
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
  } else if (data.size() - i == 2) {
    const uint32_t n = (uint8_t(data[i]) << 16) | (uint8_t(data[i + 1]) << 8);
    for (int shift : {18, 12, 6}) out += kAlphabet[(n >> shift) & 63];
  }
  return out;
}

struct PkeyDeleter {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyDeleter>;

Pkey make_rsa() { return Pkey(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{2048})); }
Pkey make_ec() { return Pkey(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256")); }

std::string public_pem(EVP_PKEY* key) {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PUBKEY(bio, key);
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio, &data);
  std::string pem(data, static_cast<size_t>(len));
  BIO_free(bio);
  return pem;
}

std::string sign_with_key(EVP_PKEY* key, std::string_view input) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  size_t len = 0;
  EVP_DigestSignInit(ctx, nullptr, EVP_sha256(), nullptr, key);
  EVP_DigestSign(ctx, nullptr, &len, reinterpret_cast<const unsigned char*>(input.data()),
                 input.size());
  std::string sig(len, '\0');
  EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(sig.data()), &len,
                 reinterpret_cast<const unsigned char*>(input.data()), input.size());
  EVP_MD_CTX_free(ctx);
  sig.resize(len);
  return sig;
}

// DER ECDSA signature -> the JWS form r || s.
std::string der_to_raw(const std::string& der) {
  const unsigned char* p = reinterpret_cast<const unsigned char*>(der.data());
  ECDSA_SIG* sig = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size()));
  std::string raw(64, '\0');
  BN_bn2binpad(ECDSA_SIG_get0_r(sig), reinterpret_cast<unsigned char*>(raw.data()), 32);
  BN_bn2binpad(ECDSA_SIG_get0_s(sig), reinterpret_cast<unsigned char*>(raw.data()) + 32, 32);
  ECDSA_SIG_free(sig);
  return raw;
}

std::string hmac(std::string_view secret, std::string_view input) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, &len);
  return std::string(reinterpret_cast<char*>(mac), len);
}

// A compact JWS: `alg` in the header; HS256 with `secret`, RS256/ES256 with
// `key`, "none" unsigned.
std::string make_jwt(const std::string& alg, const json& claims, const std::string& secret,
                     EVP_PKEY* key = nullptr) {
  const std::string input =
      base64url(json{{"alg", alg}, {"typ", "JWT"}}.dump()) + "." + base64url(claims.dump());
  std::string sig;
  if (alg == "HS256") sig = hmac(secret, input);
  if (alg == "RS256") sig = sign_with_key(key, input);
  if (alg == "ES256") sig = der_to_raw(sign_with_key(key, input));
  return input + "." + base64url(sig);
}

int64_t seconds_from_now(int64_t delta) {
  return std::chrono::duration_cast<std::chrono::seconds>(SystemClock::now().time_since_epoch())
             .count() +
         delta;
}

json good_claims() {
  return json{{"sub", "alice"},
              {"iss", "https://issuer.example"},
              {"aud", json::array({"other", "dataflow"})},
              {"exp", seconds_from_now(300)},
              {"nbf", seconds_from_now(-10)},
              {"roles", json::array({"operator"})}};
}

class JwtTest : public ::testing::Test {
 protected:
  void SetUp() override {
    rsa_ = make_rsa();
    ec_ = make_ec();
    ASSERT_TRUE(rsa_ && ec_);
    write(tmp_.file("rsa.pem"), public_pem(rsa_.get()));
    write(tmp_.file("ec.pem"), public_pem(ec_.get()));
  }
  static void write(const std::string& path, const std::string& text) {
    std::ofstream(path) << text;
  }
  JwtSection settings(std::vector<std::string> algorithms, const std::string& key_file = "") {
    JwtSection s;
    s.algorithms = std::move(algorithms);
    s.secret = kSecret;
    s.public_key_file = key_file;
    s.issuer = "https://issuer.example";
    s.audience = "dataflow";
    return s;
  }
  std::unique_ptr<JwtVerifier> verifier(const JwtSection& s) {
    auto v = JwtVerifier::create(s);
    EXPECT_TRUE(v.ok()) << v.status().to_string();
    return v.ok() ? std::move(*v) : nullptr;
  }
  static constexpr const char* kSecret = "a-32-byte-long-hmac-secret-value";
  df::test::TempDir tmp_;
  Pkey rsa_, ec_;
};

TEST_F(JwtTest, AcceptsTokensOfEachConfiguredAlgorithm) {
  const auto now = SystemClock::now();
  auto hs = verifier(settings({"HS256"}));
  auto rs = verifier(settings({"RS256"}, tmp_.file("rsa.pem")));
  auto es = verifier(settings({"ES256"}, tmp_.file("ec.pem")));
  ASSERT_TRUE(hs && rs && es);
  for (auto& [v, token] : std::vector<std::pair<JwtVerifier*, std::string>>{
           {hs.get(), make_jwt("HS256", good_claims(), kSecret)},
           {rs.get(), make_jwt("RS256", good_claims(), "", rsa_.get())},
           {es.get(), make_jwt("ES256", good_claims(), "", ec_.get())}}) {
    auto who = v->verify(token, now);
    ASSERT_TRUE(who.ok()) << who.status().to_string();
    EXPECT_EQ(who->name, "alice");
    EXPECT_EQ(who->method, "jwt");
    EXPECT_EQ(who->roles, std::vector<std::string>{"operator"});
  }
}

TEST_F(JwtTest, RefusesBadTokens) {
  const auto now = SystemClock::now();
  auto rs = verifier(settings({"RS256"}, tmp_.file("rsa.pem")));
  ASSERT_TRUE(rs);
  auto refused = [&](const std::string& token, const std::string& why) {
    auto who = rs->verify(token, now);
    ASSERT_FALSE(who.ok()) << why;
    EXPECT_NE(who.status().message().find(why), std::string::npos) << who.status().message();
    // Never the token itself in the reason.
    const std::string signature = token.substr(token.rfind('.') + 1);
    if (signature.size() >= 8) {
      EXPECT_EQ(who.status().message().find(signature), std::string::npos);
    }
  };
  json c = good_claims();
  c["exp"] = seconds_from_now(-120);  // past the 60 s skew
  refused(make_jwt("RS256", c, "", rsa_.get()), "expired");
  c = good_claims();
  c["nbf"] = seconds_from_now(120);
  refused(make_jwt("RS256", c, "", rsa_.get()), "not valid yet");
  c = good_claims();
  c["aud"] = "someone-else";
  refused(make_jwt("RS256", c, "", rsa_.get()), "audience");
  c = good_claims();
  c["iss"] = "https://evil.example";
  refused(make_jwt("RS256", c, "", rsa_.get()), "issuer");
  c = good_claims();
  c.erase("exp");
  refused(make_jwt("RS256", c, "", rsa_.get()), "no 'exp'");
  // Signed by another key.
  Pkey other = make_rsa();
  refused(make_jwt("RS256", good_claims(), "", other.get()), "signature");
  // A payload changed after signing.
  std::string token = make_jwt("RS256", good_claims(), "", rsa_.get());
  json forged = good_claims();
  forged["roles"] = json::array({"admin"});
  const size_t d1 = token.find('.'), d2 = token.rfind('.');
  refused(token.substr(0, d1 + 1) + base64url(forged.dump()) + token.substr(d2), "signature");
  // alg none, unsigned.
  refused(make_jwt("none", good_claims(), ""), "algorithm 'none' is not accepted");
  refused(make_jwt("none", good_claims(), "") + "x", "");  // not even base64 of anything useful
  // Algorithm confusion: the RSA public key (PEM) as an HMAC secret.
  refused(make_jwt("HS256", good_claims(), public_pem(rsa_.get())), "algorithm 'HS256'");
  refused("not-a-jwt", "not a signed JWT");
}

TEST_F(JwtTest, ConfusionIsRefusedEvenWithBothAlgorithmsConfigured) {
  // HS256 verifies with the configured secret only, never with the RSA key.
  auto both = verifier(settings({"HS256", "RS256"}, tmp_.file("rsa.pem")));
  ASSERT_TRUE(both);
  EXPECT_FALSE(
      both->verify(make_jwt("HS256", good_claims(), public_pem(rsa_.get())), SystemClock::now())
          .ok());
  EXPECT_TRUE(both->verify(make_jwt("HS256", good_claims(), kSecret), SystemClock::now()).ok());
  EXPECT_TRUE(
      both->verify(make_jwt("RS256", good_claims(), "", rsa_.get()), SystemClock::now()).ok());
}

TEST_F(JwtTest, ClockSkewAndRolesClaim) {
  JwtSection s = settings({"HS256"});
  s.clock_skew = Millis(60000);
  s.roles_claim = "realm_access.roles";
  s.issuer.clear();
  s.audience.clear();
  auto v = verifier(s);
  ASSERT_TRUE(v);
  json c{{"sub", "bob"},
         {"exp", seconds_from_now(-30)},  // within the skew
         {"realm_access", {{"roles", json::array({"viewer", "admin"})}}}};
  auto who = v->verify(make_jwt("HS256", c, kSecret), SystemClock::now());
  ASSERT_TRUE(who.ok()) << who.status().to_string();
  EXPECT_EQ(who->roles, (std::vector<std::string>{"viewer", "admin"}));
  s.clock_skew = Millis(0);
  auto strict = verifier(s);
  EXPECT_FALSE(strict->verify(make_jwt("HS256", c, kSecret), SystemClock::now()).ok());
}

TEST_F(JwtTest, RefusesMisconfiguredKeys) {
  EXPECT_FALSE(JwtVerifier::create(settings({"ES256"}, tmp_.file("rsa.pem"))).ok());
  EXPECT_FALSE(JwtVerifier::create(settings({"RS256"}, tmp_.file("ec.pem"))).ok());
  EXPECT_FALSE(JwtVerifier::create(settings({"RS256"}, tmp_.file("missing.pem"))).ok());
  EXPECT_FALSE(JwtVerifier::create(settings({"none"})).ok());
  JwtSection no_secret = settings({"HS256"});
  no_secret.secret.clear();
  EXPECT_FALSE(JwtVerifier::create(no_secret).ok());
}

// ---- passwords

constexpr PasswordCost kCheap{4, 256, 1};  // fast hashes for tests

TEST(Passwords, BcryptAndArgon2idVerify) {
  for (PasswordScheme scheme : {PasswordScheme::kBcrypt, PasswordScheme::kArgon2id}) {
    auto hash = hash_password("correct horse", scheme, kCheap);
    ASSERT_TRUE(hash.ok()) << hash.status().to_string();
    EXPECT_EQ(hash->rfind(scheme == PasswordScheme::kBcrypt ? "$2b$04$" : "$argon2id$", 0), 0u)
        << *hash;
    EXPECT_TRUE(verify_password("correct horse", *hash));
    EXPECT_FALSE(verify_password("correct horsf", *hash));
    EXPECT_FALSE(verify_password("", *hash));
  }
  // Plaintext (or any other scheme) never matches, not even itself.
  EXPECT_FALSE(verify_password("secret", "secret"));
  EXPECT_FALSE(verify_password("secret", "$1$abc$def"));
}

// ---- failed logins

TEST(FailedLoginLimiter, BlocksAnAddressForTheRestOfTheWindow) {
  FailedLoginLimiter limiter(3, Millis(60000));
  const auto t0 = FailedLoginLimiter::Clock::now();
  for (int i = 0; i < 3; ++i) {
    EXPECT_FALSE(limiter.blocked("10.0.0.1", t0 + std::chrono::seconds(i)));
    limiter.record_failure("10.0.0.1", t0 + std::chrono::seconds(i));
  }
  auto wait = limiter.blocked("10.0.0.1", t0 + std::chrono::seconds(3));
  ASSERT_TRUE(wait);
  EXPECT_EQ(*wait, Millis(57000));
  EXPECT_FALSE(limiter.blocked("10.0.0.2", t0 + std::chrono::seconds(3)));
  // Once the oldest failure leaves the window, one more try is allowed.
  EXPECT_FALSE(limiter.blocked("10.0.0.1", t0 + std::chrono::seconds(60)));
}

// ---- AccessControl

HttpRequest request(std::string method, std::string path, std::string authorization = "",
                    std::string remote = "127.0.0.1:40000") {
  HttpRequest r;
  r.method = std::move(method);
  r.path = r.target = std::move(path);
  if (!authorization.empty()) r.headers["authorization"] = std::move(authorization);
  r.remote = std::move(remote);
  return r;
}

std::string basic(const std::string& user, const std::string& password) {
  // Standard base64 = base64url with + and / and padding.
  std::string b = base64url(user + ":" + password);
  for (char& c : b) c = c == '-' ? '+' : c == '_' ? '/' : c;
  while (b.size() % 4) b += '=';
  return "Basic " + b;
}

// Collects log lines (thread-safe) while alive.
class LogCapture {
 public:
  LogCapture() {
    id_ = add_log_listener([this](const LogRecord& r) {
      std::lock_guard lock(mutex_);
      lines_.push_back(log_record_json(r));
    });
  }
  ~LogCapture() { remove_log_listener(id_); }
  std::string all() const {
    std::lock_guard lock(mutex_);
    std::string out;
    for (const auto& l : lines_) out += l + "\n";
    return out;
  }

 private:
  uint64_t id_ = 0;
  mutable std::mutex mutex_;
  std::vector<std::string> lines_;
};

class AccessControlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto bcrypt = hash_password("viewer-pass", PasswordScheme::kBcrypt, kCheap);
    auto argon = hash_password("admin-pass", PasswordScheme::kArgon2id, kCheap);
    ASSERT_TRUE(bcrypt.ok() && argon.ok());
    std::ofstream(tmp_.file("users")) << "# name:hash:roles\n"
                                      << "vera:" << *bcrypt << ":viewer\n"
                                      << "ada:" << *argon << ":viewer,admin\n";
    security_.auth.enabled = true;
    security_.auth.api_keys = {{"ci", "ci-key-123", "operator"}};
    security_.authentication.methods = {"api_key", "basic", "jwt", "mtls"};
    security_.authentication.basic.users_file = tmp_.file("users");
    security_.authentication.jwt.algorithms = {"HS256"};
    security_.authentication.jwt.secret = "jwt-secret";
    security_.authentication.mtls.mappings = {{"CN=ops,*", "", "operator"},
                                              {"", "spiffe://example/admin", "admin"}};
    security_.authentication.failed_logins = {3, Millis(60000)};
  }
  std::shared_ptr<AccessControl> make() {
    auto ac = AccessControl::create(security_);
    EXPECT_TRUE(ac.ok()) << ac.status().to_string();
    return ac.ok() ? *ac : AccessControl::open();
  }
  df::test::TempDir tmp_;
  SecuritySection security_;
};

TEST_F(AccessControlTest, EachMethodAuthenticatesAndRolesDecide) {
  auto ac = make();
  ASSERT_TRUE(ac->enabled());
  struct Case {
    HttpRequest req;
    Action action;
    int status;  // 0: allowed
  };
  HttpRequest ops = request("POST", "/x");
  ops.client_subject = "CN=ops,O=Example";
  HttpRequest admin_cert = request("DELETE", "/x");
  admin_cert.client_subject = "CN=someone";
  admin_cert.client_sans = {"spiffe://example/admin"};
  HttpRequest unmapped_cert = request("GET", "/x");
  unmapped_cert.client_subject = "CN=stranger";
  const std::string jwt_operator =
      make_jwt("HS256", {{"sub", "joe"}, {"exp", seconds_from_now(60)}, {"roles", "operator"}},
               "jwt-secret");
  const std::vector<Case> cases = {
      {request("GET", "/x", basic("vera", "viewer-pass")), Action::kPipelineRead, 0},
      {request("POST", "/x", basic("vera", "viewer-pass")), Action::kPipelineCreate, 403},
      {request("DELETE", "/x", basic("ada", "admin-pass")), Action::kPipelineDelete, 0},
      {request("POST", "/x", "Bearer ci-key-123"), Action::kRunStart, 0},
      {request("POST", "/x", "Bearer ci-key-123"), Action::kPipelineCreate, 403},
      {request("POST", "/x", "Bearer " + jwt_operator), Action::kRunCancel, 0},
      {request("PUT", "/x", "Bearer " + jwt_operator), Action::kStateImport, 403},
      {ops, Action::kCheckpointCreate, 0},
      {ops, Action::kPipelineDelete, 403},
      {admin_cert, Action::kPipelineDelete, 0},
      {unmapped_cert, Action::kPipelineRead, 403},
      {request("GET", "/x"), Action::kPipelineRead, 401},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    auto d = ac->check(cases[i].req, cases[i].action);
    EXPECT_EQ(d.refusal ? d.refusal->status : 0, cases[i].status) << "case " << i;
    if (d.refusal && d.refusal->status == 401) {
      EXPECT_EQ(d.refusal->headers["www-authenticate"],
                "Bearer realm=\"dataflow\", Basic realm=\"dataflow\"");
    }
  }
}

TEST_F(AccessControlTest, BadCredentialsAre401AndRateLimitedPerAddress) {
  LogCapture logs;
  auto ac = make();
  const std::vector<std::string> bad = {basic("vera", "wrong-pass-1"), "Bearer not-a-key-or-jwt",
                                        basic("nobody-pass", "x")};
  for (const std::string& credentials : bad) {
    auto d = ac->check(request("GET", "/x", credentials, "10.1.1.1:5000"), Action::kPipelineRead);
    ASSERT_TRUE(d.refusal);
    EXPECT_EQ(d.refusal->status, 401);
    EXPECT_NE(d.refusal->headers["www-authenticate"].find("error=\"invalid_token\""),
              std::string::npos);
  }
  // The fourth try, even with good credentials, is refused for a while.
  auto d = ac->check(request("GET", "/x", basic("vera", "viewer-pass"), "10.1.1.1:5001"),
                     Action::kPipelineRead);
  ASSERT_TRUE(d.refusal);
  EXPECT_EQ(d.refusal->status, 429);
  const int retry_after = std::stoi(d.refusal->headers["retry-after"]);
  EXPECT_GT(retry_after, 0);
  EXPECT_LE(retry_after, 60);
  // Another address is not affected.
  EXPECT_FALSE(ac->check(request("GET", "/x", basic("vera", "viewer-pass"), "10.1.1.2:5000"),
                         Action::kPipelineRead)
                   .refusal);
  // The failures were logged, without the secrets.
  const std::string log = logs.all();
  EXPECT_NE(log.find("failed login from 10.1.1.1"), std::string::npos) << log;
  EXPECT_NE(log.find("wrong password for user 'vera'"), std::string::npos) << log;
  for (const char* secret : {"wrong-pass-1", "not-a-key-or-jwt", "nobody-pass", "viewer-pass"}) {
    EXPECT_EQ(log.find(secret), std::string::npos) << secret << " in\n" << log;
  }
}

TEST_F(AccessControlTest, AVerifiedLoginDoesNotLetAnotherPasswordIn) {
  auto ac = make();
  for (int i = 0; i < 3; ++i) {  // the first verifies the hash, the others the remembered digest
    EXPECT_FALSE(
        ac->check(request("GET", "/x", basic("ada", "admin-pass")), Action::kPipelineRead).refusal);
  }
  auto d = ac->check(request("GET", "/x", basic("ada", "admin-pasS")), Action::kPipelineRead);
  ASSERT_TRUE(d.refusal);
  EXPECT_EQ(d.refusal->status, 401);
}

TEST_F(AccessControlTest, RefusesPlaintextAndUnknownRolesInTheUsersFile) {
  std::ofstream(tmp_.file("users")) << "vera:hunter2:viewer\n";
  auto ac = AccessControl::create(security_);
  ASSERT_FALSE(ac.ok());
  EXPECT_NE(ac.status().message().find("plaintext passwords are not accepted"), std::string::npos);
  EXPECT_EQ(ac.status().message().find("hunter2"), std::string::npos);
  auto hash = hash_password("x", PasswordScheme::kBcrypt, kCheap);
  std::ofstream(tmp_.file("users")) << "vera:" << *hash << ":root\n";
  ac = AccessControl::create(security_);
  ASSERT_FALSE(ac.ok());
  EXPECT_NE(ac.status().message().find("unknown role 'root'"), std::string::npos);
}

TEST(Policy, GroupsAndPatternsExpand) {
  Policy policy({{"viewer", {Permission::kRead}, {}},
                 {"deployer", {}, {"pipeline:*", "run:start"}},
                 {"root", {}, {"*"}}});
  EXPECT_TRUE(policy.allows({"viewer"}, Action::kStateExport));
  EXPECT_FALSE(policy.allows({"viewer"}, Action::kRunCancel));
  EXPECT_TRUE(policy.allows({"deployer"}, Action::kPipelineDelete));
  EXPECT_TRUE(policy.allows({"deployer"}, Action::kRunStart));
  EXPECT_FALSE(policy.allows({"deployer"}, Action::kRunStop));
  EXPECT_TRUE(policy.allows({"nobody", "root"}, Action::kConfigWrite));
  EXPECT_FALSE(policy.allows({"nobody"}, Action::kPipelineRead));
  EXPECT_FALSE(is_action_pattern("pipeline:fly"));
  EXPECT_TRUE(is_action_pattern("checkpoint:*"));
}

// ---- the security section of config.yaml

TEST(SecurityConfig, ReadsPrintsAndChecksTheSecuritySection) {
  df::test::TempDir tmp;
  const std::string policies = tmp.write("policies.yaml",
                                         "roles:\n"
                                         "  deployer: [pipeline:*, run:start, read]\n"
                                         "  viewer: [pipeline:read]\n");
  const std::string text =
      "tls: {enabled: true, cert_file: /c.pem, key_file: /k.pem, ca_file: /ca.pem}\n"
      "security:\n"
      "  auth:\n"
      "    enabled: true\n"
      "    api_keys: [{name: ci, key: ci-secret-key, role: deployer}]\n"
      "  authentication:\n"
      "    methods: [api_key, basic, jwt, mtls]\n"
      "    basic: {users_file: /etc/df/users}\n"
      "    jwt: {algorithms: [HS256, RS256], secret: jwt-top-secret, public_key_file: /k.pem,\n"
      "          issuer: https://i, audience: df, clock_skew: 30s, roles_claim: realm.roles}\n"
      "    mtls:\n"
      "      mappings:\n"
      "        - {subject: \"CN=ci,*\", role: deployer}\n"
      "        - {san: spiffe://x/admin, role: admin}\n"
      "    failed_logins: {max: 5, window: 2m}\n"
      "    protect_metrics: true\n"
      "  rbac:\n"
      "    policies_file: " +
      policies + "\n";
  auto c = config::parse_server_config(text, "config.yaml");
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  const SecuritySection& s = c->security;
  EXPECT_EQ(s.authentication.methods,
            (std::vector<std::string>{"api_key", "basic", "jwt", "mtls"}));
  EXPECT_EQ(s.authentication.jwt.clock_skew, Millis(30000));
  EXPECT_EQ(s.authentication.jwt.roles_claim, "realm.roles");
  ASSERT_EQ(s.authentication.mtls.mappings.size(), 2u);
  EXPECT_EQ(s.authentication.mtls.mappings[1].san, "spiffe://x/admin");
  EXPECT_EQ(s.authentication.failed_logins.max, 5);
  EXPECT_TRUE(s.authentication.protect_metrics);
  // The policies file adds deployer and replaces viewer.
  Policy policy(s.rbac.roles);
  EXPECT_TRUE(policy.allows({"deployer"}, Action::kPipelineDelete));
  EXPECT_TRUE(policy.allows({"deployer"}, Action::kStateExport));
  EXPECT_FALSE(policy.allows({"deployer"}, Action::kRunStop));
  EXPECT_FALSE(policy.allows({"viewer"}, Action::kRunRead));
  EXPECT_TRUE(policy.allows({"admin"}, Action::kConfigWrite));
  // Printed: secrets masked, and it reads back the same.
  const std::string printed = config::describe_server_config(*c);
  EXPECT_EQ(printed.find("jwt-top-secret"), std::string::npos) << printed;
  EXPECT_EQ(printed.find("ci-secret-key"), std::string::npos) << printed;
  EXPECT_NE(printed.find("secret: \"****\""), std::string::npos) << printed;
  auto again = config::parse_server_config(printed, "printed.yaml");
  ASSERT_TRUE(again.ok()) << again.status().to_string() << "\n" << printed;
  EXPECT_EQ(config::describe_server_config(*again), printed);

  // What each method needs, and unknown names.
  auto error = [](const std::string& yaml) {
    auto r = config::parse_server_config(yaml, "config.yaml");
    EXPECT_FALSE(r.ok()) << yaml;
    return r.ok() ? std::string() : r.status().message();
  };
  const std::string e = error(
      "security:\n"
      "  authentication:\n"
      "    methods: [basic, jwt, mtls, kerberos]\n"
      "    jwt: {algorithms: [HS256, none]}\n"
      "    mtls: {mappings: [{subject: CN=x, role: root}]}\n"
      "  rbac: {roles: {ops: [run:fly]}}\n");
  for (const char* want :
       {"unknown method 'kerberos'", "set security.authentication.basic.users_file",
        "HS256 needs secret", "'none' is not accepted", "it needs tls.enabled and tls.ca_file",
        "unknown role 'root'", "not 'run:fly'"}) {
    EXPECT_NE(e.find(want), std::string::npos) << want << " in\n" << e;
  }
}

// ---- the API router

TEST(ApiAuthorization, EveryRouteDeclaresAnActionAndRefusesStrangers) {
  LogCapture logs;
  df::test::TempDir tmp;
  auto m = PipelineManager::open(test::manager_options(tmp.file("data")), test::real_compiler());
  ASSERT_TRUE(m.ok());
  SecuritySection security;
  security.auth.enabled = true;
  security.auth.api_keys = {{"viewer-key", "k-viewer", "viewer"}};
  auto ac = AccessControl::create(security);
  ASSERT_TRUE(ac.ok());
  Router router;
  add_api_routes(router, **m, *ac);
  ASSERT_FALSE(router.routes().empty());
  for (const std::string& route : router.routes()) {
    auto action = Api::action_of(route);
    ASSERT_TRUE(action) << route << " declares no action";
    const size_t space = route.find(' ');
    std::string path = route.substr(space + 1);
    for (auto [from, to] : {std::pair{"{name}", "p1"}, std::pair{"{id}", "r-1"}}) {
      if (auto at = path.find(from); at != std::string::npos) path.replace(at, strlen(from), to);
    }
    HttpRequest stranger = request(route.substr(0, space), path);
    if (route.find("/stream") != std::string::npos) {
      HttpRequest copy = stranger;
      const WebSocketHandler* ws = router.websocket(copy);
      ASSERT_NE(ws, nullptr);
      auto refused = (*ws)(copy, nullptr);
      ASSERT_TRUE(refused) << route;
      EXPECT_EQ(refused->status, 401) << route;
      continue;
    }
    EXPECT_EQ(router.dispatch(stranger).status, 401) << route;
    HttpRequest viewer = request(route.substr(0, space), path, "Bearer k-viewer");
    const int status = router.dispatch(viewer).status;
    if (is_mutating(viewer.method)) {
      EXPECT_EQ(status, 403) << route;
    } else {
      EXPECT_NE(status, 401) << route;
      EXPECT_NE(status, 403) << route;
    }
  }
  const std::string log = logs.all();
  EXPECT_NE(log.find("unauthenticated POST /api/v1/pipelines -> 401"), std::string::npos) << log;
  EXPECT_NE(log.find("api_key:viewer-key DELETE /api/v1/pipelines/p1 -> 403"), std::string::npos)
      << log;
  EXPECT_NE(log.find("\"component\":\"audit\""), std::string::npos) << log;
  EXPECT_EQ(log.find("k-viewer"), std::string::npos) << log;
}

// The console hides what the caller may not do from /whoami's permissions.
TEST(ApiAuthorization, WhoamiListsWhatTheCallersRolesAllow) {
  df::test::TempDir tmp;
  auto m = PipelineManager::open(test::manager_options(tmp.file("data")), test::real_compiler());
  ASSERT_TRUE(m.ok());
  {
    Router open_router;
    add_api_routes(open_router, **m);
    HttpRequest anyone = request("GET", "/api/v1/whoami");
    HttpResponse r = open_router.dispatch(anyone);
    ASSERT_EQ(r.status, 200) << r.body;
    auto j = nlohmann::json::parse(r.body);
    EXPECT_FALSE(j["authentication"].get<bool>());
    EXPECT_EQ(j["permissions"].size(), kActionCount);
  }
  SecuritySection security;
  security.auth.enabled = true;
  security.auth.api_keys = {{"ops", "k-operator", "operator"}};
  auto ac = AccessControl::create(security);
  ASSERT_TRUE(ac.ok());
  Router router;
  add_api_routes(router, **m, *ac);
  HttpRequest stranger = request("GET", "/api/v1/whoami");
  EXPECT_EQ(router.dispatch(stranger).status, 401);
  HttpRequest op = request("GET", "/api/v1/whoami", "Bearer k-operator");
  HttpResponse r = router.dispatch(op);
  ASSERT_EQ(r.status, 200) << r.body;
  auto j = nlohmann::json::parse(r.body);
  EXPECT_TRUE(j["authentication"].get<bool>());
  EXPECT_EQ(j["principal"], "ops");
  EXPECT_EQ(j["method"], "api_key");
  EXPECT_EQ(j["roles"], nlohmann::json::array({"operator"}));
  const auto permissions = j["permissions"].get<std::vector<std::string>>();
  auto has = [&](const char* p) {
    return std::find(permissions.begin(), permissions.end(), p) != permissions.end();
  };
  EXPECT_TRUE(has("pipeline:read"));
  EXPECT_TRUE(has("run:cancel"));
  EXPECT_TRUE(has("checkpoint:rollback"));
  EXPECT_FALSE(has("pipeline:delete"));
  EXPECT_FALSE(has("state:import"));
  EXPECT_EQ(r.body.find("k-operator"), std::string::npos);
}

// ---- oauth2 (the OpenID provider itself: tests/integration/oauth2_test.cc)

// A public key as a JWK (RFC 7518 §6): RSA n/e or EC P-256 x/y, base64url.
json jwk_of(EVP_PKEY* key, const std::string& kid) {
  auto big = [&](const char* name) {
    BIGNUM* bn = nullptr;
    EVP_PKEY_get_bn_param(key, name, &bn);
    std::string bytes(static_cast<size_t>(BN_num_bytes(bn)), '\0');
    BN_bn2bin(bn, reinterpret_cast<unsigned char*>(bytes.data()));
    BN_free(bn);
    return base64url(bytes);
  };
  if (EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA) {
    return {{"kty", "RSA"},
            {"kid", kid},
            {"use", "sig"},
            {"n", big(OSSL_PKEY_PARAM_RSA_N)},
            {"e", big(OSSL_PKEY_PARAM_RSA_E)}};
  }
  unsigned char point[65];
  size_t len = 0;
  EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof point, &len);
  EXPECT_EQ(len, 65u);
  const std::string raw(reinterpret_cast<char*>(point) + 1, 64);
  return {{"kty", "EC"},
          {"crv", "P-256"},
          {"kid", kid},
          {"x", base64url(raw.substr(0, 32))},
          {"y", base64url(raw.substr(32))}};
}

TEST(OAuth2, JwksKeysAreTheProvidersPublicKeys) {
  Pkey rsa = make_rsa();
  Pkey ec = make_ec();
  json encryption = jwk_of(rsa.get(), "enc-1");
  encryption["use"] = "enc";
  const json jwks = {{"keys",
                      {jwk_of(rsa.get(), "rsa-1"),
                       jwk_of(ec.get(), "ec-1"),
                       encryption,
                       {{"kty", "OKP"}, {"crv", "Ed25519"}, {"kid", "ed"}, {"x", "AAAA"}}}}};
  auto keys = parse_jwks(jwks.dump());
  ASSERT_TRUE(keys.ok()) << keys.status().to_string();
  ASSERT_EQ(keys->size(), 2u);  // encryption and Ed25519 keys skipped
  EXPECT_EQ(EVP_PKEY_eq(keys->at("rsa-1").get(), rsa.get()), 1);
  EXPECT_EQ(EVP_PKEY_eq(keys->at("ec-1").get(), ec.get()), 1);
  // What the parsed key checks is what the private key signed.
  const std::string input = "header.payload";
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  const std::string sig = sign_with_key(rsa.get(), input);
  EXPECT_EQ(EVP_DigestVerifyInit(ctx, nullptr, EVP_sha256(), nullptr, keys->at("rsa-1").get()), 1);
  EXPECT_EQ(EVP_DigestVerify(ctx, reinterpret_cast<const unsigned char*>(sig.data()), sig.size(),
                             reinterpret_cast<const unsigned char*>(input.data()), input.size()),
            1);
  EVP_MD_CTX_free(ctx);
  for (const char* bad : {"", "[]", "{}", R"({"keys": 3})", "not json"}) {
    EXPECT_FALSE(parse_jwks(bad).ok()) << bad;
  }
}

TEST(OAuth2, SettingsAndTransportAreChecked) {
  OAuth2Section o;
  o.issuer = "http://idp.example";
  o.audience = "api";
  EXPECT_NE(OidcKeys::create(o).status().message().find("must be an https:// URL"),
            std::string::npos);
  o.issuer = "https://idp.example";
  o.audience.clear();
  EXPECT_NE(OidcKeys::create(o).status().message().find("audience is empty"), std::string::npos);
  HttpsGet get;
  get.url = "http://127.0.0.1:1/jwks?x=secret";
  auto plain = https_get(get);
  ASSERT_FALSE(plain.ok());
  EXPECT_EQ(plain.status().message(), "http://127.0.0.1:1/jwks is not an https:// URL");

  // A provider that does not answer: the first token fails (401, not a
  // crash), and the next tokens within jwks_refresh_interval do not try again.
  o.issuer = "https://127.0.0.1:1";
  o.audience = "api";
  o.jwks_refresh_interval = std::chrono::minutes(1);
  auto keys = OidcKeys::create(o);
  ASSERT_TRUE(keys.ok());
  const auto now = OidcKeys::Clock::now();
  EXPECT_EQ((*keys)->key("k1", now).status().code(), StatusCode::kUnavailable);
  EXPECT_EQ((*keys)->key("k2", now + std::chrono::seconds(5)).status().code(),
            StatusCode::kUnavailable);
  EXPECT_EQ((*keys)->fetches(), 0u);  // discovery never answered: no JWKS fetched
}

}  // namespace
}  // namespace df::server
