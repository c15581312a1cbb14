// Disaster recovery (runtime.disaster_recovery, engine/server/disaster_recovery.h,
// `dataflow dr list|restore`) against a real S3 server (s3rver): a server
// backs up its metadata store and checkpoints while a stateful pipeline
// runs; it is killed while its newest checkpoint is still being stored (the
// file sink has already sealed output past the last completed one) and its
// data directory is deleted; `dr restore` rebuilds the directory from a
// backup older than the newest checkpoint S3 holds, and a new server resumes
// the pipeline from that newest checkpoint with exactly-once output on the
// file sink. And the local round trip: the checkpoints are lost with the
// data directory and come back from the backup, and backups past
// retention_days are pruned.
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "cli/http_client.h"
#include "tests/support/s3_server.h"
#include "tests/support/server_client.h"
#include "tests/support/server_process.h"
#include "tests/support/subprocess.h"
#include "tests/support/temp_dir.h"

using nlohmann::json;
using namespace std::chrono_literals;

namespace df::test {
namespace {

using Clock = std::chrono::steady_clock;

void expect_exactly_once(const std::string& out, int rows) {
  const std::multiset<int64_t> ids = committed_ids(out);
  ASSERT_EQ(ids.size(), static_cast<size_t>(rows)) << "duplicates or losses";
  EXPECT_EQ(std::set<int64_t>(ids.begin(), ids.end()).size(), static_cast<size_t>(rows));
  EXPECT_EQ(*ids.begin(), 0);
  EXPECT_EQ(*ids.rbegin(), rows - 1);
}

// A stateful pipeline (dedupe keeps every id seen) writing JSON lines with
// the file sink, exactly once: `delivery: exactly_once` (two-phase commit);
// the default, at_least_once, commits a part at each snapshot, before its
// checkpoint is stored, so a kill in between replays that part's rows.
// `storage`: its own checkpoint.storage, or "" for the server's
// runtime.checkpoint_storage.
std::string pipeline_text(const std::string& out_dir, const std::string& storage, int rows,
                          int rate) {
  std::ostringstream p;
  p << "name: orders\n"
    << "checkpoint: {interval: 300ms, delivery: exactly_once"
    << (storage.empty() ? "" : ", storage: " + storage) << "}\n"
    << "sources:\n"
    << "  - {id: gen, type: generator, count: " << rows << ", rate: " << rate
    << ", fields: {id: \"i\", amount: \"i % 97\"}}\n"
    << "transforms:\n"
    << "  - {id: firsts, type: dedupe, input: gen, key_by: [id], within: 1h}\n"
    << "sinks:\n"
    << "  - {id: out, type: file, input: firsts, path: " << out_dir << ", format: json}\n";
  return p.str();
}

// The complete backups at `location` (`dataflow dr list --json`).
json list_backups(const std::string& location, const TempDir& dir) {
  ProcessResult r =
      run_process({DATAFLOW_BIN, "dr", "list", "--from", location, "--json"}, dir.str(), 60s);
  if (r.exit_code != 0) return json::array();
  json j = json::parse(r.out, nullptr, false);
  return j.is_array() ? j : json::array();
}

// The oldest backup holding a checkpoint of `pipeline` (an entry of `dr list
// --json`), or null.
json oldest_backup_of(const json& backups, const std::string& pipeline) {
  for (auto b = backups.rbegin(); b != backups.rend(); ++b) {
    if (b->value("checkpoints", json::object()).contains(pipeline)) return *b;
  }
  return nullptr;
}

// The file sink's part files of subtask 0 that are not committed: the open
// one, and sealed ones waiting for their checkpoint to complete.
size_t uncommitted_parts(const std::string& dir) {
  size_t n = 0;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.starts_with(".part-0-") && name.ends_with(".inprogress")) ++n;
  }
  return n;
}

// Waits (at most `budget`) until run `run_id` left pending and running;
// `run` gets its last GET.
bool ended(const cli::HttpClient& api, const std::string& run_id, std::chrono::milliseconds budget,
           json* run) {
  return eventually(
      [&] {
        *run = get_json(api, "/api/v1/runs/" + run_id);
        const std::string status = run->value("status", "running");
        return status != "running" && status != "pending";
      },
      budget);
}

// SIGSTOPs a process for its lifetime: every request to it hangs.
class Paused {
 public:
  explicit Paused(pid_t pid) : pid_(pid) { ::kill(pid_, SIGSTOP); }
  ~Paused() { ::kill(pid_, SIGCONT); }
  Paused(const Paused&) = delete;
  Paused& operator=(const Paused&) = delete;

 private:
  pid_t pid_;
};

double metric(uint16_t port, const std::string& series) {
  auto r = client_for(port).request("GET", "/metrics");
  if (!r.ok()) return -1;
  const size_t at = r->body.find("\n" + series + " ");
  if (at == std::string::npos) return -1;
  return std::stod(r->body.substr(at + series.size() + 2));
}

std::string dr_config(const std::string& location) {
  // The top-level spelling (an alias of runtime.disaster_recovery): the
  // generated config already has a runtime: line.
  return "disaster_recovery: {enabled: true, backup_location: " + location +
         ", backup_interval: 1s, retention_days: 1}\n";
}

class S3Env {
 public:
  explicit S3Env(const S3Server& s3) {
    setenv("AWS_ENDPOINT_URL", s3.endpoint().c_str(), 1);
    setenv("AWS_ACCESS_KEY_ID", S3Server::kAccessKey, 1);
    setenv("AWS_SECRET_ACCESS_KEY", S3Server::kSecretKey, 1);
    setenv("AWS_REGION", S3Server::kRegion, 1);
  }
  ~S3Env() {
    for (const char* name :
         {"AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"}) {
      unsetenv(name);
    }
  }
};

// The server dies while its newest checkpoint is being stored (S3 stops
// answering: SIGSTOP), after the file sink sealed output past the last
// completed checkpoint; the data directory is restored from a backup older
// than the newest checkpoint S3 holds. The resumed run takes that newest
// checkpoint (S3's _CURRENT, not the backup's), the one `dr restore` names,
// and the output holds every id once. (With the default at_least_once
// delivery the sink would have committed the sealed part at its snapshot:
// its rows came again, as 20604 rows for 20000 ids in CI.)
TEST(DisasterRecovery, KilledServerIsRestoredFromS3AndResumesExactlyOnce) {
  if (!S3Server::node_available()) GTEST_SKIP() << S3Server::skip_reason();
  S3Server s3;
  ASSERT_TRUE(s3.ok()) << s3.error();
  const pid_t s3_pid = s3.pid();
  ASSERT_GT(s3_pid, 0);
  S3Env env(s3);  // the servers and the CLI are children: they inherit it
  const std::string backups = "s3://" + s3.bucket() + "/backups";
  const std::string checkpoints = "s3://" + s3.bucket() + "/checkpoints";
  TempDir dir;
  const std::string out = dir.file("out");
  constexpr int kRows = 20000;
  std::string backup_id;
  uint64_t backed_up = 0;
  {
    ServerProcess server(DATAFLOW_BIN, dir, dr_config(backups));
    ASSERT_TRUE(server.ready()) << server.log();
    auto api = client_for(server.api_port());
    auto created = api.request("POST", "/api/v1/pipelines?start=true",
                               pipeline_text(out, checkpoints, kRows, 2000), "application/yaml");
    ASSERT_TRUE(created.ok());
    ASSERT_EQ(created->status, 201) << created->body;
    const std::string run_id = json::parse(created->body)["current_run"].get<std::string>();
    ASSERT_TRUE(eventually(
        [&] { return get_json(api, "/api/v1/runs/" + run_id).value("checkpoints", 0) >= 1; }, 30s))
        << server.log();
    // A backup taken after that checkpoint holds it; the oldest such one is
    // restored below.
    json oldest;
    ASSERT_TRUE(eventually(
        [&] {
          oldest = oldest_backup_of(list_backups(backups, dir), "orders");
          return !oldest.is_null();
        },
        30s))
        << server.log();
    backup_id = oldest["id"].get<std::string>();
    backed_up = oldest["checkpoints"]["orders"].get<uint64_t>();
    // The backup is listed once its files are in S3; the server counts it
    // a moment later, when its upload call returns.
    EXPECT_TRUE(eventually(
        [&] {
          return metric(server.metrics_port(), "dataflow_backups_total{result=\"success\"}") >= 1;
        },
        10s));
    EXPECT_GT(metric(server.metrics_port(), "dataflow_backup_last_success_timestamp_seconds"),
              1.7e9);
    // S3 gets a newer checkpoint than that backup.
    ASSERT_TRUE(eventually(
        [&] {
          const json last =
              get_json(api, "/api/v1/runs/" + run_id).value("last_checkpoint", json());
          return last.is_number_unsigned() && last.get<uint64_t>() > backed_up;
        },
        30s))
        << server.log();
    {
      // S3 hangs: no checkpoint completes any more. The next one's snapshot
      // seals the sink's open part (a second uncommitted part): output past
      // the last completed checkpoint, which must not become visible.
      Paused s3_paused(s3_pid);
      ASSERT_TRUE(eventually([&] { return uncommitted_parts(out) >= 2; }, 10s)) << server.log();
      ProcessResult killed = server.stop(SIGKILL, 10s);
      EXPECT_EQ(killed.signal, SIGKILL);
    }
  }
  const size_t before = committed_ids(out).size();
  EXPECT_LT(before, static_cast<size_t>(kRows)) << "the run should have been cut short";

  // The machine is lost: its data directory with it. The backup restored is
  // older than the newest checkpoint in S3, which is kept (a sink may have
  // committed output up to it) and named as the one the pipeline resumes from.
  std::filesystem::remove_all(dir.file("data"));
  ProcessResult restored = run_process({DATAFLOW_BIN, "dr", "restore", "--from", backups,
                                        "--backup", backup_id, "--data-dir", dir.file("data")},
                                       dir.str(), 120s);
  ASSERT_EQ(restored.exit_code, 0) << restored.out << restored.err;
  std::smatch resumes;
  ASSERT_TRUE(std::regex_search(
      restored.out, resumes,
      std::regex("orders: resumes from checkpoint ([0-9]+) when the server starts; kept in "
                 "s3://[^ ]+/checkpoints, newer than the backup's " +
                 std::to_string(backed_up) + "\n")))
      << restored.out;
  const std::string resume_from = resumes[1].str();
  EXPECT_GT(std::stoull(resume_from), backed_up);
  // A second restore into the same directory is refused.
  ProcessResult again = run_process(
      {DATAFLOW_BIN, "dr", "restore", "--from", backups, "--data-dir", dir.file("data")}, dir.str(),
      60s);
  EXPECT_NE(again.exit_code, 0);
  EXPECT_NE(again.err.find("already exists"), std::string::npos) << again.err;

  // The new server knows the pipeline and resumes it from that checkpoint.
  ServerProcess server(DATAFLOW_BIN, dir, dr_config(backups));
  ASSERT_TRUE(server.ready()) << server.log();
  auto api = client_for(server.api_port());
  json runs;
  ASSERT_TRUE(eventually(
      [&] {
        runs = get_json(api, "/api/v1/pipelines/orders/runs");
        return runs.contains("runs") && runs["runs"].size() >= 2;
      },
      30s))
      << runs.dump() << server.log();
  const std::string resumed = runs["runs"][0]["id"].get<std::string>();
  json run;
  ASSERT_TRUE(ended(api, resumed, 90s, &run)) << run.dump() << server.log();
  EXPECT_EQ(run["status"], "succeeded") << run.dump() << server.log();
  expect_exactly_once(out, kRows);
  EXPECT_NE(server.log().find("resuming pipeline orders"), std::string::npos) << server.log();
  EXPECT_NE(server.log().find("restored pipeline orders from checkpoint " + resume_from + ":"),
            std::string::npos)
      << server.log();
}

// A path under the local backup location of the test below (<dir>/backups).
std::string backups_rel(const std::string& key) { return "backups/" + key; }

TEST(DisasterRecovery, LostLocalCheckpointsComeBackFromTheBackup) {
  TempDir dir;
  const std::string backups = dir.file("backups");  // "another disk"
  const std::string out = dir.file("out");
  // 8 s at 1500 rows/s: the stop after the first checkpoint must come
  // before the end, also when a loaded machine checkpoints late.
  constexpr int kRows = 12000;
  size_t before = 0;
  // A complete backup from 2020: past retention_days (1), pruned after the
  // first new backup.
  const std::string expired = "backups/20200101T000000000Z/";
  dir.write(backups_rel(expired + "metadata.dump"), "dataflow-metadata-dump 1\n");
  dir.write(backups_rel(expired + "manifest.json"),
            R"({"format": "dataflow-backup", "version": 1, "id": "20200101T000000000Z",
                "created": "2020-01-01T00:00:00.000Z", "created_ms": 1577836800000,
                "metadata": {"key": "backups/20200101T000000000Z/metadata.dump"},
                "pipelines": []})");
  {
    ServerProcess server(DATAFLOW_BIN, dir, dr_config(backups));
    ASSERT_TRUE(server.ready()) << server.log();
    auto api = client_for(server.api_port());
    auto created = api.request("POST", "/api/v1/pipelines?start=true",
                               pipeline_text(out, "", kRows, 1500), "application/yaml");
    ASSERT_TRUE(created.ok());
    ASSERT_EQ(created->status, 201) << created->body;
    const std::string run_id = json::parse(created->body)["current_run"].get<std::string>();
    ASSERT_TRUE(eventually(
        [&] { return get_json(api, "/api/v1/runs/" + run_id).value("checkpoints", 0) >= 1; }, 30s))
        << server.log();
    // Stopped with a final checkpoint: the sink committed exactly up to it,
    // and the next backup holds it.
    auto stopped = api.request("POST", "/api/v1/pipelines/orders/stop", "", "");
    ASSERT_TRUE(stopped.ok());
    ASSERT_TRUE(eventually(
        [&] { return get_json(api, "/api/v1/runs/" + run_id).value("status", "") == "cancelled"; },
        30s))
        << server.log();
    before = committed_ids(out).size();
    const double backed_up =
        metric(server.metrics_port(), "dataflow_backups_total{result=\"success\"}");
    ASSERT_TRUE(eventually(
        [&] {
          return metric(server.metrics_port(), "dataflow_backups_total{result=\"success\"}") >=
                 backed_up + 2;
        },
        30s))
        << server.log();
    server.stop(SIGKILL, 10s);
  }
  EXPECT_FALSE(std::filesystem::exists(dir.file(backups_rel(expired))))
      << "the expired backup was not pruned";
  EXPECT_GT(before, 0u);
  EXPECT_LT(before, static_cast<size_t>(kRows));

  // Data and checkpoints are gone; the backups directory survived.
  std::filesystem::remove_all(dir.file("data"));
  std::filesystem::remove_all(dir.file("checkpoints"));
  ProcessResult listed =
      run_process({DATAFLOW_BIN, "dr", "list", "--from", backups}, dir.str(), 60s);
  EXPECT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_NE(listed.out.find("orders"), std::string::npos) << listed.out;
  ProcessResult restored =
      run_process({DATAFLOW_BIN, "dr", "restore", "--from", backups, "--data-dir", dir.file("data"),
                   "--checkpoint-storage", dir.file("checkpoints")},
                  dir.str(), 120s);
  ASSERT_EQ(restored.exit_code, 0) << restored.out << restored.err;
  EXPECT_NE(restored.out.find("orders: resumes from checkpoint "), std::string::npos)
      << restored.out;
  EXPECT_NE(restored.out.find(" once started (it was stopped); restored from the backup into "),
            std::string::npos)
      << restored.out;

  // Stopped pipelines stay stopped; started, it continues from the backup.
  ServerProcess server(DATAFLOW_BIN, dir);
  ASSERT_TRUE(server.ready()) << server.log();
  auto api = client_for(server.api_port());
  auto started = api.request("POST", "/api/v1/pipelines/orders/start", "", "");
  ASSERT_TRUE(started.ok());
  ASSERT_EQ(started->status, 202) << started->body;
  const std::string resumed = json::parse(started->body)["id"].get<std::string>();
  json run;
  ASSERT_TRUE(ended(api, resumed, 60s, &run)) << run.dump() << server.log();
  EXPECT_EQ(run["status"], "succeeded") << run.dump() << server.log();
  expect_exactly_once(out, kRows);
}

}  // namespace
}  // namespace df::test
