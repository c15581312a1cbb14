// The file sink under checkpoints: exactly-once two-phase commit (seal at
// the snapshot, rename on completion, settle on restore), at-least-once
// commits at the snapshot, crash recovery, and the delivery option. Real
// files in temp dirs, a real I/O thread; every wait is bounded.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "connectors/file_sink.h"
#include "tests/support/operator_harness.h"

namespace df::connectors {
namespace {

using runtime::kFinalCheckpoint;
using runtime::NodeRole;
using test::CollectOutput;
using test::FakeContext;
using test::FakeSnapshotContext;
using test::list_dir;
using test::map;
using test::read_file;
using test::scalar;
using test::TempDir;
using Json = nlohmann::json;
using Names = std::vector<std::string>;

constexpr auto kWait = std::chrono::seconds(10);

SchemaPtr schema() { return make_schema({{"k", TypeId::kInt64}}); }

// Rows k = from .. to-1.
BatchPtr rows(int from, int to) {
  BatchBuilder bb(schema());
  for (int k = from; k < to; ++k) bb.append_row({Value::int64(k)});
  return bb.finish();
}

ConfigValue file_sink(const std::string& path, std::vector<ConfigValue::Entry> extra = {}) {
  std::vector<ConfigValue::Entry> e = {{"id", scalar("out")},
                                       {"type", scalar("file")},
                                       {"input", scalar("x")},
                                       {"path", scalar(path, 4, 11)}};
  for (auto& x : extra) e.push_back(std::move(x));
  return map(std::move(e), 2, 5);
}

// As the plan prepares a sink, with the pipeline's checkpoint.delivery.
runtime::PreparedNodePtr prepare(const ConfigValue& cfg, Diagnostics& diags,
                                 const std::string& pipeline_delivery = "at_least_once") {
  runtime::NodeSpec spec;
  spec.id = "out";
  spec.type = "file";
  spec.role = NodeRole::kSink;
  spec.config = &cfg;
  spec.delivery = pipeline_delivery;
  OptionReader opts(cfg, "sink 'out' (file)", diags);
  for (const char* k : {"id", "type", "input"}) opts.allow(k);
  auto node = FileSinkFactory().prepare(spec, {schema()}, opts);
  opts.finish();
  return node;
}

runtime::PreparedNodePtr prepare_ok(const ConfigValue& cfg,
                                    const std::string& pipeline_delivery = "at_least_once") {
  Diagnostics diags;
  auto node = prepare(cfg, diags, pipeline_delivery);
  EXPECT_TRUE(diags.empty()) << diags.to_status().message();
  return node;
}

// One attempt of one sink subtask, driven the way the scheduler drives it.
struct SinkRun {
  SinkRun(const runtime::PreparedNode& node, int subtask, std::optional<std::string> meta,
          bool checkpointing = true)
      : ctx(subtask, subtask + 1), sink(node.make_operator(subtask, subtask + 1)) {
    ctx.set_checkpointing(checkpointing);
    ctx.set_restored_meta(std::move(meta));
  }
  Status open() { return sink->open(ctx); }
  void write(int from, int to) {
    ASSERT_TRUE(ctx.wait_until([&] { return sink->can_accept(); }, kWait));
    ASSERT_TRUE(sink->process(0, rows(from, to), out).ok());
  }
  // snapshot(id) and its deferred work; returns the meta.
  std::string snapshot(uint64_t id) {
    TempDir files;
    FakeSnapshotContext snap(id, files.file("snap"));
    EXPECT_TRUE(sink->snapshot(snap).ok());
    EXPECT_TRUE(snap.wait(kWait).ok());
    return snap.meta();
  }
  void complete(uint64_t id) {
    ASSERT_TRUE(sink->checkpoint_complete(id).ok());
    settle();
  }
  void finish() {
    ASSERT_TRUE(sink->finish(out).ok());
    settle();
  }
  void settle() {
    ASSERT_TRUE(ctx.wait_until([&] { return sink->drained(); }, kWait));
  }
  // Simulates a crash: the operator goes away without close() (its queued
  // I/O is skipped, its open file descriptor closed).
  void crash() {
    settle();
    sink.reset();
  }

  FakeContext ctx;
  std::unique_ptr<runtime::Operator> sink;
  CollectOutput out;
};

// The k values in the committed part files of `dir`, with multiplicity.
std::multiset<int64_t> committed_rows(const std::string& dir) {
  std::multiset<int64_t> ks;
  for (const std::string& name : list_dir(dir)) {
    if (name.starts_with(".") || name.starts_with("_")) continue;  // not output
    std::string text = read_file(dir + "/" + name);
    size_t pos = 0;
    while (pos < text.size()) {
      size_t nl = text.find('\n', pos);
      ks.insert(Json::parse(text.substr(pos, nl - pos))["k"].get<int64_t>());
      pos = nl + 1;
    }
  }
  return ks;
}

std::multiset<int64_t> range(int from, int to) {
  std::multiset<int64_t> s;
  for (int k = from; k < to; ++k) s.insert(k);
  return s;
}

Json pending_meta(uint64_t next_seq, Json pending) {
  return {{"delivery", "exactly_once"}, {"next_seq", next_seq}, {"pending", std::move(pending)}};
}

TEST(FileSinkExactlyOnce, CommitsOnlyWhatCompletedCheckpointsCover) {
  TempDir dir;
  std::string out = dir.file("out");
  auto node = prepare_ok(file_sink(out, {{"delivery", scalar("exactly_once")}}));
  ASSERT_TRUE(node);
  EXPECT_EQ(node->describe(), "file " + out + " (json, exactly once)");

  auto run = std::make_unique<SinkRun>(*node, 0, std::nullopt);
  ASSERT_TRUE(run->open().ok());
  run->write(0, 5);
  std::string meta1 = run->snapshot(1);
  // Rolled and synced, but not visible.
  EXPECT_EQ(list_dir(out), Names{".part-0-0.inprogress"});
  EXPECT_EQ(Json::parse(meta1), pending_meta(1, Json::parse(R"([
      {"checkpoint": 1, "files": ["part-0-0.jsonl"]}])")));
  run->write(5, 10);
  std::string meta2 = run->snapshot(2);
  EXPECT_EQ(Json::parse(meta2), pending_meta(2, Json::parse(R"([
      {"checkpoint": 1, "files": ["part-0-0.jsonl"]},
      {"checkpoint": 2, "files": ["part-0-1.jsonl"]}])")));
  run->complete(1);
  EXPECT_EQ(list_dir(out), (Names{".part-0-1.inprogress", "part-0-0.jsonl"}));
  EXPECT_EQ(committed_rows(out), range(0, 5));
  run->write(10, 15);
  run->crash();  // checkpoint 2 completed, but its notification never arrived
  EXPECT_EQ(list_dir(out),
            (Names{".part-0-1.inprogress", ".part-0-2.inprogress", "part-0-0.jsonl"}));

  // The next attempt resumes from checkpoint 2: its pending part is committed,
  // the part written after it is deleted (its rows come again).
  run = std::make_unique<SinkRun>(*node, 0, meta2);
  ASSERT_TRUE(run->open().ok());
  // The marker keeps the deleted part's seq used (not output: a leading '_').
  EXPECT_EQ(list_dir(out), (Names{"_part-0.next-seq", "part-0-0.jsonl", "part-0-1.jsonl"}));
  EXPECT_EQ(read_file(out + "/_part-0.next-seq"), "3");
  EXPECT_EQ(committed_rows(out), range(0, 10));
  run->write(10, 15);  // replayed
  run->finish();
  // finish() does not commit: the final snapshot carries the last part.
  EXPECT_EQ(list_dir(out), (Names{".part-0-3.inprogress", "_part-0.next-seq", "part-0-0.jsonl",
                                  "part-0-1.jsonl"}));
  std::string final_meta = run->snapshot(kFinalCheckpoint);
  Json want_final = pending_meta(4, Json::array());
  want_final["pending"].push_back(
      {{"checkpoint", kFinalCheckpoint}, {"files", {"part-0-3.jsonl"}}});
  EXPECT_EQ(Json::parse(final_meta), want_final);
  run->complete(kFinalCheckpoint);
  ASSERT_TRUE(run->sink->close().ok());
  EXPECT_EQ(list_dir(out),
            (Names{"_part-0.next-seq", "part-0-0.jsonl", "part-0-1.jsonl", "part-0-3.jsonl"}));
  EXPECT_EQ(committed_rows(out), range(0, 15));
}

TEST(FileSinkExactlyOnce, RestoreFromAnOlderCheckpointDropsLaterPartsAndIsIdempotent) {
  TempDir dir;
  std::string out = dir.file("out");
  auto node = prepare_ok(file_sink(out, {{"delivery", scalar("exactly_once")}}));
  ASSERT_TRUE(node);
  auto run = std::make_unique<SinkRun>(*node, 0, std::nullopt);
  ASSERT_TRUE(run->open().ok());
  run->write(0, 5);
  std::string meta1 = run->snapshot(1);
  run->write(5, 10);
  run->snapshot(2);  // never completes
  run->write(10, 15);
  run->crash();  // before checkpoint 1's completion was delivered
  EXPECT_EQ(list_dir(out),
            (Names{".part-0-0.inprogress", ".part-0-1.inprogress", ".part-0-2.inprogress"}));

  // Resume from checkpoint 1 and crash again at once: committing is idempotent.
  for (int attempt = 0; attempt < 2; ++attempt) {
    run = std::make_unique<SinkRun>(*node, 0, meta1);
    ASSERT_TRUE(run->open().ok());
    EXPECT_EQ(list_dir(out), (Names{"_part-0.next-seq", "part-0-0.jsonl"}));
    EXPECT_EQ(committed_rows(out), range(0, 5));
    run->crash();
  }
  run = std::make_unique<SinkRun>(*node, 0, meta1);
  ASSERT_TRUE(run->open().ok());
  run->write(5, 15);  // replayed from checkpoint 1
  std::string meta3 = run->snapshot(3);
  // seq never reused: .part-0-1 and .part-0-2 existed (deleted) before.
  EXPECT_EQ(Json::parse(meta3), pending_meta(4, Json::parse(R"([
      {"checkpoint": 3, "files": ["part-0-3.jsonl"]}])")));
  run->finish();
  run->snapshot(kFinalCheckpoint);
  run->complete(kFinalCheckpoint);  // commits every pending part, checkpoint 3's too
  ASSERT_TRUE(run->sink->close().ok());
  EXPECT_EQ(list_dir(out), (Names{"_part-0.next-seq", "part-0-0.jsonl", "part-0-3.jsonl"}));
  EXPECT_EQ(committed_rows(out), range(0, 15));
}

TEST(FileSinkExactlyOnce, RolledPartsWaitForTheirCheckpointAndOtherSubtasksAreLeftAlone) {
  TempDir dir;
  std::string out = dir.file("out");
  test::write_file(out + "/part-1-7.jsonl", "{\"k\":-1}\n");  // an earlier run's output
  test::write_file(out + "/.part-10-0.inprogress", "x");      // other subtasks' parts
  test::write_file(out + "/.part-0-3.inprogress", "x");
  auto node =
      prepare_ok(file_sink(out, {{"rolling", map({{"max_rows", scalar("2")}})}}), "exactly_once");
  ASSERT_TRUE(node);
  auto run = std::make_unique<SinkRun>(*node, 1, std::nullopt);
  ASSERT_TRUE(run->open().ok());
  run->write(0, 5);  // parts 8 and 9 roll, 10 is open
  run->settle();
  EXPECT_EQ(list_dir(out),
            (Names{".part-0-3.inprogress", ".part-1-10.inprogress", ".part-1-8.inprogress",
                   ".part-1-9.inprogress", ".part-10-0.inprogress", "part-1-7.jsonl"}));
  std::string meta1 = run->snapshot(1);
  EXPECT_EQ(Json::parse(meta1), pending_meta(11, Json::parse(R"([{"checkpoint": 1, "files":
      ["part-1-8.jsonl", "part-1-9.jsonl", "part-1-10.jsonl"]}])")));
  run->write(5, 6);
  run->crash();
  run = std::make_unique<SinkRun>(*node, 1, meta1);
  ASSERT_TRUE(run->open().ok());
  EXPECT_EQ(list_dir(out),
            (Names{".part-0-3.inprogress", ".part-10-0.inprogress", "_part-1.next-seq",
                   "part-1-10.jsonl", "part-1-7.jsonl", "part-1-8.jsonl", "part-1-9.jsonl"}));
  EXPECT_EQ(committed_rows(out), range(-1, 5));
  ASSERT_TRUE(run->sink->close().ok());
}

// Attempts killed before their first checkpoint completed leave in-progress
// parts and no checkpoint: the next first run deletes its own, since their
// rows come again, and never reuses their names.
TEST(FileSinkExactlyOnce, FirstCheckpointedRunDeletesPartsOfAttemptsWithoutACheckpoint) {
  TempDir dir;
  std::string out = dir.file("out");
  test::write_file(out + "/.part-0-4.inprogress", "{\"k\":99}\n");  // a killed attempt
  test::write_file(out + "/.part-1-2.inprogress", "x");              // another subtask's
  auto node = prepare_ok(file_sink(out), "exactly_once");
  ASSERT_TRUE(node);
  SinkRun run(*node, 0, std::nullopt);
  ASSERT_TRUE(run.open().ok());
  EXPECT_EQ(list_dir(out), (Names{".part-1-2.inprogress", "_part-0.next-seq"}));
  run.write(0, 2);
  run.snapshot(1);
  run.complete(1);
  EXPECT_EQ(list_dir(out), (Names{".part-1-2.inprogress", "_part-0.next-seq", "part-0-5.jsonl"}));
  EXPECT_EQ(committed_rows(out), range(0, 2));
  ASSERT_TRUE(run.sink->close().ok());
}

TEST(FileSinkExactlyOnce, CloseWithoutCompletionCommitsNothing) {
  TempDir dir;
  std::string out = dir.file("out");
  auto node = prepare_ok(file_sink(out, {{"delivery", scalar("exactly_once")}}));
  ASSERT_TRUE(node);
  SinkRun run(*node, 0, std::nullopt);
  ASSERT_TRUE(run.open().ok());
  EXPECT_EQ(Json::parse(run.snapshot(1)), pending_meta(0, Json::array()));  // nothing yet
  run.write(0, 3);
  run.finish();
  run.snapshot(kFinalCheckpoint);
  ASSERT_TRUE(run.sink->close().ok());  // e.g. the final checkpoint failed
  EXPECT_EQ(list_dir(out), Names{".part-0-0.inprogress"});
}

TEST(FileSinkExactlyOnce, WithoutCheckpointingCommitsAtFinishAsBefore) {
  TempDir dir;
  std::string out = dir.file("out");
  auto node = prepare_ok(file_sink(out), "exactly_once");
  ASSERT_TRUE(node);
  FakeContext ctx;
  ASSERT_TRUE(test::run_sink(*node->make_operator(0, 1), ctx, {rows(0, 4), rows(4, 6)}).ok());
  EXPECT_EQ(list_dir(out), Names{"part-0-0.jsonl"});
  EXPECT_EQ(committed_rows(out), range(0, 6));
}

TEST(FileSinkAtLeastOnce, CheckpointingCommitsAtTheSnapshot) {
  TempDir dir;
  std::string out = dir.file("out");
  auto node = prepare_ok(file_sink(out));
  ASSERT_TRUE(node);
  EXPECT_EQ(node->describe(), "file " + out + " (json)");
  auto run = std::make_unique<SinkRun>(*node, 0, std::nullopt);
  ASSERT_TRUE(run->open().ok());
  run->write(0, 5);
  int wakes = run->ctx.wakes();
  std::string meta1 = run->snapshot(1);
  EXPECT_EQ(list_dir(out), Names{"part-0-0.jsonl"});  // committed before the ack
  EXPECT_EQ(Json::parse(meta1),
            Json::parse(R"({"delivery": "at_least_once", "next_seq": 1, "pending": []})"));
  // A task that waits for drained() without finish() (a stop) is woken.
  EXPECT_TRUE(run->ctx.wait_until([&] { return run->ctx.wakes() > wakes; }, kWait));
  run->write(5, 8);
  ASSERT_TRUE(run->sink->checkpoint_complete(1).ok());
  run->crash();
  EXPECT_EQ(list_dir(out), (Names{".part-0-1.inprogress", "part-0-0.jsonl"}));

  run = std::make_unique<SinkRun>(*node, 0, meta1);
  ASSERT_TRUE(run->open().ok());
  // The crashed part is gone.
  EXPECT_EQ(list_dir(out), (Names{"_part-0.next-seq", "part-0-0.jsonl"}));
  run->write(5, 8);
  run->finish();  // at-least-once commits at finish
  EXPECT_EQ(list_dir(out), (Names{"_part-0.next-seq", "part-0-0.jsonl", "part-0-2.jsonl"}));
  run->snapshot(kFinalCheckpoint);
  run->complete(kFinalCheckpoint);
  ASSERT_TRUE(run->sink->close().ok());
  EXPECT_EQ(committed_rows(out), range(0, 8));
}

TEST(FileSinkCheckpoint, BadMetaAndIoErrorsFailClearly) {
  TempDir dir;
  auto node = prepare_ok(file_sink(dir.file("out")));
  ASSERT_TRUE(node);
  SinkRun bad(*node, 0, std::string(R"({"pending": [{"checkpoint": 1, "files": ["../x"]}]})"));
  EXPECT_EQ(bad.open().message(),
            "file sink 'test' subtask 0: cannot read the checkpoint's meta: '../x' is not a part "
            "file of subtask 0");
  SinkRun other(*node, 0,
                std::string(R"({"pending": [{"checkpoint": 1, "files": ["part-1-0.csv"]}]})"));
  EXPECT_EQ(other.open().code(), StatusCode::kInvalidArgument);
  // A pending part neither in progress nor committed: logged, not fatal.
  SinkRun gone(
      *node, 0,
      std::string(
          R"({"next_seq": 5, "pending": [{"checkpoint": 1, "files": ["part-0-4.jsonl"]}]})"));
  ASSERT_TRUE(gone.open().ok());
  gone.write(0, 1);
  gone.finish();
  EXPECT_EQ(list_dir(dir.file("out")), Names{"part-0-5.jsonl"});
  ASSERT_TRUE(gone.sink->close().ok());
}

TEST(FileSinkOptions, DeliveryOptionOverridesThePipelineAndIsChecked) {
  TempDir dir;
  auto eo = prepare_ok(file_sink(dir.file("a")), "exactly_once");
  ASSERT_TRUE(eo);
  EXPECT_EQ(eo->describe(), "file " + dir.file("a") + " (json, exactly once)");
  auto alo =
      prepare_ok(file_sink(dir.file("a"), {{"delivery", scalar("at_least_once")}}), "exactly_once");
  ASSERT_TRUE(alo);
  EXPECT_EQ(alo->describe(), "file " + dir.file("a") + " (json)");
  Diagnostics diags;
  EXPECT_FALSE(prepare(file_sink(dir.file("a"), {{"delivery", scalar("twice", 5, 15)}}), diags));
  EXPECT_EQ(diags.to_status().message(),
            "pipe.yaml:5:15: sink 'out' (file) option 'delivery': must be at_least_once or "
            "exactly_once, got 'twice'");
}

}  // namespace
}  // namespace df::connectors
