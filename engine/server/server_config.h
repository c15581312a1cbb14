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

// `network:`: timeouts of the server's own connections.
struct NetworkSection {
  Millis connect_timeout{10000};  // outgoing connections (S3 checkpoint storage, ...)
  Millis request_timeout{60000};  // an API connection idle this long is closed
};

// `tls:`: HTTPS for the API. Paths are not secrets; the key file's content is.
struct TlsSection {
  bool enabled = false;
  std::string cert_file{};  // PEM certificate chain; required when enabled
  std::string key_file{};   // PEM private key; required when enabled
  std::string ca_file{};    // clients' CA: set to require client certificates
};

// `disaster_recovery:`: periodic copies of the metadata store and checkpoints.
struct DisasterRecoverySection {
  bool enabled = false;
  std::string backup_storage{};  // directory or s3://bucket/prefix; required when enabled
  Millis backup_interval{3600000};
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

// What a role may do over the API.
enum class Permission {
  kRead,     // GET anything
  kWrite,    // create, update and delete pipelines; import state
  kControl,  // start, stop, cancel, checkpoint, roll back
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

// `security.rbac.roles.<name>: [permissions]`.
struct Role {
  std::string name{};
  std::vector<Permission> permissions{};
};

// `security.auth.api_keys[]`: a client sends `Authorization: Bearer <key>`.
struct ApiKey {
  std::string name{};  // who, for logs
  std::string key{};   // the secret (masked when the config is printed)
  std::string role{};  // a role of security.rbac.roles
};

// `security.auth:`.
struct AuthSection {
  bool enabled = false;            // without it every request may do anything
  std::vector<ApiKey> api_keys{};  // at least one when enabled
};

// `security.rbac:`.
struct RbacSection {
  // `roles: {name: [read, write, control], ...}`; replaces these defaults.
  std::vector<Role> roles{{"viewer", {Permission::kRead}},
                          {"operator", {Permission::kRead, Permission::kControl}},
                          {"admin", {Permission::kRead, Permission::kWrite, Permission::kControl}}};
};

// `security:`.
struct SecuritySection {
  AuthSection auth{};
  RbacSection rbac{};
};

// `secrets:`: where `${NAME}` values in this file come from.
struct SecretsSection {
  enum class Provider {
    kEnv,   // the environment
    kFile,  // the file <path>/<NAME> (a Kubernetes or Docker secret mount); not yet
            // supported: the loader reports it
  };
  Provider provider = Provider::kEnv;
  std::string path{};  // the directory, for provider file
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
