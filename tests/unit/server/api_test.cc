// The REST API: every handler and error code over a real PipelineManager
// (real pipelines, RocksDB, checkpoints on disk), then through a real
// HttpServer on 127.0.0.1 (routing 404/405, 413, the WebSocket stream, its
// credential as a subprotocol under authentication, its log backlog), and
// the OpenAPI document kept in sync with the routes.
#include "engine/server/api.h"

#include <gtest/gtest.h>

#include <openssl/evp.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "engine/server/console.h"
#include "engine/server/openapi.h"
#include "tests/unit/server/http_client.h"
#include "tests/unit/server/manager_fixture.h"

namespace df::server {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using test::counting_pipeline;
using test::eventually;

HttpRequest request(std::string method, std::string body = "",
                    std::string content_type = "application/yaml") {
  HttpRequest r;
  r.method = std::move(method);
  r.body = std::move(body);
  if (!content_type.empty()) r.headers["content-type"] = content_type;
  return r;
}

HttpRequest for_pipeline(std::string method, const std::string& name, std::string body = "",
                         std::string content_type = "application/yaml") {
  HttpRequest r = request(std::move(method), std::move(body), std::move(content_type));
  r.path_params["name"] = name;
  return r;
}

HttpRequest for_run(std::string method, const std::string& id) {
  HttpRequest r = request(std::move(method), "", "");
  r.path_params["id"] = id;
  return r;
}

json body_of(const HttpResponse& r) {
  json j = json::parse(r.body, nullptr, false);
  EXPECT_FALSE(j.is_discarded()) << r.body;
  return j;
}

// {"error": "...", "details": [...]} with the given status.
void expect_error(const HttpResponse& r, int status) {
  EXPECT_EQ(r.status, status) << r.body;
  json j = body_of(r);
  EXPECT_TRUE(j["error"].is_string()) << r.body;
  EXPECT_TRUE(j["details"].is_array()) << r.body;
}

class ApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto m = PipelineManager::open(test::manager_options(tmp_.file("data")), test::real_compiler());
    ASSERT_TRUE(m.ok()) << m.status().to_string();
    manager_ = std::move(m).value();
    api_ = std::make_unique<Api>(*manager_);
  }
  std::string out(const std::string& name = "out") const { return tmp_.file(name); }

  df::test::TempDir tmp_;
  std::unique_ptr<PipelineManager> manager_;
  std::unique_ptr<Api> api_;
};

TEST_F(ApiTest, CreateValidatesMediaTypeQueryAndEveryProblem) {
  const std::string spec = counting_pipeline("p", out(), 10, 0);
  expect_error(api_->create_pipeline(request("POST", spec, "")), 415);
  expect_error(api_->create_pipeline(request("POST", spec, "text/plain")), 415);
  expect_error(api_->create_pipeline(request("POST", "  \n")), 400);
  HttpRequest bad_query = request("POST", spec);
  bad_query.query["start"] = "maybe";
  bad_query.query["colour"] = "red";
  HttpResponse r = api_->create_pipeline(bad_query);
  expect_error(r, 400);
  EXPECT_EQ(body_of(r)["details"].size(), 2u) << r.body;

  const std::string invalid =
      "name: bad\n"
      "sources:\n"
      "  - {id: gen, type: generator, count: 10, fields: {i: \"i +\"}, colour: red}\n"
      "sinks:\n"
      "  - {id: out, type: file, input: nowhere, path: x}\n";
  r = api_->create_pipeline(request("POST", invalid));
  expect_error(r, 400);
  EXPECT_GE(body_of(r)["details"].size(), 2u) << r.body;
  // Not YAML at all.
  r = api_->create_pipeline(request("POST", "{\"name\": ", "application/json"));
  expect_error(r, 400);

  r = api_->create_pipeline(request("POST", spec, "application/yaml; charset=utf-8"));
  ASSERT_EQ(r.status, 201) << r.body;
  EXPECT_EQ(r.headers["location"], "/api/v1/pipelines/p");
  EXPECT_EQ(r.headers["etag"], "\"1\"");
  json p = body_of(r);
  EXPECT_EQ(p["name"], "p");
  EXPECT_EQ(p["version"], 1);
  EXPECT_EQ(p["etag"], "\"1\"");
  EXPECT_EQ(p["status"], "stopped");
  EXPECT_TRUE(p["current_run"].is_null());
  EXPECT_EQ(p["spec"], spec);
  EXPECT_EQ(p["format"], "yaml");
  expect_error(api_->create_pipeline(request("POST", spec)), 409);

  // JSON bodies are pipelines too.
  json as_json = {
      {"name", "j"},
      {"sources", {{{"id", "gen"}, {"type", "generator"}, {"count", 3}, {"fields", {{"i", "i"}}}}}},
      {"sinks", {{{"id", "out"}, {"type", "file"}, {"input", "gen"}, {"path", out("j")}}}}};
  r = api_->create_pipeline(request("POST", as_json.dump(), "application/json"));
  ASSERT_EQ(r.status, 201) << r.body;
  EXPECT_EQ(body_of(r)["format"], "json");

  r = api_->list_pipelines(request("GET"));
  ASSERT_EQ(r.status, 200);
  json list = body_of(r)["pipelines"];
  ASSERT_EQ(list.size(), 2u);
  EXPECT_FALSE(list[0].contains("spec"));
}

TEST_F(ApiTest, GetPutDeleteWithETags) {
  const std::string v1 = counting_pipeline("p", out(), 10, 0);
  ASSERT_EQ(api_->create_pipeline(request("POST", v1)).status, 201);
  HttpResponse r = api_->get_pipeline(for_pipeline("GET", "p"));
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.headers["etag"], "\"1\"");
  expect_error(api_->get_pipeline(for_pipeline("GET", "nope")), 404);

  const std::string v2 = counting_pipeline("p", out(), 20, 0);
  HttpRequest stale = for_pipeline("PUT", "p", v2);
  stale.headers["if-match"] = "\"7\"";
  expect_error(api_->put_pipeline(stale), 412);
  HttpRequest put = for_pipeline("PUT", "p", v2);
  put.headers["if-match"] = "\"1\"";
  r = api_->put_pipeline(put);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.headers["etag"], "\"2\"");
  EXPECT_EQ(body_of(r)["version"], 2);
  expect_error(api_->put_pipeline(put), 412);  // "1" is stale now
  expect_error(api_->put_pipeline(for_pipeline("PUT", "p", counting_pipeline("q", out(), 1, 0))),
               400);
  expect_error(api_->put_pipeline(for_pipeline("PUT", "p", v2, "text/csv")), 415);
  expect_error(
      api_->put_pipeline(for_pipeline("PUT", "nope", counting_pipeline("nope", out(), 1, 0))), 404);
  HttpRequest bad = for_pipeline("PUT", "p", v2);
  bad.query["allow_state_loss"] = "perhaps";
  expect_error(api_->put_pipeline(bad), 400);

  HttpRequest del = for_pipeline("DELETE", "p", "", "");
  del.headers["if-match"] = "\"1\"";
  expect_error(api_->delete_pipeline(del), 412);
  del.headers["if-match"] = "W/\"2\"";
  r = api_->delete_pipeline(del);
  EXPECT_EQ(r.status, 204) << r.body;
  expect_error(api_->delete_pipeline(for_pipeline("DELETE", "p", "", "")), 404);
}

TEST_F(ApiTest, RunsCheckpointsRollbackAndState) {
  ASSERT_EQ(api_->create_pipeline(request("POST", counting_pipeline("p", out(), 10'000'000, 20000)))
                .status,
            201);
  expect_error(api_->stop_pipeline(for_pipeline("POST", "p")), 409);       // not running
  expect_error(api_->request_checkpoint(for_pipeline("POST", "p")), 409);  // not running
  expect_error(api_->export_state(for_pipeline("GET", "p")), 404);         // no checkpoint
  expect_error(api_->start_pipeline(for_pipeline("POST", "nope")), 404);

  HttpResponse r = api_->start_pipeline(for_pipeline("POST", "p"));
  ASSERT_EQ(r.status, 202) << r.body;
  json run = body_of(r);
  const std::string id = run["id"];
  EXPECT_EQ(run["pipeline"], "p");
  EXPECT_EQ(run["version"], 1);
  EXPECT_TRUE(run["ended"].is_null());
  expect_error(api_->start_pipeline(for_pipeline("POST", "p")), 409);
  ASSERT_TRUE(
      eventually([&] { return body_of(api_->get_run(for_run("GET", id)))["checkpoints"] >= 1; }));
  EXPECT_EQ(api_->request_checkpoint(for_pipeline("POST", "p")).status, 202);
  expect_error(api_->delete_pipeline(for_pipeline("DELETE", "p", "", "")), 409);
  expect_error(api_->rollback(for_pipeline("POST", "p", "{\"offset\": 1}", "application/json")),
               409);
  expect_error(api_->import_state(for_pipeline("PUT", "p", "{}", "application/json")), 409);

  r = api_->cancel_run(for_run("POST", id));
  ASSERT_EQ(r.status, 202) << r.body;
  auto ended = manager_->wait_for_run(id, 30000ms);
  ASSERT_TRUE(ended.ok());
  r = api_->get_run(for_run("GET", id));
  ASSERT_EQ(r.status, 200);
  run = body_of(r);
  EXPECT_EQ(run["status"], "cancelled");
  EXPECT_TRUE(run["ended"].is_string());
  EXPECT_TRUE(run["last_checkpoint"].is_number());
  expect_error(api_->cancel_run(for_run("POST", id)), 409);
  expect_error(api_->get_run(for_run("GET", "r-nope")), 404);
  expect_error(api_->cancel_run(for_run("POST", "r-nope")), 404);
  r = api_->run_events(for_run("GET", id));
  ASSERT_EQ(r.status, 200);
  EXPECT_TRUE(body_of(r)["events"].is_array());
  expect_error(api_->run_events(for_run("GET", "r-nope")), 404);

  r = api_->pipeline_runs(for_pipeline("GET", "p"));
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(body_of(r)["runs"].size(), 1u);
  expect_error(api_->pipeline_runs(for_pipeline("GET", "nope")), 404);

  r = api_->list_checkpoints(for_pipeline("GET", "p"));
  ASSERT_EQ(r.status, 200);
  json checkpoints = body_of(r)["checkpoints"];
  ASSERT_GE(checkpoints.size(), 2u) << r.body;
  EXPECT_TRUE(checkpoints[0]["current"].get<bool>());
  EXPECT_TRUE(checkpoints[0]["time"].is_string());
  EXPECT_TRUE(checkpoints[0]["size_bytes"].is_number());
  const uint64_t newest = checkpoints[0]["id"];
  const uint64_t older = checkpoints[1]["id"];

  // Export the state, import it back, roll back.
  r = api_->export_state(for_pipeline("GET", "p"));
  ASSERT_EQ(r.status, 200) << r.body;
  json state = body_of(r);
  EXPECT_EQ(state["format"], "dataflow-state");
  EXPECT_EQ(state["checkpoint_id"], newest);
  expect_error(api_->import_state(for_pipeline("PUT", "p", r.body, "application/yaml")), 415);
  expect_error(api_->import_state(for_pipeline("PUT", "p", "{\"format\": 1}", "application/json")),
               400);
  HttpResponse imported = api_->import_state(for_pipeline("PUT", "p", r.body, "application/json"));
  ASSERT_EQ(imported.status, 200) << imported.body;
  EXPECT_GT(body_of(imported)["checkpoint"].get<uint64_t>(), newest);

  expect_error(api_->rollback(for_pipeline("POST", "p", "{\"offset\": ", "application/json")), 400);
  expect_error(
      api_->rollback(for_pipeline("POST", "p", "{\"offset\": 1, \"id\": 2}", "application/json")),
      400);
  expect_error(api_->rollback(for_pipeline("POST", "p", "{\"id\": -1}", "application/json")), 400);
  expect_error(api_->rollback(for_pipeline("POST", "p", "{\"id\": 1}", "text/plain")), 415);
  expect_error(api_->rollback(for_pipeline("POST", "p", "{\"id\": 999999}", "application/json")),
               400);
  r = api_->rollback(
      for_pipeline("POST", "p", "{\"id\": " + std::to_string(older) + "}", "application/json"));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(body_of(r)["current"], older);
}

TEST_F(ApiTest, PutOfARunningPipelineThatWouldDropStateIs409WithTheReason) {
  ASSERT_EQ(api_->create_pipeline(request("POST", counting_pipeline("p", out(), 10'000'000, 20000)))
                .status,
            201);
  HttpRequest start = for_pipeline("POST", "p");
  ASSERT_EQ(api_->start_pipeline(start).status, 202);
  HttpResponse r = api_->put_pipeline(
      for_pipeline("PUT", "p", counting_pipeline("p", out(), 10'000'000, 20000, 2)));
  expect_error(r, 409);
  EXPECT_NE(body_of(r)["error"].get<std::string>().find("parallelism"), std::string::npos);
  HttpRequest allowed =
      for_pipeline("PUT", "p", counting_pipeline("p", out(), 10'000'000, 20000, 2));
  allowed.query["allow_state_loss"] = "true";
  r = api_->put_pipeline(allowed);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(body_of(r)["version"], 2);
  ASSERT_TRUE(eventually([&] {
    json p = body_of(api_->get_pipeline(for_pipeline("GET", "p")));
    if (p["current_run"].is_null()) return false;
    json run = body_of(api_->get_run(for_run("GET", p["current_run"])));
    return run["version"] == 2 && run["status"] == "running";
  }));
  EXPECT_EQ(api_->stop_pipeline(for_pipeline("POST", "p")).status, 202);
}

TEST(OpenApi, DocumentsExactlyTheRoutes) {
  json doc = json::parse(openapi_document());
  EXPECT_EQ(doc["openapi"].get<std::string>().substr(0, 2), "3.");
  std::set<std::string> documented;
  for (const auto& [path, item] : doc["paths"].items()) {
    for (const auto& [method, op] : item.items()) {
      if (method == "parameters") continue;
      std::string m = method;
      std::transform(m.begin(), m.end(), m.begin(), ::toupper);
      documented.insert(m + " /api/v1" + path);
      EXPECT_TRUE(op.contains("responses")) << path;
    }
  }
  std::set<std::string> routed;
  for (const Api::Route& r : Api::routes()) routed.insert(std::string(r.method) + " " + r.pattern);
  for (const ConsoleApi::Route& r : ConsoleApi::routes()) {
    routed.insert(std::string(r.method) + " " + r.pattern);
  }
  routed.insert(std::string("GET ") + Api::kStreamPattern);
  EXPECT_EQ(documented, routed);

  // And the router holds exactly the routes of Api::routes().
  df::test::TempDir tmp;
  auto m = PipelineManager::open(test::manager_options(tmp.file("data")), test::real_compiler());
  ASSERT_TRUE(m.ok());
  Router router;
  add_api_routes(router, **m);
  std::vector<std::string> expected;
  for (const Api::Route& r : Api::routes())
    expected.push_back(std::string(r.method) + " " + r.pattern);
  expected.push_back(std::string("GET ") + Api::kStreamPattern);  // the WebSocket route
  EXPECT_EQ(router.routes(), expected);
}

// ---- Through a real HttpServer -------------------------------------------

using df::test::http_request;
using df::test::WebSocketClient;

class ApiServerTest : public ApiTest {
 protected:
  void SetUp() override {
    ApiTest::SetUp();
    auto router = std::make_shared<Router>();
    add_api_routes(*router, *manager_);
    HttpServerOptions options;
    options.listeners.push_back({"127.0.0.1", 0, router});
    options.max_body_size = 64 * 1024;
    server_ = std::make_unique<HttpServer>(options);
    ASSERT_TRUE(server_->start().ok());
    port_ = server_->port(0);
  }
  void TearDown() override {
    if (server_) server_->stop(std::chrono::milliseconds(2000));
  }
  std::unique_ptr<HttpServer> server_;
  uint16_t port_ = 0;
};

TEST_F(ApiServerTest, RoutesErrorsAndLimits) {
  const df::test::HttpFields yaml = {{"Content-Type", "application/yaml"}};
  auto r = http_request(port_, "POST", "/api/v1/pipelines?start=false",
                        counting_pipeline("p", out(), 100, 0), yaml);
  EXPECT_EQ(r.status, 201) << r.body << r.error;
  EXPECT_EQ(r.headers["location"], "/api/v1/pipelines/p");
  r = http_request(port_, "GET", "/api/v1/pipelines/p");
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.headers["etag"], "\"1\"");
  r = http_request(port_, "GET", "/api/v1/nothing-here");
  EXPECT_EQ(r.status, 404) << r.body;
  r = http_request(port_, "PATCH", "/api/v1/pipelines/p", "x", yaml);
  EXPECT_EQ(r.status, 405) << r.body;
  EXPECT_NE(r.headers["allow"].find("PUT"), std::string::npos) << r.headers["allow"];
  EXPECT_NE(r.headers["allow"].find("DELETE"), std::string::npos) << r.headers["allow"];
  r = http_request(port_, "POST", "/api/v1/pipelines", std::string(100 * 1024, '#'), yaml);
  EXPECT_EQ(r.status, 413) << r.body << r.error;
  r = http_request(port_, "POST", "/api/v1/pipelines", "name: x", {{"Content-Type", "text/plain"}});
  EXPECT_EQ(r.status, 415) << r.body;
  r = http_request(port_, "GET", "/api/v1/openapi.json");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(json::parse(r.body)["info"]["title"], "DataFlow REST API");
}

TEST_F(ApiServerTest, StreamSendsStatusChangesUntilTheRunEnds) {
  auto created = http_request(port_, "POST", "/api/v1/pipelines?start=true",
                              counting_pipeline("p", out(), 10'000'000, 20000),
                              {{"Content-Type", "application/yaml"}});
  ASSERT_EQ(created.status, 201) << created.body;
  const std::string id = json::parse(created.body)["current_run"];

  WebSocketClient ws(port_, "/api/v1/runs/" + id + "/stream");
  ASSERT_TRUE(ws.ok()) << ws.error();
  auto first = ws.read();
  ASSERT_TRUE(first);
  json status = json::parse(*first);
  EXPECT_EQ(status["type"], "status");
  EXPECT_EQ(status["run"]["id"], id);

  ASSERT_EQ(http_request(port_, "POST", "/api/v1/runs/" + id + "/cancel").status, 202);
  // Messages until the cancelled status; the server closes the stream then.
  bool saw_cancelled = false;
  bool saw_log = false;
  for (int i = 0; i < 10000 && !saw_cancelled; ++i) {
    auto m = ws.read();
    if (!m) break;
    json j = json::parse(*m);
    EXPECT_TRUE(j["type"] == "status" || j["type"] == "event" || j["type"] == "log") << *m;
    if (j["type"] == "status" && j["run"]["status"] == "cancelled") saw_cancelled = true;
    // The run thread's own line, logged just before its final status.
    if (j["type"] == "log" &&
        j["log"]["msg"].get<std::string>().find("ended cancelled") != std::string::npos) {
      saw_log = true;
    }
  }
  EXPECT_TRUE(saw_cancelled);
  EXPECT_TRUE(saw_log);
  EXPECT_FALSE(ws.read(std::chrono::seconds(5)));  // closed by the server

  WebSocketClient unknown(port_, "/api/v1/runs/r-nope/stream");
  EXPECT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.handshake_status(), 404);
}

// ---- The stream under authentication and its log backlog -----------------

// base64url without padding, as the console encodes credentials.
std::string base64url(std::string_view text) {
  std::string out(4 * ((text.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(text.data()),
                                static_cast<int>(text.size()));
  out.resize(static_cast<size_t>(n));
  while (!out.empty() && out.back() == '=') out.pop_back();
  for (char& c : out) {
    if (c == '+') c = '-';
    if (c == '/') c = '_';
  }
  return out;
}

class ApiAuthServerTest : public ApiTest {
 protected:
  void SetUp() override {
    ApiTest::SetUp();
    auto hash = hash_password("vera-pass", PasswordScheme::kBcrypt, PasswordCost{4, 256, 1});
    ASSERT_TRUE(hash.ok());
    std::ofstream(tmp_.file("users")) << "vera:" << *hash << ":viewer\n";
    SecuritySection security;
    security.auth.enabled = true;
    security.auth.api_keys = {{"viewer", "viewer-key", "viewer"}};
    security.authentication.methods = {"api_key", "basic"};
    security.authentication.basic.users_file = tmp_.file("users");
    auto access = AccessControl::create(security);
    ASSERT_TRUE(access.ok()) << access.status().to_string();
    auto router = std::make_shared<Router>();
    add_api_routes(*router, *manager_, *access);
    HttpServerOptions options;
    options.listeners.push_back({"127.0.0.1", 0, router});
    server_ = std::make_unique<HttpServer>(options);
    ASSERT_TRUE(server_->start().ok());
    port_ = server_->port(0);
  }
  void TearDown() override {
    if (server_) server_->stop(std::chrono::milliseconds(2000));
  }
  // A run that ended (cancelled), so its stream is deterministic.
  std::string ended_run() {
    auto created = manager_->create(counting_pipeline("p", out(), 10'000'000, 20000), "yaml", true);
    EXPECT_TRUE(created.ok()) << created.status().to_string();
    if (!created.ok() || !created->current_run) return "";
    const std::string id = created->current_run->id;
    EXPECT_TRUE(manager_->cancel(id).ok());
    auto ended = manager_->wait_for_run(id, Millis(20000));
    EXPECT_TRUE(ended.ok() && run_status_final(ended->status));
    return id;
  }
  std::unique_ptr<HttpServer> server_;
  uint16_t port_ = 0;
};

TEST_F(ApiAuthServerTest, StreamTakesTheCredentialAsASubprotocol) {
  const std::string id = ended_run();
  ASSERT_FALSE(id.empty());
  const std::string target = "/api/v1/runs/" + id + "/stream";

  WebSocketClient anonymous(port_, target, {{"Sec-WebSocket-Protocol", "dataflow"}});
  EXPECT_FALSE(anonymous.ok());
  EXPECT_EQ(anonymous.handshake_status(), 401);

  WebSocketClient wrong(
      port_, target,
      {{"Sec-WebSocket-Protocol", "dataflow, dataflow.bearer." + base64url("nope")}});
  EXPECT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.handshake_status(), 401);

  const std::string bearer = "dataflow.bearer." + base64url("viewer-key");
  const std::string basic = "dataflow.basic." + base64url("vera:vera-pass");
  for (const std::string& credential : {bearer, basic}) {
    WebSocketClient ws(port_, target, {{"Sec-WebSocket-Protocol", credential + ", dataflow"}});
    ASSERT_TRUE(ws.ok()) << credential << ": " << ws.error();
    EXPECT_EQ(ws.handshake_status(), 101);
    // The plain protocol is the answer: the credential is never echoed.
    EXPECT_EQ(ws.handshake_header("Sec-WebSocket-Protocol"), "dataflow");
    bool saw_status = false;
    for (int i = 0; i < 1000 && !saw_status; ++i) {
      auto m = ws.read();
      if (!m) break;
      saw_status = json::parse(*m)["type"] == "status";
    }
    EXPECT_TRUE(saw_status) << credential;
  }

  // Authorization (non-browser clients) works as before, with no protocol asked for.
  WebSocketClient header(port_, target, {{"Authorization", "Bearer viewer-key"}});
  ASSERT_TRUE(header.ok()) << header.error();
  EXPECT_EQ(header.handshake_header("Sec-WebSocket-Protocol"), "");
}

TEST_F(ApiAuthServerTest, StreamReplaysTheRunsRecentLogLinesFirst) {
  const std::string id = ended_run();
  ASSERT_FALSE(id.empty());
  WebSocketClient ws(port_, "/api/v1/runs/" + id + "/stream",
                     {{"Authorization", "Bearer viewer-key"}});
  ASSERT_TRUE(ws.ok()) << ws.error();
  // The run ended before the stream opened: its lines, then its final status.
  std::vector<json> messages;
  for (int i = 0; i < 1000; ++i) {
    auto m = ws.read();
    if (!m) break;
    messages.push_back(json::parse(*m));
  }
  ASSERT_GE(messages.size(), 2u);
  EXPECT_EQ(messages.back()["type"], "status");
  EXPECT_EQ(messages.back()["run"]["status"], "cancelled");
  bool saw_end = false;
  for (size_t i = 0; i + 1 < messages.size(); ++i) {
    EXPECT_EQ(messages[i]["type"], "log") << messages[i].dump();
    if (messages[i]["log"]["msg"].get<std::string>().find("ended cancelled") != std::string::npos) {
      saw_end = true;
    }
  }
  EXPECT_TRUE(saw_end);
}

TEST_F(ApiTest, RecentLogLinesAreBoundedPerRun) {
  const size_t logged = PipelineManager::kRecentLogLines + 10;
  {
    LogContext context({.run_id = "r-backlog"});
    for (size_t i = 0; i < logged; ++i) log_warn("test", "line " + std::to_string(i));
  }
  std::vector<std::string> replayed;
  std::mutex mu;
  const uint64_t token = manager_->subscribe("r-backlog", [&](const std::string& message) {
    std::lock_guard lock(mu);
    replayed.push_back(message);
  });
  manager_->unsubscribe(token);
  std::lock_guard lock(mu);
  ASSERT_EQ(replayed.size(), PipelineManager::kRecentLogLines);
  EXPECT_EQ(json::parse(replayed.front())["log"]["msg"], "line 10");
  EXPECT_EQ(json::parse(replayed.back())["log"]["msg"], "line " + std::to_string(logged - 1));
}

}  // namespace
}  // namespace df::server
