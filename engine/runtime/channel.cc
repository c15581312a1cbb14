#include "engine/runtime/channel.h"

#include <algorithm>
#include <cmath>
#include <utility>

namespace df::runtime {

Channel::Channel(size_t capacity_rows, double threshold)
    : capacity_rows_(std::max<size_t>(capacity_rows, 1)),
      threshold_rows_(static_cast<size_t>(
          std::floor(static_cast<double>(capacity_rows_) * std::clamp(threshold, 0.0, 1.0)))) {}

void Channel::push(StreamElement e) {
  const size_t n = element_rows(e);
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back(std::move(e));
    // Counters change under the lock so that elements_ never claims an
    // element the consumer cannot pop yet.
    elements_.fetch_add(1, std::memory_order_release);
    const size_t now = rows_.fetch_add(n, std::memory_order_acq_rel) + n;
    if (now > high_water_.load(std::memory_order_relaxed)) {
      high_water_.store(now, std::memory_order_relaxed);  // only the producer writes it
    }
  }
  if (consumer_ != nullptr) consumer_->wake();
}

bool Channel::pop(StreamElement& out) {
  size_t n = 0;
  size_t before = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (queue_.empty()) return false;
    out = std::move(queue_.front());
    queue_.pop_front();
    n = element_rows(out);
    elements_.fetch_sub(1, std::memory_order_release);
    before = rows_.fetch_sub(n, std::memory_order_acq_rel);
  }
  if (producer_ != nullptr && before > threshold_rows_ && before - n <= threshold_rows_) {
    producer_->wake();
  }
  return true;
}

}  // namespace df::runtime
