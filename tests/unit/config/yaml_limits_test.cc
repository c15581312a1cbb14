// Hostile YAML: alias expansion ("billion laughs") and deep nesting are
// refused with the location where the limit was passed, for a pipeline file
// and config.yaml alike (both load through parse_yaml).
#include <gtest/gtest.h>

#include <string>

#include "config/server_config.h"
#include "config/yaml_loader.h"
#include "tests/support/temp_dir.h"

namespace df::config {
namespace {

// Each level repeats the one above 9 times: 9^9 values once expanded.
const char kLaughs[] = R"(a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
)";

TEST(YamlLimits, BillionLaughsIsRefusedAtTheLineWhereItPassesTheLimit) {
  auto r = parse_yaml(kLaughs, "laughs.yaml");
  ASSERT_FALSE(r.ok());
  const std::string& m = r.status().message();
  EXPECT_NE(m.find("expands to more than 200000 values"), std::string::npos) << m;
  // 9+81+...+9^5 < 200000 < ... + 9^6: the limit is passed inside f's
  // expansion, reported at a line of the file.
  EXPECT_EQ(m.rfind("laughs.yaml:", 0), 0u) << m;
}

TEST(YamlLimits, AFewAliasesAreFine) {
  auto r = parse_yaml("base: &base {x: 1, y: 2}\none: *base\ntwo: *base\n", "ok.yaml");
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->find("two")->find("y")->scalar_text(), "2");
}

TEST(YamlLimits, DeepNestingIsRefusedWithItsLocation) {
  std::string deep;
  for (int i = 0; i < 100; ++i) deep += std::string(static_cast<size_t>(i) * 2, ' ') + "k:\n";
  auto r = parse_yaml(deep, "deep.yaml");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "deep.yaml:66:131: the document nests deeper than 64 levels");
  // Flow style, far deeper than anyone writes: refused, no stack overflow.
  auto flow = parse_yaml("x: " + std::string(100000, '[') + std::string(100000, ']'), "f.yaml");
  ASSERT_FALSE(flow.ok());
  EXPECT_EQ(flow.status().message().rfind("f.yaml:1:", 0), 0u) << flow.status().message();
}

TEST(YamlLimits, ServerConfigGoesThroughTheSameLimits) {
  test::TempDir dir;
  const std::string path =
      dir.write("config.yaml", std::string("server: {port: 8080}\n") + kLaughs);
  auto r = load_server_config(path);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("expands to more than 200000 values"), std::string::npos)
      << r.status().message();
}

}  // namespace
}  // namespace df::config
