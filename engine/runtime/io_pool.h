// IoPool: the IoExecutor behind OperatorContext::io(): a few plain threads
// for blocking work (file and pipe writes, uploads) so that it never runs on
// a worker of the task arena.
//
// Strands: jobs posted with the same strand key run one at a time, in
// posting order; different strands run in parallel and take turns (a strand
// runs one job, then goes to the back of the line), so one busy subtask
// cannot starve the others.
//
// Jobs log with the LogContext of the thread that constructed the pool (a
// pool serves one run).
//
// Threading: post() is thread-safe, including from inside a job. shutdown()
// (also run by the destructor) lets every queued job finish — jobs often
// carry completions that operators wait for — then joins the threads; a job
// posted after the threads are gone runs inline on the posting thread.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "engine/core/log.h"
#include "engine/runtime/operator.h"

namespace df::runtime {

class IoPool final : public IoExecutor {
 public:
  explicit IoPool(int threads);
  ~IoPool() override;
  IoPool(const IoPool&) = delete;
  IoPool& operator=(const IoPool&) = delete;

  void post(uint64_t strand, std::function<void()> job) override;
  // Runs what is queued, then joins. Idempotent.
  void shutdown();

 private:
  struct Strand {
    std::deque<std::function<void()>> jobs;
    bool queued_or_running = false;  // in ready_ or being run by a thread
  };
  void loop();

  std::mutex mu_;
  std::condition_variable cv_;
  std::unordered_map<uint64_t, Strand> strands_;  // guarded by mu_
  std::deque<uint64_t> ready_;                    // strands with work, not running
  bool stopping_ = false;
  bool joined_ = false;
  const LogFields log_context_;  // the constructing thread's, for the jobs' lines
  std::vector<std::thread> threads_;
};

}  // namespace df::runtime
