#include "engine/core/time.h"

#include <gtest/gtest.h>

namespace df {
namespace {

TEST(Duration, ParsesUnits) {
  EXPECT_EQ(parse_duration("500ms")->count(), 500);
  EXPECT_EQ(parse_duration("10s")->count(), 10'000);
  EXPECT_EQ(parse_duration("5m")->count(), 300'000);
  EXPECT_EQ(parse_duration("1h")->count(), 3'600'000);
  EXPECT_EQ(parse_duration("1h30m")->count(), 5'400'000);
  EXPECT_EQ(parse_duration("2d")->count(), 172'800'000);
  EXPECT_EQ(parse_duration("0")->count(), 0);
  EXPECT_EQ(parse_duration("-5s")->count(), -5000);
}

TEST(Duration, RejectsGarbage) {
  for (const char* bad : {"", "10", "s", "10x", "1.5s", "ms", "-", "10s5"}) {
    auto r = parse_duration(bad);
    EXPECT_FALSE(r.ok()) << bad;
  }
  EXPECT_NE(parse_duration("10x").status().message().find("'10x'"), std::string::npos);
}

TEST(Duration, Formats) {
  EXPECT_EQ(format_duration(Millis(1500)), "1500ms");
  EXPECT_EQ(format_duration(Millis(90'000)), "90s");
  EXPECT_EQ(format_duration(Millis(3'600'000)), "1h");
  EXPECT_EQ(format_duration(Millis(0)), "0s");
}

TEST(Timestamp, ParsesRfc3339) {
  EXPECT_EQ(*parse_timestamp("1970-01-01T00:00:00Z"), 0);
  EXPECT_EQ(*parse_timestamp("2026-11-21T10:00:00.000Z"), 1'795'255'200'000);
  EXPECT_EQ(*parse_timestamp("2026-11-21T10:00:00.5Z"), 1'795'255'200'500);
  EXPECT_EQ(*parse_timestamp("2026-11-21T11:00:00+01:00"), 1'795'255'200'000);
  EXPECT_EQ(*parse_timestamp("2026-11-21 10:00:00"), 1'795'255'200'000);
  EXPECT_EQ(*parse_timestamp("2026-11-21"), 1'795'219'200'000);
  EXPECT_EQ(*parse_timestamp("1969-12-31T23:59:59.999Z"), -1);
  EXPECT_FALSE(parse_timestamp("2026-13-01T00:00:00Z").ok());
  EXPECT_FALSE(parse_timestamp("yesterday").ok());
  EXPECT_FALSE(parse_timestamp("2026-11-21T10:00:00Zjunk").ok());
}

TEST(Timestamp, FormatsWithMillis) {
  EXPECT_EQ(format_timestamp(1'795'255'200'000), "2026-11-21T10:00:00.000Z");
  EXPECT_EQ(format_timestamp(-1), "1969-12-31T23:59:59.999Z");
  EXPECT_EQ(format_timestamp(951'782'400'123), "2000-02-29T00:00:00.123Z");
  for (int64_t ms : {0LL, 1LL, 86'399'999LL, 1'795'255'200'042LL, -86'400'001LL}) {
    EXPECT_EQ(*parse_timestamp(format_timestamp(ms)), ms);
  }
}

// Every year RFC 3339 can spell (0000-9999) is written digit by digit; the
// years around them fall back to a sign or a fifth digit.
TEST(Timestamp, FormatsEveryFourDigitYearAndTheYearsAroundThem) {
  EXPECT_EQ(format_timestamp(-62'167'219'200'000), "0000-01-01T00:00:00.000Z");
  EXPECT_EQ(format_timestamp(253'402'300'799'999), "9999-12-31T23:59:59.999Z");
  EXPECT_EQ(format_timestamp(253'402'300'800'000), "10000-01-01T00:00:00.000Z");
  EXPECT_EQ(format_timestamp(-62'167'219'200'001), "-001-12-31T23:59:59.999Z");
  EXPECT_EQ(format_timestamp(1'735'689'599'999), "2024-12-31T23:59:59.999Z");
  // 100,000 instants spread over years 0000-9999 read back as themselves.
  const uint64_t span = 253'402'300'800'000ULL + 62'167'219'200'000ULL;
  uint64_t x = 88172645463325252ULL;
  for (int i = 0; i < 100'000; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    const int64_t ms = static_cast<int64_t>(x % span) - 62'167'219'200'000;
    const std::string text = format_timestamp(ms);
    ASSERT_EQ(text.size(), 24u) << ms;
    auto back = parse_timestamp(text);
    ASSERT_TRUE(back.ok()) << text;
    ASSERT_EQ(*back, ms) << text;
  }
}

// The extremes of int64 are formattable (no overflow on the way; UBSan
// checks it) even though RFC 3339 cannot spell their years.
TEST(Timestamp, FormatsTheInt64Extremes) {
  EXPECT_EQ(format_timestamp(-86'400'000), "1969-12-31T00:00:00.000Z");
  const std::string lo = format_timestamp(INT64_MIN);
  const std::string hi = format_timestamp(INT64_MAX);
  EXPECT_EQ(lo.substr(lo.size() - 14), "T16:47:04.192Z") << lo;
  EXPECT_EQ(hi.substr(hi.size() - 14), "T07:12:55.807Z") << hi;
  EXPECT_EQ(lo[0], '-') << lo;
}

}  // namespace
}  // namespace df
