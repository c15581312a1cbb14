// Channel: the bounded queue of StreamElements between one producer subtask
// and one consumer subtask (one per edge and (producer, consumer) pair).
//
// Capacity is counted in rows (element_rows()), not elements. A push always
// succeeds — producers never block — so a channel may overshoot its capacity
// by one step's output; instead, the scheduler does not run a producer while
// any of its channels is full() (above threshold * capacity). Backpressure
// travels by notification, never by waiting:
// - push() wakes the consumer;
// - a pop() that takes the channel from full() to not full() wakes the
//   producer (the only moment a producer parked on this channel can resume).
// A producer that saw full() and then parks cannot miss that wake: the pop
// that crosses the threshold necessarily happens after the producer's check,
// and Wakeable::wake() is required to be sticky (see below).
//
// Threading: single producer, single consumer, each on any thread; size
// queries are thread-safe. The lock is held only to move one element in or
// out of the deque, never across a wake or any user code.
#pragma once

#include <atomic>
#include <cstddef>
#include <deque>
#include <mutex>

#include "engine/core/element.h"

namespace df::runtime {

// Something that can be scheduled again. wake() is thread-safe and sticky: a
// wake that races with the target going idle must make it run once more.
class Wakeable {
 public:
  virtual ~Wakeable() = default;
  virtual void wake() = 0;
};

class Channel {
 public:
  // `capacity_rows` > 0; `threshold` in (0, 1]: full() once rows exceed
  // threshold * capacity_rows.
  Channel(size_t capacity_rows, double threshold);
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;

  // Set once before the run starts; either may stay null (tests).
  void connect(Wakeable* producer, Wakeable* consumer) {
    producer_ = producer;
    consumer_ = consumer;
  }

  // Producer side. Always accepts; wakes the consumer.
  void push(StreamElement e);
  // Consumer side. False when empty. Wakes the producer when this pop takes
  // the channel below the threshold.
  bool pop(StreamElement& out);

  bool empty() const { return elements_.load(std::memory_order_acquire) == 0; }
  size_t rows() const { return rows_.load(std::memory_order_acquire); }
  bool full() const { return rows() > threshold_rows_; }
  size_t capacity_rows() const { return capacity_rows_; }
  size_t threshold_rows() const { return threshold_rows_; }
  // The most rows this channel ever held at once.
  size_t high_water_rows() const { return high_water_.load(std::memory_order_relaxed); }

 private:
  const size_t capacity_rows_;
  const size_t threshold_rows_;
  Wakeable* producer_ = nullptr;
  Wakeable* consumer_ = nullptr;

  std::mutex mu_;
  std::deque<StreamElement> queue_;  // guarded by mu_
  // Mirrors of the queue for lock-free prepare() checks.
  std::atomic<size_t> elements_{0};
  std::atomic<size_t> rows_{0};
  std::atomic<size_t> high_water_{0};
};

}  // namespace df::runtime
