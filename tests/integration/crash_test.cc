// Exactly-once after crashes: the real binary runs a stateful pipeline (file
// source, key_by, tumbling window, exactly-once file sink) and is killed with
// SIGKILL at random moments, then restarted on the same state directory,
// again and again; the committed output must equal that of one uninterrupted
// run, row for row. Also: SIGTERM takes a final checkpoint and the next run
// continues; a second run of a finished pipeline emits nothing more.
#include <signal.h>
#include <stdlib.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/s3_server.h"
#include "tests/support/subprocess.h"
#include "tests/support/temp_dir.h"

namespace df::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

size_t hidden_files(const fs::path& dir) {
  size_t n = 0;
  for (const auto& name : list_dir(dir)) n += !name.empty() && name[0] == '.';
  return n;
}

// 8 files of 300k rows, event time rising through them (5 ms apart), 500
// users: the window fires all along the run, not only at the end. A run
// takes well over the 400 ms the kill times reach (about 0.6 s here).
void write_input(const TempDir& tmp) {
  int64_t i = 0;
  for (int f = 0; f < 8; ++f) {
    std::string text;
    for (int r = 0; r < 300000; ++r, ++i) {
      text += "{\"user\":\"u" + std::to_string((i * 7919) % 500) +
              "\",\"amount\":" + std::to_string(i % 97) +
              ",\"ts\":" + std::to_string(1'800'000'000'000 + i * 5) + "}\n";
    }
    tmp.write("data/events-" + std::to_string(f) + ".jsonl", text);
  }
}

const char* kPipeline = R"yaml(
name: crash
parallelism: 2
checkpoint: {interval: 100ms, delivery: exactly_once}
sources:
  - id: events
    type: file
    parallelism: 1
    path: data/*.jsonl
    format: json
    schema: {user: string, amount: int64, ts: timestamp}
    event_time: {field: ts, max_out_of_orderness: 1s}
transforms:
  - id: totals
    type: window
    input: events
    key_by: [user]
    window: {type: tumbling, size: 5s}
    aggregate: {n: "count(*)", total: "sum(amount)"}
sinks:
  - {id: out, type: file, input: totals, path: OUT, format: json}
)yaml";

// `compress`: checkpoint.compression (zstd for the non-SST files).
std::string pipeline_writing_to(const std::string& out, bool compress = false) {
  std::string p = kPipeline;
  p.replace(p.find("OUT"), 3, out);
  if (compress) {
    const std::string from = "delivery: exactly_once}";
    p.replace(p.find(from), from.size(), "delivery: exactly_once, compression: true}");
  }
  return p;
}

// `extra` adds storage flags (e.g. --checkpoint-storage s3://...).
std::vector<std::string> exec_args(const std::string& pipeline, const std::string& state_dir,
                                   const std::vector<std::string>& extra = {}) {
  std::vector<std::string> argv{DATAFLOW_BIN, "exec", pipeline,       "--no-progress",
                                "--workers",  "2",    "--batch-size", "256"};
  if (!state_dir.empty()) {
    argv.push_back("--state-dir");
    argv.push_back(state_dir);
  }
  argv.insert(argv.end(), extra.begin(), extra.end());
  return argv;
}

// Runs the pipeline and kills it with SIGKILL at random moments, restarting
// it on the same state each time, until it finishes; then checks that the
// committed output equals an uninterrupted run's and that a further run adds
// nothing. Rounds (each with fresh output and state) repeat until there were
// `kills_wanted` kills in all, so a fast machine that finishes a round early
// still gets every kill. Kill times are drawn from [kill_from, kill_to]
// percent of an uninterrupted run's duration (slower storage needs later
// kills so that checkpoints complete in between). `storage_flags(round)`
// gives each round its own checkpoint storage.
void crash_and_compare(int kills_wanted, int resumes_wanted, int kill_from, int kill_to,
                       const std::function<std::vector<std::string>(int)>& storage_flags,
                       bool compress = false) {
  TempDir tmp;
  write_input(tmp);
  tmp.write("reference.yaml", pipeline_writing_to("ref-out"));

  const auto ref_started = std::chrono::steady_clock::now();
  ProcessResult ref = run_process(exec_args("reference.yaml", ""), tmp.str(), 2min);
  const auto ref_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::steady_clock::now() - ref_started)
                          .count();
  ASSERT_EQ(ref.exit_code, 0) << ref.err;
  const std::vector<std::string> expected = committed_rows(tmp.path() / "ref-out");
  ASSERT_GT(expected.size(), 10000u);

  const uint32_t seed = std::random_device{}();
  std::mt19937 rng(seed);
  // Kill times are drawn from [kill_from, kill_to] percent of the fastest
  // whole run seen: the reference, or a later fresh run that finished before
  // its kill (the reference may have run slower, beside other tests).
  int64_t run_ms = ref_ms;
  auto kill_after_ms = [&] {
    return std::uniform_int_distribution<int>(
        static_cast<int>(std::max<int64_t>(150, run_ms * kill_from / 100)),
        static_cast<int>(std::max<int64_t>(400, run_ms * kill_to / 100)))(rng);
  };
  std::cerr << "uninterrupted run: " << ref_ms << " ms; seed " << seed << "\n";
  int kills = 0;
  int resumed = 0;
  for (int round = 0; round < 8 && kills < kills_wanted; ++round) {
    SCOPED_TRACE("seed " + std::to_string(seed) + ", round " + std::to_string(round));
    const std::string out = "out-" + std::to_string(round);
    const std::string pipeline = "crash-" + std::to_string(round) + ".yaml";
    const std::string state = tmp.file("state-" + std::to_string(round));
    const std::vector<std::string> flags = storage_flags(round);
    tmp.write(pipeline, pipeline_writing_to(out, compress));
    for (int attempt = 0; attempt < 4 * kills_wanted && kills < kills_wanted; ++attempt) {
      const std::string err =
          tmp.file("err-" + std::to_string(round) + "-" + std::to_string(attempt) + ".log");
      const auto started = std::chrono::steady_clock::now();
      Child child(exec_args(pipeline, state, flags), tmp.str(), err);
      const int wait_ms = kill_after_ms();
      ProcessResult r = child.wait(std::chrono::milliseconds(wait_ms));
      const std::string log = read_file(err);
      if (log.find("resuming crash from checkpoint") != std::string::npos) ++resumed;
      if (r.timed_out) {
        ++kills;  // wait() killed it with SIGKILL mid-run
        std::cerr << "round " << round << ": kill " << kills << " after " << wait_ms
                  << " ms; committed rows so far: " << committed_rows(tmp.path() / out).size()
                  << "\n";
        continue;
      }
      ASSERT_EQ(r.exit_code, 0) << log;
      if (attempt == 0) {  // a whole run, faster than the kill
        run_ms = std::min<int64_t>(run_ms, std::chrono::duration_cast<std::chrono::milliseconds>(
                                               std::chrono::steady_clock::now() - started)
                                               .count());
        std::cerr << "round " << round << ": finished before the kill; runs take " << run_ms
                  << " ms\n";
      }
      break;  // it finished before the kill: the run below has nothing left
    }

    ProcessResult last = run_process(exec_args(pipeline, state, flags), tmp.str(), 2min);
    ASSERT_EQ(last.exit_code, 0) << last.err;
    const std::vector<std::string> got = committed_rows(tmp.path() / out);
    EXPECT_EQ(got.size(), expected.size());
    EXPECT_TRUE(got == expected) << "committed output differs from the uninterrupted run";
    EXPECT_EQ(std::adjacent_find(got.begin(), got.end()), got.end()) << "duplicate rows";
    EXPECT_EQ(hidden_files(tmp.path() / out), 0u) << "in-progress files left behind";

    // A finished pipeline resumed again has nothing left to do.
    ProcessResult again = run_process(exec_args(pipeline, state, flags), tmp.str(), 1min);
    ASSERT_EQ(again.exit_code, 0) << again.err;
    EXPECT_EQ(committed_rows(tmp.path() / out), expected);
  }
  EXPECT_GE(kills, kills_wanted) << "seed " << seed;
  EXPECT_GE(resumed, resumes_wanted) << "seed " << seed << ": runs should resume from checkpoints";
}

TEST(Crash, SigkillAtRandomMomentsLosesAndDuplicatesNothing) {
  crash_and_compare(12, 3, 10, 30, [](int) { return std::vector<std::string>{}; });
}

// On S3, with the non-SST files zstd-compressed.
TEST(Crash, SigkillWithCheckpointsOnS3) {
  if (!S3Server::node_available()) GTEST_SKIP() << S3Server::skip_reason();
  S3Server s3;
  ASSERT_TRUE(s3.ok()) << s3.error();
  // The children inherit these (S3Options falls back to AWS_*).
  setenv("AWS_ENDPOINT_URL", s3.endpoint().c_str(), 1);
  setenv("AWS_REGION", S3Server::kRegion, 1);
  setenv("AWS_ACCESS_KEY_ID", S3Server::kAccessKey, 1);
  setenv("AWS_SECRET_ACCESS_KEY", S3Server::kSecretKey, 1);
  const std::string url = "s3://" + s3.bucket() + "/crash-test-";
  crash_and_compare(
      5, 1, 30, 80,
      [&](int round) {
        return std::vector<std::string>{"--checkpoint-storage", url + std::to_string(round)};
      },
      /*compress=*/true);
}

// A generator paced at 20k rows/s; SIGTERM half-way takes a final checkpoint,
// exits 0, and the next run continues from there: together they write what
// one run writes.
TEST(Crash, SigtermTakesAFinalCheckpointAndTheNextRunContinues) {
  TempDir tmp;
  const std::string p = R"yaml(
name: paced
checkpoint: {interval: 1h, delivery: exactly_once}
sources:
  - id: gen
    type: generator
    count: 40000
    rate: 20000
    fields: {k: "i % 10", ts: "cast(i as timestamp)"}
    event_time: {field: ts, max_out_of_orderness: 0s}
transforms:
  - id: w
    type: window
    input: gen
    key_by: [k]
    window: {type: tumbling, size: 1s}
    aggregate: {n: "count(*)"}
sinks:
  - {id: out, type: file, input: w, path: OUT, format: json}
)yaml";
  std::string ref = p;
  ref.replace(ref.find("OUT"), 3, "ref-out");
  std::string run = p;
  run.replace(run.find("OUT"), 3, "out");
  tmp.write("ref.yaml", ref);
  tmp.write("run.yaml", run);
  ProcessResult r0 = run_process(exec_args("ref.yaml", ""), tmp.str(), 1min);
  ASSERT_EQ(r0.exit_code, 0) << r0.err;
  const auto expected = committed_rows(tmp.path() / "ref-out");
  ASSERT_EQ(expected.size(), 400u);

  Child child(exec_args("run.yaml", tmp.file("state")), tmp.str(), tmp.file("err1.log"));
  // The state directory appears once the process handles SIGTERM itself; a
  // slow start (a cold page cache) must not meet the signal's default action.
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (!std::filesystem::exists(tmp.file("state")) &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(20ms);
  }
  std::this_thread::sleep_for(500ms);
  child.send_signal(SIGTERM);
  ProcessResult r1 = child.wait(30s);
  const std::string log1 = read_file(tmp.file("err1.log"));
  ASSERT_FALSE(r1.timed_out) << log1;
  ASSERT_EQ(r1.exit_code, 0) << log1;
  EXPECT_NE(log1.find("taking a final checkpoint"), std::string::npos) << log1;
  const auto first = committed_rows(tmp.path() / "out");
  EXPECT_LT(first.size(), expected.size()) << "the stop came after the end; pace the generator";

  ProcessResult r2 = run_process(exec_args("run.yaml", tmp.file("state")), tmp.str(), 1min);
  ASSERT_EQ(r2.exit_code, 0) << r2.err;
  EXPECT_NE(r2.err.find("resuming paced from checkpoint"), std::string::npos) << r2.err;
  EXPECT_EQ(committed_rows(tmp.path() / "out"), expected);
}

}  // namespace
}  // namespace df::test
