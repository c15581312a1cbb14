// The command line contract (DESIGN §7): help, exit codes, one-sentence
// errors, graceful stop on SIGINT/SIGTERM, and the shipped examples.
#include <gtest/gtest.h>
#include <signal.h>

#include <cstdio>
#include <filesystem>

#include "tests/support/subprocess.h"

namespace fs = std::filesystem;

namespace df::test {
namespace {

ProcessResult dataflow(std::vector<std::string> args, const std::string& cwd = "") {
  args.insert(args.begin(), DATAFLOW_BIN);
  return run_process(args, cwd, std::chrono::seconds(60));
}

TEST(Cli, HelpOnEveryCommand) {
  auto top = dataflow({"--help"});
  EXPECT_EQ(top.exit_code, 0);
  EXPECT_NE(top.out.find("exec"), std::string::npos);
  EXPECT_NE(top.out.find("validate"), std::string::npos);
  for (const char* cmd : {"exec", "validate"}) {
    auto r = dataflow({cmd, "--help"});
    EXPECT_EQ(r.exit_code, 0) << cmd;
    EXPECT_NE(r.out.find("pipeline"), std::string::npos) << cmd << ": " << r.out;
  }
}

TEST(Cli, UsageErrorsExitTwo) {
  EXPECT_EQ(dataflow({}).exit_code, 2);
  EXPECT_EQ(dataflow({"frobnicate"}).exit_code, 2);
  EXPECT_EQ(dataflow({"exec"}).exit_code, 2);
  auto r = dataflow({"exec", "x.yaml", "--workers", "0"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--workers"), std::string::npos) << r.err;
}

TEST(Cli, MissingFileIsInvalidInputInOneSentence) {
  TempDir tmp;
  auto r = dataflow({"exec", "nope.yaml"}, tmp.str());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "dataflow: cannot read nope.yaml: No such file or directory\n");
}

TEST(Cli, BrokenYamlNamesTheLine) {
  TempDir tmp;
  tmp.write("p.yaml", "name: x\nsources:\n  - id: a\n    type: [generator\n");
  auto r = dataflow({"validate", "p.yaml"}, tmp.str());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("p.yaml:"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("invalid YAML"), std::string::npos) << r.err;
}

TEST(Cli, ShippedExamplesValidateAndRun) {
  TempDir tmp;
  fs::copy(fs::path(DATAFLOW_SOURCE_DIR) / "config", tmp.path() / "config",
           fs::copy_options::recursive);
  int seen = 0;
  for (const auto& e : fs::directory_iterator(tmp.path() / "config/examples")) {
    if (e.path().extension() != ".yaml") continue;
    ++seen;
    std::string rel = "config/examples/" + e.path().filename().string();
    auto v = dataflow({"validate", rel}, tmp.str());
    EXPECT_EQ(v.exit_code, 0) << rel << "\n" << v.err;
    auto x = dataflow({"exec", rel, "--no-progress"}, tmp.str());
    EXPECT_EQ(x.exit_code, 0) << rel << "\n" << x.err;
    EXPECT_NE(x.err.find("finished"), std::string::npos) << x.err;
  }
  EXPECT_GE(seen, 3);
}

TEST(Cli, DemoExampleShowsItsRows) {
  TempDir tmp;
  fs::copy(fs::path(DATAFLOW_SOURCE_DIR) / "config", tmp.path() / "config",
           fs::copy_options::recursive);
  auto r = dataflow({"exec", "config/examples/demo.yaml", "--no-progress"}, tmp.str());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("\"price_eur\":"), std::string::npos);
  EXPECT_NE(r.err.find("gen 1000000 out"), std::string::npos) << r.err;
}

// Projection pushdown end to end: the source evaluates only the fields that
// the filter and the map read, `validate` says which, and the rows are those
// of the whole computation.
TEST(Cli, ASourceFillsOnlyWhatItsConsumersRead) {
  TempDir tmp;
  tmp.write("p.yaml", R"yaml(name: projected
sources:
  - id: gen
    type: generator
    count: 2000
    fields: {id: "i", noise: "rand()", twice: "i * 2", label: "concat('x', cast(i as string))"}
transforms:
  - {id: f, type: filter, input: gen, where: "twice % 3 = 0"}
  - {id: m, type: map, input: f, select: {id: id, twice: twice}}
sinks:
  - {id: out, type: stdout, input: m}
)yaml");
  auto v = dataflow({"validate", "p.yaml"}, tmp.str());
  ASSERT_EQ(v.exit_code, 0) << v.err;
  EXPECT_NE(v.out.find("seed 0; read downstream: id, twice\n"), std::string::npos) << v.out;
  auto r = dataflow({"exec", "p.yaml", "--no-progress"}, tmp.str());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  size_t rows = 0;
  for (size_t at = 0, end; (end = r.out.find('\n', at)) != std::string::npos; at = end + 1) {
    long long id = -1, twice = -1;
    const std::string line = r.out.substr(at, end - at);
    ASSERT_EQ(std::sscanf(line.c_str(), "{\"id\":%lld,\"twice\":%lld}", &id, &twice), 2) << line;
    EXPECT_EQ(twice, 2 * id) << line;
    EXPECT_EQ(id % 3, 0) << line;
    ++rows;
  }
  EXPECT_EQ(rows, 667u);  // 0, 3, ..., 1998
}

// A map field nothing reads is not computed: its errors are not reported.
TEST(Cli, AFieldNothingReadsIsNotComputed) {
  TempDir tmp;
  const std::string head = R"yaml(name: unread
sources:
  - {id: gen, type: generator, count: 500, fields: {a: "i"}}
transforms:
  - {id: m, type: map, input: gen, select: {a: a, bad: "a / (a - a)"}}
)yaml";
  tmp.write("read.yaml", head + "sinks:\n  - {id: out, type: blackhole, input: m}\n");
  tmp.write("unread.yaml", head +
                               "  - {id: last, type: map, input: m, select: {a: a}}\n"
                               "sinks:\n  - {id: out, type: blackhole, input: last}\n");
  auto read = dataflow({"exec", "read.yaml", "--no-progress"}, tmp.str());
  ASSERT_EQ(read.exit_code, 0) << read.err;
  EXPECT_NE(read.err.find("; 500 errors"), std::string::npos) << read.err;
  auto unread = dataflow({"exec", "unread.yaml", "--no-progress"}, tmp.str());
  ASSERT_EQ(unread.exit_code, 0) << unread.err;
  EXPECT_NE(unread.err.find("; 0 errors"), std::string::npos) << unread.err;
}

// An endless generator stops cleanly, with its summary, on the first signal.
void expect_graceful_stop(int sig) {
  TempDir tmp;
  tmp.write("p.yaml",
            "name: endless\nsources:\n  - {id: gen, type: generator, fields: {x: \"i\"}}\n"
            "sinks:\n  - {id: sink, type: blackhole, input: gen}\n");
  Child child({DATAFLOW_BIN, "exec", "p.yaml", "--no-progress"}, tmp.str(), tmp.file("err"));
  // Let it run a moment (bounded), then stop it.
  child.read_for(std::chrono::milliseconds(700), 1);
  child.send_signal(sig);
  ProcessResult r = child.wait(std::chrono::seconds(20));
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("pipeline endless finished"), std::string::npos) << r.err;
}

TEST(Cli, SigintDrainsAndExitsZero) { expect_graceful_stop(SIGINT); }
TEST(Cli, SigtermDrainsAndExitsZero) { expect_graceful_stop(SIGTERM); }

}  // namespace
}  // namespace df::test
