// join: the equi-join of two event-time streams, windowed or interval.
//   - id: matched
//     type: join
//     left: persons                        # input 0
//     right: auctions                      # input 1
//     on: {left: [id], right: [seller]}    # or `on: [auction]` when both sides share the names
//     window: {type: tumbling, size: 10s}  # rows of both sides in the same window, or
//     between: {lower: -5s, upper: 5s}     # right.ts in [left.ts + lower, left.ts + upper]
//     join_type: inner                     # or left (unmatched left rows, right fields null)
//     where: "num >= maxn"                 # optional: a pair joins only when it holds
// Output: every left field, then every right field except a right key field
// named like its left partner; a right field whose name a left field already
// has becomes `<right node id>_<field>`. Output event time: window_end - 1
// (windowed) or max(left ts, right ts) (interval; an unmatched left row keeps
// its own). Null keys never match. Both inputs are hash-partitioned on their
// key fields, so any parallelism gives the same result.
// `where` is a condition over the output row, SQL's ON beyond the key
// equalities: a pair of rows joins only when it is true (null or an error
// counts as false), and in a left join a left row with no such pair comes out
// once with null right fields. Unlike a filter after the join, the pairs it
// rejects are never built.
#include <algorithm>
#include <set>

#include "engine/checkpoint/state_serde.h"
#include "engine/core/time.h"
#include "operators/expr_options.h"
#include "operators/join/join.h"
#include "operators/stateful.h"

namespace df::operators {

namespace {

using join::JoinConfig;
using join::JoinConfigPtr;

class PreparedJoin final : public runtime::PreparedNode, public checkpoint::StateSerde {
 public:
  explicit PreparedJoin(JoinConfigPtr config) : config_(std::move(config)) {}
  SchemaPtr output_schema() const override { return config_->output; }
  std::unique_ptr<runtime::Operator> make_operator(int, int) const override {
    if (config_->kind == JoinConfig::Kind::kWindowed) return join::make_windowed_join(config_);
    return join::make_interval_join(config_);
  }
  bool chainable() const override { return false; }
  runtime::InputPartitioning input_partitioning(size_t input) const override {
    return {runtime::InputPartitioning::Kind::kHash,
            input == 0 ? config_->left_keys : config_->right_keys};
  }
  std::optional<bool> output_has_event_time() const override { return true; }
  std::string describe() const override {
    std::string d = config_->left_outer ? "left join on " : "inner join on ";
    for (size_t i = 0; i < config_->left_keys.size(); ++i) {
      d += (i ? ", " : "") + config_->left->field(config_->left_keys[i]).name + " = " +
           config_->right->field(config_->right_keys[i]).name;
    }
    if (config_->kind == JoinConfig::Kind::kWindowed) {
      d += ", tumbling window " + format_duration(Millis(config_->window_size_ms));
    } else {
      auto offset = [](int64_t ms) {
        return (ms < 0 ? " - " : " + ") + format_duration(Millis(ms < 0 ? -ms : ms));
      };
      d += ", right.ts in [left.ts" + offset(config_->lower_ms) + ", left.ts" +
           offset(config_->upper_ms) + "]";
    }
    if (config_->where) d += ", where " + config_->where->to_string();
    return d;
  }

  // StateSerde: join.h shows the entry shapes; join_state.cc does the work.
  Result<nlohmann::json> entry_to_json(std::string_view key,
                                       std::string_view value) const override {
    return join::state_entry_to_json(*config_, key, value);
  }
  Status entry_from_json(const nlohmann::json& entry, std::string& key,
                         std::string& value) const override {
    return join::state_entry_from_json(*config_, entry, key, value);
  }
  Status check_meta(const nlohmann::json& meta) const override {
    return join::check_state_meta(*config_, meta);
  }

 private:
  JoinConfigPtr config_;
};

class JoinFactory final : public runtime::NodeFactory {
 public:
  std::vector<std::string> input_keys() const override { return {"left", "right"}; }

  runtime::PreparedNodePtr prepare(const runtime::NodeSpec& spec,
                                   const std::vector<SchemaPtr>& inputs,
                                   OptionReader& opts) const override {
    const std::string what = "join '" + spec.id + "'";
    Diagnostics& diags = opts.diags();
    const ConfigValue& node = opts.node();
    const ConfigValue* left_node = opts.get("left");
    const ConfigValue* right_node = opts.get("right");
    if (inputs.size() != 2) {
      diags.error(node.location(), what + " needs exactly two inputs, 'left' and 'right' (got " +
                                       std::to_string(inputs.size()) + ")");
      return nullptr;
    }
    auto side_name = [&](size_t i) {
      return i < spec.inputs.size() ? spec.inputs[i] : std::string(i == 0 ? "left" : "right");
    };
    auto config = std::make_shared<JoinConfig>();
    config->left = inputs[0];
    config->right = inputs[1];
    bool ok = true;

    // Event time on both sides.
    for (size_t i = 0; i < 2; ++i) {
      bool has = i < spec.input_has_event_time.size() && spec.input_has_event_time[i];
      if (has) continue;
      const ConfigValue* at = i == 0 ? left_node : right_node;
      diags.error(at ? at->location() : node.location(),
                  what + ": the " + (i == 0 ? "left" : "right") + " input '" + side_name(i) +
                      "' has no event time (give its source `event_time: {field: ...}`)");
      ok = false;
    }

    // join_type.
    const ConfigValue* type_node = opts.get("join_type");
    if (type_node) {
      const std::string t = type_node->is_scalar() ? type_node->scalar_text() : "";
      if (t == "left") {
        config->left_outer = true;
      } else if (t != "inner") {
        diags.error(type_node->location(),
                    what + ": 'join_type' must be 'inner' or 'left', got '" + t + "'");
        ok = false;
      }
    }

    const ConfigValue* where = opts.get("where");  // read once the output row is known

    // window / between: exactly one.
    const ConfigValue* window = opts.get("window");
    const ConfigValue* between = opts.get("between");
    if (window && between) {
      diags.error(between->location(), what + " takes either 'window' or 'between', not both");
      ok = false;
    } else if (!window && !between) {
      diags.error(node.location(), what +
                                       " needs 'window' (windowed join) or 'between' "
                                       "(interval join)");
      ok = false;
    } else if (window) {
      ok = read_window(*window, what, diags, *config) && ok;
    } else {
      ok = read_between(*between, what, diags, *config) && ok;
    }

    // on: key fields.
    const ConfigValue* on = opts.require("on");
    if (!on) return nullptr;
    if (!read_keys(*on, what, side_name(0), side_name(1), diags, *config)) return nullptr;
    if (!ok) return nullptr;
    build_output_schema(side_name(1), *config);
    if (where && !read_where(*where, what, diags, *config)) return nullptr;
    return std::make_shared<PreparedJoin>(std::move(config));
  }

 private:
  static bool read_window(const ConfigValue& window, const std::string& what, Diagnostics& diags,
                          JoinConfig& config) {
    config.kind = JoinConfig::Kind::kWindowed;
    if (!window.is_map()) {
      diags.error(window.location(), what +
                                         ": 'window' must be a map like "
                                         "{type: tumbling, size: 10s}");
      return false;
    }
    OptionReader r(window, what + " 'window'", diags);
    const size_t before = diags.size();
    const ConfigValue* type = r.get("type");
    auto t = r.string("type");
    auto size = r.duration("size", true);
    r.finish();
    if (t && *t != "tumbling") {
      diags.error(type->location(), what + ": a join window must be 'tumbling', got '" + *t + "'");
    }
    if (size && size->count() <= 0) {
      diags.error(window.find("size")->location(),
                  what + ": the window 'size' must be a positive duration");
    }
    if (diags.size() != before || !size) return false;
    config.window_size_ms = size->count();
    return true;
  }

  static bool read_between(const ConfigValue& between, const std::string& what, Diagnostics& diags,
                           JoinConfig& config) {
    config.kind = JoinConfig::Kind::kInterval;
    if (!between.is_map()) {
      diags.error(between.location(), what +
                                          ": 'between' must be a map like "
                                          "{lower: -5s, upper: 5s}");
      return false;
    }
    OptionReader r(between, what + " 'between'", diags);
    const size_t before = diags.size();
    auto lower = r.duration("lower", true);
    auto upper = r.duration("upper", true);
    r.finish();
    if (lower && upper && *lower > *upper) {
      diags.error(between.location(), what + ": 'between' lower (" + format_duration(*lower) +
                                          ") is after upper (" + format_duration(*upper) + ")");
    }
    if (diags.size() != before || !lower || !upper) return false;
    config.lower_ms = lower->count();
    config.upper_ms = upper->count();
    return true;
  }

  static bool read_keys(const ConfigValue& on, const std::string& what, const std::string& left_id,
                        const std::string& right_id, Diagnostics& diags, JoinConfig& config) {
    const ConfigValue* left_keys = &on;
    const ConfigValue* right_keys = &on;
    if (on.is_map()) {
      OptionReader r(on, what + " 'on'", diags);
      left_keys = r.require("left");
      right_keys = r.require("right");
      r.finish();
      if (!left_keys || !right_keys) return false;
    }
    auto l = resolve_key_fields(*left_keys, *config.left,
                                what + " 'on' (left input '" + left_id + "')", diags);
    auto r = resolve_key_fields(*right_keys, *config.right,
                                what + " 'on' (right input '" + right_id + "')", diags);
    if (!l || !r) return false;
    if (l->size() != r->size()) {
      diags.error(on.location(), what + ": 'on' names " + std::to_string(l->size()) +
                                     " left key field(s) but " + std::to_string(r->size()) +
                                     " right key field(s)");
      return false;
    }
    bool ok = true;
    for (size_t i = 0; i < l->size(); ++i) {
      const Field& lf = config.left->field((*l)[i]);
      const Field& rf = config.right->field((*r)[i]);
      if (lf.type == rf.type) continue;
      const ConfigValue* at = right_keys->is_sequence() && i < right_keys->items().size()
                                  ? &right_keys->items()[i]
                                  : right_keys;
      diags.error(at->location(),
                  what + ": key type mismatch: left '" + lf.name + "' is " +
                      std::string(type_name(lf.type)) + " but right '" + rf.name + "' is " +
                      std::string(type_name(rf.type)) +
                      " (keys must have the same type; cast one side in a map first)");
      ok = false;
    }
    if (!ok) return false;
    config.left_keys = std::move(*l);
    config.right_keys = std::move(*r);
    return true;
  }

  // `where`, bound to the output row, then again to the output fields it
  // reads (JoinConfig::where_schema).
  static bool read_where(const ConfigValue& where, const std::string& what, Diagnostics& diags,
                         JoinConfig& config) {
    auto condition = compile_option(where, *config.output, what + " 'where'", diags);
    if (!condition) return false;
    if (condition->result_type() != TypeId::kBool) {
      diags.error(where.location(), what + ": 'where' must be a condition (bool), got " +
                                        std::string(type_name(condition->result_type())));
      return false;
    }
    std::vector<Field> fields;
    for (size_t f = 0; f < config.output->size(); ++f) {
      const Field& field = config.output->field(f);
      const auto& read = condition->referenced_fields();
      if (std::find(read.begin(), read.end(), field.name) == read.end()) continue;
      fields.push_back(field);
      config.where_fields.push_back(f);
    }
    config.where_schema = make_schema(std::move(fields));
    config.where = compile_option(where, *config.where_schema, what + " 'where'", diags);
    return config.where != nullptr;
  }

  static void build_output_schema(const std::string& right_id, JoinConfig& config) {
    std::vector<Field> fields = config.left->fields();
    std::set<std::string> names;
    for (const auto& f : fields) names.insert(f.name);
    for (size_t j = 0; j < config.right->size(); ++j) {
      const Field& rf = config.right->field(j);
      bool shared_key = false;
      for (size_t p = 0; p < config.right_keys.size(); ++p) {
        if (config.right_keys[p] == j && config.left->field(config.left_keys[p]).name == rf.name) {
          shared_key = true;
        }
      }
      if (shared_key) continue;
      std::string name = rf.name;
      if (names.count(name)) {
        name = right_id + "_" + rf.name;
        for (int n = 2; names.count(name); ++n) {
          name = right_id + "_" + rf.name + "_" + std::to_string(n);
        }
      }
      names.insert(name);
      fields.push_back({name, rf.type});
      config.right_out.push_back(j);
    }
    config.output = make_schema(std::move(fields));
  }
};

}  // namespace

std::unique_ptr<runtime::NodeFactory> make_join_factory() {
  return std::make_unique<JoinFactory>();
}

}  // namespace df::operators
