#include "engine/state/codec.h"

#include <bit>
#include <cmath>
#include <cstring>
#include <limits>

namespace df::state {
namespace {

// Key encodings start with a marker: null sorts before every present value.
constexpr char kKeyNull = 0x00;
constexpr char kKeyPresent = kKeyPresentByte;
// Inside an encoded key string: 0x00 is escaped as 0x00 0xFF and the string
// ends with 0x00 0x01, so a prefix sorts before its extensions.
constexpr char kStrEscape = static_cast<char>(0xFF);
constexpr char kStrEnd = 0x01;

// Value encodings start with a flag.
constexpr char kValNull = 0x00;
constexpr char kValPresent = 0x01;

constexpr uint64_t kSignBit = uint64_t{1} << 63;

Status truncated(const char* what) {
  return Status::data_error(std::string("truncated state encoding: ") + what);
}

void put_be64(uint64_t v, std::string& out) {
  char b[8];
  for (int i = 7; i >= 0; --i) {
    b[i] = static_cast<char>(v & 0xFF);
    v >>= 8;
  }
  out.append(b, 8);
}

uint64_t get_be64(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

void put_le64(uint64_t v, std::string& out) {
  char b[8];
  for (int i = 0; i < 8; ++i) {
    b[i] = static_cast<char>(v & 0xFF);
    v >>= 8;
  }
  out.append(b, 8);
}

uint64_t get_le64(const char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

// IEEE 754 bits -> bytes whose unsigned order is the numeric order:
// negatives have all bits flipped, positives only the sign bit. -0.0 becomes
// 0.0 and every NaN the one quiet NaN, which then sorts after +inf.
uint64_t ordered_double_bits(double d) {
  if (d == 0.0) d = 0.0;
  if (std::isnan(d)) d = std::numeric_limits<double>::quiet_NaN();
  uint64_t bits = std::bit_cast<uint64_t>(d);
  return (bits & kSignBit) ? ~bits : (bits ^ kSignBit);
}

double double_from_ordered(uint64_t v) {
  uint64_t bits = (v & kSignBit) ? (v ^ kSignBit) : ~v;
  return std::bit_cast<double>(bits);
}

Result<bool> read_key_marker(std::string_view& in) {
  if (in.empty()) return truncated("key marker");
  char m = in[0];
  in.remove_prefix(1);
  if (m == kKeyNull) return false;
  if (m == kKeyPresent) return true;
  return Status::data_error("bad key marker in state encoding");
}

Result<std::string> read_key_string(std::string_view& in) {
  std::string s;
  size_t pos = 0;
  for (;;) {
    const void* z = std::memchr(in.data() + pos, 0, in.size() - pos);
    if (z == nullptr) return truncated("key string");
    size_t at = static_cast<size_t>(static_cast<const char*>(z) - in.data());
    if (at + 1 >= in.size()) return truncated("key string");
    s.append(in.data() + pos, at - pos);
    char next = in[at + 1];
    pos = at + 2;
    if (next == kStrEnd) break;
    if (next != kStrEscape) return Status::data_error("bad escape in state key string");
    s.push_back('\0');
  }
  in.remove_prefix(pos);
  return s;
}

Result<uint64_t> read_fixed(std::string_view& in, bool big_endian, const char* what) {
  if (in.size() < 8) return truncated(what);
  uint64_t v = big_endian ? get_be64(in.data()) : get_le64(in.data());
  in.remove_prefix(8);
  return v;
}

}  // namespace

// ---- fixed-width integers and varints -------------------------------------

void append_u64(uint64_t v, std::string& out) { put_be64(v, out); }

Result<uint64_t> read_u64(std::string_view& in) { return read_fixed(in, true, "u64"); }

void append_ordered_i64(int64_t v, std::string& out) {
  put_be64(static_cast<uint64_t>(v) ^ kSignBit, out);
}

Result<int64_t> read_ordered_i64(std::string_view& in) {
  DF_ASSIGN_OR_RETURN(uint64_t v, read_fixed(in, true, "i64"));
  return static_cast<int64_t>(v ^ kSignBit);
}

void append_varint(uint64_t v, std::string& out) {
  char b[10];
  size_t n = 0;
  while (v >= 0x80) {
    b[n++] = static_cast<char>((v & 0x7F) | 0x80);
    v >>= 7;
  }
  b[n++] = static_cast<char>(v);
  out.append(b, n);
}

Result<uint64_t> read_varint(std::string_view& in) {
  uint64_t v = 0;
  for (size_t i = 0; i < 10; ++i) {
    if (i >= in.size()) return truncated("varint");
    auto byte = static_cast<uint8_t>(in[i]);
    if (i == 9 && byte > 1) return Status::data_error("varint overflows 64 bits");
    v |= uint64_t{byte & 0x7Fu} << (7 * i);
    if ((byte & 0x80) == 0) {
      in.remove_prefix(i + 1);
      return v;
    }
  }
  return Status::data_error("varint longer than 10 bytes");
}

// ---- key encodings ----------------------------------------------------------

void append_key_null(std::string& out) { out.push_back(kKeyNull); }

void append_key_bool(bool v, std::string& out) {
  out.push_back(kKeyPresent);
  out.push_back(v ? 1 : 0);
}

void append_key_i64(int64_t v, std::string& out) {
  char cell[kKeyI64Bytes];
  write_key_i64(v, cell);
  out.append(cell, kKeyI64Bytes);
}

void append_key_double(double v, std::string& out) {
  out.push_back(kKeyPresent);
  put_be64(ordered_double_bits(v), out);
}

void append_key_string(std::string_view v, std::string& out) {
  out.push_back(kKeyPresent);
  size_t pos = 0;
  while (pos < v.size()) {
    const void* z = std::memchr(v.data() + pos, 0, v.size() - pos);
    if (z == nullptr) {
      out.append(v.data() + pos, v.size() - pos);
      break;
    }
    size_t at = static_cast<size_t>(static_cast<const char*>(z) - v.data());
    out.append(v.data() + pos, at - pos);
    out.push_back('\0');
    out.push_back(kStrEscape);
    pos = at + 1;
  }
  out.push_back('\0');
  out.push_back(kStrEnd);
}

void encode_key_value(const Value& v, std::string& out) {
  if (v.is_null()) return append_key_null(out);
  switch (v.type()) {
    case TypeId::kBool:
      return append_key_bool(v.as_bool(), out);
    case TypeId::kInt64:
    case TypeId::kTimestamp:
      return append_key_i64(v.as_int64(), out);
    case TypeId::kDouble:
      return append_key_double(v.as_double(), out);
    case TypeId::kString:
      return append_key_string(v.as_string(), out);
  }
}

void encode_key_cell(const Column& column, size_t row, std::string& out) {
  if (column.is_null(row)) return append_key_null(out);
  switch (column.type()) {
    case TypeId::kBool:
      return append_key_bool(column.bool_at(row), out);
    case TypeId::kInt64:
    case TypeId::kTimestamp:
      return append_key_i64(column.int64_at(row), out);
    case TypeId::kDouble:
      return append_key_double(column.double_at(row), out);
    case TypeId::kString:
      return append_key_string(column.string_at(row), out);
  }
}

Result<Value> decode_key_value(std::string_view& in, TypeId type) {
  DF_ASSIGN_OR_RETURN(bool present, read_key_marker(in));
  if (!present) return Value::null(type);
  switch (type) {
    case TypeId::kBool: {
      if (in.empty()) return truncated("key bool");
      char b = in[0];
      if (b != 0 && b != 1) return Status::data_error("bad bool in state key");
      in.remove_prefix(1);
      return Value::boolean(b == 1);
    }
    case TypeId::kInt64: {
      DF_ASSIGN_OR_RETURN(int64_t v, read_ordered_i64(in));
      return Value::int64(v);
    }
    case TypeId::kTimestamp: {
      DF_ASSIGN_OR_RETURN(int64_t v, read_ordered_i64(in));
      return Value::timestamp(v);
    }
    case TypeId::kDouble: {
      DF_ASSIGN_OR_RETURN(uint64_t v, read_fixed(in, true, "key double"));
      return Value::float64(double_from_ordered(v));
    }
    case TypeId::kString: {
      DF_ASSIGN_OR_RETURN(std::string s, read_key_string(in));
      return Value::string(std::move(s));
    }
  }
  return Status::internal("unknown type in decode_key_value");
}

// ---- value encodings --------------------------------------------------------

namespace {

void encode_bool_value(bool v, std::string& out) {
  out.push_back(kValPresent);
  out.push_back(v ? 1 : 0);
}

void encode_i64_value(int64_t v, std::string& out) {
  out.push_back(kValPresent);
  put_le64(static_cast<uint64_t>(v), out);
}

void encode_double_value(double v, std::string& out) {
  out.push_back(kValPresent);
  put_le64(std::bit_cast<uint64_t>(v), out);
}

void encode_string_value(std::string_view v, std::string& out) {
  out.push_back(kValPresent);
  append_varint(v.size(), out);
  out.append(v.data(), v.size());
}

}  // namespace

void encode_value(const Value& v, std::string& out) {
  if (v.is_null()) {
    out.push_back(kValNull);
    return;
  }
  switch (v.type()) {
    case TypeId::kBool:
      return encode_bool_value(v.as_bool(), out);
    case TypeId::kInt64:
    case TypeId::kTimestamp:
      return encode_i64_value(v.as_int64(), out);
    case TypeId::kDouble:
      return encode_double_value(v.as_double(), out);
    case TypeId::kString:
      return encode_string_value(v.as_string(), out);
  }
}

void encode_cell(const Column& column, size_t row, std::string& out) {
  if (column.is_null(row)) {
    out.push_back(kValNull);
    return;
  }
  switch (column.type()) {
    case TypeId::kBool:
      return encode_bool_value(column.bool_at(row), out);
    case TypeId::kInt64:
    case TypeId::kTimestamp:
      return encode_i64_value(column.int64_at(row), out);
    case TypeId::kDouble:
      return encode_double_value(column.double_at(row), out);
    case TypeId::kString:
      return encode_string_value(column.string_at(row), out);
  }
}

Result<Value> decode_value(std::string_view& in, TypeId type) {
  if (in.empty()) return truncated("value flag");
  char flag = in[0];
  if (flag != kValNull && flag != kValPresent) {
    return Status::data_error("bad null flag in state value");
  }
  in.remove_prefix(1);
  if (flag == kValNull) return Value::null(type);
  switch (type) {
    case TypeId::kBool: {
      if (in.empty()) return truncated("bool value");
      char b = in[0];
      if (b != 0 && b != 1) return Status::data_error("bad bool in state value");
      in.remove_prefix(1);
      return Value::boolean(b == 1);
    }
    case TypeId::kInt64: {
      DF_ASSIGN_OR_RETURN(uint64_t v, read_fixed(in, false, "int64 value"));
      return Value::int64(static_cast<int64_t>(v));
    }
    case TypeId::kTimestamp: {
      DF_ASSIGN_OR_RETURN(uint64_t v, read_fixed(in, false, "timestamp value"));
      return Value::timestamp(static_cast<int64_t>(v));
    }
    case TypeId::kDouble: {
      DF_ASSIGN_OR_RETURN(uint64_t v, read_fixed(in, false, "double value"));
      return Value::float64(std::bit_cast<double>(v));
    }
    case TypeId::kString: {
      DF_ASSIGN_OR_RETURN(uint64_t n, read_varint(in));
      if (in.size() < n) return truncated("string value");
      std::string s(in.data(), static_cast<size_t>(n));
      in.remove_prefix(static_cast<size_t>(n));
      return Value::string(std::move(s));
    }
  }
  return Status::internal("unknown type in decode_value");
}

std::string prefix_end(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty()) {
    auto last = static_cast<uint8_t>(end.back());
    if (last != 0xFF) {
      end.back() = static_cast<char>(last + 1);
      return end;
    }
    end.pop_back();
  }
  return end;
}

}  // namespace df::state
