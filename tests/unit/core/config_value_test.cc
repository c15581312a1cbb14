#include "engine/core/config_value.h"

#include <gtest/gtest.h>

namespace df {
namespace {

SourceLocation at(int line, int col) { return SourceLocation{"p.yaml", line, col}; }

ConfigValue node() {
  return ConfigValue::map({{"path", ConfigValue::scalar("./in", at(2, 9))},
                           {"count", ConfigValue::scalar("12", at(3, 10))},
                           {"rate", ConfigValue::scalar("fast", at(4, 9))},
                           {"every", ConfigValue::scalar("10s", at(5, 10))},
                           {"colour", ConfigValue::scalar("red", at(6, 11))}},
                          at(1, 3));
}

TEST(OptionReader, ReadsTypedOptionsAndReportsEveryProblem) {
  Diagnostics diags;
  ConfigValue n = node();
  OptionReader r(n, "source 'in' (file)", diags);
  EXPECT_EQ(r.string("path"), "./in");
  EXPECT_EQ(r.int64("count"), 12);
  EXPECT_FALSE(r.int64("rate").has_value());
  EXPECT_EQ(r.duration("every")->count(), 10'000);
  EXPECT_FALSE(r.string("format", /*required=*/true).has_value());
  r.finish();
  ASSERT_EQ(diags.size(), 3u);
  EXPECT_EQ(diags.items()[0].to_string(),
            "p.yaml:4:9: source 'in' (file) option 'rate': expected an integer, got 'fast'");
  EXPECT_EQ(diags.items()[1].to_string(), "p.yaml:1:3: source 'in' (file) needs 'format'");
  EXPECT_EQ(diags.items()[2].to_string(),
            "p.yaml:6:11: unknown option 'colour' for source 'in' (file)");
  Status s = diags.to_status();
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("\n"), std::string::npos);
}

TEST(ConfigValue, DidYouMeanNamesTheNearestKnownNameWhenItIsALikelyTypo) {
  const std::vector<std::string> known = {"port", "host", "data_dir", "shutdown_grace_period"};
  EXPECT_EQ(edit_distance("prot", "port"), 2u);
  EXPECT_EQ(edit_distance("", "abc"), 3u);
  EXPECT_EQ(edit_distance("kitten", "sitting"), 3u);
  EXPECT_EQ(did_you_mean("prot", known), " (did you mean 'port'?)");
  EXPECT_EQ(did_you_mean("data-dir", known), " (did you mean 'data_dir'?)");
  EXPECT_EQ(did_you_mean("shutdown_grace", known), "") << "7 edits away";
  EXPECT_EQ(did_you_mean("ab", known), "") << "as many edits as characters";
  EXPECT_EQ(did_you_mean("", known), "");

  Diagnostics diags;
  ConfigValue n = node();
  OptionReader r(n, "source 'in' (file)", diags);
  r.allow("path");
  r.allow("count");
  r.allow("rate");
  r.allow("every");
  r.allow("format");
  r.allow("color");
  r.finish();
  ASSERT_EQ(diags.size(), 1u);
  EXPECT_EQ(diags.items()[0].to_string(),
            "p.yaml:6:11: unknown option 'colour' for source 'in' (file) (did you mean 'color'?)");
}

TEST(ConfigValue, ScalarConversions) {
  EXPECT_TRUE(*ConfigValue::scalar("yes", at(1, 1)).as_bool());
  EXPECT_FALSE(ConfigValue::scalar("maybe", at(1, 1)).as_bool().ok());
  EXPECT_DOUBLE_EQ(*ConfigValue::scalar("0.5", at(1, 1)).as_double(), 0.5);
  auto list = ConfigValue::sequence(
      {ConfigValue::scalar("a", at(1, 2)), ConfigValue::scalar("b", at(1, 5))}, at(1, 1));
  EXPECT_EQ(*list.as_string_list(), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(*ConfigValue::scalar("a", at(1, 1)).as_string_list(), (std::vector<std::string>{"a"}));
  EXPECT_EQ(ConfigValue::map({}, at(1, 1)).as_int().status().message(),
            "p.yaml:1:1: expected an integer, got a map");
}

}  // namespace
}  // namespace df
