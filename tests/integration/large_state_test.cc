// State larger than memory: 5 million distinct keys counted by a window whose
// state spills to RocksDB, with the block cache held to 16 MiB. Every count
// must come out right, and the process must stay far below what holding all
// keys in memory takes.
#include <gtest/gtest.h>

#include "tests/support/subprocess.h"

namespace df::test {
namespace {

TEST(LargeState, FiveMillionKeysWithA16MiBBlockCache) {
  TempDir tmp;
  tmp.write("p.yaml", R"yaml(
name: big-state
sources:
  - id: gen
    type: generator
    count: 10000000                 # every key twice
    fields:
      user: "concat('user-', cast(i % 5000000 as string))"
      ts: "cast(i / 1000 as timestamp)"
    event_time: {field: ts, max_out_of_orderness: 0s}
transforms:
  - id: counts
    type: window
    input: gen
    key_by: [user]
    window: {type: tumbling, size: 1h}
    aggregate: {n: "count(*)"}
  - {id: wrong, type: filter, input: counts, where: "n != 2"}
sinks:
  - {id: out, type: stdout, input: wrong}
  - {id: all, type: blackhole, input: counts}
)yaml");
  ProcessResult r = run_process({DATAFLOW_BIN, "exec", "p.yaml", "--no-progress", "--state-dir",
                                 tmp.file("state"), "--state-cache-mb", "16", "--state-memory-mb", "16"},
                                tmp.str(), std::chrono::minutes(5));
  ASSERT_FALSE(r.timed_out);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "") << "rows whose count is not 2";
  EXPECT_NE(r.err.find("counts 10000000 in 5000000 out"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("wrong 5000000 in 0 out"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("; 0 errors"), std::string::npos) << r.err;
  // 5M keys with their accumulators take well over 500 MB held in memory.
  EXPECT_LT(r.max_rss_kb, 300 * 1024) << "peak RSS " << r.max_rss_kb / 1024 << " MiB";
  std::cerr << "peak RSS " << r.max_rss_kb / 1024 << " MiB\n";
}

}  // namespace
}  // namespace df::test
