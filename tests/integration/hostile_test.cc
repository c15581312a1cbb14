// The real `dataflow run` serving its API over TLS (handshake with `openssl
// s_client`, requests with `curl --cacert`, a certificate reload on SIGHUP,
// bad certificate paths at startup), and a bounded flood of oversized and
// slowloris connections while /health keeps answering within a second and
// a running pipeline keeps producing.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "cli/http_client.h"
#include "tests/support/pki.h"
#include "tests/support/server_client.h"
#include "tests/support/server_process.h"
#include "tests/support/subprocess.h"
#include "tests/support/temp_dir.h"

using namespace std::chrono_literals;

namespace df::test {
namespace {

using Clock = std::chrono::steady_clock;

ProcessResult run(const std::vector<std::string>& argv) { return run_process(argv, "", 60s); }

// curl over HTTPS; returns "<body>\n<status>" (status 000: no response).
std::string curl(const TempDir& pki, uint16_t port, const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"/usr/bin/curl",    "-sS", "--max-time",    "20", "--cacert",
                                   pki.file("ca.crt"), "-w",  "\n%{http_code}"};
  for (size_t i = 0; i + 1 < args.size(); ++i) argv.push_back(args[i]);
  argv.push_back("https://127.0.0.1:" + std::to_string(port) + args.back());
  return run(argv).out;
}

std::string tls_config(const TempDir& pki) {
  return "tls: {enabled: true, cert_file: " + pki.file("server.crt") +
         ", key_file: " + pki.file("server.key") + "}\n";
}

std::string pipeline_text(const std::string& name, const std::string& out_dir) {
  std::ostringstream p;
  p << "name: " << name << "\n"
    << "checkpoint: {interval: 200ms}\n"
    << "sources:\n"
    << "  - {id: gen, type: generator, rate: 2000, fields: {id: \"i\"}}\n"
    << "sinks:\n"
    << "  - {id: out, type: file, input: gen, path: " << out_dir << ", format: json}\n";
  return p.str();
}

// Committed lines under `dir` (the file sink's part files).
size_t committed_rows(const std::string& dir) {
  size_t rows = 0;
  std::error_code ec;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (!entry.is_regular_file() || name.empty() || name[0] == '.' || name[0] == '_') continue;
    std::ifstream in(entry.path());
    std::string line;
    while (std::getline(in, line)) ++rows;
  }
  return rows;
}

TEST(Hostile, TlsApiWithHandshakeCurlAndSighupReload) {
  Pki ca;
  ca.server_cert("server");
  const TempDir& pki = ca.dir();
  TempDir dir;
  ServerProcess server(DATAFLOW_BIN, dir, tls_config(pki));
  ASSERT_TRUE(server.ready()) << server.log();
  const uint16_t port = server.api_port();

  const ProcessResult handshake =
      run({"/usr/bin/openssl", "s_client", "-connect", "127.0.0.1:" + std::to_string(port),
           "-CAfile", pki.file("ca.crt"), "-verify_return_error", "-brief"});
  EXPECT_EQ(handshake.exit_code, 0) << handshake.err;
  EXPECT_NE(handshake.err.find("Verification: OK"), std::string::npos) << handshake.err;
  const ProcessResult old =
      run({"/usr/bin/openssl", "s_client", "-connect", "127.0.0.1:" + std::to_string(port),
           "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"});
  EXPECT_NE(old.exit_code, 0) << "TLS 1.1 was accepted";

  EXPECT_EQ(curl(pki, port, {"/api/v1/pipelines"}).substr(0, 1), "{");
  EXPECT_TRUE(curl(pki, port, {"/api/v1/pipelines"}).ends_with("\n200"));
  // A pipeline name that climbs out of the state directory is refused.
  const std::string evil =
      curl(pki, port,
           {"-X", "POST", "-H", "Content-Type: application/yaml", "--data-binary",
            pipeline_text("../evil", dir.file("out")), "/api/v1/pipelines"});
  EXPECT_TRUE(evil.ends_with("\n400")) << evil;

  // SIGHUP: the replaced certificate is served to new connections.
  const std::string first = ca.fingerprint(pki.file("server.crt"));
  EXPECT_EQ(served_fingerprint(port), first);
  ca.server_cert("next");
  std::filesystem::copy_file(pki.file("next.crt"), pki.file("server.crt"),
                             std::filesystem::copy_options::overwrite_existing);
  std::filesystem::copy_file(pki.file("next.key"), pki.file("server.key"),
                             std::filesystem::copy_options::overwrite_existing);
  const std::string second = ca.fingerprint(pki.file("server.crt"));
  ASSERT_NE(first, second);
  ::kill(server.pid(), SIGHUP);
  EXPECT_TRUE(eventually([&] { return served_fingerprint(port) == second; }, 10s)) << server.log();
  EXPECT_NE(server.log().find("TLS certificate reloaded"), std::string::npos) << server.log();
  // A broken certificate: the server says why and keeps serving the old one.
  pki.write("server.crt", "garbage\n");
  ::kill(server.pid(), SIGHUP);
  EXPECT_TRUE(eventually(
      [&] { return server.log().find("keeping the current TLS certificate") != std::string::npos; },
      10s))
      << server.log();
  EXPECT_EQ(served_fingerprint(port), second);
  EXPECT_TRUE(curl(pki, port, {"/api/v1/pipelines"}).ends_with("\n200"));
}

TEST(Hostile, BadCertificatePathsAtStartupExitOneInOneSentence) {
  TempDir dir;
  const std::string config =
      dir.write("config.yaml", "server: {host: 127.0.0.1, port: 0, data_dir: " + dir.file("data") +
                                   "}\ntls: {enabled: true, cert_file: " + dir.file("none.crt") +
                                   ", key_file: " + dir.file("none.key") + "}\n");
  const ProcessResult r = run_process({DATAFLOW_BIN, "run", "--config", config}, "", 30s);
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("cannot read the TLS certificate " + dir.file("none.crt") + "."),
            std::string::npos)
      << r.err;
}

// A raw TCP connection for hostile clients (blocking, with a send timeout).
class RawSocket {
 public:
  explicit RawSocket(uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    timeval tv{1, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  }
  ~RawSocket() { ::close(fd_); }
  RawSocket(const RawSocket&) = delete;
  RawSocket& operator=(const RawSocket&) = delete;

  bool send(const std::string& bytes) {
    return connected_ && ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL) ==
                             static_cast<ssize_t>(bytes.size());
  }
  // The status code of the response, 0 when none arrived within a second.
  int status() {
    char buf[64] = {};
    const ssize_t n = ::recv(fd_, buf, sizeof buf - 1, 0);
    if (n < 12) return 0;
    return std::atoi(buf + 9);
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
};

TEST(Hostile, FloodOfOversizedAndSlowRequestsLeavesHealthAndPipelinesRunning) {
  TempDir dir;
  ServerProcess server(DATAFLOW_BIN, dir,
                       "network: {header_timeout: 1s, request_timeout: 2s, max_connections: 64}\n");
  ASSERT_TRUE(server.ready()) << server.log();
  auto api_url = cli::parse_server_url(server.url());
  auto health_url =
      cli::parse_server_url("http://127.0.0.1:" + std::to_string(server.health_port()));
  cli::HttpClientOptions options;
  options.connect_timeout = Millis{1000};
  options.io_timeout = Millis{1000};
  cli::HttpClient api(*api_url, options);
  cli::HttpClient health(*health_url, options);

  const std::string out = dir.file("out");
  auto created = api.request("POST", "/api/v1/pipelines?start=true", pipeline_text("steady", out),
                             "application/yaml");
  ASSERT_TRUE(created.ok()) << created.status().message();
  ASSERT_EQ(created->status, 201) << created->body;
  ASSERT_TRUE(eventually([&] { return committed_rows(out) > 0; }, 30s)) << server.log();

  // The flood: 4 threads for 4 s, each cycling through an oversized header
  // (431), an oversized body (413) and slowloris connections that trickle
  // a header and are left hanging (cut by header_timeout).
  std::atomic<bool> stop{false};
  std::atomic<int> refused_431{0}, refused_413{0}, slow_opened{0};
  const uint16_t port = server.api_port();
  std::vector<std::thread> flood;
  for (int t = 0; t < 4; ++t) {
    flood.emplace_back([&] {
      std::vector<std::unique_ptr<RawSocket>> slow;
      const auto until = Clock::now() + 4s;
      while (!stop.load() && Clock::now() < until) {
        {
          RawSocket big_header(port);
          if (big_header.send("GET /api/v1/pipelines HTTP/1.1\r\nHost: x\r\nX-Big: " +
                              std::string(64 * 1024, 'a') + "\r\n\r\n") &&
              big_header.status() == 431) {
            ++refused_431;
          }
        }
        {
          RawSocket big_body(port);
          if (big_body.send(
                  "POST /api/v1/pipelines HTTP/1.1\r\nHost: x\r\n"
                  "Content-Type: application/yaml\r\nContent-Length: 1000000000\r\n\r\n") &&
              big_body.status() == 413) {
            ++refused_413;
          }
        }
        auto s = std::make_unique<RawSocket>(port);
        if (s->send("GET /api/v1/pipelines HTTP/1.1\r\nHost: x\r\nX-Slow: ")) ++slow_opened;
        slow.push_back(std::move(s));
        for (auto& c : slow) c->send("a");
        if (slow.size() > 12) slow.erase(slow.begin());
        std::this_thread::sleep_for(50ms);
      }
    });
  }
  const size_t rows_before = committed_rows(out);
  int health_checks = 0;
  const auto flood_end = Clock::now() + 4s;
  while (Clock::now() < flood_end) {
    const auto started = Clock::now();
    auto r = health.request("GET", "/health");
    EXPECT_TRUE(r.ok() && r->status == 200) << (r.ok() ? r->body : r.status().message());
    EXPECT_LT(Clock::now() - started, 1s) << "/health was slow under the flood";
    ++health_checks;
    std::this_thread::sleep_for(100ms);
  }
  stop.store(true);
  for (auto& t : flood) t.join();
  EXPECT_GE(health_checks, 10);
  EXPECT_GT(refused_431.load(), 0);
  EXPECT_GT(refused_413.load(), 0);
  EXPECT_GT(slow_opened.load(), 0);
  // The pipeline kept producing through the flood.
  EXPECT_TRUE(eventually([&] { return committed_rows(out) > rows_before + 1000; }, 10s))
      << rows_before << " rows before, " << committed_rows(out) << " after";
  // And the API itself answers again once the flood is over.
  auto after = api.request("GET", "/api/v1/pipelines");
  ASSERT_TRUE(after.ok()) << after.status().message();
  EXPECT_EQ(after->status, 200);
}

}  // namespace
}  // namespace df::test
