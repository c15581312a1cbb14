// KvStore conformance: the memory and RocksDB stores pass the same tests;
// RocksDB-only behaviour (reopen, checkpoints, errors) after them.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <random>

#include "engine/state/state_backend.h"
#include "tests/support/temp_dir.h"

namespace df::state {
namespace {

using namespace std::string_literals;

enum class Backend { kMemory, kRocksDb };

class StoreTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    if (GetParam() == Backend::kMemory) {
      store_ = open_memory();
    } else {
      auto s = open_rocksdb({dir_.file("db")});
      ASSERT_TRUE(s.ok()) << s.status().to_string();
      store_ = std::move(s).value();
    }
  }

  std::optional<std::string> get(std::string_view k) {
    auto r = store_->get(k);
    EXPECT_TRUE(r.ok()) << r.status().to_string();
    return r.ok() ? *r : std::nullopt;
  }

  std::vector<std::pair<std::string, std::string>> scan(std::string_view begin,
                                                        std::string_view end, size_t limit = 1000) {
    std::vector<std::pair<std::string, std::string>> out;
    Status s = store_->scan(begin, end, [&](std::string_view k, std::string_view v) {
      out.emplace_back(std::string(k), std::string(v));
      return out.size() < limit;
    });
    EXPECT_TRUE(s.ok()) << s.to_string();
    return out;
  }

  std::vector<std::string> keys(std::string_view begin, std::string_view end) {
    std::vector<std::string> out;
    for (auto& [k, v] : scan(begin, end)) out.push_back(k);
    return out;
  }

  test::TempDir dir_;
  std::unique_ptr<KvStore> store_;
};

TEST_P(StoreTest, PutGetOverwriteRemove) {
  EXPECT_EQ(get("a"), std::nullopt);
  ASSERT_TRUE(store_->put("a", "1").ok());
  EXPECT_EQ(get("a"), "1");
  ASSERT_TRUE(store_->put("a", "22").ok());
  EXPECT_EQ(get("a"), "22");
  ASSERT_TRUE(store_->put("a\0b"s, "\0x\0"s).ok());
  EXPECT_EQ(get("a\0b"s), "\0x\0"s);
  EXPECT_EQ(get("a"), "22");
  ASSERT_TRUE(store_->put("e", "").ok());
  EXPECT_EQ(get("e"), "");  // empty value is present, not absent
  ASSERT_TRUE(store_->remove("a").ok());
  EXPECT_EQ(get("a"), std::nullopt);
  ASSERT_TRUE(store_->remove("never-there").ok());
}

TEST_P(StoreTest, WriteBatchAppliesAllOpsInOrder) {
  ASSERT_TRUE(store_->put("old", "x").ok());
  ASSERT_TRUE(store_->put("gone", "x").ok());
  WriteBatch b;
  b.put("k1", "v1");
  b.put("k2", "v2");
  b.remove("gone");
  b.put("k3", "first");
  b.put("k3", "second");  // later op wins
  b.put("k4", "v4");
  b.remove("k4");  // put then remove: absent
  b.remove("k5");
  b.put("k5", "v5");  // remove then put: present
  EXPECT_EQ(b.size(), 9u);
  ASSERT_TRUE(store_->write(b).ok());
  EXPECT_EQ(get("k1"), "v1");
  EXPECT_EQ(get("k2"), "v2");
  EXPECT_EQ(get("gone"), std::nullopt);
  EXPECT_EQ(get("k3"), "second");
  EXPECT_EQ(get("k4"), std::nullopt);
  EXPECT_EQ(get("k5"), "v5");
  EXPECT_EQ(get("old"), "x");
  ASSERT_TRUE(store_->write(WriteBatch()).ok());
}

TEST_P(StoreTest, ScansRespectBoundsAndOrder) {
  const std::vector<std::string> all = {"\0"s, "a"s, "a\0"s, "ab"s, "b"s, "ba"s, "c"s, "\xFF"s};
  // Insert in a scrambled order; scans must come back in byte order.
  for (size_t i = 0; i < all.size(); ++i) {
    const std::string& k = all[(i * 5) % all.size()];
    ASSERT_TRUE(store_->put(k, "v" + k).ok());
  }
  EXPECT_EQ(keys("", ""), all);
  EXPECT_EQ(keys("a", "b"), (std::vector<std::string>{"a", "a\0"s, "ab"}));
  EXPECT_EQ(keys("a\0"s, "ba"), (std::vector<std::string>{"a\0"s, "ab", "b"}));
  EXPECT_EQ(keys("b", ""), (std::vector<std::string>{"b", "ba", "c", "\xFF"s}));
  EXPECT_EQ(keys("bb", "c"), std::vector<std::string>{});
  EXPECT_EQ(keys("c", "a"), std::vector<std::string>{});  // end before begin
  EXPECT_EQ(keys("\xFF\xFF"s, ""), std::vector<std::string>{});
  auto limited = scan("", "", 3);  // the callback stops the scan
  ASSERT_EQ(limited.size(), 3u);
  EXPECT_EQ(limited[2].first, "a\0"s);
  EXPECT_EQ(limited[2].second, "va\0"s);
}

TEST_P(StoreTest, RemoveRange) {
  for (char c = 'a'; c <= 'h'; ++c) ASSERT_TRUE(store_->put(std::string(1, c), "v").ok());
  ASSERT_TRUE(store_->put("c\0"s, "v").ok());
  ASSERT_TRUE(store_->remove_range("c", "e").ok());
  EXPECT_EQ(keys("", ""), (std::vector<std::string>{"a", "b", "e", "f", "g", "h"}));
  ASSERT_TRUE(store_->remove_range("f", "f").ok());  // empty range
  ASSERT_TRUE(store_->remove_range("h", "a").ok());  // end before begin
  EXPECT_EQ(keys("", "").size(), 6u);
  ASSERT_TRUE(store_->remove_range("f", "").ok());  // to the last key
  EXPECT_EQ(keys("", ""), (std::vector<std::string>{"a", "b", "e"}));
  ASSERT_TRUE(store_->remove_range("", "").ok());
  EXPECT_TRUE(keys("", "").empty());
  ASSERT_TRUE(store_->remove_range("", "").ok());  // on an empty store
  ASSERT_TRUE(store_->put("z", "back").ok());      // the store still works
  EXPECT_EQ(get("z"), "back");
}

TEST_P(StoreTest, MultiGet) {
  ASSERT_TRUE(store_->put("a", "1").ok());
  ASSERT_TRUE(store_->put("c", "3").ok());
  std::vector<std::optional<std::string>> values;
  ASSERT_TRUE(store_->multi_get({"c", "b", "a", "c"}, values).ok());
  ASSERT_EQ(values.size(), 4u);
  EXPECT_EQ(values[0], "3");
  EXPECT_EQ(values[1], std::nullopt);
  EXPECT_EQ(values[2], "1");
  EXPECT_EQ(values[3], "3");
  ASSERT_TRUE(store_->multi_get({}, values).ok());
  EXPECT_TRUE(values.empty());
}

TEST_P(StoreTest, MatchesAReferenceMapUnderRandomOps) {
  std::map<std::string, std::string> model;
  std::mt19937 rng(17);
  auto rand_key = [&] {
    return std::string(1, static_cast<char>('a' + rng() % 20)) + std::to_string(rng() % 10);
  };
  for (int step = 0; step < 2000; ++step) {
    int op = static_cast<int>(rng() % 10);
    std::string k = rand_key();
    if (op < 5) {
      std::string v = std::to_string(step);
      ASSERT_TRUE(store_->put(k, v).ok());
      model[k] = v;
    } else if (op < 7) {
      ASSERT_TRUE(store_->remove(k).ok());
      model.erase(k);
    } else if (op < 8) {
      WriteBatch b;
      for (int i = 0; i < 5; ++i) {
        std::string bk = rand_key();
        if (rng() % 2) {
          b.put(bk, "b" + std::to_string(step));
          model[bk] = "b" + std::to_string(step);
        } else {
          b.remove(bk);
          model.erase(bk);
        }
      }
      ASSERT_TRUE(store_->write(b).ok());
    } else if (op < 9) {
      std::string e = rand_key();
      if (k > e) std::swap(k, e);
      ASSERT_TRUE(store_->remove_range(k, e).ok());
      model.erase(model.lower_bound(k), model.lower_bound(e));
    } else {
      auto it = model.find(k);
      EXPECT_EQ(get(k), it == model.end() ? std::nullopt : std::optional<std::string>(it->second));
    }
  }
  std::vector<std::pair<std::string, std::string>> expected(model.begin(), model.end());
  EXPECT_EQ(scan("", "", 100000), expected);
}

TEST_P(StoreTest, ApproximateSizeGrows) {
  uint64_t before = store_->approximate_size();
  for (int i = 0; i < 1000; ++i) {
    ASSERT_TRUE(store_->put("key" + std::to_string(i), std::string(100, 'x')).ok());
  }
  EXPECT_GT(store_->approximate_size(), before);
  ASSERT_TRUE(store_->flush().ok());
  EXPECT_GT(store_->approximate_size(), before);
}

INSTANTIATE_TEST_SUITE_P(Backends, StoreTest,
                         ::testing::Values(Backend::kMemory, Backend::kRocksDb),
                         [](const auto& info) {
                           return info.param == Backend::kMemory ? "Memory" : "RocksDb";
                         });

// ---- RocksDB only ----------------------------------------------------------------

TEST(RocksDbStoreTest, ReopenFindsDataWrittenWithoutWal) {
  test::TempDir dir;
  RocksDbOptions options{dir.file("db")};
  {
    auto store = open_rocksdb(options);
    ASSERT_TRUE(store.ok()) << store.status().to_string();
    for (int i = 0; i < 500; ++i) {
      ASSERT_TRUE((*store)->put("k" + std::to_string(i), "v" + std::to_string(i)).ok());
    }
    WriteBatch b;
    b.remove("k0");
    b.put("batch", "yes");
    ASSERT_TRUE((*store)->write(b).ok());
    ASSERT_TRUE((*store)->remove_range("k1", "k2").ok());  // k1, k10..k199
  }                                                        // closing flushes the memtable
  auto store = open_rocksdb(options);
  ASSERT_TRUE(store.ok()) << store.status().to_string();
  auto get = [&](const std::string& k) { return (*store)->get(k).value(); };
  EXPECT_EQ(get("k0"), std::nullopt);
  EXPECT_EQ(get("k1"), std::nullopt);
  EXPECT_EQ(get("k150"), std::nullopt);
  EXPECT_EQ(get("k2"), "v2");
  EXPECT_EQ(get("k499"), "v499");
  EXPECT_EQ(get("batch"), "yes");
  size_t n = 0;
  ASSERT_TRUE(
      (*store)->scan("", "", [&](std::string_view, std::string_view) { return ++n > 0; }).ok());
  EXPECT_EQ(n, 500u - 1 - 111 + 1);  // removed k0 and the 111 keys k1*, added "batch"
}

TEST(RocksDbStoreTest, CheckpointIsAnOpenableSnapshot) {
  test::TempDir dir;
  auto store = open_rocksdb({dir.file("db")});
  ASSERT_TRUE(store.ok());
  ASSERT_TRUE((*store)->put("a", "1").ok());
  ASSERT_TRUE((*store)->put("b", "2").ok());
  ASSERT_TRUE((*store)->checkpoint_to(dir.file("cp1")).ok());  // memtable only: must be flushed
  ASSERT_TRUE((*store)->put("a", "changed").ok());
  ASSERT_TRUE((*store)->put("c", "3").ok());
  Status again = (*store)->checkpoint_to(dir.file("cp1"));
  EXPECT_FALSE(again.ok()) << "a checkpoint dir must not exist yet";

  auto snap = open_rocksdb({dir.file("cp1")});
  ASSERT_TRUE(snap.ok()) << snap.status().to_string();
  EXPECT_EQ((*snap)->get("a").value(), "1");
  EXPECT_EQ((*snap)->get("b").value(), "2");
  EXPECT_EQ((*snap)->get("c").value(), std::nullopt);
  EXPECT_EQ((*store)->get("a").value(), "changed");
  bool has_sst = false;
  for (const auto& e : std::filesystem::directory_iterator(dir.file("cp1"))) {
    has_sst |= e.path().extension() == ".sst";
  }
  EXPECT_TRUE(has_sst);
}

// What a snapshot adds from the I/O pool: entries on top of a checkpoint,
// winning over it once the checkpoint is opened, the live store untouched.
TEST(RocksDbStoreTest, EntriesAddedToACheckpointWinAndLeaveTheStoreAlone) {
  test::TempDir dir;
  auto store = open_rocksdb({dir.file("db")});
  ASSERT_TRUE(store.ok());
  ASSERT_TRUE((*store)->put("a", "1").ok());
  ASSERT_TRUE((*store)->put("c", "3").ok());
  ASSERT_TRUE((*store)->checkpoint_to(dir.file("cp")).ok());
  CheckpointEntries added;  // out of order, as a hash table hands them over
  added.put("d", "4");
  added.remove("a");
  added.put("b", "2");
  added.put("c", "three");
  ASSERT_EQ(added.size(), 4u);
  Status s = add_to_checkpoint(dir.file("cp"), added);
  ASSERT_TRUE(s.ok()) << s.to_string();
  // The live store goes on with what it had.
  EXPECT_EQ((*store)->get("a").value(), "1");
  EXPECT_EQ((*store)->get("b").value(), std::nullopt);
  ASSERT_TRUE((*store)->put("e", "5").ok());
  // One new file, not named *.sst (an uploader may reuse what it stored for
  // an SST of the same name, size and inode).
  size_t tmp_or_new_sst = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir.file("cp"))) {
    const std::string name = e.path().filename().string();
    tmp_or_new_sst += e.path().extension() == ".tmp";
    if (name == "added-entries.sstable") ++tmp_or_new_sst;
  }
  EXPECT_EQ(tmp_or_new_sst, 1u);
  // Opening the checkpoint (a restore) takes the entries in.
  auto snap = open_rocksdb({dir.file("cp")});
  ASSERT_TRUE(snap.ok()) << snap.status().to_string();
  std::vector<std::pair<std::string, std::string>> got;
  ASSERT_TRUE((*snap)
                  ->scan("", "",
                         [&](std::string_view k, std::string_view v) {
                           got.emplace_back(k, v);
                           return true;
                         })
                  .ok());
  const std::vector<std::pair<std::string, std::string>> want = {
      {"b", "2"}, {"c", "three"}, {"d", "4"}};
  EXPECT_EQ(got, want);
}

// The added-entries file is written with cheaper table options than the
// store's (no filter, one-level index, no compression): a checkpoint whose
// file spans many blocks still restores every entry, puts and removes win
// over the checkpoint, lookups of absent keys miss, and the restored store
// layers new writes on top as usual.
TEST(RocksDbStoreTest, ManyAddedEntriesAllRestoreOverTheCheckpoint) {
  test::TempDir dir;
  auto store = open_rocksdb({dir.file("db")});
  ASSERT_TRUE(store.ok());
  const auto key = [](int i) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "k%07d", i);
    return std::string(buf);
  };
  std::map<std::string, std::string> want;
  for (int i = 0; i < 20000; i += 2) {  // even keys in the checkpoint's SSTs
    ASSERT_TRUE((*store)->put(key(i), "checkpointed").ok());
    want[key(i)] = "checkpointed";
  }
  ASSERT_TRUE((*store)->checkpoint_to(dir.file("cp")).ok());
  // 22,500 entries (about 1 MiB: many blocks) in shuffled order: new odd
  // keys, overwrites of even keys below 10,000, removes of even keys from
  // 10,000 on that are multiples of 4.
  std::vector<int> order(30000);
  for (int i = 0; i < 30000; ++i) order[i] = i;
  std::shuffle(order.begin(), order.end(), std::mt19937(7));
  CheckpointEntries added;
  for (int i : order) {
    if (i % 2 == 1) {
      const std::string v = "added-" + std::to_string(i) + std::string(32, 'x');
      added.put(key(i), v);
      want[key(i)] = v;
    } else if (i < 10000) {
      added.put(key(i), "overwritten");
      want[key(i)] = "overwritten";
    } else if (i < 20000 && i % 4 == 0) {
      added.remove(key(i));
      want.erase(key(i));
    }
  }
  ASSERT_TRUE(add_to_checkpoint(dir.file("cp"), added).ok());

  auto snap = open_rocksdb({dir.file("cp")});
  ASSERT_TRUE(snap.ok()) << snap.status().to_string();
  std::map<std::string, std::string> got;
  ASSERT_TRUE((*snap)
                  ->scan("", "",
                         [&](std::string_view k, std::string_view v) {
                           got.emplace(k, v);
                           return true;
                         })
                  .ok());
  EXPECT_EQ(got.size(), want.size());
  EXPECT_TRUE(got == want);
  for (int i = 0; i < 30000; ++i) {  // point lookups: hits and misses
    auto v = (*snap)->get(key(i));
    ASSERT_TRUE(v.ok()) << v.status().to_string();
    auto it = want.find(key(i));
    ASSERT_EQ(v->has_value(), it != want.end()) << key(i);
    if (it != want.end()) {
      ASSERT_EQ(**v, it->second) << key(i);
    }
  }
  EXPECT_EQ((*snap)->get("k9999999").value(), std::nullopt);  // past every key
  // A bounded scan inside the file: exactly the keys in [k0012000, k0012100).
  size_t in_range = 0;
  ASSERT_TRUE((*snap)
                  ->scan(key(12000), key(12100),
                         [&](std::string_view k, std::string_view) {
                           EXPECT_TRUE(want.count(std::string(k))) << k;
                           ++in_range;
                           return true;
                         })
                  .ok());
  EXPECT_EQ(in_range, static_cast<size_t>(std::distance(want.lower_bound(key(12000)),
                                                        want.lower_bound(key(12100)))));
  // Writes after the restore win over the ingested entries, also once flushed.
  ASSERT_TRUE((*snap)->put(key(1), "after").ok());
  ASSERT_TRUE((*snap)->remove(key(3)).ok());
  ASSERT_TRUE((*snap)->flush().ok());
  EXPECT_EQ((*snap)->get(key(1)).value(), "after");
  EXPECT_EQ((*snap)->get(key(3)).value(), std::nullopt);
  EXPECT_EQ((*snap)->get(key(5)).value(), want[key(5)]);
}

TEST(RocksDbStoreTest, AddingToACheckpointRefusesDuplicatesAndNonCheckpoints) {
  test::TempDir dir;
  auto store = open_rocksdb({dir.file("db")});
  ASSERT_TRUE(store.ok());
  ASSERT_TRUE((*store)->put("a", "1").ok());
  ASSERT_TRUE((*store)->checkpoint_to(dir.file("cp")).ok());
  EXPECT_TRUE(add_to_checkpoint(dir.file("cp"), CheckpointEntries{}).ok());
  CheckpointEntries twice;
  twice.put("k", "1");
  twice.put("a", "x");
  twice.put("k", "2");
  Status s = add_to_checkpoint(dir.file("cp"), twice);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.to_string();
  EXPECT_NE(s.message().find("appears twice"), std::string::npos) << s.message();
  CheckpointEntries once;
  once.put("b", "2");
  ASSERT_TRUE(add_to_checkpoint(dir.file("cp"), once).ok());
  EXPECT_EQ(add_to_checkpoint(dir.file("cp"), once).code(), StatusCode::kAlreadyExists);
  auto snap = open_rocksdb({dir.file("cp")});
  ASSERT_TRUE(snap.ok()) << snap.status().to_string();
  EXPECT_EQ((*snap)->get("a").value(), "1");
  EXPECT_EQ((*snap)->get("b").value(), "2");
  EXPECT_EQ((*snap)->get("k").value(), std::nullopt);
  // Not a checkpoint at all: a clear error, not a new empty store.
  CheckpointEntries one;
  one.put("k", "1");
  EXPECT_FALSE(add_to_checkpoint(dir.file("missing"), one).ok());
  EXPECT_FALSE(std::filesystem::exists(dir.file("missing") + "/CURRENT"));
}

TEST(RocksDbStoreTest, OpenErrorsAreStatuses) {
  test::TempDir dir;
  std::string file = dir.write("not-a-dir", "x");
  auto r = open_rocksdb({file});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kIoError) << r.status().to_string();
  auto empty = open_rocksdb({""});
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.status().code(), StatusCode::kInvalidArgument);
  // A second open of a DB that is open fails on RocksDB's lock file.
  auto first = open_rocksdb({dir.file("db")});
  ASSERT_TRUE(first.ok());
  auto second = open_rocksdb({dir.file("db")});
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), StatusCode::kIoError) << second.status().to_string();
}

TEST(OpenStoreTest, EmptyDirMeansMemoryAndMemoryHasNoCheckpoints) {
  test::TempDir dir;
  auto mem = open_store("");
  ASSERT_TRUE(mem.ok());
  EXPECT_EQ((*mem)->checkpoint_to(dir.file("cp")).code(), StatusCode::kUnimplemented);
  ASSERT_TRUE((*mem)->flush().ok());
  auto disk = open_store(dir.file("db"));
  ASSERT_TRUE(disk.ok()) << disk.status().to_string();
  ASSERT_TRUE((*disk)->put("k", "v").ok());
  EXPECT_TRUE(std::filesystem::exists(dir.file("db") + "/CURRENT"));
}

}  // namespace
}  // namespace df::state
