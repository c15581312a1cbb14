#include "engine/server/health.h"

#include <algorithm>
#include <exception>

#include <nlohmann/json.hpp>

#include "engine/core/log.h"

namespace df::server {

namespace {

using Json = nlohmann::ordered_json;

constexpr std::string_view kLog = "health";

// The check's object: {"status": ..., <detail members>...}.
Json check_object(const std::string& name, const HealthCheckResult& result) {
  Json object = Json::object();
  object["status"] = std::string(health_status_name(result.status));
  if (result.detail.empty()) return object;
  Json detail = Json::parse(result.detail, nullptr, /*allow_exceptions=*/false);
  if (!detail.is_object()) {
    // A bug in the check; keep the text visible rather than losing it.
    log_error(kLog, "health check '" + name + "' returned detail that is not a JSON object");
    object["detail"] = result.detail;
    return object;
  }
  for (auto& [key, value] : detail.items()) {
    if (key != "status") object[key] = value;
  }
  return object;
}

}  // namespace

std::string_view health_status_name(HealthStatus status) {
  switch (status) {
    case HealthStatus::kHealthy:
      return "healthy";
    case HealthStatus::kDegraded:
      return "degraded";
    case HealthStatus::kUnhealthy:
      return "unhealthy";
  }
  return "unhealthy";
}

HealthService::HealthService(std::string version)
    : version_(std::move(version)), started_(std::chrono::steady_clock::now()) {}

void HealthService::add_check(std::string name, HealthCheck check) {
  std::lock_guard lock(mu_);
  for (auto& [existing, existing_check] : checks_) {
    if (existing == name) {
      existing_check = std::move(check);
      return;
    }
  }
  checks_.emplace_back(std::move(name), std::move(check));
}

void HealthService::set_ready(bool ready) {
  std::lock_guard lock(mu_);
  ready_ = ready;
}

std::vector<std::pair<std::string, HealthCheck>> HealthService::checks_snapshot() const {
  std::lock_guard lock(mu_);
  return checks_;
}

// Runs the checks outside the lock (they may take a moment); fills
// *checks_json with the "checks" object when asked.
HealthStatus HealthService::run_checks(std::string* checks_json) const {
  HealthStatus overall = HealthStatus::kHealthy;
  Json checks = Json::object();
  for (const auto& [name, check] : checks_snapshot()) {
    HealthCheckResult result;
    std::string error;
    try {
      result = check();
    } catch (const std::exception& e) {
      error = e.what();
    } catch (...) {
      error = "non-standard exception";
    }
    if (!error.empty()) {
      log_error(kLog, "health check '" + name + "' threw: " + error);
      result = HealthCheckResult::unhealthy();
    }
    overall = std::max(overall, result.status);
    if (checks_json) {
      Json object = check_object(name, result);
      if (!error.empty()) object["error"] = error;
      checks[name] = std::move(object);
    }
  }
  if (checks_json) *checks_json = checks.dump();
  return overall;
}

bool HealthService::ready() const {
  {
    std::lock_guard lock(mu_);
    if (!ready_) return false;
  }
  return run_checks(nullptr) != HealthStatus::kUnhealthy;
}

HealthReport HealthService::report() const {
  std::string checks;
  const HealthStatus status = run_checks(&checks);
  const auto uptime =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - started_);
  Json body = Json::object();
  body["status"] = std::string(health_status_name(status));
  body["version"] = version_;
  body["uptime_seconds"] = uptime.count();
  body["checks"] = Json::parse(checks);
  return {status, body.dump()};
}

void HealthService::add_routes(Router& router, std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  router.add("GET", path, [this](const HttpRequest&) {
    HealthReport report = this->report();
    return HttpResponse::json(report.status == HealthStatus::kUnhealthy ? 503 : 200,
                              std::move(report.json));
  });
  router.add("GET", path + "/live",
             [](const HttpRequest&) { return HttpResponse::json(200, R"({"status": "alive"})"); });
  router.add("GET", path + "/ready", [this](const HttpRequest&) {
    bool flag;
    {
      std::lock_guard lock(mu_);
      flag = ready_;
    }
    if (!flag) {
      return HttpResponse::json(503, R"({"status": "not_ready", "reason": "starting"})");
    }
    if (run_checks(nullptr) == HealthStatus::kUnhealthy) {
      return HttpResponse::json(503, R"({"status": "not_ready", "reason": "unhealthy"})");
    }
    return HttpResponse::json(200, R"({"status": "ready"})");
  });
}

}  // namespace df::server
