#include "connectors/io_queue.h"

#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace df::connectors {

struct IoQueue::State {
  explicit State(size_t limit) : limit(limit) {}
  const size_t limit;
  std::atomic<size_t> bytes{0};
  std::atomic<size_t> jobs{0};
  std::atomic<bool> failed{false};
  std::atomic<bool> finishing{false};
  std::atomic<bool> wake_idle{false};       // wake_when_idle(): one wake when jobs reach 0
  std::mutex mu;                            // guards error and ctx
  Status error;                             // first failure
  runtime::OperatorContext* ctx = nullptr;  // null once closed

  void wake() {
    std::lock_guard lock(mu);
    if (ctx) ctx->wake();
  }
};

IoQueue::IoQueue(size_t backlog_limit) : state_(std::make_shared<State>(backlog_limit)) {}

IoQueue::~IoQueue() { close().ignore(); }

void IoQueue::open(runtime::OperatorContext& ctx) {
  ctx_ = &ctx;
  std::lock_guard lock(state_->mu);
  state_->ctx = &ctx;
}

void IoQueue::post(size_t bytes, std::function<Status()> job) {
  state_->bytes.fetch_add(bytes);
  state_->jobs.fetch_add(1);
  ctx_->io().post(ctx_->io_strand(), [st = state_, bytes, job = std::move(job)] {
    bool woke_for_error = false;
    if (!st->failed.load()) {
      Status s = job();
      if (!s.ok()) {
        {
          std::lock_guard lock(st->mu);
          if (st->error.ok()) st->error = std::move(s);
        }
        st->failed.store(true);
        woke_for_error = true;
      }
    }
    size_t before = st->bytes.fetch_sub(bytes);
    size_t after = before - bytes;
    size_t jobs_left = st->jobs.fetch_sub(1) - 1;
    // Wake on the transitions the task waits for: room again, an error to
    // report, or everything written after finish().
    if (woke_for_error || (before > st->limit && after <= st->limit) ||
        (jobs_left == 0 && (st->finishing.load() || st->wake_idle.exchange(false)))) {
      st->wake();
    }
  });
}

void IoQueue::wake_when_idle() {
  state_->wake_idle.store(true);
  // The last job may have finished before the flag was set.
  if (state_->jobs.load() == 0 && state_->wake_idle.exchange(false)) state_->wake();
}

void IoQueue::post_completion(std::function<void(Status)> done) {
  state_->jobs.fetch_add(1);
  ctx_->io().post(ctx_->io_strand(), [st = state_, done = std::move(done)] {
    Status s;
    if (st->failed.load()) {
      std::lock_guard lock(st->mu);
      s = st->error.ok() ? Status::io_error("the sink was closed before its I/O completed")
                         : st->error;
    }
    done(std::move(s));
    size_t jobs_left = st->jobs.fetch_sub(1) - 1;
    if (jobs_left == 0 && (st->finishing.load() || st->wake_idle.exchange(false))) st->wake();
  });
}

size_t IoQueue::backlog_bytes() const { return state_->bytes.load(); }
bool IoQueue::over_limit() const { return state_->bytes.load() > state_->limit; }
bool IoQueue::idle() const { return state_->jobs.load() == 0; }

Status IoQueue::error() const {
  if (!state_->failed.load()) return Status::OK();
  std::lock_guard lock(state_->mu);
  return state_->error;
}

void IoQueue::set_finishing() {
  state_->finishing.store(true);
  // The last job may have finished before the flag was set: the task still
  // gets its one wake (a spare wake is harmless).
  if (state_->jobs.load() == 0) state_->wake();
}

Status IoQueue::close() {
  {
    std::lock_guard lock(state_->mu);
    state_->ctx = nullptr;
  }
  Status err = error();
  // Jobs that have not started yet are skipped; the error (if any) stays.
  if (state_->jobs.load() != 0) state_->failed.store(true);
  return err;
}

Status write_all(int fd, std::string_view data, const std::string& what) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n >= 0) {
      data.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    int err = errno;
    if (err == EINTR) continue;
    if (err == EAGAIN || err == EWOULDBLOCK) {
      pollfd p{fd, POLLOUT, 0};
      ::poll(&p, 1, -1);
      continue;
    }
    if (err == EPIPE) {
      return Status::io_error("cannot write " + what + ": the reader closed the pipe (EPIPE)");
    }
    std::string m = "cannot write " + what + ": " + std::strerror(err);
    if (err == ENOSPC || err == EDQUOT) return Status::resource_exhausted(std::move(m));
    return Status::io_error(std::move(m));
  }
  return Status::OK();
}

}  // namespace df::connectors
