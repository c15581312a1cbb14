#include "connectors/options.h"

#include <cctype>
#include <charconv>

namespace df::connectors {

std::string_view format_name(Format f) { return f == Format::kCsv ? "csv" : "json"; }
std::string_view format_extension(Format f) { return f == Format::kCsv ? ".csv" : ".jsonl"; }

void report_option(OptionReader& opts, std::string_view key, const std::string& message) {
  const ConfigValue* v = opts.node().find(key);
  opts.diags().error(v ? v->location() : opts.node().location(),
                     opts.what() + " option '" + std::string(key) + "': " + message);
}

std::optional<Format> read_format(OptionReader& opts, Format fallback) {
  if (!opts.has("format")) {
    opts.allow("format");
    return fallback;
  }
  auto text = opts.string("format");
  if (!text) return std::nullopt;
  if (*text == "json") return Format::kJson;
  if (*text == "csv") return Format::kCsv;
  report_option(opts, "format", "unknown format '" + *text + "' (expected json or csv)");
  return std::nullopt;
}

SchemaPtr read_schema(OptionReader& opts, bool required) {
  const ConfigValue* node = required ? opts.require("schema") : opts.get("schema");
  if (!node) return nullptr;
  if (!node->is_map()) {
    report_option(opts, "schema",
                  "expected a map of field names to types, got " + std::string(node->kind_name()));
    return nullptr;
  }
  if (node->entries().empty()) {
    report_option(opts, "schema", "needs at least one field");
    return nullptr;
  }
  std::vector<Field> fields;
  bool ok = true;
  for (const auto& [name, type] : node->entries()) {
    std::optional<TypeId> id;
    if (type.is_scalar()) id = parse_type_name(type.scalar_text());
    if (!id) {
      std::string got =
          type.is_scalar() ? "'" + type.scalar_text() + "'" : std::string(type.kind_name());
      opts.diags().error(type.location(),
                         opts.what() + " schema field '" + name + "': unknown type " + got +
                             " (expected bool, int64, double, string or timestamp)");
      ok = false;
      continue;
    }
    for (const Field& f : fields) {
      if (f.name == name) {
        opts.diags().error(type.location(),
                           opts.what() + " schema: field '" + name + "' appears twice");
        ok = false;
      }
    }
    fields.push_back(Field{name, *id});
  }
  return ok ? make_schema(std::move(fields)) : nullptr;
}

std::optional<CsvOptions> read_csv_options(OptionReader& opts) {
  CsvOptions out;
  const ConfigValue* node = opts.get("csv");
  if (!node) return out;
  size_t errors_before = opts.diags().size();
  OptionReader csv(*node, opts.what() + " option 'csv'", opts.diags());
  if (auto h = csv.boolean("header")) out.header = *h;
  if (auto d = csv.string("delimiter")) {
    if (d->size() != 1 || (*d)[0] == '"' || (*d)[0] == '\n' || (*d)[0] == '\r') {
      report_option(csv, "delimiter", "must be one character other than a quote or line break");
    } else {
      out.delimiter = (*d)[0];
    }
  }
  csv.finish();
  if (opts.diags().size() != errors_before) return std::nullopt;
  return out;
}

Result<uint64_t> parse_byte_size(std::string_view text) {
  auto bad = [&] {
    return Status::invalid("expected a size such as 1048576 or 64MiB, got '" + std::string(text) +
                           "'");
  };
  uint64_t n = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc() || p == text.data()) return bad();
  std::string unit;
  for (const char* c = p; c != text.data() + text.size(); ++c) {
    if (*c == ' ') continue;
    unit += static_cast<char>(std::tolower(static_cast<unsigned char>(*c)));
  }
  uint64_t mult = 1;
  if (unit.empty() || unit == "b") {
    mult = 1;
  } else if (unit == "kb" || unit == "k") {
    mult = 1000;
  } else if (unit == "mb" || unit == "m") {
    mult = 1000 * 1000;
  } else if (unit == "gb" || unit == "g") {
    mult = 1000 * 1000 * 1000;
  } else if (unit == "kib") {
    mult = uint64_t{1} << 10;
  } else if (unit == "mib") {
    mult = uint64_t{1} << 20;
  } else if (unit == "gib") {
    mult = uint64_t{1} << 30;
  } else {
    return bad();
  }
  if (n > UINT64_MAX / mult) return bad();
  return n * mult;
}

std::string_view delivery_name(Delivery d) {
  return d == Delivery::kExactlyOnce ? "exactly_once" : "at_least_once";
}

namespace {
std::optional<Delivery> parse_delivery(std::string_view text) {
  if (text == "at_least_once") return Delivery::kAtLeastOnce;
  if (text == "exactly_once") return Delivery::kExactlyOnce;
  return std::nullopt;
}
}  // namespace

std::optional<Delivery> read_delivery(OptionReader& opts, std::string_view pipeline_delivery) {
  // The sink's own `delivery` overrides the pipeline's checkpoint.delivery.
  if (opts.has("delivery")) {
    auto d = opts.string("delivery");
    if (!d) return std::nullopt;
    if (auto mode = parse_delivery(*d)) return mode;
    report_option(opts, "delivery", "must be at_least_once or exactly_once, got '" + *d + "'");
    return std::nullopt;
  }
  if (auto mode = parse_delivery(pipeline_delivery)) return mode;
  opts.diags().error(opts.node().location(),
                     opts.what() +
                         ": checkpoint delivery must be at_least_once or exactly_once, "
                         "got '" +
                         std::string(pipeline_delivery) + "'");
  return std::nullopt;
}

}  // namespace df::connectors
