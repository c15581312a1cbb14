#include "engine/server/openapi.h"

#include <nlohmann/json.hpp>
#include <vector>

namespace df::server {

namespace {

using nlohmann::json;

json ref(const std::string& schema) { return {{"$ref", "#/components/schemas/" + schema}}; }

json json_content(const json& schema) { return {{"application/json", {{"schema", schema}}}}; }

json error_response(const std::string& description) {
  return {{"description", description}, {"content", json_content(ref("Error"))}};
}

json components() {
  json string_or_null = {{"type", "string"}, {"nullable", true}};
  json schemas;
  schemas["Error"] = {
      {"type", "object"},
      {"required", {"error", "details"}},
      {"properties",
       {{"error", {{"type", "string"}, {"description", "one sentence"}}},
        {"details",
         {{"type", "array"},
          {"items", {{"type", "string"}}},
          {"description", "e.g. every validation problem as file:line:col: message"}}}}}};
  schemas["Pipeline"] = {
      {"type", "object"},
      {"required", {"name", "version", "etag", "created", "updated", "status", "current_run"}},
      {"properties",
       {{"name", {{"type", "string"}}},
        {"version", {{"type", "integer"}, {"minimum", 1}}},
        {"etag", {{"type", "string"}, {"example", "\"2\""}}},
        {"created", {{"type", "string"}, {"format", "date-time"}}},
        {"updated", {{"type", "string"}, {"format", "date-time"}}},
        {"status", {{"type", "string"}, {"enum", {"stopped", "running", "failed", "succeeded"}}}},
        {"current_run", string_or_null},
        {"spec", {{"type", "string"}, {"description", "the pipeline file as submitted"}}},
        {"format", {{"type", "string"}, {"enum", {"yaml", "json"}}}}}}};
  schemas["PipelineList"] = {
      {"type", "object"},
      {"properties", {{"pipelines", {{"type", "array"}, {"items", ref("Pipeline")}}}}}};
  schemas["Run"] = {{"type", "object"},
                    {"required",
                     {"id", "pipeline", "version", "status", "started", "ended", "checkpoints",
                      "last_checkpoint", "restarts", "error"}},
                    {"properties",
                     {{"id", {{"type", "string"}}},
                      {"pipeline", {{"type", "string"}}},
                      {"version", {{"type", "integer"}}},
                      {"status",
                       {{"type", "string"},
                        {"enum", {"pending", "running", "succeeded", "failed", "cancelled"}}}},
                      {"started", {{"type", "string"}, {"format", "date-time"}}},
                      {"ended", {{"type", "string"}, {"format", "date-time"}, {"nullable", true}}},
                      {"checkpoints", {{"type", "integer"}}},
                      {"last_checkpoint", {{"type", "integer"}, {"nullable", true}}},
                      {"restarts", {{"type", "integer"}}},
                      {"error", string_or_null}}}};
  schemas["RunList"] = {{"type", "object"},
                        {"properties", {{"runs", {{"type", "array"}, {"items", ref("Run")}}}}}};
  schemas["Event"] = {{"type", "object"},
                      {"properties",
                       {{"time", {{"type", "string"}, {"format", "date-time"}}},
                        {"class", {{"type", "string"}}},
                        {"action", {{"type", "string"}}},
                        {"node", {{"type", "string"}}},
                        {"message", {{"type", "string"}}},
                        {"attempt", {{"type", "integer"}}},
                        {"delay_ms", {{"type", "integer"}}}}}};
  schemas["EventList"] = {
      {"type", "object"},
      {"properties", {{"events", {{"type", "array"}, {"items", ref("Event")}}}}}};
  schemas["Checkpoint"] = {{"type", "object"},
                           {"properties",
                            {{"id", {{"type", "integer"}}},
                             {"time", {{"type", "string"}, {"format", "date-time"}}},
                             {"kind", {{"type", "string"}}},
                             {"size_bytes", {{"type", "integer"}}},
                             {"duration_ms", {{"type", "integer"}}},
                             {"current", {{"type", "boolean"}}},
                             {"valid", {{"type", "boolean"}}},
                             {"problem", {{"type", "string"}}}}}};
  schemas["CheckpointList"] = {
      {"type", "object"},
      {"properties", {{"checkpoints", {{"type", "array"}, {"items", ref("Checkpoint")}}}}}};
  schemas["Rollback"] = {{"type", "object"},
                         {"properties",
                          {{"id", {{"type", "integer"}, {"minimum", 0}}},
                           {"offset", {{"type", "integer"}, {"minimum", 0}}}}}};
  schemas["StateDocument"] = {
      {"type", "object"}, {"description", "a \"dataflow-state\" document (docs/state-format.md)"}};
  schemas["Imported"] = {{"type", "object"},
                         {"properties",
                          {{"checkpoint", {{"type", "integer"}}},
                           {"previous", {{"type", "integer"}, {"nullable", true}}},
                           {"entries", {{"type", "integer"}}},
                           {"notes", {{"type", "array"}, {"items", {{"type", "string"}}}}}}}};
  return {{"schemas", schemas}};
}

json pipeline_body() {
  json text = {{"schema", {{"type", "string"}}}};
  return {{"required", true},
          {"description", "the pipeline file (its name is the pipeline's)"},
          {"content",
           {{"application/yaml", text},
            {"application/x-yaml", text},
            {"text/yaml", text},
            {"application/json", {{"schema", {{"type", "object"}}}}}}}};
}

json path_param(const std::string& name, const std::string& description) {
  return {{"name", name},
          {"in", "path"},
          {"required", true},
          {"description", description},
          {"schema", {{"type", "string"}}}};
}

json bool_query(const std::string& name, const std::string& description) {
  return {{"name", name},
          {"in", "query"},
          {"required", false},
          {"description", description},
          {"schema", {{"type", "boolean"}, {"default", false}}}};
}

json if_match() {
  return {{"name", "If-Match"},
          {"in", "header"},
          {"required", false},
          {"description", "the ETag the change is based on (412 when stale)"},
          {"schema", {{"type", "string"}}}};
}

json ok(const std::string& description, const std::string& schema) {
  return {{"description", description}, {"content", json_content(ref(schema))}};
}

json build() {
  const json name = path_param("name", "pipeline name");
  const json id = path_param("id", "run id");
  const json e400 = error_response("malformed body, invalid pipeline or bad query parameter");
  const json e404 = error_response("unknown pipeline or run");
  const json e409 = error_response("conflicts with the pipeline's state");
  const json e412 = error_response("If-Match does not match the ETag");
  const json e413 = error_response("body over server.max_body_size");
  const json e415 = error_response("body neither YAML nor JSON");
  const json e503 = error_response("the server is shutting down");
  json paths;

  paths["/pipelines"]["post"] = {
      {"operationId", "createPipeline"},
      {"summary", "Store a new pipeline (version 1), optionally starting it"},
      {"parameters", {bool_query("start", "start it at once")}},
      {"requestBody", pipeline_body()},
      {"responses",
       {{"201", ok("created; Location and ETag set", "Pipeline")},
        {"400", e400},
        {"409", error_response("the pipeline exists")},
        {"413", e413},
        {"415", e415},
        {"503", e503}}}};
  paths["/pipelines"]["get"] = {{"operationId", "listPipelines"},
                                {"summary", "Every pipeline, without its spec"},
                                {"responses", {{"200", ok("the pipelines", "PipelineList")}}}};
  paths["/pipelines/{name}"]["parameters"] = {name};
  paths["/pipelines/{name}"]["get"] = {
      {"operationId", "getPipeline"},
      {"summary", "One pipeline with its newest spec; ETag set"},
      {"responses", {{"200", ok("the pipeline", "Pipeline")}, {"404", e404}}}};
  paths["/pipelines/{name}"]["put"] = {
      {"operationId", "updatePipeline"},
      {"summary", "A new version; a running pipeline takes a final checkpoint and restarts on it"},
      {"parameters",
       {bool_query("allow_state_loss", "start without the old state when it cannot carry over"),
        if_match()}},
      {"requestBody", pipeline_body()},
      {"responses",
       {{"200", ok("the new version", "Pipeline")},
        {"400", e400},
        {"404", e404},
        {"409", error_response("operator state would be dropped, or a concurrent change")},
        {"412", e412},
        {"413", e413},
        {"415", e415},
        {"503", e503}}}};
  paths["/pipelines/{name}"]["delete"] = {
      {"operationId", "deletePipeline"},
      {"summary", "Remove the pipeline, its versions, runs and checkpoints"},
      {"parameters", {if_match()}},
      {"responses",
       {{"204", {{"description", "deleted"}}},
        {"404", e404},
        {"409", error_response("the pipeline is running")},
        {"412", e412}}}};
  paths["/pipelines/{name}/start"]["parameters"] = {name};
  paths["/pipelines/{name}/start"]["post"] = {
      {"operationId", "startPipeline"},
      {"summary", "Start a run of the newest version, resuming from the last checkpoint"},
      {"responses",
       {{"202", ok("the new run", "Run")},
        {"404", e404},
        {"409", error_response("running already, or the server's run limit")},
        {"503", e503}}}};
  paths["/pipelines/{name}/stop"]["parameters"] = {name};
  paths["/pipelines/{name}/stop"]["post"] = {
      {"operationId", "stopPipeline"},
      {"summary", "Stop with a final checkpoint; the run ends cancelled"},
      {"responses",
       {{"202", ok("the run being stopped", "Run")},
        {"404", e404},
        {"409", error_response("the pipeline is not running")}}}};
  paths["/pipelines/{name}/runs"]["parameters"] = {name};
  paths["/pipelines/{name}/runs"]["get"] = {
      {"operationId", "listRuns"},
      {"summary", "The pipeline's runs, newest first"},
      {"responses", {{"200", ok("the runs", "RunList")}, {"404", e404}}}};
  paths["/pipelines/{name}/checkpoints"]["parameters"] = {name};
  paths["/pipelines/{name}/checkpoints"]["get"] = {
      {"operationId", "listCheckpoints"},
      {"summary", "The pipeline's checkpoints, newest first"},
      {"responses", {{"200", ok("the checkpoints", "CheckpointList")}, {"404", e404}}}};
  paths["/pipelines/{name}/checkpoints"]["post"] = {
      {"operationId", "requestCheckpoint"},
      {"summary", "Take a checkpoint now (running pipelines only)"},
      {"responses",
       {{"202",
         {{"description", "requested"},
          {"content", json_content({{"type", "object"},
                                    {"properties", {{"requested", {{"type", "boolean"}}}}}})}}},
        {"404", e404},
        {"409", error_response("the pipeline is not running")}}}};
  paths["/pipelines/{name}/rollback"]["parameters"] = {name};
  paths["/pipelines/{name}/rollback"]["post"] = {
      {"operationId", "rollback"},
      {"summary", "Move the current checkpoint back (stopped pipelines only)"},
      {"requestBody", {{"required", false}, {"content", json_content(ref("Rollback"))}}},
      {"responses",
       {{"200",
         {{"description", "the checkpoint now current"},
          {"content", json_content({{"type", "object"},
                                    {"properties", {{"current", {{"type", "integer"}}}}}})}}},
        {"400", e400},
        {"404", e404},
        {"409", error_response("the pipeline is running")},
        {"415", e415}}}};
  paths["/pipelines/{name}/state"]["parameters"] = {name};
  paths["/pipelines/{name}/state"]["get"] = {
      {"operationId", "exportState"},
      {"summary", "The current checkpoint's state (as `dataflow state export`)"},
      {"responses", {{"200", ok("the state document", "StateDocument")}, {"404", e404}}}};
  paths["/pipelines/{name}/state"]["put"] = {
      {"operationId", "importState"},
      {"summary", "Store a state document as the current checkpoint (stopped pipelines only)"},
      {"requestBody", {{"required", true}, {"content", json_content(ref("StateDocument"))}}},
      {"responses",
       {{"200", ok("the new checkpoint", "Imported")},
        {"400", e400},
        {"404", e404},
        {"409", error_response("the pipeline is running")},
        {"413", e413},
        {"415", e415}}}};
  paths["/runs/{id}"]["parameters"] = {id};
  paths["/runs/{id}"]["get"] = {{"operationId", "getRun"},
                                {"summary", "One run"},
                                {"responses", {{"200", ok("the run", "Run")}, {"404", e404}}}};
  paths["/runs/{id}/cancel"]["parameters"] = {id};
  paths["/runs/{id}/cancel"]["post"] = {
      {"operationId", "cancelRun"},
      {"summary", "Cooperative cancel: stops at the next safe point with a final checkpoint"},
      {"responses",
       {{"202", ok("the run being cancelled", "Run")},
        {"404", e404},
        {"409", error_response("the run has ended")}}}};
  paths["/runs/{id}/events"]["parameters"] = {id};
  paths["/runs/{id}/events"]["get"] = {
      {"operationId", "runEvents"},
      {"summary", "The run's self-healing events, oldest first"},
      {"responses", {{"200", ok("the events", "EventList")}, {"404", e404}}}};
  paths["/runs/{id}/stream"]["parameters"] = {id};
  paths["/runs/{id}/stream"]["get"] = {
      {"operationId", "streamRun"},
      {"summary",
       "WebSocket: text frames, one JSON object each: {\"type\": \"status\"|\"event\"|\"log\"}"},
      {"responses",
       {{"101", {{"description", "switching to the WebSocket protocol"}}}, {"404", e404}}}};
  // The web console's views (engine/server/console.h).
  paths["/pipelines/{name}/graph"]["parameters"] = {name};
  paths["/pipelines/{name}/graph"]["get"] = {
      {"operationId", "pipelineGraph"},
      {"summary",
       "The DAG: nodes (id, role, type, parallelism, inputs) and edges, with live rows/s, "
       "backpressure and watermark lag while it runs"},
      {"responses",
       {{"200",
         {{"description", "the graph"},
          {"content",
           json_content({{"type", "object"},
                         {"properties",
                          {{"pipeline", {{"type", "string"}}},
                           {"running", {{"type", "boolean"}}},
                           {"run", {{"type", "string"}, {"nullable", true}}},
                           {"nodes", {{"type", "array"}, {"items", {{"type", "object"}}}}},
                           {"edges", {{"type", "array"}, {"items", {{"type", "object"}}}}},
                           {"channels", {{"type", "object"}, {"nullable", true}}}}}})}}},
        {"404", e404}}}};
  paths["/pipelines/{name}/history"]["parameters"] = {name};
  paths["/pipelines/{name}/history"]["get"] = {
      {"operationId", "pipelineHistory"},
      {"summary",
       "The last 15 minutes sampled every second: rows/s, sink latency p50/p99, checkpoint "
       "durations"},
      {"responses",
       {{"200",
         {{"description", "the samples, oldest first"},
          {"content",
           json_content({{"type", "object"},
                         {"properties",
                          {{"pipeline", {{"type", "string"}}},
                           {"interval_ms", {{"type", "integer"}}},
                           {"window_seconds", {{"type", "integer"}}},
                           {"samples", {{"type", "array"}, {"items", {{"type", "object"}}}}}}}})}}},
        {"404", e404}}}};
  paths["/whoami"]["get"] = {
      {"operationId", "whoami"},
      {"summary",
       "The caller: principal, authentication method, roles and the actions its roles allow "
       "(every action when authentication is off)"},
      {"responses",
       {{"200",
         {{"description", "the caller"},
          {"content",
           json_content(
               {{"type", "object"},
                {"properties",
                 {{"principal", {{"type", "string"}}},
                  {"method", {{"type", "string"}}},
                  {"authentication", {{"type", "boolean"}}},
                  {"roles", {{"type", "array"}, {"items", {{"type", "string"}}}}},
                  {"permissions", {{"type", "array"}, {"items", {{"type", "string"}}}}}}}})}}}}}};
  paths["/openapi.json"]["get"] = {{"operationId", "openapi"},
                                   {"summary", "This document"},
                                   {"responses",
                                    {{"200",
                                      {{"description", "the OpenAPI 3 document"},
                                       {"content", json_content({{"type", "object"}})}}}}}};

  return {{"openapi", "3.0.3"},
          {"info",
           {{"title", "DataFlow REST API"},
            {"version", "1"},
            {"description", "Pipelines, runs, checkpoints and state (docs/rest-api.md)."}}},
          {"servers", {{{"url", "/api/v1"}}}},
          {"paths", paths},
          {"components", components()}};
}

}  // namespace

const std::string& openapi_document() {
  static const std::string kDocument = build().dump();
  return kDocument;
}

}  // namespace df::server
