// Fault injection for tests (DATAFLOW_FAULTS): makes a named node's calls
// fail on purpose, so every self-healing path can be driven against the real
// binary.
//
//   DATAFLOW_FAULTS="agg:process:exception:after=3:times=1;out:process:unavailable:rate=0.01"
//
// Each fault is `node:call:error` plus options, faults separated by ';':
//   call    process (a transform's or sink's batch) | produce (a source's step)
//   error   exception (throws std::runtime_error) | bad_alloc (throws it) |
//           internal | unavailable | io | resource | data | fatal (returns
//           Internal, Unavailable, IoError, ResourceExhausted, DataError or
//           InvalidArgument) | kill (SIGKILLs the process, a crash)
//   after=N skip the first N matching calls (default 0)
//   checkpoints=K  calls count only once K checkpoints have completed in
//           this process (default 0), so a fault lands after a checkpoint
//           however slow the machine is
//   times=M fire at most M times in this process (default 1; 0 = unlimited)
//   rate=P  fire with probability P per eligible call (default 1), from a
//           fixed seed (seed=S, default 1) so runs repeat
// Counts live for the whole process, so a fault that fired once does not fire
// again after the run restarts in the same process.
//
// Thread-safety: parse once at startup (the first faults() call reads the
// environment); check() is thread-safe. Without DATAFLOW_FAULTS, check() is
// one relaxed load.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "engine/core/status.h"

namespace df::runtime {

struct FaultSpec {
  std::string node;
  std::string call;
  std::string error;
  uint64_t after = 0;
  uint64_t checkpoints = 0;
  uint64_t times = 1;
  double rate = 1.0;
  uint64_t seed = 1;
};

// Parses a DATAFLOW_FAULTS value; InvalidArgument naming the bad part.
Result<std::vector<FaultSpec>> parse_faults(std::string_view text);

class FaultInjector {
 public:
  explicit FaultInjector(std::vector<FaultSpec> specs);
  // Before `call` of `node`: OK, or the injected error (or a throw, or a kill).
  Status check(std::string_view node, std::string_view call);
  bool enabled() const { return enabled_.load(std::memory_order_relaxed); }
  // A checkpoint completed (the coordinator calls it): `checkpoints=K` counts them.
  void checkpoint_completed() { completed_.fetch_add(1, std::memory_order_relaxed); }

 private:
  struct Armed {
    FaultSpec spec;
    uint64_t seen = 0;
    uint64_t fired = 0;
    std::mt19937_64 rng;
  };
  std::atomic<bool> enabled_{false};
  std::atomic<uint64_t> completed_{0};  // checkpoints
  std::mutex mu_;
  std::vector<Armed> armed_;
};

// The process's injector, parsed from DATAFLOW_FAULTS on first use. A value
// that does not parse is reported on stderr once and ignored.
FaultInjector& faults();

}  // namespace df::runtime
