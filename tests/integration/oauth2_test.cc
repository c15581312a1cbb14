// oauth2 (OpenID Connect) authentication of the real server against a real
// OpenID provider: panva's oidc-provider (tests/support/oidc, installed by
// its install.sh) serving HTTPS with a tests/support/pki certificate. Access
// tokens are client_credentials JWTs (RS256, resource indicators) fetched
// with curl. Checked: the role matrix on a few routes, a token for another
// audience refused, a rotated signing key (unknown kid) accepted after the
// server fetches the JWKS again, that refetch rate-limited, and no token or
// client secret in the server's log.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "cli/http_client.h"
#include "tests/support/pki.h"
#include "tests/support/s3_server.h"
#include "tests/support/server_client.h"
#include "tests/support/server_process.h"
#include "tests/support/subprocess.h"
#include "tests/support/temp_dir.h"

using nlohmann::json;
using namespace std::chrono_literals;

namespace df::test {
namespace {

constexpr const char* kAudience = "https://dataflow.test";
const std::filesystem::path kOidcDir =
    std::filesystem::path(DATAFLOW_SOURCE_DIR) / "tests" / "support" / "oidc";

// `node oidc.js` on a port of 127.0.0.1, until destroyed.
class OpenIdProvider {
 public:
  explicit OpenIdProvider(const Pki& pki) {
    const std::string node = S3Server::node_path();
    if (node.empty() || !std::filesystem::exists(kOidcDir / "node_modules" / "oidc-provider")) {
      error_ = "node or oidc-provider is missing: run " + (kOidcDir / "install.sh").string();
      return;
    }
    child_ = std::make_unique<Child>(
        std::vector<std::string>{node, (kOidcDir / "oidc.js").string(), "0", pki.path("idp.crt"),
                                 pki.path("idp.key"), kAudience},
        "", pki.path("oidc.err"));
    std::string out;
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (out.find('\n') == std::string::npos && std::chrono::steady_clock::now() < deadline) {
      child_->read_for(200ms, 4096, &out);
    }
    const size_t at = out.find("listening on ");
    if (at == std::string::npos) {
      error_ = "oidc.js did not start: " + out + read_file(pki.path("oidc.err"));
      return;
    }
    port_ = static_cast<uint16_t>(std::stoi(out.substr(at + 13)));
  }
  ~OpenIdProvider() {
    if (child_) {
      child_->send_signal(SIGTERM);
      child_->wait(10s);
    }
  }
  bool ok() const { return port_ != 0; }
  const std::string& error() const { return error_; }
  std::string issuer() const { return "https://127.0.0.1:" + std::to_string(port_); }
  void send_signal(int sig) { child_->send_signal(sig); }

 private:
  std::unique_ptr<Child> child_;
  uint16_t port_ = 0;
  std::string error_;
};

class OAuth2Test : public ::testing::Test {
 protected:
  void SetUp() override {
    pki_.server_cert("idp");
    idp_ = std::make_unique<OpenIdProvider>(pki_);
    ASSERT_TRUE(idp_->ok()) << idp_->error();
    const std::string config =
        "security:\n"
        "  authentication:\n"
        "    methods: [oauth2]\n"
        "    oauth2:\n"
        "      issuer: " +
        idp_->issuer() + "\n      audience: " + kAudience +
        "\n      ca_file: " + pki_.path("ca.crt") +
        "\n"
        "      jwks_refresh_interval: 2s\n"
        "    failed_logins: {max: 1000, window: 1m}\n";
    server_ = std::make_unique<ServerProcess>(DATAFLOW_BIN, dir_, config);
    ASSERT_TRUE(server_->ready()) << server_->log();
  }

  // curl's answer from the provider, body only.
  std::string idp_get(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {"/usr/bin/curl",    "-sS", "--max-time", "20", "--cacert",
                                     pki_.path("ca.crt")};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_process(argv, "", 30s).out;
  }

  // A client_credentials access token of client `role` for `resource`.
  std::string token(const std::string& role, const std::string& resource = kAudience) {
    const json r = json::parse(
        idp_get({"-u", role + ":" + role + "-secret", "-d", "grant_type=client_credentials", "-d",
                 "scope=api", "-d", "resource=" + resource, idp_->issuer() + "/token"}),
        nullptr, false);
    EXPECT_TRUE(r.is_object() && r.contains("access_token")) << r.dump();
    tokens_.push_back(r.value("access_token", ""));
    return tokens_.back();
  }

  int call(const std::string& method, const std::string& path, const std::string& bearer,
           const std::string& body = "") {
    auto url = cli::parse_server_url(server_->url());
    cli::HttpClientOptions o;
    o.connect_timeout = Millis{2000};
    o.io_timeout = Millis{20000};
    o.bearer_token = bearer;
    auto r = cli::HttpClient(*url, o).request(method, path, body,
                                              body.empty() ? "" : "application/yaml");
    EXPECT_TRUE(r.ok()) << r.status().to_string();
    return r.ok() ? r->status : 0;
  }

  size_t jwks_fetches() const {
    const std::string log = server_->log();
    size_t n = 0;
    for (size_t at = log.find("signing key(s)"); at != std::string::npos;
         at = log.find("signing key(s)", at + 1)) {
      ++n;
    }
    return n;
  }

  Pki pki_;
  TempDir dir_;
  std::unique_ptr<OpenIdProvider> idp_;
  std::unique_ptr<ServerProcess> server_;
  std::vector<std::string> tokens_;
};

TEST_F(OAuth2Test, RolesFromProviderTokensKeyRotationAndAudience) {
  EXPECT_EQ(jwks_fetches(), 1u) << server_->log();  // at start
  // The role matrix: GET needs pipeline:read, start run:start, DELETE pipeline:delete.
  struct Route {
    const char* method;
    const char* path;
    int viewer, operator_, admin;
  };
  const Route routes[] = {{"GET", "/api/v1/pipelines", 200, 200, 200},
                          {"POST", "/api/v1/pipelines/ghost/start", 403, 404, 404},
                          {"DELETE", "/api/v1/pipelines/ghost", 403, 403, 404}};
  for (const std::string role : {"viewer", "operator", "admin"}) {
    const std::string bearer = token(role);
    for (const Route& r : routes) {
      const int want = role == "viewer" ? r.viewer : role == "operator" ? r.operator_ : r.admin;
      EXPECT_EQ(call(r.method, r.path, bearer), want) << role << " " << r.method << " " << r.path;
    }
  }
  EXPECT_EQ(call("GET", "/api/v1/pipelines", ""), 401);
  // A token of the same provider for another audience.
  EXPECT_EQ(call("GET", "/api/v1/pipelines", token("admin", "https://other.test")), 401);
  // A forged token: an admin token's payload under a viewer token's signature.
  const std::string viewer = token("viewer");
  const std::string admin = token("admin");
  const std::string forged = viewer.substr(0, viewer.find('.')) +
                             admin.substr(admin.find('.'), admin.rfind('.') - admin.find('.')) +
                             viewer.substr(viewer.rfind('.'));
  EXPECT_EQ(call("DELETE", "/api/v1/pipelines/ghost", forged), 401);
  const size_t before = jwks_fetches();

  // The provider rotates its key: a token with the new kid makes the server
  // fetch the JWKS again, once, and is accepted.
  idp_->send_signal(SIGUSR2);
  ASSERT_TRUE(eventually(
      [&] { return idp_get({idp_->issuer() + "/jwks"}).find("\"key-2\"") != std::string::npos; },
      10s));
  std::this_thread::sleep_for(2100ms);  // past jwks_refresh_interval since the last fetch
  const std::string rotated = token("admin");
  EXPECT_EQ(call("DELETE", "/api/v1/pipelines/ghost", rotated), 404) << server_->log();
  EXPECT_EQ(jwks_fetches(), before + 1) << server_->log();
  EXPECT_EQ(call("GET", "/api/v1/pipelines", rotated), 200);
  EXPECT_EQ(jwks_fetches(), before + 1) << "the cached key serves the next call";

  // Unknown kids again and again: at most one fetch per jwks_refresh_interval.
  const std::string payload = rotated.substr(rotated.find('.'));
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 30; ++i) {
    // {"alg":"RS256","kid":"made-up-<i>"} in base64url.
    const std::string header =
        json({{"alg", "RS256"}, {"kid", "made-up-" + std::to_string(i)}}).dump();
    std::string b64;
    static constexpr char kAlphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    uint32_t bits = 0;
    int count = 0;
    for (unsigned char c : header) {
      bits = (bits << 8) | c;
      count += 8;
      while (count >= 6) {
        b64 += kAlphabet[(bits >> (count - 6)) & 63];
        count -= 6;
      }
    }
    if (count > 0) b64 += kAlphabet[(bits << (6 - count)) & 63];
    EXPECT_EQ(call("GET", "/api/v1/pipelines", b64 + payload), 401);
  }
  const auto elapsed = std::chrono::steady_clock::now() - start;
  const size_t allowed = 1 + static_cast<size_t>(elapsed / 2s);
  EXPECT_LE(jwks_fetches(), before + 1 + allowed) << server_->log();

  const std::string log = server_->log();
  for (const std::string& t : tokens_) {
    ASSERT_FALSE(t.empty());
    EXPECT_EQ(log.find(t.substr(t.rfind('.') + 1)), std::string::npos) << "a token in the log";
  }
  EXPECT_EQ(log.find("admin-secret"), std::string::npos);
  EXPECT_NE(log.find("failed login from 127.0.0.1 (bearer token)"), std::string::npos) << log;
}

}  // namespace
}  // namespace df::test
