#include "engine/core/column.h"

#include <cassert>
#include <stdexcept>

#include "engine/core/free_list.h"

namespace df {
namespace {
// Columns released by make_for_overwrite's deleter, per thread.
using ColumnFreeList = core_internal::ThreadFreeList<Column, 32, size_t{4} << 20>;
}  // namespace

size_t Column::data_bytes() const {
  return bools_.capacity() + ints_.capacity() * sizeof(int64_t) +
         doubles_.capacity() * sizeof(double);
}

void Column::recycle(Column* c) {
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

size_t Column::memory_bytes() const {
  return validity_.capacity() + data_bytes() + offsets_.capacity() * sizeof(uint32_t) +
         chars_.capacity() + sizeof(Column);
}

ColumnBuilder::ColumnBuilder(TypeId type, size_t reserve)
    : col_(std::shared_ptr<Column>(new Column(type))) {
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

#define DF_MARK_VALID(c) \
  if (!(c).validity_.empty()) (c).validity_.push_back(1)

void ColumnBuilder::append_bool(bool v) {
  Column& c = *col_;
  assert(c.type_ == TypeId::kBool);
  DF_MARK_VALID(c);
  c.bools_.push_back(v ? 1 : 0);
  ++c.size_;
}

void ColumnBuilder::append_int64(int64_t v) {
  Column& c = *col_;
  assert(c.type_ == TypeId::kInt64 || c.type_ == TypeId::kTimestamp);
  DF_MARK_VALID(c);
  c.ints_.push_back(v);
  ++c.size_;
}

void ColumnBuilder::append_double(double v) {
  Column& c = *col_;
  assert(c.type_ == TypeId::kDouble);
  DF_MARK_VALID(c);
  c.doubles_.push_back(v);
  ++c.size_;
}

void ColumnBuilder::append_string(std::string_view v) {
  Column& c = *col_;
  assert(c.type_ == TypeId::kString);
  DF_MARK_VALID(c);
  c.chars_.append(v.data(), v.size());
  c.offsets_.push_back(static_cast<uint32_t>(c.chars_.size()));
  ++c.size_;
}

#undef DF_MARK_VALID

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
  TypeId type = col_->type_;
  col_ = std::shared_ptr<Column>(new Column(type));
  if (type == TypeId::kString) col_->offsets_.push_back(0);
  return out;
}

}  // namespace df
