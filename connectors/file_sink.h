// `type: file` sink: JSON lines or CSV part files in a directory (DESIGN.md §6).
//
// Options: path (required; a directory, created if missing), format (json|csv;
// default json), rolling: {max_rows, max_bytes} (a part file is rolled and a
// new one started when it reaches max_rows rows, or before a row would take it
// past max_bytes bytes; max_bytes takes 1048576 or "64MiB"), csv: {header,
// delimiter} for CSV output, delivery (at_least_once|exactly_once; default:
// the pipeline's checkpoint.delivery, NodeSpec::delivery).
//
// Part files: subtask s writes `.part-<s>-<seq>.inprogress` (hidden) and
// commits it by renaming it, after fsync, to `part-<s>-<seq>.jsonl` (or
// `.csv`); only committed part files (no leading '.' or '_') are output. A
// part is only started once it has a row: no input, no file. CSV parts start
// with a header line when csv.header is true (the default). seq is never
// reused, not even across crashes: it starts past every committed and
// in-progress part of the subtask in the directory, the restored meta's
// next_seq, and `_part-<s>.next-seq` (written when a restore deletes parts;
// not output, like every name with a leading '_').
//
// When parts commit:
// - Without checkpoints (ctx.checkpointing() false), either delivery: when a
//   part rolls and at finish().
// - at_least_once with checkpoints: as above, and at every snapshot the open
//   part is committed and the directory synced before the snapshot's
//   deferred completion is called. A resumed run replays rows written after
//   the checkpoint: duplicates in new parts, nothing lost.
// - exactly_once with checkpoints (two-phase commit): a part that rolls is
//   only sealed (fsync, still hidden). snapshot(n) seals the open part and
//   records every part sealed since the previous snapshot as pending for n;
//   the completion is called once the fsyncs are done. checkpoint_complete(n)
//   renames every pending part of checkpoints <= n and syncs the directory,
//   on the I/O strand. finish() seals the last part; the final snapshot
//   (kFinalCheckpoint) makes it pending and checkpoint_complete(
//   kFinalCheckpoint) commits it. close() never commits.
//   Meta: {"delivery": "exactly_once", "next_seq": 7,
//          "pending": [{"checkpoint": 3, "files": ["part-0-5.jsonl", ...]}]}
//   (at_least_once: the same shape, pending always empty).
// - Resume (open() with ctx.restored_meta()): every pending part of the meta
//   is committed (idempotent: one already committed is fine; one missing
//   altogether is logged), every other in-progress part of this subtask is
//   deleted (the failed attempt's rows after the checkpoint; they come
//   again), and numbering continues past everything seen.
//
// Threading: rows are encoded on the worker; writes, fsync and renames run
// on ctx.io() (see IoQueue). open() prepares the directory itself (mkdir, one
// listing, and on resume the renames, deletions and a directory fsync):
// one-time startup I/O, like opening a state store, because part names and
// snapshot meta depend on it. While more than the backlog limit (8 MiB) is
// queued, can_accept() is false; drained() is false until the queued I/O is
// done; close() returns the first I/O error.
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
