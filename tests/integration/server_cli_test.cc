// The REST client commands (`dataflow submit`, `pipelines ...`, `runs ...`,
// `state export|import --server`, `checkpoints list|rollback --server`)
// driven through the real binary against a real server (`dataflow run
// --config`) listening on free ports of 127.0.0.1 (DESIGN §7/§8): tables,
// `--output json`, exit codes and one-sentence errors.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "cli/http_client.h"
#include "tests/support/server_process.h"
#include "tests/support/subprocess.h"

using nlohmann::json;
using namespace std::chrono_literals;

namespace df::test {
namespace {

using Clock = std::chrono::steady_clock;

ProcessResult dataflow(std::vector<std::string> args, const std::string& cwd = "") {
  args.insert(args.begin(), DATAFLOW_BIN);
  return run_process(args, cwd, std::chrono::seconds(60));
}

// An unbounded, stateful pipeline: dedupe keeps one entry per (user, page).
const char* kPipeline = R"yaml(name: clicks
parallelism: 2
checkpoint: {interval: 200ms}
sources:
  - id: gen
    type: generator
    rate: 2000
    fields: {user: "i % 50", page: "concat('/p', cast(i % 7 as string))"}
transforms:
  - {id: firsts, type: dedupe, input: gen, key_by: [user, page], within: 1h}
sinks:
  - {id: out, type: blackhole, input: firsts}
)yaml";

class ServerCli : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(server_.ready()) << "the server did not become ready: " << server_.log();
    pipeline_file_ = dir_.write("clicks.yaml", kPipeline);
  }

  // `dataflow ARGS --server URL`.
  ProcessResult client(std::vector<std::string> args) {
    args.push_back("--server");
    args.push_back(server_.url());
    return dataflow(std::move(args), dir_.str());
  }
  json client_json(std::vector<std::string> args) {
    args.push_back("--output");
    args.push_back("json");
    auto r = client(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    json doc = json::parse(r.out, nullptr, false);
    if (doc.is_object()) return doc;
    ADD_FAILURE() << "not a JSON object: " << r.out;
    return json::object();
  }
  // Polls `runs get ID` until its status is `status` (bounded: 30 s).
  json wait_for_run(const std::string& id, const std::string& status) {
    json run;
    const auto deadline = Clock::now() + 30s;
    while (Clock::now() < deadline) {
      run = client_json({"runs", "get", id});
      if (run.is_object() && run["status"] == status) return run;
      std::this_thread::sleep_for(100ms);
    }
    ADD_FAILURE() << "run " << id << " never became " << status << ": " << run.dump()
                  << "\nserver log:\n"
                  << server_.log();
    return run;
  }
  // Submits and starts the pipeline, waits for a checkpoint, stops it after
  // a final one; returns the run id.
  std::string run_and_stop() {
    auto submitted = client({"submit", pipeline_file_, "--start"});
    EXPECT_EQ(submitted.exit_code, 0) << submitted.err;
    json p = client_json({"pipelines", "get", "clicks"});
    std::string run = p.value("current_run", "");
    EXPECT_FALSE(run.empty()) << p.dump();
    wait_for_run(run, "running");
    const auto deadline = Clock::now() + 30s;
    while (Clock::now() < deadline && client_json({"runs", "get", run}).value("checkpoints", 0) < 1)
      std::this_thread::sleep_for(100ms);
    auto stopped = client({"pipelines", "stop", "clicks"});
    EXPECT_EQ(stopped.exit_code, 0) << stopped.err;
    wait_for_run(run, "cancelled");
    return run;
  }

  TempDir dir_;
  ServerProcess server_{DATAFLOW_BIN, dir_};
  std::string pipeline_file_;
};

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

// The words of a table row, split on runs of spaces.
std::vector<std::string> cells(const std::string& row) {
  std::vector<std::string> out;
  std::istringstream in(row);
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

TEST_F(ServerCli, PipelineLifecycle) {
  auto submit = client({"submit", pipeline_file_});
  ASSERT_EQ(submit.exit_code, 0) << submit.err;
  EXPECT_EQ(submit.out, "pipeline clicks version 1 created\n");

  auto list = client({"pipelines", "list"});
  ASSERT_EQ(list.exit_code, 0) << list.err;
  auto rows = lines(list.out);
  ASSERT_EQ(rows.size(), 2u) << list.out;
  EXPECT_EQ(cells(rows[0]),
            (std::vector<std::string>{"NAME", "VERSION", "STATUS", "RUN", "UPDATED"}));
  auto row = cells(rows[1]);
  ASSERT_EQ(row.size(), 5u) << rows[1];
  EXPECT_EQ(row[0], "clicks");
  EXPECT_EQ(row[1], "1");
  EXPECT_EQ(row[2], "stopped");
  EXPECT_EQ(row[3], "-");
  // Columns are aligned: each header starts where its cells start.
  EXPECT_EQ(rows[0].find("VERSION"), rows[1].find(" 1 ") + 1) << list.out;

  auto get = client({"pipelines", "get", "clicks"});
  ASSERT_EQ(get.exit_code, 0) << get.err;
  EXPECT_NE(get.out.find("name:    clicks\n"), std::string::npos) << get.out;
  EXPECT_NE(get.out.find("status:  stopped\n"), std::string::npos) << get.out;
  auto spec = client({"pipelines", "get", "clicks", "--spec"});
  ASSERT_EQ(spec.exit_code, 0) << spec.err;
  EXPECT_EQ(spec.out, kPipeline);

  auto start = client({"pipelines", "start", "clicks"});
  ASSERT_EQ(start.exit_code, 0) << start.err;
  ASSERT_EQ(start.out.rfind("pipeline clicks started: run ", 0), 0u) << start.out;
  std::string run = start.out.substr(std::string("pipeline clicks started: run ").size());
  run.pop_back();  // '\n'
  wait_for_run(run, "running");

  auto runs = client({"runs", "list", "--pipeline", "clicks"});
  ASSERT_EQ(runs.exit_code, 0) << runs.err;
  rows = lines(runs.out);
  ASSERT_EQ(rows.size(), 2u) << runs.out;
  EXPECT_EQ(cells(rows[0]),
            (std::vector<std::string>{"ID", "PIPELINE", "VERSION", "STATUS", "STARTED", "ENDED",
                                      "RESTARTS", "CHECKPOINTS"}));
  row = cells(rows[1]);
  ASSERT_EQ(row.size(), 8u) << rows[1];
  EXPECT_EQ(row[0], run);
  EXPECT_EQ(row[1], "clicks");
  EXPECT_EQ(row[3], "running");
  EXPECT_EQ(row[5], "-");

  auto one = client({"runs", "get", run});
  ASSERT_EQ(one.exit_code, 0) << one.err;
  EXPECT_NE(one.out.find("id:              " + run + "\n"), std::string::npos) << one.out;
  EXPECT_NE(one.out.find("pipeline:        clicks\n"), std::string::npos) << one.out;

  // Running: delete is refused (409: exit 1, one sentence).
  auto busy = client({"pipelines", "delete", "clicks"});
  EXPECT_EQ(busy.exit_code, 1) << busy.out;
  EXPECT_EQ(lines(busy.err).size(), 1u) << busy.err;
  EXPECT_EQ(busy.err.rfind("dataflow: ", 0), 0u) << busy.err;

  auto stop = client({"pipelines", "stop", "clicks"});
  ASSERT_EQ(stop.exit_code, 0) << stop.err;
  EXPECT_EQ(stop.out.rfind("pipeline clicks stopping: run " + run, 0), 0u) << stop.out;
  json ended = wait_for_run(run, "cancelled");
  EXPECT_TRUE(ended["ended"].is_string()) << ended.dump();

  auto events = client({"runs", "events", run});
  ASSERT_EQ(events.exit_code, 0) << events.err;
  rows = lines(events.out);
  ASSERT_FALSE(rows.empty());
  if (rows.size() > 1) {
    EXPECT_EQ(cells(rows[0]),
              (std::vector<std::string>{"TIME", "CLASS", "ACTION", "NODE", "ATTEMPT", "MESSAGE"}));
  } else {
    EXPECT_EQ(events.out, "run " + run + " has no events\n");
  }

  auto del = client({"pipelines", "delete", "clicks"});
  ASSERT_EQ(del.exit_code, 0) << del.err;
  EXPECT_EQ(del.out, "pipeline clicks deleted\n");
  auto gone = client({"pipelines", "list"});
  ASSERT_EQ(gone.exit_code, 0) << gone.err;
  EXPECT_EQ(gone.out.find("clicks"), std::string::npos) << gone.out;
}

TEST_F(ServerCli, SubmitTwiceNeedsUpdate) {
  ASSERT_EQ(client({"submit", pipeline_file_}).exit_code, 0);
  auto again = client({"submit", pipeline_file_});
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_EQ(lines(again.err).size(), 1u) << again.err;
  EXPECT_NE(again.err.find("give --update"), std::string::npos) << again.err;
  auto update = client({"submit", pipeline_file_, "--update"});
  ASSERT_EQ(update.exit_code, 0) << update.err;
  EXPECT_EQ(update.out, "pipeline clicks version 2 updated\n");
}

TEST_F(ServerCli, InvalidPipelineExitsOneWithEveryError) {
  const std::string bad = dir_.write("bad.yaml", R"yaml(name: broken
sources:
  - {id: gen, type: generator, count: 10, colour: red, fields: {x: "i"}}
sinks:
  - {id: out, type: blackhole, input: nowhere}
)yaml");
  auto r = client({"submit", bad});
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_TRUE(r.out.empty()) << r.out;
  // Every problem on its own line, then one sentence.
  auto err = lines(r.err);
  ASSERT_GE(err.size(), 3u) << r.err;
  EXPECT_NE(r.err.find("colour"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("nowhere"), std::string::npos) << r.err;
  EXPECT_EQ(err.back().rfind("dataflow: ", 0), 0u) << r.err;
  for (size_t i = 0; i + 1 < err.size(); ++i) {
    EXPECT_EQ(err[i].rfind("dataflow: ", 0), std::string::npos) << err[i];
  }
  // Nothing was stored.
  EXPECT_EQ(client({"pipelines", "get", "broken"}).exit_code, 1);
}

TEST_F(ServerCli, UnknownPipelineOrRunExitsOne) {
  auto r = client({"pipelines", "get", "nope"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(r.out.empty()) << r.out;
  ASSERT_EQ(lines(r.err).size(), 1u) << r.err;
  EXPECT_EQ(r.err.rfind("dataflow: ", 0), 0u) << r.err;
  EXPECT_NE(r.err.find("nope"), std::string::npos) << r.err;

  for (std::vector<std::string> args : {std::vector<std::string>{"pipelines", "start", "nope"},
                                        {"runs", "list", "--pipeline", "nope"},
                                        {"runs", "get", "r-nope"},
                                        {"runs", "cancel", "r-nope"},
                                        {"checkpoints", "list", "--pipeline", "nope"}}) {
    auto other = client(args);
    EXPECT_EQ(other.exit_code, 1) << args[0] << " " << args[1] << ": " << other.err;
    EXPECT_EQ(other.err.rfind("dataflow: ", 0), 0u) << other.err;
  }
}

TEST_F(ServerCli, OutputJsonIsTheServersJson) {
  ASSERT_EQ(client({"submit", pipeline_file_}).exit_code, 0);
  json list = client_json({"pipelines", "list"});
  ASSERT_TRUE(list.is_object()) << list;
  ASSERT_EQ(list["pipelines"].size(), 1u) << list;
  EXPECT_EQ(list["pipelines"][0]["name"], "clicks");
  EXPECT_EQ(list["pipelines"][0]["version"], 1);

  json p = client_json({"pipelines", "get", "clicks"});
  ASSERT_TRUE(p.is_object());
  EXPECT_EQ(p["spec"], kPipeline);
  EXPECT_EQ(p["status"], "stopped");

  json runs = client_json({"runs", "list", "--pipeline", "clicks"});
  ASSERT_TRUE(runs.is_object());
  EXPECT_TRUE(runs["runs"].is_array()) << runs;
  EXPECT_TRUE(runs["runs"].empty()) << runs;
}

TEST_F(ServerCli, StateAndCheckpointsThroughTheServer) {
  run_and_stop();

  // The server's export is the same document as the local one of its storage.
  auto remote = client({"state", "export", "--pipeline", "clicks", "--output", "remote.json"});
  ASSERT_EQ(remote.exit_code, 0) << remote.err;
  auto local = dataflow({"state", "export", "--pipeline", "clicks", "--output", "local.json",
                         "--state-dir", server_.checkpoints_dir()},
                        dir_.str());
  ASSERT_EQ(local.exit_code, 0) << local.err;
  json a = json::parse(read_file(dir_.file("remote.json")), nullptr, false);
  json b = json::parse(read_file(dir_.file("local.json")), nullptr, false);
  ASSERT_TRUE(a.is_object());
  EXPECT_EQ(a["format"], "dataflow-state");
  EXPECT_EQ(a["pipeline"], "clicks");
  EXPECT_EQ(a, b);

  // checkpoints list: the server's ids are the storage's, the current one marked.
  auto table = client({"checkpoints", "list", "--pipeline", "clicks"});
  ASSERT_EQ(table.exit_code, 0) << table.err;
  auto rows = lines(table.out);
  ASSERT_GE(rows.size(), 3u) << table.out;
  EXPECT_EQ(cells(rows[0]),
            (std::vector<std::string>{"ID", "CREATED", "KIND", "SIZE", "DURATION"}));
  EXPECT_EQ(rows[1].rfind("* ", 0), 0u) << table.out;
  auto remote_json = client({"checkpoints", "list", "--pipeline", "clicks", "--json"});
  ASSERT_EQ(remote_json.exit_code, 0) << remote_json.err;
  auto local_json = dataflow({"checkpoints", "list", "--pipeline", "clicks", "--json",
                              "--state-dir", server_.checkpoints_dir()});
  ASSERT_EQ(local_json.exit_code, 0) << local_json.err;
  std::vector<uint64_t> remote_ids, local_ids;
  uint64_t current = 0;
  const json remote_doc = json::parse(remote_json.out);
  for (const auto& c : remote_doc["checkpoints"]) {
    remote_ids.push_back(c["id"].get<uint64_t>());
    if (c["current"] == true) current = c["id"].get<uint64_t>();
  }
  for (const auto& c : json::parse(local_json.out)) local_ids.push_back(c["id"].get<uint64_t>());
  EXPECT_EQ(remote_ids, local_ids);
  EXPECT_NE(rows[1].find(" " + std::to_string(current) + " "), std::string::npos) << table.out;

  // Import the export back as a new checkpoint, then roll back over it.
  auto imported = client({"state", "import", "--pipeline", "clicks", "--input", "remote.json"});
  ASSERT_EQ(imported.exit_code, 0) << imported.err;
  EXPECT_EQ(imported.out.rfind("imported ", 0), 0u) << imported.out;
  EXPECT_NE(imported.out.find(" entries into clicks as checkpoint "), std::string::npos)
      << imported.out;
  EXPECT_NE(imported.out.find("(was " + std::to_string(current) + ")"), std::string::npos)
      << imported.out;
  auto rollback = client({"checkpoints", "rollback", "--pipeline", "clicks", "--offset", "1"});
  ASSERT_EQ(rollback.exit_code, 0) << rollback.err;
  EXPECT_EQ(rollback.out, "rolled back clicks to checkpoint " + std::to_string(current) + "\n");
  auto after = dataflow({"checkpoints", "list", "--pipeline", "clicks", "--json", "--state-dir",
                         server_.checkpoints_dir()});
  ASSERT_EQ(after.exit_code, 0) << after.err;
  for (const auto& c : json::parse(after.out)) {
    EXPECT_EQ(c["current"] == true, c["id"].get<uint64_t>() == current) << after.out;
  }
}

TEST(ServerCliUnreachable, ServerDownExitsThreeInOneSentence) {
  const uint16_t port = free_ports(1)[0];  // nothing listens there
  const std::string url = "http://127.0.0.1:" + std::to_string(port);
  auto r = dataflow({"pipelines", "list", "--server", url});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_TRUE(r.out.empty()) << r.out;
  EXPECT_EQ(r.err,
            "dataflow: cannot reach the DataFlow server at " + url + ": connection refused.\n");
  auto state = dataflow({"state", "export", "--pipeline", "p", "--output", "-", "--server", url});
  EXPECT_EQ(state.exit_code, 3);
  EXPECT_EQ(state.err,
            "dataflow: cannot reach the DataFlow server at " + url + ": connection refused.\n");
  // A URL that is not one is a usage error.
  auto bad = dataflow({"runs", "get", "r-1", "--server", "ftp://x"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_EQ(bad.err.rfind("dataflow: --server 'ftp://x'", 0), 0u) << bad.err;
}

}  // namespace
}  // namespace df::test
