// `type: stdout` and `type: blackhole` sinks (DESIGN.md §6).
//
// stdout: JSON lines to fd 1 (no options; max_parallelism 1). Rows are
// encoded on the worker and written by blocking write(2) calls on ctx.io()
// (see IoQueue), so a slow reader (`dataflow exec ... | slow`) backs the
// pipeline up through can_accept() == false instead of growing memory: at
// most ~8 MiB waits per sink. A reader that goes away (EPIPE) fails the sink
// with a clear message; ignoring SIGPIPE process-wide is the CLI's job.
//
// blackhole: counts rows and discards them (no options).
#pragma once

#include <cstdint>

#include "connectors/format/json.h"
#include "connectors/io_queue.h"
#include "engine/runtime/node_factory.h"

namespace df::connectors {

// Writes JSON lines of its input to a file descriptor it does not own. One
// instance per subtask; see runtime::Operator for the threading contract.
class FdSink final : public runtime::Operator {
 public:
  FdSink(SchemaPtr schema, int fd, std::string name, size_t backlog_limit = kDefaultBacklogBytes);

  Status open(runtime::OperatorContext& ctx) override;
  Status process(size_t input, const BatchPtr& batch, runtime::Output& out) override;
  Status finish(runtime::Output& out) override;
  bool can_accept() const override;
  bool drained() const override;
  Status close() override;

  size_t backlog_bytes() const { return io_.backlog_bytes(); }

 private:
  JsonRowEncoder encoder_;
  int fd_;
  std::string name_;  // for messages: "stdout"
  IoQueue io_;
};

class StdoutSinkFactory final : public runtime::NodeFactory {
 public:
  runtime::PreparedNodePtr prepare(const runtime::NodeSpec& spec,
                                   const std::vector<SchemaPtr>& inputs,
                                   OptionReader& opts) const override;
};

// Counts and discards. One instance per subtask.
class BlackholeSink final : public runtime::Operator {
 public:
  Status process(size_t input, const BatchPtr& batch, runtime::Output& out) override;
  uint64_t rows() const { return rows_; }

 private:
  uint64_t rows_ = 0;
};

class BlackholeSinkFactory final : public runtime::NodeFactory {
 public:
  runtime::PreparedNodePtr prepare(const runtime::NodeSpec& spec,
                                   const std::vector<SchemaPtr>& inputs,
                                   OptionReader& opts) const override;
};

}  // namespace df::connectors
