// Disaster recovery (`runtime.disaster_recovery`): BackupService copies, every
// backup_interval, a consistent snapshot of the metadata store and every
// pipeline's current checkpoint to a backup location (a directory or
// s3://bucket/prefix, through the checkpoint storage API), and prunes backups
// older than retention_days; restore_backup() (`dataflow dr restore`)
// rebuilds a server's data directory from one.
//
// Layout under the location, one directory per backup (ids sort by time):
//   backups/<id>/metadata.dump           every key and value of the metadata
//                                        store, read from one RocksDB
//                                        secondary instance (one point in time)
//   backups/<id>/checkpoints/<key>       each pipeline's _CURRENT, current
//                                        manifest and every file it names, under
//                                        the same keys as in its storage
//   backups/<id>/manifest.json           written last: a backup without it is
//                                        incomplete and neither listed nor used
// manifest.json: {"format": "dataflow-backup", "version": 1, "id", "created",
//   "created_ms", "metadata": {"key", "size", "sha256"}, "pipelines": [{"name",
//   "checkpoint_storage", "server_default": bool, "checkpoint": id | null,
//   "keys": [...], "bytes"}]}
//
// Threading: BackupService runs backups on its own thread; backup_now() and
// the counters are thread-safe. The free functions are blocking and
// stateless.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "engine/checkpoint/storage.h"
#include "engine/core/metrics.h"
#include "engine/core/status.h"
#include "engine/core/time.h"

namespace df::server {

class MetadataStore;

struct BackupOptions {
  std::string location;  // a directory or s3://bucket/prefix
  Millis interval{3600000};
  int retention_days = 7;    // 0: never prune
  std::string metadata_dir;  // the running store's RocksDB directory (MetadataStore::dir())
  std::string work_dir;      // scratch space (the secondary instance, staged files)
  // The server's runtime.checkpoint_storage.
  std::string default_checkpoint_storage;
  // The checkpoint storage URL of pipeline `name` (its newest version's
  // `checkpoint.storage`, else the default); an error skips the pipeline's
  // checkpoint, with a warning.
  std::function<Result<std::string>(const std::string& name)> checkpoint_storage_of;
};

// One complete backup, as listed.
struct BackupInfo {
  std::string id;
  std::string created;  // RFC 3339 UTC
  int64_t created_ms = 0;
  std::vector<std::string> pipelines;  // with a checkpoint in the backup
  // The backed-up checkpoint of each of `pipelines`.
  std::map<std::string, uint64_t> checkpoints;
  uint64_t bytes = 0;
};

class BackupService {
 public:
  // Pipelines are the ones in `store` when a backup runs.
  BackupService(BackupOptions options, const MetadataStore& store);
  ~BackupService();  // stop()
  BackupService(const BackupService&) = delete;
  BackupService& operator=(const BackupService&) = delete;

  // Starts the thread: a backup every interval (the first one interval after
  // start). Failures are logged and counted; the next interval tries again.
  void start();
  // Stops the thread; a backup in progress gives up before its next file
  // (it stays incomplete: no manifest; not counted as a failure).
  void stop();

  // One backup now (serialized with the periodic ones), then pruning.
  Result<BackupInfo> backup_now();

  uint64_t succeeded() const { return succeeded_.load(); }
  uint64_t failed() const { return failed_.load(); }
  // Wall-clock ms of the last successful backup; 0 before the first.
  int64_t last_success_ms() const { return last_success_ms_.load(); }

 private:
  Result<BackupInfo> backup_locked();
  void loop();

  const BackupOptions options_;
  const MetadataStore& store_;
  std::mutex backup_mu_;                                   // one backup at a time
  std::unique_ptr<checkpoint::CheckpointStorage> target_;  // guarded by backup_mu_
  // Pipelines' checkpoint storages by URL; guarded by backup_mu_.
  std::map<std::string, std::unique_ptr<checkpoint::CheckpointStorage>> sources_;

  std::mutex mu_;
  std::condition_variable wake_;
  bool stopping_ = false;            // guarded by mu_
  std::atomic<bool> cancel_{false};  // stop(): a backup in progress gives up
  std::thread thread_;

  std::atomic<uint64_t> succeeded_{0};
  std::atomic<uint64_t> failed_{0};
  std::atomic<int64_t> last_success_ms_{0};
};

// dataflow_backup_last_success_timestamp_seconds and
// dataflow_backups_total{result="success"|"failure"}; zeros when `service`
// is null (disaster recovery off), so the families always exist. `service`
// must outlive the collector.
metrics::Registry::CollectorId add_backup_collector(metrics::Registry& registry,
                                                    const BackupService* service);

// The complete backups at `location`, newest first.
Result<std::vector<BackupInfo>> list_backups(const std::string& location);

struct RestoreOptions {
  std::string from;       // the backup location
  std::string backup_id;  // empty: the newest complete backup
  std::string data_dir;   // must not hold a metadata store yet
  // Where the checkpoints of pipelines that used the server's default
  // checkpoint storage go; empty: <data_dir>/checkpoints. Pipelines whose
  // file names a storage get theirs back there.
  std::string checkpoint_storage;
};

// What a restore did for one pipeline of the backup, and the checkpoint its
// next run resumes from: the one CheckpointCoordinator::restore takes, i.e.
// what _CURRENT in its storage names after the restore. The newest
// completed checkpoint wins: the backup's only when the storage has no
// newer one (exactly-once sinks may have committed output up to the newer
// one; resuming from an older checkpoint would write that output again).
struct PipelineRestore {
  enum class Action {
    kRestored,  // the backup's checkpoint was copied into the storage
    kKept,      // the storage already had the same or a newer checkpoint
    kNone,      // nothing copied: the backup has no checkpoint of it
  };
  std::string name;
  Action action = Action::kNone;
  std::string storage;                  // its checkpoint storage (describe()); empty: unknown
  std::optional<uint64_t> backed_up;    // the backup's checkpoint
  std::optional<uint64_t> resume_from;  // nullopt: its next run starts without state
  // It was running when the backup was taken: the server resumes it when it
  // starts (otherwise it stays stopped until started).
  bool resumes_on_start = false;
};

struct RestoreResult {
  BackupInfo backup;
  uint64_t metadata_keys = 0;
  std::vector<PipelineRestore> pipelines;  // in the backup's order
};

// One line for the operator, e.g. "orders: resumes from checkpoint 9 when
// the server starts; kept in s3://b/ckpt, newer than the backup's 7".
std::string describe(const PipelineRestore& restore);

// Rebuilds <data_dir>/metadata from the backup's dump and copies each
// pipeline's checkpoint back into its storage, unless that storage already
// has the same or a newer checkpoint (never moving _CURRENT backwards: a
// sink may have committed output up to it). kFailedPrecondition when
// <data_dir>/metadata exists, kNotFound when there is no complete backup.
Result<RestoreResult> restore_backup(const RestoreOptions& options);

}  // namespace df::server
