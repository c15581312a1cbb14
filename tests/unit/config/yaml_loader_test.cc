#include "config/yaml_loader.h"

#include <gtest/gtest.h>

#include <cstdlib>

namespace df::config {
namespace {

TEST(YamlLoader, KeepsLocationsOfEveryNode) {
  auto doc = parse_yaml("name: x\nsources:\n  - id: a\n    where: \"price > 1\"\n", "p.yaml");
  ASSERT_TRUE(doc.ok()) << doc.status().to_string();
  const ConfigValue* name = doc->find("name");
  ASSERT_NE(name, nullptr);
  EXPECT_EQ(name->location().to_string(), "p.yaml:1:7");
  const ConfigValue& src = doc->find("sources")->items().at(0);
  EXPECT_EQ(src.find("id")->location().to_string(), "p.yaml:3:9");
  const ConfigValue* where = src.find("where");
  EXPECT_EQ(where->scalar_text(), "price > 1");
  EXPECT_TRUE(where->quoted());
  EXPECT_EQ(where->location().to_string(), "p.yaml:4:12");
}

TEST(YamlLoader, NullsAndQuotedNulls) {
  auto doc = parse_yaml("a: null\nb: ~\nc: 'null'\nd:\n", "f");
  ASSERT_TRUE(doc.ok());
  EXPECT_TRUE(doc->find("a")->is_null());
  EXPECT_TRUE(doc->find("b")->is_null());
  EXPECT_TRUE(doc->find("c")->is_scalar());
  EXPECT_TRUE(doc->find("d")->is_null());
}

TEST(YamlLoader, ReportsSyntaxErrorsWithLine) {
  auto doc = parse_yaml("a: [1, 2\nb: 3\n", "bad.yaml");
  ASSERT_FALSE(doc.ok());
  EXPECT_EQ(doc.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(doc.status().message().find("bad.yaml:"), std::string::npos) << doc.status().message();
  EXPECT_NE(doc.status().message().find("invalid YAML"), std::string::npos);
}

TEST(YamlLoader, RejectsDuplicateKeys) {
  auto doc = parse_yaml("a: 1\nb: 2\na: 3\n", "d.yaml");
  ASSERT_FALSE(doc.ok());
  EXPECT_EQ(doc.status().message(), "d.yaml:3:1: duplicate key 'a'");
}

TEST(YamlLoader, ParsesJsonToo) {
  auto doc = parse_yaml(R"({"name": "j", "sources": [{"id": "s", "count": 3}]})", "j.json");
  ASSERT_TRUE(doc.ok());
  EXPECT_EQ(doc->find("name")->scalar_text(), "j");
  EXPECT_EQ(*doc->find("sources")->items()[0].find("count")->as_int(), 3);
}

TEST(EnvSubstitution, ReplacesVariablesAndDefaults) {
  ::setenv("DF_TEST_BROKER", "k1:9092", 1);
  ::unsetenv("DF_TEST_MISSING");
  auto doc = parse_yaml(
      "a: ${DF_TEST_BROKER}\nb: 'x-${DF_TEST_MISSING:-fallback}-y'\nc: $${literal}\n", "e.yaml");
  ASSERT_TRUE(doc.ok()) << doc.status().to_string();
  EXPECT_EQ(doc->find("a")->scalar_text(), "k1:9092");
  EXPECT_EQ(doc->find("b")->scalar_text(), "x-fallback-y");
  EXPECT_EQ(doc->find("c")->scalar_text(), "${literal}");
}

TEST(EnvSubstitution, UnsetVariableIsAnErrorNamingIt) {
  ::unsetenv("DF_TEST_MISSING");
  auto doc = parse_yaml("a: 1\nb: ${DF_TEST_MISSING}\n", "e.yaml");
  ASSERT_FALSE(doc.ok());
  EXPECT_EQ(doc.status().message(),
            "e.yaml:2:4: environment variable DF_TEST_MISSING is not set (write "
            "${DF_TEST_MISSING:-default} to give a default)");
}

TEST(YamlLoader, MissingFileIsOneSentence) {
  auto doc = load_yaml_file("/nonexistent/dir/p.yaml");
  ASSERT_FALSE(doc.ok());
  EXPECT_EQ(doc.status().code(), StatusCode::kIoError);
  EXPECT_EQ(doc.status().message(), "cannot read /nonexistent/dir/p.yaml: No such file or directory");
}

}  // namespace
}  // namespace df::config
