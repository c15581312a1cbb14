// Row hashing for hash exchanges, key_by and joins.
//
// Every consumer of a key hash must agree on it, or equal keys end up on
// different subtasks: always hash with these functions and map a hash to a
// subtask with subtask_for_hash(). The hash is stable within a process and
// across runs of the same build (no per-process seed), so it may be used for
// state that outlives a run (key groups in checkpoints).
//
// Per type:
// - int64 and timestamp hash their int64 value identically;
// - double hashes its bits after folding -0.0 into 0.0 and every NaN into one;
// - bool hashes as 0/1 (the same as int64 0/1);
// - string hashes its bytes;
// - null hashes to a fixed constant regardless of the column type.
// Stateless, so thread-safe.
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <vector>

#include "engine/core/batch.h"
#include "engine/core/column.h"

namespace df::runtime {

inline constexpr uint64_t kNullHash = 0x9e3779b97f4a7c15ULL;
inline constexpr uint64_t kRowHashSeed = 0x2545f4914f6cdd1dULL;

// splitmix64's finalizer: a cheap bijective mixer with full avalanche.
inline uint64_t mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

inline uint64_t hash_int64(int64_t v) { return mix64(static_cast<uint64_t>(v)); }

inline uint64_t hash_double(double v) {
  if (v == 0.0) v = 0.0;  // -0.0 == 0.0 must hash alike
  if (std::isnan(v)) return mix64(0x7ff8000000000000ULL);
  return mix64(std::bit_cast<uint64_t>(v));
}

inline uint64_t hash_bool(bool v) { return hash_int64(v ? 1 : 0); }

// Word-at-a-time byte hash (not cryptographic; keys are not adversarial here).
inline uint64_t hash_string(std::string_view s) {
  uint64_t h = 0xcbf29ce484222325ULL ^ (s.size() * 0xff51afd7ed558ccdULL);
  size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    uint64_t w;
    std::memcpy(&w, s.data() + i, 8);
    h = mix64(h ^ w) + 0x9e3779b97f4a7c15ULL;
  }
  uint64_t tail = 0;
  if (i < s.size()) std::memcpy(&tail, s.data() + i, s.size() - i);
  return mix64(h ^ tail ^ (static_cast<uint64_t>(s.size() - i) << 56));
}

// Order-dependent combination: (a, b) and (b, a) hash differently.
inline uint64_t hash_combine(uint64_t seed, uint64_t h) {
  return mix64(seed ^ (h + 0x9e3779b97f4a7c15ULL + (seed << 6) + (seed >> 2)));
}

// Hash of one physical slot of a column.
inline uint64_t hash_cell(const Column& c, size_t row) {
  if (c.is_null(row)) return kNullHash;
  switch (c.type()) {
    case TypeId::kBool:
      return hash_bool(c.bool_at(row));
    case TypeId::kInt64:
    case TypeId::kTimestamp:
      return hash_int64(c.int64_at(row));
    case TypeId::kDouble:
      return hash_double(c.double_at(row));
    case TypeId::kString:
      return hash_string(c.string_at(row));
  }
  return kNullHash;
}

// Hash of one Value, equal to hash_cell() of the same value in a column; for
// row-at-a-time paths and tests.
inline uint64_t hash_value(const Value& v) {
  if (v.is_null()) return kNullHash;
  switch (v.type()) {
    case TypeId::kBool:
      return hash_bool(v.as_bool());
    case TypeId::kInt64:
    case TypeId::kTimestamp:
      return hash_int64(v.as_int64());
    case TypeId::kDouble:
      return hash_double(v.as_double());
    case TypeId::kString:
      return hash_string(v.as_string());
  }
  return kNullHash;
}

// Key hash of the fields `fields` (column indexes) of one physical row.
inline uint64_t hash_row(const Batch& b, const std::vector<size_t>& fields, size_t row) {
  uint64_t h = kRowHashSeed;
  for (size_t f : fields) h = hash_combine(h, hash_cell(*b.column(f), row));
  return h;
}

// Key hashes of every alive row, in active-row order (out[k] belongs to
// b.row_at(k)). Column at a time; an int64 or timestamp column without
// nulls (most keys) skips the per-cell null check and type switch. With
// `repeats` (operators' mark_repeated_keys: repeats[k] != 0 when row k's key
// cells equal row k - 1's), a repeated row takes the hash before it instead
// of being hashed: a window's output fed to a keyed operator is mostly runs
// of one key.
inline void hash_rows(const Batch& b, const std::vector<size_t>& fields, std::vector<uint64_t>& out,
                      const std::vector<uint8_t>* repeats = nullptr) {
  const size_t n = b.active_rows();
  out.assign(n, kRowHashSeed);
  const uint8_t* skip = repeats ? repeats->data() : nullptr;
  for (size_t f : fields) {
    const Column& c = *b.column(f);
    if (stored_as_int64(c.type()) && !c.has_nulls()) {
      const int64_t* v = c.int64_data();
      for (size_t k = 0; k < n; ++k) {
        if (!skip || !skip[k]) out[k] = hash_combine(out[k], hash_int64(v[b.row_at(k)]));
      }
      continue;
    }
    for (size_t k = 0; k < n; ++k) {
      if (!skip || !skip[k]) out[k] = hash_combine(out[k], hash_cell(c, b.row_at(k)));
    }
  }
  if (skip) {
    for (size_t k = 1; k < n; ++k) {
      if (skip[k]) out[k] = out[k - 1];
    }
  }
}

// Maps a hash to one of `n` subtasks (n > 0). Uses the high bits
// (multiply-shift), which are well mixed, and avoids a division.
inline size_t subtask_for_hash(uint64_t h, size_t n) {
  return static_cast<size_t>((static_cast<unsigned __int128>(h) * n) >> 64);
}

}  // namespace df::runtime
