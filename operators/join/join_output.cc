// JoinOutput and the row codec the join operators share.
#include <algorithm>
#include <bit>
#include <cassert>
#include <utility>

#include "engine/state/codec.h"
#include "operators/expr_options.h"
#include "operators/join/join.h"

namespace df::operators::join {

JoinOutput::JoinOutput(JoinConfigPtr config, runtime::OperatorContext& ctx)
    : config_(std::move(config)),
      ctx_(&ctx),
      batch_(config_->output, ctx.batch_size() == 0 ? 1024 : ctx.batch_size()) {}

namespace {

// Where output field `f` comes from: a left field, or a right field copied
// to the output.
struct FieldSource {
  bool left;
  size_t field;  // in its side's schema
};
FieldSource source_of(const JoinConfig& config, size_t f) {
  const size_t nl = config.left->size();
  return f < nl ? FieldSource{true, f} : FieldSource{false, config.right_out[f - nl]};
}

// The output cell of a row pair (no right row: null).
void append_output_cell(FieldSource source, const RowRef& left, const RowRef* right,
                        ColumnBuilder& to) {
  if (source.left) {
    left.append(source.field, to);
  } else if (right) {
    right->append(source.field, to);
  } else {
    to.append_null();
  }
}

// The same for a held pair: the column and row of the cell (no column: null).
std::pair<const Column*, uint32_t> output_cell(FieldSource source, const JoinOutput::HeldPair& p) {
  if (source.left) return {p.left->column(source.field).get(), p.left_row};
  return {p.right ? p.right->column(source.field).get() : nullptr, p.right_row};
}

// gather_cells for int64 and timestamp cells, written straight into the
// builder's new slots (appending one at a time cost ~30 instructions a cell).
template <typename Item, typename CellOf>
void gather_int64_cells(const Item* items, size_t n, ColumnBuilder& to, CellOf cell_of) {
  const size_t first = to.size();
  int64_t* slots = to.append_int64_slots(n);
  for (size_t i = 0; i < n; ++i) {
    const auto [column, row] = cell_of(items[i]);
    if (column == nullptr || column->is_null(row)) {
      slots[i] = 0;
      to.set_null(first + i);
    } else {
      slots[i] = column->int64_at(row);
    }
  }
}

// Appends the cell cell_of(items[i]) (a column and a row; no column: null)
// for each i < n to `to`, dispatching on the type once.
template <typename Item, typename CellOf>
void gather_cells(const Item* items, size_t n, ColumnBuilder& to, CellOf cell_of) {
  const auto each = [&](auto append) {
    for (size_t i = 0; i < n; ++i) {
      const auto [column, row] = cell_of(items[i]);
      if (column == nullptr || column->is_null(row)) {
        to.append_null();
      } else {
        append(*column, row);
      }
    }
  };
  switch (to.type()) {
    case TypeId::kBool:
      return each([&](const Column& c, uint32_t r) { to.append_bool(c.bool_at(r)); });
    case TypeId::kInt64:
    case TypeId::kTimestamp:
      return gather_int64_cells(items, n, to, cell_of);
    case TypeId::kDouble:
      return each([&](const Column& c, uint32_t r) { to.append_double(c.double_at(r)); });
    case TypeId::kString:
      return each([&](const Column& c, uint32_t r) { to.append_string(c.string_at(r)); });
  }
}

// Appends row `row` of `column` n times.
void repeat_cell(const Column& column, uint32_t row, size_t n, ColumnBuilder& to) {
  if (stored_as_int64(column.type()) && !column.is_null(row))
    return to.append_int64_repeated(column.int64_at(row), n);
  for (size_t i = 0; i < n; ++i) to.append_from(column, row);
}

bool same_left(const JoinOutput::HeldPair& a, const JoinOutput::HeldPair& b) {
  return a.left == b.left && a.left_row == b.left_row;
}

}  // namespace

void JoinOutput::add(const RowRef& left, const RowRef* right, int64_t ts, runtime::Output& out) {
  for (size_t f = 0; f < config_->output->size(); ++f) {
    append_output_cell(source_of(*config_, f), left, right, batch_.column(f));
  }
  batch_.end_row(ts, out);
}

bool JoinOutput::add_match(const RowRef& left, const RowRef& right, int64_t ts,
                           runtime::Output& out) {
  if (config_->where) {
    // One row of the fields `where` reads: the row-at-a-time paths (the
    // interval join, windows read back from the store) test each pair.
    const auto& fields = config_->where_fields;
    std::vector<ColumnPtr> columns;
    columns.reserve(fields.size());
    for (size_t c = 0; c < fields.size(); ++c) {
      ColumnBuilder cell(config_->where_schema->field(c).type, 1);
      append_output_cell(source_of(*config_, fields[c]), left, &right, cell);
      columns.push_back(cell.finish());
    }
    const ColumnPtr holds =
        evaluate_where(*Batch::make(config_->where_schema, std::move(columns), 1));
    if (holds->is_null(0) || !holds->bool_at(0)) return false;
  }
  add(left, &right, ts, out);
  return true;
}

void JoinOutput::add_pairs(const std::vector<HeldPair>& pairs, int64_t ts, runtime::Output& out) {
  if (!config_->where || pairs.empty())
    return append_pairs(pairs.data(), pairs.size(), nullptr, ts, out);
  const size_t n = pairs.size();
  const auto& fields = config_->where_fields;
  std::vector<ColumnPtr> columns;
  columns.reserve(fields.size());
  for (size_t c = 0; c < fields.size(); ++c) {
    ColumnBuilder cells(config_->where_schema->field(c).type, n);
    const FieldSource source = source_of(*config_, fields[c]);
    gather_cells(pairs.data(), n, cells,
                 [source](const HeldPair& p) { return output_cell(source, p); });
    columns.push_back(cells.finish());
  }
  const ColumnPtr holds =
      evaluate_where(*Batch::make(config_->where_schema, std::move(columns), n));
  kept_.clear();
  bool left_matched = false;  // some pair of the current left row went out
  for (size_t i = 0; i < n; ++i) {
    const HeldPair& p = pairs[i];
    if (i == 0 || !same_left(p, pairs[i - 1])) left_matched = false;
    if (!p.right || (!holds->is_null(i) && holds->bool_at(i))) {
      kept_.push_back(p);
      left_matched = true;
    }
    const bool last_of_left = i + 1 == n || !same_left(p, pairs[i + 1]);
    if (last_of_left && !left_matched && config_->left_outer) {
      kept_.push_back({p.left, nullptr, p.left_row, 0});
    }
  }
  append_pairs(kept_.data(), kept_.size(), nullptr, ts, out);
}

void JoinOutput::add_group(const std::vector<HeldRow>& lefts, const std::vector<HeldRow>& rights,
                           int64_t ts, runtime::Output& out) {
  assert(config_->where && !rights.empty() && rights.size() <= kMaxGroupRights);
  constexpr size_t kSlice = 4096;
  const auto& fields = config_->where_fields;
  std::vector<ColumnPtr> columns(fields.size());
  for (size_t at = 0; at < lefts.size(); at += kSlice) {
    const size_t n = std::min(kSlice, lefts.size() - at);
    const HeldRow* slice = lefts.data() + at;
    for (size_t c = 0; c < fields.size(); ++c) {
      const FieldSource source = source_of(*config_, fields[c]);
      if (!source.left) continue;
      ColumnBuilder cells(config_->where_schema->field(c).type, n);
      gather_cells(slice, n, cells, [field = source.field](const HeldRow& l) {
        return std::pair<const Column*, uint32_t>{l.batch->column(field).get(), l.row};
      });
      columns[c] = cells.finish();
    }
    holds_for_.assign(n, 0);
    for (size_t r = 0; r < rights.size(); ++r) {
      for (size_t c = 0; c < fields.size(); ++c) {
        const FieldSource source = source_of(*config_, fields[c]);
        if (source.left) continue;
        ColumnBuilder cells(config_->where_schema->field(c).type, n);
        repeat_cell(*rights[r].batch->column(source.field), rights[r].row, n, cells);
        columns[c] = cells.finish();
      }
      const ColumnPtr holds = evaluate_where(*Batch::make(config_->where_schema, columns, n));
      for (size_t i = 0; i < n; ++i) {
        if (!holds->is_null(i) && holds->bool_at(i)) holds_for_[i] |= uint64_t{1} << r;
      }
    }
    kept_.clear();
    for (size_t i = 0; i < n; ++i) {
      const HeldRow& left = slice[i];
      uint64_t held = holds_for_[i];
      if (held == 0 && config_->left_outer) kept_.push_back({left.batch, nullptr, left.row, 0});
      for (; held != 0; held &= held - 1) {
        const HeldRow& right = rights[static_cast<size_t>(std::countr_zero(held))];
        kept_.push_back({left.batch, right.batch, left.row, right.row});
      }
    }
    append_pairs(kept_.data(), kept_.size(), nullptr, ts, out);
  }
}

ColumnPtr JoinOutput::evaluate_where(const Batch& condition) {
  ColumnPtr holds = config_->where->evaluate(condition, eval_);
  report_eval_errors(eval_, *ctx_);
  return holds;
}

void JoinOutput::add_all_pairs(const std::vector<HeldPair>& pairs,
                               const std::vector<int64_t>& times, runtime::Output& out) {
  assert(pairs.size() == times.size());
  append_pairs(pairs.data(), pairs.size(), times.data(), 0, out);
}

void JoinOutput::append_pairs(const HeldPair* pairs, size_t count, const int64_t* times, int64_t ts,
                              runtime::Output& out) {
  const size_t num_fields = config_->output->size();
  for (size_t at = 0; at < count;) {
    const size_t n = std::min(batch_.room(), count - at);
    const HeldPair* chunk = pairs + at;
    for (size_t f = 0; f < num_fields; ++f) {
      const FieldSource source = source_of(*config_, f);
      gather_cells(chunk, n, batch_.column(f),
                   [source](const HeldPair& p) { return output_cell(source, p); });
    }
    if (times) {
      batch_.end_rows(n, times + at, out);
    } else {
      batch_.end_rows(n, ts, out);
    }
    at += n;
  }
}

void JoinOutput::flush(runtime::Output& out) { batch_.flush(out); }

void encode_row(const Batch& batch, size_t row, std::string& out) {
  for (size_t f = 0; f < batch.num_columns(); ++f) state::encode_cell(*batch.column(f), row, out);
}

state::RowCodec row_codec(const Schema& schema) {
  std::vector<TypeId> types;
  types.reserve(schema.size());
  for (const auto& f : schema.fields()) types.push_back(f.type);
  return state::RowCodec(std::move(types));
}

Status RowSequence::load(state::KvStore& store) {
  DF_ASSIGN_OR_RETURN(auto stored, store.get(kRowSequenceKey));
  if (stored) {
    std::string_view in = *stored;
    DF_ASSIGN_OR_RETURN(next_, state::read_u64(in));
  }
  saved_ = next_;
  return Status::OK();
}

void RowSequence::save(state::WriteBatch& writes) {
  if (next_ == saved_) return;
  std::string v;
  state::append_u64(next_, v);
  writes.put(kRowSequenceKey, v);
  saved_ = next_;
}

void RowSequence::add_to(state::CheckpointEntries& entries) const {
  if (next_ != saved_) put_to(entries);
}

void RowSequence::put_to(state::CheckpointEntries& entries) const {
  std::string v;
  state::append_u64(next_, v);
  entries.put(kRowSequenceKey, v);
}

JoinOperatorBase::JoinOperatorBase(JoinConfigPtr config)
    : config_(std::move(config)),
      left_codec_(row_codec(*config_->left)),
      right_codec_(row_codec(*config_->right)) {}

JoinOperatorBase::~JoinOperatorBase() = default;

Result<nlohmann::json> JoinOperatorBase::open_join(runtime::OperatorContext& ctx) {
  ctx_ = &ctx;
  what_ = "join '" + ctx.node_id() + "'";
  DF_ASSIGN_OR_RETURN(nlohmann::json meta, parse_restored_meta(ctx, what_));
  if (!meta.is_null()) {
    DF_ASSIGN_OR_RETURN(wm_, time_from_meta(meta, "watermark", what_));
    DF_ASSIGN_OR_RETURN(uint64_t entries, count_from_meta(meta, "entries", what_));
    entries_ = static_cast<size_t>(entries);
  }
  output_ = std::make_unique<JoinOutput>(config_, ctx);
  DF_ASSIGN_OR_RETURN(store_, state::open_store(ctx.state_dir()));
  DF_RETURN_IF_ERROR(seq_.load(*store_));
  return meta;
}

Status JoinOperatorBase::snapshot_join(runtime::SnapshotContext& ctx, bool store_has_rows,
                                       bool memory_has_rows,
                                       std::function<Status(state::CheckpointEntries&)> build,
                                       nlohmann::json extra) {
  extra["watermark"] = time_to_meta(wm_);
  extra["entries"] = static_cast<uint64_t>(entries_);
  const bool without_store = !store_has_rows && !ctx_->state_dir().empty();
  state::CheckpointEntries sequence;
  if (without_store) {
    seq_.put_to(sequence);  // the image has none
  } else {
    seq_.add_to(sequence);
  }
  const bool has_sequence = !sequence.empty();
  auto add = [sequence = std::move(sequence),
              build = std::move(build)](state::CheckpointEntries& out) mutable {
    out = std::move(sequence);  // called once
    return build(out);
  };
  if (without_store) {
    snapshot_without_store(*ctx_, ctx, ctx_->state_dir(), empty_image_, extra.dump(),
                           std::move(add), what_);
    return Status::OK();
  }
  DF_RETURN_IF_ERROR(snapshot_store(*store_, ctx, extra, what_));
  if (memory_has_rows || has_sequence) add_to_snapshot_async(*ctx_, ctx, std::move(add), what_);
  return Status::OK();
}

}  // namespace df::operators::join
