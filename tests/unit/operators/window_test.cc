// The window operator through its factory, driven batch by batch with
// event time and watermarks, as the scheduler would.
#include <gtest/gtest.h>

#include <algorithm>
#include <limits>
#include <map>
#include <set>

#include "operators/operators.h"
#include "tests/support/operator_harness.h"
#include "tests/support/sanitizers.h"
#include "tests/unit/operators/node_test_util.h"

namespace df::operators {
namespace {

using test::Bid;
using test::bids;
using test::bids_schema;

// An operator context with a state directory and memory budget; runs I/O
// jobs inline (the window does none).
class WindowContext final : public runtime::OperatorContext {
 public:
  explicit WindowContext(std::string state_dir = {}, size_t budget = 0, size_t batch_size = 1024)
      : state_dir_(std::move(state_dir)), budget_(budget), batch_size_(batch_size) {}
  const std::string& node_id() const override { return id_; }
  int subtask() const override { return 0; }
  int parallelism() const override { return 1; }
  size_t batch_size() const override { return batch_size_; }
  void wake() override {}
  void report_data_error(std::string_view message) override { errors.emplace_back(message); }
  uint64_t io_strand() const override { return 1; }
  runtime::IoExecutor& io() override { return io_; }
  bool stop_requested() const override { return false; }
  std::string state_dir() const override { return state_dir_; }
  size_t state_memory_budget() const override { return budget_; }

  std::vector<std::string> errors;

 private:
  struct InlineIo final : runtime::IoExecutor {
    void post(uint64_t, std::function<void()> job) override { job(); }
  };
  std::string id_ = "hot";
  std::string state_dir_;
  size_t budget_;
  size_t batch_size_;
  InlineIo io_;
};

// Collects the main output, side outputs and watermarks, and the order in
// which rows and watermarks came out.
class WindowOutput final : public runtime::Output {
 public:
  void emit(BatchPtr batch) override {
    log.push_back("rows " + std::to_string(batch->active_rows()));
    batches.push_back(std::move(batch));
  }
  void emit_watermark(Watermark wm) override {
    log.push_back("wm " + std::to_string(wm.timestamp_ms));
    watermarks.push_back(wm);
  }
  void emit_to(size_t port, BatchPtr batch) override {
    if (port == 0) return emit(std::move(batch));
    side[port].push_back(std::move(batch));
  }
  std::vector<BatchPtr> batches;
  std::vector<Watermark> watermarks;
  std::map<size_t, std::vector<BatchPtr>> side;
  std::vector<std::string> log;
};

// A value as text; timestamps as their milliseconds.
std::string cell(const Value& v) {
  if (!v.is_null() && v.type() == TypeId::kTimestamp) return std::to_string(v.as_int64());
  return v.to_string();
}

std::vector<std::string> lines(const std::vector<BatchPtr>& batches) {
  std::vector<std::string> out;
  for (const auto& row : test::rows_of(batches)) {
    std::string line;
    for (size_t c = 0; c < row.size(); ++c) line += (c ? "|" : "") + cell(row[c]);
    out.push_back(line);
  }
  return out;
}

// Every event-time value of the alive output rows.
std::vector<int64_t> event_times(const std::vector<BatchPtr>& batches) {
  std::vector<int64_t> out;
  for (const auto& b : batches) {
    EXPECT_TRUE(b->event_time() != nullptr);
    if (!b->event_time()) continue;
    b->for_each_row([&](size_t r) { out.push_back(b->event_time()->int64_at(r)); });
  }
  return out;
}

using Built = test::BuiltNode;

// Prepares a window from YAML, as the planner does.
std::unique_ptr<Built> prepare(const std::string& yaml, SchemaPtr input = bids_schema(),
                               bool has_event_time = true) {
  return test::prepare_operator(yaml, "window", {"bids"}, {std::move(input)}, {has_event_time},
                                {"id", "type", "input", "parallelism"});
}

std::unique_ptr<Built> prepare_ok(const std::string& yaml) {
  auto b = prepare(yaml);
  EXPECT_TRUE(b->diags.empty()) << b->diags.to_status().message();
  EXPECT_TRUE(b->node);
  return b;
}

// Drives one operator instance step by step.
struct Driver {
  explicit Driver(const runtime::PreparedNode& node, std::string state_dir = {}, size_t budget = 0,
                  size_t batch_size = 1024)
      : ctx(std::move(state_dir), budget, batch_size), op(node.make_operator(0, 1)) {
    EXPECT_TRUE(op->open(ctx).ok());
  }
  void batch(const std::vector<Bid>& rows) {
    Status s = op->process(0, bids(rows), out);
    EXPECT_TRUE(s.ok()) << s.to_string();
  }
  void watermark(int64_t ts) {
    Status s = op->on_watermark(Watermark{ts}, out);
    EXPECT_TRUE(s.ok()) << s.to_string();
  }
  void finish() {
    Status s = op->finish(out);
    EXPECT_TRUE(s.ok()) << s.to_string();
    EXPECT_TRUE(op->close().ok());
  }
  // Rows emitted since the last call.
  std::vector<std::string> take() {
    std::vector<BatchPtr> fresh(out.batches.begin() + static_cast<std::ptrdiff_t>(taken),
                                out.batches.end());
    taken = out.batches.size();
    return lines(fresh);
  }
  WindowContext ctx;
  std::unique_ptr<runtime::Operator> op;
  WindowOutput out;
  size_t taken = 0;
};

using Lines = std::vector<std::string>;

const char* kTumbling = R"Y(
id: hot
type: window
input: bids
key_by: [auction]
window: {type: tumbling, size: 10ms}
aggregate: {bids: "count(*)", total: "sum(price)", top: "max(price)"}
)Y";

TEST(Window, TumblingFiresWhenTheWatermarkPassesTheEnd) {
  auto b = prepare_ok(kTumbling);
  ASSERT_TRUE(b->node);
  EXPECT_EQ(b->node->output_schema()->to_string(),
            "{auction: int64, window_start: timestamp, window_end: timestamp, bids: int64, "
            "total: double, top: double}");
  EXPECT_EQ(b->node->output_has_event_time(), std::optional<bool>(true));
  EXPECT_FALSE(b->node->chainable());
  Driver d(*b->node);
  d.batch({{1, 10.0, "a", 1}, {2, 5.0, "b", 3}, {1, 20.0, "c", 9}, {1, 7.0, "d", 12}});
  d.watermark(8);  // window [0,10) still open: a row at 9 may come
  EXPECT_EQ(d.take(), Lines{});
  d.watermark(9);
  EXPECT_EQ(d.take(), (Lines{"1|0|10|2|30|20", "2|0|10|1|5|5"}));
  EXPECT_EQ(event_times(d.out.batches), (std::vector<int64_t>{9, 9}));
  // Rows come out before the watermark that fired them, which is forwarded.
  EXPECT_EQ(d.out.log, (Lines{"wm 8", "rows 2", "wm 9"}));
  d.finish();  // the end of input fires the open window [10,20)
  EXPECT_EQ(d.take(), (Lines{"1|10|20|1|7|7"}));
  EXPECT_TRUE(d.ctx.errors.empty());
}

TEST(Window, NegativeTimesAlignToTheEpoch) {
  auto b = prepare_ok(kTumbling);
  Driver d(*b->node);
  d.batch({{1, 1.0, "a", -1}, {1, 2.0, "a", -10}, {1, 4.0, "a", -11}});
  d.finish();
  EXPECT_EQ(d.take(), (Lines{"1|-20|-10|1|4|4", "1|-10|0|2|3|2"}));
}

TEST(Window, SlidingPutsEachRowIntoSizeOverSlideWindows) {
  auto b = prepare_ok(R"Y(
id: hot
type: window
input: bids
key_by: auction
window: {type: sliding, size: 10ms, slide: 5ms}
aggregate: {n: "count(*)", s: "sum(price)"}
)Y");
  ASSERT_TRUE(b->node);
  Driver d(*b->node);
  d.batch({{1, 1.0, "a", 2}, {1, 2.0, "a", 7}, {1, 4.0, "a", 12}, {2, 8.0, "x", 5}});
  d.watermark(9);
  EXPECT_EQ(d.take(), (Lines{"1|-5|5|1|1", "1|0|10|2|3", "2|0|10|1|8"}));
  d.finish();
  EXPECT_EQ(d.take(), (Lines{"1|5|15|2|6", "2|5|15|1|8", "1|10|20|1|4"}));
}

TEST(Window, FinishEmitsAWatermarkAfterEachWindow) {
  // Downstream windows and joins then fire window by window at the end of
  // input, as mid-stream, instead of holding every row until their finish.
  auto b = prepare_ok(R"Y(
id: hot
type: window
input: bids
key_by: auction
window: {type: sliding, size: 10ms, slide: 5ms}
aggregate: {n: "count(*)"}
)Y");
  ASSERT_TRUE(b->node);
  Driver d(*b->node);
  d.batch({{1, 1.0, "a", 2}, {1, 2.0, "a", 7}, {2, 4.0, "a", 12}});
  d.watermark(4);
  d.finish();
  EXPECT_EQ(d.take(), (Lines{"1|-5|5|1", "1|0|10|2", "1|5|15|1", "2|5|15|1", "2|10|20|1"}));
  EXPECT_EQ(d.out.log,
            (Lines{"rows 1", "wm 4", "rows 1", "wm 9", "rows 2", "wm 14", "rows 1", "wm 19"}));
}

TEST(Window, SlidingWithGapsDropsRowsBetweenWindowsQuietly) {
  auto b = prepare_ok(R"Y(
id: hot
type: window
input: bids
window: {type: sliding, size: 5ms, slide: 10ms}
aggregate: {n: "count(*)"}
)Y");
  ASSERT_TRUE(b->node);
  EXPECT_EQ(b->node->max_parallelism(), std::optional<int>(1));  // global window
  Driver d(*b->node);
  d.batch({{1, 1.0, "a", 2}, {1, 1.0, "a", 7}, {1, 1.0, "a", 13}});
  d.finish();
  EXPECT_EQ(d.take(), (Lines{"0|5|1", "10|15|1"}));
  EXPECT_TRUE(d.ctx.errors.empty());
}

TEST(Window, EveryAggregateWithNulls) {
  auto b = prepare_ok(R"Y(
id: hot
type: window
input: bids
key_by: [auction]
window: {type: tumbling, size: 100ms}
aggregate:
  c: "count(*)"
  cp: "count(price)"
  s: "sum(price)"
  si: "sum(auction * 2)"
  a: "avg(price)"
  mn: "min(name)"
  mx: "max(ts)"
  mp: "min(price)"
  f: "first(name)"
  l: "last(name)"
  cd: "count_distinct(name)"
  ok: "max(price > 2)"
)Y");
  ASSERT_TRUE(b->node);
  EXPECT_EQ(b->node->output_schema()->to_string(),
            "{auction: int64, window_start: timestamp, window_end: timestamp, c: int64, cp: int64, "
            "s: double, si: int64, a: double, mn: string, mx: timestamp, mp: double, f: string, "
            "l: string, cd: int64, ok: bool}");
  Driver d(*b->node);
  // Key 1: first by event time is "b" at 5 even though it arrives second;
  // last ties at 50 between "c" and "a" go to the later arrival ("a").
  d.batch({{1, 4.0, "z", 20}, {1, std::nullopt, "b", 5}, {1, 2.0, std::nullopt, 30}});
  d.batch({{1, 3.0, "c", 50}, {1, 2.0, "a", 50}, {1, 4.0, "z", 40}});
  // Key 2: only null prices and names.
  d.batch({{2, std::nullopt, std::nullopt, 7}, {2, std::nullopt, std::nullopt, 8}});
  d.watermark(99);
  EXPECT_EQ(d.take(), (Lines{
                          "1|0|100|6|5|15|12|3|a|50|2|b|a|4|true",
                          "2|0|100|2|0|null|8|null|null|8|null|null|null|0|null",
                      }));
}

TEST(Window, SumOfIntegersStaysInteger) {
  auto b = prepare_ok(R"Y(
id: hot
type: window
input: bids
window: {type: tumbling, size: 100ms}
aggregate: {s: "sum(auction)", a: "avg(auction)", f: "first(auction)", l: "last(ts)"}
)Y");
  ASSERT_TRUE(b->node);
  Driver d(*b->node);
  d.batch({{3, 0.0, "a", 10}, {std::nullopt, 0.0, "a", 1}, {4, 0.0, "a", 11}});
  d.finish();
  EXPECT_EQ(d.take(), (Lines{"0|100|7|3.5|3|11"}));
  EXPECT_EQ(b->node->output_schema()->to_string(),
            "{window_start: timestamp, window_end: timestamp, s: int64, a: double, f: int64, "
            "l: timestamp}");
}

TEST(Window, KeysKeepTheirOrderTypesAndNulls) {
  auto b = prepare_ok(R"Y(
id: hot
type: window
input: bids
key_by: [name, auction]
window: {type: tumbling, size: 10ms}
aggregate: {n: "count(*)"}
)Y");
  ASSERT_TRUE(b->node);
  EXPECT_EQ(
      b->node->output_schema()->to_string(),
      "{name: string, auction: int64, window_start: timestamp, window_end: timestamp, n: int64}");
  auto part = b->node->input_partitioning();
  EXPECT_EQ(part.kind, runtime::InputPartitioning::Kind::kHash);
  EXPECT_EQ(part.key_fields, (std::vector<size_t>{2, 0}));
  EXPECT_EQ(b->node->max_parallelism(), std::nullopt);
  Driver d(*b->node);
  d.batch({{2, 1.0, "b", 1},
           {1, 1.0, "b", 2},
           {1, 1.0, std::nullopt, 3},
           {2, 1.0, "b", 4},
           {std::nullopt, 1.0, "a", 5}});
  d.finish();
  // Within a window (kept in memory) keys come out in first-arrival order.
  EXPECT_EQ(d.take(), (Lines{"b|2|0|10|2", "b|1|0|10|1", "null|1|0|10|1", "a|null|0|10|1"}));
}

// Feeds rows in batches of 7, each followed by the watermark a source with
// the given out-of-orderness bound would send.
Lines run_with_bound(const runtime::PreparedNode& node, const std::vector<Bid>& rows,
                     int64_t bound) {
  Driver d(node);
  int64_t max_ts = std::numeric_limits<int64_t>::min();
  for (size_t i = 0; i < rows.size(); i += 7) {
    std::vector<Bid> chunk(
        rows.begin() + static_cast<std::ptrdiff_t>(i),
        rows.begin() + static_cast<std::ptrdiff_t>(std::min(rows.size(), i + 7)));
    for (const Bid& r : chunk) max_ts = std::max(max_ts, r.ts);
    d.batch(chunk);
    d.watermark(max_ts - bound - 1);
  }
  d.finish();
  EXPECT_TRUE(d.ctx.errors.empty());
  return d.take();
}

TEST(Window, OutOfOrderWithinTheBoundGivesTheInOrderResult) {
  auto b = prepare_ok(R"Y(
id: hot
type: window
input: bids
key_by: [auction]
window: {type: sliding, size: 40ms, slide: 20ms}
aggregate: {n: "count(*)", s: "sum(price)", f: "first(name)", l: "last(name)", m: "min(price)"}
)Y");
  ASSERT_TRUE(b->node);
  std::vector<Bid> in_order;
  uint64_t x = 12345;
  for (int i = 0; i < 400; ++i) {
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    in_order.push_back({static_cast<int64_t>((x >> 33) % 5), static_cast<double>((x >> 20) % 100),
                        "n" + std::to_string(i), i * 3});
  }
  // Shuffle by sorting on ts + a jitter of up to 25 ms (below the 30 ms bound).
  std::vector<std::pair<int64_t, Bid>> keyed;
  for (const Bid& r : in_order) {
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    keyed.emplace_back(r.ts + static_cast<int64_t>((x >> 33) % 26), r);
  }
  std::stable_sort(keyed.begin(), keyed.end(),
                   [](const auto& a, const auto& c) { return a.first < c.first; });
  std::vector<Bid> shuffled;
  for (auto& [k, r] : keyed) shuffled.push_back(r);
  size_t moved = 0;
  for (size_t i = 0; i < shuffled.size(); ++i) moved += shuffled[i].ts != in_order[i].ts;
  ASSERT_GT(moved, 100u);  // the shuffle did move rows

  Lines ordered = run_with_bound(*b->node, in_order, 30);
  Lines disordered = run_with_bound(*b->node, shuffled, 30);
  std::sort(ordered.begin(), ordered.end());
  std::sort(disordered.begin(), disordered.end());
  EXPECT_EQ(ordered, disordered);

  // And both equal a straightforward reference computation.
  std::map<std::pair<int64_t, int64_t>, std::pair<int64_t, double>> ref;  // (end, key)
  for (const Bid& r : in_order) {
    for (int64_t start = r.ts / 20 * 20; start > r.ts - 40; start -= 20) {
      auto& [n, s] = ref[{start + 40, *r.auction}];
      ++n;
      s += *r.price;
    }
  }
  size_t checked = 0;
  for (const std::string& line : ordered) {
    auto p1 = line.find('|');
    auto p2 = line.find('|', p1 + 1);
    auto p3 = line.find('|', p2 + 1);
    auto p4 = line.find('|', p3 + 1);
    auto p5 = line.find('|', p4 + 1);
    int64_t key = std::stoll(line.substr(0, p1));
    int64_t end = std::stoll(line.substr(p2 + 1, p3 - p2 - 1));
    auto it = ref.find({end, key});
    ASSERT_NE(it, ref.end()) << line;
    EXPECT_EQ(std::stoll(line.substr(p3 + 1, p4 - p3 - 1)), it->second.first) << line;
    EXPECT_EQ(std::stod(line.substr(p4 + 1, p5 - p4 - 1)), it->second.second) << line;
    ++checked;
  }
  EXPECT_EQ(checked, ref.size());
}

const char* kSession = R"Y(
id: hot
type: window
input: bids
key_by: [auction]
window: {type: session, gap: 10ms}
aggregate: {n: "count(*)", s: "sum(price)", f: "first(name)", l: "last(name)"}
)Y";

// Sliding windows keep their groups per pane (the gcd of size and slide)
// and merge a window's panes when it fires or re-emits. A direct per-window
// model gives each step's rows: windows fire when the watermark passes
// their end - 1, rows updating a fired window within the allowed lateness
// re-emit its row for their key after the batch, later rows go to the late
// output. In memory, and spilled into RocksDB after every batch; int64 keys
// (nulls among them) and string keys; slides that divide the size, that do
// not (several panes per slide) and that leave gaps between windows.
TEST(Window, SlidingPanesGiveEachWindowsRowsStepByStep) {
  struct Acc {
    int64_t n = 0;
    double sum = 0;
    double max = 0;
    int64_t first_ts = 0;
    std::string first;
    std::set<std::string> names;
  };
  struct ModelWindow {
    bool fired = false;
    std::map<std::string, Acc> keys;  // by key cell text
  };
  const auto line = [](const std::string& key, int64_t start, int64_t end, const Acc& a) {
    return key + "|" + std::to_string(start) + "|" + std::to_string(end) + "|" +
           std::to_string(a.n) + "|" + Value::float64(a.sum).to_string() + "|" +
           Value::float64(a.max).to_string() + "|" + a.first + "|" + std::to_string(a.names.size());
  };
  struct Shape {
    int64_t size;
    int64_t slide;
  };
  for (const Shape shape : {Shape{40, 10}, Shape{50, 20}, Shape{30, 7}, Shape{10, 25}}) {
    for (const char* key_by : {"auction", "name"}) {
      for (const bool spill : {false, true}) {
        SCOPED_TRACE(std::to_string(shape.size) + "/" + std::to_string(shape.slide) + " by " +
                     key_by + (spill ? ", spilled" : ", in memory"));
        const int64_t lateness = 15;
        auto b = prepare_ok("id: hot\ntype: window\ninput: bids\nkey_by: [" + std::string(key_by) +
                            "]\nwindow: {type: sliding, size: " + std::to_string(shape.size) +
                            "ms, slide: " + std::to_string(shape.slide) +
                            "ms}\naggregate: {n: \"count(*)\", s: \"sum(price)\", mx: "
                            "\"max(price)\", f: \"first(name)\", d: \"count_distinct(name)\"}\n"
                            "allowed_lateness: " +
                            std::to_string(lateness) + "ms\nlate_output: late\n");
        ASSERT_TRUE(b->node);
        test::TempDir dir;
        Driver d(*b->node, spill ? dir.str() : std::string(), spill ? 1 : 0);
        std::map<int64_t, ModelWindow> model;  // by end
        int64_t watermark = std::numeric_limits<int64_t>::min();
        size_t late_rows = 0;
        size_t rows_out = 0;
        uint64_t x = 99;
        const auto rnd = [&x](uint64_t m) {
          x = x * 6364136223846793005ULL + 1442695040888963407ULL;
          return (x >> 33) % m;
        };
        int64_t clock = 1000;  // every row's time positive
        for (int step = 0; step < 150; ++step) {
          std::vector<Bid> rows;
          std::set<std::pair<int64_t, std::string>> dirty;  // (end, key)
          const size_t count = 1 + rnd(9);
          for (size_t i = 0; i < count; ++i) {
            clock += static_cast<int64_t>(rnd(3));
            Bid r;
            if (rnd(10) != 0) r.auction = static_cast<int64_t>(rnd(6));
            r.price = static_cast<double>(rnd(40)) / 4.0;
            r.name = "n" + std::to_string(rnd(4));
            r.ts = clock - static_cast<int64_t>(rnd(40));  // some behind the watermark
            if (rnd(8) == 0) r.ts -= 60;                   // some past the allowed lateness
            rows.push_back(r);
            const std::string key = std::string(key_by) == "name"
                                        ? *r.name
                                        : (r.auction ? std::to_string(*r.auction) : "null");
            bool any = false;
            bool kept = false;
            for (int64_t s = r.ts / shape.slide * shape.slide; s > r.ts - shape.size;
                 s -= shape.slide) {
              any = true;
              const int64_t end = s + shape.size;
              if (end - 1 + lateness <= watermark) continue;
              kept = true;
              auto [it, added] = model.try_emplace(end);
              if (added) it->second.fired = end - 1 <= watermark;
              Acc& a = it->second.keys[key];
              if (a.n == 0 || r.ts < a.first_ts) {
                a.first_ts = r.ts;
                a.first = *r.name;
              }
              a.max = a.n == 0 ? *r.price : std::max(a.max, *r.price);
              ++a.n;
              a.sum += *r.price;
              a.names.insert(*r.name);
              if (it->second.fired) dirty.emplace(end, key);
            }
            if (any && !kept) ++late_rows;
          }
          d.batch(rows);
          Lines want;
          for (const auto& [end, key] : dirty) {
            want.push_back(line(key, end - shape.size, end, model[end].keys[key]));
          }
          Lines got = d.take();
          rows_out += got.size();
          std::sort(want.begin(), want.end());
          std::sort(got.begin(), got.end());
          ASSERT_EQ(got, want) << "after batch " << step;
          if (step % 3 == 2) {
            watermark = std::max(watermark, clock - 25);
            d.watermark(watermark);
            want.clear();
            for (auto it = model.begin(); it != model.end();) {
              if (!it->second.fired && it->first - 1 <= watermark) {
                it->second.fired = true;
                for (const auto& [key, a] : it->second.keys) {
                  want.push_back(line(key, it->first - shape.size, it->first, a));
                }
              }
              if (it->first - 1 + lateness <= watermark) {
                it = model.erase(it);
              } else {
                ++it;
              }
            }
            got = d.take();
            rows_out += got.size();
            std::sort(want.begin(), want.end());
            std::sort(got.begin(), got.end());
            ASSERT_EQ(got, want) << "at watermark " << watermark;
          }
        }
        d.finish();
        Lines want;
        for (const auto& [end, w] : model) {
          if (w.fired) continue;
          for (const auto& [key, a] : w.keys) want.push_back(line(key, end - shape.size, end, a));
        }
        Lines got = d.take();
        rows_out += got.size();
        std::sort(want.begin(), want.end());
        std::sort(got.begin(), got.end());
        EXPECT_EQ(got, want);
        EXPECT_GT(rows_out, 100u);
        EXPECT_GT(late_rows, 0u);
        EXPECT_EQ(test::rows_of(d.out.side[1]).size(), late_rows);
        EXPECT_TRUE(d.ctx.errors.empty());
      }
    }
  }
}

// A sliding window merges the panes the watermark has passed ahead of the
// window's firing, a slice per batch (as many groups as the batch has rows,
// at least 512). With thousands of keys per pane the merge spans many
// batches and is still partial when the window fires. The newest pane is
// merged while rows still come to it (those to its merged groups are added
// to the merge as well); rows behind the watermark change older panes
// already merged, which makes the firing merge again. Every window's
// rows must equal a direct model's, in the order of a merge at the
// firing: the oldest pane's keys first, each pane's in their first
// arrival. Also spilled now and then (a merge ahead goes with a spill; a
// spilled window comes out in key order, so only its rows count).
TEST(Window, SlidingWindowsMergedAheadGiveEveryRowInFiringOrder) {
  struct Acc {
    int64_t n = 0;
    double sum = 0;
  };
  struct ModelPane {
    std::vector<std::string> order;  // keys, first arrival first
    std::map<std::string, Acc> keys;
  };
  constexpr int64_t kSize = 40, kSlide = 10;
  for (const char* key_by : {"auction", "name"}) {
    for (const bool spill : {false, true}) {
      SCOPED_TRACE(std::string(key_by) + (spill ? ", spilled now and then" : ", in memory"));
      auto b = prepare_ok("id: hot\ntype: window\ninput: bids\nkey_by: [" + std::string(key_by) +
                          "]\nwindow: {type: sliding, size: " + std::to_string(kSize) +
                          "ms, slide: " + std::to_string(kSlide) +
                          "ms}\naggregate: {n: \"count(*)\", s: \"sum(price)\"}\n");
      ASSERT_TRUE(b->node);
      test::TempDir dir;
      Driver d(*b->node, spill ? dir.str() : std::string(), spill ? size_t{600} << 10 : 0);
      std::map<int64_t, ModelPane> panes;  // by end
      std::set<int64_t> open;              // ends of windows that got rows and have not fired
      int64_t watermark = std::numeric_limits<int64_t>::min();
      uint64_t x = 7;
      const auto rnd = [&x](uint64_t m) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        return (x >> 33) % m;
      };
      const auto key_of = [&](const Bid& r) {
        if (std::string(key_by) == "name") return cell(Value::string(*r.name));
        return r.auction ? cell(Value::int64(*r.auction)) : cell(Value::null(TypeId::kInt64));
      };
      size_t late = 0;
      size_t windows_checked = 0;
      size_t rows_checked = 0;
      for (int64_t clock = 1000; clock < 1200; ++clock) {
        std::vector<Bid> rows;
        const size_t count = 150 + rnd(150);
        for (size_t i = 0; i < count; ++i) {
          Bid r;
          const uint64_t k = rnd(5000);
          if (rnd(50) != 0) r.auction = static_cast<int64_t>(k);
          r.name = "k" + std::to_string(k);
          r.price = static_cast<double>(rnd(40)) / 4.0;
          r.ts = clock - static_cast<int64_t>(rnd(4));
          // Now and then behind the watermark, into a pane merged ahead or
          // past every window of it (late).
          if (clock > 1010 && rnd(200) == 0) r.ts = watermark - static_cast<int64_t>(rnd(60));
          const int64_t pane_end = r.ts / kSlide * kSlide + kSlide;
          // Kept when the pane's last window is still open.
          if (pane_end - kSlide + kSize - 1 <= watermark) {
            ++late;
          } else {
            ModelPane& p = panes[pane_end];
            const std::string key = key_of(r);
            auto [it, added] = p.keys.try_emplace(key);
            if (added) p.order.push_back(key);
            ++it->second.n;
            it->second.sum += *r.price;
            for (int64_t end = pane_end - kSlide + kSize; end > r.ts; end -= kSlide) {
              if (end - 1 > watermark) open.insert(end);
            }
          }
          rows.push_back(std::move(r));
        }
        d.batch(rows);
        ASSERT_TRUE(d.take().empty());
        const int64_t next_watermark = clock - 4;
        if (next_watermark <= watermark) continue;
        watermark = next_watermark;
        d.watermark(watermark);
        Lines want;
        while (!open.empty() && *open.begin() - 1 <= watermark) {
          const int64_t end = *open.begin();
          open.erase(open.begin());
          std::vector<std::string> order;
          std::map<std::string, Acc> merged;
          for (auto it = panes.upper_bound(end - kSize); it != panes.end() && it->first <= end;
               ++it) {
            for (const std::string& key : it->second.order) {
              Acc& a = merged[key];
              if (a.n == 0) order.push_back(key);
              a.n += it->second.keys.at(key).n;
              a.sum += it->second.keys.at(key).sum;
            }
          }
          for (const std::string& key : order) {
            want.push_back(key + "|" + std::to_string(end - kSize) + "|" + std::to_string(end) +
                           "|" + std::to_string(merged[key].n) + "|" +
                           Value::float64(merged[key].sum).to_string());
          }
          ++windows_checked;
        }
        // Panes whose last window fired are gone.
        while (!panes.empty() && panes.begin()->first - kSlide + kSize - 1 <= watermark) {
          panes.erase(panes.begin());
        }
        Lines got = d.take();
        rows_checked += got.size();
        if (spill) {
          std::sort(want.begin(), want.end());
          std::sort(got.begin(), got.end());
        }
        ASSERT_EQ(got, want) << "at watermark " << watermark;
      }
      EXPECT_GT(windows_checked, 15u);
      EXPECT_GT(rows_checked, 40'000u);
      EXPECT_GT(late, 0u);
      EXPECT_EQ(d.ctx.errors.size(), late);  // late rows, reported
    }
  }
}

TEST(Window, SessionsCloseAfterTheGap) {
  auto b = prepare_ok(kSession);
  ASSERT_TRUE(b->node);
  Driver d(*b->node);
  d.batch({{1, 1.0, "a", 0}, {1, 2.0, "b", 5}, {2, 4.0, "x", 3}, {1, 8.0, "c", 15}});
  d.watermark(14);  // [0,15) for key 1 and [3,13) for key 2 are complete
  EXPECT_EQ(d.take(), (Lines{"2|3|13|1|4|x|x", "1|0|15|2|3|a|b"}));
  d.batch({{1, 16.0, "d", 24}});
  d.finish();
  EXPECT_EQ(d.take(), (Lines{"1|15|34|2|24|c|d"}));
  EXPECT_EQ(event_times(d.out.batches), (std::vector<int64_t>{12, 14, 33}));
}

TEST(Window, ARowBridgingTwoSessionsMergesThem) {
  auto b = prepare_ok(kSession);
  ASSERT_TRUE(b->node);
  {
    Driver d(*b->node);
    d.batch({{1, 1.0, "a", 0}, {1, 2.0, "b", 15}, {2, 4.0, "x", 16}});
    d.watermark(5);
    EXPECT_EQ(d.take(), Lines{});
    d.batch({{1, 4.0, "c", 7}});  // [7,17) overlaps [0,10) and [15,25)
    d.finish();
    EXPECT_EQ(d.take(), (Lines{"1|0|25|3|7|a|b", "2|16|26|1|4|x|x"}));
  }
  {
    // The same rows in one batch: the merge happens between rows whose
    // accumulators are folded in afterwards.
    Driver d(*b->node);
    d.batch({{1, 1.0, "a", 0},
             {1, 2.0, "b", 15},
             {2, 4.0, "x", 16},
             {1, 4.0, "c", 7},
             {1, 8.0, "d", 30},
             {1, 16.0, "e", 22}});
    d.finish();
    EXPECT_EQ(d.take(), (Lines{"2|16|26|1|4|x|x", "1|0|40|5|31|a|d"}));
  }
}

TEST(Window, SessionsOutOfOrderGiveTheInOrderResult) {
  auto b = prepare_ok(kSession);
  ASSERT_TRUE(b->node);
  std::vector<Bid> rows;
  for (int i = 0; i < 60; ++i) {
    // Keys in pairs of rows, 3 ms apart, with a 30 ms pause every 10 rows so
    // sessions break now and then; swapping neighbours delays a row by 3 ms.
    rows.push_back(
        {(i / 2) % 2, static_cast<double>(i), "n" + std::to_string(i), i * 3 + (i / 10) * 30});
  }
  std::vector<Bid> reversed_pairs = rows;
  for (size_t i = 0; i + 1 < reversed_pairs.size(); i += 2)
    std::swap(reversed_pairs[i], reversed_pairs[i + 1]);
  Lines a = run_with_bound(*b->node, rows, 20);
  Lines c = run_with_bound(*b->node, reversed_pairs, 20);
  std::sort(a.begin(), a.end());
  std::sort(c.begin(), c.end());
  EXPECT_GT(a.size(), 3u);
  EXPECT_EQ(a, c);
}

const char* kLate = R"Y(
id: hot
type: window
input: bids
key_by: [auction]
window: {type: tumbling, size: 10ms}
aggregate: {n: "count(*)", s: "sum(price)"}
allowed_lateness: 20ms
late_output: late_bids
)Y";

TEST(Window, AllowedLatenessReEmitsAnUpdatedRowAndRoutesTooLateRows) {
  auto b = prepare_ok(kLate);
  ASSERT_TRUE(b->node);
  auto side = b->node->side_outputs();
  ASSERT_EQ(side.size(), 1u);
  EXPECT_EQ(side[0].name, "late_bids");
  EXPECT_EQ(*side[0].schema, *bids_schema());
  EXPECT_EQ(side[0].location.to_string(), "t.yaml:9:14");
  Driver d(*b->node);
  d.batch({{1, 1.0, "a", 1}, {1, 2.0, "b", 2}});
  d.watermark(9);
  EXPECT_EQ(d.take(), (Lines{"1|0|10|2|3"}));
  d.batch({{1, 4.0, "c", 5}, {2, 8.0, "x", 8}, {1, 16.0, "d", 15}});  // late but kept
  EXPECT_EQ(d.take(), (Lines{"1|0|10|3|7", "2|0|10|1|8"}));
  d.watermark(28);  // [0,10) kept until watermark 29
  EXPECT_EQ(d.take(), (Lines{"1|10|20|1|16"}));
  d.batch({{1, 32.0, "e", 9}});
  EXPECT_EQ(d.take(), (Lines{"1|0|10|4|39"}));
  d.watermark(29);
  d.batch({{1, 64.0, "f", 3}, {3, 1.0, "g", 40}, {1, 128.0, "h", 19}});
  EXPECT_EQ(d.take(), (Lines{"1|10|20|2|144"}));
  ASSERT_EQ(d.out.side[1].size(), 1u);
  EXPECT_EQ(lines(d.out.side[1]), (Lines{"1|64|f|3"}));
  EXPECT_EQ(event_times(d.out.side[1]), (std::vector<int64_t>{3}));
  EXPECT_TRUE(d.ctx.errors.empty());
  d.finish();
  EXPECT_EQ(d.take(), (Lines{"3|40|50|1|1"}));
}

TEST(Window, TooLateRowsWithoutLateOutputAreCounted) {
  auto b = prepare_ok(kTumbling);
  ASSERT_TRUE(b->node);
  EXPECT_TRUE(b->node->side_outputs().empty());
  Driver d(*b->node);
  d.batch({{1, 1.0, "a", 1}});
  d.watermark(9);
  d.batch({{1, 1.0, "a", 9}, {1, 1.0, "a", 0}, {1, 1.0, "a", 10}});
  ASSERT_EQ(d.ctx.errors.size(), 2u);
  EXPECT_NE(d.ctx.errors[0].find("late row dropped"), std::string::npos) << d.ctx.errors[0];
  EXPECT_NE(d.ctx.errors[0].find("1970-01-01T00:00:00.009Z"), std::string::npos) << d.ctx.errors[0];
  d.finish();
  EXPECT_EQ(d.take(), (Lines{"1|0|10|1|1|1", "1|10|20|1|1|1"}));
}

TEST(Window, SessionLatenessReEmitsAndExtends) {
  auto b = prepare_ok(R"Y(
id: hot
type: window
input: bids
key_by: [auction]
window: {type: session, gap: 10ms}
aggregate: {n: "count(*)"}
allowed_lateness: 10ms
late_output: late
)Y");
  ASSERT_TRUE(b->node);
  Driver d(*b->node);
  d.batch({{1, 1.0, "a", 0}, {1, 1.0, "a", 6}});
  d.watermark(15);
  EXPECT_EQ(d.take(), (Lines{"1|0|16|2"}));
  d.batch({{1, 1.0, "b", 3}});  // [3,13) lies inside the fired session: re-emitted
  EXPECT_EQ(d.take(), (Lines{"1|0|16|3"}));
  d.batch({{1, 1.0, "c", 8}});  // extends it to [0,18): fires again at watermark 17
  EXPECT_EQ(d.take(), Lines{});
  d.watermark(17);
  EXPECT_EQ(d.take(), (Lines{"1|0|18|4"}));
  d.watermark(26);
  d.batch({{1, 1.0, "b", 9}});  // still kept until watermark 17 + 10
  EXPECT_EQ(d.take(), (Lines{"1|0|19|5"}));
  d.watermark(28);
  d.batch({{1, 1.0, "d", 4}, {1, 1.0, "e", 30}});
  EXPECT_EQ(lines(d.out.side[1]), (Lines{"1|1|d|4"}));
  d.finish();
  EXPECT_EQ(d.take(), (Lines{"1|30|40|1"}));
}

TEST(Window, RowsWithoutEventTimeAreAnError) {
  auto b = prepare_ok(kTumbling);
  ASSERT_TRUE(b->node);
  Driver d(*b->node);
  BatchBuilder bb(bids_schema());
  bb.append_row({Value::int64(1), Value::float64(1), Value::string("a"), Value::timestamp(1)});
  Status s = d.op->process(0, bb.finish(), d.out);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("no event time"), std::string::npos) << s.to_string();
}

TEST(Window, FilteredBatchesOnlyCountSelectedRows) {
  auto b = prepare_ok(kTumbling);
  ASSERT_TRUE(b->node);
  Driver d(*b->node);
  BatchPtr batch = bids({{1, 1.0, "a", 1}, {1, 2.0, "b", 2}, {1, 4.0, "c", 3}});
  ASSERT_TRUE(
      d.op->process(0, batch->with_selection(std::make_shared<const Selection>(Selection{0, 2})),
                    d.out)
          .ok());
  d.finish();
  EXPECT_EQ(d.take(), (Lines{"1|0|10|2|5|4"}));
}

// 100k keys, three rows each in three batches per window, with a budget so
// small that the operator spills many times; counts and sums must be exact.
void check_spill(const std::string& state_dir, int64_t keys) {
  auto b = prepare_ok(R"Y(
id: hot
type: window
input: bids
key_by: [auction]
window: {type: tumbling, size: 100ms}
aggregate: {n: "count(*)", s: "sum(price)", cd: "count_distinct(name)", mx: "max(name)"}
)Y");
  ASSERT_TRUE(b->node);
  Driver d(*b->node, state_dir, 256 << 10, 4096);
  const int64_t kKeys = keys;
  for (int round = 0; round < 3; ++round) {
    for (int64_t base = 0; base < kKeys; base += 5000) {
      std::vector<Bid> rows;
      for (int64_t k = base; k < std::min(kKeys, base + 5000); ++k) {
        rows.push_back(
            {k, static_cast<double>(round + 1), "r" + std::to_string(round % 2), 10 + round});
        if (k % 10000 == 0) rows.push_back({k, 0.5, "x", 150});  // the next window
      }
      d.batch(rows);
    }
  }
  d.watermark(99);
  std::vector<BatchPtr> fired(d.out.batches.begin(), d.out.batches.end());
  auto rows = test::rows_of(fired);
  ASSERT_EQ(rows.size(), static_cast<size_t>(kKeys));
  int64_t expect_key = 0;
  for (const auto& r : rows) {
    ASSERT_EQ(r[0].as_int64(), expect_key) << "keys come out in order, each once";
    ASSERT_EQ(r[3].as_int64(), 3);
    ASSERT_EQ(r[4].as_double(), 6.0);
    ASSERT_EQ(r[5].as_int64(), 2);
    ASSERT_EQ(r[6].as_string(), "r1");
    ++expect_key;
  }
  d.taken = d.out.batches.size();
  d.batch({{7, 1.0, "y", 160}});
  d.finish();
  Lines last = d.take();
  std::sort(last.begin(), last.end());
  EXPECT_EQ(last.size(), static_cast<size_t>((kKeys + 9999) / 10000 + 1));
  EXPECT_EQ(last.front(), "0|100|200|3|1.5|1|x");
  EXPECT_NE(std::find(last.begin(), last.end(), "7|100|200|1|1|1|y"), last.end());
}

TEST(Window, SpillsToRocksDbUnderATinyBudget) {
  test::TempDir dir;
  check_spill(dir.str(), test::kSanitized ? 30000 : 100000);
}

TEST(Window, SpillsToTheMemoryStoreUnderATinyBudget) { check_spill("", 20000); }

TEST(Window, LateUpdatesOfASpilledWindowMergeStoredPartials) {
  auto b = prepare_ok(kLate);
  ASSERT_TRUE(b->node);
  test::TempDir dir;
  Driver d(*b->node, dir.str(), 1);  // spills after every batch
  d.batch({{1, 1.0, "a", 1}, {2, 2.0, "b", 2}});
  d.batch({{1, 4.0, "a", 3}});
  d.watermark(9);
  EXPECT_EQ(d.take(), (Lines{"1|0|10|2|5", "2|0|10|1|2"}));
  d.batch({{1, 8.0, "c", 4}});
  EXPECT_EQ(d.take(), (Lines{"1|0|10|3|13"}));
  d.watermark(40);  // purges [0,10) from the store too
  d.batch({{1, 8.0, "c", 4}});
  EXPECT_EQ(d.take(), Lines{});
  EXPECT_EQ(lines(d.out.side[1]), (Lines{"1|8|c|4"}));
}

TEST(Window, Int64KeysWithNullsAndExtremesInMemoryAndSpilled) {
  // One int64 key: looked up by value, the null key apart.
  const std::vector<Bid> rows = {{5, 1.0, "a", 1},           {std::nullopt, 2.0, "b", 2},
                                 {-3, 3.0, "c", 3},          {INT64_MIN, 4.0, "d", 4},
                                 {INT64_MAX, 5.0, "e", 5},   {5, 6.0, "f", 6},
                                 {std::nullopt, 7.0, "g", 7}};
  auto b = prepare_ok(kTumbling);
  ASSERT_TRUE(b->node);
  const std::string lo = std::to_string(INT64_MIN);
  const std::string hi = std::to_string(INT64_MAX);
  {
    Driver d(*b->node);
    d.batch(rows);
    d.batch({{-3, 0.5, "h", 12}});
    d.finish();
    // In memory: first-arrival order.
    EXPECT_EQ(d.take(), (Lines{"5|0|10|2|7|6", "null|0|10|2|9|7", "-3|0|10|1|3|3",
                               lo + "|0|10|1|4|4", hi + "|0|10|1|5|5", "-3|10|20|1|0.5|0.5"}));
  }
  {
    test::TempDir dir;
    Driver d(*b->node, dir.str(), 1);  // spills after every batch
    d.batch(std::vector<Bid>(rows.begin(), rows.begin() + 4));
    d.batch(std::vector<Bid>(rows.begin() + 4, rows.end()));
    d.finish();
    // Spilled: merged partials in key order, null first.
    EXPECT_EQ(d.take(), (Lines{"null|0|10|2|9|7", lo + "|0|10|1|4|4", "-3|0|10|1|3|3",
                               "5|0|10|2|7|6", hi + "|0|10|1|5|5"}));
  }
}

// ---- validation -------------------------------------------------------------

void expect_error(const std::string& yaml, const std::string& location, const std::string& text,
                  SchemaPtr input = bids_schema(), bool has_event_time = true,
                  bool node_fails = true) {
  auto b = prepare(yaml, std::move(input), has_event_time);
  // Unknown options are reported after the factory ran (by the planner).
  if (node_fails) {
    EXPECT_EQ(b->node, nullptr);
  }
  EXPECT_FALSE(b->diags.empty());
  bool found = false;
  for (const auto& d : b->diags.items()) {
    std::string s = d.to_string();
    if (s.find(location) != std::string::npos && s.find(text) != std::string::npos) found = true;
  }
  EXPECT_TRUE(found) << "want " << location << " ... " << text << "\ngot:\n"
                     << b->diags.to_status().message();
}

std::string window_yaml(const std::string& key_by, const std::string& window,
                        const std::string& aggregate, const std::string& extra = "") {
  return "id: hot\ntype: window\ninput: bids\n" + key_by + "window: " + window +
         "\naggregate: " + aggregate + "\n" + extra;
}

TEST(Window, TwoIntKeysAreOneGroupWhetherTheirBatchHasNullsOrNot) {
  // Keys of int64/timestamp fields only are laid out at a fixed width in a
  // batch without null keys, cell by cell otherwise: the same bytes, so the
  // same groups, in memory and spilled.
  auto b = prepare_ok(window_yaml("key_by: [auction, ts]\n", "{type: tumbling, size: 10ms}",
                                  "{n: \"count(*)\", total: \"sum(price)\"}"));
  ASSERT_TRUE(b->node);
  const std::string lo = std::to_string(INT64_MIN);
  const std::vector<std::vector<Bid>> batches = {
      {{5, 1.0, "a", 1}, {5, 2.0, "b", 1}, {INT64_MIN, 3.0, "c", 2}, {7, 4.0, "d", 3}},
      {{5, 10.0, "e", 1}, {std::nullopt, 20.0, "f", 4}, {7, 30.0, "g", 3}, {5, 40.0, "h", 3}},
      {{7, 100.0, "i", 3}, {5, 200.0, "j", 1}, {INT64_MIN, 300.0, "k", 2}}};
  {
    Driver d(*b->node);
    for (const auto& rows : batches) d.batch(rows);
    d.finish();
    // In memory: first-arrival order.
    EXPECT_EQ(d.take(), (Lines{"5|1|0|10|4|213", lo + "|2|0|10|2|303", "7|3|0|10|3|134",
                               "null|4|0|10|1|20", "5|3|0|10|1|40"}));
  }
  {
    test::TempDir dir;
    Driver d(*b->node, dir.str(), 1);  // spills after every batch
    for (const auto& rows : batches) d.batch(rows);
    d.finish();
    // Spilled: merged partials in key order, null first.
    EXPECT_EQ(d.take(), (Lines{"null|4|0|10|1|20", lo + "|2|0|10|2|303", "5|1|0|10|4|213",
                               "5|3|0|10|1|40", "7|3|0|10|3|134"}));
  }
}

TEST(WindowValidation, NeedsEventTime) {
  expect_error(kTumbling, "t.yaml:2:1",
               "window 'hot' needs event time: set event_time on its source", bids_schema(), false);
}

TEST(WindowValidation, UnknownKeyField) {
  expect_error(window_yaml("key_by: [auction, bidder]\n", "{type: tumbling, size: 10s}",
                           "{n: \"count(*)\"}"),
               "t.yaml:4:19",
               "unknown key_by field 'bidder' (fields: {auction: int64, price: double, name: "
               "string, ts: timestamp})");
}

TEST(WindowValidation, WindowShape) {
  expect_error(window_yaml("", "{type: hopping, size: 10s}", "{n: \"count(*)\"}"), "t.yaml:4:16",
               "unknown window type 'hopping' (use tumbling, sliding or session)");
  expect_error(window_yaml("", "{type: tumbling}", "{n: \"count(*)\"}"), "t.yaml:4:9", "size");
  expect_error(window_yaml("", "{type: tumbling, size: 0s}", "{n: \"count(*)\"}"), "t.yaml:4:32",
               "window size must be positive, got 0");
  expect_error(window_yaml("", "{type: tumbling, size: -5s}", "{n: \"count(*)\"}"), "t.yaml:4:32",
               "window size must be positive, got -5s");
  expect_error(window_yaml("", "{type: sliding, size: 10s, slide: 0s}", "{n: \"count(*)\"}"),
               "t.yaml:4:43", "window slide must be positive");
  expect_error(window_yaml("", "{type: session, gap: -1s}", "{n: \"count(*)\"}"), "t.yaml:4:30",
               "window gap must be positive");
  expect_error(window_yaml("", "{type: tumbling, size: 10s, gap: 1s}", "{n: \"count(*)\"}"),
               "t.yaml:4", "gap");
  expect_error(window_yaml("", "10s", "{n: \"count(*)\"}"), "t.yaml:4:9", "'window' must be a map");
  expect_error("id: hot\ntype: window\ninput: bids\naggregate: {n: \"count(*)\"}\n", "t.yaml",
               "window");
  // A slide larger than the size, or not dividing it, is fine.
  auto b = prepare(window_yaml("", "{type: sliding, size: 10s, slide: 3s}", "{n: \"count(*)\"}"));
  EXPECT_TRUE(b->node) << b->diags.to_status().message();
}

TEST(WindowValidation, Aggregates) {
  const std::string w = "{type: tumbling, size: 10s}";
  expect_error(window_yaml("", w, "{n: \"median(price)\"}"), "t.yaml:5:17",
               "aggregate 'n': unknown aggregate function 'median'");
  expect_error(window_yaml("", w, "{n: \"sum(price, name)\"}"), "t.yaml:5:26",
               "sum takes one argument, got 2");
  expect_error(window_yaml("", w, "{n: \"avg()\"}"), "t.yaml:5:20",
               "avg takes one argument, got none");
  expect_error(window_yaml("", w, "{n: \"sum(*)\"}"), "t.yaml:5:21", "only count takes '*'");
  expect_error(window_yaml("", w, "{n: \"sum(name)\"}"), "t.yaml:5:21",
               "sum needs a numeric (int64 or double) argument, got string");
  expect_error(window_yaml("", w, "{n: \"avg(price > 1)\"}"), "t.yaml:5:21",
               "avg needs a numeric (int64 or double) argument, got bool");
  expect_error(window_yaml("", w, "{n: \"max(prise)\"}"), "t.yaml:5:21", "prise");
  expect_error(window_yaml("", w, "{n: \"max(price) + 1\"}"), "t.yaml:5:28", "unexpected text");
  expect_error(window_yaml("", w, "{n: \"price\"}"), "t.yaml:5:17", "expected function(argument)");
  expect_error(window_yaml("", w, "{}"), "t.yaml:5:12", "'aggregate' must be a map");
  // Arguments may be expressions with commas and parentheses inside.
  auto b = prepare(window_yaml("", w, "{n: \"sum(if(name = 'a,b', price * (1 + 2), 0))\"}"));
  EXPECT_TRUE(b->node) << b->diags.to_status().message();
}

TEST(WindowValidation, DuplicateOutputNames) {
  const std::string w = "{type: tumbling, size: 10s}";
  expect_error(window_yaml("key_by: [auction]\n", w, "{auction: \"count(*)\"}"), "t.yaml:6:22",
               "output field 'auction' is defined twice: aggregate 'auction' clashes with key "
               "field 'auction'");
  expect_error(window_yaml("", w, "{window_end: \"max(ts)\"}"), "t.yaml:5:25",
               "clashes with the window bound 'window_end'");
}

TEST(WindowValidation, LatenessAndLateOutput) {
  const std::string w = "{type: tumbling, size: 10s}";
  expect_error(window_yaml("", w, "{n: \"count(*)\"}", "allowed_lateness: -1s\n"), "t.yaml:6:19",
               "allowed_lateness must not be negative");
  expect_error(window_yaml("", w, "{n: \"count(*)\"}", "late_output: \"\"\n"), "t.yaml:6:14",
               "'late_output' must name a stream");
  expect_error(window_yaml("", w, "{n: \"count(*)\"}", "lateness: 1s\n"), "t.yaml:6",
               "unknown option", bids_schema(), true, false);
}

TEST(WindowValidation, ReportsEveryProblemAtOnce) {
  auto b = prepare(window_yaml("key_by: [nope]\n", "{type: tumbling, size: 0s}",
                               "{a: \"median(x)\", b: \"sum(name)\"}"));
  EXPECT_EQ(b->node, nullptr);
  EXPECT_EQ(b->diags.size(), 4u) << b->diags.to_status().message();
}

TEST(Window, DescribeSaysWhatItDoes) {
  auto b = prepare_ok(kLate);
  ASSERT_TRUE(b->node);
  EXPECT_EQ(b->node->describe(),
            "tumbling 10ms by auction: n = count(*), s = sum(price); lateness 20ms; late rows -> "
            "late_bids");
}

}  // namespace
}  // namespace df::operators
