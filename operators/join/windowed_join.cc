// The windowed join: rows of both sides with the same key in the same
// tumbling window [start, start + size) are joined when the watermark reaches
// the window's last millisecond (start + size - 1); output rows carry that
// time as event time. Then the window's state is dropped.
//
// Rows are buffered per window and key in memory while they fit the state
// memory budget: the arriving batches are held (held_rows.h: a buffered row
// is a held batch and a row of it, no per-row encoding; the rows of batches
// keeping only a few are gathered into one batch) and each window keeps
// flat arrays (its rows, chained per key and side, a run of one key's rows
// in a batch as one entry; its keys, a single int64/timestamp key by its
// value; an open-addressing index over them), so an arriving row is one
// lookup and one append with no allocation per key or row, and firing
// walks each key's rows once, copying matches from the held batches'
// columns, and frees a few arrays. When memory is full, whole windows move
// to the subtask's KvStore, newest first (they fire last), under 'W' start
// key side seq (join.h), in key order; their later rows gather in memory
// again and join them when the window fires.
// A window in the store is one contiguous key range ordered by key, the left
// rows of a key before its right rows, so firing it is one merged scan that
// joins one (window, key) group at a time, then one range delete. Either way
// a window's output comes in key order. A row whose window has already fired
// is late: it is counted as a data error and dropped. Checkpoints: join.h;
// the rows in memory are encoded for the checkpoint on the I/O pool.
#include <algorithm>
#include <bit>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <string_view>
#include <type_traits>
#include <utility>

#include "engine/state/codec.h"
#include "engine/state/key_sort.h"
#include "operators/join/held_rows.h"
#include "operators/join/join.h"
#include "operators/stateful.h"

namespace df::operators::join {

namespace {

constexpr int64_t kLastStart = std::numeric_limits<int64_t>::max();
constexpr int64_t kFirstStart = std::numeric_limits<int64_t>::min();
constexpr size_t kDefaultBudget = 64u << 20;
constexpr size_t kWriteSlice = 8192;
constexpr size_t kLoadSlice = 4096;
constexpr size_t kPairSlice = 4096;  // output rows of held rows gathered at a time

// 'W' start: the prefix of one window's rows in the store.
std::string window_prefix(int64_t start) {
  std::string k(1, kWindow);
  state::append_ordered_i64(start, k);
  return k;
}

template <typename Key>
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
    // A null key never matches: right rows are not kept, left rows only to
    // come out unmatched from a left outer join.
    const bool keep_null_keys = is_left && config_->left_outer;
    // Looked at per row only when a key column holds a null at all.
    const bool check_null_keys =
        !keep_null_keys && std::any_of(keys.begin(), keys.end(),
                                       [&](size_t f) { return batch->column(f)->has_nulls(); });
    // Found once, not a division per row: rows before it are late.
    const int64_t open_from = first_open_start();
    auto late = [&](size_t row) { return times->int64_at(row) < open_from; };
    auto keep = [&](size_t row) {
      if (times->is_null(row) || late(row)) return false;
      if (!check_null_keys) return true;
      for (size_t f : keys) {
        if (batch->column(f)->is_null(row)) return false;
      }
      return true;
    };
    // The rows to keep, found once; the others are reported.
    kept_rows_.clear();
    for (size_t k = 0; k < batch->active_rows(); ++k) {
      const size_t row = batch->row_at(k);
      if (keep(row)) {
        kept_rows_.push_back(static_cast<uint32_t>(row));
      } else if (times->is_null(row)) {
        ctx_->report_data_error("join: row without event time skipped");
      } else if (late(row)) {
        ctx_->report_data_error("join: late row dropped (its window was already emitted)");
      }
    }
    const size_t kept = kept_rows_.size();
    // A few rows are copied into the side's gathering batch, else the batch
    // (or a dense copy of its kept rows) is held.
    Gathering* gathering = nullptr;
    HeldBatches::Holding held;
    uint32_t dense_row = 0;  // the next kept row's index in a dense copy
    if (kept > 0 && kept < kGatherBelow) {
      gathering = &gathering_[is_left ? 0 : 1];
      if (!gathering->rows) {
        // No reserve: the columns grow with the rows (a sealed batch is held
        // as it is, and counts in the memory budget).
        gathering->rows = std::make_unique<BatchBuilder>(is_left ? config_->left : config_->right);
        gathering->id = held_.reserve();
      }
      held = {gathering->id, kept, true};
      dense_row = static_cast<uint32_t>(gathering->rows->num_rows());
    } else {
      held = held_.hold_rows(batch, kept_rows_);
    }
    typename Key::Type key{};
    Window* window = nullptr;  // of the previous row: most rows share it
    int64_t window_start = kFirstStart;
    uint32_t group = kNone;  // of the previous row
    constexpr bool kEncodes = std::is_same_v<typename Key::Type, std::string>;
    if (kEncodes) {
      // Every row of a batch without a selection kept: rows 0..kept-1.
      const bool every_row = kept == batch->num_rows() && batch->selection() == nullptr;
      mark_repeated_keys(*batch, keys, every_row ? nullptr : kept_rows_.data(), kept,
                         repeated_keys_);
    }
    // In [window_start, window_start + size), without overflow.
    auto in_window = [&](int64_t t) {
      return static_cast<uint64_t>(t) - static_cast<uint64_t>(window_start) <
             static_cast<uint64_t>(size);
    };
    for (size_t k = 0; k < kept;) {
      const uint32_t row = kept_rows_[k];
      const int64_t t = times->int64_at(row);
      if (window == nullptr || !in_window(t)) {
        window_start = floor_div(t, size) * size;
        window = &windows_[window_start];
        if (window->groups.capacity() == 0) presize(*window);
        group = kNone;
      }
      // An encoded key is not encoded again for a row whose key cells repeat
      // the previous row's (of the same window).
      Chain* chain = &window->null_lefts;
      if (!kEncodes || group == kNone || !repeated_keys_[k]) {
        const bool has_key = Key::read(*batch, keys, row, key);
        if (!has_key && !Key::kHoldsNull) {
          group = kNone;
        } else if (group == kNone || !(window->groups[group].key == key)) {
          group = find_or_add(*window, key);
        }
      }
      size_t end = k + 1;
      if (group != kNone) {
        Group& g = window->groups[group];
        chain = is_left ? &g.left : &g.right;
        // The rows right after it in the batch with the same key and window
        // (an upstream window's output for one key) go in with it, as one entry.
        if constexpr (kEncodes) {
          while (end < kept && repeated_keys_[end] && kept_rows_[end] == row + (end - k) &&
                 in_window(times->int64_at(kept_rows_[end]))) {
            ++end;
          }
        }
      }
      const auto rows = static_cast<uint32_t>(end - k);
      if (gathering) {
        BatchBuilder& copy = *gathering->rows;
        for (size_t j = k; j < end; ++j) {
          for (size_t f = 0; f < batch->num_columns(); ++f) {
            copy.column(f).append_from(*batch->column(f), kept_rows_[j]);
          }
          copy.finish_row();
        }
      }
      add_rows(*window, *chain, Ref{seq_.take(rows), held.id, held.dense ? dense_row : row, rows});
      if (held.dense) dense_row += rows;
      entries_ += rows;
      k = end;
    }
    if (kept > 0) held_.add_row(held.id, kept);
    if (gathering) {
      if (gathering->rows->num_rows() >= kGatherRows) seal(*gathering);
    } else if (held.kept > 0) {
      held_.release_if_unused(held.id);
    }
    // The row numbering is not written to the store here: a spill writes it
    // with the rows, a snapshot puts it into the checkpoint. So the store is
    // untouched between checkpoints while every window is in memory, and a
    // checkpoint of it has no memtable to flush on the task thread.
    return memory_bytes() > budget_ ? spill(budget_ / 2) : Status::OK();
  }

  Status on_watermark(Watermark wm, runtime::Output& out) override {
    wm_ = std::max(wm_, wm.timestamp_ms);
    // Windows whose last millisecond start + size - 1 <= wm fire.
    const int64_t size = config_->window_size_ms;
    const int64_t last_start = wm_ < kFirstStart + size ? kFirstStart : wm_ - size + 1;
    DF_RETURN_IF_ERROR(fire(last_start, out));
    out.emit_watermark(wm);
    return Status::OK();
  }

  Status finish(runtime::Output& out) override { return fire(kLastStart, out); }

  // On the task thread only the rows' places are copied (and the held
  // batches' pointers); the I/O pool encodes them in the store layout and
  // adds them to the checkpoint as one table file, never through a memtable
  // (snapshot_join has how the store is left out while it holds no rows).
  Status snapshot(runtime::SnapshotContext& ctx) override {
    seal_all();
    auto copy = std::make_shared<RowsCopy>();
    bool store_has_rows = false;
    for (const auto& [start, window] : windows_) {
      copy_rows(start, window, *copy);
      store_has_rows = store_has_rows || window.in_store;
    }
    const bool memory_has_rows = !copy->rows.empty();
    if (memory_has_rows) {
      copy->batches = held_.batches();
      copy->first_batch = held_.first_id();
    }
    return snapshot_join(
        ctx, store_has_rows, memory_has_rows, [copy](state::CheckpointEntries& out) {
          copy->encode(
              [&](uint64_t id) -> const Batch& { return *copy->batches[id - copy->first_batch]; },
              [&](const std::string& k, const std::string& row) { out.put(k, row); });
          return Status::OK();
        });
  }

  // Rows not yet fired go to the store, so a restart on this state dir finds them.
  Status close() override { return store_ && memory_bytes() > 0 ? spill(0) : Status::OK(); }

 private:
  static constexpr uint32_t kNone = std::numeric_limits<uint32_t>::max();

  // Rows in memory: `count` rows of held batch `batch` from `row` on, numbered
  // from `seq` on, and the next entry of their (key, side) in their window
  // (kNone: the last). A run of one key's rows in a batch (an upstream
  // window's output for one key, say) is one entry, not one a row.
  struct Ref {
    uint64_t seq;
    uint64_t batch;
    uint32_t row;
    uint32_t count = 1;
    uint32_t next = kNone;
  };
  // A (key, side)'s rows in a window: a chain through Window::rows, in
  // arrival (= row number) order.
  struct Chain {
    uint32_t head = kNone;
    uint32_t tail = kNone;
  };
  struct Group {
    typename Key::Type key;
    size_t hash;
    Chain left;
    Chain right;
  };
  // One window's rows in memory, in a few flat arrays (no allocation per key
  // or row, so filling and dropping a window is cheap): every row in arrival
  // order, its keys' groups in first-arrival order, and an open-addressing
  // index from key to group number.
  struct Window {
    std::vector<Ref> rows;  // entries of one row or more
    size_t row_count = 0;   // the rows of all its entries
    std::vector<Group> groups;
    std::vector<uint32_t> index;  // group numbers (kNone: empty), a power of 2 long
    // Left rows of a left outer join whose key is null, when Key cannot hold
    // it (nulls order first, so they come out first).
    Chain null_lefts;
    size_t bytes = 0;       // estimated heap bytes of the arrays
    bool in_store = false;  // some of its rows are in the store, the rest in memory
  };

  // Estimated heap bytes of a row and of a key (the arrays' slots with their
  // slack, the index at most half full), for the state memory budget; the
  // held batches count apart.
  static constexpr size_t kRefBytes = sizeof(Ref) * 3 / 2;
  static constexpr size_t kKeyBytes = sizeof(Group) * 3 / 2 + 4 * sizeof(uint32_t);

  // Spreads integer keys over the index (std::hash<int64_t> is the identity,
  // and ids in steps of 100 would crowd a power-of-2 index).
  static size_t hash_of(const typename Key::Type& key) {
    if constexpr (std::is_same_v<typename Key::Type, std::string>) {
      return std::hash<std::string_view>()(key);
    } else {
      uint64_t h = static_cast<uint64_t>(key);
      h ^= h >> 33;
      h *= 0xff51afd7ed558ccdULL;
      h ^= h >> 33;
      h *= 0xc4ceb9fe1a85ec53ULL;
      h ^= h >> 33;
      return static_cast<size_t>(h);
    }
  }

  // The rows of some windows, for encoding in the store layout, by this
  // thread or another (the batches they are in are then copied in too).
  struct RowsCopy {
    static constexpr uint32_t kNullKey = std::numeric_limits<uint32_t>::max();
    struct Row {
      int64_t start;
      uint64_t seq;
      uint64_t batch;
      uint32_t row;
      uint32_t key;  // in keys, or kNullKey
      bool left;
    };
    std::vector<typename Key::Type> keys;
    std::vector<Row> rows;
    std::vector<BatchPtr> batches;  // held_.batches() for another thread
    uint64_t first_batch = 0;

    // fn(store key, row bytes) for every row, batch_at(id) being held batch id.
    template <typename BatchAt, typename Fn>
    void encode(const BatchAt& batch_at, Fn&& fn) const {
      std::string k;
      std::string v;
      for (const Row& r : rows) {
        k = window_prefix(r.start);
        if (r.key == kNullKey) {
          state::append_key_null(k);
        } else {
          Key::encode(keys[r.key], k);
        }
        k.push_back(r.left ? kLeft : kRight);
        state::append_u64(r.seq, k);
        v.clear();
        encode_row(batch_at(r.batch), r.row, v);
        fn(k, v);
      }
    }
  };

  // Rows of a side's small batches, copied into one batch held under a
  // number reserved ahead, rather than each small batch held: holding,
  // reading and freeing thousands of batches of a few rows (a source's
  // batches at a moderate rate) costs far more than copying their rows once.
  // Sealed (held) when full and before anything reads held rows (firing,
  // snapshots, spills).
  struct Gathering {
    std::unique_ptr<BatchBuilder> rows;  // null: none open
    uint64_t id = 0;
  };
  static constexpr size_t kGatherBelow = 64;   // batches keeping fewer rows are gathered
  static constexpr size_t kGatherRows = 1024;  // a gathering batch is sealed at this many rows

  void seal(Gathering& gathering) {
    if (!gathering.rows) return;
    held_.fill(gathering.id, gathering.rows->finish());
    gathering.rows.reset();
  }
  void seal_all() {
    for (Gathering& g : gathering_) seal(g);
  }

  size_t memory_bytes() const { return memory_bytes_ + held_.bytes(); }

  // The start of the first window that has not fired (the watermark has not
  // reached its last millisecond start + size - 1).
  int64_t first_open_start() const {
    const int64_t size = config_->window_size_ms;
    if (wm_ < kFirstStart + size) return kFirstStart;
    if (wm_ == kLastStart) return kLastStart;
    return floor_div(wm_ + 1, size) * size;
  }

  void add_bytes(Window& window, size_t bytes) {
    window.bytes += bytes;
    memory_bytes_ += bytes;
  }

  // The number of key's group in `window`, added if new.
  uint32_t find_or_add(Window& window, const typename Key::Type& key) {
    const size_t hash = hash_of(key);
    if (!window.index.empty()) {
      const size_t mask = window.index.size() - 1;
      for (size_t i = hash & mask;; i = (i + 1) & mask) {
        const uint32_t g = window.index[i];
        if (g == kNone) break;
        const Group& group = window.groups[g];
        if (group.hash == hash && group.key == key) return g;
      }
    }
    const auto g = static_cast<uint32_t>(window.groups.size());
    window.groups.push_back(Group{key, hash, {}, {}});
    add_bytes(window, kKeyBytes + Key::heap_bytes(key));
    if (window.groups.size() * 2 > window.index.size()) {
      // At most half full: rebuild twice as large (every group, this one too).
      window.index.assign(std::max<size_t>(64, window.index.size() * 2), kNone);
      for (uint32_t n = 0; n < window.groups.size(); ++n) index_group(window, n);
    } else {
      index_group(window, g);
    }
    return g;
  }

  // A new window gets room for as many keys and row entries as the last fired one
  // had, so that a burst of them (an upstream window's firing) neither
  // regrows nor re-indexes its arrays. Only while at most one other window
  // is open (in-order input): the room is not counted against the memory
  // budget, and far out-of-order input keeps many windows open.
  void presize(Window& window) const {
    if (last_fired_.rows == 0 || windows_.size() > 2) return;
    window.rows.reserve(last_fired_.rows);
    window.groups.reserve(last_fired_.groups);
    window.index.assign(std::bit_ceil(std::max<size_t>(64, last_fired_.groups * 2)), kNone);
  }

  static void index_group(Window& window, uint32_t g) {
    const size_t mask = window.index.size() - 1;
    size_t i = window.groups[g].hash & mask;
    while (window.index[i] != kNone) i = (i + 1) & mask;
    window.index[i] = g;
  }

  // Buffers the rows of `ref` in `window` at the end of `chain`, in the
  // chain's last entry when they follow that entry's rows; the caller counts
  // them in held_ (process() once per batch).
  void add_rows(Window& window, Chain& chain, const Ref& ref) {
    window.row_count += ref.count;
    if (chain.tail != kNone) {
      Ref& last = window.rows[chain.tail];
      if (last.batch == ref.batch && last.row + last.count == ref.row &&
          last.seq + last.count == ref.seq) {
        last.count += ref.count;
        return;
      }
    }
    const auto n = static_cast<uint32_t>(window.rows.size());
    window.rows.push_back(ref);
    if (chain.tail == kNone) {
      chain.head = n;
    } else {
      window.rows[chain.tail].next = n;
    }
    chain.tail = n;
    add_bytes(window, kRefBytes);
  }

  // fn(entry) for the entries of `chain`, in order.
  template <typename Fn>
  static void for_each_entry(const Window& window, const Chain& chain, Fn&& fn) {
    for (uint32_t n = chain.head; n != kNone; n = window.rows[n].next) fn(window.rows[n]);
  }
  // fn(ref) for the rows of `chain`, in order, a Ref of one row each.
  template <typename Fn>
  static void for_each(const Window& window, const Chain& chain, Fn&& fn) {
    for_each_entry(window, chain, [&](const Ref& entry) {
      if (entry.count == 1) {
        fn(entry);
        return;
      }
      for (uint32_t i = 0; i < entry.count; ++i) fn(Ref{entry.seq + i, entry.batch, entry.row + i});
    });
  }
  // The rows of `chain` as held rows, appended to `out`.
  void append_held(const Window& window, const Chain& chain,
                   std::vector<JoinOutput::HeldRow>& out) const {
    for_each_entry(window, chain, [&](const Ref& entry) {
      const Batch* batch = &held_.at(entry.batch);
      for (uint32_t i = 0; i < entry.count; ++i) out.push_back({batch, entry.row + i});
    });
  }

  // Lets go of a window's rows in memory (not of the window).
  void drop_rows(Window& window) {
    // A batch's rows mostly lie together: held_ is told once per run.
    for (size_t i = 0; i < window.rows.size();) {
      const uint64_t batch = window.rows[i].batch;
      size_t rows = 0;
      for (; i < window.rows.size() && window.rows[i].batch == batch; ++i) {
        rows += window.rows[i].count;
      }
      held_.drop_row(batch, rows);
    }
    memory_bytes_ -= std::min(memory_bytes_, window.bytes);
    window.rows = {};
    window.groups = {};
    window.index = {};
    window.null_lefts = {};
    window.row_count = 0;
    window.bytes = 0;
  }

  // Appends the places of a window's rows in memory to `copy`.
  void copy_rows(int64_t start, const Window& window, RowsCopy& copy) {
    for_each(window, window.null_lefts, [&](const Ref& r) {
      copy.rows.push_back({start, r.seq, r.batch, r.row, RowsCopy::kNullKey, true});
    });
    for (const Group& group : window.groups) {
      const auto k = static_cast<uint32_t>(copy.keys.size());
      copy.keys.push_back(group.key);
      for_each(window, group.left, [&](const Ref& r) {
        copy.rows.push_back({start, r.seq, r.batch, r.row, k, true});
      });
      for_each(window, group.right, [&](const Ref& r) {
        copy.rows.push_back({start, r.seq, r.batch, r.row, k, false});
      });
    }
  }

  // Moves windows' rows to the store, newest first, until memory holds at
  // most `keep` bytes.
  Status spill(size_t keep) {
    seal_all();
    for (auto it = windows_.rbegin(); it != windows_.rend() && memory_bytes() > keep; ++it) {
      DF_RETURN_IF_ERROR(spill_window(it->first, it->second));
    }
    return Status::OK();
  }

  // The rows go in key order: RocksDB inserts them into its memtable one
  // after the other, not at random places.
  Status spill_window(int64_t start, Window& window) {
    if (window.rows.empty()) return Status::OK();
    RowsCopy copy;
    copy_rows(start, window, copy);
    std::vector<std::pair<std::string, std::string>> rows;
    rows.reserve(copy.rows.size());
    copy.encode([&](uint64_t id) -> const Batch& { return held_.at(id); },
                [&](const std::string& k, const std::string& v) { rows.emplace_back(k, v); });
    std::sort(rows.begin(), rows.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    state::WriteBatch writes;
    for (const auto& [key, row] : rows) {
      writes.put(key, row);
      if (writes.size() >= kWriteSlice) {
        DF_RETURN_IF_ERROR(store_->write(writes));
        writes.clear();
      }
    }
    seq_.save(writes);
    DF_RETURN_IF_ERROR(store_->write(writes));
    drop_rows(window);
    window.in_store = true;
    return Status::OK();
  }

  // Rows read back from the store, gathered into one batch of a side.
  struct Pending {
    int64_t start;
    uint64_t seq;
  };
  using Loading = LoadedRows<Pending>;

  // Holds the rows gathered in `loading` as one batch and buffers them in
  // their windows, in the store's order (the row numbers' order in a group).
  Status load_batch(bool left, Loading& loading) {
    return hold_loaded<Key>(
        held_, loading, left ? config_->left_keys : config_->right_keys,
        [&](const Pending& p, uint64_t id, uint32_t row, bool has_key,
            const typename Key::Type& key) -> Status {
          Window& window = windows_[p.start];
          const Ref ref{p.seq, id, row};  // entries_ came with the meta
          held_.add_row(id);
          if (!has_key) {
            if (!left || !config_->left_outer) {
              return Status::data_error(what_ + ": a buffered row in the state has a null key");
            }
            if (!Key::kHoldsNull) {
              add_rows(window, window.null_lefts, ref);
              return Status::OK();
            }
          }
          Group& group = window.groups[find_or_add(window, key)];
          add_rows(window, left ? group.left : group.right, ref);
          return Status::OK();
        });
  }

  // Reads the rows a checkpoint (or a closed run) left in the store back into
  // memory, up to the budget, and removes those windows from the store; a
  // window is read back whole or not at all.
  Status load_from_store() {
    const std::string begin(1, kWindow);
    const std::string end = state::prefix_end(begin);
    Status status;
    int64_t over_from = kLastStart;  // windows from here on stay in the store
    size_t loaded_bytes = 0;         // the encoded rows read, until they are held
    Loading lefts(config_->left);
    Loading rights(config_->right);
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
      if (memory_bytes() + loaded_bytes > budget_) {
        // Over the budget, even inside a window: that window stays in the
        // store whole (what was read of it is dropped, it is still stored),
        // so a window bigger than the budget is never read in only to be
        // written back, which would also make the next checkpoint a full one.
        status = load_batch(true, lefts);
        if (status.ok()) status = load_batch(false, rights);
        if (!status.ok()) return false;
        drop_rows(windows_[*start]);
        over_from = *start;
        return false;
      }
      const bool left = k[k.size() - 9] == kLeft;
      state::Row& row = left ? left_row_ : right_row_;
      status = (left ? left_codec_ : right_codec_).decode(v, row);
      if (!status.ok()) return false;
      Loading& loading = left ? lefts : rights;
      loading.rows.append_row(row);
      loading.pending.push_back({*start, *seq});
      loaded_bytes += v.size();
      if (loading.pending.size() >= kLoadSlice) {
        status = load_batch(left, loading);
        loaded_bytes = 0;
      }
      return status.ok();
    }));
    DF_RETURN_IF_ERROR(status);
    DF_RETURN_IF_ERROR(load_batch(true, lefts));
    DF_RETURN_IF_ERROR(load_batch(false, rights));
    if (over_from != kLastStart) {
      // The windows from over_from on stay in the store; find their starts.
      for (auto it = windows_.lower_bound(over_from); it != windows_.end(); ++it) {
        it->second.in_store = true;
      }
      std::string next = window_prefix(over_from);
      for (;;) {
        int64_t found_start = kFirstStart;
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
        if (found_start == kLastStart) break;
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
    if (it != windows_.end() && it->first <= last_start) seal_all();
    for (; it != windows_.end() && it->first <= last_start; it = windows_.erase(it)) {
      const int64_t ts = it->first + config_->window_size_ms - 1;
      Window& window = it->second;
      if (window.in_store) {  // its rows in memory join it there first
        DF_RETURN_IF_ERROR(spill_window(it->first, window));
        DF_RETURN_IF_ERROR(fire_from_store(it->first, ts, out));
        continue;
      }
      // Groups with output (left rows, and right rows or a left outer
      // join), in key order as from the store: the output order does not
      // depend on where the rows were.
      joined_.clear();
      for (const Group& group : window.groups) {
        if (group.left.head != kNone && (group.right.head != kNone || config_->left_outer))
          joined_.push_back(Joined::of(group));
      }
      state::sort_by_key(joined_, [](const Joined& j) { return j.key(); });
      pairs_.clear();
      if (config_->left_outer) {
        for_each(window, window.null_lefts, [&](const Ref& l) {
          add_pair(l, nullptr);
          if (pairs_.size() >= kPairSlice) flush_pairs(ts, out);
        });
      }
      for (const Joined& j : joined_) join_held_group(window, *j.group, ts, out);
      flush_pairs(ts, out);
      entries_ -= std::min(entries_, window.row_count);
      last_fired_ = {window.rows.size(), window.groups.size()};
      drop_rows(window);
    }
    output_->flush(out);
    return Status::OK();
  }

  // Adds left x right of one (window, key) group in memory to pairs_, which
  // go out column by column about a slice at a time (a key's rows may match
  // many times over), never parting a left row's pairs (JoinOutput::add_pairs).
  void join_held_group(const Window& window, const Group& group, int64_t ts, runtime::Output& out) {
    if (config_->where && group.right.head != kNone) {
      // A few right rows: `where` is tested a right row at a time over the
      // left rows (JoinOutput::add_group), after the pairs before.
      group_rights_.clear();
      append_held(window, group.right, group_rights_);
      if (group_rights_.size() <= JoinOutput::kMaxGroupRights) {
        group_lefts_.clear();
        append_held(window, group.left, group_lefts_);
        flush_pairs(ts, out);
        output_->add_group(group_lefts_, group_rights_, ts, out);
        return;
      }
    }
    for_each(window, group.left, [&](const Ref& l) {
      for_each(window, group.right, [&](const Ref& r) { add_pair(l, &r); });
      if (group.right.head == kNone) add_pair(l, nullptr);
      if (pairs_.size() >= kPairSlice) flush_pairs(ts, out);
    });
  }

  // Adds the output row of left row l and right row r (nullptr: none) to pairs_.
  void add_pair(const Ref& l, const Ref* r) {
    pairs_.push_back(
        {&held_.at(l.batch), r ? &held_.at(r->batch) : nullptr, l.row, r ? r->row : 0});
  }
  void flush_pairs(int64_t ts, runtime::Output& out) {
    output_->add_pairs(pairs_, ts, out);
    pairs_.clear();
  }

  // Emits left x right of one (window, key) group read from the store.
  Status join_stored_group(const std::vector<std::string>& lefts,
                           const std::vector<std::string>& rights, int64_t ts,
                           runtime::Output& out) {
    if (rights.empty() && !config_->left_outer) return Status::OK();
    if (right_rows_.size() < rights.size()) right_rows_.resize(rights.size());
    for (size_t i = 0; i < rights.size(); ++i) {
      DF_RETURN_IF_ERROR(right_codec_.decode(rights[i], right_rows_[i]));
    }
    for (const std::string& l : lefts) {
      DF_RETURN_IF_ERROR(left_codec_.decode(l, left_row_));
      const RowRef left = RowRef::of(left_row_);
      bool matched = false;
      for (size_t i = 0; i < rights.size(); ++i) {
        if (output_->add_match(left, RowRef::of(right_rows_[i]), ts, out)) matched = true;
      }
      if (!matched && config_->left_outer) output_->add(left, nullptr, ts, out);
    }
    return Status::OK();
  }

  // Joins the window at `start` from the store, one (window, key) group at a
  // time, and removes it there.
  Status fire_from_store(int64_t start, int64_t ts, runtime::Output& out) {
    const std::string begin = window_prefix(start);
    const std::string end =
        start == kLastStart ? state::prefix_end(std::string(1, kWindow)) : window_prefix(start + 1);
    std::string group;  // "W start key" of the current group
    std::vector<std::string> lefts;
    std::vector<std::string> rights;
    size_t removed = 0;
    Status status;
    auto close_group = [&]() {
      if (status.ok()) status = join_stored_group(lefts, rights, ts, out);
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
      (k[k.size() - 9] == kLeft ? lefts : rights).emplace_back(v);
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
  HeldBatches held_;
  Gathering gathering_[2];   // left, right
  size_t memory_bytes_ = 0;  // keys and row places; the held batches count apart
  size_t budget_ = kDefaultBudget;
  // fire()'s groups with output, sorted by their keys' bytes in the store
  // layout: an encoded key's own, an int64's ordered bytes (what the
  // store's marker byte is followed by).
  struct Joined {
    char ordered[8];
    const Group* group;
    static Joined of(const Group& g) {
      Joined j{{}, &g};
      if constexpr (std::is_same_v<typename Key::Type, int64_t>) {
        const uint64_t word = state::ordered_i64_word(g.key);
        std::memcpy(j.ordered, &word, 8);
      }
      return j;
    }
    std::string_view key() const {
      if constexpr (std::is_same_v<typename Key::Type, int64_t>) {
        return std::string_view(ordered, 8);
      } else {
        return std::string_view(group->key);
      }
    }
  };
  std::vector<Joined> joined_;
  struct {
    size_t rows = 0;
    size_t groups = 0;
  } last_fired_;                                  // the window fired last in memory (presize)
  std::vector<JoinOutput::HeldPair> pairs_;       // fire()'s output rows not yet added
  std::vector<JoinOutput::HeldRow> group_lefts_;  // join_held_group()'s rows of a key
  std::vector<JoinOutput::HeldRow> group_rights_;
  std::vector<uint32_t> kept_rows_;     // process(): the batch's rows to keep
  std::vector<uint8_t> repeated_keys_;  // process(): kept row k's key repeats k - 1's
  state::Row left_row_;                 // decode buffers
  state::Row right_row_;
  std::vector<state::Row> right_rows_;
};

}  // namespace

std::unique_ptr<runtime::Operator> make_windowed_join(JoinConfigPtr config) {
  if (Int64Key::fits(*config)) return std::make_unique<WindowedJoin<Int64Key>>(std::move(config));
  return std::make_unique<WindowedJoin<EncodedKey>>(std::move(config));
}

}  // namespace df::operators::join
