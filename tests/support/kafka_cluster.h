// A librdkafka mock Kafka cluster for tests: the kafka_mock helper
// (tests/support/kafka) run as a child process, 3 brokers listening on
// 127.0.0.1, with the given topics created before it reports its address.
//
//   KafkaCluster kafka({{"in", 4}, {"out", 1}});
//   ASSERT_TRUE(kafka.ok()) << kafka.error();
//   ... "brokers: " + kafka.bootstrap() ...
//
// Produce and consume with tests/support/kafka_client.h or kcat. The mock
// accepts transactions but does not enforce them; topics it does not know are
// auto-created on first produce.
//
// Ownership and threading: the object owns the child process and stops it
// (SIGTERM, then SIGKILL after 5 s) in its destructor; if the test process
// dies first the helper stops itself (parent-death signal). Not thread-safe;
// bootstrap() may be read from any thread once constructed.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "tests/support/subprocess.h"
#include "tests/support/temp_dir.h"

namespace df::test {

struct KafkaTopicSpec {
  std::string name;
  int partitions = 1;
};

class KafkaCluster {
 public:
  // The kafka_mock program this build made.
  static std::string helper_path();

  // Starts the cluster and waits (at most 10 s) for its bootstrap address.
  explicit KafkaCluster(const std::vector<KafkaTopicSpec>& topics, int brokers = 3);
  ~KafkaCluster();
  KafkaCluster(const KafkaCluster&) = delete;
  KafkaCluster& operator=(const KafkaCluster&) = delete;

  bool ok() const { return !bootstrap_.empty(); }
  // Why it did not start, with the helper's stderr.
  const std::string& error() const { return error_; }
  // "127.0.0.1:port,127.0.0.1:port,...", the brokers' address list.
  const std::string& bootstrap() const { return bootstrap_; }
  // Takes every broker down (connections closed, new ones refused) or up
  // again; returns once the helper confirmed it (false after 10 s without).
  bool set_brokers_down();
  bool set_brokers_up();

 private:
  TempDir dir_;
  std::unique_ptr<Child> child_;
  std::string bootstrap_;
  std::string error_;

  bool signal_and_confirm(int sig, const std::string& line);
};

}  // namespace df::test
