// Byte encodings of values for keyed state.
//
// Key encodings are order-preserving: comparing encoded bytes (memcmp, as
// RocksDB does) orders values as the engine does, with null first, so a scan
// over a key prefix visits keys in value order. Each encoded value is
// self-delimiting, so composite keys are plain concatenations.
// Value encodings are compact and not ordered. All functions are pure.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "engine/core/column.h"
#include "engine/core/status.h"
#include "engine/core/value.h"

namespace df::state {

// Order-preserving, self-delimiting.
void encode_key_value(const Value& v, std::string& out);
void encode_key_cell(const Column& column, size_t row, std::string& out);
// Reads one value of `type` written by encode_key_*, advancing `in`.
Result<Value> decode_key_value(std::string_view& in, TypeId type);

// Compact, self-delimiting, not ordered.
void encode_value(const Value& v, std::string& out);
void encode_cell(const Column& column, size_t row, std::string& out);
Result<Value> decode_value(std::string_view& in, TypeId type);

// Big-endian fixed-width integers (ordered for unsigned values).
void append_u64(uint64_t v, std::string& out);
Result<uint64_t> read_u64(std::string_view& in);
// A signed int64 (e.g. a timestamp) as 8 ordered bytes.
void append_ordered_i64(int64_t v, std::string& out);
Result<int64_t> read_ordered_i64(std::string_view& in);
// Those 8 bytes as a native word to copy out or in (std::memcpy), for hot
// paths that neither build a string nor check a length.
inline uint64_t ordered_i64_word(int64_t v) {
  static_assert(std::endian::native == std::endian::little);
  return __builtin_bswap64(static_cast<uint64_t>(v) ^ (uint64_t{1} << 63));
}
inline int64_t from_ordered_i64_word(uint64_t word) {
  return static_cast<int64_t>(__builtin_bswap64(word) ^ (uint64_t{1} << 63));
}

// LEB128 unsigned varint (1..10 bytes); used for lengths in value encodings.
void append_varint(uint64_t v, std::string& out);
Result<uint64_t> read_varint(std::string_view& in);

// Typed key appenders, the same bytes encode_key_value writes for a non-null
// value of that type (no boxing into a Value on hot paths).
void append_key_null(std::string& out);
void append_key_bool(bool v, std::string& out);
void append_key_i64(int64_t v, std::string& out);  // int64 and timestamp
void append_key_double(double v, std::string& out);
void append_key_string(std::string_view v, std::string& out);

// The first byte of a non-null key cell.
inline constexpr char kKeyPresentByte = 0x01;
// append_key_i64's bytes written at `out`, which has room for
// kKeyI64Bytes: for hot paths that lay out fixed-width keys themselves.
inline constexpr size_t kKeyI64Bytes = 9;
inline void write_key_i64(int64_t v, char* out) {
  out[0] = kKeyPresentByte;
  const uint64_t word = ordered_i64_word(v);
  std::memcpy(out + 1, &word, 8);
}

// The smallest byte string greater than every string that starts with
// `prefix`; empty when there is none (prefix empty or all 0xFF), which scans
// read as "to the last key". [prefix, prefix_end(prefix)) is a prefix scan.
std::string prefix_end(std::string_view prefix);

}  // namespace df::state
