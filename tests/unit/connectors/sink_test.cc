// Sinks: the file sink's commit protocol and rolling, stdout backpressure,
// blackhole, and sink options.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <csignal>
#include <thread>

#include "connectors/file_sink.h"
#include "connectors/options.h"
#include "connectors/stdout_sink.h"
#include "engine/core/time.h"
#include "tests/support/operator_harness.h"

namespace df::connectors {
namespace {

using runtime::NodeRole;
using test::CollectOutput;
using test::FakeContext;
using test::list_dir;
using test::map;
using test::read_file;
using test::scalar;
using test::TempDir;

SchemaPtr schema() {
  return make_schema({{"k", TypeId::kInt64}, {"s", TypeId::kString}, {"t", TypeId::kTimestamp}});
}

// Batches of `per_batch` rows numbered from 0.
std::vector<BatchPtr> batches(int count, int per_batch) {
  std::vector<BatchPtr> out;
  for (int b = 0; b < count; ++b) {
    BatchBuilder bb(schema());
    for (int r = 0; r < per_batch; ++r) {
      int k = b * per_batch + r;
      bb.append_row({Value::int64(k), Value::string("v" + std::to_string(k)),
                     Value::timestamp(*parse_timestamp("2026-11-21T10:00:00Z") + k)});
    }
    out.push_back(bb.finish());
  }
  return out;
}

ConfigValue file_sink(const std::string& path, std::vector<ConfigValue::Entry> extra = {}) {
  std::vector<ConfigValue::Entry> e = {{"id", scalar("out")},
                                       {"type", scalar("file")},
                                       {"input", scalar("x")},
                                       {"path", scalar(path, 4, 11)}};
  for (auto& x : extra) e.push_back(std::move(x));
  return map(std::move(e), 2, 5);
}

runtime::PreparedNodePtr prepare_sink(const runtime::NodeFactory& f, const ConfigValue& cfg) {
  Diagnostics diags;
  auto node = test::prepare(f, NodeRole::kSink, cfg, diags, {schema()});
  EXPECT_TRUE(diags.empty()) << diags.to_status().message();
  return node;
}

TEST(FileSink, InProgressHiddenUntilFinishThenCommitted) {
  TempDir dir;
  std::string out_dir = dir.file("out/hot");  // created by the sink
  auto node = prepare_sink(FileSinkFactory(), file_sink(out_dir));
  ASSERT_TRUE(node);
  EXPECT_EQ(node->describe(), "file " + out_dir + " (json)");
  EXPECT_EQ(node->output_schema(), nullptr);
  FakeContext ctx(3, 4);
  CollectOutput out;
  auto sink = node->make_operator(3, 4);
  ASSERT_TRUE(sink->open(ctx).ok());
  auto in = batches(2, 2);
  // Rows pass through a filter first: only the selected ones are written.
  ASSERT_TRUE(
      sink->process(0, in[0]->with_selection(std::make_shared<Selection>(Selection{1})), out).ok());
  ASSERT_TRUE(sink->process(0, in[1], out).ok());
  // Before finish, only the hidden in-progress file exists.
  ASSERT_TRUE(ctx.wait_until(
      [&] {
        return std::filesystem::exists(out_dir + "/.part-3-0.inprogress") &&
               std::filesystem::file_size(out_dir + "/.part-3-0.inprogress") > 0;
      },
      std::chrono::seconds(10)));
  EXPECT_EQ(list_dir(out_dir), std::vector<std::string>{".part-3-0.inprogress"});
  ASSERT_TRUE(sink->finish(out).ok());
  // The last job wakes the task, just after the sink turned drained.
  ASSERT_TRUE(ctx.wait_until([&] { return sink->drained() && ctx.wakes() >= 1; },
                             std::chrono::seconds(10)));
  ASSERT_TRUE(sink->close().ok());
  EXPECT_EQ(list_dir(out_dir), std::vector<std::string>{"part-3-0.jsonl"});
  EXPECT_EQ(read_file(out_dir + "/part-3-0.jsonl"),
            "{\"k\":1,\"s\":\"v1\",\"t\":\"2026-11-21T10:00:00.001Z\"}\n"
            "{\"k\":2,\"s\":\"v2\",\"t\":\"2026-11-21T10:00:00.002Z\"}\n"
            "{\"k\":3,\"s\":\"v3\",\"t\":\"2026-11-21T10:00:00.003Z\"}\n");
}

TEST(FileSink, RollsByMaxRowsAndNeverOverwritesEarlierParts) {
  TempDir dir;
  std::string out_dir = dir.file("out");
  auto cfg = file_sink(out_dir, {{"rolling", map({{"max_rows", scalar("4")}})}});
  auto node = prepare_sink(FileSinkFactory(), cfg);
  ASSERT_TRUE(node);
  EXPECT_EQ(node->describe(), "file " + out_dir + " (json, roll every 4 rows)");
  {
    FakeContext ctx;
    auto sink = node->make_operator(0, 1);
    ASSERT_TRUE(test::run_sink(*sink, ctx, batches(3, 3)).ok());  // 9 rows
  }
  EXPECT_EQ(list_dir(out_dir),
            (std::vector<std::string>{"part-0-0.jsonl", "part-0-1.jsonl", "part-0-2.jsonl"}));
  auto lines = [](const std::string& text) { return std::count(text.begin(), text.end(), '\n'); };
  EXPECT_EQ(lines(read_file(out_dir + "/part-0-0.jsonl")), 4);
  EXPECT_EQ(lines(read_file(out_dir + "/part-0-1.jsonl")), 4);
  EXPECT_EQ(lines(read_file(out_dir + "/part-0-2.jsonl")), 1);
  EXPECT_TRUE(read_file(out_dir + "/part-0-1.jsonl").starts_with("{\"k\":4,"));
  // A second run in the same directory continues the numbering.
  {
    FakeContext ctx;
    auto sink = node->make_operator(0, 1);
    ASSERT_TRUE(test::run_sink(*sink, ctx, batches(1, 2)).ok());
  }
  EXPECT_EQ(list_dir(out_dir), (std::vector<std::string>{"part-0-0.jsonl", "part-0-1.jsonl",
                                                         "part-0-2.jsonl", "part-0-3.jsonl"}));
}

TEST(FileSink, CsvPartsEachStartWithAHeaderAndRollByBytes) {
  TempDir dir;
  std::string out_dir = dir.file("csv");
  // Header "k,s,t\n" is 6 bytes, each row 30: two rows fit in 80 bytes, three do not.
  auto cfg = file_sink(
      out_dir, {{"format", scalar("csv")}, {"rolling", map({{"max_bytes", scalar("80")}})}});
  auto node = prepare_sink(FileSinkFactory(), cfg);
  ASSERT_TRUE(node);
  FakeContext ctx;
  ASSERT_TRUE(test::run_sink(*node->make_operator(0, 1), ctx, batches(1, 5)).ok());
  EXPECT_EQ(list_dir(out_dir),
            (std::vector<std::string>{"part-0-0.csv", "part-0-1.csv", "part-0-2.csv"}));
  EXPECT_EQ(read_file(out_dir + "/part-0-0.csv"),
            "k,s,t\n0,v0,2026-11-21T10:00:00.000Z\n1,v1,2026-11-21T10:00:00.001Z\n");
  EXPECT_EQ(read_file(out_dir + "/part-0-2.csv"), "k,s,t\n4,v4,2026-11-21T10:00:00.004Z\n");
}

TEST(FileSink, NoInputNoFiles) {
  TempDir dir;
  auto node = prepare_sink(FileSinkFactory(), file_sink(dir.file("empty")));
  ASSERT_TRUE(node);
  FakeContext ctx;
  ASSERT_TRUE(test::run_sink(*node->make_operator(0, 1), ctx, {}).ok());
  EXPECT_TRUE(list_dir(dir.file("empty")).empty());
}

TEST(FileSink, IoErrorsReachTheOperator) {
  TempDir dir;
  std::string blocker = dir.write("file", "x");  // a file where the directory should go
  auto node = prepare_sink(FileSinkFactory(), file_sink(blocker + "/out"));
  ASSERT_TRUE(node);
  FakeContext ctx;
  Status s = test::run_sink(*node->make_operator(0, 1), ctx, batches(3, 2));
  EXPECT_EQ(s.code(), StatusCode::kIoError);
  EXPECT_TRUE(s.message().starts_with("cannot create directory " + blocker + "/out"))
      << s.message();
}

TEST(FileSinkOptions, Validation) {
  TempDir dir;
  auto cfg = map({{"id", scalar("out")},
                  {"type", scalar("file")},
                  {"input", scalar("x")},
                  {"format", scalar("parquet", 5, 13)},
                  {"rolling", map({{"max_rows", scalar("0", 6, 25)},
                                   {"max_bytes", scalar("12 parsecs", 6, 40)},
                                   {"max_age", scalar("1h", 6, 60)}},
                                  6, 14)},
                  {"compression", scalar("gzip", 7, 18)}},
                 2, 5);
  Diagnostics diags;
  EXPECT_FALSE(test::prepare(FileSinkFactory(), NodeRole::kSink, cfg, diags, {schema()}));
  std::vector<std::string> got;
  for (const auto& d : diags.items()) got.push_back(d.to_string());
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, (std::vector<std::string>{
                     "pipe.yaml:2:5: sink 'out' (file) needs 'path'",
                     "pipe.yaml:5:13: sink 'out' (file) option 'format': unknown format "
                     "'parquet' (expected json or csv)",
                     "pipe.yaml:6:25: sink 'out' (file) option 'rolling' option 'max_rows': must "
                     "be positive",
                     "pipe.yaml:6:40: sink 'out' (file) option 'rolling' option 'max_bytes': "
                     "expected a size such as 1048576 or 64MiB, got '12 parsecs'",
                     "pipe.yaml:6:60: unknown option 'max_age' for sink 'out' (file) option "
                     "'rolling'",
                     "pipe.yaml:7:18: unknown option 'compression' for sink 'out' (file)",
                 }));
  EXPECT_EQ(*parse_byte_size("64MiB"), 64u << 20);
  EXPECT_EQ(*parse_byte_size("2 KB"), 2000u);
}

TEST(StdoutSink, BackpressureWhileTheReaderIsSlowThenDrains) {
  std::signal(SIGPIPE, SIG_IGN);
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  auto sch = schema();
  FdSink sink(sch, fds[1], "stdout", /*backlog_limit=*/64 * 1024);
  FakeContext ctx;
  CollectOutput out;
  ASSERT_TRUE(sink.open(ctx).ok());
  // Nobody reads yet: the pipe (64 KiB) fills, the writer blocks on the I/O
  // thread, the backlog grows past the limit and the sink stops accepting.
  auto in = batches(200, 100);  // ~45 bytes a row: ~900 KB in all
  size_t fed = 0, expected_bytes = 0;
  std::string encoded;
  while (fed < in.size() && sink.can_accept()) {
    ASSERT_TRUE(sink.process(0, in[fed], out).ok());
    encoded.clear();
    JsonRowEncoder(sch).append_batch(*in[fed], encoded);
    expected_bytes += encoded.size();
    ++fed;
  }
  ASSERT_LT(fed, in.size()) << "the sink never pushed back";
  EXPECT_FALSE(sink.can_accept());
  EXPECT_GT(sink.backlog_bytes(), 64u * 1024);
  EXPECT_LT(sink.backlog_bytes(), 64u * 1024 + 10 * 1024);  // over by at most one batch
  int wakes_before = ctx.wakes();

  // A slow reader: 16 KiB every 2 ms.
  std::atomic<size_t> got{0};
  std::string received;
  std::thread reader([&] {
    char buf[16384];
    while (true) {
      ssize_t n = ::read(fds[0], buf, sizeof buf);
      if (n <= 0) break;
      received.append(buf, static_cast<size_t>(n));
      got += static_cast<size_t>(n);
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  });
  // Feed the rest the way the scheduler would: only when woken and accepting.
  while (fed < in.size()) {
    ASSERT_TRUE(ctx.wait_until([&] { return sink.can_accept(); }, std::chrono::seconds(20)));
    ASSERT_TRUE(sink.process(0, in[fed], out).ok());
    encoded.clear();
    JsonRowEncoder(sch).append_batch(*in[fed], encoded);
    expected_bytes += encoded.size();
    ++fed;
    EXPECT_LE(sink.backlog_bytes(), 64u * 1024 + 10 * 1024);
  }
  EXPECT_GT(ctx.wakes(), wakes_before);  // backlog drops woke the task
  ASSERT_TRUE(sink.finish(out).ok());
  ASSERT_TRUE(ctx.wait_until([&] { return sink.drained(); }, std::chrono::seconds(20)));
  ASSERT_TRUE(sink.close().ok());
  ::close(fds[1]);
  reader.join();
  ::close(fds[0]);
  EXPECT_EQ(received.size(), expected_bytes);
  EXPECT_TRUE(received.starts_with("{\"k\":0,\"s\":\"v0\",\"t\":\"2026-11-21T10:00:00.000Z\"}\n"));
  EXPECT_TRUE(
      received.ends_with("{\"k\":19999,\"s\":\"v19999\",\"t\":\"2026-11-21T10:00:19.999Z\"}\n"));
}

TEST(StdoutSink, ClosedReaderFailsWithEpipe) {
  std::signal(SIGPIPE, SIG_IGN);
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  ::close(fds[0]);
  FdSink sink(schema(), fds[1], "stdout");
  FakeContext ctx;
  Status s = test::run_sink(sink, ctx, batches(5, 10));
  ::close(fds[1]);
  EXPECT_EQ(s.code(), StatusCode::kIoError);
  EXPECT_EQ(s.message(), "cannot write stdout: the reader closed the pipe (EPIPE)");
}

TEST(StdoutSink, FactoryClampsParallelismAndRejectsOptions) {
  auto cfg = map({{"id", scalar("print")}, {"type", scalar("stdout")}, {"input", scalar("x")}});
  auto node = prepare_sink(StdoutSinkFactory(), cfg);
  ASSERT_TRUE(node);
  EXPECT_EQ(node->max_parallelism(), std::optional<int>(1));
  EXPECT_EQ(node->describe(), "stdout (json lines)");
  auto bad =
      map({{"id", scalar("print")}, {"type", scalar("stdout")}, {"path", scalar("x", 3, 9)}});
  Diagnostics diags;
  test::prepare(StdoutSinkFactory(), NodeRole::kSink, bad, diags, {schema()});
  EXPECT_EQ(diags.to_status().message(),
            "pipe.yaml:3:9: unknown option 'path' for sink 'print' (stdout)");
}

TEST(Blackhole, CountsAliveRows) {
  auto node = prepare_sink(BlackholeSinkFactory(),
                           map({{"id", scalar("null")}, {"type", scalar("blackhole")}}));
  ASSERT_TRUE(node);
  auto op = node->make_operator(0, 1);
  auto* hole = dynamic_cast<BlackholeSink*>(op.get());
  ASSERT_NE(hole, nullptr);
  FakeContext ctx;
  auto in = batches(3, 10);
  in[1] = in[1]->with_selection(std::make_shared<Selection>(Selection{0, 5}));
  ASSERT_TRUE(test::run_sink(*op, ctx, in).ok());
  EXPECT_EQ(hole->rows(), 22u);
}

}  // namespace
}  // namespace df::connectors
