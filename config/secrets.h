// Secrets: the values of `${secret:path#key}` references in config.yaml and
// in pipeline files, resolved when the file is loaded (yaml_loader.h) from
// the provider of the server config's `secrets:` section:
//
//  - env:   `path` is an environment variable's name.
//  - file:  `path` is a file below `secrets.path` (a Kubernetes or Docker
//           secret mount); a file others may read is refused.
//  - vault: `path` is a secret of HashiCorp Vault's KV v2 engine at
//           `secrets.vault.mount`, read over HTTPS with a token.
//
// With `#key` the secret is a map (YAML or JSON for env and file; Vault's
// are maps always) and the reference is its `key`; without it, the whole
// value (a file's trailing newline dropped). Each secret is fetched at most
// once per load (SecretLoad). The cloud managers of the administrator guide
// (aws_secrets_manager, gcp_secret_manager, azure_key_vault) are refused as
// not supported.
//
// Resolved values are remembered process-wide (contains_resolved_secret) so
// that printing the effective config masks them wherever they were used.
//
// Threading: a SecretResolver is immutable and may be shared; a SecretLoad
// belongs to one load on one thread; the process-wide functions are
// thread-safe.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/core/status.h"
#include "engine/server/server_config.h"

namespace df::config {

// `${secret:path#key}`: what follows "secret:".
struct SecretReference {
  std::string path;
  std::optional<std::string> key;
};
// `body` is the text between "${secret:" and "}" ("db/main#password").
Result<SecretReference> parse_secret_reference(std::string_view body);

// The GET that reads one KV v2 secret: <address>/v1/<mount>/data/<path>
// with the token in X-Vault-Token.
struct VaultRequest {
  std::string url;
  std::vector<std::string> headers;
};
// Refuses an address that is not https://, an empty token, and a path that
// climbs (`..`) or carries a query.
Result<VaultRequest> vault_read_request(const server::VaultSection& vault, std::string_view path);
// The key/value pairs of a KV v2 read response (`data.data`); scalars only.
Result<std::map<std::string, std::string>> vault_secret_data(std::string_view body);

// One secret as fetched: its text (env, file) or its pairs (vault).
struct SecretDocument {
  std::string text;
  std::optional<std::map<std::string, std::string>> fields;
};

class SecretResolver {
 public:
  // Checks the settings: vault needs an https address and a token; a cloud
  // manager cannot be configured (parse_secrets_provider refuses it).
  static Result<std::shared_ptr<const SecretResolver>> create(
      const server::SecretsSection& settings);
  // The env provider: what references resolve to before any server config is loaded.
  static std::shared_ptr<const SecretResolver> environment();

  server::SecretsSection::Provider provider() const { return settings_.provider; }

  // Reads the secret at `path` (no cache: see SecretLoad). Errors name the
  // path, never a value.
  Result<SecretDocument> fetch(const std::string& path) const;

 private:
  explicit SecretResolver(server::SecretsSection settings) : settings_(std::move(settings)) {}
  Result<SecretDocument> fetch_env(const std::string& path) const;
  Result<SecretDocument> fetch_file(const std::string& path) const;
  Result<SecretDocument> fetch_vault(const std::string& path) const;

  const server::SecretsSection settings_;
};

// The secrets of one load (one file): each path is fetched once.
class SecretLoad {
 public:
  explicit SecretLoad(std::shared_ptr<const SecretResolver> resolver)
      : resolver_(std::move(resolver)) {}

  // The value `ref` names; it is remembered for contains_resolved_secret.
  Result<std::string> resolve(const SecretReference& ref);

 private:
  std::shared_ptr<const SecretResolver> resolver_;
  std::map<std::string, SecretDocument> fetched_;
};

// The provider name of the config ("env", "file", "vault"), and its parser;
// the cloud managers get "... is not supported" with the ones that are.
std::string_view secrets_provider_name(server::SecretsSection::Provider provider);
Result<server::SecretsSection::Provider> parse_secrets_provider(std::string_view name);

// The resolver of pipeline files loaded without an explicit one: the one
// of the server config loaded last in this process (load_server_config
// installs it), else environment().
std::shared_ptr<const SecretResolver> default_secret_resolver();
void set_default_secret_resolver(std::shared_ptr<const SecretResolver> resolver);

// Whether `text` is, or holds, a value a SecretLoad resolved in this process.
bool contains_resolved_secret(std::string_view text);

}  // namespace df::config
