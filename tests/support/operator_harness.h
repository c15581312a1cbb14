// Drives one operator instance directly, without a scheduler: a fake
// OperatorContext (I/O jobs run inline on the calling thread) and an Output
// that collects what the operator emits. For unit tests of operators and
// connectors. Single-threaded.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "engine/runtime/operator.h"

namespace df::test {

class InlineIo final : public runtime::IoExecutor {
 public:
  void post(uint64_t, std::function<void()> job) override { job(); }
};

class FakeContext final : public runtime::OperatorContext {
 public:
  explicit FakeContext(std::string node_id = "node", int subtask = 0, int parallelism = 1,
                       size_t batch_size = 1024)
      : id_(std::move(node_id)), subtask_(subtask), parallelism_(parallelism), batch_size_(batch_size) {}

  const std::string& node_id() const override { return id_; }
  int subtask() const override { return subtask_; }
  int parallelism() const override { return parallelism_; }
  size_t batch_size() const override { return batch_size_; }
  void wake() override { ++wakes; }
  void report_data_error(std::string_view message) override { errors.emplace_back(message); }
  uint64_t io_strand() const override { return 1; }
  runtime::IoExecutor& io() override { return io_; }
  bool stop_requested() const override { return stop; }

  std::vector<std::string> errors;
  int wakes = 0;
  bool stop = false;

 private:
  std::string id_;
  int subtask_;
  int parallelism_;
  size_t batch_size_;
  InlineIo io_;
};

class CollectingOutput final : public runtime::Output {
 public:
  void emit(BatchPtr batch) override { batches.push_back(std::move(batch)); }
  void emit_watermark(Watermark wm) override { watermarks.push_back(wm.timestamp_ms); }

  // Every alive row of every batch, as "v1|v2|..." using Value::to_string.
  std::vector<std::string> rows() const {
    std::vector<std::string> out;
    for (const auto& b : batches) {
      b->for_each_row([&](size_t r) {
        std::string line;
        for (size_t c = 0; c < b->num_columns(); ++c) {
          if (c) line += "|";
          line += b->column(c)->value_at(r).to_string();
        }
        out.push_back(line);
      });
    }
    return out;
  }

  std::vector<BatchPtr> batches;
  std::vector<int64_t> watermarks;
};

}  // namespace df::test
