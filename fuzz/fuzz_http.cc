// Fuzzes the HTTP request path: each input is the raw bytes a client sends
// on one connection. They go over loopback TCP to a real HttpServer (the
// session is bound to a socket: http.cc has no in-memory entry), so they
// pass through everything a request meets: Beast's request parser with our
// header/body limits (431/413/400), target and query decoding, request ids,
// keep-alive and pipelining, the Router (404/405/426, WebSocket upgrades),
// the AccessControl guard (API keys, 401/403/429, audit) and the REST
// handlers of api.cc over a real PipelineManager (RocksDB metadata in a
// temporary directory). The dictionary holds the API keys, so inputs
// reach the handlers of both a viewer and an admin; the manager may run no
// pipeline (max_running 0), so a fuzzed POST can create, change, roll back
// or delete pipelines but never start one.
//
// A handler that throws (the server's "internal error" 500) aborts the run.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

#include "config/pipeline_compiler.h"
#include "config/server_config.h"
#include "engine/server/api.h"
#include "engine/server/auth.h"
#include "engine/server/http.h"
#include "engine/server/pipeline_manager.h"
#include "fuzz/fuzz_common.h"

namespace {

using namespace df;

constexpr std::string_view kSecurity = R"(security:
  auth:
    enabled: true
    api_keys:
      - {name: fuzz-viewer, key: fuzz-viewer-key, role: viewer}
      - {name: fuzz-admin, key: fuzz-admin-key, role: admin}
)";

constexpr std::string_view kSeedPipeline = R"(name: seeded
sources:
  - {id: gen, type: generator, count: 10, fields: {i: "i"}}
sinks:
  - {id: out, type: blackhole, input: gen}
)";

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "fuzz_http setup: %s\n", what.c_str());
  std::abort();
}

server::CompileResult compile(const std::string& text, const std::string& source) {
  config::CompileOutcome out = config::compile_pipeline(text, source, plan::PlanOptions{});
  server::CompileResult result;
  result.errors = std::move(out.problems);
  if (out.pipeline) {
    result.pipeline =
        server::CompiledPipeline{out.pipeline->plan->settings.name, out.pipeline->plan,
                                 out.pipeline->healing, out.pipeline->restart_set};
  }
  return result;
}

// The server, its manager and its port; built once, kept until exit.
struct Target {
  std::unique_ptr<server::PipelineManager> manager;
  std::unique_ptr<server::HttpServer> server;
  uint16_t port = 0;
};

Target& target() {
  static Target* t = [] {
    auto* made = new Target;
    char dir[] = "/tmp/dataflow-fuzz-http-XXXXXX";
    if (!mkdtemp(dir)) fail("mkdtemp failed");
    auto config = config::parse_server_config(kSecurity, "fuzz-config.yaml");
    if (!config.ok()) fail(config.status().message());
    auto access = server::AccessControl::create(config->security);
    if (!access.ok()) fail(access.status().message());
    server::ManagerOptions options;
    options.data_dir = dir;
    options.run_options.workers = 1;
    options.max_running = 0;  // fuzzed requests may not start pipelines
    auto manager = server::PipelineManager::open(options, compile);
    if (!manager.ok()) fail(manager.status().message());
    made->manager = std::move(*manager);
    if (auto created = made->manager->create(std::string(kSeedPipeline), "yaml", false);
        !created.ok()) {
      fail(created.status().message());
    }
    auto router = std::make_shared<server::Router>();
    server::add_api_routes(*router, *made->manager, *access);
    server::HttpServerOptions http;
    http.listeners.push_back({.host = "127.0.0.1", .port = 0, .router = router});
    http.max_body_size = 64 * 1024;
    http.threads = 1;
    http.idle_timeout = std::chrono::seconds(2);
    http.header_timeout = std::chrono::seconds(2);
    http.request_timeout = std::chrono::seconds(2);
    made->server = std::make_unique<server::HttpServer>(std::move(http));
    if (Status started = made->server->start(); !started.ok()) fail(started.message());
    made->port = made->server->port(0);
    return made;
  }();
  return *t;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::quiet_logs();
  (void)target();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const uint16_t port = target().port;
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  timeval timeout{.tv_sec = 5, .tv_usec = 0};  // bounds a server that never answers
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    ::close(fd);
    return 0;
  }
  // All of the input, then EOF: the server answers what it could parse
  // and closes (an incomplete request is not waited for).
  for (size_t sent = 0; sent < size;) {
    const ssize_t n = ::send(fd, data + sent, size - sent, MSG_NOSIGNAL);
    if (n <= 0) break;
    sent += static_cast<size_t>(n);
  }
  ::shutdown(fd, SHUT_WR);
  std::string response;
  char buffer[16384];
  for (;;) {
    const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
    if (n <= 0) break;
    if (response.size() < (1u << 20)) response.append(buffer, static_cast<size_t>(n));
  }
  ::close(fd);
  if (response.find("HTTP/1.1 500 ") != std::string::npos &&
      response.find("internal error (request ") != std::string::npos) {
    std::fprintf(stderr, "fuzz_http: a handler failed with an exception:\n%s\n", response.c_str());
    std::abort();
  }
  return 0;
}
