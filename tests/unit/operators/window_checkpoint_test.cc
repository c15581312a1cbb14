// Checkpoints of the window operator (snapshot at a point of a stream,
// restore into a fresh instance, continue: the output equals an
// uninterrupted run), session spilling, and the readable state (StateSerde).
// Real RocksDB in temp dirs.
#include <gtest/gtest.h>

#include <unistd.h>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <mutex>
#include <numeric>
#include <optional>
#include <random>

#include "engine/checkpoint/state_serde.h"
#include "engine/state/state_backend.h"
#include "operators/operators.h"
#include "tests/support/operator_harness.h"
#include "tests/support/sanitizers.h"
#include "tests/unit/operators/node_test_util.h"

namespace df::operators {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

using test::Bid;
using test::bids;
using test::bids_schema;
using test::kSanitized;

// Prepares a window from YAML, as the planner does; it must prepare cleanly.
std::unique_ptr<test::BuiltNode> prepare(const std::string& yaml, SchemaPtr input = bids_schema()) {
  auto built = test::prepare_operator(yaml, "window", {"bids"}, {std::move(input)}, {true},
                                      {"id", "type", "input", "parallelism"});
  EXPECT_TRUE(built->diags.empty()) << built->diags.to_status().message();
  EXPECT_TRUE(built->node);
  return built;
}

using Out = test::PortsOutput;

std::string cell(const Value& v) {
  if (v.is_null()) return "null";
  if (v.type() == TypeId::kTimestamp) return std::to_string(v.as_int64());
  if (v.type() == TypeId::kDouble) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.17g", v.as_double());
    return buf;
  }
  return v.to_string();
}

std::vector<std::string> lines(const std::vector<BatchPtr>& batches, const char* tag) {
  std::vector<std::string> out;
  for (const auto& row : test::rows_of(batches)) {
    std::string line = tag;
    for (const Value& v : row) line += "|" + cell(v);
    out.push_back(line);
  }
  return out;
}

using Step = test::BidStep;
using test::StepOutput;

// A window instance (see test::BidsInstance) that must open; its lines: the
// main output and the late rows, sorted (the order of rows within one firing
// is the key order or the arrival order depending on spilling, so steps
// compare as multisets).
struct Instance : test::BidsInstance {
  Instance(const runtime::PreparedNode& node, std::string state_dir, size_t budget,
           std::optional<std::string> meta = std::nullopt, size_t batch_size = 256)
      : BidsInstance(node, std::move(state_dir), budget, std::move(meta), batch_size, [](Out& out) {
          auto l = lines(out.main, "out");
          auto late = lines(out.late, "late");
          l.insert(l.end(), late.begin(), late.end());
          std::sort(l.begin(), l.end());
          return l;
        }) {
    EXPECT_TRUE(open_status.ok()) << open_status.to_string();
  }
};

// A stream of `n` rows over `keys` keys, event time mostly ascending with
// jitter, a watermark (bounded out-of-orderness) every few batches, and some
// rows far behind it (late). Prices are multiples of 1/4 so double sums are
// exact whatever the grouping.
std::vector<Step> make_stream(uint32_t seed, int n, int keys, int64_t step_ms, int64_t jitter_ms,
                              int64_t bound_ms, int late_every) {
  std::mt19937_64 rng(seed);
  std::vector<Step> steps;
  int64_t t = 1'000'000;
  int64_t max_ts = std::numeric_limits<int64_t>::min();
  const char* names[] = {"ada", "bob", "zoë", "日本", "", "x\ty"};
  Step cur;
  int batches = 0;
  for (int i = 0; i < n; ++i) {
    t += static_cast<int64_t>(rng() % static_cast<uint64_t>(2 * step_ms + 1));
    int64_t ts = t - static_cast<int64_t>(rng() % static_cast<uint64_t>(jitter_ms + 1));
    if (late_every > 0 && i % late_every == late_every - 1) {
      ts = t - bound_ms - static_cast<int64_t>(rng() % 20000);  // behind the watermark
    }
    Bid b;
    const int64_t k = static_cast<int64_t>(rng() % static_cast<uint64_t>(keys));
    if (k != 0) b.auction = k;
    if (rng() % 10 != 0) b.price = static_cast<double>(static_cast<int64_t>(rng() % 4000)) / 4.0;
    if (rng() % 8 != 0) b.name = names[rng() % 6];
    b.ts = ts;
    max_ts = std::max(max_ts, ts);
    cur.rows.push_back(b);
    if (cur.rows.size() >= 1 + rng() % 40) {
      steps.push_back(std::move(cur));
      cur = Step{};
      if (++batches % 3 == 0) steps.push_back(Step{{}, max_ts - bound_ms - 1});
    }
  }
  if (!cur.rows.empty()) steps.push_back(std::move(cur));
  return steps;
}

using test::expect_same_steps;
using test::install_snapshot;

// Makes Instances of `node` spilling above `budget` (0: never).
test::MakeInstance instances(const runtime::PreparedNode& node, size_t budget) {
  return [&node, budget](const std::string& dir, std::optional<std::string> meta) {
    return std::make_unique<Instance>(node, dir, budget, std::move(meta));
  };
}

std::string window_yaml(const std::string& shape, const std::string& extra = {}) {
  return "id: w\ntype: window\ninput: bids\nkey_by: [auction]\nwindow: " + shape +
         "\naggregate:\n"
         "  n: count(*)\n  np: count(price)\n  s: sum(price)\n  a: avg(price)\n"
         "  lo: min(name)\n  hi: max(price)\n  f: first(name)\n  l: last(price)\n"
         "  d: count_distinct(name)\n  si: sum(auction)\n  t0: min(ts)\n" +
         extra;
}

struct Case {
  const char* name;
  std::string yaml;
  size_t budget;
  int late_every;
};

std::vector<Case> cases() {
  return {
      {"tumbling", window_yaml("{type: tumbling, size: 10s}"), 0, 0},
      {"tumbling_late_output",
       window_yaml("{type: tumbling, size: 10s}", "allowed_lateness: 5s\nlate_output: late\n"), 0,
       7},
      {"tumbling_spilling", window_yaml("{type: tumbling, size: 10s}", "allowed_lateness: 3s\n"),
       16 << 10, 11},
      {"sliding",
       window_yaml("{type: sliding, size: 10s, slide: 4s}",
                   "allowed_lateness: 6s\nlate_output: late\n"),
       0, 9},
      // Five 2 s panes per window (q5's shape), a restore mid-window.
      {"sliding_panes",
       window_yaml("{type: sliding, size: 10s, slide: 2s}",
                   "allowed_lateness: 3s\nlate_output: late\n"),
       0, 7},
      // Spilled panes: windows merge several panes' stored partials.
      {"sliding_spilling",
       window_yaml("{type: sliding, size: 10s, slide: 4s}", "allowed_lateness: 6s\n"), 16 << 10,
       11},
      {"session",
       window_yaml("{type: session, gap: 700ms}", "allowed_lateness: 2s\nlate_output: late\n"), 0,
       13},
      {"session_spilling", window_yaml("{type: session, gap: 700ms}", "allowed_lateness: 1s\n"),
       8 << 10, 10},
      {"session_no_lateness", window_yaml("{type: session, gap: 300ms}"), 4 << 10, 17},
  };
}

class ResumedRuns : public ::testing::TestWithParam<Case> {};

TEST_P(ResumedRuns, EqualAnUninterruptedRun) {
  {
    const Case& c = GetParam();
    auto b = prepare(c.yaml);
    ASSERT_TRUE(b->node);
    for (uint32_t seed = 1; seed <= 2; ++seed) {
      SCOPED_TRACE("seed " + std::to_string(seed));
      const auto steps =
          make_stream(seed, kSanitized ? 2000 : 4000, 40, 60, 2000, 2500, c.late_every);
      test::TempDir dir;
      const StepOutput want =
          test::reference_run(instances(*b->node, c.budget), steps, dir.file("ref"));
      // Random cut points, one to four snapshots per run.
      std::mt19937 rng(seed * 7919);
      for (int trial = 0; trial < 2; ++trial) {
        std::vector<size_t> cuts;
        const int n = 1 + static_cast<int>(rng() % 4);
        for (int k = 0; k < n; ++k) cuts.push_back(rng() % (steps.size() + 1));
        std::sort(cuts.begin(), cuts.end());
        cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());
        const std::string root = dir.file("run" + std::to_string(trial));
        expect_same_steps(want,
                          test::resumed_run(instances(*b->node, c.budget), steps, cuts, root));
      }
      // A snapshot after every step.
      std::vector<size_t> all;
      for (size_t i = 0; i <= steps.size(); i += 1 + steps.size() / 12) all.push_back(i);
      expect_same_steps(
          want, test::resumed_run(instances(*b->node, c.budget), steps, all, dir.file("every")));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Window, ResumedRuns, ::testing::ValuesIn(cases()),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(WindowCheckpoint, AFinalSnapshotDoesNotFireAgain) {
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.name);
    auto b = prepare(c.yaml);
    const auto steps = make_stream(5, 2000, 20, 60, 1000, 1500, c.late_every);
    test::TempDir dir;
    Instance first(*b->node, dir.file("s0"), c.budget);
    size_t rows = 0;
    for (const Step& s : steps) rows += first.run(s).size();
    rows += first.finish().size();
    EXPECT_GT(rows, 0u);
    const std::string meta = first.snapshot(dir.file("final"), runtime::kFinalCheckpoint);
    // Tumbling and sliding windows drop their fired groups at the end of
    // input: the final checkpoint holds no entries and no window.
    if (std::string(c.name).find("session") == std::string::npos) {
      EXPECT_TRUE(test::entries_of(dir.file("final")).empty());
      EXPECT_EQ(json::parse(meta)["windows"], json::array());
    }
    install_snapshot(dir.file("final"), dir.file("s1"));
    Instance again(*b->node, dir.file("s1"), c.budget, meta);
    EXPECT_TRUE(again.finish().empty());
  }
}

// The in-memory part of a snapshot is written into the checkpoint on the
// I/O pool while the operator goes on. Two snapshots whose writes are both
// still queued (the second taken while the first is in flight), with rows
// and watermarks processed meanwhile: the live output is unchanged, neither
// checkpoint is acknowledged before its write is done (a crash then resumes
// from the checkpoint before, which the coordinator still names), and once
// the writes finish each checkpoint resumes like an uninterrupted run.
TEST(WindowCheckpoint, SnapshotsWhoseWritesAreStillInFlight) {
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.name);
    auto b = prepare(c.yaml);
    const auto steps = make_stream(3, kSanitized ? 1500 : 3000, 40, 60, 2000, 2500, c.late_every);
    test::TempDir dir;
    const StepOutput want =
        test::reference_run(instances(*b->node, c.budget), steps, dir.file("ref"));
    const size_t cuts[3] = {steps.size() / 4, steps.size() / 2, 3 * steps.size() / 4};
    // Declared before the instance: its I/O thread calls their completions.
    test::FakeSnapshotContext sc0(1, dir.file("cp0"));
    test::FakeSnapshotContext sc1(2, dir.file("cp1"));
    test::FakeSnapshotContext sc2(3, dir.file("cp2"));
    Instance in(*b->node, dir.file("live"), c.budget);
    std::optional<test::IoGate> gate;
    StepOutput live;
    for (size_t i = 0; i < steps.size(); ++i) {
      if (i == cuts[0]) {
        ASSERT_TRUE(in.op->snapshot(sc0).ok());
        ASSERT_TRUE(sc0.wait().ok());
        gate.emplace(in.ctx.io());
      } else if (i == cuts[1]) {
        ASSERT_TRUE(in.op->snapshot(sc1).ok());
      } else if (i == cuts[2]) {
        ASSERT_TRUE(in.op->snapshot(sc2).ok());
        if (c.budget == 0) {
          // Memory holds groups, so both have writes queued. (Past a tiny
          // budget memory may be empty: nothing to write, acknowledged at once.)
          EXPECT_FALSE(sc1.wait(std::chrono::milliseconds(20)).ok()) << "acknowledged too early";
          EXPECT_FALSE(sc2.wait(std::chrono::milliseconds(20)).ok()) << "acknowledged too early";
        }
        // A crash now: the newest complete checkpoint is cp0.
        install_snapshot(dir.file("cp0"), dir.file("crashed"));
        Instance resumed(*b->node, dir.file("crashed"), c.budget, sc0.meta());
        StepOutput got(want.begin(), want.begin() + static_cast<std::ptrdiff_t>(cuts[0]));
        for (size_t k = cuts[0]; k < steps.size(); ++k) got.push_back(resumed.run(steps[k]));
        got.push_back(resumed.finish());
        expect_same_steps(want, got);
      }
      live.push_back(in.run(steps[i]));
    }
    live.push_back(in.finish());
    expect_same_steps(want, live);
    gate->open();
    ASSERT_TRUE(sc1.wait().ok());
    ASSERT_TRUE(sc2.wait().ok());
    // Both checkpoints, complete now, resume like an uninterrupted run.
    for (const auto& [cut, sc] : {std::pair{cuts[1], &sc1}, std::pair{cuts[2], &sc2}}) {
      const std::string state = dir.file("resumed" + std::to_string(cut));
      install_snapshot(sc->files_dir(), state);
      Instance resumed(*b->node, state, c.budget, sc->meta());
      StepOutput got(want.begin(), want.begin() + static_cast<std::ptrdiff_t>(cut));
      for (size_t k = cut; k < steps.size(); ++k) got.push_back(resumed.run(steps[k]));
      got.push_back(resumed.finish());
      expect_same_steps(want, got);
    }
  }
}

// A snapshot leaves memory and the live store as they were: nothing is
// spilled at the barrier, so checkpoints add no partials to the live store.
TEST(WindowCheckpoint, SnapshotsSpillNothingIntoTheLiveStore) {
  for (const char* shape : {"{type: tumbling, size: 1h}", "{type: session, gap: 1h}"}) {
    SCOPED_TRACE(shape);
    auto b = prepare(window_yaml(shape));
    test::TempDir dir;
    Instance in(*b->node, dir.file("live"), 0);
    for (int64_t round = 0; round < 3; ++round) {
      std::vector<Bid> rows;
      for (int64_t k = 0; k < 200; ++k) rows.push_back({k, 1.0, "n", 1000 + round});
      in.run(Step{rows, std::nullopt});
      const std::string cp = dir.file("cp" + std::to_string(round));
      in.snapshot(cp, static_cast<uint64_t>(round + 1));
      // The checkpoint holds every key (one partial or record each, plus
      // session timers); the live store none.
      const bool sessions = std::string(shape).find("session") != std::string::npos;
      EXPECT_EQ(test::entries_of(cp).size(), sessions ? 400u : 200u);
      // Nothing spilled: a tumbling window's snapshot neither opened nor
      // checkpointed its store (the I/O thread laid an empty store's image).
      if (!sessions) {
        EXPECT_FALSE(fs::exists(fs::path(dir.file("live")) / "CURRENT"));
      }
    }
    in.op.reset();  // closes the store
    EXPECT_TRUE(test::entries_of(dir.file("live")).empty());
  }
}

TEST(WindowCheckpoint, SnapshotNeedsAStateDirectory) {
  auto b = prepare(window_yaml("{type: tumbling, size: 10s}"));
  Instance in(*b->node, "", 0);
  in.run(Step{{{1, 1.0, "a", 5000}}, std::nullopt});
  test::TempDir dir;
  test::FakeSnapshotContext sc(1, dir.file("cp"));
  Status s = in.op->snapshot(sc);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("checkpoints need a state directory"), std::string::npos)
      << s.to_string();
}

TEST(WindowCheckpoint, MetaShape) {
  auto b = prepare(window_yaml("{type: tumbling, size: 10s}", "allowed_lateness: 20s\n"));
  test::TempDir dir;
  Instance in(*b->node, dir.file("s"), 0);
  in.run(Step{{{1, 1.0, "a", 5000}, {2, 2.0, "b", 15000}}, std::nullopt});
  in.run(Step{{}, 9999});
  const json meta = json::parse(in.snapshot(dir.file("cp")));
  EXPECT_EQ(meta, json::parse(R"({"format": 1, "window": "tumbling", "watermark_ms": 9999,
      "next_seq": 2, "spill_seq": 1,
      "windows": [{"end_ms": 10000, "fired": true}, {"end_ms": 20000, "fired": false}]})"));
  const auto* serde = dynamic_cast<const checkpoint::StateSerde*>(b->node.get());
  ASSERT_NE(serde, nullptr);
  EXPECT_TRUE(serde->check_meta(meta).ok());
  json bad = meta;
  bad["window"] = "session";
  EXPECT_NE(serde->check_meta(bad).message().find("session"), std::string::npos);
  bad = meta;
  bad["extra"] = 1;
  EXPECT_NE(serde->check_meta(bad).message().find("unknown field 'extra'"), std::string::npos);
  bad = meta;
  bad["windows"][0]["fired"] = "yes";
  EXPECT_FALSE(serde->check_meta(bad).ok());
  bad = meta;
  bad.erase("next_seq");
  EXPECT_NE(serde->check_meta(bad).message().find("next_seq"), std::string::npos);
  EXPECT_FALSE(serde->check_meta(json::array()).ok());
}

// A sliding window's state is per pane (here 2 s, the gcd of 10 s and 4 s):
// the snapshot holds one partial per key and pane, not per key and window,
// and the meta lists the panes beside the windows.
TEST(WindowCheckpoint, SlidingSnapshotsHoldPanes) {
  auto b = prepare(window_yaml("{type: sliding, size: 10s, slide: 4s}"));
  test::TempDir dir;
  Instance in(*b->node, dir.file("s"), 0);
  // 5000 is in the windows ending 6000, 10000 and 14000; 13000 in 14000,
  // 18000 and 22000; 15000 in 18000 and 22000.
  in.run(
      Step{{{1, 1.0, "a", 5000}, {2, 2.0, "b", 5500}, {1, 2.0, "c", 13000}, {1, 2.0, "b", 15000}},
           std::nullopt});
  in.run(Step{{}, 9999});  // fires and drops the windows ending 6000 and 10000
  const json meta = json::parse(in.snapshot(dir.file("cp")));
  EXPECT_EQ(meta, json::parse(R"({"format": 2, "window": "sliding", "watermark_ms": 9999,
      "next_seq": 4, "spill_seq": 1,
      "windows": [{"end_ms": 14000, "fired": false}, {"end_ms": 18000, "fired": false},
                  {"end_ms": 22000, "fired": false}],
      "panes_end_ms": [6000, 14000, 16000]})"));
  // Pane 6000: keys 1 and 2; panes 14000 and 16000: key 1.
  EXPECT_EQ(test::entries_of(dir.file("cp")).size(), 4u);
  const auto* serde = dynamic_cast<const checkpoint::StateSerde*>(b->node.get());
  ASSERT_NE(serde, nullptr);
  EXPECT_TRUE(serde->check_meta(meta).ok());
  json bad = meta;
  bad["format"] = 1;  // whole sliding windows: not readable as panes
  EXPECT_NE(serde->check_meta(bad).message().find("per pane since format 2"), std::string::npos)
      << serde->check_meta(bad).message();
  bad = meta;
  bad.erase("panes_end_ms");
  EXPECT_NE(serde->check_meta(bad).message().find("panes_end_ms"), std::string::npos);
  bad = meta;
  bad["panes_end_ms"] = json::array({16000, 6000});
  EXPECT_NE(serde->check_meta(bad).message().find("ascend"), std::string::npos);
  // Resumed, the window ending 14000 merges its two stored panes.
  install_snapshot(dir.file("cp"), dir.file("s1"));
  Instance resumed(*b->node, dir.file("s1"), 0, meta.dump());
  EXPECT_EQ(resumed.run(Step{{}, 13999}),
            (std::vector<std::string>{"out|1|4000|14000|2|2|3|1.5|a|2|a|2|2|2|5000",
                                      "out|2|4000|14000|1|1|2|2|b|2|b|2|1|2|5500"}));
}

// ---- sessions past the memory budget -----------------------------------------

long rss_kb() {
  std::ifstream f("/proc/self/statm");
  long pages = 0, resident = 0;
  f >> pages >> resident;
  return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

TEST(WindowSessions, SpilledSessionsGiveTheSameRowsInTheSameOrder) {
  auto b = prepare(window_yaml("{type: session, gap: 500ms}", "allowed_lateness: 1s\n"));
  const auto steps = make_stream(11, kSanitized ? 10000 : 30000, 3000, 5, 800, 1000, 23);
  test::TempDir dir;
  // Exact order, not just the same rows: sessions fire in (end, key) order.
  auto run = [&](size_t budget, const std::string& d) {
    Instance in(*b->node, d, budget);
    std::vector<std::string> all;
    for (const Step& s : steps) {
      Out out;
      Status st = s.watermark ? in.op->on_watermark(Watermark{*s.watermark}, out)
                              : in.op->process(0, bids(s.rows), out);
      EXPECT_TRUE(st.ok()) << st.to_string();
      auto l = lines(out.main, "out");
      all.insert(all.end(), l.begin(), l.end());
    }
    Out out;
    EXPECT_TRUE(in.op->finish(out).ok());
    auto l = lines(out.main, "out");
    all.insert(all.end(), l.begin(), l.end());
    return all;
  };
  const auto want = run(0, "");
  ASSERT_GT(want.size(), 1000u);
  EXPECT_EQ(want, run(16 << 10, dir.file("rocks")));
  EXPECT_EQ(want, run(4 << 10, ""));  // the memory store
}

TEST(WindowSessions, AMillionSessionsStayWithinTheBudget) {
  state::set_block_cache_bytes(8u << 20);
  auto b = prepare(
      "id: w\ntype: window\ninput: bids\nkey_by: [auction]\nwindow: {type: session, gap: 1h}\n"
      "aggregate: {n: \"count(*)\", s: \"sum(price)\"}\n");
  test::TempDir dir;
  Instance in(*b->node, dir.file("s"), 8u << 20, std::nullopt, 4096);
  const long before = rss_kb();
  long peak = before;
  const int64_t kSessions = kSanitized ? 100'000 : 1'000'000;
  const int64_t kBatch = 4096;
  auto t0 = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < kSessions; i += kBatch) {
    std::vector<Bid> rows;
    for (int64_t k = i; k < std::min(kSessions, i + kBatch); ++k) {
      rows.push_back({k, 1.5, std::nullopt, 1'000'000 + k});
    }
    EXPECT_TRUE(in.run(Step{rows, std::nullopt}).empty());
    if ((i / kBatch) % 16 == 0) peak = std::max(peak, rss_kb());
  }
  peak = std::max(peak, rss_kb());
  auto t1 = std::chrono::steady_clock::now();
  // Every session fires, once, in key order.
  Out out;
  ASSERT_TRUE(in.op->finish(out).ok());
  auto t2 = std::chrono::steady_clock::now();
  int64_t rows = 0;
  int64_t expect_key = 0;
  bool ordered = true;
  for (const auto& batch : out.main) {
    batch->for_each_row([&](size_t r) {
      ordered = ordered && batch->column(0)->int64_at(r) == expect_key++;
      ++rows;
    });
  }
  EXPECT_EQ(rows, kSessions);
  EXPECT_TRUE(ordered);
  const long grown_mb = (peak - before) / 1024;
  std::printf(
      "%lld sessions, 8 MiB budget: RSS grew %ld MiB (peak %ld MiB); %.2f s to add, %.2f s "
      "to fire\n",
      static_cast<long long>(kSessions), grown_mb, peak / 1024,
      std::chrono::duration<double>(t1 - t0).count(),
      std::chrono::duration<double>(t2 - t1).count());
  // In memory 1M sessions take > 250 MB; spilled: the budget, two 16 MiB
  // memtables, the block cache and allocator slack.
  if (!kSanitized) {
    EXPECT_LT(grown_mb, 120);
  }
}

// ---- snapshot cost -------------------------------------------------------------

// A measurement: DF_WINDOW_BENCH=1 build-win/bin/window_checkpoint_test
//   --gtest_filter='*SnapshotCost*'
// (DF_WINDOW_BENCH_KEYS=N changes the number of keys, e.g. for callgrind;
// DF_WINDOW_BENCH_SHUFFLE=1 makes the keys arrive in a random order, so that
// a snapshot sorts them, as with Nexmark's auctions.)
TEST(WindowCheckpoint, SnapshotCostOnAMillionKeys) {
  if (std::getenv("DF_WINDOW_BENCH") == nullptr) GTEST_SKIP() << "set DF_WINDOW_BENCH=1";
  const char* keys_env = std::getenv("DF_WINDOW_BENCH_KEYS");
  const int64_t kKeys = keys_env != nullptr ? std::atoll(keys_env) : 1'000'000;
  std::vector<int64_t> arrival(static_cast<size_t>(kKeys));
  std::iota(arrival.begin(), arrival.end(), 0);
  if (std::getenv("DF_WINDOW_BENCH_SHUFFLE") != nullptr) {
    std::shuffle(arrival.begin(), arrival.end(), std::mt19937(1));
  }
  for (const char* shape : {"{type: tumbling, size: 1h}", "{type: session, gap: 1h}"}) {
    auto b = prepare(
        "id: w\ntype: window\ninput: bids\nkey_by: [auction]\nwindow: " + std::string(shape) +
        "\naggregate: {n: \"count(*)\", s: \"sum(price)\", hi: \"max(price)\"}\n");
    test::TempDir dir;
    Instance in(*b->node, dir.file("s"), size_t{2} << 30, std::nullopt, 4096);
    for (int64_t i = 0; i < kKeys; i += 4096) {
      std::vector<Bid> rows;
      for (int64_t k = i; k < std::min(kKeys, i + 4096); ++k) {
        rows.push_back({arrival[static_cast<size_t>(k)], 2.5, {}, 1000});
      }
      in.run(Step{rows, std::nullopt});
    }
    // On the task thread (the barrier waits for this), then until the
    // deferred write is done (the checkpoint's acknowledgement waits).
    // The task thread's CPU time too: the machine may be shared.
    const auto thread_cpu_ms = [] {
      timespec t{};
      clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
      return static_cast<double>(t.tv_sec) * 1e3 + static_cast<double>(t.tv_nsec) / 1e6;
    };
    struct Timing {
      double sync_ms, sync_cpu_ms, total_ms;
    };
    auto timed_snapshot = [&](const std::string& files, uint64_t id, Timing& t) {
      test::FakeSnapshotContext sc(id, files);
      const double cpu0 = thread_cpu_ms();
      const auto a = std::chrono::steady_clock::now();
      EXPECT_TRUE(in.op->snapshot(sc).ok());
      const auto b = std::chrono::steady_clock::now();
      t.sync_cpu_ms = thread_cpu_ms() - cpu0;
      EXPECT_TRUE(sc.wait(std::chrono::seconds(300)).ok());
      const auto c = std::chrono::steady_clock::now();
      t.sync_ms = std::chrono::duration<double, std::milli>(b - a).count();
      t.total_ms = std::chrono::duration<double, std::milli>(c - a).count();
      return sc.meta();
    };
    Timing first{}, second{};
    timed_snapshot(dir.file("cp1"), 1, first);
    // 1% of the keys change before the next checkpoint.
    for (int64_t i = 0; i < kKeys; i += 100 * 64) {
      std::vector<Bid> rows;
      for (int64_t k = i; k < std::min(kKeys, i + 100 * 64); k += 100) {
        rows.push_back({k, 2.5, {}, 2000});
      }
      in.run(Step{rows, std::nullopt});
    }
    const std::string meta = timed_snapshot(dir.file("cp2"), 2, second);
    std::printf(
        "%s, %lld keys: first snapshot %.0f ms on the task thread (%.0f ms CPU; %.0f ms until "
        "written), after 1%% changed %.0f ms (%.0f ms CPU; %.0f ms)\n",
        shape, static_cast<long long>(kKeys), first.sync_ms, first.sync_cpu_ms, first.total_ms,
        second.sync_ms, second.sync_cpu_ms, second.total_ms);
    // Resuming from the second snapshot gives every key once.
    install_snapshot(dir.file("cp2"), dir.file("s2"));
    Instance resumed(*b->node, dir.file("s2"), size_t{2} << 30, meta, 4096);
    Out out;
    ASSERT_TRUE(resumed.op->finish(out).ok());
    int64_t rows = 0;
    for (const auto& batch : out.main) rows += static_cast<int64_t>(batch->active_rows());
    EXPECT_EQ(rows, kKeys);
  }
}

// ---- StateSerde ------------------------------------------------------------------

SchemaPtr all_types_schema() {
  return make_schema({{"i", TypeId::kInt64},
                      {"d", TypeId::kDouble},
                      {"s", TypeId::kString},
                      {"b", TypeId::kBool},
                      {"t", TypeId::kTimestamp}});
}

BatchPtr all_types(const std::vector<std::vector<Value>>& rows) {
  BatchBuilder b(all_types_schema());
  for (const auto& r : rows) b.append_row(r);
  BatchPtr batch = b.finish();
  return batch->with_event_time(batch->column(4));
}

const char* kAllAggregates =
    "aggregate:\n"
    "  n: count(*)\n  ni: count(i)\n  si: sum(i)\n  sd: sum(d)\n  ai: avg(i)\n  ad: avg(d)\n"
    "  mini: min(i)\n  maxd: max(d)\n  mins: min(s)\n  maxb: max(b)\n  mint: min(t)\n"
    "  fi: first(i)\n  ld: last(d)\n  fs: first(s)\n  lb: last(b)\n  ft: first(t)\n"
    "  cdi: count_distinct(i)\n  cdd: count_distinct(d)\n  cds: count_distinct(s)\n"
    "  cdb: count_distinct(b)\n  cdt: count_distinct(t)\n";

std::vector<std::vector<Value>> tricky_rows() {
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<std::vector<Value>> rows;
  const std::vector<Value> ints = {Value::null(TypeId::kInt64), Value::int64(0), Value::int64(-7),
                                   Value::int64(INT64_MAX), Value::int64(INT64_MIN)};
  const std::vector<Value> doubles = {Value::null(TypeId::kDouble), Value::float64(-0.0),
                                      Value::float64(1e300),        Value::float64(-1e-300),
                                      Value::float64(0.1),          Value::float64(inf),
                                      Value::float64(-inf),         Value::float64(2.5)};
  const std::vector<Value> strings = {
      Value::null(TypeId::kString),        Value::string(""),
      Value::string("zoë 日本 🎉"),         Value::string(std::string("a\0b", 3)),
      Value::string("\xff\xfe not utf-8"), Value::string("quote \" and \\ backslash")};
  const std::vector<Value> bools = {Value::null(TypeId::kBool), Value::boolean(true),
                                    Value::boolean(false)};
  int64_t t = 1'700'000'000'000;
  for (size_t k = 0; k < 60; ++k) {
    rows.push_back({ints[k % ints.size()], doubles[(k / 2) % doubles.size()],
                    strings[(k / 3) % strings.size()], bools[k % bools.size()],
                    Value::timestamp(t + static_cast<int64_t>(k % 7) * 1000)});
  }
  // A NaN row of its own (NaN sums stay NaN).
  rows.push_back({Value::int64(1), Value::float64(std::nan("")), Value::string("n"),
                  Value::boolean(true), Value::timestamp(t)});
  // Timestamps far from now.
  rows.push_back({Value::int64(2), Value::float64(1), Value::string("old"), Value::boolean(false),
                  Value::timestamp(-62'135'596'800'000 + 5)});
  // x86's default NaN (sign bit set): "NaN(0xfff8000000000000)".
  rows.push_back({Value::int64(3), Value::float64(-std::numeric_limits<double>::quiet_NaN()),
                  Value::string("neg"), Value::boolean(true), Value::timestamp(t)});
  return rows;
}

// Every entry of a snapshot's store: to JSON, through text, and back to
// exactly the same bytes.
size_t check_round_trip(const checkpoint::StateSerde& serde, const std::string& files_dir,
                        std::vector<json>* seen = nullptr) {
  auto store = state::open_rocksdb({files_dir});
  EXPECT_TRUE(store.ok()) << store.status().to_string();
  if (!store.ok()) return 0;
  size_t n = 0;
  Status st = (*store)->scan("", "", [&](std::string_view k, std::string_view v) {
    auto j = serde.entry_to_json(k, v);
    EXPECT_TRUE(j.ok()) << j.status().to_string();
    if (!j.ok()) return false;
    const std::string text = j->dump();
    std::string k2, v2;
    Status s = serde.entry_from_json(json::parse(text), k2, v2);
    EXPECT_TRUE(s.ok()) << s.to_string() << " for " << text;
    EXPECT_EQ(k2, std::string(k)) << text;
    EXPECT_EQ(v2, std::string(v)) << text;
    if (seen) seen->push_back(*j);
    ++n;
    return true;
  });
  EXPECT_TRUE(st.ok());
  return n;
}

TEST(WindowSerde, EveryAggregateAndKeyTypeRoundTripsExactly) {
  for (const char* shape : {"{type: tumbling, size: 10s}", "{type: sliding, size: 10s, slide: 5s}",
                            "{type: session, gap: 2s}"}) {
    SCOPED_TRACE(shape);
    auto b = prepare("id: w\ntype: window\ninput: bids\nkey_by: [i, d, s, b, t]\nwindow: " +
                         std::string(shape) + "\nallowed_lateness: 1h\n" + kAllAggregates,
                     all_types_schema());
    ASSERT_TRUE(b->node);
    const auto* serde = dynamic_cast<const checkpoint::StateSerde*>(b->node.get());
    ASSERT_NE(serde, nullptr);
    test::TempDir dir;
    test::FakeContext ctx(0, 1, 64);
    ctx.set_state_dir(dir.file("s"));
    ctx.set_state_memory_budget(2048);  // spills too (several partials per key)
    auto op = b->node->make_operator(0, 1);
    ASSERT_TRUE(op->open(ctx).ok());
    auto rows = tricky_rows();
    test::CollectOutput out;
    for (size_t k = 0; k < rows.size(); k += 5) {
      std::vector<std::vector<Value>> part(
          rows.begin() + static_cast<std::ptrdiff_t>(k),
          rows.begin() + static_cast<std::ptrdiff_t>(std::min(rows.size(), k + 5)));
      ASSERT_TRUE(op->process(0, all_types(part), out).ok());
    }
    // Part of the sessions fire (and stay for the lateness): purge timers too.
    ASSERT_TRUE(op->on_watermark(Watermark{1'700'000'003'500}, out).ok());
    test::FakeSnapshotContext sc(1, dir.file("cp"));
    ASSERT_TRUE(op->snapshot(sc).ok());
    ASSERT_TRUE(sc.wait().ok());  // the in-memory groups are written on the I/O thread
    std::vector<json> seen;
    EXPECT_GT(check_round_trip(*serde, dir.file("cp"), &seen), 10u);
    // Keyless windows too.
    bool timers = false;
    for (const json& j : seen) timers = timers || j.contains("timer");
    EXPECT_EQ(timers, std::string(shape).find("session") != std::string::npos);
    // The spellings of operators/state_json.h.
    std::string all;
    for (const json& j : seen) all += j.dump();
    EXPECT_NE(all.find("\"NaN(0xfff8000000000000)\""), std::string::npos);
    EXPECT_EQ(all.find("-NaN"), std::string::npos);
  }
}

TEST(WindowSerde, ShapeOfAnEntry) {
  auto b = prepare(
      "id: w\ntype: window\ninput: bids\nkey_by: [auction, name]\nwindow: {type: tumbling, size: "
      "10s}\naggregate: {n: \"count(*)\", s: \"sum(price)\", a: \"avg(auction)\", hi: "
      "\"max(price)\", f: \"first(name)\", d: \"count_distinct(name)\"}\n");
  const auto* serde = dynamic_cast<const checkpoint::StateSerde*>(b->node.get());
  test::TempDir dir;
  Instance in(*b->node, dir.file("s"), 0);
  in.run(Step{{{7, 2.5, "zoë", 1'767'225'600'000}, {7, -1.0, "zoë", 1'767'225'601'000}},
              std::nullopt});
  in.snapshot(dir.file("cp"));
  std::vector<json> seen;
  ASSERT_EQ(check_round_trip(*serde, dir.file("cp"), &seen), 1u);
  EXPECT_EQ(seen[0], json::parse(R"({
    "key": {"auction": 7, "name": "zoë"},
    "window_start": "2026-01-01T00:00:00.000Z", "window_end": "2026-01-01T00:00:10.000Z",
    "spill": 0,
    "aggregates": {"n": 2, "s": {"sum": 1.5, "count": 2}, "a": {"sum": 14, "count": 2},
                   "hi": {"value": 2.5, "count": 2},
                   "f": {"value": "zoë", "time": "2026-01-01T00:00:00.000Z", "seq": 0, "count": 2},
                   "d": ["zoë"]}})"))
      << seen[0].dump();
}

TEST(WindowSerde, ASlidingWindowsEntryIsAPanes) {
  auto b = prepare(
      "id: w\ntype: window\ninput: bids\nkey_by: [auction]\nwindow: {type: sliding, size: 10s, "
      "slide: 4s}\naggregate: {n: \"count(*)\"}\n");
  const auto* serde = dynamic_cast<const checkpoint::StateSerde*>(b->node.get());
  test::TempDir dir;
  Instance in(*b->node, dir.file("s"), 0);
  in.run(Step{{{7, 2.5, "zoë", 1'767'225'601'000}}, std::nullopt});
  in.snapshot(dir.file("cp"));
  std::vector<json> seen;
  EXPECT_EQ(serde->state_format_version(), 2);                     // version 1 held whole windows
  ASSERT_EQ(check_round_trip(*serde, dir.file("cp"), &seen), 1u);  // one pane, three windows
  EXPECT_EQ(seen[0], json::parse(R"({"key": {"auction": 7},
    "pane_start": "2026-01-01T00:00:00.000Z", "pane_end": "2026-01-01T00:00:02.000Z",
    "spill": 0, "aggregates": {"n": 1}})"))
      << seen[0].dump();
  json bad = seen[0];
  bad["pane_start"] = "2026-01-01T00:00:01.000Z";
  std::string k, v;
  const Status s = serde->entry_from_json(bad, k, v);
  EXPECT_NE(s.message().find("'pane_start' must be 'pane_end' minus the pane 2s"),
            std::string::npos)
      << s.message();
  bad = seen[0];
  bad["window_end"] = bad["pane_end"];
  bad.erase("pane_end");
  EXPECT_NE(serde->entry_from_json(bad, k, v).message().find("window_end"), std::string::npos);
}

TEST(WindowSerde, SessionEntryShape) {
  auto b = prepare(
      "id: w\ntype: window\ninput: bids\nkey_by: auction\nwindow: {type: session, gap: 1s}\n"
      "aggregate: {n: \"count(*)\"}\n");
  const auto* serde = dynamic_cast<const checkpoint::StateSerde*>(b->node.get());
  test::TempDir dir;
  Instance in(*b->node, dir.file("s"), 0);
  in.run(Step{{{std::nullopt, 1.0, {}, 0}}, std::nullopt});
  in.snapshot(dir.file("cp"));
  std::vector<json> seen;
  ASSERT_EQ(check_round_trip(*serde, dir.file("cp"), &seen), 2u);
  EXPECT_EQ(seen[0], json::parse(R"({"key": {"auction": null}, "sessions": [
      {"window_start": "1970-01-01T00:00:00.000Z", "window_end": "1970-01-01T00:00:01.000Z",
       "fired": false, "aggregates": {"n": 1}}]})"));
  EXPECT_EQ(seen[1], json::parse(R"({"timer": "fire", "key": {"auction": null},
      "window_end": "1970-01-01T00:00:01.000Z"})"));
}

TEST(WindowSerde, BadEntriesAreRefusedInOneSentence) {
  auto b = prepare(
      "id: w\ntype: window\ninput: bids\nkey_by: [auction]\nwindow: {type: tumbling, size: 10s}\n"
      "aggregate: {n: \"count(*)\", s: \"sum(price)\", f: \"first(name)\"}\n");
  const auto* serde = dynamic_cast<const checkpoint::StateSerde*>(b->node.get());
  const json good = json::parse(R"({"key": {"auction": 1}, "window_start": "2026-01-01T00:00:00Z",
      "window_end": "2026-01-01T00:00:10Z", "spill": 0,
      "aggregates": {"n": 1, "s": {"sum": 2.0, "count": 1},
                     "f": {"value": "x", "time": "2026-01-01T00:00:01Z", "seq": 3, "count": 1}}})");
  std::string k, v;
  ASSERT_TRUE(serde->entry_from_json(good, k, v).ok());
  auto refused = [&](const std::function<void(json&)>& change, const std::string& says) {
    json j = good;
    change(j);
    Status s = serde->entry_from_json(j, k, v);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << j.dump();
    EXPECT_NE(s.message().find(says), std::string::npos) << s.message();
    EXPECT_EQ(s.message().find('\n'), std::string::npos);
  };
  refused([](json& j) { j["extra"] = 1; }, "unknown field 'extra'");
  refused([](json& j) { j.erase("spill"); }, "'spill'");
  refused([](json& j) { j["key"]["auction"] = "one"; }, "key field 'auction' must be an integer");
  refused([](json& j) { j["key"]["other"] = 1; }, "unknown field 'other'");
  refused([](json& j) { j["key"] = json::object(); }, "lacks the key_by field 'auction'");
  refused([](json& j) { j["window_start"] = "2026-01-01T00:00:01Z"; }, "window size");
  refused([](json& j) { j["window_end"] = "yesterday"; }, "RFC 3339");
  refused([](json& j) { j["aggregates"]["n"] = 1.5; }, "aggregate 'n' must be an integer");
  refused([](json& j) { j["aggregates"]["s"] = 2.0; }, "aggregate 's' must be a JSON object");
  refused([](json& j) { j["aggregates"]["s"]["sum"] = "x"; }, "aggregate 's' sum");
  refused([](json& j) { j["aggregates"]["zz"] = 1; }, "unknown aggregate 'zz'");
  refused([](json& j) { j["aggregates"].erase("f"); }, "lacks the aggregate 'f'");
  refused([](json& j) { j["aggregates"]["f"]["seq"] = -1; }, "must not be negative");
  refused([](json& j) { j["spill"] = -1; }, "'spill'");
  // Bytes that are not this operator's layout.
  EXPECT_EQ(serde->entry_to_json("xx", "").status().code(), StatusCode::kDataError);
  EXPECT_EQ(serde->entry_to_json(k, v + "junk").status().code(), StatusCode::kDataError);
}

}  // namespace
}  // namespace df::operators
