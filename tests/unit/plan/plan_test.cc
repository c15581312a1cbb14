// Pipeline document -> logical DAG -> physical plan, and every validation error.
#include "engine/plan/plan.h"

#include <gtest/gtest.h>

#include "config/yaml_loader.h"

namespace df::plan {
namespace {

Result<std::shared_ptr<const Plan>> build(const std::string& yaml, PlanOptions options = {}) {
  auto doc = config::parse_yaml(yaml, "p.yaml");
  EXPECT_TRUE(doc.ok()) << doc.status().to_string();
  return build_plan(*doc, builtin_registry(), options);
}

std::string errors_of(const std::string& yaml) {
  auto p = build(yaml);
  EXPECT_FALSE(p.ok());
  return p.ok() ? "" : p.status().message();
}

constexpr const char* kLinear = R"(
name: linear
parallelism: 2
sources:
  - {id: gen, type: generator, count: 10, fields: {i: "i", p: "i * 1.5"}}
transforms:
  - {id: f, type: filter, input: gen, where: "p > 3"}
  - {id: m, type: map, input: f, select: {i: i, q: "p * 2"}}
sinks:
  - {id: out, type: blackhole, input: m}
)";

TEST(Plan, ChainsOneToOneOperatorsIntoOneTask) {
  auto p = build(kLinear);
  ASSERT_TRUE(p.ok()) << p.status().to_string();
  const auto& phys = (*p)->physical;
  ASSERT_EQ(phys.vertices.size(), 1u);
  EXPECT_EQ(phys.vertices[0].name(), "gen -> f -> m -> out");
  EXPECT_EQ(phys.vertices[0].parallelism, 2);
  EXPECT_TRUE(phys.edges.empty());
  EXPECT_EQ((*p)->nodes[2].output_schema->to_string(), "{i: int64, q: double}");
  EXPECT_NE((*p)->describe().find("[1] gen -> f -> m -> out x2"), std::string::npos)
      << (*p)->describe();
}

TEST(Plan, FanOutAndFanInBreakChains) {
  auto p = build(R"(
name: fan
sources:
  - {id: a, type: generator, count: 3, fields: {n: "i"}}
  - {id: b, type: generator, count: 3, fields: {n: "i"}}
transforms:
  - {id: u, type: union, inputs: [a, b]}
  - {id: f, type: filter, input: u, where: "n > 0"}
sinks:
  - {id: s1, type: blackhole, input: f}
  - {id: s2, type: blackhole, input: f}
)");
  ASSERT_TRUE(p.ok()) << p.status().to_string();
  const auto& phys = (*p)->physical;
  std::vector<std::string> names;
  for (const auto& v : phys.vertices) names.push_back(v.name());
  EXPECT_EQ(names, (std::vector<std::string>{"a", "b", "u -> f", "s1", "s2"}));
  ASSERT_EQ(phys.edges.size(), 4u);
  EXPECT_EQ(phys.edges[0].to_input, 0u);
  EXPECT_EQ(phys.edges[1].to_input, 1u);
  for (const auto& e : phys.edges) EXPECT_EQ(e.partitioning, runtime::Partitioning::kForward);
}

TEST(Plan, DifferentParallelismRebalancesAndStdoutIsSingle) {
  auto p = build(R"(
name: reb
parallelism: 3
sources:
  - {id: a, type: generator, count: 3, fields: {n: "i"}}
sinks:
  - {id: s, type: stdout, input: a}
)");
  ASSERT_TRUE(p.ok()) << p.status().to_string();
  const auto& phys = (*p)->physical;
  ASSERT_EQ(phys.vertices.size(), 2u);
  EXPECT_EQ(phys.vertices[1].parallelism, 1);
  ASSERT_EQ(phys.edges.size(), 1u);
  EXPECT_EQ(phys.edges[0].partitioning, runtime::Partitioning::kRebalance);
}

TEST(Plan, ParallelismOverride) {
  PlanOptions o;
  o.parallelism_override = 4;
  auto p = build(kLinear, o);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ((*p)->physical.vertices[0].parallelism, 4);
}

TEST(Plan, ReportsEveryStructuralProblemWithLocations) {
  std::string e = errors_of(R"(name: ok
sources:
  - {id: a, type: generator, count: 3, fields: {n: "i"}}
  - {id: a, type: generator, fields: {n: "i"}}
transforms:
  - {id: x, type: filter, input: ghost, where: "true"}
  - {id: y, type: filter, input: z, where: "true"}
  - {id: z, type: filter, input: y, where: "true"}
  - {id: w, type: fliter, input: a}
sinks:
  - {id: s, type: blackhole, input: z}
  - {id: t, type: blackhole, input: s}
  - {id: u, type: blackhole}
)");
  EXPECT_NE(e.find("p.yaml:4:10: duplicate id 'a' (first defined at p.yaml:3:10)"), std::string::npos) << e;
  EXPECT_NE(e.find("p.yaml:6:34: transform 'x' (filter) reads unknown input 'ghost'"), std::string::npos) << e;
  EXPECT_NE(e.find("cycle: z -> y -> z"), std::string::npos) << e;
  EXPECT_NE(e.find("unknown transform type 'fliter' (did you mean 'filter'?)"), std::string::npos) << e;
  EXPECT_NE(e.find("reads 's', which is a sink and has no output"), std::string::npos) << e;
  EXPECT_NE(e.find("sink 'u' (blackhole) needs 'input'"), std::string::npos) << e;
  EXPECT_NE(e.find("sink 's' is not reachable from any source"), std::string::npos) << e;
}

TEST(Plan, ReportsSettingsProblems) {
  std::string e = errors_of(R"(name: Not Valid
parallelism: 0
checkpoint: {interval: soon, delivery: twice}
dead_letter: {sink: nowhere}
sources: []
sinks:
  - {id: s, type: blackhole, input: nothing}
)");
  EXPECT_NE(e.find("pipeline name 'Not Valid'"), std::string::npos) << e;
  EXPECT_NE(e.find("parallelism must be between 1 and 1024"), std::string::npos) << e;
  EXPECT_NE(e.find("checkpoint option 'interval': invalid duration 'soon'"), std::string::npos) << e;
  EXPECT_NE(e.find("delivery must be at_least_once or exactly_once"), std::string::npos) << e;
  EXPECT_NE(e.find("dead_letter sink 'nowhere' is not a sink"), std::string::npos) << e;
}

TEST(Plan, NeedsSourcesAndSinks) {
  std::string e = errors_of("name: empty\n");
  EXPECT_NE(e.find("needs at least one source"), std::string::npos) << e;
  EXPECT_NE(e.find("needs at least one sink"), std::string::npos) << e;
  EXPECT_NE(errors_of("[1, 2]").find("must be a map"), std::string::npos);
}

TEST(Plan, NodeErrorsDoNotCascade) {
  // 'f' fails on an unknown field; 'm' reads f and must not add noise.
  std::string e = errors_of(R"(name: cascade
sources:
  - {id: a, type: generator, count: 3, fields: {n: "i"}}
transforms:
  - {id: f, type: filter, input: a, where: "nn > 1"}
  - {id: m, type: map, input: f, select: {x: "n"}}
sinks:
  - {id: s, type: blackhole, input: m}
)");
  EXPECT_NE(e.find("unknown field 'nn'"), std::string::npos) << e;
  EXPECT_EQ(std::count(e.begin(), e.end(), '\n'), 0) << e;
}

}  // namespace
}  // namespace df::plan
