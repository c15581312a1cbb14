// The typed layer: ValueState (batching, TTL), MapState and CachedTable
// (eviction, write-back, merged range scans), over both stores.
#include "engine/state/keyed_state.h"

#include <gtest/gtest.h>

#include <map>
#include <random>

#include "tests/support/temp_dir.h"

namespace df::state {
namespace {

enum class Backend { kMemory, kRocksDb };

class KeyedStateTest : public ::testing::TestWithParam<Backend> {
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

  static std::string ikey(int64_t v) {
    std::string k;
    append_key_i64(v, k);
    return k;
  }
  static std::string skey(std::string_view v) {
    std::string k;
    append_key_string(v, k);
    return k;
  }
  size_t store_entries() {
    size_t n = 0;
    Status s = store_->scan("", "", [&](std::string_view, std::string_view) { return ++n > 0; });
    EXPECT_TRUE(s.ok());
    return n;
  }

  test::TempDir dir_;
  std::unique_ptr<KvStore> store_;
};

const std::vector<TypeId> kRowTypes = {TypeId::kString, TypeId::kInt64, TypeId::kDouble};

Row make_row(const std::string& s, int64_t i, double d) {
  return {Value::string(s), Value::int64(i), Value::float64(d)};
}

// ---- RowCodec ------------------------------------------------------------------

TEST(RowCodecTest, RoundTripAndErrors) {
  RowCodec codec(kRowTypes);
  std::string enc;
  Row row = {Value::string("x"), Value::null(TypeId::kInt64), Value::float64(-2.5)};
  ASSERT_TRUE(codec.encode(row, enc).ok());
  Row back = make_row("old", 1, 1);
  ASSERT_TRUE(codec.decode(enc, back).ok());
  EXPECT_EQ(back, row);
  EXPECT_EQ(codec.encode({Value::int64(1)}, enc).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(codec.encode({Value::int64(1), Value::int64(1), Value::float64(1)}, enc).code(),
            StatusCode::kInvalidArgument);
  std::string ok;
  ASSERT_TRUE(codec.encode(row, ok).ok());
  EXPECT_EQ(codec.decode(ok.substr(0, ok.size() - 1), back).code(), StatusCode::kDataError);
  EXPECT_EQ(codec.decode(ok + "x", back).code(), StatusCode::kDataError);
}

// ---- ValueState ------------------------------------------------------------------

TEST_P(KeyedStateTest, ValueStateReadsOwnWritesAndFlushesOneBatch) {
  ValueState state(*store_, "totals", kRowTypes);
  ASSERT_TRUE(state.put(ikey(1), make_row("a", 10, 1.5)).ok());
  ASSERT_TRUE(state.put(ikey(2), make_row("b", 20, 2.5)).ok());
  ASSERT_TRUE(state.put(ikey(1), make_row("a2", 11, 1.0)).ok());
  EXPECT_EQ(state.pending(), 2u);
  EXPECT_EQ(store_entries(), 0u);  // nothing written before flush

  auto a = state.get(ikey(1));
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(a->has_value());
  EXPECT_EQ(**a, make_row("a2", 11, 1.0));
  ASSERT_TRUE(state.flush().ok());
  EXPECT_EQ(store_entries(), 2u);
  EXPECT_EQ(state.pending(), 0u);

  ASSERT_TRUE(state.remove(ikey(2)).ok());
  EXPECT_FALSE(state.get(ikey(2)).value().has_value());  // pending remove is visible
  ValueState other_view(*store_, "totals", kRowTypes);
  EXPECT_TRUE(other_view.get(ikey(2)).value().has_value());  // not flushed yet
  ASSERT_TRUE(state.flush().ok());
  EXPECT_FALSE(other_view.get(ikey(2)).value().has_value());
  Row out;
  EXPECT_TRUE(other_view.get(ikey(1), out).value());
  EXPECT_EQ(out, make_row("a2", 11, 1.0));

  EXPECT_EQ(state.put(ikey(3), {Value::int64(1)}).code(), StatusCode::kInvalidArgument);
}

TEST_P(KeyedStateTest, ValueStatesWithDifferentNamesDoNotCollide) {
  ValueState a(*store_, "a", {TypeId::kInt64});
  ValueState ab(*store_, "ab", {TypeId::kInt64});
  ASSERT_TRUE(a.put(skey("b"), {Value::int64(1)}).ok());
  ASSERT_TRUE(ab.put(skey(""), {Value::int64(2)}).ok());
  ASSERT_TRUE(a.flush().ok());
  ASSERT_TRUE(ab.flush().ok());
  EXPECT_EQ(a.get(skey("b")).value(), (Row{Value::int64(1)}));
  EXPECT_EQ(ab.get(skey("")).value(), (Row{Value::int64(2)}));
  EXPECT_FALSE(a.get(skey("")).value().has_value());
  EXPECT_FALSE(ab.get(skey("b")).value().has_value());
}

TEST_P(KeyedStateTest, ValueStateAutoFlushesAndGetMany) {
  ValueState state(*store_, "s", {TypeId::kInt64}, ValueState::Options{0, 8});
  for (int64_t i = 0; i < 20; ++i) ASSERT_TRUE(state.put(ikey(i), {Value::int64(i * i)}).ok());
  EXPECT_LT(state.pending(), 8u);
  EXPECT_GE(store_entries(), 16u);
  ASSERT_TRUE(state.remove(ikey(3)).ok());
  std::vector<std::string> key_bytes = {ikey(19), ikey(3), ikey(100), ikey(0), ikey(19)};
  std::vector<std::string_view> keys(key_bytes.begin(), key_bytes.end());
  std::vector<std::optional<Row>> rows;
  ASSERT_TRUE(state.get_many(keys, rows).ok());
  ASSERT_EQ(rows.size(), 5u);
  EXPECT_EQ(rows[0], (Row{Value::int64(361)}));
  EXPECT_EQ(rows[1], std::nullopt);
  EXPECT_EQ(rows[2], std::nullopt);
  EXPECT_EQ(rows[3], (Row{Value::int64(0)}));
  EXPECT_EQ(rows[4], (Row{Value::int64(361)}));
}

// An expiry past INT64_MAX saturates (never expires) instead of wrapping
// around into the past.
TEST_P(KeyedStateTest, ValueStateTtlNearTheEndOfTimeNeverWraps) {
  ValueState state(*store_, "late", {TypeId::kString}, ValueState::Options{1000, 4096});
  const int64_t now = INT64_MAX - 10;
  ASSERT_TRUE(state.put(skey("u"), {Value::string("x")}, now).ok());
  ASSERT_TRUE(state.flush().ok());
  EXPECT_TRUE(state.get(skey("u"), now).value().has_value());
  EXPECT_TRUE(state.get(skey("u"), INT64_MAX - 1).value().has_value());
}

TEST_P(KeyedStateTest, ValueStateTtlExpiresLazilyAndByPurge) {
  ValueState state(*store_, "sessions", {TypeId::kString}, ValueState::Options{100, 4096});
  ASSERT_TRUE(state.put(skey("u1"), {Value::string("x")}, /*now_ms=*/1000).ok());
  EXPECT_TRUE(state.get(skey("u1"), 1099).value().has_value());
  EXPECT_FALSE(state.get(skey("u1"), 1100).value().has_value());  // expired while pending
  ASSERT_TRUE(state.flush().ok());
  EXPECT_EQ(store_entries(), 1u);
  // Read after expiry from the store: absent, and dropped on the next flush.
  EXPECT_FALSE(state.get(skey("u1"), 5000).value().has_value());
  ASSERT_TRUE(state.flush().ok());
  EXPECT_EQ(store_entries(), 0u);

  // Re-putting refreshes the expiry.
  ASSERT_TRUE(state.put(skey("u2"), {Value::string("y")}, 0).ok());
  ASSERT_TRUE(state.put(skey("u2"), {Value::string("z")}, 90).ok());
  EXPECT_EQ(state.get(skey("u2"), 150).value(), (Row{Value::string("z")}));

  // purge_expired walks the whole state in chunks: 10000 keys, the even ones old.
  for (int64_t i = 0; i < 10000; ++i) {
    ASSERT_TRUE(state.put(ikey(i), {Value::string("v")}, i % 2 == 0 ? 0 : 1000).ok());
  }
  auto purged = state.purge_expired(500);
  ASSERT_TRUE(purged.ok()) << purged.status().to_string();
  EXPECT_EQ(*purged, 5000u + 1);  // the even keys and u2
  EXPECT_EQ(store_entries(), 5000u);
  EXPECT_TRUE(state.get(ikey(9999), 500).value().has_value());
  EXPECT_FALSE(state.get(ikey(9998), 0).value().has_value());  // gone, not just expired
}

// ---- MapState ------------------------------------------------------------------------

TEST_P(KeyedStateTest, MapStatePerKeyMaps) {
  MapState state(*store_, "m", {TypeId::kInt64});
  ValueState neighbour(*store_, "n", {TypeId::kInt64});
  ASSERT_TRUE(neighbour.put(skey("k"), {Value::int64(-1)}).ok());
  ASSERT_TRUE(neighbour.flush().ok());
  // "k" and "k2" as keys: the key encoding keeps their entries apart.
  for (int64_t u : {5, -3, 40, 0})
    ASSERT_TRUE(state.put(skey("k"), ikey(u), {Value::int64(u * 10)}).ok());
  ASSERT_TRUE(state.put(skey("k2"), ikey(1), {Value::int64(99)}).ok());
  Row row;
  ASSERT_TRUE(state.get(skey("k"), ikey(40), row).value());
  EXPECT_EQ(row, (Row{Value::int64(400)}));
  EXPECT_FALSE(state.get(skey("k"), ikey(1), row).value());

  std::vector<int64_t> seen;
  ASSERT_TRUE(state
                  .for_each(skey("k"),
                            [&](std::string_view user_key, const Row& r) {
                              std::string_view in = user_key;
                              auto v = decode_key_value(in, TypeId::kInt64);
                              EXPECT_TRUE(v.ok());
                              EXPECT_EQ(r[0].as_int64(), v->as_int64() * 10);
                              seen.push_back(v->as_int64());
                              return true;
                            })
                  .ok());
  EXPECT_EQ(seen, (std::vector<int64_t>{-3, 0, 5, 40}));

  size_t visits = 0;
  ASSERT_TRUE(
      state.for_each(skey("k"), [&](std::string_view, const Row&) { return ++visits < 2; }).ok());
  EXPECT_EQ(visits, 2u);

  ASSERT_TRUE(state.remove(skey("k"), ikey(0)).ok());
  ASSERT_TRUE(state.clear(skey("k2")).ok());
  visits = 0;
  ASSERT_TRUE(
      state.for_each(skey("k2"), [&](std::string_view, const Row&) { return ++visits > 0; }).ok());
  EXPECT_EQ(visits, 0u);
  visits = 0;
  ASSERT_TRUE(
      state.for_each(skey("k"), [&](std::string_view, const Row&) { return ++visits > 0; }).ok());
  EXPECT_EQ(visits, 3u);
  ASSERT_TRUE(state.clear(skey("k")).ok());
  EXPECT_EQ(store_entries(), 1u);  // only the neighbouring state is left
  EXPECT_EQ(neighbour.get(skey("k")).value(), (Row{Value::int64(-1)}));
}

// ---- CachedTable -------------------------------------------------------------------

using Counts = CachedTable<int64_t, Int64Codec>;

TEST_P(KeyedStateTest, CachedTableTinyBudgetEvictsAndKeepsEveryValue) {
  Counts table(*store_, Int64Codec(), Counts::Options{4096});
  constexpr int64_t kKeys = 3000;
  for (int round = 0; round < 3; ++round) {
    for (int64_t i = 0; i < kKeys; ++i) {
      ASSERT_TRUE(table
                      .update(ikey(i),
                              [&](int64_t& c, bool existed) {
                                EXPECT_EQ(existed, round > 0);
                                c += i;
                              })
                      .ok());
    }
  }
  EXPECT_LE(table.memory_bytes(), 4096u);
  EXPECT_LT(table.cached_entries(), 100u);
  EXPECT_GT(table.stats().evictions, 1000u);
  EXPECT_GT(table.stats().evicted_dirty, 1000u);
  for (int64_t i = kKeys - 1; i >= 0; --i) {
    auto v = table.get(ikey(i));
    ASSERT_TRUE(v.ok()) << v.status().to_string();
    ASSERT_NE(*v, nullptr) << i;
    EXPECT_EQ(**v, 3 * i);
  }
  auto missing = table.get(ikey(kKeys));
  ASSERT_TRUE(missing.ok());
  EXPECT_EQ(*missing, nullptr);

  // After flush a fresh table over the same store sees everything.
  ASSERT_TRUE(table.flush().ok());
  Counts fresh(*store_);
  for (int64_t i = 0; i < kKeys; i += 7) EXPECT_EQ(*fresh.get(ikey(i)).value(), 3 * i);
}

TEST_P(KeyedStateTest, CachedTableRemoveAndBlindPut) {
  Counts table(*store_, Int64Codec(), Counts::Options{1 << 20});
  ASSERT_TRUE(table.put(ikey(1), 10).ok());
  ASSERT_TRUE(table.put(ikey(2), 20).ok());
  ASSERT_TRUE(table.flush().ok());
  EXPECT_EQ(store_entries(), 2u);
  ASSERT_TRUE(table.remove(ikey(1)).ok());
  ASSERT_TRUE(table.remove(ikey(3)).ok());  // absent everywhere: still fine
  EXPECT_EQ(table.get(ikey(1)).value(), nullptr);
  EXPECT_EQ(store_entries(), 2u);  // the remove is not written yet
  ASSERT_TRUE(table
                  .update(ikey(1),
                          [](int64_t& c, bool existed) {
                            EXPECT_FALSE(existed);
                            EXPECT_EQ(c, 0);
                            c = 5;
                          })
                  .ok());
  ASSERT_TRUE(table.remove(ikey(2)).ok());
  ASSERT_TRUE(table.flush().ok());
  EXPECT_EQ(store_entries(), 1u);
  EXPECT_EQ(*store_->get(ikey(1)).value(), std::string("\x05\0\0\0\0\0\0\0", 8));
}

// copy_dirty_to hands over exactly what flush() would write and changes
// nothing: the entries stay dirty, the store stays as it was.
TEST_P(KeyedStateTest, CachedTableCopiesWhatFlushWouldWriteWithoutWriting) {
  Counts table(*store_, Int64Codec(), Counts::Options{1 << 20});
  ASSERT_TRUE(table.put(ikey(1), 10).ok());
  ASSERT_TRUE(table.put(ikey(2), 20).ok());
  ASSERT_TRUE(table.flush().ok());  // clean from here on
  ASSERT_TRUE(table.put(ikey(3), 30).ok());
  ASSERT_TRUE(table.remove(ikey(1)).ok());
  CheckpointEntries copied;
  ASSERT_TRUE(table.copy_dirty_to(copied).ok());
  auto sorted = copied.sorted();
  ASSERT_TRUE(sorted.ok()) << sorted.status().to_string();
  ASSERT_EQ(sorted->size(), 2u);
  EXPECT_EQ((*sorted)[0].key, ikey(1));
  EXPECT_TRUE((*sorted)[0].is_remove);
  EXPECT_EQ((*sorted)[1].key, ikey(3));
  EXPECT_FALSE((*sorted)[1].is_remove);
  EXPECT_EQ((*sorted)[1].value, std::string("\x1e\0\0\0\0\0\0\0", 8));
  EXPECT_EQ(store_entries(), 2u);   // nothing written
  ASSERT_TRUE(table.flush().ok());  // still dirty: flush writes them
  EXPECT_EQ(store_entries(), 2u);
  EXPECT_EQ(store_->get(ikey(1)).value(), std::nullopt);
  EXPECT_EQ(*store_->get(ikey(3)).value(), std::string("\x1e\0\0\0\0\0\0\0", 8));
  CheckpointEntries after;
  ASSERT_TRUE(table.copy_dirty_to(after).ok());
  EXPECT_TRUE(after.empty());
}

TEST_P(KeyedStateTest, CachedTableMatchesAModelWithMergedRangeScans) {
  // Random ops over a small key space with a budget of a few entries, checked
  // against std::map after every range scan: memory and store merge, memory wins.
  Counts table(*store_, Int64Codec(), Counts::Options{1500});
  std::map<std::string, int64_t> model;
  std::mt19937 rng(99);
  for (int step = 0; step < 4000; ++step) {
    std::string k = ikey(static_cast<int64_t>(rng() % 200));
    switch (rng() % 8) {
      case 0:
      case 1:
      case 2:
        ASSERT_TRUE(table.update(k, [](int64_t& c, bool) { ++c; }).ok());
        ++model[k];
        break;
      case 3:
        ASSERT_TRUE(table.put(k, step).ok());
        model[k] = step;
        break;
      case 4:
        ASSERT_TRUE(table.remove(k).ok());
        model.erase(k);
        break;
      case 5: {
        auto v = table.get(k);
        ASSERT_TRUE(v.ok());
        auto it = model.find(k);
        if (it == model.end()) {
          EXPECT_EQ(*v, nullptr);
        } else {
          ASSERT_NE(*v, nullptr);
          EXPECT_EQ(**v, it->second);
        }
        break;
      }
      case 6: {
        std::string lo = ikey(static_cast<int64_t>(rng() % 200));
        std::string hi = rng() % 4 == 0 ? std::string() : ikey(static_cast<int64_t>(rng() % 220));
        std::vector<std::pair<std::string, int64_t>> got;
        ASSERT_TRUE(table
                        .for_each_in_range(lo, hi,
                                           [&](std::string_view key, const int64_t& v) {
                                             got.emplace_back(std::string(key), v);
                                             return true;
                                           })
                        .ok());
        std::vector<std::pair<std::string, int64_t>> want;
        for (auto it = model.lower_bound(lo); it != model.end() && (hi.empty() || it->first < hi);
             ++it) {
          want.emplace_back(*it);
        }
        ASSERT_EQ(got, want) << "step " << step;
        break;
      }
      case 7:
        if (rng() % 4 == 0) {
          ASSERT_TRUE(table.flush().ok());
        }
        break;
    }
  }
  EXPECT_GT(table.stats().evictions, 0u);
}

TEST_P(KeyedStateTest, CachedTableFiresWindowsBelowAWatermark) {
  // Window operator shape: key = ordered window end + encoded key; firing at
  // watermark w scans [.., end(w + 1)) in order and removes it.
  Counts table(*store_, Int64Codec(), Counts::Options{2000});
  auto wkey = [](int64_t window_end, std::string_view user) {
    std::string k;
    append_ordered_i64(window_end, k);
    append_key_string(user, k);
    return k;
  };
  auto end_key = [](int64_t ts) {
    std::string k;
    append_ordered_i64(ts, k);
    return k;
  };
  // Windows end at 1000, 2000, ... 10000 (and one negative); 30 users each.
  for (int64_t w = 1; w <= 10; ++w) {
    for (int u = 0; u < 30; ++u) {
      for (int rep = 0; rep <= u % 3; ++rep) {
        ASSERT_TRUE(
            table.update(wkey(w * 1000, "user" + std::to_string(u)), [](int64_t& c, bool) { ++c; })
                .ok());
      }
    }
  }
  ASSERT_TRUE(table.put(wkey(-500, "early"), 7).ok());
  ASSERT_GT(table.stats().evictions, 0u);  // some windows live only in the store

  int64_t fired_through = std::numeric_limits<int64_t>::min();
  for (int64_t watermark : {-1, 999, 1000, 4500, 4500, 10000}) {
    std::vector<std::pair<int64_t, int64_t>> fired;  // (window end, count)
    std::string hi = end_key(watermark + 1);
    ASSERT_TRUE(table
                    .for_each_in_range("", hi,
                                       [&](std::string_view key, const int64_t& count) {
                                         std::string_view in = key;
                                         fired.emplace_back(*read_ordered_i64(in), count);
                                         return true;
                                       })
                    .ok());
    ASSERT_TRUE(table.remove_range("", hi).ok());
    int64_t expected_windows = 0;
    for (int64_t w = 1; w <= 10; ++w) {
      if (w * 1000 > fired_through && w * 1000 <= watermark) ++expected_windows;
    }
    bool early = -500 > fired_through && -500 <= watermark;
    ASSERT_EQ(fired.size(), static_cast<size_t>(expected_windows * 30 + (early ? 1 : 0)))
        << "watermark " << watermark;
    for (size_t i = 1; i < fired.size(); ++i) EXPECT_LE(fired[i - 1].first, fired[i].first);
    int64_t total = 0;
    for (auto& [end, count] : fired) total += count;
    EXPECT_EQ(total, expected_windows * (10 * 1 + 10 * 2 + 10 * 3) + (early ? 7 : 0));
    fired_through = std::max(fired_through, watermark);
  }
  ASSERT_TRUE(table.flush().ok());
  EXPECT_EQ(store_entries(), 0u);
  EXPECT_EQ(table.cached_entries(), 0u);
}

TEST_P(KeyedStateTest, CachedTableReportsUndecodableStoreValues) {
  ASSERT_TRUE(store_->put(ikey(1), "short").ok());
  Counts table(*store_);
  auto v = table.get(ikey(1));
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.status().code(), StatusCode::kDataError);
  Status s = table.for_each_in_range("", "", [](std::string_view, const int64_t&) { return true; });
  EXPECT_EQ(s.code(), StatusCode::kDataError);
}

TEST_P(KeyedStateTest, CachedTableOfRows) {
  CachedTable<Row, RowCodec> table(*store_, RowCodec(kRowTypes),
                                   CachedTable<Row, RowCodec>::Options{2048});
  for (int64_t i = 0; i < 200; ++i) {
    ASSERT_TRUE(table.put(ikey(i), make_row(std::string(40, 'a' + i % 26), i, i / 2.0)).ok());
  }
  EXPECT_LE(table.memory_bytes(), 2048u);
  for (int64_t i = 0; i < 200; ++i) {
    auto v = table.get(ikey(i));
    ASSERT_TRUE(v.ok());
    ASSERT_NE(*v, nullptr);
    EXPECT_EQ(**v, make_row(std::string(40, 'a' + i % 26), i, i / 2.0));
  }
}

INSTANTIATE_TEST_SUITE_P(Backends, KeyedStateTest,
                         ::testing::Values(Backend::kMemory, Backend::kRocksDb),
                         [](const auto& info) {
                           return info.param == Backend::kMemory ? "Memory" : "RocksDb";
                         });

}  // namespace
}  // namespace df::state
