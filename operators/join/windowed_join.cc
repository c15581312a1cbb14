// The windowed join: rows of both sides with the same key in the same
// tumbling window [start, start + size) are joined when the watermark reaches
// the window's last millisecond (start + size - 1); output rows carry that
// time as event time. Then the window's state is dropped.
//
// Rows are buffered per window and key in memory while they fit the state
// memory budget: a hash map of encoded keys to each side's rows, so an
// arriving row is one lookup and one append, and firing walks each key's
// rows once (no sort). When memory is full, whole windows move to the
// subtask's KvStore, newest first (they fire last), under
// 'W' start key side seq (join.h), in key order; their later rows gather in
// memory again and join them when the window fires.
// A window in the store is one contiguous key range ordered by key, the left
// rows of a key before its right rows, so firing it is one merged scan that
// joins one (window, key) group at a time, then one range delete. A row
// whose window has already fired is late: it is counted as a data error and
// dropped. Checkpoints: join.h.
#include <algorithm>
#include <functional>
#include <limits>
#include <map>
#include <unordered_map>
#include <utility>

#include "engine/state/codec.h"
#include "operators/join/join.h"
#include "operators/stateful.h"

namespace df::operators::join {

namespace {

constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
constexpr size_t kDefaultBudget = 64u << 20;
constexpr size_t kWriteSlice = 8192;

// 'W' start: the prefix of one window's rows in the store.
std::string window_prefix(int64_t start) {
  std::string k(1, kWindow);
  state::append_ordered_i64(start, k);
  return k;
}

class WindowedJoin final : public JoinOperatorBase {
 public:
  using JoinOperatorBase::JoinOperatorBase;

  Status open(runtime::OperatorContext& ctx) override {
    DF_RETURN_IF_ERROR(open_join(ctx).status());
    budget_ = ctx.state_memory_budget() > 0 ? ctx.state_memory_budget() : kDefaultBudget;
    return load_from_store();
  }

  Status process(size_t input, const BatchPtr& batch, runtime::Output&) override {
    const Column* times = batch->event_time().get();
    if (!times)
      return Status::internal("join '" + ctx_->node_id() + "': a batch without event time");
    const bool is_left = input == 0;
    const auto& keys = is_left ? config_->left_keys : config_->right_keys;
    const int64_t size = config_->window_size_ms;
    std::string key;
    Window* window = nullptr;  // of the previous row: most rows share it
    int64_t window_start = kMin;
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
      key.clear();
      // A null key never matches: right rows are not kept, left rows only to
      // come out unmatched from a left outer join.
      if (!encode_row_key(*batch, keys, row, key) && !(is_left && config_->left_outer)) {
        continue;
      }
      if (window == nullptr || start != window_start) {
        window = &windows_[start];
        window_start = start;
      }
      const uint64_t seq = seq_.next();
      ++entries_;
      auto found = window->groups.find(key);
      Group& group = found != window->groups.end() ? found->second : window->groups[key];
      BufferedRow& b = (is_left ? group.left : group.right).emplace_back();
      b.seq = seq;
      encode_row(*batch, row, b.row);
      const size_t bytes = buffered_bytes(b) + (found == window->groups.end() ? key.size() : 0);
      window->bytes += bytes;
      memory_bytes_ += bytes;
    }
    // The row numbering is not written to the store here: a spill writes it
    // with the rows, a snapshot puts it into the checkpoint. So the store is
    // untouched between checkpoints while every window is in memory, and a
    // checkpoint of it has no memtable to flush on the task thread.
    return memory_bytes_ > budget_ ? spill(budget_ / 2) : Status::OK();
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

  // The rows in memory and the row numbering are copied in the store layout
  // on the task thread; the I/O pool adds the copy to the store's checkpoint
  // (hard links) as one table file, never through a memtable.
  Status snapshot(runtime::SnapshotContext& ctx) override {
    auto in_memory = std::make_shared<state::CheckpointEntries>();
    for_each_in_memory(
        [&](const std::string& k, const std::string& row) { in_memory->put(k, row); });
    seq_.add_to(*in_memory);  // the numbering a resumed run continues from
    DF_RETURN_IF_ERROR(snapshot_join(ctx));
    if (!in_memory->empty()) {
      add_to_snapshot_async(
          *ctx_, ctx,
          [in_memory](state::CheckpointEntries& out) {
            out = std::move(*in_memory);  // called once
            return Status::OK();
          },
          what_);
    }
    return Status::OK();
  }

  // Rows not yet fired go to the store, so a restart on this state dir finds them.
  Status close() override { return store_ && memory_bytes_ > 0 ? spill(0) : Status::OK(); }

 private:
  struct Group {
    std::vector<BufferedRow> left;
    std::vector<BufferedRow> right;
  };
  struct Window {
    std::unordered_map<std::string, Group, KeyHash, std::equal_to<>> groups;
    size_t bytes = 0;       // estimated heap bytes of `groups`
    bool in_store = false;  // some of its rows are in the store, the rest in `groups`
  };

  // fn(store key, row) for every row in memory, windows in start order.
  template <typename Fn>
  void for_each_in_memory(Fn&& fn) {
    std::string k;
    for (const auto& [start, window] : windows_) {
      const std::string prefix = window_prefix(start);
      for (const auto& [key, group] : window.groups) {
        for (const bool left : {true, false}) {
          for (const BufferedRow& b : left ? group.left : group.right) {
            k = prefix;
            k += key;
            k.push_back(left ? kLeft : kRight);
            state::append_u64(b.seq, k);
            fn(k, b.row);
          }
        }
      }
    }
  }

  // Moves windows' rows to the store, newest first, until memory holds at
  // most `keep` bytes. The rows go in key order: RocksDB inserts them into
  // its memtable one after the other, not at random places.
  Status spill(size_t keep) {
    for (auto it = windows_.rbegin(); it != windows_.rend() && memory_bytes_ > keep; ++it) {
      DF_RETURN_IF_ERROR(spill_window(it->first, it->second));
    }
    return Status::OK();
  }

  Status spill_window(int64_t start, Window& window) {
    if (window.groups.empty()) return Status::OK();
    const std::string prefix = window_prefix(start);
    std::vector<std::pair<std::string, const std::string*>> rows;
    std::string k;
    for (const auto& [key, group] : window.groups) {
      for (const bool left : {true, false}) {
        for (const BufferedRow& b : left ? group.left : group.right) {
          k = prefix;
          k += key;
          k.push_back(left ? kLeft : kRight);
          state::append_u64(b.seq, k);
          rows.emplace_back(k, &b.row);
        }
      }
    }
    std::sort(rows.begin(), rows.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    state::WriteBatch writes;
    for (const auto& [key, row] : rows) {
      writes.put(key, *row);
      if (writes.size() >= kWriteSlice) {
        DF_RETURN_IF_ERROR(store_->write(writes));
        writes.clear();
      }
    }
    seq_.save(writes);
    DF_RETURN_IF_ERROR(store_->write(writes));
    memory_bytes_ -= std::min(memory_bytes_, window.bytes);
    window.groups = {};
    window.bytes = 0;
    window.in_store = true;
    return Status::OK();
  }

  // Reads the rows a checkpoint (or a closed run) left in the store back into
  // memory, up to the budget, and removes those windows from the store; a
  // window is read back whole or not at all.
  Status load_from_store() {
    const std::string begin(1, kWindow);
    const std::string end = state::prefix_end(begin);
    Status status;
    int64_t over_from = kMax;  // windows from here on stay in the store
    DF_RETURN_IF_ERROR(store_->scan(begin, end, [&](std::string_view k, std::string_view v) {
      // k = 'W' start(8) key side(1) seq(8)
      if (k.size() < 1 + 8 + 1 + 8) {
        status = Status::data_error(what_ + ": a short window key in the state");
        return false;
      }
      std::string_view in = k.substr(1, 8);
      auto start = state::read_ordered_i64(in);
      std::string_view tail = k.substr(k.size() - 8);
      auto seq = state::read_u64(tail);
      if (!start.ok() || !seq.ok()) {
        status = start.ok() ? seq.status() : start.status();
        return false;
      }
      Window& window = windows_[*start];
      if (memory_bytes_ > budget_) {
        // Over the budget, even inside a window: that window stays in the
        // store whole (what was read of it is dropped, it is still stored),
        // so a window bigger than the budget is never read in only to be
        // written back, which would also make the next checkpoint a full one.
        memory_bytes_ -= std::min(memory_bytes_, window.bytes);
        window.groups = {};
        window.bytes = 0;
        over_from = *start;
        return false;
      }
      const std::string_view key = k.substr(1 + 8, k.size() - (1 + 8 + 1 + 8));
      auto found = window.groups.find(key);
      Group& group = found != window.groups.end() ? found->second : window.groups[std::string(key)];
      BufferedRow& b = (k[k.size() - 9] == kLeft ? group.left : group.right).emplace_back();
      b.seq = *seq;
      b.row.assign(v);
      const size_t bytes = buffered_bytes(b) + (found == window.groups.end() ? key.size() : 0);
      window.bytes += bytes;
      memory_bytes_ += bytes;
      return true;
    }));
    DF_RETURN_IF_ERROR(status);
    if (over_from != kMax) {
      // The windows from over_from on stay in the store; find their starts.
      for (auto it = windows_.lower_bound(over_from); it != windows_.end(); ++it) {
        it->second.in_store = true;
      }
      std::string next = window_prefix(over_from);
      for (;;) {
        int64_t found_start = kMin;
        bool found = false;
        DF_RETURN_IF_ERROR(store_->scan(next, end, [&](std::string_view k, std::string_view) {
          std::string_view in = k.substr(1, 8);
          auto start = state::read_ordered_i64(in);
          if (start.ok()) {
            found_start = *start;
            found = true;
          }
          return false;
        }));
        if (!found) break;
        Window& window = windows_[found_start];
        window.in_store = true;
        if (found_start == kMax) break;
        next = window_prefix(found_start + 1);
      }
      DF_RETURN_IF_ERROR(store_->remove_range(begin, window_prefix(over_from)));
    } else if (!windows_.empty()) {
      DF_RETURN_IF_ERROR(store_->remove_range(begin, end));
    }
    return Status::OK();
  }

  // Joins and drops every window with start <= last_start.
  Status fire(int64_t last_start, runtime::Output& out) {
    auto it = windows_.begin();
    for (; it != windows_.end() && it->first <= last_start; it = windows_.erase(it)) {
      const int64_t ts = it->first + config_->window_size_ms - 1;
      Window& window = it->second;
      if (window.in_store) {  // its rows in memory join it there first
        DF_RETURN_IF_ERROR(spill_window(it->first, window));
        DF_RETURN_IF_ERROR(fire_from_store(it->first, ts, out));
        continue;
      }
      // Groups with output, in key order as from the store: the output
      // order does not depend on where the rows were.
      size_t rows = 0;
      std::vector<std::pair<std::string_view, const Group*>> joined;
      for (const auto& [key, group] : window.groups) {
        rows += group.left.size() + group.right.size();
        if (!group.right.empty() || config_->left_outer) joined.emplace_back(key, &group);
      }
      std::sort(joined.begin(), joined.end(),
                [](const auto& a, const auto& b) { return a.first < b.first; });
      for (const auto& [key, group] : joined) {
        DF_RETURN_IF_ERROR(join_group(group->left, group->right, ts, out));
      }
      memory_bytes_ -= std::min(memory_bytes_, window.bytes);
      entries_ -= std::min(entries_, rows);
    }
    output_->flush(out);
    return Status::OK();
  }

  // Emits left x right of one (window, key) group.
  Status join_group(const std::vector<BufferedRow>& lefts, const std::vector<BufferedRow>& rights,
                    int64_t ts, runtime::Output& out) {
    if (rights.empty() && !config_->left_outer) return Status::OK();
    if (right_rows_.size() < rights.size()) right_rows_.resize(rights.size());
    for (size_t i = 0; i < rights.size(); ++i) {
      DF_RETURN_IF_ERROR(right_codec_.decode(rights[i].row, right_rows_[i]));
    }
    for (const BufferedRow& l : lefts) {
      DF_RETURN_IF_ERROR(left_codec_.decode(l.row, left_row_));
      const RowRef left = RowRef::of(left_row_);
      for (size_t i = 0; i < rights.size(); ++i) {
        const RowRef right = RowRef::of(right_rows_[i]);
        output_->add(left, &right, ts, out);
      }
      if (rights.empty()) output_->add(left, nullptr, ts, out);
    }
    return Status::OK();
  }

  // Joins the window at `start` from the store, one (window, key) group at a
  // time, and removes it there.
  Status fire_from_store(int64_t start, int64_t ts, runtime::Output& out) {
    const std::string begin = window_prefix(start);
    const std::string end =
        start == kMax ? state::prefix_end(std::string(1, kWindow)) : window_prefix(start + 1);
    std::string group;  // "W start key" of the current group
    std::vector<BufferedRow> lefts;
    std::vector<BufferedRow> rights;
    size_t removed = 0;
    Status status;
    auto close_group = [&]() {
      if (status.ok()) status = join_group(lefts, rights, ts, out);
      lefts.clear();
      rights.clear();
    };
    DF_RETURN_IF_ERROR(store_->scan(begin, end, [&](std::string_view k, std::string_view v) {
      // k = 'W' start(8) key side(1) seq(8)
      if (k.size() < 1 + 8 + 1 + 8) {
        status = Status::internal("join state: short window key");
        return false;
      }
      std::string_view prefix = k.substr(0, k.size() - 9);
      if (prefix != group) {
        close_group();
        if (!status.ok()) return false;
        group.assign(prefix);
      }
      (k[k.size() - 9] == kLeft ? lefts : rights).emplace_back().row.assign(v);
      ++removed;
      return true;
    }));
    DF_RETURN_IF_ERROR(status);
    close_group();
    DF_RETURN_IF_ERROR(status);
    if (removed > 0) {
      DF_RETURN_IF_ERROR(store_->remove_range(begin, end));
      entries_ -= std::min(entries_, removed);
    }
    return Status::OK();
  }

  std::map<int64_t, Window> windows_;  // by window start
  size_t memory_bytes_ = 0;
  size_t budget_ = kDefaultBudget;
  state::Row left_row_;  // decode buffers
  std::vector<state::Row> right_rows_;
};

}  // namespace

std::unique_ptr<runtime::Operator> make_windowed_join(JoinConfigPtr config) {
  return std::make_unique<WindowedJoin>(std::move(config));
}

}  // namespace df::operators::join
