// The interval join: a left row at time l matches right rows of the same key
// at time r with l + lower <= r <= l + upper.
//
// Both sides are buffered per key, in memory while they fit the state memory
// budget, else in the subtask's KvStore (join.h has the layout and when rows
// move). In memory the arriving batches themselves are kept (a dense copy of
// the kept rows when they are few) and a buffered row is (batch, row): no
// per-row encoding or allocation, and matches are copied column by column.
// Rows are found by a hash map from the key to each side's rows: a single
// int64/timestamp key by its value, any other by its encoded bytes. An arriving
// row probes the other side's rows of its key (in memory: a walk of that
// key's rows; in the store: one range scan, the key encoding being
// order-preserving), and matches are emitted at once. A left row is kept
// until the watermark passes l + upper, a right row until it passes
// r - lower; after that no row still to come can match it. Expiry runs in
// time order, over a queue of keys in memory (a key's rows of a side expire
// as a prefix) and over an index in the store.
// Checkpoints: join.h. For a left outer join a left row carries a "matched"
// flag; still unmatched when it expires (or at finish), it is emitted with
// null right fields, and the output watermark is held back by max(upper, 0)
// so those rows are never late downstream.
//
// In the store, hot state stays bounded: the writes of one call go in one
// WriteBatch, the store keeps the rest (RocksDB: memtable and the shared
// block cache). The store's buffers are deliberately not a
// state::CachedTable: its range scans walk the whole cache unless the range
// lies below every cached key, and every row here probes a key range of its
// own.
#include <algorithm>
#include <functional>
#include <limits>
#include <queue>
#include <tuple>
#include <unordered_map>
#include <utility>

#include "engine/state/codec.h"
#include "operators/join/held_rows.h"
#include "operators/join/join.h"
#include "operators/stateful.h"

namespace df::operators::join {

namespace {

constexpr size_t kSlice = 4096;
constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
constexpr int64_t kMin = std::numeric_limits<int64_t>::min();

int64_t add_sat(int64_t a, int64_t b) {
  if (b > 0 && a > kMax - b) return kMax;
  if (b < 0 && a < kMin - b) return kMin;
  return a + b;
}

// "<prefix> ordered(ts)", or the end of all "<prefix> ..." keys when ts is past the maximum.
std::string at_time(std::string_view prefix, int64_t ts, bool exclusive_end) {
  if (exclusive_end) {
    if (ts == kMax) return state::prefix_end(prefix);
    ++ts;
  }
  std::string k(prefix);
  state::append_ordered_i64(ts, k);
  return k;
}

// The event time stored in a buffer key ("... ts seq": the last 16 bytes).
Result<int64_t> buffer_key_time(std::string_view buffer_key) {
  if (buffer_key.size() < 16) return Status::internal("join state: short buffer key");
  std::string_view in = buffer_key.substr(buffer_key.size() - 16, 8);
  return state::read_ordered_i64(in);
}

// A row buffered in memory: physical row `row` of held batch `batch`.
struct HeldRow {
  int64_t ts;
  uint64_t seq;
  uint64_t batch;
  uint32_t row;
  bool matched;  // left rows of a left outer join
};

// The first row at or after `ts`: a key's rows in memory are in (ts, seq)
// order, as in the store, so that matches come out in the same order from both.
template <typename Rows>
auto first_at(Rows& rows, int64_t ts) {
  return std::lower_bound(rows.begin(), rows.end(), ts,
                          [](const HeldRow& r, int64_t t) { return r.ts < t; });
}

template <typename Key>
class IntervalJoin final : public JoinOperatorBase {
 public:
  using JoinOperatorBase::JoinOperatorBase;

  Status open(runtime::OperatorContext& ctx) override {
    DF_ASSIGN_OR_RETURN(nlohmann::json meta, open_join(ctx));
    if (!meta.is_null()) {
      DF_ASSIGN_OR_RETURN(out_wm_, time_from_meta(meta, "output_watermark", what_));
      DF_ASSIGN_OR_RETURN(out_idle_, bool_from_meta(meta, "output_idle", what_));
      left_expired_below_ = right_expired_below_ = wm_;
    }
    budget_ = ctx.state_memory_budget() > 0 ? ctx.state_memory_budget() : kDefaultBudget;
    return load_from_store();
  }

  // The rows in memory: their places are copied here, encoded in the store
  // layout on the I/O pool (snapshot_join has how the store is left out
  // while it holds no rows); the store's own rows are in its checkpoint.
  Status snapshot(runtime::SnapshotContext& ctx) override {
    auto copy = std::make_shared<RowsCopy>(copy_rows());
    const bool memory_has_rows = !copy->rows.empty();
    if (memory_has_rows) {
      copy->batches = held_.batches();
      copy->first_batch = held_.first_id();
    }
    return snapshot_join(
        ctx, in_store_, memory_has_rows,
        [copy, config = config_](state::CheckpointEntries& out) {
          encode_rows(
              *config, *copy,
              [&](uint64_t id) -> const Batch& { return *copy->batches[id - copy->first_batch]; },
              [&](const std::string& buffer_key, const std::string& index_key,
                  const std::string& value) {
                out.put(buffer_key, value);
                out.put(index_key, {});
              });
          return Status::OK();
        },
        {{"output_watermark", time_to_meta(out_wm_)}, {"output_idle", out_idle_}});
  }

  // Rows still in memory go to the store, so a restart on this state dir finds them.
  Status close() override { return store_ && !memory_.empty() ? spill() : Status::OK(); }

  Status process(size_t input, const BatchPtr& batch, runtime::Output& out) override {
    const Column* times = batch->event_time().get();
    if (!times)
      return Status::internal("join '" + ctx_->node_id() + "': a batch without event time");
    const bool is_left = input == 0;
    if (in_store_) {
      DF_RETURN_IF_ERROR(process_in_store(is_left, *batch, *times, out));
    } else {
      process_in_memory(is_left, batch, *times, out);
    }
    output_->flush(out);
    if (!in_store_ && memory_bytes() > budget_) DF_RETURN_IF_ERROR(spill());
    return Status::OK();
  }

  Status on_watermark(Watermark wm, runtime::Output& out) override {
    wm_ = std::max(wm_, wm.timestamp_ms);
    // Left rows expire when wm > l + upper, right rows when wm > r - lower:
    // index entries with expiry < wm.
    if (in_store_) {
      DF_RETURN_IF_ERROR(expire(kLeft, wm_, out));
      DF_RETURN_IF_ERROR(expire(kRight, wm_, out));
    } else {
      DF_RETURN_IF_ERROR(expire_in_memory(wm_, out));
    }
    output_->flush(out);
    int64_t out_wm =
        config_->left_outer ? add_sat(wm_, -std::max<int64_t>(config_->upper_ms, 0)) : wm_;
    if (out_wm > out_wm_ || wm.idle != out_idle_) {
      out_wm_ = std::max(out_wm_, out_wm);
      out_idle_ = wm.idle;
      out.emit_watermark(Watermark{out_wm_, wm.idle});
    }
    return Status::OK();
  }

  Status finish(runtime::Output& out) override {
    DF_RETURN_IF_ERROR(expire_in_memory(kMax, out));
    DF_RETURN_IF_ERROR(expire(kLeft, kMax, out));
    DF_RETURN_IF_ERROR(expire(kRight, kMax, out));
    output_->flush(out);
    return Status::OK();
  }

 private:
  // ---- Rows in the store ---------------------------------------------------

  Status process_in_store(bool is_left, const Batch& batch, const Column& times,
                          runtime::Output& out) {
    const auto& fields = is_left ? config_->left_keys : config_->right_keys;
    state::WriteBatch writes;
    std::string key;
    for (size_t k = 0; k < batch.active_rows(); ++k) {
      const size_t row = batch.row_at(k);
      if (times.is_null(row)) {
        ctx_->report_data_error("join: row without event time skipped");
        continue;
      }
      const int64_t ts = times.int64_at(row);
      key.clear();
      if (!encode_row_key(batch, fields, row, key)) {  // a null key never matches
        if (is_left && config_->left_outer) output_->add(RowRef::of(batch, row), nullptr, ts, out);
        continue;
      }
      if (is_left) {
        DF_RETURN_IF_ERROR(on_left(batch, row, ts, key, writes, out));
      } else {
        DF_RETURN_IF_ERROR(on_right(batch, row, ts, key, writes, out));
      }
    }
    seq_.save(writes);
    if (!writes.empty()) DF_RETURN_IF_ERROR(store_->write(writes));
    return Status::OK();
  }

  Status on_left(const Batch& batch, size_t row, int64_t ts, const std::string& key,
                 state::WriteBatch& writes, runtime::Output& out) {
    const RowRef left = RowRef::of(batch, row);
    std::string prefix(1, kRight);
    prefix += key;
    bool matched = false;
    Status decode_status;
    DF_RETURN_IF_ERROR(store_->scan(at_time(prefix, add_sat(ts, config_->lower_ms), false),
                                    at_time(prefix, add_sat(ts, config_->upper_ms), true),
                                    [&](std::string_view k, std::string_view v) {
                                      auto rts = buffer_key_time(k);
                                      decode_status = rts.ok() ? right_codec_.decode(v, right_row_)
                                                               : rts.status();
                                      if (!decode_status.ok()) return false;
                                      const RowRef right = RowRef::of(right_row_);
                                      if (output_->add_match(left, right, std::max(ts, *rts), out))
                                        matched = true;
                                      return true;
                                    }));
    DF_RETURN_IF_ERROR(decode_status);
    const int64_t expiry = add_sat(ts, config_->upper_ms);
    if (wm_ > expiry) {  // already expired: nothing still to come can match it
      if (config_->left_outer && !matched) output_->add(left, nullptr, ts, out);
      return Status::OK();
    }
    std::string value(1, matched ? '\1' : '\0');
    encode_row(batch, row, value);
    store(kLeft, key, ts, expiry, value, writes);
    return Status::OK();
  }

  Status on_right(const Batch& batch, size_t row, int64_t ts, const std::string& key,
                  state::WriteBatch& writes, runtime::Output& out) {
    const RowRef right = RowRef::of(batch, row);
    std::string prefix(1, kLeft);
    prefix += key;
    Status decode_status;
    DF_RETURN_IF_ERROR(store_->scan(at_time(prefix, add_sat(ts, -config_->upper_ms), false),
                                    at_time(prefix, add_sat(ts, -config_->lower_ms), true),
                                    [&](std::string_view k, std::string_view v) {
                                      auto lts = buffer_key_time(k);
                                      if (!lts.ok() || v.empty()) {
                                        decode_status =
                                            Status::internal("join state: bad left row");
                                        return false;
                                      }
                                      decode_status = left_codec_.decode(v.substr(1), left_row_);
                                      if (!decode_status.ok()) return false;
                                      const bool matched = output_->add_match(
                                          RowRef::of(left_row_), right, std::max(ts, *lts), out);
                                      if (matched && config_->left_outer && v[0] == '\0') {
                                        std::string flagged(v);
                                        flagged[0] = '\1';
                                        writes.put(k, flagged);
                                      }
                                      return true;
                                    }));
    DF_RETURN_IF_ERROR(decode_status);
    const int64_t expiry = add_sat(ts, -config_->lower_ms);
    if (wm_ > expiry) return Status::OK();
    std::string value;
    encode_row(batch, row, value);
    store(kRight, key, ts, expiry, value, writes);
    return Status::OK();
  }

  void store(char side, const std::string& key, int64_t ts, int64_t expiry,
             const std::string& value, state::WriteBatch& writes) {
    std::string buffer_key;
    std::string index_key;
    store_keys(side, key, ts, seq_.next(), expiry, buffer_key, index_key);
    writes.put(buffer_key, value);
    writes.put(index_key, {});
    ++entries_;
  }

  // The buffer key "side key ts seq" and its index key "X side expiry side key ts seq".
  static void store_keys(char side, std::string_view key, int64_t ts, uint64_t seq, int64_t expiry,
                         std::string& buffer_key, std::string& index_key) {
    buffer_key.assign(1, side);
    buffer_key += key;
    state::append_ordered_i64(ts, buffer_key);
    state::append_u64(seq, buffer_key);
    index_key = {kIndex, side};
    state::append_ordered_i64(expiry, index_key);
    index_key += buffer_key;
  }

  static int64_t expiry_of(const JoinConfig& config, bool left, int64_t ts) {
    return left ? add_sat(ts, config.upper_ms) : add_sat(ts, -config.lower_ms);
  }
  int64_t left_expiry(int64_t ts) const { return expiry_of(*config_, true, ts); }
  int64_t right_expiry(int64_t ts) const { return expiry_of(*config_, false, ts); }
  int64_t expiry(bool left, int64_t ts) const { return expiry_of(*config_, left, ts); }

  // ---- Rows in memory ------------------------------------------------------

  struct KeyRows {
    std::vector<HeldRow> left;  // in (ts, seq) order, so in expiry order too
    std::vector<HeldRow> right;
    int64_t next_expiry = kMax;  // the earliest expiries_ entry naming this key
    uint32_t pending = 0;        // entries of expiries_ naming this key
  };
  using Memory =
      std::unordered_map<typename Key::Type, KeyRows, typename Key::Hash, std::equal_to<>>;
  using KeyNode = typename Memory::value_type;
  // A key that has rows expiring at `at` or later. The node stays in memory_
  // while entries name it (KeyRows::pending; nodes of an unordered_map do not
  // move), so expiring needs no key copy and no lookup.
  struct Expiry {
    int64_t at;
    KeyNode* node;
    bool operator>(const Expiry& o) const { return at > o.at; }
  };
  // A left row of a left outer join that expired unmatched.
  struct Unmatched {
    int64_t ts;
    const typename Key::Type* key;
    uint64_t seq;
    BatchPtr batch;
    uint32_t row;
  };

  // Estimated heap bytes of a key's node in memory_ and of a buffered row
  // (the vector slot with some slack), for the state memory budget.
  static constexpr size_t kKeyBytes = 128;
  static constexpr size_t kRowBytes = sizeof(HeldRow) * 3 / 2;

  size_t memory_bytes() const { return memory_bytes_ + held_.bytes(); }

  // Probes and buffers the rows of an arriving batch. The rows to keep (with
  // an event time, not expired on arrival) are held (HeldBatches::hold_kept:
  // the batch itself or a dense copy of them).
  void process_in_memory(bool is_left, const BatchPtr& batch, const Column& times,
                         runtime::Output& out) {
    const auto& fields = is_left ? config_->left_keys : config_->right_keys;
    auto keep = [&](size_t row) {
      return !times.is_null(row) && wm_ <= expiry(is_left, times.int64_at(row));
    };
    const HeldBatches::Holding held = held_.hold_kept(batch, keep);
    typename Key::Type key{};
    uint32_t dense_row = 0;  // the next kept row's index in the dense copy
    for (size_t k = 0; k < batch->active_rows(); ++k) {
      const size_t row = batch->row_at(k);
      if (times.is_null(row)) {
        ctx_->report_data_error("join: row without event time skipped");
        continue;
      }
      const int64_t ts = times.int64_at(row);
      const bool kept_row = keep(row);
      const HeldAt at{kept_row, held.id, held.dense ? dense_row : static_cast<uint32_t>(row)};
      if (kept_row) ++dense_row;
      if (!Key::read(*batch, fields, row, key)) {  // a null key never matches
        if (is_left && config_->left_outer) add_unmatched(*batch, row, ts, out);
        continue;
      }
      if (is_left) {
        on_left_in_memory(*batch, row, ts, key, at, out);
      } else {
        on_right_in_memory(*batch, row, ts, key, at, out);
      }
    }
    flush_pending(out);  // before the batch, if not kept, is released
    if (held.kept > 0) held_.release_if_unused(held.id);
    // The row numbers reach the store with the rows: at a snapshot, a spill or close.
  }

  // Where an arriving row is kept, if it is.
  struct HeldAt {
    bool keep;
    uint64_t batch;
    uint32_t row;
  };

  void on_left_in_memory(const Batch& batch, size_t row, int64_t ts, const typename Key::Type& key,
                         const HeldAt& at, runtime::Output& out) {
    auto found = memory_.find(key);
    bool matched = false;
    if (found != memory_.end()) {
      const int64_t lo = add_sat(ts, config_->lower_ms);
      const int64_t hi = add_sat(ts, config_->upper_ms);
      const auto& rights = found->second.right;
      for (auto r = first_at(rights, lo); r != rights.end() && r->ts <= hi; ++r) {
        if (add_match(batch, row, held_.at(r->batch), r->row, std::max(ts, r->ts), out))
          matched = true;
      }
    }
    if (!at.keep) {  // already expired: nothing still to come can match it
      if (config_->left_outer && !matched) add_unmatched(batch, row, ts, out);
      return;
    }
    KeyNode& node = found != memory_.end() ? *found : add_key(key);
    remember(node, node.second.left, ts, matched, left_expiry(ts), at);
  }

  void on_right_in_memory(const Batch& batch, size_t row, int64_t ts, const typename Key::Type& key,
                          const HeldAt& at, runtime::Output& out) {
    auto found = memory_.find(key);
    if (found != memory_.end()) {
      const int64_t lo = add_sat(ts, -config_->upper_ms);
      const int64_t hi = add_sat(ts, -config_->lower_ms);
      auto& lefts = found->second.left;
      for (auto l = first_at(lefts, lo); l != lefts.end() && l->ts <= hi; ++l) {
        if (add_match(held_.at(l->batch), l->row, batch, row, std::max(ts, l->ts), out))
          l->matched = true;
      }
    }
    if (!at.keep) return;
    KeyNode& node = found != memory_.end() ? *found : add_key(key);
    remember(node, node.second.right, ts, false, right_expiry(ts), at);
  }

  // Adds the pair of left row `lrow` of `lb` and right row `rrow` of `rb`
  // when it matches; whether it did. Without a `where` every pair does: it
  // waits in pending_ and goes out column by column with the other matches
  // of the arriving batch (flush_pending; row by row, a cell cost ~70
  // instructions). The batches stay held until process_in_memory returns.
  bool add_match(const Batch& lb, size_t lrow, const Batch& rb, size_t rrow, int64_t ts,
                 runtime::Output& out) {
    if (config_->where) {
      return output_->add_match(RowRef::of(lb, lrow), RowRef::of(rb, rrow), ts, out);
    }
    pending_.push_back({&lb, &rb, static_cast<uint32_t>(lrow), static_cast<uint32_t>(rrow)});
    pending_times_.push_back(ts);
    if (pending_.size() >= kMaxPendingPairs) flush_pending(out);
    return true;
  }
  // Left row `lrow` of `lb` with null right fields, after the pairs before it.
  void add_unmatched(const Batch& lb, size_t lrow, int64_t ts, runtime::Output& out) {
    flush_pending(out);
    output_->add(RowRef::of(lb, lrow), nullptr, ts, out);
  }
  void flush_pending(runtime::Output& out) {
    if (pending_.empty()) return;
    output_->add_all_pairs(pending_, pending_times_, out);
    pending_.clear();
    pending_times_.clear();
  }

  KeyNode& add_key(const typename Key::Type& key) {
    KeyNode& node = *memory_.try_emplace(key).first;
    memory_bytes_ += kKeyBytes + Key::heap_bytes(node.first);
    return node;
  }

  void remember(KeyNode& node, std::vector<HeldRow>& side, int64_t ts, bool matched, int64_t expiry,
                const HeldAt& at) {
    // Mostly an append: rows arrive about in time order.
    auto pos = side.empty() || side.back().ts <= ts
                   ? side.end()
                   : std::upper_bound(side.begin(), side.end(), ts,
                                      [](int64_t t, const HeldRow& r) { return t < r.ts; });
    side.insert(pos, HeldRow{ts, seq_.next(), at.batch, at.row, matched});
    held_.add_row(at.batch);
    memory_bytes_ += kRowBytes;
    ++entries_;
    schedule(node, expiry);
  }

  // Makes sure an entry of expiries_ names `node` by `expiry`.
  void schedule(KeyNode& node, int64_t expiry) {
    KeyRows& rows = node.second;
    if (expiry >= rows.next_expiry) return;
    expiries_.push({expiry, &node});
    rows.next_expiry = expiry;
    ++rows.pending;
  }

  // Drops the rows in memory whose expiry is < limit (all at kMax), emitting
  // unmatched left rows of a left outer join. A key's rows of a side expire
  // in (ts, seq) order, a prefix at a time.
  Status expire_in_memory(int64_t limit, runtime::Output& out) {
    if (limit != kMax) {
      left_expired_below_ = std::max(left_expired_below_, limit);
      right_expired_below_ = std::max(right_expired_below_, limit);
    }
    auto expired = [&](int64_t expiry) { return limit == kMax || expiry < limit; };
    std::vector<Unmatched> unmatched;
    while (!expiries_.empty() && expired(expiries_.top().at)) {
      KeyNode& node = *expiries_.top().node;
      expiries_.pop();
      KeyRows& rows = node.second;
      --rows.pending;
      expire_prefix(node, rows.left, true, expired, unmatched);
      expire_prefix(node, rows.right, false, expired, unmatched);
      rows.next_expiry = kMax;
      if (!rows.left.empty()) schedule(node, left_expiry(rows.left.front().ts));
      if (!rows.right.empty()) schedule(node, right_expiry(rows.right.front().ts));
      drop_if_unused(node);
    }
    // Unmatched left rows come out in the store's expiry index order.
    std::sort(unmatched.begin(), unmatched.end(), [](const Unmatched& a, const Unmatched& b) {
      return std::tie(a.ts, *a.key, a.seq) < std::tie(b.ts, *b.key, b.seq);
    });
    for (const Unmatched& l : unmatched) {
      output_->add(RowRef::of(*l.batch, l.row), nullptr, l.ts, out);
    }
    return Status::OK();
  }

  template <typename Expired>
  void expire_prefix(const KeyNode& node, std::vector<HeldRow>& side, bool left,
                     const Expired& expired, std::vector<Unmatched>& unmatched) {
    // The rows are in ts order and expiry grows with ts: the expired ones
    // are the prefix a binary search finds.
    const auto end = std::partition_point(
        side.begin(), side.end(), [&](const HeldRow& r) { return expired(expiry(left, r.ts)); });
    const auto n = static_cast<size_t>(end - side.begin());
    if (n == 0) return;
    if (left && config_->left_outer) {
      for (auto r = side.begin(); r != end; ++r) {
        if (!r->matched)
          unmatched.push_back({r->ts, &node.first, r->seq, held_.ptr(r->batch), r->row});
      }
    }
    // Rows that arrived together are mostly neighbours: dropped a run at a time.
    for (auto r = side.begin(); r != end;) {
      const uint64_t batch = r->batch;
      auto run_end =
          std::find_if(r + 1, end, [batch](const HeldRow& x) { return x.batch != batch; });
      held_.drop_row(batch, static_cast<size_t>(run_end - r));
      r = run_end;
    }
    memory_bytes_ -= std::min(memory_bytes_, n * kRowBytes);
    entries_ -= std::min(entries_, n);
    side.erase(side.begin(), end);
  }

  // Erases a key without rows once no expiry entry names it.
  void drop_if_unused(KeyNode& node) {
    const KeyRows& rows = node.second;
    if (rows.pending == 0 && rows.left.empty() && rows.right.empty()) {
      memory_bytes_ -= std::min(memory_bytes_, kKeyBytes + Key::heap_bytes(node.first));
      memory_.erase(memory_.find(node.first));
    }
  }

  // The places of the rows in memory (their HeldRows as they are now, keys
  // apart), for encoding in the store layout on this thread or another.
  struct RowsCopy {
    struct Row {
      HeldRow held;
      uint32_t key;  // in keys
      bool left;
    };
    std::vector<typename Key::Type> keys;
    std::vector<Row> rows;          // a key's rows together
    std::vector<BatchPtr> batches;  // held_.batches(), for another thread
    uint64_t first_batch = 0;
  };

  RowsCopy copy_rows() const {
    RowsCopy copy;
    copy.keys.reserve(memory_.size());
    for (const auto& [k, rows] : memory_) {
      const auto key = static_cast<uint32_t>(copy.keys.size());
      copy.keys.push_back(k);
      for (const HeldRow& l : rows.left) copy.rows.push_back({l, key, true});
      for (const HeldRow& r : rows.right) copy.rows.push_back({r, key, false});
    }
    return copy;
  }

  // fn(buffer key, index key, value) for every row of `copy`, in the store
  // layout; batch_at(id) is held batch `id`.
  template <typename BatchAt, typename Fn>
  static void encode_rows(const JoinConfig& config, const RowsCopy& copy, const BatchAt& batch_at,
                          Fn&& fn) {
    std::string key;
    std::string buffer_key;
    std::string index_key;
    std::string value;
    for (size_t i = 0; i < copy.rows.size(); ++i) {
      const auto& [r, k, left] = copy.rows[i];
      if (i == 0 || k != copy.rows[i - 1].key) {
        key.clear();
        Key::encode(copy.keys[k], key);
      }
      store_keys(left ? kLeft : kRight, key, r.ts, r.seq, expiry_of(config, left, r.ts), buffer_key,
                 index_key);
      value.clear();
      if (left) value.push_back(r.matched ? '\1' : '\0');
      encode_row(batch_at(r.batch), r.row, value);
      fn(buffer_key, index_key, value);
    }
  }

  void clear_memory() {
    memory_.clear();
    expiries_ = {};
    held_.clear();
    memory_bytes_ = 0;
  }

  // Moves every row in memory to the store; the join goes on in the store.
  Status spill() {
    state::WriteBatch writes;
    Status status;
    encode_rows(
        *config_, copy_rows(), [&](uint64_t id) -> const Batch& { return held_.at(id); },
        [&](const std::string& buffer_key, const std::string& index_key, const std::string& value) {
          writes.put(buffer_key, value);
          writes.put(index_key, {});
          if (writes.size() >= 2 * kSlice && status.ok()) {
            status = store_->write(writes);
            writes.clear();
          }
        });
    DF_RETURN_IF_ERROR(status);
    seq_.save(writes);
    DF_RETURN_IF_ERROR(store_->write(writes));
    clear_memory();
    in_store_ = true;
    return Status::OK();
  }

  // Rows read back from the store, gathered into batches of one side.
  struct Pending {
    int64_t ts;
    uint64_t seq;
    bool matched;
  };
  using Loading = LoadedRows<Pending>;

  // Holds the rows gathered in `loading` as one batch and buffers them.
  Status load_batch(bool left, Loading& loading) {
    return hold_loaded<Key>(
        held_, loading, left ? config_->left_keys : config_->right_keys,
        [&](const Pending& p, uint64_t id, uint32_t row, bool has_key,
            const typename Key::Type& key) -> Status {
          if (!has_key) {
            return Status::data_error(what_ + ": a buffered row in the state has a null key");
          }
          auto found = memory_.find(key);
          KeyNode& node = found != memory_.end() ? *found : add_key(key);
          // The store's order is (key, ts, seq): an append.
          (left ? node.second.left : node.second.right)
              .push_back(HeldRow{p.ts, p.seq, id, row, p.matched});
          held_.add_row(id);
          memory_bytes_ += kRowBytes;  // entries_ came with the meta
          schedule(node, expiry(left, p.ts));
          return Status::OK();
        });
  }

  // Reads the rows a checkpoint (or a closed run) left in the store back into
  // memory and removes them there. Stays in the store when they do not fit.
  Status load_from_store() {
    // 'L' and 'R' rows lie in ["L", "S"), the index in ["X", "Y").
    const std::string rows_begin(1, kLeft);
    const std::string rows_end(kRowSequenceKey);
    Status status;
    size_t loaded = 0;
    size_t loaded_bytes = 0;  // the encoded rows read, until they are held
    Loading lefts(config_->left);
    Loading rights(config_->right);
    DF_RETURN_IF_ERROR(
        store_->scan(rows_begin, rows_end, [&](std::string_view k, std::string_view v) {
          if (memory_bytes() + loaded_bytes > budget_) {
            in_store_ = true;
            return false;
          }
          const bool left = k[0] == kLeft;
          if (k.size() < 1 + 16 || (left && v.empty())) {
            status = Status::data_error(what_ + ": a malformed buffered row in the state");
            return false;
          }
          std::string_view tail = k.substr(k.size() - 16);
          auto ts = state::read_ordered_i64(tail);
          auto seq = state::read_u64(tail);
          if (!ts.ok() || !seq.ok()) {
            status = ts.ok() ? seq.status() : ts.status();
            return false;
          }
          state::Row& row = left ? left_row_ : right_row_;
          status = (left ? left_codec_ : right_codec_).decode(left ? v.substr(1) : v, row);
          if (!status.ok()) return false;
          Loading& loading = left ? lefts : rights;
          loading.rows.append_row(row);
          loading.pending.push_back({*ts, *seq, left && v[0] == '\1'});
          loaded_bytes += v.size();
          ++loaded;
          if (loading.pending.size() >= kSlice) {
            status = load_batch(left, loading);
            loaded_bytes = 0;
          }
          return status.ok();
        }));
    DF_RETURN_IF_ERROR(status);
    DF_RETURN_IF_ERROR(load_batch(true, lefts));
    DF_RETURN_IF_ERROR(load_batch(false, rights));
    if (in_store_) {  // too large: the store keeps them all
      clear_memory();
      return Status::OK();
    }
    if (loaded > 0) {
      DF_RETURN_IF_ERROR(store_->remove_range(rows_begin, rows_end));
      const std::string index(1, kIndex);
      DF_RETURN_IF_ERROR(store_->remove_range(index, state::prefix_end(index)));
    }
    return Status::OK();
  }

  // Removes the rows of `side` whose expiry is < limit (all when limit is
  // the maximum), in expiry order; unmatched left rows of a left outer join
  // are emitted with null right fields.
  //
  // The scan starts at the previous call's limit, not at the index's start:
  // no index entry below the watermark exists after a call (rows already
  // expired on arrival are never stored), and the removed entries stay in
  // RocksDB as tombstones until compaction, which a scan from the start
  // would step over again on every watermark (quadratic in the run's rows).
  Status expire(char side, int64_t limit, runtime::Output& out) {
    const std::string prefix{kIndex, side};
    const std::string end =
        limit == kMax ? state::prefix_end(prefix) : at_time(prefix, limit, false);
    int64_t& expired_below = side == kLeft ? left_expired_below_ : right_expired_below_;
    std::string begin = at_time(prefix, expired_below, false);
    if (limit != kMax) expired_below = std::max(expired_below, limit);
    const bool emit_unmatched = side == kLeft && config_->left_outer;
    for (;;) {
      std::vector<std::string> expired;
      DF_RETURN_IF_ERROR(store_->scan(begin, end, [&](std::string_view k, std::string_view) {
        expired.emplace_back(k);
        return expired.size() < kSlice;
      }));
      if (expired.empty()) return Status::OK();
      begin = expired.back();
      begin.push_back('\0');  // the smallest key after the last one taken
      state::WriteBatch writes;
      for (const auto& index_key : expired) {
        std::string_view buffer_key = std::string_view(index_key).substr(2 + 8);
        if (emit_unmatched) {
          DF_ASSIGN_OR_RETURN(auto value, store_->get(buffer_key));
          if (value && !value->empty() && (*value)[0] == '\0') {
            DF_ASSIGN_OR_RETURN(int64_t ts, buffer_key_time(buffer_key));
            DF_RETURN_IF_ERROR(left_codec_.decode(std::string_view(*value).substr(1), left_row_));
            output_->add(RowRef::of(left_row_), nullptr, ts, out);
          }
        }
        writes.remove(buffer_key);
        writes.remove(index_key);
      }
      DF_RETURN_IF_ERROR(store_->write(writes));
      entries_ -= std::min(entries_, expired.size());
      if (expired.size() < kSlice) return Status::OK();
    }
  }

  static constexpr size_t kDefaultBudget = 64u << 20;
  // At most this many matches wait in pending_ (a key with many rows can
  // match an arriving row many times over).
  static constexpr size_t kMaxPendingPairs = 4096;

  Memory memory_;
  std::priority_queue<Expiry, std::vector<Expiry>, std::greater<>> expiries_;
  HeldBatches held_;
  size_t memory_bytes_ = 0;  // keys and rows; the held batches count apart
  size_t budget_ = kDefaultBudget;
  bool in_store_ = false;  // the rows are in the store (memory was full)
  // add_match() without a `where`: the arriving batch's matches so far and
  // their event times, until flush_pending().
  std::vector<JoinOutput::HeldPair> pending_;
  std::vector<int64_t> pending_times_;
  state::Row left_row_;  // decode buffers
  state::Row right_row_;
  // Every index entry of a side has expiry >= this (see expire()).
  int64_t left_expired_below_ = kMin;
  int64_t right_expired_below_ = kMin;
  int64_t out_wm_ = kMin;
  bool out_idle_ = false;
};

}  // namespace

std::unique_ptr<runtime::Operator> make_interval_join(JoinConfigPtr config) {
  if (Int64Key::fits(*config)) return std::make_unique<IntervalJoin<Int64Key>>(std::move(config));
  return std::make_unique<IntervalJoin<EncodedKey>>(std::move(config));
}

}  // namespace df::operators::join
