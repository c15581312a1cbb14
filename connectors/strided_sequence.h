// StridedSequence: the position of one subtask of a deterministic source
// whose elements are numbered 0, 1, 2, ... (the generator's rows, Nexmark's
// events). Subtask s of N takes s, s+N, s+2N, ...; a `count` bounds the whole
// sequence; a rate (elements/s over all subtasks) is kept with a token bucket
// holding up to one second of elements (or one batch), so a late wake-up is
// caught up batch by batch instead of lost; the position is the checkpoint meta
// {"<key>": number of the next element, "parallelism": N}, so a resumed
// subtask continues exactly where the checkpoint was taken.
//
// Threading: owned by one source operator and used from its task only.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <variant>

#include "engine/core/status.h"
#include "engine/runtime/checkpoint.h"
#include "engine/runtime/operator.h"

namespace df::connectors {

class StridedSequence {
 public:
  using Clock = std::chrono::steady_clock;

  // How errors name things: the meta key ("next_row"), one element
  // ("a row"), the source ("a generator") and its type ("generator").
  struct Naming {
    const char* key;
    const char* element;
    const char* source;
    const char* type;
  };

  StridedSequence(Naming naming, std::optional<uint64_t> count, double rate, int subtask,
                  int parallelism);

  // Sizes the token bucket for batches of ctx.batch_size() elements and,
  // on a resumed run, moves to the position in ctx.restored_meta(); an
  // error names the node and subtask.
  Status open(runtime::OperatorContext& ctx);
  // Sets the position as the snapshot's meta.
  void snapshot(runtime::SnapshotContext& ctx) const { ctx.set_meta(meta()); }

  bool exhausted() const { return total_ && next_ >= *total_; }
  // The number of the k-th element from the current position.
  uint64_t number(uint64_t k = 0) const { return first_ + (next_ + k) * stride_; }
  uint64_t stride() const { return stride_; }

  // How many elements (1..want, never past the end) may be taken now, or,
  // under the rate limit, when to ask again. Call only when !exhausted().
  std::variant<uint64_t, Clock::time_point> allow(uint64_t want);
  // `n` elements were taken (n <= what allow() gave).
  void advance(uint64_t n);

 private:
  std::string meta() const;
  // Moves to the position of `meta`; InvalidArgument when it does not parse
  // or belongs to another parallelism or subtask.
  Status restore(const std::string& meta);

  const Naming naming_;
  const uint64_t first_;
  const uint64_t stride_;
  std::optional<uint64_t> total_;  // elements of this subtask; nullopt = unbounded
  uint64_t next_ = 0;              // elements of this subtask taken so far
  // Token bucket (elements), refilled at rate_ per second up to capacity_.
  double rate_ = 0;
  double capacity_ = 1;
  double min_chunk_ = 1;
  double tokens_ = 0;
  Clock::time_point last_refill_{};
};

}  // namespace df::connectors
