// CheckpointCoordinator (coordinator.h): one thread triggers checkpoints,
// times them out and completes them; uploads run on the coordinator's own
// IoPool. Restore lives in restore.cc.
//
// State and locking: `mu_` guards everything the I/O jobs and the public
// methods touch (the event queue, TaskAck contents, the dedupe map, the keys
// being uploaded, stats, flags). The checkpoint in flight and the final
// snapshots are changed only by the coordinator thread. The target
// (scheduler) is never called with `mu_` held: it may call back into
// on_task_snapshot synchronously.
#include "engine/checkpoint/coordinator_internal.h"

#include <algorithm>
#include <filesystem>
#include <system_error>

#include "engine/checkpoint/files_internal.h"
#include "engine/core/log.h"
#include "engine/runtime/fault_injection.h"

namespace df::checkpoint {
namespace fs = std::filesystem;

namespace {

constexpr const char* kLog = "checkpoint";
constexpr Millis kTick{100};

int64_t ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration_cast<Millis>(b - a).count();
}

void remove_dir_quietly(const std::string& dir) {
  if (dir.empty()) return;
  std::error_code ec;
  fs::remove_all(dir, ec);
  if (ec) log_warn(kLog, "cannot remove snapshot directory " + dir + ": " + ec.message());
}

std::string task_name(const TaskKey& k) {
  return "task " + std::to_string(k.first) + "/" + std::to_string(k.second);
}

}  // namespace

std::string format_bytes(uint64_t bytes) {
  char buf[64];
  if (bytes < 1024) {
    std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(bytes));
  } else if (bytes < (1u << 20)) {
    std::snprintf(buf, sizeof buf, "%.1f KiB", static_cast<double>(bytes) / 1024.0);
  } else if (bytes < (1ull << 30)) {
    std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(bytes) / (1 << 20));
  } else {
    std::snprintf(buf, sizeof buf, "%.2f GiB", static_cast<double>(bytes) / (1 << 30));
  }
  return buf;
}

CheckpointCoordinator::Impl::Impl(CheckpointStorage& storage, CheckpointSettings settings)
    : guarded_(storage, {settings.storage_breaker, settings.is_transient, settings.on_storage_event,
                         settings.pipeline + "/"}),
      storage_(guarded_),
      settings_(std::move(settings)),
      log_context_(LogContext::current()),
      pool_(std::max(1, settings_.io_threads)) {}

CheckpointCoordinator::Impl::~Impl() { stop(); }

// ---------------------------------------------------------------- listener

void CheckpointCoordinator::Impl::enqueue(Event e) {
  bool discard = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopped_) {
      discard = true;
    } else {
      events_.push_back(std::move(e));
    }
  }
  if (discard) {
    for (const runtime::NodeSnapshot& n : e.snapshot.nodes) remove_dir_quietly(n.files_dir);
    return;
  }
  cv_.notify_all();
}

// ------------------------------------------------------------------ public

void CheckpointCoordinator::Impl::start(CheckpointTarget& target) {
  std::lock_guard<std::mutex> lock(mu_);
  if (started_ || stopped_) return;
  started_ = true;
  target_ = &target;
  thread_ = std::thread([this] { loop(); });
}

void CheckpointCoordinator::Impl::request(bool stop) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stop) {
      stop_requested_ = true;
    } else {
      checkpoint_requested_ = true;
    }
    wake_ = true;
  }
  cv_.notify_all();
}

void CheckpointCoordinator::Impl::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopped_) return;
    stopped_ = true;
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  pool_.shutdown();  // every upload job finishes (and removes its directories)
  std::deque<Event> left;
  {
    std::lock_guard<std::mutex> lock(mu_);
    left.swap(events_);
  }
  for (const Event& e : left) {
    for (const runtime::NodeSnapshot& n : e.snapshot.nodes) remove_dir_quietly(n.files_dir);
  }
  stats_cv_.notify_all();
}

CoordinatorStats CheckpointCoordinator::Impl::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

bool CheckpointCoordinator::Impl::wait_for(uint64_t count, Millis timeout) const {
  std::unique_lock<std::mutex> lock(mu_);
  return stats_cv_.wait_for(
      lock, timeout, [&] { return stats_.completed + stats_.failed + stats_.aborted >= count; });
}

// -------------------------------------------------------------- the thread

void CheckpointCoordinator::Impl::loop() {
  AdoptedLogContext log_context(log_context_);
  if (!ids_known_) {
    // Ids continue after everything stored (also aborted checkpoints' dirs).
    for (;;) {
      Result<internal::StoredIds> ids = internal::scan_ids(storage_, settings_.pipeline);
      if (ids.ok()) {
        if (!ids->all.empty()) next_id_ = std::max(next_id_, *ids->all.rbegin() + 1);
        break;
      }
      log_warn(kLog, "cannot list checkpoints in " + storage_.describe() + ": " +
                         ids.status().message() + "; retrying");
      std::unique_lock<std::mutex> lock(mu_);
      if (cv_.wait_for(lock, Millis(1000), [&] { return stopping_; })) return;
    }
    ids_known_ = true;
  }
  task_count_ = target_->task_count();
  Clock::time_point next_trigger =
      settings_.interval ? Clock::now() + *settings_.interval : Clock::time_point::max();

  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    while (!events_.empty() && !stopping_) {
      Event e = std::move(events_.front());
      events_.pop_front();
      lock.unlock();
      handle(std::move(e));
      lock.lock();
    }
    if (stopping_) return;
    wake_ = false;
    lock.unlock();
    check_inflight();
    check_timeout();
    check_final();
    Clock::time_point retry = maybe_trigger(next_trigger);
    lock.lock();
    Clock::time_point wake = std::min(Clock::now() + kTick, retry);
    if (!inflight_ && settings_.interval) wake = std::min(wake, next_trigger);
    cv_.wait_until(lock, wake, [&] { return stopping_ || wake_ || !events_.empty(); });
  }
}

void CheckpointCoordinator::Impl::handle(Event e) {
  if (e.failed) {
    const std::string reason =
        task_name({e.vertex, e.subtask}) + " failed its snapshot: " + e.status.message();
    if (e.id == runtime::kFinalCheckpoint) {
      if (final_done_) return;
      final_done_ = true;
      {
        std::lock_guard<std::mutex> lock(mu_);
        ++stats_.failed;
      }
      stats_cv_.notify_all();
      log_error(kLog, "final checkpoint of pipeline " + settings_.pipeline + " failed: " + reason);
      target_->notify_checkpoint_aborted(runtime::kFinalCheckpoint);
      return;
    }
    if (inflight_ && inflight_->id == e.id) fail_inflight(reason);
    return;
  }
  runtime::TaskSnapshot& s = e.snapshot;
  const TaskKey key{s.vertex, s.subtask};
  if (s.checkpoint_id == runtime::kFinalCheckpoint) {
    if (final_done_) {
      for (const runtime::NodeSnapshot& n : s.nodes) remove_dir_quietly(n.files_dir);
      return;
    }
    finals_[key] = build_ack(s, std::nullopt, e.at);
    return;
  }
  if (!inflight_ || inflight_->id != s.checkpoint_id || inflight_->acks.count(key) != 0) {
    log_debug(kLog, "discarding the snapshot of " + task_name(key) + " for checkpoint " +
                        std::to_string(s.checkpoint_id) + ", which is not in flight");
    std::vector<std::string> dirs;
    for (const runtime::NodeSnapshot& n : s.nodes) dirs.push_back(n.files_dir);
    pool_.post(strand_++, [dirs] {
      for (const std::string& d : dirs) remove_dir_quietly(d);
    });
    return;
  }
  inflight_->acks[key] = build_ack(s, s.checkpoint_id, e.at);
}

std::shared_ptr<TaskAck> CheckpointCoordinator::Impl::build_ack(const runtime::TaskSnapshot& s,
                                                                std::optional<uint64_t> private_id,
                                                                Clock::time_point at) {
  auto ack = std::make_shared<TaskAck>();
  ack->received = at;
  struct Job {
    size_t entry;
    size_t file;
    internal::LocalFile local;
    bool shared;
  };
  std::vector<Job> jobs;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const runtime::NodeSnapshot& n : s.nodes) {
      TaskEntry e;
      e.node = n.node_id;
      e.subtask = n.subtask;
      if (n.max_event_time != INT64_MIN) e.max_event_time = n.max_event_time;
      if (!n.meta.empty()) {
        e.meta = nlohmann::json::parse(n.meta, nullptr, /*allow_exceptions=*/false);
        if (e.meta.is_discarded() && ack->error.ok()) {
          ack->error =
              Status::data_error("node '" + n.node_id + "' subtask " + std::to_string(n.subtask) +
                                 " wrote meta that is not JSON");
          e.meta = nullptr;
        }
      }
      if (!n.files_dir.empty()) {
        ack->dirs.push_back(n.files_dir);
        Result<std::vector<internal::LocalFile>> files = internal::list_local_files(n.files_dir);
        if (!files.ok()) {
          if (ack->error.ok()) ack->error = files.status();
        } else {
          for (internal::LocalFile& f : *files) {
            const bool sst = internal::is_sst(f.name);
            if (sst) {
              auto hit = stored_.find(StoredKey{n.node_id, n.subtask, f.name, f.size, f.inode});
              if (hit != stored_.end()) {
                FileRef ref = hit->second;
                ref.name = f.name;
                e.files.push_back(std::move(ref));
                continue;
              }
            }
            e.files.push_back(FileRef{f.name, "", f.size, "", false});
            // A final snapshot's files are shared by every later checkpoint.
            jobs.push_back(
                Job{ack->entries.size(), e.files.size() - 1, std::move(f), sst || !private_id});
          }
        }
      }
      ack->entries.push_back(std::move(e));
    }
    ack->outstanding = static_cast<int>(jobs.size());
  }
  if (jobs.empty()) {
    std::vector<std::string> dirs = ack->dirs;
    pool_.post(strand_++, [dirs] {
      for (const std::string& d : dirs) remove_dir_quietly(d);
    });
    return ack;
  }
  for (Job& j : jobs) {
    const std::string node = ack->entries[j.entry].node;
    const int subtask = ack->entries[j.entry].subtask;
    const bool compress = settings_.compression && !internal::is_sst(j.local.name);
    pool_.post(strand_++, [this, ack, j = std::move(j), node, subtask, compress, private_id] {
      std::string pinned_key;
      auto key_for = [&](const std::string& sha) {
        pinned_key = j.shared ? internal::shared_file_key(settings_.pipeline, node, subtask,
                                                          j.local.name, sha)
                              : internal::private_file_key(settings_.pipeline, *private_id, node,
                                                           subtask, j.local.name);
        std::lock_guard<std::mutex> lock(mu_);
        uploading_.insert(pinned_key);
        return pinned_key;
      };
      Result<FileRef> ref = internal::store_file(storage_, j.local, key_for, compress);
      bool last = false;
      std::vector<std::string> dirs;
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (!pinned_key.empty()) uploading_.erase(pinned_key);
        if (ref.ok()) {
          ack->entries[j.entry].files[j.file] = *ref;
          ack->uploaded_bytes += ref->size;
          if (internal::is_sst(j.local.name)) {
            stored_[StoredKey{node, subtask, j.local.name, j.local.size, j.local.inode}] = *ref;
          }
        } else if (ack->error.ok()) {
          ack->error =
              ref.status().with_context("node '" + node + "' subtask " + std::to_string(subtask));
        }
        last = --ack->outstanding == 0;
        if (last) dirs = ack->dirs;
        wake_ = true;
      }
      if (last) {
        for (const std::string& d : dirs) remove_dir_quietly(d);
      }
      cv_.notify_all();
    });
  }
  return ack;
}

void CheckpointCoordinator::Impl::check_inflight() {
  if (!inflight_) return;
  Manifest m;
  uint64_t incremental = 0;
  Clock::time_point last_ack = inflight_->triggered;
  std::string error;
  {
    std::lock_guard<std::mutex> lock(mu_);
    size_t covered = 0;
    bool done = true;
    auto look = [&](const TaskKey& k, const TaskAck& a) {
      ++covered;
      if (a.outstanding != 0) done = false;
      if (!a.error.ok() && error.empty()) error = task_name(k) + ": " + a.error.message();
      last_ack = std::max(last_ack, a.received);
    };
    for (const auto& [k, a] : inflight_->acks) look(k, *a);
    for (const auto& [k, f] : finals_) {
      if (inflight_->acks.count(k) == 0) look(k, *f);
    }
    // An error fails the checkpoint at once; running uploads finish and
    // remove their directories on their own.
    if (error.empty() && (covered < inflight_->expected || !done)) return;
    if (error.empty()) {
      for (auto& [k, a] : inflight_->acks) {
        m.tasks.insert(m.tasks.end(), a->entries.begin(), a->entries.end());
        if (!a->bytes_counted) incremental += a->uploaded_bytes;
        a->bytes_counted = true;
      }
      for (auto& [k, f] : finals_) {
        if (inflight_->acks.count(k) != 0) continue;
        m.tasks.insert(m.tasks.end(), f->entries.begin(), f->entries.end());
        if (!f->bytes_counted) incremental += f->uploaded_bytes;
        f->bytes_counted = true;
      }
    }
  }
  if (!error.empty()) {
    fail_inflight(error);
    return;
  }
  m.id = inflight_->id;
  m.kind = inflight_->kind;
  const uint64_t id = m.id;
  Status st = publish(m, inflight_->triggered, last_ack, incremental);
  if (!st.ok()) {
    fail_inflight("cannot store it: " + st.message());
    return;
  }
  inflight_.reset();
  target_->notify_checkpoint_complete(id);
}

Status CheckpointCoordinator::Impl::publish(Manifest& m, Clock::time_point triggered,
                                            Clock::time_point last_ack, uint64_t incremental) {
  m.pipeline = settings_.pipeline;
  m.pipeline_version = settings_.pipeline_version;
  std::sort(m.tasks.begin(), m.tasks.end(), [](const TaskEntry& a, const TaskEntry& b) {
    return std::tie(a.node, a.subtask) < std::tie(b.node, b.subtask);
  });
  size_t files = 0;
  for (const TaskEntry& t : m.tasks) {
    for (const FileRef& f : t.files) {
      m.size_bytes += f.size;
      ++files;
    }
  }
  m.incremental_bytes = incremental;
  if (!settings_.pipeline_text.empty()) {
    DF_ASSIGN_OR_RETURN(m.pipeline_file, internal::store_pipeline_text(
                                             storage_, settings_.pipeline, m.id,
                                             settings_.pipeline_text, settings_.compression));
  }
  const Clock::time_point now = Clock::now();
  m.created = format_timestamp(now_ms());
  m.sync_ms = std::max<int64_t>(0, ms_between(triggered, last_ack));
  m.async_ms = std::max<int64_t>(0, ms_between(last_ack, now));
  m.duration_ms = m.sync_ms + m.async_ms;
  DF_RETURN_IF_ERROR(storage_.put_bytes(manifest_key(m.pipeline, m.id), serialize_manifest(m)));
  DF_RETURN_IF_ERROR(internal::write_current(storage_, m.pipeline, m.id));
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++stats_.completed;
    stats_.last_id = m.id;
    stats_.last_duration_ms = m.duration_ms;
    stats_.last_size_bytes = m.size_bytes;
    stats_.last_incremental_bytes = m.incremental_bytes;
  }
  if (settings_.duration_seconds) settings_.duration_seconds->observe(m.duration_ms / 1000.0);
  runtime::faults().checkpoint_completed();
  log_info(kLog, "checkpoint " + std::to_string(m.id) + " of pipeline " + m.pipeline + " (" +
                     m.kind + ") complete: " + std::to_string(files) + " files, " +
                     format_bytes(m.size_bytes) + ", " + format_bytes(m.incremental_bytes) +
                     " uploaded, " + std::to_string(m.duration_ms) + " ms");
  retain();
  stats_cv_.notify_all();
  return Status::OK();
}

std::set<std::string> CheckpointCoordinator::Impl::pinned_keys() {
  std::lock_guard<std::mutex> lock(mu_);
  std::set<std::string> keys = uploading_;
  auto add = [&](const TaskAck& a) {
    for (const TaskEntry& e : a.entries) {
      for (const FileRef& f : e.files) {
        if (!f.key.empty()) keys.insert(f.key);
      }
    }
  };
  if (inflight_) {
    for (const auto& [k, a] : inflight_->acks) add(*a);
  }
  for (const auto& [k, f] : finals_) add(*f);
  return keys;
}

void CheckpointCoordinator::Impl::retain() {
  Result<internal::RetentionResult> r = internal::apply_retention(
      storage_, settings_.pipeline, settings_.retained, [this] { return pinned_keys(); },
      std::nullopt);
  if (!r.ok()) {
    log_warn(kLog, "retention of pipeline " + settings_.pipeline +
                       " failed (retried after the next checkpoint): " + r.status().message());
    return;
  }
  if (r->deleted_shared.empty()) return;
  std::lock_guard<std::mutex> lock(mu_);
  for (auto it = stored_.begin(); it != stored_.end();) {
    if (r->deleted_shared.count(it->second.key) != 0) {
      it = stored_.erase(it);
    } else {
      ++it;
    }
  }
}

void CheckpointCoordinator::Impl::fail_inflight(const std::string& reason) {
  give_up_inflight(/*timed_out=*/false, "failed: " + reason);
}

void CheckpointCoordinator::Impl::check_timeout() {
  if (!inflight_) return;
  if (Clock::now() - inflight_->triggered <= settings_.timeout) return;
  give_up_inflight(/*timed_out=*/true, "timed out after " + format_duration(settings_.timeout) +
                                           " with " + std::to_string(inflight_->acks.size()) +
                                           " of " + std::to_string(inflight_->expected) +
                                           " tasks acknowledged; aborted");
}

// Drops the checkpoint in flight, counts it (failed or aborted), logs why and
// tells the scheduler.
void CheckpointCoordinator::Impl::give_up_inflight(bool timed_out, const std::string& why) {
  const uint64_t id = inflight_->id;
  inflight_.reset();
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++(timed_out ? stats_.aborted : stats_.failed);
  }
  stats_cv_.notify_all();
  log_warn(kLog,
           "checkpoint " + std::to_string(id) + " of pipeline " + settings_.pipeline + " " + why);
  target_->notify_checkpoint_aborted(id);
}

void CheckpointCoordinator::Impl::check_final() {
  if (final_done_ || inflight_ || task_count_ == 0 || finals_.size() < task_count_) return;
  Manifest m;
  uint64_t incremental = 0;
  Clock::time_point first = Clock::time_point::max();
  Clock::time_point last = Clock::time_point::min();
  std::string error;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [k, f] : finals_) {
      if (f->outstanding != 0) return;
      if (!f->error.ok() && error.empty()) error = task_name(k) + ": " + f->error.message();
    }
    for (auto& [k, f] : finals_) {
      m.tasks.insert(m.tasks.end(), f->entries.begin(), f->entries.end());
      if (!f->bytes_counted) incremental += f->uploaded_bytes;
      f->bytes_counted = true;
      first = std::min(first, f->received);
      last = std::max(last, f->received);
    }
  }
  final_done_ = true;
  Status st;
  if (error.empty()) {
    m.id = next_id_++;
    m.kind = "final";
    st = publish(m, first, last, incremental);
  } else {
    st = Status::io_error(error);
  }
  if (st.ok()) {
    target_->notify_final_checkpoint_complete();
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++stats_.failed;
  }
  stats_cv_.notify_all();
  log_error(kLog,
            "final checkpoint of pipeline " + settings_.pipeline + " failed: " + st.message());
  target_->notify_checkpoint_aborted(runtime::kFinalCheckpoint);
}

Clock::time_point CheckpointCoordinator::Impl::maybe_trigger(Clock::time_point& next_trigger) {
  constexpr Clock::time_point kNever = Clock::time_point::max();
  if (inflight_ || final_done_ || (task_count_ != 0 && finals_.size() >= task_count_)) {
    return kNever;
  }
  bool stop = false;
  bool requested = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop = stop_requested_ && !stop_sent_;
    requested = checkpoint_requested_;
    if (stop_sent_) return kNever;
  }
  const Clock::time_point now = Clock::now();
  if (!stop && !requested && now < next_trigger) return kNever;
  if (now < retry_at_) return retry_at_;
  if (!stop && guarded_.open()) {
    // The storage is down: a checkpoint now would only fail (or pile up
    // uploads). Decline it; once open_for passed, a probe decides.
    const Status probe = guarded_.declining() ? Status::unavailable("not yet") : guarded_.probe();
    if (!probe.ok()) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        ++stats_.declined;
        checkpoint_requested_ = false;
      }
      if (!decline_logged_) {
        log_warn(kLog, "checkpoints of pipeline " + settings_.pipeline +
                           " are declined while the circuit breaker around checkpoint storage " +
                           storage_.describe() + " is open");
        decline_logged_ = true;
      }
      if (settings_.interval) next_trigger = now + *settings_.interval;
      return kNever;
    }
  }
  decline_logged_ = false;
  const uint64_t id = next_id_;
  const bool ok = stop ? target_->stop_with_checkpoint(id) : target_->trigger_checkpoint(id);
  if (!ok) {
    // The run has not started yet or is ending: try again shortly.
    retry_at_ = now + kTick;
    return retry_at_;
  }
  ++next_id_;
  auto f = std::make_unique<Inflight>();
  f->id = id;
  f->kind = stop ? "stop" : "periodic";
  f->triggered = now;
  f->expected = target_->task_count();
  inflight_ = std::move(f);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stop) {
      stop_sent_ = true;
    } else {
      checkpoint_requested_ = false;
    }
  }
  if (settings_.interval) next_trigger = now + *settings_.interval;
  log_debug(kLog,
            "triggered checkpoint " + std::to_string(id) + " of pipeline " + settings_.pipeline);
  return kNever;
}

// ------------------------------------------------------------ the facade

CheckpointCoordinator::CheckpointCoordinator(CheckpointStorage& storage,
                                             CheckpointSettings settings)
    : impl_(std::make_unique<Impl>(storage, std::move(settings))) {}

CheckpointCoordinator::~CheckpointCoordinator() { impl_->stop(); }

void CheckpointCoordinator::start(CheckpointTarget& target) { impl_->start(target); }

void CheckpointCoordinator::start(runtime::Scheduler& scheduler) {
  scheduler_target_ = make_scheduler_target(scheduler);
  impl_->start(*scheduler_target_);
}

void CheckpointCoordinator::request_checkpoint() { impl_->request(/*stop=*/false); }
void CheckpointCoordinator::request_stop_with_checkpoint() { impl_->request(/*stop=*/true); }
void CheckpointCoordinator::stop() { impl_->stop(); }
CoordinatorStats CheckpointCoordinator::stats() const { return impl_->stats(); }

bool CheckpointCoordinator::wait_for_checkpoints(uint64_t count, Millis timeout) const {
  return impl_->wait_for(count, timeout);
}

void CheckpointCoordinator::on_task_snapshot(runtime::TaskSnapshot snapshot) {
  Event e;
  e.snapshot = std::move(snapshot);
  e.at = Clock::now();
  impl_->enqueue(std::move(e));
}

void CheckpointCoordinator::on_task_snapshot_failed(uint64_t id, size_t vertex, int subtask,
                                                    Status status) {
  Event e;
  e.failed = true;
  e.id = id;
  e.vertex = vertex;
  e.subtask = subtask;
  e.status = std::move(status);
  e.at = Clock::now();
  impl_->enqueue(std::move(e));
}

Result<std::optional<RestorePoint>> CheckpointCoordinator::restore(
    const runtime::PhysicalPlan& plan, const std::string& state_root) {
  return impl_->restore(plan, state_root);
}

}  // namespace df::checkpoint
