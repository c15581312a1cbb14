// GuardedStorage: a circuit breaker around a CheckpointStorage (DESIGN §5,
// `transient`, "around sinks and storage"). Every call goes to the wrapped
// storage and its outcome feeds the same breaker the runtime puts around
// sinks (runtime::CallRetrier): after `failure_threshold` transient failures
// in a row the breaker opens and calls fail at once with Unavailable,
// without touching the storage, so checkpoints are declined rather than
// piling up uploads against a peer that is down. After `open_for` the
// coordinator asks for a probe (probe()): one cheap call (a list) goes
// through; success closes the breaker, failure re-opens it.
//
// Only transient failures count (the classifier the supervisor passes in;
// by default Unavailable); any other answer, NotFound included, means the
// storage is reachable and counts as a success.
//
// Fault injection (runtime/fault_injection.h): with DATAFLOW_FAULTS naming
// node `checkpoint_storage` and call `process`, every storage call first
// asks the injector, so tests make the storage fail N times.
//
// Threading: thread-safe; uploads call it from several I/O threads at once.
// The breaker's state is under one mutex, never held during a storage call.
// Ownership: borrows the wrapped storage, which must outlive it.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/checkpoint/storage.h"
#include "engine/runtime/retry.h"

namespace df::checkpoint {

// The node name a storage breaker reports (events, metrics, health).
inline constexpr const char* kStorageBreakerNode = "checkpoint_storage";

class GuardedStorage final : public CheckpointStorage {
 public:
  struct Options {
    // nullopt: no breaker; calls pass straight through (fault injection
    // still applies).
    std::optional<runtime::CircuitBreakerPolicy> breaker;
    // Which failures count; empty: runtime::is_unavailable.
    std::function<bool(const Status&)> is_transient;
    // Breaker changes (kBreakerOpen, kBreakerClosed) with node
    // kStorageBreakerNode, on the thread whose call changed it.
    runtime::RetryEventSink on_event;
    // The key prefix probe() lists ("<pipeline>/").
    std::string probe_prefix;
  };

  GuardedStorage(CheckpointStorage& storage, Options options);

  // Closed, or open with its probe due (then the caller should probe()).
  bool open() const;
  // Open and before the probe time: a checkpoint now would only fail.
  bool declining() const;
  // One probe call while open (a list of probe_prefix); OK closes the
  // breaker. OK at once when closed.
  Status probe();

  std::string describe() const override { return storage_.describe(); }
  Status put_bytes(const std::string& key, std::string_view data) override;
  Status put_file(const std::string& key, const std::string& path) override;
  Result<std::string> get_bytes(const std::string& key) override;
  Status get_file(const std::string& key, const std::string& path) override;
  Result<std::vector<ObjectInfo>> list(const std::string& prefix) override;
  Status remove(const std::string& key) override;

 private:
  using Clock = runtime::CallRetrier::Clock;
  // Runs `call` unless the breaker declines it; records the outcome.
  Status guarded(const std::function<Status()>& call, bool is_probe = false);
  void record(const Status& status, bool is_probe);

  CheckpointStorage& storage_;
  const Options options_;
  mutable std::mutex mu_;
  runtime::CallRetrier breaker_;  // guarded by mu_
  Clock::time_point probe_at_{};  // open: when a probe may go; guarded by mu_
  std::string last_error_;        // the failure that (re)opened it; guarded by mu_
};

}  // namespace df::checkpoint
