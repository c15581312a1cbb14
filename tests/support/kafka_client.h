// A small Kafka client for tests, on librdkafka: an in-process mock cluster
// (MockCluster) and blocking produce / consume / offset helpers that work
// against any bootstrap address (the in-process mock, the kafka_mock helper
// process of kafka_cluster.h, a real cluster).
//
//   MockCluster kafka;                       // 3 brokers on 127.0.0.1
//   ASSERT_TRUE(kafka.create_topic("in", 4).ok());
//   ASSERT_TRUE(produce(kafka.bootstrap(), "in", values_records(100)).ok());
//   auto got = consume_all(kafka.bootstrap(), "in");
//
// Every call is bounded by its timeout. Threading: the free functions create
// their own clients and may run on any thread; a MockCluster is thread-safe
// (librdkafka's mock cluster runs on its own thread) and must outlive the
// clients that use it.
#pragma once

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "engine/core/status.h"

namespace df::test {

// librdkafka's in-process mock cluster: `brokers` brokers listening on
// 127.0.0.1 (ephemeral ports), a real Kafka protocol peer. The mock accepts
// transactions without enforcing them and auto-creates unknown topics on
// produce (with its default partition count).
class MockCluster {
 public:
  explicit MockCluster(int brokers = 3);
  ~MockCluster();
  MockCluster(const MockCluster&) = delete;
  MockCluster& operator=(const MockCluster&) = delete;

  // False when the cluster could not start; error() says why.
  bool ok() const { return cluster_ != nullptr; }
  const std::string& error() const { return error_; }
  // "127.0.0.1:port,..." of every broker.
  const std::string& bootstrap() const { return bootstrap_; }

  Status create_topic(const std::string& topic, int partitions, int replication = 1);
  // Takes broker `id` (1-based) down or up: its connections are closed and
  // new ones refused until it is up again.
  Status set_broker_down(int id);
  Status set_broker_up(int id);
  // The next `count` requests of `api_key` (RD_KAFKAP_*, e.g. 1 = Fetch) fail
  // with `error` (e.g. to simulate an authorization failure).
  void push_request_errors(int16_t api_key, size_t count, rd_kafka_resp_err_t error);
  rd_kafka_mock_cluster_t* raw() { return cluster_; }

 private:
  rd_kafka_t* handle_ = nullptr;  // hosts the cluster
  rd_kafka_mock_cluster_t* cluster_ = nullptr;
  std::string bootstrap_;
  std::string error_;
};

// One message to produce. partition -1: librdkafka's partitioner (by key,
// or spread when there is none). timestamp_ms 0: the producer's clock.
struct ProduceRecord {
  std::optional<std::string> key;
  std::optional<std::string> value;  // nullopt: a null value (tombstone)
  int32_t partition = -1;
  int64_t timestamp_ms = 0;
};

// Records with values "0", "1", ..., "n-1" (no keys), for partition
// `partition` (-1: spread).
std::vector<ProduceRecord> values_records(size_t n, int32_t partition = -1);

// Produces every record to `topic` and waits until each is acknowledged
// (acks=all). The first delivery error fails the call. `properties` are
// extra librdkafka producer properties.
Status produce(const std::string& bootstrap, const std::string& topic,
               const std::vector<ProduceRecord>& records,
               std::chrono::milliseconds timeout = std::chrono::seconds(30),
               const std::vector<std::pair<std::string, std::string>>& properties = {});

struct ConsumedMessage {
  std::string topic;
  int32_t partition = 0;
  int64_t offset = 0;
  std::optional<std::string> key;
  std::optional<std::string> value;
  int64_t timestamp_ms = -1;  // -1: none
};

// Reads every message now in `topic` (each partition from its start to its
// end as seen when it is reached), without joining a group or committing.
// Sorted by (partition, offset). Fails when the topic does not exist or the
// end is not reached within `timeout`. `properties` are extra consumer
// properties (e.g. isolation.level).
Result<std::vector<ConsumedMessage>> consume_all(
    const std::string& bootstrap, const std::string& topic,
    std::chrono::milliseconds timeout = std::chrono::seconds(30),
    const std::vector<std::pair<std::string, std::string>>& properties = {});

// The number of partitions of `topic` (NotFound when it does not exist).
Result<int> partition_count(const std::string& bootstrap, const std::string& topic,
                            std::chrono::milliseconds timeout = std::chrono::seconds(10));

// Per partition of `topic`: the end (high watermark) offset.
Result<std::map<int32_t, int64_t>> end_offsets(
    const std::string& bootstrap, const std::string& topic,
    std::chrono::milliseconds timeout = std::chrono::seconds(10));

// Per partition of `topic`: the offset `group` committed; partitions without
// a committed offset are left out.
Result<std::map<int32_t, int64_t>> committed_offsets(
    const std::string& bootstrap, const std::string& group, const std::string& topic,
    std::chrono::milliseconds timeout = std::chrono::seconds(10));

}  // namespace df::test
