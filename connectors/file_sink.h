// `type: file` sink: JSON lines or CSV part files in a directory (DESIGN.md §6).
//
// Options: path (required; a directory, created if missing), format (json|csv;
// default json), rolling: {max_rows, max_bytes} (a part file is committed and a
// new one started when it reaches max_rows rows, or before a row would take it
// past max_bytes bytes; max_bytes takes 1048576 or "64MiB"), csv: {header,
// delimiter} for CSV output.
//
// Commit protocol: subtask s writes `.part-<s>-<seq>.inprogress` (hidden) and
// renames it, after fsync, to `part-<s>-<seq>.jsonl` (or `.csv`) when the part
// rolls or at finish; only committed part files (no leading '.' or '_') are
// output. seq starts after the highest committed part of the same subtask
// already in the directory, so earlier output is never overwritten. A part is
// only started once it has a row: no input, no file. CSV parts start with a
// header line when csv.header is true (the default).
//
// Threading: rows are encoded on the worker; directory creation, writes,
// fsync and renames run on ctx.io() (see IoQueue). While more than the backlog
// limit (8 MiB) is queued, can_accept() is false; drained() is false until the
// last part is committed; close() returns the first I/O error.
#pragma once

#include "engine/runtime/node_factory.h"

namespace df::connectors {

class FileSinkFactory final : public runtime::NodeFactory {
 public:
  runtime::PreparedNodePtr prepare(const runtime::NodeSpec& spec,
                                   const std::vector<SchemaPtr>& inputs,
                                   OptionReader& opts) const override;
};

}  // namespace df::connectors
