// register_connectors(): every node type is found by (role, type) and works
// end to end: generator -> file sink -> file source reads the same rows back.
#include <gtest/gtest.h>

#include "connectors/connectors.h"
#include "tests/support/operator_harness.h"

namespace df::connectors {
namespace {

using runtime::NodeRole;
using test::CollectOutput;
using test::FakeContext;
using test::map;
using test::rows_of;
using test::scalar;

TEST(Registry, RegistersEveryConnector) {
  runtime::NodeRegistry reg;
  register_connectors(reg);
  EXPECT_EQ(reg.types(NodeRole::kSource),
            (std::vector<std::string>{"file", "generator", "kafka", "nexmark"}));
  EXPECT_EQ(reg.types(NodeRole::kSink),
            (std::vector<std::string>{"blackhole", "file", "kafka", "stdout"}));
  EXPECT_EQ(reg.types(NodeRole::kTransform), std::vector<std::string>{});
}

TEST(Registry, GeneratorToFileSinkToFileSourceRoundTrip) {
  runtime::NodeRegistry reg;
  register_connectors(reg);
  test::TempDir dir;
  Diagnostics diags;
  auto gen_cfg = map({{"id", scalar("gen")},
                      {"type", scalar("generator")},
                      {"count", scalar("2500")},
                      {"seed", scalar("3")},
                      {"fields", map({{"id", scalar("i")},
                                      {"price", scalar("rand() * 100")},
                                      {"name", scalar("concat('u', cast(i % 10 as string))")}})}});
  auto gen =
      test::prepare(*reg.find(NodeRole::kSource, "generator"), NodeRole::kSource, gen_cfg, diags);
  auto sink_cfg = map({{"id", scalar("out")},
                       {"type", scalar("file")},
                       {"input", scalar("gen")},
                       {"path", scalar(dir.file("out"))},
                       {"rolling", map({{"max_rows", scalar("1000")}})}});
  ASSERT_TRUE(gen);
  auto sink = test::prepare(*reg.find(NodeRole::kSink, "file"), NodeRole::kSink, sink_cfg, diags,
                            {gen->output_schema()});
  auto src_cfg = map(
      {{"id", scalar("back")},
       {"type", scalar("file")},
       {"path", scalar(dir.file("out/part-*.jsonl"))},
       {"schema",
        map({{"id", scalar("int64")}, {"price", scalar("double")}, {"name", scalar("string")}})}});
  ASSERT_TRUE(sink);
  ASSERT_TRUE(diags.empty()) << diags.to_status().message();

  std::vector<std::vector<Value>> generated;
  for (int k = 0; k < 2; ++k) {
    FakeContext ctx(k, 2, 300);
    CollectOutput out;
    ASSERT_TRUE(test::run_source(*gen->make_source(k, 2), ctx, out).ok());
    auto op = sink->make_operator(k, 2);
    ASSERT_TRUE(test::run_sink(*op, ctx, out.batches).ok());
    for (auto& r : rows_of(out.batches)) generated.push_back(r);
  }
  // 1250 rows per subtask, rolled every 1000: two parts each.
  EXPECT_EQ(test::list_dir(dir.file("out")),
            (std::vector<std::string>{"part-0-0.jsonl", "part-0-1.jsonl", "part-1-0.jsonl",
                                      "part-1-1.jsonl"}));

  // Validated after the sink ran: the glob must match at prepare time.
  auto src = test::prepare(*reg.find(NodeRole::kSource, "file"), NodeRole::kSource, src_cfg, diags);
  ASSERT_TRUE(src) << diags.to_status().message();
  FakeContext ctx;
  CollectOutput back;
  ASSERT_TRUE(test::run_source(*src->make_source(0, 1), ctx, back).ok());
  EXPECT_TRUE(ctx.data_errors().empty());
  auto read = rows_of(back.batches);
  auto by_id = [](const auto& a, const auto& b) { return a[0].as_int64() < b[0].as_int64(); };
  std::sort(read.begin(), read.end(), by_id);
  std::sort(generated.begin(), generated.end(), by_id);
  ASSERT_EQ(read.size(), 2500u);
  EXPECT_EQ(read, generated);  // doubles survive the shortest round-trip form exactly
}

}  // namespace
}  // namespace df::connectors
