// Row formats: JSON and CSV decoding/encoding, byte for byte.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "connectors/format/csv.h"
#include "connectors/format/json.h"
#include "engine/core/time.h"
#include "tests/support/operator_harness.h"

namespace df::connectors {
namespace {

using test::rows_of;

SchemaPtr all_types() {
  return make_schema({{"b", TypeId::kBool},
                      {"i", TypeId::kInt64},
                      {"d", TypeId::kDouble},
                      {"s", TypeId::kString},
                      {"t", TypeId::kTimestamp}});
}

TEST(JsonDecode, EveryTypeAndBothTimestampForms) {
  JsonRowDecoder dec(all_types());
  BatchBuilder bb(all_types());
  ASSERT_TRUE(
      dec.decode(R"({"b":true,"i":-42,"d":2.5,"s":"h\u00e9\"x","t":"2026-11-21T10:00:00.123Z"})",
                 bb)
          .ok());
  ASSERT_TRUE(dec.decode(R"({"t":1700000000000,"d":7,"i":3.0,"b":false,"s":""})", bb).ok());
  ASSERT_TRUE(
      dec.decode(R"( {"t":"2026-11-21T11:00:00+01:00","i":9223372036854775807} )", bb).ok());
  auto rows = rows_of({bb.finish()});
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0][0], Value::boolean(true));
  EXPECT_EQ(rows[0][1], Value::int64(-42));
  EXPECT_EQ(rows[0][2], Value::float64(2.5));
  EXPECT_EQ(rows[0][3], Value::string("h\xc3\xa9\"x"));
  EXPECT_EQ(rows[0][4], Value::timestamp(*parse_timestamp("2026-11-21T10:00:00.123Z")));
  EXPECT_EQ(rows[1][4], Value::timestamp(1700000000000));
  EXPECT_EQ(rows[1][2], Value::float64(7.0));  // an integer is a fine double
  EXPECT_EQ(rows[1][1], Value::int64(3));      // a double with no fraction is a fine int64
  EXPECT_EQ(rows[1][3], Value::string(""));
  EXPECT_EQ(rows[2][4], Value::timestamp(*parse_timestamp("2026-11-21T10:00:00Z")));
  EXPECT_EQ(rows[2][1], Value::int64(INT64_MAX));
}

TEST(JsonDecode, MissingAndNullFieldsAreNullExtraFieldsIgnored) {
  JsonRowDecoder dec(all_types());
  BatchBuilder bb(all_types());
  ASSERT_TRUE(dec.decode(R"({"i":1,"s":null,"extra":{"deep":[1,2]},"zz":"x"})", bb).ok());
  ASSERT_TRUE(dec.decode("{}", bb).ok());
  auto rows = rows_of({bb.finish()});
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0][1], Value::int64(1));
  EXPECT_TRUE(rows[0][0].is_null());
  EXPECT_TRUE(rows[0][3].is_null());
  EXPECT_TRUE(rows[0][4].is_null());
  for (const Value& v : rows[1]) EXPECT_TRUE(v.is_null());
}

TEST(JsonDecode, BadRecordsAppendNothingAndSayWhy) {
  JsonRowDecoder dec(all_types());
  BatchBuilder bb(all_types());
  struct Case {
    const char* text;
    const char* why;
  } cases[] = {
      {R"({"i":1.5})", "field 'i': expected int64, got 1.5"},
      {R"({"i":"7"})", "field 'i': expected int64, got a string"},
      {R"({"b":1})", "field 'b': expected bool, got an integer"},
      {R"({"s":5})", "field 's': expected string, got an integer"},
      {R"({"d":"x"})", "field 'd': expected double, got a string"},
      {R"({"t":"yesterday"})", "field 't': invalid timestamp 'yesterday'"},
      {R"({"i":18446744073709551615})", "field 'i': integer out of range"},
      {R"([1,2])", "expected a JSON object, got an array"},
      {R"({"i":1,)", "invalid JSON"},
      {"not json", "invalid JSON"},
  };
  for (const auto& c : cases) {
    Status s = dec.decode(c.text, bb);
    EXPECT_EQ(s.code(), StatusCode::kDataError) << c.text;
    EXPECT_NE(s.message().find(c.why), std::string::npos) << c.text << " -> " << s.message();
  }
  // A good record after the bad ones lands alone: bad ones appended nothing.
  ASSERT_TRUE(dec.decode(R"({"i":2})", bb).ok());
  EXPECT_EQ(bb.num_rows(), 1u);
  auto b = bb.finish();
  for (size_t c = 0; c < b->num_columns(); ++c) EXPECT_EQ(b->column(c)->size(), 1u);
}

TEST(JsonEncode, ExactTextInSchemaOrder) {
  auto schema = all_types();
  BatchBuilder bb(schema);
  bb.append_row({Value::boolean(true), Value::int64(-7), Value::float64(0.1),
                 Value::string("a\"b\\c\nd\x01"),
                 Value::timestamp(*parse_timestamp("2026-11-21T10:00:00Z"))});
  bb.append_row({Value::null(TypeId::kBool), Value::null(TypeId::kInt64),
                 Value::float64(std::numeric_limits<double>::quiet_NaN()),
                 Value::null(TypeId::kString), Value::null(TypeId::kTimestamp)});
  bb.append_row({Value::boolean(false), Value::int64(INT64_MIN),
                 Value::float64(std::numeric_limits<double>::infinity()), Value::string("é"),
                 Value::timestamp(-1)});
  bb.append_row({Value::boolean(false), Value::int64(0), Value::float64(1e300), Value::string(""),
                 Value::timestamp(0)});
  std::string out;
  JsonRowEncoder(schema).append_batch(*bb.finish(), out);
  EXPECT_EQ(out,
            "{\"b\":true,\"i\":-7,\"d\":0.1,\"s\":\"a\\\"b\\\\c\\nd\\u0001\","
            "\"t\":\"2026-11-21T10:00:00.000Z\"}\n"
            "{\"b\":null,\"i\":null,\"d\":null,\"s\":null,\"t\":null}\n"
            "{\"b\":false,\"i\":-9223372036854775808,\"d\":null,\"s\":\"é\","
            "\"t\":\"1969-12-31T23:59:59.999Z\"}\n"
            "{\"b\":false,\"i\":0,\"d\":1e+300,\"s\":\"\",\"t\":\"1970-01-01T00:00:00.000Z\"}\n");
}

// Each cell at its longest (every byte a \u00XX escape, the first and last
// instants, the longest int64 and double) and rows appended one after the
// other: every row is written whole, into room made for it.
TEST(JsonEncode, CellsAtTheirLongestFitTheirRow) {
  auto schema = all_types();
  BatchBuilder bb(schema);
  const std::string controls(300, '\x01');
  std::string escaped;
  for (size_t i = 0; i < controls.size(); ++i) escaped += "\\u0001";
  bb.append_row({Value::boolean(false), Value::int64(INT64_MIN),
                 Value::float64(-2.2250738585072014e-308), Value::string(controls),
                 Value::timestamp(INT64_MIN)});
  bb.append_row({Value::boolean(true), Value::int64(INT64_MAX),
                 Value::float64(-1.7976931348623157e+308), Value::string(""),
                 Value::timestamp(INT64_MAX)});
  std::string out = "before\n";
  JsonRowEncoder(schema).append_batch(*bb.finish(), out);
  EXPECT_EQ(out,
            "before\n"
            "{\"b\":false,\"i\":-9223372036854775808,\"d\":-2.2250738585072014e-308,\"s\":\"" +
                escaped + "\",\"t\":\"" + format_timestamp(INT64_MIN) +
                "\"}\n"
                "{\"b\":true,\"i\":9223372036854775807,\"d\":-1.7976931348623157e+308,"
                "\"s\":\"\",\"t\":\"" +
                format_timestamp(INT64_MAX) + "\"}\n");
  // The years outside 0000-9999 keep their sign and digits.
  EXPECT_EQ(format_timestamp(INT64_MAX), "292278994-08-17T07:12:55.807Z");
  EXPECT_EQ(format_timestamp(INT64_MIN), "-292275055-05-16T16:47:04.192Z");
}

// The encoder keeps each timestamp column's last text: repeats, nulls between
// them and a second timestamp column all come out as themselves.
TEST(JsonEncode, RepeatedTimestampsPerColumn) {
  auto schema = make_schema({{"a", TypeId::kTimestamp}, {"b", TypeId::kTimestamp}});
  const int64_t t = *parse_timestamp("2026-11-23T05:00:00.123Z");
  BatchBuilder bb(schema);
  bb.append_row({Value::timestamp(t), Value::timestamp(0)});
  bb.append_row({Value::timestamp(t), Value::null(TypeId::kTimestamp)});
  bb.append_row({Value::null(TypeId::kTimestamp), Value::timestamp(0)});
  bb.append_row({Value::timestamp(t + 1), Value::timestamp(t)});
  bb.append_row({Value::timestamp(t), Value::timestamp(t)});
  JsonRowEncoder encoder(schema);
  std::string out;
  encoder.append_batch(*bb.finish(), out);
  EXPECT_EQ(out,
            "{\"a\":\"2026-11-23T05:00:00.123Z\",\"b\":\"1970-01-01T00:00:00.000Z\"}\n"
            "{\"a\":\"2026-11-23T05:00:00.123Z\",\"b\":null}\n"
            "{\"a\":null,\"b\":\"1970-01-01T00:00:00.000Z\"}\n"
            "{\"a\":\"2026-11-23T05:00:00.124Z\",\"b\":\"2026-11-23T05:00:00.123Z\"}\n"
            "{\"a\":\"2026-11-23T05:00:00.123Z\",\"b\":\"2026-11-23T05:00:00.123Z\"}\n");
}

TEST(JsonEncode, HonoursTheSelectionVectorAndRoundTrips) {
  auto schema = make_schema({{"x", TypeId::kDouble}, {"s", TypeId::kString}});
  BatchBuilder bb(schema);
  for (int i = 0; i < 5; ++i) {
    bb.append_row({Value::float64(i / 3.0), Value::string("r" + std::to_string(i))});
  }
  auto batch = bb.finish()->with_selection(std::make_shared<Selection>(Selection{1, 4}));
  std::string out;
  JsonRowEncoder(schema).append_batch(*batch, out);
  EXPECT_EQ(out,
            "{\"x\":0.3333333333333333,\"s\":\"r1\"}\n{\"x\":1.3333333333333333,\"s\":\"r4\"}\n");
  // Shortest form reads back to the same double.
  JsonRowDecoder dec(schema);
  BatchBuilder back(schema);
  ASSERT_TRUE(dec.decode(out.substr(0, out.find('\n')), back).ok());
  EXPECT_EQ(back.finish()->column(0)->double_at(0), 1 / 3.0);
}

// Parses all records of `text` with the parser fed in `chunk`-byte pieces.
std::vector<std::vector<std::string>> parse_csv(const std::string& text, size_t chunk,
                                                char delim = ',',
                                                std::vector<std::string>* malformed = nullptr) {
  CsvRecordParser parser(delim);
  CsvRecord rec;
  std::vector<std::vector<std::string>> out;
  size_t pos = 0, avail = std::min(chunk, text.size());
  while (true) {
    size_t consumed = 0;
    bool eof = avail == text.size();
    auto o = parser.next(std::string_view(text).substr(pos, avail - pos), eof, rec, consumed);
    if (o == CsvRecordParser::Outcome::kEnd) break;
    if (o == CsvRecordParser::Outcome::kNeedMore) {
      avail = std::min(avail + chunk, text.size());
      continue;
    }
    std::vector<std::string> fields;
    for (size_t i = 0; i < rec.size(); ++i) {
      fields.push_back((rec.quoted(i) ? "Q:" : "") + std::string(rec.field(i)));
    }
    out.push_back(fields);
    if (malformed) malformed->push_back(rec.malformed());
    pos += consumed;
  }
  return out;
}

TEST(Csv, Rfc4180QuotingAtEveryChunkBoundary) {
  const std::string text =
      "a,b,c\r\n"
      "\"x,1\",\"say \"\"hi\"\"\",\r\n"
      "\"multi\nline\",,\"\"\n"
      "plain,\"\",last";  // no final newline
  std::vector<std::vector<std::string>> want = {
      {"a", "b", "c"},
      {"Q:x,1", "Q:say \"hi\"", ""},
      {"Q:multi\nline", "", "Q:"},
      {"plain", "Q:", "last"},
  };
  for (size_t chunk = 1; chunk <= text.size(); ++chunk) {
    EXPECT_EQ(parse_csv(text, chunk), want) << "chunk " << chunk;
  }
}

TEST(Csv, MalformedRecordsAreFlaggedAndParsingResynchronises) {
  std::vector<std::string> malformed;
  auto recs = parse_csv("\"ab\"cd,e\nok,1\n\"open", 1000, ',', &malformed);
  ASSERT_EQ(recs.size(), 3u);
  EXPECT_EQ(malformed[0], "unexpected text after a closing quote");
  EXPECT_EQ(recs[1], (std::vector<std::string>{"ok", "1"}));
  EXPECT_EQ(malformed[1], "");
  EXPECT_EQ(malformed[2], "unterminated quoted field");
}

TEST(Csv, DecodeByHeaderNameAndByPosition) {
  auto schema = make_schema({{"id", TypeId::kInt64},
                             {"name", TypeId::kString},
                             {"at", TypeId::kTimestamp},
                             {"ok", TypeId::kBool},
                             {"missing", TypeId::kDouble}});
  CsvRowDecoder dec(schema, CsvOptions{true, ';'});
  CsvRecordParser parser(';');
  CsvRecord rec;
  size_t consumed;
  std::string text = "ok;name;extra;at;id\n";
  ASSERT_EQ(parser.next(text, true, rec, consumed), CsvRecordParser::Outcome::kRecord);
  ASSERT_TRUE(dec.set_header(rec).ok());
  BatchBuilder bb(schema);
  auto decode = [&](std::string line) {
    EXPECT_EQ(parser.next(line, true, rec, consumed), CsvRecordParser::Outcome::kRecord);
    return dec.decode(rec, bb);
  };
  ASSERT_TRUE(decode("TRUE;\"a;b\";x;2026-11-21T10:00:00Z;+5").ok());
  ASSERT_TRUE(decode("0;\"\";;1700000000000;").ok());
  EXPECT_EQ(decode("x;a;b;0;1").message(), "field 'ok': expected bool, got 'x'");
  EXPECT_EQ(decode("1;a;b;c;1").message(),
            "field 'at': invalid timestamp 'c': expected RFC 3339 like 2026-11-21T10:00:00Z");
  EXPECT_EQ(decode("1;a;b").message(), "expected 5 fields, got 3");
  auto rows = rows_of({bb.finish()});
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0], (std::vector<Value>{Value::int64(5), Value::string("a;b"),
                                         Value::timestamp(*parse_timestamp("2026-11-21T10:00:00Z")),
                                         Value::boolean(true), Value::null(TypeId::kDouble)}));
  // A quoted "" is the empty string; an unquoted empty field is null.
  EXPECT_EQ(rows[1][1], Value::string(""));
  EXPECT_TRUE(rows[1][0].is_null());
  EXPECT_EQ(rows[1][2], Value::timestamp(1700000000000));

  CsvRowDecoder by_pos(make_schema({{"a", TypeId::kDouble}, {"b", TypeId::kInt64}}),
                       CsvOptions{false, ','});
  CsvRecordParser p2(',');
  BatchBuilder bb2(make_schema({{"a", TypeId::kDouble}, {"b", TypeId::kInt64}}));
  ASSERT_EQ(p2.next("1e3,-2\n", true, rec, consumed), CsvRecordParser::Outcome::kRecord);
  ASSERT_TRUE(by_pos.decode(rec, bb2).ok());
  ASSERT_EQ(p2.next("abc,1\n", true, rec, consumed), CsvRecordParser::Outcome::kRecord);
  EXPECT_EQ(by_pos.decode(rec, bb2).message(), "field 'a': expected double, got 'abc'");
  EXPECT_EQ(rows_of({bb2.finish()}),
            (std::vector<std::vector<Value>>{{Value::float64(1000), Value::int64(-2)}}));
}

TEST(Csv, EncodeExactTextAndRoundTrip) {
  auto schema = make_schema({{"name", TypeId::kString},
                             {"n", TypeId::kInt64},
                             {"x", TypeId::kDouble},
                             {"t", TypeId::kTimestamp},
                             {"b", TypeId::kBool}});
  BatchBuilder bb(schema);
  bb.append_row({Value::string("a,b \"q\"\nz"), Value::int64(-1), Value::float64(2.5),
                 Value::timestamp(0), Value::boolean(true)});
  bb.append_row({Value::string(""), Value::null(TypeId::kInt64), Value::float64(std::nan("")),
                 Value::null(TypeId::kTimestamp), Value::boolean(false)});
  bb.append_row({Value::null(TypeId::kString), Value::int64(3), Value::float64(0.1),
                 Value::timestamp(1700000000123), Value::null(TypeId::kBool)});
  auto batch = bb.finish();
  CsvRowEncoder enc(schema, CsvOptions{});
  std::string out;
  enc.append_header(out);
  enc.append_batch(*batch, out);
  EXPECT_EQ(out,
            "name,n,x,t,b\n"
            "\"a,b \"\"q\"\"\nz\",-1,2.5,1970-01-01T00:00:00.000Z,true\n"
            "\"\",,,,false\n"
            ",3,0.1,2023-11-14T22:13:20.123Z,\n");

  CsvRowDecoder dec(schema, CsvOptions{});
  CsvRecordParser parser(',');
  CsvRecord rec;
  BatchBuilder back(schema);
  std::string_view rest = out;
  size_t consumed = 0;
  ASSERT_EQ(parser.next(rest, true, rec, consumed), CsvRecordParser::Outcome::kRecord);
  ASSERT_TRUE(dec.set_header(rec).ok());
  rest.remove_prefix(consumed);
  while (parser.next(rest, true, rec, consumed) == CsvRecordParser::Outcome::kRecord) {
    ASSERT_TRUE(dec.decode(rec, back).ok()) << rest;
    rest.remove_prefix(consumed);
  }
  auto want = rows_of({batch});
  want[1][2] = Value::null(TypeId::kDouble);  // NaN is written as null
  EXPECT_EQ(rows_of({back.finish()}), want);
}

}  // namespace
}  // namespace df::connectors
