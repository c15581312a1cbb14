// What the hand-written Nexmark baselines share: the command line, the
// generator (connectors/nexmark_generator.h, the same one the `nexmark`
// source uses), the clock and the result rows.
//
//   bench_nexmark_qN EVENTS [--event-rate R] [--seed S] [--out FILE]
//
// Prints one line: "baseline query=qN events=E rows=R seconds=S
// events_per_s=X". With --out, the result rows go to FILE as JSON lines
// with the field names and formats of the DataFlow query's file sink
// (timestamps RFC 3339 UTC), so bench/run can compare the two.
// Single-threaded; everything lives in main().
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include "connectors/nexmark_generator.h"
#include "engine/core/log.h"
#include "engine/core/time.h"

namespace df::bench::nexmark {

using namespace df::connectors::nexmark;

struct Timestamp {
  int64_t ms;
};
using CellValue = std::variant<int64_t, double, std::string_view, Timestamp>;
using Cell = std::pair<const char*, CellValue>;

struct BaselineArgs {
  uint64_t events = 10'000'000;
  NexmarkConfig generator;
  std::string out_path;
};

inline BaselineArgs parse_args(int argc, char** argv) {
  BaselineArgs args;
  if (argc > 1) args.events = std::strtoull(argv[1], nullptr, 10);
  for (int i = 2; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--event-rate") == 0) {
      args.generator.event_rate = std::strtoull(argv[i + 1], nullptr, 10);
    } else if (std::strcmp(argv[i], "--seed") == 0) {
      args.generator.seed = std::strtoull(argv[i + 1], nullptr, 10);
    } else if (std::strcmp(argv[i], "--out") == 0) {
      args.out_path = argv[i + 1];
    } else {
      std::fprintf(stderr, "unknown argument %s\n", argv[i]);
      std::exit(2);
    }
  }
  return args;
}

// Counts result rows and, with an output file, writes them as JSON lines.
class ResultRows {
 public:
  explicit ResultRows(const std::string& path) {
    if (!path.empty()) {
      out_ = std::fopen(path.c_str(), "w");
      if (!out_) {
        std::perror(path.c_str());
        std::exit(3);
      }
    }
  }
  ~ResultRows() {
    if (out_) std::fclose(out_);
  }
  ResultRows(const ResultRows&) = delete;
  ResultRows& operator=(const ResultRows&) = delete;

  void row(std::initializer_list<Cell> cells) {
    ++rows_;
    if (!out_) return;
    line_.assign("{");
    for (const auto& [name, value] : cells) {
      if (line_.size() > 1) line_ += ',';
      append_json_string(name, line_);
      line_ += ':';
      if (const auto* i = std::get_if<int64_t>(&value)) {
        line_ += std::to_string(*i);
      } else if (const auto* d = std::get_if<double>(&value)) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.17g", *d);
        line_ += buf;
      } else if (const auto* s = std::get_if<std::string_view>(&value)) {
        append_json_string(*s, line_);
      } else {
        append_json_string(format_timestamp(std::get<Timestamp>(value).ms), line_);
      }
    }
    line_ += "}\n";
    std::fwrite(line_.data(), 1, line_.size(), out_);
  }
  uint64_t rows() const { return rows_; }

 private:
  std::FILE* out_ = nullptr;
  uint64_t rows_ = 0;
  std::string line_;
};

class Stopwatch {
 public:
  double seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }

 private:
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

inline void report(const char* query, const BaselineArgs& args, const ResultRows& rows,
                   const Stopwatch& clock) {
  const double secs = clock.seconds();
  std::printf("baseline query=%s events=%llu rows=%llu seconds=%.3f events_per_s=%.0f\n", query,
              static_cast<unsigned long long>(args.events),
              static_cast<unsigned long long>(rows.rows()), secs,
              static_cast<double>(args.events) / secs);
}

// Window start of `ts` for windows of `size_ms` aligned to the epoch.
inline int64_t window_start(int64_t ts, int64_t size_ms) {
  return ts - ((ts % size_ms) + size_ms) % size_ms;
}

}  // namespace df::bench::nexmark
