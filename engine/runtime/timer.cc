#include "engine/runtime/timer.h"

namespace df::runtime {

Timer::Timer() : thread_([this] { loop(); }) {}

Timer::~Timer() { stop(); }

void Timer::schedule(Clock::time_point at, Wakeable* target) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    const bool earliest = queue_.empty() || at < queue_.top().at;
    queue_.push(Entry{at, target});
    if (!earliest) return;  // the thread already sleeps until an earlier time
  }
  cv_.notify_one();
}

void Timer::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
  }
  cv_.notify_one();
  if (thread_.joinable()) thread_.join();
}

void Timer::loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    if (queue_.empty()) {
      cv_.wait(lock);
      continue;
    }
    const Clock::time_point next = queue_.top().at;
    if (Clock::now() < next) {
      cv_.wait_until(lock, next);
      continue;  // re-check: stop, an earlier entry, or spurious wake-up
    }
    Wakeable* target = queue_.top().target;
    queue_.pop();
    lock.unlock();
    target->wake();  // never under our lock: wake() may enqueue work
    lock.lock();
  }
}

}  // namespace df::runtime
