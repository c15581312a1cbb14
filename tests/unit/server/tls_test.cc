// HTTPS on the real HTTP server: certificates made with the `openssl` CLI in
// a temporary directory, requests made with `curl` and `openssl s_client`.
// Covers the TLS version floor, client-certificate verification (and the
// request's client_subject / client_sans) and certificate reload.
#include "engine/server/tls.h"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/server/http.h"
#include "tests/support/pki.h"
#include "tests/support/subprocess.h"
#include "tests/support/temp_dir.h"

namespace df::server {
namespace {

using namespace std::chrono_literals;
using test::Pki;
using test::ProcessResult;
using test::run_process;
using test::served_fingerprint;
using test::TempDir;

ProcessResult run(const std::vector<std::string>& argv) { return run_process(argv, "", 30s); }

struct TlsServer {
  TlsServer(std::shared_ptr<TlsContext> context) : tls(std::move(context)) {
    auto router = std::make_shared<Router>();
    router->add("GET", "/who", [](const HttpRequest& r) {
      std::string body = "subject=" + r.client_subject + "\n";
      for (const auto& san : r.client_sans) body += "san=" + san + "\n";
      return HttpResponse::text(200, body);
    });
    // Sends one message and closes: a WSS client sees both.
    router->add_websocket("/ws", [](const HttpRequest&, std::shared_ptr<WebSocketConnection> ws) {
      ws->send("hello over wss");
      ws->close();
      return std::optional<HttpResponse>();
    });
    HttpServerOptions options;
    options.listeners = {HttpListener{"127.0.0.1", 0, router, tls}};
    options.header_timeout = 5s;
    server = std::make_unique<HttpServer>(std::move(options));
    const Status started = server->start();
    EXPECT_TRUE(started.ok()) << started.to_string();
    port = server->port(0);
  }
  std::string url(const std::string& path = "/who") const {
    return "https://127.0.0.1:" + std::to_string(port) + path;
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(port); }

  std::shared_ptr<TlsContext> tls;
  std::unique_ptr<HttpServer> server;
  uint16_t port = 0;
};

std::shared_ptr<TlsContext> make_context(const Pki& pki, const std::string& name,
                                         bool with_ca = false, bool verify_client = false) {
  auto created = TlsContext::create({.cert_file = pki.path(name + ".crt"),
                                     .key_file = pki.path(name + ".key"),
                                     .ca_file = with_ca ? pki.path("ca.crt") : "",
                                     .verify_client = verify_client});
  EXPECT_TRUE(created.ok()) << created.status().to_string();
  return created.ok() ? *created : nullptr;
}

TEST(TlsTest, HttpsRequestsWorkAndKeepAliveIsReused) {
  Pki pki;
  pki.server_cert("server");
  TlsServer s(make_context(pki, "server"));
  // Two URLs in one curl: the second reuses the connection.
  const ProcessResult r = run({"/usr/bin/curl", "-sS", "--cacert", pki.path("ca.crt"), "-w",
                               "%{http_code} %{num_connects}\n", s.url(), s.url()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("subject=\n200 1\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("subject=\n200 0\n"), std::string::npos) << r.out;
  // Plain HTTP on the TLS port gets nowhere.
  const ProcessResult plain =
      run({"/usr/bin/curl", "-sS", "--max-time", "10", "http://" + s.address() + "/who"});
  EXPECT_NE(plain.exit_code, 0);
}

TEST(TlsTest, WebSocketsWorkOverTls) {
  Pki pki;
  pki.server_cert("server");
  TlsServer s(make_context(pki, "server"));
  // s_client sends the upgrade and prints what comes back; it does not answer
  // the close frame, so `timeout` ends it.
  const ProcessResult r =
      run({"/bin/sh", "-c",
           "printf 'GET /ws HTTP/1.1\\r\\nHost: x\\r\\nUpgrade: websocket\\r\\nConnection: "
           "Upgrade\\r\\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\\r\\n"
           "Sec-WebSocket-Version: 13\\r\\n\\r\\n' | timeout 2 /usr/bin/openssl s_client -quiet "
           "-connect " +
               s.address() + " -CAfile " + pki.path("ca.crt") + " 2>/dev/null"});
  EXPECT_NE(r.out.find("HTTP/1.1 101 Switching Protocols"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("hello over wss"), std::string::npos) << r.out;
}

TEST(TlsTest, Tls11IsRefusedTls12And13AreAccepted) {
  Pki pki;
  pki.server_cert("server");
  TlsServer s(make_context(pki, "server"));
  // SECLEVEL=0 lets the client offer TLS 1.1, so the refusal is the server's.
  const ProcessResult old = run({"/usr/bin/openssl", "s_client", "-connect", s.address(), "-tls1_1",
                                 "-cipher", "DEFAULT@SECLEVEL=0"});
  EXPECT_NE(old.exit_code, 0) << old.out;
  for (const char* version : {"-tls1_2", "-tls1_3"}) {
    const ProcessResult ok = run({"/usr/bin/openssl", "s_client", "-connect", s.address(), version,
                                  "-CAfile", pki.path("ca.crt"), "-verify_return_error"});
    EXPECT_EQ(ok.exit_code, 0) << version << ": " << ok.err;
  }
}

TEST(TlsTest, VerifyClientRefusesWithoutACertificateAndFillsTheSubjectWithOne) {
  Pki pki;
  pki.server_cert("server");
  pki.issue("alice", "/O=Example/CN=alice",
            "DNS:alice.example,URI:spiffe://example/alice,email:alice@example.com", "clientAuth");
  TlsServer s(make_context(pki, "server", /*with_ca=*/true, /*verify_client=*/true));
  const ProcessResult without =
      run({"/usr/bin/curl", "-sS", "--max-time", "10", "--cacert", pki.path("ca.crt"), s.url()});
  EXPECT_NE(without.exit_code, 0) << without.out;
  EXPECT_EQ(without.out.find("subject="), std::string::npos);

  const ProcessResult with =
      run({"/usr/bin/curl", "-sS", "--max-time", "10", "--cacert", pki.path("ca.crt"), "--cert",
           pki.path("alice.crt"), "--key", pki.path("alice.key"), s.url()});
  ASSERT_EQ(with.exit_code, 0) << with.err;
  EXPECT_NE(with.out.find("subject=CN=alice,O=Example\n"), std::string::npos) << with.out;
  EXPECT_NE(with.out.find("san=alice.example\n"), std::string::npos) << with.out;
  EXPECT_NE(with.out.find("san=spiffe://example/alice\n"), std::string::npos) << with.out;
  EXPECT_NE(with.out.find("san=alice@example.com\n"), std::string::npos) << with.out;

  // A certificate from another CA is refused too.
  Pki other;
  other.issue("mallory", "/CN=mallory", "DNS:mallory", "clientAuth");
  const ProcessResult foreign =
      run({"/usr/bin/curl", "-sS", "--max-time", "10", "--cacert", pki.path("ca.crt"), "--cert",
           other.path("mallory.crt"), "--key", other.path("mallory.key"), s.url()});
  EXPECT_NE(foreign.exit_code, 0) << foreign.out;
}

TEST(TlsTest, ReloadServesTheNewCertificateAndKeepsTheOldOneWhenTheFilesAreBad) {
  Pki pki;
  pki.server_cert("server");
  TlsServer s(make_context(pki, "server"));
  const std::string first = pki.fingerprint(pki.path("server.crt"));
  EXPECT_EQ(served_fingerprint(s.port), first);

  // Replace the files in place (as certbot or cert-manager would) and reload.
  pki.server_cert("next");
  std::filesystem::copy_file(pki.path("next.crt"), pki.path("server.crt"),
                             std::filesystem::copy_options::overwrite_existing);
  std::filesystem::copy_file(pki.path("next.key"), pki.path("server.key"),
                             std::filesystem::copy_options::overwrite_existing);
  const std::string second = pki.fingerprint(pki.path("server.crt"));
  ASSERT_NE(first, second);
  ASSERT_TRUE(s.tls->reload().ok());
  EXPECT_EQ(served_fingerprint(s.port), second);

  // A broken certificate file: the reload fails saying why, the old one stays.
  pki.dir().write("server.crt", "not a certificate\n");
  const Status bad = s.tls->reload();
  EXPECT_FALSE(bad.ok());
  EXPECT_NE(bad.message().find(pki.path("server.crt")), std::string::npos) << bad.message();
  EXPECT_EQ(served_fingerprint(s.port), second);
  // A key that does not match the certificate is refused as well.
  std::filesystem::copy_file(pki.path("next.crt"), pki.path("server.crt"),
                             std::filesystem::copy_options::overwrite_existing);
  std::filesystem::copy_file(pki.path("ca.key"), pki.path("server.key"),
                             std::filesystem::copy_options::overwrite_existing);
  const Status mismatch = s.tls->reload();
  EXPECT_FALSE(mismatch.ok());
  EXPECT_EQ(mismatch.message(),
            "cannot load the TLS private key " + pki.path("server.key") + ": key values mismatch");
  EXPECT_EQ(served_fingerprint(s.port), second);
}

TEST(TlsTest, CreateFailsWithOneSentenceNamingTheFile) {
  Pki pki;
  pki.server_cert("server");
  auto missing = TlsContext::create({.cert_file = pki.path("nope.crt"),
                                     .key_file = pki.path("server.key"),
                                     .ca_file = "",
                                     .verify_client = false});
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().message(), "cannot read the TLS certificate " + pki.path("nope.crt"));
  auto no_ca = TlsContext::create({.cert_file = pki.path("server.crt"),
                                   .key_file = pki.path("server.key"),
                                   .ca_file = "",
                                   .verify_client = true});
  ASSERT_FALSE(no_ca.ok());
  EXPECT_EQ(no_ca.status().message(), "tls.verify_client needs tls.ca_file");
}

}  // namespace
}  // namespace df::server
