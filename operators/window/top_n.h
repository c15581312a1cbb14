// The `top_n` transform: Window Top-N (Flink SQL's
// `ROW_NUMBER()/RANK() OVER (PARTITION BY window_start, window_end[, key]
// ORDER BY ...) WHERE rownum <= N`) as one operator.
//
//   - id: top
//     type: top_n
//     input: bid
//     key_by: [auction]                     # optional: per key and window
//     window: {type: tumbling, size: 10s}   # or {type: sliding, size, slide}
//     order_by: "price desc"                # expressions with asc|desc, best first
//     n: 1
//     rank: rank                            # rank (default) | row_number
//     rank_field: rank                      # the rank column's name (default "rank")
//     allowed_lateness: 0s                  # as in `window`
//     late_output: late                     # as in `window`
//
// Output rows: every input field, then window_start, window_end
// (timestamps) and the rank column (int64, 1 = best), with event time
// window_end - 1; emitted when the watermark passes window_end - 1, per
// (key, window) in rank order. `rank` is SQL RANK(): ties share a rank and all
// rows ranked <= n are kept (so ties can give more than n rows);
// `row_number` keeps exactly n, ties going to the earlier row. Null order
// values are the smallest (first ascending, last descending). A late row
// within allowed_lateness that enters a fired window's top re-emits that
// (key, window)'s whole top, as `window` re-emits an updated row.
//
// State per (key, window): only its top rows, best first, in memory up to
// the state memory budget; past it every group goes to the subtask's KvStore
// as a partial and memory is emptied (top lists merge exactly, so firing
// merges a window's partials in one range scan, like the window operator's
// spilled groups). Entries:
//   ordered_i64(window_end) + encoded key cells + u64(spill number)
//     -> varint count, then per row: varint length + sort key,
//        varint length + row
// where the sort key is the order values' order-preserving key encodings
// (state/codec.h), each complemented for `desc`, so bytes compare best
// first, and the row is the input fields' encode_cell bytes. A snapshot
// adds the in-memory groups to the checkpoint as partials (off the task
// thread), so memory and the live store stay as they were. The JSON meta:
//   {"format": 1, "watermark": <timestamp>|null, "spill_seq": <uint>,
//    "windows": [{"window_end": <timestamp>, "fired": <bool>}, ...]}
// `dataflow state export` shows an entry as
//   {"key": {<key_by field>: value, ...}, "window_start": ts,
//    "window_end": ts, "spill": n,
//    "rows": [{"order": [v, ...], "row": {<field>: v, ...}}, ...]}
#pragma once

#include <memory>

#include "engine/runtime/node_factory.h"

namespace df::operators {

std::unique_ptr<runtime::NodeFactory> make_top_n_factory();

}  // namespace df::operators
