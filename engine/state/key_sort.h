// sort_by_key: sorts items by the bytes of a key each refers to (encoded
// state keys, in the order a store keeps them), for the writers of
// checkpoint entries and spills.
//
// Header-only and stateless: safe to call from any thread on items that
// thread owns; `key_of` must stay valid (and return the same bytes) for the
// duration of the call.
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <utility>
#include <vector>

namespace df::state {

namespace key_sort_detail {

// Bytes [at, at + 8) of `k`, zero-padded, as a big-endian number: comparing
// two of them compares those bytes.
inline uint64_t key_word(std::string_view k, size_t at) {
  static_assert(std::endian::native == std::endian::little);
  if (at + 8 <= k.size()) {
    uint64_t w;
    std::memcpy(&w, k.data() + at, 8);  // a fixed size: one load, no call
    return __builtin_bswap64(w);
  }
  // The key's last bytes (fewer than 8), zero-padded.
  uint64_t w = 0;
  for (size_t i = at; i < k.size(); ++i) {
    w |= uint64_t{static_cast<unsigned char>(k[i])} << (56 - 8 * (i - at));
  }
  return w;
}

// The lowest and the highest set bit of x != 0.
inline int differ_low_bit(unsigned __int128 x) {
  const auto lo = static_cast<uint64_t>(x);
  return lo != 0 ? std::countr_zero(lo) : 64 + std::countr_zero(static_cast<uint64_t>(x >> 64));
}
inline int differ_high_bit(unsigned __int128 x) {
  const auto hi = static_cast<uint64_t>(x >> 64);
  return hi != 0 ? 127 - std::countl_zero(hi) : 63 - std::countl_zero(static_cast<uint64_t>(x));
}

// Sorts `rec` (not empty) stably by its bytes [shift / 8, shift / 8 +
// bytes), least significant first, skipping a byte in which all agree.
inline void radix_sort_by_bytes(std::vector<uint64_t>& rec, int bytes, int shift) {
  std::vector<uint64_t> buf(rec.size());
  for (int b = 0; b < bytes; ++b) {
    const int at = shift + 8 * b;
    std::array<size_t, 256> count{};
    for (uint64_t r : rec) ++count[(r >> at) & 0xff];
    if (count[(rec[0] >> at) & 0xff] == rec.size()) continue;
    size_t sum = 0;
    for (size_t& c : count) sum += std::exchange(c, sum);
    for (uint64_t r : rec) buf[count[(r >> at) & 0xff]++] = r;
    rec.swap(buf);
  }
}

}  // namespace key_sort_detail

// Sorts `items` by their keys' bytes (`key_of(item)`, a std::string_view).
// Each key's first 16 bytes are read as one big-endian 128-bit number. When
// the bits in which those numbers differ span at most 32 bits (keys share
// prefixes and fixed-width encodings: ids of up to 4 G values), an LSD
// radix sort orders 8-byte (those bits, position) records by the bytes that
// differ, and each item is moved once at the end; otherwise a comparison
// sort orders (number, item) records. Items whose numbers are equal are
// ordered by their whole keys. Items already in order (sequential ids) cost
// one pass. Items with equal keys end up next to each other in an
// unspecified order.
template <typename T, typename KeyOf>
void sort_by_key(std::vector<T>& items, KeyOf key_of) {
  using U128 = unsigned __int128;
  using key_sort_detail::key_word;
  const size_t n = items.size();
  if (n < 2) return;
  const auto number = [&](const T& item) {
    const std::string_view k = key_of(item);
    return (U128{key_word(k, 0)} << 64) | key_word(k, 8);
  };
  // One pass: already in order? Which bits differ from the first item's?
  const U128 first = number(items[0]);
  U128 differ = 0;
  U128 prev = first;
  bool in_order = true;
  for (size_t i = 1; i < n; ++i) {
    const U128 x = number(items[i]);
    differ |= x ^ first;
    if (in_order && (x < prev || (x == prev && key_of(items[i]) < key_of(items[i - 1])))) {
      in_order = false;
    }
    prev = x;
  }
  if (in_order) return;
  const auto by_key = [&](const T& a, const T& b) { return key_of(a) < key_of(b); };
  if (differ == 0) {  // equal first 16 bytes: the rest decides
    std::sort(items.begin(), items.end(), by_key);
    return;
  }
  const int low = key_sort_detail::differ_low_bit(differ);
  const int span = key_sort_detail::differ_high_bit(differ) - low + 1;
  if (span <= 32 && n <= (size_t{1} << 32)) {
    std::vector<uint64_t> rec(n);
    for (size_t i = 0; i < n; ++i) {
      const auto bits = static_cast<uint64_t>((number(items[i]) >> low) & 0xffffffffu);
      rec[i] = (bits << 32) | i;
    }
    key_sort_detail::radix_sort_by_bytes(rec, (span + 7) / 8, 32);
    // Runs of equal bits (equal first 16 bytes): the whole keys decide.
    const auto item_of = [&](uint64_t r) -> const T& { return items[r & 0xffffffffu]; };
    for (size_t i = 0; i < n;) {
      size_t j = i + 1;
      while (j < n && (rec[j] >> 32) == (rec[i] >> 32)) ++j;
      if (j - i > 1) {
        std::sort(rec.begin() + i, rec.begin() + j,
                  [&](uint64_t a, uint64_t b) { return by_key(item_of(a), item_of(b)); });
      }
      i = j;
    }
    std::vector<T> sorted;
    sorted.reserve(n);
    for (uint64_t r : rec) sorted.push_back(std::move(items[r & 0xffffffffu]));
    items.swap(sorted);
    return;
  }
  // Wider differences: sort (number, item) records by comparison.
  struct Sortable {
    U128 x;
    T item;
  };
  std::vector<Sortable> tmp;
  tmp.reserve(n);
  for (T& it : items) tmp.push_back({number(it), std::move(it)});
  std::sort(tmp.begin(), tmp.end(), [&](const Sortable& a, const Sortable& b) {
    if (a.x != b.x) return a.x < b.x;
    return by_key(a.item, b.item);
  });
  for (size_t i = 0; i < n; ++i) items[i] = std::move(tmp[i].item);
}

}  // namespace df::state
