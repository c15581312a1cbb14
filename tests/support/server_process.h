// A DataFlow server (`dataflow run --config`) as a child process for
// integration tests: its config.yaml written into a directory the caller
// owns (so a second ServerProcess on the same directory is a restart), on
// ports of 127.0.0.1 that were free a moment ago, ready once GET
// /health/ready answers 200. Not thread-safe; one object per server.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tests/support/subprocess.h"
#include "tests/support/temp_dir.h"

namespace df::test {

// `n` distinct ports of 127.0.0.1 free a moment ago (bound together to port
// 0, then closed).
std::vector<uint16_t> free_ports(size_t n);

// Whether `pid` has exited (a zombie not yet reaped counts as exited).
bool process_exited(pid_t pid);

class ServerProcess {
 public:
  // Starts `dataflow` (the binary at `binary`) with data in <dir>/data and
  // checkpoints in <dir>/checkpoints; `extra_config` is appended to the
  // generated config.yaml (e.g. a `performance:` section). Tries up to
  // three times on new ports when a port was taken meanwhile.
  ServerProcess(std::string binary, const TempDir& dir, std::string extra_config = "");
  // SIGTERM and a wait of up to 40 s when still running; expects exit 0.
  ~ServerProcess();
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  bool ready() const { return ready_; }
  uint16_t api_port() const { return ports_[0]; }
  uint16_t metrics_port() const { return ports_[1]; }
  uint16_t health_port() const { return ports_[2]; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(api_port()); }
  std::string checkpoints_dir() const { return dir_.file("checkpoints"); }
  std::string config_path() const { return dir_.file("config.yaml"); }
  // The server's stderr so far.
  std::string log() const { return read_file(err_path_); }
  pid_t pid() const;

  // Sends `signal` and waits up to `timeout` for the exit.
  ProcessResult stop(int signal, std::chrono::milliseconds timeout);

 private:
  void start();

  const std::string binary_;
  const TempDir& dir_;
  const std::string extra_config_;
  const std::string err_path_;
  std::vector<uint16_t> ports_{0, 0, 0};
  std::unique_ptr<Child> child_;
  bool ready_ = false;
};

}  // namespace df::test
