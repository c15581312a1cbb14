// The REST API under /api/v1 (docs/rest-api.md, DESIGN §8): one handler per
// route over a PipelineManager, JSON responses, errors as
// {"error", "details"}; plus the WebSocket route /api/v1/runs/{id}/stream,
// which streams a run's status changes, healing events and log lines.
//
// Ownership: Api borrows the manager, which must outlive it and every
// WebSocket it serves (stop the HttpServer before destroying the manager).
// Every route declares the Action (server_config.h) a caller needs; with
// an AccessControl (auth.h) each route checks it (401/403/429) and every
// mutating call leaves an audit line.
//
// Threading: handlers are thread-safe (the manager is); they never wait for
// a run. Request bodies over the size limit are refused (413) by the
// HttpServer before a handler runs.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/server/auth.h"
#include "engine/server/http.h"
#include "engine/server/pipeline_manager.h"

namespace df::server {

class Api {
 public:
  // `access` answers whoami (AccessControl::open(): authentication off).
  explicit Api(PipelineManager& manager,
               std::shared_ptr<AccessControl> access = AccessControl::open())
      : manager_(manager), access_(std::move(access)) {}
  Api(const Api&) = delete;
  Api& operator=(const Api&) = delete;

  // One route: "METHOD /api/v1/...", the action a caller needs (before the
  // handler, so a route cannot be listed without one), and its handler.
  struct Route {
    const char* method;
    const char* pattern;
    Action action;
    HttpResponse (Api::*handler)(const HttpRequest&);
  };
  // Every HTTP route, in the order add_api_routes registers them.
  static const std::vector<Route>& routes();
  static constexpr const char* kStreamPattern = "/api/v1/runs/{id}/stream";
  static constexpr Action kStreamAction = Action::kRunRead;
  // The action the route "METHOD pattern" (as Router::routes() lists it)
  // needs; nullopt for a route Api does not know.
  static std::optional<Action> action_of(std::string_view route);

  // Handlers (path parameters in request.path_params).
  HttpResponse create_pipeline(const HttpRequest& request);
  HttpResponse list_pipelines(const HttpRequest& request);
  HttpResponse get_pipeline(const HttpRequest& request);
  HttpResponse put_pipeline(const HttpRequest& request);
  HttpResponse delete_pipeline(const HttpRequest& request);
  HttpResponse start_pipeline(const HttpRequest& request);
  HttpResponse stop_pipeline(const HttpRequest& request);
  HttpResponse pipeline_runs(const HttpRequest& request);
  HttpResponse list_checkpoints(const HttpRequest& request);
  HttpResponse request_checkpoint(const HttpRequest& request);
  HttpResponse rollback(const HttpRequest& request);
  HttpResponse export_state(const HttpRequest& request);
  HttpResponse import_state(const HttpRequest& request);
  HttpResponse get_run(const HttpRequest& request);
  HttpResponse cancel_run(const HttpRequest& request);
  HttpResponse run_events(const HttpRequest& request);
  HttpResponse openapi(const HttpRequest& request);
  // {"principal", "method", "authentication", "roles", "permissions"}: what
  // the web console shows and hides.
  HttpResponse whoami(const HttpRequest& request);
  // The WebSocket route: refuses unknown runs (404); else sends
  // {"type":"status","run":{...}} now and on every change,
  // {"type":"event","event":{...}} per healing event and
  // {"type":"log","log":{...}} per log line of the run's pipeline; closes
  // once the run ended.
  std::optional<HttpResponse> stream_run(const HttpRequest& request,
                                         std::shared_ptr<WebSocketConnection> connection);

 private:
  PipelineManager& manager_;
  std::shared_ptr<AccessControl> access_;
};

// Registers every route of Api over `manager` (the Api lives as long as the
// router's handlers), each behind `access` (AccessControl::open(): none).
void add_api_routes(Router& router, PipelineManager& manager,
                    std::shared_ptr<AccessControl> access = AccessControl::open());

// The pipeline as docs/rest-api.md shows it (without the spec when !with_spec).
std::string pipeline_to_json(const PipelineView& view, bool with_spec);

}  // namespace df::server
