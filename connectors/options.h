// Option readers shared by the connector factories (internal to connectors/).
// Each reports problems to the reader's Diagnostics with the offending node's
// location and returns nullopt/nullptr, so prepare() can go on and report
// every problem at once.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "connectors/format/csv.h"
#include "engine/core/config_value.h"
#include "engine/core/schema.h"

namespace df::connectors {

enum class Format { kJson, kCsv };
std::string_view format_name(Format f);  // "json", "csv"
// Part-file extension: ".jsonl", ".csv".
std::string_view format_extension(Format f);

// `format: json|csv`; when absent, `fallback`.
std::optional<Format> read_format(OptionReader& opts, Format fallback);

// `schema: {name: type, ...}` (order kept). nullptr when absent (and required
// reports it), empty, or any type name is unknown.
SchemaPtr read_schema(OptionReader& opts, bool required);

// `csv: {header: true, delimiter: ","}`; defaults when absent; unknown keys
// inside are reported too.
std::optional<CsvOptions> read_csv_options(OptionReader& opts);

// A byte count: an integer, or a number with a unit (KB, MB, GB = 10^3..;
// KiB, MiB, GiB = 2^10..), e.g. "128MiB".
Result<uint64_t> parse_byte_size(std::string_view text);

// How a sink delivers across failures (DESIGN §4).
enum class Delivery { kAtLeastOnce, kExactlyOnce };
std::string_view delivery_name(Delivery d);  // "at_least_once", "exactly_once"

// The sink's own `delivery` option, else the pipeline's checkpoint.delivery
// (`pipeline_delivery`, NodeSpec::delivery); nullopt after reporting a bad
// value.
std::optional<Delivery> read_delivery(OptionReader& opts, std::string_view pipeline_delivery);

// Reports `message` at the location of option `key` (or the node's).
void report_option(OptionReader& opts, std::string_view key, const std::string& message);

}  // namespace df::connectors
