#include "config/secrets.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>

#include "config/yaml_loader.h"
#include "engine/server/oidc.h"

namespace df::config {

namespace {

using server::SecretsSection;

// A value this short is masked only where it is the whole text: masking
// every "1" of the effective config would hide it all.
constexpr size_t kShortSecret = 6;
// Resolved values remembered for masking; a bound against a hostile
// pipeline naming many secrets.
constexpr size_t kMaxRemembered = 10000;

struct Remembered {
  std::mutex mu;
  std::set<std::string, std::less<>> values;
};
Remembered& remembered() {
  static Remembered* r = new Remembered();  // never destroyed: used at exit by loggers
  return *r;
}

void remember(const std::string& value) {
  if (value.empty()) return;
  Remembered& r = remembered();
  std::lock_guard lock(r.mu);
  if (r.values.size() < kMaxRemembered) r.values.insert(value);
}

struct DefaultResolver {
  std::mutex mu;
  std::shared_ptr<const SecretResolver> resolver;
};
DefaultResolver& default_resolver() {
  static DefaultResolver* d = new DefaultResolver();
  return *d;
}

// A path of a secret: relative, no `..`, no empty parts (it is joined to
// a directory or a URL).
Status check_path(std::string_view path) {
  if (path.empty()) return Status::invalid("a secret reference needs a path: ${secret:path#key}");
  if (path.front() == '/' || path.back() == '/') {
    return Status::invalid("secret path '" + std::string(path) +
                           "' must be relative, without a leading or trailing '/'");
  }
  size_t start = 0;
  for (;;) {
    const size_t slash = path.find('/', start);
    const std::string_view part =
        path.substr(start, slash == path.npos ? path.npos : slash - start);
    if (part.empty() || part == "." || part == "..") {
      return Status::invalid("secret path '" + std::string(path) +
                             "' has an empty, '.' or '..' part");
    }
    if (slash == path.npos) break;
    start = slash + 1;
  }
  for (char c : path) {
    if (c == '?' || c == '%' || c == '\\' || static_cast<unsigned char>(c) < 0x20) {
      return Status::invalid("secret path '" + std::string(path) +
                             "' may not hold '?', '%', '\\' or control characters");
    }
  }
  return Status::OK();
}

// The scalar pairs of a YAML or JSON map (a secret with keys).
Result<std::map<std::string, std::string>> fields_of(const std::string& text,
                                                     const std::string& what) {
  LoadOptions literal;
  literal.substitute_env = false;  // a secret's text is data, never a template
  auto doc = parse_yaml(text, "", literal);
  // Parse errors quote the document's lines: say where, not what.
  if (!doc.ok() || !doc->is_map()) {
    return Status::invalid(what + " is not a YAML or JSON map, so it has no #key");
  }
  std::map<std::string, std::string> out;
  for (const auto& [k, v] : doc->entries()) {
    if (v.is_scalar()) out[k] = v.scalar_text();
  }
  return out;
}

}  // namespace

Result<SecretReference> parse_secret_reference(std::string_view body) {
  SecretReference ref;
  const size_t hash = body.find('#');
  ref.path = std::string(body.substr(0, hash));
  if (hash != body.npos) {
    ref.key = std::string(body.substr(hash + 1));
    if (ref.key->empty()) {
      return Status::invalid("secret reference '" + std::string(body) + "' has an empty #key");
    }
  }
  DF_RETURN_IF_ERROR(check_path(ref.path));
  return ref;
}

Result<VaultRequest> vault_read_request(const server::VaultSection& vault, std::string_view path) {
  if (vault.address.rfind("https://", 0) != 0) {
    return Status::invalid("secrets.vault.address must be an https:// URL, not '" + vault.address +
                           "'");
  }
  if (vault.token.empty()) {
    return Status::invalid("secrets.vault.token is empty (e.g. token: ${VAULT_TOKEN})");
  }
  DF_RETURN_IF_ERROR(check_path(path));
  std::string mount = vault.mount;
  while (!mount.empty() && mount.back() == '/') mount.pop_back();
  while (!mount.empty() && mount.front() == '/') mount.erase(0, 1);
  if (mount.empty()) return Status::invalid("secrets.vault.mount is empty");
  DF_RETURN_IF_ERROR(check_path(mount));
  std::string address = vault.address;
  while (address.back() == '/') address.pop_back();
  VaultRequest request;
  request.url = address + "/v1/" + mount + "/data/" + std::string(path);
  request.headers = {"X-Vault-Token: " + vault.token, "Accept: application/json"};
  return request;
}

Result<std::map<std::string, std::string>> vault_secret_data(std::string_view body) {
  LoadOptions literal;
  literal.substitute_env = false;
  auto doc = parse_yaml(body, "", literal);
  const ConfigValue* data = doc.ok() && doc->is_map() ? doc->find("data") : nullptr;
  const ConfigValue* inner = data && data->is_map() ? data->find("data") : nullptr;
  if (!inner || !inner->is_map()) {
    return Status::data_error(
        "the Vault response has no data.data map (is the mount KV version 2?)");
  }
  std::map<std::string, std::string> out;
  for (const auto& [k, v] : inner->entries()) {
    if (v.is_scalar()) out[k] = v.scalar_text();
  }
  return out;
}

std::string_view secrets_provider_name(SecretsSection::Provider provider) {
  switch (provider) {
    case SecretsSection::Provider::kEnv:
      return "env";
    case SecretsSection::Provider::kFile:
      return "file";
    case SecretsSection::Provider::kVault:
      return "vault";
  }
  return "env";
}

Result<SecretsSection::Provider> parse_secrets_provider(std::string_view name) {
  for (auto p : {SecretsSection::Provider::kEnv, SecretsSection::Provider::kFile,
                 SecretsSection::Provider::kVault}) {
    if (secrets_provider_name(p) == name) return p;
  }
  for (std::string_view cloud : {"aws_secrets_manager", "gcp_secret_manager", "azure_key_vault"}) {
    if (name == cloud) {
      return Status::unimplemented("'" + std::string(name) +
                                   "' is not supported; use env, file or vault");
    }
  }
  return Status::invalid("must be env, file or vault, not '" + std::string(name) + "'");
}

Result<std::shared_ptr<const SecretResolver>> SecretResolver::create(
    const SecretsSection& settings) {
  switch (settings.provider) {
    case SecretsSection::Provider::kEnv:
      break;
    case SecretsSection::Provider::kFile:
      if (settings.path.empty()) {
        return Status::invalid("secrets.provider file needs secrets.path (a directory)");
      }
      break;
    case SecretsSection::Provider::kVault:
      // Checks the address, token and mount once, with a harmless path.
      DF_RETURN_IF_ERROR(vault_read_request(settings.vault, "x").status());
      break;
  }
  return std::shared_ptr<const SecretResolver>(new SecretResolver(settings));
}

std::shared_ptr<const SecretResolver> SecretResolver::environment() {
  static const std::shared_ptr<const SecretResolver> env(new SecretResolver(SecretsSection{}));
  return env;
}

Result<SecretDocument> SecretResolver::fetch(const std::string& path) const {
  DF_RETURN_IF_ERROR(check_path(path));
  switch (settings_.provider) {
    case SecretsSection::Provider::kEnv:
      return fetch_env(path);
    case SecretsSection::Provider::kFile:
      return fetch_file(path);
    case SecretsSection::Provider::kVault:
      return fetch_vault(path);
  }
  return Status::internal("unknown secrets provider");
}

Result<SecretDocument> SecretResolver::fetch_env(const std::string& path) const {
  const char* value = std::getenv(path.c_str());
  if (!value) return Status::not_found("secret " + path + ": the environment variable is not set");
  return SecretDocument{value, std::nullopt};
}

Result<SecretDocument> SecretResolver::fetch_file(const std::string& path) const {
  const std::string file = (std::filesystem::path(settings_.path) / path).string();
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) {
    return Status::not_found("secret " + path + ": cannot read " + file + ": " +
                             std::strerror(errno));
  }
  if (!S_ISREG(st.st_mode))
    return Status::invalid("secret " + path + ": " + file + " is not a file");
  if (st.st_mode & S_IROTH) {
    return Status::failed_precondition("secret file " + file +
                                       " is readable by every user; chmod o-rwx it");
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    return Status::io_error("secret " + path + ": cannot read " + file + ": " +
                            std::strerror(errno));
  }
  std::stringstream buf;
  buf << in.rdbuf();
  std::string text = buf.str();
  // `echo value > file` and Kubernetes mounts of `value\n` mean "value".
  if (!text.empty() && text.back() == '\n') text.pop_back();
  if (!text.empty() && text.back() == '\r') text.pop_back();
  return SecretDocument{std::move(text), std::nullopt};
}

Result<SecretDocument> SecretResolver::fetch_vault(const std::string& path) const {
  DF_ASSIGN_OR_RETURN(VaultRequest request, vault_read_request(settings_.vault, path));
  server::HttpsGet get;
  get.url = request.url;
  get.headers = request.headers;
  get.ca_file = settings_.vault.ca_file;
  auto response = server::https_get(get);
  if (!response.ok()) {
    return Status::unavailable("secret " + path + ": Vault at " + settings_.vault.address +
                               " did not answer: " + response.status().message());
  }
  if (response->status == 404) {
    return Status::not_found("secret " + path + ": Vault has no such secret in mount " +
                             settings_.vault.mount);
  }
  if (response->status == 403) {
    return Status::failed_precondition("secret " + path +
                                       ": Vault refused the token (403 permission denied)");
  }
  if (response->status != 200) {
    return Status::unavailable("secret " + path + ": Vault answered HTTP " +
                               std::to_string(response->status));
  }
  auto fields = vault_secret_data(response->body);
  if (!fields.ok()) return Status::data_error("secret " + path + ": " + fields.status().message());
  return SecretDocument{std::string(), std::move(*fields)};
}

Result<std::string> SecretLoad::resolve(const SecretReference& ref) {
  auto it = fetched_.find(ref.path);
  if (it == fetched_.end()) {
    DF_ASSIGN_OR_RETURN(SecretDocument doc, resolver_->fetch(ref.path));
    it = fetched_.emplace(ref.path, std::move(doc)).first;
  }
  SecretDocument& doc = it->second;
  std::string value;
  if (!ref.key) {
    if (doc.fields) {
      return Status::invalid("secret " + ref.path +
                             " is a map: name its key (${secret:" + ref.path + "#key})");
    }
    value = doc.text;
  } else {
    if (!doc.fields) {
      DF_ASSIGN_OR_RETURN(auto fields, fields_of(doc.text, "secret " + ref.path));
      doc.fields = std::move(fields);
    }
    auto field = doc.fields->find(*ref.key);
    if (field == doc.fields->end()) {
      return Status::not_found("secret " + ref.path + " has no key '" + *ref.key + "'");
    }
    value = field->second;
  }
  remember(value);
  return value;
}

std::shared_ptr<const SecretResolver> default_secret_resolver() {
  DefaultResolver& d = default_resolver();
  std::lock_guard lock(d.mu);
  return d.resolver ? d.resolver : SecretResolver::environment();
}

void set_default_secret_resolver(std::shared_ptr<const SecretResolver> resolver) {
  DefaultResolver& d = default_resolver();
  std::lock_guard lock(d.mu);
  d.resolver = std::move(resolver);
}

bool contains_resolved_secret(std::string_view text) {
  if (text.empty()) return false;
  Remembered& r = remembered();
  std::lock_guard lock(r.mu);
  if (r.values.count(text)) return true;
  for (const std::string& v : r.values) {
    if (v.size() >= kShortSecret && text.find(v) != std::string_view::npos) return true;
  }
  return false;
}

}  // namespace df::config
