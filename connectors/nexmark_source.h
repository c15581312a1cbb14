// `type: nexmark` source: one table of the standard Nexmark event stream
// (people, auctions, bids; nexmark_generator.h has the generator's rules).
//
// Options:
//   table: person | auction | bid   (required) the table this node emits. A
//          source has one output schema, so a query over several tables has
//          one nexmark source per table; with the same seed, events,
//          event_rate and start_time they partition one event stream (event n
//          goes to the table of its kind), exactly as one generator would.
//   events:     number of events of the whole stream (all three tables;
//               omitted = unbounded). A `table: bid` node emits the bids among them.
//   rate:       events/s of the whole stream over all subtasks, wall clock
//               (0 = as fast as possible, the default); also the event-time
//               spacing unless `event_rate` is given.
//   event_rate: events/s of event time: event n happens at
//               start_time + n * 1000 / event_rate ms (default: `rate`, or
//               10,000,000, Flink nexmark's default, when rate is 0).
//   seed:       default 0; events depend only on (seed, n).
//   start_time: the timestamp of event 0 (default 2025-01-01T00:00:00Z).
// Schemas (timestamps are `timestamp`, ids and prices int64, prices in cents):
//   person:  id, name, email_address, credit_card, city, state, date_time, extra
//   auction: id, item_name, description, initial_bid, reserve, date_time,
//            expires, seller, category, extra
//   bid:     auction, bidder, price, channel, url, date_time, extra
// Event time: give the node `event_time: {field: date_time}`; each subtask's
// timestamps never decrease, so a zero max_out_of_orderness loses nothing.
//
// Subtask k of N visits event numbers k, k+N, k+2N, ... and emits those of its
// table, so subtasks produce disjoint slices whose union is the whole table.
// Rate limiting is a token bucket of visited events per subtask (rate/N per
// second); when ahead produce() returns SourceProgress::wait_until(...).
//
// Checkpoints: meta {"next_event": n, "parallelism": N}, n being the next
// event number the subtask visits. Events depend only on (seed, n), so a
// resumed source emits exactly what an uninterrupted one would. The
// parallelism must not change.
#pragma once

#include "engine/runtime/node_factory.h"

namespace df::connectors {

class NexmarkSourceFactory final : public runtime::NodeFactory {
 public:
  runtime::PreparedNodePtr prepare(const runtime::NodeSpec& spec,
                                   const std::vector<SchemaPtr>& inputs,
                                   OptionReader& opts) const override;
};

}  // namespace df::connectors
