// The elements that flow along a stream edge.
#pragma once

#include <cstdint>
#include <variant>

#include "engine/core/batch.h"

namespace df {

// No row with an event time <= timestamp_ms will follow on this edge.
// With `idle` set, the producer has gone quiet (no rows for its idle_timeout):
// consumers leave this input out of their minimum until it sends rows or an
// active watermark again; timestamp_ms is then the last active watermark.
// source_time_ns: the Batch::source_time_ns of the source batch that advanced
// this watermark (0: unknown). The runtime sets it and stamps the batches an
// operator emits while handling the watermark with it, so the sink latency
// histogram times a window's rows from the event that closed the window.
struct Watermark {
  int64_t timestamp_ms;
  bool idle = false;
  int64_t source_time_ns = 0;
};

// Checkpoint barrier n: every element before it belongs to checkpoint n.
struct Barrier {
  uint64_t checkpoint_id;
};

// The producer of this edge has finished; nothing follows. `stopped`: the
// pipeline is stopping with a checkpoint (not at the end of its input):
// consumers skip finish() (open windows stay in state for the next run).
struct EndOfStream {
  bool stopped = false;
};

using StreamElement = std::variant<BatchPtr, Watermark, Barrier, EndOfStream>;

// Rows an element weighs in a bounded channel (0 for control elements).
inline size_t element_rows(const StreamElement& e) {
  if (auto b = std::get_if<BatchPtr>(&e)) return (*b)->active_rows();
  return 0;
}

}  // namespace df
