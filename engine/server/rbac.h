// Role-based access control: which Actions (server_config.h) each role of
// `security.rbac.roles` (and the policies file, merged by the config loader)
// may perform. The groups of the first format (read, write, control) stand
// for fixed sets of actions; "resource:*" and "*" patterns expand to every
// action they name.
//
// Immutable once built; thread-safe to share (const).
#pragma once

#include <bitset>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "engine/server/server_config.h"

namespace df::server {

using ActionSet = std::bitset<kActionCount>;

// The actions a group grants: read = every GET (pipeline:read, run:read,
// checkpoint:read, state:export, health:read, metrics:read); control =
// run:start|stop|cancel, checkpoint:create|rollback; write =
// pipeline:create|update|delete, state:import, config:write.
ActionSet actions_of(Permission group);
// The actions a pattern names ("pipeline:read", "run:*", "*"); none when it
// names no action.
ActionSet actions_of(std::string_view pattern);

// Whether the method changes anything (an audit line is due): not GET/HEAD.
bool is_mutating(std::string_view method);

class Policy {
 public:
  Policy() = default;
  explicit Policy(const std::vector<Role>& roles);

  bool has_role(std::string_view role) const { return roles_.find(role) != roles_.end(); }
  // The actions of one role (none when unknown).
  ActionSet actions(std::string_view role) const;
  // Whether any of `roles` grants `action`. Unknown roles grant nothing.
  bool allows(const std::vector<std::string>& roles, Action action) const;

 private:
  std::map<std::string, ActionSet, std::less<>> roles_;
};

}  // namespace df::server
