// Checkpoint history on real local storage: write_checkpoint (the import
// path) from real RocksDB directories, list_checkpoints, rollback.
#include "engine/checkpoint/history.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <set>

#include "engine/checkpoint/manifest.h"
#include "engine/state/state_backend.h"
#include "tests/support/temp_dir.h"

namespace df::checkpoint {
namespace {

namespace fs = std::filesystem;

class HistoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = open_storage(tmp_.file("storage"));
    ASSERT_TRUE(s.ok()) << s.status().to_string();
    storage_ = std::move(s).value();
  }

  // A RocksDB store with `keys` entries, written and closed at `dir`.
  void make_store(const std::string& dir, int keys) {
    auto kv = state::open_rocksdb({dir});
    ASSERT_TRUE(kv.ok()) << kv.status().to_string();
    state::WriteBatch b;
    for (int i = 0; i < keys; ++i) b.put("k" + std::to_string(i), std::string(50, 'v'));
    ASSERT_TRUE((*kv)->write(b).ok());
    ASSERT_TRUE((*kv)->flush().ok());
  }

  // Writes a checkpoint of src + w/0 (a store of `keys` entries).
  uint64_t write(int keys, const std::string& kind = "import", bool compression = false) {
    const std::string dir = tmp_.file("staging/" + std::to_string(++n_));
    make_store(dir, keys);
    Manifest base;
    base.pipeline = "p";
    base.pipeline_version = "v1";
    base.tasks.resize(2);
    base.tasks[0].node = "src";
    base.tasks[0].meta = nlohmann::json{{"offset", keys}};
    base.tasks[1].node = "w";
    base.tasks[1].max_event_time = 42;
    WriteCheckpointOptions o;
    o.kind = kind;
    o.compression = compression;
    o.pipeline_text = "name: p\n";
    auto id = write_checkpoint(*storage_, base, {{{"w", 0}, dir}}, o);
    EXPECT_TRUE(id.ok()) << id.status().to_string();
    EXPECT_TRUE(fs::exists(dir)) << "local directories are left to the caller";
    return id.ok() ? *id : 0;
  }

  std::string current() {
    auto c = storage_->get_bytes(current_key("p"));
    return c.ok() ? *c : "<none>";
  }
  size_t object_count() {
    auto l = storage_->list("p/");
    return l.ok() ? l->size() : 0;
  }
  void corrupt_manifest(uint64_t id) {
    const std::string path = tmp_.file("storage/" + manifest_key("p", id));
    const std::string text = test::read_file(path);
    test::write_file(path, text.substr(0, text.size() - 10));
  }

  test::TempDir tmp_;
  std::unique_ptr<CheckpointStorage> storage_;
  int n_ = 0;
};

TEST_F(HistoryTest, WriteCheckpointStoresACompleteImportCheckpoint) {
  EXPECT_EQ(write(100, "import", /*compression=*/true), 1u);
  EXPECT_EQ(current(), "1\n");
  auto text = storage_->get_bytes(manifest_key("p", 1));
  ASSERT_TRUE(text.ok());
  auto m = parse_manifest(*text);
  ASSERT_TRUE(m.ok()) << m.status().to_string();
  EXPECT_EQ(m->kind, "import");
  EXPECT_EQ(m->pipeline_version, "v1");
  ASSERT_EQ(m->tasks.size(), 2u);
  EXPECT_EQ(m->tasks[0].meta["offset"], 100);
  EXPECT_TRUE(m->tasks[0].files.empty());
  EXPECT_EQ(m->tasks[1].max_event_time, 42);
  bool has_sst = false;
  uint64_t size = 0;
  for (const FileRef& f : m->tasks[1].files) {
    const bool sst = f.name.size() > 4 && f.name.substr(f.name.size() - 4) == ".sst";
    has_sst = has_sst || sst;
    EXPECT_EQ(f.compressed, !sst) << f.name;
    EXPECT_EQ(f.key.rfind(sst ? "p/shared/w-0-" : "p/checkpoints/1/w/0/", 0), 0u) << f.key;
    size += f.size;
  }
  EXPECT_TRUE(has_sst);
  EXPECT_EQ(m->size_bytes, size);
  ASSERT_TRUE(m->pipeline_file.has_value());
  EXPECT_TRUE(m->pipeline_file->compressed);
  // The next one gets the next id.
  EXPECT_EQ(write(200), 2u);
  EXPECT_EQ(current(), "2\n");
}

TEST_F(HistoryTest, WriteCheckpointRefusesFilesWithoutATaskEntry) {
  const std::string dir = tmp_.file("orphan");
  make_store(dir, 10);
  Manifest base;
  base.pipeline = "p";
  base.tasks.resize(1);
  base.tasks[0].node = "src";
  auto id = write_checkpoint(*storage_, base, {{{"w", 0}, dir}});
  ASSERT_FALSE(id.ok());
  EXPECT_EQ(id.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(object_count(), 0u);
}

TEST_F(HistoryTest, ListsNewestFirstWithCurrentAndInvalidOnes) {
  auto empty = list_checkpoints(*storage_, "p");
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());

  write(10, "periodic");
  write(20, "stop");
  write(30, "final");
  corrupt_manifest(2);
  auto list = list_checkpoints(*storage_, "p");
  ASSERT_TRUE(list.ok()) << list.status().to_string();
  ASSERT_EQ(list->size(), 3u);
  EXPECT_EQ((*list)[0].id, 3u);
  EXPECT_TRUE((*list)[0].current);
  EXPECT_TRUE((*list)[0].valid);
  EXPECT_EQ((*list)[0].kind, "final");
  EXPECT_GT((*list)[0].size_bytes, 0u);
  EXPECT_EQ((*list)[0].incremental_bytes, (*list)[0].size_bytes);
  EXPECT_FALSE((*list)[0].created.empty());
  EXPECT_EQ((*list)[1].id, 2u);
  EXPECT_FALSE((*list)[1].valid);
  EXPECT_EQ((*list)[1].problem, "manifest of checkpoint 2 is truncated or not JSON");
  EXPECT_FALSE((*list)[1].current);
  EXPECT_EQ((*list)[2].id, 1u);
  EXPECT_EQ((*list)[2].kind, "periodic");
}

TEST_F(HistoryTest, RollbackMovesCurrentOnlyAndDeletesNothing) {
  write(10);
  write(20);
  write(30);
  write(40);
  const size_t objects = object_count();

  auto r = rollback(*storage_, "p", 1, std::nullopt);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(*r, 3u);
  EXPECT_EQ(current(), "3\n");
  // Offsets count from the current checkpoint.
  r = rollback(*storage_, "p", 2, std::nullopt);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(*r, 1u);
  r = rollback(*storage_, "p", std::nullopt, 4);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, 4u);
  r = rollback(*storage_, "p", std::nullopt, std::nullopt);  // offset 1
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, 3u);
  EXPECT_EQ(object_count(), objects + 0) << "rollback deletes nothing";

  auto out = rollback(*storage_, "p", 3, std::nullopt);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(out.status().message(),
            "offset 3 is out of range: checkpoint 3 of pipeline p has 2 older checkpoints");
  auto missing = rollback(*storage_, "p", std::nullopt, 9);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().message(), "pipeline p has no checkpoint 9");
  auto both = rollback(*storage_, "p", 1, 2);
  EXPECT_EQ(both.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(current(), "3\n");

  corrupt_manifest(2);
  auto bad = rollback(*storage_, "p", 1, std::nullopt);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kDataError);
  EXPECT_EQ(bad.status().message(),
            "cannot roll back to checkpoint 2: manifest of checkpoint 2 is truncated or not JSON");
  EXPECT_EQ(current(), "3\n");
}

TEST_F(HistoryTest, RollbackWithoutCurrentCountsFromTheNewest) {
  write(10);
  write(20);
  ASSERT_TRUE(storage_->remove(current_key("p")).ok());
  auto r = rollback(*storage_, "p", 1, std::nullopt);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(*r, 1u);
  auto none = rollback(*storage_, "other", 1, std::nullopt);
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace df::checkpoint
