#include "engine/plan/plan.h"

#include <algorithm>
#include <functional>
#include <map>
#include <regex>

#include "connectors/connectors.h"
#include "connectors/kafka/client.h"
#include "engine/checkpoint/state_serde.h"
#include "engine/runtime/dead_letter.h"
#include "operators/operators.h"

namespace df::plan {

namespace {

using runtime::NodeRole;

// A node as declared, before its factory has seen it.
struct Decl {
  std::string id;
  std::string type;
  NodeRole role = NodeRole::kSource;
  const ConfigValue* node = nullptr;
  const runtime::NodeFactory* factory = nullptr;
  std::vector<std::string> input_names;
  SourceLocation inputs_location;
  // Side output streams this node declares (e.g. late_output), by name.
  std::vector<std::pair<std::string, SourceLocation>> side_outputs;
  const ConfigValue* event_time = nullptr;  // sources: the `event_time` map
  std::optional<int> parallelism;
  std::unique_ptr<OptionReader> options;
};

const char* section_of(NodeRole role) {
  switch (role) {
    case NodeRole::kSource:
      return "sources";
    case NodeRole::kTransform:
      return "transforms";
    case NodeRole::kSink:
      return "sinks";
  }
  return "";
}

std::string join(const std::vector<std::string>& items) {
  std::string s;
  for (const auto& i : items) {
    if (!s.empty()) s += ", ";
    s += i;
  }
  return s;
}

void read_settings(OptionReader& top, PipelineSettings& s, Diagnostics& diags) {
  static const std::regex kName("[a-z0-9-]{1,63}");
  if (auto name = top.string("name", /*required=*/true)) {
    if (!std::regex_match(*name, kName)) {
      diags.error(top.get("name")->location(),
                  "pipeline name '" + *name + "' must be 1-63 characters of a-z, 0-9 and '-'");
    }
    s.name = *name;
  }
  if (auto p = top.int64("parallelism")) {
    if (*p < 1 || *p > 1024) {
      diags.error(top.get("parallelism")->location(), "parallelism must be between 1 and 1024");
    } else {
      s.parallelism = static_cast<int>(*p);
    }
  }
  top.allow("description");
  top.allow("version");
  // `healing:` belongs to engine/healing, above this layer; the CLI and the
  // server read and validate it next to the plan.
  top.allow("healing");
  if (const ConfigValue* ck = top.get("checkpoint")) {
    OptionReader r(*ck, "checkpoint", diags);
    s.checkpoint_interval = r.duration("interval");
    if (auto d = r.string("delivery")) {
      if (*d != "at_least_once" && *d != "exactly_once") {
        diags.error(r.get("delivery")->location(),
                    "checkpoint delivery must be at_least_once or exactly_once, got '" + *d + "'");
      } else {
        s.delivery = *d;
      }
    }
    if (auto t = r.duration("timeout")) {
      if (t->count() <= 0) {
        diags.error(r.get("timeout")->location(), "checkpoint timeout must be positive");
      } else {
        s.checkpoint_timeout = *t;
      }
    }
    if (auto n = r.int64("retained")) {
      if (*n < 1 || *n > 1000) {
        diags.error(r.get("retained")->location(),
                    "checkpoint retained must be between 1 and 1000");
      } else {
        s.checkpoint_retained = static_cast<int>(*n);
      }
    }
    if (auto st = r.string("storage")) s.checkpoint_storage = *st;
    if (auto c = r.boolean("compression")) s.checkpoint_compression = *c;
    r.finish();
  }
  if (const ConfigValue* dl = top.get("dead_letter")) {
    OptionReader r(*dl, "dead_letter", diags);
    if (auto sink = r.string("sink", /*required=*/true)) s.dead_letter_sink = *sink;
    if (auto rate = r.float64("max_rate")) {
      if (*rate < 0 || *rate > 1) {
        diags.error(r.get("max_rate")->location(), "dead_letter max_rate must be between 0 and 1");
      } else {
        s.dead_letter_max_rate = *rate;
      }
    }
    r.finish();
  }
}

// Reads one section (sources, transforms or sinks) into decls.
void read_section(OptionReader& top, NodeRole role, const runtime::NodeRegistry& registry,
                  const std::string& dead_letter_sink, std::vector<Decl>& decls,
                  Diagnostics& diags) {
  const char* section = section_of(role);
  const ConfigValue* list = top.get(section);
  if (!list || list->is_null()) {
    if (role != NodeRole::kTransform) {
      diags.error(top.node().location(), std::string("the pipeline needs at least one ") +
                                             (role == NodeRole::kSource ? "source" : "sink") +
                                             " under '" + section + "'");
    }
    return;
  }
  if (!list->is_sequence()) {
    diags.error(list->location(), std::string("'") + section + "' must be a list of nodes");
    return;
  }
  const std::string role_name(runtime::node_role_name(role));
  for (const ConfigValue& item : list->items()) {
    if (!item.is_map()) {
      diags.error(item.location(), "each entry of '" + std::string(section) + "' must be a map");
      continue;
    }
    Decl d;
    d.role = role;
    d.node = &item;
    const ConfigValue* id = item.find("id");
    const ConfigValue* type = item.find("type");
    d.id = id && id->is_scalar() ? id->scalar_text() : "";
    d.type = type && type->is_scalar() ? type->scalar_text() : "";
    std::string what = role_name + (d.id.empty() ? "" : " '" + d.id + "'") +
                       (d.type.empty() ? "" : " (" + d.type + ")");
    d.options = std::make_unique<OptionReader>(item, what, diags);
    OptionReader& r = *d.options;
    static const std::regex kId("[A-Za-z0-9_-]{1,63}");
    if (!r.string("id", true)) {
      // reported by the reader
    } else if (!std::regex_match(d.id, kId)) {
      diags.error(id->location(),
                  "id '" + d.id + "' must be 1-63 characters of A-Z, a-z, 0-9, '_' and '-'");
    }
    if (r.string("type", true)) {
      d.factory = registry.find(role, d.type);
      if (!d.factory) {
        auto known = registry.types(role);
        diags.error(type->location(), "unknown " + role_name + " type '" + d.type + "'" +
                                          did_you_mean(d.type, known) + " (known: " + join(known) +
                                          ")");
      }
    }
    const std::vector<std::string> input_keys =
        d.factory ? d.factory->input_keys() : std::vector<std::string>{};
    if (role == NodeRole::kSource) {
      d.event_time = r.get("event_time");
    } else if (!input_keys.empty()) {
      // Inputs with roles (a join's left and right), in the factory's order.
      for (const auto& key : input_keys) {
        if (const ConfigValue* v = r.require(key)) {
          auto name = v->as_string();
          if (!name.ok()) {
            diags.error(v->location(), what + " '" + key + "' must name one node");
          } else {
            d.input_names.push_back(*name);
            d.inputs_location = v->location();
          }
        }
      }
    } else {
      const ConfigValue* input = r.get("input");
      const ConfigValue* inputs = r.get("inputs");
      if (input && inputs) {
        diags.error(inputs->location(), what + " takes 'input' or 'inputs', not both");
      } else if (role == NodeRole::kSink && !dead_letter_sink.empty() && d.id == dead_letter_sink) {
        // The dead-letter sink reads every task's dead letters, nothing else.
        if (input || inputs) {
          diags.error((input ? input : inputs)->location(),
                      what +
                          " is the dead_letter sink: it receives the pipeline's dead letters "
                          "and takes no input");
        }
      } else if (!input && !inputs) {
        diags.error(item.location(), what + " needs 'input' (or 'inputs' for several)");
      } else {
        const ConfigValue* v = input ? input : inputs;
        auto names = v->as_string_list();
        if (!names.ok() || names->empty()) {
          diags.error(v->location(), what + " 'input' must name a node or list node ids");
        } else {
          d.input_names = std::move(names).value();
          d.inputs_location = v->location();
        }
      }
    }
    if (d.factory) {
      for (const auto& key : d.factory->side_output_keys()) {
        const ConfigValue* v = r.get(key);
        if (!v) continue;
        auto name = v->as_string();
        if (!name.ok()) {
          diags.error(v->location(), what + " '" + key + "' must be a stream name");
        } else {
          d.side_outputs.emplace_back(*name, v->location());
        }
      }
    }
    if (auto p = r.int64("parallelism")) {
      if (*p < 1 || *p > 1024) {
        diags.error(r.get("parallelism")->location(),
                    what + " parallelism must be between 1 and 1024");
      } else {
        d.parallelism = static_cast<int>(*p);
      }
    }
    decls.push_back(std::move(d));
  }
}

// `event_time: {field, max_out_of_orderness, idle_timeout}` of a source.
std::optional<runtime::EventTimeSpec> read_event_time(const ConfigValue& node,
                                                      const std::string& what, const Schema& schema,
                                                      Diagnostics& diags) {
  OptionReader r(node, what + " event_time", diags);
  runtime::EventTimeSpec spec;
  bool ok = true;
  if (auto field = r.string("field", /*required=*/true)) {
    auto index = schema.index_of(*field);
    if (!index) {
      std::vector<std::string> names;
      for (const auto& f : schema.fields()) names.push_back(f.name);
      diags.error(r.get("field")->location(), what + " event_time field '" + *field +
                                                  "' is not in its schema (fields: " + join(names) +
                                                  ")");
      ok = false;
    } else if (schema.field(*index).type != TypeId::kTimestamp &&
               schema.field(*index).type != TypeId::kInt64) {
      diags.error(r.get("field")->location(),
                  what + " event_time field '" + *field +
                      "' must be a timestamp or int64 (ms), not " +
                      std::string(type_name(schema.field(*index).type)));
      ok = false;
    } else {
      spec.field = *index;
    }
  } else {
    ok = false;
  }
  if (auto bound = r.duration("max_out_of_orderness")) {
    if (bound->count() < 0) {
      diags.error(r.get("max_out_of_orderness")->location(),
                  what + " max_out_of_orderness must not be negative");
      ok = false;
    }
    spec.max_out_of_orderness = *bound;
  }
  if (auto idle = r.duration("idle_timeout")) {
    if (idle->count() <= 0) {
      diags.error(r.get("idle_timeout")->location(), what + " idle_timeout must be positive");
      ok = false;
    }
    spec.idle_timeout = *idle;
  }
  r.finish();
  if (!ok) return std::nullopt;
  return spec;
}

// Projection pushdown: works out, from the sinks up, which fields of each
// stream some node reads (PreparedNode::input_fields_read, hash keys of
// exchanges, a source's event-time field), and swaps each node whose output
// is read in part for one that fills only those fields where it can
// (PreparedNode::project: a source, a map). `nodes` are in topological
// order.
void push_down_projections(std::vector<LogicalNode>& nodes) {
  // read[i][port]: the fields of node i's output `port` that are read.
  std::vector<std::vector<runtime::FieldMask>> read(nodes.size());
  for (size_t i = 0; i < nodes.size(); ++i) {
    const LogicalNode& n = nodes[i];
    if (!n.output_schema) continue;
    read[i].emplace_back(n.output_schema->size(), false);
    for (const runtime::SideOutput& side : n.prepared->side_outputs()) {
      read[i].emplace_back(side.schema->size(), false);
    }
  }
  for (size_t i = nodes.size(); i-- > 0;) {
    const LogicalNode& n = nodes[i];
    const runtime::FieldMask none;
    const runtime::FieldMask& output_read = read[i].empty() ? none : read[i][0];
    for (size_t k = 0; k < n.inputs.size(); ++k) {
      runtime::FieldMask& up = read[n.inputs[k]][n.input_ports[k]];
      std::optional<runtime::FieldMask> used = n.prepared->input_fields_read(k, output_read);
      if (!used || used->size() != up.size()) used = runtime::FieldMask(up.size(), true);
      for (size_t f : n.prepared->input_partitioning(k).key_fields) (*used)[f] = true;
      for (size_t f = 0; f < up.size(); ++f) up[f] = up[f] || (*used)[f];
    }
  }
  for (size_t i = 0; i < nodes.size(); ++i) {
    LogicalNode& n = nodes[i];
    // A sink has no output; project() names only a node's main output, so a
    // node with side outputs keeps every field.
    if (read[i].size() != 1) continue;
    runtime::FieldMask& used = read[i][0];
    if (n.event_time) used[n.event_time->field] = true;
    if (std::find(used.begin(), used.end(), false) == used.end()) continue;
    if (runtime::PreparedNodePtr projected = n.prepared->project(used)) {
      n.prepared = std::move(projected);
    }
  }
}

}  // namespace

std::vector<checkpoint::NodeView> checkpoint_node_views(const Plan& plan) {
  std::vector<checkpoint::NodeView> views;
  for (const auto& n : plan.nodes) {
    checkpoint::NodeView v;
    v.id = n.id;
    v.type = n.type;
    v.parallelism = n.parallelism;
    v.serde = dynamic_cast<const checkpoint::StateSerde*>(n.prepared.get());
    views.push_back(std::move(v));
  }
  return views;
}

const runtime::NodeRegistry& builtin_registry() {
  static const runtime::NodeRegistry registry = make_registry(ConfigValue(), ConfigValue());
  return registry;
}

runtime::NodeRegistry make_registry(const ConfigValue& kafka_source_defaults,
                                    const ConfigValue& kafka_sink_defaults) {
  runtime::NodeRegistry r;
  operators::register_operators(r);
  connectors::register_connectors(
      r, connectors::kafka::KafkaDefaults{kafka_source_defaults, kafka_sink_defaults});
  return r;
}

Result<std::shared_ptr<const Plan>> build_plan(const ConfigValue& document,
                                               const runtime::NodeRegistry& registry,
                                               const PlanOptions& options) {
  Diagnostics diags;
  if (!document.is_map()) {
    diags.error(document.location(),
                "a pipeline file must be a map with name, sources, transforms and sinks");
    return diags.to_status();
  }
  auto plan = std::make_shared<Plan>();
  OptionReader top(document, "the pipeline", diags);
  read_settings(top, plan->settings, diags);
  if (options.parallelism_override > 0) plan->settings.parallelism = options.parallelism_override;

  std::vector<Decl> decls;
  for (NodeRole role : {NodeRole::kSource, NodeRole::kTransform, NodeRole::kSink}) {
    read_section(top, role, registry, plan->settings.dead_letter_sink, decls, diags);
  }
  top.finish();

  // Ids and side-output names are one namespace of streams; then inputs resolve.
  struct Stream {
    size_t node;
    std::string side;  // empty: the node's main output
  };
  std::map<std::string, Stream> index;
  auto first_location = [&](const Stream& st) {
    if (st.side.empty()) return decls[st.node].node->find("id")->location();
    for (const auto& [name, loc] : decls[st.node].side_outputs) {
      if (name == st.side) return loc;
    }
    return decls[st.node].node->location();
  };
  auto declare = [&](const std::string& name, Stream st, const SourceLocation& loc) {
    auto [it, inserted] = index.emplace(name, st);
    if (!inserted) {
      diags.error(loc, "duplicate id '" + name + "' (first defined at " +
                           first_location(it->second).to_string() + ")");
    }
  };
  for (size_t i = 0; i < decls.size(); ++i) {
    if (!decls[i].id.empty()) declare(decls[i].id, {i, ""}, decls[i].node->find("id")->location());
    for (const auto& [name, loc] : decls[i].side_outputs) declare(name, {i, name}, loc);
  }
  std::vector<std::string> known_ids;
  for (const auto& [id, st] : index) known_ids.push_back(id);
  std::vector<std::vector<size_t>> inputs(decls.size());
  std::vector<std::vector<std::string>> input_sides(decls.size());
  std::vector<std::vector<size_t>> consumers(decls.size());
  std::vector<bool> broken(decls.size(), false);  // a node that cannot be prepared
  for (size_t i = 0; i < decls.size(); ++i) {
    const Decl& d = decls[i];
    if (!d.factory) broken[i] = true;
    for (const auto& name : d.input_names) {
      auto it = index.find(name);
      if (it == index.end()) {
        diags.error(d.inputs_location, d.options->what() + " reads unknown input '" + name + "'" +
                                           did_you_mean(name, known_ids));
        broken[i] = true;
      } else if (decls[it->second.node].role == NodeRole::kSink) {
        diags.error(d.inputs_location,
                    d.options->what() + " reads '" + name + "', which is a sink and has no output");
        broken[i] = true;
      } else if (it->second.node == i) {
        diags.error(d.inputs_location, d.options->what() + " reads its own output");
        broken[i] = true;
      } else {
        inputs[i].push_back(it->second.node);
        input_sides[i].push_back(it->second.side);
        consumers[it->second.node].push_back(i);
      }
    }
  }
  if (!plan->settings.dead_letter_sink.empty()) {
    auto it = index.find(plan->settings.dead_letter_sink);
    if (it == index.end() || !it->second.side.empty() ||
        decls[it->second.node].role != NodeRole::kSink) {
      diags.error(top.node().find("dead_letter")->location(),
                  "dead_letter sink '" + plan->settings.dead_letter_sink +
                      "' is not a sink of this pipeline");
    }
  }

  // Topological order (Kahn); what remains sits on or behind a cycle.
  std::vector<size_t> indegree(decls.size());
  for (size_t i = 0; i < decls.size(); ++i) indegree[i] = inputs[i].size();
  std::vector<size_t> order;
  for (size_t i = 0; i < decls.size(); ++i) {
    if (indegree[i] == 0) order.push_back(i);
  }
  for (size_t k = 0; k < order.size(); ++k) {
    for (size_t c : consumers[order[k]]) {
      if (--indegree[c] == 0) order.push_back(c);
    }
  }
  if (order.size() != decls.size()) {
    // Report each cycle once, walking inputs from a node left over.
    std::vector<int> reported(decls.size(), 0);
    for (size_t start = 0; start < decls.size(); ++start) {
      if (indegree[start] == 0 || reported[start]) continue;
      std::vector<size_t> path;
      std::vector<int> pos(decls.size(), -1);
      size_t n = start;
      while (pos[n] < 0 && !reported[n]) {
        pos[n] = static_cast<int>(path.size());
        path.push_back(n);
        size_t next = n;
        for (size_t in : inputs[n]) {
          if (indegree[in] != 0) {
            next = in;
            break;
          }
        }
        if (next == n) break;
        n = next;
      }
      if (pos[n] >= 0 && !reported[n]) {
        std::vector<size_t> cycle(path.begin() + pos[n], path.end());
        std::reverse(cycle.begin(), cycle.end());  // upstream first
        std::string text;
        for (size_t c : cycle) text += decls[c].id + " -> ";
        text += decls[cycle.front()].id;
        diags.error(decls[cycle.front()].node->location(), "cycle: " + text);
        for (size_t c : cycle) reported[c] = 1;
      }
      for (size_t p : path) reported[p] = std::max(reported[p], 1);
    }
    for (size_t i = 0; i < decls.size(); ++i) {
      if (indegree[i] != 0) broken[i] = true;
    }
  }
  // Sinks that no source reaches.
  {
    std::vector<bool> reached(decls.size(), false);
    std::vector<size_t> stack;
    for (size_t i = 0; i < decls.size(); ++i) {
      if (decls[i].role == NodeRole::kSource) {
        reached[i] = true;
        stack.push_back(i);
      }
      // Every task feeds the dead-letter sink.
      if (!decls[i].id.empty() && decls[i].id == plan->settings.dead_letter_sink) reached[i] = true;
    }
    while (!stack.empty()) {
      size_t n = stack.back();
      stack.pop_back();
      for (size_t c : consumers[n]) {
        if (!reached[c]) {
          reached[c] = true;
          stack.push_back(c);
        }
      }
    }
    for (size_t i = 0; i < decls.size(); ++i) {
      if (decls[i].role == NodeRole::kSink && !reached[i] && !decls[i].id.empty()) {
        diags.error(decls[i].node->location(),
                    "sink '" + decls[i].id + "' is not reachable from any source");
      }
    }
  }

  // Prepare every node whose inputs prepared, in topological order.
  std::vector<LogicalNode> nodes(decls.size());
  std::vector<bool> attempted(decls.size(), false);
  // The schema of stream (node, side); nullptr when that node did not prepare.
  auto stream_schema = [&](size_t node, const std::string& side, size_t& port) -> SchemaPtr {
    port = 0;
    const LogicalNode& up = nodes[node];
    if (!up.prepared) return nullptr;
    if (side.empty()) return up.output_schema;
    auto outs = up.prepared->side_outputs();
    for (size_t k = 0; k < outs.size(); ++k) {
      if (outs[k].name == side) {
        port = k + 1;
        return outs[k].schema;
      }
    }
    diags.error(decls[node].node->location(),
                decls[node].options->what() + " does not produce the stream '" + side + "'");
    return nullptr;
  };
  for (size_t i : order) {
    Decl& d = decls[i];
    LogicalNode& n = nodes[i];
    n.id = d.id;
    n.type = d.type;
    n.role = d.role;
    n.location = d.node->location();
    n.inputs = inputs[i];
    n.parallelism = options.parallelism_override > 0
                        ? options.parallelism_override
                        : d.parallelism.value_or(plan->settings.parallelism);
    if (broken[i]) continue;
    std::vector<SchemaPtr> input_schemas;
    bool inputs_ok = true;
    bool inputs_have_event_time = true;
    runtime::NodeSpec spec;
    for (size_t k = 0; k < inputs[i].size(); ++k) {
      size_t port = 0;
      SchemaPtr schema = stream_schema(inputs[i][k], input_sides[i][k], port);
      if (!schema) inputs_ok = false;
      input_schemas.push_back(schema);
      n.input_ports.push_back(port);
      bool et = nodes[inputs[i][k]].has_event_time;
      spec.input_has_event_time.push_back(et);
      inputs_have_event_time = inputs_have_event_time && et;
    }
    if (!inputs_ok) continue;
    if (d.role == NodeRole::kSink && inputs[i].empty() && d.id == plan->settings.dead_letter_sink) {
      input_schemas.push_back(runtime::dead_letter_schema());
      spec.input_has_event_time.push_back(false);
    }
    spec.id = d.id;
    spec.type = d.type;
    spec.role = d.role;
    spec.config = d.node;
    spec.inputs = d.input_names;
    spec.parallelism = n.parallelism;
    spec.batch_size = options.batch_size;
    spec.pipeline_name = plan->settings.name;
    spec.delivery = plan->settings.delivery;
    spec.has_dead_letter_sink = !plan->settings.dead_letter_sink.empty();
    attempted[i] = true;
    n.prepared = d.factory->prepare(spec, input_schemas, *d.options);
    if (!n.prepared) continue;
    n.output_schema = n.prepared->output_schema();
    if (d.role == NodeRole::kSource) {
      if (d.event_time) {
        n.event_time = read_event_time(*d.event_time, d.options->what(), *n.output_schema, diags);
        n.has_event_time = n.event_time.has_value();
      }
    } else {
      n.has_event_time = n.prepared->output_has_event_time().value_or(inputs_have_event_time);
    }
    if (auto max = n.prepared->max_parallelism(); max && n.parallelism > *max) {
      if (d.parallelism && *d.parallelism > *max) {
        diags.error(d.node->location(),
                    d.options->what() + " runs with parallelism at most " + std::to_string(*max));
      }
      n.parallelism = *max;
    }
  }
  for (size_t i = 0; i < decls.size(); ++i) {
    if (attempted[i]) decls[i].options->finish();
  }
  if (!diags.empty()) {
    diags.sort_by_location();
    return diags.to_status();
  }

  // Logical nodes in topological order, inputs renumbered.
  std::vector<size_t> position(decls.size());
  for (size_t k = 0; k < order.size(); ++k) position[order[k]] = k;
  for (size_t i : order) {
    LogicalNode n = std::move(nodes[i]);
    for (auto& in : n.inputs) in = position[in];
    plan->nodes.push_back(std::move(n));
  }
  push_down_projections(plan->nodes);
  std::vector<size_t> consumer_count(plan->nodes.size(), 0);
  for (const auto& n : plan->nodes) {
    for (size_t in : n.inputs) ++consumer_count[in];
  }

  // Physical plan: chain 1:1 nodes into their single input's task.
  runtime::PhysicalPlan& phys = plan->physical;
  phys.pipeline_name = plan->settings.name;
  std::vector<size_t> vertex_of(plan->nodes.size());
  for (size_t i = 0; i < plan->nodes.size(); ++i) {
    const LogicalNode& n = plan->nodes[i];
    bool chain = false;
    if (n.role != NodeRole::kSource && n.inputs.size() == 1) {
      const LogicalNode& up = plan->nodes[n.inputs[0]];
      // A node with side outputs ends its chain: side rows leave a task only at its tail.
      chain = consumer_count[n.inputs[0]] == 1 && n.input_ports[0] == 0 &&
              up.prepared->side_outputs().empty() && up.parallelism == n.parallelism &&
              n.prepared->chainable() &&
              n.prepared->input_partitioning(0).kind == runtime::InputPartitioning::Kind::kAny;
    }
    runtime::PlanNode pn{n.id, n.type, n.role, n.prepared, n.event_time};
    if (chain) {
      vertex_of[i] = vertex_of[n.inputs[0]];
      phys.vertices[vertex_of[i]].chain.push_back(std::move(pn));
      continue;
    }
    vertex_of[i] = phys.vertices.size();
    runtime::PhysicalVertex v;
    v.chain.push_back(std::move(pn));
    v.parallelism = n.parallelism;
    phys.vertices.push_back(std::move(v));
    for (size_t k = 0; k < n.inputs.size(); ++k) {
      const LogicalNode& up = plan->nodes[n.inputs[k]];
      auto part = n.prepared->input_partitioning(k);
      runtime::PhysicalEdge e;
      e.from = vertex_of[n.inputs[k]];
      e.to = vertex_of[i];
      e.to_input = k;
      e.from_port = n.input_ports[k];
      switch (part.kind) {
        case runtime::InputPartitioning::Kind::kHash:
          e.partitioning = runtime::Partitioning::kHash;
          e.hash_fields = part.key_fields;
          break;
        case runtime::InputPartitioning::Kind::kBroadcast:
          e.partitioning = runtime::Partitioning::kBroadcast;
          break;
        case runtime::InputPartitioning::Kind::kAny:
          e.partitioning = up.parallelism == n.parallelism ? runtime::Partitioning::kForward
                                                           : runtime::Partitioning::kRebalance;
          break;
      }
      phys.edges.push_back(std::move(e));
    }
  }
  // The dead-letter sink reads the dead letters of every other task.
  if (!plan->settings.dead_letter_sink.empty()) {
    for (size_t i = 0; i < plan->nodes.size(); ++i) {
      if (plan->nodes[i].id != plan->settings.dead_letter_sink) continue;
      const size_t dlq = vertex_of[i];
      size_t input = 0;
      for (size_t v = 0; v < phys.vertices.size(); ++v) {
        if (v == dlq) continue;
        runtime::PhysicalEdge e;
        e.from = v;
        e.to = dlq;
        e.to_input = input++;
        e.from_port = runtime::kDeadLetterPort;
        e.partitioning = runtime::Partitioning::kRebalance;
        phys.edges.push_back(std::move(e));
      }
    }
  }
  return std::shared_ptr<const Plan>(std::move(plan));
}

std::string Plan::describe() const {
  std::string s =
      "pipeline " + settings.name + " (parallelism " + std::to_string(settings.parallelism) + ")\n";
  for (const auto& n : nodes) {
    s += "  " + std::string(runtime::node_role_name(n.role)) + " " + n.id + " (" + n.type + ")";
    if (!n.inputs.empty()) {
      s += " <- ";
      for (size_t k = 0; k < n.inputs.size(); ++k) s += (k ? ", " : "") + nodes[n.inputs[k]].id;
    }
    if (n.parallelism != settings.parallelism) s += " x" + std::to_string(n.parallelism);
    std::string d = n.prepared->describe();
    if (!d.empty()) s += ": " + d;
    if (n.output_schema) s += "\n      " + n.output_schema->to_string();
    if (n.event_time) {
      s += "\n      event time: " + n.output_schema->field(n.event_time->field).name +
           ", max out-of-orderness " + format_duration(n.event_time->max_out_of_orderness);
      if (n.event_time->idle_timeout)
        s += ", idle after " + format_duration(*n.event_time->idle_timeout);
    }
    s += "\n";
  }
  s += "tasks:\n";
  for (size_t v = 0; v < physical.vertices.size(); ++v) {
    const auto& vert = physical.vertices[v];
    s += "  [" + std::to_string(v + 1) + "] " + vert.name() + " x" +
         std::to_string(vert.parallelism);
    for (const auto& e : physical.edges) {
      if (e.to != v) continue;
      static const char* kNames[] = {"forward", "rebalance", "hash", "broadcast"};
      s += " <- [" + std::to_string(e.from + 1) + "] " + kNames[static_cast<int>(e.partitioning)];
      if (e.from_port == runtime::kDeadLetterPort) {
        s += " (dead letters)";
      } else if (e.from_port) {
        s += " (side output " + std::to_string(e.from_port) + ")";
      }
    }
    s += "\n";
  }
  return s;
}

}  // namespace df::plan
