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
