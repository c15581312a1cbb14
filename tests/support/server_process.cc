#include "tests/support/server_process.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <thread>

#include "cli/http_client.h"

namespace df::test {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

std::vector<uint16_t> free_ports(size_t n) {
  std::vector<int> fds;
  std::vector<uint16_t> ports;
  for (size_t i = 0; i < n; ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t len = sizeof addr;
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      ADD_FAILURE() << "cannot bind a port on 127.0.0.1";
    }
    fds.push_back(fd);
    ports.push_back(ntohs(addr.sin_port));
  }
  for (int fd : fds) ::close(fd);
  return ports;
}

bool process_exited(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return true;
  const size_t paren = line.rfind(')');
  return paren == std::string::npos || paren + 2 >= line.size() || line[paren + 2] == 'Z';
}

ServerProcess::ServerProcess(std::string binary, const TempDir& dir, std::string extra_config)
    : binary_(std::move(binary)),
      dir_(dir),
      extra_config_(std::move(extra_config)),
      err_path_(dir.file("server-" + std::to_string(::getpid()) + "-" +
                         std::to_string(Clock::now().time_since_epoch().count()) + ".err")) {
  // A port taken between free_ports() and the server's bind makes the
  // server exit: try again on new ports.
  for (int attempt = 0; attempt < 3 && !ready_; ++attempt) start();
}

ServerProcess::~ServerProcess() {
  if (!child_ || process_exited(child_->pid())) return;
  auto r = stop(SIGTERM, 40s);
  EXPECT_EQ(r.exit_code, 0) << "the server did not stop cleanly: " << log();
}

pid_t ServerProcess::pid() const { return child_ ? child_->pid() : -1; }

ProcessResult ServerProcess::stop(int signal, std::chrono::milliseconds timeout) {
  child_->send_signal(signal);
  return child_->wait(timeout);
}

void ServerProcess::start() {
  ports_ = free_ports(3);
  std::ostringstream config;
  config << "server: {host: 127.0.0.1, port: " << ports_[0] << ", data_dir: " << dir_.file("data")
         << ", shutdown_grace_period: 20s}\n"
         << "runtime: {workers: 2, checkpoint_storage: " << checkpoints_dir() << "}\n"
         << "monitoring:\n"
         << "  metrics: {host: 127.0.0.1, port: " << ports_[1] << "}\n"
         << "  health: {host: 127.0.0.1, port: " << ports_[2] << "}\n"
         << "  logging: {level: info, format: text, output: stderr}\n"
         << extra_config_;
  const std::string path = dir_.write("config.yaml", config.str());
  child_.reset();
  child_ = std::make_unique<Child>(std::vector<std::string>{binary_, "run", "--config", path},
                                   dir_.str(), err_path_);

  // Ready when GET /health/ready answers 200 (bounded: 15 s).
  auto url = cli::parse_server_url("http://127.0.0.1:" + std::to_string(ports_[2]));
  cli::HttpClientOptions options;
  options.connect_timeout = Millis{500};
  options.io_timeout = Millis{2000};
  cli::HttpClient health(*url, options);
  const auto deadline = Clock::now() + 15s;
  while (Clock::now() < deadline && !process_exited(child_->pid())) {
    auto r = health.request("GET", "/health/ready");
    if (r.ok() && r->status == 200) {
      ready_ = true;
      return;
    }
    std::this_thread::sleep_for(50ms);
  }
  child_->wait(5s);
  child_.reset();
}

}  // namespace df::test
