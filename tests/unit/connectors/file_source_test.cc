// The file source: real files in a temp dir, decoded through the factory.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "connectors/file_source.h"
#include "tests/support/operator_harness.h"

namespace df::connectors {
namespace {

using runtime::NodeRole;
using test::CollectOutput;
using test::FakeContext;
using test::map;
using test::rows_of;
using test::scalar;
using test::TempDir;

ConfigValue source(const std::string& path, const std::string& format,
                   std::vector<ConfigValue::Entry> extra = {}) {
  std::vector<ConfigValue::Entry> e = {
      {"id", scalar("in")},
      {"type", scalar("file")},
      {"path", scalar(path, 4, 11)},
      {"format", scalar(format, 5, 13)},
      {"schema", map({{"id", scalar("int64", 6, 17)},
                      {"name", scalar("string", 6, 30)},
                      {"at", scalar("timestamp", 6, 42)}},
                     6, 13)},
  };
  for (auto& x : extra) e.push_back(std::move(x));
  return map(std::move(e), 2, 5);
}

runtime::PreparedNodePtr prepare_ok(const ConfigValue& cfg) {
  Diagnostics diags;
  auto node = test::prepare(FileSourceFactory(), NodeRole::kSource, cfg, diags);
  EXPECT_TRUE(diags.empty()) << diags.to_status().message();
  return node;
}

TEST(FileSource, JsonLinesWithBadLinesReportedByFileAndLine) {
  TempDir dir;
  std::string path = dir.write("in.jsonl",
                               "{\"id\":1,\"name\":\"a\",\"at\":\"2026-11-21T10:00:00Z\"}\n"
                               "{\"id\":\"two\"}\n"
                               "\n"
                               "{\"id\":3,\"at\":1700000000000,\"other\":true}\r\n"
                               "{broken\n"
                               "{\"id\":5,\"name\":null}");  // no final newline
  auto node = prepare_ok(source(path, "json"));
  ASSERT_TRUE(node);
  EXPECT_EQ(node->describe(), "file " + path + " (json)");
  EXPECT_EQ(node->output_schema()->to_string(), "{id: int64, name: string, at: timestamp}");
  FakeContext ctx;
  CollectOutput out;
  auto src = node->make_source(0, 1);
  ASSERT_TRUE(test::run_source(*src, ctx, out).ok());
  auto rows = rows_of(out.batches);
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0][0], Value::int64(1));
  EXPECT_EQ(rows[0][2], Value::timestamp(*parse_timestamp("2026-11-21T10:00:00Z")));
  EXPECT_EQ(rows[1][0], Value::int64(3));
  EXPECT_TRUE(rows[1][1].is_null());
  EXPECT_EQ(rows[1][2], Value::timestamp(1700000000000));
  EXPECT_EQ(rows[2][0], Value::int64(5));
  EXPECT_TRUE(rows[2][1].is_null());
  auto errors = ctx.data_errors();
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_EQ(errors[0], path + ":2: field 'id': expected int64, got a string");
  EXPECT_TRUE(errors[1].starts_with(path + ":5: invalid JSON")) << errors[1];
}

TEST(FileSource, EmitsBatchesOfBatchSizeAcrossChunks) {
  TempDir dir;
  std::string text;
  const int n = 30000;  // ~1.5 MiB: more than one read chunk
  for (int i = 0; i < n; ++i) {
    text += "{\"id\":" + std::to_string(i) + ",\"name\":\"" + std::string(20, 'x') +
            "\",\"at\":" + std::to_string(i) + "}\n";
  }
  std::string path = dir.write("big.jsonl", text);
  auto node = prepare_ok(source(path, "json"));
  ASSERT_TRUE(node);
  FakeContext ctx(0, 1, 1000);
  CollectOutput out;
  auto src = node->make_source(0, 1);
  ASSERT_TRUE(test::run_source(*src, ctx, out).ok());
  ASSERT_EQ(out.batches.size(), 30u);
  int64_t next = 0;
  for (const auto& b : out.batches) {
    EXPECT_EQ(b->active_rows(), 1000u);
    for (size_t r = 0; r < b->num_rows(); ++r) EXPECT_EQ(b->column(0)->int64_at(r), next++);
  }
  EXPECT_TRUE(ctx.data_errors().empty());
}

TEST(FileSource, CsvWithHeaderQuotingAndBadRecords) {
  TempDir dir;
  std::string path = dir.write("in.csv",
                               "name,id,at\n"
                               "\"Smith, J\",1,2026-11-21T10:00:00Z\n"
                               "\"two\nlines\",2,\n"
                               "bad,x,0\n"
                               ",4,5\n");
  // No format: .csv picks csv.
  auto cfg = map(
      {{"id", scalar("in")},
       {"type", scalar("file")},
       {"path", scalar(path)},
       {"schema",
        map({{"id", scalar("int64")}, {"name", scalar("string")}, {"at", scalar("timestamp")}})}});
  auto node = prepare_ok(cfg);
  ASSERT_TRUE(node);
  EXPECT_EQ(node->describe(), "file " + path + " (csv)");
  FakeContext ctx;
  CollectOutput out;
  ASSERT_TRUE(test::run_source(*node->make_source(0, 1), ctx, out).ok());
  auto rows = rows_of(out.batches);
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0],
            (std::vector<Value>{Value::int64(1), Value::string("Smith, J"),
                                Value::timestamp(*parse_timestamp("2026-11-21T10:00:00Z"))}));
  EXPECT_EQ(rows[1][1], Value::string("two\nlines"));
  EXPECT_TRUE(rows[1][2].is_null());
  EXPECT_EQ(rows[2], (std::vector<Value>{Value::int64(4), Value::null(TypeId::kString),
                                         Value::timestamp(5)}));
  // The bad record starts on line 5 (the quoted line break counts).
  EXPECT_EQ(ctx.data_errors(),
            std::vector<std::string>{path + ":5: field 'id': expected int64, got 'x'"});
}

TEST(FileSource, CsvWithoutHeaderAndOtherDelimiter) {
  TempDir dir;
  std::string path = dir.write("in.txt", "1|a|10\n2|\"b|c\"|20\n");
  auto node = prepare_ok(source(
      path, "csv", {{"csv", map({{"header", scalar("false")}, {"delimiter", scalar("|")}})}}));
  ASSERT_TRUE(node);
  FakeContext ctx;
  CollectOutput out;
  ASSERT_TRUE(test::run_source(*node->make_source(0, 1), ctx, out).ok());
  EXPECT_EQ(rows_of(out.batches),
            (std::vector<std::vector<Value>>{
                {Value::int64(1), Value::string("a"), Value::timestamp(10)},
                {Value::int64(2), Value::string("b|c"), Value::timestamp(20)}}));
}

TEST(FileSource, GlobSplitsFilesOverSubtasksEachReadOnce) {
  TempDir dir;
  for (int f = 0; f < 5; ++f) {
    std::string text;
    for (int r = 0; r < 3; ++r) text += "{\"id\":" + std::to_string(f * 10 + r) + "}\n";
    dir.write("data/f" + std::to_string(f) + ".jsonl", text);
  }
  dir.write("data/ignored.txt", "{\"id\":999}\n");
  std::filesystem::create_directories(dir.path() / "data" / "sub.jsonl");  // not a file
  auto node = prepare_ok(source(dir.file("data/*.jsonl"), "json"));
  ASSERT_TRUE(node);
  std::multiset<int64_t> seen;
  std::vector<size_t> per_subtask;
  for (int k = 0; k < 3; ++k) {
    FakeContext ctx(k, 3);
    CollectOutput out;
    ASSERT_TRUE(test::run_source(*node->make_source(k, 3), ctx, out).ok());
    auto rows = rows_of(out.batches);
    per_subtask.push_back(rows.size());
    for (const auto& row : rows) seen.insert(row[0].as_int64());
  }
  // Sorted matches f0..f4: subtask 0 reads f0,f3; 1 reads f1,f4; 2 reads f2.
  EXPECT_EQ(per_subtask, (std::vector<size_t>{6, 6, 3}));
  std::multiset<int64_t> want;
  for (int f = 0; f < 5; ++f) {
    for (int r = 0; r < 3; ++r) want.insert(f * 10 + r);
  }
  EXPECT_EQ(seen, want);
}

TEST(FileSource, SingleFileGoesToSubtaskZero) {
  TempDir dir;
  std::string path = dir.write("one.jsonl", "{\"id\":1}\n{\"id\":2}\n");
  auto node = prepare_ok(source(path, "json"));
  ASSERT_TRUE(node);
  for (int k = 0; k < 2; ++k) {
    FakeContext ctx(k, 2);
    CollectOutput out;
    ASSERT_TRUE(test::run_source(*node->make_source(k, 2), ctx, out).ok());
    EXPECT_EQ(rows_of(out.batches).size(), k == 0 ? 2u : 0u);
  }
}

TEST(FileSource, MissingExactFileFailsTheRun) {
  TempDir dir;
  std::string path = dir.file("x.jsonl");
  auto node = prepare_ok(source(path, "json"));
  ASSERT_TRUE(node);
  FakeContext ctx;
  CollectOutput out;
  Status s = test::run_source(*node->make_source(0, 1), ctx, out);
  EXPECT_EQ(s.code(), StatusCode::kIoError);
  EXPECT_EQ(s.message(), "cannot open " + path + ": No such file or directory");
}

TEST(FileSource, StopRequestedEndsTheSource) {
  TempDir dir;
  std::string text;
  for (int i = 0; i < 5000; ++i) text += "{\"id\":" + std::to_string(i) + "}\n";
  std::string path = dir.write("in.jsonl", text);
  auto node = prepare_ok(source(path, "json"));
  ASSERT_TRUE(node);
  FakeContext ctx(0, 1, 100);
  CollectOutput out;
  auto src = node->make_source(0, 1);
  ASSERT_TRUE(src->open(ctx).ok());
  auto p = src->produce(out);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->state, runtime::SourceProgress::State::kMore);
  EXPECT_EQ(out.batches.size(), 1u);
  ctx.request_stop();
  p = src->produce(out);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->state, runtime::SourceProgress::State::kExhausted);
  EXPECT_TRUE(src->close().ok());
}

TEST(FileSourceOptions, EveryProblemReportedWithItsLocation) {
  TempDir dir;
  auto cfg =
      map({{"id", scalar("in")},
           {"type", scalar("file")},
           {"path", scalar(dir.file("nothing/*.jsonl"), 4, 11)},
           {"format", scalar("xml", 5, 13)},
           {"schema", map({{"a", scalar("int64", 6, 17)}, {"b", scalar("integr", 6, 25)}}, 6, 13)},
           {"csv", map({{"delimiter", scalar(";;", 7, 20)}, {"quote", scalar("'", 7, 30)}}, 7, 10)},
           {"follow", scalar("true", 8, 13)},
           {"bogus", scalar("1", 9, 12)}},
          2, 5);
  Diagnostics diags;
  auto node = test::prepare(FileSourceFactory(), NodeRole::kSource, cfg, diags);
  EXPECT_FALSE(node);
  std::vector<std::string> got;
  for (const auto& d : diags.items()) got.push_back(d.to_string());
  std::sort(got.begin(), got.end());
  std::vector<std::string> want = {
      "pipe.yaml:4:11: source 'in' (file) option 'path': no file matches '" +
          dir.file("nothing/*.jsonl") + "'",
      "pipe.yaml:5:13: source 'in' (file) option 'format': unknown format 'xml' (expected json "
      "or csv)",
      "pipe.yaml:6:25: source 'in' (file) schema field 'b': unknown type 'integr' (expected "
      "bool, int64, double, string or timestamp)",
      "pipe.yaml:7:20: source 'in' (file) option 'csv' option 'delimiter': must be one "
      "character other than a quote or line break",
      "pipe.yaml:7:30: unknown option 'quote' for source 'in' (file) option 'csv'",
      "pipe.yaml:8:13: source 'in' (file) option 'follow': only false is supported: the file "
      "source is bounded",
      "pipe.yaml:9:12: unknown option 'bogus' for source 'in' (file)",
  };
  EXPECT_EQ(got, want);
}

TEST(FileSourceOptions, PathAndSchemaAreRequired) {
  auto cfg = map({{"id", scalar("in")}, {"type", scalar("file")}}, 3, 5);
  Diagnostics diags;
  EXPECT_FALSE(test::prepare(FileSourceFactory(), NodeRole::kSource, cfg, diags));
  std::vector<std::string> got;
  for (const auto& d : diags.items()) got.push_back(d.to_string());
  EXPECT_EQ(got, (std::vector<std::string>{"pipe.yaml:3:5: source 'in' (file) needs 'path'",
                                           "pipe.yaml:3:5: source 'in' (file) needs 'schema'"}));
}

}  // namespace
}  // namespace df::connectors
