#include "engine/server/metadata_store.h"

#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "engine/core/time.h"

namespace df::server {

namespace {

using nlohmann::json;

std::string padded(uint64_t n) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "%020llu", static_cast<unsigned long long>(n));
  return buf;
}

std::string pipeline_key(const std::string& name) { return "pipelines/" + name; }
std::string versions_prefix(const std::string& name) { return "versions/" + name + "/"; }
std::string version_key(const std::string& name, uint64_t v) {
  return versions_prefix(name) + padded(v);
}
std::string run_key(const std::string& id) { return "runs/" + id; }
std::string events_prefix(const std::string& run) { return "events/" + run + "/"; }

Status from_rocksdb(const rocksdb::Status& s, const std::string& what) {
  if (s.ok()) return Status::OK();
  return Status::io_error("metadata store: cannot " + what + ": " + s.ToString());
}

Result<json> parse(const std::string& key, const std::string& value) {
  json j = json::parse(value, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return Status::data_error("metadata store: the value of " + key + " is not a JSON object");
  }
  return j;
}

json to_json(const PipelineRecord& r) {
  return {{"name", r.name},
          {"version", r.version},
          {"created_ms", r.created_ms},
          {"updated_ms", r.updated_ms},
          {"desired_running", r.desired_running},
          {"current_run", r.current_run}};
}

PipelineRecord pipeline_from(const json& j) {
  PipelineRecord r;
  r.name = j.value("name", "");
  r.version = j.value("version", uint64_t{0});
  r.created_ms = j.value("created_ms", int64_t{0});
  r.updated_ms = j.value("updated_ms", int64_t{0});
  r.desired_running = j.value("desired_running", false);
  r.current_run = j.value("current_run", "");
  return r;
}

json to_json(const VersionRecord& v) {
  return {{"pipeline", v.pipeline},
          {"version", v.version},
          {"spec", v.spec},
          {"format", v.format},
          {"created_ms", v.created_ms}};
}

VersionRecord version_from(const json& j) {
  VersionRecord v;
  v.pipeline = j.value("pipeline", "");
  v.version = j.value("version", uint64_t{0});
  v.spec = j.value("spec", "");
  v.format = j.value("format", "yaml");
  v.created_ms = j.value("created_ms", int64_t{0});
  return v;
}

std::optional<RunStatus> parse_run_status(std::string_view s) {
  for (RunStatus r : {RunStatus::kPending, RunStatus::kRunning, RunStatus::kSucceeded,
                      RunStatus::kFailed, RunStatus::kCancelled}) {
    if (run_status_name(r) == s) return r;
  }
  return std::nullopt;
}

json stored_json(const RunRecord& r) {
  json j{{"id", r.id},
         {"pipeline", r.pipeline},
         {"version", r.version},
         {"status", run_status_name(r.status)},
         {"started_ms", r.started_ms},
         {"checkpoints", r.checkpoints},
         {"restarts", r.restarts},
         {"error", r.error}};
  if (r.ended_ms) j["ended_ms"] = *r.ended_ms;
  if (r.last_checkpoint) j["last_checkpoint"] = *r.last_checkpoint;
  return j;
}

RunRecord run_from(const json& j) {
  RunRecord r;
  r.id = j.value("id", "");
  r.pipeline = j.value("pipeline", "");
  r.version = j.value("version", uint64_t{0});
  r.status = parse_run_status(j.value("status", "")).value_or(RunStatus::kFailed);
  r.started_ms = j.value("started_ms", int64_t{0});
  if (j.contains("ended_ms")) r.ended_ms = j["ended_ms"].get<int64_t>();
  r.checkpoints = j.value("checkpoints", uint64_t{0});
  if (j.contains("last_checkpoint")) r.last_checkpoint = j["last_checkpoint"].get<uint64_t>();
  r.restarts = j.value("restarts", uint64_t{0});
  r.error = j.value("error", "");
  return r;
}

}  // namespace

std::string_view run_status_name(RunStatus s) {
  switch (s) {
    case RunStatus::kPending:
      return "pending";
    case RunStatus::kRunning:
      return "running";
    case RunStatus::kSucceeded:
      return "succeeded";
    case RunStatus::kFailed:
      return "failed";
    case RunStatus::kCancelled:
      return "cancelled";
  }
  return "failed";
}

bool run_status_final(RunStatus s) {
  return s == RunStatus::kSucceeded || s == RunStatus::kFailed || s == RunStatus::kCancelled;
}

std::string run_to_json(const RunRecord& r) {
  json j{{"id", r.id},
         {"pipeline", r.pipeline},
         {"version", r.version},
         {"status", run_status_name(r.status)},
         {"started", format_timestamp(r.started_ms)},
         {"ended", nullptr},
         {"checkpoints", r.checkpoints},
         {"last_checkpoint", nullptr},
         {"restarts", r.restarts},
         {"error", nullptr}};
  if (r.ended_ms) j["ended"] = format_timestamp(*r.ended_ms);
  if (r.last_checkpoint) j["last_checkpoint"] = *r.last_checkpoint;
  if (!r.error.empty()) j["error"] = r.error;
  return j.dump();
}

MetadataStore::MetadataStore(std::string dir, std::unique_ptr<rocksdb::DB> db, size_t max_events)
    : dir_(std::move(dir)), db_(std::move(db)), max_events_(std::max<size_t>(1, max_events)) {}

MetadataStore::~MetadataStore() = default;

Result<std::unique_ptr<MetadataStore>> MetadataStore::open(const std::string& dir,
                                                           size_t max_events_per_run) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return Status::io_error("cannot create the metadata store directory " + dir + ": " +
                            ec.message());
  }
  rocksdb::Options options;
  options.create_if_missing = true;
  // Small and rarely written: keep its memory and file handles modest.
  options.max_open_files = 64;
  options.write_buffer_size = 4u << 20;
  options.keep_log_file_num = 2;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(options, dir, &raw);
  if (!s.ok()) {
    return Status::io_error("cannot open the metadata store in " + dir + ": " + s.ToString());
  }
  return std::unique_ptr<MetadataStore>(
      new MetadataStore(dir, std::unique_ptr<rocksdb::DB>(raw), max_events_per_run));
}

Result<std::optional<std::string>> MetadataStore::get(const std::string& key) const {
  std::string value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), key, &value);
  if (s.IsNotFound()) return std::optional<std::string>();
  DF_RETURN_IF_ERROR(from_rocksdb(s, "read " + key));
  return std::optional<std::string>(std::move(value));
}

Result<std::vector<std::pair<std::string, std::string>>> MetadataStore::scan(
    const std::string& prefix) const {
  std::vector<std::pair<std::string, std::string>> out;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    out.emplace_back(it->key().ToString(), it->value().ToString());
  }
  DF_RETURN_IF_ERROR(from_rocksdb(it->status(), "scan " + prefix));
  return out;
}

Result<PipelineRecord> MetadataStore::pipeline(const std::string& name) const {
  const std::string key = pipeline_key(name);
  DF_ASSIGN_OR_RETURN(auto value, get(key));
  if (!value) return Status::not_found("pipeline '" + name + "' does not exist");
  DF_ASSIGN_OR_RETURN(json j, parse(key, *value));
  return pipeline_from(j);
}

Result<std::vector<PipelineRecord>> MetadataStore::pipelines() const {
  DF_ASSIGN_OR_RETURN(auto rows, scan("pipelines/"));
  std::vector<PipelineRecord> out;
  for (const auto& [key, value] : rows) {
    DF_ASSIGN_OR_RETURN(json j, parse(key, value));
    out.push_back(pipeline_from(j));
  }
  return out;
}

Status MetadataStore::put_pipeline(const PipelineRecord& record) {
  return from_rocksdb(
      db_->Put(rocksdb::WriteOptions(), pipeline_key(record.name), to_json(record).dump()),
      "write pipeline " + record.name);
}

Status MetadataStore::put_version(const PipelineRecord& record, const VersionRecord& version) {
  rocksdb::WriteBatch batch;
  batch.Put(version_key(version.pipeline, version.version), to_json(version).dump());
  batch.Put(pipeline_key(record.name), to_json(record).dump());
  return from_rocksdb(db_->Write(rocksdb::WriteOptions(), &batch),
                      "write version " + std::to_string(version.version) + " of " + record.name);
}

Result<VersionRecord> MetadataStore::version(const std::string& name, uint64_t version) const {
  const std::string key = version_key(name, version);
  DF_ASSIGN_OR_RETURN(auto value, get(key));
  if (!value) {
    return Status::not_found("pipeline '" + name + "' has no version " + std::to_string(version));
  }
  DF_ASSIGN_OR_RETURN(json j, parse(key, *value));
  return version_from(j);
}

Status MetadataStore::remove_pipeline(const std::string& name) {
  rocksdb::WriteBatch batch;
  batch.Delete(pipeline_key(name));
  DF_ASSIGN_OR_RETURN(auto versions, scan(versions_prefix(name)));
  for (const auto& row : versions) batch.Delete(row.first);
  DF_ASSIGN_OR_RETURN(auto runs, this->runs(name));
  for (const RunRecord& r : runs) {
    batch.Delete(run_key(r.id));
    DF_ASSIGN_OR_RETURN(auto events, scan(events_prefix(r.id)));
    for (const auto& row : events) batch.Delete(row.first);
  }
  DF_RETURN_IF_ERROR(
      from_rocksdb(db_->Write(rocksdb::WriteOptions(), &batch), "remove pipeline " + name));
  std::lock_guard lock(events_mu_);
  for (const RunRecord& r : runs) next_event_.erase(r.id);
  return Status::OK();
}

Status MetadataStore::put_run(const RunRecord& run) {
  return from_rocksdb(db_->Put(rocksdb::WriteOptions(), run_key(run.id), stored_json(run).dump()),
                      "write run " + run.id);
}

Result<RunRecord> MetadataStore::run(const std::string& id) const {
  const std::string key = run_key(id);
  DF_ASSIGN_OR_RETURN(auto value, get(key));
  if (!value) return Status::not_found("run '" + id + "' does not exist");
  DF_ASSIGN_OR_RETURN(json j, parse(key, *value));
  return run_from(j);
}

Result<std::vector<RunRecord>> MetadataStore::runs(const std::string& pipeline) const {
  DF_ASSIGN_OR_RETURN(auto rows, scan("runs/"));
  std::vector<RunRecord> out;
  for (const auto& [key, value] : rows) {
    DF_ASSIGN_OR_RETURN(json j, parse(key, value));
    RunRecord r = run_from(j);
    if (pipeline.empty() || r.pipeline == pipeline) out.push_back(std::move(r));
  }
  std::sort(out.begin(), out.end(), [](const RunRecord& a, const RunRecord& b) {
    return a.started_ms != b.started_ms ? a.started_ms > b.started_ms : a.id > b.id;
  });
  return out;
}

Status MetadataStore::append_event(const std::string& run_id, const std::string& event_json) {
  std::lock_guard lock(events_mu_);
  auto it = next_event_.find(run_id);
  if (it == next_event_.end()) {
    // First event of this process for the run: continue after the last stored one.
    uint64_t next = 0;
    const std::string prefix = events_prefix(run_id);
    std::unique_ptr<rocksdb::Iterator> iter(db_->NewIterator(rocksdb::ReadOptions()));
    iter->SeekForPrev(prefix + "\xff");
    if (iter->Valid() && iter->key().starts_with(prefix)) {
      next = std::stoull(iter->key().ToString().substr(prefix.size())) + 1;
    }
    DF_RETURN_IF_ERROR(from_rocksdb(iter->status(), "read the events of run " + run_id));
    it = next_event_.emplace(run_id, next).first;
  }
  const uint64_t seq = it->second;
  rocksdb::WriteBatch batch;
  batch.Put(events_prefix(run_id) + padded(seq), event_json);
  if (seq >= max_events_) batch.Delete(events_prefix(run_id) + padded(seq - max_events_));
  DF_RETURN_IF_ERROR(from_rocksdb(db_->Write(rocksdb::WriteOptions(), &batch),
                                  "append an event of run " + run_id));
  it->second = seq + 1;
  return Status::OK();
}

Result<std::vector<std::string>> MetadataStore::events(const std::string& run_id) const {
  DF_ASSIGN_OR_RETURN(auto rows, scan(events_prefix(run_id)));
  std::vector<std::string> out;
  out.reserve(rows.size());
  for (auto& row : rows) out.push_back(std::move(row.second));
  return out;
}

Status MetadataStore::check() const {
  std::string value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), "health", &value);
  if (s.IsNotFound()) return Status::OK();
  return from_rocksdb(s, "read");
}

}  // namespace df::server
