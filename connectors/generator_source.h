// `type: generator` source: rows computed from expressions over the row
// number `i` (DESIGN.md §6).
//
// Options: fields (required; a map of name -> expression over {i: int64},
// compiled with df::expr::compile; the output schema is these fields in order
// with the expressions' types), count (omitted = unbounded), rate (rows/s over
// all subtasks; 0 = as fast as possible), seed (for rand(); default 0).
//
// Subtask k of N generates rows i = k, k+N, k+2N, ... (below count), so the
// subtasks together produce exactly rows 0..count-1. rand() is evaluated with
// EvalContext::row_ids = the i column, so every value depends only on (seed,
// i): output is the same for any batch size and parallelism. Rate limiting is
// a token bucket per subtask (rate/N rows/s); when ahead of it produce()
// returns SourceProgress::wait_until(...) and never sleeps.
//
// Checkpoints: meta {"next_row": i, "parallelism": N}, i being the row number
// of the next row this subtask emits. A resumed generator continues at i and,
// since values depend only on (seed, i), emits exactly the rows an
// uninterrupted one would. The token bucket starts afresh on resume (it holds
// no position). The parallelism must not change.
#pragma once

#include "engine/runtime/node_factory.h"

namespace df::connectors {

class GeneratorSourceFactory final : public runtime::NodeFactory {
 public:
  runtime::PreparedNodePtr prepare(const runtime::NodeSpec& spec,
                                   const std::vector<SchemaPtr>& inputs,
                                   OptionReader& opts) const override;
};

}  // namespace df::connectors
