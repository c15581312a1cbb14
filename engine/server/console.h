// The web console (docs/console.md): a single-page app served by the API
// listener itself, plus the two read-only endpoints only it needs.
//
//  - Static assets: every file of web/console, embedded in the binary at
//    build time (engine/server/CMakeLists.txt generates console_assets.cc),
//    served at `/` (index.html) and `/console/<file>` with Content-Type,
//    ETag (If-None-Match: 304) and Cache-Control: no-cache. They stay open:
//    the page itself asks for credentials when the API answers 401.
//  - GET /api/v1/pipelines/{name}/graph: the DAG (nodes with role, type,
//    parallelism and inputs) with live numbers while it runs.
//  - GET /api/v1/pipelines/{name}/history: the MetricsHistory samples.
//
// Ownership: the routes borrow the manager and the history, which must
// outlive the HttpServer serving them. Threading: handlers are thread-safe.
#pragma once

#include <memory>
#include <string_view>
#include <vector>

#include "engine/server/auth.h"
#include "engine/server/http.h"
#include "engine/server/metrics_history.h"
#include "engine/server/pipeline_manager.h"

namespace df::server {

// One embedded file of web/console (the generated console_assets.cc).
struct ConsoleAsset {
  std::string_view name;  // "index.html", "app.js", ...
  std::string_view content;
};
const std::vector<ConsoleAsset>& console_assets();

class ConsoleApi {
 public:
  ConsoleApi(PipelineManager& manager, const MetricsHistory& history)
      : manager_(manager), history_(history) {}

  // One API route of the console and the action a caller needs (the same
  // Actions as Api::Route, so one AccessControl guards both).
  struct Route {
    const char* method;
    const char* pattern;
    Action action;
    HttpResponse (ConsoleApi::*handler)(const HttpRequest&) const;
  };
  // The console's API routes, in the order add_console_routes adds them.
  static const std::vector<Route>& routes();

  // {"pipeline", "running", "run", "time", "nodes": [{"id", "role", "type",
  // "parallelism", "inputs", live numbers...}], "edges": [...],
  // "channels": {...} or null} (docs/rest-api.md).
  HttpResponse graph(const HttpRequest& request) const;
  // {"pipeline", "interval_ms", "samples": [...]}, oldest first.
  HttpResponse history(const HttpRequest& request) const;

 private:
  PipelineManager& manager_;
  const MetricsHistory& history_;
};

// The asset routes (open) and the console's API routes (each behind
// `access`; AccessControl::open(): none).
void add_console_routes(Router& router, PipelineManager& manager, const MetricsHistory& history,
                        std::shared_ptr<AccessControl> access = AccessControl::open());

}  // namespace df::server
