// State export and import (`dataflow state export|import`, DESIGN §4/§7):
// the state of a pipeline's current checkpoint as one readable, versioned
// JSON document, and such a document back into a new checkpoint.
//
// The document format ("dataflow-state", version 1) is described in
// docs/state-format.md:
//   {"format": "dataflow-state", "version": 1, "pipeline": P,
//    "pipeline_version": "...", "checkpoint_id": N, "created": "...",
//    "nodes": [ {"node": id, "type": t, "subtask": s,
//                "state_format_version": v | null, "max_event_time": int | null,
//                "meta": <json>, "entries": [ {...}, ... ]}, ... ]}
//
// Both directions stream: export scans each subtask's RocksDB store and
// writes entry by entry; import reads the file with a SAX parser that holds
// one entry at a time and writes into staging RocksDB stores. Memory stays
// bounded whatever the state's size.
//
// Layering: engine/plan sits above engine/checkpoint, so callers (the CLI)
// build the plan and describe its nodes as NodeViews.
//
// Threading: the functions are blocking and independent; concurrent calls on
// the same pipeline's storage are not coordinated (do not import while a run
// checkpoints the same pipeline).
#pragma once

#include <cstdint>
#include <functional>
#include <istream>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "engine/checkpoint/manifest.h"
#include "engine/checkpoint/state_serde.h"
#include "engine/checkpoint/storage.h"
#include "engine/core/status.h"

namespace df::checkpoint {

inline constexpr const char* kStateFormat = "dataflow-state";
inline constexpr int kStateFormatVersion = 1;

// One node of the pipeline's plan, as export and import need it.
struct NodeView {
  std::string id;
  std::string type;  // "window", "dedupe", "generator", ...
  int parallelism = 1;
  // The node's PreparedNode as a StateSerde (dynamic_cast); nullptr when the
  // node keeps no keyed state (only its meta is transferred).
  const StateSerde* serde = nullptr;
};

// Finds a node by id in `nodes`; nullptr when absent.
const NodeView* find_node(const std::vector<NodeView>& nodes, const std::string& id);

struct TransferProgress {
  // "exporting"; import: "checking" (first pass), then "importing".
  const char* phase = "";
  uint64_t entries = 0;  // entries written (export) or read (import) so far in this phase
  uint64_t bytes = 0;    // bytes of the document written or read so far in this phase
};
using ProgressFn = std::function<void(const TransferProgress&)>;

// The manifest _CURRENT of `pipeline` names, with its checksum checked.
// kNotFound ("pipeline 'p' has no checkpoint in <storage>") when there is none.
Result<Manifest> load_current_manifest(CheckpointStorage& storage, const std::string& pipeline);

// The pipeline file stored with a checkpoint (decompressed, size and SHA-256
// checked). kNotFound when the manifest has none.
Result<std::string> load_pipeline_text(CheckpointStorage& storage, const Manifest& manifest);

struct ExportOptions {
  // Where the subtasks' files are put while they are read (a fresh
  // directory is made inside and removed afterwards); empty: the system's
  // temporary directory.
  std::string scratch_dir;
  ProgressFn progress;  // called every few thousand entries and at the end
};

struct ExportResult {
  uint64_t checkpoint_id = 0;
  size_t nodes = 0;  // node objects (one per node and subtask)
  uint64_t entries = 0;
  uint64_t bytes = 0;  // bytes written to `out`
};

// Writes the state of `manifest` to `out` as one document. Every file is
// checked against its size and SHA-256 before it is read. `nodes` describes
// the plan of the checkpoint's pipeline file; a manifest task whose node is
// missing there, or a node with stored files but no StateSerde, is a
// kDataError. Errors of `out` are kIoError.
Result<ExportResult> export_state(CheckpointStorage& storage, const Manifest& manifest,
                                  const std::vector<NodeView>& nodes, std::ostream& out,
                                  const ExportOptions& options = {});

struct ImportOptions {
  std::string pipeline;          // must match the document's "pipeline"
  std::string pipeline_text;     // the pipeline file stored with the new checkpoint
  std::string pipeline_version;  // empty: SHA-256 of pipeline_text
  std::string input_name;        // the file's name, for messages ("state.json")
  std::string scratch_dir;       // see ExportOptions::scratch_dir
  bool compression = false;      // zstd for the stored non-SST files
  ProgressFn progress;
};

struct ImportResult {
  uint64_t checkpoint_id = 0;           // the new checkpoint
  std::optional<uint64_t> previous_id;  // what _CURRENT named before
  size_t nodes = 0;                     // node objects read
  uint64_t entries = 0;
  std::vector<std::string> notes;  // e.g. plan nodes the document has no state for
};

// Reads a document from `in` and stores it as a new checkpoint of kind
// "import" (id = the largest existing id + 1) with the pipeline file, then
// moves _CURRENT to it. Everything is validated first: format and version,
// the pipeline name, that every node exists in `nodes` with the same type,
// that each node's subtasks are exactly 0..parallelism-1, the state format
// version, every entry (StateSerde::entry_from_json) and meta
// (StateSerde::check_meta). Plan nodes missing from the document get empty
// state (a note says so). On any error nothing in `storage` has changed;
// the error is kInvalidArgument naming the place ("node 'w' subtask 0 entry
// 17: field 'count' must be an integer") for a bad document, another code
// for a failure to read, write or store.
Result<ImportResult> import_state(CheckpointStorage& storage, std::istream& in,
                                  const std::vector<NodeView>& nodes, const ImportOptions& options);

}  // namespace df::checkpoint
