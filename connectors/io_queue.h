// IoQueue: how a sink subtask hands blocking writes to the engine's I/O pool
// without ever blocking its worker thread (DESIGN.md §3).
//
// The sink encodes rows on the worker and post()s jobs that do the blocking
// part; jobs run on ctx.io() under the subtask's strand, one at a time, in
// posting order. The queue counts the bytes still waiting so the sink can
// report can_accept() == false while over its limit, and it calls ctx.wake()
// when the backlog drops back under the limit, when a job fails, and (after
// set_finishing()) when the last job is done.
//
// Threading: post/over_limit/idle/error/set_finishing/close are called from
// the sink's task (one thread at a time); jobs run on I/O threads. The shared
// state lives behind a shared_ptr the jobs hold, so a job still queued when
// the sink is destroyed is harmless; after close() jobs are skipped and never
// touch the context again.
#pragma once

#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "engine/core/status.h"
#include "engine/runtime/operator.h"

namespace df::connectors {

// Default backlog per sink subtask: enough to keep a disk or pipe busy, small
// enough that a slow reader bounds the sink's memory.
inline constexpr size_t kDefaultBacklogBytes = 8u << 20;

class IoQueue {
 public:
  explicit IoQueue(size_t backlog_limit = kDefaultBacklogBytes);
  ~IoQueue();
  IoQueue(const IoQueue&) = delete;
  IoQueue& operator=(const IoQueue&) = delete;

  // Binds to the subtask's context; call from Operator::open().
  void open(runtime::OperatorContext& ctx);
  // Queues `job`, which accounts for `bytes` of backlog until it returns. Once
  // a job has failed, later jobs are skipped and the first error is kept.
  void post(size_t bytes, std::function<Status()> job);

  size_t backlog_bytes() const;
  bool over_limit() const;
  // No job queued or running.
  bool idle() const;
  // The first error a job returned (OK when none).
  Status error() const;
  // From now on the last job to finish wakes the task (drained() turns true);
  // wakes it at once when already idle.
  void set_finishing();
  // Once: the next time no job is queued or running, wake the task (for a
  // task that waits for drained() without having called finish(), e.g. after
  // a snapshot or a commit). Wakes at once when already idle.
  void wake_when_idle();
  // Queues `done` behind every job posted so far; it runs on the strand and
  // gets the first error of those jobs (OK when none). Unlike post(), it runs
  // even after a failure or close(), so a deferred checkpoint completion is
  // called exactly once whatever happens.
  void post_completion(std::function<void(Status)> done);
  // Detaches from the context and skips jobs not yet started; returns error().
  Status close();

 private:
  struct State;
  std::shared_ptr<State> state_;
  runtime::OperatorContext* ctx_ = nullptr;
};

// Writes all of `data` to `fd`, blocking (for I/O jobs only): retries partial
// writes and EINTR, waits out EAGAIN on a non-blocking fd. Errors name `what`
// ("cannot write out/.part-0-0.inprogress: ..."); ENOSPC and EDQUOT are
// ResourceExhausted, EPIPE says the reader went away.
Status write_all(int fd, std::string_view data, const std::string& what);

}  // namespace df::connectors
