// Typed keyed state over a KvStore: rows of Values per key (ValueState, with
// optional TTL), per-key maps (MapState), and a write-back cache for hot
// per-key records (CachedTable).
//
// Keys: every `key` below is bytes the caller built with the key encodings of
// codec.h (encode_key_cell, append_key_*, append_ordered_i64...). Those are
// self-delimiting, which keeps composite keys unambiguous, and ordered, which
// makes range scans visit keys in value order.
//
// Several states may share one store: ValueState and MapState put their
// name (encoded like a key string) in front of every key, so their key
// spaces never overlap. A CachedTable uses the store's key space as given;
// give it its own prefix in the keys you pass if the store is shared.
//
// Threading and ownership: like the store, each object belongs to one
// operator subtask and is used from one thread at a time. They hold a
// reference to the store, which must outlive them. Pending writes are lost if
// an object is destroyed without flush(); operators flush on checkpoints and
// on close.
#pragma once

#include <algorithm>
#include <concepts>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "engine/core/status.h"
#include "engine/core/types.h"
#include "engine/core/value.h"
#include "engine/state/codec.h"
#include "engine/state/state_backend.h"

namespace df::state {

using Row = std::vector<Value>;

// The key prefix of a named state: the name encoded as a key string.
std::string state_prefix(std::string_view name);

// Encodes rows of a fixed list of types, one encode_value per field.
class RowCodec {
 public:
  RowCodec() = default;
  explicit RowCodec(std::vector<TypeId> types) : types_(std::move(types)) {}
  const std::vector<TypeId>& types() const { return types_; }

  // Appends `row`; kInvalidArgument when its arity or a field's type differs.
  Status encode(const Row& row, std::string& out) const;
  // Replaces `out` with the row in `in` (reusing out's storage);
  // kDataError when `in` is truncated, malformed or has bytes left over.
  Status decode(std::string_view in, Row& out) const;
  // Heap bytes a decoded row holds, for cache budgets.
  size_t heap_bytes(const Row& row) const;

 private:
  std::vector<TypeId> types_;
};

// A CachedTable value that is an int64 (8 bytes little-endian).
struct Int64Codec {
  Status encode(const int64_t& v, std::string& out) const;
  Status decode(std::string_view in, int64_t& out) const;
  size_t heap_bytes(const int64_t&) const { return 0; }
};

// A CachedTable value kept as opaque bytes.
struct BytesCodec {
  Status encode(const std::string& v, std::string& out) const {
    out.append(v);
    return Status::OK();
  }
  Status decode(std::string_view in, std::string& out) const {
    out.assign(in.data(), in.size());
    return Status::OK();
  }
  size_t heap_bytes(const std::string& v) const { return v.capacity() > 15 ? v.capacity() : 0; }
};

// ---------------------------------------------------------------------------
// ValueState: key -> one row of a fixed schema, optionally expiring.
//
// Reads see this object's own writes at once. Writes are buffered and go to
// the store as one WriteBatch on flush(), or by themselves once
// Options::max_pending keys are pending. With a TTL, each put records
// `now_ms + ttl_ms`; an entry whose expiry is <= now_ms reads as absent and
// is removed when next read, or by purge_expired. `now_ms` is whatever clock
// the operator uses (processing or event time); it is ignored without TTL.
class ValueState {
 public:
  struct Options {
    int64_t ttl_ms = 0;         // 0: entries never expire
    size_t max_pending = 4096;  // buffered keys before writes go out on their own
  };

  ValueState(KvStore& store, std::string_view name, std::vector<TypeId> types);
  ValueState(KvStore& store, std::string_view name, std::vector<TypeId> types, Options options);

  // Fills `out` and returns true, or returns false when the key is absent or expired.
  Result<bool> get(std::string_view key, Row& out, int64_t now_ms = 0);
  Result<std::optional<Row>> get(std::string_view key, int64_t now_ms = 0);
  Status put(std::string_view key, const Row& row, int64_t now_ms = 0);
  Status remove(std::string_view key);
  // out[i] answers keys[i]; keys not pending are read with one multi_get.
  Status get_many(const std::vector<std::string_view>& keys, std::vector<std::optional<Row>>& out,
                  int64_t now_ms = 0);
  // Writes pending puts and removes as one atomic WriteBatch.
  Status flush();
  // Flushes, then removes every entry that has expired at now_ms; returns how many.
  Result<size_t> purge_expired(int64_t now_ms);
  size_t pending() const { return pending_.size(); }

 private:
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
  };
  // Stored value without TTL: the row. With TTL: 8-byte ordered expiry, then the row.
  Result<bool> decode_stored(std::string_view stored, Row& out, int64_t now_ms) const;
  const std::string& full_key(std::string_view key);
  Status stage(std::string_view key, std::optional<std::string> stored);

  KvStore& store_;
  std::string prefix_;
  RowCodec codec_;
  Options options_;
  std::string key_buf_;
  std::string value_buf_;
  // full key -> stored bytes (nullopt: remove); flushed as one WriteBatch.
  std::unordered_map<std::string, std::optional<std::string>, Hash, std::equal_to<>> pending_;
};

// ---------------------------------------------------------------------------
// MapState: key -> (user key -> row). Stored under name + key + user key, so
// all entries of one key are adjacent and visited in user-key order. `key`
// must be self-delimiting (codec key encodings); `user_key` is any bytes,
// ordered by bytes (use codec key encodings for value order). Writes go
// straight to the store.
class MapState {
 public:
  MapState(KvStore& store, std::string_view name, std::vector<TypeId> types);

  Result<bool> get(std::string_view key, std::string_view user_key, Row& out);
  Status put(std::string_view key, std::string_view user_key, const Row& row);
  Status remove(std::string_view key, std::string_view user_key);
  // Visits the key's entries in user-key order; return false to stop.
  // `fn` must not write to this state.
  Status for_each(std::string_view key,
                  const std::function<bool(std::string_view user_key, const Row& row)>& fn);
  // Removes every entry of the key.
  Status clear(std::string_view key);

 private:
  const std::string& full_key(std::string_view key, std::string_view user_key);

  KvStore& store_;
  std::string prefix_;
  RowCodec codec_;
  std::string key_buf_;
  std::string value_buf_;
  Row row_buf_;
};

// ---------------------------------------------------------------------------
// CachedTable: a write-back cache in front of a KvStore for hot per-key
// records, so an operator can keep millions of keys with bounded memory.
//
// Memory holds a hash map key -> (decoded T, dirty flag) in LRU order. Hits
// cost one hash lookup and no decoding. Once the entries' estimated bytes pass
// Options::memory_budget_bytes, the least recently used ones are evicted
// (down to 3/4 of the budget); the dirty ones among them are written to the
// store in one WriteBatch first. flush() writes every dirty entry (call it
// before a checkpoint). A miss reads the store and decodes into memory.
//
// Range scans (for_each_in_range) merge memory and store in key order, memory
// winning, so they see writes not yet flushed. A window operator keys entries
// by append_ordered_i64(window_end) + encoded key and fires every window
// ending at or before a watermark w with
//   for_each_in_range("", end_key(w + 1), emit); remove_range("", end_key(w + 1));
// Memory is only walked when the range can hold a cached key (a lower bound
// of the cached keys is kept), so frequent scans below every cached key are cheap.
//
// Codec: encode(const T&, std::string&) -> Status, decode(string_view, T&) ->
// Status, heap_bytes(const T&) -> size_t. Pointers returned by get() stay
// valid until the next call that can insert or evict (any non-const call).
template <typename Codec, typename T>
concept CachedTableCodec = std::default_initializable<T> &&
    requires(const Codec& c, T& t, const T& ct, std::string& s, std::string_view in) {
  { c.encode(ct, s) } -> std::same_as<Status>;
  { c.decode(in, t) } -> std::same_as<Status>;
  { c.heap_bytes(ct) } -> std::convertible_to<size_t>;
};

template <typename T, typename Codec>
requires CachedTableCodec<Codec, T>
class CachedTable {
 public:
  struct Options {
    size_t memory_budget_bytes = 64u << 20;  // estimated bytes of cached entries
  };
  struct Stats {
    uint64_t hits = 0;           // found in memory
    uint64_t misses = 0;         // looked up in the store
    uint64_t evictions = 0;      // entries dropped from memory
    uint64_t evicted_dirty = 0;  // of which written to the store
  };

  CachedTable(KvStore& store, Codec codec, Options options)
      : store_(store), codec_(std::move(codec)), options_(options) {
    lru_.prev = lru_.next = &lru_;
  }
  explicit CachedTable(KvStore& store, Codec codec = Codec())
      : CachedTable(store, std::move(codec), Options()) {}
  CachedTable(const CachedTable&) = delete;
  CachedTable& operator=(const CachedTable&) = delete;

  // The value (memory, then store), or nullptr when absent.
  Result<const T*> get(std::string_view key) {
    Entry* e = find(key);
    if (e != nullptr) {
      ++stats_.hits;
      touch(e);
      return e->present ? &e->value : nullptr;
    }
    DF_ASSIGN_OR_RETURN(e, load(key));
    if (e == nullptr) return static_cast<const T*>(nullptr);
    DF_RETURN_IF_ERROR(evict_if_over_budget(e));
    return &e->value;
  }

  // Read-modify-write: calls fn(T& value, bool existed) with the current
  // value (a default T when absent) and keeps the result as the new value.
  template <typename F>
  Status update(std::string_view key, F&& fn) {
    Entry* e = find(key);
    bool existed;
    if (e != nullptr) {
      ++stats_.hits;
      touch(e);
      existed = e->present;
      if (!existed) e->value = T{};
    } else {
      DF_ASSIGN_OR_RETURN(e, load(key));
      existed = e != nullptr;
      if (e == nullptr) e = insert(key);
    }
    fn(e->value, existed);
    e->present = true;
    e->dirty = true;
    recharge(e);
    return evict_if_over_budget(e);
  }

  // Blind write: no store read.
  Status put(std::string_view key, T value) {
    Entry* e = find(key);
    if (e != nullptr) {
      touch(e);
    } else {
      e = insert(key);
    }
    e->value = std::move(value);
    e->present = true;
    e->dirty = true;
    recharge(e);
    return evict_if_over_budget(e);
  }

  // Blind remove: kept in memory as a dirty tombstone until written.
  Status remove(std::string_view key) {
    Entry* e = find(key);
    if (e != nullptr) {
      touch(e);
    } else {
      e = insert(key);
    }
    e->value = T{};
    e->present = false;
    e->dirty = true;
    recharge(e);
    return evict_if_over_budget(e);
  }

  // Writes every dirty entry to the store in one WriteBatch; tombstones then
  // leave memory. Entries stay cached (clean).
  Status flush() {
    victims_.clear();
    for (Entry* e = lru_.next; e != &lru_; e = e->next) {
      if (e->dirty) victims_.push_back(e);
    }
    WriteBatch batch;
    DF_RETURN_IF_ERROR(add_sorted_to_batch(victims_, batch));
    victims_.clear();
    DF_RETURN_IF_ERROR(store_.write(batch));
    for (Entry* e = lru_.next; e != &lru_;) {
      Entry* next = e->next;
      e->dirty = false;
      if (!e->present) erase(e);
      e = next;
    }
    return Status::OK();
  }

  // Copies every dirty entry (puts and tombstones) into `out` and leaves the
  // table as it is: what flush() would write, for a snapshot that adds it to
  // a store checkpoint off the task thread (add_to_checkpoint) instead.
  Status copy_dirty_to(CheckpointEntries& out) {
    for (Entry* e = lru_.next; e != &lru_; e = e->next) {
      if (!e->dirty) continue;
      if (!e->present) {
        out.remove(e->key);
        continue;
      }
      encode_buf_.clear();
      DF_RETURN_IF_ERROR(codec_.encode(e->value, encode_buf_));
      out.put(e->key, encode_buf_);
    }
    return Status::OK();
  }

  // Visits entries with begin <= key < end (end empty: to the last key) in
  // key order, memory merged over the store; return false to stop.
  // `fn` must not modify the table. Does not change the LRU order.
  Status for_each_in_range(std::string_view begin, std::string_view end,
                           const std::function<bool(std::string_view key, const T& value)>& fn) {
    std::vector<Entry*> mem = cached_in_range(begin, end);
    std::sort(mem.begin(), mem.end(),
              [](const Entry* a, const Entry* b) { return a->key < b->key; });
    size_t i = 0;
    bool go = true;
    Status decode_status;
    T scratch{};
    auto emit_mem_before = [&](std::string_view bound, bool inclusive) {
      while (go && i < mem.size() && (mem[i]->key < bound || (inclusive && mem[i]->key == bound))) {
        if (mem[i]->present) go = fn(mem[i]->key, mem[i]->value);
        ++i;
      }
    };
    DF_RETURN_IF_ERROR(store_.scan(begin, end, [&](std::string_view k, std::string_view v) {
      emit_mem_before(k, false);
      if (!go) return false;
      if (i < mem.size() && mem[i]->key == k) {
        emit_mem_before(k, true);  // memory wins over the stored version
        return go;
      }
      decode_status = codec_.decode(v, scratch);
      if (!decode_status.ok()) return false;
      go = fn(k, scratch);
      return go;
    }));
    DF_RETURN_IF_ERROR(decode_status);
    while (go && i < mem.size()) {
      if (mem[i]->present) go = fn(mem[i]->key, mem[i]->value);
      ++i;
    }
    return Status::OK();
  }

  // Removes entries with begin <= key < end from memory and store.
  Status remove_range(std::string_view begin, std::string_view end) {
    DF_RETURN_IF_ERROR(store_.remove_range(begin, end));
    for (Entry* e : cached_in_range(begin, end)) erase(e);
    return Status::OK();
  }

  size_t cached_entries() const { return map_.size(); }
  size_t memory_bytes() const { return bytes_; }
  const Stats& stats() const { return stats_; }

 private:
  struct Entry {
    T value{};
    Entry* prev = nullptr;  // LRU list: lru_.next is the most recent
    Entry* next = nullptr;
    std::string_view key;  // the map node's key
    size_t charge = 0;     // bytes counted in bytes_
    bool present = false;  // false: absent (a tombstone if dirty)
    bool dirty = false;
  };
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
  };
  using Map = std::unordered_map<std::string, Entry, Hash, std::equal_to<>>;
  // Per entry besides key and value heap: the node (key string, Entry, next
  // pointer, cached hash), a bucket slot and allocator overhead.
  static constexpr size_t kEntryOverhead =
      sizeof(typename Map::value_type) + 3 * sizeof(void*) + 16;

  Entry* find(std::string_view key) {
    auto it = map_.find(key);
    return it == map_.end() ? nullptr : &it->second;
  }

  Entry* insert(std::string_view key) {
    if (map_.empty() || key < lower_bound_) lower_bound_.assign(key.data(), key.size());
    auto [it, inserted] = map_.try_emplace(std::string(key));
    Entry* e = &it->second;
    e->key = it->first;
    link_front(e);
    recharge(e);
    return e;
  }

  // Reads the store; a found value enters memory clean. nullptr when absent.
  Result<Entry*> load(std::string_view key) {
    ++stats_.misses;
    DF_ASSIGN_OR_RETURN(std::optional<std::string> stored, store_.get(key));
    if (!stored) return static_cast<Entry*>(nullptr);
    T value{};
    DF_RETURN_IF_ERROR(codec_.decode(*stored, value));
    Entry* e = insert(key);
    e->value = std::move(value);
    e->present = true;
    recharge(e);
    return e;
  }

  void recharge(Entry* e) {
    size_t key_heap = e->key.size() > 15 ? e->key.size() + 1 : 0;
    size_t charge = kEntryOverhead + key_heap + (e->present ? codec_.heap_bytes(e->value) : 0);
    bytes_ = bytes_ - e->charge + charge;
    e->charge = charge;
  }

  void link_front(Entry* e) {
    e->prev = &lru_;
    e->next = lru_.next;
    lru_.next->prev = e;
    lru_.next = e;
  }
  static void unlink(Entry* e) {
    e->prev->next = e->next;
    e->next->prev = e->prev;
  }
  void touch(Entry* e) {
    if (lru_.next == e) return;
    unlink(e);
    link_front(e);
  }

  void erase(Entry* e) {
    unlink(e);
    bytes_ -= e->charge;
    auto it = map_.find(e->key);
    map_.erase(it);
  }

  Status add_to_batch(const Entry& e, WriteBatch& batch) {
    if (!e.present) {
      batch.remove(e.key);
      return Status::OK();
    }
    encode_buf_.clear();
    DF_RETURN_IF_ERROR(codec_.encode(e.value, encode_buf_));
    batch.put(e.key, encode_buf_);
    return Status::OK();
  }

  // Adds the entries in key order: RocksDB inserts a sorted batch into its
  // memtable skiplist far faster than a random one (it reuses the last
  // insert position).
  Status add_sorted_to_batch(std::vector<Entry*>& entries, WriteBatch& batch) {
    std::sort(entries.begin(), entries.end(),
              [](const Entry* a, const Entry* b) { return a->key < b->key; });
    for (const Entry* e : entries) DF_RETURN_IF_ERROR(add_to_batch(*e, batch));
    return Status::OK();
  }

  // Evicts least recently used entries (never `keep`) down to 3/4 of the
  // budget, writing the dirty ones first; on a write error nothing is evicted.
  Status evict_if_over_budget(const Entry* keep) {
    if (bytes_ <= options_.memory_budget_bytes) return Status::OK();
    const size_t target = options_.memory_budget_bytes / 4 * 3;
    size_t bytes = bytes_;
    Entry* stop = lru_.prev;  // walk from the least recent end
    size_t count = 0;
    victims_.clear();
    while (bytes > target && stop != &lru_ && stop != keep) {
      if (stop->dirty) victims_.push_back(stop);
      bytes -= stop->charge;
      stop = stop->prev;
      ++count;
    }
    if (!victims_.empty()) {
      WriteBatch batch;
      Status s = add_sorted_to_batch(victims_, batch);
      if (s.ok()) s = store_.write(batch);
      victims_.clear();
      DF_RETURN_IF_ERROR(s);
      stats_.evicted_dirty += batch.size();
    }
    stats_.evictions += count;
    for (Entry* e = lru_.prev; e != stop;) {
      Entry* prev = e->prev;
      erase(e);
      e = prev;
    }
    return Status::OK();
  }

  // Cached entries (tombstones too) with begin <= key < end. Walks the map
  // unless the range lies below every cached key; refreshes lower_bound_.
  std::vector<Entry*> cached_in_range(std::string_view begin, std::string_view end) {
    std::vector<Entry*> out;
    if (map_.empty() || (!end.empty() && end <= std::string_view(lower_bound_))) return out;
    bool first = true;
    for (auto& [k, e] : map_) {
      std::string_view key = k;
      if (first || key < std::string_view(lower_bound_)) {
        lower_bound_.assign(key.data(), key.size());
        first = false;
      }
      if (key >= begin && (end.empty() || key < end)) out.push_back(&e);
    }
    return out;
  }

  KvStore& store_;
  Codec codec_;
  Options options_;
  Map map_;
  Entry lru_;                // sentinel of the circular LRU list
  size_t bytes_ = 0;         // sum of entry charges
  std::string lower_bound_;  // <= every cached key (when map_ is not empty)
  std::string encode_buf_;
  std::vector<Entry*> victims_;  // scratch for eviction and flush
  Stats stats_;
};

}  // namespace df::state
