#include "config/server_config.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <filesystem>
#include <functional>
#include <initializer_list>
#include <limits>
#include <memory>
#include <set>
#include <span>
#include <utility>

#include "config/secrets.h"
#include "config/yaml_loader.h"
#include "engine/core/log.h"

namespace df::config {

namespace {

using server::ApiKey;
using server::CertRoleMapping;
using server::Permission;
using server::Role;
using server::SecretsSection;
using server::ServerConfig;

// The keys a Kafka node may take from `sources.kafka` / `sinks.kafka`
// (connectors/kafka/README.md; the connector reads and checks their values).
constexpr std::array<std::string_view, 9> kKafkaSourceKeys = {"brokers",
                                                              "group_id",
                                                              "start",
                                                              "fetch_min_bytes",
                                                              "fetch_max_wait_ms",
                                                              "request_timeout_ms",
                                                              "session_timeout_ms",
                                                              "max_poll_records",
                                                              "properties"};
constexpr std::array<std::string_view, 6> kKafkaSinkKeys = {
    "brokers", "batch_size", "linger_ms", "compression_type", "acks", "properties"};

// What a secret prints as (quoted: a plain * starts a YAML alias).
constexpr std::string_view kMask = "\"****\"";

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Kafka properties (and any key of those maps) whose value is a credential,
// e.g. sasl.password, ssl.key.password, sasl.oauthbearer.client.secret,
// ssl.key.pem (an inline private key).
bool is_secret_name(std::string_view name) {
  const std::string n = lower(name);
  for (std::string_view word : {"password", "secret", "token", "credential", "key.pem"}) {
    if (n.find(word) != std::string::npos) return true;
  }
  return n == "sasl.oauthbearer.config";
}

Result<Permission> parse_permission(std::string_view name) {
  for (Permission p : {Permission::kRead, Permission::kWrite, Permission::kControl}) {
    if (server::permission_name(p) == name) return p;
  }
  return Status::invalid("permission must be read, write or control, not '" + std::string(name) +
                         "'");
}

// `roles: {name: [read, pipeline:create, run:*, ...]}` (security.rbac.roles
// and the policies file): groups and action patterns, each kept once.
void read_roles(const ConfigValue& node, const std::string& path, std::vector<Role>& field,
                Diagnostics& diags) {
  if (!node.is_map()) {
    diags.error(node.location(), path + " must be a map of role: [permissions], got " +
                                     std::string(node.kind_name()));
    return;
  }
  field.clear();
  for (const auto& [name, value] : node.entries()) {
    Role role{name, {}, {}};
    if (!value.is_null()) {
      auto names = value.as_string_list();
      if (!names.ok()) {
        diags.error(value.location(), path + "." + name + ": expected a list of " +
                                          "permissions (read, write, control, pipeline:read, ...)");
        continue;
      }
      for (const std::string& p : *names) {
        auto permission = parse_permission(p);
        if (permission.ok()) {
          if (std::find(role.permissions.begin(), role.permissions.end(), *permission) ==
              role.permissions.end()) {
            role.permissions.push_back(*permission);
          }
        } else if (server::is_action_pattern(p)) {
          if (std::find(role.actions.begin(), role.actions.end(), p) == role.actions.end()) {
            role.actions.push_back(p);
          }
        } else {
          diags.error(value.location(), path + "." + name + ": " + permission.status().message() +
                                            " (nor an action such as pipeline:read or run:*)");
        }
      }
    }
    field.push_back(std::move(role));
  }
}

// One walk over every key of the file, shared by the reader and the printer
// so that the two agree on names, nesting and order (the example file's).
// `c` is ServerConfig for the reader and const ServerConfig for the printer.
template <typename Visitor, typename Config>
void walk(Visitor& v, Config& c) {
  v.section("server", [&] {
    auto& s = c.server;
    v.text("host", s.host);
    v.integer("port", s.port, 0, 65535);
    v.text("data_dir", s.data_dir);
    v.duration("shutdown_grace_period", s.shutdown_grace_period, /*may_be_zero=*/true);
    v.size("max_body_size", s.max_body_size, /*may_be_zero=*/false);
    v.integer("api_threads", s.api_threads, 1, 256);
  });
  v.section("runtime", [&] {
    auto& r = c.runtime;
    v.integer("workers", r.workers, 0, 1024);
    v.size("worker_memory", r.worker_memory, /*may_be_zero=*/true);
    v.size("state_cache", r.state_cache, /*may_be_zero=*/false);
    v.size("state_memory", r.state_memory, /*may_be_zero=*/false);
    v.duration("checkpoint_interval", r.checkpoint_interval, /*may_be_zero=*/false);
    v.duration("checkpoint_timeout", r.checkpoint_timeout, /*may_be_zero=*/false);
    v.integer("checkpoint_retained", r.checkpoint_retained, 1, 1000);
    v.text("checkpoint_storage", r.checkpoint_storage);
    v.flag("checkpoint_compression", r.checkpoint_compression);
    v.retry("retry", r.retry);
    v.restart("restart", r.restart);
    v.section("disaster_recovery", [&] {
      auto& dr = c.disaster_recovery;
      v.flag("enabled", dr.enabled);
      v.text("backup_location", dr.backup_storage);
      v.duration("backup_interval", dr.backup_interval, /*may_be_zero=*/false);
      v.integer("retention_days", dr.retention_days, 0, 36500);
    });
  });
  v.section("performance", [&] {
    auto& p = c.performance;
    v.integer("batch_size", p.batch_size, 1, 1 << 20);
    v.integer("buffer_size", p.buffer_size, 1, 1 << 26);
    v.number("backpressure_threshold", p.backpressure_threshold, 0.01, 1.0);
  });
  v.section("network", [&] {
    v.duration("connect_timeout", c.network.connect_timeout, /*may_be_zero=*/false);
    v.duration("request_timeout", c.network.request_timeout, /*may_be_zero=*/false);
    v.duration("header_timeout", c.network.header_timeout, /*may_be_zero=*/false);
    v.integer("max_connections", c.network.max_connections, 1, 1000000);
  });
  v.section("tls", [&] {
    v.flag("enabled", c.tls.enabled);
    v.text("cert_file", c.tls.cert_file);
    v.text("key_file", c.tls.key_file);
    v.text("ca_file", c.tls.ca_file);
    v.flag("verify_client", c.tls.verify_client);
  });
  // The spelling is runtime.disaster_recovery; the top-level section
  // of earlier files is read as an alias (check_combinations refuses both).
  v.alias_section("disaster_recovery", [&] {
    v.flag("enabled", c.disaster_recovery.enabled);
    v.text("backup_storage", c.disaster_recovery.backup_storage);
    v.text("backup_location", c.disaster_recovery.backup_storage);
    v.duration("backup_interval", c.disaster_recovery.backup_interval, /*may_be_zero=*/false);
    v.integer("retention_days", c.disaster_recovery.retention_days, 0, 36500);
  });
  v.section("monitoring", [&] {
    for (auto* endpoint : {&c.monitoring.metrics, &c.monitoring.health}) {
      v.section(endpoint == &c.monitoring.metrics ? "metrics" : "health", [&] {
        v.flag("enabled", endpoint->enabled);
        v.text("host", endpoint->host);
        v.integer("port", endpoint->port, 0, 65535);
        v.text("path", endpoint->path);
      });
    }
    v.section("logging", [&] {
      auto& l = c.monitoring.logging;
      v.choice("level", l.level, parse_log_level, log_level_name);
      v.choice("format", l.format, parse_log_format, log_format_name);
      v.text("output", l.output);
      v.size("max_size", l.max_size_bytes, /*may_be_zero=*/true);
      v.integer("max_backups", l.max_backups, 0, 10000);
      v.duration("max_age", l.max_age, /*may_be_zero=*/true);
    });
  });
  v.section("security", [&] {
    v.section("auth", [&] {
      v.flag("enabled", c.security.auth.enabled);
      v.api_keys("api_keys", c.security.auth.api_keys);
    });
    v.section("authentication", [&] {
      auto& a = c.security.authentication;
      v.strings("methods", a.methods);
      v.section("basic", [&] { v.text("users_file", a.basic.users_file); });
      v.section("jwt", [&] {
        v.strings("algorithms", a.jwt.algorithms);
        v.secret("secret", a.jwt.secret);
        v.text("public_key_file", a.jwt.public_key_file);
        v.text("issuer", a.jwt.issuer);
        v.text("audience", a.jwt.audience);
        v.duration("clock_skew", a.jwt.clock_skew, /*may_be_zero=*/true);
        v.text("roles_claim", a.jwt.roles_claim);
        v.text("subject_claim", a.jwt.subject_claim);
      });
      v.section("oauth2", [&] {
        v.text("issuer", a.oauth2.issuer);
        v.text("audience", a.oauth2.audience);
        v.text("roles_claim", a.oauth2.roles_claim);
        v.text("subject_claim", a.oauth2.subject_claim);
        v.text("ca_file", a.oauth2.ca_file);
        v.duration("clock_skew", a.oauth2.clock_skew, /*may_be_zero=*/true);
        v.duration("jwks_refresh_interval", a.oauth2.jwks_refresh_interval,
                   /*may_be_zero=*/false);
      });
      v.section("mtls", [&] { v.cert_mappings("mappings", a.mtls.mappings); });
      v.section("failed_logins", [&] {
        v.integer("max", a.failed_logins.max, 1, 1000000);
        v.duration("window", a.failed_logins.window, /*may_be_zero=*/false);
      });
      v.flag("protect_health", a.protect_health);
      v.flag("protect_metrics", a.protect_metrics);
    });
    v.section("rbac", [&] {
      v.roles("roles", c.security.rbac.roles);
      v.text("policies_file", c.security.rbac.policies_file);
    });
  });
  v.section("secrets", [&] {
    v.choice("provider", c.secrets.provider, parse_secrets_provider, secrets_provider_name);
    v.text("path", c.secrets.path);
    v.section("vault", [&] {
      v.text("address", c.secrets.vault.address);
      v.secret("token", c.secrets.vault.token);
      v.text("mount", c.secrets.vault.mount);
      v.text("ca_file", c.secrets.vault.ca_file);
    });
  });
  v.section("sources", [&] { v.option_map("kafka", c.sources.kafka, kKafkaSourceKeys); });
  v.section("sinks", [&] { v.option_map("kafka", c.sinks.kafka, kKafkaSinkKeys); });
}

// ---------------------------------------------------------------- reading

// Reads the walk's keys from the located tree into a ServerConfig,
// reporting every problem to `diags`. Each section gets an OptionReader, so
// the keys nobody asked for are reported as unknown.
class Reader {
 public:
  Reader(const ConfigValue& root, Diagnostics& diags) : diags_(diags) {
    root_ = std::make_unique<OptionReader>(root, "the server config", diags);
    reader_ = root_.get();
  }
  void finish() { root_->finish(); }

  template <typename Body>
  void section(std::string_view key, Body&& body) {
    const ConfigValue* node = present(key);
    if (!node) return;  // the defaults
    const std::string path = dotted(key);
    if (!node->is_map()) {
      diags_.error(node->location(),
                   path + " must be a map, got " + std::string(node->kind_name()));
      return;
    }
    OptionReader inner(*node, path, diags_);
    OptionReader* outer = std::exchange(reader_, &inner);
    std::string outer_path = std::exchange(path_, path);
    body();
    inner.finish();
    reader_ = outer;
    path_ = std::move(outer_path);
  }

  // A section read like any other but not printed (an old spelling).
  template <typename Body>
  void alias_section(std::string_view key, Body&& body) {
    section(key, std::forward<Body>(body));
  }

  void text(std::string_view key, std::string& field) {
    if (!present(key)) return;
    if (auto s = reader_->string(key)) field = std::move(*s);
  }

  void flag(std::string_view key, bool& field) {
    if (!present(key)) return;
    if (auto b = reader_->boolean(key)) field = *b;
  }

  void secret(std::string_view key, std::string& field) { text(key, field); }

  void strings(std::string_view key, std::vector<std::string>& field) {
    if (!present(key)) return;
    if (auto list = reader_->string_list(key)) field = std::move(*list);
  }

  // A list of {subject or san, role}.
  void cert_mappings(std::string_view key, std::vector<CertRoleMapping>& field) {
    const ConfigValue* node = present(key);
    if (!node) return;
    if (!node->is_sequence()) {
      diags_.error(node->location(), dotted(key) + " must be a list of {subject or san, role}, " +
                                         "got " + std::string(node->kind_name()));
      return;
    }
    field.clear();
    for (size_t i = 0; i < node->items().size(); ++i) {
      const std::string what = dotted(key) + "[" + std::to_string(i) + "]";
      OptionReader item(node->items()[i], what, diags_);
      CertRoleMapping m;
      if (auto subject = item.string("subject")) m.subject = *subject;
      if (auto san = item.string("san")) m.san = *san;
      if (auto role = item.string("role", /*required=*/true)) m.role = *role;
      if (m.subject.empty() == m.san.empty()) {
        diags_.error(node->items()[i].location(), what + " needs one of subject or san");
      }
      item.finish();
      field.push_back(std::move(m));
    }
  }

  template <typename Int>
  void integer(std::string_view key, Int& field, int64_t min, int64_t max) {
    if (!present(key)) return;
    auto n = reader_->int64(key);
    if (!n) return;
    if (*n < min || *n > max) {
      range_error(key, "between " + std::to_string(min) + " and " + std::to_string(max));
      return;
    }
    field = static_cast<Int>(*n);
  }

  void number(std::string_view key, double& field, double min, double max) {
    if (!present(key)) return;
    auto d = reader_->float64(key);
    if (!d) return;
    if (!(*d >= min && *d <= max)) {
      range_error(key, "between " + format_number(min) + " and " + format_number(max));
      return;
    }
    field = *d;
  }

  void duration(std::string_view key, Millis& field, bool may_be_zero) {
    if (!present(key)) return;
    auto d = reader_->duration(key);
    if (!d) return;
    if (d->count() < 0 || (!may_be_zero && d->count() == 0)) {
      range_error(key, may_be_zero ? "0 or longer" : "longer than 0");
      return;
    }
    field = *d;
  }

  void size(std::string_view key, uint64_t& field, bool may_be_zero) {
    const ConfigValue* node = present(key);
    if (!node) return;
    auto text = reader_->string(key);
    if (!text) return;
    auto bytes = parse_size(*text);
    if (!bytes.ok()) {
      diags_.error(node->location(), dotted(key) + ": " + bytes.status().message());
      return;
    }
    if (!may_be_zero && *bytes == 0) {
      range_error(key, "larger than 0");
      return;
    }
    field = *bytes;
  }

  template <typename Enum, typename Parse, typename Name>
  void choice(std::string_view key, Enum& field, Parse parse, Name) {
    const ConfigValue* node = present(key);
    if (!node) return;
    auto text = reader_->string(key);
    if (!text) return;
    auto value = parse(*text);
    if (!value.ok()) {
      diags_.error(node->location(), dotted(key) + ": " + value.status().message());
      return;
    }
    field = *value;
  }

  void retry(std::string_view key, healing::RetrySettings& field) {
    if (const ConfigValue* node = present(key)) {
      field = healing::read_retry_settings(*node, field, diags_);
    }
  }

  void restart(std::string_view key, healing::RestartSettings& field) {
    if (const ConfigValue* node = present(key)) {
      field = healing::read_restart_settings(*node, field, diags_);
    }
  }

  // A list of {name, key, role}. Every item yields an entry (complete or
  // not), so the entries line up with the file's items.
  void api_keys(std::string_view key, std::vector<ApiKey>& field) {
    const ConfigValue* node = present(key);
    if (!node) return;
    if (!node->is_sequence()) {
      diags_.error(node->location(), dotted(key) + " must be a list of {name, key, role}, got " +
                                         std::string(node->kind_name()));
      return;
    }
    field.clear();
    for (size_t i = 0; i < node->items().size(); ++i) {
      OptionReader item(node->items()[i], dotted(key) + "[" + std::to_string(i) + "]", diags_);
      ApiKey api_key;
      if (auto name = item.string("name", /*required=*/true)) api_key.name = *name;
      if (auto secret = item.string("key", /*required=*/true)) api_key.key = *secret;
      if (auto role = item.string("role", /*required=*/true)) api_key.role = *role;
      item.finish();
      field.push_back(std::move(api_key));
    }
  }

  // {role: [permission, ...]}; replaces the default roles.
  void roles(std::string_view key, std::vector<Role>& field) {
    if (const ConfigValue* node = present(key)) read_roles(*node, dotted(key), field, diags_);
  }

  // A connector's option map: known keys only, scalar values (brokers may be
  // a list), `properties` a map of scalars. The values are the connector's.
  void option_map(std::string_view key, ConfigValue& field,
                  std::span<const std::string_view> keys) {
    const ConfigValue* node = present(key);
    if (!node) return;
    const std::string path = dotted(key);
    if (!node->is_map()) {
      diags_.error(node->location(),
                   path + " must be a map of options, got " + std::string(node->kind_name()));
      return;
    }
    OptionReader options(*node, path, diags_);
    for (std::string_view k : keys) {
      const ConfigValue* value = options.get(k);
      if (!value || value->is_null()) continue;
      if (k == "properties") {
        if (!value->is_map()) {
          diags_.error(value->location(), path + ".properties must be a map of librdkafka " +
                                              "properties, got " + std::string(value->kind_name()));
          continue;
        }
        for (const auto& [name, v] : value->entries()) {
          if (!v.is_scalar()) {
            diags_.error(v.location(), path + ".properties." + name + " must be a scalar, got " +
                                           std::string(v.kind_name()));
          }
        }
      } else if (k == "brokers" ? !value->as_string_list().ok() : !value->is_scalar()) {
        diags_.error(value->location(),
                     path + "." + std::string(k) + " must be " +
                         (k == "brokers" ? "host:port,... or a list of them" : "a scalar") +
                         ", got " + std::string(value->kind_name()));
      }
    }
    options.finish();
    field = *node;
  }

 private:
  // The key's node when it is there with a value (marking the key known).
  const ConfigValue* present(std::string_view key) {
    const ConfigValue* v = reader_->get(key);
    return v && !v->is_null() ? v : nullptr;
  }

  std::string dotted(std::string_view key) const {
    return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
  }

  void range_error(std::string_view key, const std::string& range) {
    const ConfigValue* node = reader_->get(key);
    diags_.error(node->location(),
                 dotted(key) + " must be " + range + ", got '" + node->scalar_text() + "'");
  }

  static std::string format_number(double d) {
    char buf[32];
    auto r = std::to_chars(buf, buf + sizeof buf, d);
    return std::string(buf, r.ptr);
  }

  Diagnostics& diags_;
  std::unique_ptr<OptionReader> root_;
  OptionReader* reader_ = nullptr;
  std::string path_;  // the current section, dotted; "" at the top
};

// The node at `path` below `root`, or the deepest ancestor that exists (so a
// cross-field error points as close as the file allows).
const ConfigValue& node_near(const ConfigValue& root,
                             std::initializer_list<std::string_view> path) {
  const ConfigValue* node = &root;
  for (std::string_view key : path) {
    const ConfigValue* child = node->find(key);
    if (!child) break;
    node = child;
  }
  return *node;
}

// security.rbac.policies_file: `roles: {name: [permissions]}`, merged into
// security.rbac.roles (a role of the file replaces one of the same name).
void read_policies_file(const ConfigValue& root, ServerConfig& c, Diagnostics& diags) {
  const std::string& path = c.security.rbac.policies_file;
  if (path.empty()) return;
  auto loaded = load_yaml_file(path);
  if (!loaded.ok()) {
    diags.error(node_near(root, {"security", "rbac", "policies_file"}).location(),
                "security.rbac.policies_file: " + loaded.status().message());
    return;
  }
  if (loaded->is_null()) return;
  OptionReader file(*loaded, path, diags);
  std::vector<Role> roles;
  if (const ConfigValue* node = file.get("roles"); node && !node->is_null()) {
    read_roles(*node, "roles", roles, diags);
  }
  file.finish();
  for (Role& role : roles) {
    auto& existing = c.security.rbac.roles;
    auto it = std::find_if(existing.begin(), existing.end(),
                           [&](const Role& r) { return r.name == role.name; });
    if (it != existing.end()) {
      *it = std::move(role);
    } else {
      existing.push_back(std::move(role));
    }
  }
}

// The roles of security.rbac.roles, for messages: "viewer, operator, admin".
std::string role_names(const ServerConfig& c) {
  std::string known;
  for (const Role& r : c.security.rbac.roles) known += (known.empty() ? "" : ", ") + r.name;
  return known.empty() ? std::string("none") : known;
}

bool has_role(const ServerConfig& c, const std::string& name) {
  const auto& roles = c.security.rbac.roles;
  return std::any_of(roles.begin(), roles.end(), [&](const Role& r) { return r.name == name; });
}

// security.authentication: known methods, and what each needs.
void check_authentication(const ConfigValue& root, const ServerConfig& c, Diagnostics& diags) {
  const auto& a = c.security.authentication;
  auto at = [&](std::initializer_list<std::string_view> path) {
    return node_near(root, path).location();
  };
  std::set<std::string> seen;
  for (const std::string& m : a.methods) {
    if (m != "api_key" && m != "basic" && m != "jwt" && m != "oauth2" && m != "mtls") {
      diags.error(at({"security", "authentication", "methods"}),
                  "security.authentication.methods: unknown method '" + m +
                      "' (api_key, basic, jwt, oauth2, mtls)");
    } else if (!seen.insert(m).second) {
      diags.error(at({"security", "authentication", "methods"}),
                  "security.authentication.methods: '" + m + "' is listed twice");
    }
  }
  if (seen.count("api_key") && c.security.auth.api_keys.empty()) {
    diags.error(at({"security", "authentication", "methods"}),
                "security.authentication.methods has api_key but security.auth.api_keys is empty");
  }
  if (seen.count("basic") && a.basic.users_file.empty()) {
    diags.error(at({"security", "authentication", "methods"}),
                "security.authentication.methods has basic: set "
                "security.authentication.basic.users_file");
  }
  if (seen.count("jwt")) {
    if (a.jwt.algorithms.empty()) {
      diags.error(at({"security", "authentication", "jwt", "algorithms"}),
                  "security.authentication.methods has jwt: set "
                  "security.authentication.jwt.algorithms (HS256, RS256, ES256)");
    }
    bool wants_key = false;
    for (const std::string& alg : a.jwt.algorithms) {
      if (alg == "HS256") {
        if (a.jwt.secret.empty()) {
          diags.error(at({"security", "authentication", "jwt", "algorithms"}),
                      "security.authentication.jwt: HS256 needs secret");
        }
      } else if (alg == "RS256" || alg == "ES256") {
        wants_key = true;
      } else {
        diags.error(at({"security", "authentication", "jwt", "algorithms"}),
                    "security.authentication.jwt.algorithms: '" + alg +
                        "' is not accepted (HS256, RS256, ES256)");
      }
    }
    if (wants_key && a.jwt.public_key_file.empty()) {
      diags.error(at({"security", "authentication", "jwt", "algorithms"}),
                  "security.authentication.jwt: RS256 and ES256 need public_key_file");
    }
  }
  if (seen.count("oauth2")) {
    if (a.oauth2.issuer.rfind("https://", 0) != 0) {
      diags.error(at({"security", "authentication", "oauth2", "issuer"}),
                  "security.authentication.methods has oauth2: set "
                  "security.authentication.oauth2.issuer to the provider's https:// URL");
    }
    if (a.oauth2.audience.empty()) {
      diags.error(at({"security", "authentication", "oauth2", "audience"}),
                  "security.authentication.methods has oauth2: set "
                  "security.authentication.oauth2.audience (the `aud` tokens must hold)");
    }
  }
  if (seen.count("mtls")) {
    if (a.mtls.mappings.empty()) {
      diags.error(at({"security", "authentication", "methods"}),
                  "security.authentication.methods has mtls: map certificates to roles in "
                  "security.authentication.mtls.mappings");
    }
    if (!c.tls.enabled || c.tls.ca_file.empty()) {
      diags.error(at({"security", "authentication", "methods"}),
                  "security.authentication.methods has mtls: it needs tls.enabled and tls.ca_file "
                  "(the CA of client certificates)");
    }
  }
  const ConfigValue& mappings = node_near(root, {"security", "authentication", "mtls", "mappings"});
  for (size_t i = 0; i < a.mtls.mappings.size(); ++i) {
    const std::string& role = a.mtls.mappings[i].role;
    if (!role.empty() && !has_role(c, role)) {
      const ConfigValue* item =
          mappings.is_sequence() && i < mappings.items().size() ? &mappings.items()[i] : &mappings;
      diags.error(item->location(), "security.authentication.mtls.mappings: unknown role '" + role +
                                        "' (security.rbac.roles has " + role_names(c) + ")");
    }
  }
}

// Whether a scalar below `node` holds a `${secret:...}` reference.
bool refers_to_secrets(const ConfigValue& node) {
  if (node.is_scalar()) return has_secret_reference(node.scalar_text());
  for (const ConfigValue& item : node.items()) {
    if (refers_to_secrets(item)) return true;
  }
  for (const auto& [key, child] : node.entries()) {
    if (refers_to_secrets(child)) return true;
  }
  return false;
}

// Rules across keys, checked once every key was read.
void check_combinations(const ConfigValue& root, const ServerConfig& c, Diagnostics& diags) {
  auto at = [&](std::initializer_list<std::string_view> path) {
    return node_near(root, path).location();
  };
  // Where the file sets `path` itself (empty when it takes the default).
  auto set_at = [&](std::initializer_list<std::string_view> path) {
    const ConfigValue& node = node_near(root, path);
    const ConfigValue* exact = &root;
    for (std::string_view key : path) exact = exact ? exact->find(key) : nullptr;
    return exact == &node ? node.location() : SourceLocation{};
  };
  if (c.tls.enabled) {
    if (c.tls.cert_file.empty()) {
      diags.error(at({"tls", "enabled"}), "tls.enabled needs tls.cert_file");
    }
    if (c.tls.key_file.empty()) {
      diags.error(at({"tls", "enabled"}), "tls.enabled needs tls.key_file");
    }
  }
  if (c.tls.verify_client && c.tls.ca_file.empty()) {
    diags.error(at({"tls", "verify_client"}), "tls.verify_client needs tls.ca_file");
  }
  const ConfigValue* runtime = root.find("runtime");
  const bool dr_in_runtime = runtime && runtime->is_map() && runtime->find("disaster_recovery");
  if (dr_in_runtime && root.find("disaster_recovery")) {
    diags.error(at({"disaster_recovery"}),
                "disaster_recovery is the old spelling of runtime.disaster_recovery; give one");
  }
  if (const ConfigValue* alias = root.find("disaster_recovery");
      alias && alias->is_map() && alias->find("backup_storage") && alias->find("backup_location")) {
    diags.error(at({"disaster_recovery", "backup_location"}),
                "disaster_recovery.backup_storage and backup_location are the same key; give one");
  }
  if (c.disaster_recovery.enabled && c.disaster_recovery.backup_storage.empty()) {
    if (dr_in_runtime) {
      diags.error(at({"runtime", "disaster_recovery", "enabled"}),
                  "runtime.disaster_recovery.enabled needs "
                  "runtime.disaster_recovery.backup_location");
    } else {
      diags.error(at({"disaster_recovery", "enabled"}),
                  "disaster_recovery.enabled needs disaster_recovery.backup_storage");
    }
  }
  check_authentication(root, c, diags);
  if (c.security.auth.enabled && c.security.auth.api_keys.empty() &&
      c.security.authentication.methods.empty()) {
    diags.error(at({"security", "auth", "enabled"}),
                "security.auth.enabled needs at least one entry in security.auth.api_keys");
  }
  const ConfigValue& keys = node_near(root, {"security", "auth", "api_keys"});
  std::set<std::string> names;
  std::set<std::string> secrets;
  const auto& api_keys = c.security.auth.api_keys;
  for (size_t i = 0; i < api_keys.size(); ++i) {
    const ApiKey& k = api_keys[i];
    const ConfigValue* item =
        keys.is_sequence() && i < keys.items().size() ? &keys.items()[i] : &keys;
    auto loc = [&](std::string_view field) {
      const ConfigValue* v = item->find(field);
      return (v ? v : item)->location();
    };
    if (!k.name.empty() && !names.insert(k.name).second) {
      diags.error(loc("name"), "security.auth.api_keys: the name '" + k.name + "' is used twice");
    }
    if (!k.key.empty() && !secrets.insert(k.key).second) {
      diags.error(loc("key"),
                  "security.auth.api_keys '" + k.name + "': the same key is given to two clients");
    }
    if (!k.role.empty() && !has_role(c, k.role)) {
      diags.error(loc("role"), "security.auth.api_keys '" + k.name + "': unknown role '" + k.role +
                                   "' (security.rbac.roles has " + role_names(c) + ")");
    }
  }
  if (c.secrets.provider == SecretsSection::Provider::kFile && c.secrets.path.empty()) {
    diags.error(at({"secrets", "provider"}),
                "secrets.provider file needs secrets.path (the directory of the secret files)");
  }
  if (c.secrets.provider == SecretsSection::Provider::kVault) {
    if (auto request = vault_read_request(c.secrets.vault, "x"); !request.ok()) {
      diags.error(at({"secrets", "vault"}), request.status().message());
    }
  }
  // Two listeners on one port would fail at start; say so now.
  struct Listener {
    std::string_view name;
    uint16_t port;  // 0: any free port, or disabled
    SourceLocation location;
  };
  const auto& metrics = c.monitoring.metrics;
  const auto& health = c.monitoring.health;
  const Listener listeners[] = {
      {"server.port", c.server.port, set_at({"server", "port"})},
      {"monitoring.metrics.port", metrics.enabled ? metrics.port : uint16_t{0},
       set_at({"monitoring", "metrics", "port"})},
      {"monitoring.health.port", health.enabled ? health.port : uint16_t{0},
       set_at({"monitoring", "health", "port"})}};
  for (size_t i = 0; i < std::size(listeners); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (listeners[i].port != 0 && listeners[i].port == listeners[j].port) {
        // At whichever of the two the file sets.
        diags.error(listeners[i].location.line > 0 ? listeners[i].location : listeners[j].location,
                    std::string(listeners[i].name) + " " + std::to_string(listeners[i].port) +
                        " is also " + std::string(listeners[j].name));
      }
    }
  }
}

Result<ServerConfig> read_server_config(const ConfigValue& root) {
  ServerConfig config;
  if (root.is_null()) {
    config.runtime.checkpoint_storage =
        (std::filesystem::path(config.server.data_dir) / "checkpoints").string();
    return config;
  }
  Diagnostics diags;
  Reader reader(root, diags);
  if (root.is_map()) {
    walk(reader, config);
    reader.finish();
    if (config.runtime.checkpoint_storage.empty()) {
      config.runtime.checkpoint_storage =
          (std::filesystem::path(config.server.data_dir) / "checkpoints").string();
    }
    read_policies_file(root, config, diags);
    check_combinations(root, config, diags);
  }
  diags.sort_by_location();
  DF_RETURN_IF_ERROR(diags.to_status());
  return config;
}

// ---------------------------------------------------------------- printing

// Writes `text` as a YAML scalar: plain when that reads back as the same
// string, else double-quoted (JSON escapes are valid YAML ones).
void append_scalar(std::string_view text, bool quoted, std::string& out) {
  static const std::set<std::string, std::less<>> kSpecial = {
      "null", "Null", "NULL", "~",  "true", "True", "TRUE", "false", "False", "FALSE", "yes",
      "Yes",  "YES",  "no",   "No", "NO",   "on",   "On",   "ON",    "off",   "Off",   "OFF"};
  bool plain = !quoted && !text.empty() && !kSpecial.contains(text) &&
               (std::isalnum(static_cast<unsigned char>(text.front())) || text.front() == '/' ||
                text.front() == '.');
  for (char ch : text) {
    if (!plain) break;
    plain = std::isalnum(static_cast<unsigned char>(ch)) || ch == '.' || ch == '_' || ch == '-' ||
            ch == '/' || ch == ':' || ch == '@';
  }
  if (plain && text.back() == ':') plain = false;
  if (plain) {
    out += text;
  } else {
    append_json_string(text, out);
  }
}

class Printer {
 public:
  std::string take() { return std::move(out_); }

  template <typename Body>
  void section(std::string_view key, Body&& body) {
    begin(key);
    out_ += '\n';
    indent_ += 2;
    body();
    indent_ -= 2;
  }

  // Aliases are read, never printed: the canonical spelling is.
  template <typename Body>
  void alias_section(std::string_view, Body&&) {}

  // A value that came from a `${secret:...}` prints as the mask, whatever its key.
  void text(std::string_view key, const std::string& value) {
    begin(key);
    out_ += ' ';
    if (contains_resolved_secret(value)) {
      out_ += kMask;
    } else {
      append_scalar(value, /*quoted=*/false, out_);
    }
    out_ += '\n';
  }

  void flag(std::string_view key, bool value) { line(key, value ? "true" : "false"); }

  void secret(std::string_view key, const std::string& value) {
    line(key, value.empty() ? "\"\"" : kMask);
  }

  void strings(std::string_view key, const std::vector<std::string>& values) {
    begin(key);
    out_ += " [";
    for (size_t i = 0; i < values.size(); ++i) {
      if (i) out_ += ", ";
      if (contains_resolved_secret(values[i])) {
        out_ += kMask;
      } else {
        append_scalar(values[i], false, out_);
      }
    }
    out_ += "]\n";
  }

  void cert_mappings(std::string_view key, const std::vector<CertRoleMapping>& mappings) {
    if (mappings.empty()) {
      line(key, "[]");
      return;
    }
    section(key, [&] {
      for (const CertRoleMapping& m : mappings) {
        out_.append(indent_, ' ');
        out_ += m.subject.empty() ? "- san: " : "- subject: ";
        append_scalar(m.subject.empty() ? m.san : m.subject, false, out_);  // names, not secrets
        out_ += '\n';
        indent_ += 2;
        text("role", m.role);
        indent_ -= 2;
      }
    });
  }

  template <typename Int>
  void integer(std::string_view key, Int value, int64_t, int64_t) {
    line(key, std::to_string(value));
  }

  void number(std::string_view key, double value, double, double) {
    char buf[32];
    auto r = std::to_chars(buf, buf + sizeof buf, value);
    line(key, std::string_view(buf, static_cast<size_t>(r.ptr - buf)));
  }

  void duration(std::string_view key, Millis value, bool) { line(key, format_duration(value)); }
  void size(std::string_view key, uint64_t value, bool) { line(key, format_size(value)); }

  template <typename Enum, typename Parse, typename Name>
  void choice(std::string_view key, Enum value, Parse, Name name) {
    line(key, name(value));
  }

  void retry(std::string_view key, const healing::RetrySettings& r) {
    section(key, [&] {
      line("max_attempts", std::to_string(r.max_attempts));
      line("initial_backoff", format_duration(r.initial_backoff));
      line("max_backoff", format_duration(r.max_backoff));
    });
  }

  void restart(std::string_view key, const healing::RestartSettings& r) {
    using Strategy = healing::RestartSettings::Strategy;
    const std::string_view name = healing::restart_strategy_name(r.strategy);
    if (r.strategy == Strategy::kNone) {
      line(key, name);
      return;
    }
    section(key, [&] {
      section(name, [&] {
        switch (r.strategy) {
          case Strategy::kNone:
            break;
          case Strategy::kFixedDelay:
            line("attempts", std::to_string(r.attempts));
            line("delay", format_duration(r.delay));
            break;
          case Strategy::kFailureRate:
            line("max_failures", std::to_string(r.max_failures));
            line("interval", format_duration(r.interval));
            line("delay", format_duration(r.delay));
            break;
          case Strategy::kExponentialDelay:
            line("initial", format_duration(r.initial));
            line("max", format_duration(r.max));
            number("multiplier", r.multiplier, 0, 0);
            line("reset_after", format_duration(r.reset_after));
            if (r.max_attempts) line("max_attempts", std::to_string(*r.max_attempts));
            break;
        }
      });
    });
  }

  void api_keys(std::string_view key, const std::vector<ApiKey>& keys) {
    if (keys.empty()) {
      line(key, "[]");
      return;
    }
    section(key, [&] {
      for (const ApiKey& k : keys) {
        out_.append(indent_, ' ');
        out_ += "- name: ";
        append_scalar(k.name, false, out_);
        out_ += '\n';
        indent_ += 2;
        line("key", k.key.empty() ? "\"\"" : kMask);
        text("role", k.role);
        indent_ -= 2;
      }
    });
  }

  void roles(std::string_view key, const std::vector<Role>& roles) {
    if (roles.empty()) {
      line(key, "{}");
      return;
    }
    section(key, [&] {
      for (const Role& r : roles) {
        std::string list = "[";
        for (Permission p : r.permissions) {
          if (list.size() > 1) list += ", ";
          list += server::permission_name(p);
        }
        for (const std::string& action : r.actions) {
          if (list.size() > 1) list += ", ";
          append_json_string(action, list);  // quoted: "run:*" is no plain scalar
        }
        list += ']';
        begin(r.name);
        out_ += ' ';
        out_ += list;
        out_ += '\n';
      }
    });
  }

  void option_map(std::string_view key, const ConfigValue& value,
                  std::span<const std::string_view>) {
    if (value.is_null()) {
      line(key, "{}");
      return;
    }
    begin(key);
    value_of(value, /*masked=*/false);
  }

 private:
  void begin(std::string_view key) {
    out_.append(indent_, ' ');
    append_scalar(key, false, out_);
    out_ += ':';
  }

  void line(std::string_view key, std::string_view value) {
    begin(key);
    out_ += ' ';
    out_ += value;
    out_ += '\n';
  }

  // After "key:", the rest of the entry: a scalar on the same line, a map
  // or list below it. Values under secret-looking keys print as the mask.
  void value_of(const ConfigValue& v, bool masked) {
    switch (v.kind()) {
      case ConfigValue::Kind::kNull:
        out_ += " null\n";
        return;
      case ConfigValue::Kind::kScalar:
        out_ += ' ';
        if (masked || contains_resolved_secret(v.scalar_text())) {
          out_ += kMask;
        } else {
          append_scalar(v.scalar_text(), v.quoted(), out_);
        }
        out_ += '\n';
        return;
      case ConfigValue::Kind::kSequence:
        if (v.items().empty()) {
          out_ += " []\n";
          return;
        }
        out_ += '\n';
        for (const ConfigValue& item : v.items()) {
          out_.append(indent_ + 2, ' ');
          out_ += '-';
          indent_ += 2;
          value_of(item, masked);
          indent_ -= 2;
        }
        return;
      case ConfigValue::Kind::kMap:
        if (v.entries().empty()) {
          out_ += " {}\n";
          return;
        }
        out_ += '\n';
        indent_ += 2;
        for (const auto& [k, child] : v.entries()) {
          begin(k);
          value_of(child, masked || is_secret_name(k));
        }
        indent_ -= 2;
        return;
    }
  }

  std::string out_;
  int indent_ = 0;
};

}  // namespace

Result<uint64_t> parse_size(std::string_view text) {
  const auto bad = [&] {
    return Status::invalid("expected a size such as 512KiB or 4MB, got '" + std::string(text) +
                           "'");
  };
  size_t i = 0;
  while (i < text.size() && text[i] >= '0' && text[i] <= '9') ++i;
  if (i == 0) return bad();
  uint64_t n = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + i, n);
  if (ec != std::errc() || p != text.data() + i) return bad();
  std::string unit = lower(text.substr(i));
  if (!unit.empty() && unit.front() == ' ') unit.erase(0, 1);
  int shift = 0;
  if (unit.empty() || unit == "b") {
    shift = 0;
  } else {
    static constexpr std::string_view kPrefixes = "kmgt";
    const size_t at = kPrefixes.find(unit.front());
    const std::string_view rest = std::string_view(unit).substr(1);
    if (at == std::string_view::npos || !(rest.empty() || rest == "b" || rest == "ib")) {
      return bad();
    }
    shift = 10 * static_cast<int>(at + 1);
  }
  if (shift > 0 && n > (std::numeric_limits<uint64_t>::max() >> shift)) {
    return Status::invalid("size '" + std::string(text) + "' is too large");
  }
  return n << shift;
}

std::string format_size(uint64_t bytes) {
  if (bytes == 0) return "0";
  static constexpr std::string_view kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  size_t unit = 0;
  while (unit + 1 < std::size(kUnits) && bytes % 1024 == 0) {
    bytes /= 1024;
    ++unit;
  }
  return std::to_string(bytes) + std::string(kUnits[unit]);
}

namespace {

// The file's `secrets:` section says where its `${secret:...}` values come
// from, so it is read first from a parse that keeps the references as
// written; a file with references is then parsed again through that
// provider. The provider becomes the process's default for pipeline files.
Result<ServerConfig> read_with_secrets(
    const std::function<Result<ConfigValue>(const LoadOptions&)>& parse) {
  LoadOptions keep_references;
  keep_references.resolve_secrets = false;
  DF_ASSIGN_OR_RETURN(ConfigValue raw, parse(keep_references));
  const ConfigValue* section = raw.is_map() ? raw.find("secrets") : nullptr;
  if (section && refers_to_secrets(*section)) {
    return Status::invalid(section->location().to_string() +
                           ": secrets: may not use ${secret:...} (it says where they come "
                           "from); use ${NAME}");
  }
  // The section alone: its errors are the whole file's errors below.
  auto settings = read_server_config(
      section ? ConfigValue::map({{"secrets", *section}}, raw.location()) : ConfigValue());
  if (!settings.ok()) return read_server_config(raw);
  auto resolver = SecretResolver::create(settings->secrets);
  if (!resolver.ok()) {
    DF_RETURN_IF_ERROR(read_server_config(raw).status());
    return resolver.status();
  }
  ServerConfig config;
  if (refers_to_secrets(raw)) {
    LoadOptions resolve;
    resolve.secrets = *resolver;
    DF_ASSIGN_OR_RETURN(ConfigValue root, parse(resolve));
    DF_ASSIGN_OR_RETURN(config, read_server_config(root));
  } else {
    DF_ASSIGN_OR_RETURN(config, read_server_config(raw));
  }
  set_default_secret_resolver(std::move(*resolver));
  return config;
}

}  // namespace

Result<ServerConfig> parse_server_config(std::string_view text, const std::string& file) {
  return read_with_secrets(
      [&](const LoadOptions& options) { return parse_yaml(text, file, options); });
}

Result<ServerConfig> load_server_config(const std::string& path) {
  return read_with_secrets(
      [&](const LoadOptions& options) { return load_yaml_file(path, options); });
}

std::string describe_server_config(const ServerConfig& config) {
  Printer printer;
  walk(printer, config);
  return printer.take();
}

}  // namespace df::config
