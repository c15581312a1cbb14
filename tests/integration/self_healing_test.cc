// Self-healing against the real binary (DESIGN §5): faults injected with
// DATAFLOW_FAULTS make an operator throw, return a transient, resource or
// fatal error, and the run must heal (retry the call in place, or restart
// from its last checkpoint with exactly-once output intact) or fail at once,
// as the failure's class says, reporting each decision as a run event on
// stderr. Expression errors go to the dead-letter sink row by row.
#include <stdlib.h>

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "tests/support/subprocess.h"
#include "tests/support/temp_dir.h"

namespace df::test {
namespace {

using namespace std::chrono_literals;

// 150k rows at 100k rows/s (so checkpoints complete all along the run), event
// time rising 5 ms a row, 300 users: the keyed window fires all along the run.
// RESTART is replaced by the healing section's restart strategy.
const char* kPipeline = R"yaml(
name: heal
parallelism: 2
checkpoint: {interval: 50ms, delivery: exactly_once}
healing:
  restart: RESTART
  resource: {pause: 100ms}
  retry: RETRY
sources:
  - id: events
    type: generator
    parallelism: 1
    count: 150000
    rate: 100000
    fields:
      user: "concat('u', cast((i * 7919) % 300 as string))"
      amount: "i % 97"
      ts: "cast(1800000000000 + i * 5 as timestamp)"
    event_time: {field: ts, max_out_of_orderness: 1s}
transforms:
  - id: totals
    type: window
    input: events
    key_by: [user]
    window: {type: tumbling, size: 5s}
    aggregate: {n: "count(*)", total: "sum(amount)"}
sinks:
  - {id: out, type: file, input: totals, path: out, format: json}
)yaml";

std::string pipeline(const std::string& restart = "{fixed_delay: {attempts: 3, delay: 20ms}}",
                     const std::string& retry = "{initial_backoff: 5ms, max_backoff: 50ms}") {
  std::string p = kPipeline;
  p.replace(p.find("RESTART"), 7, restart);
  p.replace(p.find("RETRY"), 5, retry);
  return p;
}

// The pipeline with one sink subtask, whose calls DATAFLOW_FAULTS then fail
// in a row (a fault's count is per process, over every subtask).
std::string one_sink(std::string p) {
  p.replace(p.find("{id: out, type: file,"), 21, "{id: out, type: file, parallelism: 1,");
  return p;
}

size_t count(const std::vector<std::string>& events, const std::string& part) {
  size_t n = 0;
  for (const auto& e : events) n += e.find(part) != std::string::npos ? 1 : 0;
  return n;
}

bool has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

class HealingTest : public ::testing::Test {
 protected:
  void SetUp() override { unsetenv("DATAFLOW_FAULTS"); }
  void TearDown() override { unsetenv("DATAFLOW_FAULTS"); }

  // Runs `yaml` with `faults` (DATAFLOW_FAULTS; empty: none) into out/ with
  // its own state directory.
  ProcessResult run(const std::string& yaml, const std::string& faults, bool checkpoints = true) {
    tmp_.write("p.yaml", yaml);
    std::filesystem::remove_all(tmp_.path() / "out");
    std::filesystem::remove_all(tmp_.path() / "state");
    if (faults.empty()) {
      unsetenv("DATAFLOW_FAULTS");
    } else {
      setenv("DATAFLOW_FAULTS", faults.c_str(), 1);
    }
    std::vector<std::string> argv{DATAFLOW_BIN, "exec", "p.yaml",       "--no-progress",
                                  "--workers",  "2",    "--batch-size", "256"};
    if (checkpoints) {
      argv.push_back("--state-dir");
      argv.push_back("state");
    }
    ProcessResult r = run_process(argv, tmp_.str(), 2min);
    unsetenv("DATAFLOW_FAULTS");
    return r;
  }

  std::vector<std::string> reference() {
    ProcessResult r = run(pipeline(), "");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_TRUE(exec_events(r.err).empty()) << r.err;
    auto rows = committed_rows(tmp_.path() / "out");
    EXPECT_FALSE(rows.empty());
    return rows;
  }

  TempDir tmp_;
};

TEST_F(HealingTest, AnOperatorExceptionRestartsFromTheCheckpointAndOutputStaysExact) {
  const auto expected = reference();
  // A batch after the first checkpoint completed throws, once.
  ProcessResult r = run(pipeline(), "totals:process:exception:checkpoints=1");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto ev = exec_events(r.err);
  ASSERT_EQ(ev.size(), 1u) << r.err;
  EXPECT_TRUE(has(ev[0], R"("class":"task","action":"restart","node":"totals")")) << ev[0];
  EXPECT_TRUE(has(ev[0], R"("attempt":1)")) << ev[0];
  EXPECT_TRUE(has(r.err, "1 restart")) << r.err;
  // Restarted from a checkpoint (one completes every 50 ms), not from scratch.
  EXPECT_TRUE(has(r.err, "dataflow: resuming heal from checkpoint")) << r.err;
  EXPECT_EQ(committed_rows(tmp_.path() / "out"), expected);
}

TEST_F(HealingTest, ATransientFailureIsRetriedInPlaceAndAResourceFailureThrottles) {
  const auto expected = reference();
  ProcessResult r =
      run(pipeline(), "totals:process:unavailable:after=100;events:produce:bad_alloc:after=150");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto ev = exec_events(r.err);
  ASSERT_EQ(ev.size(), 2u) << r.err;
  std::string all = ev[0] + ev[1];
  EXPECT_TRUE(has(all, R"("class":"transient","action":"retry","node":"totals")")) << all;
  // Out of memory: restart after resource.pause with half the batch size.
  EXPECT_TRUE(has(all, R"("class":"resource","action":"throttle","node":"events")")) << all;
  EXPECT_TRUE(has(all, "out of memory")) << all;
  EXPECT_TRUE(has(r.err, "restarting with batches of 128 rows")) << r.err;
  EXPECT_EQ(committed_rows(tmp_.path() / "out"), expected);
}

TEST_F(HealingTest, ATransientSinkFailureHealsByRetryingTheCallInPlace) {
  const auto expected = reference();
  ProcessResult r = run(one_sink(pipeline()), "out:process:unavailable:after=20:times=3");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto ev = exec_events(r.err);
  ASSERT_EQ(ev.size(), 3u) << r.err;
  for (size_t i = 0; i < ev.size(); ++i) {
    EXPECT_TRUE(has(ev[i], R"("class":"transient","action":"retry","node":"out")")) << ev[i];
    // The same call, tried a second, third and fourth time.
    EXPECT_TRUE(has(ev[i], "\"attempt\":" + std::to_string(i + 2))) << ev[i];
    EXPECT_TRUE(has(ev[i], "injected fault")) << ev[i];
  }
  // Healed without a restart: the run never went back to a checkpoint.
  EXPECT_EQ(count(ev, R"("action":"restart")"), 0u) << r.err;
  EXPECT_FALSE(has(r.err, "1 restart")) << r.err;
  EXPECT_FALSE(has(r.err, "resuming")) << r.err;
  EXPECT_EQ(committed_rows(tmp_.path() / "out"), expected);
}

TEST_F(HealingTest, RetriesThatRunOutEscalateToARestartFromTheCheckpoint) {
  const auto expected = reference();
  ProcessResult r =
      run(one_sink(pipeline("{fixed_delay: {attempts: 3, delay: 20ms}}",
                            "{max_attempts: 2, initial_backoff: 5ms, max_backoff: 5ms}")),
          "out:process:unavailable:after=150:times=2");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto ev = exec_events(r.err);
  ASSERT_EQ(ev.size(), 2u) << r.err;
  EXPECT_TRUE(has(ev[0], R"("class":"transient","action":"retry","node":"out")")) << ev[0];
  EXPECT_TRUE(has(ev[0], R"("attempt":2)")) << ev[0];
  // The second failure used up max_attempts: the run restarts.
  EXPECT_TRUE(has(ev[1], R"("class":"transient","action":"restart","node":"out")")) << ev[1];
  EXPECT_TRUE(has(ev[1], "gave up after 2 attempts")) << ev[1];
  EXPECT_TRUE(has(r.err, "1 restart")) << r.err;
  EXPECT_TRUE(has(r.err, "dataflow: resuming heal from checkpoint")) << r.err;
  EXPECT_EQ(committed_rows(tmp_.path() / "out"), expected);
}

TEST_F(HealingTest, AFatalErrorFailsAtOnceWithTheReasonAndExitCode3) {
  ProcessResult r = run(pipeline(), "totals:process:fatal:after=20");
  EXPECT_EQ(r.exit_code, 3) << r.err;
  auto ev = exec_events(r.err);
  ASSERT_EQ(ev.size(), 1u) << r.err;  // no restart, no loop
  EXPECT_TRUE(has(ev[0], R"("class":"fatal","action":"fail","node":"totals")")) << ev[0];
  EXPECT_TRUE(has(r.err, "dataflow: node 'totals' (window): injected fault in totals process"))
      << r.err;
  EXPECT_FALSE(has(r.err, "resuming")) << r.err;
}

TEST_F(HealingTest, ARestartStrategyThatGivesUpFailsTheRun) {
  // Every batch from the 5th on throws: fixed_delay allows 2 restarts.
  ProcessResult r = run(pipeline("{fixed_delay: {attempts: 2, delay: 10ms}}"),
                        "totals:process:exception:after=5:times=0");
  EXPECT_EQ(r.exit_code, 3) << r.err;
  auto ev = exec_events(r.err);
  ASSERT_EQ(ev.size(), 3u) << r.err;
  EXPECT_TRUE(has(ev[0], R"("action":"restart")")) << ev[0];
  EXPECT_TRUE(has(ev[1], R"("action":"restart")")) << ev[1];
  EXPECT_TRUE(has(ev[2], R"("class":"task","action":"fail")")) << ev[2];
  EXPECT_TRUE(has(r.err, "the restart strategy (fixed_delay) gave up after 2 restarts")) << r.err;
}

TEST_F(HealingTest, FailureRateCountsFailuresInItsInterval) {
  ProcessResult r = run(pipeline("{failure_rate: {max_failures: 1, interval: 1h, delay: 10ms}}"),
                        "totals:process:exception:after=5:times=0");
  EXPECT_EQ(r.exit_code, 3) << r.err;
  auto ev = exec_events(r.err);
  ASSERT_EQ(ev.size(), 2u) << r.err;
  EXPECT_TRUE(has(ev[1], R"("action":"fail")")) << ev[1];
}

TEST_F(HealingTest, WithoutCheckpointsATaskFailureIsNotRestartedUnlessAsked) {
  std::string no_restart = pipeline();
  no_restart.replace(no_restart.find("healing:"),
                     no_restart.find("sources:") - no_restart.find("healing:"), "");
  ProcessResult r = run(no_restart, "totals:process:exception:after=5", /*checkpoints=*/false);
  EXPECT_EQ(r.exit_code, 3) << r.err;
  auto ev = exec_events(r.err);
  ASSERT_EQ(ev.size(), 1u) << r.err;
  EXPECT_TRUE(has(ev[0], R"("class":"task","action":"fail")")) << ev[0];
}

TEST_F(HealingTest, ABadHealingSectionIsReportedWithEveryOtherProblem) {
  tmp_.write("bad.yaml", pipeline("{fixed_delay: {attempts: 0, dealy: 1s}}") +
                             "  - {id: out2, type: file, input: nowhere, path: o2}\n");
  ProcessResult r = run_process({DATAFLOW_BIN, "validate", "bad.yaml"}, tmp_.str(), 30s);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(has(r.err, "attempts must be between 1 and 1000000")) << r.err;
  EXPECT_TRUE(has(r.err, "unknown option 'dealy' for restart fixed_delay")) << r.err;
  EXPECT_TRUE(has(r.err, "nowhere")) << r.err;
  EXPECT_TRUE(has(r.err, "bad.yaml:6:")) << r.err;
}

TEST_F(HealingTest, AMalformedFaultSettingIsReportedAndIgnored) {
  ProcessResult r = run(pipeline(), "totals:explode:exception");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(has(r.err, "ignoring DATAFLOW_FAULTS")) << r.err;
  EXPECT_TRUE(exec_events(r.err).empty()) << r.err;
}

// Lines 8, 1008, 2008, ... of 20000 have a price that is not a number:
// `bad_every` lines in all go bad.
void write_prices(const TempDir& tmp, int bad_every) {
  std::string text;
  for (int i = 0; i < 20000; ++i) {
    if (i % bad_every == 7) {
      text += "{\"id\": " + std::to_string(i) + ", \"price\": \"oops\"}\n";
    } else {
      text += "{\"id\": " + std::to_string(i) + ", \"price\": " + std::to_string(i) + ".5}\n";
    }
  }
  tmp.write("prices.jsonl", text);
}

const char* kDeadLetterPipeline = R"yaml(
name: dlq
parallelism: 2
dead_letter: {sink: dlq, max_rate: 0.01}
sources:
  - {id: in, type: file, path: prices.jsonl, format: json, schema: {id: int64, price: double}}
transforms:
  - {id: cheap, type: filter, input: in, where: "price < 100000"}
sinks:
  - {id: out, type: file, input: cheap, path: out}
  - {id: dlq, type: file, path: dlq}
)yaml";

TEST_F(HealingTest, PoisonRecordsGoToTheDeadLetterSinkWithTheirMetadata) {
  write_prices(tmp_, 1000);  // 20 bad lines: 0.1%
  ProcessResult r = run(kDeadLetterPipeline, "");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(committed_rows(tmp_.path() / "out").size(), 19980u);
  const auto dead = committed_rows(tmp_.path() / "dlq");
  ASSERT_EQ(dead.size(), 20u);
  // Every dead letter says what, where and why, and carries the record.
  for (const std::string& row : dead) {
    EXPECT_TRUE(has(row, R"("pipeline":"dlq","node":"in",)")) << row;
    EXPECT_TRUE(has(row, R"("class":"data")")) << row;
    EXPECT_TRUE(has(row, "expected double, got a string")) << row;
    EXPECT_TRUE(has(row, R"("time":")")) << row;
  }
  std::string all;
  for (const auto& row : dead) all += row + "\n";
  EXPECT_TRUE(has(all, R"("position":"prices.jsonl:1008")")) << all;
  EXPECT_TRUE(has(all, R"("record":"{\"id\": 1007, \"price\": \"oops\"}")")) << all;
  EXPECT_TRUE(has(r.err, "bad record sent to the dead-letter sink")) << r.err;
}

// A map dividing by zero on exactly the rows where x = 5: those rows go to
// the dead-letter file with what failed and where, all the others reach the
// sink, and the run goes on.
TEST_F(HealingTest, ExpressionErrorsSendTheirRowsToTheDeadLetterSink) {
  const char* kPipeline = R"yaml(
name: exprdlq
parallelism: 2
dead_letter: {sink: dlq, max_rate: 0.5}
sources:
  - {id: gen, type: generator, parallelism: 1, count: 1000, fields: {id: "i", x: "i % 10"}}
transforms:
  - {id: inv, type: map, input: gen, set: {y: "1 / (x - 5)"}}
  - {id: pos, type: filter, input: inv, where: "100 / (x - 7) > -1000"}
sinks:
  - {id: out, type: file, input: pos, path: out, format: json}
  - {id: dlq, type: file, path: dlq, format: json}
)yaml";
  ProcessResult r = run(kPipeline, "");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto out = committed_rows(tmp_.path() / "out");
  // 1000 rows: 100 with x = 5 fail in the map, 100 with x = 7 in the filter.
  ASSERT_EQ(out.size(), 800u);
  for (const std::string& row : out) {
    EXPECT_FALSE(has(row, R"("x":5,)") || has(row, R"("x":7,)")) << row;
  }
  const auto dead = committed_rows(tmp_.path() / "dlq");
  ASSERT_EQ(dead.size(), 200u);
  std::string all;
  for (const std::string& row : dead) all += row + "\n";
  size_t from_map = 0;
  size_t from_filter = 0;
  for (const std::string& row : dead) {
    EXPECT_TRUE(has(row, R"("pipeline":"exprdlq")")) << row;
    EXPECT_TRUE(has(row, R"("class":"data")")) << row;
    EXPECT_TRUE(has(row, "division by zero")) << row;
    EXPECT_TRUE(has(row, R"("time":")")) << row;
    if (has(row, R"("node":"inv")")) {
      ++from_map;
      EXPECT_TRUE(has(row, R"("position":"inv")")) << row;
      EXPECT_TRUE(has(row, R"(\"x\": 5})")) << row;
    } else if (has(row, R"("node":"pos")")) {
      ++from_filter;
      EXPECT_TRUE(has(row, R"("position":"pos")")) << row;
      EXPECT_TRUE(has(row, R"(\"x\": 7, \"y\": 0})")) << row;
    }
  }
  EXPECT_EQ(from_map, 100u) << all;
  EXPECT_EQ(from_filter, 100u) << all;
  // Row 15 (x = 5) with its record as JSON.
  EXPECT_TRUE(has(all, R"("record":"{\"id\": 15, \"x\": 5}")")) << all;
}

// Without a dead-letter sink the same rows are counted and logged, and the
// map passes them on with a null.
TEST_F(HealingTest, WithoutADeadLetterSinkExpressionErrorsAreCountedAndLogged) {
  const char* kPipeline = R"yaml(
name: exprnull
sources:
  - {id: gen, type: generator, count: 1000, fields: {id: "i", x: "i % 10"}}
transforms:
  - {id: inv, type: map, input: gen, set: {y: "1 / (x - 5)"}}
sinks:
  - {id: out, type: file, input: inv, path: out, format: json}
)yaml";
  ProcessResult r = run(kPipeline, "");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto out = committed_rows(tmp_.path() / "out");
  ASSERT_EQ(out.size(), 1000u);
  size_t nulls = 0;
  for (const std::string& row : out) nulls += has(row, R"("y":null)") ? 1 : 0;
  EXPECT_EQ(nulls, 100u);
  EXPECT_TRUE(has(r.err, "bad record skipped: division by zero")) << r.err;
  EXPECT_TRUE(has(r.err, "100 errors")) << r.err;
}

TEST_F(HealingTest, ADeadLetterRateOverMaxRateFailsTheRunAsFatal) {
  write_prices(tmp_, 20);  // 5% bad, max_rate 1%
  ProcessResult r = run(kDeadLetterPipeline, "");
  EXPECT_EQ(r.exit_code, 3) << r.err;
  auto ev = exec_events(r.err);
  ASSERT_EQ(ev.size(), 1u) << r.err;
  EXPECT_TRUE(has(ev[0], R"("class":"fatal","action":"fail","node":"in")")) << ev[0];
  EXPECT_TRUE(has(r.err, "more than the 1% dead_letter.max_rate allows")) << r.err;
}

TEST_F(HealingTest, TheDeadLetterSinkTakesNoInput) {
  std::string p = kDeadLetterPipeline;
  p.replace(p.find("{id: dlq, type: file,"), 21, "{id: dlq, type: file, input: cheap,");
  tmp_.write("p.yaml", p);
  ProcessResult r = run_process({DATAFLOW_BIN, "validate", "p.yaml"}, tmp_.str(), 30s);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(has(
      r.err, "is the dead_letter sink: it receives the pipeline's dead letters and takes no input"))
      << r.err;
}

// The soak test of the suite (bench/soak.sh runs it for longer): faults of
// every restartable class strike the stateful pipeline at random, several
// times each; the committed exactly-once output must equal a fault-free run.
TEST_F(HealingTest, RandomFaultsInAStatefulPipelineLeaveTheOutputExact) {
  const auto expected = reference();
  const std::string faults =
      "totals:process:exception:rate=0.01:times=3:seed=11;"
      "events:produce:unavailable:rate=0.01:times=2:seed=12;"
      "out:process:io:rate=0.01:times=2:seed=13;"
      "totals:process:bad_alloc:rate=0.005:times=1:seed=14";
  ProcessResult r =
      run(pipeline("{exponential_delay: {initial: 10ms, max: 100ms, multiplier: 2}}"), faults);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto ev = exec_events(r.err);
  EXPECT_GE(ev.size(), 4u) << r.err;  // most of the 8 faults fire in a run
  for (const auto& e : ev) {
    EXPECT_TRUE(has(e, R"("action":"restart")") || has(e, R"("action":"throttle")") ||
                has(e, R"("class":"transient","action":"retry")"))
        << e;
  }
  EXPECT_EQ(committed_rows(tmp_.path() / "out"), expected);
}

}  // namespace
}  // namespace df::test
