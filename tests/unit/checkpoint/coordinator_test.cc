// CheckpointCoordinator against real local storage (open_storage on a temp
// dir) and real RocksDB snapshot files (KvStore::checkpoint_to). The
// scheduler side is a RecordingTarget: the coordinator's CheckpointTarget
// interface implemented to record the calls and let the test play the
// tasks' acknowledgements. The real Scheduler is covered by the runtime's
// and the CLI's integration tests.
#include "engine/checkpoint/coordinator.h"

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <set>
#include <thread>

#include <sys/resource.h>

#include "engine/checkpoint/history.h"
#include "engine/checkpoint/manifest.h"
#include "engine/state/state_backend.h"
#include "tests/support/temp_dir.h"

namespace df::checkpoint {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr Millis kWait{10000};  // every wait is bounded by this

// Records the coordinator's calls; the test answers in the tasks' place.
class RecordingTarget final : public CheckpointTarget {
 public:
  explicit RecordingTarget(size_t tasks) : tasks_(tasks) {}

  bool trigger_checkpoint(uint64_t id) override {
    std::lock_guard<std::mutex> lock(mu_);
    ++attempts_;
    if (!accept_) return false;
    triggered_.push_back(id);
    cv_.notify_all();
    return true;
  }
  bool stop_with_checkpoint(uint64_t id) override {
    std::lock_guard<std::mutex> lock(mu_);
    stops_.push_back(id);
    cv_.notify_all();
    return true;
  }
  void notify_checkpoint_complete(uint64_t id) override { record(completed_, id); }
  void notify_checkpoint_aborted(uint64_t id) override { record(aborted_, id); }
  void notify_final_checkpoint_complete() override {
    std::lock_guard<std::mutex> lock(mu_);
    ++final_complete_;
    cv_.notify_all();
  }
  size_t task_count() const override { return tasks_; }

  void set_accept(bool accept) {
    std::lock_guard<std::mutex> lock(mu_);
    accept_ = accept;
  }
  // Waits until `pred` holds (polled; pred may call the accessors below).
  bool wait(const std::function<bool()>& pred) {
    const auto deadline = std::chrono::steady_clock::now() + kWait;
    while (!pred()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait_for(lock, 5ms);
    }
    return true;
  }
  // The n-th triggered id (1-based), waiting for it.
  uint64_t triggered(size_t n) {
    EXPECT_TRUE(wait([&] { return triggered_count() >= n; })) << "no trigger #" << n;
    std::lock_guard<std::mutex> lock(mu_);
    return triggered_.size() >= n ? triggered_[n - 1] : 0;
  }
  size_t triggered_count() {
    std::lock_guard<std::mutex> lock(mu_);
    return triggered_.size();
  }
  std::vector<uint64_t> completed() {
    std::lock_guard<std::mutex> lock(mu_);
    return completed_;
  }
  std::vector<uint64_t> aborted() {
    std::lock_guard<std::mutex> lock(mu_);
    return aborted_;
  }
  std::vector<uint64_t> stops() {
    std::lock_guard<std::mutex> lock(mu_);
    return stops_;
  }
  int final_complete() {
    std::lock_guard<std::mutex> lock(mu_);
    return final_complete_;
  }
  int attempts() {
    std::lock_guard<std::mutex> lock(mu_);
    return attempts_;
  }
  bool has(const std::vector<uint64_t>& v, uint64_t id) {
    return std::find(v.begin(), v.end(), id) != v.end();
  }
  bool wait_completed(uint64_t id) {
    return wait([&] { return has(completed(), id); });
  }
  bool wait_aborted(uint64_t id) {
    return wait([&] { return has(aborted(), id); });
  }

 private:
  void record(std::vector<uint64_t>& v, uint64_t id) {
    std::lock_guard<std::mutex> lock(mu_);
    v.push_back(id);
    cv_.notify_all();
  }
  const size_t tasks_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool accept_ = true;
  int attempts_ = 0;
  std::vector<uint64_t> triggered_, completed_, aborted_, stops_;
  int final_complete_ = 0;
};

// One stateful subtask: a real RocksDB store whose snapshots are RocksDB
// checkpoints, as an operator's snapshot() writes them.
struct Subtask {
  Subtask(std::string node_id, int sub, const std::string& dir)
      : node(std::move(node_id)), subtask(sub) {
    auto kv = state::open_rocksdb({dir});
    EXPECT_TRUE(kv.ok()) << kv.status().to_string();
    store = std::move(kv).value();
  }
  void put(int from, int to, size_t value_size = 100) {
    state::WriteBatch b;
    for (int i = from; i < to; ++i) {
      b.put("key-" + std::to_string(i), std::string(value_size, static_cast<char>('a' + i % 26)));
    }
    ASSERT_TRUE(store->write(b).ok());
  }
  runtime::NodeSnapshot snapshot(const std::string& snapshot_root, uint64_t id) {
    const std::string dir = snapshot_root + "/" +
                            (id == runtime::kFinalCheckpoint ? "final" : std::to_string(id)) + "/" +
                            node + "/" + std::to_string(subtask);
    fs::create_directories(fs::path(dir).parent_path());
    Status st = store->checkpoint_to(dir);
    EXPECT_TRUE(st.ok()) << st.to_string();
    runtime::NodeSnapshot n;
    n.node_id = node;
    n.subtask = subtask;
    n.files_dir = dir;
    n.meta = R"({"count": )" +
             std::to_string(id == runtime::kFinalCheckpoint ? -1 : static_cast<int64_t>(id)) + "}";
    return n;
  }
  std::string node;
  int subtask;
  std::unique_ptr<state::KvStore> store;
};

runtime::NodeSnapshot source_snapshot(uint64_t id, int64_t offset) {
  (void)id;
  runtime::NodeSnapshot n;
  n.node_id = "src";
  n.subtask = 0;
  n.meta = R"({"offset": )" + std::to_string(offset) + "}";
  n.max_event_time = 1000 + offset;
  return n;
}

runtime::TaskSnapshot task(uint64_t id, size_t vertex, int subtask,
                           std::vector<runtime::NodeSnapshot> nodes) {
  runtime::TaskSnapshot t;
  t.checkpoint_id = id;
  t.vertex = vertex;
  t.subtask = subtask;
  t.nodes = std::move(nodes);
  return t;
}

// The plan of the tests' pipeline: src (1) -> w (parallelism n).
runtime::PhysicalPlan plan_of(int w_parallelism) {
  runtime::PhysicalPlan plan;
  plan.pipeline_name = "p";
  runtime::PhysicalVertex src;
  src.chain.push_back(
      runtime::PlanNode{"src", "generator", runtime::NodeRole::kSource, nullptr, std::nullopt});
  runtime::PhysicalVertex w;
  w.chain.push_back(
      runtime::PlanNode{"w", "window", runtime::NodeRole::kTransform, nullptr, std::nullopt});
  w.parallelism = w_parallelism;
  plan.vertices = {src, w};
  return plan;
}

class CoordinatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = open_storage(tmp_.file("storage"));
    ASSERT_TRUE(s.ok()) << s.status().to_string();
    storage_ = std::move(s).value();
    snapshots_ = tmp_.file("snapshots");
    fs::create_directories(snapshots_);
  }

  CheckpointSettings settings() const {
    CheckpointSettings s;
    s.pipeline = "p";
    s.retained = 3;
    s.pipeline_text = "name: p\nsources: []\n";
    s.pipeline_version = sha256_hex(s.pipeline_text);
    s.timeout = Millis(5000);
    return s;
  }

  Manifest manifest(uint64_t id) {
    Result<std::string> text = storage_->get_bytes(manifest_key("p", id));
    EXPECT_TRUE(text.ok()) << text.status().to_string();
    if (!text.ok()) return {};
    Result<Manifest> m = parse_manifest(*text);
    EXPECT_TRUE(m.ok()) << m.status().to_string();
    return m.ok() ? *m : Manifest{};
  }
  std::string current() {
    Result<std::string> c = storage_->get_bytes(current_key("p"));
    return c.ok() ? *c : "<none>";
  }
  std::set<std::string> keys(const std::string& prefix) {
    std::set<std::string> out;
    auto l = storage_->list(prefix);
    EXPECT_TRUE(l.ok());
    if (l.ok()) {
      for (const ObjectInfo& o : *l) out.insert(o.key);
    }
    return out;
  }
  std::string object_path(const std::string& key) const { return tmp_.file("storage") + "/" + key; }
  static bool wait_gone(const std::string& dir) {
    auto deadline = std::chrono::steady_clock::now() + kWait;
    while (fs::exists(dir)) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::sleep_for(5ms);
    }
    return true;
  }

  // One full checkpoint: trigger #n, both tasks ack.
  uint64_t checkpoint(CheckpointCoordinator& c, RecordingTarget& target, size_t n, Subtask& w,
                      int64_t offset) {
    c.request_checkpoint();
    const uint64_t id = target.triggered(n);
    c.on_task_snapshot(task(id, 0, 0, {source_snapshot(id, offset)}));
    c.on_task_snapshot(task(id, 1, 0, {w.snapshot(snapshots_, id)}));
    EXPECT_TRUE(target.wait_completed(id)) << "checkpoint " << id << " did not complete";
    return id;
  }

  test::TempDir tmp_;
  std::unique_ptr<CheckpointStorage> storage_;
  std::string snapshots_;
};

uint64_t sst_bytes(const Manifest& m) {
  uint64_t n = 0;
  for (const TaskEntry& t : m.tasks) {
    for (const FileRef& f : t.files) {
      if (f.name.size() > 4 && f.name.substr(f.name.size() - 4) == ".sst") n += f.size;
    }
  }
  return n;
}

std::set<std::string> sst_keys(const Manifest& m) {
  std::set<std::string> out;
  for (const TaskEntry& t : m.tasks) {
    for (const FileRef& f : t.files) {
      if (f.name.size() > 4 && f.name.substr(f.name.size() - 4) == ".sst") out.insert(f.key);
    }
  }
  return out;
}

TEST_F(CoordinatorTest, CompletesCheckpointsAndUploadsUnchangedSstsOnce) {
  Subtask w("w", 0, tmp_.file("state/w/0"));
  w.put(0, 5000);
  CheckpointSettings s = settings();
  s.compression = true;
  CheckpointCoordinator c(*storage_, s);
  RecordingTarget target(2);
  c.start(target);

  const uint64_t first = checkpoint(c, target, 1, w, 10);
  EXPECT_EQ(first, 1u);
  EXPECT_EQ(current(), "1\n");
  Manifest m1 = manifest(1);
  EXPECT_EQ(m1.kind, "periodic");
  EXPECT_EQ(m1.pipeline_version, s.pipeline_version);
  ASSERT_TRUE(m1.pipeline_file.has_value());
  EXPECT_TRUE(m1.pipeline_file->compressed);
  ASSERT_EQ(m1.tasks.size(), 2u);
  EXPECT_EQ(m1.tasks[0].node, "src");
  EXPECT_EQ(m1.tasks[0].meta["offset"], 10);
  EXPECT_EQ(m1.tasks[0].max_event_time, 1010);
  EXPECT_EQ(m1.tasks[1].node, "w");
  EXPECT_GT(sst_bytes(m1), 0u);
  for (const FileRef& f : m1.tasks[1].files) {
    const bool sst = f.name.size() > 4 && f.name.substr(f.name.size() - 4) == ".sst";
    EXPECT_EQ(f.compressed, !sst) << f.name;
    EXPECT_EQ(f.key.rfind(sst ? "p/shared/w-0-" : "p/checkpoints/1/w/0/", 0), 0u) << f.key;
  }
  EXPECT_EQ(m1.incremental_bytes, m1.size_bytes);
  EXPECT_GE(m1.duration_ms, m1.sync_ms);
  EXPECT_TRUE(wait_gone(snapshots_ + "/1/w/0")) << "the snapshot dir is removed after upload";
  const std::set<std::string> shared1 = keys("p/shared/");
  EXPECT_EQ(shared1, sst_keys(m1));

  // Nothing changed: the SSTs are referenced, not uploaded again.
  const uint64_t second = checkpoint(c, target, 2, w, 20);
  EXPECT_EQ(second, 2u);
  Manifest m2 = manifest(2);
  EXPECT_EQ(sst_keys(m2), sst_keys(m1));
  EXPECT_EQ(keys("p/shared/"), shared1);
  EXPECT_LT(m2.incremental_bytes, m2.size_bytes - sst_bytes(m2) + 1);
  EXPECT_EQ(c.stats().last_incremental_bytes, m2.incremental_bytes);
  EXPECT_EQ(m2.tasks[0].meta["offset"], 20);
  EXPECT_EQ(current(), "2\n");

  // New writes: only the new SST is uploaded.
  w.put(5000, 6000);
  const uint64_t third = checkpoint(c, target, 3, w, 30);
  Manifest m3 = manifest(third);
  std::set<std::string> added;
  for (const std::string& k : sst_keys(m3)) {
    if (shared1.count(k) == 0) added.insert(k);
  }
  EXPECT_FALSE(added.empty());
  EXPECT_GT(m3.incremental_bytes, 0u);
  EXPECT_LT(m3.incremental_bytes, m3.size_bytes);
  c.stop();
  EXPECT_EQ(c.stats().completed, 3u);
  EXPECT_EQ(c.stats().failed + c.stats().aborted, 0u);
  EXPECT_TRUE(target.aborted().empty());
}

TEST_F(CoordinatorTest, RetentionDeletesOnlyWhatNoRetainedManifestReferences) {
  CheckpointSettings s = settings();
  s.retained = 2;
  CheckpointCoordinator c(*storage_, s);
  RecordingTarget target(3);
  c.start(target);

  // A store that lives through every checkpoint (its SSTs stay referenced)
  // and one rebuilt from scratch each time (its old SSTs become garbage).
  Subtask keep("w", 0, tmp_.file("state/keep"));
  keep.put(0, 1000);
  std::vector<Manifest> ms;
  for (int gen = 1; gen <= 4; ++gen) {
    Subtask fresh("w", 1, tmp_.file("state/fresh" + std::to_string(gen)));
    fresh.put(gen * 1000, gen * 1000 + 500 + gen);
    c.request_checkpoint();
    const uint64_t id = target.triggered(static_cast<size_t>(gen));
    c.on_task_snapshot(task(id, 0, 0, {source_snapshot(id, gen)}));
    c.on_task_snapshot(task(id, 1, 0, {keep.snapshot(snapshots_, id)}));
    c.on_task_snapshot(task(id, 1, 1, {fresh.snapshot(snapshots_, id)}));
    ASSERT_TRUE(target.wait_completed(id));
    ms.push_back(manifest(id));
  }
  EXPECT_EQ(ms.back().tasks.size(), 3u);
  c.stop();

  const std::set<std::string> ckpt_keys = keys("p/checkpoints/");
  for (const std::string& k : ckpt_keys) {
    EXPECT_TRUE(k.rfind("p/checkpoints/3/", 0) == 0 || k.rfind("p/checkpoints/4/", 0) == 0) << k;
  }
  std::set<std::string> referenced = sst_keys(ms[2]);
  for (const std::string& k : sst_keys(ms[3])) referenced.insert(k);
  EXPECT_EQ(keys("p/shared/"), referenced);
  // The long-lived store's SSTs from checkpoint 1 are still there.
  for (const FileRef& f : ms[0].tasks[1].files) {
    if (f.name.size() > 4 && f.name.substr(f.name.size() - 4) == ".sst") {
      EXPECT_TRUE(fs::exists(object_path(f.key))) << f.key;
    }
  }
  // The generation-1 store's SSTs are gone.
  for (const FileRef& f : ms[0].tasks[2].files) {
    if (f.name.size() > 4 && f.name.substr(f.name.size() - 4) == ".sst") {
      EXPECT_FALSE(fs::exists(object_path(f.key))) << f.key;
    }
  }
}

TEST_F(CoordinatorTest, TimedOutCheckpointIsAbortedAndLateAcksAreDiscarded) {
  Subtask w("w", 0, tmp_.file("state/w/0"));
  w.put(0, 100);
  CheckpointSettings s = settings();
  // Long enough for the next, acknowledged checkpoint to complete in time on
  // a loaded sanitizer build (300 ms was not).
  s.timeout = Millis(2000);
  CheckpointCoordinator c(*storage_, s);
  RecordingTarget target(2);
  c.start(target);

  c.request_checkpoint();
  const uint64_t id = target.triggered(1);
  c.on_task_snapshot(task(id, 0, 0, {source_snapshot(id, 1)}));
  ASSERT_TRUE(target.wait_aborted(id));
  EXPECT_EQ(c.stats().aborted, 1u);
  EXPECT_EQ(c.stats().completed, 0u);
  EXPECT_EQ(current(), "<none>");

  // The late acknowledgement is dropped and its files removed.
  runtime::NodeSnapshot late = w.snapshot(snapshots_, id);
  c.on_task_snapshot(task(id, 1, 0, {late}));
  EXPECT_TRUE(wait_gone(late.files_dir));

  // The next checkpoint has a larger id and completes; retention removes
  // what the aborted one left behind.
  const uint64_t next = checkpoint(c, target, 2, w, 2);
  EXPECT_GT(next, id);
  EXPECT_EQ(current(), std::to_string(next) + "\n");
  for (const std::string& k : keys("p/checkpoints/")) {
    EXPECT_EQ(k.rfind("p/checkpoints/" + std::to_string(id) + "/", 0), std::string::npos) << k;
  }
  c.stop();
}

TEST_F(CoordinatorTest, FailedTaskSnapshotFailsTheCheckpoint) {
  Subtask w("w", 0, tmp_.file("state/w/0"));
  w.put(0, 100);
  CheckpointCoordinator c(*storage_, settings());
  RecordingTarget target(2);
  c.start(target);
  c.request_checkpoint();
  const uint64_t id = target.triggered(1);
  c.on_task_snapshot(task(id, 0, 0, {source_snapshot(id, 1)}));
  c.on_task_snapshot_failed(id, 1, 0, Status::io_error("disk full"));
  ASSERT_TRUE(target.wait_aborted(id));
  EXPECT_EQ(c.stats().failed, 1u);
  EXPECT_FALSE(storage_->get_bytes(manifest_key("p", id)).ok());
  // Checkpoints go on afterwards.
  const uint64_t next = checkpoint(c, target, 2, w, 2);
  EXPECT_EQ(next, id + 1);
  c.stop();
}

TEST_F(CoordinatorTest, UnparsableMetaFailsTheCheckpoint) {
  CheckpointCoordinator c(*storage_, settings());
  RecordingTarget target(1);
  c.start(target);
  c.request_checkpoint();
  const uint64_t id = target.triggered(1);
  runtime::NodeSnapshot bad = source_snapshot(id, 1);
  bad.meta = "{not json";
  c.on_task_snapshot(task(id, 0, 0, {bad}));
  ASSERT_TRUE(target.wait_aborted(id));
  EXPECT_EQ(c.stats().failed, 1u);
  c.stop();
}

TEST_F(CoordinatorTest, FinalSnapshotsStandInForFinishedTasksAndEndWithAFinalCheckpoint) {
  Subtask w("w", 0, tmp_.file("state/w/0"));
  w.put(0, 1000);
  CheckpointCoordinator c(*storage_, settings());
  RecordingTarget target(2);
  c.start(target);

  // The source finished before checkpoint 1: its final snapshot stands in.
  c.on_task_snapshot(task(runtime::kFinalCheckpoint, 0, 0, {source_snapshot(0, 99)}));
  c.request_checkpoint();
  const uint64_t id = target.triggered(1);
  c.on_task_snapshot(task(id, 1, 0, {w.snapshot(snapshots_, id)}));
  ASSERT_TRUE(target.wait_completed(id));
  Manifest m1 = manifest(id);
  ASSERT_EQ(m1.tasks.size(), 2u);
  EXPECT_EQ(m1.tasks[0].meta["offset"], 99);
  EXPECT_EQ(target.final_complete(), 0);

  // Then w finishes: one last checkpoint of kind "final".
  w.put(1000, 1200);
  c.on_task_snapshot(
      task(runtime::kFinalCheckpoint, 1, 0, {w.snapshot(snapshots_, runtime::kFinalCheckpoint)}));
  ASSERT_TRUE(target.wait([&] { return target.final_complete() == 1; }));
  const uint64_t final_id = c.stats().last_id;
  EXPECT_EQ(final_id, id + 1);
  Manifest mf = manifest(final_id);
  EXPECT_EQ(mf.kind, "final");
  ASSERT_EQ(mf.tasks.size(), 2u);
  EXPECT_EQ(mf.tasks[1].meta["count"], -1);
  EXPECT_EQ(current(), std::to_string(final_id) + "\n");
  // The final snapshot's files are shared (referenced by later checkpoints).
  for (const FileRef& f : mf.tasks[1].files) EXPECT_EQ(f.key.rfind("p/shared/", 0), 0u) << f.key;
  EXPECT_TRUE(wait_gone(snapshots_ + "/final/w/0"));
  c.stop();
  EXPECT_TRUE(target.aborted().empty());
}

TEST_F(CoordinatorTest, StopWithCheckpointWaitsForTheCheckpointInFlight) {
  Subtask w("w", 0, tmp_.file("state/w/0"));
  w.put(0, 100);
  CheckpointCoordinator c(*storage_, settings());
  RecordingTarget target(2);
  c.start(target);
  c.request_checkpoint();
  const uint64_t id = target.triggered(1);
  c.request_stop_with_checkpoint();  // does not block
  std::this_thread::sleep_for(150ms);
  EXPECT_TRUE(target.stops().empty()) << "a stop is not sent while a checkpoint is in flight";
  c.on_task_snapshot(task(id, 0, 0, {source_snapshot(id, 1)}));
  c.on_task_snapshot(task(id, 1, 0, {w.snapshot(snapshots_, id)}));
  ASSERT_TRUE(target.wait_completed(id));
  ASSERT_TRUE(target.wait([&] { return !target.stops().empty(); }));
  const uint64_t stop_id = target.stops().front();
  EXPECT_EQ(stop_id, id + 1);
  c.on_task_snapshot(task(stop_id, 0, 0, {source_snapshot(stop_id, 2)}));
  c.on_task_snapshot(task(stop_id, 1, 0, {w.snapshot(snapshots_, stop_id)}));
  ASSERT_TRUE(target.wait_completed(stop_id));
  EXPECT_EQ(manifest(stop_id).kind, "stop");
  // No periodic trigger after the stop.
  c.request_checkpoint();
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(target.attempts(), 1);
  c.stop();
}

TEST_F(CoordinatorTest, RefusedTriggersAreRetriedAndIntervalTriggers) {
  CheckpointSettings s = settings();
  s.interval = Millis(50);
  CheckpointCoordinator c(*storage_, s);
  RecordingTarget target(1);
  target.set_accept(false);  // the run has not started yet
  c.start(target);
  ASSERT_TRUE(target.wait([&] { return target.attempts() >= 2; }));
  target.set_accept(true);
  const uint64_t id = target.triggered(1);
  EXPECT_EQ(id, 1u);
  c.on_task_snapshot(task(id, 0, 0, {source_snapshot(id, 1)}));
  ASSERT_TRUE(target.wait_completed(id));
  // The interval triggers the next one by itself.
  const uint64_t next = target.triggered(2);
  EXPECT_EQ(next, 2u);
  c.stop();
}

// --- restore -------------------------------------------------------------

class RestoreTest : public CoordinatorTest {
 protected:
  // Three checkpoints (1, 2, 3) of src + w/0 with growing state, written by
  // a coordinator; the store is closed afterwards.
  void make_checkpoints() {
    Subtask w("w", 0, tmp_.file("state-orig/w/0"));
    CheckpointCoordinator c(*storage_, settings());
    RecordingTarget target(2);
    c.start(target);
    for (int i = 1; i <= 3; ++i) {
      w.put((i - 1) * 1000, i * 1000);
      checkpoint(c, target, static_cast<size_t>(i), w, i * 10);
    }
    c.stop();
  }
  // Reads how many keys the restored store holds.
  static int count_keys(const std::string& dir) {
    auto kv = state::open_rocksdb({dir});
    EXPECT_TRUE(kv.ok()) << kv.status().to_string();
    if (!kv.ok()) return -1;
    int n = 0;
    EXPECT_TRUE((*kv)
                    ->scan("", "",
                           [&](std::string_view, std::string_view) {
                             ++n;
                             return true;
                           })
                    .ok());
    return n;
  }
  std::string sst_object_of(uint64_t id) {
    for (const FileRef& f : manifest(id).tasks[1].files) {
      if (f.name.size() > 4 && f.name.substr(f.name.size() - 4) == ".sst")
        return object_path(f.key);
    }
    return "";
  }
};

TEST_F(RestoreTest, NoCheckpointGivesNothingAndEmptiesTheStateRoot) {
  tmp_.write("state/w/0/stale", "x");
  CheckpointCoordinator c(*storage_, settings());
  auto r = c.restore(plan_of(1), tmp_.file("state"));
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_FALSE(r->has_value());
  EXPECT_FALSE(fs::exists(tmp_.file("state/w")));
}

TEST_F(RestoreTest, RestoresTheCurrentCheckpointAndContinuesIncrementally) {
  make_checkpoints();
  tmp_.write("state/w/0/stale", "x");
  CheckpointCoordinator c(*storage_, settings());
  auto r = c.restore(plan_of(1), tmp_.file("state"));
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  ASSERT_TRUE(r->has_value());
  const RestorePoint& point = **r;
  EXPECT_EQ(point.checkpoint_id, 3u);
  EXPECT_TRUE(point.warnings.empty());
  EXPECT_EQ(point.state.at({"src", 0}).meta, R"({"offset":30})");
  EXPECT_EQ(point.state.at({"src", 0}).max_event_time, 1030);
  EXPECT_EQ(point.state.at({"w", 0}).meta, R"({"count":3})");
  EXPECT_FALSE(fs::exists(tmp_.file("state/w/0/stale")));
  EXPECT_FALSE(fs::exists(tmp_.file("state/.restore-staging")));

  // The restored store has every key; its next checkpoint (id 4) references
  // the restored SSTs instead of uploading them again.
  const std::set<std::string> shared_before = keys("p/shared/");
  {
    Subtask w("w", 0, tmp_.file("state/w/0"));
    int n = 0;
    ASSERT_TRUE(w.store
                    ->scan("", "",
                           [&](std::string_view, std::string_view) {
                             ++n;
                             return true;
                           })
                    .ok());
    EXPECT_EQ(n, 3000);
    RecordingTarget target(2);
    c.start(target);
    const uint64_t id = checkpoint(c, target, 1, w, 40);
    EXPECT_EQ(id, 4u);
    Manifest m4 = manifest(4);
    EXPECT_EQ(sst_keys(m4), sst_keys(manifest(3)));
    EXPECT_LE(m4.incremental_bytes, m4.size_bytes - sst_bytes(m4));
    c.stop();
  }
  EXPECT_EQ(keys("p/shared/"), shared_before);
}

TEST_F(RestoreTest, FallsBackOverCorruptCheckpointsWithWarnings) {
  make_checkpoints();
  // 3: truncated manifest; 2: a flipped byte in an SST only it references.
  {
    const std::string path = object_path(manifest_key("p", 3));
    const std::string text = test::read_file(path);
    test::write_file(path, text.substr(0, text.size() / 2));
  }
  std::string flipped;
  {
    const std::set<std::string> only2 = [&] {
      std::set<std::string> out;
      for (const std::string& k : sst_keys(manifest(2))) {
        if (sst_keys(manifest(1)).count(k) == 0) out.insert(k);
      }
      return out;
    }();
    ASSERT_FALSE(only2.empty());
    flipped = object_path(*only2.begin());
    std::fstream f(flipped, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(100);
    char b = 0;
    f.read(&b, 1);
    b = static_cast<char>(b ^ 0x5a);
    f.seekp(100);
    f.write(&b, 1);
  }
  CheckpointCoordinator c(*storage_, settings());
  auto r = c.restore(plan_of(1), tmp_.file("state"));
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  ASSERT_TRUE(r->has_value());
  const RestorePoint& point = **r;
  EXPECT_EQ(point.checkpoint_id, 1u);
  ASSERT_EQ(point.warnings.size(), 2u);
  EXPECT_EQ(point.warnings[0],
            "checkpoint 3: manifest of checkpoint 3 is truncated or not JSON; used checkpoint 1");
  EXPECT_NE(point.warnings[1].find("checkpoint 2: file "), std::string::npos) << point.warnings[1];
  EXPECT_NE(point.warnings[1].find("sha256 mismatch; used checkpoint 1"), std::string::npos)
      << point.warnings[1];
  EXPECT_EQ(count_keys(tmp_.file("state/w/0")), 1000);
  EXPECT_EQ(point.state.at({"src", 0}).meta, R"({"offset":10})");
}

TEST_F(RestoreTest, MissingCurrentUsesTheNewestCheckpoint) {
  make_checkpoints();
  ASSERT_TRUE(storage_->remove(current_key("p")).ok());
  CheckpointCoordinator c(*storage_, settings());
  auto r = c.restore(plan_of(1), tmp_.file("state"));
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  ASSERT_TRUE(r->has_value());
  EXPECT_EQ((*r)->checkpoint_id, 3u);
  ASSERT_EQ((*r)->warnings.size(), 1u);
  EXPECT_EQ((*r)->warnings[0], "_CURRENT is missing; using checkpoint 3");
  EXPECT_EQ(count_keys(tmp_.file("state/w/0")), 3000);
}

TEST_F(RestoreTest, FollowsCurrentAfterRollback) {
  make_checkpoints();
  auto rolled = rollback(*storage_, "p", 1, std::nullopt);
  ASSERT_TRUE(rolled.ok()) << rolled.status().to_string();
  EXPECT_EQ(*rolled, 2u);
  CheckpointCoordinator c(*storage_, settings());
  auto r = c.restore(plan_of(1), tmp_.file("state"));
  ASSERT_TRUE(r.ok() && r->has_value());
  EXPECT_EQ((*r)->checkpoint_id, 2u);
  EXPECT_EQ(count_keys(tmp_.file("state/w/0")), 2000);
  // The next checkpoint continues after the highest stored id.
  RecordingTarget target(2);
  c.start(target);
  c.request_checkpoint();
  EXPECT_EQ(target.triggered(1), 4u);
  c.stop();
}

TEST_F(RestoreTest, NothingUsableIsAnErrorListingEveryCheckpointTried) {
  make_checkpoints();
  for (uint64_t id : {1, 2, 3}) {
    const std::string path = object_path(manifest_key("p", id));
    std::string text = test::read_file(path);
    const size_t pos = text.find("\"kind\":\"periodic\"");
    ASSERT_NE(pos, std::string::npos);
    text.replace(pos, 17, "\"kind\":\"PERIODIC\"");
    test::write_file(path, text);
  }
  CheckpointCoordinator c(*storage_, settings());
  auto r = c.restore(plan_of(1), tmp_.file("state"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kDataError);
  EXPECT_EQ(r.status().message(),
            "no usable checkpoint for pipeline p: "
            "checkpoint 3: manifest of checkpoint 3 has a checksum mismatch, "
            "checkpoint 2: manifest of checkpoint 2 has a checksum mismatch, "
            "checkpoint 1: manifest of checkpoint 1 has a checksum mismatch");
}

TEST_F(RestoreTest, ChangedParallelismIsAClearError) {
  make_checkpoints();
  CheckpointCoordinator c(*storage_, settings());
  auto r = c.restore(plan_of(4), tmp_.file("state"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(),
            "node 'w' was checkpointed with parallelism 1 but now runs with 4; rescaling state "
            "is not supported");
}

TEST_F(RestoreTest, RefusesAStateRootThatHoldsTheStorage) {
  CheckpointCoordinator c(*storage_, settings());
  auto r = c.restore(plan_of(1), tmp_.str());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(fs::exists(tmp_.file("storage")));
}

// Restore speed: DF_RESTORE_BENCH_MB (default 64) of SST files plus small
// files, written with write_checkpoint, restored from local storage.
TEST_F(RestoreTest, RestoreSpeed) {
  const char* env = std::getenv("DF_RESTORE_BENCH_MB");
  const uint64_t mb = env ? std::strtoull(env, nullptr, 10) : 64;
  const uint64_t file_mb = 32;
  const std::string dir = tmp_.file("bench/w/0");
  fs::create_directories(dir);
  std::string chunk(1 << 20, '\0');
  for (size_t i = 0; i < chunk.size(); ++i) chunk[i] = static_cast<char>((i * 2654435761u) >> 13);
  for (uint64_t f = 0; f * file_mb < mb; ++f) {
    std::ofstream out(dir + "/" + std::to_string(100000 + f) + ".sst", std::ios::binary);
    for (uint64_t i = 0; i < file_mb && f * file_mb + i < mb; ++i) {
      chunk[0] = static_cast<char>(f);
      chunk[1] = static_cast<char>(i);
      out.write(chunk.data(), static_cast<std::streamsize>(chunk.size()));
    }
  }
  test::write_file(dir + "/MANIFEST-000001", std::string(4096, 'm'));
  test::write_file(dir + "/CURRENT", "MANIFEST-000001\n");
  Manifest base;
  base.pipeline = "p";
  base.tasks.resize(2);
  base.tasks[0].node = "src";
  base.tasks[1].node = "w";
  auto wrote = write_checkpoint(*storage_, base, {{{"w", 0}, dir}}, {});
  ASSERT_TRUE(wrote.ok()) << wrote.status().to_string();
  fs::remove_all(tmp_.file("bench"));

  CheckpointCoordinator c(*storage_, settings());
  auto cpu_seconds = [] {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
           static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
  };
  const double cpu0 = cpu_seconds();
  const auto t0 = std::chrono::steady_clock::now();
  auto r = c.restore(plan_of(1), tmp_.file("state"));
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double cpu = cpu_seconds() - cpu0;
  ASSERT_TRUE(r.ok() && r->has_value()) << r.status().to_string();
  EXPECT_EQ((*r)->bytes, mb * (1 << 20) + 4096 + 16);
  // SSTs are hard links to local storage's objects, the rest are copies.
  EXPECT_GT(fs::hard_link_count(tmp_.file("state/w/0/100000.sst")), 1u);
  EXPECT_EQ(fs::hard_link_count(tmp_.file("state/w/0/MANIFEST-000001")), 1u);
  // Wall time depends on what else the machine runs; CPU time is what the
  // restore costs (SHA-256 of every byte, on several threads).
  std::printf("restore of %llu MiB in %zu files: %.3f s wall (%.0f MiB/s), %.3f s CPU\n",
              static_cast<unsigned long long>(mb), (*r)->files, secs,
              static_cast<double>(mb) / secs, cpu);
  if (std::getenv("DF_RESTORE_BENCH_MAX_S") != nullptr) {
    EXPECT_LT(secs, std::strtod(std::getenv("DF_RESTORE_BENCH_MAX_S"), nullptr));
  }
}

}  // namespace
}  // namespace df::checkpoint
