// dedupe checkpoints and state export: snapshots at random points of an
// event-time run with expiry, restored into fresh instances on real RocksDB,
// continue exactly like an uninterrupted run; every stored entry round-trips
// through its JSON form byte for byte; bad entries and meta are refused with
// one sentence.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <random>

#include "engine/checkpoint/state_serde.h"
#include "operators/operators.h"
#include "operators/stateful.h"
#include "tests/support/operator_harness.h"
#include "tests/unit/operators/node_test_util.h"

namespace df::operators {
namespace {

namespace fs = std::filesystem;

SchemaPtr clicks_schema() {
  return make_schema({{"user", TypeId::kString}, {"page", TypeId::kString}, {"n", TypeId::kInt64}});
}

std::unique_ptr<test::BuiltNode> prepare(const std::string& yaml, const SchemaPtr& schema,
                                         bool event_time) {
  auto built = test::prepare_operator(yaml, "dedupe", {"clicks"}, {schema}, {event_time});
  EXPECT_TRUE(built->node) << built->diags.to_status().message();
  return built;
}

// Rows with or without event time (processing-time runs have none).
using test::LogOutput;

struct Step {
  BatchPtr batch;  // nullptr: a watermark
  int64_t wm = 0;
};

std::vector<Step> script(uint64_t seed, size_t steps) {
  std::mt19937_64 rng(seed);
  const char* users[] = {"ann", "bob", "cé", "dan", nullptr};
  const char* pages[] = {"/a", "/b", "/c"};
  std::vector<Step> out;
  int64_t front = 0;
  int64_t n = 0;
  for (size_t i = 0; i < steps; ++i) {
    front += static_cast<int64_t>(rng() % 900);
    if (rng() % 4 == 0) {
      out.push_back({nullptr, front - 1500});
      continue;
    }
    BatchBuilder b(clicks_schema());
    ColumnBuilder ts(TypeId::kInt64);
    const size_t rows = 1 + rng() % 8;
    for (size_t r = 0; r < rows; ++r) {
      const char* user = users[rng() % 5];
      b.append_row({user ? Value::string(user) : Value::null(TypeId::kString),
                    Value::string(pages[rng() % 3]), Value::int64(n++)});
      ts.append_int64(front - static_cast<int64_t>(rng() % 2000));
    }
    out.push_back({b.finish()->with_event_time(ts.finish()), 0});
  }
  return out;
}

Status apply(runtime::Operator& op, const Step& s, runtime::Output& out) {
  if (s.batch) return op.process(0, s.batch, out);
  return op.on_watermark(Watermark{s.wm}, out);
}

TEST(DedupeCheckpoint, ResumesFromRandomSnapshotsLikeAnUninterruptedRun) {
  auto b = prepare("{id: firsts, type: dedupe, input: clicks, key_by: [user, page], within: 3s}",
                   clicks_schema(), true);
  ASSERT_TRUE(b->node);
  for (uint64_t seed : {1u, 2u, 3u, 4u}) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    const auto steps = script(seed, 150);
    test::TempDir tmp;
    std::vector<std::string> expected;
    {
      test::FakeContext ctx;
      ctx.set_state_dir(tmp.file("plain"));
      LogOutput out;
      auto op = b->node->make_operator(0, 1);
      ASSERT_TRUE(op->open(ctx).ok());
      for (const auto& s : steps) ASSERT_TRUE(apply(*op, s, out).ok());
      ASSERT_TRUE(op->finish(out).ok());
      expected = out.log;
    }
    ASSERT_GT(expected.size(), 50u);

    std::mt19937_64 rng(seed + 100);
    std::vector<size_t> points = {0, steps.size()};
    for (int i = 0; i < 5; ++i) points.push_back(rng() % steps.size());
    std::sort(points.begin(), points.end());
    struct Snap {
      size_t after;
      size_t emitted;
      std::string dir;
      std::string meta;
    };
    std::vector<Snap> snaps;
    {
      test::FakeContext ctx;
      ctx.set_state_dir(tmp.file("run"));
      ctx.set_checkpointing(true);
      LogOutput out;
      auto op = b->node->make_operator(0, 1);
      ASSERT_TRUE(op->open(ctx).ok());
      size_t next = 0;
      for (size_t i = 0; i <= steps.size(); ++i) {
        for (; next < points.size() && points[next] == i; ++next) {
          Snap snap{i, out.log.size(), tmp.file("ckpt" + std::to_string(next)), {}};
          test::FakeSnapshotContext sctx(next + 1, snap.dir);
          ASSERT_TRUE(op->snapshot(sctx).ok());
          ASSERT_TRUE(sctx.wait().ok());
          snap.meta = sctx.meta();
          snaps.push_back(snap);
        }
        if (i < steps.size()) {
          ASSERT_TRUE(apply(*op, steps[i], out).ok());
        }
      }
      ASSERT_TRUE(op->finish(out).ok());
      EXPECT_EQ(out.log, expected) << "taking snapshots changed the output";
    }
    for (size_t k = 0; k < snaps.size(); ++k) {
      const Snap& snap = snaps[k];
      SCOPED_TRACE("snapshot after step " + std::to_string(snap.after));
      const std::string dir = tmp.file("resumed" + std::to_string(k));
      fs::copy(snap.dir, dir, fs::copy_options::recursive);
      test::FakeContext ctx;
      ctx.set_state_dir(dir);
      ctx.set_restored_meta(snap.meta);
      LogOutput out;
      auto op = b->node->make_operator(0, 1);
      ASSERT_TRUE(op->open(ctx).ok());
      for (size_t i = snap.after; i < steps.size(); ++i)
        ASSERT_TRUE(apply(*op, steps[i], out).ok());
      ASSERT_TRUE(op->finish(out).ok());
      std::vector<std::string> got(expected.begin(),
                                   expected.begin() + static_cast<long>(snap.emitted));
      got.insert(got.end(), out.log.begin(), out.log.end());
      EXPECT_EQ(got, expected);
      // The count of held keys came back too.
      auto* stats = dynamic_cast<StateStats*>(op.get());
      ASSERT_NE(stats, nullptr);
    }
  }
}

TEST(DedupeCheckpoint, ProcessingTimeKeysSurviveAResume) {
  auto b = prepare("{id: firsts, type: dedupe, input: clicks, key_by: user, within: 1h}",
                   clicks_schema(), false);
  ASSERT_TRUE(b->node);
  test::TempDir tmp;
  auto batch = [](const char* user, int64_t n) {
    BatchBuilder bb(clicks_schema());
    bb.append_row({Value::string(user), Value::string("/"), Value::int64(n)});
    return bb.finish();
  };
  test::FakeContext ctx;
  ctx.set_state_dir(tmp.file("run"));
  LogOutput out;
  auto op = b->node->make_operator(0, 1);
  ASSERT_TRUE(op->open(ctx).ok());
  ASSERT_TRUE(op->process(0, batch("ann", 1), out).ok());
  test::FakeSnapshotContext sctx(1, tmp.file("ckpt"));
  ASSERT_TRUE(op->snapshot(sctx).ok());
  auto meta = nlohmann::json::parse(sctx.meta());
  EXPECT_EQ(meta["entries"], 1);

  fs::copy(tmp.file("ckpt"), tmp.file("resumed"), fs::copy_options::recursive);
  test::FakeContext ctx2;
  ctx2.set_state_dir(tmp.file("resumed"));
  ctx2.set_restored_meta(sctx.meta());
  LogOutput out2;
  auto op2 = b->node->make_operator(0, 1);
  ASSERT_TRUE(op2->open(ctx2).ok());
  EXPECT_EQ(dynamic_cast<StateStats*>(op2.get())->state_entries(), 1u);
  ASSERT_TRUE(op2->process(0, batch("ann", 2), out2).ok());  // a duplicate: dropped
  ASSERT_TRUE(op2->process(0, batch("bob", 3), out2).ok());
  EXPECT_EQ(out2.log, (std::vector<std::string>{"bob|/|3"}));
}

// --- StateSerde -------------------------------------------------------------

SchemaPtr typed_schema() {
  return make_schema({{"b", TypeId::kBool},
                      {"i", TypeId::kInt64},
                      {"d", TypeId::kDouble},
                      {"s", TypeId::kString},
                      {"t", TypeId::kTimestamp}});
}

using test::entries_of;

TEST(DedupeState, EveryEntryRoundTripsThroughItsJsonByteForByte) {
  auto b =
      prepare("{id: firsts, type: dedupe, input: clicks, key_by: [b, i, d, s, t], within: 10s}",
              typed_schema(), true);
  ASSERT_TRUE(b->node);
  auto* serde = dynamic_cast<const checkpoint::StateSerde*>(b->node.get());
  ASSERT_NE(serde, nullptr);
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  BatchBuilder bb(typed_schema());
  ColumnBuilder ts(TypeId::kInt64);
  std::vector<std::vector<Value>> rows = {
      {Value::boolean(true), Value::int64(INT64_MIN), Value::float64(-0.0),
       Value::string("héllo ✓ 🚀"), Value::timestamp(1'795'000'000'123)},
      {Value::boolean(false), Value::int64(INT64_MAX), Value::float64(1.7976931348623157e308),
       Value::string(std::string("nul\0byte", 8)), Value::timestamp(-1)},
      {Value::null(TypeId::kBool), Value::null(TypeId::kInt64), Value::null(TypeId::kDouble),
       Value::null(TypeId::kString), Value::null(TypeId::kTimestamp)},
      {Value::boolean(true), Value::int64(0), Value::float64(nan), Value::string("\xff\xfe"),
       Value::timestamp(400'000'000'000'000)},  // year > 9999
      {Value::boolean(true), Value::int64(1), Value::float64(-inf), Value::string(""),
       Value::timestamp(0)},
      {Value::boolean(true), Value::int64(2), Value::float64(5e-324), Value::string("x"),
       Value::timestamp(0)},
      {Value::boolean(true), Value::int64(3), Value::float64(0.1), Value::string("y"),
       Value::timestamp(0)},
  };
  int64_t t = 1'000'000;
  for (const auto& r : rows) {
    bb.append_row(r);
    ts.append_int64(t += 7);
  }
  test::TempDir tmp;
  test::FakeContext ctx;
  ctx.set_state_dir(tmp.file("state"));
  LogOutput out;
  auto op = b->node->make_operator(0, 1);
  ASSERT_TRUE(op->open(ctx).ok());
  ASSERT_TRUE(op->process(0, bb.finish()->with_event_time(ts.finish()), out).ok());
  test::FakeSnapshotContext sctx(1, tmp.file("ckpt"));
  ASSERT_TRUE(op->snapshot(sctx).ok());
  ASSERT_TRUE(serde->check_meta(nlohmann::json::parse(sctx.meta())).ok());

  const auto stored = entries_of(tmp.file("ckpt"));
  ASSERT_EQ(stored.size(), rows.size());
  bool saw_unicode = false;
  for (const auto& [k, v] : stored) {
    auto j = serde->entry_to_json(k, v);
    ASSERT_TRUE(j.ok()) << j.status().to_string();
    const std::string text = j->dump();
    if (text.find("héllo ✓ 🚀") != std::string::npos) {
      saw_unicode = true;
      EXPECT_EQ((*j)["key"]["d"].dump(), "0.0");  // -0.0 keys as 0.0 (they are equal)
      EXPECT_EQ((*j)["key"]["i"], INT64_MIN);
      EXPECT_EQ((*j)["first_seen"], "1970-01-01T00:16:40.007Z");
      EXPECT_EQ((*j)["expires"], "1970-01-01T00:16:50.007Z");
    }
    std::string k2, v2;
    Status s = serde->entry_from_json(nlohmann::json::parse(text), k2, v2);
    ASSERT_TRUE(s.ok()) << s.to_string() << " for " << text;
    EXPECT_EQ(k2, k) << text;
    EXPECT_EQ(v2, v) << text;
  }
  EXPECT_TRUE(saw_unicode);
}

TEST(DedupeState, BadEntriesAndMetaAreRefusedWithOneSentence) {
  auto b = prepare("{id: firsts, type: dedupe, input: clicks, key_by: [user, n], within: 10s}",
                   clicks_schema(), true);
  ASSERT_TRUE(b->node);
  auto* serde = dynamic_cast<const checkpoint::StateSerde*>(b->node.get());
  ASSERT_NE(serde, nullptr);
  const auto good = nlohmann::json::parse(
      R"({"key": {"user": "ann", "n": 7}, "first_seen": "2026-11-21T10:00:00.000Z",
          "expires": "2026-11-21T10:00:10.000Z"})");
  std::string k, v;
  ASSERT_TRUE(serde->entry_from_json(good, k, v).ok());
  auto back = serde->entry_to_json(k, v);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, good);

  struct Case {
    const char* json;
    const char* expect;  // part of the message
  };
  const Case cases[] = {
      {R"([1])", "must be a JSON object"},
      {R"({"key": {"user": "ann", "n": 7}, "first_seen": null, "expires": null})",
       "'expires' must be a timestamp"},
      {R"({"key": {"user": "ann", "n": 7}, "first_seen": null})", "missing 'expires'"},
      {R"({"key": {"user": "ann", "n": 7}, "first_seen": null, "expires": 1, "x": 2})",
       "unknown field 'x'"},
      {R"({"key": {"user": "ann"}, "first_seen": null, "expires": 1})", "missing field 'n'"},
      {R"({"key": {"user": "ann", "n": 7, "page": "/"}, "first_seen": null, "expires": 1})",
       "unknown field 'page'"},
      {R"({"key": {"user": 5, "n": 7}, "first_seen": null, "expires": 1})", "field 'user'"},
      {R"({"key": {"user": "a", "n": 1.5}, "first_seen": null, "expires": 1})", "field 'n'"},
      {R"({"key": {"user": "a", "n": 1}, "first_seen": "yesterday", "expires": 1})",
       "'first_seen' must be an RFC 3339 timestamp"},
  };
  for (const auto& c : cases) {
    Status s = serde->entry_from_json(nlohmann::json::parse(c.json), k, v);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << c.json;
    EXPECT_NE(s.message().find(c.expect), std::string::npos) << c.json << " -> " << s.message();
    EXPECT_EQ(s.message().find('\n'), std::string::npos) << s.message();
  }
  // Bytes that are not this operator's layout.
  EXPECT_EQ(serde->entry_to_json("garbage", "x").status().code(), StatusCode::kDataError);
  std::string bad_value = v.substr(0, 5);
  EXPECT_EQ(serde->entry_to_json(k, bad_value).status().code(), StatusCode::kDataError);
  EXPECT_EQ(serde->entry_to_json(k, v + "z").status().code(), StatusCode::kDataError);

  EXPECT_TRUE(
      serde->check_meta(nlohmann::json::parse(R"({"entries": 3, "next_purge": null})")).ok());
  EXPECT_TRUE(serde
                  ->check_meta(nlohmann::json::parse(
                      R"({"entries": 3, "next_purge": "2026-11-21T10:00:00.000Z"})"))
                  .ok());
  for (const char* meta : {R"({"entries": -1, "next_purge": null})", R"({"entries": 3})",
                           R"({"entries": 3, "next_purge": null, "more": 1})",
                           R"({"entries": 3, "next_purge": "soon"})", R"([])"}) {
    Status s = serde->check_meta(nlohmann::json::parse(meta));
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << meta;
  }
}

// --- Measurement (not run by default) ------------------------------------------
//   build-join/bin/operators_state_test --gtest_also_run_disabled_tests --gtest_filter='*Measure*'
// Dedupe over 1M distinct int64 keys on RocksDB, then 1M rows that are half
// duplicates; snapshots of the 1M-key state; a resume. Prints the numbers.

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

uint64_t dir_bytes(const std::string& dir) {
  uint64_t n = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (e.is_regular_file()) n += e.file_size();
  }
  return n;
}

TEST(DedupeCheckpoint, DISABLED_MeasureOneMillionKeys) {
  auto schema = make_schema({{"id", TypeId::kInt64}, {"v", TypeId::kDouble}});
  auto b =
      prepare("{id: firsts, type: dedupe, input: clicks, key_by: id, within: 1h}", schema, true);
  ASSERT_TRUE(b->node);
  constexpr int64_t kKeys = 1'000'000;
  constexpr int64_t kBatch = 1024;
  auto make_batches = [&](int64_t first, int64_t count, int64_t key_mod) {
    std::vector<BatchPtr> out;
    for (int64_t s = 0; s < count; s += kBatch) {
      BatchBuilder bb(schema);
      ColumnBuilder ts(TypeId::kInt64);
      for (int64_t i = s; i < std::min(count, s + kBatch); ++i) {
        const int64_t key = ((first + i) * 2654435761) % key_mod;  // scattered order
        bb.append_row({Value::int64(key), Value::float64(static_cast<double>(i))});
        ts.append_int64(1'000'000 + i);
      }
      out.push_back(bb.finish()->with_event_time(ts.finish()));
    }
    return out;
  };
  const auto distinct = make_batches(0, kKeys, kKeys);
  const auto mixed = make_batches(kKeys / 2, kKeys, 2 * kKeys);  // about half seen before

  test::TempDir tmp;
  test::FakeContext ctx;
  ctx.set_state_dir(tmp.file("state"));
  test::CollectOutput sink;
  auto op = b->node->make_operator(0, 1);
  ASSERT_TRUE(op->open(ctx).ok());
  auto t0 = std::chrono::steady_clock::now();
  for (const auto& batch : distinct) {
    ASSERT_TRUE(op->process(0, batch, sink).ok());
    sink.batches.clear();
  }
  const double load_s = seconds_since(t0);

  t0 = std::chrono::steady_clock::now();
  test::FakeSnapshotContext s1(1, tmp.file("ckpt1"));
  ASSERT_TRUE(op->snapshot(s1).ok());
  const double snap1_s = seconds_since(t0);

  // 1M more rows with a snapshot every 100k rows.
  t0 = std::chrono::steady_clock::now();
  double snaps_s = 0;
  int snaps = 0;
  for (size_t i = 0; i < mixed.size(); ++i) {
    ASSERT_TRUE(op->process(0, mixed[i], sink).ok());
    sink.batches.clear();
    if ((i + 1) % 98 == 0) {
      auto ts = std::chrono::steady_clock::now();
      test::FakeSnapshotContext s(2 + snaps, tmp.file("ckpt-n" + std::to_string(snaps)));
      ASSERT_TRUE(op->snapshot(s).ok());
      snaps_s += seconds_since(ts);
      ++snaps;
    }
  }
  const double mixed_s = seconds_since(t0);
  const size_t held = dynamic_cast<StateStats*>(op.get())->state_entries();
  op.reset();

  t0 = std::chrono::steady_clock::now();
  fs::copy(tmp.file("ckpt1"), tmp.file("resumed"), fs::copy_options::recursive);
  test::FakeContext ctx2;
  ctx2.set_state_dir(tmp.file("resumed"));
  ctx2.set_restored_meta(s1.meta());
  auto op2 = b->node->make_operator(0, 1);
  ASSERT_TRUE(op2->open(ctx2).ok());
  const double resume_s = seconds_since(t0);
  ASSERT_TRUE(op2->process(0, distinct[0], sink).ok());
  EXPECT_TRUE(sink.batches.empty());  // all duplicates after the resume

  std::printf(
      "dedupe 1M distinct keys: %.0f rows/s (%.2f s)\n"
      "snapshot of 1M keys: %.3f s, %.1f MB of files (hard links)\n"
      "1M rows, ~half duplicates, with %d snapshots: %.0f rows/s (%.2f s; snapshots %.3f s, "
      "%.1f ms each); %zu keys held\n"
      "resume (copy files + open): %.3f s\n",
      kKeys / load_s, load_s, snap1_s, dir_bytes(tmp.file("ckpt1")) / 1e6, snaps, kKeys / mixed_s,
      mixed_s, snaps_s, snaps ? 1000 * snaps_s / snaps : 0.0, held, resume_s);
}

}  // namespace
}  // namespace df::operators
