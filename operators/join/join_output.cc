// JoinOutput and the row codec the join operators share.
#include <algorithm>
#include <utility>

#include "engine/state/codec.h"
#include "operators/join/join.h"

namespace df::operators::join {

JoinOutput::JoinOutput(JoinConfigPtr config, size_t batch_size)
    : config_(std::move(config)), batch_(config_->output, batch_size == 0 ? 1024 : batch_size) {}

void JoinOutput::add(const RowRef& left, const RowRef* right, int64_t ts, runtime::Output& out) {
  const size_t nl = config_->left->size();
  for (size_t f = 0; f < nl; ++f) left.append(f, batch_.column(f));
  for (size_t j = 0; j < config_->right_out.size(); ++j) {
    if (right) {
      right->append(config_->right_out[j], batch_.column(nl + j));
    } else {
      batch_.column(nl + j).append_null();
    }
  }
  batch_.end_row(ts, out);
}

namespace {

// Appends the cell cell_of(pairs[i]) (a column and a row; no column: null)
// for each i < n to `to`, dispatching on the type once.
template <typename CellOf>
void gather_cells(const JoinOutput::HeldPair* pairs, size_t n, ColumnBuilder& to, CellOf cell_of) {
  const auto each = [&](auto append) {
    for (size_t i = 0; i < n; ++i) {
      const auto [column, row] = cell_of(pairs[i]);
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
      return each([&](const Column& c, uint32_t r) { to.append_int64(c.int64_at(r)); });
    case TypeId::kDouble:
      return each([&](const Column& c, uint32_t r) { to.append_double(c.double_at(r)); });
    case TypeId::kString:
      return each([&](const Column& c, uint32_t r) { to.append_string(c.string_at(r)); });
  }
}

}  // namespace

void JoinOutput::add_pairs(const std::vector<HeldPair>& pairs, int64_t ts, runtime::Output& out) {
  const size_t nl = config_->left->size();
  for (size_t at = 0; at < pairs.size();) {
    const size_t n = std::min(batch_.room(), pairs.size() - at);
    const HeldPair* chunk = pairs.data() + at;
    for (size_t f = 0; f < nl; ++f) {
      gather_cells(chunk, n, batch_.column(f), [f](const HeldPair& p) {
        return std::pair<const Column*, uint32_t>(p.left->column(f).get(), p.left_row);
      });
    }
    for (size_t j = 0; j < config_->right_out.size(); ++j) {
      const size_t f = config_->right_out[j];
      gather_cells(chunk, n, batch_.column(nl + j), [f](const HeldPair& p) {
        return std::pair<const Column*, uint32_t>(p.right ? p.right->column(f).get() : nullptr,
                                                  p.right_row);
      });
    }
    batch_.end_rows(n, ts, out);
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
  output_ = std::make_unique<JoinOutput>(config_, ctx.batch_size());
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
