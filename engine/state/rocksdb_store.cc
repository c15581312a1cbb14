// KvStore over RocksDB: one DB per stateful subtask (see state_backend.h).
//
// Durability model: writes go with the write-ahead log disabled. Keyed state
// is recovered from checkpoints (DESIGN §4), never from a crashed DB
// directory, so a WAL would only double the write volume: whatever was
// written after the last checkpoint is replayed from the sources anyway.
// A checkpoint (checkpoint_to) and flush() make state durable by flushing
// memtables to SST files; closing the store flushes too, so a cleanly closed
// store reopens with everything written.
#include <algorithm>
#include <atomic>
#include <filesystem>
#include <mutex>

#include <rocksdb/cache.h>
#include <rocksdb/convenience.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/options.h>
#include <rocksdb/sst_file_writer.h>
#include <rocksdb/table.h>
#include <rocksdb/utilities/checkpoint.h>
#include <rocksdb/write_batch.h>

#include "engine/core/log.h"
#include "engine/state/state_backend.h"

namespace df::state {
namespace {

constexpr size_t kDefaultBlockCacheBytes = 64u << 20;
// add_to_checkpoint's table file in a checkpoint directory. Not named *.sst:
// an uploader may take a name, size and inode it saw before for the same
// file (SSTs never change), but this file's name repeats across checkpoints
// and its inode is freed once the directory is gone. RocksDB ignores it.
constexpr const char* kAddedEntriesFile = "added-entries.sstable";

std::mutex g_cache_mu;
size_t g_cache_bytes = kDefaultBlockCacheBytes;  // guarded by g_cache_mu
std::shared_ptr<rocksdb::Cache> g_block_cache;   // guarded by g_cache_mu; created lazily

std::shared_ptr<rocksdb::Cache> shared_block_cache() {
  std::lock_guard<std::mutex> lock(g_cache_mu);
  if (!g_block_cache) {
    rocksdb::LRUCacheOptions co;
    co.capacity = g_cache_bytes;
    co.num_shard_bits = -1;
    co.strict_capacity_limit = false;  // a full cache evicts instead of failing reads
    // Index and filter blocks go to the high-priority half, so data blocks
    // never push them out (re-reading them per lookup is what makes a small
    // cache slow).
    co.high_pri_pool_ratio = 0.5;
    g_block_cache = rocksdb::NewLRUCache(co);
  }
  return g_block_cache;
}

Status from_rocks(const rocksdb::Status& s, std::string_view what) {
  if (s.ok()) return Status::OK();
  std::string msg = std::string(what) + ": " + s.ToString();
  if (s.IsNoSpace() || s.IsMemoryLimit()) return Status::resource_exhausted(std::move(msg));
  // A corrupt state file is a storage failure, not one bad record: reported
  // as an I/O error so it is never skipped like a per-row DataError.
  if (s.IsCorruption() || s.IsIOError()) return Status::io_error(std::move(msg));
  if (s.IsNotFound()) return Status::not_found(std::move(msg));
  if (s.IsInvalidArgument()) return Status::invalid(std::move(msg));
  if (s.IsNotSupported()) return Status::unimplemented(std::move(msg));
  if (s.IsBusy() || s.IsTryAgain() || s.IsTimedOut() || s.IsIncomplete()) {
    return Status::unavailable(std::move(msg));
  }
  if (s.IsShutdownInProgress() || s.IsAborted()) return Status::cancelled(std::move(msg));
  return Status::internal(std::move(msg));
}

rocksdb::Slice slice(std::string_view s) { return rocksdb::Slice(s.data(), s.size()); }
std::string_view view(const rocksdb::Slice& s) { return std::string_view(s.data(), s.size()); }

// L0 and the base level (hot, recently written state, read by point lookups
// that often miss the block cache) stay uncompressed, so a miss costs a read
// but no decompression; deeper levels use LZ4 (decompresses several times
// faster than Zstd), or Zstd when LZ4 is missing, or nothing.
void choose_compression(rocksdb::Options& o) {
  auto supported = rocksdb::GetSupportedCompressions();
  auto has = [&](rocksdb::CompressionType t) {
    return std::find(supported.begin(), supported.end(), t) != supported.end();
  };
  rocksdb::CompressionType deep = rocksdb::kNoCompression;
  if (has(rocksdb::kLZ4Compression)) {
    deep = rocksdb::kLZ4Compression;
  } else if (has(rocksdb::kZSTD)) {
    deep = rocksdb::kZSTD;
  }
  o.compression = deep;
  o.compression_per_level = {rocksdb::kNoCompression, rocksdb::kNoCompression, deep};
}

rocksdb::Options make_options(const RocksDbOptions& in) {
  rocksdb::Options o;
  o.create_if_missing = true;
  o.write_buffer_size = in.write_buffer_bytes;
  o.max_write_buffer_number = 2;
  o.target_file_size_base = std::max<uint64_t>(in.write_buffer_bytes, 8u << 20);
  o.max_bytes_for_level_base = 4 * o.target_file_size_base;
  o.level_compaction_dynamic_level_bytes = true;
  o.max_background_jobs = 2;  // per DB; the env's thread pools are process-wide
  o.max_open_files = 256;
  // RocksDB's own LOG: small and rotated, it is not state.
  // A bloom filter per memtable: operators look up many keys that were never
  // written (the first event of a key or window), which then skip the skiplist.
  o.memtable_whole_key_filtering = true;
  o.memtable_prefix_bloom_size_ratio = 0.02;
  o.max_log_file_size = 1u << 20;
  o.keep_log_file_num = 2;
  choose_compression(o);

  rocksdb::BlockBasedTableOptions t;
  t.block_cache = shared_block_cache();
  t.block_size = 4 * 1024;  // point lookups: a cache miss reads one small block
  t.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  // Index and filter blocks live in (and are bounded by) the shared cache, at
  // high priority. They are partitioned: a lookup loads one small partition,
  // not a filter for the whole file; the top-level index stays pinned.
  t.cache_index_and_filter_blocks = true;
  t.cache_index_and_filter_blocks_with_high_priority = true;
  t.pin_l0_filter_and_index_blocks_in_cache = true;
  t.pin_top_level_index_and_filter = true;
  t.index_type = rocksdb::BlockBasedTableOptions::kTwoLevelIndexSearch;
  t.partition_filters = true;
  t.metadata_block_size = 4096;
  t.format_version = 5;
  o.table_factory.reset(rocksdb::NewBlockBasedTableFactory(t));
  return o;
}

// Options of add_to_checkpoint's file. It is written on every checkpoint
// but read only after a restore, which ingests it; compaction later rewrites
// its entries with the store's own table options. So it is written as
// cheaply as RocksDB allows: no filter (a lookup that misses reads an index
// and a block until then), a one-level index, larger blocks and no
// compression (like the store's own L0 files). With the store's options
// (bloom filter, partitioned index, LZ4 per 4 KiB block) RocksDB spent about
// 3x the CPU on it (Nexmark q5: 300 K window groups per checkpoint). Keys
// are compared as the store compares them (bytewise), which ingestion
// requires.
rocksdb::Options added_entries_options() {
  rocksdb::Options o;
  o.compression = rocksdb::kNoCompression;
  o.bottommost_compression = rocksdb::kDisableCompressionOption;
  rocksdb::BlockBasedTableOptions t;
  t.block_size = 16 * 1024;
  t.index_type = rocksdb::BlockBasedTableOptions::kBinarySearch;
  t.filter_policy = nullptr;
  t.no_block_cache = true;  // the writer reads nothing back
  t.format_version = 5;
  o.table_factory.reset(rocksdb::NewBlockBasedTableFactory(t));
  return o;
}

class RocksDbStore final : public KvStore {
 public:
  RocksDbStore(std::unique_ptr<rocksdb::DB> db, std::string path)
      : db_(std::move(db)), path_(std::move(path)) {
    write_options_.disableWAL = true;  // see the file comment
  }

  ~RocksDbStore() override {
    // Without a WAL, memtables must reach SST files before the DB closes.
    Status s = flush();
    if (s.ok()) s = from_rocks(db_->Close(), "close state store");
    if (!s.ok()) log_error("state", "closing " + path_ + ": " + s.to_string());
  }

  Result<std::optional<std::string>> get(std::string_view key) override {
    std::string value;
    rocksdb::Status s = db_->Get(read_options_, slice(key), &value);
    if (s.IsNotFound()) return std::optional<std::string>();
    DF_RETURN_IF_ERROR(from_rocks(s, "state get"));
    return std::optional<std::string>(std::move(value));
  }

  Status multi_get(const std::vector<std::string_view>& keys,
                   std::vector<std::optional<std::string>>& values) override {
    const size_t n = keys.size();
    std::vector<rocksdb::Slice> slices;
    slices.reserve(n);
    for (std::string_view k : keys) slices.push_back(slice(k));
    std::vector<rocksdb::PinnableSlice> pinned(n);
    std::vector<rocksdb::Status> statuses(n);
    db_->MultiGet(read_options_, db_->DefaultColumnFamily(), n, slices.data(), pinned.data(),
                  statuses.data());
    values.clear();
    values.resize(n);
    for (size_t i = 0; i < n; ++i) {
      if (statuses[i].IsNotFound()) continue;
      DF_RETURN_IF_ERROR(from_rocks(statuses[i], "state multi_get"));
      values[i].emplace(pinned[i].data(), pinned[i].size());
    }
    return Status::OK();
  }

  Status put(std::string_view key, std::string_view value) override {
    return from_rocks(db_->Put(write_options_, slice(key), slice(value)), "state put");
  }

  Status remove(std::string_view key) override {
    return from_rocks(db_->Delete(write_options_, slice(key)), "state remove");
  }

  Status write(const WriteBatch& batch) override {
    if (batch.empty()) return Status::OK();
    rocksdb::WriteBatch wb;
    for (const auto& op : batch.ops()) {
      rocksdb::Status s =
          op.is_remove ? wb.Delete(slice(op.key)) : wb.Put(slice(op.key), slice(op.value));
      DF_RETURN_IF_ERROR(from_rocks(s, "state write batch"));
    }
    return from_rocks(db_->Write(write_options_, &wb), "state write");
  }

  Status scan(std::string_view begin, std::string_view end, const ScanFn& fn) override {
    rocksdb::ReadOptions ro = read_options_;
    rocksdb::Slice upper = slice(end);  // must outlive the iterator
    if (!end.empty()) ro.iterate_upper_bound = &upper;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro));
    for (it->Seek(slice(begin)); it->Valid(); it->Next()) {
      if (!fn(view(it->key()), view(it->value()))) break;
    }
    return from_rocks(it->status(), "state scan");
  }

  Status remove_range(std::string_view begin, std::string_view end) override {
    if (!end.empty()) {
      if (end <= begin) return Status::OK();
      return from_rocks(
          db_->DeleteRange(write_options_, db_->DefaultColumnFamily(), slice(begin), slice(end)),
          "state remove_range");
    }
    // Open end: DeleteRange needs an exclusive end, so delete up to the last
    // key and the last key itself, in one batch.
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(read_options_));
    it->SeekToLast();
    DF_RETURN_IF_ERROR(from_rocks(it->status(), "state remove_range"));
    if (!it->Valid() || view(it->key()) < begin) return Status::OK();
    std::string last(view(it->key()));
    it.reset();
    rocksdb::WriteBatch wb;
    DF_RETURN_IF_ERROR(from_rocks(wb.DeleteRange(slice(begin), slice(last)), "remove_range"));
    DF_RETURN_IF_ERROR(from_rocks(wb.Delete(slice(last)), "remove_range"));
    return from_rocks(db_->Write(write_options_, &wb), "state remove_range");
  }

  uint64_t approximate_size() override {
    uint64_t sst = 0;
    uint64_t mem = 0;
    db_->GetIntProperty(rocksdb::DB::Properties::kTotalSstFilesSize, &sst);
    db_->GetIntProperty(rocksdb::DB::Properties::kCurSizeAllMemTables, &mem);
    return sst + mem;
  }

  Status flush() override {
    rocksdb::FlushOptions fo;
    fo.wait = true;
    return from_rocks(db_->Flush(fo), "state flush");
  }

  Status checkpoint_to(const std::string& dir) override {
    rocksdb::Checkpoint* raw = nullptr;
    DF_RETURN_IF_ERROR(from_rocks(rocksdb::Checkpoint::Create(db_.get(), &raw), "checkpoint"));
    std::unique_ptr<rocksdb::Checkpoint> cp(raw);
    // log_size_for_flush = 0: always flush memtables first (there is no WAL
    // to carry unflushed writes into the checkpoint).
    return from_rocks(cp->CreateCheckpoint(dir, /*log_size_for_flush=*/0), "checkpoint to " + dir);
  }

 private:
  std::unique_ptr<rocksdb::DB> db_;
  std::string path_;
  rocksdb::ReadOptions read_options_;
  rocksdb::WriteOptions write_options_;
};

}  // namespace

Status add_to_checkpoint(const std::string& dir, const CheckpointEntries& entries) {
  if (entries.empty()) return Status::OK();
  std::error_code ec;
  if (!std::filesystem::exists(dir + "/CURRENT", ec)) {
    return Status::invalid("cannot add entries to " + dir + ": it is not a store checkpoint");
  }
  const std::string file = dir + "/" + kAddedEntriesFile;
  if (std::filesystem::exists(file, ec)) {
    return Status::already_exists("the checkpoint " + dir + " already has added entries");
  }
  const std::string tmp = file + ".tmp";
  // The page cache keeps the file: the checkpoint's upload reads it next.
  rocksdb::SstFileWriter writer(rocksdb::EnvOptions(), added_entries_options(),
                                /*column_family=*/nullptr, /*invalidate_page_cache=*/false);
  const std::string what = "checkpoint entries file " + tmp;
  Status st = from_rocks(writer.Open(tmp), what);
  if (st.ok()) {
    // Walked in place (no sorted copy) when the entries were added in order.
    st = entries.for_each_sorted([&](const CheckpointEntries::Entry& e) {
      const rocksdb::Status put =
          e.is_remove ? writer.Delete(slice(e.key)) : writer.Put(slice(e.key), slice(e.value));
      return put.ok() ? Status::OK() : from_rocks(put, what);
    });
  }
  if (st.ok()) st = from_rocks(writer.Finish(), what);
  if (st.ok()) {
    std::filesystem::rename(tmp, file, ec);
    if (ec) st = Status::io_error("cannot rename " + tmp + ": " + ec.message());
  }
  if (!st.ok()) std::filesystem::remove(tmp, ec);
  return st;
}

void set_block_cache_bytes(size_t bytes) {
  std::lock_guard<std::mutex> lock(g_cache_mu);
  g_cache_bytes = bytes;
  if (g_block_cache) g_block_cache->SetCapacity(bytes);
}

Result<std::unique_ptr<KvStore>> open_rocksdb(const RocksDbOptions& options) {
  if (options.path.empty()) return Status::invalid("state store path is empty");
  std::error_code ec;
  std::filesystem::create_directories(options.path, ec);
  if (ec) return Status::io_error("cannot create state dir " + options.path + ": " + ec.message());
  rocksdb::DB* raw = nullptr;
  DF_RETURN_IF_ERROR(from_rocks(rocksdb::DB::Open(make_options(options), options.path, &raw),
                                "open state store " + options.path));
  auto db = std::unique_ptr<rocksdb::DB>(raw);
  // Entries add_to_checkpoint left next to a checkpoint's files join the
  // store now, newer than everything in it. The file is a hard link away
  // from being an SST of this DB (numbered by this DB, so no other file of
  // it ever has the same name); move_files removes it once it is in.
  const std::string added = options.path + "/" + kAddedEntriesFile;
  if (std::filesystem::exists(added, ec)) {
    rocksdb::IngestExternalFileOptions io;
    io.move_files = true;
    DF_RETURN_IF_ERROR(from_rocks(db->IngestExternalFile({added}, io),
                                  "add the checkpoint's entries to " + options.path));
  }
  return std::unique_ptr<KvStore>(std::make_unique<RocksDbStore>(std::move(db), options.path));
}

Result<std::unique_ptr<KvStore>> open_store(const std::string& dir) {
  if (dir.empty()) return open_memory();
  RocksDbOptions options;
  options.path = dir;
  return open_rocksdb(options);
}

}  // namespace df::state
