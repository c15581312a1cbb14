// `type: kafka` source (connectors/kafka/README.md has the option table).
//
// Each subtask is one librdkafka consumer. Unbounded, it is a member of the
// node's consumer group (`group_id`), subscribed to `topic`; the group splits
// the partitions over the subtasks of this process and of any other process
// with the same group. bounded: true joins no group (see below).
// Messages decode as json/csv into `schema`, or as raw rows; `metadata`
// appends message fields. Undecodable messages are data errors naming
// topic/partition@offset.
//
// Never blocks a worker: produce() takes what the client has prefetched
// (rd_kafka_consume_batch_queue with timeout 0) into the source's buffer,
// emits at most `max_poll_records` of it, and otherwise waits for the
// queue's wake-up event (or 100 ms). Rebalance
// callbacks run inside produce(), on the task thread. Blocking client calls
// (end-offset queries of `bounded`, closing the consumer) run on ctx.io().
//
// Positions: a partition assigned to a subtask starts at the first of
//   1. the position a subtask of this run gave up when the partition was
//      revoked from it (handed over inside the process),
//   2. the restored checkpoint's position (from whichever subtask held it;
//      the smallest when several recorded it),
//   3. the group's committed offset, then `start`.
// Meta (one per subtask): {"group_id": "...", "partitions": [{"topic": "t",
// "partition": 0, "offset": 42, "max_event_time": 1700000000000}, ...]}:
// the next offset of every partition the subtask holds, plus the positions
// no subtask of this run holds right now (restored but not yet assigned, or
// revoked and not yet re-assigned), so a checkpoint taken mid-rebalance
// loses none. checkpoint_complete(n) commits the positions of snapshot n
// (async) for partitions the subtask still holds; without checkpoints the
// final positions are committed when the source closes. Bounded subtasks
// commit for `group_id` too, without being members (brokers accept that
// while the group has no active members).
//
// Prefetch budget, per subtask over all its partitions: once the buffer
// holds queued.min.messages or queued.max.messages.kbytes (50000 / 16 MiB
// by default) the source pauses every partition (rd_kafka_pause_partitions)
// and resumes them below a quarter of both, then wakes the threads of the
// brokers leading them (a ListOffsets request per leader, on ctx.io()), as
// librdkafka 2.0.2 would fetch again only when they wake on their own (up to
// 1 s later). With librdkafka's queue (the same limits) and one fetch per
// broker of fetch.max.bytes (8 MiB) in flight, a subtask holds at most
// 2 x 16 MiB + brokers x 8 MiB.
// Backpressure: on_backpressure(true) pauses the assigned partitions too,
// false resumes them (unless the budget holds them), both logged at info.
//
// Event time: per-partition watermarks (emits_watermarks()): each partition
// tracks its highest event time; the source's watermark is the minimum of
// (max - max_out_of_orderness - 1) over its assigned partitions that are not
// idle (no message for the event_time idle_timeout). A partition without a
// row yet holds the watermark back until it turns idle.
//
// bounded: true: no group subscription. Each subtask reads the topics'
// metadata (on ctx.io()) and assigns itself the partitions p with
// p % parallelism == subtask (rd_kafka_assign; start offsets as above), so
// no rebalance or session timeout moves partitions during the run. Each
// partition's end (high watermark) is queried at assignment; it is done once
// its position reaches that end (messages past it are not emitted). A
// subtask ends when all its partitions are done, independently of the others.
//
// Errors: an unknown topic, authentication or authorization failure fails
// the run with the broker's reason; other client errors (brokers down) are
// retried by librdkafka and logged with backoff.
//
// Threading: the factory and prepared node are immutable and thread-safe
// (the prepared node hands out the per-run state its subtasks share under a
// mutex); a source instance belongs to its task.
#pragma once

#include "connectors/kafka/client.h"
#include "engine/runtime/node_factory.h"

namespace df::connectors::kafka {

class KafkaSourceFactory final : public runtime::NodeFactory {
 public:
  // `defaults`: the server config's `sources.kafka` map (or null).
  explicit KafkaSourceFactory(ConfigValue defaults = {}) : defaults_(std::move(defaults)) {}
  runtime::PreparedNodePtr prepare(const runtime::NodeSpec& spec,
                                   const std::vector<SchemaPtr>& inputs,
                                   OptionReader& opts) const override;

 private:
  ConfigValue defaults_;
};

}  // namespace df::connectors::kafka
