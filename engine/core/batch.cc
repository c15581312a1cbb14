#include "engine/core/batch.h"

#include <stdexcept>

#include "engine/core/free_list.h"

namespace df {

namespace {
using SelectionFreeList = core_internal::ThreadFreeList<Selection, 16, size_t{1} << 20>;

void recycle_selection(Selection* s) {
  s->clear();  // keeps the capacity
  SelectionFreeList::give(s, s->capacity() * sizeof(uint32_t));
}
}  // namespace

std::shared_ptr<Selection> make_selection(size_t size) {
  Selection* s = SelectionFreeList::take([&](const Selection& f) { return f.capacity() >= size; });
  if (s == nullptr) s = new Selection();
  s->resize(size);
  return std::shared_ptr<Selection>(s, &recycle_selection);
}

Batch::Batch(SchemaPtr schema, std::vector<ColumnPtr> columns, size_t num_rows,
             SelectionPtr selection, ColumnPtr event_time)
    : schema_(std::move(schema)),
      columns_(std::move(columns)),
      num_rows_(num_rows),
      selection_(std::move(selection)),
      event_time_(std::move(event_time)) {
  if (columns_.size() != schema_->size()) {
    throw std::logic_error("Batch: " + std::to_string(columns_.size()) + " columns for schema " +
                           schema_->to_string());
  }
  for (const auto& c : columns_) {
    if (c->size() != num_rows_)
      throw std::logic_error("Batch: column length differs from num_rows");
  }
  if (event_time_ && event_time_->size() != num_rows_) {
    throw std::logic_error("Batch: event-time column length differs from num_rows");
  }
}

BatchPtr Batch::derive(SchemaPtr schema, std::vector<ColumnPtr> columns, size_t num_rows,
                       SelectionPtr selection, ColumnPtr event_time) const {
  auto b = std::make_shared<Batch>(std::move(schema), std::move(columns), num_rows,
                                   std::move(selection), std::move(event_time));
  b->source_time_ns_ = source_time_ns_;
  return b;
}

BatchPtr Batch::with_columns(SchemaPtr schema, std::vector<ColumnPtr> columns) const {
  return derive(std::move(schema), std::move(columns), num_rows_, selection_, event_time_);
}

BatchPtr Batch::with_selection(SelectionPtr selection) const {
  return derive(schema_, columns_, num_rows_, std::move(selection), event_time_);
}

BatchPtr Batch::narrow(const BatchPtr& batch, SelectionPtr selection) {
  if (selection->empty()) return nullptr;
  if (selection->size() == batch->active_rows()) return batch;
  return batch->with_selection(std::move(selection));
}

BatchPtr Batch::with_event_time(ColumnPtr event_time) const {
  return derive(schema_, columns_, num_rows_, selection_, std::move(event_time));
}

BatchPtr Batch::with_source_time(int64_t source_time_ns) const {
  auto b = std::make_shared<Batch>(schema_, columns_, num_rows_, selection_, event_time_);
  b->source_time_ns_ = source_time_ns;
  return b;
}

BatchPtr Batch::stamped(BatchPtr batch, int64_t source_time_ns) {
  if (batch.use_count() != 1) return batch->with_source_time(source_time_ns);
  batch->source_time_ns_ = source_time_ns;
  return batch;
}

static ColumnPtr gather(const Column& src, const Batch& b, size_t begin, size_t end) {
  ColumnBuilder out(src.type(), end - begin);
  for (size_t k = begin; k < end; ++k) out.append_from(src, b.row_at(k));
  return out.finish();
}

BatchPtr Batch::slice(size_t begin, size_t end) const {
  std::vector<ColumnPtr> cols;
  cols.reserve(columns_.size());
  for (const auto& c : columns_) cols.push_back(gather(*c, *this, begin, end));
  ColumnPtr et = event_time_ ? gather(*event_time_, *this, begin, end) : nullptr;
  return derive(schema_, std::move(cols), end - begin, nullptr, std::move(et));
}

BatchPtr Batch::compact() const { return slice(0, active_rows()); }

size_t Batch::memory_bytes() const {
  size_t n = sizeof(Batch);
  for (const auto& c : columns_) n += c->memory_bytes();
  if (event_time_) n += event_time_->memory_bytes();
  if (selection_) n += selection_->capacity() * sizeof(uint32_t);
  return n;
}

BatchBuilder::BatchBuilder(SchemaPtr schema, size_t reserve)
    : schema_(std::move(schema)), reserve_(reserve) {
  builders_.reserve(schema_->size());
  for (const auto& f : schema_->fields()) builders_.emplace_back(f.type, reserve_);
}

void BatchBuilder::append_row(const std::vector<Value>& row) {
  for (size_t i = 0; i < builders_.size(); ++i) builders_[i].append_value(row[i]);
  ++rows_;
}

BatchPtr BatchBuilder::finish() {
  std::vector<ColumnPtr> cols;
  cols.reserve(builders_.size());
  for (auto& b : builders_) cols.push_back(b.finish());
  size_t n = rows_;
  rows_ = 0;
  return Batch::make(schema_, std::move(cols), n);
}

}  // namespace df
