#include "engine/runtime/dead_letter.h"

#include <cmath>

namespace df::runtime {

const SchemaPtr& dead_letter_schema() {
  static const SchemaPtr schema = make_schema({{"time", TypeId::kTimestamp},
                                               {"pipeline", TypeId::kString},
                                               {"node", TypeId::kString},
                                               {"subtask", TypeId::kInt64},
                                               {"class", TypeId::kString},
                                               {"message", TypeId::kString},
                                               {"position", TypeId::kString},
                                               {"record", TypeId::kString}});
  return schema;
}

DeadLetterRate::DeadLetterRate(double max_rate, int64_t window_ms)
    : max_rate_(max_rate), window_ms_(window_ms) {
  // The run's start: nothing emitted, nothing dead-lettered.
  samples_.push_back(Sample{std::numeric_limits<int64_t>::min(), 0, 0});
}

std::optional<double> DeadLetterRate::add(int64_t now_ms, uint64_t source_rows) {
  std::lock_guard lock(mu_);
  ++dead_letters_;
  // The baseline is the newest sample at or before the window's start (the
  // run's start while the run is younger than the window); one sample per
  // second bounds the memory.
  while (samples_.size() > 1 && samples_[1].at_ms <= now_ms - window_ms_) samples_.pop_front();
  if (samples_.back().at_ms / 1000 != now_ms / 1000) {
    // The baseline before this dead letter: rows and dead letters so far.
    samples_.push_back(Sample{now_ms, source_rows, dead_letters_ - 1});
  }
  const Sample& base = samples_.front();
  const double rows = static_cast<double>(source_rows - std::min(source_rows, base.source_rows));
  const double bad = static_cast<double>(dead_letters_ - base.dead_letters);
  if (max_rate_ <= 0) return rows > 0 ? bad / rows : 1.0;  // none tolerated
  if (rows < std::ceil(10.0 / max_rate_)) return std::nullopt;
  const double rate = bad / rows;
  if (rate > max_rate_) return rate;
  return std::nullopt;
}

}  // namespace df::runtime
