// HealthService over real HTTP on 127.0.0.1.
#include "engine/server/health.h"

#include <gtest/gtest.h>

#include <atomic>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "tests/unit/server/http_client.h"

namespace df::server {
namespace {

using Json = nlohmann::json;
using test::http_request;

// A server whose only router carries `health`'s routes under `path`.
struct HealthServer {
  HealthServer(HealthService& health, std::string path = "/health") {
    auto router = std::make_shared<Router>();
    health.add_routes(*router, path);
    HttpServerOptions options;
    options.listeners = {HttpListener{"127.0.0.1", 0, router}};
    server = std::make_unique<HttpServer>(options);
    Status started = server->start();
    EXPECT_TRUE(started.ok()) << started.to_string();
    port = server->port(0);
  }
  std::unique_ptr<HttpServer> server;
  uint16_t port = 0;
};

TEST(HealthServiceTest, ReportsWorstCheckWithDetails) {
  HealthService health("1.2.3");
  health.add_check("metadata_store", [] {
    return HealthCheckResult::healthy(R"({"path": "/var/lib/dataflow", "open": true})");
  });
  health.add_check("pipelines", [] { return HealthCheckResult::degraded(R"({"failed": 1})"); });
  HealthServer server(health);

  auto r = http_request(server.port, "GET", "/health");
  ASSERT_EQ(r.status, 200) << r.error << r.body;
  Json body = Json::parse(r.body);
  EXPECT_EQ(body["status"], "degraded");
  EXPECT_EQ(body["version"], "1.2.3");
  EXPECT_TRUE(body["uptime_seconds"].is_number_integer());
  EXPECT_GE(body["uptime_seconds"].get<int64_t>(), 0);
  EXPECT_EQ(body["checks"]["metadata_store"]["status"], "healthy");
  EXPECT_EQ(body["checks"]["metadata_store"]["path"], "/var/lib/dataflow");
  EXPECT_EQ(body["checks"]["metadata_store"]["open"], true);
  EXPECT_EQ(body["checks"]["pipelines"]["status"], "degraded");
  EXPECT_EQ(body["checks"]["pipelines"]["failed"], 1);
}

TEST(HealthServiceTest, UnhealthyOrThrowingCheckGives503) {
  HealthService health("dev");
  std::atomic<bool> broken{false};
  health.add_check("metadata_store", [&] {
    return broken.load() ? HealthCheckResult::unhealthy(R"({"error": "disk full"})")
                         : HealthCheckResult::healthy();
  });
  HealthServer server(health);
  EXPECT_EQ(http_request(server.port, "GET", "/health").status, 200);
  EXPECT_EQ(health.report().status, HealthStatus::kHealthy);

  broken = true;
  auto r = http_request(server.port, "GET", "/health");
  EXPECT_EQ(r.status, 503);
  Json body = Json::parse(r.body);
  EXPECT_EQ(body["status"], "unhealthy");
  EXPECT_EQ(body["checks"]["metadata_store"]["error"], "disk full");

  broken = false;
  health.add_check("pipelines", []() -> HealthCheckResult { throw std::runtime_error("bug"); });
  r = http_request(server.port, "GET", "/health");
  EXPECT_EQ(r.status, 503);
  body = Json::parse(r.body);
  EXPECT_EQ(body["checks"]["pipelines"]["status"], "unhealthy");
  EXPECT_EQ(body["checks"]["pipelines"]["error"], "bug");
  EXPECT_EQ(body["checks"]["metadata_store"]["status"], "healthy");

  // add_check with an existing name replaces the check.
  health.add_check("pipelines", [] { return HealthCheckResult::healthy(); });
  EXPECT_EQ(http_request(server.port, "GET", "/health").status, 200);
}

TEST(HealthServiceTest, LiveAndReady) {
  HealthService health("dev");
  std::atomic<bool> broken{false};
  health.add_check("metadata_store", [&] {
    return broken.load() ? HealthCheckResult::unhealthy() : HealthCheckResult::healthy();
  });
  HealthServer server(health);

  auto live = http_request(server.port, "GET", "/health/live");
  EXPECT_EQ(live.status, 200);
  EXPECT_EQ(Json::parse(live.body)["status"], "alive");

  auto ready = http_request(server.port, "GET", "/health/ready");
  EXPECT_EQ(ready.status, 503);
  EXPECT_EQ(Json::parse(ready.body)["status"], "not_ready");
  EXPECT_FALSE(health.ready());

  health.set_ready(true);
  ready = http_request(server.port, "GET", "/health/ready");
  EXPECT_EQ(ready.status, 200);
  EXPECT_EQ(Json::parse(ready.body)["status"], "ready");
  EXPECT_TRUE(health.ready());

  broken = true;
  EXPECT_EQ(http_request(server.port, "GET", "/health/ready").status, 503);
  EXPECT_EQ(http_request(server.port, "GET", "/health/live").status, 200);
  EXPECT_FALSE(health.ready());
}

TEST(HealthServiceTest, CustomPathAndNoChecks) {
  HealthService health("dev");
  HealthServer server(health, "/status/");
  auto r = http_request(server.port, "GET", "/status");
  ASSERT_EQ(r.status, 200);
  Json body = Json::parse(r.body);
  EXPECT_EQ(body["status"], "healthy");
  EXPECT_TRUE(body["checks"].is_object());
  EXPECT_TRUE(body["checks"].empty());
  EXPECT_EQ(http_request(server.port, "GET", "/status/live").status, 200);
  EXPECT_EQ(http_request(server.port, "GET", "/health").status, 404);
}

}  // namespace
}  // namespace df::server
