#include "engine/core/column.h"

#include <cassert>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "engine/core/free_list.h"

namespace df {
namespace {
// Columns released by make_for_overwrite's deleter, and string columns
// built by a ColumnBuilder (for their arena), per thread.
using ColumnFreeList = core_internal::ThreadFreeList<Column, 32, size_t{4} << 20>;
// Smaller string arenas are not worth recycling: malloc serves them well.
constexpr size_t kMinRecycledArena = 4096;
}  // namespace

size_t Column::data_bytes() const {
  return bools_.capacity() + ints_.capacity() * sizeof(int64_t) +
         doubles_.capacity() * sizeof(double) + offsets_.capacity() * sizeof(uint32_t) +
         chars_.capacity();
}

void Column::recycle(Column* c) {
  if (c->type_ == TypeId::kString) {
    // Only the arena is reused (by ColumnBuilder::append_string), emptied.
    if (c->chars_.capacity() < kMinRecycledArena) {
      delete c;
      return;
    }
    c->chars_.clear();
  }
  c->validity_.clear();  // keeps its capacity for the next set_null
  ColumnFreeList::give(c, c->data_bytes());
}

std::shared_ptr<Column> Column::make_for_overwrite(TypeId type, size_t size) {
  if (type == TypeId::kString) {
    throw std::logic_error("Column::make_for_overwrite does not build strings");
  }
  Column* c = ColumnFreeList::take([&](const Column& f) {
    if (f.type_ != type) return false;
    const size_t capacity = type == TypeId::kBool     ? f.bools_.capacity()
                            : type == TypeId::kDouble ? f.doubles_.capacity()
                                                      : f.ints_.capacity();
    return capacity >= size;
  });
  if (c == nullptr) c = new Column(type);
  c->size_ = size;
  // Within capacity: a same-size reuse writes nothing, a longer one zeroes the tail.
  switch (type) {
    case TypeId::kBool:
      c->bools_.resize(size);
      break;
    case TypeId::kInt64:
    case TypeId::kTimestamp:
      c->ints_.resize(size);
      break;
    case TypeId::kDouble:
      c->doubles_.resize(size);
      break;
    case TypeId::kString:
      break;
  }
  return std::shared_ptr<Column>(c, &Column::recycle);
}

std::shared_ptr<Column> Column::make(TypeId type, size_t size) {
  if (type == TypeId::kString) throw std::logic_error("Column::make does not build strings");
  auto c = std::shared_ptr<Column>(new Column(type));
  c->size_ = size;
  switch (type) {
    case TypeId::kBool:
      c->bools_.assign(size, 0);
      break;
    case TypeId::kInt64:
    case TypeId::kTimestamp:
      c->ints_.assign(size, 0);
      break;
    case TypeId::kDouble:
      c->doubles_.assign(size, 0.0);
      break;
    case TypeId::kString:
      break;
  }
  return c;
}

ColumnPtr Column::constant(const Value& v, size_t size) {
  ColumnBuilder b(v.type(), size);
  for (size_t i = 0; i < size; ++i) b.append_value(v);
  return b.finish();
}

void Column::set_null(size_t i) {
  if (validity_.empty()) validity_.assign(size_, 1);
  validity_[i] = 0;
}

Value Column::value_at(size_t i) const {
  if (is_null(i)) return Value::null(type_);
  switch (type_) {
    case TypeId::kBool:
      return Value::boolean(bools_[i] != 0);
    case TypeId::kInt64:
      return Value::int64(ints_[i]);
    case TypeId::kTimestamp:
      return Value::timestamp(ints_[i]);
    case TypeId::kDouble:
      return Value::float64(doubles_[i]);
    case TypeId::kString:
      return Value::string(std::string(string_at(i)));
  }
  return Value::null(type_);
}

size_t Column::memory_bytes() const { return validity_.capacity() + data_bytes() + sizeof(Column); }

ColumnBuilder::ColumnBuilder(TypeId type, size_t reserve)
    // A string column's arena goes back to the free list of the thread that
    // drops it (Column::recycle); see append_string.
    : col_(type == TypeId::kString ? std::shared_ptr<Column>(new Column(type), &Column::recycle)
                                   : std::shared_ptr<Column>(new Column(type))) {
  switch (type) {
    case TypeId::kBool:
      col_->bools_.reserve(reserve);
      break;
    case TypeId::kInt64:
    case TypeId::kTimestamp:
      col_->ints_.reserve(reserve);
      break;
    case TypeId::kDouble:
      col_->doubles_.reserve(reserve);
      break;
    case TypeId::kString:
      col_->offsets_.reserve(reserve + 1);
      col_->offsets_.push_back(0);
      break;
  }
}

void ColumnBuilder::append_null() {
  Column& c = *col_;
  if (c.validity_.empty()) c.validity_.assign(c.size_, 1);
  c.validity_.push_back(0);
  switch (c.type_) {
    case TypeId::kBool:
      c.bools_.push_back(0);
      break;
    case TypeId::kInt64:
    case TypeId::kTimestamp:
      c.ints_.push_back(0);
      break;
    case TypeId::kDouble:
      c.doubles_.push_back(0.0);
      break;
    case TypeId::kString:
      c.offsets_.push_back(static_cast<uint32_t>(c.chars_.size()));
      break;
  }
  ++c.size_;
}

void ColumnBuilder::append_string(std::string_view v) {
  Column& c = *col_;
  assert(c.type_ == TypeId::kString);
  mark_valid(c);
  if (c.chars_.capacity() - c.chars_.size() < v.size() && c.chars_.capacity() < kMinRecycledArena)
      [[unlikely]] {
    // The first time a small arena would grow, it is sized for the rows the
    // builder was told to expect (bytes per row so far + 1/8): an arena
    // grown from empty costs a chain of reallocations and copies and fresh
    // pages every batch (the text fields of a source). The smallest arena
    // this thread released that fits (and is at most 4x too big) is reused.
    struct Arena {
      // Out of line, so that the hot path keeps a small frame.
      [[gnu::noinline, gnu::cold]] static void size_for_rows(Column& col, size_t more) {
        const size_t rows = col.size_;
        // The builder's reserve (without one, the offsets' own growth: the
        // arena about doubles, as it would anyway).
        const size_t expected_rows = col.offsets_.capacity() - 1;
        if (expected_rows <= rows) return;
        size_t need = (col.chars_.size() + more) * expected_rows / (rows + 1);
        need += need / 8;
        if (need < kMinRecycledArena) return;
        size_t best = SIZE_MAX;
        ColumnFreeList::take([&](const Column& f) {
          const size_t cap = f.chars_.capacity();
          if (f.type_ == TypeId::kString && cap >= need && cap / 4 <= need && cap < best) {
            best = cap;
          }
          return false;  // only looking
        });
        Column* reused = best == SIZE_MAX ? nullptr : ColumnFreeList::take([&](const Column& f) {
          return f.type_ == TypeId::kString && f.chars_.capacity() == best;
        });
        if (reused == nullptr) {
          col.chars_.reserve(need);
          return;
        }
        std::string arena = std::move(reused->chars_);  // empty, capacity kept
        delete reused;
        arena.append(col.chars_);
        col.chars_ = std::move(arena);
      }
    };
    Arena::size_for_rows(c, v.size());
  }
  c.chars_.append(v.data(), v.size());
  c.offsets_.push_back(static_cast<uint32_t>(c.chars_.size()));
  ++c.size_;
}

void ColumnBuilder::append_value(const Value& v) {
  if (v.is_null()) return append_null();
  switch (col_->type_) {
    case TypeId::kBool:
      return append_bool(v.as_bool());
    case TypeId::kInt64:
    case TypeId::kTimestamp:
      return append_int64(v.as_int64());
    case TypeId::kDouble:
      return append_double(v.as_double());
    case TypeId::kString:
      return append_string(v.as_string());
  }
}

void ColumnBuilder::append_from(const Column& src, size_t i) {
  if (src.is_null(i)) return append_null();
  switch (col_->type_) {
    case TypeId::kBool:
      return append_bool(src.bool_at(i));
    case TypeId::kInt64:
    case TypeId::kTimestamp:
      return append_int64(src.int64_at(i));
    case TypeId::kDouble:
      return append_double(src.double_at(i));
    case TypeId::kString:
      return append_string(src.string_at(i));
  }
}

ColumnPtr ColumnBuilder::finish() {
  ColumnPtr out = col_;
  *this = ColumnBuilder(col_->type_);
  return out;
}

}  // namespace df
