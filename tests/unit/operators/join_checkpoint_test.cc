// join checkpoints: windowed and interval joins, inner and left outer, with
// real RocksDB state. A scripted run (random keys, out-of-order event times,
// null keys, watermarks) is snapshotted at random points; each snapshot is
// restored into a fresh operator (its files copied to a new state dir, its
// meta handed back) that replays the rest of the script. The output of the
// first part plus the resumed output must equal an uninterrupted run, element
// for element (rows and watermarks in order).
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <random>

#include "engine/checkpoint/state_serde.h"
#include "operators/operators.h"
#include "operators/stateful.h"
#include "tests/support/operator_harness.h"
#include "tests/support/sanitizers.h"
#include "tests/unit/operators/node_test_util.h"

namespace df::operators {
namespace {

namespace fs = std::filesystem;

// The join key `k` is an int64 (the joins' integer-key path) or, with
// string_keys, a string (keys compared as encoded bytes).
SchemaPtr left_schema(bool string_keys = false) {
  return make_schema(
      {{"k", string_keys ? TypeId::kString : TypeId::kInt64}, {"a", TypeId::kString}});
}
SchemaPtr right_schema(bool string_keys = false) {
  return make_schema(
      {{"k", string_keys ? TypeId::kString : TypeId::kInt64}, {"b", TypeId::kString}});
}

std::unique_ptr<test::BuiltNode> prepare(const std::string& extra, bool string_keys = false) {
  auto built = test::prepare_operator(
      "{id: j, type: join, left: persons, right: auctions, on: [k], " + extra + "}", "join",
      {"persons", "auctions"}, {left_schema(string_keys), right_schema(string_keys)}, {true, true},
      {"id", "type", "parallelism"});
  EXPECT_TRUE(built->node) << built->diags.to_status().message();
  return built;
}

// Records everything an operator emits, in order, as text; join output
// always carries event time.
class LogOutput final : public test::LogOutput {
 public:
  LogOutput() : test::LogOutput(/*require_event_time=*/true) {}
};

struct Step {
  size_t input = 0;
  BatchPtr batch;  // nullptr: a watermark
  int64_t wm = 0;
};

BatchPtr side(const SchemaPtr& schema, std::mt19937_64& rng, int64_t base, size_t rows,
              int& counter) {
  BatchBuilder b(schema);
  ColumnBuilder ts(TypeId::kInt64);
  auto key = static_cast<int64_t>(rng() % 6);
  for (size_t i = 0; i < rows; ++i) {
    const bool null_key = rng() % 17 == 0;
    // Runs of one key, as an upstream window's output has them, half the time.
    if (rng() % 2 == 0) key = static_cast<int64_t>(rng() % 6);
    const TypeId key_type = schema->field(0).type;
    b.append_row({null_key                      ? Value::null(key_type)
                  : key_type == TypeId::kString ? Value::string("k" + std::to_string(key))
                                                : Value::int64(key),
                  Value::string("v" + std::to_string(counter++))});
    // Out of order: up to 4 s behind the stream's front.
    ts.append_int64(base - static_cast<int64_t>(rng() % 4000));
  }
  return b.finish()->with_event_time(ts.finish());
}

// A random script: batches of both sides (mostly of a few rows, gathered; one
// in 8 of 64 or more, held as they are) with times around a front that
// moves forward, watermarks 3 s behind the front (so some rows are late).
std::vector<Step> script(uint64_t seed, size_t steps, bool string_keys = false) {
  std::mt19937_64 rng(seed);
  std::vector<Step> out;
  int64_t front = 10'000;
  int counter = 0;
  for (size_t i = 0; i < steps; ++i) {
    front += static_cast<int64_t>(rng() % 700);
    const auto pick = rng() % 5;
    if (pick == 0) {
      out.push_back({0, nullptr, front - 3000});
    } else {
      const size_t input = pick % 2;
      out.push_back({input,
                     side(input == 0 ? left_schema(string_keys) : right_schema(string_keys), rng,
                          front, rng() % 8 == 0 ? 64 + rng() % 64 : 1 + rng() % 6, counter),
                     0});
    }
  }
  return out;
}

Status apply(runtime::Operator& op, const Step& s, runtime::Output& out) {
  if (s.batch) return op.process(s.input, s.batch, out);
  return op.on_watermark(Watermark{s.wm}, out);
}

struct Snap {
  size_t after = 0;  // steps applied before the snapshot
  std::string files_dir;
  std::string meta;
  size_t output_size = 0;  // log entries emitted before it
};

// The uninterrupted run's log.
std::vector<std::string> run_plain(const runtime::PreparedNode& node,
                                   const std::vector<Step>& steps, const std::string& dir,
                                   size_t budget) {
  test::FakeContext ctx(0, 1, 8);
  ctx.set_state_dir(dir);
  ctx.set_state_memory_budget(budget);
  LogOutput out;
  auto op = node.make_operator(0, 1);
  EXPECT_TRUE(op->open(ctx).ok());
  for (const auto& s : steps) EXPECT_TRUE(apply(*op, s, out).ok());
  EXPECT_TRUE(op->finish(out).ok());
  EXPECT_TRUE(op->close().ok());
  return out.log;
}

// Runs `steps` with snapshots after the steps in `points`, then finishes.
std::vector<std::string> run_with_snapshots(const runtime::PreparedNode& node,
                                            const std::vector<Step>& steps,
                                            const std::vector<size_t>& points,
                                            const test::TempDir& tmp, const std::string& tag,
                                            size_t budget, std::vector<Snap>& snaps) {
  test::FakeContext ctx(0, 1, 8);
  ctx.set_state_dir(tmp.file(tag + "-state"));
  ctx.set_state_memory_budget(budget);
  ctx.set_checkpointing(true);
  LogOutput out;
  auto op = node.make_operator(0, 1);
  EXPECT_TRUE(op->open(ctx).ok());
  size_t next = 0;
  for (size_t i = 0; i <= steps.size(); ++i) {
    while (next < points.size() && points[next] == i) {
      Snap snap;
      snap.after = i;
      snap.files_dir = tmp.file(tag + "-ckpt-" + std::to_string(snaps.size()));
      test::FakeSnapshotContext sctx(snaps.size() + 1, snap.files_dir);
      Status s = op->snapshot(sctx);
      EXPECT_TRUE(s.ok()) << s.to_string();
      EXPECT_TRUE(sctx.wait().ok());
      EXPECT_FALSE(sctx.meta().empty());
      snap.meta = sctx.meta();
      snap.output_size = out.log.size();
      snaps.push_back(snap);
      ++next;
    }
    if (i < steps.size()) {
      EXPECT_TRUE(apply(*op, steps[i], out).ok());
    }
  }
  EXPECT_TRUE(op->finish(out).ok());
  EXPECT_TRUE(op->close().ok());
  return out.log;
}

// A fresh instance on a copy of the snapshot's files, given its meta, replays
// the rest of the script; returns what it emitted.
std::vector<std::string> resume(const runtime::PreparedNode& node, const std::vector<Step>& steps,
                                const Snap& snap, const std::string& state_dir, size_t budget) {
  fs::copy(snap.files_dir, state_dir, fs::copy_options::recursive);
  test::FakeContext ctx(0, 1, 8);
  ctx.set_state_dir(state_dir);
  ctx.set_state_memory_budget(budget);
  ctx.set_checkpointing(true);
  ctx.set_restored_meta(snap.meta);
  LogOutput out;
  auto op = node.make_operator(0, 1);
  Status s = op->open(ctx);
  EXPECT_TRUE(s.ok()) << s.to_string();
  // The restored rows count once, read back into memory or left in the store.
  EXPECT_EQ(test::state_entries(*op), nlohmann::json::parse(snap.meta)["entries"].get<size_t>());
  for (size_t i = snap.after; i < steps.size(); ++i) EXPECT_TRUE(apply(*op, steps[i], out).ok());
  EXPECT_TRUE(op->finish(out).ok());
  EXPECT_TRUE(op->close().ok());
  return out.log;
}

void check_resume_equals_uninterrupted(const std::string& extra, uint64_t seed, size_t budget,
                                       bool string_keys = false) {
  SCOPED_TRACE(extra + " seed " + std::to_string(seed) + " budget " + std::to_string(budget) +
               (string_keys ? " string keys" : ""));
  auto b = prepare(extra, string_keys);
  ASSERT_TRUE(b->node);
  const auto steps = script(seed, 120, string_keys);
  test::TempDir tmp;
  const auto expected = run_plain(*b->node, steps, tmp.file("plain"), budget);
  ASSERT_GT(expected.size(), 20u);  // the script really joins something

  std::mt19937_64 rng(seed * 7919);
  std::vector<size_t> points = {0, steps.size()};
  for (int i = 0; i < 4; ++i) points.push_back(rng() % steps.size());
  std::sort(points.begin(), points.end());
  std::vector<Snap> snaps;
  const auto with_snaps = run_with_snapshots(*b->node, steps, points, tmp, "run", budget, snaps);
  EXPECT_EQ(with_snaps, expected) << "taking snapshots changed the output";
  ASSERT_EQ(snaps.size(), points.size());
  for (size_t n = 0; n < snaps.size(); ++n) {
    SCOPED_TRACE("snapshot after step " + std::to_string(snaps[n].after));
    auto got = std::vector<std::string>(expected.begin(),
                                        expected.begin() + static_cast<long>(snaps[n].output_size));
    auto rest = resume(*b->node, steps, snaps[n], tmp.file("resumed-" + std::to_string(n)), budget);
    got.insert(got.end(), rest.begin(), rest.end());
    EXPECT_EQ(got, expected);
  }
}

TEST(JoinCheckpoint, WindowedInnerResumesLikeAnUninterruptedRun) {
  for (uint64_t seed : {1u, 2u, 3u}) {
    check_resume_equals_uninterrupted("window: {type: tumbling, size: 2s}", seed, 0);
  }
}

TEST(JoinCheckpoint, WindowedLeftOuterResumesWithSpilledBuffers) {
  // A tiny memory budget moves windows to RocksDB between snapshots.
  for (uint64_t seed : {4u, 5u}) {
    check_resume_equals_uninterrupted("window: {type: tumbling, size: 2s}, join_type: left", seed,
                                      2048);
    check_resume_equals_uninterrupted("window: {type: tumbling, size: 2s}, join_type: left", seed,
                                      0);
  }
}

TEST(JoinCheckpoint, WindowedStringKeysResumeLikeAnUninterruptedRun) {
  // Keys held as encoded bytes, null keys among them (left outer), in memory
  // and moved to RocksDB.
  for (uint64_t seed : {14u, 15u}) {
    for (size_t budget : {size_t{0}, size_t{8192}}) {
      check_resume_equals_uninterrupted("window: {type: tumbling, size: 2s}", seed, budget, true);
      check_resume_equals_uninterrupted("window: {type: tumbling, size: 2s}, join_type: left", seed,
                                        budget, true);
    }
  }
}

TEST(JoinCheckpoint, IntervalInnerResumesLikeAnUninterruptedRun) {
  for (uint64_t seed : {6u, 7u, 8u}) {
    check_resume_equals_uninterrupted("between: {lower: -1s, upper: 2s}", seed, 0);
  }
}

TEST(JoinCheckpoint, IntervalLeftOuterKeepsItsMatchedFlagsAndHeldWatermark) {
  for (uint64_t seed : {9u, 10u, 11u}) {
    check_resume_equals_uninterrupted("between: {lower: -1s, upper: 2s}, join_type: left", seed, 0);
  }
}

TEST(JoinCheckpoint, IntervalResumesAfterItsRowsMovedToTheStore) {
  // A tiny memory budget moves the buffered rows from memory to RocksDB
  // mid-run; a resumed run reads them back (or stays in the store).
  for (uint64_t seed : {12u, 13u}) {
    check_resume_equals_uninterrupted("between: {lower: -1s, upper: 2s}", seed, 2048);
    check_resume_equals_uninterrupted("between: {lower: -1s, upper: 2s}, join_type: left", seed,
                                      2048);
  }
}

TEST(JoinCheckpoint, ASnapshotOfAResumedRunResumesToo) {
  auto b = prepare("between: {lower: -1s, upper: 2s}, join_type: left");
  ASSERT_TRUE(b->node);
  const auto steps = script(12, 90);
  test::TempDir tmp;
  const auto expected = run_plain(*b->node, steps, tmp.file("plain"), 0);
  std::vector<Snap> first;
  run_with_snapshots(*b->node, steps, {30}, tmp, "a", 0, first);
  ASSERT_EQ(first.size(), 1u);
  // Resume at 30, snapshot again at 60, resume that.
  const std::string dir = tmp.file("b-state");
  fs::copy(first[0].files_dir, dir, fs::copy_options::recursive);
  test::FakeContext ctx(0, 1, 8);
  ctx.set_state_dir(dir);
  ctx.set_restored_meta(first[0].meta);
  LogOutput out;
  auto op = b->node->make_operator(0, 1);
  ASSERT_TRUE(op->open(ctx).ok());
  for (size_t i = 30; i < 60; ++i) ASSERT_TRUE(apply(*op, steps[i], out).ok());
  Snap second;
  second.after = 60;
  second.files_dir = tmp.file("b-ckpt");
  test::FakeSnapshotContext sctx(2, second.files_dir);
  ASSERT_TRUE(op->snapshot(sctx).ok());
  ASSERT_TRUE(sctx.wait().ok());
  second.meta = sctx.meta();
  auto got = std::vector<std::string>(expected.begin(),
                                      expected.begin() + static_cast<long>(first[0].output_size));
  got.insert(got.end(), out.log.begin(), out.log.end());
  auto rest = resume(*b->node, steps, second, tmp.file("c-state"), 0);
  got.insert(got.end(), rest.begin(), rest.end());
  EXPECT_EQ(got, expected);
}

// A checkpointed window far bigger than the restored run's memory budget
// stays in RocksDB on restore: it is not read in only to be written back,
// so the first snapshot after the restore copies none of its rows (it is
// incremental), and the output is that of an uninterrupted run.
TEST(JoinCheckpoint, AWindowOverTheBudgetStaysInTheStoreWhenRestored) {
  auto b = prepare("window: {type: tumbling, size: 1000s}");
  ASSERT_TRUE(b->node);
  std::mt19937_64 rng(21);
  std::vector<Step> steps;
  int counter = 0;
  // 3,200 rows (1,600 under a sanitizer: ~400 K matches, a minute there, at
  // 160), all in the window [0, 1000 s).
  const int kSteps = test::kSanitized ? 80 : 160;
  for (int i = 0; i < kSteps; ++i) {
    const size_t input = static_cast<size_t>(i % 2);
    steps.push_back(
        {input,
         side(input == 0 ? left_schema() : right_schema(), rng, 10'000 + i * 1000, 20, counter),
         0});
  }
  constexpr size_t kWholeRun = 64u << 20, kRestoredBudget = 1u << 10;
  const size_t kAt = static_cast<size_t>(kSteps) - 10;
  test::TempDir tmp;
  const auto expected = run_plain(*b->node, steps, tmp.file("plain"), kWholeRun);
  ASSERT_GT(expected.size(), 400u);
  std::vector<Snap> snaps;
  run_with_snapshots(*b->node, steps, {kAt}, tmp, "run", kWholeRun, snaps);
  ASSERT_EQ(snaps.size(), 1u);
  ASSERT_GT(fs::file_size(snaps[0].files_dir + "/added-entries.sstable"), 16 * kRestoredBudget)
      << "the checkpoint should hold the window's rows from memory";

  const std::string dir = tmp.file("resumed-state");
  fs::copy(snaps[0].files_dir, dir, fs::copy_options::recursive);
  test::FakeContext ctx(0, 1, 8);
  ctx.set_state_dir(dir);
  ctx.set_state_memory_budget(kRestoredBudget);
  ctx.set_checkpointing(true);
  ctx.set_restored_meta(snaps[0].meta);
  LogOutput out;
  auto op = b->node->make_operator(0, 1);
  ASSERT_TRUE(op->open(ctx).ok());
  const std::string after_restore = tmp.file("after-restore");
  test::FakeSnapshotContext sctx(2, after_restore);
  ASSERT_TRUE(op->snapshot(sctx).ok());
  ASSERT_TRUE(sctx.wait().ok());
  const std::string copied = after_restore + "/added-entries.sstable";
  EXPECT_LT(fs::exists(copied) ? fs::file_size(copied) : 0, 2 * kRestoredBudget)
      << "the restore read the window into memory";
  for (size_t i = kAt; i < steps.size(); ++i) ASSERT_TRUE(apply(*op, steps[i], out).ok());
  ASSERT_TRUE(op->finish(out).ok());
  ASSERT_TRUE(op->close().ok());
  auto got = std::vector<std::string>(expected.begin(),
                                      expected.begin() + static_cast<long>(snaps[0].output_size));
  got.insert(got.end(), out.log.begin(), out.log.end());
  EXPECT_EQ(got, expected);
}

// The windowed join's buffered rows are copied at the snapshot and written
// into the checkpoint on the I/O pool. Two snapshots whose writes are both
// still queued, rows and watermarks processed meanwhile: the live output is
// unchanged, neither is acknowledged before its write is done, and each
// resumes like an uninterrupted run once written.
TEST(JoinCheckpoint, WindowedSnapshotsWhoseWritesAreStillInFlight) {
  auto b = prepare("window: {type: tumbling, size: 2s}, join_type: left");
  ASSERT_TRUE(b->node);
  for (size_t budget : {size_t{0}, size_t{2048}}) {
    SCOPED_TRACE("budget " + std::to_string(budget));
    auto steps = script(21, 150);
    size_t cuts[2] = {steps.size() / 3, 2 * steps.size() / 3};
    // A row of a window far ahead just before each cut: each snapshot then
    // has rows in memory, or at least their numbering, to write on the I/O
    // pool, even when the step before spilled every window to the store.
    std::mt19937_64 rng(21);
    int counter = 1'000'000;
    auto far_row = [&] { return Step{0, side(left_schema(), rng, 100'000'000, 1, counter), 0}; };
    steps.insert(steps.begin() + static_cast<std::ptrdiff_t>(cuts[1]), far_row());
    steps.insert(steps.begin() + static_cast<std::ptrdiff_t>(cuts[0]), far_row());
    cuts[0] += 1;  // right after its row
    cuts[1] += 2;  // after its row, which the first one moved on by one
    test::TempDir tmp;
    const auto expected = run_plain(*b->node, steps, tmp.file("plain"), budget);
    ASSERT_GT(expected.size(), 20u);
    std::vector<Snap> snaps(2);
    test::FakeSnapshotContext sc0(1, tmp.file("ckpt0"));  // before ctx: its thread calls them
    test::FakeSnapshotContext sc1(2, tmp.file("ckpt1"));
    test::FakeContext ctx(0, 1, 8);
    ctx.set_state_dir(tmp.file("state"));
    ctx.set_state_memory_budget(budget);
    ctx.set_checkpointing(true);
    LogOutput out;
    auto op = b->node->make_operator(0, 1);
    ASSERT_TRUE(op->open(ctx).ok());
    {
      test::IoGate gate(ctx.io());
      for (size_t i = 0; i < steps.size(); ++i) {
        for (int n = 0; n < 2; ++n) {
          if (i != cuts[n]) continue;
          test::FakeSnapshotContext& sc = n == 0 ? sc0 : sc1;
          ASSERT_TRUE(op->snapshot(sc).ok());
          snaps[n].after = i;
          snaps[n].files_dir = sc.files_dir();
          snaps[n].meta = sc.meta();
          snaps[n].output_size = out.log.size();
        }
        ASSERT_TRUE(apply(*op, steps[i], out).ok());
      }
      EXPECT_FALSE(sc0.wait(std::chrono::milliseconds(20)).ok()) << "acknowledged too early";
      EXPECT_FALSE(sc1.wait(std::chrono::milliseconds(20)).ok()) << "acknowledged too early";
    }
    ASSERT_TRUE(sc0.wait().ok());
    ASSERT_TRUE(sc1.wait().ok());
    ASSERT_TRUE(op->finish(out).ok());
    ASSERT_TRUE(op->close().ok());
    EXPECT_EQ(out.log, expected) << "taking snapshots changed the output";
    for (size_t n = 0; n < 2; ++n) {
      SCOPED_TRACE("snapshot after step " + std::to_string(snaps[n].after));
      auto got = std::vector<std::string>(
          expected.begin(), expected.begin() + static_cast<long>(snaps[n].output_size));
      auto rest =
          resume(*b->node, steps, snaps[n], tmp.file("resumed-" + std::to_string(n)), budget);
      got.insert(got.end(), rest.begin(), rest.end());
      EXPECT_EQ(got, expected);
    }
  }
}

TEST(JoinCheckpoint, FinalSnapshotAfterFinishHoldsNoRows) {
  auto b = prepare("window: {type: tumbling, size: 2s}");
  ASSERT_TRUE(b->node);
  test::TempDir tmp;
  test::FakeContext ctx;
  ctx.set_state_dir(tmp.file("state"));
  LogOutput out;
  auto op = b->node->make_operator(0, 1);
  ASSERT_TRUE(op->open(ctx).ok());
  for (const auto& s : script(13, 30)) ASSERT_TRUE(apply(*op, s, out).ok());
  ASSERT_TRUE(op->finish(out).ok());
  test::FakeSnapshotContext sctx(runtime::kFinalCheckpoint, tmp.file("final"));
  ASSERT_TRUE(op->snapshot(sctx).ok());
  ASSERT_TRUE(sctx.wait().ok());
  auto meta = nlohmann::json::parse(sctx.meta());
  EXPECT_EQ(meta["entries"], 0);
  EXPECT_TRUE(fs::exists(tmp.file("final")));
  auto* serde = dynamic_cast<const checkpoint::StateSerde*>(b->node.get());
  ASSERT_NE(serde, nullptr);
  EXPECT_TRUE(serde->check_meta(meta).ok());
}

TEST(JoinCheckpoint, AMemoryStoreCannotSnapshotAndSaysWhy) {
  auto b = prepare("between: {lower: -1s, upper: 2s}");
  ASSERT_TRUE(b->node);
  test::TempDir tmp;
  test::FakeContext ctx;  // no state dir: state in memory
  auto op = b->node->make_operator(0, 1);
  ASSERT_TRUE(op->open(ctx).ok());
  test::FakeSnapshotContext sctx(1, tmp.file("ckpt"));
  Status s = op->snapshot(sctx);
  EXPECT_EQ(s.code(), StatusCode::kUnimplemented);
  EXPECT_NE(s.message().find("join 'test'"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("memory"), std::string::npos) << s.message();
}

TEST(JoinCheckpoint, ABadRestoredMetaFailsOpenWithAReason) {
  auto b = prepare("window: {type: tumbling, size: 2s}");
  ASSERT_TRUE(b->node);
  test::TempDir tmp;
  for (const char* meta :
       {"not json", "{\"entries\": 1}", "{\"watermark\": true, \"entries\": 1}"}) {
    test::FakeContext ctx;
    ctx.set_state_dir(tmp.file(std::string("s") + std::to_string(meta[1])));
    ctx.set_restored_meta(std::string(meta));
    auto op = b->node->make_operator(0, 1);
    Status s = op->open(ctx);
    EXPECT_FALSE(s.ok()) << meta;
    EXPECT_NE(s.message().find("join 'test'"), std::string::npos) << s.message();
  }
}

// --- Measurement (not run by default) ------------------------------------------
//   build-snap/bin/operators_state_test --gtest_also_run_disabled_tests --gtest_filter='*Measure*'
// 1M rows (half per side, 100k keys) through each join on RocksDB, with a
// snapshot of the full buffers; prints rows/s and snapshot times (on the
// task thread, and until the deferred write into the checkpoint is done).

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void measure(const std::string& extra, const char* label, bool watermarks) {
  auto b = prepare(extra);
  ASSERT_TRUE(b->node);
  constexpr int64_t kRows = 1'000'000;
  constexpr int64_t kBatch = 1024;
  std::vector<std::pair<size_t, BatchPtr>> batches;
  for (int64_t s = 0, n = 0; s < kRows; s += kBatch, ++n) {
    const size_t input = static_cast<size_t>(n % 2);
    BatchBuilder bb(input == 0 ? left_schema() : right_schema());
    ColumnBuilder ts(TypeId::kInt64);
    for (int64_t i = s; i < std::min(kRows, s + kBatch); ++i) {
      // Keys spread over 100k values, both sides drawing from the same ones.
      const uint64_t mixed = static_cast<uint64_t>(i) * 0x9E3779B97F4A7C15ull;
      bb.append_row(
          {Value::int64(static_cast<int64_t>((mixed >> 32) % 100'000)), Value::string("payload")});
      ts.append_int64(1'000'000 + i / 10);  // 100 s of event time
    }
    batches.emplace_back(input, bb.finish()->with_event_time(ts.finish()));
  }
  test::TempDir tmp;
  test::FakeContext ctx;
  ctx.set_state_dir(tmp.file("state"));
  test::CollectOutput sink;
  auto op = b->node->make_operator(0, 1);
  ASSERT_TRUE(op->open(ctx).ok());
  double snap_s = 0;   // on the task thread
  double total_s = 0;  // until the deferred write is done too
  int snaps = 0;
  size_t out_rows = 0;
  auto t0 = std::chrono::steady_clock::now();
  for (size_t i = 0; i < batches.size(); ++i) {
    ASSERT_TRUE(op->process(batches[i].first, batches[i].second, sink).ok());
    if (watermarks && i % 2 == 1) {
      const int64_t front = 1'000'000 + static_cast<int64_t>((i + 1) * kBatch) / 10;
      ASSERT_TRUE(op->on_watermark(Watermark{front - 1000}, sink).ok());
    }
    if ((i + 1) % 98 == 0) {
      auto ts = std::chrono::steady_clock::now();
      test::FakeSnapshotContext sc(1 + snaps, tmp.file("ckpt" + std::to_string(snaps)));
      ASSERT_TRUE(op->snapshot(sc).ok());
      snap_s += seconds_since(ts);
      ASSERT_TRUE(sc.wait(std::chrono::seconds(120)).ok());
      total_s += seconds_since(ts);
      ++snaps;
    }
    for (const auto& out : sink.batches) out_rows += out->active_rows();
    sink.batches.clear();
  }
  const double run_s = seconds_since(t0);
  const size_t held = dynamic_cast<StateStats*>(op.get())->state_entries();
  auto ts = std::chrono::steady_clock::now();
  test::FakeSnapshotContext last(100, tmp.file("last"));
  ASSERT_TRUE(op->snapshot(last).ok());
  const double last_s = seconds_since(ts);
  ASSERT_TRUE(last.wait(std::chrono::seconds(120)).ok());
  const double last_total_s = seconds_since(ts);
  std::printf(
      "%s: 1M rows in %.2f s = %.0f rows/s incl. %d snapshots (%.1f ms each on the task thread, "
      "%.1f ms until written), %zu output rows; snapshot of %zu buffered rows: %.3f s on the "
      "task thread, %.3f s until written\n",
      label, run_s, kRows / run_s, snaps, snaps ? 1000 * snap_s / snaps : 0.0,
      snaps ? 1000 * total_s / snaps : 0.0, out_rows, held, last_s, last_total_s);
}

// A window of Nexmark q8 at 100 K events/s closing: 20,000 left rows
// (persons) that came in batches of 4 over the window, then at its end
// 11,000 right rows (the window's sellers, 10,000 of them persons of the
// window) in batches of 1024 and the watermark that fires it. Prints the
// milliseconds of that burst (the right rows and the firing: the latency of
// the window's last output row) and of a snapshot of the 20,000 buffered
// rows on the task thread; medians of 7 windows, in the thread's CPU time
// (robust on a machine others load).
// CPU seconds of the calling thread.
double thread_cpu_now() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) * 1e-9;
}

TEST(JoinCheckpoint, DISABLED_MeasureWindowClose) {
  auto b = prepare("window: {type: tumbling, size: 10s}");
  ASSERT_TRUE(b->node);
  test::TempDir tmp;
  test::FakeContext ctx;
  ctx.set_state_dir(tmp.file("state"));
  auto op = b->node->make_operator(0, 1);
  ASSERT_TRUE(op->open(ctx).ok());
  test::CollectOutput sink;
  std::vector<double> rights_ms;
  std::vector<double> fire_ms;
  std::vector<double> burst_ms;
  std::vector<double> snapshot_ms;
  size_t out_rows = 0;
  constexpr int64_t kLefts = 20'000, kRights = 11'000, kSize = 10'000;
  for (int64_t w = 0; w < 7; ++w) {
    const int64_t start = w * kSize;
    const int64_t first_id = w * kLefts;
    for (int64_t i = 0; i < kLefts; i += 4) {
      BatchBuilder bb(left_schema());
      ColumnBuilder ts(TypeId::kInt64);
      for (int64_t j = i; j < i + 4; ++j) {
        bb.append_row({Value::int64(first_id + j), Value::string("person " + std::to_string(j))});
        ts.append_int64(start + j * kSize / kLefts);
      }
      ASSERT_TRUE(op->process(0, bb.finish()->with_event_time(ts.finish()), sink).ok());
    }
    std::vector<BatchPtr> rights;
    for (int64_t i = 0; i < kRights; i += 1024) {
      BatchBuilder bb(right_schema());
      ColumnBuilder ts(TypeId::kInt64);
      for (int64_t j = i; j < std::min(kRights, i + 1024); ++j) {
        // Every other person of the window, then 1,000 ids of no person.
        const int64_t id = j < 10'000 ? first_id + 2 * j : -1 - j;
        bb.append_row({Value::int64(id), Value::string("seller")});
        ts.append_int64(start + kSize - 1);
      }
      rights.push_back(bb.finish()->with_event_time(ts.finish()));
    }
    auto t0 = thread_cpu_now();
    test::FakeSnapshotContext sc(1 + w, tmp.file("ckpt" + std::to_string(w)));
    ASSERT_TRUE(op->snapshot(sc).ok());
    snapshot_ms.push_back(1000 * (thread_cpu_now() - t0));
    ASSERT_TRUE(sc.wait(std::chrono::seconds(120)).ok());
    t0 = thread_cpu_now();
    for (const auto& r : rights) ASSERT_TRUE(op->process(1, r, sink).ok());
    rights_ms.push_back(1000 * (thread_cpu_now() - t0));
    const auto t1 = thread_cpu_now();
    ASSERT_TRUE(op->on_watermark(Watermark{start + kSize - 1}, sink).ok());
    fire_ms.push_back(1000 * (thread_cpu_now() - t1));
    burst_ms.push_back(1000 * (thread_cpu_now() - t0));
    for (const auto& out : sink.batches) out_rows += out->active_rows();
    sink.batches.clear();
  }
  for (auto* v : {&rights_ms, &fire_ms, &burst_ms, &snapshot_ms}) std::sort(v->begin(), v->end());
  std::printf(
      "windowed join, a q8 window closing: %.2f ms CPU (median of 7; min %.2f, max %.2f): right "
      "rows "
      "%.2f + firing %.2f; %zu output rows in all; snapshot of 20,000 buffered rows: %.2f ms on "
      "the task thread\n",
      burst_ms[3], burst_ms[0], burst_ms[6], rights_ms[3], fire_ms[3], out_rows, snapshot_ms[3]);
  EXPECT_EQ(out_rows, 7u * 10'000u);
}

TEST(JoinCheckpoint, DISABLED_MeasureJoins) {
  measure("window: {type: tumbling, size: 10s}", "windowed join (10 s windows)", true);
  measure("window: {type: tumbling, size: 1h}", "windowed join (all rows buffered)", false);
  measure("between: {lower: -1s, upper: 1s}, join_type: left", "interval left join +-1 s", true);
}

}  // namespace
}  // namespace df::operators
