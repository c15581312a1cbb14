// What the Kafka source and sink share (internal to connectors/): the
// server-wide defaults, reading the options every Kafka node has (brokers,
// tuning keys, `properties:`), building a librdkafka configuration from them,
// owning librdkafka handles, and turning librdkafka errors into Status.
//
// Threading: everything here is free functions and plain values; the handles
// follow librdkafka's rules (rd_kafka_t is thread-safe).
#pragma once

#include <librdkafka/rdkafka.h>

#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/core/config_value.h"
#include "engine/core/status.h"

namespace df::connectors::kafka {

// `sources.kafka` and `sinks.kafka` of the server config: option maps whose
// keys fill what a node leaves unset (a node's own option always wins).
// A null ConfigValue means no defaults.
struct KafkaDefaults {
  ConfigValue source;
  ConfigValue sink;
};

// One tuning key of the administrator guide and the librdkafka property it
// sets, e.g. {"fetch_min_bytes", "fetch.min.bytes"}.
struct TuningKey {
  std::string_view option;
  std::string_view property;
};

// The client part of a Kafka node's options, in the order they are applied:
// bootstrap servers, tuning keys, then `properties:` (which may override
// anything, including what the connector sets itself, except where the
// connector documents that it refuses a property).
struct ClientOptions {
  std::string brokers;
  std::vector<std::pair<std::string, std::string>> properties;  // librdkafka name, value
};

// The node's option `key` when it sets it (marking it known), else the
// server-wide default's (nullptr when neither has it).
const ConfigValue* option_or_default(OptionReader& opts, const ConfigValue& defaults,
                                     std::string_view key);

// Reads `brokers`, the keys of `tuning` and `properties` from `opts`, taking
// each from `defaults` (a map, or null) when the node does not set it.
// Reports problems to opts.diags() and returns nullopt (e.g. no brokers
// anywhere, a property value that is a map).
std::optional<ClientOptions> read_client_options(OptionReader& opts, const ConfigValue& defaults,
                                                 std::span<const TuningKey> tuning);

// statistics.interval.ms the source and sink set unless `properties` do:
// how often they learn how many brokers are up (and the source refreshes its
// consumer lag). 0 in `properties` turns both off.
inline constexpr std::string_view kStatsIntervalMs = "1000";

// Whether a client reaches its brokers, for OperatorContext::report_brokers:
// librdkafka's statistics say how many brokers are connected (state UP), its
// error callback why none is (all brokers down, transport errors).
// Thread-safe (a producer's callbacks run on I/O threads).
class BrokerWatch {
 public:
  struct Report {
    int up = 0;           // brokers connected
    std::string problem;  // non-empty while none is: why
  };
  // librdkafka's statistics JSON (the stats callback).
  Report on_stats(std::string_view json);
  // An error callback's error. A report when it says that no broker is
  // reachable (all brokers down); connection errors are remembered as the
  // reason for when statistics show no broker up.
  std::optional<Report> on_error(rd_kafka_resp_err_t err, std::string_view reason);

 private:
  std::mutex mu_;
  std::string last_error_;  // guarded by mu_: the last connection error since one was up
};

struct ConfDeleter {
  void operator()(rd_kafka_conf_t* c) const { rd_kafka_conf_destroy(c); }
};
struct HandleDeleter {
  void operator()(rd_kafka_t* k) const { rd_kafka_destroy(k); }
};
struct QueueDeleter {
  void operator()(rd_kafka_queue_t* q) const { rd_kafka_queue_destroy(q); }
};
struct PartitionListDeleter {
  void operator()(rd_kafka_topic_partition_list_t* l) const {
    rd_kafka_topic_partition_list_destroy(l);
  }
};
using ConfPtr = std::unique_ptr<rd_kafka_conf_t, ConfDeleter>;
using HandlePtr = std::unique_ptr<rd_kafka_t, HandleDeleter>;
using QueuePtr = std::unique_ptr<rd_kafka_queue_t, QueueDeleter>;
using PartitionListPtr = std::unique_ptr<rd_kafka_topic_partition_list_t, PartitionListDeleter>;

// A configuration with bootstrap.servers and every property of `options`
// set; an unknown property or bad value is an InvalidArgument naming it
// ("kafka property 'fetch.min.bytes': ..."). librdkafka's log lines go to
// our logger (component `kafka`, from librdkafka's threads); when the
// properties set `debug` (e.g. "broker,fetch"), its debug lines are logged
// at info, so `dataflow exec` and a server at its default level show them.
Result<ConfPtr> make_conf(const ClientOptions& options);

// A consumer or producer made from `conf` (taken over, also on failure).
// Errors are InvalidArgument with librdkafka's reason (e.g. a property that
// only the other client type accepts).
Result<HandlePtr> make_handle(rd_kafka_type_t type, ConfPtr conf, std::string_view what);

// Maps a librdkafka error to a Status whose message starts with `what`
// (e.g. "kafka source 'in' partition orders/3") and carries the broker's
// reason. The Status code says how the engine should treat it: retriable
// errors as Unavailable, authentication/authorization and unknown topics
// as the run-failing codes. RD_KAFKA_RESP_ERR_NO_ERROR is OK.
Status kafka_status(rd_kafka_resp_err_t err, std::string_view what, std::string_view reason = {});
// The same for the rd_kafka_error_t of the transactional and admin calls
// (nullptr: OK); destroys `error`.
Status kafka_status(rd_kafka_error_t* error, std::string_view what);

}  // namespace df::connectors::kafka
