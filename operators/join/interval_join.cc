// The interval join: a left row at time l matches right rows of the same key
// at time r with l + lower <= r <= l + upper.
//
// Both sides are buffered per key in the subtask's KvStore (join.h has the
// layout): the key encoding is order-preserving, so the rows one arriving row
// can match are one range scan of the other side's buffer, and matches are
// emitted at once. A left row is kept until the watermark passes l + upper, a
// right row until it passes r - lower; after that no row still to come can
// match it. Expiry runs in time order over an index. Checkpoints: join.h. For a left outer join a
// left row carries a "matched" flag; still unmatched when it expires (or at
// finish), it is emitted with null right fields, and the output watermark is
// held back by max(upper, 0) so those rows are never late downstream.
//
// Hot state stays bounded: the writes of one call go in one WriteBatch, the
// store keeps the rest (RocksDB: memtable and the shared block cache). The
// buffers are deliberately not a state::CachedTable: its range scans walk the
// whole cache unless the range lies below every cached key, and every row
// here probes a key range of its own.
#include <algorithm>
#include <limits>

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
    return Status::OK();
  }

  // Every call leaves its writes in the store, so there is nothing to flush.
  Status snapshot(runtime::SnapshotContext& ctx) override {
    return snapshot_join(ctx,
                         {{"output_watermark", time_to_meta(out_wm_)}, {"output_idle", out_idle_}});
  }

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
      if (is_left) {
        DF_RETURN_IF_ERROR(on_left(*batch, row, ts, key, writes, out));
      } else {
        DF_RETURN_IF_ERROR(on_right(*batch, row, ts, key, writes, out));
      }
    }
    seq_.save(writes);
    if (!writes.empty()) DF_RETURN_IF_ERROR(store_->write(writes));
    output_->flush(out);
    return Status::OK();
  }

  Status on_watermark(Watermark wm, runtime::Output& out) override {
    wm_ = std::max(wm_, wm.timestamp_ms);
    // Left rows expire when wm > l + upper, right rows when wm > r - lower:
    // index entries with expiry < wm.
    DF_RETURN_IF_ERROR(expire(kLeft, wm_, out));
    DF_RETURN_IF_ERROR(expire(kRight, wm_, out));
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
    std::string buffer_key(1, side);
    buffer_key += key;
    state::append_ordered_i64(ts, buffer_key);
    state::append_u64(seq_.next(), buffer_key);
    std::string index_key{kIndex, side};
    state::append_ordered_i64(expiry, index_key);
    index_key += buffer_key;
    writes.put(buffer_key, value);
    writes.put(index_key, {});
    ++entries_;
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
  return std::make_unique<IntervalJoin>(std::move(config));
}

}  // namespace df::operators::join
