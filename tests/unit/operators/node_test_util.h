// Shared scaffolding of the operator tests: preparing one operator from YAML
// text as the planner does, recording what an operator emits as text,
// reading a snapshot's RocksDB entries back, and the bids stream of the
// window tests.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/checkpoint/state_serde.h"
#include "engine/core/batch.h"
#include "engine/core/config_value.h"
#include "engine/runtime/node_factory.h"
#include "engine/runtime/operator.h"
#include "tests/support/operator_harness.h"

namespace df::test {

// A prepared node with what it refers to: its config document, the registry
// and factory that made it, and the diagnostics of preparing it.
struct BuiltNode {
  ConfigValue doc;
  Diagnostics diags;
  runtime::NodeRegistry registry;
  const runtime::NodeFactory* factory = nullptr;  // null: `type` is not registered
  runtime::PreparedNodePtr node;                  // null: preparing failed (see diags)
  const checkpoint::StateSerde* serde = nullptr;  // the node's, if it has one
};

// Parses `yaml` (a transform's map, named t.yaml in locations), registers the
// operators and prepares the transform of `type` (empty: the document's
// `type`) with one input per entry of `inputs`, of the given schemas and
// event-time flags; the options in `allowed_keys` are allowed besides the
// operator's own, and OptionReader::finish() is called.
std::unique_ptr<BuiltNode> prepare_operator(
    const std::string& yaml, std::string_view type, std::vector<std::string> inputs,
    std::vector<SchemaPtr> schemas, std::vector<bool> input_has_event_time = {},
    std::vector<std::string> allowed_keys = {"id", "type", "input", "inputs", "parallelism"});

// Appends every alive row of `batch` as "v1|v2|...", with "@<event time>"
// when the batch carries event time.
void append_row_lines(const Batch& batch, std::vector<std::string>& lines);

// Records everything an operator emits, in order, as text: rows as
// append_row_lines() writes them, watermarks as "WM <ts>" (+ " idle").
class LogOutput : public runtime::Output {
 public:
  // require_event_time: every emitted batch must carry event time (checked).
  explicit LogOutput(bool require_event_time = false) : require_event_time_(require_event_time) {}
  void emit(BatchPtr b) override;
  void emit_watermark(Watermark wm) override;
  std::vector<std::string> log;

 private:
  bool require_event_time_;
};

// Holds the I/O thread of `io` (a test::FakeContext runs I/O jobs in posting
// order on one thread) until open() or destruction (at most 60 s), so the
// deferred writes of snapshots taken meanwhile stay queued. Destroy it
// before the executor.
class IoGate {
 public:
  explicit IoGate(runtime::IoExecutor& io);
  ~IoGate() { open(); }
  IoGate(const IoGate&) = delete;
  IoGate& operator=(const IoGate&) = delete;
  void open();

 private:
  // Shared with the job on the I/O thread, which may still be waking up
  // after the gate itself is gone.
  struct State {
    std::mutex mu;
    std::condition_variable cv;
    bool open = false;
  };
  std::shared_ptr<State> state_ = std::make_shared<State>();
};

// The StateStats::state_entries() of `op` (0, and a failure, if it has none).
size_t state_entries(runtime::Operator& op);

// Every entry of the RocksDB store in `dir` (e.g. a snapshot's files).
std::vector<std::pair<std::string, std::string>> entries_of(const std::string& dir);

// The window tests' input: {auction: int64, price: double, name: string,
// ts: timestamp}.
SchemaPtr bids_schema();

// One bid; nullopt is null.
struct Bid {
  std::optional<int64_t> auction;
  std::optional<double> price;
  std::optional<std::string> name;
  int64_t ts;
};

// A batch of bids whose event time is their `ts` field.
BatchPtr bids(const std::vector<Bid>& rows);

// ---- checkpoint round trips of the windowed operators (window, top_n) ------

// What an operator emits: main output, late-row side output (port 1) and
// watermarks.
class PortsOutput final : public runtime::Output {
 public:
  void emit(BatchPtr batch) override { main.push_back(std::move(batch)); }
  void emit_watermark(Watermark wm) override { watermarks.push_back(wm.timestamp_ms); }
  void emit_to(size_t port, BatchPtr batch) override {
    if (port == 0) return emit(std::move(batch));
    late.push_back(std::move(batch));
  }
  std::vector<BatchPtr> main;
  std::vector<BatchPtr> late;
  std::vector<int64_t> watermarks;
};

// One element of a bids stream.
struct BidStep {
  std::vector<Bid> rows;             // a batch, or
  std::optional<int64_t> watermark;  // a watermark
};

// Each step's output lines, then finish()'s.
using StepOutput = std::vector<std::vector<std::string>>;

// How a test writes one step's output as lines.
using CollectLines = std::function<std::vector<std::string>(PortsOutput&)>;

// One operator instance on a FakeContext (a real I/O thread) fed bids step
// by step, with a state directory when `state_dir` is not empty, resuming
// from `meta` when given. Not thread-safe.
struct BidsInstance {
  BidsInstance(const runtime::PreparedNode& node, std::string state_dir, size_t budget,
               std::optional<std::string> meta, size_t batch_size, CollectLines collect);
  // Runs one step; returns its output lines.
  std::vector<std::string> run(const BidStep& step);
  std::vector<std::string> finish();
  // Snapshots into `files_dir` and waits for its writes; returns the meta.
  std::string snapshot(const std::string& files_dir, uint64_t id = 1);

  FakeContext ctx;
  std::unique_ptr<runtime::Operator> op;
  Status open_status;
  CollectLines collect;
};

// Makes an instance on `state_dir`, resuming from `meta` when given.
using MakeInstance = std::function<std::unique_ptr<BidsInstance>(const std::string& state_dir,
                                                                 std::optional<std::string> meta)>;

// Copies a snapshot's files into a fresh state directory, as a resumed run
// finds them (a snapshot of nothing has no files: the directory is empty).
void install_snapshot(const std::string& files_dir, const std::string& state_dir);

// The output of `steps` without checkpoints, in `dir`.
StepOutput reference_run(const MakeInstance& make, const std::vector<BidStep>& steps,
                         const std::string& dir);

// Runs `steps` with a snapshot before each step in `cuts` (ascending); after
// each snapshot the instance is dropped (a crash: its store closes) and a
// fresh one resumes from the snapshot's files, under `root`.
StepOutput resumed_run(const MakeInstance& make, const std::vector<BidStep>& steps,
                       const std::vector<size_t>& cuts, const std::string& root);

// Every step's output equal, and some rows at all.
void expect_same_steps(const StepOutput& want, const StepOutput& got);

}  // namespace df::test
