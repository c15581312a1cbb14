// Checkpoint history (DESIGN §4, §7 `dataflow checkpoints list|rollback`):
// what checkpoints a pipeline has, moving _CURRENT back to an older one, and
// writing a whole new checkpoint from local files (`dataflow state import`).
//
// All functions work on storage alone (no running pipeline needed) and are
// blocking. They are not coordinated with a running CheckpointCoordinator of
// the same pipeline: roll back or import while the pipeline is stopped.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "engine/checkpoint/manifest.h"
#include "engine/checkpoint/storage.h"
#include "engine/core/status.h"

namespace df::checkpoint {

// One checkpoint (one <pipeline>/checkpoints/<id>/manifest.json).
struct CheckpointInfo {
  uint64_t id = 0;
  std::string created;  // RFC 3339 UTC; empty when !valid
  std::string kind;     // periodic | stop | final | import; empty when !valid
  uint64_t size_bytes = 0;
  int64_t duration_ms = 0;
  uint64_t incremental_bytes = 0;
  bool current = false;  // _CURRENT names it
  bool valid = true;     // the manifest parses and passes its checksum
  std::string problem;   // why not valid ("manifest of checkpoint 7 has a checksum mismatch")
};

// Every checkpoint with a manifest, newest (largest id) first. Directories
// without a manifest (a checkpoint in flight or given up) are not listed.
// An empty list when the pipeline has none. Only manifests are read, not
// the files they reference.
Result<std::vector<CheckpointInfo>> list_checkpoints(CheckpointStorage& storage,
                                                     const std::string& pipeline);

// Moves _CURRENT and returns the id it now names; nothing is deleted, and
// the next run of the pipeline resumes from that checkpoint (its next
// checkpoint gets an id above every stored one).
//   id:     that checkpoint;
//   offset: N checkpoints older than the current one (counting every stored
//           manifest; offset 0 is the current one);
//   neither: offset 1. Both: kInvalidArgument.
// When _CURRENT is missing the newest checkpoint counts as current.
// kInvalidArgument when the offset is out of range or the id does not exist,
// kDataError when the target manifest fails to parse or its checksum,
// kNotFound when the pipeline has no checkpoint.
Result<uint64_t> rollback(CheckpointStorage& storage, const std::string& pipeline,
                          std::optional<int> offset, std::optional<uint64_t> id);

struct WriteCheckpointOptions {
  std::string kind = "import";  // the manifest's kind
  bool compression = false;     // zstd for non-SST files
  std::string pipeline_text;    // stored as the manifest's pipeline_file; empty: none
  int io_threads = 2;           // parallel uploads
  bool move_current = true;     // move _CURRENT to the new checkpoint
};

// Stores a complete new checkpoint built outside a run, e.g. by
// `dataflow state import`:
//   1. the importer builds each subtask's state locally (a RocksDB store it
//      opened, wrote and closed, or a KvStore::checkpoint_to directory);
//   2. fills `base`: pipeline, pipeline_version and one TaskEntry per
//      (node, subtask) with meta and max_event_time (base.id, created, kind,
//      timings, sizes and every TaskEntry::files are ignored and computed);
//   3. passes `local_dirs`: (node, subtask) -> that subtask's local
//      directory. Every regular file under it (recursively) becomes a file
//      of the entry, named by its relative path: *.sst are stored under
//      <pipeline>/shared/, the others under <pipeline>/checkpoints/<id>/.
//      Entries without a directory have no files. A directory for a
//      (node, subtask) that has no entry is kInvalidArgument.
// The checkpoint gets id = (largest id in storage) + 1; its manifest is
// written last, then _CURRENT is moved to it (options.move_current). The
// local directories are left as they were (the caller removes them). On
// failure no manifest is written and _CURRENT is unchanged; files already
// stored are removed by the next retention.
Result<uint64_t> write_checkpoint(
    CheckpointStorage& storage, const Manifest& base,
    const std::map<std::pair<std::string, int>, std::string>& local_dirs,
    const WriteCheckpointOptions& options = {});

}  // namespace df::checkpoint
