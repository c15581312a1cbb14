// State export/import of the joins (StateSerde) and the shared Value <-> JSON
// helpers of operators/state_json.h: exact round trips for every column type
// (nulls, unicode and non-UTF-8 strings, -0.0, extreme doubles, NaN bits,
// timestamps RFC 3339 can and cannot spell), the entry shapes, and
// one-sentence errors.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <limits>

#include "engine/checkpoint/state_serde.h"
#include "operators/operators.h"
#include "operators/state_json.h"
#include "tests/support/operator_harness.h"
#include "tests/unit/operators/node_test_util.h"

namespace df::operators {
namespace {

using nlohmann::json;

// --- value_to_json / value_from_json -----------------------------------------

bool same(const Value& a, const Value& b) {
  if (a.is_null() || b.is_null()) return a.is_null() == b.is_null() && a.type() == b.type();
  if (a.type() != b.type()) return false;
  if (a.type() == TypeId::kDouble) {
    return std::bit_cast<uint64_t>(a.as_double()) == std::bit_cast<uint64_t>(b.as_double());
  }
  return a == b;
}

TEST(StateJson, EveryTypeRoundTripsExactlyThroughJsonText) {
  const double qnan = std::numeric_limits<double>::quiet_NaN();
  const double neg_nan = std::bit_cast<double>(uint64_t{0xfff8000000000000});
  const double payload_nan = std::bit_cast<double>(uint64_t{0x7ff0000000000123});
  const std::vector<Value> values = {
      Value::null(TypeId::kBool),
      Value::null(TypeId::kInt64),
      Value::null(TypeId::kDouble),
      Value::null(TypeId::kString),
      Value::null(TypeId::kTimestamp),
      Value::boolean(true),
      Value::boolean(false),
      Value::int64(0),
      Value::int64(INT64_MIN),
      Value::int64(INT64_MAX),
      Value::float64(0.0),
      Value::float64(-0.0),
      Value::float64(0.1),
      Value::float64(1e300),
      Value::float64(-1.7976931348623157e308),
      Value::float64(5e-324),
      Value::float64(9007199254740993.0),
      Value::float64(qnan),
      Value::float64(neg_nan),
      Value::float64(payload_nan),
      Value::float64(std::numeric_limits<double>::infinity()),
      Value::float64(-std::numeric_limits<double>::infinity()),
      Value::string(""),
      Value::string("plain"),
      Value::string("héllo ✓ 🚀 \"quoted\"\n"),
      Value::string(std::string("a\0b", 3)),
      Value::string("\xc3\x28 not utf-8"),
      Value::string("\xed\xa0\x80"),  // a surrogate: not valid UTF-8
      Value::timestamp(0),
      Value::timestamp(-1),
      Value::timestamp(1'795'000'000'123),
      Value::timestamp(253'402'300'799'999),  // 9999-12-31T23:59:59.999Z
      Value::timestamp(253'402'300'800'000),  // year 10000: integer ms
      Value::timestamp(-62'167'219'200'001),  // before year 0: integer ms
      Value::timestamp(INT64_MIN),
      Value::timestamp(INT64_MAX)};
  for (const Value& v : values) {
    const json j = value_to_json(v, v.type());
    const std::string text = j.dump();  // throws on invalid UTF-8: never
    auto back = value_from_json(json::parse(text), v.type(), "field 'x'");
    ASSERT_TRUE(back.ok()) << text << ": " << back.status().to_string();
    EXPECT_TRUE(same(*back, v)) << text << " came back as " << back->to_string();
  }
  EXPECT_EQ(value_to_json(Value::float64(-0.0), TypeId::kDouble).dump(), "-0.0");
  EXPECT_EQ(value_to_json(Value::float64(1e300), TypeId::kDouble).dump(), "1e+300");
  EXPECT_EQ(value_to_json(Value::float64(qnan), TypeId::kDouble), "NaN");
  EXPECT_EQ(value_to_json(Value::float64(neg_nan), TypeId::kDouble), "NaN(0xfff8000000000000)");
  EXPECT_EQ(
      value_to_json(Value::float64(-std::numeric_limits<double>::infinity()), TypeId::kDouble),
      "-Infinity");
  EXPECT_EQ(value_to_json(Value::timestamp(1'795'000'000'123), TypeId::kTimestamp),
            "2026-11-18T11:06:40.123Z");
  EXPECT_EQ(value_to_json(Value::timestamp(253'402'300'800'000), TypeId::kTimestamp),
            253'402'300'800'000);
  EXPECT_EQ(value_to_json(Value::string("\xff"), TypeId::kString), (json{{"hex", "ff"}}));
  // Readers accept the friendly spellings too.
  EXPECT_TRUE(same(*value_from_json(json(3), TypeId::kDouble, "x"), Value::float64(3.0)));
  EXPECT_TRUE(same(*value_from_json(json("2026-11-21T11:00:00+01:00"), TypeId::kTimestamp, "x"),
                   Value::timestamp(1'795'255'200'000)));
}

TEST(StateJson, WrongTypesNameTheFieldInOneSentence) {
  struct Case {
    json j;
    TypeId type;
  };
  const Case cases[] = {{json("true"), TypeId::kBool},
                        {json(1.5), TypeId::kInt64},
                        {json(uint64_t{1} << 63), TypeId::kInt64},
                        {json("1"), TypeId::kInt64},
                        {json("nan"), TypeId::kDouble},
                        {json("NaN(0x0000000000000001)"), TypeId::kDouble},  // not a NaN
                        {json(true), TypeId::kDouble},
                        {json(5), TypeId::kString},
                        {json{{"hex", "abc"}}, TypeId::kString},
                        {json{{"hex", "zz"}}, TypeId::kString},
                        {json("2026-13-01"), TypeId::kTimestamp},
                        {json(1.5), TypeId::kTimestamp},
                        {json::array(), TypeId::kTimestamp}};
  for (const auto& c : cases) {
    auto r = value_from_json(c.j, c.type, "key field 'auction'");
    ASSERT_FALSE(r.ok()) << c.j.dump();
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(r.status().message().rfind("key field 'auction' must be ", 0), 0u)
        << r.status().message();
    EXPECT_EQ(r.status().message().find('\n'), std::string::npos);
  }
}

// --- join StateSerde ----------------------------------------------------------

// Keys of two types on both sides, named differently per side; rows of every type.
SchemaPtr left_schema() {
  return make_schema({{"ks", TypeId::kString},
                      {"kd", TypeId::kDouble},
                      {"flag", TypeId::kBool},
                      {"n", TypeId::kInt64},
                      {"at", TypeId::kTimestamp}});
}
SchemaPtr right_schema() {
  return make_schema(
      {{"rs", TypeId::kString}, {"rd", TypeId::kDouble}, {"price", TypeId::kDouble}});
}

using Built = test::BuiltNode;

std::unique_ptr<Built> prepare(const std::string& extra) {
  auto built = test::prepare_operator(
      "{id: j, type: join, left: persons, right: auctions, "
      "on: {left: [ks, kd], right: [rs, rd]}, " +
          extra + "}",
      "join", {"persons", "auctions"}, {left_schema(), right_schema()}, {true, true},
      {"id", "type", "parallelism"});
  EXPECT_TRUE(built->node) << built->diags.to_status().message();
  EXPECT_NE(built->serde, nullptr);
  return built;
}

BatchPtr lefts() {
  BatchBuilder b(left_schema());
  ColumnBuilder ts(TypeId::kInt64);
  const double nan = std::numeric_limits<double>::quiet_NaN();
  b.append_row({Value::string("ä✓"), Value::float64(-0.0), Value::boolean(true),
                Value::int64(INT64_MIN), Value::timestamp(1'795'000'000'123)});
  ts.append_int64(10'000);
  b.append_row({Value::string("b"), Value::float64(2.5), Value::null(TypeId::kBool),
                Value::null(TypeId::kInt64), Value::null(TypeId::kTimestamp)});
  ts.append_int64(10'500);
  b.append_row({Value::null(TypeId::kString), Value::float64(1.0), Value::boolean(false),
                Value::int64(1), Value::timestamp(-5)});  // null key
  ts.append_int64(11'000);
  b.append_row({Value::string(std::string("z\0\xff", 3)), Value::float64(nan),
                Value::boolean(false), Value::int64(INT64_MAX),
                Value::timestamp(400'000'000'000'000)});
  ts.append_int64(11'500);
  return b.finish()->with_event_time(ts.finish());
}

BatchPtr rights() {
  BatchBuilder b(right_schema());
  ColumnBuilder ts(TypeId::kInt64);
  b.append_row({Value::string("ä✓"), Value::float64(0.0), Value::float64(1e300)});
  ts.append_int64(10'200);
  b.append_row({Value::string("q"), Value::float64(-1e-300),
                Value::float64(-std::numeric_limits<double>::infinity())});
  ts.append_int64(10'900);
  return b.finish()->with_event_time(ts.finish());
}

struct Stored {
  json meta;
  std::vector<std::pair<std::string, std::string>> entries;
};

// Runs the join over both batches on RocksDB, snapshots it, checks the meta
// with the node's StateSerde and returns the meta and the snapshot's entries.
Stored stored_entries(const Built& b) {
  test::TempDir tmp;
  test::FakeContext ctx;
  ctx.set_state_dir(tmp.file("state"));
  test::CollectOutput out;
  auto op = b.node->make_operator(0, 1);
  EXPECT_TRUE(op->open(ctx).ok());
  EXPECT_TRUE(op->process(0, lefts(), out).ok());
  EXPECT_TRUE(op->process(1, rights(), out).ok());
  EXPECT_TRUE(op->on_watermark(Watermark{9000}, out).ok());
  test::FakeSnapshotContext sctx(1, tmp.file("ckpt"));
  EXPECT_TRUE(op->snapshot(sctx).ok());
  EXPECT_TRUE(sctx.wait().ok());  // buffered rows are written into it on the I/O thread
  Stored stored{json::parse(sctx.meta()), test::entries_of(tmp.file("ckpt"))};
  EXPECT_TRUE(b.serde->check_meta(stored.meta).ok()) << stored.meta.dump();
  return stored;
}

// Every entry: bytes -> JSON text -> bytes is the identity. Returns the JSONs.
std::vector<json> round_trip_all(const Built& b,
                                 const std::vector<std::pair<std::string, std::string>>& entries) {
  std::vector<json> out;
  for (const auto& [k, v] : entries) {
    auto j = b.serde->entry_to_json(k, v);
    EXPECT_TRUE(j.ok()) << j.status().to_string();
    if (!j.ok()) continue;
    const std::string text = j->dump();
    std::string k2, v2;
    Status s = b.serde->entry_from_json(json::parse(text), k2, v2);
    EXPECT_TRUE(s.ok()) << s.to_string() << " for " << text;
    EXPECT_EQ(k2, k) << text;
    EXPECT_EQ(v2, v) << text;
    out.push_back(*j);
  }
  return out;
}

TEST(JoinState, WindowedEntriesRoundTripAndReadWell) {
  auto b = prepare("window: {type: tumbling, size: 10s}, join_type: left");
  ASSERT_TRUE(b->serde);
  auto [meta, entries] = stored_entries(*b);
  EXPECT_EQ(meta["watermark"], "1970-01-01T00:00:09.000Z");
  EXPECT_EQ(meta["entries"], 6);
  ASSERT_EQ(entries.size(), 7u);  // 4 left + 2 right rows + the sequence
  const auto jsons = round_trip_all(*b, entries);
  int rows = 0;
  for (const auto& j : jsons) {
    if (j.contains("next_seq")) {
      EXPECT_EQ(j, (json{{"next_seq", 6}}));
      continue;
    }
    ++rows;
    EXPECT_EQ(j["window_start"], "1970-01-01T00:00:10.000Z");
    EXPECT_EQ(j["window_end"], "1970-01-01T00:00:20.000Z");
    if (j["side"] == "right") {
      EXPECT_TRUE(j["key"].contains("rs")) << j.dump();
      EXPECT_TRUE(j["row"].contains("price")) << j.dump();
    } else {
      EXPECT_TRUE(j["key"].contains("ks")) << j.dump();
      EXPECT_FALSE(j.contains("matched"));
    }
  }
  EXPECT_EQ(rows, 6);
  const json first = jsons[1];  // after "S": the null key sorts first
  EXPECT_EQ(first["key"], (json{{"ks", nullptr}, {"kd", 1.0}})) << first.dump();
  EXPECT_EQ(first["row"]["at"], "1969-12-31T23:59:59.995Z");
}

TEST(JoinState, IntervalEntriesRoundTripWithMatchedFlagsAndIndex) {
  auto b = prepare("between: {lower: -1s, upper: 1s}, join_type: left");
  ASSERT_TRUE(b->serde);
  auto [meta, entries] = stored_entries(*b);
  EXPECT_EQ(meta["output_watermark"], "1970-01-01T00:00:08.000Z");  // held back by upper
  EXPECT_EQ(meta["output_idle"], false);
  // 3 keyed left rows + 2 right rows, each with an index entry, + the sequence.
  ASSERT_EQ(entries.size(), 11u);
  const auto jsons = round_trip_all(*b, entries);
  int indexes = 0, matched = 0, unmatched = 0;
  for (const auto& j : jsons) {
    if (j.contains("expiry_index")) {
      ++indexes;
      const json& x = j["expiry_index"];
      EXPECT_TRUE(x.contains("expires") && x.contains("event_time") && x.contains("seq"));
      continue;
    }
    if (j.contains("next_seq")) continue;
    if (j["side"] == "left") {
      (j["matched"].get<bool>() ? matched : unmatched)++;
      EXPECT_TRUE(j["row"].contains("flag"));
    } else {
      EXPECT_FALSE(j.contains("matched"));
    }
  }
  EXPECT_EQ(indexes, 5);
  EXPECT_EQ(matched, 1);  // "ä✓" met its right row (the -0.0 key equals 0.0)
  EXPECT_EQ(unmatched, 2);
}

TEST(JoinState, BadEntriesAreRefusedWithOneSentenceNamingThePart) {
  auto w = prepare("window: {type: tumbling, size: 10s}");
  auto i = prepare("between: {lower: -1s, upper: 1s}");
  ASSERT_TRUE(w->serde && i->serde);
  const json wrow = json::parse(R"({"window_start": "1970-01-01T00:00:10.000Z",
      "window_end": "1970-01-01T00:00:20.000Z", "side": "right", "key": {"rs": "a", "rd": 1.0},
      "seq": 3, "row": {"rs": "a", "rd": 1.0, "price": 2.5}})");
  std::string k, v;
  ASSERT_TRUE(w->serde->entry_from_json(wrow, k, v).ok());
  const json irow = json::parse(R"({"side": "left", "key": {"ks": "a", "kd": 1.0},
      "event_time": "1970-01-01T00:00:10.000Z", "seq": 3, "matched": false,
      "row": {"ks": "a", "kd": 1.0, "flag": null, "n": 1, "at": null}})");
  ASSERT_TRUE(i->serde->entry_from_json(irow, k, v).ok());

  struct Case {
    const Built* b;
    json entry;
    const char* expect;
  };
  auto with = [](json j, const std::string& field, json value) {
    if (value.is_discarded()) {
      j.erase(field);
    } else {
      j[field] = std::move(value);
    }
    return j;
  };
  const json gone = json::value_t::discarded;
  const Case cases[] = {
      {w.get(), json(3), "must be a JSON object"},
      {w.get(), with(wrow, "side", "middle"), "'side' must be \"left\" or \"right\""},
      {w.get(), with(wrow, "window_end", "1970-01-01T00:00:21.000Z"), "'window_end' must be"},
      {w.get(), with(wrow, "window_start", "1970-01-01T00:00:11.000Z"),
       "not the start of a window"},
      {w.get(), with(wrow, "seq", -1), "'seq' must be a non-negative integer"},
      {w.get(), with(wrow, "row", gone), "is missing 'row'"},
      {w.get(), with(wrow, "event_time", 5), "unknown field 'event_time'"},
      {w.get(), with(wrow, "key", json{{"ks", "a"}, {"kd", 1.0}}), "unknown field 'k"},
      {w.get(), with(wrow, "row", json{{"rs", "a"}, {"rd", 1.0}}), "missing field 'price'"},
      {w.get(), with(wrow, "row", json{{"rs", "a"}, {"rd", 1.0}, {"price", "cheap"}}),
       "field 'price' must be a number"},
      {i.get(), with(irow, "matched", gone), "is missing 'matched'"},
      {i.get(), with(irow, "matched", "yes"), "'matched' must be true or false"},
      {i.get(),
       with(with(irow, "side", "right"), "row", json{{"rs", "a"}, {"rd", 1.0}, {"price", 1.0}}),
       "unknown field 'matched'"},
      {i.get(), with(irow, "event_time", nullptr), "'event_time' must be a timestamp, not null"},
      {i.get(), with(irow, "side", gone), "missing 'side'"},
      {i.get(), json{{"expiry_index", json{{"side", "left"}}}}, "is missing"},
      {i.get(), json{{"next_seq", "7"}}, "'next_seq' must be a non-negative integer"},
      {i.get(), json{{"next_seq", 7}, {"more", 1}}, "unknown field 'more'"},
  };
  for (const auto& c : cases) {
    Status s = c.b->serde->entry_from_json(c.entry, k, v);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << c.entry.dump();
    EXPECT_NE(s.message().find(c.expect), std::string::npos)
        << c.entry.dump() << " -> " << s.message();
    EXPECT_EQ(s.message().find('\n'), std::string::npos) << s.message();
  }

  // Bytes of another layout.
  for (const char* key : {"", "Q", "W", "Lx"}) {
    EXPECT_EQ(i->serde->entry_to_json(key, "").status().code(), StatusCode::kDataError) << key;
  }
  EXPECT_EQ(w->serde->entry_to_json("L", "").status().code(), StatusCode::kDataError);
  EXPECT_EQ(w->serde->entry_to_json("S", "123").status().code(), StatusCode::kDataError);
  ASSERT_TRUE(w->serde->entry_from_json(wrow, k, v).ok());
  EXPECT_EQ(w->serde->entry_to_json(k, v + "!").status().code(), StatusCode::kDataError);
  EXPECT_EQ(w->serde->entry_to_json(k + "!", v).status().code(), StatusCode::kDataError);

  // Meta.
  EXPECT_TRUE(w->serde->check_meta(json::parse(R"({"watermark": null, "entries": 0})")).ok());
  EXPECT_FALSE(w->serde->check_meta(json::parse(R"({"watermark": null})")).ok());
  EXPECT_FALSE(i->serde->check_meta(json::parse(R"({"watermark": null, "entries": 0})")).ok());
  EXPECT_TRUE(i->serde
                  ->check_meta(json::parse(R"({"watermark": "1970-01-01T00:00:09.000Z",
                      "output_watermark": null, "output_idle": true, "entries": 2})"))
                  .ok());
  Status s = i->serde->check_meta(json::parse(
      R"({"watermark": null, "output_watermark": null, "output_idle": 1, "entries": 2})"));
  EXPECT_NE(s.message().find("'output_idle'"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace df::operators
