// Column: one typed, nullable column of a Batch.
//
// A column is written once (by a ColumnBuilder or through the mutable_*
// accessors right after make()), then frozen behind a ColumnPtr and shared
// read-only between batches and threads; a map that passes a field through
// shares the column instead of copying it.
//
// Layout: fixed-width types keep one contiguous array (bool as one byte per
// row, int64 and timestamp as int64_t, double as double). Strings keep an
// arena of bytes plus size()+1 offsets, Arrow-style. Validity is one byte per
// row (1 = valid); an empty validity vector means "no nulls".
//
// Threading: a column is mutable only while one thread builds it; once shared
// it is read-only. Columns from make_for_overwrite() return, when the last
// reference is dropped, to a small free list of the thread that drops it
// (engine/core/free_list.h), so per-batch columns stop costing an allocation
// and a zero-fill.
#pragma once

#include <cassert>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "engine/core/types.h"
#include "engine/core/value.h"

namespace df {

class Column;
using ColumnPtr = std::shared_ptr<const Column>;

class Column {
 public:
  // A fixed-width column of `size` zeroed, valid slots (not for strings).
  static std::shared_ptr<Column> make(TypeId type, size_t size);
  // A fixed-width column of `size` valid slots holding unspecified values of
  // the type (a recycled column's old values, or zeros), for a writer that
  // overwrites every slot it will read. Reuses a column this thread released.
  static std::shared_ptr<Column> make_for_overwrite(TypeId type, size_t size);
  // A column of `size` copies of `v` (strings too).
  static ColumnPtr constant(const Value& v, size_t size);

  TypeId type() const { return type_; }
  size_t size() const { return size_; }

  bool has_nulls() const { return !validity_.empty(); }
  bool is_null(size_t i) const { return !validity_.empty() && validity_[i] == 0; }
  bool is_valid(size_t i) const { return !is_null(i); }
  const uint8_t* validity() const { return validity_.empty() ? nullptr : validity_.data(); }

  const uint8_t* bool_data() const { return bools_.data(); }
  const int64_t* int64_data() const { return ints_.data(); }  // int64 and timestamp
  const double* double_data() const { return doubles_.data(); }
  std::string_view string_at(size_t i) const {
    return std::string_view(chars_.data() + offsets_[i], offsets_[i + 1] - offsets_[i]);
  }

  bool bool_at(size_t i) const { return bools_[i] != 0; }
  int64_t int64_at(size_t i) const { return ints_[i]; }
  double double_at(size_t i) const { return doubles_[i]; }
  // Boxes one slot; for tests and row-at-a-time paths.
  Value value_at(size_t i) const;

  // --- Writing, only before the column is shared. ---
  uint8_t* mutable_bool_data() { return bools_.data(); }
  int64_t* mutable_int64_data() { return ints_.data(); }
  double* mutable_double_data() { return doubles_.data(); }
  // Marks slot i null (allocates the validity vector on first use).
  void set_null(size_t i);
  void set_valid(size_t i) {
    if (!validity_.empty()) validity_[i] = 1;
  }

  size_t memory_bytes() const;

 private:
  friend class ColumnBuilder;
  explicit Column(TypeId type) : type_(type) {}
  // make_for_overwrite's deleter: back to this thread's free list, or delete.
  static void recycle(Column* c);
  size_t data_bytes() const;

  TypeId type_;
  size_t size_ = 0;
  std::vector<uint8_t> validity_;
  std::vector<uint8_t> bools_;
  std::vector<int64_t> ints_;
  std::vector<double> doubles_;
  std::vector<uint32_t> offsets_;  // strings: size_+1 entries
  std::string chars_;              // strings: the arena
};

// Appends values of one type, then finish() freezes them into a column.
// Not thread-safe; one builder per producing task.
class ColumnBuilder {
 public:
  explicit ColumnBuilder(TypeId type, size_t reserve = 0);

  TypeId type() const { return col_->type_; }
  size_t size() const { return col_->size_; }

  void append_null();
  // Inline: a window's or join's output appends cell by cell.
  void append_bool(bool v) {
    Column& c = *col_;
    assert(c.type_ == TypeId::kBool);
    mark_valid(c);
    c.bools_.push_back(v ? 1 : 0);
    ++c.size_;
  }
  void append_int64(int64_t v) {  // int64 and timestamp
    Column& c = *col_;
    assert(stored_as_int64(c.type_));
    mark_valid(c);
    c.ints_.push_back(v);
    ++c.size_;
  }
  // values[0..n) (a window's counts, one per group).
  void append_int64s(const int64_t* values, size_t n) {
    Column& c = *col_;
    assert(stored_as_int64(c.type_));
    if (!c.validity_.empty()) c.validity_.insert(c.validity_.end(), n, 1);
    c.ints_.insert(c.ints_.end(), values, values + n);
    c.size_ += n;
  }
  // Appends n valid slots of unspecified value and returns them, for the
  // caller to write (a join gathering cells from many columns); set_null()
  // marks one of them null.
  int64_t* append_int64_slots(size_t n) {
    Column& c = *col_;
    assert(stored_as_int64(c.type_));
    if (!c.validity_.empty()) c.validity_.insert(c.validity_.end(), n, 1);
    const size_t at = c.ints_.size();
    c.ints_.resize(at + n);
    c.size_ += n;
    return c.ints_.data() + at;
  }
  // Marks slot i, already appended, null.
  void set_null(size_t i) { col_->set_null(i); }
  // n copies of v (a window's start and end, the same on all its rows).
  void append_int64_repeated(int64_t v, size_t n) {
    Column& c = *col_;
    assert(stored_as_int64(c.type_));
    if (!c.validity_.empty()) c.validity_.insert(c.validity_.end(), n, 1);
    c.ints_.insert(c.ints_.end(), n, v);
    c.size_ += n;
  }
  void append_double(double v) {
    Column& c = *col_;
    assert(c.type_ == TypeId::kDouble);
    mark_valid(c);
    c.doubles_.push_back(v);
    ++c.size_;
  }
  void append_string(std::string_view v);
  // Appends v, which must be null or of the builder's type.
  void append_value(const Value& v);
  // Appends slot i of `src` (same type).
  void append_from(const Column& src, size_t i);

  ColumnPtr finish();

 private:
  // A column with a null so far keeps validity for every slot.
  static void mark_valid(Column& c) {
    if (!c.validity_.empty()) c.validity_.push_back(1);
  }

  std::shared_ptr<Column> col_;
};

}  // namespace df
