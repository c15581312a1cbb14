// Source positions: a source snapshotted at arbitrary points and resumed in a
// new instance from the snapshot's meta emits exactly the rows an
// uninterrupted read emits, none twice (real files, real snapshot contexts).
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <set>

#include "connectors/file_source.h"
#include "connectors/generator_source.h"
#include "tests/support/operator_harness.h"

namespace df::connectors {
namespace {

using runtime::NodeRole;
using runtime::SourceProgress;
using test::CollectOutput;
using test::FakeContext;
using test::FakeSnapshotContext;
using test::map;
using test::rows_of;
using test::scalar;
using test::TempDir;

// Rows as text ("1|abc"), so a mismatch prints readably.
using Rows = std::vector<std::string>;
Rows text_rows(const std::vector<BatchPtr>& batches) {
  Rows out;
  for (const auto& row : rows_of(batches)) {
    std::string line;
    for (const Value& v : row) line += (line.empty() ? "" : "|") + v.to_string();
    out.push_back(std::move(line));
  }
  return out;
}
// Equal, or the sizes and the first difference.
::testing::AssertionResult same_rows(const Rows& got, const Rows& want) {
  if (got == want) return ::testing::AssertionSuccess();
  size_t i = 0;
  while (i < got.size() && i < want.size() && got[i] == want[i]) ++i;
  return ::testing::AssertionFailure()
         << "got " << got.size() << " rows, want " << want.size() << "; first difference at row "
         << i << ": got '" << (i < got.size() ? got[i] : "<end>") << "', want '"
         << (i < want.size() ? want[i] : "<end>") << "'";
}
int64_t id_of(const std::string& row) { return std::stoll(row.substr(0, row.find('|'))); }

ConfigValue file_source(const std::string& path, const std::string& format,
                        std::vector<ConfigValue::Entry> extra = {}) {
  std::vector<ConfigValue::Entry> e = {
      {"id", scalar("in")},
      {"type", scalar("file")},
      {"path", scalar(path)},
      {"format", scalar(format)},
      {"schema", map({{"id", scalar("int64")}, {"name", scalar("string")}})},
  };
  for (auto& x : extra) e.push_back(std::move(x));
  return map(std::move(e));
}

runtime::PreparedNodePtr prepare_ok(const runtime::NodeFactory& f, const ConfigValue& cfg) {
  Diagnostics diags;
  auto node = test::prepare(f, NodeRole::kSource, cfg, diags);
  EXPECT_TRUE(diags.empty()) << diags.to_status().message();
  return node;
}

// Everything subtask k emits in one uninterrupted run.
Rows read_all(const runtime::PreparedNode& node, int k, int par, size_t batch) {
  FakeContext ctx(k, par, batch);
  CollectOutput out;
  EXPECT_TRUE(test::run_source(*node.make_source(k, par), ctx, out).ok());
  return text_rows(out.batches);
}

struct Attempt {
  Rows rows;               // emitted before the snapshot (the checkpoint covers them)
  std::string meta;        // the snapshot's
  bool exhausted = false;  // before the snapshot: the snapshot covers the end
  Status status;
};

// One attempt of subtask k: a new instance resumed from `meta`, `calls`
// produce() calls (fewer when exhausted), a snapshot, then `lost_calls` more
// calls whose rows are thrown away (the crash loses them), and no close().
Attempt attempt(const runtime::PreparedNode& node, int k, int par, size_t batch,
                const std::optional<std::string>& meta, int calls, int lost_calls,
                uint64_t checkpoint_id = 1) {
  Attempt a;
  FakeContext ctx(k, par, batch);
  ctx.set_checkpointing(true);
  ctx.set_restored_meta(meta);
  auto src = node.make_source(k, par);
  a.status = src->open(ctx);
  if (!a.status.ok()) return a;
  CollectOutput out;
  auto drive = [&](int n) {
    for (int i = 0; i < n && !a.exhausted; ++i) {
      auto p = src->produce(out);
      if (!p.ok()) {
        a.status = p.status();
        return;
      }
      if (p->state == SourceProgress::State::kExhausted) a.exhausted = true;
    }
  };
  drive(calls);
  if (!a.status.ok()) return a;
  TempDir snap_dir;
  FakeSnapshotContext snap(checkpoint_id, snap_dir.file("snap"));
  EXPECT_TRUE(src->snapshot(snap).ok());
  EXPECT_TRUE(snap.wait(std::chrono::seconds(10)).ok());
  a.meta = snap.meta();
  a.rows = text_rows(out.batches);
  out.batches.clear();
  // Emitted after the barrier: lost with the crash. (The source may end here;
  // the snapshot does not cover that.)
  bool exhausted = a.exhausted;
  drive(lost_calls);
  a.exhausted = exhausted;
  return a;
}

// Subtask k read in attempts of random length, each resumed from the previous
// snapshot; returns the rows the checkpoints cover, in order.
Rows read_with_crashes(const runtime::PreparedNode& node, int k, int par, size_t batch,
                       std::mt19937& rng, int* attempts = nullptr) {
  Rows rows;
  std::optional<std::string> meta;
  std::uniform_int_distribution<int> calls(0, 4);
  for (int n = 0; n < 10000; ++n) {
    Attempt a = attempt(node, k, par, batch, meta, calls(rng), calls(rng));
    EXPECT_TRUE(a.status.ok()) << a.status.message();
    if (!a.status.ok()) break;
    rows.insert(rows.end(), a.rows.begin(), a.rows.end());
    meta = a.meta;
    if (attempts) *attempts = n + 1;
    if (a.exhausted) return rows;
  }
  ADD_FAILURE() << "the source never ended";
  return rows;
}

std::string json_lines(int file, int n, int pad = 0) {
  std::string text;
  for (int r = 0; r < n; ++r) {
    text += "{\"id\":" + std::to_string(file * 100000 + r) + ",\"name\":\"" +
            std::string(static_cast<size_t>(pad + r % 7), 'x') + "\"}\n";
    if (r % 11 == 5) text += "\n";         // blank lines are skipped
    if (r % 97 == 3) text += "{broken\n";  // bad lines are reported and skipped
  }
  return text;
}

TEST(FileSourceCheckpoint, JsonResumesExactlyAtRowBoundaries) {
  TempDir dir;
  // More than one 1 MiB read chunk, so batches end mid-buffer and across chunks.
  std::string path = dir.write("big.jsonl", json_lines(0, 24000, 40));
  ASSERT_GT(std::filesystem::file_size(path), 1u << 20);
  auto node = prepare_ok(FileSourceFactory(), file_source(path, "json"));
  ASSERT_TRUE(node);
  Rows want = read_all(*node, 0, 1, 1000);
  ASSERT_EQ(want.size(), 24000u);
  for (uint32_t seed = 1; seed <= 3; ++seed) {
    std::mt19937 rng(seed);
    int attempts = 0;
    Rows got = read_with_crashes(*node, 0, 1, 1000, rng, &attempts);
    EXPECT_TRUE(same_rows(got, want)) << "seed " << seed;
    EXPECT_GT(attempts, 3);
  }
}

TEST(FileSourceCheckpoint, MetaRecordsByteOffsetAfterTheLastEmittedRow) {
  TempDir dir;
  std::string path = dir.write("in.jsonl",
                               "{\"id\":1}\n"      // 9 bytes
                               "{\"id\":22}\n"     // 10
                               "{\"id\":333}\n");  // 11
  auto node = prepare_ok(FileSourceFactory(), file_source(path, "json"));
  ASSERT_TRUE(node);
  Attempt a = attempt(*node, 0, 1, /*batch=*/2, std::nullopt, 1, 0, 1);
  ASSERT_TRUE(a.status.ok());
  ASSERT_EQ(a.rows.size(), 2u);
  auto meta = nlohmann::json::parse(a.meta);
  EXPECT_EQ(meta["parallelism"], 1);
  EXPECT_EQ(meta["known"], nlohmann::json::array({path}));
  ASSERT_EQ(meta["files"].size(), 1u);
  EXPECT_EQ(meta["files"][0]["path"], path);
  EXPECT_EQ(meta["files"][0]["offset"], 19);  // the whole file was buffered; 2 rows consumed
  EXPECT_EQ(meta["files"][0]["line"], 3);
  EXPECT_EQ(meta["files"][0]["done"], false);
  Attempt b = attempt(*node, 0, 1, 2, a.meta, 5, 0, 2);
  ASSERT_TRUE(b.status.ok());
  EXPECT_TRUE(b.exhausted);
  ASSERT_EQ(b.rows.size(), 1u);
  EXPECT_EQ(id_of(b.rows[0]), 333);
  meta = nlohmann::json::parse(b.meta);
  EXPECT_EQ(meta["files"][0]["offset"], 30);
  EXPECT_EQ(meta["files"][0]["done"], true);
  // Resumed from a finished position: nothing more.
  Attempt c = attempt(*node, 0, 1, 2, b.meta, 5, 0, 3);
  ASSERT_TRUE(c.status.ok());
  EXPECT_TRUE(c.exhausted);
  EXPECT_TRUE(c.rows.empty());
}

TEST(FileSourceCheckpoint, CsvWithHeaderResumesMidFileWithoutTreatingARowAsHeader) {
  TempDir dir;
  // Columns in another order than the schema: the header mapping must survive
  // the resume; quoted line breaks and blank lines too.
  std::string text = "\nname,id\n";
  for (int r = 0; r < 3000; ++r) {
    text += (r % 5 == 0 ? "\"two\nlines " + std::to_string(r) + "\"" : "n" + std::to_string(r)) +
            "," + std::to_string(r) + "\n";
    if (r % 13 == 0) text += "\n";
  }
  for (int f = 0; f < 3; ++f) dir.write("csv/f" + std::to_string(f) + ".csv", text);
  auto node = prepare_ok(FileSourceFactory(), file_source(dir.file("csv/*.csv"), "csv"));
  ASSERT_TRUE(node);
  Rows want = read_all(*node, 0, 1, 37);
  ASSERT_EQ(want.size(), 9000u);
  EXPECT_EQ(want[1], "1|n1");
  for (uint32_t seed = 10; seed <= 13; ++seed) {
    std::mt19937 rng(seed);
    EXPECT_TRUE(same_rows(read_with_crashes(*node, 0, 1, 37, rng), want)) << "seed " << seed;
  }
  // Resumed after the first row: the header is read again for the mapping and
  // the next row is not taken for a header.
  Attempt a = attempt(*node, 0, 1, 1, std::nullopt, 1, 0);
  ASSERT_TRUE(a.status.ok());
  ASSERT_EQ(a.rows.size(), 1u);
  auto meta = nlohmann::json::parse(a.meta);
  EXPECT_EQ(meta["files"][0]["header_read"], true);
  Attempt b = attempt(*node, 0, 1, 1, a.meta, 1, 0);
  ASSERT_EQ(b.rows.size(), 1u);
  EXPECT_EQ(b.rows[0], want[1]);
}

TEST(FileSourceCheckpoint, ParallelSplitEachSubtaskResumesItsOwnFiles) {
  TempDir dir;
  for (int f = 0; f < 7; ++f) {
    dir.write("data/f" + std::to_string(f) + ".jsonl", json_lines(f, 300 + 50 * f));
  }
  auto node = prepare_ok(FileSourceFactory(), file_source(dir.file("data/*.jsonl"), "json"));
  ASSERT_TRUE(node);
  std::multiset<int64_t> all;
  for (int k = 0; k < 3; ++k) {
    Rows want = read_all(*node, k, 3, 64);
    std::mt19937 rng(100 + static_cast<uint32_t>(k));
    Rows got = read_with_crashes(*node, k, 3, 64, rng);
    EXPECT_TRUE(same_rows(got, want)) << "subtask " << k;
    for (const auto& row : got) all.insert(id_of(row));
  }
  std::multiset<int64_t> expected;
  for (int f = 0; f < 7; ++f) {
    for (int r = 0; r < 300 + 50 * f; ++r) expected.insert(f * 100000 + r);
  }
  EXPECT_EQ(all, expected);
}

TEST(FileSourceCheckpoint, GlobGainingFilesReadsNewOnesFromTheStartOnce) {
  TempDir dir;
  dir.write("g/b.jsonl", json_lines(1, 500));
  dir.write("g/d.jsonl", json_lines(3, 500));
  dir.write("g/f.jsonl", json_lines(5, 500));
  const std::string glob = dir.file("g/*.jsonl");
  auto before = prepare_ok(FileSourceFactory(), file_source(glob, "json"));
  ASSERT_TRUE(before);
  // Two subtasks, each part-way through its files.
  std::vector<std::string> metas;
  std::multiset<int64_t> seen;
  for (int k = 0; k < 2; ++k) {
    Attempt a = attempt(*before, k, 2, 100, std::nullopt, 3, 2);
    ASSERT_TRUE(a.status.ok());
    ASSERT_FALSE(a.exhausted);
    for (const auto& row : a.rows) seen.insert(id_of(row));
    metas.push_back(a.meta);
  }
  // New files sort before, between and after the old ones.
  dir.write("g/a.jsonl", json_lines(0, 200));
  dir.write("g/c.jsonl", json_lines(2, 200));
  dir.write("g/e.jsonl", json_lines(4, 200));
  dir.write("g/h.jsonl", json_lines(7, 200));
  auto after = prepare_ok(FileSourceFactory(), file_source(glob, "json"));
  ASSERT_TRUE(after);
  for (int k = 0; k < 2; ++k) {
    std::mt19937 rng(7 + static_cast<uint32_t>(k));
    std::optional<std::string> meta = metas[static_cast<size_t>(k)];
    // Resume, and crash a few more times on the way.
    for (int n = 0; n < 1000; ++n) {
      Attempt a =
          attempt(*after, k, 2, 100, meta, std::uniform_int_distribution<int>(0, 6)(rng), 1);
      ASSERT_TRUE(a.status.ok()) << a.status.message();
      for (const auto& row : a.rows) seen.insert(id_of(row));
      meta = a.meta;
      if (a.exhausted) break;
    }
    // The new run knows every file now.
    EXPECT_EQ(nlohmann::json::parse(*meta)["known"].size(), 7u);
  }
  std::multiset<int64_t> expected;
  for (int f : {1, 3, 5}) {
    for (int r = 0; r < 500; ++r) expected.insert(f * 100000 + r);
  }
  for (int f : {0, 2, 4, 7}) {
    for (int r = 0; r < 200; ++r) expected.insert(f * 100000 + r);
  }
  EXPECT_EQ(seen, expected);
}

TEST(FileSourceCheckpoint, VanishedFileIsSkippedAndShrunkFileIsAnError) {
  TempDir dir;
  dir.write("v/a.jsonl", json_lines(0, 100));
  dir.write("v/b.jsonl", json_lines(1, 100));
  const std::string glob = dir.file("v/*.jsonl");
  auto node = prepare_ok(FileSourceFactory(), file_source(glob, "json"));
  ASSERT_TRUE(node);
  Attempt a = attempt(*node, 0, 1, 30, std::nullopt, 1, 0);
  ASSERT_TRUE(a.status.ok());
  ASSERT_EQ(a.rows.size(), 30u);

  // a.jsonl (being read) vanishes: skipped with a warning, b.jsonl still read.
  {
    std::filesystem::rename(dir.file("v/a.jsonl"), dir.file("a.jsonl.moved"));
    auto now = prepare_ok(FileSourceFactory(), file_source(glob, "json"));
    ASSERT_TRUE(now);
    Attempt b = attempt(*now, 0, 1, 1000, a.meta, 10, 0);
    ASSERT_TRUE(b.status.ok()) << b.status.message();
    EXPECT_TRUE(b.exhausted);
    ASSERT_EQ(b.rows.size(), 100u);
    EXPECT_EQ(id_of(b.rows[0]), 100000);
    std::filesystem::rename(dir.file("a.jsonl.moved"), dir.file("v/a.jsonl"));
  }
  // a.jsonl shrank below the checkpointed offset: a clear error.
  {
    test::write_file(dir.file("v/a.jsonl"), "{\"id\":1}\n");
    auto now = prepare_ok(FileSourceFactory(), file_source(glob, "json"));
    ASSERT_TRUE(now);
    Attempt b = attempt(*now, 0, 1, 1000, a.meta, 10, 0);
    EXPECT_EQ(b.status.code(), StatusCode::kInvalidArgument);
    uint64_t offset = nlohmann::json::parse(a.meta)["files"][0]["offset"];
    EXPECT_EQ(b.status.message(), "cannot resume reading " + dir.file("v/a.jsonl") + " at byte " +
                                      std::to_string(offset) +
                                      ": the file has only 9 bytes now (it was truncated or "
                                      "replaced since the checkpoint)");
  }
}

TEST(FileSourceCheckpoint, StopKeepsThePositionAndBadMetaIsReported) {
  TempDir dir;
  std::string path = dir.write("in.jsonl", json_lines(0, 1000));
  auto node = prepare_ok(FileSourceFactory(), file_source(path, "json"));
  ASSERT_TRUE(node);
  Rows want = read_all(*node, 0, 1, 100);
  // A stop ends the source; its snapshot still records the true position.
  FakeContext ctx(0, 1, 100);
  ctx.set_checkpointing(true);
  auto src = node->make_source(0, 1);
  ASSERT_TRUE(src->open(ctx).ok());
  CollectOutput out;
  ASSERT_TRUE(src->produce(out).ok());
  ctx.request_stop();
  auto p = src->produce(out);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->state, SourceProgress::State::kExhausted);
  FakeSnapshotContext snap(1, dir.file("snap"));
  ASSERT_TRUE(src->snapshot(snap).ok());
  Rows got = text_rows(out.batches);
  Attempt rest = attempt(*node, 0, 1, 100, snap.meta(), 1000, 0);
  ASSERT_TRUE(rest.status.ok());
  got.insert(got.end(), rest.rows.begin(), rest.rows.end());
  EXPECT_TRUE(same_rows(got, want));

  Attempt bad = attempt(*node, 0, 1, 100, std::string("{\"files\": 3}"), 1, 0);
  EXPECT_EQ(bad.status.code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(bad.status.message().starts_with(
      "file source 'test' subtask 0: cannot resume: bad checkpoint meta:"))
      << bad.status.message();
  Attempt rescaled = attempt(*node, 0, 2, 100, snap.meta(), 1, 0);
  EXPECT_EQ(rescaled.status.message(),
            "file source 'test' subtask 0: cannot resume: the checkpoint was taken with "
            "parallelism 1, this run has 2 (a file source cannot be rescaled)");
}

ConfigValue generator(std::vector<ConfigValue::Entry> extra) {
  std::vector<ConfigValue::Entry> e = {{"id", scalar("gen")}, {"type", scalar("generator")}};
  for (auto& x : extra) e.push_back(std::move(x));
  e.push_back({"fields", map({{"id", scalar("i")},
                              {"price", scalar("rand() * 100")},
                              {"coin", scalar("rand() < 0.5")}})});
  return map(std::move(e));
}

TEST(GeneratorCheckpoint, ResumedGeneratorEmitsIdenticalRows) {
  auto node = prepare_ok(GeneratorSourceFactory(),
                         generator({{"count", scalar("5000")}, {"seed", scalar("9")}}));
  ASSERT_TRUE(node);
  for (int par : {1, 3}) {
    for (int k = 0; k < par; ++k) {
      Rows want = read_all(*node, k, par, 64);
      std::mt19937 rng(static_cast<uint32_t>(par * 10 + k));
      int attempts = 0;
      EXPECT_TRUE(same_rows(read_with_crashes(*node, k, par, 64, rng, &attempts), want))
          << "subtask " << k << " of " << par;
      EXPECT_GT(attempts, 3);
    }
  }
}

TEST(GeneratorCheckpoint, MetaIsTheNextRowNumber) {
  auto node =
      prepare_ok(GeneratorSourceFactory(), generator({{"seed", scalar("1")}}));  // unbounded
  ASSERT_TRUE(node);
  Attempt a = attempt(*node, 1, 2, 10, std::nullopt, 3, 4);
  ASSERT_TRUE(a.status.ok());
  EXPECT_EQ(nlohmann::json::parse(a.meta),
            nlohmann::json::parse("{\"next_row\": 61, \"parallelism\": 2}"));
  Attempt b = attempt(*node, 1, 2, 10, a.meta, 1, 0);
  ASSERT_EQ(b.rows.size(), 10u);
  EXPECT_EQ(id_of(b.rows[0]), 61);
  EXPECT_EQ(id_of(b.rows[9]), 79);
  Attempt bad = attempt(*node, 0, 2, 10, a.meta, 1, 0);
  EXPECT_EQ(bad.status.message(),
            "generator 'test' subtask 0: cannot resume: next_row 61 is not a row of subtask 0");
  Attempt rescaled = attempt(*node, 1, 3, 10, a.meta, 1, 0);
  EXPECT_EQ(rescaled.status.message(),
            "generator 'test' subtask 1: cannot resume: the checkpoint was taken with "
            "parallelism 2, this run has 3 (a generator cannot be rescaled)");
}

}  // namespace
}  // namespace df::connectors
