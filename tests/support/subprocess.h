// Runs the real `dataflow` binary (or any program) from tests.
//
// Every wait is bounded: a child still running at its deadline is killed
// (SIGKILL) and reported as timed out. Not thread-safe per object.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

#include "tests/support/temp_dir.h"

namespace df::test {

struct ProcessResult {
  int exit_code = -1;  // -1 when killed by a signal
  int signal = 0;
  bool timed_out = false;
  long max_rss_kb = 0;  // peak resident set of the child (run_process only)
  std::string out;
  std::string err;
};

// Runs argv[0] with argv in `cwd` (empty: current dir), feeding nothing on
// stdin, capturing stdout and stderr, killed after `timeout`.
ProcessResult run_process(const std::vector<std::string>& argv, const std::string& cwd,
                          std::chrono::milliseconds timeout);

// The run events `dataflow exec` printed on stderr ("dataflow: event {...}"
// lines, the JSON after the tag), in order.
std::vector<std::string> exec_events(const std::string& err);

// A child whose stdout is a pipe the test reads at its own pace.
class Child {
 public:
  // Starts argv; stderr goes to a file (err_path) so it can never fill up.
  Child(const std::vector<std::string>& argv, const std::string& cwd, const std::string& err_path);
  ~Child();  // kills the child if it still runs
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  pid_t pid() const { return pid_; }
  int stdout_fd() const { return out_fd_; }
  // Reads what is available within `budget`, at most max_bytes; returns bytes read.
  size_t read_for(std::chrono::milliseconds budget, size_t max_bytes, std::string* sink = nullptr);
  // Peak resident set (VmHWM) in bytes, from /proc; 0 if unavailable.
  size_t peak_rss_bytes() const;
  void send_signal(int sig);
  // Closes the read end of the child's stdout: its next write fails (EPIPE).
  void close_stdout();
  // Waits up to `timeout` for exit (draining stdout meanwhile); kills after.
  ProcessResult wait(std::chrono::milliseconds timeout);

 private:
  pid_t pid_ = -1;
  int out_fd_ = -1;
  std::string err_path_;
};

}  // namespace df::test
