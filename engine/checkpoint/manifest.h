// The manifest of one checkpoint: <pipeline>/checkpoints/<id>/manifest.json.
//
// Written last, after every file it names is stored; _CURRENT is moved to it
// afterwards. Its own integrity is checked by `checksum`, the SHA-256 (hex)
// of the manifest serialized with "checksum" set to "" (nlohmann::json
// dump() without indentation; object keys are sorted, so this is canonical).
//
// JSON layout (format "dataflow-checkpoint", version 1):
// {
//   "format": "dataflow-checkpoint", "version": 1,
//   "pipeline": "hot-items", "pipeline_version": "<sha256 of the file>",
//   "id": 12, "created": "2026-11-21T10:00:00.000Z",
//   "kind": "periodic" | "final" | "stop" | "import",
//   "duration_ms": 35, "sync_ms": 3, "async_ms": 30,
//   "size_bytes": 123, "incremental_bytes": 45,
//   "pipeline_file": {"key": "...", "size": 1, "sha256": "...", "compressed": false},
//   "tasks": [ { "node": "hot", "subtask": 0, "meta": <json or null>,
//                "max_event_time": null | int,
//                "files": [ { "name": "000012.sst",            // name in the subtask dir
//                             "key": "<pipeline>/shared/...",   // storage key
//                             "size": 1024, "sha256": "...", "compressed": false } ] } ],
//   "checksum": "<sha256>"
// }
// A file's size and sha256 describe the bytes as restored (before any
// compression); "compressed" files are stored zstd-compressed.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "engine/core/status.h"

namespace df::checkpoint {

struct FileRef {
  std::string name;  // relative path inside the subtask's directory
  std::string key;   // storage key
  uint64_t size = 0;
  std::string sha256;  // hex, of the uncompressed bytes
  bool compressed = false;
};

struct TaskEntry {
  std::string node;
  int subtask = 0;
  nlohmann::json meta;  // null when none
  std::optional<int64_t> max_event_time;
  std::vector<FileRef> files;
};

struct Manifest {
  std::string pipeline;
  std::string pipeline_version;
  uint64_t id = 0;
  std::string created;  // RFC 3339 UTC
  std::string kind = "periodic";
  int64_t duration_ms = 0;
  int64_t sync_ms = 0;
  int64_t async_ms = 0;
  uint64_t size_bytes = 0;
  uint64_t incremental_bytes = 0;
  std::optional<FileRef> pipeline_file;
  std::vector<TaskEntry> tasks;
};

// Serializes with the checksum filled in.
std::string serialize_manifest(const Manifest& m);
// Parses and checks format, version and checksum; kDataError with one
// sentence saying what is wrong ("manifest.json of checkpoint 7 is
// truncated", "... checksum mismatch").
Result<Manifest> parse_manifest(std::string_view text);

// Storage keys (DESIGN §4).
std::string current_key(const std::string& pipeline);  // <p>/_CURRENT
std::string manifest_key(const std::string& pipeline, uint64_t id);
std::string shared_prefix(const std::string& pipeline);  // <p>/shared/

// SHA-256 (hex) of bytes / of a local file.
std::string sha256_hex(std::string_view data);
Result<std::string> sha256_file(const std::string& path);

}  // namespace df::checkpoint
