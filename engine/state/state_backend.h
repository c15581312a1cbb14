// Keyed state of one operator subtask: an ordered byte store with batched
// writes, backed by RocksDB (state larger than memory) or by memory (tests).
//
// Ownership and threading: a stateful operator opens its own store in open()
// from OperatorContext::state_dir() and owns it; the scheduler runs the
// operator on one thread at a time, so a store is never used concurrently and
// needs no locking. RocksDB instances of one process share one block cache
// (set_block_cache_bytes), so memory stays bounded however many tasks run.
//
// Layout choice: one RocksDB per stateful subtask (not one per pipeline with
// column families): tasks never contend on one DB's write path, each
// subtask's snapshot is one RocksDB checkpoint of its own directory, and a
// subtask's state is removed by removing its directory.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/core/status.h"

namespace df::state {

// Puts and removes applied atomically by KvStore::write.
class WriteBatch {
 public:
  void put(std::string_view key, std::string_view value) {
    ops_.push_back({std::string(key), std::string(value), false});
  }
  void remove(std::string_view key) { ops_.push_back({std::string(key), {}, true}); }
  bool empty() const { return ops_.empty(); }
  size_t size() const { return ops_.size(); }
  void clear() { ops_.clear(); }

  struct Op {
    std::string key;
    std::string value;
    bool is_remove;
  };
  const std::vector<Op>& ops() const { return ops_; }

 private:
  std::vector<Op> ops_;
};

// Visits one entry; return false to stop the scan. The views are valid only
// during the call, and the function must not write to the store it scans.
using ScanFn = std::function<bool(std::string_view key, std::string_view value)>;

class KvStore {
 public:
  virtual ~KvStore() = default;
  virtual Result<std::optional<std::string>> get(std::string_view key) = 0;
  virtual Status put(std::string_view key, std::string_view value) = 0;
  virtual Status remove(std::string_view key) = 0;
  virtual Status write(const WriteBatch& batch) = 0;
  // Entries with begin <= key < end in byte order (end empty: to the last key).
  virtual Status scan(std::string_view begin, std::string_view end, const ScanFn& fn) = 0;
  virtual Status remove_range(std::string_view begin, std::string_view end) = 0;
  // Approximate bytes on disk and in memory tables, for metrics.
  virtual uint64_t approximate_size() = 0;

  // --- Added for the typed layer and checkpoints (defaults for simple stores). ---

  // Looks up several keys at once; values[i] answers keys[i]. RocksDB does
  // this with one MultiGet.
  virtual Status multi_get(const std::vector<std::string_view>& keys,
                           std::vector<std::optional<std::string>>& values);
  // Makes every write so far durable in the store's own files (RocksDB:
  // flushes memtables; WAL is off, see rocksdb_store.cc). No-op in memory.
  virtual Status flush() { return Status::OK(); }
  // Writes a consistent snapshot of the store into `dir`, which must not
  // exist yet (RocksDB: a checkpoint of hard-linked SST files plus the
  // manifest; memtables are flushed first). kUnimplemented for memory.
  virtual Status checkpoint_to(const std::string& dir) {
    (void)dir;
    return Status::unimplemented("this state store cannot write checkpoints");
  }
};

// Entries to add to a store checkpoint after it was taken (add_to_checkpoint):
// puts and removes gathered in any order, their bytes in one arena (no
// allocation per entry). Not thread-safe; typically filled on the task
// thread or on the I/O thread that then calls add_to_checkpoint.
class CheckpointEntries {
 public:
  void put(std::string_view key, std::string_view value) { add(key, value, false); }
  void remove(std::string_view key) { add(key, {}, true); }
  // Room for `count` more entries of `bytes` more key and value bytes in
  // all, so that adding them grows the arena once. A hint: adding more is
  // fine, only slower.
  void reserve(size_t count, size_t bytes);
  bool empty() const { return entries_.empty(); }
  size_t size() const { return entries_.size(); }
  // Key and value bytes held.
  size_t bytes() const { return arena_.size(); }

  struct Entry {
    std::string_view key;
    std::string_view value;
    bool is_remove;
  };
  // Calls fn(entry) -> Status for each entry in ascending key order and
  // returns the first error fn returns. Entries added in order are walked
  // where they are; otherwise an index of them is sorted first. A key that
  // appears twice is kInvalidArgument (naming its size) before fn is called.
  template <typename Fn>
  Status for_each_sorted(Fn&& fn) const;
  // The entries in ascending key order, as for_each_sorted walks them.
  Result<std::vector<Entry>> sorted() const;

 private:
  struct Slot {
    size_t offset;
    uint32_t key_size;
    uint32_t value_size;
    bool is_remove;
  };
  void add(std::string_view key, std::string_view value, bool is_remove);
  Entry entry(const Slot& s) const {
    const char* p = arena_.data() + s.offset;
    return {std::string_view(p, s.key_size), std::string_view(p + s.key_size, s.value_size),
            s.is_remove};
  }
  // The slots' indexes in ascending key order (entries not added in order);
  // kInvalidArgument when a key appears twice.
  Result<std::vector<uint32_t>> sorted_order() const;

  std::string arena_;
  std::vector<Slot> entries_;
  bool in_order_ = true;  // every key so far was greater than the one before
};

template <typename Fn>
Status CheckpointEntries::for_each_sorted(Fn&& fn) const {
  if (in_order_) {
    for (const Slot& s : entries_) DF_RETURN_IF_ERROR(fn(entry(s)));
    return Status::OK();
  }
  DF_ASSIGN_OR_RETURN(std::vector<uint32_t> order, sorted_order());
  for (uint32_t i : order) DF_RETURN_IF_ERROR(fn(entry(entries_[i])));
  return Status::OK();
}

// Adds `entries` to the store checkpoint in `dir` (made by
// KvStore::checkpoint_to) as if they had been written after everything in
// it, without a memtable: they are sorted into one table file (RocksDB:
// SstFileWriter) kept next to the checkpoint's files, which open_rocksdb
// ingests when it opens the checkpoint (a restore, `state export`). Touches
// only that file, so it may run on an I/O thread while the store the
// checkpoint came from goes on working; that is how an operator moves the
// cost of writing its in-memory state off the barrier
// (SnapshotContext::defer). Empty entries change nothing; a second call on
// the same checkpoint is kAlreadyExists. Checkpoints exist for RocksDB only.
Status add_to_checkpoint(const std::string& dir, const CheckpointEntries& entries);

struct RocksDbOptions {
  std::string path;                       // the subtask's directory; created if missing
  size_t write_buffer_bytes = 16u << 20;  // per memtable
};

// Opens (or creates) a RocksDB store at options.path, ingesting entries a
// checkpoint there was given by add_to_checkpoint.
Result<std::unique_ptr<KvStore>> open_rocksdb(const RocksDbOptions& options);
// A store in memory (std::map); for tests and `state.backend: memory`.
std::unique_ptr<KvStore> open_memory();
// Opens RocksDB at `dir`, or memory when `dir` is empty (see OperatorContext::state_dir).
Result<std::unique_ptr<KvStore>> open_store(const std::string& dir);

// Size of the block cache all RocksDB stores of this process share
// (default 64 MiB). Best called before the first store is opened; a later call
// resizes the shared cache in place.
void set_block_cache_bytes(size_t bytes);

}  // namespace df::state
