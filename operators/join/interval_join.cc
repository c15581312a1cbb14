// The interval join: a left row at time l matches right rows of the same key
// at time r with l + lower <= r <= l + upper.
//
// Both sides are buffered per key, in memory while they fit the state memory
// budget (a hash map of encoded keys to each side's rows), else in the
// subtask's KvStore (join.h has the layout and when rows move). An arriving
// row probes the other side's rows of its key (in memory: a walk of that
// key's rows; in the store: one range scan, the key encoding being
// order-preserving), and matches are emitted at once. A left row is kept
// until the watermark passes l + upper, a right row until it passes
// r - lower; after that no row still to come can match it. Expiry runs in
// time order, over a queue in memory and over an index in the store.
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

// The first row at or after `ts`: a key's rows in memory are in (ts, seq)
// order, as in the store, so that matches come out in the same order from both.
template <typename Rows>
auto first_at(Rows& rows, int64_t ts) {
  return std::lower_bound(rows.begin(), rows.end(), ts,
                          [](const BufferedRow& r, int64_t t) { return r.ts < t; });
}

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

  // The rows in memory are copied in the store layout and added to the
  // checkpoint off the task thread; the store's own rows are in its checkpoint.
  Status snapshot(runtime::SnapshotContext& ctx) override {
    auto in_memory = std::make_shared<state::CheckpointEntries>();
    for_each_in_memory(
        [&](const std::string& buffer_key, const std::string& index_key, const std::string& value) {
          in_memory->put(buffer_key, value);
          in_memory->put(index_key, {});
        });
    DF_RETURN_IF_ERROR(snapshot_join(
        ctx, {{"output_watermark", time_to_meta(out_wm_)}, {"output_idle", out_idle_}}));
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

  // Rows still in memory go to the store, so a restart on this state dir finds them.
  Status close() override { return store_ && !memory_.empty() ? spill() : Status::OK(); }

  Status process(size_t input, const BatchPtr& batch, runtime::Output& out) override {
    const Column* times = batch->event_time().get();
    if (!times)
      return Status::internal("join '" + ctx_->node_id() + "': a batch without event time");
    const bool is_left = input == 0;
    const auto& keys = is_left ? config_->left_keys : config_->right_keys;
    state::WriteBatch writes;
    std::string key;
    for (size_t k = 0; k < batch->active_rows(); ++k) {
      const size_t row = batch->row_at(k);
      if (times->is_null(row)) {
        ctx_->report_data_error("join: row without event time skipped");
        continue;
      }
      const int64_t ts = times->int64_at(row);
      key.clear();
      if (!encode_row_key(*batch, keys, row, key)) {  // a null key never matches
        if (is_left && config_->left_outer) output_->add(RowRef::of(*batch, row), nullptr, ts, out);
        continue;
      }
      if (in_store_) {
        if (is_left) {
          DF_RETURN_IF_ERROR(on_left(*batch, row, ts, key, writes, out));
        } else {
          DF_RETURN_IF_ERROR(on_right(*batch, row, ts, key, writes, out));
        }
      } else if (is_left) {
        DF_RETURN_IF_ERROR(on_left_in_memory(*batch, row, ts, key, out));
      } else {
        DF_RETURN_IF_ERROR(on_right_in_memory(*batch, row, ts, key, out));
      }
    }
    seq_.save(writes);
    if (!writes.empty()) DF_RETURN_IF_ERROR(store_->write(writes));
    output_->flush(out);
    if (!in_store_ && memory_bytes_ > budget_) DF_RETURN_IF_ERROR(spill());
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
                                      output_->add(left, &right, std::max(ts, *rts), out);
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
    DF_RETURN_IF_ERROR(
        store_->scan(at_time(prefix, add_sat(ts, -config_->upper_ms), false),
                     at_time(prefix, add_sat(ts, -config_->lower_ms), true),
                     [&](std::string_view k, std::string_view v) {
                       auto lts = buffer_key_time(k);
                       if (!lts.ok() || v.empty()) {
                         decode_status = Status::internal("join state: bad left row");
                         return false;
                       }
                       decode_status = left_codec_.decode(v.substr(1), left_row_);
                       if (!decode_status.ok()) return false;
                       output_->add(RowRef::of(left_row_), &right, std::max(ts, *lts), out);
                       if (config_->left_outer && v[0] == '\0') {
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

  int64_t left_expiry(int64_t ts) const { return add_sat(ts, config_->upper_ms); }
  int64_t right_expiry(int64_t ts) const { return add_sat(ts, -config_->lower_ms); }

  // ---- Rows in memory ------------------------------------------------------

  struct KeyRows {
    std::vector<BufferedRow> left;
    std::vector<BufferedRow> right;
    int64_t expired_below = kMin;  // the last expiry limit applied to this key
    uint32_t pending = 0;          // entries of expiries_ naming this key
  };
  using Memory = std::unordered_map<std::string, KeyRows, KeyHash, std::equal_to<>>;
  using KeyNode = Memory::value_type;
  // A key that has a row expiring at `at` (one per buffered row). The node
  // stays in memory_ while entries name it (KeyRows::pending; nodes of an
  // unordered_map do not move), so expiring needs no key copy and no lookup.
  struct Expiry {
    int64_t at;
    KeyNode* node;
    bool operator>(const Expiry& o) const { return at > o.at; }
  };

  Status on_left_in_memory(const Batch& batch, size_t row, int64_t ts, const std::string& key,
                           runtime::Output& out) {
    const RowRef left = RowRef::of(batch, row);
    auto found = memory_.find(key);
    bool matched = false;
    if (found != memory_.end()) {
      const int64_t lo = add_sat(ts, config_->lower_ms);
      const int64_t hi = add_sat(ts, config_->upper_ms);
      const auto& rights = found->second.right;
      for (auto r = first_at(rights, lo); r != rights.end() && r->ts <= hi; ++r) {
        DF_RETURN_IF_ERROR(right_codec_.decode(r->row, right_row_));
        const RowRef right = RowRef::of(right_row_);
        output_->add(left, &right, std::max(ts, r->ts), out);
        matched = true;
      }
    }
    const int64_t expiry = left_expiry(ts);
    if (wm_ > expiry) {  // already expired: nothing still to come can match it
      if (config_->left_outer && !matched) output_->add(left, nullptr, ts, out);
      return Status::OK();
    }
    KeyNode& node = found != memory_.end() ? *found : *memory_.try_emplace(key).first;
    remember(node, node.second.left, batch, row, ts, matched, expiry);
    return Status::OK();
  }

  Status on_right_in_memory(const Batch& batch, size_t row, int64_t ts, const std::string& key,
                            runtime::Output& out) {
    const RowRef right = RowRef::of(batch, row);
    auto found = memory_.find(key);
    if (found != memory_.end()) {
      const int64_t lo = add_sat(ts, -config_->upper_ms);
      const int64_t hi = add_sat(ts, -config_->lower_ms);
      auto& lefts = found->second.left;
      for (auto l = first_at(lefts, lo); l != lefts.end() && l->ts <= hi; ++l) {
        DF_RETURN_IF_ERROR(left_codec_.decode(l->row, left_row_));
        output_->add(RowRef::of(left_row_), &right, std::max(ts, l->ts), out);
        l->matched = true;
      }
    }
    const int64_t expiry = right_expiry(ts);
    if (wm_ > expiry) return Status::OK();
    KeyNode& node = found != memory_.end() ? *found : *memory_.try_emplace(key).first;
    remember(node, node.second.right, batch, row, ts, false, expiry);
    return Status::OK();
  }

  void remember(KeyNode& node, std::vector<BufferedRow>& side, const Batch& batch, size_t row,
                int64_t ts, bool matched, int64_t expiry) {
    // Mostly an append: rows arrive about in time order.
    auto at = side.empty() || side.back().ts <= ts
                  ? side.end()
                  : std::upper_bound(side.begin(), side.end(), ts,
                                     [](int64_t t, const BufferedRow& r) { return t < r.ts; });
    BufferedRow& b = *side.emplace(at);
    b.ts = ts;
    b.seq = seq_.next();
    b.matched = matched;
    encode_row(batch, row, b.row);
    memory_bytes_ += buffered_bytes(b) + node.first.size();
    expiries_.push({expiry, &node});
    ++node.second.pending;
    ++entries_;
  }

  // Drops the rows in memory whose expiry is < limit (all at kMax), emitting
  // unmatched left rows of a left outer join.
  Status expire_in_memory(int64_t limit, runtime::Output& out) {
    if (limit != kMax) {
      left_expired_below_ = std::max(left_expired_below_, limit);
      right_expired_below_ = std::max(right_expired_below_, limit);
    }
    std::vector<std::pair<std::string, BufferedRow>> unmatched;
    while (!expiries_.empty() && (limit == kMax || expiries_.top().at < limit)) {
      KeyNode& node = *expiries_.top().node;
      expiries_.pop();
      const std::string& key = node.first;
      KeyRows& rows = node.second;
      --rows.pending;
      if (rows.expired_below == limit) {
        drop_if_unused(node);
        continue;
      }
      rows.expired_below = limit;
      auto expired = [&](int64_t expiry) { return limit == kMax || expiry < limit; };
      std::erase_if(rows.left, [&](BufferedRow& l) {
        if (!expired(left_expiry(l.ts))) return false;
        forget(l, key);
        if (config_->left_outer && !l.matched) unmatched.push_back({key, std::move(l)});
        return true;
      });
      std::erase_if(rows.right, [&](const BufferedRow& r) {
        if (!expired(right_expiry(r.ts))) return false;
        forget(r, key);
        return true;
      });
      drop_if_unused(node);
    }
    // Unmatched left rows come out in the store's expiry index order.
    std::sort(unmatched.begin(), unmatched.end(), [](const auto& a, const auto& b) {
      return std::tie(a.second.ts, a.first, a.second.seq) <
             std::tie(b.second.ts, b.first, b.second.seq);
    });
    for (const auto& [key, l] : unmatched) {
      DF_RETURN_IF_ERROR(left_codec_.decode(l.row, left_row_));
      output_->add(RowRef::of(left_row_), nullptr, l.ts, out);
    }
    return Status::OK();
  }

  // Erases a key without rows once no expiry entry names it.
  void drop_if_unused(KeyNode& node) {
    const KeyRows& rows = node.second;
    if (rows.pending == 0 && rows.left.empty() && rows.right.empty()) {
      memory_.erase(memory_.find(node.first));
    }
  }

  void forget(const BufferedRow& r, const std::string& key) {
    memory_bytes_ -= std::min(memory_bytes_, buffered_bytes(r) + key.size());
    entries_ -= std::min<size_t>(entries_, 1);
  }

  // fn(buffer key, index key, value) for every row in memory, in the store layout.
  template <typename Fn>
  void for_each_in_memory(Fn&& fn) {
    std::string buffer_key;
    std::string index_key;
    std::string value;
    for (const auto& [key, rows] : memory_) {
      for (const BufferedRow& l : rows.left) {
        store_keys(kLeft, key, l.ts, l.seq, left_expiry(l.ts), buffer_key, index_key);
        value.assign(1, l.matched ? '\1' : '\0');
        value += l.row;
        fn(buffer_key, index_key, value);
      }
      for (const BufferedRow& r : rows.right) {
        store_keys(kRight, key, r.ts, r.seq, right_expiry(r.ts), buffer_key, index_key);
        fn(buffer_key, index_key, r.row);
      }
    }
  }

  // Moves every row in memory to the store; the join goes on in the store.
  Status spill() {
    state::WriteBatch writes;
    Status status;
    for_each_in_memory(
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
    memory_.clear();
    expiries_ = {};
    memory_bytes_ = 0;
    in_store_ = true;
    return Status::OK();
  }

  // Reads the rows a checkpoint (or a closed run) left in the store back into
  // memory and removes them there. Stays in the store when they do not fit.
  Status load_from_store() {
    // 'L' and 'R' rows lie in ["L", "S"), the index in ["X", "Y").
    const std::string rows_begin(1, kLeft);
    const std::string rows_end(kRowSequenceKey);
    Status status;
    size_t loaded = 0;
    DF_RETURN_IF_ERROR(
        store_->scan(rows_begin, rows_end, [&](std::string_view k, std::string_view v) {
          if (memory_bytes_ > budget_) {
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
          KeyNode& node = *memory_.try_emplace(std::string(k.substr(1, k.size() - 17))).first;
          KeyRows& rows = node.second;
          BufferedRow& b = (left ? rows.left : rows.right).emplace_back();
          b.ts = *ts;
          b.seq = *seq;
          b.matched = left && v[0] == '\1';
          b.row.assign(left ? v.substr(1) : v);
          memory_bytes_ += buffered_bytes(b) + node.first.size();
          expiries_.push({left ? left_expiry(*ts) : right_expiry(*ts), &node});
          ++rows.pending;
          ++loaded;
          return true;
        }));
    DF_RETURN_IF_ERROR(status);
    if (in_store_) {  // too large: the store keeps them all
      memory_.clear();
      expiries_ = {};
      memory_bytes_ = 0;
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

  Memory memory_;
  std::priority_queue<Expiry, std::vector<Expiry>, std::greater<>> expiries_;
  size_t memory_bytes_ = 0;
  size_t budget_ = kDefaultBudget;
  bool in_store_ = false;  // the rows are in the store (memory was full)
  state::Row left_row_;    // decode buffers
  state::Row right_row_;
  // Every index entry of a side has expiry >= this (see expire()).
  int64_t left_expired_below_ = kMin;
  int64_t right_expired_below_ = kMin;
  int64_t out_wm_ = kMin;
  bool out_idle_ = false;
};

}  // namespace

std::unique_ptr<runtime::Operator> make_interval_join(JoinConfigPtr config) {
  return std::make_unique<IntervalJoin>(std::move(config));
}

}  // namespace df::operators::join
