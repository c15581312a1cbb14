// Authentication and authorization of the real server (`dataflow run`):
// an authorization matrix of each role (viewer, operator, admin) x each
// REST route, for API keys, Basic users (bcrypt and argon2id) and JWTs
// (HS256); no or bad credentials are 401; audit lines for mutating calls;
// the CLI's --token / DATAFLOW_TOKEN / DATAFLOW_USER + DATAFLOW_PASSWORD;
// no secret anywhere in the server's log or `run --check` output; and mTLS
// end to end over a real TLS connection (curl with and without a client
// certificate from tests/support/pki).
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <chrono>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/http_client.h"
#include "engine/server/auth.h"
#include "tests/support/pki.h"
#include "tests/support/server_process.h"
#include "tests/support/subprocess.h"
#include "tests/support/temp_dir.h"

using nlohmann::json;
using namespace std::chrono_literals;

namespace df::test {
namespace {

// Secrets: none may appear in any output.
constexpr const char* kJwtSecret = "jwt-secret-Hh42kq";
const std::vector<std::string> kRoles = {"viewer", "operator", "admin"};
std::string api_key_of(const std::string& role) { return "key-" + role + "-Xy77Q"; }
std::string password_of(const std::string& role) { return "pw-" + role + "-Zq81R"; }

std::string base64url(std::string_view data) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  uint32_t bits = 0;
  int count = 0;
  for (unsigned char c : data) {
    bits = (bits << 8) | c;
    count += 8;
    while (count >= 6) {
      out += kAlphabet[(bits >> (count - 6)) & 63];
      count -= 6;
    }
  }
  if (count > 0) out += kAlphabet[(bits << (6 - count)) & 63];
  return out;
}

std::string hs256_jwt(const json& claims) {
  const std::string input =
      base64url(R"({"alg":"HS256","typ":"JWT"})") + "." + base64url(claims.dump());
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), kJwtSecret, static_cast<int>(strlen(kJwtSecret)),
       reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, &len);
  return input + "." + base64url(std::string_view(reinterpret_cast<char*>(mac), len));
}

int64_t now_plus(int64_t seconds) {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
             .count() +
         seconds;
}

std::string jwt_of(const std::string& role) {
  return hs256_jwt({{"sub", role + "-jwt"},
                    {"iss", "https://issuer.test"},
                    {"aud", "dataflow"},
                    {"exp", now_plus(600)},
                    {"roles", json::array({role})}});
}

// Each REST route: who may call it (r: viewer and up, c: operator and up,
// w: admin only), with a body that keeps the server's state unchanged
// (unknown pipeline, invalid pipeline).
struct Endpoint {
  const char* method;
  const char* path;
  char needs;  // 'r', 'c', 'w'
  const char* body = "";
  const char* content_type = "";
};
const std::vector<Endpoint> kEndpoints = {
    {"POST", "/api/v1/pipelines", 'w', "name: bad\n", "application/yaml"},
    {"GET", "/api/v1/pipelines", 'r'},
    {"GET", "/api/v1/pipelines/ghost", 'r'},
    {"PUT", "/api/v1/pipelines/ghost", 'w', "name: ghost\n", "application/yaml"},
    {"DELETE", "/api/v1/pipelines/ghost", 'w'},
    {"POST", "/api/v1/pipelines/ghost/start", 'c'},
    {"POST", "/api/v1/pipelines/ghost/stop", 'c'},
    {"GET", "/api/v1/pipelines/ghost/runs", 'r'},
    {"GET", "/api/v1/pipelines/ghost/checkpoints", 'r'},
    {"POST", "/api/v1/pipelines/ghost/checkpoints", 'c'},
    {"POST", "/api/v1/pipelines/ghost/rollback", 'c', "{}", "application/json"},
    {"GET", "/api/v1/pipelines/ghost/state", 'r'},
    {"PUT", "/api/v1/pipelines/ghost/state", 'w', "{}", "application/json"},
    {"GET", "/api/v1/runs/r-ghost", 'r'},
    {"POST", "/api/v1/runs/r-ghost/cancel", 'c'},
    {"GET", "/api/v1/runs/r-ghost/events", 'r'},
    {"GET", "/api/v1/openapi.json", 'r'},
};

bool allowed(const std::string& role, char needs) {
  if (role == "admin") return true;
  if (role == "operator") return needs != 'w';
  return needs == 'r';
}

class SecurityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // Cheap hashes: the test makes a few hundred Basic logins.
    const server::PasswordCost cheap{4, 256, 1};
    std::string users;
    for (const std::string& role : kRoles) {
      // bcrypt for viewer and admin, argon2id for operator.
      auto hash = server::hash_password(
          password_of(role),
          role == "operator" ? server::PasswordScheme::kArgon2id : server::PasswordScheme::kBcrypt,
          cheap);
      ASSERT_TRUE(hash.ok()) << hash.status().to_string();
      users += role + "-user:" + *hash + ":" + role + "\n";
    }
    users_file_ = dir_.write("users.txt", users);
    std::string config =
        "security:\n"
        "  auth:\n"
        "    enabled: true\n"
        "    api_keys:\n";
    for (const std::string& role : kRoles) {
      config +=
          "      - {name: " + role + "-key, key: " + api_key_of(role) + ", role: " + role + "}\n";
    }
    config +=
        "  authentication:\n"
        "    methods: [api_key, basic, jwt]\n"
        "    basic: {users_file: " +
        users_file_ +
        "}\n"
        "    jwt:\n"
        "      algorithms: [HS256]\n"
        "      secret: " +
        std::string(kJwtSecret) +
        "\n"
        "      issuer: https://issuer.test\n"
        "      audience: dataflow\n"
        "    failed_logins: {max: 1000, window: 1m}\n"
        "    protect_metrics: true\n";
    server_ = std::make_unique<ServerProcess>(DATAFLOW_BIN, dir_, config);
    ASSERT_TRUE(server_->ready()) << server_->log();
  }

  cli::HttpClientOptions options() const {
    cli::HttpClientOptions o;
    o.connect_timeout = Millis{2000};
    o.io_timeout = Millis{10000};
    return o;
  }
  int call(const Endpoint& e, const cli::HttpClientOptions& o, std::string* www = nullptr) {
    auto url = cli::parse_server_url(server_->url());
    cli::HttpClient client(*url, o);
    auto r = client.request(e.method, e.path, e.body, e.content_type);
    EXPECT_TRUE(r.ok()) << r.status().to_string();
    if (!r.ok()) return 0;
    if (www) *www = r->body;
    return r->status;
  }

  TempDir dir_;
  std::string users_file_;
  std::unique_ptr<ServerProcess> server_;
};

TEST_F(SecurityTest, AuthorizationMatrixForEachMethodRoleAndRoute) {
  struct Method {
    std::string name;
    std::function<cli::HttpClientOptions(const std::string& role)> credentials;
  };
  const std::vector<Method> methods = {{"api_key",
                                        [&](const std::string& role) {
                                          auto o = options();
                                          o.bearer_token = api_key_of(role);
                                          return o;
                                        }},
                                       {"basic",
                                        [&](const std::string& role) {
                                          auto o = options();
                                          o.basic_user = role + "-user";
                                          o.basic_password = password_of(role);
                                          return o;
                                        }},
                                       {"jwt", [&](const std::string& role) {
                                          auto o = options();
                                          o.bearer_token = jwt_of(role);
                                          return o;
                                        }}};
  for (const Method& m : methods) {
    for (const std::string& role : kRoles) {
      for (const Endpoint& e : kEndpoints) {
        const int status = call(e, m.credentials(role));
        const std::string what = m.name + " " + role + " " + e.method + " " + e.path;
        if (allowed(role, e.needs)) {
          EXPECT_NE(status, 401) << what;
          EXPECT_NE(status, 403) << what;
          EXPECT_LT(status, 500) << what;
        } else {
          EXPECT_EQ(status, 403) << what;
        }
      }
    }
  }
  // Without credentials, and with bad ones: 401 on every route.
  auto wrong_password = options();
  wrong_password.basic_user = "admin-user";
  wrong_password.basic_password = "not-the-Pw-9931";
  auto wrong_key = options();
  wrong_key.bearer_token = "not-a-key-7781";
  json expired_claims = {{"sub", "late"},
                         {"iss", "https://issuer.test"},
                         {"aud", "dataflow"},
                         {"exp", now_plus(-3600)},
                         {"roles", json::array({"admin"})}};
  auto expired = options();
  expired.bearer_token = hs256_jwt(expired_claims);
  json wrong_aud = expired_claims;
  wrong_aud["exp"] = now_plus(600);
  wrong_aud["aud"] = "someone-else";
  auto other_audience = options();
  other_audience.bearer_token = hs256_jwt(wrong_aud);
  auto unsigned_token = options();
  unsigned_token.bearer_token =
      base64url(R"({"alg":"none"})") + "." + base64url(wrong_aud.dump()) + ".";
  for (const Endpoint& e : kEndpoints) {
    for (const auto& o :
         {options(), wrong_password, wrong_key, expired, other_audience, unsigned_token}) {
      EXPECT_EQ(call(e, o), 401) << e.method << " " << e.path;
    }
  }

  // /metrics (protect_metrics) needs metrics:read; health stays open.
  {
    auto url = cli::parse_server_url("http://127.0.0.1:" + std::to_string(server_->metrics_port()));
    auto o = options();
    auto anonymous = cli::HttpClient(*url, o).request("GET", "/metrics");
    ASSERT_TRUE(anonymous.ok());
    EXPECT_EQ(anonymous->status, 401);
    o.bearer_token = api_key_of("viewer");
    auto viewer = cli::HttpClient(*url, o).request("GET", "/metrics");
    ASSERT_TRUE(viewer.ok());
    EXPECT_EQ(viewer->status, 200);
    auto health_url =
        cli::parse_server_url("http://127.0.0.1:" + std::to_string(server_->health_port()));
    auto health = cli::HttpClient(*health_url, options()).request("GET", "/health/live");
    ASSERT_TRUE(health.ok());
    EXPECT_EQ(health->status, 200);
  }

  // Audit lines for mutating calls: who, method, path, status.
  const std::string log = server_->log();
  for (const char* line : {"api_key:admin-key DELETE /api/v1/pipelines/ghost -> 404",
                           "basic:viewer-user POST /api/v1/pipelines -> 403",
                           "jwt:operator-jwt POST /api/v1/runs/r-ghost/cancel -> 404",
                           "basic:operator-user POST /api/v1/pipelines/ghost/start -> 404",
                           "unauthenticated PUT /api/v1/pipelines/ghost/state -> 401"}) {
    EXPECT_NE(log.find(line), std::string::npos) << line << "\nin:\n" << log;
  }
  EXPECT_NE(log.find("audit"), std::string::npos);
  EXPECT_NE(log.find("failed login from 127.0.0.1"), std::string::npos);
  // No secret in the log.
  std::vector<std::string> secrets = {kJwtSecret, "not-the-Pw-9931", "not-a-key-7781",
                                      expired.bearer_token};
  for (const std::string& role : kRoles) {
    secrets.push_back(api_key_of(role));
    secrets.push_back(password_of(role));
    secrets.push_back(jwt_of(role).substr(jwt_of(role).rfind('.') + 1));
  }
  for (const std::string& s : secrets) {
    EXPECT_EQ(log.find(s), std::string::npos) << "secret in the server log: " << s;
  }

  // Nor in `dataflow run --check`.
  ProcessResult check =
      run_process({DATAFLOW_BIN, "run", "--config", server_->config_path(), "--check"}, "", 30s);
  EXPECT_EQ(check.exit_code, 0) << check.err;
  EXPECT_NE(check.out.find("methods: [api_key, basic, jwt]"), std::string::npos) << check.out;
  for (const std::string& s : secrets) {
    EXPECT_EQ((check.out + check.err).find(s), std::string::npos) << "secret in --check: " << s;
  }
}

TEST_F(SecurityTest, CliSendsTokenOrUserAndPassword) {
  const std::vector<std::string> list = {DATAFLOW_BIN, "pipelines", "list", "--server",
                                         server_->url()};
  unsetenv("DATAFLOW_TOKEN");
  unsetenv("DATAFLOW_API_KEY");
  unsetenv("DATAFLOW_USER");
  unsetenv("DATAFLOW_PASSWORD");
  ProcessResult r = run_process(list, "", 30s);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("requires authentication"), std::string::npos) << r.err;

  auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> argv = list;
    argv.insert(argv.end(), extra.begin(), extra.end());
    return run_process(argv, "", 30s);
  };
  r = with({"--token", jwt_of("viewer")});
  EXPECT_EQ(r.exit_code, 0) << r.err;

  setenv("DATAFLOW_TOKEN", api_key_of("viewer").c_str(), 1);
  r = with({});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  unsetenv("DATAFLOW_TOKEN");

  setenv("DATAFLOW_USER", "admin-user", 1);
  r = with({});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("DATAFLOW_PASSWORD"), std::string::npos) << r.err;
  setenv("DATAFLOW_PASSWORD", password_of("admin").c_str(), 1);
  r = with({});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  unsetenv("DATAFLOW_USER");
  r = with({"--user", "operator-user"});
  EXPECT_NE(r.exit_code, 0) << "the admin's password is not the operator's";
  unsetenv("DATAFLOW_PASSWORD");

  // A viewer may not delete.
  setenv("DATAFLOW_TOKEN", api_key_of("viewer").c_str(), 1);
  r = run_process({DATAFLOW_BIN, "pipelines", "delete", "ghost", "--server", server_->url()}, "",
                  30s);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("may not pipeline:delete"), std::string::npos) << r.err;
  unsetenv("DATAFLOW_TOKEN");
}

// The API over TLS with `verify_client` and `methods: [mtls]`: a client
// without a certificate is refused in the handshake; a certificate whose
// subject maps to viewer may read but not create; one whose SAN maps to
// admin may create.
TEST(Mtls, ClientCertificatesRefusedMappedByTheSubjectAndBySan) {
  Pki ca;
  ca.server_cert("server");
  ca.issue("viewer", "/CN=viewer-client", "DNS:viewer.example", "clientAuth");
  ca.issue("admin", "/CN=someone", "URI:spiffe://example/admin", "clientAuth");
  ca.issue("stranger", "/CN=stranger", "DNS:stranger.example", "clientAuth");
  TempDir dir;
  const std::string config = "tls: {enabled: true, cert_file: " + ca.path("server.crt") +
                             ", key_file: " + ca.path("server.key") +
                             ", ca_file: " + ca.path("ca.crt") +
                             ", verify_client: true}\n"
                             "security:\n"
                             "  authentication:\n"
                             "    methods: [mtls]\n"
                             "    mtls:\n"
                             "      mappings:\n"
                             "        - {subject: \"CN=viewer-client\", role: viewer}\n"
                             "        - {san: \"spiffe://example/admin*\", role: admin}\n";
  ServerProcess server(DATAFLOW_BIN, dir, config);
  ASSERT_TRUE(server.ready()) << server.log();
  const std::string base = "https://127.0.0.1:" + std::to_string(server.api_port());
  // "<body>\n<status>" (000: no HTTP answer) and curl's exit code.
  auto curl = [&](const std::string& who, std::vector<std::string> args) {
    std::vector<std::string> argv = {"/usr/bin/curl",   "-sS", "--max-time",    "20", "--cacert",
                                     ca.path("ca.crt"), "-w",  "\n%{http_code}"};
    if (!who.empty()) {
      argv.insert(argv.end(), {"--cert", ca.path(who + ".crt"), "--key", ca.path(who + ".key")});
    }
    args.back() = base + args.back();
    argv.insert(argv.end(), args.begin(), args.end());
    return run_process(argv, "", 30s);
  };
  const std::string pipeline =
      "name: made-by-admin\n"
      "sources:\n  - {id: gen, type: generator, count: 10, fields: {id: \"i\"}}\n"
      "sinks:\n  - {id: out, type: file, input: gen, path: " +
      dir.file("out") + ", format: json}\n";
  const std::vector<std::string> create = {"-X",
                                           "POST",
                                           "-H",
                                           "Content-Type: application/yaml",
                                           "--data-binary",
                                           pipeline,
                                           "/api/v1/pipelines"};

  const ProcessResult none = curl("", {"/api/v1/pipelines"});
  EXPECT_NE(none.exit_code, 0) << "a client without a certificate got through: " << none.out;
  EXPECT_TRUE(none.out.ends_with("\n000")) << none.out;

  const ProcessResult viewer_get = curl("viewer", {"/api/v1/pipelines"});
  EXPECT_EQ(viewer_get.exit_code, 0) << viewer_get.err;
  EXPECT_TRUE(viewer_get.out.ends_with("\n200")) << viewer_get.out;
  const ProcessResult viewer_post = curl("viewer", create);
  EXPECT_TRUE(viewer_post.out.ends_with("\n403")) << viewer_post.out;
  EXPECT_NE(viewer_post.out.find("mtls:CN=viewer-client may not pipeline:create"),
            std::string::npos)
      << viewer_post.out;

  // A valid certificate that maps to no role: authenticated, allowed nothing.
  EXPECT_TRUE(curl("stranger", {"/api/v1/pipelines"}).out.ends_with("\n403"));

  const ProcessResult admin_post = curl("admin", create);
  EXPECT_TRUE(admin_post.out.ends_with("\n201")) << admin_post.out << server.log();
  EXPECT_TRUE(curl("admin", {"/api/v1/pipelines/made-by-admin"}).out.ends_with("\n200"));
  EXPECT_NE(server.log().find("mtls:CN=someone POST /api/v1/pipelines -> 201"), std::string::npos)
      << server.log();
}

}  // namespace
}  // namespace df::test
