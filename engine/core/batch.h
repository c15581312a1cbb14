// Batch: up to batch_size rows of a stream, stored column by column.
//
// Immutable once built and shared by BatchPtr (ref-counted) on fan-out, so any
// number of threads may read it. A filter never copies: it returns a batch that
// shares the columns and carries a selection vector naming the physical rows
// still alive. Operators must visit rows through active_rows()/row_at() (or
// for_each_row) and never assume the physical rows are all alive.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>

#include "engine/core/column.h"
#include "engine/core/schema.h"

namespace df {

using Selection = std::vector<uint32_t>;  // ascending physical row indexes
using SelectionPtr = std::shared_ptr<const Selection>;

// A selection of `size` zeros to be overwritten (and shrunk) by its one
// writer before it is shared. Its buffer goes back to a free list of the
// thread that drops the last reference and is reused by the next call there,
// so a filter's per-batch selection costs no allocation.
std::shared_ptr<Selection> make_selection(size_t size);

// The clock of Batch::source_time_ns: steady-clock nanoseconds (never 0 in
// practice, so 0 can mean "unknown").
inline int64_t source_clock_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

class Batch;
using BatchPtr = std::shared_ptr<const Batch>;

class Batch {
 public:
  // `columns` match `schema` field by field, each of `num_rows` slots.
  // `event_time` is an optional int64 column (ms) of the same length.
  Batch(SchemaPtr schema, std::vector<ColumnPtr> columns, size_t num_rows,
        SelectionPtr selection = nullptr, ColumnPtr event_time = nullptr);

  static BatchPtr make(SchemaPtr schema, std::vector<ColumnPtr> columns, size_t num_rows,
                       SelectionPtr selection = nullptr, ColumnPtr event_time = nullptr) {
    return std::make_shared<const Batch>(std::move(schema), std::move(columns), num_rows,
                                         std::move(selection), std::move(event_time));
  }

  const SchemaPtr& schema() const { return schema_; }
  size_t num_columns() const { return columns_.size(); }
  const ColumnPtr& column(size_t i) const { return columns_[i]; }
  const std::vector<ColumnPtr>& columns() const { return columns_; }
  const ColumnPtr& event_time() const { return event_time_; }
  // When the rows left their source (source_clock_ns()), for the pipeline
  // latency metric; 0 = unknown. Batches derived from this one (with_*,
  // narrow, slice, compact) keep it; the runtime stamps a batch that has none
  // as it leaves the node that built it (a source, a window, a join).
  int64_t source_time_ns() const { return source_time_ns_; }

  // Physical rows (the length of every column).
  size_t num_rows() const { return num_rows_; }
  // nullptr when every physical row is alive.
  const Selection* selection() const { return selection_.get(); }
  const SelectionPtr& selection_ptr() const { return selection_; }
  // Rows alive after filtering.
  size_t active_rows() const { return selection_ ? selection_->size() : num_rows_; }
  // Physical index of the k-th alive row.
  size_t row_at(size_t k) const { return selection_ ? (*selection_)[k] : k; }

  template <typename F>
  void for_each_row(F&& f) const {
    if (selection_) {
      for (uint32_t r : *selection_) f(static_cast<size_t>(r));
    } else {
      for (size_t r = 0; r < num_rows_; ++r) f(r);
    }
  }

  // Same rows with other columns (same length) — e.g. the output of a map.
  BatchPtr with_columns(SchemaPtr schema, std::vector<ColumnPtr> columns) const;
  // Same columns, narrower selection (must be a subset of the current one).
  BatchPtr with_selection(SelectionPtr selection) const;
  // `batch` narrowed to `selection` (a subset of its alive rows): nullptr when
  // no row is left, `batch` itself when every row is, else a shared-column view.
  static BatchPtr narrow(const BatchPtr& batch, SelectionPtr selection);
  BatchPtr with_event_time(ColumnPtr event_time) const;
  // Same rows, stamped with another source time.
  BatchPtr with_source_time(int64_t source_time_ns) const;
  // `batch` stamped with another source time: in place when the caller holds
  // its only reference (no one else can be reading it), else a copy
  // (with_source_time). The runtime stamps every batch a source emits, so
  // this saves a batch allocation per source batch.
  static BatchPtr stamped(BatchPtr batch, int64_t source_time_ns);
  // A dense copy holding only the alive rows (selection dropped).
  BatchPtr compact() const;
  // Copies the alive rows [begin, end) (in active-row numbering) densely.
  BatchPtr slice(size_t begin, size_t end) const;

  size_t memory_bytes() const;

 private:
  // A batch over these parts that keeps this batch's source time.
  BatchPtr derive(SchemaPtr schema, std::vector<ColumnPtr> columns, size_t num_rows,
                  SelectionPtr selection, ColumnPtr event_time) const;

  SchemaPtr schema_;
  std::vector<ColumnPtr> columns_;
  size_t num_rows_;
  SelectionPtr selection_;
  ColumnPtr event_time_;
  // Mutable for stamped() only, which writes it while the batch is unshared.
  mutable int64_t source_time_ns_ = 0;
};

// Builds a batch row by row; for sources and tests. Not thread-safe.
class BatchBuilder {
 public:
  explicit BatchBuilder(SchemaPtr schema, size_t reserve = 0);

  const SchemaPtr& schema() const { return schema_; }
  size_t num_rows() const { return rows_; }
  ColumnBuilder& column(size_t i) { return builders_[i]; }
  // Call after appending exactly one value to every column.
  void finish_row() { ++rows_; }
  // Appends a whole row of values (nulls allowed).
  void append_row(const std::vector<Value>& row);
  // Freezes the rows so far into a batch and starts over.
  BatchPtr finish();

 private:
  SchemaPtr schema_;
  size_t reserve_;
  std::vector<ColumnBuilder> builders_;
  size_t rows_ = 0;
};

}  // namespace df
