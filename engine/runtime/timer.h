// Timer: wakes Wakeables at given steady-clock times (sources that returned
// SourceProgress::wait_until). One thread with a priority queue; a wake is
// never early, and may be late by the OS timer slack.
//
// Threading: schedule() is thread-safe. The target must outlive the timer or
// stop() must run first; stop() joins the thread and drops pending entries.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <queue>
#include <thread>
#include <vector>

#include "engine/runtime/channel.h"

namespace df::runtime {

class Timer {
 public:
  using Clock = std::chrono::steady_clock;
  Timer();
  ~Timer();
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;

  void schedule(Clock::time_point at, Wakeable* target);
  void stop();

 private:
  struct Entry {
    Clock::time_point at;
    Wakeable* target;
    bool operator>(const Entry& o) const { return at > o.at; }
  };
  void loop();

  std::mutex mu_;
  std::condition_variable cv_;
  std::priority_queue<Entry, std::vector<Entry>, std::greater<Entry>> queue_;  // guarded by mu_
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace df::runtime
