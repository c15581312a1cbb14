// The window node's factory: validates the options (DESIGN.md §6) against
// the input schema and builds the shared WindowConfig.
#include "operators/window/window.h"

#include <algorithm>

#include "engine/checkpoint/state_serde.h"
#include "engine/core/time.h"
#include "engine/state/codec.h"
#include "operators/state_json.h"
#include "operators/stateless.h"
#include "operators/window/window_operator.h"

namespace df::operators {

namespace {

using window::check_windowed_input;
using window::read_lateness;
using window::read_window_shape;
using window::WindowConfig;
using window::WindowShape;
using window::WindowType;

using nlohmann::json;

// The node's prepared form; also turns its stored entries into readable JSON
// and back for `dataflow state export|import` (layout in window_operator.h):
//   tumbling partial:
//     {"key": {<key_by field>: value, ...}, "window_start": "<RFC 3339>",
//      "window_end": "<RFC 3339>", "spill": <spill number>,
//      "aggregates": {<name>: <accumulator>, ...}}
//   sliding partial: the same of a pane (window::pane_ms), with
//     "pane_start" and "pane_end" for "window_start" and "window_end"
//   session record:
//     {"key": {...}, "sessions": [{"window_start": ..., "window_end": ...,
//      "fired": <bool>, "aggregates": {...}}, ...]}
//   session timer:
//     {"timer": "fire"|"purge", "key": {...}, "window_end": ...}
// Accumulators are described at window::accumulators_to_json.
class PreparedWindow final : public window::PreparedWindowedNode, public checkpoint::StateSerde {
 public:
  PreparedWindow(std::shared_ptr<const WindowConfig> cfg, SourceLocation late_output_location)
      : PreparedWindowedNode(cfg->key_fields, cfg->input_schema, cfg->late_output,
                             std::move(late_output_location)),
        cfg_(std::move(cfg)) {}

  SchemaPtr output_schema() const override { return cfg_->output_schema; }
  std::unique_ptr<runtime::Operator> make_operator(int, int) const override {
    return window::make_window_operator(cfg_);
  }
  std::string describe() const override {
    std::string d;
    switch (cfg_->type) {
      case WindowType::kTumbling:
        d = "tumbling " + format_duration(Millis(cfg_->size_ms));
        break;
      case WindowType::kSliding:
        d = "sliding " + format_duration(Millis(cfg_->size_ms)) + " every " +
            format_duration(Millis(cfg_->slide_ms));
        break;
      case WindowType::kSession:
        d = "session gap " + format_duration(Millis(cfg_->gap_ms));
        break;
    }
    if (!cfg_->key_fields.empty()) {
      d += " by ";
      for (size_t i = 0; i < cfg_->key_fields.size(); ++i) {
        if (i) d += ", ";
        d += cfg_->input_schema->field(cfg_->key_fields[i]).name;
      }
    }
    d += ":";
    for (size_t j = 0; j < cfg_->aggs.size(); ++j) {
      d += (j ? ", " : " ") + cfg_->aggs[j].name + " = " + cfg_->aggs[j].to_string();
    }
    if (cfg_->allowed_lateness_ms > 0) {
      d += "; lateness " + format_duration(Millis(cfg_->allowed_lateness_ms));
    }
    if (!cfg_->late_output.empty()) d += "; late rows -> " + cfg_->late_output;
    return d;
  }
  // Its key fields and what its aggregates read; all of a row that may go
  // to the late-rows stream.
  std::optional<runtime::FieldMask> input_fields_read(size_t,
                                                      const runtime::FieldMask&) const override {
    if (!cfg_->late_output.empty()) return std::nullopt;
    runtime::FieldMask read(cfg_->input_schema->size(), false);
    for (size_t f : cfg_->key_fields) read[f] = true;
    for (const window::AggSpec& agg : cfg_->aggs) {
      if (agg.arg) mark_fields_read(*agg.arg, *cfg_->input_schema, read);
    }
    return read;
  }

  // ---- StateSerde ----

  // Version 2: a sliding window's entries are partials of a pane, not of a
  // window (a version 1 export of one cannot be split into panes).
  int state_format_version() const override { return cfg_->type == WindowType::kSliding ? 2 : 1; }

  Result<json> entry_to_json(std::string_view key, std::string_view value) const override {
    if (cfg_->type == WindowType::kSession) return session_entry_to_json(key, value);
    std::string_view in = key;
    auto end = state::read_ordered_i64(in);
    if (!end.ok()) return Status::data_error("window state: the entry key has no window end");
    DF_ASSIGN_OR_RETURN(json k, key_to_json(in));
    auto spill = state::read_u64(in);
    if (!spill.ok() || !in.empty()) {
      return Status::data_error("window state: the entry key does not end with a spill number");
    }
    DF_ASSIGN_OR_RETURN(json aggs, window::accumulators_to_json(cfg_->aggs, value));
    const auto [start_field, end_field] = bound_fields();
    return json{{"key", std::move(k)},
                {start_field, timestamp_to_json(*end - window::pane_ms(*cfg_))},
                {end_field, timestamp_to_json(*end)},
                {"spill", *spill},
                {"aggregates", std::move(aggs)}};
  }

  Status entry_from_json(const json& entry, std::string& key, std::string& value) const override {
    key.clear();
    value.clear();
    if (cfg_->type == WindowType::kSession) return session_entry_from_json(entry, key, value);
    const auto [start_field, end_field] = bound_fields();
    DF_RETURN_IF_ERROR(check_object(entry, "a window entry",
                                    {"key", start_field, end_field, "spill", "aggregates"}));
    const std::string start_name = std::string("'") + start_field + "'";
    const std::string end_name = std::string("'") + end_field + "'";
    DF_ASSIGN_OR_RETURN(int64_t end, timestamp_from_json(entry[end_field], end_name));
    DF_ASSIGN_OR_RETURN(int64_t start, timestamp_from_json(entry[start_field], start_name));
    const int64_t width = window::pane_ms(*cfg_);
    if (start != end - width) {
      return Status::invalid(start_name + " must be " + end_name + " minus the " +
                             (cfg_->type == WindowType::kSliding ? "pane" : "window size") + " " +
                             format_duration(Millis(width)));
    }
    const json& spill = entry["spill"];
    if (!spill.is_number_unsigned() && !(spill.is_number_integer() && spill.get<int64_t>() >= 0)) {
      return Status::invalid("'spill' must be a non-negative integer");
    }
    state::append_ordered_i64(end, key);
    DF_RETURN_IF_ERROR(key_from_json(entry["key"], key));
    state::append_u64(spill.get<uint64_t>(), key);
    return window::accumulators_from_json(cfg_->aggs, entry["aggregates"], value);
  }

  Status check_meta(const json& meta) const override {
    return window::meta_from_json(*cfg_, meta).status();
  }

 private:
  // The names of a stored partial's bounds: a sliding window's partials
  // are a pane's.
  std::pair<const char*, const char*> bound_fields() const {
    if (cfg_->type == WindowType::kSliding) return {"pane_start", "pane_end"};
    return {"window_start", "window_end"};
  }

  // Reads the encoded key cells at the front of `in` as {field: value}.
  Result<json> key_to_json(std::string_view& in) const {
    json k = json::object();
    for (size_t i = 0; i < cfg_->key_fields.size(); ++i) {
      auto v = state::decode_key_value(in, cfg_->key_types[i]);
      if (!v.ok()) {
        return Status::data_error("window state: key field '" + key_name(i) +
                                  "' does not decode: " + v.status().message());
      }
      k[key_name(i)] = value_to_json(*v, cfg_->key_types[i]);
    }
    return k;
  }

  Status key_from_json(const json& j, std::string& out) const {
    if (!j.is_object()) return Status::invalid("'key' must be an object of the key_by fields");
    for (const auto& [name, v] : j.items()) {
      bool known = false;
      for (size_t i = 0; i < cfg_->key_fields.size(); ++i) known = known || key_name(i) == name;
      if (!known) return Status::invalid("'key' has an unknown field '" + name + "'");
    }
    for (size_t i = 0; i < cfg_->key_fields.size(); ++i) {
      const std::string name = key_name(i);
      auto it = j.find(name);
      if (it == j.end()) return Status::invalid("'key' lacks the key_by field '" + name + "'");
      DF_ASSIGN_OR_RETURN(Value v,
                          value_from_json(*it, cfg_->key_types[i], "key field '" + name + "'"));
      state::encode_key_value(v, out);
    }
    return Status::OK();
  }

  const std::string& key_name(size_t i) const {
    return cfg_->input_schema->field(cfg_->key_fields[i]).name;
  }

  Result<json> session_entry_to_json(std::string_view key, std::string_view value) const {
    if (key.empty()) return Status::data_error("window state: an empty entry key");
    const char tag = key[0];
    std::string_view in = key.substr(1);
    if (tag == window::kSessionRecord) {
      DF_ASSIGN_OR_RETURN(json k, key_to_json(in));
      if (!in.empty()) return Status::data_error("window state: bytes left after the session key");
      std::vector<window::StoredSession> sessions;
      DF_RETURN_IF_ERROR(window::read_stored_sessions(value, sessions));
      json list = json::array();
      for (const window::StoredSession& s : sessions) {
        DF_ASSIGN_OR_RETURN(json aggs, window::accumulators_to_json(cfg_->aggs, s.accumulators));
        list.push_back({{"window_start", timestamp_to_json(s.start)},
                        {"window_end", timestamp_to_json(s.end)},
                        {"fired", s.fired},
                        {"aggregates", std::move(aggs)}});
      }
      return json{{"key", std::move(k)}, {"sessions", std::move(list)}};
    }
    if (tag == window::kFireTimer || tag == window::kPurgeTimer) {
      auto end = state::read_ordered_i64(in);
      if (!end.ok()) return Status::data_error("window state: a session timer without its end");
      DF_ASSIGN_OR_RETURN(json k, key_to_json(in));
      if (!in.empty() || !value.empty()) {
        return Status::data_error("window state: a malformed session timer");
      }
      return json{{"timer", tag == window::kFireTimer ? "fire" : "purge"},
                  {"key", std::move(k)},
                  {"window_end", timestamp_to_json(*end)}};
    }
    return Status::data_error("window state: an entry of unknown kind");
  }

  Status session_entry_from_json(const json& entry, std::string& key, std::string& value) const {
    if (!entry.is_object()) return Status::invalid("a session entry must be a JSON object");
    if (entry.contains("timer")) {
      DF_RETURN_IF_ERROR(check_object(entry, "a session timer", {"timer", "key", "window_end"}));
      const json& t = entry["timer"];
      if (!t.is_string() || (t != "fire" && t != "purge")) {
        return Status::invalid("'timer' must be \"fire\" or \"purge\"");
      }
      DF_ASSIGN_OR_RETURN(int64_t end, timestamp_from_json(entry["window_end"], "'window_end'"));
      key += t == "fire" ? window::kFireTimer : window::kPurgeTimer;
      state::append_ordered_i64(end, key);
      return key_from_json(entry["key"], key);
    }
    DF_RETURN_IF_ERROR(check_object(entry, "a session entry", {"key", "sessions"}));
    key += window::kSessionRecord;
    DF_RETURN_IF_ERROR(key_from_json(entry["key"], key));
    const json& list = entry["sessions"];
    if (!list.is_array() || list.empty()) {
      return Status::invalid("'sessions' must be a non-empty array");
    }
    window::append_session_count(list.size(), value);
    std::string acc;
    for (size_t i = 0; i < list.size(); ++i) {
      const std::string what = "sessions[" + std::to_string(i) + "]";
      const json& s = list[i];
      DF_RETURN_IF_ERROR(
          check_object(s, what, {"window_start", "window_end", "fired", "aggregates"}));
      DF_ASSIGN_OR_RETURN(int64_t start,
                          timestamp_from_json(s["window_start"], what + ".window_start"));
      DF_ASSIGN_OR_RETURN(int64_t end, timestamp_from_json(s["window_end"], what + ".window_end"));
      if (!s["fired"].is_boolean()) return Status::invalid(what + ".fired must be a boolean");
      acc.clear();
      DF_RETURN_IF_ERROR(window::accumulators_from_json(cfg_->aggs, s["aggregates"], acc));
      window::append_stored_session({start, end, s["fired"].get<bool>(), acc}, value);
    }
    return Status::OK();
  }

  std::shared_ptr<const WindowConfig> cfg_;
};

class WindowFactory final : public runtime::NodeFactory {
 public:
  std::vector<std::string> side_output_keys() const override { return {"late_output"}; }

  runtime::PreparedNodePtr prepare(const runtime::NodeSpec& spec,
                                   const std::vector<SchemaPtr>& inputs,
                                   OptionReader& opts) const override {
    const std::string what = "window '" + spec.id + "'";
    Diagnostics& diags = opts.diags();
    const size_t before = diags.size();
    if (!check_windowed_input(spec, inputs, opts, what)) return nullptr;
    const Schema& in = *inputs[0];
    auto cfg = std::make_shared<WindowConfig>();
    cfg->id = spec.id;
    cfg->input_schema = inputs[0];

    std::vector<std::pair<std::string, std::string>>
        names;  // output fields so far, and what they are
    if (const ConfigValue* key_by = opts.get("key_by")) {
      auto list = key_by->as_string_list();
      if (!list.ok()) {
        diags.error(key_by->location(),
                    what + ": 'key_by' must be a field name or a list of field names");
      } else {
        for (size_t i = 0; i < list->size(); ++i) {
          const std::string& name = (*list)[i];
          SourceLocation loc =
              key_by->is_sequence() ? key_by->items()[i].location() : key_by->location();
          auto idx = in.index_of(name);
          if (!idx) {
            diags.error(loc, what + ": unknown key_by field '" + name +
                                 "' (fields: " + in.to_string() + ")");
            continue;
          }
          if (std::find(cfg->key_fields.begin(), cfg->key_fields.end(), *idx) !=
              cfg->key_fields.end()) {
            diags.error(loc, what + ": key_by names field '" + name + "' twice");
            continue;
          }
          cfg->key_fields.push_back(*idx);
          cfg->key_types.push_back(in.field(*idx).type);
          names.emplace_back(name, "key field '" + name + "'");
        }
      }
    }

    if (const ConfigValue* node = opts.require("window")) {
      WindowShape shape;
      read_window_shape(*node, what, /*sessions=*/true, shape, diags);
      cfg->type = shape.type;
      cfg->size_ms = shape.size_ms;
      cfg->slide_ms = shape.slide_ms;
      cfg->gap_ms = shape.gap_ms;
    }

    const SourceLocation late_loc =
        read_lateness(opts, what, cfg->allowed_lateness_ms, cfg->late_output, diags);

    names.emplace_back("window_start", "the window bound 'window_start'");
    names.emplace_back("window_end", "the window bound 'window_end'");
    if (const ConfigValue* aggs = opts.require("aggregate")) {
      if (!aggs->is_map() || aggs->entries().empty()) {
        diags.error(aggs->location(),
                    what +
                        ": 'aggregate' must be a map of name: function(argument), "
                        "e.g. {bids: \"count(*)\"}");
      } else {
        for (const auto& [name, value] : aggs->entries()) {
          auto clash = std::find_if(names.begin(), names.end(),
                                    [&name = name](const auto& n) { return n.first == name; });
          if (clash != names.end()) {
            diags.error(value.location(), what + ": output field '" + name +
                                              "' is defined twice: aggregate '" + name +
                                              "' clashes with " + clash->second);
            continue;
          }
          names.emplace_back(name, "aggregate '" + name + "'");
          if (!value.is_scalar()) {
            diags.error(value.location(), what + " aggregate '" + name +
                                              "' must be a text such as \"sum(price)\", got " +
                                              std::string(value.kind_name()));
            continue;
          }
          auto agg = window::parse_aggregate(name, value.scalar_text(), value.text_location(), in,
                                             what, diags);
          if (agg) cfg->aggs.push_back(std::move(*agg));
        }
      }
    }
    if (diags.size() != before) return nullptr;

    std::vector<Field> fields;
    for (size_t f : cfg->key_fields) fields.push_back(in.field(f));
    fields.push_back({"window_start", TypeId::kTimestamp});
    fields.push_back({"window_end", TypeId::kTimestamp});
    for (const auto& a : cfg->aggs) fields.push_back({a.name, a.out_type});
    cfg->output_schema = make_schema(std::move(fields));
    return std::make_shared<PreparedWindow>(std::move(cfg), late_loc);
  }
};

// Reads a positive duration `key` of the window map.
std::optional<int64_t> positive_duration(OptionReader& r, const char* key,
                                         const std::string& what) {
  auto d = r.duration(key, true);
  if (!d) return std::nullopt;
  if (d->count() <= 0) {
    r.diags().error(r.get(key)->location(),
                    what + ": window " + key + " must be positive, got " + format_duration(*d));
    return std::nullopt;
  }
  return d->count();
}

}  // namespace

bool window::read_window_shape(const ConfigValue& node, const std::string& what, bool sessions,
                               WindowShape& shape, Diagnostics& diags) {
  if (!node.is_map()) {
    diags.error(node.location(),
                what + ": 'window' must be a map such as {type: tumbling, size: 10s}, got " +
                    std::string(node.kind_name()));
    return false;
  }
  OptionReader r(node, what + " window", diags);
  const size_t before = diags.size();
  auto type = r.string("type", true);
  if (type) {
    if (*type == "tumbling") {
      shape.type = WindowType::kTumbling;
      if (auto s = positive_duration(r, "size", what)) shape.size_ms = *s;
    } else if (*type == "sliding") {
      shape.type = WindowType::kSliding;
      if (auto s = positive_duration(r, "size", what)) shape.size_ms = *s;
      if (auto s = positive_duration(r, "slide", what)) shape.slide_ms = *s;
    } else if (*type == "session" && sessions) {
      shape.type = WindowType::kSession;
      if (auto s = positive_duration(r, "gap", what)) shape.gap_ms = *s;
    } else {
      const std::string kinds = sessions ? "tumbling, sliding or session" : "tumbling or sliding";
      diags.error(r.get("type")->location(),
                  *type == "session"
                      ? what + ": session windows are not supported (use " + kinds + ")"
                      : what + ": unknown window type '" + *type + "' (use " + kinds + ")");
      for (const char* k : {"size", "slide", "gap"}) r.allow(k);
    }
  }
  r.finish();
  return diags.size() == before;
}

std::unique_ptr<runtime::NodeFactory> make_window_factory() {
  return std::make_unique<WindowFactory>();
}

bool window::check_windowed_input(const runtime::NodeSpec& spec,
                                  const std::vector<SchemaPtr>& inputs, OptionReader& opts,
                                  const std::string& what) {
  if (!require_single_input(spec, inputs, opts)) return false;
  if (!spec.input_has_event_time.empty() && !spec.input_has_event_time[0]) {
    opts.diags().error(opts.node().location(),
                       what + " needs event time: set event_time on its source");
  }
  return true;
}

SourceLocation window::read_lateness(OptionReader& opts, const std::string& what,
                                     int64_t& allowed_lateness_ms, std::string& late_output,
                                     Diagnostics& diags) {
  if (auto lateness = opts.duration("allowed_lateness")) {
    if (lateness->count() < 0) {
      diags.error(
          opts.get("allowed_lateness")->location(),
          what + ": allowed_lateness must not be negative, got " + format_duration(*lateness));
    } else {
      allowed_lateness_ms = lateness->count();
    }
  }
  SourceLocation late_loc;
  if (auto late = opts.string("late_output")) {
    late_loc = opts.get("late_output")->location();
    if (late->empty()) {
      diags.error(late_loc, what + ": 'late_output' must name a stream");
    } else {
      late_output = *late;
    }
  }
  return late_loc;
}

}  // namespace df::operators
