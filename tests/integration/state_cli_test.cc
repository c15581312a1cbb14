// `dataflow state export|import` and `dataflow checkpoints list|rollback`
// driven through the real binary on a real local checkpoint directory
// (DESIGN §4/§7): exit codes, one-sentence errors, storage untouched by a
// failed import, lossless round trips, and bounded memory on large state.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "tests/support/s3_server.h"
#include "tests/support/subprocess.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace df::test {
namespace {

ProcessResult dataflow(std::vector<std::string> args, const std::string& cwd,
                       std::chrono::milliseconds timeout = std::chrono::seconds(120)) {
  args.insert(args.begin(), DATAFLOW_BIN);
  return run_process(args, cwd, timeout);
}

const char* kPipeline = R"yaml(
name: dd
parallelism: 2
sources:
  - id: gen
    type: generator
    count: 1000
    fields: {user: "i % 50", page: "concat('/p', cast(i % 7 as string))"}
transforms:
  - {id: firsts, type: dedupe, input: gen, key_by: [user, page], within: 1h}
sinks:
  - {id: out, type: blackhole, input: firsts}
)yaml";

// A dedupe state export with `per_subtask` entries in each of two subtasks,
// written entry by entry.
void write_state(const std::string& path, uint64_t per_subtask, const std::string& page = "/p") {
  std::ofstream out(path, std::ios::binary);
  out << R"({"format": "dataflow-state", "version": 1, "pipeline": "dd", "nodes": [)"
      << "\n";
  for (int sub = 0; sub < 2; ++sub) {
    out << R"( {"node": "gen", "type": "generator", "subtask": )" << sub
        << R"(, "meta": null, "entries": []},)"
        << "\n";
  }
  for (int sub = 0; sub < 2; ++sub) {
    out << R"( {"node": "firsts", "type": "dedupe", "subtask": )" << sub
        << R"(, "state_format_version": 1, "max_event_time": null,)"
        << R"( "meta": {"entries": )" << per_subtask << R"(, "next_purge": null}, "entries": [)";
    for (uint64_t i = 0; i < per_subtask; ++i) {
      out << (i ? ",\n  " : "\n  ") << R"({"key": {"user": )" << (i * 2 + sub) << R"(, "page": ")"
          << page << i % 7
          << R"("}, "first_seen": "2026-11-21T10:00:00.000Z", "expires": "2026-11-21T11:00:00.000Z"})";
    }
    out << "]},\n";
  }
  out << R"( {"node": "out", "subtask": 0, "entries": []},)"
      << "\n";
  out << R"( {"node": "out", "subtask": 1, "entries": []}]})"
      << "\n";
}

// Every file under `dir` with its size and modification time.
std::string listing(const fs::path& dir) {
  std::vector<std::string> rows;
  if (!fs::exists(dir)) return "(none)";
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    rows.push_back(fs::relative(e.path(), dir).string() + " " + std::to_string(e.file_size()) +
                   " " + std::to_string(e.last_write_time().time_since_epoch().count()));
  }
  std::sort(rows.begin(), rows.end());
  std::string s;
  for (const auto& r : rows) s += r + "\n";
  return s;
}

json nodes_of(const std::string& path) {
  std::ifstream in(path);
  return json::parse(in)["nodes"];
}

class StateCli : public ::testing::Test {
 protected:
  void SetUp() override { tmp_.write("p.yaml", kPipeline); }

  ProcessResult import(const std::string& file, bool with_pipeline_file = true) {
    std::vector<std::string> a = {"state",   "import", "--pipeline",  "dd",
                                  "--input", file,     "--state-dir", "sd"};
    if (with_pipeline_file) {
      a.push_back("--pipeline-file");
      a.push_back("p.yaml");
    }
    return dataflow(a, tmp_.str());
  }
  ProcessResult export_to(const std::string& file) {
    return dataflow({"state", "export", "--pipeline", "dd", "--output", file, "--state-dir", "sd"},
                    tmp_.str());
  }
  ProcessResult list(bool as_json = false) {
    std::vector<std::string> a = {"checkpoints", "list", "--pipeline", "dd", "--state-dir", "sd"};
    if (as_json) a.push_back("--json");
    return dataflow(a, tmp_.str());
  }
  // Three checkpoints (ids 1, 2, 3), each an import; 3 is current.
  void make_three() {
    write_state(tmp_.file("s.json"), 20);
    for (int i = 0; i < 3; ++i) {
      auto r = import("s.json");
      ASSERT_EQ(r.exit_code, 0) << r.err;
    }
  }

  TempDir tmp_;
};

TEST_F(StateCli, ImportExportRoundTripIsLossless) {
  write_state(tmp_.file("in.json"), 500);
  auto imp = import("in.json");
  ASSERT_EQ(imp.exit_code, 0) << imp.err;
  EXPECT_EQ(imp.out, "imported 1000 entries (6 node states) into dd as checkpoint 1 (was none)\n");

  auto a = export_to("a.json");
  ASSERT_EQ(a.exit_code, 0) << a.err;
  EXPECT_NE(a.err.find("exported checkpoint 1 of dd"), std::string::npos) << a.err;
  json in = nodes_of(tmp_.file("in.json"));
  json ja = nodes_of(tmp_.file("a.json"));
  ASSERT_EQ(ja.size(), 6u);
  EXPECT_EQ(ja[2]["node"], "firsts");
  EXPECT_EQ(ja[2]["meta"], in[2]["meta"]);
  // Same entries (the export is in key order; compare as sorted sets).
  for (int n = 2; n <= 3; ++n) {
    std::vector<std::string> x, y;
    for (const auto& e : in[n]["entries"]) x.push_back(e.dump());
    for (const auto& e : ja[n]["entries"]) y.push_back(e.dump());
    std::sort(x.begin(), x.end());
    std::sort(y.begin(), y.end());
    EXPECT_EQ(x, y) << "subtask " << n - 2;
  }

  // export -> import (plan from the current checkpoint) -> export: identical.
  auto again = import("a.json", /*with_pipeline_file=*/false);
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_NE(again.out.find("as checkpoint 2 (was 1)"), std::string::npos) << again.out;
  auto b = export_to("b.json");
  ASSERT_EQ(b.exit_code, 0) << b.err;
  EXPECT_EQ(nodes_of(tmp_.file("b.json")), ja);
  for (const auto& name : list_dir(tmp_.path())) {
    EXPECT_EQ(name.find(".tmp"), std::string::npos) << name;
  }
}

TEST_F(StateCli, ListShowsNewestFirstWithTheCurrentMarked) {
  make_three();
  auto r = list();
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("ID"), std::string::npos) << r.out;
  size_t p3 = r.out.find("* 3 "), p2 = r.out.find("  2 "), p1 = r.out.find("  1 ");
  ASSERT_NE(p3, std::string::npos) << r.out;
  ASSERT_NE(p2, std::string::npos) << r.out;
  ASSERT_NE(p1, std::string::npos) << r.out;
  EXPECT_LT(p3, p2);
  EXPECT_LT(p2, p1);
  EXPECT_NE(r.out.find("import"), std::string::npos);

  auto j = list(true);
  ASSERT_EQ(j.exit_code, 0) << j.err;
  json arr = json::parse(j.out);
  ASSERT_EQ(arr.size(), 3u);
  EXPECT_EQ(arr[0]["id"], 3);
  EXPECT_EQ(arr[0]["current"], true);
  EXPECT_EQ(arr[0]["kind"], "import");
  EXPECT_GT(arr[0]["size_bytes"].get<uint64_t>(), 0u);
  EXPECT_TRUE(arr[0]["created"].is_string());
  EXPECT_EQ(arr[2]["id"], 1);
  EXPECT_EQ(arr[2]["current"], false);

  // A damaged manifest is listed with its problem.
  std::string m = tmp_.file("sd/dd/checkpoints/2/manifest.json");
  std::string text = read_file(m);
  write_file(m, text.substr(0, text.size() / 2));
  auto bad = list();
  ASSERT_EQ(bad.exit_code, 0) << bad.err;
  EXPECT_NE(bad.out.find("2      invalid: manifest of checkpoint 2"), std::string::npos) << bad.out;
}

TEST_F(StateCli, RollbackByOffsetAndById) {
  make_three();
  auto r = dataflow(
      {"checkpoints", "rollback", "--pipeline", "dd", "--state-dir", "sd", "--offset", "1"},
      tmp_.str());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "rolled back dd to checkpoint 2 (was 3)\n");
  EXPECT_NE(list().out.find("* 2 "), std::string::npos);

  r = dataflow({"checkpoints", "rollback", "--pipeline", "dd", "--state-dir", "sd", "--id", "1"},
               tmp_.str());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "rolled back dd to checkpoint 1 (was 2)\n");
  // Nothing was deleted; export now reads checkpoint 1.
  EXPECT_EQ(json::parse(list(true).out).size(), 3u);
  auto e = export_to("e.json");
  ASSERT_EQ(e.exit_code, 0) << e.err;
  EXPECT_NE(e.err.find("exported checkpoint 1 of dd"), std::string::npos) << e.err;

  std::string before = listing(tmp_.path() / "sd");
  r = dataflow(
      {"checkpoints", "rollback", "--pipeline", "dd", "--state-dir", "sd", "--offset", "5"},
      tmp_.str());
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_EQ(r.err.rfind("dataflow: cannot roll back dd: ", 0), 0u) << r.err;
  r = dataflow({"checkpoints", "rollback", "--pipeline", "dd", "--state-dir", "sd", "--id", "99"},
               tmp_.str());
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(listing(tmp_.path() / "sd"), before);

  // Usage errors.
  EXPECT_EQ(dataflow({"checkpoints", "rollback", "--pipeline", "dd", "--state-dir", "sd", "--id",
                      "1", "--offset", "1"},
                     tmp_.str())
                .exit_code,
            2);
  EXPECT_EQ(
      dataflow({"checkpoints", "rollback", "--pipeline", "dd", "--state-dir", "sd", "--id", "x"},
               tmp_.str())
          .exit_code,
      2);
  EXPECT_EQ(dataflow({"checkpoints", "list", "--pipeline", "dd"}, tmp_.str()).exit_code, 2);
  EXPECT_EQ(dataflow({"checkpoints", "list", "--pipeline", "dd", "--state-dir", "sd",
                      "--checkpoint-storage", "sd"},
                     tmp_.str())
                .exit_code,
            2);
  EXPECT_EQ(dataflow({"checkpoints"}, tmp_.str()).exit_code, 2);
}

TEST_F(StateCli, UnknownPipelineOrNoCheckpointIsInvalidInput) {
  auto r =
      dataflow({"checkpoints", "list", "--pipeline", "dd", "--state-dir", "nowhere"}, tmp_.str());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "dataflow: pipeline 'dd' has no checkpoints in nowhere (no such directory).\n");
  EXPECT_FALSE(fs::exists(tmp_.file("nowhere")));
  make_three();
  r = dataflow({"checkpoints", "list", "--pipeline", "other", "--state-dir", "sd"}, tmp_.str());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "dataflow: pipeline 'other' has no checkpoints in sd.\n");
  r = dataflow(
      {"state", "export", "--pipeline", "other", "--output", "o.json", "--state-dir", "sd"},
      tmp_.str());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("pipeline 'other' has no checkpoint"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(tmp_.file("o.json")));
  // Import into a pipeline without checkpoints needs --pipeline-file.
  r = dataflow({"state", "import", "--pipeline", "dd", "--input", "s.json", "--state-dir", "empty"},
               tmp_.str());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("give --pipeline-file FILE"), std::string::npos) << r.err;
}

TEST_F(StateCli, MalformedImportsChangeNothing) {
  make_three();
  auto good = export_to("good.json");
  ASSERT_EQ(good.exit_code, 0) << good.err;
  std::string text = read_file(tmp_.file("good.json"));

  struct Case {
    std::string name;
    std::string content;
    std::string message;
  };
  json unknown = json::parse(text);
  unknown["nodes"][2]["node"] = "nope";
  json wrong_type = json::parse(text);
  wrong_type["nodes"][3]["entries"][7]["first_seen"] = 12.5;
  json other = json::parse(text);
  other["pipeline"] = "other";
  std::vector<Case> cases = {
      {"truncated.json", text.substr(0, text.size() * 2 / 3), "is not valid JSON at line"},
      {"unknown.json", unknown.dump(1), "node 'nope' is not in pipeline 'dd'"},
      {"type.json", wrong_type.dump(1), "node 'firsts' subtask 1 entry 7: "},
      {"other.json", other.dump(1), "holds the state of pipeline 'other', not 'dd'"},
      {"array.json", "[]", "is not a DataFlow state export"},
  };
  const std::string before = listing(tmp_.path() / "sd");
  for (const Case& c : cases) {
    write_file(tmp_.file(c.name), c.content);
    auto r = import(c.name, false);
    EXPECT_EQ(r.exit_code, 1) << c.name << ": " << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_EQ(r.err.rfind("dataflow: " + c.name, 0), 0u) << r.err;
    EXPECT_NE(r.err.find(c.message), std::string::npos) << c.name << ": " << r.err;
    EXPECT_EQ(listing(tmp_.path() / "sd"), before) << c.name;
  }
  auto missing = import("missing.json", false);
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_EQ(missing.err, "dataflow: cannot read missing.json: No such file or directory.\n");
  EXPECT_EQ(listing(tmp_.path() / "sd"), before);
}

TEST_F(StateCli, PipelineFileMustBeTheNamedPipeline) {
  write_state(tmp_.file("s.json"), 3);
  tmp_.write("q.yaml", std::string(kPipeline).replace(std::string(kPipeline).find("name: dd"), 8,
                                                      "name: qq"));
  auto r = dataflow({"state", "import", "--pipeline", "dd", "--input", "s.json", "--state-dir",
                     "sd", "--pipeline-file", "q.yaml"},
                    tmp_.str());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "dataflow: q.yaml is pipeline 'qq', not 'dd'.\n");
  // With --parallelism 1, the two subtasks of the file do not fit.
  r = dataflow({"state", "import", "--pipeline", "dd", "--input", "s.json", "--state-dir", "sd",
                "--pipeline-file", "p.yaml", "--parallelism", "1"},
               tmp_.str());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("subtask 1 does not exist"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(tmp_.file("sd/dd/_CURRENT")));
}

TEST_F(StateCli, ExportToStdout) {
  write_state(tmp_.file("s.json"), 3);
  ASSERT_EQ(import("s.json").exit_code, 0);
  auto r = dataflow({"state", "export", "--pipeline", "dd", "--output", "-", "--state-dir", "sd"},
                    tmp_.str());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json doc = json::parse(r.out);
  EXPECT_EQ(doc["format"], "dataflow-state");
  EXPECT_EQ(doc["checkpoint_id"], 1);
  EXPECT_EQ(doc["nodes"][2]["entries"].size(), 3u);
}

// The same commands against S3 (s3rver), credentials from AWS_* variables.
TEST_F(StateCli, WorksOnS3) {
  if (!S3Server::node_available()) GTEST_SKIP() << S3Server::skip_reason();
  S3Server s3;
  ASSERT_TRUE(s3.ok()) << s3.error();
  ::setenv("AWS_ACCESS_KEY_ID", S3Server::kAccessKey, 1);
  ::setenv("AWS_SECRET_ACCESS_KEY", S3Server::kSecretKey, 1);
  ::setenv("AWS_ENDPOINT_URL", s3.endpoint().c_str(), 1);
  ::setenv("AWS_REGION", S3Server::kRegion, 1);
  const std::string url = "s3://" + s3.bucket() + "/team/ckpt";
  write_state(tmp_.file("s.json"), 200);
  for (int i = 0; i < 2; ++i) {
    auto r = dataflow({"state", "import", "--pipeline", "dd", "--input", "s.json",
                       "--checkpoint-storage", url, "--pipeline-file", "p.yaml"},
                      tmp_.str());
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  auto l =
      dataflow({"checkpoints", "list", "--pipeline", "dd", "--checkpoint-storage", url, "--json"},
               tmp_.str());
  ASSERT_EQ(l.exit_code, 0) << l.err;
  EXPECT_EQ(json::parse(l.out).size(), 2u);
  auto rb = dataflow({"checkpoints", "rollback", "--pipeline", "dd", "--checkpoint-storage", url},
                     tmp_.str());
  ASSERT_EQ(rb.exit_code, 0) << rb.err;
  EXPECT_EQ(rb.out, "rolled back dd to checkpoint 1 (was 2)\n");
  auto e = dataflow(
      {"state", "export", "--pipeline", "dd", "--output", "e.json", "--checkpoint-storage", url},
      tmp_.str());
  ASSERT_EQ(e.exit_code, 0) << e.err;
  json nodes = nodes_of(tmp_.file("e.json"));
  EXPECT_EQ(nodes[2]["entries"].size() + nodes[3]["entries"].size(), 400u);
  ::unsetenv("AWS_ENDPOINT_URL");
}

// A checkpoint written by `dataflow exec --state-dir` exports, imports back
// unchanged, and an edited import is what the next run resumes from.
TEST_F(StateCli, ExecCheckpointExportsImportsAndResumes) {
  auto run = dataflow({"exec", "p.yaml", "--state-dir", "sd", "--no-progress"}, tmp_.str());
  ASSERT_EQ(run.exit_code, 0) << run.err;
  ASSERT_EQ(list().exit_code, 0) << "dataflow exec wrote no checkpoint";
  auto a = export_to("a.json");
  ASSERT_EQ(a.exit_code, 0) << a.err;
  json doc;
  {
    std::ifstream in(tmp_.file("a.json"));
    doc = json::parse(in);
  }
  size_t entries = 0;
  for (const auto& n : doc["nodes"]) {
    if (n["node"] == "firsts") entries += n["entries"].size();
  }
  EXPECT_EQ(entries, 350u);  // 50 users x 7 pages
  ASSERT_EQ(import("a.json", false).exit_code, 0);
  auto b = export_to("b.json");
  ASSERT_EQ(b.exit_code, 0) << b.err;
  EXPECT_EQ(nodes_of(tmp_.file("b.json")), doc["nodes"]);

  // Restart the generator but keep what dedupe has seen: nothing is new.
  for (auto& n : doc["nodes"]) {
    if (n["node"] == "gen") n["meta"] = nullptr;
  }
  write_file(tmp_.file("edited.json"), doc.dump(1));
  ASSERT_EQ(import("edited.json", false).exit_code, 0);
  run = dataflow({"exec", "p.yaml", "--state-dir", "sd", "--no-progress"}, tmp_.str());
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_NE(run.err.find("firsts 1000 in 0 out"), std::string::npos) << run.err;

  // And with dedupe's entries removed, every key is new again.
  for (auto& n : doc["nodes"]) {
    if (n["node"] == "firsts") n["entries"] = json::array();
  }
  write_file(tmp_.file("empty.json"), doc.dump(1));
  ASSERT_EQ(import("empty.json", false).exit_code, 0);
  run = dataflow({"exec", "p.yaml", "--state-dir", "sd", "--no-progress"}, tmp_.str());
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_NE(run.err.find("firsts 1000 in 350 out"), std::string::npos) << run.err;
}

// One million entries: both directions stream, so peak RSS stays far below
// what holding the document (~110 MB of JSON) in memory would take.
TEST_F(StateCli, LargeStateStreamsInBoundedMemory) {
  write_state(tmp_.file("big.json"), 500000, "/page-");
  const auto json_bytes = fs::file_size(tmp_.file("big.json"));
  auto imp = dataflow({"state", "import", "--pipeline", "dd", "--input", "big.json", "--state-dir",
                       "sd", "--pipeline-file", "p.yaml"},
                      tmp_.str(), std::chrono::minutes(4));
  ASSERT_EQ(imp.exit_code, 0) << imp.err;
  EXPECT_NE(imp.out.find("imported 1000000 entries"), std::string::npos) << imp.out;
  auto exp =
      dataflow({"state", "export", "--pipeline", "dd", "--output", "out.json", "--state-dir", "sd"},
               tmp_.str(), std::chrono::minutes(4));
  ASSERT_EQ(exp.exit_code, 0) << exp.err;
  EXPECT_NE(exp.err.find("1000000 entries"), std::string::npos) << exp.err;
  const auto out_bytes = fs::file_size(tmp_.file("out.json"));
  std::printf(
      "[ measure ] document %.1f MB in, %.1f MB out; peak RSS import %.1f MB, export %.1f MB\n",
      json_bytes / 1e6, out_bytes / 1e6, imp.max_rss_kb / 1024.0, exp.max_rss_kb / 1024.0);
  EXPECT_LT(imp.max_rss_kb, 100 * 1024);
  EXPECT_LT(exp.max_rss_kb, 100 * 1024);
  EXPECT_LT(static_cast<double>(exp.max_rss_kb) * 1024, static_cast<double>(out_bytes));
}

}  // namespace
}  // namespace df::test
