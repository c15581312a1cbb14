// The nexmark source: determinism, the 1:3:46 mix, id spaces, disjoint and
// complete parallel slices, resuming from a snapshot, option errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "connectors/nexmark_generator.h"
#include "connectors/nexmark_source.h"
#include "tests/support/operator_harness.h"

namespace df::connectors {
namespace {

using runtime::NodeRole;
using test::CollectOutput;
using test::FakeContext;
using test::map;
using test::rows_of;
using test::scalar;

ConfigValue nexmark_node(const std::string& table, std::vector<ConfigValue::Entry> extra = {}) {
  std::vector<ConfigValue::Entry> e = {
      {"id", scalar("src")}, {"type", scalar("nexmark")}, {"table", scalar(table)}};
  for (auto& x : extra) e.push_back(std::move(x));
  return map(std::move(e), 2, 5);
}

runtime::PreparedNodePtr prepare_ok(const ConfigValue& cfg) {
  Diagnostics diags;
  auto node = test::prepare(NexmarkSourceFactory(), NodeRole::kSource, cfg, diags);
  EXPECT_TRUE(diags.empty()) << diags.to_status().message();
  return node;
}

// Every row of `parallelism` subtasks, each row as its values' text.
std::vector<std::vector<Value>> generate(const runtime::PreparedNode& node, int parallelism,
                                         size_t batch = 1024) {
  std::vector<std::vector<Value>> rows;
  for (int k = 0; k < parallelism; ++k) {
    FakeContext ctx(k, parallelism, batch);
    CollectOutput out;
    EXPECT_TRUE(test::run_source(*node.make_source(k, parallelism), ctx, out).ok());
    for (const auto& b : out.batches) EXPECT_LE(b->active_rows(), batch);
    for (auto& row : rows_of(out.batches)) rows.push_back(std::move(row));
  }
  return rows;
}

std::vector<std::string> as_sorted_text(const std::vector<std::vector<Value>>& rows) {
  std::vector<std::string> out;
  for (const auto& row : rows) {
    std::string line;
    for (const auto& v : row) line += v.to_string() + "|";
    out.push_back(std::move(line));
  }
  std::sort(out.begin(), out.end());
  return out;
}

TEST(Nexmark, SameSeedSameEventsForAnyBatchSizeDifferentSeedDifferentEvents) {
  auto a = prepare_ok(nexmark_node("bid", {{"events", scalar("5000")}, {"seed", scalar("7")}}));
  auto b = prepare_ok(nexmark_node("bid", {{"events", scalar("5000")}, {"seed", scalar("8")}}));
  auto first = generate(*a, 1, 1024);
  auto again = generate(*a, 1, 37);
  ASSERT_EQ(first.size(), again.size());
  for (size_t i = 0; i < first.size(); ++i) {
    for (size_t f = 0; f < first[i].size(); ++f) {
      ASSERT_EQ(first[i][f].to_string(), again[i][f].to_string()) << "row " << i << " field " << f;
    }
  }
  EXPECT_NE(as_sorted_text(first), as_sorted_text(generate(*b, 1)));
}

TEST(Nexmark, TablesPartitionTheStreamOneToThreeToFortySix) {
  const std::vector<ConfigValue::Entry> opts = {{"events", scalar("50000")}};
  auto persons = generate(*prepare_ok(nexmark_node("person", opts)), 1);
  auto auctions = generate(*prepare_ok(nexmark_node("auction", opts)), 1);
  auto bids = generate(*prepare_ok(nexmark_node("bid", opts)), 1);
  EXPECT_EQ(persons.size(), 1000u);
  EXPECT_EQ(auctions.size(), 3000u);
  EXPECT_EQ(bids.size(), 46000u);
}

TEST(Nexmark, IdSpacesTimestampsAndHotRatios) {
  const uint64_t events = 100000, rate = 1000;
  const std::vector<ConfigValue::Entry> opts = {{"events", scalar(std::to_string(events))},
                                                {"event_rate", scalar(std::to_string(rate))}};
  const int64_t base = nexmark::kDefaultBaseTimeMs;
  const int64_t last_ts = base + static_cast<int64_t>((events - 1) * 1000 / rate);
  auto persons = generate(*prepare_ok(nexmark_node("person", opts)), 1);
  // Person ids 1000, 1001, ... in order; person n happens at event 50n.
  for (size_t i = 0; i < persons.size(); ++i) {
    ASSERT_EQ(persons[i][0].as_int64(), 1000 + static_cast<int64_t>(i));
    ASSERT_EQ(persons[i][6].as_int64(), base + static_cast<int64_t>(i * 50 * 1000 / rate));
    EXPECT_TRUE(persons[i][5].to_string().find_first_of("ACIOWZ") != std::string::npos);
  }
  auto auctions = generate(*prepare_ok(nexmark_node("auction", opts)), 1);
  const int64_t max_person = 1000 + static_cast<int64_t>(persons.size()) - 1;
  int hot_sellers = 0;
  for (size_t i = 0; i < auctions.size(); ++i) {
    const auto& a = auctions[i];
    ASSERT_EQ(a[0].as_int64(), 1000 + static_cast<int64_t>(i));
    EXPECT_LE(a[3].as_int64(), a[4].as_int64());  // initial_bid <= reserve
    EXPECT_GE(a[3].as_int64(), 1);
    EXPECT_GT(a[6].as_int64(), a[5].as_int64());  // expires > date_time
    EXPECT_GE(a[7].as_int64(), 1000);             // seller
    EXPECT_LE(a[7].as_int64(), max_person + nexmark::kPersonIdLead);
    EXPECT_GE(a[8].as_int64(), 10);  // category
    EXPECT_LE(a[8].as_int64(), 14);
    if ((a[7].as_int64() - 1000) % 100 == 0) ++hot_sellers;
  }
  // 3 in 4 auctions go to the hot seller (plus the cold ones that hit it).
  EXPECT_GT(hot_sellers, static_cast<int>(auctions.size() * 0.70));
  EXPECT_LT(hot_sellers, static_cast<int>(auctions.size() * 0.80));
  auto bids = generate(*prepare_ok(nexmark_node("bid", opts)), 1);
  const int64_t max_auction = 1000 + static_cast<int64_t>(auctions.size()) - 1;
  int hot_auctions = 0, hot_bidders = 0;
  int64_t prev_ts = base;
  for (const auto& b : bids) {
    EXPECT_GE(b[0].as_int64(), 1000);
    EXPECT_LE(b[0].as_int64(), max_auction + nexmark::kAuctionIdLead);
    EXPECT_GE(b[1].as_int64(), 1000);
    EXPECT_LE(b[1].as_int64(), max_person + nexmark::kPersonIdLead);
    EXPECT_GE(b[2].as_int64(), 1);
    EXPECT_LE(b[2].as_int64(), 100'000'000);
    EXPECT_GE(b[5].as_int64(), prev_ts);  // in event-time order
    EXPECT_LE(b[5].as_int64(), last_ts);
    prev_ts = b[5].as_int64();
    if ((b[0].as_int64() - 1000) % 100 == 0) ++hot_auctions;
    if ((b[1].as_int64() - 1000) % 100 == 1) ++hot_bidders;
  }
  EXPECT_GT(hot_auctions, static_cast<int>(bids.size() * 0.45));
  EXPECT_LT(hot_auctions, static_cast<int>(bids.size() * 0.56));
  EXPECT_GT(hot_bidders, static_cast<int>(bids.size() * 0.70));
  EXPECT_LT(hot_bidders, static_cast<int>(bids.size() * 0.80));
  // The baselines' generator gives the source's events.
  nexmark::NexmarkGenerator gen({0, rate, base});
  nexmark::Bid bid;
  gen.bid(49, bid);
  EXPECT_EQ(bids[45][0].as_int64(), bid.auction);
  EXPECT_EQ(bids[45][2].as_int64(), bid.price);
  EXPECT_EQ(bids[45][6].to_string(), bid.extra);
}

// The generator's event `n` of `table` as a row of the source's schema.
std::vector<Value> expected_row(const nexmark::NexmarkGenerator& gen, const std::string& table,
                                uint64_t n) {
  auto str = [](std::string_view v) { return Value::string(std::string(v)); };
  if (table == "person") {
    nexmark::Person p;
    gen.person(n, p);
    return {Value::int64(p.id), str(p.name),  str(p.email_address),          str(p.credit_card),
            str(p.city),        str(p.state), Value::timestamp(p.date_time), str(p.extra)};
  }
  if (table == "auction") {
    nexmark::Auction a;
    gen.auction(n, a);
    return {Value::int64(a.id),          str(a.item_name),
            str(a.description),          Value::int64(a.initial_bid),
            Value::int64(a.reserve),     Value::timestamp(a.date_time),
            Value::timestamp(a.expires), Value::int64(a.seller),
            Value::int64(a.category),    str(a.extra)};
  }
  nexmark::Bid b;
  gen.bid(n, b);
  return {Value::int64(b.auction),
          Value::int64(b.bidder),
          Value::int64(b.price),
          str(b.channel),
          str(b.url),
          Value::timestamp(b.date_time),
          str(b.extra)};
}

// Every field of every row, batch after batch (columns written straight and
// string arenas reused from earlier batches), is the generator's value for
// the subtask's events in order.
TEST(Nexmark, EveryFieldIsTheGeneratorsInEventOrder) {
  const uint64_t events = 3001;
  const nexmark::NexmarkGenerator gen({3, nexmark::kDefaultEventRate, nexmark::kDefaultBaseTimeMs});
  for (const char* table : {"person", "auction", "bid"}) {
    auto node = prepare_ok(
        nexmark_node(table, {{"events", scalar(std::to_string(events))}, {"seed", scalar("3")}}));
    for (const auto& [parallelism, batch] : {std::pair{1, size_t{1024}}, {3, size_t{37}}}) {
      for (int k = 0; k < parallelism; ++k) {
        FakeContext ctx(k, parallelism, batch);
        CollectOutput out;
        ASSERT_TRUE(test::run_source(*node->make_source(k, parallelism), ctx, out).ok());
        const auto rows = rows_of(out.batches);
        size_t i = 0;
        for (uint64_t n = static_cast<uint64_t>(k); n < events; n += parallelism) {
          const auto kind = nexmark::event_kind(n);
          if (table != std::string(kind == nexmark::EventKind::kPerson    ? "person"
                                   : kind == nexmark::EventKind::kAuction ? "auction"
                                                                          : "bid")) {
            continue;
          }
          ASSERT_LT(i, rows.size()) << table << " subtask " << k;
          const std::vector<Value> want = expected_row(gen, table, n);
          ASSERT_EQ(rows[i].size(), want.size());
          for (size_t f = 0; f < want.size(); ++f) {
            ASSERT_EQ(rows[i][f].type(), want[f].type())
                << table << " event " << n << " field " << f;
            ASSERT_EQ(rows[i][f].to_string(), want[f].to_string())
                << table << " event " << n << " field " << f;
          }
          ++i;
        }
        EXPECT_EQ(i, rows.size()) << table << " subtask " << k;
      }
    }
  }
}

TEST(Nexmark, AProjectedSourceFillsWhatIsReadAndLeavesOtherStringsNull) {
  auto node = prepare_ok(nexmark_node("bid", {{"events", scalar("5000")}}));
  // bid: auction, bidder, price, channel, url, date_time, extra.
  const runtime::FieldMask read = {true, false, true, false, true, true, false};
  auto projected = node->project(read);
  ASSERT_NE(projected, nullptr);
  EXPECT_EQ(projected->output_schema()->to_string(), node->output_schema()->to_string());
  EXPECT_NE(projected->describe().find("; read downstream: auction, price, url, date_time"),
            std::string::npos)
      << projected->describe();
  const auto all = generate(*node, 1, 300);
  const auto some = generate(*projected, 1, 300);
  ASSERT_EQ(some.size(), all.size());
  ASSERT_GT(all.size(), 4000u);
  for (size_t i = 0; i < all.size(); ++i) {
    for (size_t f = 0; f < read.size(); ++f) {
      if (read[f]) {
        ASSERT_EQ(some[i][f].to_string(), all[i][f].to_string()) << "row " << i << " field " << f;
      } else if (f == 3 || f == 6) {
        ASSERT_TRUE(some[i][f].is_null()) << "row " << i << " field " << f;
        ASSERT_FALSE(all[i][f].is_null()) << "row " << i << " field " << f;
      }
    }
  }
  // Every string read: nothing to skip, the source stays as it is.
  EXPECT_EQ(node->project({true, false, false, true, true, false, true}), nullptr);
}

TEST(Nexmark, ParallelSubtasksGenerateDisjointCompleteSlices) {
  for (const char* table : {"person", "auction", "bid"}) {
    auto node = prepare_ok(nexmark_node(table, {{"events", scalar("20011")}}));
    auto one = as_sorted_text(generate(*node, 1));
    ASSERT_FALSE(one.empty());
    EXPECT_EQ(as_sorted_text(generate(*node, 3)), one) << table;
    EXPECT_EQ(as_sorted_text(generate(*node, 7, 100)), one) << table;
  }
}

TEST(Nexmark, ResumesAfterTheSnapshottedEvent) {
  auto node = prepare_ok(nexmark_node("bid", {{"events", scalar("10000")}}));
  const auto all = rows_of([&] {
    FakeContext ctx(0, 1, 256);
    CollectOutput out;
    EXPECT_TRUE(test::run_source(*node->make_source(0, 1), ctx, out).ok());
    return out.batches;
  }());
  FakeContext ctx(0, 1, 256);
  CollectOutput before;
  auto src = node->make_source(0, 1);
  ASSERT_TRUE(src->open(ctx).ok());
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(src->produce(before).ok());
  test::FakeSnapshotContext snap(1, "unused-files-dir");  // a source writes no files
  ASSERT_TRUE(src->snapshot(snap).ok());
  FakeContext resumed_ctx(0, 1, 256);
  resumed_ctx.set_restored_meta(snap.meta());
  CollectOutput after;
  ASSERT_TRUE(test::run_source(*node->make_source(0, 1), resumed_ctx, after).ok());
  auto rows = rows_of(before.batches);
  for (auto& r : rows_of(after.batches)) rows.push_back(std::move(r));
  EXPECT_EQ(as_sorted_text(rows), as_sorted_text(all));
}

TEST(NexmarkOptions, BadOptionsAreReportedAtTheirLine) {
  auto cfg = map({{"id", scalar("src")},
                  {"type", scalar("nexmark")},
                  {"table", scalar("trade", 3, 12)},
                  {"events", scalar("-5", 4, 13)},
                  {"event_rate", scalar("0", 5, 17)},
                  {"start_time", scalar("yesterday", 6, 17)},
                  {"tables", scalar("[bid]", 7, 13)}},
                 2, 5);
  Diagnostics diags;
  EXPECT_FALSE(test::prepare(NexmarkSourceFactory(), NodeRole::kSource, cfg, diags));
  const std::string all = diags.to_status().message();
  for (const char* want :
       {"pipe.yaml:3:12: source 'src' (nexmark) option 'table': must be person, auction or bid, "
        "got 'trade'",
        "pipe.yaml:4:13: source 'src' (nexmark) option 'events': must not be negative",
        "pipe.yaml:5:17: source 'src' (nexmark) option 'event_rate': must be a number of events "
        "per second > 0",
        "pipe.yaml:6:17: source 'src' (nexmark) option 'start_time': expected a timestamp",
        "pipe.yaml:7:13: unknown option 'tables' for source 'src' (nexmark)"}) {
    EXPECT_NE(all.find(want), std::string::npos) << "missing: " << want << "\nin: " << all;
  }
  Diagnostics d2;
  auto no_table = map({{"id", scalar("src")}, {"type", scalar("nexmark")}}, 2, 5);
  EXPECT_FALSE(test::prepare(NexmarkSourceFactory(), NodeRole::kSource, no_table, d2));
  EXPECT_EQ(d2.to_status().message(), "pipe.yaml:2:5: source 'src' (nexmark) needs 'table'");
}

}  // namespace
}  // namespace df::connectors
