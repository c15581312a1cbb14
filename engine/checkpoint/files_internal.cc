// Storing and fetching checkpoint files, scanning storage, retention
// (files_internal.h).
#include "engine/checkpoint/files_internal.h"

#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <filesystem>
#include <mutex>
#include <system_error>
#include <thread>

#include "engine/checkpoint/compression.h"
#include "engine/core/log.h"

namespace df::checkpoint::internal {
namespace fs = std::filesystem;

namespace {

std::atomic<uint64_t> g_temp_counter{0};

// A sibling temporary name of `path`, unique in this process.
std::string temp_sibling(const std::string& path, const char* tag) {
  return path + ".df-" + tag + "-" + std::to_string(g_temp_counter.fetch_add(1));
}

std::optional<uint64_t> parse_id(std::string_view s) {
  if (s.empty() || s.size() > 20) return std::nullopt;
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

void remove_quietly(const std::string& path) {
  std::error_code ec;
  fs::remove(path, ec);
}

}  // namespace

uint64_t inode_of(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return 0;
  return static_cast<uint64_t>(st.st_ino);
}

bool is_sst(const std::string& name) {
  return name.size() > 4 && name.compare(name.size() - 4, 4, ".sst") == 0;
}

Result<std::vector<LocalFile>> list_local_files(const std::string& dir) {
  std::vector<LocalFile> out;
  std::error_code ec;
  if (!fs::exists(dir, ec)) return out;
  fs::recursive_directory_iterator it(dir, ec), end;
  if (ec) return Status::io_error("cannot list " + dir + ": " + ec.message());
  for (; it != end; it.increment(ec)) {
    if (ec) return Status::io_error("cannot list " + dir + ": " + ec.message());
    if (!it->is_regular_file(ec)) continue;
    LocalFile f;
    f.path = it->path().string();
    f.name = it->path().lexically_relative(dir).generic_string();
    f.size = it->file_size(ec);
    if (ec) return Status::io_error("cannot stat " + f.path + ": " + ec.message());
    f.inode = inode_of(f.path);
    out.push_back(std::move(f));
  }
  if (ec) return Status::io_error("cannot list " + dir + ": " + ec.message());
  std::sort(out.begin(), out.end(),
            [](const LocalFile& a, const LocalFile& b) { return a.name < b.name; });
  return out;
}

std::string shared_file_key(const std::string& pipeline, const std::string& node, int subtask,
                            const std::string& name, const std::string& sha256) {
  std::string flat = name;
  std::replace(flat.begin(), flat.end(), '/', '_');
  return shared_prefix(pipeline) + node + "-" + std::to_string(subtask) + "-" + flat + "-" +
         sha256.substr(0, 16);
}

std::string private_file_key(const std::string& pipeline, uint64_t id, const std::string& node,
                             int subtask, const std::string& name) {
  return checkpoints_prefix(pipeline) + std::to_string(id) + "/" + node + "/" +
         std::to_string(subtask) + "/" + name;
}

std::string checkpoints_prefix(const std::string& pipeline) { return pipeline + "/checkpoints/"; }

Result<FileRef> store_file(CheckpointStorage& storage, const LocalFile& file,
                           const std::function<std::string(const std::string& sha256)>& key_for,
                           bool compress) {
  DF_ASSIGN_OR_RETURN(std::string sha, sha256_file(file.path));
  FileRef ref;
  ref.name = file.name;
  ref.size = file.size;
  ref.sha256 = sha;
  ref.key = key_for(sha);
  ref.compressed = compress;
  if (!compress) {
    DF_RETURN_IF_ERROR(storage.put_file(ref.key, file.path));
    return ref;
  }
  const std::string tmp = temp_sibling(file.path, "zst");
  Status st = compress_file(file.path, tmp);
  if (st.ok()) st = storage.put_file(ref.key, tmp);
  remove_quietly(tmp);
  DF_RETURN_IF_ERROR(st);
  return ref;
}

Status fetch_file(CheckpointStorage& storage, const FileRef& ref, const std::string& dest,
                  bool must_copy) {
  const fs::path name(ref.name);
  for (const auto& part : name) {
    if (part == ".." || name.is_absolute()) {
      return Status::data_error("file " + ref.name + " has an unsafe name");
    }
  }
  std::error_code ec;
  fs::create_directories(fs::path(dest).parent_path(), ec);
  if (ec) return Status::io_error("cannot create the directory of " + dest + ": " + ec.message());
  auto fail = [&](const Status& st) {
    if (st.code() == StatusCode::kNotFound) {
      return Status::not_found("file " + ref.name + " is missing from storage (" + ref.key + ")");
    }
    return st.with_context("file " + ref.name);
  };
  if (ref.compressed) {
    const std::string tmp = temp_sibling(dest, "zst");
    Status st = storage.get_file(ref.key, tmp);
    if (!st.ok()) {
      remove_quietly(tmp);
      return fail(st);
    }
    st = decompress_file(tmp, dest);
    remove_quietly(tmp);
    if (!st.ok()) {
      return Status::data_error("file " + ref.name + " does not decompress: " + st.message());
    }
  } else if (must_copy) {
    const std::string tmp = temp_sibling(dest, "dl");
    Status st = storage.get_file(ref.key, tmp);
    if (!st.ok()) {
      remove_quietly(tmp);
      return fail(st);
    }
    fs::copy_file(tmp, dest, fs::copy_options::overwrite_existing, ec);
    remove_quietly(tmp);
    if (ec) return Status::io_error("cannot copy to " + dest + ": " + ec.message());
  } else {
    Status st = storage.get_file(ref.key, dest);
    if (!st.ok()) return fail(st);
  }
  const uint64_t size = fs::file_size(dest, ec);
  if (ec) return Status::io_error("cannot stat " + dest + ": " + ec.message());
  if (size != ref.size) {
    return Status::data_error("file " + ref.name + " has " + std::to_string(size) +
                              " bytes instead of " + std::to_string(ref.size));
  }
  DF_ASSIGN_OR_RETURN(std::string sha, sha256_file(dest));
  if (sha != ref.sha256) {
    return Status::data_error("file " + ref.name + " has a sha256 mismatch");
  }
  return Status::OK();
}

Result<StoredIds> scan_ids(CheckpointStorage& storage, const std::string& pipeline) {
  const std::string prefix = checkpoints_prefix(pipeline);
  DF_ASSIGN_OR_RETURN(std::vector<ObjectInfo> objects, storage.list(prefix));
  StoredIds ids;
  for (const ObjectInfo& o : objects) {
    if (o.key.compare(0, prefix.size(), prefix) != 0) continue;
    std::string_view rest(o.key);
    rest.remove_prefix(prefix.size());
    size_t slash = rest.find('/');
    if (slash == std::string_view::npos) continue;
    std::optional<uint64_t> id = parse_id(rest.substr(0, slash));
    if (!id) continue;
    ids.all.insert(*id);
    if (rest.substr(slash + 1) == "manifest.json") ids.with_manifest.insert(*id);
  }
  return ids;
}

Result<uint64_t> read_current(CheckpointStorage& storage, const std::string& pipeline) {
  DF_ASSIGN_OR_RETURN(std::string text, storage.get_bytes(current_key(pipeline)));
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) {
    text.pop_back();
  }
  std::optional<uint64_t> id = parse_id(text);
  if (!id) return Status::data_error("_CURRENT of pipeline " + pipeline + " does not hold an id");
  return *id;
}

Status write_current(CheckpointStorage& storage, const std::string& pipeline, uint64_t id) {
  return storage.put_bytes(current_key(pipeline), std::to_string(id) + "\n");
}

Result<FileRef> store_pipeline_text(CheckpointStorage& storage, const std::string& pipeline,
                                    uint64_t id, const std::string& text, bool compress) {
  FileRef ref;
  ref.name = "pipeline.yaml";
  ref.key = checkpoints_prefix(pipeline) + std::to_string(id) + "/pipeline.yaml";
  ref.size = text.size();
  ref.sha256 = sha256_hex(text);
  ref.compressed = compress;
  if (!compress) {
    DF_RETURN_IF_ERROR(storage.put_bytes(ref.key, text));
    return ref;
  }
  DF_ASSIGN_OR_RETURN(std::string packed, compress_bytes(text));
  DF_RETURN_IF_ERROR(storage.put_bytes(ref.key, packed));
  return ref;
}

Result<RetentionResult> apply_retention(CheckpointStorage& storage, const std::string& pipeline,
                                        int retained,
                                        const std::function<std::set<std::string>()>& pinned_keys,
                                        std::optional<uint64_t> keep_id) {
  RetentionResult result;
  DF_ASSIGN_OR_RETURN(StoredIds ids, scan_ids(storage, pipeline));
  std::set<uint64_t> kept;
  for (auto it = ids.with_manifest.rbegin();
       it != ids.with_manifest.rend() && static_cast<int>(kept.size()) < std::max(retained, 1);
       ++it) {
    kept.insert(*it);
  }
  Result<uint64_t> current = read_current(storage, pipeline);
  if (current.ok() && ids.with_manifest.count(*current) != 0) kept.insert(*current);

  // Checkpoint directories: the manifest goes first, so a half-removed
  // checkpoint never looks complete.
  for (uint64_t id : ids.all) {
    if (kept.count(id) != 0 || (keep_id && *keep_id == id)) continue;
    const std::string dir = checkpoints_prefix(pipeline) + std::to_string(id) + "/";
    DF_ASSIGN_OR_RETURN(std::vector<ObjectInfo> objects, storage.list(dir));
    if (ids.with_manifest.count(id) != 0) {
      DF_RETURN_IF_ERROR(storage.remove(manifest_key(pipeline, id)));
    }
    for (const ObjectInfo& o : objects) {
      if (o.key == manifest_key(pipeline, id)) continue;
      DF_RETURN_IF_ERROR(storage.remove(o.key));
    }
    result.deleted_checkpoints.push_back(id);
  }

  // Shared files: only when every kept manifest says what it references.
  std::set<std::string> referenced;
  for (uint64_t id : kept) {
    Result<std::string> text = storage.get_bytes(manifest_key(pipeline, id));
    Result<Manifest> m = text.ok() ? parse_manifest(*text) : Result<Manifest>(text.status());
    if (!m.ok()) {
      log_warn("checkpoint", "retention keeps every shared file of pipeline " + pipeline +
                                 ": checkpoint " + std::to_string(id) +
                                 " cannot be read: " + m.status().message());
      return result;
    }
    for (const TaskEntry& t : m->tasks) {
      for (const FileRef& f : t.files) referenced.insert(f.key);
    }
  }
  DF_ASSIGN_OR_RETURN(std::vector<ObjectInfo> shared, storage.list(shared_prefix(pipeline)));
  // Asked after listing: an upload that started before the listing is pinned
  // by now (uploads pin their key before they store it).
  const std::set<std::string> pinned = pinned_keys ? pinned_keys() : std::set<std::string>{};
  for (const ObjectInfo& o : shared) {
    if (referenced.count(o.key) != 0 || pinned.count(o.key) != 0) continue;
    DF_RETURN_IF_ERROR(storage.remove(o.key));
    result.deleted_shared.insert(o.key);
  }
  return result;
}

Status run_parallel(size_t count, int threads, const std::function<Status(size_t)>& job) {
  std::mutex mu;
  size_t next = 0;
  Status first;  // guarded by mu
  auto work = [&] {
    for (;;) {
      size_t i;
      {
        std::lock_guard<std::mutex> lock(mu);
        if (next >= count || !first.ok()) return;
        i = next++;
      }
      Status st = job(i);
      if (!st.ok()) {
        std::lock_guard<std::mutex> lock(mu);
        if (first.ok()) first = std::move(st);
      }
    }
  };
  const int n = std::max(1, std::min<int>(threads, static_cast<int>(count)));
  std::vector<std::thread> pool;
  for (int i = 1; i < n; ++i) pool.emplace_back(work);
  work();
  for (std::thread& t : pool) t.join();
  return first;
}

}  // namespace df::checkpoint::internal
