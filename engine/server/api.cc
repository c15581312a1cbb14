#include "engine/server/api.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <variant>

#include "engine/core/time.h"
#include "engine/server/openapi.h"

namespace df::server {

namespace {

using nlohmann::json;

std::string etag(uint64_t version) { return "\"" + std::to_string(version) + "\""; }

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

std::string trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return std::string(s);
}

// ---- the stream's credential, offered as a WebSocket subprotocol
//
// Browsers cannot set Authorization on a WebSocket, so the console offers
// its credential in Sec-WebSocket-Protocol instead: "dataflow.bearer.<token>"
// or "dataflow.basic.<user:password>" (base64url, unpadded), next to plain
// "dataflow", the protocol the server answers with. The credential becomes
// the Authorization header it stands for and goes through the same
// AccessControl::check; it is never echoed or logged.
constexpr std::string_view kStreamProtocol = "dataflow";
constexpr std::string_view kBearerProtocol = "dataflow.bearer.";
constexpr std::string_view kBasicProtocol = "dataflow.basic.";

// base64url (RFC 4648 §5) -> standard base64 with padding; nullopt for a
// length no encoding has.
std::optional<std::string> base64url_to_base64(std::string_view text) {
  if (text.size() % 4 == 1) return std::nullopt;
  std::string out(text);
  for (char& c : out) {
    if (c == '-') c = '+';
    if (c == '_') c = '/';
  }
  out.append((4 - out.size() % 4) % 4, '=');
  return out;
}

struct OfferedProtocols {
  bool plain = false;                        // "dataflow"
  std::optional<std::string> authorization;  // the credential as an Authorization value
};

OfferedProtocols offered_protocols(const HttpRequest& request) {
  OfferedProtocols offered;
  std::stringstream list(request.header("sec-websocket-protocol"));
  std::string item;
  while (std::getline(list, item, ',')) {
    const std::string protocol = trim(item);
    if (protocol == kStreamProtocol) {
      offered.plain = true;
    } else if (protocol.starts_with(kBearerProtocol)) {
      if (auto token =
              decode_base64(std::string_view(protocol).substr(kBearerProtocol.size()), true)) {
        offered.authorization = "Bearer " + *token;
      }
    } else if (protocol.starts_with(kBasicProtocol)) {
      if (auto pair =
              base64url_to_base64(std::string_view(protocol).substr(kBasicProtocol.size()))) {
        offered.authorization = "Basic " + *pair;
      }
    }
  }
  return offered;
}

// The media type of Content-Type, lower-case, without parameters.
std::string media_type(const HttpRequest& request) {
  const std::string& ct = request.header("content-type");
  return lower(trim(std::string_view(ct).substr(0, ct.find(';'))));
}

// "yaml" | "json", or a 415 response.
std::variant<std::string, HttpResponse> pipeline_format(const HttpRequest& request) {
  const std::string type = media_type(request);
  if (type == "application/yaml" || type == "application/x-yaml" || type == "text/yaml") {
    return std::string("yaml");
  }
  if (type == "application/json") return std::string("json");
  return HttpResponse::error(
      415, type.empty() ? "the request has no Content-Type; send the pipeline as YAML "
                          "(application/yaml) or JSON (application/json)"
                        : "the body is " + type +
                              "; send the pipeline as YAML (application/yaml) or JSON "
                              "(application/json)");
}

// Refuses query parameters the route does not take and values that are not
// booleans; fills `flags` with the boolean ones.
std::optional<HttpResponse> read_query(const HttpRequest& request,
                                       const std::vector<std::string>& allowed,
                                       std::map<std::string, bool>* flags = nullptr) {
  std::vector<std::string> problems;
  for (const auto& [key, value] : request.query) {
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
      problems.push_back("unknown query parameter '" + key + "'");
      continue;
    }
    const std::string v = lower(value);
    if (v == "true" || v == "1" || v.empty()) {
      if (flags) (*flags)[key] = true;
    } else if (v == "false" || v == "0") {
      if (flags) (*flags)[key] = false;
    } else {
      problems.push_back("query parameter '" + key + "' must be true or false, not '" + value +
                         "'");
    }
  }
  if (problems.empty()) return std::nullopt;
  return HttpResponse::error(400, "bad query parameter", problems);
}

const std::string& param(const HttpRequest& request, const std::string& name) {
  static const std::string kEmpty;
  auto it = request.path_params.find(name);
  return it == request.path_params.end() ? kEmpty : it->second;
}

HttpResponse error_of(const Status& status) {
  if (status.code() == StatusCode::kUnimplemented) {
    return HttpResponse::error(501, status.message());
  }
  return HttpResponse::from_status(status);
}

// The versions an If-Match header accepts: nullopt when absent, an empty
// set for "*" (any version).
struct IfMatch {
  bool any = false;
  std::set<uint64_t> versions;
};
std::optional<IfMatch> parse_if_match(const HttpRequest& request) {
  const std::string& header = request.header("if-match");
  if (header.empty()) return std::nullopt;
  IfMatch m;
  std::stringstream ss(header);
  std::string tag;
  while (std::getline(ss, tag, ',')) {
    tag = trim(tag);
    if (tag == "*") m.any = true;
    if (tag.rfind("W/", 0) == 0) tag = tag.substr(2);
    if (tag.size() >= 2 && tag.front() == '"' && tag.back() == '"') {
      tag = tag.substr(1, tag.size() - 2);
    }
    if (!tag.empty() && std::all_of(tag.begin(), tag.end(), ::isdigit) && tag.size() < 20) {
      m.versions.insert(std::stoull(tag));
    }
  }
  return m;
}

// 404 or 412 when If-Match does not fit the pipeline; else the version to
// hand the manager (which checks it again under its lock).
std::variant<std::optional<uint64_t>, HttpResponse> check_if_match(const HttpRequest& request,
                                                                   PipelineManager& manager,
                                                                   const std::string& name) {
  std::optional<IfMatch> if_match = parse_if_match(request);
  if (!if_match) return std::optional<uint64_t>();
  auto view = manager.get(name);
  if (!view.ok()) return error_of(view.status());
  const uint64_t version = view->record.version;
  if (if_match->any || if_match->versions.count(version)) return std::optional<uint64_t>(version);
  HttpResponse r =
      HttpResponse::error(412,
                          "pipeline '" + name + "' is at version " + std::to_string(version) +
                              " (ETag " + etag(version) + "), not the one If-Match names",
                          {"If-Match: " + request.header("if-match")});
  r.headers["etag"] = etag(version);
  return r;
}

HttpResponse pipeline_response(int status, const PipelineView& view) {
  HttpResponse r = HttpResponse::json(status, pipeline_to_json(view, true));
  r.headers["etag"] = etag(view.record.version);
  return r;
}

HttpResponse run_response(int status, const RunRecord& run) {
  return HttpResponse::json(status, run_to_json(run));
}

// Every problem of an invalid pipeline as details; other failures as usual.
HttpResponse pipeline_error(const Status& status, const std::vector<std::string>& problems) {
  if (status.code() == StatusCode::kInvalidArgument && !problems.empty()) {
    return HttpResponse::error(400, status.message(), problems);
  }
  return error_of(status);
}

}  // namespace

std::string pipeline_to_json(const PipelineView& view, bool with_spec) {
  json j{{"name", view.record.name},
         {"version", view.record.version},
         {"etag", etag(view.record.version)},
         {"created", format_timestamp(view.record.created_ms)},
         {"updated", format_timestamp(view.record.updated_ms)},
         {"status", view.status},
         {"current_run", nullptr}};
  if (view.current_run) j["current_run"] = view.current_run->id;
  if (with_spec) {
    j["spec"] = view.version.spec;
    j["format"] = view.version.format;
  }
  return j.dump();
}

const std::vector<Api::Route>& Api::routes() {
  static const std::vector<Route> kRoutes = {
      {"POST", "/api/v1/pipelines", Action::kPipelineCreate, &Api::create_pipeline},
      {"GET", "/api/v1/pipelines", Action::kPipelineRead, &Api::list_pipelines},
      {"GET", "/api/v1/pipelines/{name}", Action::kPipelineRead, &Api::get_pipeline},
      {"PUT", "/api/v1/pipelines/{name}", Action::kPipelineUpdate, &Api::put_pipeline},
      {"DELETE", "/api/v1/pipelines/{name}", Action::kPipelineDelete, &Api::delete_pipeline},
      {"POST", "/api/v1/pipelines/{name}/start", Action::kRunStart, &Api::start_pipeline},
      {"POST", "/api/v1/pipelines/{name}/stop", Action::kRunStop, &Api::stop_pipeline},
      {"GET", "/api/v1/pipelines/{name}/runs", Action::kRunRead, &Api::pipeline_runs},
      {"GET", "/api/v1/pipelines/{name}/checkpoints", Action::kCheckpointRead,
       &Api::list_checkpoints},
      {"POST", "/api/v1/pipelines/{name}/checkpoints", Action::kCheckpointCreate,
       &Api::request_checkpoint},
      {"POST", "/api/v1/pipelines/{name}/rollback", Action::kCheckpointRollback, &Api::rollback},
      {"GET", "/api/v1/pipelines/{name}/state", Action::kStateExport, &Api::export_state},
      {"PUT", "/api/v1/pipelines/{name}/state", Action::kStateImport, &Api::import_state},
      {"GET", "/api/v1/runs/{id}", Action::kRunRead, &Api::get_run},
      {"POST", "/api/v1/runs/{id}/cancel", Action::kRunCancel, &Api::cancel_run},
      {"GET", "/api/v1/runs/{id}/events", Action::kRunRead, &Api::run_events},
      {"GET", "/api/v1/whoami", Action::kPipelineRead, &Api::whoami},
      {"GET", "/api/v1/openapi.json", Action::kPipelineRead, &Api::openapi},
  };
  return kRoutes;
}

HttpResponse Api::create_pipeline(const HttpRequest& request) {
  std::map<std::string, bool> flags;
  if (auto bad = read_query(request, {"start"}, &flags)) return *bad;
  auto format = pipeline_format(request);
  if (auto* r = std::get_if<HttpResponse>(&format)) return *r;
  if (trim(request.body).empty()) return HttpResponse::error(400, "the body is empty");
  std::vector<std::string> problems;
  auto created =
      manager_.create(request.body, std::get<std::string>(format), flags["start"], &problems);
  if (!created.ok()) return pipeline_error(created.status(), problems);
  HttpResponse r = pipeline_response(201, *created);
  r.headers["location"] = "/api/v1/pipelines/" + created->record.name;
  return r;
}

HttpResponse Api::list_pipelines(const HttpRequest& request) {
  if (auto bad = read_query(request, {})) return *bad;
  auto list = manager_.list();
  if (!list.ok()) return error_of(list.status());
  std::string body = "{\"pipelines\":[";
  for (size_t i = 0; i < list->size(); ++i) {
    if (i) body += ',';
    body += pipeline_to_json((*list)[i], false);
  }
  body += "]}";
  return HttpResponse::json(200, std::move(body));
}

HttpResponse Api::get_pipeline(const HttpRequest& request) {
  if (auto bad = read_query(request, {})) return *bad;
  auto view = manager_.get(param(request, "name"));
  if (!view.ok()) return error_of(view.status());
  return pipeline_response(200, *view);
}

HttpResponse Api::put_pipeline(const HttpRequest& request) {
  std::map<std::string, bool> flags;
  if (auto bad = read_query(request, {"allow_state_loss"}, &flags)) return *bad;
  const std::string& name = param(request, "name");
  auto format = pipeline_format(request);
  if (auto* r = std::get_if<HttpResponse>(&format)) return *r;
  if (trim(request.body).empty()) return HttpResponse::error(400, "the body is empty");
  auto if_match = check_if_match(request, manager_, name);
  if (auto* r = std::get_if<HttpResponse>(&if_match)) return *r;
  std::vector<std::string> problems;
  auto updated = manager_.update(name, request.body, std::get<std::string>(format),
                                 std::get<std::optional<uint64_t>>(if_match),
                                 flags["allow_state_loss"], &problems);
  if (!updated.ok()) return pipeline_error(updated.status(), problems);
  return pipeline_response(200, *updated);
}

HttpResponse Api::delete_pipeline(const HttpRequest& request) {
  if (auto bad = read_query(request, {})) return *bad;
  const std::string& name = param(request, "name");
  auto if_match = check_if_match(request, manager_, name);
  if (auto* r = std::get_if<HttpResponse>(&if_match)) return *r;
  Status s = manager_.remove(name, std::get<std::optional<uint64_t>>(if_match));
  if (!s.ok()) return error_of(s);
  HttpResponse r;
  r.status = 204;
  return r;
}

HttpResponse Api::start_pipeline(const HttpRequest& request) {
  if (auto bad = read_query(request, {})) return *bad;
  auto run = manager_.start(param(request, "name"));
  if (!run.ok()) return error_of(run.status());
  return run_response(202, *run);
}

HttpResponse Api::stop_pipeline(const HttpRequest& request) {
  if (auto bad = read_query(request, {})) return *bad;
  auto run = manager_.stop(param(request, "name"));
  if (!run.ok()) return error_of(run.status());
  return run_response(202, *run);
}

HttpResponse Api::pipeline_runs(const HttpRequest& request) {
  if (auto bad = read_query(request, {})) return *bad;
  auto runs = manager_.runs(param(request, "name"));
  if (!runs.ok()) return error_of(runs.status());
  std::string body = "{\"runs\":[";
  for (size_t i = 0; i < runs->size(); ++i) {
    if (i) body += ',';
    body += run_to_json((*runs)[i]);
  }
  body += "]}";
  return HttpResponse::json(200, std::move(body));
}

HttpResponse Api::list_checkpoints(const HttpRequest& request) {
  if (auto bad = read_query(request, {})) return *bad;
  auto list = manager_.checkpoints(param(request, "name"));
  if (!list.ok()) return error_of(list.status());
  json out = json::array();
  for (const checkpoint::CheckpointInfo& c : *list) {
    json j{{"id", c.id}, {"current", c.current}, {"valid", c.valid}};
    if (c.valid) {
      j["time"] = c.created;
      j["kind"] = c.kind;
      j["size_bytes"] = c.size_bytes;
      j["duration_ms"] = c.duration_ms;
    } else {
      j["problem"] = c.problem;
    }
    out.push_back(std::move(j));
  }
  return HttpResponse::json(200, json{{"checkpoints", out}}.dump());
}

HttpResponse Api::request_checkpoint(const HttpRequest& request) {
  if (auto bad = read_query(request, {})) return *bad;
  Status s = manager_.request_checkpoint(param(request, "name"));
  if (!s.ok()) return error_of(s);
  return HttpResponse::json(202, R"({"requested":true})");
}

HttpResponse Api::rollback(const HttpRequest& request) {
  if (auto bad = read_query(request, {})) return *bad;
  std::optional<int> offset;
  std::optional<uint64_t> id;
  if (!trim(request.body).empty()) {
    const std::string type = media_type(request);
    if (!type.empty() && type != "application/json") {
      return HttpResponse::error(415, "the body is " + type + "; send JSON (application/json)");
    }
    json body = json::parse(request.body, nullptr, /*allow_exceptions=*/false);
    if (body.is_discarded() || !body.is_object()) {
      return HttpResponse::error(400,
                                 "the body must be a JSON object: {\"id\": N} or "
                                 "{\"offset\": N}");
    }
    std::vector<std::string> problems;
    for (const auto& [key, value] : body.items()) {
      if (key != "id" && key != "offset") {
        problems.push_back("unknown field '" + key + "'");
      } else if (!value.is_number_unsigned()) {
        problems.push_back("'" + key + "' must be a non-negative integer");
      } else if (key == "id") {
        id = value.get<uint64_t>();
      } else if (value.get<uint64_t>() > (1u << 30)) {
        problems.push_back("'offset' is too large");
      } else {
        offset = static_cast<int>(value.get<uint64_t>());
      }
    }
    if (id && offset) problems.push_back("give 'id' or 'offset', not both");
    if (!problems.empty()) return HttpResponse::error(400, "bad rollback request", problems);
  }
  auto moved = manager_.rollback(param(request, "name"), offset, id);
  if (!moved.ok()) return error_of(moved.status());
  return HttpResponse::json(200, json{{"current", *moved}}.dump());
}

HttpResponse Api::export_state(const HttpRequest& request) {
  if (auto bad = read_query(request, {})) return *bad;
  std::ostringstream out;
  Status s = manager_.export_state(param(request, "name"), out);
  if (!s.ok()) return error_of(s);
  return HttpResponse::json(200, std::move(out).str());
}

HttpResponse Api::import_state(const HttpRequest& request) {
  if (auto bad = read_query(request, {})) return *bad;
  const std::string type = media_type(request);
  if (type != "application/json") {
    return HttpResponse::error(
        415, type.empty() ? "the request has no Content-Type; send the state document as JSON "
                            "(application/json)"
                          : "the body is " + type +
                                "; send the state document as JSON "
                                "(application/json)");
  }
  std::istringstream in(request.body);
  auto imported = manager_.import_state(param(request, "name"), in);
  if (!imported.ok()) return error_of(imported.status());
  json j{{"checkpoint", imported->checkpoint_id},
         {"previous", nullptr},
         {"entries", imported->entries},
         {"notes", imported->notes}};
  if (imported->previous_id) j["previous"] = *imported->previous_id;
  return HttpResponse::json(200, j.dump());
}

HttpResponse Api::get_run(const HttpRequest& request) {
  if (auto bad = read_query(request, {})) return *bad;
  auto run = manager_.run(param(request, "id"));
  if (!run.ok()) return error_of(run.status());
  return run_response(200, *run);
}

HttpResponse Api::cancel_run(const HttpRequest& request) {
  if (auto bad = read_query(request, {})) return *bad;
  auto run = manager_.cancel(param(request, "id"));
  if (!run.ok()) return error_of(run.status());
  return run_response(202, *run);
}

HttpResponse Api::run_events(const HttpRequest& request) {
  if (auto bad = read_query(request, {})) return *bad;
  auto events = manager_.events(param(request, "id"));
  if (!events.ok()) return error_of(events.status());
  std::string body = "{\"events\":[";
  for (size_t i = 0; i < events->size(); ++i) {
    if (i) body += ',';
    body += (*events)[i];
  }
  body += "]}";
  return HttpResponse::json(200, std::move(body));
}

HttpResponse Api::openapi(const HttpRequest& request) {
  if (auto bad = read_query(request, {})) return *bad;
  return HttpResponse::json(200, openapi_document());
}

HttpResponse Api::whoami(const HttpRequest& request) {
  if (auto bad = read_query(request, {})) return *bad;
  // The route's guard let the request through, so this check passes too.
  const AccessControl::Decision decision = access_->check(request, Action::kPipelineRead);
  if (decision.refusal) return *decision.refusal;
  const Principal who = decision.who.value_or(Principal{});
  json permissions = json::array();
  for (size_t a = 0; a < kActionCount; ++a) {
    const auto action = static_cast<Action>(a);
    if (!access_->enabled() || access_->policy().allows(who.roles, action)) {
      permissions.push_back(std::string(action_name(action)));
    }
  }
  json j = {{"principal", who.name},
            {"method", who.method},
            {"authentication", access_->enabled()},
            {"roles", who.roles},
            {"permissions", permissions}};
  return HttpResponse::json(200, j.dump());
}

std::optional<HttpResponse> Api::stream_run(const HttpRequest& request,
                                            std::shared_ptr<WebSocketConnection> connection) {
  const std::string id = param(request, "id");
  std::weak_ptr<WebSocketConnection> weak = connection;
  // Subscribed before the first status is read, so no change falls between.
  const uint64_t token = manager_.subscribe(id, [weak](const std::string& message) {
    auto c = weak.lock();
    if (!c) return;
    c->send(message);
    if (message.rfind("{\"type\":\"status\"", 0) == 0) {
      // Ended runs: nothing more will come.
      for (const char* end :
           {"\"status\":\"succeeded\"", "\"status\":\"failed\"", "\"status\":\"cancelled\""}) {
        if (message.find(end) != std::string::npos) {
          c->close();
          return;
        }
      }
    }
  });
  auto run = manager_.run(id);
  if (!run.ok()) {
    manager_.unsubscribe(token);
    return error_of(run.status());
  }
  PipelineManager* manager = &manager_;
  connection->on_close([manager, token] { manager->unsubscribe(token); });
  connection->send("{\"type\":\"status\",\"run\":" + run_to_json(*run) + "}");
  if (run_status_final(run->status)) connection->close();
  return std::nullopt;
}

std::optional<Action> Api::action_of(std::string_view route) {
  if (route == std::string("GET ") + kStreamPattern) return kStreamAction;
  for (const Route& r : routes()) {
    if (route == std::string(r.method) + " " + r.pattern) return r.action;
  }
  return std::nullopt;
}

void add_api_routes(Router& router, PipelineManager& manager,
                    std::shared_ptr<AccessControl> access) {
  auto api = std::make_shared<Api>(manager, access);
  for (const Api::Route& route : Api::routes()) {
    auto handler = route.handler;
    router.add(route.method, route.pattern,
               access->guard(route.action, [api, handler](const HttpRequest& request) {
                 return ((*api).*handler)(request);
               }));
  }
  router.add_websocket(
      Api::kStreamPattern,
      [api, access](const HttpRequest& request,
                    std::shared_ptr<WebSocketConnection> c) -> std::optional<HttpResponse> {
        // The upgrade request carries the credentials (a GET: no audit line):
        // in Authorization, or else (browsers) in a subprotocol.
        const OfferedProtocols offered = offered_protocols(request);
        HttpRequest checked = request;
        checked.headers.erase("sec-websocket-protocol");
        if (offered.authorization && checked.header("authorization").empty()) {
          checked.headers["authorization"] = *offered.authorization;
        }
        AccessControl::Decision decision = access->check(checked, Api::kStreamAction);
        if (decision.refusal) return std::move(decision.refusal);
        if (offered.plain) c->set_protocol(std::string(kStreamProtocol));
        return api->stream_run(checked, std::move(c));
      });
}

}  // namespace df::server
