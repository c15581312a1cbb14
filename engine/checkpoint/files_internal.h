// Internal to engine/checkpoint: storing and fetching the files of a
// checkpoint, scanning what storage holds, publishing a manifest, retention.
// Shared by the coordinator (coordinator.cc) and history/import (history.cc).
//
// Threading: free functions; each is safe to call from several threads at
// once on the same (thread-safe) CheckpointStorage.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "engine/checkpoint/manifest.h"
#include "engine/checkpoint/storage.h"
#include "engine/core/status.h"

namespace df::checkpoint::internal {

// RocksDB table files: immutable, shared between checkpoints, never compressed.
bool is_sst(const std::string& name);

struct LocalFile {
  std::string name;  // relative to the listed directory, '/'-separated
  std::string path;  // absolute
  uint64_t size = 0;
  uint64_t inode = 0;  // with the name and size, identifies an SST between snapshots
};
// The inode of a local file (0 when it cannot be read).
uint64_t inode_of(const std::string& path);
// Every regular file under `dir` (recursively), sorted by name. A missing
// directory gives an empty list.
Result<std::vector<LocalFile>> list_local_files(const std::string& dir);

// <pipeline>/shared/<node>-<subtask>-<name>-<first 16 hex of sha256>; '/' in
// name becomes '_'.
std::string shared_file_key(const std::string& pipeline, const std::string& node, int subtask,
                            const std::string& name, const std::string& sha256);
// <pipeline>/checkpoints/<id>/<node>/<subtask>/<name>
std::string private_file_key(const std::string& pipeline, uint64_t id, const std::string& node,
                             int subtask, const std::string& name);
// <pipeline>/checkpoints/
std::string checkpoints_prefix(const std::string& pipeline);

// Hashes the local file, then stores it under key_for(sha256) (zstd-compressed
// through a temporary sibling file when `compress`). The FileRef describes the
// uncompressed bytes.
Result<FileRef> store_file(CheckpointStorage& storage, const LocalFile& file,
                           const std::function<std::string(const std::string& sha256)>& key_for,
                           bool compress);

// Fetches `ref` into local `dest` (parent directories created), decompressing
// when ref.compressed, and checks size and sha256 of the result. With
// `must_copy`, `dest` is never a hard link to a stored object (for files
// RocksDB may rewrite). The message names the file and what was wrong.
Status fetch_file(CheckpointStorage& storage, const FileRef& ref, const std::string& dest,
                  bool must_copy);

// What storage holds under <pipeline>/checkpoints/: ids with a manifest.json
// and every id that has any object (aborted or in-progress ones too).
struct StoredIds {
  std::set<uint64_t> with_manifest;
  std::set<uint64_t> all;
};
Result<StoredIds> scan_ids(CheckpointStorage& storage, const std::string& pipeline);

// The id _CURRENT names; kNotFound when there is none, kDataError when its
// content is not an id.
Result<uint64_t> read_current(CheckpointStorage& storage, const std::string& pipeline);
Status write_current(CheckpointStorage& storage, const std::string& pipeline, uint64_t id);

// Stores `text` as <pipeline>/checkpoints/<id>/pipeline.yaml (zstd when
// `compress`) and returns its FileRef.
Result<FileRef> store_pipeline_text(CheckpointStorage& storage, const std::string& pipeline,
                                    uint64_t id, const std::string& text, bool compress);

struct RetentionResult {
  std::vector<uint64_t> deleted_checkpoints;
  std::set<std::string> deleted_shared;  // keys
};
// Keeps the newest `retained` manifests (and the one _CURRENT names); removes
// every other checkpoint directory except `keep_id` (a checkpoint in flight)
// and every shared object no kept manifest references and not in
// pinned_keys() (files of snapshots not yet in a manifest; asked after the
// shared objects were listed). When a kept manifest cannot be read, shared
// objects are left alone (what it references is unknown).
Result<RetentionResult> apply_retention(CheckpointStorage& storage, const std::string& pipeline,
                                        int retained,
                                        const std::function<std::set<std::string>()>& pinned_keys,
                                        std::optional<uint64_t> keep_id);

// Runs job(0) .. job(count - 1) on up to `threads` threads (this one
// included) and waits; after the first failure no new job starts. Returns
// that failure.
Status run_parallel(size_t count, int threads, const std::function<Status(size_t)>& job);

}  // namespace df::checkpoint::internal
