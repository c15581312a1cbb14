// Backpressure is real: an endless generator writing to a pipe that nobody
// reads for 10 s must stay under 150 MB resident, and rows must flow again as
// soon as the reader reads.
#include <gtest/gtest.h>
#include <signal.h>

#include "tests/support/subprocess.h"

namespace df::test {
namespace {

TEST(Backpressure, SlowReaderBoundsMemoryAndFlowResumes) {
  TempDir tmp;
  tmp.write("p.yaml",
             "name: flood\n"
             "sources:\n"
             "  - id: gen\n"
             "    type: generator\n"
             "    fields: {id: \"i\", name: \"concat('user-', cast(i % 1000 as string))\",\n"
             "             price: \"rand() * 100\"}\n"
             "transforms:\n"
             "  - {id: pricey, type: map, input: gen, set: {price2: \"price * 2\"}}\n"
             "sinks:\n"
             "  - {id: out, type: stdout, input: pricey}\n");
  Child child({DATAFLOW_BIN, "exec", "p.yaml", "--no-progress"}, tmp.str(), tmp.file("err"));
  constexpr size_t kLimit = 150u << 20;
  size_t peak = 0;
  // The reader sleeps 10 s; sample the peak RSS meanwhile.
  for (int i = 0; i < 20; ++i) {
    child.read_for(std::chrono::milliseconds(500), 0);
    peak = std::max(peak, child.peak_rss_bytes());
  }
  EXPECT_GT(peak, 0u);
  EXPECT_LT(peak, kLimit) << "peak RSS " << (peak >> 20) << " MiB while the reader slept";

  // The reader reads: rows must flow (a liveness bound, not a speed test).
  std::string sample;
  size_t got = child.read_for(std::chrono::seconds(5), 64u << 20, &sample);
  EXPECT_GT(got, 1u << 20) << "less than 1 MiB arrived in 5 s after the reader woke";
  EXPECT_NE(sample.find("\"price2\":"), std::string::npos);
  peak = std::max(peak, child.peak_rss_bytes());
  EXPECT_LT(peak, kLimit);

  child.send_signal(SIGTERM);
  ProcessResult r = child.wait(std::chrono::seconds(30));
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  std::cerr << "peak RSS " << (peak >> 20) << " MiB\n";
}

TEST(Backpressure, ClosedStdoutFailsWithOneSentence) {
  TempDir tmp;
  tmp.write("p.yaml",
             "name: closed\nsources:\n  - {id: gen, type: generator, fields: {x: \"i\"}}\n"
             "sinks:\n  - {id: out, type: stdout, input: gen}\n");
  ProcessResult r;
  {
    Child child({DATAFLOW_BIN, "exec", "p.yaml", "--no-progress"}, tmp.str(), tmp.file("err"));
    child.read_for(std::chrono::milliseconds(300), 4096);
    // Closing our end of the pipe makes the next write fail with EPIPE.
    child.close_stdout();
    r = child.wait(std::chrono::seconds(30));
  }
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_NE(r.err.find("dataflow: "), std::string::npos) << r.err;
}

}  // namespace
}  // namespace df::test
