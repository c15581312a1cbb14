// The CheckpointTarget of a real runtime::Scheduler (coordinator.h). Kept in
// its own file so that code driving the coordinator through another target
// does not need the scheduler's symbols.
#include <memory>

#include "engine/checkpoint/coordinator.h"

namespace df::checkpoint {
namespace {

class SchedulerTarget final : public CheckpointTarget {
 public:
  explicit SchedulerTarget(runtime::Scheduler& s) : s_(s) {}
  bool trigger_checkpoint(uint64_t id) override { return s_.trigger_checkpoint(id); }
  bool stop_with_checkpoint(uint64_t id) override { return s_.stop_with_checkpoint(id); }
  void notify_checkpoint_complete(uint64_t id) override { s_.notify_checkpoint_complete(id); }
  void notify_checkpoint_aborted(uint64_t id) override { s_.notify_checkpoint_aborted(id); }
  void notify_final_checkpoint_complete() override { s_.notify_final_checkpoint_complete(); }
  size_t task_count() const override { return s_.task_count(); }

 private:
  runtime::Scheduler& s_;
};

}  // namespace

std::unique_ptr<CheckpointTarget> make_scheduler_target(runtime::Scheduler& scheduler) {
  return std::make_unique<SchedulerTarget>(scheduler);
}

}  // namespace df::checkpoint
