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
  EXPECT_NE(e.find("p.yaml:4:10: duplicate id 'a' (first defined at p.yaml:3:10)"),
            std::string::npos)
      << e;
  EXPECT_NE(e.find("p.yaml:6:34: transform 'x' (filter) reads unknown input 'ghost'"),
            std::string::npos)
      << e;
  EXPECT_NE(e.find("cycle: z -> y -> z"), std::string::npos) << e;
  EXPECT_NE(e.find("unknown transform type 'fliter' (did you mean 'filter'?)"), std::string::npos)
      << e;
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
  EXPECT_NE(e.find("checkpoint option 'interval': invalid duration 'soon'"), std::string::npos)
      << e;
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

namespace df::plan {
namespace {

TEST(PlanEventTime, SourcesDeclareItAndOneToOneNodesKeepIt) {
  auto p = build(R"yaml(
name: et
sources:
  - id: gen
    type: generator
    count: 5
    fields: {ts: "cast(i * 1000 as timestamp)", n: "i"}
    event_time: {field: ts, max_out_of_orderness: 5s, idle_timeout: 30s}
  - {id: plain, type: generator, count: 5, fields: {ts: "cast(i as timestamp)", n: "i"}}
transforms:
  - {id: m, type: map, input: gen, set: {n2: "n * 2"}}
  - {id: u, type: union, inputs: [gen, plain]}
sinks:
  - {id: s, type: blackhole, input: m}
  - {id: t, type: blackhole, input: u}
)yaml");
  ASSERT_TRUE(p.ok()) << p.status().to_string();
  const auto& nodes = (*p)->nodes;
  auto find = [&](const std::string& id) -> const LogicalNode& {
    return *std::find_if(nodes.begin(), nodes.end(),
                         [&](const LogicalNode& n) { return n.id == id; });
  };
  ASSERT_TRUE(find("gen").event_time.has_value());
  EXPECT_EQ(find("gen").event_time->field, 0u);
  EXPECT_EQ(find("gen").event_time->max_out_of_orderness.count(), 5000);
  EXPECT_EQ(find("gen").event_time->idle_timeout->count(), 30000);
  EXPECT_TRUE(find("gen").has_event_time);
  EXPECT_TRUE(find("m").has_event_time);
  EXPECT_FALSE(find("plain").has_event_time);
  EXPECT_FALSE(find("u").has_event_time);  // one input lacks it
  // The spec reaches the runtime with the source's task.
  bool found = false;
  for (const auto& v : (*p)->physical.vertices) {
    if (v.chain.front().id == "gen") found = v.chain.front().event_time.has_value();
  }
  EXPECT_TRUE(found);
}

TEST(PlanEventTime, ReportsBadEventTimeOptions) {
  std::string e = errors_of(R"yaml(name: et
sources:
  - id: gen
    type: generator
    count: 5
    fields: {ts: "cast(i as string)", n: "i"}
    event_time: {field: ts, max_out_of_orderness: -1s, colour: red}
  - id: gen2
    type: generator
    count: 5
    fields: {n: "i"}
    event_time: {field: when}
sinks:
  - {id: s, type: blackhole, input: gen}
  - {id: t, type: blackhole, input: gen2}
)yaml");
  EXPECT_NE(e.find("p.yaml:7:25: source 'gen' (generator) event_time field 'ts' must be a "
                   "timestamp or int64 (ms), not string"),
            std::string::npos)
      << e;
  EXPECT_NE(e.find("max_out_of_orderness must not be negative"), std::string::npos) << e;
  EXPECT_NE(e.find("unknown option 'colour' for source 'gen' (generator) event_time"),
            std::string::npos)
      << e;
  EXPECT_NE(e.find("event_time field 'when' is not in its schema (fields: n)"), std::string::npos)
      << e;
}

}  // namespace
}  // namespace df::plan

namespace df::plan {
namespace {

// The `read downstream` part of a node's description ("" when it fills
// every field) in the plan's logical node and in the task that runs it.
std::string fields_read(const Plan& plan, const std::string& id) {
  std::string logical, physical;
  for (const auto& n : plan.nodes) {
    if (n.id == id) logical = n.prepared->describe();
  }
  for (const auto& v : plan.physical.vertices) {
    for (const auto& node : v.chain) {
      if (node.id == id) physical = node.prepared->describe();
    }
  }
  EXPECT_EQ(logical, physical);
  const size_t at = logical.find("; read downstream: ");
  return at == std::string::npos ? "" : logical.substr(at + 19);
}

std::string bids_pipeline(const std::string& transforms, const std::string& extra = "") {
  return R"yaml(name: pushdown
sources:
  - id: bid
    type: nexmark
    table: bid
    events: 1000
    event_time: {field: date_time}
transforms:
)yaml" + transforms +
         R"yaml(sinks:
  - {id: out, type: blackhole, input: last}
)yaml" + extra;
}

TEST(PlanProjection, ASourceFillsOnlyTheFieldsSomethingReads) {
  // A filter reads its condition's fields and what its consumers read; a
  // map what its read fields pass through or compute from; the event time
  // is read by the runtime.
  auto p =
      build(bids_pipeline(R"yaml(  - {id: f, type: filter, input: bid, where: "channel = 'Google'"}
  - {id: last, type: map, input: f, select: {auction: auction, p: "price * 2", u: url}}
)yaml"));
  ASSERT_TRUE(p.ok()) << p.status().to_string();
  EXPECT_EQ(fields_read(**p, "bid"), "auction, price, channel, url, date_time");

  // Two consumers: the union of what they read.
  p = build(R"yaml(name: two
sources:
  - {id: bid, type: nexmark, table: bid, events: 100}
transforms:
  - {id: a, type: map, input: bid, select: {auction: auction}}
  - {id: b, type: map, input: bid, select: {e: extra}}
sinks:
  - {id: s, type: blackhole, input: a}
  - {id: t, type: blackhole, input: b}
)yaml");
  ASSERT_TRUE(p.ok()) << p.status().to_string();
  EXPECT_EQ(fields_read(**p, "bid"), "auction, extra");

  // A map field nothing reads downstream reads nothing upstream.
  p = build(bids_pipeline(
      R"yaml(  - {id: m, type: map, input: bid, select: {auction: auction, u: url, d: date_time}}
  - {id: last, type: map, input: m, select: {auction: auction}}
)yaml"));
  ASSERT_TRUE(p.ok()) << p.status().to_string();
  EXPECT_EQ(fields_read(**p, "bid"), "auction, date_time");

  // A map leaves the expressions of fields nothing reads unevaluated.
  p = build(bids_pipeline(
      R"yaml(  - {id: m, type: map, input: bid, select: {auction: auction, p: "price * 2"}}
  - {id: last, type: map, input: m, select: {auction: auction}}
)yaml"));
  ASSERT_TRUE(p.ok()) << p.status().to_string();
  EXPECT_EQ(fields_read(**p, "m"), "auction");
  EXPECT_EQ(fields_read(**p, "last"), "");
}

TEST(PlanProjection, WholeRowsReadKeepEveryField) {
  // A sink and a dead-letter sink (a row whose expression fails goes there
  // whole) read every field.
  auto p =
      build(bids_pipeline("  - {id: last, type: filter, input: bid, where: \"price > 10\"}\n"));
  ASSERT_TRUE(p.ok()) << p.status().to_string();
  EXPECT_EQ(fields_read(**p, "bid"), "");

  // A window reads its keys and what its aggregates read, unless its late
  // rows go out whole.
  const std::string window = R"yaml(  - id: w
    type: window
    input: bid
    key_by: [auction]
    window: {type: tumbling, size: 10s}
    aggregate: {n: "count(*)", top: "max(price * 2)"}
)yaml";
  const std::string after = "  - {id: last, type: map, input: w, select: {auction: auction}}\n";
  p = build(bids_pipeline(window + after));
  ASSERT_TRUE(p.ok()) << p.status().to_string();
  EXPECT_EQ(fields_read(**p, "bid"), "auction, price, date_time");
  p = build(bids_pipeline(window + "    late_output: late\n" + after));
  ASSERT_TRUE(p.ok()) << p.status().to_string();
  EXPECT_EQ(fields_read(**p, "bid"), "");

  const std::string dead_letters = R"yaml(  - {id: dlq, type: blackhole}
dead_letter: {sink: dlq}
)yaml";
  p = build(bids_pipeline(R"yaml(  - {id: f, type: filter, input: bid, where: "price / auction > 1"}
  - {id: last, type: map, input: f, select: {auction: auction}}
)yaml",
                          dead_letters));
  ASSERT_TRUE(p.ok()) << p.status().to_string();
  EXPECT_EQ(fields_read(**p, "bid"), "");
  EXPECT_EQ(fields_read(**p, "f"), "");
  // A map that only passes fields through never fails: still projected.
  p = build(bids_pipeline("  - {id: last, type: map, input: bid, select: {auction: auction}}\n",
                          dead_letters));
  ASSERT_TRUE(p.ok()) << p.status().to_string();
  EXPECT_EQ(fields_read(**p, "bid"), "auction, date_time");
}

}  // namespace
}  // namespace df::plan
