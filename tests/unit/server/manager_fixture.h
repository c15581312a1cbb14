// Shared by the server tests: the real pipeline compiler (config/) as the
// PipelineManager's compiler, test pipelines (generator -> file sink), and
// bounded waits.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <set>
#include <string>
#include <thread>

#include "config/pipeline_compiler.h"
#include "engine/server/pipeline_manager.h"
#include "tests/support/temp_dir.h"

namespace df::server::test {

inline PipelineCompiler real_compiler() {
  return [](const std::string& text, const std::string& source) {
    config::CompileOutcome out = config::compile_pipeline(text, source, plan::PlanOptions{});
    CompileResult result;
    result.errors = std::move(out.problems);
    if (out.pipeline) {
      result.pipeline = CompiledPipeline{out.pipeline->plan->settings.name, out.pipeline->plan,
                                         out.pipeline->healing, out.pipeline->restart_set};
    }
    return result;
  };
}

// generator (field i, `count` rows at `rate` rows/s, parallelism `gen_par`) ->
// exactly-once file sink in `out`, checkpoints every 100 ms.
inline std::string counting_pipeline(const std::string& name, const std::string& out, long count,
                                     long rate, int gen_par = 1,
                                     const std::string& sink_id = "out") {
  std::string p = "name: " + name +
                  "\n"
                  "checkpoint: {interval: 100ms, delivery: exactly_once}\n"
                  "sources:\n"
                  "  - {id: gen, type: generator, parallelism: " +
                  std::to_string(gen_par) + ", count: " + std::to_string(count);
  if (rate > 0) p += ", rate: " + std::to_string(rate);
  p += ", fields: {i: \"i\"}}\n"
       "sinks:\n"
       "  - {id: " +
       sink_id + ", type: file, input: gen, path: " + out + ", format: json}\n";
  return p;
}

// Polls `cond` every 10 ms for up to `timeout`.
inline bool eventually(const std::function<bool()>& cond,
                       std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return cond();
}

// The file sink's committed rows must be exactly {"i":0} .. {"i":count-1}.
inline void expect_exact_rows(const std::string& dir, long count) {
  const std::vector<std::string> rows = df::test::committed_rows(dir);
  std::set<std::string> unique(rows.begin(), rows.end());
  EXPECT_EQ(rows.size(), static_cast<size_t>(count)) << "rows (duplicates counted)";
  EXPECT_EQ(unique.size(), static_cast<size_t>(count)) << "distinct rows";
  if (count > 0) {
    EXPECT_TRUE(unique.count("{\"i\":0}"));
    EXPECT_TRUE(unique.count("{\"i\":" + std::to_string(count - 1) + "}"));
  }
}

inline ManagerOptions manager_options(const std::string& data_dir) {
  ManagerOptions o;
  o.data_dir = data_dir;
  o.run_options.workers = 2;
  return o;
}

}  // namespace df::server::test
