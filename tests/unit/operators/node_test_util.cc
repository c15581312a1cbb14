#include "tests/unit/operators/node_test_util.h"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>

#include "config/yaml_loader.h"
#include "engine/state/state_backend.h"
#include "operators/operators.h"
#include "operators/stateful.h"

namespace df::test {

IoGate::IoGate(runtime::IoExecutor& io) {
  io.post(0, [state = state_] {
    std::unique_lock<std::mutex> lock(state->mu);
    state->cv.wait_for(lock, std::chrono::seconds(60), [&] { return state->open; });
  });
}

void IoGate::open() {
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    state_->open = true;
  }
  state_->cv.notify_all();
}

std::unique_ptr<BuiltNode> prepare_operator(const std::string& yaml, std::string_view type,
                                            std::vector<std::string> inputs,
                                            std::vector<SchemaPtr> schemas,
                                            std::vector<bool> input_has_event_time,
                                            std::vector<std::string> allowed_keys) {
  auto built = std::make_unique<BuiltNode>();
  auto doc = config::parse_yaml(yaml, "t.yaml");
  EXPECT_TRUE(doc.ok()) << doc.status().to_string();
  if (!doc.ok()) return built;
  built->doc = std::move(doc).value();
  operators::register_operators(built->registry);
  runtime::NodeSpec spec;
  spec.id = built->doc.find("id")->scalar_text();
  spec.type = type.empty() ? built->doc.find("type")->scalar_text() : std::string(type);
  spec.config = &built->doc;
  spec.inputs = std::move(inputs);
  spec.input_has_event_time = std::move(input_has_event_time);
  built->factory = built->registry.find(runtime::NodeRole::kTransform, spec.type);
  EXPECT_NE(built->factory, nullptr) << "no transform '" << spec.type << "'";
  if (!built->factory) return built;
  OptionReader opts(built->doc, "transform '" + spec.id + "'", built->diags);
  for (const auto& k : allowed_keys) opts.allow(k);
  built->node = built->factory->prepare(spec, std::move(schemas), opts);
  opts.finish();
  if (built->node) built->serde = dynamic_cast<const checkpoint::StateSerde*>(built->node.get());
  return built;
}

void append_row_lines(const Batch& batch, std::vector<std::string>& lines) {
  for (size_t k = 0; k < batch.active_rows(); ++k) {
    const size_t r = batch.row_at(k);
    std::string line;
    for (size_t c = 0; c < batch.num_columns(); ++c) {
      line += (c ? "|" : "") + batch.column(c)->value_at(r).to_string();
    }
    if (batch.event_time()) line += "@" + std::to_string(batch.event_time()->int64_at(r));
    lines.push_back(line);
  }
}

void LogOutput::emit(BatchPtr b) {
  if (require_event_time_) {
    EXPECT_TRUE(b->event_time()) << "output without event time";
  }
  append_row_lines(*b, log);
}

void LogOutput::emit_watermark(Watermark wm) {
  log.push_back("WM " + std::to_string(wm.timestamp_ms) + (wm.idle ? " idle" : ""));
}

size_t state_entries(runtime::Operator& op) {
  auto* stats = dynamic_cast<operators::StateStats*>(&op);
  EXPECT_NE(stats, nullptr);
  return stats ? stats->state_entries() : 0;
}

std::vector<std::pair<std::string, std::string>> entries_of(const std::string& dir) {
  std::vector<std::pair<std::string, std::string>> out;
  auto store = state::open_rocksdb({dir});
  EXPECT_TRUE(store.ok()) << store.status().to_string();
  if (!store.ok()) return out;
  EXPECT_TRUE((*store)
                  ->scan("", "",
                         [&](std::string_view k, std::string_view v) {
                           out.emplace_back(std::string(k), std::string(v));
                           return true;
                         })
                  .ok());
  return out;
}

SchemaPtr bids_schema() {
  return make_schema({{"auction", TypeId::kInt64},
                      {"price", TypeId::kDouble},
                      {"name", TypeId::kString},
                      {"ts", TypeId::kTimestamp}});
}

BatchPtr bids(const std::vector<Bid>& rows) {
  BatchBuilder b(bids_schema());
  for (const Bid& r : rows) {
    b.append_row({r.auction ? Value::int64(*r.auction) : Value::null(TypeId::kInt64),
                  r.price ? Value::float64(*r.price) : Value::null(TypeId::kDouble),
                  r.name ? Value::string(*r.name) : Value::null(TypeId::kString),
                  Value::timestamp(r.ts)});
  }
  BatchPtr batch = b.finish();
  return batch->with_event_time(batch->column(3));
}

BidsInstance::BidsInstance(const runtime::PreparedNode& node, std::string state_dir, size_t budget,
                           std::optional<std::string> meta, size_t batch_size,
                           CollectLines collect_lines)
    : ctx(0, 1, batch_size), op(node.make_operator(0, 1)), collect(std::move(collect_lines)) {
  ctx.set_state_dir(std::move(state_dir));
  ctx.set_state_memory_budget(budget);
  ctx.set_checkpointing(true);
  ctx.set_restored_meta(std::move(meta));
  open_status = op->open(ctx);
}

std::vector<std::string> BidsInstance::run(const BidStep& step) {
  PortsOutput out;
  Status s = step.watermark ? op->on_watermark(Watermark{*step.watermark}, out)
                            : op->process(0, bids(step.rows), out);
  EXPECT_TRUE(s.ok()) << s.to_string();
  return collect(out);
}

std::vector<std::string> BidsInstance::finish() {
  PortsOutput out;
  Status s = op->finish(out);
  EXPECT_TRUE(s.ok()) << s.to_string();
  return collect(out);
}

std::string BidsInstance::snapshot(const std::string& files_dir, uint64_t id) {
  FakeSnapshotContext sc(id, files_dir);
  Status s = op->snapshot(sc);
  EXPECT_TRUE(s.ok()) << s.to_string();
  EXPECT_TRUE(sc.wait().ok());
  return sc.meta();
}

void install_snapshot(const std::string& files_dir, const std::string& state_dir) {
  namespace fs = std::filesystem;
  fs::remove_all(state_dir);
  fs::create_directories(fs::path(state_dir).parent_path());
  if (fs::exists(files_dir)) {
    fs::copy(files_dir, state_dir, fs::copy_options::recursive);
  } else {
    fs::create_directories(state_dir);
  }
}

StepOutput reference_run(const MakeInstance& make, const std::vector<BidStep>& steps,
                         const std::string& dir) {
  auto in = make(dir, std::nullopt);
  StepOutput out;
  for (const BidStep& s : steps) out.push_back(in->run(s));
  out.push_back(in->finish());
  return out;
}

StepOutput resumed_run(const MakeInstance& make, const std::vector<BidStep>& steps,
                       const std::vector<size_t>& cuts, const std::string& root) {
  StepOutput out;
  int generation = 0;
  auto in = make(root + "/state0", std::nullopt);
  size_t next_cut = 0;
  for (size_t i = 0; i <= steps.size(); ++i) {
    if (next_cut < cuts.size() && cuts[next_cut] == i) {
      ++next_cut;
      const std::string files = root + "/cp" + std::to_string(generation);
      const std::string meta = in->snapshot(files, static_cast<uint64_t>(generation + 1));
      EXPECT_FALSE(meta.empty());
      in.reset();
      ++generation;
      const std::string dir = root + "/state" + std::to_string(generation);
      install_snapshot(files, dir);
      in = make(dir, meta);
      EXPECT_TRUE(in->open_status.ok()) << in->open_status.to_string();
    }
    if (i == steps.size()) break;
    out.push_back(in->run(steps[i]));
  }
  out.push_back(in->finish());
  return out;
}

void expect_same_steps(const StepOutput& want, const StepOutput& got) {
  ASSERT_EQ(want.size(), got.size());
  size_t rows = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    rows += want[i].size();
    ASSERT_EQ(want[i], got[i]) << "at step " << i << " of " << want.size();
  }
  EXPECT_GT(rows, 0u);
}

}  // namespace df::test
