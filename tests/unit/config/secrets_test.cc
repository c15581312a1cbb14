// Secrets (config/secrets.h): `${secret:path#key}` references, the env and
// file providers on real variables and files, the Vault client's request
// and response handling (no Vault server in Debian or npm: the request is
// checked as built, and a fetch from an address nothing answers fails in
// one sentence without the token), the cloud managers refused, and
// config.yaml resolving its references through its own `secrets:` section
// with the values masked in the printed configuration.
#include "config/secrets.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "config/server_config.h"
#include "config/yaml_loader.h"
#include "tests/support/temp_dir.h"

namespace df::config {
namespace {

using server::SecretsSection;
using test::TempDir;

// A secret file as a mount makes it: readable by its owner only.
std::string write_secret(const TempDir& dir, const std::string& name, const std::string& text,
                         mode_t mode = 0600) {
  const std::string path = dir.write(name, text);
  ::chmod(path.c_str(), mode);
  return path;
}

std::shared_ptr<const SecretResolver> file_resolver(const TempDir& dir) {
  SecretsSection s;
  s.provider = SecretsSection::Provider::kFile;
  s.path = dir.str();
  auto r = SecretResolver::create(s);
  EXPECT_TRUE(r.ok()) << r.status().to_string();
  return r.ok() ? *r : nullptr;
}

std::string resolved(const std::string& yaml, std::shared_ptr<const SecretResolver> resolver,
                     const std::string& key = "v") {
  LoadOptions options;
  options.secrets = std::move(resolver);
  auto doc = parse_yaml(yaml, "doc.yaml", options);
  EXPECT_TRUE(doc.ok()) << doc.status().to_string();
  if (!doc.ok() || !doc->find(key)) return "<none>";
  return doc->find(key)->scalar_text();
}

std::string load_error(const std::string& yaml, std::shared_ptr<const SecretResolver> resolver) {
  LoadOptions options;
  options.secrets = std::move(resolver);
  auto doc = parse_yaml(yaml, "doc.yaml", options);
  EXPECT_FALSE(doc.ok()) << yaml;
  return doc.ok() ? std::string() : doc.status().message();
}

TEST(Secrets, ReferencesNameAPathAndMaybeAKey) {
  auto ref = parse_secret_reference("db/main#password");
  ASSERT_TRUE(ref.ok());
  EXPECT_EQ(ref->path, "db/main");
  EXPECT_EQ(ref->key, "password");
  ref = parse_secret_reference("TOKEN");
  ASSERT_TRUE(ref.ok());
  EXPECT_FALSE(ref->key.has_value());
  for (const char* bad :
       {"", "#k", "a#", "../etc/passwd", "a/../../b", "/abs", "a//b", "a/", "a?x=1", "a%2e"}) {
    EXPECT_FALSE(parse_secret_reference(bad).ok()) << bad;
  }
}

TEST(Secrets, EnvProviderReadsTheVariableAndItsKeys) {
  ::setenv("DF_SECRETS_TEST_PLAIN", "s3cr3t-env-value", 1);
  ::setenv("DF_SECRETS_TEST_JSON", R"({"user": "svc", "password": "pw-from-json-77"})", 1);
  auto env = SecretResolver::environment();
  EXPECT_EQ(resolved("v: ${secret:DF_SECRETS_TEST_PLAIN}\n", env), "s3cr3t-env-value");
  EXPECT_EQ(resolved("v: \"x-${secret:DF_SECRETS_TEST_JSON#password}-y\"\n", env),
            "x-pw-from-json-77-y");
  // `${secret:-d}` is still the variable `secret` with a default; `$${` a literal.
  ::unsetenv("secret");
  EXPECT_EQ(resolved("v: ${secret:-fallback}\n", env), "fallback");
  EXPECT_EQ(resolved("v: $${secret:X}\n", env), "${secret:X}");
  const std::string e = load_error("v: ${secret:DF_SECRETS_TEST_UNSET_123}\n", env);
  EXPECT_NE(e.find("doc.yaml:1:4: secret DF_SECRETS_TEST_UNSET_123: the environment variable is "
                   "not set"),
            std::string::npos)
      << e;
  EXPECT_NE(load_error("v: ${secret:DF_SECRETS_TEST_JSON#nope}\n", env)
                .find("secret DF_SECRETS_TEST_JSON has no key 'nope'"),
            std::string::npos);
  EXPECT_NE(load_error("v: ${secret:DF_SECRETS_TEST_PLAIN#k}\n", env).find("no #key"),
            std::string::npos);
  // Kept as written when asked to (config.yaml's first pass, the CLI's client-side check).
  LoadOptions keep;
  keep.resolve_secrets = false;
  auto kept = parse_yaml("v: ${secret:DF_SECRETS_TEST_PLAIN}\n", "doc.yaml", keep);
  ASSERT_TRUE(kept.ok());
  EXPECT_EQ(kept->find("v")->scalar_text(), "${secret:DF_SECRETS_TEST_PLAIN}");
  EXPECT_TRUE(has_secret_reference(kept->find("v")->scalar_text()));
  EXPECT_FALSE(has_secret_reference("$${secret:x} ${secret:-d}"));
}

TEST(Secrets, FileProviderReadsPlainValuesAndMapsBelowItsDirectory) {
  TempDir dir;
  write_secret(dir, "kafka/password", "kafka-pw-Qz19\n");
  write_secret(dir, "db.yaml", "user: app\npassword: db-pw-Lm42\n");
  write_secret(dir, "api.json", R"({"key": "api-key-Rt55", "n": 3})");
  auto files = file_resolver(dir);
  EXPECT_EQ(resolved("v: ${secret:kafka/password}\n", files), "kafka-pw-Qz19");
  EXPECT_EQ(resolved("v: ${secret:db.yaml#password}\n", files), "db-pw-Lm42");
  EXPECT_EQ(resolved("v: ${secret:api.json#key}\n", files), "api-key-Rt55");
  EXPECT_EQ(resolved("v: ${secret:api.json#n}\n", files), "3");

  // A file every user may read is refused, in one sentence without its content.
  write_secret(dir, "open.txt", "open-value-Ww20", 0644);
  const std::string open = load_error("v: ${secret:open.txt}\n", files);
  EXPECT_NE(open.find("secret file " + dir.file("open.txt") +
                      " is readable by every user; chmod o-rwx it"),
            std::string::npos)
      << open;
  EXPECT_EQ(open.find("open-value-Ww20"), std::string::npos);
  EXPECT_NE(load_error("v: ${secret:missing}\n", files).find("secret missing: cannot read"),
            std::string::npos);
  EXPECT_NE(load_error("v: ${secret:../outside}\n", files).find("has an empty, '.' or '..' part"),
            std::string::npos);

  SecretsSection no_dir;
  no_dir.provider = SecretsSection::Provider::kFile;
  EXPECT_NE(SecretResolver::create(no_dir).status().message().find("needs secrets.path"),
            std::string::npos);
}

TEST(Secrets, EachSecretIsFetchedOncePerLoad) {
  TempDir dir;
  const std::string path = write_secret(dir, "db.yaml", "user: app\npassword: pw-Once-88\n");
  SecretLoad load(file_resolver(dir));
  auto first = load.resolve({"db.yaml", "user"});
  ASSERT_TRUE(first.ok()) << first.status().to_string();
  // Gone from disk: the second key still comes from this load's fetch ...
  std::filesystem::remove(path);
  auto second = load.resolve({"db.yaml", "password"});
  ASSERT_TRUE(second.ok()) << second.status().to_string();
  EXPECT_EQ(*second, "pw-Once-88");
  // ... while a new load reads the provider again.
  SecretLoad next(file_resolver(dir));
  EXPECT_FALSE(next.resolve({"db.yaml", "user"}).ok());
}

TEST(Secrets, VaultRequestIsKvVersion2WithTheToken) {
  server::VaultSection vault;
  vault.address = "https://vault.example:8200/";
  vault.token = "hvs.token-Pp31";
  vault.mount = "/kv/";
  auto request = vault_read_request(vault, "team/kafka");
  ASSERT_TRUE(request.ok()) << request.status().to_string();
  EXPECT_EQ(request->url, "https://vault.example:8200/v1/kv/data/team/kafka");
  EXPECT_EQ(request->headers, (std::vector<std::string>{"X-Vault-Token: hvs.token-Pp31",
                                                        "Accept: application/json"}));

  server::VaultSection plain = vault;
  plain.address = "http://vault.example:8200";
  EXPECT_NE(vault_read_request(plain, "a").status().message().find("must be an https:// URL"),
            std::string::npos);
  server::VaultSection no_token = vault;
  no_token.token.clear();
  EXPECT_NE(vault_read_request(no_token, "a").status().message().find("token is empty"),
            std::string::npos);
  EXPECT_FALSE(vault_read_request(vault, "../sys/seal").ok());
  EXPECT_FALSE(vault_read_request(vault, "a?version=1").ok());

  // A KV v2 read response, as Vault documents it.
  auto data = vault_secret_data(R"({"request_id": "r", "lease_duration": 0,
      "data": {"data": {"password": "vault-pw-Hk27", "port": 9093},
               "metadata": {"version": 3, "destroyed": false}}})");
  ASSERT_TRUE(data.ok()) << data.status().to_string();
  EXPECT_EQ(data->at("password"), "vault-pw-Hk27");
  EXPECT_EQ(data->at("port"), "9093");
  EXPECT_FALSE(vault_secret_data(R"({"data": {"password": "kv-v1"}})").ok());
  EXPECT_FALSE(vault_secret_data("<html>").ok());
}

TEST(Secrets, VaultThatDoesNotAnswerIsOneSentenceWithoutTheToken) {
  SecretsSection s;
  s.provider = SecretsSection::Provider::kVault;
  s.vault.address = "https://127.0.0.1:1";  // nothing listens on port 1
  s.vault.token = "hvs.never-shown-Zz90";
  auto resolver = SecretResolver::create(s);
  ASSERT_TRUE(resolver.ok()) << resolver.status().to_string();
  auto fetched = (*resolver)->fetch("team/kafka");
  ASSERT_FALSE(fetched.ok());
  EXPECT_EQ(fetched.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(fetched.status().message().find("secret team/kafka: Vault at https://127.0.0.1:1 did "
                                            "not answer"),
            std::string::npos)
      << fetched.status().message();
  EXPECT_EQ(fetched.status().message().find("never-shown"), std::string::npos);
}

TEST(Secrets, CloudManagersAreNotSupported) {
  for (const char* cloud : {"aws_secrets_manager", "gcp_secret_manager", "azure_key_vault"}) {
    auto p = parse_secrets_provider(cloud);
    ASSERT_FALSE(p.ok());
    EXPECT_EQ(p.status().message(),
              "'" + std::string(cloud) + "' is not supported; use env, file or vault");
  }
  EXPECT_EQ(*parse_secrets_provider("vault"), SecretsSection::Provider::kVault);
}

TEST(Secrets, ServerConfigResolvesThroughItsOwnSecretsSectionAndMasksTheValues) {
  TempDir dir;
  write_secret(dir, "api", "key-from-file-Jx84\n");
  write_secret(dir, "kafka.yaml", "password: kafka-from-file-Vb63\n");
  const std::string text =
      "server: {host: \"${secret:api}\"}\n"  // a secret in a field nobody calls secret
      "security:\n"
      "  auth:\n"
      "    enabled: true\n"
      "    api_keys: [{name: ci, key: \"${secret:api}\", role: operator}]\n"
      "secrets: {provider: file, path: " +
      dir.str() +
      "}\n"
      "sources:\n"
      "  kafka: {properties: {sasl.username: svc, sasl.password: "
      "\"${secret:kafka.yaml#password}\"}}\n";
  auto c = parse_server_config(text, "config.yaml");
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  EXPECT_EQ(c->security.auth.api_keys.at(0).key, "key-from-file-Jx84");
  EXPECT_EQ(c->server.host, "key-from-file-Jx84");
  EXPECT_EQ(c->secrets.provider, SecretsSection::Provider::kFile);
  const std::string printed = describe_server_config(*c);
  EXPECT_EQ(printed.find("key-from-file-Jx84"), std::string::npos) << printed;
  EXPECT_EQ(printed.find("kafka-from-file-Vb63"), std::string::npos) << printed;
  EXPECT_NE(printed.find("host: \"****\""), std::string::npos) << printed;
  EXPECT_NE(printed.find("provider: file"), std::string::npos) << printed;
  EXPECT_TRUE(contains_resolved_secret("user:key-from-file-Jx84"));

  // Pipeline files loaded later in this process resolve through the same provider.
  auto pipeline = parse_yaml("v: ${secret:kafka.yaml#password}\n", "pipeline.yaml");
  ASSERT_TRUE(pipeline.ok()) << pipeline.status().to_string();
  EXPECT_EQ(pipeline->find("v")->scalar_text(), "kafka-from-file-Vb63");
  set_default_secret_resolver(nullptr);

  // The secrets section itself may not use references; the vault token is masked.
  auto circular = parse_server_config(
      "secrets: {provider: vault, vault: {address: https://v, token: \"${secret:t}\"}}\n",
      "config.yaml");
  ASSERT_FALSE(circular.ok());
  EXPECT_NE(circular.status().message().find("secrets: may not use ${secret:...}"),
            std::string::npos)
      << circular.status().message();
  ::setenv("DF_SECRETS_TEST_VAULT_TOKEN", "hvs.masked-Qa12", 1);
  auto vault = parse_server_config(
      "secrets:\n  provider: vault\n  vault: {address: \"https://vault.example:8200\", "
      "token: \"${DF_SECRETS_TEST_VAULT_TOKEN}\", mount: kv}\n",
      "config.yaml");
  ASSERT_TRUE(vault.ok()) << vault.status().to_string();
  set_default_secret_resolver(nullptr);
  EXPECT_EQ(vault->secrets.vault.token, "hvs.masked-Qa12");
  const std::string vault_printed = describe_server_config(*vault);
  EXPECT_EQ(vault_printed.find("hvs.masked-Qa12"), std::string::npos) << vault_printed;
  EXPECT_NE(vault_printed.find("token: \"****\""), std::string::npos) << vault_printed;
  auto http = parse_server_config(
      "secrets: {provider: vault, vault: {address: http://v, token: t}}\n", "config.yaml");
  ASSERT_FALSE(http.ok());
  EXPECT_NE(http.status().message().find("secrets.vault.address must be an https:// URL"),
            std::string::npos)
      << http.status().message();
}

}  // namespace
}  // namespace df::config
