// State larger than memory: millions of distinct keys counted through a
// CachedTable over RocksDB with a 16 MiB block cache and a small memory
// budget; every count reads back right and peak RSS stays far below what
// holding every key in memory would need.
//
// The suite name starts with "Slow" so sanitizer runs can skip it
// (ctest -E '^Slow', or --gtest_filter=-Slow*). Optimised builds without
// sanitizers use 2,000,000 keys in one case; other builds a quarter of that,
// split over kShards cases (separate processes under ctest, so a parallel
// ctest runs them side by side), each counting its own range of keys with
// its share of the budget and block cache; they skip the RSS bound, which
// sanitizers distort.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "engine/state/keyed_state.h"
#include "tests/support/sanitizers.h"
#include "tests/support/temp_dir.h"

namespace df::state {
namespace {

// The 5-million-key run through a real pipeline is
// tests/integration/large_state_test.cc; here two million keys (each costing
// several RocksDB operations through a 16 MiB cache) prove the same bound at
// the store level in a fraction of the time.
#if defined(__OPTIMIZE__) && !defined(DF_SANITIZED)
constexpr int64_t kDefaultKeys = 2'000'000;
constexpr bool kCheckRss = true;
constexpr int kShards = 1;
#else
constexpr int64_t kDefaultKeys = 500'000;
constexpr bool kCheckRss = false;
constexpr int kShards = 4;
#endif

// DF_BIG_STATE_KEYS overrides the key count (for profiling).
int64_t key_count() {
  const char* env = std::getenv("DF_BIG_STATE_KEYS");
  if (env == nullptr || *env == '\0') return kDefaultKeys;
  return std::max<int64_t>(1000, std::atoll(env));
}

// kB from a "Name:   123 kB" line of /proc/self/status; 0 when unreadable.
uint64_t proc_status_kb(const std::string& name) {
  std::ifstream in("/proc/self/status");
  std::string line;
  for (int i = 0; i < 200 && std::getline(in, line); ++i) {
    if (line.rfind(name + ":", 0) == 0) return std::stoull(line.substr(name.size() + 1));
  }
  return 0;
}

// A bijection on [0, n): keys arrive scattered, not in key order.
int64_t scatter(int64_t i, int64_t n) { return (i * 2'654'435'761LL) % n; }

std::string count_key(int64_t id) {
  std::string k;
  append_key_i64(id, k);
  return k;
}

// The parameter is the shard: it counts ids [shard * kKeys, (shard + 1) * kKeys).
class SlowBigStateTest : public ::testing::TestWithParam<int> {};

TEST_P(SlowBigStateTest, MillionsOfKeysThroughCachedTableOverRocksDb) {
  const int64_t kKeys = key_count() / kShards;
  const int64_t first_id = GetParam() * kKeys;
  const size_t block_cache_mb = 16 / kShards;
  const auto start = std::chrono::steady_clock::now();
  const uint64_t rss_before_kb = proc_status_kb("VmRSS");
  set_block_cache_bytes(block_cache_mb << 20);
  test::TempDir dir;
  auto opened = open_rocksdb({dir.file("db")});
  ASSERT_TRUE(opened.ok()) << opened.status().to_string();
  KvStore& store = **opened;

  using Counts = CachedTable<int64_t, Int64Codec>;
  constexpr size_t kBudget = (16u << 20) / kShards;
  Counts table(store, Int64Codec(), Counts::Options{kBudget});

  // Each key twice: two passes in different scattered orders.
  for (int pass = 0; pass < 2; ++pass) {
    for (int64_t i = 0; i < kKeys; ++i) {
      int64_t id = first_id + (pass == 0 ? scatter(i, kKeys) : scatter(kKeys - 1 - i, kKeys));
      Status s = table.update(count_key(id), [](int64_t& c, bool) { ++c; });
      ASSERT_TRUE(s.ok()) << s.to_string();
    }
  }
  ASSERT_TRUE(table.flush().ok());
  const auto counted = std::chrono::steady_clock::now();

  // Read back: one ordered scan (memory merged over the store) sees every key
  // once with count 2, and point reads of a sample agree.
  int64_t expected_id = first_id;
  bool order_ok = true, counts_ok = true;
  Status scan = table.for_each_in_range("", "", [&](std::string_view key, const int64_t& c) {
    std::string_view in = key;
    auto v = decode_key_value(in, TypeId::kInt64);
    order_ok &= v.ok() && v->as_int64() == expected_id;
    counts_ok &= c == 2;
    ++expected_id;
    return order_ok && counts_ok;
  });
  ASSERT_TRUE(scan.ok()) << scan.to_string();
  EXPECT_TRUE(order_ok) << "at id " << expected_id;
  EXPECT_TRUE(counts_ok) << "at id " << expected_id;
  EXPECT_EQ(expected_id, first_id + kKeys);
  for (int64_t i = 0; i < kKeys; i += 997) {
    auto v = table.get(count_key(first_id + scatter(i, kKeys)));
    ASSERT_TRUE(v.ok()) << v.status().to_string();
    ASSERT_NE(*v, nullptr);
    ASSERT_EQ(**v, 2);
  }
  const auto end = std::chrono::steady_clock::now();

  const uint64_t peak_kb = proc_status_kb("VmHWM");
  // What holding all keys in this table's memory would take, at its own
  // per-entry accounting (the same hash map, nothing evicted).
  const double per_entry = static_cast<double>(table.memory_bytes()) /
                           static_cast<double>(std::max<size_t>(table.cached_entries(), 1));
  const double all_in_memory_mb = per_entry * static_cast<double>(kKeys) / (1 << 20);
  const double peak_mb = static_cast<double>(peak_kb) / 1024;
  auto secs = [](auto d) { return std::chrono::duration<double>(d).count(); };
  std::printf(
      "[big state] keys=%lld updates=%lld budget=%zu KiB block cache=%zu MiB\n"
      "[big state] count %.1f s, read back %.1f s, total %.1f s\n"
      "[big state] peak RSS %.0f MiB (RSS before %.0f MiB); all keys in memory ~%.0f MiB "
      "(%.0f B/entry)\n"
      "[big state] hits=%llu misses=%llu evictions=%llu evicted dirty=%llu, store ~%.0f MiB\n",
      static_cast<long long>(kKeys), static_cast<long long>(2 * kKeys), kBudget >> 10,
      block_cache_mb, secs(counted - start), secs(end - counted), secs(end - start), peak_mb,
      static_cast<double>(rss_before_kb) / 1024, all_in_memory_mb, per_entry,
      static_cast<unsigned long long>(table.stats().hits),
      static_cast<unsigned long long>(table.stats().misses),
      static_cast<unsigned long long>(table.stats().evictions),
      static_cast<unsigned long long>(table.stats().evicted_dirty),
      static_cast<double>(store.approximate_size()) / (1 << 20));
  EXPECT_GT(table.stats().evicted_dirty, static_cast<uint64_t>(kKeys));  // really spilled
  if (kCheckRss && peak_kb > 0) {
    EXPECT_LT(peak_mb, all_in_memory_mb / 2) << "state did not stay out of memory";
  }
  set_block_cache_bytes(64u << 20);
}

INSTANTIATE_TEST_SUITE_P(, SlowBigStateTest, ::testing::Range(0, kShards));

}  // namespace
}  // namespace df::state
