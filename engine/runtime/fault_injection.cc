#include "engine/runtime/fault_injection.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <stdexcept>

namespace df::runtime {

namespace {

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (start <= s.size()) {
    size_t end = s.find(sep, start);
    if (end == std::string_view::npos) end = s.size();
    parts.push_back(s.substr(start, end - start));
    start = end + 1;
  }
  return parts;
}

bool parse_u64(std::string_view s, uint64_t& out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

constexpr std::string_view kErrors[] = {"exception", "bad_alloc", "internal", "unavailable", "io",
                                        "resource",  "data",      "fatal",    "kill"};

}  // namespace

Result<std::vector<FaultSpec>> parse_faults(std::string_view text) {
  std::vector<FaultSpec> specs;
  for (std::string_view item : split(text, ';')) {
    if (item.empty()) continue;
    const std::string where = "DATAFLOW_FAULTS entry '" + std::string(item) + "'";
    auto parts = split(item, ':');
    if (parts.size() < 3) {
      return Status::invalid(where + " needs node:call:error");
    }
    FaultSpec f;
    f.node = parts[0];
    f.call = parts[1];
    f.error = parts[2];
    if (f.node.empty()) return Status::invalid(where + " names no node");
    if (f.call != "process" && f.call != "produce") {
      return Status::invalid(where + ": call must be process or produce");
    }
    if (std::find(std::begin(kErrors), std::end(kErrors), f.error) == std::end(kErrors)) {
      return Status::invalid(where + ": unknown error '" + f.error + "'");
    }
    for (size_t i = 3; i < parts.size(); ++i) {
      auto eq = parts[i].find('=');
      std::string_view key = parts[i].substr(0, eq);
      std::string_view value = eq == std::string_view::npos ? "" : parts[i].substr(eq + 1);
      bool ok = false;
      if (key == "after") {
        ok = parse_u64(value, f.after);
      } else if (key == "checkpoints") {
        ok = parse_u64(value, f.checkpoints);
      } else if (key == "times") {
        ok = parse_u64(value, f.times);
      } else if (key == "seed") {
        ok = parse_u64(value, f.seed);
      } else if (key == "rate") {
        char* end = nullptr;
        std::string v(value);
        f.rate = std::strtod(v.c_str(), &end);
        ok = !v.empty() && end == v.c_str() + v.size() && f.rate > 0 && f.rate <= 1;
      }
      if (!ok) return Status::invalid(where + ": bad option '" + std::string(parts[i]) + "'");
    }
    specs.push_back(std::move(f));
  }
  return specs;
}

FaultInjector::FaultInjector(std::vector<FaultSpec> specs) {
  for (auto& s : specs) {
    Armed a;
    a.rng.seed(s.seed);
    a.spec = std::move(s);
    armed_.push_back(std::move(a));
  }
  enabled_.store(!armed_.empty(), std::memory_order_relaxed);
}

Status FaultInjector::check(std::string_view node, std::string_view call) {
  if (!enabled()) return Status::OK();
  std::string error;
  {
    std::lock_guard lock(mu_);
    for (Armed& a : armed_) {
      if (a.spec.node != node || a.spec.call != call) continue;
      if (a.spec.times != 0 && a.fired >= a.spec.times) continue;
      if (completed_.load(std::memory_order_relaxed) < a.spec.checkpoints) continue;
      if (a.seen++ < a.spec.after) continue;
      if (a.spec.rate < 1.0 && std::uniform_real_distribution<double>(0, 1)(a.rng) >= a.spec.rate) {
        continue;
      }
      ++a.fired;
      error = a.spec.error;
      break;
    }
  }
  if (error.empty()) return Status::OK();
  const std::string what = "injected fault in " + std::string(node) + " " + std::string(call);
  if (error == "exception") throw std::runtime_error(what);
  if (error == "bad_alloc") throw std::bad_alloc();
  if (error == "kill") {
    std::fprintf(stderr, "dataflow: %s: killing the process\n", what.c_str());
    std::fflush(stderr);
    ::kill(::getpid(), SIGKILL);
  }
  if (error == "unavailable") return Status::unavailable(what);
  if (error == "io") return Status::io_error(what);
  if (error == "resource") return Status::resource_exhausted(what);
  if (error == "data") return Status::data_error(what);
  if (error == "fatal") return Status::invalid(what);
  return Status::internal(what);
}

FaultInjector& faults() {
  static FaultInjector* injector = [] {
    const char* env = std::getenv("DATAFLOW_FAULTS");
    std::vector<FaultSpec> specs;
    if (env && *env) {
      auto parsed = parse_faults(env);
      if (parsed.ok()) {
        specs = std::move(*parsed);
      } else {
        std::fprintf(stderr, "dataflow: ignoring DATAFLOW_FAULTS: %s\n",
                     parsed.status().message().c_str());
      }
    }
    return new FaultInjector(std::move(specs));  // lives for the process
  }();
  return *injector;
}

}  // namespace df::runtime
