// Internal to operators/join/: what the join factory resolved, and the
// pieces the windowed and the interval join operators share.
//
// State layout, keys in one KvStore per subtask (state/codec.h encodings;
// `key` is the order-preserving encoding of the join key fields, which is
// self-delimiting, so a scan of "<prefix> key" visits exactly one key):
//   interval: side('L'|'R') key ts seq          -> [matched flag (left)] row
//             'X' side expiry side key ts seq    -> ""   (expiry index)
//   windowed: 'W' window_start key side seq     -> row
//   both:     'S'                                 -> next seq (u64)
// A row is its fields' compact value encodings (encode_cell) in schema order.
//
// Where rows live: both joins buffer rows in memory (hash maps of join keys,
// like Flink's heap state backend; both keep the arriving batches and point
// into them, held_rows.h) while they fit the subtask's state memory budget;
// the store holds the rest. The
// interval join moves all its rows to the store when memory is full and goes
// on there; the windowed join moves whole windows (newest first, in key
// order); their later rows gather in memory again and go to the store when
// the window fires. On open, rows a checkpoint left in the store are read
// back into memory (and removed from the store, so that every row is in one
// place).
//
// Checkpoints: a snapshot is a RocksDB checkpoint of the store plus the meta
// (stateful.h helpers). The rows in memory are copied in the layout above at
// the snapshot (only their places and the held batches' pointers on the
// task thread; the I/O pool encodes them) and added to the checkpoint by the
// I/O pool (add_to_snapshot_async), so the snapshot's store holds every row
// either way.
// The meta:
//   windowed: {"watermark": <timestamp>|null, "entries": n}
//   interval: {"watermark": <timestamp>|null, "output_watermark": ...|null,
//              "output_idle": bool, "entries": n}
// The watermark decides which rows are late (windowed) or already expired
// (interval), so a resumed run restores it before any row arrives.
//
// `dataflow state export` entries (JoinStateSerde, join_state.cc): the key
// fields are named after the row's side.
//   windowed row:  {"window_start": ts, "window_end": ts, "side": "left",
//                   "key": {...}, "seq": n, "row": {...}}
//   interval row:  {"side": "left", "key": {...}, "event_time": ts, "seq": n,
//                   "matched": bool (left rows only), "row": {...}}
//   interval index:{"expiry_index": {"side": "left", "expires": ts, "key": {...},
//                   "event_time": ts, "seq": n}}
//   sequence:      {"next_seq": n}
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/core/batch.h"
#include "engine/runtime/operator.h"
#include "engine/state/keyed_state.h"
#include "engine/state/state_backend.h"
#include "operators/expr/expr.h"
#include "operators/stateful.h"

namespace df::operators::join {

// State layout bytes (see above).
inline constexpr char kLeft = 'L';
inline constexpr char kRight = 'R';
inline constexpr char kIndex = 'X';
inline constexpr char kWindow = 'W';
inline constexpr std::string_view kRowSequenceKey = "S";

struct JoinConfig {
  enum class Kind { kWindowed, kInterval };
  Kind kind = Kind::kWindowed;
  bool left_outer = false;
  int64_t window_size_ms = 0;  // windowed: tumbling window size
  int64_t lower_ms = 0;        // interval: right.ts in [left.ts + lower, left.ts + upper]
  int64_t upper_ms = 0;
  SchemaPtr left;
  SchemaPtr right;
  SchemaPtr output;
  std::vector<size_t> left_keys;   // field indexes in `left`
  std::vector<size_t> right_keys;  // field indexes in `right`, pairwise with left_keys
  std::vector<size_t> right_out;   // right fields copied to the output, in order
  // `where`: a condition on the output row that a pair of rows must meet to
  // join (SQL's ON beyond the key equalities); null when there is none. It is
  // bound to `where_schema`, the output fields it reads, which are output
  // fields `where_fields` (so a pair is tested without building its row).
  expr::CompiledExprPtr where;
  SchemaPtr where_schema;
  std::vector<size_t> where_fields;
};
using JoinConfigPtr = std::shared_ptr<const JoinConfig>;

// Numbers the rows a join buffers so that none overwrites another, across
// restarts too: the next number is kept in the subtask's store.
class RowSequence {
 public:
  Status load(state::KvStore& store);
  uint64_t next() { return next_++; }
  // Numbers `rows` rows at once; returns the first number.
  uint64_t take(uint64_t rows) {
    const uint64_t first = next_;
    next_ += rows;
    return first;
  }
  // Adds the next number to `writes` when rows were numbered since the last save.
  void save(state::WriteBatch& writes);
  // Adds the next number to a snapshot's entries when it differs from the
  // store's, leaving the store's as it is: while every row is in memory the
  // number is the only write, and writing it to the store would make every
  // checkpoint flush a memtable (an SST write and fsync) on the task thread.
  void add_to(state::CheckpointEntries& entries) const;
  // Adds the next number to a snapshot's entries whatever the store holds
  // (a snapshot that leaves the store out).
  void put_to(state::CheckpointEntries& entries) const;

 private:
  uint64_t next_ = 0;
  uint64_t saved_ = 0;
};

class JoinOutput;

// What both join operators share: their config and row codecs, the subtask's
// store, the output builder, row numbering, the combined watermark and the
// number of buffered rows; and how they open (restored meta, store, row
// numbers) and what every snapshot's meta holds ("watermark", "entries").
class JoinOperatorBase : public runtime::Operator, public StateStats {
 public:
  explicit JoinOperatorBase(JoinConfigPtr config);
  ~JoinOperatorBase() override;
  size_t state_entries() const override { return entries_; }

 protected:
  // Call first in open(): reads the shared meta fields, opens the store at
  // ctx.state_dir() (on resume it holds the snapshot's files) and the row
  // numbers. Returns the restored meta (null on a fresh start) for the
  // operator's own fields.
  Result<nlohmann::json> open_join(runtime::OperatorContext& ctx);
  // The snapshot: the shared meta fields plus `extra`'s, the row numbering,
  // and the rows in memory, which `build` adds to the entries it is given on
  // the I/O pool (it runs on another thread, so it must own what it reads;
  // not called when `memory_has_rows` is false and the numbering is the
  // store's). While the store holds no rows (`store_has_rows` false: only
  // the numbering, or nothing) and has a state directory, the task thread
  // leaves RocksDB alone and the I/O pool lays an empty store's image into
  // the snapshot instead (snapshot_without_store): a RocksDB
  // checkpoint writes and syncs a MANIFEST on the calling thread (~15 ms on
  // a busy disk). Else KvStore::checkpoint_to, and build's entries are added
  // to that.
  Status snapshot_join(runtime::SnapshotContext& ctx, bool store_has_rows, bool memory_has_rows,
                       std::function<Status(state::CheckpointEntries&)> build,
                       nlohmann::json extra = nlohmann::json::object());

  JoinConfigPtr config_;
  state::RowCodec left_codec_;
  state::RowCodec right_codec_;
  runtime::OperatorContext* ctx_ = nullptr;
  std::string what_;  // "join '<id>'"
  std::unique_ptr<state::KvStore> store_;
  std::unique_ptr<JoinOutput> output_;
  int64_t wm_ = INT64_MIN;
  RowSequence seq_;
  size_t entries_ = 0;
  std::shared_ptr<EmptyStoreImage> empty_image_;  // made at first use
};

// Hash of encoded join keys, looked up by std::string_view without a copy.
struct KeyHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
};

std::unique_ptr<runtime::Operator> make_interval_join(JoinConfigPtr config);
std::unique_ptr<runtime::Operator> make_windowed_join(JoinConfigPtr config);

// StateSerde of both joins (join_state.cc); PreparedJoin forwards to these.
Result<nlohmann::json> state_entry_to_json(const JoinConfig& config, std::string_view key,
                                           std::string_view value);
Status state_entry_from_json(const JoinConfig& config, const nlohmann::json& entry,
                             std::string& key, std::string& value);
Status check_state_meta(const JoinConfig& config, const nlohmann::json& meta);

// One side of an output row: a physical row of an arriving batch, or a row
// decoded from state.
struct RowRef {
  const Batch* batch = nullptr;
  size_t row = 0;
  const std::vector<Value>* values = nullptr;

  static RowRef of(const Batch& b, size_t r) { return {&b, r, nullptr}; }
  static RowRef of(const std::vector<Value>& v) { return {nullptr, 0, &v}; }
  void append(size_t field, ColumnBuilder& to) const {
    if (batch) {
      to.append_from(*batch->column(field), row);
    } else {
      to.append_value((*values)[field]);
    }
  }
};

// Builds output batches of about batch_size rows column by column and emits
// them when full and on flush(), and tests pairs against the join's `where`
// (its data errors, such as a division by zero, count as no match and are
// reported to `ctx`). One per operator instance; not thread-safe.
class JoinOutput {
 public:
  JoinOutput(JoinConfigPtr config, runtime::OperatorContext& ctx);
  // Adds left ⋈ right (right == nullptr: the right fields are null) with
  // event time `ts`, whatever `where` says; emits a full batch.
  void add(const RowRef& left, const RowRef* right, int64_t ts, runtime::Output& out);
  // Adds left ⋈ right when they match: the join's `where` holds for them, or
  // there is none. Returns whether it did.
  bool add_match(const RowRef& left, const RowRef& right, int64_t ts, runtime::Output& out);
  // One output row from rows of held batches: left row `left_row` of `left`
  // with right row `right_row` of `right` (nullptr: the right fields are null).
  struct HeldPair {
    const Batch* left;
    const Batch* right;
    uint32_t left_row;
    uint32_t right_row;
  };
  // Adds the rows of `pairs` in order, all with event time `ts`, copying
  // column by column (a window's matches in one pass per output column).
  // With a `where`, only the pairs it holds for (tested column by column
  // first, on the fields it reads), and pairs without a right row; a left
  // outer join adds a left row none of whose pairs held once with null right
  // fields. So a left row's pairs must be adjacent and in one call.
  void add_pairs(const std::vector<HeldPair>& pairs, int64_t ts, runtime::Output& out);
  // Adds every pair of `pairs` in order, pair i with event time times[i],
  // column by column, whatever `where` says: the interval join gathers the
  // matches of an arriving batch when it has no `where`.
  void add_all_pairs(const std::vector<HeldPair>& pairs, const std::vector<int64_t>& times,
                     runtime::Output& out);
  // A row of a held batch.
  struct HeldRow {
    const Batch* batch;
    uint32_t row;
  };
  // The most right rows add_group() takes.
  static constexpr size_t kMaxGroupRights = 64;
  // With a `where`: adds the pairs of one key's left rows x right rows (at
  // least one, at most kMaxGroupRights) that add_pairs() would, in the same
  // order, without building a pair per left row and right row. The
  // condition is tested one right row at a time over a slice of left rows,
  // on the left fields it reads (gathered once per slice) and the right
  // row's (repeated), so only the pairs that hold are built.
  void add_group(const std::vector<HeldRow>& lefts, const std::vector<HeldRow>& rights, int64_t ts,
                 runtime::Output& out);
  // Emits the rows gathered so far, if any.
  void flush(runtime::Output& out);
  size_t rows_emitted() const { return batch_.rows_emitted(); }

 private:
  // Appends pairs[0..n), pair i with event time times[i] (times == nullptr: ts).
  void append_pairs(const HeldPair* pairs, size_t n, const int64_t* times, int64_t ts,
                    runtime::Output& out);
  // Evaluates `where` over `condition` and reports its data errors; the
  // result column (null counts as false).
  ColumnPtr evaluate_where(const Batch& condition);

  JoinConfigPtr config_;
  runtime::OperatorContext* ctx_;
  OutputBatcher batch_;
  expr::EvalContext eval_;
  std::vector<HeldPair> kept_;       // add_pairs(), add_group(): the pairs that go out
  std::vector<uint64_t> holds_for_;  // add_group(): per left row, the right rows `where` holds for
};

// Appends every field of physical row `row` in the bytes of
// state::RowCodec::encode (encode_cell per field, no boxing); read it back
// with row_codec(schema).decode.
void encode_row(const Batch& batch, size_t row, std::string& out);
state::RowCodec row_codec(const Schema& schema);

}  // namespace df::operators::join
