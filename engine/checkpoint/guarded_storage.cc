#include "engine/checkpoint/guarded_storage.h"

#include <climits>
#include <utility>

#include "engine/core/log.h"
#include "engine/runtime/fault_injection.h"

namespace df::checkpoint {

namespace {

// The breaker alone decides: no in-place retries here (S3 retries inside).
runtime::RetryPolicy no_retries() {
  runtime::RetryPolicy p;
  p.max_attempts = INT_MAX;
  return p;
}

// A storage breaker never escalates: checkpoints are only declined while it
// is open, and the run goes on (max_open is for sinks).
std::optional<runtime::CircuitBreakerPolicy> without_max_open(
    std::optional<runtime::CircuitBreakerPolicy> policy) {
  if (policy) policy->max_open = Millis{0};
  return policy;
}

}  // namespace

GuardedStorage::GuardedStorage(CheckpointStorage& storage, Options options)
    : storage_(storage),
      options_(std::move(options)),
      breaker_(no_retries(), without_max_open(options_.breaker), /*seed=*/1) {}

bool GuardedStorage::open() const {
  std::lock_guard lock(mu_);
  return breaker_.state() == runtime::CallRetrier::State::kOpen;
}

bool GuardedStorage::declining() const {
  std::lock_guard lock(mu_);
  return breaker_.state() == runtime::CallRetrier::State::kOpen && Clock::now() < probe_at_;
}

Status GuardedStorage::probe() {
  if (!open()) return Status::OK();
  const std::string prefix = options_.probe_prefix;
  return guarded([&] { return storage_.list(prefix).status(); }, /*is_probe=*/true);
}

Status GuardedStorage::guarded(const std::function<Status()>& call, bool is_probe) {
  if (options_.breaker && !is_probe) {
    std::lock_guard lock(mu_);
    if (breaker_.state() == runtime::CallRetrier::State::kOpen) {
      return Status::unavailable("the circuit breaker around checkpoint storage " +
                                 storage_.describe() + " is open after: " + last_error_);
    }
  }
  Status status = runtime::faults().check(kStorageBreakerNode, "process");
  if (status.ok()) status = call();
  record(status, is_probe);
  return status;
}

void GuardedStorage::record(const Status& status, bool is_probe) {
  if (!options_.breaker) return;
  const bool transient = !status.ok() && (options_.is_transient ? options_.is_transient(status)
                                                                : runtime::is_unavailable(status));
  runtime::RetryEvent event;
  event.node = kStorageBreakerNode;
  {
    std::lock_guard lock(mu_);
    if (!transient) {
      if (!breaker_.on_success()) return;
      event.kind = runtime::RetryEvent::Kind::kBreakerClosed;
    } else {
      // A call that started before the breaker opened and failed after it
      // says nothing new; only a probe re-opens it.
      if (breaker_.state() == runtime::CallRetrier::State::kOpen && !is_probe) return;
      const runtime::CallRetrier::Verdict v = breaker_.on_failure(Clock::now());
      if (v.kind != runtime::CallRetrier::Verdict::Kind::kOpened) return;
      probe_at_ = v.at;
      last_error_ = status.message();
      event.kind = runtime::RetryEvent::Kind::kBreakerOpen;
      event.attempt = breaker_.failures();
      event.delay = v.delay;
      event.message = status.message();
    }
  }
  if (event.kind == runtime::RetryEvent::Kind::kBreakerOpen) {
    log_warn("checkpoint", "circuit breaker open around checkpoint storage " + storage_.describe() +
                               " after " + std::to_string(event.attempt) +
                               " transient failures in a row (" + event.message +
                               "); checkpoints are declined until a probe in " +
                               format_duration(event.delay) + " succeeds");
  } else {
    log_info("checkpoint",
             "circuit breaker closed around checkpoint storage " + storage_.describe());
  }
  if (options_.on_event) options_.on_event(event);
}

Status GuardedStorage::put_bytes(const std::string& key, std::string_view data) {
  return guarded([&] { return storage_.put_bytes(key, data); });
}

Status GuardedStorage::put_file(const std::string& key, const std::string& path) {
  return guarded([&] { return storage_.put_file(key, path); });
}

Result<std::string> GuardedStorage::get_bytes(const std::string& key) {
  Result<std::string> out = Status::internal("not called");
  Status s = guarded([&] {
    out = storage_.get_bytes(key);
    return out.status();
  });
  if (!s.ok()) return s;
  return out;
}

Status GuardedStorage::get_file(const std::string& key, const std::string& path) {
  return guarded([&] { return storage_.get_file(key, path); });
}

Result<std::vector<ObjectInfo>> GuardedStorage::list(const std::string& prefix) {
  Result<std::vector<ObjectInfo>> out = Status::internal("not called");
  Status s = guarded([&] {
    out = storage_.list(prefix);
    return out.status();
  });
  if (!s.ok()) return s;
  return out;
}

Status GuardedStorage::remove(const std::string& key) {
  return guarded([&] { return storage_.remove(key); });
}

}  // namespace df::checkpoint
