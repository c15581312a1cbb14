// Internal to operators/: the factories of the keyed operators (key_by,
// dedupe, join) and the helpers they share for key fields.
#pragma once

#include <algorithm>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <string_view>

#include "engine/core/batch.h"
#include "engine/core/config_value.h"
#include "engine/runtime/node_factory.h"
#include "engine/runtime/operator.h"
#include "engine/state/state_backend.h"

namespace df::operators {

std::unique_ptr<runtime::NodeFactory> make_key_by_factory();
std::unique_ptr<runtime::NodeFactory> make_dedupe_factory();
std::unique_ptr<runtime::NodeFactory> make_join_factory();

// Gathers an operator's output rows into batches of at most `batch_size`
// rows, each row with its event time, and emits every full batch: for the
// operators that build their rows cell by cell (windows, top_n, joins). The
// caller appends one cell to every column(i), then calls end_row. One per
// operator instance, on its task thread.
class OutputBatcher {
 public:
  OutputBatcher(SchemaPtr schema, size_t batch_size, TypeId event_time_type = TypeId::kInt64)
      : schema_(std::move(schema)),
        batch_size_(std::max<size_t>(1, batch_size)),
        event_time_type_(event_time_type) {
    reset();
  }

  ColumnBuilder& column(size_t i) { return columns_[i]; }
  // Ends the row whose cells were appended; emits the batch when it is full.
  void end_row(int64_t event_time, runtime::Output& out) {
    event_time_.append_int64(event_time);
    if (++rows_ >= batch_size_) flush(out);
  }
  // Rows that still fit the batch being built.
  size_t room() const { return batch_size_ - rows_; }
  // Ends `count` rows (at most room()) whose cells were appended column by
  // column, all with `event_time`; emits the batch when it is full.
  void end_rows(size_t count, int64_t event_time, runtime::Output& out) {
    event_time_.append_int64_repeated(event_time, count);
    rows_ += count;
    if (rows_ >= batch_size_) flush(out);
  }
  // The same, row i with event_times[i].
  void end_rows(size_t count, const int64_t* event_times, runtime::Output& out) {
    event_time_.append_int64s(event_times, count);
    rows_ += count;
    if (rows_ >= batch_size_) flush(out);
  }
  // Emits the rows gathered so far, if any.
  void flush(runtime::Output& out) {
    if (rows_ == 0) return;
    std::vector<ColumnPtr> cols;
    cols.reserve(columns_.size());
    for (ColumnBuilder& c : columns_) cols.push_back(c.finish());
    out.emit(Batch::make(schema_, std::move(cols), rows_, nullptr, event_time_.finish()));
    emitted_ += rows_;
    reset();
  }
  size_t rows_emitted() const { return emitted_; }

 private:
  void reset() {
    columns_.clear();
    columns_.reserve(schema_->size());
    for (const Field& f : schema_->fields()) columns_.emplace_back(f.type, batch_size_);
    event_time_ = ColumnBuilder(event_time_type_, batch_size_);
    rows_ = 0;
  }

  SchemaPtr schema_;
  size_t batch_size_;
  TypeId event_time_type_;
  std::vector<ColumnBuilder> columns_;
  ColumnBuilder event_time_{TypeId::kInt64};
  size_t rows_ = 0;
  size_t emitted_ = 0;
};

// Resolves a list of field names (one scalar or a sequence of scalars) at
// `node` against `schema`. Each unknown name is reported at its own location
// as "<what>: unknown field 'x' (fields: {...})". Returns nullopt after any
// error (including an empty list).
std::optional<std::vector<size_t>> resolve_key_fields(const ConfigValue& node, const Schema& schema,
                                                      const std::string& what, Diagnostics& diags);

// Appends the order-preserving encoding (state/codec.h) of the fields
// `fields` of physical row `row` to `out`, so equal keys give equal bytes
// (-0.0 is folded into 0.0). Returns false when any key field is null; the
// null is encoded all the same.
bool encode_row_key(const Batch& batch, const std::vector<size_t>& fields, size_t row,
                    std::string& out);

// Whether physical rows a and b of `batch` hold equal cells in `fields`
// (nulls equal nulls), so that their encode_row_key bytes are equal too: a
// keyed operator skips encoding and looking up a row whose key repeats the
// row before (consecutive rows often share a key). May say false for equal
// keys (-0.0 against 0.0, NaNs of other bits), never true for different ones.
bool same_key_cells(const Batch& batch, const std::vector<size_t>& fields, size_t a, size_t b);

// same_key_cells for every row against the one before, a column at a time:
// repeats[k] = 1 when physical row rows[k] (rows == nullptr: row k) holds
// the same cells in `fields` as row rows[k - 1]; repeats[0] = 0. A batch's
// run of one key costs a compare per cell instead of a call per row.
void mark_repeated_keys(const Batch& batch, const std::vector<size_t>& fields, const uint32_t* rows,
                        size_t n, std::vector<uint8_t>& repeats);

// Keyed operators implement this next to runtime::Operator so that metrics
// and tests can observe how much state they hold. Called from the thread
// that drives the operator.
class StateStats {
 public:
  virtual ~StateStats() = default;
  // Entries (rows or keys) currently held in keyed state.
  virtual size_t state_entries() const = 0;
};

// --- Checkpoints of keyed operators (implemented in state_json.cc). ---
//
// A keyed operator writes every pending change to its KvStore, then calls
// snapshot_store, which puts a RocksDB checkpoint of the store into
// ctx.files_dir() and `meta` (never empty, so a resumed run can tell it is
// resumed) into ctx.set_meta. `what` names the node in errors
// ("dedupe 'firsts'"). A store in memory (no state directory) cannot be
// checkpointed: kUnimplemented saying so.
Status snapshot_store(state::KvStore& store, runtime::SnapshotContext& ctx,
                      const nlohmann::json& meta, std::string_view what);

// For a snapshot whose in-memory part is written off the task thread: after
// snapshot_store, runs `build` on the subtask's I/O strand (ctx.io()) under
// sctx.defer() and adds the entries it fills to the store checkpoint in
// sctx.files_dir() (state::add_to_checkpoint, no memtable). The snapshot is
// acknowledged once they are in; on failure the checkpoint fails (not the
// run) with `what` named. `build` runs on another thread while the operator
// goes on, so it must own what it reads (copies of the operator's state).
void add_to_snapshot_async(runtime::OperatorContext& ctx, runtime::SnapshotContext& sctx,
                           std::function<Status(state::CheckpointEntries&)> build,
                           std::string what);

// The checkpoint of an empty store, made once (on the I/O strand) under the
// operator's state directory: a snapshot taken while the operator's store
// holds nothing lays a copy of it into the snapshot's files and adds the
// in-memory entries there (state::add_to_checkpoint), so the task thread
// neither opens the store nor checkpoints it (a RocksDB checkpoint writes
// and syncs a MANIFEST on the calling thread, and opening a store more).
// Windows, top_n and the joins use it; shared by the snapshot jobs of one subtask,
// which its I/O strand runs one at a time.
class EmptyStoreImage {
 public:
  explicit EmptyStoreImage(const std::string& state_dir);
  // Copies the image into `to`, which must not exist yet. I/O strand only.
  Status copy_to(const std::string& to);

 private:
  Status make();

  const std::string dir_;
  bool made_ = false;
};

// The snapshot of an operator whose store holds nothing: sets `meta`, and
// when `build` is set, the I/O pool lays the empty store's image (`image`,
// made at first use under `state_dir`) into the snapshot's files and adds
// build's entries there. Task thread.
void snapshot_without_store(runtime::OperatorContext& ctx, runtime::SnapshotContext& sctx,
                            const std::string& state_dir, std::shared_ptr<EmptyStoreImage>& image,
                            std::string meta,
                            std::function<Status(state::CheckpointEntries&)> build,
                            std::string what);

// The meta a resumed run hands back (OperatorContext::restored_meta), parsed;
// a null JSON on a fresh start. kDataError naming `what` when it is not a
// JSON object. The store at ctx.state_dir() already holds the snapshot.
Result<nlohmann::json> parse_restored_meta(const runtime::OperatorContext& ctx,
                                           std::string_view what);

// Meta members shared by the keyed operators. A time is a timestamp JSON
// (state_json.h) or null for "none yet" (INT64_MIN); a count is a JSON
// unsigned integer. The readers return kInvalidArgument with one sentence
// naming `what` and the member when it is missing or of the wrong type.
nlohmann::json time_to_meta(int64_t ms);
Result<int64_t> time_from_meta(const nlohmann::json& meta, std::string_view name,
                               std::string_view what);
Result<uint64_t> count_from_meta(const nlohmann::json& meta, std::string_view name,
                                 std::string_view what);
Result<bool> bool_from_meta(const nlohmann::json& meta, std::string_view name,
                            std::string_view what);

}  // namespace df::operators
