#include <gtest/gtest.h>

#include "engine/runtime/node_factory.h"
#include "engine/runtime/physical_plan.h"

namespace df::runtime {
namespace {

class NullFactory final : public NodeFactory {
 public:
  PreparedNodePtr prepare(const NodeSpec&, const std::vector<SchemaPtr>&,
                          OptionReader&) const override {
    return nullptr;
  }
};

TEST(RegistryTest, FindsFactoriesByRoleAndType) {
  NodeRegistry reg;
  reg.add(NodeRole::kTransform, "map", std::make_unique<NullFactory>());
  reg.add(NodeRole::kTransform, "filter", std::make_unique<NullFactory>());
  reg.add(NodeRole::kSink, "file", std::make_unique<NullFactory>());
  reg.add(NodeRole::kSource, "file", std::make_unique<NullFactory>());
  EXPECT_NE(reg.find(NodeRole::kTransform, "map"), nullptr);
  EXPECT_EQ(reg.find(NodeRole::kSource, "map"), nullptr);
  EXPECT_NE(reg.find(NodeRole::kSink, "file"), reg.find(NodeRole::kSource, "file"));
  EXPECT_EQ(reg.types(NodeRole::kTransform), (std::vector<std::string>{"filter", "map"}));
  EXPECT_EQ(reg.types(NodeRole::kSink), (std::vector<std::string>{"file"}));
}

TEST(RegistryTest, RoleNamesAndVertexNames) {
  EXPECT_EQ(node_role_name(NodeRole::kSource), "source");
  EXPECT_EQ(node_role_name(NodeRole::kTransform), "transform");
  EXPECT_EQ(node_role_name(NodeRole::kSink), "sink");
  PhysicalVertex v;
  v.chain.push_back(PlanNode{"big", "filter", NodeRole::kTransform, nullptr, std::nullopt});
  v.chain.push_back(PlanNode{"eur", "map", NodeRole::kTransform, nullptr, std::nullopt});
  EXPECT_EQ(v.name(), "big -> eur");
}

}  // namespace
}  // namespace df::runtime
