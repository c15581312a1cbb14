// MetadataStore: the server's durable record of pipelines, their versions,
// runs and run events (DESIGN §8), in one RocksDB under
// <data_dir>/metadata. It survives restarts: a new server reads back what
// the last one wrote (with the WAL on, every put is durable once it returns).
//
// Key layout (values are JSON objects):
//   pipelines/<name>                        PipelineRecord
//   versions/<name>/<version, 20 digits>    VersionRecord (the file as submitted)
//   runs/<run id>                           RunRecord
//   events/<run id>/<seq, 20 digits>        one RunEvent as JSON (RunEvent::to_json),
//                                           the newest `max_events_per_run` kept
// Versions and events sort numerically because their numbers are zero-padded.
// Pipeline names and run ids never contain '/' (PipelineManager checks names).
//
// Threading: every method is thread-safe (RocksDB is; the per-run event
// sequence numbers are guarded by a mutex).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "engine/core/status.h"

namespace rocksdb {
class DB;
}

namespace df::server {

// One pipeline: its newest version and whether it should be running.
struct PipelineRecord {
  std::string name;
  uint64_t version = 0;  // newest version (1-based)
  int64_t created_ms = 0;
  int64_t updated_ms = 0;
  // The user started it and did not stop it: a restarted server resumes it.
  bool desired_running = false;
  std::string current_run;  // the newest run's id; empty before the first start
};

// One accepted pipeline file.
struct VersionRecord {
  std::string pipeline;
  uint64_t version = 0;
  std::string spec;    // the body as submitted
  std::string format;  // "yaml" | "json"
  int64_t created_ms = 0;
};

enum class RunStatus { kPending, kRunning, kSucceeded, kFailed, kCancelled };
std::string_view run_status_name(RunStatus s);  // "pending", ...
bool run_status_final(RunStatus s);             // succeeded, failed or cancelled

struct RunRecord {
  std::string id;  // "r-..."
  std::string pipeline;
  uint64_t version = 0;
  RunStatus status = RunStatus::kPending;
  int64_t started_ms = 0;
  std::optional<int64_t> ended_ms;
  uint64_t checkpoints = 0;  // completed checkpoints
  std::optional<uint64_t> last_checkpoint;
  uint64_t restarts = 0;
  std::string error;  // one sentence when failed (or why a cancelled run was cut)
};

// The run as docs/rest-api.md shows it.
std::string run_to_json(const RunRecord& run);

class MetadataStore {
 public:
  // Opens (creating it if missing) the store in `dir`.
  static Result<std::unique_ptr<MetadataStore>> open(const std::string& dir,
                                                     size_t max_events_per_run = 1000);
  ~MetadataStore();
  MetadataStore(const MetadataStore&) = delete;
  MetadataStore& operator=(const MetadataStore&) = delete;

  const std::string& dir() const { return dir_; }

  // kNotFound when absent.
  Result<PipelineRecord> pipeline(const std::string& name) const;
  // Every pipeline, by name.
  Result<std::vector<PipelineRecord>> pipelines() const;
  Status put_pipeline(const PipelineRecord& record);
  // A new version and the pipeline record pointing at it, in one write.
  Status put_version(const PipelineRecord& record, const VersionRecord& version);
  Result<VersionRecord> version(const std::string& name, uint64_t version) const;
  // The pipeline, its versions, runs and their events.
  Status remove_pipeline(const std::string& name);

  Status put_run(const RunRecord& run);
  Result<RunRecord> run(const std::string& id) const;
  // The runs of `pipeline` (every run when empty), newest first.
  Result<std::vector<RunRecord>> runs(const std::string& pipeline = "") const;

  // Appends one event (a JSON object) to the run's events, dropping the
  // oldest beyond max_events_per_run.
  Status append_event(const std::string& run_id, const std::string& event_json);
  // The kept events, oldest first.
  Result<std::vector<std::string>> events(const std::string& run_id) const;

  // A read of the store, for the health check.
  Status check() const;

 private:
  MetadataStore(std::string dir, std::unique_ptr<rocksdb::DB> db, size_t max_events);
  Result<std::optional<std::string>> get(const std::string& key) const;
  Result<std::vector<std::pair<std::string, std::string>>> scan(const std::string& prefix) const;

  const std::string dir_;
  const std::unique_ptr<rocksdb::DB> db_;
  const size_t max_events_;
  std::mutex events_mu_;
  std::map<std::string, uint64_t> next_event_;  // run id -> next seq; guarded by events_mu_
};

}  // namespace df::server
