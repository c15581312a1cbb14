// Internal to operators/join/: how both joins keep rows in memory without
// encoding them. A buffered row is (held batch, physical row): the arriving
// batches themselves are kept (or a dense copy of their kept rows), and rows
// are found by their join key, a single int64/timestamp key by its value,
// any other by its encoded bytes (encode_row_key).
//
// Threading: one instance per operator instance, on its task thread. A held
// batch is immutable and shared (BatchPtr), so a copy of the pointers may be
// read on another thread (a snapshot encoding rows on the I/O pool).
#pragma once

#include <algorithm>
#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <vector>

#include "engine/core/batch.h"
#include "engine/state/codec.h"
#include "operators/join/join.h"
#include "operators/stateful.h"

namespace df::operators::join {

// How the rows in memory are keyed. A single int64 or timestamp join key (an
// id, the common case) is its value, hashed as an integer: no encoding and no
// string compare per row. Any other key is its encode_row_key bytes. Both
// order like their encoded bytes (the encoding is order-preserving), so
// sorting keys by Type's operator< gives the store's key order.
struct Int64Key {
  using Type = int64_t;
  using Hash = std::hash<int64_t>;
  // A null key cannot be held as a Type: the caller keeps such rows apart.
  static constexpr bool kHoldsNull = false;
  static bool fits(const JoinConfig& config) {
    if (config.left_keys.size() != 1) return false;
    return stored_as_int64(config.left->field(config.left_keys[0]).type);
  }
  // False for a null key, which never matches.
  static bool read(const Batch& batch, const std::vector<size_t>& fields, size_t row,
                   int64_t& key) {
    const Column& column = *batch.column(fields[0]);
    if (column.is_null(row)) return false;
    key = column.int64_at(row);
    return true;
  }
  // Appends the key's bytes in the store layout (those of encode_row_key).
  static void encode(int64_t key, std::string& out) { state::append_key_i64(key, out); }
  static size_t heap_bytes(int64_t) { return 0; }
};

struct EncodedKey {
  using Type = std::string;
  using Hash = KeyHash;
  // `read` fills in a null key's bytes too (nulls first in the key order).
  static constexpr bool kHoldsNull = true;
  // False for a null key, which never matches.
  static bool read(const Batch& batch, const std::vector<size_t>& fields, size_t row,
                   std::string& key) {
    key.clear();
    return encode_row_key(batch, fields, row, key);
  }
  static void encode(const std::string& key, std::string& out) { out += key; }
  static size_t heap_bytes(const std::string& key) {
    return key.capacity() > 15 ? key.capacity() : 0;
  }
};

// The arriving batches whose rows a join keeps in memory, by number: a
// buffered row is (batch number, physical row), so keeping a row copies
// nothing. A batch is let go with its last buffered row.
class HeldBatches {
 public:
  // A batch held by hold_kept: its number and whether it is a dense copy of
  // the kept rows (then kept row i is its row i) or the batch itself.
  struct Holding {
    uint64_t id = 0;
    size_t kept = 0;  // 0: nothing was held
    bool dense = false;
  };

  // Keeps `batch` (no rows yet) and returns its number.
  uint64_t hold(BatchPtr batch) {
    const size_t bytes = batch->memory_bytes();
    bytes_ += bytes;
    held_.push_back({std::move(batch), 0, bytes, false});
    return first_ + held_.size() - 1;
  }

  // Reserves a number for a batch still being built (rows may be added to
  // it meanwhile); fill() holds the batch. Not readable (at, ptr, batches)
  // until then.
  uint64_t reserve() {
    held_.push_back({nullptr, 0, 0, true});
    return first_ + held_.size() - 1;
  }
  void fill(uint64_t id, BatchPtr batch) {
    Held& h = held_[id - first_];
    h.bytes = batch->memory_bytes();
    bytes_ += h.bytes;
    h.batch = std::move(batch);
    h.reserved = false;
    if (h.rows == 0) release(h);
  }

  // Holds the rows `kept` (physical rows, in order) of `batch`: the batch
  // itself, or a dense copy of them when they are less than half of its
  // physical rows (a narrow filter's selection, rows dropped on arrival) or
  // when the batch's buffers are much larger than its rows need (a source's
  // batch of a few rows in columns reserved for many), so that what is held
  // is mostly live rows and the memory budget counts what they take.
  Holding hold_rows(const BatchPtr& batch, const std::vector<uint32_t>& kept) {
    Holding h;
    h.kept = kept.size();
    if (h.kept == 0) return h;
    h.dense = h.kept * 2 < batch->num_rows() || batch->memory_bytes() > h.kept * kSparseRowBytes;
    if (!h.dense) {
      h.id = hold(batch);
      return h;
    }
    auto selection = make_selection(h.kept);
    std::copy(kept.begin(), kept.end(), selection->begin());
    h.id = hold(Batch::narrow(batch, std::move(selection))->compact());
    return h;
  }
  // hold_rows of the rows of `batch` that keep(physical row) selects.
  template <typename Keep>
  Holding hold_kept(const BatchPtr& batch, const Keep& keep) {
    kept_.clear();
    for (size_t k = 0; k < batch->active_rows(); ++k) {
      const size_t row = batch->row_at(k);
      if (keep(row)) kept_.push_back(static_cast<uint32_t>(row));
    }
    return hold_rows(batch, kept_);
  }

  const Batch& at(uint64_t id) const { return *held_[id - first_].batch; }
  const BatchPtr& ptr(uint64_t id) const { return held_[id - first_].batch; }
  void add_row(uint64_t id, size_t rows = 1) { held_[id - first_].rows += rows; }
  // `rows` rows of batch `id` are no longer buffered.
  void drop_row(uint64_t id, size_t rows = 1) {
    Held& h = held_[id - first_];
    h.rows -= rows;
    if (h.rows == 0) release(h);
  }
  // Lets batch `id` go if none of its rows is buffered.
  void release_if_unused(uint64_t id) {
    Held& h = held_[id - first_];
    if (h.rows == 0) release(h);
  }
  void clear() {
    first_ += held_.size();
    held_.clear();
    bytes_ = 0;
  }
  size_t bytes() const { return bytes_; }

  // The held batches by number from first_id() on (null: let go), for a
  // reader on another thread.
  uint64_t first_id() const { return first_; }
  std::vector<BatchPtr> batches() const {
    std::vector<BatchPtr> out;
    out.reserve(held_.size());
    for (const Held& h : held_) out.push_back(h.batch);
    return out;
  }

 private:
  // Above this many bytes per kept row a batch is held as a dense copy.
  static constexpr size_t kSparseRowBytes = 1024;

  struct Held {
    BatchPtr batch;
    size_t rows;
    size_t bytes;
    bool reserved;  // not filled yet
  };

  void release(Held& h) {
    bytes_ -= std::min(bytes_, h.bytes);
    h.batch.reset();
    // Numbers stay valid: only a released prefix leaves the deque.
    while (!held_.empty() && !held_.front().batch && !held_.front().reserved) {
      held_.pop_front();
      ++first_;
    }
  }

  std::deque<Held> held_;
  uint64_t first_ = 0;  // the number of held_.front()
  size_t bytes_ = 0;
  std::vector<uint32_t> kept_;  // hold_kept's rows, reused
};

// Rows of one side read back from a join's store, gathered into one batch;
// `Pending` is what the join keeps of each row besides its columns.
template <typename Pending>
struct LoadedRows {
  explicit LoadedRows(SchemaPtr schema) : rows(std::move(schema)) {}
  BatchBuilder rows;
  std::vector<Pending> pending;
};

// Holds the rows gathered in `loading` as one batch of `held` and hands each
// to place(pending, batch number, row, key read (false: null), key), in the
// order they were gathered; the batch is let go if no row was kept.
template <typename Key, typename Pending, typename Place>
Status hold_loaded(HeldBatches& held, LoadedRows<Pending>& loading,
                   const std::vector<size_t>& key_fields, Place&& place) {
  if (loading.pending.empty()) return Status::OK();
  const uint64_t id = held.hold(loading.rows.finish());
  const Batch& batch = held.at(id);
  typename Key::Type key{};
  for (size_t i = 0; i < loading.pending.size(); ++i) {
    const bool has_key = Key::read(batch, key_fields, i, key);
    DF_RETURN_IF_ERROR(place(loading.pending[i], id, static_cast<uint32_t>(i), has_key, key));
  }
  held.release_if_unused(id);
  loading.pending.clear();
  return Status::OK();
}

}  // namespace df::operators::join
