#include "engine/server/rbac.h"

namespace df::server {

namespace {

ActionSet set_of(std::initializer_list<Action> actions) {
  ActionSet set;
  for (Action a : actions) set.set(static_cast<size_t>(a));
  return set;
}

}  // namespace

ActionSet actions_of(Permission group) {
  switch (group) {
    case Permission::kRead:
      return set_of({Action::kPipelineRead, Action::kRunRead, Action::kCheckpointRead,
                     Action::kStateExport, Action::kHealthRead, Action::kMetricsRead});
    case Permission::kWrite:
      return set_of({Action::kPipelineCreate, Action::kPipelineUpdate, Action::kPipelineDelete,
                     Action::kStateImport, Action::kConfigWrite});
    case Permission::kControl:
      return set_of({Action::kRunStart, Action::kRunStop, Action::kRunCancel,
                     Action::kCheckpointCreate, Action::kCheckpointRollback});
  }
  return {};
}

ActionSet actions_of(std::string_view pattern) {
  ActionSet set;
  for (size_t i = 0; i < kActionCount; ++i) {
    if (action_matches(pattern, static_cast<Action>(i))) set.set(i);
  }
  return set;
}

bool is_mutating(std::string_view method) { return method != "GET" && method != "HEAD"; }

Policy::Policy(const std::vector<Role>& roles) {
  for (const Role& role : roles) {
    ActionSet& set = roles_[role.name];
    for (Permission group : role.permissions) set |= actions_of(group);
    for (const std::string& pattern : role.actions) set |= actions_of(pattern);
  }
}

ActionSet Policy::actions(std::string_view role) const {
  auto it = roles_.find(role);
  return it == roles_.end() ? ActionSet() : it->second;
}

bool Policy::allows(const std::vector<std::string>& roles, Action action) const {
  for (const std::string& role : roles) {
    if (actions(role).test(static_cast<size_t>(action))) return true;
  }
  return false;
}

}  // namespace df::server
