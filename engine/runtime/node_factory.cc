#include "engine/runtime/node_factory.h"

namespace df::runtime {

std::string_view node_role_name(NodeRole role) {
  switch (role) {
    case NodeRole::kSource:
      return "source";
    case NodeRole::kTransform:
      return "transform";
    case NodeRole::kSink:
      return "sink";
  }
  return "transform";
}

void NodeRegistry::add(NodeRole role, std::string type, std::unique_ptr<NodeFactory> factory) {
  // A later registration of the same (role, type) replaces the earlier one, so
  // tests can override a built-in factory.
  factories_[{role, std::move(type)}] = std::move(factory);
}

const NodeFactory* NodeRegistry::find(NodeRole role, std::string_view type) const {
  // std::pair<NodeRole, std::string> has no heterogeneous comparison with a
  // string_view, so build the key; registry lookups happen only at plan time.
  auto it = factories_.find(std::pair<NodeRole, std::string>(role, std::string(type)));
  return it == factories_.end() ? nullptr : it->second.get();
}

std::vector<std::string> NodeRegistry::types(NodeRole role) const {
  std::vector<std::string> out;
  for (const auto& [key, factory] : factories_) {
    if (key.first == role) out.push_back(key.second);  // map order: sorted by name
  }
  return out;
}

std::string describe_fields_read(const Schema& schema, const FieldMask& read) {
  if (read.empty()) return {};
  std::string names;
  for (size_t f = 0; f < read.size() && f < schema.size(); ++f) {
    if (read[f]) names += (names.empty() ? "" : ", ") + schema.field(f).name;
  }
  return "; read downstream: " + names;
}

}  // namespace df::runtime
