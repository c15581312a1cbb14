#include "engine/server/disaster_recovery.h"

#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <utility>

#include "engine/checkpoint/history.h"
#include "engine/checkpoint/manifest.h"
#include "engine/core/log.h"
#include "engine/server/metadata_store.h"

namespace df::server {

namespace {

using nlohmann::json;
namespace fs = std::filesystem;

constexpr const char* kComponent = "backup";
constexpr std::string_view kDumpHeader = "dataflow-metadata-dump 1\n";
constexpr int64_t kDayMs = 24 * 3600 * 1000;
// A checkpoint the coordinator's retention removed while being copied is
// retried with the then-current one this many times in all.
constexpr int kCheckpointAttempts = 3;

std::string backup_prefix(const std::string& id) { return "backups/" + id + "/"; }
std::string backup_manifest_key(const std::string& id) {
  return backup_prefix(id) + "manifest.json";
}

// "2026-11-21T18:36:00.123Z" -> "20261121T183600123Z": sorts by time, and is
// a plain file name.
std::string backup_id_for(int64_t ms) {
  std::string id;
  for (char c : format_timestamp(ms)) {
    if (c != '-' && c != ':' && c != '.') id += c;
  }
  return id;
}

Status from_rocksdb(const rocksdb::Status& s, const std::string& what) {
  return s.ok() ? Status::OK() : Status::io_error(what + ": " + s.ToString());
}

// Every key and value of the RocksDB in `db_dir`, read through a secondary
// instance (allowed while the server holds the primary) after it caught up:
// one consistent point in time. Records: "<key size> <value size>\n<key><value>".
Result<std::string> dump_metadata(const std::string& db_dir, const std::string& secondary_dir) {
  std::error_code ec;
  fs::remove_all(secondary_dir, ec);
  fs::create_directories(secondary_dir, ec);
  rocksdb::Options options;
  options.max_open_files = -1;  // required by secondary instances
  rocksdb::DB* raw = nullptr;
  DF_RETURN_IF_ERROR(
      from_rocksdb(rocksdb::DB::OpenAsSecondary(options, db_dir, secondary_dir, &raw),
                   "cannot open the metadata store in " + db_dir + " to back it up"));
  std::unique_ptr<rocksdb::DB> db(raw);
  DF_RETURN_IF_ERROR(from_rocksdb(db->TryCatchUpWithPrimary(), "metadata store catch-up"));
  std::string out(kDumpHeader);
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    out += std::to_string(it->key().size()) + " " + std::to_string(it->value().size()) + "\n";
    out.append(it->key().data(), it->key().size());
    out.append(it->value().data(), it->value().size());
  }
  DF_RETURN_IF_ERROR(from_rocksdb(it->status(), "metadata store scan"));
  it.reset();
  db.reset();
  fs::remove_all(secondary_dir, ec);
  return out;
}

// Writes a dump into a new RocksDB in `db_dir`; returns the number of keys.
Result<uint64_t> load_metadata(std::string_view dump, const std::string& db_dir) {
  const auto bad = [] { return Status::data_error("the backup's metadata.dump is truncated"); };
  if (!dump.starts_with(kDumpHeader)) {
    return Status::data_error("the backup's metadata.dump is not a dataflow metadata dump");
  }
  std::error_code ec;
  fs::create_directories(db_dir, ec);
  rocksdb::Options options;
  options.create_if_missing = true;
  options.error_if_exists = true;
  rocksdb::DB* raw = nullptr;
  DF_RETURN_IF_ERROR(from_rocksdb(rocksdb::DB::Open(options, db_dir, &raw),
                                  "cannot create the metadata store in " + db_dir));
  std::unique_ptr<rocksdb::DB> db(raw);
  rocksdb::WriteBatch batch;
  uint64_t keys = 0;
  size_t pos = kDumpHeader.size();
  while (pos < dump.size()) {
    const size_t eol = dump.find('\n', pos);
    if (eol == std::string_view::npos) return bad();
    size_t key_size = 0;
    size_t value_size = 0;
    if (std::sscanf(std::string(dump.substr(pos, eol - pos)).c_str(), "%zu %zu", &key_size,
                    &value_size) != 2 ||
        dump.size() - (eol + 1) < key_size + value_size) {
      return bad();
    }
    batch.Put(rocksdb::Slice(dump.data() + eol + 1, key_size),
              rocksdb::Slice(dump.data() + eol + 1 + key_size, value_size));
    pos = eol + 1 + key_size + value_size;
    ++keys;
  }
  rocksdb::WriteOptions write;
  write.sync = true;
  DF_RETURN_IF_ERROR(from_rocksdb(db->Write(write, &batch), "metadata store write"));
  return keys;
}

// The checkpoint a run of `pipeline` resumes from, from its manifests alone:
// CheckpointCoordinator::restore's choice (_CURRENT's checkpoint; when its
// manifest is bad, the newest good older one; without _CURRENT, the newest
// good one). Both the backup and the restore go by it.
Result<std::optional<uint64_t>> resume_checkpoint(checkpoint::CheckpointStorage& storage,
                                                  const std::string& pipeline) {
  DF_ASSIGN_OR_RETURN(auto all, checkpoint::list_checkpoints(storage, pipeline));  // newest first
  const auto current =
      std::find_if(all.begin(), all.end(), [](const auto& c) { return c.current; });
  const auto from = current == all.end() ? all.begin() : current;
  for (auto it = from; it != all.end(); ++it) {
    if (it->valid) return std::optional<uint64_t>(it->id);
  }
  return std::optional<uint64_t>();
}

// Copies `key` from one storage to another through a local file (large
// SSTs never sit in memory); returns its size.
Result<uint64_t> copy_object(checkpoint::CheckpointStorage& from, const std::string& from_key,
                             checkpoint::CheckpointStorage& to, const std::string& to_key,
                             const std::string& scratch) {
  DF_RETURN_IF_ERROR(from.get_file(from_key, scratch));
  std::error_code ec;
  const uint64_t size = fs::file_size(scratch, ec);
  Status put = to.put_file(to_key, scratch);
  fs::remove(scratch, ec);
  DF_RETURN_IF_ERROR(put);
  return size;
}

// The keys of one checkpoint: every file its manifest names, the manifest,
// then _CURRENT (in that order: a reader of a partial copy finds no
// _CURRENT pointing at missing files).
Result<std::vector<std::string>> checkpoint_keys(checkpoint::CheckpointStorage& storage,
                                                 const std::string& pipeline, uint64_t id) {
  DF_ASSIGN_OR_RETURN(std::string text, storage.get_bytes(checkpoint::manifest_key(pipeline, id)));
  DF_ASSIGN_OR_RETURN(checkpoint::Manifest manifest, checkpoint::parse_manifest(text));
  std::vector<std::string> keys;
  std::set<std::string> seen;
  auto add = [&](const std::string& key) {
    if (seen.insert(key).second) keys.push_back(key);
  };
  if (manifest.pipeline_file) add(manifest.pipeline_file->key);
  for (const auto& task : manifest.tasks) {
    for (const auto& file : task.files) add(file.key);
  }
  add(checkpoint::manifest_key(pipeline, id));
  add(checkpoint::current_key(pipeline));
  return keys;
}

Result<json> read_backup_manifest(checkpoint::CheckpointStorage& storage, const std::string& id) {
  DF_ASSIGN_OR_RETURN(std::string text, storage.get_bytes(backup_manifest_key(id)));
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object() || j.value("format", "") != "dataflow-backup") {
    return Status::data_error("backup " + id + ": manifest.json is not a dataflow backup manifest");
  }
  return j;
}

BackupInfo info_from(const json& m) {
  BackupInfo info;
  info.id = m.value("id", "");
  info.created = m.value("created", "");
  info.created_ms = m.value("created_ms", int64_t{0});
  for (const json& p : m.value("pipelines", json::array())) {
    const json checkpoint = p.value("checkpoint", json());
    if (checkpoint.is_number_unsigned()) {
      info.pipelines.push_back(p.value("name", ""));
      info.checkpoints[p.value("name", "")] = checkpoint.get<uint64_t>();
    }
    info.bytes += p.value("bytes", uint64_t{0});
  }
  info.bytes += m.value("metadata", json::object()).value("size", uint64_t{0});
  return info;
}

// Complete backups (those with a manifest), newest first.
Result<std::vector<BackupInfo>> list_in(checkpoint::CheckpointStorage& storage) {
  DF_ASSIGN_OR_RETURN(auto objects, storage.list("backups/"));
  std::vector<std::string> ids;
  for (const auto& o : objects) {
    const std::string rest = o.key.substr(std::string("backups/").size());
    const size_t slash = rest.find('/');
    if (slash != std::string::npos && rest.substr(slash + 1) == "manifest.json") {
      ids.push_back(rest.substr(0, slash));
    }
  }
  std::sort(ids.rbegin(), ids.rend());
  std::vector<BackupInfo> out;
  for (const std::string& id : ids) {
    auto m = read_backup_manifest(storage, id);
    if (!m.ok()) {
      log_warn(kComponent, m.status().message());
      continue;
    }
    out.push_back(info_from(*m));
  }
  return out;
}

// Removes every object of a backup, its manifest first (so a half-removed
// backup is an incomplete one, never a broken complete one).
Status remove_backup(checkpoint::CheckpointStorage& storage, const std::string& id) {
  DF_RETURN_IF_ERROR(storage.remove(backup_manifest_key(id)));
  DF_ASSIGN_OR_RETURN(auto objects, storage.list(backup_prefix(id)));
  for (const auto& o : objects) DF_RETURN_IF_ERROR(storage.remove(o.key));
  return Status::OK();
}

}  // namespace

BackupService::BackupService(BackupOptions options, const MetadataStore& store)
    : options_(std::move(options)), store_(store) {}

BackupService::~BackupService() { stop(); }

void BackupService::start() {
  std::lock_guard<std::mutex> lock(mu_);
  if (thread_.joinable() || stopping_) return;
  thread_ = std::thread([this] { loop(); });
}

void BackupService::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cancel_.store(true);
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void BackupService::loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    if (wake_.wait_for(lock, options_.interval, [&] { return stopping_; })) break;
    lock.unlock();
    (void)backup_now();  // logged and counted inside
    lock.lock();
  }
}

Result<BackupInfo> BackupService::backup_now() {
  std::lock_guard<std::mutex> lock(backup_mu_);
  Result<BackupInfo> done = backup_locked();
  if (done.ok()) {
    succeeded_.fetch_add(1);
    last_success_ms_.store(done->created_ms);
    log_info(kComponent, "backup " + done->id + " stored in " + target_->describe() + " (" +
                             std::to_string(done->pipelines.size()) + " pipeline checkpoints, " +
                             std::to_string(done->bytes) + " bytes)");
  } else if (done.status().code() == StatusCode::kCancelled) {
    log_info(kComponent, "backup given up: " + done.status().message());
  } else {
    failed_.fetch_add(1);
    log_error(kComponent, "backup failed: " + done.status().message());
  }
  return done;
}

Result<BackupInfo> BackupService::backup_locked() {
  if (!target_) {
    DF_ASSIGN_OR_RETURN(target_, checkpoint::open_storage(options_.location));
  }
  const int64_t created_ms = now_ms();
  const std::string id = backup_id_for(created_ms);
  const std::string prefix = backup_prefix(id);
  std::error_code ec;
  fs::create_directories(options_.work_dir, ec);
  const std::string scratch = (fs::path(options_.work_dir) / "object").string();

  // The metadata first: a pipeline created after it is not in this backup,
  // and each checkpoint copied below is at least as new as the record.
  DF_ASSIGN_OR_RETURN(
      std::string dump,
      dump_metadata(options_.metadata_dir, (fs::path(options_.work_dir) / "secondary").string()));
  DF_RETURN_IF_ERROR(target_->put_bytes(prefix + "metadata.dump", dump));
  json manifest{{"format", "dataflow-backup"},
                {"version", 1},
                {"id", id},
                {"created", format_timestamp(created_ms)},
                {"created_ms", created_ms},
                {"metadata",
                 {{"key", prefix + "metadata.dump"},
                  {"size", dump.size()},
                  {"sha256", checkpoint::sha256_hex(dump)}}},
                {"pipelines", json::array()}};
  dump.clear();

  DF_ASSIGN_OR_RETURN(std::vector<PipelineRecord> pipelines, store_.pipelines());
  for (const PipelineRecord& p : pipelines) {
    json entry{{"name", p.name}, {"checkpoint", nullptr}, {"keys", json::array()}, {"bytes", 0}};
    Result<std::string> url = options_.checkpoint_storage_of(p.name);
    if (!url.ok()) {
      log_warn(kComponent,
               "pipeline " + p.name + ": no checkpoint backed up: " + url.status().message());
      manifest["pipelines"].push_back(std::move(entry));
      continue;
    }
    entry["checkpoint_storage"] = *url;
    entry["server_default"] = *url == options_.default_checkpoint_storage;
    auto& source = sources_[*url];
    if (!source) {
      DF_ASSIGN_OR_RETURN(source, checkpoint::open_storage(*url));
    }
    // The coordinator keeps running: its retention may remove the current
    // checkpoint while it is copied; then the newer current one is taken.
    Status copied = Status::OK();
    for (int attempt = 0; attempt < kCheckpointAttempts; ++attempt) {
      DF_ASSIGN_OR_RETURN(std::optional<uint64_t> current, resume_checkpoint(*source, p.name));
      if (!current) break;
      uint64_t bytes = 0;
      copied = [&]() -> Status {
        DF_ASSIGN_OR_RETURN(std::vector<std::string> keys,
                            checkpoint_keys(*source, p.name, *current));
        for (const std::string& key : keys) {
          if (cancel_.load()) return Status::cancelled("the server is stopping");
          if (key == checkpoint::current_key(p.name)) {
            // _CURRENT as of this copy, not as it may be now.
            DF_RETURN_IF_ERROR(
                target_->put_bytes(prefix + "checkpoints/" + key, std::to_string(*current) + "\n"));
          } else {
            DF_ASSIGN_OR_RETURN(uint64_t size, copy_object(*source, key, *target_,
                                                           prefix + "checkpoints/" + key, scratch));
            bytes += size;
          }
        }
        entry["keys"] = keys;
        return Status::OK();
      }();
      if (copied.ok()) {
        entry["checkpoint"] = *current;
        entry["bytes"] = bytes;
        break;
      }
      if (copied.code() != StatusCode::kNotFound) break;
    }
    DF_RETURN_IF_ERROR(copied);
    manifest["pipelines"].push_back(std::move(entry));
  }
  DF_RETURN_IF_ERROR(target_->put_bytes(backup_manifest_key(id), manifest.dump(2) + "\n"));
  BackupInfo info = info_from(manifest);

  // Retention: older than retention_days goes, but never the newest backup.
  if (options_.retention_days > 0) {
    const int64_t cutoff = created_ms - options_.retention_days * kDayMs;
    DF_ASSIGN_OR_RETURN(std::vector<BackupInfo> all, list_in(*target_));
    for (size_t i = 1; i < all.size(); ++i) {
      if (all[i].created_ms >= cutoff) continue;
      if (Status s = remove_backup(*target_, all[i].id); !s.ok()) {
        log_warn(kComponent, "cannot remove expired backup " + all[i].id + ": " + s.message());
      } else {
        log_info(kComponent, "removed backup " + all[i].id + " (older than " +
                                 std::to_string(options_.retention_days) + " days)");
      }
    }
  }
  return info;
}

metrics::Registry::CollectorId add_backup_collector(metrics::Registry& registry,
                                                    const BackupService* service) {
  return registry.add_collector([service](metrics::MetricsWriter& out) {
    out.gauge("dataflow_backup_last_success_timestamp_seconds",
              "Unix time of the last successful disaster-recovery backup (0: none yet)")
        .sample({}, service ? static_cast<double>(service->last_success_ms()) / 1000.0 : 0.0);
    auto total = out.counter("dataflow_backups_total",
                             "Disaster-recovery backups by result (success, failure)", {"result"});
    total.sample({"success"}, service ? static_cast<double>(service->succeeded()) : 0.0);
    total.sample({"failure"}, service ? static_cast<double>(service->failed()) : 0.0);
  });
}

Result<std::vector<BackupInfo>> list_backups(const std::string& location) {
  DF_ASSIGN_OR_RETURN(auto storage, checkpoint::open_storage(location));
  return list_in(*storage);
}

Result<RestoreResult> restore_backup(const RestoreOptions& options) {
  const fs::path data_dir = fs::absolute(options.data_dir);
  const fs::path metadata_dir = data_dir / "metadata";
  std::error_code ec;
  if (fs::exists(metadata_dir, ec)) {
    return Status::failed_precondition(
        metadata_dir.string() +
        " already exists: restore into a new data directory (or move this one away)");
  }
  DF_ASSIGN_OR_RETURN(auto from, checkpoint::open_storage(options.from));
  std::string id = options.backup_id;
  if (id.empty()) {
    DF_ASSIGN_OR_RETURN(auto all, list_in(*from));
    if (all.empty()) return Status::not_found("no complete backup in " + from->describe());
    id = all.front().id;
  }
  auto read = read_backup_manifest(*from, id);
  if (!read.ok() && read.status().code() == StatusCode::kNotFound) {
    return Status::not_found("no complete backup " + id + " in " + from->describe());
  }
  DF_ASSIGN_OR_RETURN(json manifest, std::move(read));
  RestoreResult result;
  result.backup = info_from(manifest);

  const json metadata = manifest.value("metadata", json::object());
  DF_ASSIGN_OR_RETURN(std::string dump, from->get_bytes(metadata.value("key", "")));
  if (checkpoint::sha256_hex(dump) != metadata.value("sha256", "")) {
    return Status::data_error("backup " + id + ": metadata.dump has a sha256 mismatch");
  }

  // Checkpoints first, the metadata store last: a failed restore leaves no
  // store behind, so it can simply be run again.
  fs::create_directories(data_dir, ec);
  if (ec) return Status::io_error("cannot create " + data_dir.string() + ": " + ec.message());
  const std::string scratch = (data_dir / ".restore-object").string();
  const std::string default_storage = options.checkpoint_storage.empty()
                                          ? (data_dir / "checkpoints").string()
                                          : options.checkpoint_storage;
  std::map<std::string, std::unique_ptr<checkpoint::CheckpointStorage>> targets;
  const std::string prefix = backup_prefix(id) + "checkpoints/";
  for (const json& p : manifest.value("pipelines", json::array())) {
    PipelineRestore& entry = result.pipelines.emplace_back();
    entry.name = p.value("name", "");
    const json backed_up = p.value("checkpoint", json());
    if (backed_up.is_number_unsigned()) entry.backed_up = backed_up.get<uint64_t>();
    if (!p.contains("checkpoint_storage")) continue;  // unknown at backup time: left alone
    const std::string url =
        p.value("server_default", false) ? default_storage : p.value("checkpoint_storage", "");
    auto& target = targets[url];
    if (!target) {
      DF_ASSIGN_OR_RETURN(target, checkpoint::open_storage(url));
    }
    entry.storage = target->describe();
    DF_ASSIGN_OR_RETURN(std::optional<uint64_t> present, resume_checkpoint(*target, entry.name));
    if (present && (!entry.backed_up || *present >= *entry.backed_up)) {
      entry.action = PipelineRestore::Action::kKept;
    } else if (entry.backed_up) {
      for (const json& key : p.value("keys", json::array())) {
        const std::string k = key.get<std::string>();
        DF_RETURN_IF_ERROR(copy_object(*from, prefix + k, *target, k, scratch).status());
      }
      entry.action = PipelineRestore::Action::kRestored;
    }
    // Read back, so what the operator is told is what the run will take.
    DF_ASSIGN_OR_RETURN(entry.resume_from, resume_checkpoint(*target, entry.name));
  }
  DF_ASSIGN_OR_RETURN(result.metadata_keys, load_metadata(dump, metadata_dir.string()));
  DF_ASSIGN_OR_RETURN(auto store, MetadataStore::open(metadata_dir.string()));
  DF_ASSIGN_OR_RETURN(std::vector<PipelineRecord> records, store->pipelines());
  for (PipelineRestore& entry : result.pipelines) {
    for (const PipelineRecord& r : records) {
      if (r.name == entry.name) entry.resumes_on_start = r.desired_running;
    }
  }
  return result;
}

std::string describe(const PipelineRestore& restore) {
  std::string line = restore.name + ": ";
  if (restore.storage.empty()) {
    return line +
           "its checkpoint storage is not in the backup; its next run resumes from the current "
           "checkpoint of the storage its pipeline file names, if any";
  }
  line += restore.resume_from ? "resumes from checkpoint " + std::to_string(*restore.resume_from)
                              : "starts without state";
  line +=
      restore.resumes_on_start ? " when the server starts; " : " once started (it was stopped); ";
  switch (restore.action) {
    case PipelineRestore::Action::kRestored:
      return line + "restored from the backup into " + restore.storage;
    case PipelineRestore::Action::kKept:
      line += "kept in " + restore.storage;
      if (!restore.backed_up) return line + ", the backup has none";
      return line + (restore.resume_from == restore.backed_up ? ", the same as" : ", newer than") +
             " the backup's " + std::to_string(*restore.backed_up);
    case PipelineRestore::Action::kNone:
      break;
  }
  return line + "no checkpoint in the backup or in " + restore.storage;
}

}  // namespace df::server
