// The server's config.yaml: defaults, the shipped example, every section,
// environment substitution, errors with their locations (all at once), and
// the printed effective configuration with its secrets masked.
#include "config/server_config.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace df::config {
namespace {

using server::Permission;
using server::ServerConfig;

ServerConfig parse_ok(const std::string& text) {
  auto r = parse_server_config(text, "config.yaml");
  EXPECT_TRUE(r.ok()) << r.status().to_string();
  return r.ok() ? std::move(r).value() : ServerConfig{};
}

std::string parse_error(const std::string& text) {
  auto r = parse_server_config(text, "config.yaml");
  EXPECT_FALSE(r.ok()) << "parsed:\n" << text;
  return r.ok() ? std::string() : r.status().message();
}

TEST(ServerConfig, AnEmptyFileIsTheDefaults) {
  for (const char* text : {"", "# nothing\n", "server:\nruntime:\nmonitoring:\n  logging:\n"}) {
    ServerConfig c = parse_ok(text);
    EXPECT_EQ(c.server.host, "0.0.0.0");
    EXPECT_EQ(c.server.port, 8080);
    EXPECT_EQ(c.server.data_dir, "/var/lib/dataflow");
    EXPECT_EQ(c.server.shutdown_grace_period, Millis(30000));
    EXPECT_EQ(c.server.max_body_size, 4u << 20);
    EXPECT_EQ(c.server.api_threads, 2);
    EXPECT_EQ(c.runtime.workers, 0);
    EXPECT_EQ(c.runtime.checkpoint_interval, Millis(10000));
    EXPECT_EQ(c.runtime.checkpoint_timeout, Millis(600000));
    EXPECT_EQ(c.runtime.checkpoint_retained, 3);
    // Resolved against data_dir.
    EXPECT_EQ(c.runtime.checkpoint_storage, "/var/lib/dataflow/checkpoints");
    EXPECT_EQ(c.runtime.retry.max_attempts, 5);
    EXPECT_EQ(c.runtime.retry.initial_backoff, Millis(100));
    EXPECT_EQ(c.runtime.retry.max_backoff, Millis(30000));
    EXPECT_EQ(c.runtime.restart.strategy, healing::RestartSettings::Strategy::kExponentialDelay);
    EXPECT_EQ(c.performance.batch_size, 1024);
    EXPECT_EQ(c.performance.buffer_size, 8192);
    EXPECT_DOUBLE_EQ(c.performance.backpressure_threshold, 0.8);
    EXPECT_FALSE(c.tls.enabled);
    EXPECT_FALSE(c.disaster_recovery.enabled);
    EXPECT_TRUE(c.monitoring.metrics.enabled);
    EXPECT_EQ(c.monitoring.metrics.port, 9090);
    EXPECT_EQ(c.monitoring.metrics.path, "/metrics");
    EXPECT_EQ(c.monitoring.health.port, 8081);
    EXPECT_EQ(c.monitoring.health.path, "/health");
    EXPECT_EQ(c.monitoring.logging.level, LogLevel::kInfo);
    EXPECT_EQ(c.monitoring.logging.format, LogFormat::kJson);
    EXPECT_EQ(c.monitoring.logging.output, "stdout");
    EXPECT_EQ(c.monitoring.logging.max_size_bytes, 100u << 20);
    EXPECT_EQ(c.monitoring.logging.max_backups, 5);
    EXPECT_EQ(c.monitoring.logging.max_age, Millis(7LL * 24 * 3600 * 1000));
    EXPECT_FALSE(c.security.auth.enabled);
    EXPECT_TRUE(c.security.auth.api_keys.empty());
    ASSERT_EQ(c.security.rbac.roles.size(), 3u);
    EXPECT_EQ(c.secrets.provider, server::SecretsSection::Provider::kEnv);
    EXPECT_TRUE(c.sources.kafka.is_null());
    EXPECT_TRUE(c.sinks.kafka.is_null());
  }
}

// The administrator guide's file lists every key with its default: it must
// parse, and mean exactly what an empty file means.
TEST(ServerConfig, TheExampleFileIsEveryKeyWithItsDefault) {
  const std::string path = std::string(DF_SOURCE_DIR) + "/config/examples/server/config.yaml";
  auto example = load_server_config(path);
  ASSERT_TRUE(example.ok()) << example.status().to_string();
  EXPECT_EQ(describe_server_config(*example), describe_server_config(parse_ok("")));

  // Every key the printer knows appears in the example (none undocumented):
  // each printed "key:" occurs in the example's text.
  std::ifstream in(path);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string printed = describe_server_config(*example);
  size_t start = 0;
  int keys = 0;
  while (start < printed.size()) {
    size_t end = printed.find('\n', start);
    std::string line = printed.substr(start, end - start);
    start = end + 1;
    size_t first = line.find_first_not_of(' ');
    size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    ++keys;
    const std::string key = line.substr(first, colon - first + 1);
    EXPECT_NE(text.find(key), std::string::npos) << key << " is not in the example";
  }
  EXPECT_GT(keys, 60);
}

TEST(ServerConfig, ReadsEverySection) {
  ServerConfig c = parse_ok(R"(
server:
  host: 127.0.0.1
  port: 0
  data_dir: /srv/df
  shutdown_grace_period: 45s
  max_body_size: 512KiB
  api_threads: 4
runtime:
  workers: 8
  worker_memory: 2GB
  state_cache: 128MB
  checkpoint_interval: 30s
  checkpoint_timeout: 2m
  checkpoint_retained: 5
  checkpoint_compression: true
  retry: {max_attempts: 3, initial_backoff: 50ms, max_backoff: 2s}
  restart: {fixed_delay: {attempts: 4, delay: 15s}}
performance: {batch_size: 512, buffer_size: 4096, backpressure_threshold: 0.5}
network: {connect_timeout: 3s, request_timeout: 20s}
tls: {enabled: true, cert_file: /etc/df/cert.pem, key_file: /etc/df/key.pem}
disaster_recovery: {enabled: true, backup_storage: "s3://backups/df", backup_interval: 6h}
monitoring:
  metrics: {port: 9191, path: /prom}
  health: {enabled: false}
  logging: {level: debug, format: text, output: /var/log/df.log, max_size: 10MB,
            max_backups: 2, max_age: 1d}
security:
  auth:
    enabled: true
    api_keys:
      - {name: ci, key: s3cr3t, role: deployer}
  rbac:
    roles:
      deployer: [read, write]
secrets: {provider: env}
sources:
  kafka:
    brokers: [k1:9092, k2:9092]
    group_id: dataflow
    properties: {sasl.password: hunter2, security.protocol: SASL_SSL}
sinks:
  kafka: {acks: all, linger_ms: 5}
)");
  EXPECT_EQ(c.server.host, "127.0.0.1");
  EXPECT_EQ(c.server.port, 0);
  EXPECT_EQ(c.server.shutdown_grace_period, Millis(45000));
  EXPECT_EQ(c.server.max_body_size, 512u * 1024);
  EXPECT_EQ(c.server.api_threads, 4);
  EXPECT_EQ(c.runtime.workers, 8);
  EXPECT_EQ(c.runtime.worker_memory, 2ull << 30);
  EXPECT_EQ(c.runtime.state_cache, 128u << 20);
  EXPECT_EQ(c.runtime.checkpoint_storage, "/srv/df/checkpoints");
  EXPECT_EQ(c.runtime.checkpoint_interval, Millis(30000));
  EXPECT_EQ(c.runtime.checkpoint_timeout, Millis(120000));
  EXPECT_EQ(c.runtime.checkpoint_retained, 5);
  EXPECT_TRUE(c.runtime.checkpoint_compression);
  EXPECT_EQ(c.runtime.retry.max_attempts, 3);
  EXPECT_EQ(c.runtime.retry.initial_backoff, Millis(50));
  EXPECT_EQ(c.runtime.retry.max_backoff, Millis(2000));
  EXPECT_EQ(c.runtime.restart.strategy, healing::RestartSettings::Strategy::kFixedDelay);
  EXPECT_EQ(c.runtime.restart.attempts, 4);
  EXPECT_EQ(c.runtime.restart.delay, Millis(15000));
  EXPECT_EQ(c.performance.batch_size, 512);
  EXPECT_EQ(c.performance.buffer_size, 4096);
  EXPECT_DOUBLE_EQ(c.performance.backpressure_threshold, 0.5);
  EXPECT_EQ(c.network.connect_timeout, Millis(3000));
  EXPECT_EQ(c.network.request_timeout, Millis(20000));
  EXPECT_TRUE(c.tls.enabled);
  EXPECT_EQ(c.tls.key_file, "/etc/df/key.pem");
  EXPECT_EQ(c.disaster_recovery.backup_storage, "s3://backups/df");
  EXPECT_EQ(c.disaster_recovery.backup_interval, Millis(6 * 3600 * 1000));
  EXPECT_EQ(c.monitoring.metrics.port, 9191);
  EXPECT_EQ(c.monitoring.metrics.path, "/prom");
  EXPECT_TRUE(c.monitoring.metrics.enabled);
  EXPECT_FALSE(c.monitoring.health.enabled);
  EXPECT_EQ(c.monitoring.logging.level, LogLevel::kDebug);
  EXPECT_EQ(c.monitoring.logging.format, LogFormat::kText);
  EXPECT_EQ(c.monitoring.logging.output, "/var/log/df.log");
  EXPECT_EQ(c.monitoring.logging.max_size_bytes, 10u << 20);
  EXPECT_EQ(c.monitoring.logging.max_backups, 2);
  EXPECT_EQ(c.monitoring.logging.max_age, Millis(24 * 3600 * 1000));
  ASSERT_EQ(c.security.auth.api_keys.size(), 1u);
  EXPECT_EQ(c.security.auth.api_keys[0].name, "ci");
  EXPECT_EQ(c.security.auth.api_keys[0].key, "s3cr3t");
  EXPECT_EQ(c.security.auth.api_keys[0].role, "deployer");
  ASSERT_EQ(c.security.rbac.roles.size(), 1u);
  EXPECT_EQ(c.security.rbac.roles[0].permissions,
            (std::vector<Permission>{Permission::kRead, Permission::kWrite}));
  // The Kafka defaults stay located maps for the connector.
  ASSERT_TRUE(c.sources.kafka.is_map());
  EXPECT_EQ(c.sources.kafka.find("brokers")->items().size(), 2u);
  EXPECT_EQ(c.sources.kafka.find("group_id")->location().to_string(), "config.yaml:40:15");
  EXPECT_EQ(c.sinks.kafka.find("acks")->scalar_text(), "all");

  // Printed and read back, it is the same configuration.
  const std::string printed = describe_server_config(c);
  EXPECT_EQ(describe_server_config(parse_ok(printed)), printed);
  EXPECT_NE(printed.find("    fixed_delay:\n      attempts: 4\n      delay: 15s\n"),
            std::string::npos)
      << printed;
  EXPECT_NE(printed.find("    brokers:\n      - k1:9092\n      - k2:9092\n"), std::string::npos)
      << printed;
}

TEST(ServerConfig, SubstitutesTheEnvironment) {
  ::setenv("DF_CFG_TEST_PORT", "9000", 1);
  ::setenv("DF_CFG_TEST_KEY", "from-env", 1);
  ::unsetenv("DF_CFG_TEST_UNSET");
  ServerConfig c = parse_ok(
      "server:\n"
      "  port: ${DF_CFG_TEST_PORT}\n"
      "  data_dir: ${DF_CFG_TEST_UNSET:-/tmp/df-data}\n"
      "security:\n"
      "  auth:\n"
      "    api_keys: [{name: a, key: '${DF_CFG_TEST_KEY}', role: admin}]\n");
  EXPECT_EQ(c.server.port, 9000);
  EXPECT_EQ(c.server.data_dir, "/tmp/df-data");
  EXPECT_EQ(c.security.auth.api_keys.at(0).key, "from-env");

  const std::string e = parse_error("server:\n  host: ${DF_CFG_TEST_UNSET}\n");
  EXPECT_NE(e.find("config.yaml:2:9"), std::string::npos) << e;
  EXPECT_NE(e.find("DF_CFG_TEST_UNSET"), std::string::npos) << e;
}

TEST(ServerConfig, NamesAnUnknownKeyAtItsLine) {
  EXPECT_EQ(parse_error("server:\n  host: localhost\n  prot: 9000\n"),
            "config.yaml:3:9: unknown option 'prot' for server (did you mean 'port'?)");
  EXPECT_EQ(parse_error("sever:\n  port: 1\n"),
            "config.yaml:2:3: unknown option 'sever' for the server config "
            "(did you mean 'server'?)");
  EXPECT_EQ(parse_error("monitoring:\n  logging:\n    levle: debug\n"),
            "config.yaml:3:12: unknown option 'levle' for monitoring.logging "
            "(did you mean 'level'?)");
  EXPECT_EQ(parse_error("sinks:\n  kafka:\n    group_id: g\n"),
            "config.yaml:3:15: unknown option 'group_id' for sinks.kafka");
  EXPECT_EQ(parse_error("runtime:\n  retry: {max_attempts: 2, jitter: 1}\n"),
            "config.yaml:2:36: unknown option 'jitter' for retry");
}

TEST(ServerConfig, ReportsEveryProblemAtOnceInFileOrder) {
  const std::string e = parse_error(
      "server:\n"
      "  port: 70000\n"               // 2: out of range
      "  max_body_size: 4 parsecs\n"  // 3: bad size
      "runtime:\n"
      "  checkpoint_interval: soon\n"  // 5: bad duration
      "  workers: many\n"              // 6: not an integer
      "performance:\n"
      "  backpressure_threshold: 2\n"  // 8: out of range
      "monitoring:\n"
      "  logging: {format: xml}\n"  // 10: bad choice
      "bogus: 1\n");                // 11: unknown
  const std::vector<std::string> expected = {
      "config.yaml:2:9: server.port must be between 0 and 65535, got '70000'",
      "config.yaml:3:18: server.max_body_size: expected a size such as 512KiB or 4MB, got '4 "
      "parsecs'",
      "config.yaml:5:24: runtime option 'checkpoint_interval': ",
      "config.yaml:6:12: runtime option 'workers': expected an integer, got 'many'",
      "config.yaml:8:27: performance.backpressure_threshold must be between 0.01 and 1, got '2'",
      "config.yaml:10:21: monitoring.logging.format: log format must be json or text, not 'xml'",
      "config.yaml:11:8: unknown option 'bogus' for the server config"};
  size_t at = 0;
  for (const std::string& line : expected) {
    size_t found = e.find(line, at);
    EXPECT_NE(found, std::string::npos) << "missing or out of order: " << line << "\nin:\n" << e;
    if (found != std::string::npos) at = found + line.size();
  }
  EXPECT_EQ(std::count(e.begin(), e.end(), '\n'), 6) << e;
}

TEST(ServerConfig, RejectsBadSizesAndDurations) {
  EXPECT_NE(parse_error("server: {max_body_size: -1}\n").find("expected a size"),
            std::string::npos);
  EXPECT_NE(parse_error("server: {max_body_size: 0}\n").find("must be larger than 0"),
            std::string::npos);
  EXPECT_NE(parse_error("runtime: {state_cache: 1.5GB}\n").find("'1.5GB'"), std::string::npos);
  EXPECT_NE(parse_error("runtime: {checkpoint_timeout: 0s}\n").find("must be longer than 0"),
            std::string::npos);
  EXPECT_NE(parse_error("server: {shutdown_grace_period: 10 minutes}\n")
                .find("server option 'shutdown_grace_period': "),
            std::string::npos);
  EXPECT_NE(parse_error("network: {connect_timeout: [1s]}\n").find("a duration"),
            std::string::npos);

  EXPECT_EQ(*parse_size("0"), 0u);
  EXPECT_EQ(*parse_size("17"), 17u);
  EXPECT_EQ(*parse_size("17B"), 17u);
  EXPECT_EQ(*parse_size("512KiB"), 512u * 1024);
  EXPECT_EQ(*parse_size("4MB"), 4u << 20);
  EXPECT_EQ(*parse_size("4 mb"), 4u << 20);
  EXPECT_EQ(*parse_size("2G"), 2ull << 30);
  EXPECT_EQ(*parse_size("1TiB"), 1ull << 40);
  EXPECT_FALSE(parse_size("").ok());
  EXPECT_FALSE(parse_size("MB").ok());
  EXPECT_FALSE(parse_size("4XB").ok());
  EXPECT_FALSE(parse_size("99999999999TB").ok());
  EXPECT_EQ(format_size(4u << 20), "4MiB");
  EXPECT_EQ(format_size(1000), "1000B");
  EXPECT_EQ(format_size(1536), "1536B");
  EXPECT_EQ(format_size(0), "0");
}

TEST(ServerConfig, ChecksSettingsThatNeedEachOther) {
  const std::string e = parse_error(
      "server: {port: 9090}\n"
      "tls: {enabled: true, cert_file: /c.pem}\n"
      "disaster_recovery: {enabled: true}\n"
      "security:\n"
      "  auth:\n"
      "    enabled: true\n"
      "    api_keys:\n"
      "      - {name: a, key: k1, role: viewer}\n"
      "      - {name: a, key: k1, role: root}\n"
      "secrets: {provider: aws_secrets_manager}\n");
  for (const char* want : {
           "config.yaml:2:16: tls.enabled needs tls.key_file",
           "config.yaml:3:30: disaster_recovery.enabled needs disaster_recovery.backup_storage",
           "config.yaml:9:16: security.auth.api_keys: the name 'a' is used twice",
           "config.yaml:9:24: security.auth.api_keys 'a': the same key is given to two clients",
           "config.yaml:9:34: security.auth.api_keys 'a': unknown role 'root' (security.rbac.roles "
           "has viewer, operator, admin)",
           "config.yaml:10:21: secrets.provider: 'aws_secrets_manager' is not supported; use env, "
           "file or vault",
           "config.yaml:1:16: monitoring.metrics.port 9090 is also server.port",
       }) {
    EXPECT_NE(e.find(want), std::string::npos) << want << "\nin:\n" << e;
  }
  EXPECT_NE(parse_error("security: {auth: {enabled: true}}\n")
                .find("security.auth.enabled needs at least one entry"),
            std::string::npos);
  EXPECT_NE(parse_error("security: {auth: {api_keys: [{name: x}]}}\n").find("needs 'key'"),
            std::string::npos);
  EXPECT_NE(parse_error("security: {rbac: {roles: {ops: [read, fly]}}}\n")
                .find("permission must be read, write or control, not 'fly'"),
            std::string::npos);
  // A disabled endpoint may share a port.
  parse_ok("monitoring: {metrics: {enabled: false, port: 8080}}\n");
}

TEST(ServerConfig, PrintsTheEffectiveConfigWithSecretsMasked) {
  ServerConfig c = parse_ok(
      "server: {data_dir: /data}\n"
      "security:\n"
      "  auth:\n"
      "    api_keys: [{name: ci, key: top-secret-key, role: admin}]\n"
      "sources:\n"
      "  kafka:\n"
      "    brokers: k1:9092\n"
      "    properties: {sasl.password: hunter2, sasl.username: df, ssl.key.location: /k.pem,\n"
      "                 sasl.oauthbearer.client.secret: s3}\n");
  const std::string out = describe_server_config(c);
  EXPECT_EQ(out.find("top-secret-key"), std::string::npos) << out;
  EXPECT_EQ(out.find("hunter2"), std::string::npos) << out;
  EXPECT_EQ(out.find(": s3\n"), std::string::npos) << out;
  EXPECT_NE(out.find("      - name: ci\n        key: \"****\"\n        role: admin\n"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("sasl.password: \"****\""), std::string::npos) << out;
  EXPECT_NE(out.find("sasl.oauthbearer.client.secret: \"****\""), std::string::npos) << out;
  // Usernames and key paths are not secrets.
  EXPECT_NE(out.find("sasl.username: df"), std::string::npos) << out;
  EXPECT_NE(out.find("ssl.key.location: /k.pem"), std::string::npos) << out;
  EXPECT_NE(out.find("  checkpoint_storage: /data/checkpoints\n"), std::string::npos) << out;
  EXPECT_NE(out.find("  max_body_size: 4MiB\n"), std::string::npos) << out;
  EXPECT_NE(out.find("    exponential_delay:\n      initial: 1s\n"), std::string::npos) << out;

  // The output is a config file meaning the same (the masked secrets aside).
  ServerConfig again = parse_ok(out);
  EXPECT_EQ(describe_server_config(again), out);
  EXPECT_EQ(again.security.auth.api_keys.at(0).key, "****");
}

TEST(ServerConfig, LoadsFilesAndNamesMissingOnes) {
  const std::string dir = ::testing::TempDir();
  const std::string path = dir + "/df-server-config-test.yaml";
  {
    std::ofstream out(path);
    out << "server:\n  port: 8181\n";
  }
  auto c = load_server_config(path);
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  EXPECT_EQ(c->server.port, 8181);
  std::filesystem::remove(path);

  auto missing = load_server_config(dir + "/no-such-config.yaml");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kIoError);
  EXPECT_NE(missing.status().message().find("no-such-config.yaml"), std::string::npos);

  EXPECT_EQ(parse_error("[1, 2]\n"), "config.yaml:1:1: the server config must be a map");
  EXPECT_EQ(parse_error("server: 8080\n"), "config.yaml:1:9: server must be a map, got a scalar");
}

}  // namespace
}  // namespace df::config
