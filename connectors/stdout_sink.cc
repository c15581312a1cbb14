#include "connectors/stdout_sink.h"

#include <unistd.h>

namespace df::connectors {

FdSink::FdSink(SchemaPtr schema, int fd, std::string name, size_t backlog_limit)
    : encoder_(std::move(schema)), fd_(fd), name_(std::move(name)), io_(backlog_limit) {}

Status FdSink::open(runtime::OperatorContext& ctx) {
  io_.open(ctx);
  return Status::OK();
}

Status FdSink::process(size_t input, const BatchPtr& batch, runtime::Output& out) {
  (void)input;
  (void)out;
  DF_RETURN_IF_ERROR(io_.error());
  std::string data;
  encoder_.append_batch(*batch, data);
  if (data.empty()) return Status::OK();
  size_t n = data.size();
  io_.post(n,
           [fd = fd_, name = name_, data = std::move(data)] { return write_all(fd, data, name); });
  return Status::OK();
}

Status FdSink::finish(runtime::Output& out) {
  (void)out;
  io_.set_finishing();
  return io_.error();
}

bool FdSink::can_accept() const { return !io_.over_limit() || !io_.error().ok(); }
bool FdSink::drained() const { return io_.idle(); }
Status FdSink::close() { return io_.close(); }

namespace {

class PreparedStdoutSink final : public runtime::PreparedNode {
 public:
  explicit PreparedStdoutSink(SchemaPtr schema) : schema_(std::move(schema)) {}
  SchemaPtr output_schema() const override { return nullptr; }
  std::unique_ptr<runtime::Operator> make_operator(int subtask, int parallelism) const override {
    (void)subtask;
    (void)parallelism;
    return std::make_unique<FdSink>(schema_, STDOUT_FILENO, "stdout");
  }
  // Lines from several writers would interleave.
  std::optional<int> max_parallelism() const override { return 1; }
  std::string describe() const override { return "stdout (json lines)"; }

 private:
  SchemaPtr schema_;
};

class PreparedBlackhole final : public runtime::PreparedNode {
 public:
  SchemaPtr output_schema() const override { return nullptr; }
  std::unique_ptr<runtime::Operator> make_operator(int subtask, int parallelism) const override {
    (void)subtask;
    (void)parallelism;
    return std::make_unique<BlackholeSink>();
  }
  std::string describe() const override { return "blackhole (discards rows)"; }
};

bool check_one_input(const std::vector<SchemaPtr>& inputs, OptionReader& opts) {
  if (inputs.size() == 1 && inputs[0]) return true;
  opts.diags().error(opts.node().location(), opts.what() + " needs exactly one input");
  return false;
}

}  // namespace

Status BlackholeSink::process(size_t input, const BatchPtr& batch, runtime::Output& out) {
  (void)input;
  (void)out;
  rows_ += batch->active_rows();
  return Status::OK();
}

runtime::PreparedNodePtr StdoutSinkFactory::prepare(const runtime::NodeSpec& spec,
                                                    const std::vector<SchemaPtr>& inputs,
                                                    OptionReader& opts) const {
  (void)spec;
  if (!check_one_input(inputs, opts)) return nullptr;
  return std::make_shared<PreparedStdoutSink>(inputs[0]);
}

runtime::PreparedNodePtr BlackholeSinkFactory::prepare(const runtime::NodeSpec& spec,
                                                       const std::vector<SchemaPtr>& inputs,
                                                       OptionReader& opts) const {
  (void)spec;
  if (!check_one_input(inputs, opts)) return nullptr;
  return std::make_shared<PreparedBlackhole>();
}

}  // namespace df::connectors
