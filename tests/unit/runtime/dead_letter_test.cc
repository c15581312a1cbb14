#include "engine/runtime/dead_letter.h"

#include <gtest/gtest.h>

#include <stdexcept>

#include "engine/runtime/fault_injection.h"

namespace df::runtime {
namespace {

TEST(DeadLetterRateTest, NeedsEnoughRowsThenComparesTheShareOverTheWindow) {
  DeadLetterRate rate(0.01);  // 1%: at least 1000 rows before judging
  // 5 dead letters in the first 500 rows: 1%+, but too few rows to say.
  for (int i = 0; i < 5; ++i) EXPECT_FALSE(rate.add(1000 + i, 100 * (i + 1)));
  // 1200 rows, 6 dead letters: 0.5%.
  EXPECT_FALSE(rate.add(2000, 1200));
  // 1300 rows, 14 dead letters: over 1%.
  std::optional<double> over;
  for (int i = 0; i < 8 && !over; ++i) over = rate.add(2500, 1300);
  ASSERT_TRUE(over);
  EXPECT_GT(*over, 0.01);
}

TEST(DeadLetterRateTest, OldDeadLettersLeaveTheWindow) {
  DeadLetterRate rate(0.01, /*window_ms=*/60'000);
  // A burst early on: 9 dead letters in 1000 rows (0.9%).
  for (int i = 0; i < 9; ++i) EXPECT_FALSE(rate.add(1'000, 1'000));
  // Two minutes later, 100k more rows and a handful of dead letters: the
  // burst is out of the window, so the rate is tiny.
  for (int i = 0; i < 5; ++i) EXPECT_FALSE(rate.add(130'000 + i * 1'000, 101'000 + i));
}

TEST(DeadLetterRateTest, ZeroToleratesNone) {
  DeadLetterRate rate(0.0);
  EXPECT_TRUE(rate.add(1, 1'000'000));
}

TEST(DeadLetterSchemaTest, HasTheDocumentedColumns) {
  EXPECT_EQ(dead_letter_schema()->to_string(),
            "{time: timestamp, pipeline: string, node: string, subtask: int64, class: string, "
            "message: string, position: string, record: string}");
}

TEST(FaultInjectionTest, ParsesEveryOptionAndRejectsBadEntries) {
  auto specs =
      parse_faults("agg:process:exception:after=3:times=2;in:produce:unavailable:rate=0.5:seed=9");
  ASSERT_TRUE(specs.ok()) << specs.status().to_string();
  ASSERT_EQ(specs->size(), 2u);
  EXPECT_EQ((*specs)[0].node, "agg");
  EXPECT_EQ((*specs)[0].after, 3u);
  EXPECT_EQ((*specs)[0].times, 2u);
  EXPECT_EQ((*specs)[1].rate, 0.5);
  EXPECT_EQ((*specs)[1].seed, 9u);
  EXPECT_FALSE(parse_faults("agg:process").ok());
  EXPECT_FALSE(parse_faults("agg:flush:exception").ok());
  EXPECT_FALSE(parse_faults("agg:process:explode").ok());
  EXPECT_FALSE(parse_faults("agg:process:internal:rate=2").ok());
  EXPECT_FALSE(parse_faults("agg:process:internal:after=x").ok());
  EXPECT_EQ(parse_faults("agg:flush:exception").status().message(),
            "DATAFLOW_FAULTS entry 'agg:flush:exception': call must be process or produce");
}

TEST(FaultInjectionTest, FiresAfterSkippingAndStopsAfterItsTimes) {
  auto specs = parse_faults("agg:process:unavailable:after=2:times=2;agg:produce:exception");
  ASSERT_TRUE(specs.ok());
  FaultInjector f(std::move(*specs));
  EXPECT_TRUE(f.check("agg", "process").ok());
  EXPECT_TRUE(f.check("agg", "process").ok());
  EXPECT_EQ(f.check("agg", "process").code(), StatusCode::kUnavailable);
  EXPECT_EQ(f.check("agg", "process").code(), StatusCode::kUnavailable);
  EXPECT_TRUE(f.check("agg", "process").ok());    // times used up
  EXPECT_TRUE(f.check("other", "process").ok());  // another node
  EXPECT_THROW((void)f.check("agg", "produce"), std::runtime_error);
  EXPECT_TRUE(f.check("agg", "produce").ok());

  FaultInjector none({});
  EXPECT_FALSE(none.enabled());
  EXPECT_TRUE(none.check("agg", "process").ok());
}

TEST(FaultInjectionTest, CheckpointsHoldAFaultBackUntilThatManyCompleted) {
  auto specs = parse_faults("agg:process:internal:checkpoints=2:after=1");
  ASSERT_TRUE(specs.ok()) << specs.status().to_string();
  EXPECT_EQ((*specs)[0].checkpoints, 2u);
  FaultInjector f(std::move(*specs));
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(f.check("agg", "process").ok());
  f.checkpoint_completed();
  EXPECT_TRUE(f.check("agg", "process").ok());
  f.checkpoint_completed();
  // Calls count from here: `after=1` skips one, then it fires.
  EXPECT_TRUE(f.check("agg", "process").ok());
  EXPECT_EQ(f.check("agg", "process").code(), StatusCode::kInternal);
  EXPECT_TRUE(f.check("agg", "process").ok());  // times=1 used up
  EXPECT_FALSE(parse_faults("agg:process:internal:checkpoints=-1").ok());
}

TEST(FaultInjectionTest, ARateFiresAboutThatOftenAndRepeatsWithTheSeed) {
  auto run = [] {
    auto specs = parse_faults("n:process:internal:rate=0.1:times=0:seed=4");
    FaultInjector f(std::move(*specs));
    std::vector<int> fired;
    for (int i = 0; i < 2000; ++i) {
      if (!f.check("n", "process").ok()) fired.push_back(i);
    }
    return fired;
  };
  auto a = run();
  EXPECT_EQ(a, run());
  EXPECT_GT(a.size(), 120u);
  EXPECT_LT(a.size(), 280u);
}

}  // namespace
}  // namespace df::runtime
