// `type: kafka` sink (connectors/kafka/README.md has the option table).
//
// Options: brokers, topic (required), key (an expression over the input row;
// its value, of any type, becomes the message key as text; null or absent:
// no key), format (json|csv value encoding, one row per message; csv takes
// `csv: {delimiter}`), batch_size, linger_ms, compression_type, acks (the
// producer keys batch.size, linger.ms, compression.type, acks), properties
// (any librdkafka producer property; applied last), delivery
// (at_least_once|exactly_once; default the pipeline's checkpoint.delivery),
// transactional_id_prefix (default dataflow-<pipeline>-<node>). brokers, the
// four producer keys and properties default to the server's `sinks.kafka`.
// The sink sets allow.auto.create.topics=false (properties may override):
// a topic that does not exist fails the run.
//
// Delivery:
// - at_least_once: one producer per subtask (not transactional). Rows between
//   two barriers form an epoch; snapshot(n)'s deferred completion is called
//   once every message of that epoch and all earlier ones has its delivery
//   report (no rd_kafka_flush, so the worker never waits). A failed delivery
//   fails that checkpoint and the run. Without checkpoints finish() waits
//   (drained() == false) until everything is delivered.
// - exactly_once with checkpoints: transactional producers in slots with
//   stable transactional.ids `<prefix>-<subtask>-<slot>`. An epoch is one
//   transaction on one slot; at snapshot(n) it is closed (its deferred
//   completion waits for every delivery report, as above) and recorded as
//   pending for n, and the next epoch starts on another slot whose
//   transaction is already begun, so the pipeline does not wait for the
//   commit. checkpoint_complete(n) commits the pending transactions of
//   checkpoints <= n and begins the next one on the freed slot. open()
//   calls init_transactions for every slot the restored meta lists (at least
//   two), which fences the previous run's producers and aborts what they
//   left open. close() aborts the current transaction when it holds rows.
//   Without checkpoints exactly_once behaves as at_least_once (logged).
//   Meta: {"delivery": "exactly_once", "transactional_id_prefix": "p",
//          "slots": 2, "pending": [{"checkpoint": 7, "slot": 1}]}
//   (at_least_once: {"delivery": "at_least_once"}).
//
// Observing the transactions: every transactional step is logged (info,
// component kafka-sink) and, when the environment variable
// DATAFLOW_KAFKA_TXN_LOG names a file at open(), appended to it as one line
// "<node>/<subtask> <slot> init|begin|commit|abort <checkpoint>", where the
// checkpoint is, for init and begin, the last one before the transaction
// (0 on a fresh start), for commit and abort the one whose barrier closed
// it (`final` for the end of input; abort of an unclosed transaction names
// the last checkpoint before it). A test and debugging aid: the librdkafka
// mock cluster accepts transactions without enforcing them.
//
// Errors: the topic's metadata is checked when the subtask opens; an
// unknown topic or an authorization/authentication failure fails the run
// with the broker's reason, as do fatal producer errors (e.g. fenced by
// another producer with the same transactional.id). Unreachable brokers are
// retried with backoff and logged (librdkafka reconnects by itself).
//
// Threading: rows are encoded and handed to librdkafka
// (rd_kafka_produce_batch, non-blocking) on the task thread. Delivery
// reports are served by rd_kafka_poll jobs on ctx.io(), started by
// librdkafka's queue event callback when reports arrive (no busy polling);
// transactional calls and the metadata check block, so they run as I/O jobs
// on the subtask's strand (IoQueue). can_accept() is false while the
// messages not yet acknowledged exceed half of librdkafka's
// queue.buffering.max.messages / queue.buffering.max.kbytes (the sink lowers
// the latter to 64 MiB unless properties set it), or while the exactly-once
// transaction to write into is not begun yet; the delivery reports wake the
// task.
#pragma once

#include "engine/core/config_value.h"
#include "engine/runtime/node_factory.h"

namespace df::connectors::kafka {

// The environment variable naming the transaction step log (see above).
inline constexpr const char* kTxnLogEnv = "DATAFLOW_KAFKA_TXN_LOG";

class KafkaSinkFactory final : public runtime::NodeFactory {
 public:
  // `sink_defaults`: the server config's `sinks.kafka` map (null: none).
  explicit KafkaSinkFactory(const ConfigValue& sink_defaults) : defaults_(sink_defaults) {}
  runtime::PreparedNodePtr prepare(const runtime::NodeSpec& spec,
                                   const std::vector<SchemaPtr>& inputs,
                                   OptionReader& opts) const override;

 private:
  ConfigValue defaults_;
};

}  // namespace df::connectors::kafka
