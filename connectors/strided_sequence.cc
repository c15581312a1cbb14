#include "connectors/strided_sequence.h"

#include <algorithm>
#include <nlohmann/json.hpp>

namespace df::connectors {

namespace {
constexpr std::chrono::duration<double> kCatchUp{1.0};
}  // namespace

StridedSequence::StridedSequence(Naming naming, std::optional<uint64_t> count, double rate,
                                 int subtask, int parallelism)
    : naming_(naming),
      first_(static_cast<uint64_t>(subtask)),
      stride_(static_cast<uint64_t>(std::max(1, parallelism))) {
  if (count) total_ = *count > first_ ? (*count - first_ + stride_ - 1) / stride_ : 0;
  rate_ = rate / static_cast<double>(stride_);
}

Status StridedSequence::open(runtime::OperatorContext& ctx) {
  const auto batch = static_cast<double>(std::max<size_t>(1, ctx.batch_size()));
  capacity_ = batch;
  if (rate_ > 0) {
    // A late wake-up (a loaded machine, backpressure) is caught up, batch by
    // batch, for up to kCatchUp of elements; only a longer stall is lost.
    capacity_ = std::max(capacity_, rate_ * kCatchUp.count());
    // Take ~2 ms worth of elements at a time (up to a batch): the event time
    // (and the watermark after each batch) moves in steps this small, which
    // bounds the latency it adds, and a high rate still makes full batches;
    // a low rate goes element by element.
    min_chunk_ = std::clamp(rate_ / 500.0, 1.0, batch);
    tokens_ = min_chunk_;
  }
  if (const std::string* meta = ctx.restored_meta()) {
    Status s = restore(*meta);
    if (!s.ok()) {
      return Status(s.code(), std::string(naming_.type) + " '" + ctx.node_id() + "' subtask " +
                                  std::to_string(first_) + ": cannot resume: " + s.message());
    }
  }
  return Status::OK();
}

std::variant<uint64_t, StridedSequence::Clock::time_point> StridedSequence::allow(uint64_t want) {
  if (total_) want = std::min(want, *total_ - next_);
  if (rate_ <= 0) return want;
  const Clock::time_point now = Clock::now();
  if (last_refill_ != Clock::time_point{}) {
    const double elapsed = std::chrono::duration<double>(now - last_refill_).count();
    tokens_ = std::min(capacity_, tokens_ + elapsed * rate_);
  }
  last_refill_ = now;
  const double need = std::min(min_chunk_, static_cast<double>(want));
  if (tokens_ < need) {
    const auto delay = std::chrono::duration<double>((need - tokens_) / rate_);
    return now + std::chrono::duration_cast<Clock::duration>(delay) + std::chrono::microseconds(1);
  }
  return std::min<uint64_t>(want, static_cast<uint64_t>(tokens_));
}

void StridedSequence::advance(uint64_t n) {
  next_ += n;
  if (rate_ > 0) tokens_ -= static_cast<double>(n);
}

std::string StridedSequence::meta() const {
  return nlohmann::json{{naming_.key, number()}, {"parallelism", stride_}}.dump();
}

Status StridedSequence::restore(const std::string& meta) {
  uint64_t at = 0;
  uint64_t par = 0;
  try {
    nlohmann::json j = nlohmann::json::parse(meta);
    at = j.at(naming_.key).get<uint64_t>();
    par = j.at("parallelism").get<uint64_t>();
  } catch (const nlohmann::json::exception& e) {
    return Status::invalid(std::string("bad checkpoint meta: ") + e.what());
  }
  if (par != stride_) {
    return Status::invalid("the checkpoint was taken with parallelism " + std::to_string(par) +
                           ", this run has " + std::to_string(stride_) + " (" + naming_.source +
                           " cannot be rescaled)");
  }
  if (at < first_ || (at - first_) % stride_ != 0) {
    return Status::invalid(std::string(naming_.key) + " " + std::to_string(at) + " is not " +
                           naming_.element + " of subtask " + std::to_string(first_));
  }
  next_ = (at - first_) / stride_;
  if (total_) next_ = std::min(next_, *total_);
  return Status::OK();
}

}  // namespace df::connectors
