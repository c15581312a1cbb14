#include "tests/support/operator_harness.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <random>
#include <sstream>

namespace df::test {

namespace fs = std::filesystem;

ThreadIoExecutor::ThreadIoExecutor() : thread_([this] { run(); }) {}

ThreadIoExecutor::~ThreadIoExecutor() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void ThreadIoExecutor::post(uint64_t strand, std::function<void()> job) {
  (void)strand;  // one thread: every strand is ordered
  {
    std::lock_guard lock(mu_);
    jobs_.push_back(std::move(job));
  }
  cv_.notify_all();
}

void ThreadIoExecutor::run() {
  while (true) {
    std::function<void()> job;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stop_ || !jobs_.empty(); });
      if (jobs_.empty()) return;  // stop requested and nothing left
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    job();
  }
}

void FakeContext::wake() {
  wakes_.fetch_add(1);
  std::lock_guard lock(mu_);
  cv_.notify_all();
}

void FakeContext::report_data_error(std::string_view message) {
  std::lock_guard lock(mu_);
  errors_.emplace_back(message);
}

std::vector<std::string> FakeContext::data_errors() const {
  std::lock_guard lock(mu_);
  return errors_;
}

bool FakeContext::wait_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    // pred() runs without mu_: it calls into the operator, whose I/O thread
    // may hold the operator's own lock while it calls wake() (lock order:
    // operator, then mu_). A wake between the check and the wait shows in
    // wakes_.
    const int seen = wakes_.load();
    if (pred()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, std::chrono::milliseconds(10), [&] { return wakes_.load() != seen; });
  }
}

ConfigValue scalar(std::string text, int line, int col) {
  return ConfigValue::scalar(std::move(text), SourceLocation{"pipe.yaml", line, col});
}

ConfigValue map(std::vector<ConfigValue::Entry> entries, int line, int col) {
  return ConfigValue::map(std::move(entries), SourceLocation{"pipe.yaml", line, col});
}

runtime::PreparedNodePtr prepare(const runtime::NodeFactory& factory, runtime::NodeRole role,
                                 const ConfigValue& config, Diagnostics& diags,
                                 std::vector<SchemaPtr> inputs) {
  runtime::NodeSpec spec;
  const ConfigValue* id = config.find("id");
  const ConfigValue* type = config.find("type");
  spec.id = id ? id->scalar_text() : "node";
  spec.type = type ? type->scalar_text() : "?";
  spec.role = role;
  spec.config = &config;
  std::string what =
      std::string(runtime::node_role_name(role)) + " '" + spec.id + "' (" + spec.type + ")";
  OptionReader opts(config, what, diags);
  for (const char* k : {"id", "type", "input", "inputs", "parallelism"}) opts.allow(k);
  auto node = factory.prepare(spec, inputs, opts);
  opts.finish();
  return node;
}

std::vector<std::vector<Value>> rows_of(const std::vector<BatchPtr>& batches) {
  std::vector<std::vector<Value>> rows;
  for (const auto& b : batches) {
    b->for_each_row([&](size_t r) {
      std::vector<Value> row;
      for (size_t c = 0; c < b->num_columns(); ++c) row.push_back(b->column(c)->value_at(r));
      rows.push_back(std::move(row));
    });
  }
  return rows;
}

Status run_source(runtime::SourceOperator& src, FakeContext& ctx, CollectOutput& out,
                  int max_calls) {
  DF_RETURN_IF_ERROR(src.open(ctx));
  for (int i = 0; i < max_calls; ++i) {
    auto p = src.produce(out);
    if (!p.ok()) {
      src.close().ignore();
      return p.status();
    }
    if (p->state == runtime::SourceProgress::State::kExhausted) return src.close();
    if (p->state == runtime::SourceProgress::State::kWait) {
      std::this_thread::sleep_until(p->wake_at);
    }
  }
  ADD_FAILURE() << "source did not finish within " << max_calls << " produce() calls";
  return Status::internal("source did not finish");
}

Status run_sink(runtime::Operator& sink, FakeContext& ctx, const std::vector<BatchPtr>& batches,
                std::chrono::milliseconds timeout) {
  CollectOutput out;
  DF_RETURN_IF_ERROR(sink.open(ctx));
  for (const auto& b : batches) {
    if (!ctx.wait_until([&] { return sink.can_accept(); }, timeout)) {
      return Status::internal("sink stayed full");
    }
    Status s = sink.process(0, b, out);
    if (!s.ok()) {
      sink.close().ignore();
      return s;
    }
  }
  DF_RETURN_IF_ERROR(sink.finish(out));
  if (!ctx.wait_until([&] { return sink.drained(); }, timeout)) {
    return Status::internal("sink did not drain");
  }
  return sink.close();
}

}  // namespace df::test

namespace df::test {

std::function<void(Status)> FakeSnapshotContext::defer() {
  std::lock_guard<std::mutex> lock(mu_);
  ++pending_;
  return [this](Status s) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!s.ok() && first_error_.ok()) first_error_ = std::move(s);
    --pending_;
    cv_.notify_all();
  };
}

Status FakeSnapshotContext::wait(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  if (!cv_.wait_for(lock, timeout, [&] { return pending_ == 0; })) {
    return Status::internal("deferred snapshot work did not complete in time");
  }
  return first_error_;
}

}  // namespace df::test
