// ServerConfig: the server's `config.yaml` (the administrator guide's file,
// DESIGN §8) as plain values. Every field documents its key and default; a
// default-constructed ServerConfig is the configuration of an empty file,
// except `runtime.checkpoint_storage`, which the loader resolves against
// `server.data_dir`. config/server_config.h parses and prints it;
// config/examples/server/config.yaml lists every key.
//
// Plain values, no parsing here (this header is shared with df_config, which
// sits above the server). Every member is initialized, so designated
// initializers ({.enabled = true}) compile warning-free. Copy freely; not
// synchronized.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "engine/core/config_value.h"
#include "engine/core/log.h"
#include "engine/core/time.h"
#include "engine/healing/settings.h"

namespace df::server {

constexpr uint64_t kMiB = 1ull << 20;

// `server:`: the REST API listener and the server's own files.
struct ServerSection {
  std::string host = "0.0.0.0";
  uint16_t port = 8080;
  std::string data_dir = "/var/lib/dataflow";  // metadata store, default checkpoints
  Millis shutdown_grace_period{30000};         // SIGTERM: drain within this, then exit
  uint64_t max_body_size = 4 * kMiB;           // larger request bodies get 413
  int api_threads = 2;                         // threads serving HTTP requests
};

// `runtime:`: how pipelines run, and the defaults a pipeline file may override.
struct RuntimeSection {
  int workers = 0;                      // worker threads; 0 = one per core
  uint64_t worker_memory = 0;           // memory over this is a `resource` failure; 0 = no limit
  uint64_t state_cache = 64 * kMiB;     // RocksDB block cache shared by all subtasks
  uint64_t state_memory = 64 * kMiB;    // per stateful subtask, before spilling to RocksDB
  Millis checkpoint_interval{10000};    // a pipeline's checkpoint.interval by default
  Millis checkpoint_timeout{600000};    // checkpoint.timeout
  int checkpoint_retained = 3;          // checkpoint.retained
  std::string checkpoint_storage{};     // directory or s3://bucket/prefix; <data_dir>/checkpoints
  bool checkpoint_compression = false;  // checkpoint.compression (zstd)
  // `retry:` {max_attempts 5, initial_backoff 100ms, max_backoff 30s}
  healing::RetrySettings retry{5, Millis{100}, Millis{30000}};
  // `restart:` a strategy name or a one-key map, as a pipeline's healing.restart
  // (default exponential_delay {initial 1s, max 5m, multiplier 2, reset_after 1h}).
  healing::RestartSettings restart{};
};

// `performance:`: channel and batch sizes (DESIGN §3).
struct PerformanceSection {
  int batch_size = 1024;                // rows per batch
  int buffer_size = 8192;               // rows a channel holds
  double backpressure_threshold = 0.8;  // fraction of buffer_size at which a producer pauses
};

// `network:`: timeouts and limits of the server's own connections.
struct NetworkSection {
  Millis connect_timeout{10000};  // outgoing connections (S3 checkpoint storage, ...)
  // An API connection idle this long is closed; also the time a request's
  // body has to arrive in full.
  Millis request_timeout{60000};
  Millis header_timeout{10000};  // a request's header (and a TLS handshake) in full
  int max_connections = 1024;    // open connections per listening port; beyond: 503
};

// `tls:`: HTTPS for the API. Paths are not secrets; the key file's content is.
struct TlsSection {
  bool enabled = false;
  std::string cert_file{};  // PEM certificate chain; required when enabled
  std::string key_file{};   // PEM private key; required when enabled
  std::string ca_file{};    // clients' CA: client certificates are verified against it
  // With ca_file: a client without a valid certificate is refused (false: a
  // certificate is optional, but one that is sent must verify).
  bool verify_client = false;
};

// `runtime.disaster_recovery:` (the top-level `disaster_recovery:` is an
// alias, with `backup_storage` for `backup_location`): a BackupService
// (disaster_recovery.h) periodically copies the metadata store and every
// pipeline's current checkpoint to `backup_storage`.
struct DisasterRecoverySection {
  bool enabled = false;
  std::string backup_storage{};  // `backup_location`: directory or s3://bucket/prefix;
                                 // required when enabled
  Millis backup_interval{3600000};
  int retention_days = 7;  // backups older than this are deleted; 0 = kept forever
};

// One HTTP endpoint of `monitoring:`.
struct EndpointSection {
  bool enabled = true;
  std::string host = "0.0.0.0";
  uint16_t port = 0;
  std::string path{};
};

// `monitoring:`.
struct MonitoringSection {
  EndpointSection metrics{true, "0.0.0.0", 9090, "/metrics"};  // Prometheus text format
  EndpointSection health{true, "0.0.0.0", 8081, "/health"};    // also <path>/ready, <path>/live
  // `logging:` {level info, format json, output stdout, max_size 100MB,
  // max_backups 5, max_age 7d}; see engine/core/log.h.
  LogSettings logging{};
};

// The permission groups of the first config format: `security.rbac.roles`
// still accepts them, each standing for a set of Actions (rbac.h).
enum class Permission {
  kRead,     // every GET: pipeline:read, run:read, checkpoint:read, state:export, ...
  kWrite,    // pipeline:create|update|delete, state:import, config:write
  kControl,  // run:start|stop|cancel, checkpoint:create|rollback
};

// "read", "write", "control": the names in `security.rbac.roles`.
constexpr std::string_view permission_name(Permission p) {
  switch (p) {
    case Permission::kRead:
      return "read";
    case Permission::kWrite:
      return "write";
    case Permission::kControl:
      return "control";
  }
  return "read";
}

// One thing a caller may be allowed to do: every API route needs exactly
// one (engine/server/api.cc). Named "resource:verb" in config and
// policies.yaml; "resource:*" and "*" grant several.
enum class Action {
  kPipelineCreate,
  kPipelineRead,
  kPipelineUpdate,
  kPipelineDelete,
  kRunRead,
  kRunStart,
  kRunStop,
  kRunCancel,
  kCheckpointRead,
  kCheckpointCreate,
  kCheckpointRollback,
  kStateExport,
  kStateImport,
  kConfigWrite,
  kHealthRead,   // the health endpoints, when security.authentication.protect_health
  kMetricsRead,  // /metrics, when security.authentication.protect_metrics
};
constexpr size_t kActionCount = static_cast<size_t>(Action::kMetricsRead) + 1;

constexpr std::string_view action_name(Action a) {
  constexpr std::string_view kNames[kActionCount] = {"pipeline:create",
                                                     "pipeline:read",
                                                     "pipeline:update",
                                                     "pipeline:delete",
                                                     "run:read",
                                                     "run:start",
                                                     "run:stop",
                                                     "run:cancel",
                                                     "checkpoint:read",
                                                     "checkpoint:create",
                                                     "checkpoint:rollback",
                                                     "state:export",
                                                     "state:import",
                                                     "config:write",
                                                     "health:read",
                                                     "metrics:read"};
  return kNames[static_cast<size_t>(a)];
}

// Whether `pattern` (an action name, "resource:*" or "*") names `a`.
constexpr bool action_matches(std::string_view pattern, Action a) {
  const std::string_view name = action_name(a);
  if (pattern == "*" || pattern == name) return true;
  return pattern.size() > 2 && pattern.substr(pattern.size() - 2) == ":*" &&
         name.substr(0, pattern.size() - 1) == pattern.substr(0, pattern.size() - 1);
}

// Whether `pattern` names at least one action (the config checks this).
constexpr bool is_action_pattern(std::string_view pattern) {
  for (size_t i = 0; i < kActionCount; ++i) {
    if (action_matches(pattern, static_cast<Action>(i))) return true;
  }
  return false;
}

// `security.rbac.roles.<name>: [permissions]`: groups (read, write,
// control) in `permissions`, action patterns ("pipeline:read", "run:*") in
// `actions`, both as written.
struct Role {
  std::string name{};
  std::vector<Permission> permissions{};
  std::vector<std::string> actions{};
};

// `security.auth.api_keys[]`: a client sends `Authorization: Bearer <key>`.
struct ApiKey {
  std::string name{};  // who, for logs
  std::string key{};   // the secret (masked when the config is printed)
  std::string role{};  // a role of security.rbac.roles
};

// `security.auth:`: the API keys (the first authentication method).
struct AuthSection {
  bool enabled = false;            // requires authentication (api_key, plus any of `methods`)
  std::vector<ApiKey> api_keys{};  // at least one when enabled without other methods
};

// `security.authentication.basic:`: `Authorization: Basic` against a users
// file of lines `name:hash:role[,role...]` (hash: bcrypt `$2b$`/`$2y$` or
// argon2id `$argon2id$`; `#` starts a comment). Plaintext is refused.
struct BasicAuthSection {
  std::string users_file{};  // required when basic is a method
};

// `security.authentication.jwt:`: `Authorization: Bearer <JWT>`.
struct JwtSection {
  std::vector<std::string> algorithms{};  // of HS256, RS256, ES256; required
  std::string secret{};                   // HS256 key (a secret: masked when printed)
  std::string public_key_file{};          // PEM public key: RSA for RS256, P-256 for ES256
  std::string issuer{};                   // `iss` must equal it, when set
  std::string audience{};                 // `aud` must hold it, when set
  Millis clock_skew{60000};               // leeway on exp and nbf
  std::string roles_claim = "roles";      // string or list of strings; dotted path ("realm.roles")
  std::string subject_claim = "sub";      // who, for logs
};

// `security.authentication.oauth2:`: `Authorization: Bearer <JWT>` access
// tokens of an OpenID Connect provider. Its keys come from the JWKS that
// <issuer>/.well-known/openid-configuration names (HTTPS only), cached and
// fetched again when a token names an unknown `kid` (at most once per
// `jwks_refresh_interval`). RS256 and ES256; `iss` must be the issuer.
struct OAuth2Section {
  std::string issuer{};                 // https://login.example/realms/x; required
  std::string audience{};               // `aud` must hold it; required
  std::string roles_claim = "roles";    // as jwt.roles_claim
  std::string subject_claim = "sub";    // who, for logs
  std::string ca_file{};                // PEM CA of the provider; empty: the system's CAs
  Millis clock_skew{60000};             // leeway on exp and nbf
  Millis jwks_refresh_interval{30000};  // the least time between two JWKS fetches
};

// One `security.authentication.mtls.mappings[]` entry: a client certificate
// whose subject (or one of whose SANs) matches gets `role`. A trailing `*`
// matches any rest.
struct CertRoleMapping {
  std::string subject{};  // e.g. "CN=ci,O=Example" (as the TLS layer prints it)
  std::string san{};  // a DNS, URI or email SAN as written: "ci.example.com", "spiffe://example/ci"
  std::string role{};
};

// `security.authentication.mtls:`.
struct MtlsSection {
  std::vector<CertRoleMapping> mappings{};
};

// `security.authentication.failed_logins:`: per client address, `max`
// failed logins within `window` get 429 (Retry-After) until it passes.
struct FailedLoginSection {
  int max = 10;
  Millis window{60000};
};

// `security.authentication:`.
struct AuthenticationSection {
  // Of api_key, basic, jwt, oauth2, mtls; tried in this order of the request's
  // credentials. Empty: api_key when security.auth.enabled, else none.
  std::vector<std::string> methods{};
  BasicAuthSection basic{};
  JwtSection jwt{};
  OAuth2Section oauth2{};
  MtlsSection mtls{};
  FailedLoginSection failed_logins{};
  bool protect_health = false;   // health endpoints need health:read
  bool protect_metrics = false;  // /metrics needs metrics:read
};

// `security.rbac:`.
struct RbacSection {
  // `roles: {name: [read, write, control, pipeline:read, run:*, ...], ...}`;
  // replaces these defaults.
  std::vector<Role> roles{
      {"viewer", {Permission::kRead}, {}},
      {"operator", {Permission::kRead, Permission::kControl}, {}},
      {"admin", {Permission::kRead, Permission::kWrite, Permission::kControl}, {}}};
  // A YAML file `roles: {name: [...]}` read at load time; its roles are
  // added to (and replace same-named) `roles`.
  std::string policies_file{};
};

// `security:`.
struct SecuritySection {
  AuthSection auth{};
  AuthenticationSection authentication{};
  RbacSection rbac{};
};

// `secrets.vault:`: HashiCorp Vault's KV version 2 engine over HTTPS.
struct VaultSection {
  std::string address{};         // https://vault.example:8200; required for provider vault
  std::string token{};           // X-Vault-Token, e.g. ${VAULT_TOKEN} (masked when printed)
  std::string mount = "secret";  // the KV v2 engine's mount path
  std::string ca_file{};         // PEM CA of the Vault server; empty: the system's CAs
};

// `secrets:`: where `${secret:path#key}` references in config.yaml and in
// pipeline files come from (config/secrets.h resolves them at load time).
// `${NAME}` always reads the environment.
struct SecretsSection {
  enum class Provider {
    kEnv,    // path: an environment variable's name
    kFile,   // path: a file below `path` (a Kubernetes or Docker secret mount)
    kVault,  // path: a KV v2 secret below `vault.mount`
  };
  Provider provider = Provider::kEnv;
  std::string path{};  // the directory, for provider file
  VaultSection vault{};
};

// `sources.kafka` / `sinks.kafka`: server-wide defaults of Kafka nodes' options
// (brokers, the tuning keys, `properties:` of librdkafka; see
// connectors/kafka/README.md), kept as located maps (null: none) so the
// connector reports a bad value at its line in config.yaml. Pass them as
// connectors::kafka::KafkaDefaults{sources.kafka, sinks.kafka}.
struct ConnectorDefaults {
  ConfigValue kafka{};
};

struct ServerConfig {
  ServerSection server{};
  RuntimeSection runtime{};
  PerformanceSection performance{};
  NetworkSection network{};
  TlsSection tls{};
  DisasterRecoverySection disaster_recovery{};
  MonitoringSection monitoring{};
  SecuritySection security{};
  SecretsSection secrets{};
  ConnectorDefaults sources{};
  ConnectorDefaults sinks{};
};

}  // namespace df::server
