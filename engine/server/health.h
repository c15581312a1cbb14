// HealthService: the health endpoints of docs/rest-api.md. Named checks each
// report healthy, degraded or unhealthy with details; the overall status is
// the worst of them. Readiness is a flag the server sets once startup has
// finished (metadata store open, resumed pipelines running).
//
// Threading: every method is thread-safe. Checks run on the HTTP thread that
// serves the request, possibly on several at once, so they must be
// thread-safe and quick (read state, do not wait on I/O). The service must
// outlive every router it added routes to.
#pragma once

#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/server/http.h"

namespace df::server {

// Ordered from best to worst.
enum class HealthStatus { kHealthy, kDegraded, kUnhealthy };

// "healthy", "degraded", "unhealthy".
std::string_view health_status_name(HealthStatus status);

struct HealthCheckResult {
  HealthStatus status = HealthStatus::kHealthy;
  // Members added to the check's JSON object next to "status": the text of
  // a JSON object, e.g. R"({"running": 3, "failed": 0})"; empty for none.
  std::string detail;

  static HealthCheckResult healthy(std::string detail = {}) {
    return {HealthStatus::kHealthy, std::move(detail)};
  }
  static HealthCheckResult degraded(std::string detail = {}) {
    return {HealthStatus::kDegraded, std::move(detail)};
  }
  static HealthCheckResult unhealthy(std::string detail = {}) {
    return {HealthStatus::kUnhealthy, std::move(detail)};
  }
};

// A check that throws counts as unhealthy (the exception is a bug; it is
// logged and its message becomes the check's "error").
using HealthCheck = std::function<HealthCheckResult()>;

struct HealthReport {
  HealthStatus status = HealthStatus::kHealthy;
  // {"status", "version", "uptime_seconds", "checks": {name: {"status", ...}}}
  std::string json;
};

class HealthService {
 public:
  explicit HealthService(std::string version);

  // Adds a check, or replaces the one with the same name.
  void add_check(std::string name, HealthCheck check);
  void set_ready(bool ready);
  // Ready: the flag is set and no check is unhealthy.
  bool ready() const;
  // Runs every check now.
  HealthReport report() const;

  // GET path (200 unless unhealthy, then 503), GET path/live (always 200
  // {"status": "alive"}) and GET path/ready (200 {"status": "ready"}, else
  // 503 {"status": "not_ready", "reason": ...}).
  void add_routes(Router& router, std::string path = "/health");

 private:
  std::vector<std::pair<std::string, HealthCheck>> checks_snapshot() const;
  HealthStatus run_checks(std::string* checks_json) const;

  const std::string version_;
  const std::chrono::steady_clock::time_point started_;
  mutable std::mutex mu_;
  std::vector<std::pair<std::string, HealthCheck>> checks_;  // in the order added
  bool ready_ = false;
};

}  // namespace df::server
