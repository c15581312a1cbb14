// Corrupted checkpoints through the real binary: a truncated manifest, a
// flipped byte in an SST, a missing _CURRENT each make the next run recover
// from an older checkpoint and say why; when nothing is usable the run fails
// with a clear message and exit code. Also `checkpoints list` and rollback
// after such damage.
#include <signal.h>

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/subprocess.h"
#include "tests/support/temp_dir.h"

namespace df::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Json = nlohmann::json;

const char* kPipeline = R"yaml(
name: rec
checkpoint: {interval: 100ms, retained: 10}
sources:
  - id: gen
    type: generator
    count: 10000000
    rate: 50000
    fields: {k: "i % 5000", ts: "cast(i as timestamp)"}
    event_time: {field: ts, max_out_of_orderness: 0s}
transforms:
  - {id: w, type: window, input: gen, key_by: [k], window: {type: tumbling, size: 1000h},
     aggregate: {n: "count(*)"}}
sinks:
  - {id: out, type: blackhole, input: w}
)yaml";

class Recovery : public ::testing::Test {
 protected:
  void SetUp() override { tmp_.write("p.yaml", kPipeline); }

  // Runs for `ms`, then SIGTERM (a stop with a checkpoint); returns stderr.
  // Runs the pipeline for `ms`, and longer (at most 20 s) until _CURRENT
  // names checkpoint `at_least` (a loaded machine checkpoints late), then
  // SIGTERMs it.
  // With `started`, it also waits (at most 20 s) until stderr holds that
  // text, so the SIGTERM never reaches a process still starting up.
  std::string run_for(std::chrono::milliseconds ms, int* exit_code = nullptr, uint64_t at_least = 0,
                      const std::string& started = {}) {
    const std::string err = tmp_.file("err-" + std::to_string(runs_++) + ".log");
    Child child({DATAFLOW_BIN, "exec", "p.yaml", "--no-progress", "--state-dir", state()},
                tmp_.str(), err);
    std::this_thread::sleep_for(ms);
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (((at_least > 0 && current_or_zero() < at_least) ||
            (!started.empty() && read_file(err).find(started) == std::string::npos)) &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(50ms);
    }
    child.send_signal(SIGTERM);
    ProcessResult r = child.wait(30s);
    EXPECT_FALSE(r.timed_out);
    if (exit_code) {
      *exit_code = r.exit_code;
    } else {
      EXPECT_EQ(r.exit_code, 0) << read_file(err);
    }
    return read_file(err);
  }
  std::string state() const { return tmp_.file("state"); }
  fs::path root() const { return fs::path(state()) / "rec"; }
  fs::path manifest(uint64_t id) const {
    return root() / "checkpoints" / std::to_string(id) / "manifest.json";
  }
  uint64_t current() const { return std::stoull(read_file((root() / "_CURRENT").string())); }
  uint64_t current_or_zero() const { return fs::exists(root() / "_CURRENT") ? current() : 0; }
  // `checkpoints list --json`, newest first; an empty array when it fails.
  Json list_checkpoints() const {
    ProcessResult list = run_process({DATAFLOW_BIN, "checkpoints", "list", "--pipeline", "rec",
                                      "--state-dir", state(), "--json"},
                                     tmp_.str(), 30s);
    EXPECT_EQ(list.exit_code, 0) << list.err;
    Json parsed = Json::parse(list.out, nullptr, /*allow_exceptions=*/false);
    EXPECT_TRUE(parsed.is_array()) << list.out;
    return parsed.is_array() ? parsed : Json::array();
  }

  TempDir tmp_;
  int runs_ = 0;
};

TEST_F(Recovery, TruncatedManifestFallsBackToThePreviousCheckpoint) {
  run_for(800ms, nullptr, 2);
  const Json listed = list_checkpoints();
  ASSERT_GE(listed.size(), 2u) << listed.dump();
  const uint64_t cur = current();
  ASSERT_EQ(listed[0]["id"].get<uint64_t>(), cur);
  // The newest complete one before it: a checkpoint aborted on a loaded
  // machine leaves a gap in the ids.
  const uint64_t previous = listed[1]["id"].get<uint64_t>();
  const std::string text = read_file(manifest(cur).string());
  write_file(manifest(cur).string(), text.substr(0, text.size() / 2));
  const std::string resumed = "resuming rec from checkpoint " + std::to_string(previous);
  const std::string log = run_for(300ms, nullptr, 0, resumed);
  EXPECT_NE(log.find("checkpoint " + std::to_string(cur)), std::string::npos) << log;
  EXPECT_NE(log.find("truncated"), std::string::npos) << log;
  EXPECT_NE(log.find(resumed), std::string::npos) << log;
}

TEST_F(Recovery, FlippedByteInAnSstFallsBackToACheckpointWithoutIt) {
  run_for(800ms, nullptr, 2);
  const uint64_t cur = current();
  const Json m = Json::parse(read_file(manifest(cur).string()));
  std::string sst;
  std::string sst_name;
  for (const auto& task : m["tasks"]) {
    for (const auto& f : task["files"]) {
      const std::string name = f["name"];
      // A RocksDB SST, or the table file of in-memory state a snapshot adds
      // (state::add_to_checkpoint); a window holding all in memory has only that.
      if (name.ends_with(".sst") || name.ends_with(".sstable")) {
        sst = f["key"];
        sst_name = name;
      }
    }
  }
  ASSERT_FALSE(sst.empty()) << m.dump();
  const fs::path path = fs::path(state()) / sst;
  std::string bytes = read_file(path.string());
  ASSERT_GT(bytes.size(), 100u);
  bytes[bytes.size() / 2] ^= 0x20;
  // Stored objects may be hard-linked into live state: replace, not rewrite.
  fs::remove(path);
  write_file(path.string(), bytes);
  const std::string log = run_for(300ms, nullptr, 0, "resuming rec from checkpoint");
  EXPECT_NE(log.find("file " + sst_name + " has a sha256 mismatch"), std::string::npos) << log;
  EXPECT_NE(log.find("resuming rec from checkpoint"), std::string::npos) << log;
  EXPECT_EQ(log.find("resuming rec from checkpoint " + std::to_string(cur) + " "),
            std::string::npos)
      << log;
}

TEST_F(Recovery, MissingCurrentUsesTheNewestManifest) {
  run_for(600ms, nullptr, 1);
  const uint64_t cur = current();
  fs::remove(root() / "_CURRENT");
  const std::string resumed = "resuming rec from checkpoint " + std::to_string(cur);
  const std::string log = run_for(300ms, nullptr, 0, resumed);
  EXPECT_NE(log.find("_CURRENT"), std::string::npos) << log;
  EXPECT_NE(log.find(resumed), std::string::npos) << log;
}

TEST_F(Recovery, NothingUsableFailsWithAClearMessage) {
  run_for(500ms, nullptr, 1);
  for (const auto& dir : fs::directory_iterator(root() / "checkpoints")) {
    write_file((dir.path() / "manifest.json").string(), "{\"format\": \"dataflow-checkpoint\"");
  }
  ProcessResult r = run_process(
      {DATAFLOW_BIN, "exec", "p.yaml", "--no-progress", "--state-dir", state()}, tmp_.str(), 30s);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("no usable checkpoint"), std::string::npos) << r.err;
  // One sentence on the last line, prefixed like every error.
  EXPECT_NE(r.err.find("dataflow: "), std::string::npos) << r.err;
}

TEST_F(Recovery, RollbackMovesCurrentAndTheNextRunResumesThere) {
  run_for(800ms, nullptr, 3);
  const uint64_t cur = current();
  ASSERT_GE(cur, 3u);
  const Json l = list_checkpoints();
  ASSERT_GE(l.size(), 3u) << l.dump();
  EXPECT_EQ(l[0]["id"].get<uint64_t>(), cur);
  EXPECT_TRUE(l[0]["current"].get<bool>());
  ProcessResult rb = run_process({DATAFLOW_BIN, "checkpoints", "rollback", "--pipeline", "rec",
                                  "--state-dir", state(), "--offset", "2"},
                                 tmp_.str(), 30s);
  ASSERT_EQ(rb.exit_code, 0) << rb.err;
  EXPECT_EQ(current(), cur - 2);
  const std::string resumed = "resuming rec from checkpoint " + std::to_string(cur - 2);
  const std::string log = run_for(300ms, nullptr, 0, resumed);
  EXPECT_NE(log.find(resumed), std::string::npos) << log;
}

}  // namespace
}  // namespace df::test
