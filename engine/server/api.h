// The REST API under /api/v1 (docs/rest-api.md, DESIGN §8): one handler per
// route over a PipelineManager, JSON responses, errors as
// {"error", "details"}; plus the WebSocket route /api/v1/runs/{id}/stream,
// which streams a run's status changes, healing events and log lines.
//
// Ownership: Api borrows the manager, which must outlive it and every
// WebSocket it serves (stop the HttpServer before destroying the manager).
// Threading: handlers are thread-safe (the manager is); they never wait for
// a run. Request bodies over the size limit are refused (413) by the
// HttpServer before a handler runs.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/server/http.h"
#include "engine/server/pipeline_manager.h"

namespace df::server {

class Api {
 public:
  explicit Api(PipelineManager& manager) : manager_(manager) {}
  Api(const Api&) = delete;
  Api& operator=(const Api&) = delete;

  // One route: "METHOD /api/v1/..." and its handler.
  struct Route {
    const char* method;
    const char* pattern;
    HttpResponse (Api::*handler)(const HttpRequest&);
  };
  // Every HTTP route, in the order add_api_routes registers them.
  static const std::vector<Route>& routes();
  static constexpr const char* kStreamPattern = "/api/v1/runs/{id}/stream";

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
  // The WebSocket route: refuses unknown runs (404); else sends
  // {"type":"status","run":{...}} now and on every change,
  // {"type":"event","event":{...}} per healing event and
  // {"type":"log","log":{...}} per log line of the run's pipeline; closes
  // once the run ended.
  std::optional<HttpResponse> stream_run(const HttpRequest& request,
                                         std::shared_ptr<WebSocketConnection> connection);

 private:
  PipelineManager& manager_;
};

// Registers every route of Api over `manager` (the Api lives as long as the
// router's handlers).
void add_api_routes(Router& router, PipelineManager& manager);

// The pipeline as docs/rest-api.md shows it (without the spec when !with_spec).
std::string pipeline_to_json(const PipelineView& view, bool with_spec);

}  // namespace df::server
