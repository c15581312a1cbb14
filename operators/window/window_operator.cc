// The window operator at run time.
//
// Tumbling and sliding windows: one Window per window end, holding a hash
// index (encoded key -> group) and the groups' accumulators column-wise
// (GroupStates). A batch is processed in two passes: first every alive row is
// assigned to its (window, group) — key encoded into a reused buffer, one
// hash lookup per window — then each aggregate folds its evaluated argument
// column into the groups in one tight loop.
//
// Spilling: when the estimated bytes of the in-memory groups pass the state
// memory budget, every in-memory group is written to the KvStore as a
// partial accumulator under
//   ordered_i64(window_end) + encoded key + u64(spill number)
// and memory is emptied. Spilling never reads the store (accumulators are
// mergeable), so a miss costs nothing. Firing a window scans its end prefix
// in key order and merges the stored partials with the (sorted) in-memory
// groups, streaming rows out.
//
// Session windows: per key, a list of sessions sorted by start, each with one
// group of a shared GroupStates (with a free list); a row at t makes
// [t, t+gap) and merges every session it overlaps. Timers (end, key) in an
// ordered set fire sessions in end order. Sessions are kept in memory.
//
// Lateness: a window (session) fires when watermark >= end - 1 and is kept
// until watermark >= end - 1 + allowed_lateness; rows updating a fired window
// re-emit its updated row after the batch. Rows whose every window is gone
// go to side output port 1, or are dropped and counted.
#include "operators/window/window_operator.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <map>
#include <set>
#include <unordered_map>
#include <utility>

#include "engine/core/time.h"
#include "engine/runtime/hashing.h"
#include "engine/state/codec.h"
#include "engine/state/state_backend.h"
#include "operators/expr_options.h"

namespace df::operators::window {

namespace {

constexpr size_t kDefaultMemoryBudget = size_t{256} << 20;
// Per group besides its accumulators and key bytes: for a window, two hash
// slots and an arena offset; for a session, its hash node, list entry and timer.
constexpr size_t kGroupOverhead = 48;
constexpr size_t kSessionOverhead = 160;
constexpr size_t kSpillWriteBatch = 4096;
constexpr int64_t kNoWatermark = std::numeric_limits<int64_t>::min();
constexpr int64_t kMaxTime = std::numeric_limits<int64_t>::max();

int64_t floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  if (a % b != 0 && ((a < 0) != (b < 0))) --q;
  return q;
}

// Open-addressing index from encoded key to group number (linear probing,
// load factor <= 1/2). Keys live in one arena, so a group costs no
// allocation of its own and dropping a window frees a few large blocks.
class KeyTable {
 public:
  // The group of `key` (whose row hash is `hash`), added as group size()
  // when absent.
  uint32_t find_or_add(std::string_view key, uint64_t hash, bool& added) {
    if ((size_ + 1) * 2 > slots_.size()) grow();
    const size_t mask = slots_.size() - 1;
    for (size_t i = hash & mask;; i = (i + 1) & mask) {
      Slot& s = slots_[i];
      if (s.group == kEmpty) {
        s.hash = hash;
        s.group = size_;
        arena_.append(key);
        offsets_.push_back(arena_.size());
        added = true;
        return size_++;
      }
      if (s.hash == hash && equal(this->key(s.group), key)) {
        added = false;
        return s.group;
      }
    }
  }
  std::string_view key(uint32_t g) const {
    return std::string_view(arena_.data() + offsets_[g], offsets_[g + 1] - offsets_[g]);
  }
  uint32_t size() const { return size_; }
  // Empties the table and releases its memory.
  void clear() {
    slots_ = {};
    arena_ = {};
    offsets_ = {0};
    size_ = 0;
  }
  // Empties the table, keeping its capacity for reuse.
  void reset() {
    std::fill(slots_.begin(), slots_.end(), Slot{});
    arena_.clear();
    offsets_.assign(1, 0);
    size_ = 0;
  }

 private:
  struct Slot {
    uint64_t hash = 0;
    uint32_t group = kEmpty;
  };
  static constexpr uint32_t kEmpty = std::numeric_limits<uint32_t>::max();

  // Byte equality without a library call for the common short keys (an
  // int64 key encodes to 9 bytes).
  static bool equal(std::string_view a, std::string_view b) {
    const size_t n = a.size();
    if (n != b.size()) return false;
    if (n >= 8 && n <= 16) {
      uint64_t a0, b0, a1, b1;
      std::memcpy(&a0, a.data(), 8);
      std::memcpy(&b0, b.data(), 8);
      std::memcpy(&a1, a.data() + n - 8, 8);
      std::memcpy(&b1, b.data() + n - 8, 8);
      return a0 == b0 && a1 == b1;
    }
    return a == b;
  }

  void grow() {
    std::vector<Slot> old = std::move(slots_);
    slots_.assign(std::max<size_t>(16, old.size() * 2), Slot{});
    const size_t mask = slots_.size() - 1;
    for (const Slot& s : old) {
      if (s.group == kEmpty) continue;
      size_t i = s.hash & mask;
      while (slots_[i].group != kEmpty) i = (i + 1) & mask;
      slots_[i] = s;
    }
  }

  std::vector<Slot> slots_;
  std::string arena_;
  std::vector<size_t> offsets_{0};
  uint32_t size_ = 0;
};

// One tumbling or sliding window: [end - size, end).
struct Window {
  Window(int64_t end_ms, const std::vector<AggSpec>* aggs) : end(end_ms), groups(aggs) {}
  int64_t end;
  GroupStates groups;
  KeyTable index;               // encoded key -> group
  bool fired = false;           // emitted at least once
  bool spilled = false;         // has partials in the store
  size_t bytes = 0;             // estimated memory of its groups
  std::vector<uint32_t> dirty;  // fired: groups updated since their last emission
  std::vector<uint8_t> dirty_flag;
};

struct Session {
  int64_t start;
  int64_t end;
  uint32_t g;
  bool fired = false;
  bool dirty = false;
};

using SessionList = std::vector<Session>;                  // sorted by start, disjoint
using Timers = std::set<std::pair<int64_t, std::string>>;  // (end, key)

// Builds output batches of at most batch_size rows.
class RowSink {
 public:
  RowSink(const WindowConfig& cfg, size_t batch_size)
      : cfg_(cfg), batch_size_(std::max<size_t>(1, batch_size)), event_time_(TypeId::kTimestamp) {
    for (const Field& f : cfg.output_schema->fields()) cols_.emplace_back(f.type);
  }

  Status append(std::string_view key, int64_t start, int64_t end, const GroupStates& gs, uint32_t g,
                runtime::Output& out) {
    const size_t nk = cfg_.key_types.size();
    for (size_t i = 0; i < nk; ++i) {
      DF_ASSIGN_OR_RETURN(Value v, state::decode_key_value(key, cfg_.key_types[i]));
      cols_[i].append_value(v);
    }
    cols_[nk].append_int64(start);
    cols_[nk + 1].append_int64(end);
    for (size_t j = 0; j < cfg_.aggs.size(); ++j) gs.append_result(j, g, cols_[nk + 2 + j]);
    event_time_.append_int64(end - 1);
    if (++rows_ >= batch_size_) flush(out);
    return Status::OK();
  }

  void flush(runtime::Output& out) {
    if (rows_ == 0) return;
    std::vector<ColumnPtr> cols;
    cols.reserve(cols_.size());
    for (ColumnBuilder& b : cols_) cols.push_back(b.finish());
    out.emit(
        Batch::make(cfg_.output_schema, std::move(cols), rows_, nullptr, event_time_.finish()));
    rows_ = 0;
  }

 private:
  const WindowConfig& cfg_;
  size_t batch_size_;
  std::vector<ColumnBuilder> cols_;
  ColumnBuilder event_time_;
  size_t rows_ = 0;
};

std::string ordered_key(int64_t v) {
  std::string k;
  state::append_ordered_i64(v, k);
  return k;
}

class WindowOperator final : public runtime::Operator {
 public:
  explicit WindowOperator(std::shared_ptr<const WindowConfig> cfg)
      : cfg_(std::move(cfg)),
        session_mode_(cfg_->type == WindowType::kSession),
        lateness_(cfg_->allowed_lateness_ms),
        scratch_(&cfg_->aggs),
        decode_tmp_(&cfg_->aggs),
        session_groups_(&cfg_->aggs) {
    scratch_.add();
    decode_tmp_.add();
  }

  Status open(runtime::OperatorContext& ctx) override {
    ctx_ = &ctx;
    state_dir_ = ctx.state_dir();
    const size_t budget = ctx.state_memory_budget();
    spill_enabled_ = !state_dir_.empty() || budget > 0;
    budget_ = budget > 0 ? budget : kDefaultMemoryBudget;
    sink_ = std::make_unique<RowSink>(*cfg_, ctx.batch_size());
    return Status::OK();
  }

  Status process(size_t, const BatchPtr& batch, runtime::Output& out) override {
    const Column* et = batch->event_time().get();
    if (et == nullptr) {
      return Status::invalid(
          "window '" + cfg_->id +
          "': its input rows carry no event time (set event_time on the source)");
    }
    const size_t nagg = cfg_->aggs.size();
    args_.resize(nagg);
    for (size_t j = 0; j < nagg; ++j) {
      args_[j] = cfg_->aggs[j].arg ? cfg_->aggs[j].arg->evaluate(*batch, eval_) : nullptr;
    }
    report_eval_errors(eval_, *ctx_);

    entries_.clear();
    late_.clear();
    const size_t n = batch->active_rows();
    const int64_t* ts = et->int64_data();
    // Pass 1: every row's encoded key into one arena, and key hashes
    // column-wise from the values (consistent with the encoding: both fold
    // -0.0 and NaN). Looking keys up in a second pass keeps the lookups off
    // the bytes just written.
    key_arena_.clear();
    key_arena_.reserve(n * 9 * cfg_->key_fields.size());
    key_offsets_.resize(n + 1);
    key_offsets_[0] = 0;
    for (size_t k = 0; k < n; ++k) {
      const size_t r = batch->row_at(k);
      for (size_t f : cfg_->key_fields) state::encode_key_cell(*batch->column(f), r, key_arena_);
      key_offsets_[k + 1] = key_arena_.size();
    }
    if (!session_mode_) runtime::hash_rows(*batch, cfg_->key_fields, hashes_);
    // Pass 2: assign rows to their windows' groups.
    for (size_t k = 0; k < n; ++k) {
      const size_t r = batch->row_at(k);
      if (et->is_null(r)) {
        ctx_->report_data_error("window '" + cfg_->id + "': row without event time dropped");
        continue;
      }
      const std::string_view key(key_arena_.data() + key_offsets_[k],
                                 key_offsets_[k + 1] - key_offsets_[k]);
      if (session_mode_) {
        key_.assign(key);
      } else {
        key_view_ = key;
        key_hash_ = hashes_[k];
      }
      const uint64_t seq = seq_base_ + k;
      const bool placed =
          session_mode_ ? assign_session(ts[r], r, seq) : assign_windows(ts[r], r, seq);
      if (!placed) late_.push_back(static_cast<uint32_t>(r));
    }
    seq_base_ += n;
    if (session_mode_) resolve_merged_groups();

    size_t bytes = 0;
    for (size_t j = 0; j < nagg; ++j) {
      bytes += update_aggregate(cfg_->aggs[j], j, args_[j].get(), *et, entries_, buf_);
    }
    mem_bytes_ += bytes;
    if (session_mode_) release_merged_groups();

    DF_RETURN_IF_ERROR(emit_dirty(out));
    sink_->flush(out);
    route_late(*batch, out);
    if (spill_enabled_ && mem_bytes_ > budget_) DF_RETURN_IF_ERROR(spill());
    return Status::OK();
  }

  Status on_watermark(Watermark wm, runtime::Output& out) override {
    if (wm.timestamp_ms > watermark_) watermark_ = wm.timestamp_ms;
    DF_RETURN_IF_ERROR(fire_until(watermark_, out));
    DF_RETURN_IF_ERROR(purge());
    sink_->flush(out);
    out.emit_watermark(wm);
    return Status::OK();
  }

  Status finish(runtime::Output& out) override {
    DF_RETURN_IF_ERROR(fire_until(kMaxTime, out));
    sink_->flush(out);
    return Status::OK();
  }

 private:
  // ---- tumbling and sliding ------------------------------------------------

  // Adds the row to each of its windows that is still kept; false when it
  // has windows and all of them are gone (a late row).
  bool assign_windows(int64_t t, size_t row, uint64_t seq) {
    if (cfg_->type == WindowType::kTumbling) {
      // Consecutive rows mostly fall into the same window: skip the division.
      if (t < tumbling_start_ || t >= tumbling_end_) {
        tumbling_end_ = floor_div(t, cfg_->size_ms) * cfg_->size_ms + cfg_->size_ms;
        tumbling_start_ = tumbling_end_ - cfg_->size_ms;
      }
      const int64_t end = tumbling_end_;
      if (end - 1 + lateness_ <= watermark_) return false;
      add_to_window(end, row, seq);
      return true;
    }
    bool any = false;
    bool placed = false;
    const int64_t last_start = floor_div(t, cfg_->slide_ms) * cfg_->slide_ms;
    for (int64_t start = last_start; start > t - cfg_->size_ms; start -= cfg_->slide_ms) {
      any = true;
      const int64_t end = start + cfg_->size_ms;
      if (end - 1 + lateness_ <= watermark_) continue;
      add_to_window(end, row, seq);
      placed = true;
    }
    return placed || !any;
  }

  void add_to_window(int64_t end, size_t row, uint64_t seq) {
    Window* w = window_for(end);
    uint32_t g;
    bool added = false;
    g = w->index.find_or_add(key_view_, key_hash_, added);
    if (added) {
      w->groups.add();
      const size_t b = key_view_.size() + kGroupOverhead + w->groups.fixed_bytes_per_group();
      w->bytes += b;
      mem_bytes_ += b;
    }
    entries_.push_back({static_cast<uint32_t>(row), g, &w->groups, seq});
    if (w->fired) mark_dirty(*w, g);
  }

  Window* window_for(int64_t end) {
    if (last_window_ != nullptr && last_window_->end == end) return last_window_;
    auto it = windows_.find(end);
    if (it == windows_.end()) {
      std::unique_ptr<Window> w;
      if (spare_window_) {
        // The last purged window's memory, already sized for a window's keys.
        w = std::move(spare_window_);
        w->end = end;
      } else {
        w = std::make_unique<Window>(end, &cfg_->aggs);
      }
      // A window first seen after its end passed (a late row within the
      // allowed lateness) fires at once.
      w->fired = end - 1 <= watermark_;
      it = windows_.emplace(end, std::move(w)).first;
    }
    last_window_ = it->second.get();
    return last_window_;
  }

  void mark_dirty(Window& w, uint32_t g) {
    if (w.dirty_flag.size() < w.groups.size()) w.dirty_flag.resize(w.groups.size(), 0);
    if (w.dirty_flag[g]) return;
    w.dirty_flag[g] = 1;
    if (w.dirty.empty()) dirty_windows_.push_back(&w);
    w.dirty.push_back(g);
  }

  // The merged accumulators of one key of a spilled window, into scratch_.
  Status gather_spilled(const Window& w, std::string_view key, const GroupStates* mem, uint32_t g) {
    scratch_.reset(0);
    if (mem != nullptr) scratch_.merge_from(0, *mem, g);
    std::string lo = ordered_key(w.end);
    lo.append(key);
    std::string hi = lo;
    hi.append(9, '\xff');  // past every u64 spill number
    Status st;
    DF_RETURN_IF_ERROR(store_->scan(lo, hi, [&](std::string_view, std::string_view v) {
      st = scratch_.decode_merge(0, v, decode_tmp_);
      return st.ok();
    }));
    return st;
  }

  Status emit_window_group(Window& w, uint32_t g, runtime::Output& out) {
    const std::string_view key = w.index.key(g);
    const int64_t start = w.end - cfg_->size_ms;
    if (!w.spilled) return sink_->append(key, start, w.end, w.groups, g, out);
    DF_RETURN_IF_ERROR(gather_spilled(w, key, &w.groups, g));
    return sink_->append(key, start, w.end, scratch_, 0, out);
  }

  // Emits every group of `w` in key order, merging stored partials.
  Status fire_window(Window& w, runtime::Output& out) {
    w.fired = true;
    order_.resize(w.groups.size());
    for (uint32_t g = 0; g < order_.size(); ++g) order_[g] = g;
    // Unspilled windows emit in first-arrival order; spilled ones merge with
    // the store's key order, so memory goes in key order too.
    if (w.spilled) {
      std::sort(order_.begin(), order_.end(),
                [&](uint32_t a, uint32_t b) { return w.index.key(a) < w.index.key(b); });
    }
    const int64_t start = w.end - cfg_->size_ms;
    size_t mi = 0;
    auto emit_memory_below = [&](std::string_view bound, bool all) -> Status {
      while (mi < order_.size() && (all || w.index.key(order_[mi]) < bound)) {
        DF_RETURN_IF_ERROR(
            sink_->append(w.index.key(order_[mi]), start, w.end, w.groups, order_[mi], out));
        ++mi;
      }
      return Status::OK();
    };
    if (w.spilled) {
      std::string current;
      bool have = false;
      Status st;
      auto flush_current = [&]() -> Status {
        DF_RETURN_IF_ERROR(emit_memory_below(current, false));
        if (mi < order_.size() && w.index.key(order_[mi]) == current) {
          scratch_.merge_from(0, w.groups, order_[mi]);
          ++mi;
        }
        DF_RETURN_IF_ERROR(sink_->append(current, start, w.end, scratch_, 0, out));
        scratch_.reset(0);
        return Status::OK();
      };
      scratch_.reset(0);
      DF_RETURN_IF_ERROR(store_->scan(ordered_key(w.end), ordered_key(w.end + 1),
                                      [&](std::string_view k, std::string_view v) {
                                        if (k.size() < 16) {
                                          st = Status::internal("window state: corrupt key");
                                          return false;
                                        }
                                        std::string_view key = k.substr(8, k.size() - 16);
                                        if (have && key != current) {
                                          st = flush_current();
                                          if (!st.ok()) return false;
                                        }
                                        if (!have || key != current) current.assign(key);
                                        have = true;
                                        st = scratch_.decode_merge(0, v, decode_tmp_);
                                        return st.ok();
                                      }));
      DF_RETURN_IF_ERROR(st);
      if (have) DF_RETURN_IF_ERROR(flush_current());
    }
    return emit_memory_below({}, true);
  }

  Status spill() {
    if (!store_) {
      DF_ASSIGN_OR_RETURN(store_, state::open_store(state_dir_));
    }
    state::WriteBatch wb;
    std::string k;
    std::string v;
    for (auto& [end, w] : windows_) {
      if (w->groups.size() == 0) continue;
      for (uint32_t g = 0; g < w->groups.size(); ++g) {
        k.clear();
        state::append_ordered_i64(end, k);
        k += w->index.key(g);
        state::append_u64(spill_seq_, k);
        v.clear();
        w->groups.encode(g, v);
        wb.put(k, v);
        if (wb.size() >= kSpillWriteBatch) {
          DF_RETURN_IF_ERROR(store_->write(wb));
          wb.clear();
        }
      }
      w->groups.clear();
      w->index.clear();
      w->dirty_flag = {};
      w->spilled = true;
      w->bytes = 0;
    }
    if (!wb.empty()) DF_RETURN_IF_ERROR(store_->write(wb));
    ++spill_seq_;
    mem_bytes_ = session_bytes_;
    return Status::OK();
  }

  // ---- sessions --------------------------------------------------------------

  uint32_t alloc_session_group() {
    uint32_t g;
    if (!free_groups_.empty()) {
      g = free_groups_.back();
      free_groups_.pop_back();
      session_groups_.reset(g);
    } else {
      g = session_groups_.add();
      redirect_.push_back(g);
    }
    return g;
  }

  Timers& timers_of(const Session& s) { return s.fired ? purge_timers_ : fire_timers_; }

  // Files a session (changed or new) under the right timer; one whose end
  // already passed the watermark fires now (emitted after the batch).
  void schedule(Session& s) {
    if (s.end - 1 <= watermark_) {
      s.fired = true;
      if (!s.dirty) {
        s.dirty = true;
        dirty_keys_.push_back(key_);
      }
    } else {
      s.fired = false;
      s.dirty = false;  // it fires (once) when the watermark passes its new end
    }
    timers_of(s).emplace(s.end, key_);
  }

  bool assign_session(int64_t t, size_t row, uint64_t seq) {
    const int64_t start = t;
    const int64_t end = t + cfg_->gap_ms;
    // Late only when the row's own session [t, t+gap) is gone and it merges
    // into no kept session (a kept session always ends later than that).
    const bool own_gone = end - 1 + lateness_ <= watermark_;
    auto it = sessions_.find(std::string_view(key_));
    if (it == sessions_.end()) {
      if (own_gone) return false;
      it = sessions_.emplace(key_, SessionList{}).first;
    }
    SessionList& list = it->second;
    size_t i = 0;
    while (i < list.size() && list[i].end <= start) ++i;
    size_t j = i;
    while (j < list.size() && list[j].start < end) ++j;
    if (i == j && own_gone) return false;
    uint32_t g;
    if (i == j) {
      g = alloc_session_group();
      list.insert(list.begin() + static_cast<std::ptrdiff_t>(i), Session{start, end, g});
      const size_t b = key_.size() + kSessionOverhead + session_groups_.fixed_bytes_per_group();
      session_bytes_ += b;
      mem_bytes_ += b;
      schedule(list[i]);
    } else if (j == i + 1 && list[i].start <= start && end <= list[i].end) {
      // Inside one session: its bounds and timer stay.
      g = list[i].g;
      if (list[i].fired && !list[i].dirty) {
        list[i].dirty = true;
        dirty_keys_.push_back(key_);
      }
    } else {
      Session& target = list[i];
      timers_of(target).erase({target.end, key_});
      int64_t new_start = std::min(start, target.start);
      int64_t new_end = std::max(end, target.end);
      for (size_t m = i + 1; m < j; ++m) {
        Session& other = list[m];
        timers_of(other).erase({other.end, key_});
        new_start = std::min(new_start, other.start);
        new_end = std::max(new_end, other.end);
        session_groups_.merge_from(target.g, session_groups_, other.g);
        redirect_[other.g] = target.g;
        merged_away_.push_back(other.g);
        const size_t b = key_.size() + kSessionOverhead + session_groups_.fixed_bytes_per_group();
        session_bytes_ -= std::min(session_bytes_, b);
        mem_bytes_ -= std::min(mem_bytes_, b);
      }
      list.erase(list.begin() + static_cast<std::ptrdiff_t>(i + 1),
                 list.begin() + static_cast<std::ptrdiff_t>(j));
      Session& merged = list[i];
      merged.start = new_start;
      merged.end = new_end;
      g = merged.g;
      schedule(merged);
    }
    entries_.push_back({static_cast<uint32_t>(row), g, &session_groups_, seq});
    return true;
  }

  // Rows assigned earlier in the batch to a session that merged later go to
  // the surviving group.
  void resolve_merged_groups() {
    if (merged_away_.empty()) return;
    for (Entry& e : entries_) {
      while (redirect_[e.g] != e.g) e.g = redirect_[e.g];
    }
  }

  void release_merged_groups() {
    for (uint32_t g : merged_away_) {
      redirect_[g] = g;
      free_groups_.push_back(g);
    }
    merged_away_.clear();
  }

  Session* find_session(std::string_view key, int64_t end) {
    auto it = sessions_.find(key);
    if (it == sessions_.end()) return nullptr;
    for (Session& s : it->second) {
      if (s.end == end) return &s;
    }
    return nullptr;
  }

  void remove_session(const std::string& key, int64_t end) {
    auto it = sessions_.find(std::string_view(key));
    if (it == sessions_.end()) return;
    SessionList& list = it->second;
    for (size_t i = 0; i < list.size(); ++i) {
      if (list[i].end == end) {
        free_groups_.push_back(list[i].g);
        list.erase(list.begin() + static_cast<std::ptrdiff_t>(i));
        const size_t b = key.size() + kSessionOverhead + session_groups_.fixed_bytes_per_group();
        session_bytes_ -= std::min(session_bytes_, b);
        mem_bytes_ -= std::min(mem_bytes_, b);
        break;
      }
    }
    if (list.empty()) sessions_.erase(it);
  }

  // ---- firing, purging, emitting ---------------------------------------------

  // Fires every window and session whose end - 1 <= limit, in end order.
  Status fire_until(int64_t limit, runtime::Output& out) {
    for (auto& [end, w] : windows_) {
      if (end - 1 > limit) break;
      if (!w->fired) DF_RETURN_IF_ERROR(fire_window(*w, out));
    }
    while (!fire_timers_.empty() && fire_timers_.begin()->first - 1 <= limit) {
      auto node = fire_timers_.extract(fire_timers_.begin());
      const auto& [end, key] = node.value();
      Session* s = find_session(key, end);
      if (s == nullptr) return Status::internal("window: session timer without a session");
      DF_RETURN_IF_ERROR(sink_->append(key, s->start, s->end, session_groups_, s->g, out));
      s->fired = true;
      s->dirty = false;
      purge_timers_.insert(std::move(node));
    }
    return Status::OK();
  }

  // Drops windows and sessions whose allowed lateness has passed.
  Status purge() {
    while (!windows_.empty()) {
      auto it = windows_.begin();
      Window& w = *it->second;
      if (w.end - 1 + lateness_ > watermark_) break;
      if (w.spilled) {
        DF_RETURN_IF_ERROR(store_->remove_range(ordered_key(w.end), ordered_key(w.end + 1)));
      }
      mem_bytes_ -= std::min(mem_bytes_, w.bytes);
      if (last_window_ == &w) last_window_ = nullptr;
      if (!w.spilled) {
        // Keep its capacity for the next window (consecutive windows see
        // similar keys); a spilled window's memory was released already.
        std::unique_ptr<Window> spare = std::move(it->second);
        spare->index.reset();
        spare->groups.reset_all();
        spare->fired = false;
        spare->bytes = 0;
        spare->dirty.clear();
        spare->dirty_flag.clear();
        spare_window_ = std::move(spare);
      }
      windows_.erase(it);
    }
    while (!purge_timers_.empty() && purge_timers_.begin()->first - 1 + lateness_ <= watermark_) {
      auto node = purge_timers_.extract(purge_timers_.begin());
      remove_session(node.value().second, node.value().first);
    }
    return Status::OK();
  }

  // Re-emits fired windows and sessions that rows of this batch updated.
  Status emit_dirty(runtime::Output& out) {
    for (Window* w : dirty_windows_) {
      for (uint32_t g : w->dirty) {
        DF_RETURN_IF_ERROR(emit_window_group(*w, g, out));
        w->dirty_flag[g] = 0;
      }
      w->dirty.clear();
    }
    dirty_windows_.clear();
    for (const std::string& key : dirty_keys_) {
      auto it = sessions_.find(std::string_view(key));
      if (it == sessions_.end()) continue;
      for (Session& s : it->second) {
        if (!s.dirty) continue;
        s.dirty = false;
        DF_RETURN_IF_ERROR(sink_->append(key, s.start, s.end, session_groups_, s.g, out));
      }
    }
    dirty_keys_.clear();
    return Status::OK();
  }

  void route_late(const Batch& batch, runtime::Output& out) {
    if (late_.empty()) return;
    if (!cfg_->late_output.empty()) {
      out.emit_to(1, batch.with_selection(std::make_shared<const Selection>(late_)));
      return;
    }
    const int64_t* ts = batch.event_time()->int64_data();
    for (uint32_t r : late_) {
      ctx_->report_data_error("late row dropped: window '" + cfg_->id + "' row at " +
                              format_timestamp(ts[r]) + " is behind watermark " +
                              format_timestamp(watermark_) + " by more than the allowed lateness");
    }
  }

  std::shared_ptr<const WindowConfig> cfg_;
  const bool session_mode_;
  const int64_t lateness_;
  runtime::OperatorContext* ctx_ = nullptr;
  std::unique_ptr<RowSink> sink_;
  expr::EvalContext eval_;

  int64_t watermark_ = kNoWatermark;
  uint64_t seq_base_ = 0;  // arrival number of the next row

  // Per-batch scratch, reused.
  std::vector<ColumnPtr> args_;
  std::vector<Entry> entries_;
  Selection late_;
  std::string key_arena_;            // encoded keys of the batch's alive rows
  std::vector<size_t> key_offsets_;  // row k's key: [offsets[k], offsets[k+1])
  std::string key_;                  // sessions: the current row's key
  std::string_view key_view_;        // windows: the current row's key
  uint64_t key_hash_ = 0;
  int64_t tumbling_start_ = 0;  // the last row's tumbling window
  int64_t tumbling_end_ = 0;
  std::vector<uint64_t> hashes_;
  std::string buf_;
  std::vector<uint32_t> order_;
  GroupStates scratch_;     // one group: merge target when firing spilled windows
  GroupStates decode_tmp_;  // one group: decoding scratch

  // Tumbling and sliding.
  std::map<int64_t, std::unique_ptr<Window>> windows_;
  Window* last_window_ = nullptr;
  std::unique_ptr<Window> spare_window_;  // a purged window kept for its capacity
  std::vector<Window*> dirty_windows_;

  // Sessions.
  std::unordered_map<std::string, SessionList, StringHash, std::equal_to<>> sessions_;
  GroupStates session_groups_;
  std::vector<uint32_t> free_groups_;
  std::vector<uint32_t> redirect_;
  std::vector<uint32_t> merged_away_;
  Timers fire_timers_;
  Timers purge_timers_;
  std::vector<std::string> dirty_keys_;
  size_t session_bytes_ = 0;

  // Memory budget and spilling.
  std::string state_dir_;
  bool spill_enabled_ = false;
  size_t budget_ = kDefaultMemoryBudget;
  size_t mem_bytes_ = 0;
  std::unique_ptr<state::KvStore> store_;
  uint64_t spill_seq_ = 0;
};

}  // namespace

std::unique_ptr<runtime::Operator> make_window_operator(
    std::shared_ptr<const WindowConfig> config) {
  return std::make_unique<WindowOperator>(std::move(config));
}

}  // namespace df::operators::window
