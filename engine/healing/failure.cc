#include "engine/healing/failure.h"

#include <nlohmann/json.hpp>

#include "engine/core/time.h"

namespace df::healing {

namespace {
constexpr std::string_view kClassNames[] = {"transient", "data", "resource", "task", "fatal"};
constexpr std::string_view kActionNames[] = {
    "retry", "dead_letter", "skip", "throttle", "restart", "fail", "open_circuit", "close_circuit"};
}  // namespace

std::string_view failure_class_name(FailureClass c) { return kClassNames[static_cast<size_t>(c)]; }

std::optional<FailureClass> parse_failure_class(std::string_view name) {
  for (size_t i = 0; i < std::size(kClassNames); ++i) {
    if (kClassNames[i] == name) return static_cast<FailureClass>(i);
  }
  return std::nullopt;
}

std::string_view action_name(Action a) { return kActionNames[static_cast<size_t>(a)]; }

std::string RunEvent::to_json() const {
  nlohmann::ordered_json j;
  j["time"] = format_timestamp(time_ms);
  j["class"] = failure_class_name(failure_class);
  j["action"] = action_name(action);
  j["node"] = node;
  j["message"] = message;
  j["attempt"] = attempt;
  j["delay_ms"] = delay_ms;
  // Messages come from peers and files: never let bad UTF-8 throw here.
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace df::healing
