// Checkpoint history, rollback and writing a checkpoint from local files
// (history.h).
#include "engine/checkpoint/history.h"

#include <algorithm>
#include <chrono>
#include <mutex>
#include <thread>

#include "engine/checkpoint/files_internal.h"
#include "engine/core/time.h"

namespace df::checkpoint {
namespace {

struct Loaded {
  uint64_t id = 0;
  Result<Manifest> manifest = Status::not_found("not loaded");
};

// Every stored manifest, newest first; a storage failure other than a
// missing object is returned.
Result<std::vector<Loaded>> load_all(CheckpointStorage& storage, const std::string& pipeline) {
  DF_ASSIGN_OR_RETURN(internal::StoredIds ids, internal::scan_ids(storage, pipeline));
  std::vector<Loaded> out;
  for (auto it = ids.with_manifest.rbegin(); it != ids.with_manifest.rend(); ++it) {
    Loaded l;
    l.id = *it;
    Result<std::string> text = storage.get_bytes(manifest_key(pipeline, *it));
    if (!text.ok()) {
      if (text.status().code() != StatusCode::kNotFound) return text.status();
      l.manifest = Status::data_error("manifest of checkpoint " + std::to_string(*it) +
                                      " disappeared while it was read");
    } else {
      l.manifest = parse_manifest(*text);
      if (l.manifest.ok() && l.manifest->id != *it) {
        l.manifest = Status::data_error("manifest of checkpoint " + std::to_string(*it) +
                                        " names checkpoint " + std::to_string(l.manifest->id));
      }
    }
    out.push_back(std::move(l));
  }
  return out;
}

// The id _CURRENT names, or the newest when _CURRENT is missing or unreadable.
Result<std::optional<uint64_t>> current_id(CheckpointStorage& storage, const std::string& pipeline,
                                           const std::vector<Loaded>& all) {
  Result<uint64_t> cur = internal::read_current(storage, pipeline);
  if (cur.ok()) return std::optional<uint64_t>(*cur);
  if (cur.status().code() != StatusCode::kNotFound &&
      cur.status().code() != StatusCode::kDataError) {
    return cur.status();
  }
  if (all.empty()) return std::optional<uint64_t>();
  return std::optional<uint64_t>(all.front().id);
}

}  // namespace

Result<std::vector<CheckpointInfo>> list_checkpoints(CheckpointStorage& storage,
                                                     const std::string& pipeline) {
  DF_ASSIGN_OR_RETURN(std::vector<Loaded> all, load_all(storage, pipeline));
  Result<uint64_t> cur = internal::read_current(storage, pipeline);
  if (!cur.ok() && cur.status().code() != StatusCode::kNotFound &&
      cur.status().code() != StatusCode::kDataError) {
    return cur.status();
  }
  std::vector<CheckpointInfo> out;
  for (const Loaded& l : all) {
    CheckpointInfo info;
    info.id = l.id;
    info.current = cur.ok() && *cur == l.id;
    if (l.manifest.ok()) {
      const Manifest& m = *l.manifest;
      info.created = m.created;
      info.kind = m.kind;
      info.size_bytes = m.size_bytes;
      info.duration_ms = m.duration_ms;
      info.incremental_bytes = m.incremental_bytes;
    } else {
      info.valid = false;
      info.problem = l.manifest.status().message();
    }
    out.push_back(std::move(info));
  }
  return out;
}

Result<uint64_t> rollback(CheckpointStorage& storage, const std::string& pipeline,
                          std::optional<int> offset, std::optional<uint64_t> id) {
  if (offset && id) return Status::invalid("give either an offset or a checkpoint id, not both");
  if (offset && *offset < 0) {
    return Status::invalid("offset " + std::to_string(*offset) + " must not be negative");
  }
  DF_ASSIGN_OR_RETURN(std::vector<Loaded> all, load_all(storage, pipeline));
  if (all.empty()) {
    return Status::not_found("pipeline " + pipeline + " has no checkpoint in " +
                             storage.describe());
  }
  const Loaded* target = nullptr;
  if (id) {
    for (const Loaded& l : all) {
      if (l.id == *id) target = &l;
    }
    if (target == nullptr) {
      return Status::invalid("pipeline " + pipeline + " has no checkpoint " + std::to_string(*id));
    }
  } else {
    const int n = offset.value_or(1);
    DF_ASSIGN_OR_RETURN(std::optional<uint64_t> cur, current_id(storage, pipeline, all));
    // Position of the current checkpoint (or of the newest one below it when
    // _CURRENT names a checkpoint whose manifest is gone).
    size_t pos = 0;
    while (pos < all.size() && cur && all[pos].id > *cur) ++pos;
    if (pos >= all.size()) {
      return Status::invalid("_CURRENT of pipeline " + pipeline + " names checkpoint " +
                             std::to_string(cur.value_or(0)) +
                             ", which is older than every stored one");
    }
    const size_t older = all.size() - 1 - pos;
    if (static_cast<size_t>(n) > older) {
      return Status::invalid("offset " + std::to_string(n) + " is out of range: checkpoint " +
                             std::to_string(all[pos].id) + " of pipeline " + pipeline + " has " +
                             std::to_string(older) + " older checkpoint" + (older == 1 ? "" : "s"));
    }
    target = &all[pos + static_cast<size_t>(n)];
  }
  if (!target->manifest.ok()) {
    return Status::data_error("cannot roll back to checkpoint " + std::to_string(target->id) +
                              ": " + target->manifest.status().message());
  }
  DF_RETURN_IF_ERROR(internal::write_current(storage, pipeline, target->id));
  return target->id;
}

Result<uint64_t> write_checkpoint(
    CheckpointStorage& storage, const Manifest& base,
    const std::map<std::pair<std::string, int>, std::string>& local_dirs,
    const WriteCheckpointOptions& options) {
  const auto started = std::chrono::steady_clock::now();
  if (base.pipeline.empty()) return Status::invalid("the checkpoint's pipeline name is empty");
  Manifest m = base;
  std::map<std::pair<std::string, int>, size_t> index;
  for (size_t i = 0; i < m.tasks.size(); ++i) {
    m.tasks[i].files.clear();
    if (!index.emplace(std::make_pair(m.tasks[i].node, m.tasks[i].subtask), i).second) {
      return Status::invalid("node '" + m.tasks[i].node + "' subtask " +
                             std::to_string(m.tasks[i].subtask) + " appears twice");
    }
  }
  DF_ASSIGN_OR_RETURN(internal::StoredIds ids, internal::scan_ids(storage, m.pipeline));
  m.id = ids.all.empty() ? 1 : *ids.all.rbegin() + 1;
  m.kind = options.kind;

  struct Job {
    size_t task;
    size_t file;
    internal::LocalFile local;
  };
  std::vector<Job> jobs;
  for (const auto& [key, dir] : local_dirs) {
    auto it = index.find(key);
    if (it == index.end()) {
      return Status::invalid("files were given for node '" + key.first + "' subtask " +
                             std::to_string(key.second) + ", which has no task entry");
    }
    DF_ASSIGN_OR_RETURN(std::vector<internal::LocalFile> files, internal::list_local_files(dir));
    TaskEntry& t = m.tasks[it->second];
    for (internal::LocalFile& f : files) {
      t.files.push_back(FileRef{f.name, "", f.size, "", false});
      jobs.push_back(Job{it->second, t.files.size() - 1, std::move(f)});
    }
  }

  std::mutex mu;  // guards m.tasks[].files while jobs store
  DF_RETURN_IF_ERROR(internal::run_parallel(jobs.size(), options.io_threads, [&](size_t i) {
    const Job& j = jobs[i];
    const TaskEntry& t = m.tasks[j.task];
    const bool sst = internal::is_sst(j.local.name);
    auto key_for = [&](const std::string& sha) {
      return sst ? internal::shared_file_key(m.pipeline, t.node, t.subtask, j.local.name, sha)
                 : internal::private_file_key(m.pipeline, m.id, t.node, t.subtask, j.local.name);
    };
    Result<FileRef> ref =
        internal::store_file(storage, j.local, key_for, options.compression && !sst);
    if (!ref.ok()) {
      return ref.status().with_context("node '" + t.node + "' subtask " +
                                       std::to_string(t.subtask));
    }
    std::lock_guard<std::mutex> lock(mu);
    m.tasks[j.task].files[j.file] = *ref;
    return Status::OK();
  }));

  m.size_bytes = 0;
  for (const TaskEntry& t : m.tasks) {
    for (const FileRef& f : t.files) m.size_bytes += f.size;
  }
  m.incremental_bytes = m.size_bytes;
  m.pipeline_file.reset();
  if (!options.pipeline_text.empty()) {
    DF_ASSIGN_OR_RETURN(m.pipeline_file,
                        internal::store_pipeline_text(storage, m.pipeline, m.id,
                                                      options.pipeline_text, options.compression));
  }
  std::sort(m.tasks.begin(), m.tasks.end(), [](const TaskEntry& a, const TaskEntry& b) {
    return std::tie(a.node, a.subtask) < std::tie(b.node, b.subtask);
  });
  m.created = format_timestamp(now_ms());
  m.sync_ms = 0;
  m.async_ms =
      std::chrono::duration_cast<Millis>(std::chrono::steady_clock::now() - started).count();
  m.duration_ms = m.async_ms;
  DF_RETURN_IF_ERROR(storage.put_bytes(manifest_key(m.pipeline, m.id), serialize_manifest(m)));
  if (options.move_current) DF_RETURN_IF_ERROR(internal::write_current(storage, m.pipeline, m.id));
  return m.id;
}

}  // namespace df::checkpoint
