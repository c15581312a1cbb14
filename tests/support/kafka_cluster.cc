#include "tests/support/kafka_cluster.h"

#include <signal.h>

#include <chrono>

namespace df::test {

using namespace std::chrono_literals;

std::string KafkaCluster::helper_path() { return DF_KAFKA_MOCK_BIN; }

KafkaCluster::KafkaCluster(const std::vector<KafkaTopicSpec>& topics, int brokers) {
  std::vector<std::string> argv{helper_path(), "--brokers", std::to_string(brokers)};
  for (const auto& t : topics) {
    argv.push_back("--topic");
    argv.push_back(t.name + ":" + std::to_string(t.partitions));
  }
  const std::string err_path = dir_.file("kafka_mock.err");
  child_ = std::make_unique<Child>(argv, dir_.str(), err_path);
  // Bounded wait for the first stdout line: the bootstrap address.
  std::string out;
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (std::chrono::steady_clock::now() < deadline) {
    const auto before = std::chrono::steady_clock::now();
    const size_t got = child_->read_for(200ms, 4096, &out);
    const size_t nl = out.find('\n');
    if (nl != std::string::npos) {
      bootstrap_ = out.substr(0, nl);
      break;
    }
    // read_for returns early with nothing only at end of file: the helper exited.
    if (got == 0 && std::chrono::steady_clock::now() - before < 150ms) break;
  }
  if (bootstrap_.empty()) {
    const ProcessResult r = child_->wait(2s);
    error_ = "kafka_mock did not report its address within 10 s (exit " +
             std::to_string(r.exit_code) + "): " + read_file(err_path) + out;
    child_.reset();
  }
}

bool KafkaCluster::set_brokers_down() { return signal_and_confirm(SIGUSR1, "down"); }
bool KafkaCluster::set_brokers_up() { return signal_and_confirm(SIGUSR2, "up"); }

bool KafkaCluster::signal_and_confirm(int sig, const std::string& line) {
  if (!child_) return false;
  child_->send_signal(sig);
  std::string out;
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (std::chrono::steady_clock::now() < deadline) {
    const auto before = std::chrono::steady_clock::now();
    const size_t got = child_->read_for(200ms, 4096, &out);
    if (out.find(line + "\n") != std::string::npos) return true;
    if (got == 0 && std::chrono::steady_clock::now() - before < 150ms) return false;  // exited
  }
  return false;
}

KafkaCluster::~KafkaCluster() {
  if (child_) {
    child_->send_signal(SIGTERM);
    child_->wait(5s);
  }
}

}  // namespace df::test
