#include "engine/runtime/io_pool.h"

#include <exception>
#include <string>
#include <utility>

#include "engine/core/log.h"

namespace df::runtime {

IoPool::IoPool(int threads) : log_context_(LogContext::current()) {
  const int n = threads > 0 ? threads : 1;
  threads_.reserve(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) threads_.emplace_back([this] { loop(); });
}

IoPool::~IoPool() { shutdown(); }

void IoPool::post(uint64_t strand, std::function<void()> job) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!joined_) {
      Strand& s = strands_[strand];
      s.jobs.push_back(std::move(job));
      if (!s.queued_or_running) {
        s.queued_or_running = true;
        ready_.push_back(strand);
      }
      cv_.notify_one();
      return;
    }
  }
  // Every thread is gone (teardown): nobody else can run it.
  job();
}

void IoPool::shutdown() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
  // A job posted between the last thread leaving and now is still queued:
  // run it here, strand by strand in posting order.
  std::unordered_map<uint64_t, Strand> left;
  {
    std::lock_guard<std::mutex> lock(mu_);
    joined_ = true;
    left.swap(strands_);
    ready_.clear();
  }
  for (auto& [key, strand] : left) {
    for (auto& job : strand.jobs) {
      try {
        job();
      } catch (...) {
        log_error("runtime", "I/O job threw during shutdown");
      }
    }
  }
}

void IoPool::loop() {
  AdoptedLogContext log_context(log_context_);
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    cv_.wait(lock, [this] { return stopping_ || !ready_.empty(); });
    if (ready_.empty()) {
      // Stopping and nothing ready. A strand still running on another thread
      // may post more, but that thread will pick it up itself.
      return;
    }
    const uint64_t key = ready_.front();
    ready_.pop_front();
    std::function<void()> job = std::move(strands_[key].jobs.front());
    strands_[key].jobs.pop_front();
    lock.unlock();
    try {
      job();
    } catch (const std::exception& e) {
      log_error("runtime", std::string("I/O job threw: ") + e.what());
    } catch (...) {
      log_error("runtime", "I/O job threw a non-standard exception");
    }
    job = nullptr;  // destroy captures outside the lock
    lock.lock();
    Strand& s = strands_[key];
    if (s.jobs.empty()) {
      strands_.erase(key);
    } else {
      ready_.push_back(key);  // to the back: strands take turns
      cv_.notify_one();
    }
  }
}

}  // namespace df::runtime
