// CheckpointEntries' ordered walk (in place or through a sorted index) and
// sort_by_key's radix sort against std::sort.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "engine/core/status.h"
#include "engine/state/key_sort.h"
#include "engine/state/state_backend.h"

namespace df::state {
namespace {

struct Walked {
  std::string key;
  std::string value;
  bool is_remove;
  bool operator==(const Walked&) const = default;
};

Result<std::vector<Walked>> walk_all(const CheckpointEntries& entries) {
  std::vector<Walked> out;
  DF_RETURN_IF_ERROR(entries.for_each_sorted([&](const CheckpointEntries::Entry& e) {
    out.push_back({std::string(e.key), std::string(e.value), e.is_remove});
    return Status::OK();
  }));
  return out;
}

TEST(CheckpointEntriesTest, ReservedEntriesInOrderAreWalkedInOrder) {
  CheckpointEntries entries;
  entries.reserve(1000, 1000 * 16);
  std::vector<Walked> want;
  for (int i = 0; i < 1000; ++i) {
    char key[16];
    std::snprintf(key, sizeof key, "k%05d", i);
    if (i % 7 == 0) {
      entries.remove(key);
      want.push_back({key, "", true});
    } else {
      entries.put(key, "v" + std::to_string(i));
      want.push_back({key, "v" + std::to_string(i), false});
    }
  }
  // More than reserved still fits (reserve is a hint).
  entries.put("z-past-the-reserve", std::string(4096, 'x'));
  want.push_back({"z-past-the-reserve", std::string(4096, 'x'), false});
  EXPECT_EQ(entries.size(), want.size());
  auto walked = walk_all(entries);
  ASSERT_TRUE(walked.ok()) << walked.status().to_string();
  EXPECT_EQ(*walked, want);
  // sorted() gives the same entries.
  auto sorted = entries.sorted();
  ASSERT_TRUE(sorted.ok());
  ASSERT_EQ(sorted->size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ((*sorted)[i].key, want[i].key);
}

TEST(CheckpointEntriesTest, EntriesOutOfOrderAreWalkedSorted) {
  std::vector<int> ids(5000);
  for (int i = 0; i < 5000; ++i) ids[i] = i;
  std::shuffle(ids.begin(), ids.end(), std::mt19937(11));
  CheckpointEntries entries;
  std::vector<Walked> want;
  for (int i : ids) {
    // Keys longer than 16 bytes that share their first 16: the radix sort's
    // ties, decided by the bytes after them.
    const std::string key = "a-shared-prefix-of-20-" + std::to_string(i);
    if (i % 3 == 0) {
      entries.remove(key);
      want.push_back({key, "", true});
    } else {
      entries.put(key, std::to_string(i * 2));
      want.push_back({key, std::to_string(i * 2), false});
    }
  }
  std::sort(want.begin(), want.end(),
            [](const Walked& a, const Walked& b) { return a.key < b.key; });
  auto walked = walk_all(entries);
  ASSERT_TRUE(walked.ok()) << walked.status().to_string();
  EXPECT_EQ(*walked, want);
}

TEST(CheckpointEntriesTest, ADuplicateKeyIsAnErrorBeforeAnyEntryIsWalked) {
  CheckpointEntries entries;
  entries.put("b", "1");
  entries.put("a", "2");
  entries.remove("b");
  size_t called = 0;
  Status s = entries.for_each_sorted([&](const CheckpointEntries::Entry&) {
    ++called;
    return Status::OK();
  });
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.to_string();
  EXPECT_NE(s.message().find("a key of 1 bytes appears twice"), std::string::npos) << s.message();
  EXPECT_EQ(called, 0u);
  EXPECT_EQ(entries.sorted().status().code(), StatusCode::kInvalidArgument);
}

TEST(CheckpointEntriesTest, TheCallbacksErrorStopsTheWalk) {
  for (bool in_order : {true, false}) {
    CheckpointEntries entries;
    if (in_order) {
      for (const char* k : {"a", "b", "c", "d"}) entries.put(k, "v");
    } else {
      for (const char* k : {"d", "b", "a", "c"}) entries.put(k, "v");
    }
    std::vector<std::string> seen;
    Status s = entries.for_each_sorted([&](const CheckpointEntries::Entry& e) {
      seen.emplace_back(e.key);
      return e.key == "b" ? Status::io_error("disk full") : Status::OK();
    });
    EXPECT_EQ(s.code(), StatusCode::kIoError) << in_order;
    EXPECT_EQ(seen, (std::vector<std::string>{"a", "b"})) << in_order;
  }
}

// ---- sort_by_key ----------------------------------------------------------------

// Sorts indexes of `keys` with sort_by_key and checks the keys come out as
// std::sort orders them.
void expect_sorted_like_std_sort(const std::vector<std::string>& keys) {
  std::vector<uint32_t> order(keys.size());
  for (uint32_t i = 0; i < order.size(); ++i) order[i] = i;
  sort_by_key(order, [&](uint32_t i) { return std::string_view(keys[i]); });
  std::vector<std::string> got;
  got.reserve(order.size());
  for (uint32_t i : order) got.push_back(keys[i]);
  std::vector<std::string> want = keys;
  std::sort(want.begin(), want.end());
  ASSERT_EQ(got, want);
  // Every item exactly once.
  std::sort(order.begin(), order.end());
  for (uint32_t i = 0; i < order.size(); ++i) ASSERT_EQ(order[i], i);
}

// An encoded int64 group key as the window operator's state has it: the
// present marker and 8 big-endian bytes.
std::string int_key(uint64_t v) {
  std::string k(1, '\x01');
  for (int shift = 56; shift >= 0; shift -= 8) k += static_cast<char>((v >> shift) & 0xff);
  return k;
}

TEST(SortByKeyTest, RandomIntKeysSortAsStdSortDoes) {
  std::mt19937_64 rng(3);
  for (size_t n : {0, 1, 2, 100, 511, 512, 513, 5000, 100000}) {
    std::vector<std::string> keys;
    for (size_t i = 0; i < n; ++i) keys.push_back(int_key(1000 + rng() % (3 * n + 1)));
    expect_sorted_like_std_sort(keys);  // with ties: ids drawn with repeats
  }
  // Full 64-bit range: every byte differs somewhere.
  std::vector<std::string> keys;
  for (int i = 0; i < 20000; ++i) keys.push_back(int_key(rng()));
  expect_sorted_like_std_sort(keys);
}

TEST(SortByKeyTest, KeysTiedInTheirFirst16BytesSortByTheirRest) {
  std::mt19937 rng(5);
  std::vector<std::string> keys;
  const std::string prefixes[] = {"", "0123456789abcdef", "0123456789abcdeX", "0123456789"};
  for (int i = 0; i < 20000; ++i) {
    std::string k = prefixes[rng() % 4];
    const int tail = static_cast<int>(rng() % 12);
    for (int j = 0; j < tail; ++j) k += static_cast<char>(rng() % 4);  // includes '\0' bytes
    keys.push_back(std::move(k));
  }
  // Keys equal up to zero padding ("ab" < "ab\0" < "ab\0\0"), equal keys and
  // the empty key.
  for (int i = 0; i < 600; ++i) {
    keys.push_back(std::string("ab\0\0", 2 + i % 3));
    keys.push_back("");
  }
  std::shuffle(keys.begin(), keys.end(), rng);
  expect_sorted_like_std_sort(keys);
}

// Keys that differ in a few bits of their first 16 bytes (the radix path)
// and in bytes after them: equal first 16 bytes are ordered by the rest.
TEST(SortByKeyTest, RadixTiesAreOrderedByTheBytesAfterTheFirst16) {
  std::mt19937 rng(9);
  std::vector<std::string> keys;
  for (int i = 0; i < 30000; ++i) {
    std::string k = int_key(rng() % 300) + std::string(7, '\0');  // 16 bytes
    const int tail = static_cast<int>(rng() % 4);
    for (int j = 0; j < tail; ++j) k += static_cast<char>(rng() % 3);
    keys.push_back(std::move(k));
  }
  expect_sorted_like_std_sort(keys);
}

TEST(SortByKeyTest, SortedAndReversedInput) {
  std::vector<std::string> keys;
  for (uint64_t i = 0; i < 3000; ++i) keys.push_back(int_key(i * 7919));
  expect_sorted_like_std_sort(keys);
  std::reverse(keys.begin(), keys.end());
  expect_sorted_like_std_sort(keys);
}

}  // namespace
}  // namespace df::state
