#include "config/yaml_loader.h"

#include "config/secrets.h"

#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

namespace df::config {

namespace {

// A document's tree, aliases expanded, is walked whole: these bound what a
// hostile file can make us build (a "billion laughs" of nested aliases is a
// few lines of YAML) and how deep we recurse.
constexpr int kMaxDepth = 64;
constexpr size_t kMaxValues = 200000;

// How far convert() has got through one document.
struct Budget {
  size_t values = 0;
};

SourceLocation location_of(const YAML::Mark& mark, const std::string& file) {
  if (mark.is_null()) return SourceLocation{file, 0, 0};
  return SourceLocation{file, mark.line + 1, mark.column + 1};
}

Status convert(const YAML::Node& node, const std::string& file, const LoadOptions& options,
               SecretLoad* secrets, ConfigValue& out, Diagnostics& diags, int depth,
               Budget& budget) {
  SourceLocation loc = location_of(node.Mark(), file);
  if (depth > kMaxDepth) {
    return Status::invalid(loc.to_string() + ": the document nests deeper than " +
                           std::to_string(kMaxDepth) + " levels");
  }
  if (++budget.values > kMaxValues) {
    return Status::invalid(loc.to_string() + ": the document expands to more than " +
                           std::to_string(kMaxValues) +
                           " values (are YAML aliases (*name) repeating an anchor many times?)");
  }
  switch (node.Type()) {
    case YAML::NodeType::Undefined:
    case YAML::NodeType::Null:
      out = ConfigValue::null(loc);
      return Status::OK();
    case YAML::NodeType::Scalar: {
      bool quoted = node.Tag() == "!";
      std::string text = node.Scalar();
      if (options.substitute_env) {
        auto r = substitute_env(text, secrets);
        if (!r.ok()) {
          diags.error(loc, r.status().message());
        } else {
          text = std::move(r).value();
        }
      }
      // YAML's own null spellings, when unquoted, are null.
      if (!quoted && (text == "~" || text == "null" || text == "Null" || text == "NULL")) {
        out = ConfigValue::null(loc);
      } else {
        out = ConfigValue::scalar(std::move(text), loc, quoted);
      }
      return Status::OK();
    }
    case YAML::NodeType::Sequence: {
      std::vector<ConfigValue> items;
      items.reserve(node.size());
      for (const auto& child : node) {
        ConfigValue v;
        DF_RETURN_IF_ERROR(convert(child, file, options, secrets, v, diags, depth + 1, budget));
        items.push_back(std::move(v));
      }
      out = ConfigValue::sequence(std::move(items), loc);
      return Status::OK();
    }
    case YAML::NodeType::Map: {
      std::vector<ConfigValue::Entry> entries;
      std::set<std::string> seen;
      for (const auto& kv : node) {
        if (!kv.first.IsScalar()) {
          diags.error(location_of(kv.first.Mark(), file), "map keys must be plain names");
          continue;
        }
        std::string key = kv.first.Scalar();
        if (!seen.insert(key).second) {
          diags.error(location_of(kv.first.Mark(), file), "duplicate key '" + key + "'");
          continue;
        }
        ConfigValue v;
        DF_RETURN_IF_ERROR(convert(kv.second, file, options, secrets, v, diags, depth + 1, budget));
        entries.emplace_back(std::move(key), std::move(v));
      }
      out = ConfigValue::map(std::move(entries), loc);
      return Status::OK();
    }
  }
  return Status::internal("unknown YAML node type");
}

}  // namespace

namespace {
// `${secret:` starts a reference; `${secret:-x}` is the variable `secret` with a default.
bool is_secret_body(std::string_view body) {
  return body.rfind("secret:", 0) == 0 && body.rfind("secret:-", 0) != 0;
}
}  // namespace

bool has_secret_reference(std::string_view text) {
  for (size_t at = text.find("${secret:"); at != std::string_view::npos;
       at = text.find("${secret:", at + 1)) {
    if (at > 0 && text[at - 1] == '$') continue;  // $${ is a literal
    if (is_secret_body(text.substr(at + 2))) return true;
  }
  return false;
}

Result<std::string> substitute_env(std::string_view text, SecretLoad* secrets) {
  if (text.find('$') == std::string_view::npos) return std::string(text);
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    if (text.compare(i, 3, "$${") == 0) {
      out += "${";
      i += 3;
      continue;
    }
    if (text.compare(i, 2, "${") != 0) {
      out.push_back(text[i++]);
      continue;
    }
    size_t close = text.find('}', i + 2);
    if (close == std::string_view::npos) {
      return Status::invalid("unterminated '${' in '" + std::string(text) + "'");
    }
    std::string_view body = text.substr(i + 2, close - i - 2);
    if (is_secret_body(body)) {
      if (!secrets) {
        out += text.substr(i, close + 1 - i);  // resolved by a later load
      } else {
        DF_ASSIGN_OR_RETURN(SecretReference ref, parse_secret_reference(body.substr(7)));
        DF_ASSIGN_OR_RETURN(std::string value, secrets->resolve(ref));
        out += value;
      }
      i = close + 1;
      continue;
    }
    std::string_view name = body;
    std::optional<std::string_view> fallback;
    if (size_t d = body.find(":-"); d != std::string_view::npos) {
      name = body.substr(0, d);
      fallback = body.substr(d + 2);
    }
    if (name.empty())
      return Status::invalid("empty variable name in '${" + std::string(body) + "}'");
    std::string var(name);
    const char* value = std::getenv(var.c_str());
    if (value && (*value || !fallback)) {
      out += value;
    } else if (fallback) {
      out += *fallback;
    } else {
      return Status::invalid("environment variable " + var + " is not set (write ${" + var +
                             ":-default} to give a default)");
    }
    i = close + 1;
  }
  return out;
}

Result<ConfigValue> parse_yaml(std::string_view text, const std::string& file,
                               const LoadOptions& options) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    SourceLocation loc = location_of(e.mark, file);
    std::string where = loc.to_string();
    return Status::invalid((where.empty() ? "" : where + ": ") + "invalid YAML: " + e.msg);
  }
  Diagnostics diags;
  ConfigValue out;
  Budget budget;
  std::unique_ptr<SecretLoad> secrets;
  if (options.substitute_env && options.resolve_secrets) {
    secrets =
        std::make_unique<SecretLoad>(options.secrets ? options.secrets : default_secret_resolver());
  }
  DF_RETURN_IF_ERROR(convert(root, file, options, secrets.get(), out, diags, 0, budget));
  DF_RETURN_IF_ERROR(diags.to_status());
  return out;
}

Result<ConfigValue> load_yaml_file(const std::string& path, const LoadOptions& options) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return Status::io_error("cannot read " + path + ": " + std::strerror(errno));
  }
  std::stringstream buf;
  buf << in.rdbuf();
  return parse_yaml(buf.str(), path, options);
}

}  // namespace df::config
