// The top_n operator through its factory, driven batch by batch with event
// time and watermarks as the scheduler would: ranking (rank vs row_number,
// asc/desc, n > 1, keyed and global, several windows, sliding windows),
// late rows, option errors; checkpoints (snapshot, restore into a fresh
// instance, continue: the output equals an uninterrupted run) and the
// readable state (StateSerde). Real RocksDB in temp dirs.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <optional>
#include <random>

#include "engine/checkpoint/state_serde.h"
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

const std::vector<std::string> kAllowed = {"id", "type", "input", "parallelism"};

// Prepares a top_n from YAML, as the planner does; it must prepare cleanly.
std::unique_ptr<test::BuiltNode> prepare(const std::string& yaml) {
  auto built = test::prepare_operator(yaml, "top_n", {"bids"}, {bids_schema()}, {true}, kAllowed);
  EXPECT_TRUE(built->diags.empty()) << built->diags.to_status().message();
  EXPECT_TRUE(built->node);
  return built;
}

// The diagnostics of a top_n with a mistake (unknown options are reported
// after the factory, like the planner does).
std::string problems(const std::string& yaml, bool event_time = true) {
  auto built =
      test::prepare_operator(yaml, "top_n", {"bids"}, {bids_schema()}, {event_time}, kAllowed);
  EXPECT_FALSE(built->diags.empty()) << yaml;
  return built->diags.to_status().message();
}

std::string top_yaml(const std::string& options) {
  return "id: top\ntype: top_n\ninput: bids\n" + options;
}

using Out = test::PortsOutput;

// A value as text: timestamps as their milliseconds, doubles exactly.
std::string cell(const Value& v) {
  if (v.is_null()) return "null";
  if (v.type() == TypeId::kTimestamp) return std::to_string(v.as_int64());
  if (v.type() == TypeId::kDouble) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%g", v.as_double());
    return buf;
  }
  return v.to_string();
}

// Rows as "auction|price|name|ts|window_start|window_end|rank@event time",
// in emission order.
std::vector<std::string> lines(const std::vector<BatchPtr>& batches, const char* tag = "") {
  std::vector<std::string> out;
  for (const BatchPtr& b : batches) {
    for (size_t k = 0; k < b->active_rows(); ++k) {
      const size_t r = b->row_at(k);
      std::string line = tag;
      for (size_t c = 0; c < b->num_columns(); ++c) {
        line += (c ? "|" : "") + cell(b->column(c)->value_at(r));
      }
      if (b->event_time()) line += "@" + std::to_string(b->event_time()->int64_at(r));
      out.push_back(line);
    }
  }
  return out;
}

using Step = test::BidStep;

// A top_n instance (see test::BidsInstance); its lines: the main output in
// emission order, then late rows tagged "late|".
struct Instance : test::BidsInstance {
  explicit Instance(const runtime::PreparedNode& node, std::string state_dir = {},
                    std::optional<std::string> meta = std::nullopt, size_t budget = 0,
                    size_t batch_size = 256)
      : BidsInstance(node, std::move(state_dir), budget, std::move(meta), batch_size, [](Out& out) {
          auto l = lines(out.main);
          auto late = lines(out.late, "late|");
          l.insert(l.end(), late.begin(), late.end());
          return l;
        }) {}
  std::vector<std::string> rows(const std::vector<Bid>& rows) { return run(Step{rows, {}}); }
  std::vector<std::string> watermark(int64_t wm) { return run(Step{{}, wm}); }
};

using Lines = std::vector<std::string>;

// ---- ranking ---------------------------------------------------------------------

TEST(TopN, RankKeepsEveryTieAtTheTop) {
  auto b = prepare(top_yaml("window: {type: tumbling, size: 10s}\norder_by: price desc\nn: 1\n"));
  Instance in(*b->node);
  EXPECT_TRUE(in.rows({{1, 5.0, "a", 1000}, {2, 9.0, "b", 2000}, {3, 3.0, "c", 3000}}).empty());
  EXPECT_TRUE(in.rows({{4, 9.0, "d", 4000}, {5, 8.0, "e", 9999}}).empty());
  // Fires once the watermark reaches window_end - 1; ties in arrival order.
  EXPECT_TRUE(in.watermark(9998).empty());
  EXPECT_EQ(in.watermark(9999), (Lines{"2|9|b|2000|0|10000|1@9999", "4|9|d|4000|0|10000|1@9999"}));
  EXPECT_TRUE(in.finish().empty());
}

TEST(TopN, RowNumberKeepsExactlyNAndTheEarlierOfTies) {
  auto b =
      prepare(top_yaml("window: {type: tumbling, size: 10s}\norder_by: price desc\nn: 2\n"
                       "rank: row_number\nrank_field: rownum\n"));
  EXPECT_EQ(b->node->output_schema()->to_string(),
            "{auction: int64, price: double, name: string, ts: timestamp, window_start: "
            "timestamp, window_end: timestamp, rownum: int64}");
  Instance in(*b->node);
  in.rows({{1, 7.0, "a", 1}, {2, 9.0, "b", 2}, {3, 7.0, "c", 3}, {4, 9.0, "d", 4}});
  in.rows({{5, 9.0, "e", 5}, {6, 1.0, "f", 6}});
  EXPECT_EQ(in.finish(), (Lines{"2|9|b|2|0|10000|1@9999", "4|9|d|4|0|10000|2@9999"}));
}

TEST(TopN, RankWithNAboveOneSkipsRanksAfterTies) {
  auto b = prepare(top_yaml("window: {type: tumbling, size: 10s}\norder_by: price desc\nn: 2\n"));
  Instance in(*b->node);
  // 10, 9, 9, 8: ranks 1, 2, 2 (8 ranks 4).
  in.rows({{1, 9.0, "a", 1}, {2, 8.0, "b", 2}, {3, 10.0, "c", 3}, {4, 9.0, "d", 4}});
  EXPECT_EQ(in.watermark(9999),
            (Lines{"3|10|c|3|0|10000|1@9999", "1|9|a|1|0|10000|2@9999", "4|9|d|4|0|10000|2@9999"}));
  // 10, 10, 9: ranks 1, 1 (9 ranks 3 and falls out as soon as the tie comes).
  in.rows({{5, 10.0, "e", 10001}, {6, 9.0, "f", 10002}, {7, 10.0, "g", 10003}});
  EXPECT_EQ(in.watermark(19999),
            (Lines{"5|10|e|10001|10000|20000|1@19999", "7|10|g|10003|10000|20000|1@19999"}));
}

TEST(TopN, AscendingAndSeveralOrderExpressions) {
  {
    auto b =
        prepare(top_yaml("window: {type: tumbling, size: 10s}\norder_by: [price asc]\nn: 2\n"
                         "rank: row_number\n"));
    Instance in(*b->node);
    in.rows({{1, 5.0, "a", 1}, {2, 2.0, "b", 2}, {3, 3.0, "c", 3}, {4, 4.0, "d", 4}});
    EXPECT_EQ(in.finish(), (Lines{"2|2|b|2|0|10000|1@9999", "3|3|c|3|0|10000|2@9999"}));
  }
  {
    // Ties on price go to the name, descending; a string key of another
    // length in between (prefixes must order right both ways).
    auto b = prepare(
        top_yaml("window: {type: tumbling, size: 10s}\norder_by: \"price * 2 DESC, name desc\"\n"
                 "n: 3\n"));
    EXPECT_NE(b->node->describe().find("(price * 2) desc, name desc"), std::string::npos)
        << b->node->describe();
    Instance in(*b->node);
    in.rows({{1, 5.0, "ab", 1},
             {2, 5.0, "abc", 2},
             {3, 5.0, "a", 3},
             {4, 4.0, "zz", 4},
             {5, 1.0, "zzz", 5}});
    EXPECT_EQ(in.finish(), (Lines{"2|5|abc|2|0|10000|1@9999", "1|5|ab|1|0|10000|2@9999",
                                  "3|5|a|3|0|10000|3@9999"}));
  }
  {
    // Null is the smallest value: last descending, first ascending.
    for (const char* dir : {"desc", "asc"}) {
      auto b = prepare(top_yaml(
          std::string("window: {type: tumbling, size: 10s}\norder_by: price ") + dir + "\nn: 1\n"));
      Instance in(*b->node);
      in.rows({{1, std::nullopt, "n", 1}, {2, 3.0, "x", 2}, {3, -1.0, "y", 3}});
      EXPECT_EQ(in.finish(), (Lines{std::string(dir) == "desc" ? "2|3|x|2|0|10000|1@9999"
                                                               : "1|null|n|1|0|10000|1@9999"}))
          << dir;
    }
  }
}

TEST(TopN, KeyedKeepsATopPerKeyAndWindowInKeyOrder) {
  auto b = prepare(
      top_yaml("key_by: [auction]\nwindow: {type: tumbling, size: 10s}\norder_by: price desc\n"
               "n: 1\n"));
  Instance in(*b->node);
  in.rows({{2, 1.0, "a", 1000},
           {1, 5.0, "b", 2000},
           {2, 3.0, "c", 3000},
           {std::nullopt, 4.0, "d", 4000},
           {1, 2.0, "e", 12000}});
  // Window [0, 10 s): one row per key, null key first; [10 s, 20 s) waits.
  EXPECT_EQ(in.watermark(10000), (Lines{"null|4|d|4000|0|10000|1@9999", "1|5|b|2000|0|10000|1@9999",
                                        "2|3|c|3000|0|10000|1@9999"}));
  EXPECT_EQ(test::state_entries(*in.op), 1u);  // the fired window is gone (no lateness)
  EXPECT_EQ(in.finish(), (Lines{"1|2|e|12000|10000|20000|1@19999"}));
}

TEST(TopN, SeveralWindowsFireInEndOrderAndForwardTheWatermark) {
  auto b = prepare(top_yaml("window: {type: tumbling, size: 10s}\norder_by: price desc\nn: 1\n"));
  Instance in(*b->node);
  in.rows({{1, 1.0, "a", 25000}, {2, 2.0, "b", 5000}, {3, 3.0, "c", 15000}, {4, 0.5, "d", 26000}});
  Out out;
  ASSERT_TRUE(in.op->on_watermark(Watermark{19999}, out).ok());
  EXPECT_EQ(lines(out.main),
            (Lines{"2|2|b|5000|0|10000|1@9999", "3|3|c|15000|10000|20000|1@19999"}));
  EXPECT_EQ(out.watermarks, (std::vector<int64_t>{19999}));
  EXPECT_EQ(in.finish(), (Lines{"1|1|a|25000|20000|30000|1@29999"}));
}

TEST(TopN, SlidingWindowsRankEachWindow) {
  auto b = prepare(
      top_yaml("window: {type: sliding, size: 10s, slide: 5s}\norder_by: price desc\nn: 1\n"));
  Instance in(*b->node);
  // 9 @ 4 s is in [-5, 5) and [0, 10); 7 @ 8 s in [0, 10) and [5, 15).
  in.rows({{1, 9.0, "a", 4000}, {2, 7.0, "b", 8000}});
  EXPECT_EQ(in.finish(), (Lines{"1|9|a|4000|-5000|5000|1@4999", "1|9|a|4000|0|10000|1@9999",
                                "2|7|b|8000|5000|15000|1@14999"}));
}

TEST(TopN, LateRowsAreCountedOrSentToTheLateOutput) {
  {
    auto b = prepare(top_yaml("window: {type: tumbling, size: 10s}\norder_by: price desc\nn: 1\n"));
    Instance in(*b->node);
    in.rows({{1, 1.0, "a", 1000}});
    EXPECT_EQ(in.watermark(10500).size(), 1u);
    EXPECT_TRUE(in.rows({{2, 99.0, "late", 2000}, {3, 2.0, "b", 11000}}).empty());
    const auto errors = in.ctx.data_errors();
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_NE(errors[0].find("late row dropped: top_n 'top'"), std::string::npos) << errors[0];
    EXPECT_EQ(in.finish(), (Lines{"3|2|b|11000|10000|20000|1@19999"}));
  }
  {
    // Within the allowed lateness a row that enters a fired window's top
    // re-emits that top; one that does not changes nothing; past it, the
    // late output.
    auto b =
        prepare(top_yaml("window: {type: tumbling, size: 10s}\norder_by: price desc\nn: 2\n"
                         "allowed_lateness: 5s\nlate_output: late\n"));
    ASSERT_EQ(b->node->side_outputs().size(), 1u);
    EXPECT_EQ(b->node->side_outputs()[0].name, "late");
    Instance in(*b->node);
    in.rows({{1, 5.0, "a", 1000}, {2, 4.0, "b", 2000}});
    EXPECT_EQ(in.watermark(12000).size(), 2u);
    EXPECT_TRUE(in.rows({{3, 1.0, "c", 3000}}).empty());
    EXPECT_EQ(in.rows({{4, 6.0, "d", 4000}}),
              (Lines{"4|6|d|4000|0|10000|1@9999", "1|5|a|1000|0|10000|2@9999"}));
    EXPECT_TRUE(in.watermark(14999).empty());  // the window is gone now
    EXPECT_EQ(in.rows({{5, 7.0, "e", 5000}}), (Lines{"late|5|7|e|5000@5000"}));
    EXPECT_TRUE(in.ctx.data_errors().empty());
  }
}

TEST(TopN, OptionErrorsAreLocatedAndComplete) {
  const std::string shape = "window: {type: tumbling, size: 10s}\n";
  EXPECT_NE(problems(top_yaml(shape + "order_by: price desc\n")).find("'n'"), std::string::npos);
  std::string p = problems(top_yaml(shape + "order_by: prise desc\nn: 0\nrank: dense\n"));
  EXPECT_NE(p.find("t.yaml:5:11"), std::string::npos) << p;  // the unknown field's column
  EXPECT_NE(p.find("prise"), std::string::npos) << p;
  EXPECT_NE(p.find("'n' must be at least 1"), std::string::npos) << p;
  EXPECT_NE(p.find("rank or row_number"), std::string::npos) << p;
  p = problems(top_yaml("window: {type: session, gap: 1s}\norder_by: price\nn: 1\n"));
  EXPECT_NE(p.find("session windows are not supported"), std::string::npos) << p;
  p = problems(top_yaml(shape + "order_by: price\nn: 1\nrank_field: ts\n"));
  EXPECT_NE(p.find("'ts' clashes with an input field"), std::string::npos) << p;
  p = problems(top_yaml(shape + "order_by: \"price desc, \"\nn: 1\n"));
  EXPECT_NE(p.find("empty expression"), std::string::npos) << p;
  p = problems(top_yaml(shape + "order_by: price\nn: 1\nkey_by: [nope]\n"));
  EXPECT_NE(p.find("nope"), std::string::npos) << p;
  p = problems(top_yaml(shape + "order_by: price\nn: 1\n"), /*event_time=*/false);
  EXPECT_NE(p.find("needs event time"), std::string::npos) << p;
  p = problems(top_yaml(shape + "order_by: price\nn: 1\nwindow_start: 1\n"));
  EXPECT_NE(p.find("window_start"), std::string::npos) << p;  // an unknown option
}

// ---- checkpoints ---------------------------------------------------------------------

// A stream of `n` rows over `keys` keys with prices of few distinct values
// (many ties), event time mostly ascending with jitter, a watermark every few
// batches and, every `late_every` rows, one far behind it.
std::vector<Step> make_stream(uint32_t seed, int n, int keys, int late_every) {
  std::mt19937_64 rng(seed);
  std::vector<Step> steps;
  int64_t t = 1'000'000;
  int64_t max_ts = std::numeric_limits<int64_t>::min();
  const char* names[] = {"ada", "bob", "zoë", "", "x\ty"};
  const int64_t bound = 2500;
  Step cur;
  int batches = 0;
  for (int i = 0; i < n; ++i) {
    t += static_cast<int64_t>(rng() % 121);
    int64_t ts = t - static_cast<int64_t>(rng() % 2001);
    if (late_every > 0 && i % late_every == late_every - 1) {
      ts = t - bound - static_cast<int64_t>(rng() % 20000);
    }
    Bid b;
    const int64_t k = static_cast<int64_t>(rng() % static_cast<uint64_t>(keys));
    if (k != 0) b.auction = k;
    if (rng() % 10 != 0) b.price = static_cast<double>(rng() % 12);
    if (rng() % 8 != 0) b.name = names[rng() % 5];
    b.ts = ts;
    max_ts = std::max(max_ts, ts);
    cur.rows.push_back(b);
    if (cur.rows.size() >= 1 + rng() % 40) {
      steps.push_back(std::move(cur));
      cur = Step{};
      if (++batches % 3 == 0) steps.push_back(Step{{}, max_ts - bound - 1});
    }
  }
  if (!cur.rows.empty()) steps.push_back(std::move(cur));
  return steps;
}

using test::expect_same_steps;
using test::install_snapshot;
using test::StepOutput;

// Makes Instances of `node` spilling above `budget` (0: never).
test::MakeInstance instances(const runtime::PreparedNode& node, size_t budget = 0) {
  return [&node, budget](const std::string& dir, std::optional<std::string> meta) {
    return std::make_unique<Instance>(node, dir, std::move(meta), budget);
  };
}

struct Case {
  const char* name;
  std::string yaml;
  int late_every;
  size_t budget = 0;  // 0: the default (no spilling at these sizes)
};

std::vector<Case> cases() {
  return {
      {"global_rank", top_yaml("window: {type: tumbling, size: 10s}\norder_by: price desc\nn: 1\n"),
       0},
      {"keyed_rank_lateness",
       top_yaml("key_by: [auction]\nwindow: {type: tumbling, size: 2s}\n"
                "order_by: [price desc, name]\nn: 2\nallowed_lateness: 3s\nlate_output: late\n"),
       7},
      {"keyed_row_number",
       top_yaml("key_by: auction\nwindow: {type: tumbling, size: 3s}\norder_by: price asc\nn: 3\n"
                "rank: row_number\nallowed_lateness: 1s\n"),
       11},
      {"sliding",
       top_yaml("key_by: [name]\nwindow: {type: sliding, size: 4s, slide: 1s}\n"
                "order_by: price desc\nn: 2\nallowed_lateness: 2s\nlate_output: late\n"),
       9},
      {"keyed_spilling",
       top_yaml("key_by: [auction]\nwindow: {type: tumbling, size: 2s}\norder_by: price desc\n"
                "n: 2\nallowed_lateness: 3s\nlate_output: late\n"),
       7, 4 << 10},
      {"sliding_row_number_spilling",
       top_yaml("key_by: [name]\nwindow: {type: sliding, size: 4s, slide: 1s}\n"
                "order_by: price\nn: 2\nrank: row_number\nallowed_lateness: 2s\n"),
       9, 2 << 10},
      {"global_spilling",
       top_yaml("window: {type: tumbling, size: 5s}\norder_by: price desc\nn: 3\n"
                "allowed_lateness: 1s\n"),
       13, 512},
  };
}

class TopNResumedRuns : public ::testing::TestWithParam<Case> {};

TEST_P(TopNResumedRuns, EqualAnUninterruptedRun) {
  const Case& c = GetParam();
  auto b = prepare(c.yaml);
  ASSERT_TRUE(b->node);
  for (uint32_t seed = 1; seed <= 2; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    const auto steps = make_stream(seed, test::kSanitized ? 1500 : 3000, 30, c.late_every);
    test::TempDir dir;
    // The reference never spills; the resumed runs spill with c.budget.
    const StepOutput want = test::reference_run(instances(*b->node), steps, dir.file("ref"));
    if (c.budget > 0) {
      expect_same_steps(
          want, test::reference_run(instances(*b->node, c.budget), steps, dir.file("spilled")));
    }
    std::mt19937 rng(seed * 7919);
    for (int trial = 0; trial < 2; ++trial) {
      std::vector<size_t> cuts;
      const int n = 1 + static_cast<int>(rng() % 4);
      for (int k = 0; k < n; ++k) cuts.push_back(rng() % (steps.size() + 1));
      std::sort(cuts.begin(), cuts.end());
      cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());
      expect_same_steps(want, test::resumed_run(instances(*b->node, c.budget), steps, cuts,
                                                dir.file("run" + std::to_string(trial))));
    }
    std::vector<size_t> many;
    for (size_t i = 0; i <= steps.size(); i += 1 + steps.size() / 12) many.push_back(i);
    expect_same_steps(
        want, test::resumed_run(instances(*b->node, c.budget), steps, many, dir.file("many")));
  }
}

INSTANTIATE_TEST_SUITE_P(TopN, TopNResumedRuns, ::testing::ValuesIn(cases()),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(TopNCheckpoint, AFinalSnapshotDoesNotFireAgain) {
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.name);
    auto b = prepare(c.yaml);
    const auto steps = make_stream(5, 1500, 20, c.late_every);
    test::TempDir dir;
    Instance first(*b->node, dir.file("s0"), std::nullopt, c.budget);
    size_t rows = 0;
    for (const Step& s : steps) rows += first.run(s).size();
    rows += first.finish().size();
    EXPECT_GT(rows, 0u);
    const std::string meta = first.snapshot(dir.file("final"), runtime::kFinalCheckpoint);
    // The windows went at the end of input: the final checkpoint holds no
    // entries and no window.
    EXPECT_TRUE(test::entries_of(dir.file("final")).empty());
    EXPECT_EQ(json::parse(meta)["windows"], json::array());
    install_snapshot(dir.file("final"), dir.file("s1"));
    Instance again(*b->node, dir.file("s1"), meta, c.budget);
    ASSERT_TRUE(again.open_status.ok()) << again.open_status.to_string();
    EXPECT_TRUE(again.finish().empty());
  }
}

TEST(TopNCheckpoint, MetaShapeAndTheLiveStoreStaysEmpty) {
  auto b = prepare(top_yaml(
      "window: {type: tumbling, size: 10s}\norder_by: price desc\nn: 1\nallowed_lateness: 20s\n"));
  test::TempDir dir;
  Instance in(*b->node, dir.file("s"));
  in.rows({{1, 1.0, "a", 5000}, {2, 2.0, "b", 15000}});
  in.watermark(9999);
  const json meta = json::parse(in.snapshot(dir.file("cp")));
  EXPECT_EQ(meta, json::parse(R"({"format": 1, "watermark": "1970-01-01T00:00:09.999Z",
      "spill_seq": 1, "windows": [{"window_end": "1970-01-01T00:00:10.000Z", "fired": true},
                  {"window_end": "1970-01-01T00:00:20.000Z", "fired": false}]})"));
  EXPECT_EQ(test::entries_of(dir.file("cp")).size(), 2u);
  ASSERT_NE(b->serde, nullptr);
  EXPECT_TRUE(b->serde->check_meta(meta).ok());
  json bad = meta;
  bad["extra"] = 1;
  EXPECT_NE(b->serde->check_meta(bad).message().find("'extra'"), std::string::npos);
  bad = meta;
  bad["windows"][0]["fired"] = "yes";
  EXPECT_FALSE(b->serde->check_meta(bad).ok());
  bad = meta;
  bad["format"] = 2;
  EXPECT_FALSE(b->serde->check_meta(bad).ok());
  // Nothing spilled: the snapshot neither opened nor checkpointed the store
  // (the I/O thread laid an empty store's image under the entries).
  EXPECT_FALSE(fs::exists(fs::path(dir.file("s")) / "CURRENT"));
  in.op.reset();
  EXPECT_TRUE(test::entries_of(dir.file("s")).empty());
}

TEST(TopNCheckpoint, SnapshotNeedsAStateDirectory) {
  auto b = prepare(top_yaml("window: {type: tumbling, size: 10s}\norder_by: price\nn: 1\n"));
  Instance in(*b->node);
  in.rows({{1, 1.0, "a", 5000}});
  test::TempDir dir;
  test::FakeSnapshotContext sc(1, dir.file("cp"));
  Status s = in.op->snapshot(sc);
  EXPECT_NE(s.message().find("checkpoints need a state directory"), std::string::npos)
      << s.to_string();
}

// Past the memory budget the groups go to the store as partial tops; the
// window still fires the exact tops, in the same order as without spilling.
TEST(TopNSpill, ManyKeysSpillAndStillRankExactly) {
  auto b = prepare(
      top_yaml("key_by: [auction]\nwindow: {type: tumbling, size: 10s}\norder_by: price desc\n"
               "n: 2\n"));
  test::TempDir dir;
  Instance plain(*b->node, dir.file("plain"));
  Instance spilling(*b->node, dir.file("spilling"), std::nullopt, 8 << 10);
  Lines want;
  Lines got;
  size_t most_in_memory = 0;
  for (int round = 0; round < 5; ++round) {
    std::vector<Bid> rows;
    for (int64_t k = 0; k < 600; ++k) {
      // The best two of each key arrive in different rounds.
      const double price = static_cast<double>((k * 7 + round * 3) % 5);
      rows.push_back({k, price, "r" + std::to_string(round), 1000 + round});
    }
    for (const std::string& l : plain.rows(rows)) want.push_back(l);
    for (const std::string& l : spilling.rows(rows)) got.push_back(l);
    most_in_memory = std::max(most_in_memory, test::state_entries(*spilling.op));
  }
  EXPECT_LT(most_in_memory, 600u);  // spilled: never every key's top at once
  for (const std::string& l : plain.watermark(20000)) want.push_back(l);
  for (const std::string& l : spilling.watermark(20000)) got.push_back(l);
  EXPECT_GE(want.size(), 1200u);
  EXPECT_EQ(want, got);
}

// ---- readable state -------------------------------------------------------------------

TEST(TopNSerde, EntriesRoundTripExactlyAndReadWell) {
  auto b =
      prepare(top_yaml("key_by: [auction, name]\nwindow: {type: tumbling, size: 10s}\n"
                       "order_by: \"price desc, ts\"\nn: 2\n"));
  test::TempDir dir;
  Instance in(*b->node, dir.file("s"));
  in.rows({{7, 2.5, "zoë", 1'767'225'600'000},
           {7, std::nullopt, "zoë", 1'767'225'601'000},
           {7, 2.5, "zoë", 1'767'225'602'000},
           {std::nullopt, -1.0, std::nullopt, 1'767'225'603'000}});
  in.snapshot(dir.file("cp"));
  std::vector<json> seen;
  for (const auto& [k, v] : test::entries_of(dir.file("cp"))) {
    auto j = b->serde->entry_to_json(k, v);
    ASSERT_TRUE(j.ok()) << j.status().to_string();
    std::string k2, v2;
    Status s = b->serde->entry_from_json(*j, k2, v2);
    ASSERT_TRUE(s.ok()) << s.to_string();
    EXPECT_EQ(k2, k);
    EXPECT_EQ(v2, v);
    seen.push_back(*j);
  }
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[1], json::parse(R"({
    "key": {"auction": 7, "name": "zoë"},
    "window_start": "2026-01-01T00:00:00.000Z", "window_end": "2026-01-01T00:00:10.000Z",
    "spill": 0, "rows": [
      {"order": [2.5, "2026-01-01T00:00:00.000Z"],
       "row": {"auction": 7, "price": 2.5, "name": "zoë", "ts": "2026-01-01T00:00:00.000Z"}},
      {"order": [2.5, "2026-01-01T00:00:02.000Z"],
       "row": {"auction": 7, "price": 2.5, "name": "zoë", "ts": "2026-01-01T00:00:02.000Z"}}]})"))
      << seen[1].dump();
  EXPECT_EQ(seen[0]["key"], json::parse(R"({"auction": null, "name": null})"));

  // Refused in one sentence.
  auto refused = [&](json j, const std::string& says) {
    std::string k, v;
    Status s = b->serde->entry_from_json(j, k, v);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << j.dump();
    EXPECT_NE(s.message().find(says), std::string::npos) << s.message();
  };
  json j = seen[1];
  std::swap(j["rows"][0], j["rows"][1]);
  refused(j, "rank order");
  j = seen[1];
  j["rows"][0]["order"] = json::array({2.5});
  refused(j, "2 order value");
  j = seen[1];
  j["window_start"] = "2026-01-01T00:00:01.000Z";
  refused(j, "window_start");
  j = seen[1];
  j["key"] = json::object({{"auction", 7}});
  refused(j, "name");
}

}  // namespace
}  // namespace df::operators
