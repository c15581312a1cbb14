#include "engine/server/console.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "engine/core/time.h"

namespace df::server {

namespace {

using nlohmann::json;

// Content-Type by file extension (the console ships nothing else).
std::string content_type(std::string_view name) {
  static const std::map<std::string_view, std::string_view> kTypes = {
      {".html", "text/html; charset=utf-8"},
      {".js", "text/javascript; charset=utf-8"},
      {".css", "text/css; charset=utf-8"},
      {".svg", "image/svg+xml"},
      {".json", "application/json"},
      {".png", "image/png"},
      {".ico", "image/x-icon"},
      {".txt", "text/plain; charset=utf-8"}};
  const size_t dot = name.rfind('.');
  if (dot != std::string_view::npos) {
    auto it = kTypes.find(name.substr(dot));
    if (it != kTypes.end()) return std::string(it->second);
  }
  return "application/octet-stream";
}

// A strong ETag from the content (FNV-1a 64): assets change only with the binary.
std::string content_etag(std::string_view content) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : content) {
    h ^= c;
    h *= 1099511628211ull;
  }
  char buf[24];
  std::snprintf(buf, sizeof buf, "\"%016llx\"", static_cast<unsigned long long>(h));
  return buf;
}

// One asset, ready to serve.
struct ServedAsset {
  std::string content_type;
  std::string etag;
  std::string_view content;
};

HttpResponse serve(const ServedAsset& asset, const HttpRequest& request) {
  HttpResponse r;
  r.headers["etag"] = asset.etag;
  // Revalidated on every load (names carry no hash), answered 304 while unchanged.
  r.headers["cache-control"] = "no-cache";
  r.headers["x-content-type-options"] = "nosniff";
  const std::string& if_none_match = request.header("if-none-match");
  if (!if_none_match.empty() &&
      (if_none_match == "*" || if_none_match.find(asset.etag) != std::string::npos)) {
    r.status = 304;
    r.headers["content-type"] = asset.content_type;
    return r;
  }
  r.status = 200;
  r.headers["content-type"] = asset.content_type;
  if (asset.content_type.rfind("text/html", 0) == 0) {
    // The page loads only its own scripts and styles and talks only to this server.
    r.headers["content-security-policy"] =
        "default-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'";
    r.headers["x-frame-options"] = "DENY";
  }
  r.body = std::string(asset.content);
  return r;
}

const std::string& param(const HttpRequest& request, const std::string& name) {
  static const std::string kEmpty;
  auto it = request.path_params.find(name);
  return it == request.path_params.end() ? kEmpty : it->second;
}

std::optional<HttpResponse> refuse_query(const HttpRequest& request) {
  if (request.query.empty()) return std::nullopt;
  std::vector<std::string> problems;
  for (const auto& [key, value] : request.query) {
    problems.push_back("unknown query parameter '" + key + "'");
  }
  return HttpResponse::error(400, "bad query parameter", problems);
}

json optional_number(const std::optional<double>& v) { return v ? json(*v) : json(nullptr); }

// Backpressure of an edge, from how often its upstream node found an output
// over the threshold within the last interval.
std::string backpressure_level(double events_per_second) {
  if (events_per_second <= 0) return "none";
  return events_per_second < 5 ? "low" : "high";
}

// What the scheduler knows beyond PipelineManager::snapshot().
struct SchedulerView {
  bool seen = false;
  std::map<std::string, int64_t> watermark_ms;
  runtime::ChannelStats channels;
};

}  // namespace

const std::vector<ConsoleApi::Route>& ConsoleApi::routes() {
  static const std::vector<Route> kRoutes = {
      {"GET", "/api/v1/pipelines/{name}/graph", Action::kPipelineRead, &ConsoleApi::graph},
      {"GET", "/api/v1/pipelines/{name}/history", Action::kPipelineRead, &ConsoleApi::history},
  };
  return kRoutes;
}

HttpResponse ConsoleApi::graph(const HttpRequest& request) const {
  if (auto bad = refuse_query(request)) return *bad;
  const std::string& name = param(request, "name");
  SchedulerView live;
  auto plan = manager_.inspect(name, [&live](const runtime::Scheduler& scheduler) {
    live.seen = true;
    for (const auto& m : scheduler.metrics().nodes) {
      live.watermark_ms[m->id] = m->watermark_ms.load(std::memory_order_relaxed);
    }
    live.channels = scheduler.channel_stats();
  });
  if (!plan.ok()) return HttpResponse::from_status(plan.status());

  std::optional<PipelineSnapshot> snap;
  for (PipelineSnapshot& s : manager_.snapshot()) {
    if (s.name == name) snap = std::move(s);
  }
  const bool running = snap && snap->running;
  const std::map<std::string, NodeRates> rates =
      running ? history_.node_rates(name) : std::map<std::string, NodeRates>{};
  const int64_t now = now_ms();

  json nodes = json::array();
  json edges = json::array();
  for (const plan::LogicalNode& n : (*plan)->nodes) {
    json node = {{"id", n.id},
                 {"role", std::string(runtime::node_role_name(n.role))},
                 {"type", n.type},
                 {"parallelism", n.parallelism}};
    json inputs = json::array();
    for (size_t i = 0; i < n.inputs.size(); ++i) {
      const std::string& from = (*plan)->nodes[n.inputs[i]].id;
      inputs.push_back(from);
      const size_t port = i < n.input_ports.size() ? n.input_ports[i] : 0;
      json edge = {{"from", from}, {"to", n.id}, {"port", port}};
      if (running) {
        auto r = rates.find(from);
        const double bp = r == rates.end() ? 0.0 : r->second.backpressure_per_second;
        edge["backpressure_per_second"] = bp;
        edge["backpressure"] = backpressure_level(bp);
      } else {
        edge["backpressure_per_second"] = nullptr;
        edge["backpressure"] = nullptr;
      }
      edges.push_back(std::move(edge));
    }
    node["inputs"] = std::move(inputs);

    const NodeSnapshot* counters = nullptr;
    if (running) {
      for (const NodeSnapshot& s : snap->nodes) {
        if (s.id == n.id) counters = &s;
      }
    }
    if (counters) {
      node["rows_in"] = counters->rows_in;
      node["rows_out"] = counters->rows_out;
      node["data_errors"] = counters->data_errors;
      node["backpressure_events"] = counters->backpressure_events;
    } else {
      node["rows_in"] = node["rows_out"] = node["data_errors"] = node["backpressure_events"] =
          nullptr;
    }
    auto r = running ? rates.find(n.id) : rates.end();
    if (r != rates.end()) {
      node["rows_in_per_second"] = r->second.rows_in_per_second;
      node["rows_out_per_second"] = r->second.rows_out_per_second;
      node["backpressure_per_second"] = r->second.backpressure_per_second;
      node["latency_p99_seconds"] = optional_number(r->second.latency_p99_seconds);
    } else {
      node["rows_in_per_second"] = node["rows_out_per_second"] = node["backpressure_per_second"] =
          node["latency_p99_seconds"] = nullptr;
    }
    auto wm = live.watermark_ms.find(n.id);
    // INT64_MIN: none yet; INT64_MAX: the end of the input.
    if (running && wm != live.watermark_ms.end() && wm->second != INT64_MIN &&
        wm->second != INT64_MAX) {
      node["watermark"] = format_timestamp(wm->second);
      node["watermark_lag_ms"] = std::max<int64_t>(0, now - wm->second);
    } else {
      node["watermark"] = node["watermark_lag_ms"] = nullptr;
    }
    nodes.push_back(std::move(node));
  }

  json channels = nullptr;
  if (running && live.seen) {
    const runtime::ChannelStats& c = live.channels;
    channels = {{"channels", c.channels},
                {"buffered_rows", c.buffered_rows},
                {"max_channel_rows", c.max_channel_rows},
                {"high_water_rows", c.high_water_rows},
                {"capacity_rows", c.capacity_rows},
                {"threshold_rows", c.threshold_rows},
                {"fill", c.capacity_rows ? static_cast<double>(c.max_channel_rows) /
                                               static_cast<double>(c.capacity_rows)
                                         : 0.0}};
  }
  json body = {{"pipeline", name},
               {"running", running},
               {"run", snap && !snap->run_id.empty() ? json(snap->run_id) : json(nullptr)},
               {"time", format_timestamp(now)},
               {"nodes", std::move(nodes)},
               {"edges", std::move(edges)},
               {"channels", std::move(channels)}};
  return HttpResponse::json(200, body.dump());
}

HttpResponse ConsoleApi::history(const HttpRequest& request) const {
  if (auto bad = refuse_query(request)) return *bad;
  const std::string& name = param(request, "name");
  auto view = manager_.get(name);
  if (!view.ok()) return HttpResponse::from_status(view.status());
  json samples = json::array();
  for (const HistorySample& s : history_.samples(name)) {
    samples.push_back(
        {{"time", format_timestamp(s.time_ms)},
         {"time_ms", s.time_ms},
         {"running", s.running},
         {"rows_per_second", s.rows_per_second},
         {"backpressure_per_second", s.backpressure_per_second},
         {"latency_p50_seconds", optional_number(s.latency_p50_seconds)},
         {"latency_p99_seconds", optional_number(s.latency_p99_seconds)},
         {"checkpoint_seconds", optional_number(s.checkpoint_seconds)},
         {"checkpoint_bytes", s.checkpoint_seconds ? json(s.checkpoint_bytes) : json(nullptr)}});
  }
  const HistoryOptions& o = history_.options();
  json body = {{"pipeline", name},
               {"interval_ms", o.interval.count()},
               {"window_seconds", o.interval.count() * static_cast<int64_t>(o.capacity) / 1000},
               {"samples", std::move(samples)}};
  return HttpResponse::json(200, body.dump());
}

void add_console_routes(Router& router, PipelineManager& manager, const MetricsHistory& history,
                        std::shared_ptr<AccessControl> access) {
  auto assets = std::make_shared<std::map<std::string, ServedAsset, std::less<>>>();
  for (const ConsoleAsset& a : console_assets()) {
    (*assets)[std::string(a.name)] = {content_type(a.name), content_etag(a.content), a.content};
  }
  router.add("GET", "/", [assets](const HttpRequest& request) {
    auto it = assets->find("index.html");
    if (it == assets->end()) return HttpResponse::error(404, "the console is not built in");
    return serve(it->second, request);
  });
  router.add("GET", "/console/{file}", [assets](const HttpRequest& request) {
    auto it = assets->find(param(request, "file"));
    if (it == assets->end()) {
      return HttpResponse::error(404, "no console file '" + param(request, "file") + "'");
    }
    return serve(it->second, request);
  });

  auto api = std::make_shared<ConsoleApi>(manager, history);
  for (const ConsoleApi::Route& route : ConsoleApi::routes()) {
    auto handler = route.handler;
    router.add(route.method, route.pattern,
               access->guard(route.action, [api, handler](const HttpRequest& request) {
                 return ((*api).*handler)(request);
               }));
  }
}

}  // namespace df::server
