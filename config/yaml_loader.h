// Loads YAML (or JSON, a subset of it) into a located ConfigValue tree.
//
// Every scalar keeps its file:line:column; `${VAR}` and `${VAR:-default}` in
// scalars are replaced from the environment (an unset VAR without a default
// is an error naming it), and `${secret:path#key}` by the secret it names
// (config/secrets.h; the reference's provider is LoadOptions::secrets).
// Duplicate keys in a map are errors. A document
// nested deeper than 64 levels, or expanding (aliases included) to more than
// 200000 values, is refused with the location where the limit was passed
// (pipeline files and config.yaml both load through here). Stateless and
// thread-safe.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "engine/core/config_value.h"
#include "engine/core/status.h"

namespace df::config {

class SecretLoad;
class SecretResolver;

struct LoadOptions {
  // false: scalars are kept as written (`${...}` included).
  bool substitute_env = true;
  // false: `${secret:...}` is kept as written while `${NAME}` is substituted.
  bool resolve_secrets = true;
  // Where `${secret:...}` values come from; null: default_secret_resolver().
  std::shared_ptr<const SecretResolver> secrets{};
};

// Parses `text`; `file` is used only in locations and messages.
Result<ConfigValue> parse_yaml(std::string_view text, const std::string& file,
                               const LoadOptions& options = {});
// Reads and parses a file. A missing or unreadable file is an IoError with one sentence.
Result<ConfigValue> load_yaml_file(const std::string& path, const LoadOptions& options = {});
// Replaces ${VAR} / ${VAR:-default}; `$${` escapes a literal "${".
// `${secret:path#key}` is resolved through `secrets`, or kept as written
// when it is null. Errors carry no location; callers prefix the scalar's.
Result<std::string> substitute_env(std::string_view text, SecretLoad* secrets = nullptr);
// Whether `text` holds a `${secret:...}` reference.
bool has_secret_reference(std::string_view text);

}  // namespace df::config
