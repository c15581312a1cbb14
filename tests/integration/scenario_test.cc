// Runs every scenario under tests/integration/scenarios/ against the real
// binary. A scenario is a folder holding pipeline.yaml, its input files and
// expect.yaml:
//
//   args: [exec, pipeline.yaml]   # default; --no-progress is always added to exec
//   exit: 0                       # expected exit code (default 0)
//   stdout: expected.jsonl        # compare stdout lines with this file
//   output: {dir: out/x, expected: expected.jsonl}   # committed part files' lines
//   outputs: [{dir: ..., expected: ...}, ...]         # several
//   sort: true                    # compare lines as sorted multisets (default true)
//   stdout_contains: ["..."]      # substrings
//   stderr_contains: ["..."]
//
// Each run happens in a fresh copy of the folder, so relative paths work.
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <sstream>

#include "tests/support/subprocess.h"

namespace fs = std::filesystem;

namespace df::test {
namespace {

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) lines.push_back(line);
  }
  return lines;
}

// Every committed part file under dir (names not starting with '.' or '_').
std::string committed_output(const fs::path& dir) {
  std::vector<fs::path> files;
  if (fs::exists(dir)) {
    for (const auto& e : fs::recursive_directory_iterator(dir)) {
      std::string name = e.path().filename().string();
      if (e.is_regular_file() && name[0] != '.' && name[0] != '_') files.push_back(e.path());
    }
  }
  std::sort(files.begin(), files.end());
  std::string all;
  for (const auto& f : files) all += read_file(f.string());
  return all;
}

void expect_same_lines(std::vector<std::string> actual, std::vector<std::string> expected,
                       bool sort, const std::string& what) {
  if (sort) {
    std::sort(actual.begin(), actual.end());
    std::sort(expected.begin(), expected.end());
  }
  EXPECT_EQ(actual.size(), expected.size()) << what << ": line count";
  for (size_t i = 0; i < std::min(actual.size(), expected.size()); ++i) {
    if (actual[i] != expected[i]) {
      ADD_FAILURE() << what << ": first difference at line " << i + 1 << "\n  actual:   "
                    << actual[i] << "\n  expected: " << expected[i];
      return;
    }
  }
}

std::vector<std::string> scenario_names() {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(DATAFLOW_SCENARIO_DIR)) {
    if (e.is_directory()) names.push_back(e.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

class Scenario : public ::testing::TestWithParam<std::string> {};

TEST_P(Scenario, MatchesExpectations) {
  const fs::path source = fs::path(DATAFLOW_SCENARIO_DIR) / GetParam();
  TempDir tmp;
  fs::copy(source, tmp.path(), fs::copy_options::recursive);
  YAML::Node expect = YAML::LoadFile((source / "expect.yaml").string());

  std::vector<std::string> argv{DATAFLOW_BIN};
  if (expect["args"]) {
    for (const auto& a : expect["args"]) argv.push_back(a.as<std::string>());
  } else {
    argv.insert(argv.end(), {"exec", "pipeline.yaml"});
  }
  if (argv.size() > 1 && argv[1] == "exec") argv.push_back("--no-progress");

  ProcessResult r = run_process(argv, tmp.str(), std::chrono::seconds(120));
  ASSERT_FALSE(r.timed_out) << "the run did not end within 120 s";
  const int want_exit = expect["exit"] ? expect["exit"].as<int>() : 0;
  EXPECT_EQ(r.exit_code, want_exit) << "stderr:\n" << r.err;
  const bool sort = expect["sort"] ? expect["sort"].as<bool>() : true;

  if (expect["stdout"]) {
    std::string want = read_file((source / expect["stdout"].as<std::string>()).string());
    expect_same_lines(lines_of(r.out), lines_of(want), sort, "stdout");
  }
  std::vector<YAML::Node> outputs;
  if (expect["output"]) outputs.push_back(expect["output"]);
  for (const auto& o : expect["outputs"]) outputs.push_back(o);
  for (const auto& o : outputs) {
    const std::string dir = o["dir"].as<std::string>();
    std::string got = committed_output(tmp.path() / dir);
    std::string want = read_file((source / o["expected"].as<std::string>()).string());
    expect_same_lines(lines_of(got), lines_of(want), sort, "output " + dir);
  }
  for (const auto& s : expect["stdout_contains"]) {
    EXPECT_NE(r.out.find(s.as<std::string>()), std::string::npos)
        << "stdout lacks: " << s.as<std::string>() << "\nstdout:\n" << r.out;
  }
  for (const auto& s : expect["stderr_contains"]) {
    EXPECT_NE(r.err.find(s.as<std::string>()), std::string::npos)
        << "stderr lacks: " << s.as<std::string>() << "\nstderr:\n" << r.err;
  }
}

INSTANTIATE_TEST_SUITE_P(Scenarios, Scenario, ::testing::ValuesIn(scenario_names()),
                         [](const auto& info) {
                           std::string n = info.param;
                           std::replace(n.begin(), n.end(), '-', '_');
                           return n;
                         });

}  // namespace
}  // namespace df::test
