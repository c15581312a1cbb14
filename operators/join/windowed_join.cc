// The windowed join: rows of both sides with the same key in the same
// tumbling window [start, start + size) are joined when the watermark reaches
// the window's last millisecond (start + size - 1); output rows carry that
// time as event time. Then the window's state is dropped.
//
// Rows are buffered under 'W' start key side seq (join.h) in a
// state::CachedTable over the subtask's KvStore: appends are blind writes
// kept in memory up to the state memory budget (least recently written rows
// spill to the store). One window is a contiguous key range ordered by key,
// the left rows of a key before its right rows, so firing is one merged scan
// that joins one (window, key) group at a time, then one range delete. Only
// one group is held decoded while firing. A row whose window has already fired is late:
// it is counted as a data error and dropped. Checkpoints: join.h.
#include <algorithm>
#include <limits>

#include "engine/state/codec.h"
#include "operators/join/join.h"
#include "operators/stateful.h"

namespace df::operators::join {

namespace {

constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
constexpr int64_t kMin = std::numeric_limits<int64_t>::min();

class WindowedJoin final : public JoinOperatorBase {
 public:
  using JoinOperatorBase::JoinOperatorBase;

  Status open(runtime::OperatorContext& ctx) override {
    DF_RETURN_IF_ERROR(open_join(ctx).status());
    Table::Options options;
    if (ctx.state_memory_budget() > 0) options.memory_budget_bytes = ctx.state_memory_budget();
    rows_ = std::make_unique<Table>(*store_, state::BytesCodec{}, options);
    return Status::OK();
  }

  Status process(size_t input, const BatchPtr& batch, runtime::Output&) override {
    const Column* times = batch->event_time().get();
    if (!times)
      return Status::internal("join '" + ctx_->node_id() + "': a batch without event time");
    const bool is_left = input == 0;
    const auto& keys = is_left ? config_->left_keys : config_->right_keys;
    const int64_t size = config_->window_size_ms;
    std::string value;
    for (size_t k = 0; k < batch->active_rows(); ++k) {
      const size_t row = batch->row_at(k);
      if (times->is_null(row)) {
        ctx_->report_data_error("join: row without event time skipped");
        continue;
      }
      const int64_t start = floor_div(times->int64_at(row), size) * size;
      if (start + (size - 1) <= wm_) {
        ctx_->report_data_error("join: late row dropped (its window was already emitted)");
        continue;
      }
      std::string window_key(1, kWindow);
      state::append_ordered_i64(start, window_key);
      // A null key never matches: right rows are not kept, left rows only to
      // come out unmatched from a left outer join.
      if (!encode_row_key(*batch, keys, row, window_key) && !(is_left && config_->left_outer)) {
        continue;
      }
      window_key.push_back(is_left ? kLeft : kRight);
      state::append_u64(seq_.next(), window_key);
      value.clear();
      encode_row(*batch, row, value);
      DF_RETURN_IF_ERROR(rows_->put(window_key, value));
      ++entries_;
    }
    state::WriteBatch writes;
    seq_.save(writes);
    if (!writes.empty()) DF_RETURN_IF_ERROR(store_->write(writes));
    return Status::OK();
  }

  Status on_watermark(Watermark wm, runtime::Output& out) override {
    wm_ = std::max(wm_, wm.timestamp_ms);
    // Windows whose last millisecond start + size - 1 <= wm fire.
    const int64_t size = config_->window_size_ms;
    const int64_t last_start = wm_ < kMin + size ? kMin : wm_ - size + 1;
    DF_RETURN_IF_ERROR(fire(last_start, out));
    out.emit_watermark(wm);
    return Status::OK();
  }

  Status finish(runtime::Output& out) override { return fire(kMax, out); }

  // Buffered rows still in memory stay there: the task thread copies them
  // and takes the store's checkpoint (hard links); the I/O pool adds the
  // copy to the checkpoint as one table file, never through a memtable.
  Status snapshot(runtime::SnapshotContext& ctx) override {
    auto unwritten = std::make_shared<state::CheckpointEntries>();
    DF_RETURN_IF_ERROR(rows_->copy_dirty_to(*unwritten));
    DF_RETURN_IF_ERROR(snapshot_join(ctx));
    if (!unwritten->empty()) {
      add_to_snapshot_async(
          *ctx_, ctx,
          [unwritten](state::CheckpointEntries& out) {
            out = std::move(*unwritten);  // called once
            return Status::OK();
          },
          what_);
    }
    return Status::OK();
  }

  // Rows not yet fired go to the store, so a restart on this state dir finds them.
  Status close() override { return rows_ ? rows_->flush() : Status::OK(); }

 private:
  // Joins and drops every window with start <= last_start.
  Status fire(int64_t last_start, runtime::Output& out) {
    const std::string begin(1, kWindow);
    std::string end(1, kWindow);
    if (last_start == kMax) {
      end = state::prefix_end(begin);
    } else {
      state::append_ordered_i64(last_start + 1, end);
    }
    // Collect the fired keys' groups: a (window, key) group is every entry
    // sharing the key up to its side byte.
    std::string group;  // "W start key" of the current group
    int64_t group_start = 0;
    std::vector<state::Row> lefts;
    std::vector<state::Row> rights;
    size_t removed = 0;
    Status status;
    auto close_group = [&]() {
      const int64_t ts = group_start + config_->window_size_ms - 1;
      for (const auto& l : lefts) {
        const RowRef left = RowRef::of(l);
        for (const auto& r : rights) {
          const RowRef right = RowRef::of(r);
          output_->add(left, &right, ts, out);
        }
        if (rights.empty() && config_->left_outer) output_->add(left, nullptr, ts, out);
      }
      lefts.clear();
      rights.clear();
    };
    DF_RETURN_IF_ERROR(
        rows_->for_each_in_range(begin, end, [&](std::string_view k, const std::string& v) {
          // k = 'W' start(8) key side(1) seq(8)
          if (k.size() < 1 + 8 + 1 + 8) {
            status = Status::internal("join state: short window key");
            return false;
          }
          std::string_view prefix = k.substr(0, k.size() - 9);
          const char side = k[k.size() - 9];
          if (prefix != group) {
            close_group();
            group.assign(prefix);
            std::string_view in = k.substr(1, 8);
            auto start = state::read_ordered_i64(in);
            if (!start.ok()) {
              status = start.status();
              return false;
            }
            group_start = *start;
          }
          auto& group_rows = side == kLeft ? lefts : rights;
          group_rows.emplace_back();
          status = (side == kLeft ? left_codec_ : right_codec_).decode(v, group_rows.back());
          if (!status.ok()) return false;
          ++removed;
          return true;
        }));
    DF_RETURN_IF_ERROR(status);
    close_group();
    output_->flush(out);
    if (removed > 0) {
      DF_RETURN_IF_ERROR(rows_->remove_range(begin, end));
      entries_ -= std::min(entries_, removed);
    }
    return Status::OK();
  }

  using Table = state::CachedTable<std::string, state::BytesCodec>;

  std::unique_ptr<Table> rows_;  // uses the base's *store_, destroyed before it
};

}  // namespace

std::unique_ptr<runtime::Operator> make_windowed_join(JoinConfigPtr config) {
  return std::make_unique<WindowedJoin>(std::move(config));
}

}  // namespace df::operators::join
