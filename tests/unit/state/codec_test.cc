// Key encodings: memcmp order of encodings equals value order (nulls first),
// round trips; value encodings round trip; truncated input is a DataError.
#include "engine/state/codec.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "engine/core/column.h"

namespace df::state {
namespace {

// The engine's order for one type, nulls first; NaN after every number,
// -0.0 equal to 0.0.
int compare_values(const Value& a, const Value& b) {
  if (a.is_null() || b.is_null()) return (a.is_null() ? 0 : 1) - (b.is_null() ? 0 : 1);
  auto cmp = [](auto x, auto y) { return x < y ? -1 : (y < x ? 1 : 0); };
  switch (a.type()) {
    case TypeId::kBool:
      return cmp(a.as_bool(), b.as_bool());
    case TypeId::kInt64:
    case TypeId::kTimestamp:
      return cmp(a.as_int64(), b.as_int64());
    case TypeId::kDouble: {
      double x = a.as_double(), y = b.as_double();
      if (std::isnan(x) || std::isnan(y)) return (std::isnan(x) ? 1 : 0) - (std::isnan(y) ? 1 : 0);
      return cmp(x, y);
    }
    case TypeId::kString:
      return cmp(a.as_string(), b.as_string());
  }
  return 0;
}

int compare_bytes(const std::string& a, const std::string& b) {
  int c = std::memcmp(a.data(), b.data(), std::min(a.size(), b.size()));
  if (c != 0) return c < 0 ? -1 : 1;
  return a.size() < b.size() ? -1 : (a.size() > b.size() ? 1 : 0);
}

std::string key_of(const Value& v) {
  std::string s;
  encode_key_value(v, s);
  return s;
}

class RandomValues {
 public:
  explicit RandomValues(uint32_t seed) : rng_(seed) {}

  Value make(TypeId type) {
    if (pick(10) == 0) return Value::null(type);
    switch (type) {
      case TypeId::kBool:
        return Value::boolean(pick(2) == 1);
      case TypeId::kInt64:
        return Value::int64(interesting_int());
      case TypeId::kTimestamp:
        return Value::timestamp(interesting_int());
      case TypeId::kDouble:
        return Value::float64(interesting_double());
      case TypeId::kString:
        return Value::string(interesting_string());
    }
    return Value();
  }

 private:
  uint64_t pick(uint64_t n) { return std::uniform_int_distribution<uint64_t>(0, n - 1)(rng_); }

  int64_t interesting_int() {
    static const int64_t kEdges[] = {
        0,   1,   -1,  std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max(),
        255, 256, -256};
    if (pick(4) == 0) return kEdges[pick(std::size(kEdges))];
    if (pick(2) == 0) return static_cast<int64_t>(pick(2000)) - 1000;
    return static_cast<int64_t>(rng_());
  }

  double interesting_double() {
    static const double kEdges[] = {0.0,
                                    -0.0,
                                    1.0,
                                    -1.0,
                                    std::numeric_limits<double>::infinity(),
                                    -std::numeric_limits<double>::infinity(),
                                    std::numeric_limits<double>::quiet_NaN(),
                                    -std::numeric_limits<double>::quiet_NaN(),
                                    std::numeric_limits<double>::denorm_min(),
                                    -std::numeric_limits<double>::denorm_min(),
                                    std::numeric_limits<double>::max(),
                                    std::numeric_limits<double>::lowest()};
    if (pick(3) == 0) return kEdges[pick(std::size(kEdges))];
    if (pick(2) == 0) return static_cast<double>(static_cast<int64_t>(pick(200)) - 100) / 8;
    std::uniform_real_distribution<double> d(-1e12, 1e12);
    return d(rng_);
  }

  std::string interesting_string() {
    // A small alphabet with 0x00, 0x01 and 0xFF makes prefixes and escapes common.
    static const char kAlphabet[] = {'\0', '\x01', 'a', 'b', '\xFF', '\xFE'};
    size_t n = pick(6);
    std::string s;
    for (size_t i = 0; i < n; ++i) s.push_back(kAlphabet[pick(sizeof(kAlphabet))]);
    return s;
  }

  std::mt19937_64 rng_;
};

const TypeId kAllTypes[] = {TypeId::kBool, TypeId::kInt64, TypeId::kDouble, TypeId::kString,
                            TypeId::kTimestamp};

TEST(KeyCodecTest, MemcmpOrderMatchesValueOrderForEveryType) {
  RandomValues gen(42);
  for (TypeId type : kAllTypes) {
    std::vector<Value> values;
    for (int i = 0; i < 400; ++i) values.push_back(gen.make(type));
    for (size_t i = 0; i < values.size(); ++i) {
      for (size_t j = 0; j < values.size(); ++j) {
        ASSERT_EQ(compare_bytes(key_of(values[i]), key_of(values[j])),
                  compare_values(values[i], values[j]))
            << type_name(type) << ": " << values[i].to_string() << " vs " << values[j].to_string();
      }
    }
  }
}

TEST(KeyCodecTest, NullSortsFirstAcrossTypes) {
  for (TypeId type : kAllTypes) {
    std::string null_key = key_of(Value::null(type));
    EXPECT_EQ(null_key, key_of(Value::null(TypeId::kInt64))) << "null marker is type-independent";
  }
  EXPECT_LT(key_of(Value::null(TypeId::kInt64)),
            key_of(Value::int64(std::numeric_limits<int64_t>::min())));
  EXPECT_LT(key_of(Value::null(TypeId::kString)), key_of(Value::string("")));
  EXPECT_LT(key_of(Value::null(TypeId::kDouble)),
            key_of(Value::float64(-std::numeric_limits<double>::infinity())));
  EXPECT_LT(key_of(Value::null(TypeId::kBool)), key_of(Value::boolean(false)));
}

TEST(KeyCodecTest, StringsWithZerosAndPrefixes) {
  using namespace std::string_literals;
  const std::vector<std::string> sorted = {""s,     "\0"s,  "\0\0"s, "\0\x01"s, "\0\xFF"s,
                                           "\x01"s, "a"s,   "a\0"s,  "a\0b"s,   "a\x01"s,
                                           "ab"s,   "abc"s, "b"s,    "\xFF"s,   "\xFF\xFF"s};
  for (size_t i = 0; i + 1 < sorted.size(); ++i) {
    EXPECT_LT(compare_bytes(key_of(Value::string(sorted[i])), key_of(Value::string(sorted[i + 1]))),
              0)
        << i;
  }
  for (const std::string& s : sorted) {
    std::string k = key_of(Value::string(s));
    std::string_view in = k;
    auto v = decode_key_value(in, TypeId::kString);
    ASSERT_TRUE(v.ok()) << v.status().to_string();
    EXPECT_EQ(v->as_string(), s);
    EXPECT_TRUE(in.empty());
  }
}

TEST(KeyCodecTest, DoublesCanonicalise) {
  const double inf = std::numeric_limits<double>::infinity();
  const double nan = std::numeric_limits<double>::quiet_NaN();
  EXPECT_EQ(key_of(Value::float64(-0.0)), key_of(Value::float64(0.0)));
  EXPECT_EQ(key_of(Value::float64(nan)), key_of(Value::float64(-nan)));
  EXPECT_EQ(key_of(Value::float64(nan)),
            key_of(Value::float64(std::numeric_limits<double>::signaling_NaN())));
  const std::vector<double> sorted = {-inf,
                                      std::numeric_limits<double>::lowest(),
                                      -1.5,
                                      -1e-300,
                                      -std::numeric_limits<double>::denorm_min(),
                                      0.0,
                                      std::numeric_limits<double>::denorm_min(),
                                      1e-300,
                                      1.5,
                                      std::numeric_limits<double>::max(),
                                      inf,
                                      nan};
  for (size_t i = 0; i + 1 < sorted.size(); ++i) {
    EXPECT_LT(key_of(Value::float64(sorted[i])), key_of(Value::float64(sorted[i + 1]))) << i;
  }
  std::string k = key_of(Value::float64(-0.0));
  std::string_view in = k;
  auto v = decode_key_value(in, TypeId::kDouble);
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->as_double(), 0.0);
  EXPECT_FALSE(std::signbit(v->as_double()));
  k = key_of(Value::float64(-nan));
  in = k;
  v = decode_key_value(in, TypeId::kDouble);
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(std::isnan(v->as_double()));
}

// Canonical form of a value as the key codec keeps it.
Value canonical(const Value& v) {
  if (v.is_null() || v.type() != TypeId::kDouble) return v;
  double d = v.as_double();
  if (std::isnan(d)) return v;  // compared separately
  return Value::float64(d == 0.0 ? 0.0 : d);
}

bool same(const Value& a, const Value& b) {
  if (!a.is_null() && !b.is_null() && a.type() == TypeId::kDouble && b.type() == TypeId::kDouble &&
      std::isnan(a.as_double())) {
    return std::isnan(b.as_double());
  }
  return a == b;
}

TEST(KeyCodecTest, CompositeKeysRoundTrip) {
  RandomValues gen(7);
  for (int round = 0; round < 300; ++round) {
    std::vector<Value> row;
    std::string key;
    for (TypeId type : kAllTypes) {
      row.push_back(gen.make(type));
      encode_key_value(row.back(), key);
    }
    std::string_view in = key;
    for (size_t i = 0; i < row.size(); ++i) {
      auto v = decode_key_value(in, row[i].type());
      ASSERT_TRUE(v.ok()) << v.status().to_string();
      EXPECT_TRUE(same(*v, canonical(row[i]))) << v->to_string() << " vs " << row[i].to_string();
      EXPECT_EQ(v->type(), row[i].type());
    }
    EXPECT_TRUE(in.empty());
  }
}

TEST(KeyCodecTest, CellEncodingMatchesValueEncoding) {
  RandomValues gen(11);
  for (TypeId type : kAllTypes) {
    ColumnBuilder b(type);
    std::vector<Value> values;
    for (int i = 0; i < 100; ++i) {
      values.push_back(gen.make(type));
      b.append_value(values.back());
    }
    ColumnPtr col = b.finish();
    for (size_t i = 0; i < values.size(); ++i) {
      std::string from_cell, from_value, vcell, vvalue;
      encode_key_cell(*col, i, from_cell);
      encode_key_value(values[i], from_value);
      EXPECT_EQ(from_cell, from_value);
      encode_cell(*col, i, vcell);
      encode_value(values[i], vvalue);
      EXPECT_EQ(vcell, vvalue);
    }
  }
}

TEST(KeyCodecTest, TruncatedKeysAreDataErrors) {
  RandomValues gen(3);
  for (TypeId type : kAllTypes) {
    for (int round = 0; round < 50; ++round) {
      Value v = gen.make(type);
      std::string k = key_of(v);
      for (size_t len = 0; len < k.size(); ++len) {
        std::string_view in(k.data(), len);
        auto r = decode_key_value(in, type);
        ASSERT_FALSE(r.ok()) << v.to_string() << " cut at " << len;
        EXPECT_EQ(r.status().code(), StatusCode::kDataError);
      }
    }
  }
  std::string bad = "\x07";
  std::string_view in = bad;
  EXPECT_EQ(decode_key_value(in, TypeId::kInt64).status().code(), StatusCode::kDataError);
}

TEST(ValueCodecTest, RoundTripsAndTruncation) {
  RandomValues gen(5);
  for (TypeId type : kAllTypes) {
    for (int round = 0; round < 200; ++round) {
      Value v = gen.make(type);
      std::string enc;
      encode_value(v, enc);
      enc += "tail";
      std::string_view in = enc;
      auto r = decode_value(in, type);
      ASSERT_TRUE(r.ok()) << r.status().to_string();
      EXPECT_TRUE(same(*r, v)) << r->to_string() << " vs " << v.to_string();
      if (!v.is_null() && type == TypeId::kDouble) {
        EXPECT_EQ(std::signbit(r->as_double()), std::signbit(v.as_double()));  // exact bits
      }
      EXPECT_EQ(in, "tail");
      for (size_t len = 0; len + 4 < enc.size(); ++len) {
        std::string_view cut(enc.data(), len);
        auto t = decode_value(cut, type);
        ASSERT_FALSE(t.ok());
        EXPECT_EQ(t.status().code(), StatusCode::kDataError);
      }
    }
  }
  // Compactness: null is one byte, an int64 nine, a string its length plus two.
  std::string s;
  encode_value(Value::null(TypeId::kString), s);
  EXPECT_EQ(s.size(), 1u);
  s.clear();
  encode_value(Value::int64(5), s);
  EXPECT_EQ(s.size(), 9u);
  s.clear();
  encode_value(Value::string("hello"), s);
  EXPECT_EQ(s.size(), 7u);
}

TEST(FixedCodecTest, OrderedI64AndU64AndVarint) {
  std::vector<int64_t> sorted = {std::numeric_limits<int64_t>::min(), -1000, -1, 0, 1, 1000,
                                 std::numeric_limits<int64_t>::max()};
  std::string prev;
  for (int64_t v : sorted) {
    std::string k;
    append_ordered_i64(v, k);
    ASSERT_EQ(k.size(), 8u);
    if (!prev.empty()) {
      EXPECT_LT(prev, k);
    }
    prev = k;
    std::string_view in = k;
    auto r = read_ordered_i64(in);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(*r, v);
  }
  std::string u;
  append_u64(0x0102030405060708ull, u);
  EXPECT_EQ(u, std::string("\x01\x02\x03\x04\x05\x06\x07\x08"));
  std::string_view uin = u;
  EXPECT_EQ(*read_u64(uin), 0x0102030405060708ull);
  std::string_view short_in = std::string_view(u).substr(0, 7);
  EXPECT_EQ(read_u64(short_in).status().code(), StatusCode::kDataError);

  for (uint64_t v : {uint64_t{0}, uint64_t{127}, uint64_t{128}, uint64_t{300},
                     std::numeric_limits<uint64_t>::max()}) {
    std::string enc;
    append_varint(v, enc);
    std::string_view in = enc;
    auto r = read_varint(in);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(*r, v);
    EXPECT_TRUE(in.empty());
    std::string_view cut(enc.data(), enc.size() - 1);
    EXPECT_EQ(read_varint(cut).status().code(), StatusCode::kDataError);
  }
}

TEST(FixedCodecTest, PrefixEnd) {
  using namespace std::string_literals;
  EXPECT_EQ(prefix_end("ab"), "ac");
  EXPECT_EQ(prefix_end("a\xFF"s), "b");
  EXPECT_EQ(prefix_end("\xFF\xFF"s), "");
  EXPECT_EQ(prefix_end(""), "");
}

}  // namespace
}  // namespace df::state
