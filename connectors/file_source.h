// `type: file` source: a bounded source reading JSON lines or CSV from one
// file or a glob of files (DESIGN.md §6).
//
// Options: path (required; a file or a glob), format (json|csv; default: csv
// for a path ending in .csv, else json), schema (required), csv: {header,
// delimiter}, follow (only false: the source is bounded).
//
// A glob is expanded when the node is prepared (so a glob matching nothing is
// a validation error) and the sorted matches are split over subtasks: subtask
// k of N reads matches k, k+N, ...; a single file goes to subtask 0. A line
// that does not decode is reported with ctx.report_data_error("file:line:
// why") and skipped; a file that cannot be opened fails the run.
//
// Checkpoints: snapshot() records, as meta, where this subtask stands after
// the last row produce() emitted (produce() never keeps decoded rows back):
//   {"parallelism": 2,
//    "known": ["data/a.jsonl", "data/b.jsonl", ...],   // the whole glob, sorted
//    "files": [{"path": "data/a.jsonl", "offset": 1234, "line": 57,
//               "done": false, "header_read": true}, ...]}   // this subtask's
// offset is the exact byte offset of the next record boundary (not of the
// read buffer); header_read (CSV with header) says the header lies before
// it; "skipping": true marks an offset inside an over-long line being
// skipped. open() with ctx.restored_meta() continues there: files it lists
// are read on from their offsets (a CSV header is read again from the start
// of the file for the column mapping, never taken from the resume point);
// files matching the glob now that were not "known" are new and read from 0,
// split over subtasks like a fresh glob (the j-th new file to subtask j % N);
// a listed file not finished that no longer matches is skipped with a
// warning; a file now shorter than its offset fails the run with a message
// naming both. The parallelism must not change (a clear error if it does).
#pragma once

#include "engine/runtime/node_factory.h"

namespace df::connectors {

class FileSourceFactory final : public runtime::NodeFactory {
 public:
  runtime::PreparedNodePtr prepare(const runtime::NodeSpec& spec,
                                   const std::vector<SchemaPtr>& inputs,
                                   OptionReader& opts) const override;
};

}  // namespace df::connectors
