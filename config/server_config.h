// Loads and prints the server's config.yaml (server::ServerConfig, DESIGN §8).
//
// `${VAR}` and `${VAR:-default}` are substituted from the environment (see
// yaml_loader.h). Every problem of the file is reported at once, each with
// file:line:col: unknown keys by name, values of the wrong type, sizes and
// durations that do not parse, out-of-range numbers, and settings that need
// each other (tls.enabled without cert_file, an API key naming an unknown
// role, ...). A missing or empty section, and a key without a value, take
// the defaults of engine/server/server_config.h. `security.rbac.policies_file`
// is read here too (its roles merged into security.rbac.roles); the users
// file and JWT keys are read by server::AccessControl when the server starts.
//
// Stateless and thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "engine/core/status.h"
#include "engine/server/server_config.h"

namespace df::config {

// Parses `text`; `file` is used only in locations and messages.
Result<server::ServerConfig> parse_server_config(std::string_view text, const std::string& file);
// Reads and parses a file; a missing or unreadable file is an IoError.
Result<server::ServerConfig> load_server_config(const std::string& path);

// The effective configuration as YAML, every key with its value (defaults
// included), in the order of the example file. Secrets (API keys, the JWT
// secret, Kafka passwords and secret properties) are printed as "****". Parsing the output
// again gives the same configuration, secrets aside.
std::string describe_server_config(const server::ServerConfig& config);

// A byte size: an integer with an optional unit B, KB/KiB, MB/MiB, GB/GiB or
// TB/TiB (any case; K, M, G, T alone too). All units are 1024-based, so the
// administrator guide's "4MB" is 4 MiB. Errors name the text.
Result<uint64_t> parse_size(std::string_view text);
// The shortest exact spelling: 4194304 -> "4MiB", 1000 -> "1000B", 0 -> "0".
std::string format_size(uint64_t bytes);

}  // namespace df::config
