// CheckpointCoordinator::restore (coordinator.h): the newest good checkpoint
// into <state_root>/<node>/<subtask>, with fallback to older ones.
//
// Speed: files are fetched and verified (size, SHA-256) in parallel on a
// short-lived pool of I/O threads, largest first; SST files may be hard
// links to local storage's objects (get_file), other files are copies since
// RocksDB may rewrite them.
#include <algorithm>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <system_error>
#include <thread>

#include "engine/checkpoint/coordinator_internal.h"
#include "engine/checkpoint/files_internal.h"
#include "engine/core/log.h"

namespace df::checkpoint {
namespace fs = std::filesystem;

namespace {

constexpr const char* kLog = "checkpoint";
constexpr int kMaxFallbacks = 3;

// A problem with one checkpoint (fall back), or a hard error (return it).
struct Attempt {
  std::string problem;
  Status hard;
};

Status empty_dir(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Status::io_error("cannot create " + dir + ": " + ec.message());
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code rm;
    fs::remove_all(it->path(), rm);
    if (rm) return Status::io_error("cannot empty " + dir + ": " + rm.message());
  }
  if (ec) return Status::io_error("cannot empty " + dir + ": " + ec.message());
  return Status::OK();
}

// Refuses a state root that holds the local storage (emptying it would
// remove the checkpoints).
Status check_not_inside(const std::string& state_root, const std::string& storage_desc) {
  const std::string scheme = "file://";
  if (storage_desc.compare(0, scheme.size(), scheme) != 0) return Status::OK();
  std::error_code ec;
  std::string root = fs::weakly_canonical(state_root, ec).string();
  if (ec) return Status::OK();
  std::string store = fs::weakly_canonical(storage_desc.substr(scheme.size()), ec).string();
  if (ec) return Status::OK();
  if (root.empty() || root.back() != '/') root += '/';
  if (store.empty() || store.back() != '/') store += '/';
  if (store.compare(0, root.size(), root) == 0) {
    return Status::invalid("the state directory " + state_root +
                           " contains the checkpoint storage " + storage_desc +
                           "; use separate directories");
  }
  return Status::OK();
}

// Plan parallelism by node id.
std::map<std::string, int> plan_nodes(const runtime::PhysicalPlan& plan) {
  std::map<std::string, int> nodes;
  for (const runtime::PhysicalVertex& v : plan.vertices) {
    for (const runtime::PlanNode& n : v.chain) nodes[n.id] = v.parallelism;
  }
  return nodes;
}

Status check_fits(const Manifest& m, const runtime::PhysicalPlan& plan) {
  const std::map<std::string, int> nodes = plan_nodes(plan);
  std::map<std::string, int> stored;  // node -> highest subtask + 1
  for (const TaskEntry& t : m.tasks) {
    if (nodes.count(t.node) == 0) {
      return Status::invalid("checkpoint " + std::to_string(m.id) + " of pipeline " + m.pipeline +
                             " holds state of node '" + t.node +
                             "', which the pipeline no longer has");
    }
    if (t.subtask < 0) {
      return Status::data_error("checkpoint " + std::to_string(m.id) + " has subtask " +
                                std::to_string(t.subtask) + " of node '" + t.node + "'");
    }
    stored[t.node] = std::max(stored[t.node], t.subtask + 1);
  }
  for (const auto& [node, parallelism] : stored) {
    if (parallelism != nodes.at(node)) {
      return Status::invalid("node '" + node + "' was checkpointed with parallelism " +
                             std::to_string(parallelism) + " but now runs with " +
                             std::to_string(nodes.at(node)) + "; rescaling state is not supported");
    }
  }
  return Status::OK();
}

// Runs jobs on `threads` threads and waits; returns the first failure.
struct FetchJob {
  const FileRef* ref;
  std::string dest;
  bool must_copy;
};

Status fetch_all(CheckpointStorage& storage, std::vector<FetchJob>& jobs, int threads) {
  std::sort(jobs.begin(), jobs.end(),
            [](const FetchJob& a, const FetchJob& b) { return a.ref->size > b.ref->size; });
  return internal::run_parallel(jobs.size(), threads, [&](size_t i) {
    return internal::fetch_file(storage, *jobs[i].ref, jobs[i].dest, jobs[i].must_copy);
  });
}

}  // namespace

Result<std::optional<RestorePoint>> CheckpointCoordinator::Impl::restore(
    const runtime::PhysicalPlan& plan, const std::string& state_root) {
  const Clock::time_point started = Clock::now();
  const std::string& p = settings_.pipeline;
  DF_RETURN_IF_ERROR(check_not_inside(state_root, storage_.describe()));
  DF_ASSIGN_OR_RETURN(internal::StoredIds ids, internal::scan_ids(storage_, p));
  if (!ids.all.empty()) next_id_ = std::max(next_id_, *ids.all.rbegin() + 1);
  ids_known_ = true;
  DF_RETURN_IF_ERROR(empty_dir(state_root));
  if (ids.with_manifest.empty()) return std::optional<RestorePoint>();

  RestorePoint point;
  uint64_t current = *ids.with_manifest.rbegin();
  Result<uint64_t> named = internal::read_current(storage_, p);
  if (named.ok()) {
    current = *named;
  } else if (named.status().code() == StatusCode::kNotFound) {
    point.warnings.push_back("_CURRENT is missing; using checkpoint " + std::to_string(current));
  } else if (named.status().code() == StatusCode::kDataError) {
    point.warnings.push_back(named.status().message() + "; using checkpoint " +
                             std::to_string(current));
  } else {
    return named.status();
  }

  std::vector<uint64_t> candidates{current};
  for (auto it = ids.with_manifest.rbegin();
       it != ids.with_manifest.rend() && candidates.size() < 1 + kMaxFallbacks; ++it) {
    if (*it < current) candidates.push_back(*it);
  }

  const int threads =
      std::max({settings_.io_threads, static_cast<int>(std::thread::hardware_concurrency()), 2});
  const std::string staging = (fs::path(state_root) / ".restore-staging").string();
  std::vector<std::string> problems;  // "checkpoint 7: ..."
  for (uint64_t id : candidates) {
    const std::string name = "checkpoint " + std::to_string(id);
    Result<std::string> text = storage_.get_bytes(manifest_key(p, id));
    if (!text.ok()) {
      if (text.status().code() != StatusCode::kNotFound) return text.status();
      problems.push_back(name + ": its manifest is missing");
      continue;
    }
    Result<Manifest> parsed = parse_manifest(*text);
    if (!parsed.ok()) {
      problems.push_back(name + ": " + parsed.status().message());
      continue;
    }
    Manifest& m = *parsed;
    if (m.id != id || m.pipeline != p) {
      problems.push_back(name + ": its manifest belongs to checkpoint " + std::to_string(m.id) +
                         " of pipeline " + m.pipeline);
      continue;
    }
    DF_RETURN_IF_ERROR(check_fits(m, plan));

    DF_RETURN_IF_ERROR(empty_dir(staging));
    std::vector<FetchJob> jobs;
    uint64_t bytes = 0;
    for (const TaskEntry& t : m.tasks) {
      for (const FileRef& f : t.files) {
        const fs::path dest = fs::path(staging) / t.node / std::to_string(t.subtask) / f.name;
        jobs.push_back(FetchJob{&f, dest.string(), !internal::is_sst(f.name)});
        bytes += f.size;
      }
    }
    Status st = fetch_all(storage_, jobs, threads);
    if (!st.ok()) {
      if (st.code() != StatusCode::kDataError && st.code() != StatusCode::kNotFound) {
        std::error_code ec;
        fs::remove_all(staging, ec);
        return st.with_context("restoring " + name + " of pipeline " + p);
      }
      problems.push_back(name + ": " + st.message());
      continue;
    }
    // Verified: move each node's directory into place.
    for (const TaskEntry& t : m.tasks) {
      const fs::path from = fs::path(staging) / t.node;
      const fs::path to = fs::path(state_root) / t.node;
      std::error_code ec;
      if (!fs::exists(from, ec) || fs::exists(to, ec)) continue;
      fs::rename(from, to, ec);
      if (ec)
        return Status::io_error("cannot move restored state to " + to.string() + ": " +
                                ec.message());
    }
    std::error_code ec;
    fs::remove_all(staging, ec);

    point.checkpoint_id = id;
    point.files = jobs.size();
    point.bytes = bytes;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (const TaskEntry& t : m.tasks) {
        runtime::RestoredNode& node = point.state[{t.node, t.subtask}];
        if (!t.meta.is_null()) node.meta = t.meta.dump();
        if (t.max_event_time) node.max_event_time = *t.max_event_time;
        for (const FileRef& f : t.files) {
          if (internal::is_sst(f.name) &&
              f.key.compare(0, shared_prefix(p).size(), shared_prefix(p)) == 0) {
            const fs::path local =
                fs::path(state_root) / t.node / std::to_string(t.subtask) / f.name;
            stored_[StoredKey{t.node, t.subtask, f.name, f.size,
                              internal::inode_of(local.string())}] = f;
          }
        }
      }
    }
    for (const std::string& problem : problems) {
      point.warnings.push_back(problem + "; used checkpoint " + std::to_string(id));
    }
    point.duration_ms = std::chrono::duration_cast<Millis>(Clock::now() - started).count();
    for (const std::string& w : point.warnings) log_warn(kLog, "pipeline " + p + ": " + w);
    log_info(kLog, "restored pipeline " + p + " from checkpoint " + std::to_string(id) + ": " +
                       std::to_string(point.files) + " files, " + format_bytes(bytes) + " in " +
                       std::to_string(point.duration_ms) + " ms");
    return std::optional<RestorePoint>(std::move(point));
  }
  std::error_code ec;
  fs::remove_all(staging, ec);
  std::string msg = "no usable checkpoint for pipeline " + p + ": ";
  for (size_t i = 0; i < problems.size(); ++i) msg += (i == 0 ? "" : ", ") + problems[i];
  return Status::data_error(msg);
}

}  // namespace df::checkpoint
