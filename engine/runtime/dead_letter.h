// Dead letters (DESIGN §5, `data` failures): a record an operator or
// connector cannot process travels, with why and where, to the pipeline's
// dead-letter sink instead of failing the run.
//
// Wiring: engine/plan gives the sink named by `dead_letter: {sink: ID}` the
// dead_letter_schema() as input and adds one edge from every other vertex
// with from_port == kDeadLetterPort. A task buffers the bad records its
// chain reports (OperatorContext::report_bad_record) and sends them on those
// edges before anything else leaves it (a watermark, a barrier, the end), so
// a checkpoint's dead letters are exactly those of the rows before its
// barrier.
//
// DeadLetterRate escalates: when dead letters exceed `max_rate` of the rows
// the sources emitted over the last minute, the run fails as `fatal`.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <limits>
#include <mutex>
#include <optional>
#include <string>

#include "engine/core/schema.h"

namespace df::runtime {

// PhysicalEdge::from_port of a dead-letter edge.
inline constexpr size_t kDeadLetterPort = std::numeric_limits<size_t>::max();

// {time: timestamp, pipeline, node: string, subtask: int64, class, message,
//  position, record: string}: one row per dead letter; time is the wall
// clock when it was reported.
const SchemaPtr& dead_letter_schema();

// Thread-safe. Counts dead letters against the rows the sources emitted.
class DeadLetterRate {
 public:
  // `max_rate` in (0, 1]: the largest tolerated share over `window`.
  explicit DeadLetterRate(double max_rate, int64_t window_ms = 60'000);

  // One more dead letter at `now_ms` (steady milliseconds), when the sources
  // have emitted `source_rows` rows so far. Returns the rate over the window
  // when it passed max_rate (and the window holds enough rows to say so:
  // at least 10 / max_rate), nullopt otherwise.
  std::optional<double> add(int64_t now_ms, uint64_t source_rows);
  double max_rate() const { return max_rate_; }

 private:
  struct Sample {
    int64_t at_ms;
    uint64_t source_rows;
    uint64_t dead_letters;
  };
  const double max_rate_;
  const int64_t window_ms_;
  std::mutex mu_;
  uint64_t dead_letters_ = 0;
  std::deque<Sample> samples_;  // the run's start, then one per second with dead letters
};

}  // namespace df::runtime
