// The logger: JSON and text lines with context fields, LogContext scopes,
// file output with size rotation under concurrent writers, pruning by count
// and age, and listeners.
#include "engine/core/log.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/temp_dir.h"

namespace df {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

std::vector<std::string> lines_of(const std::string& path) {
  std::vector<std::string> lines;
  if (!fs::exists(path)) return lines;
  std::istringstream in(test::read_file(path));
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

class LogTest : public ::testing::Test {
 protected:
  void TearDown() override {
    // Back to the process default for the other tests of this binary.
    ASSERT_TRUE(configure_logging(
                    {.level = LogLevel::kInfo, .format = LogFormat::kText, .output = "stderr"})
                    .ok());
  }

  // Logs JSON lines to <tmp>/df.log.
  std::string to_file(LogSettings settings = {}) {
    settings.output = dir_.file("df.log");
    Status s = configure_logging(settings);
    EXPECT_TRUE(s.ok()) << s.to_string();
    return settings.output;
  }

  test::TempDir dir_;
};

TEST_F(LogTest, JsonLinesCarryTimeLevelComponentMessageAndContext) {
  const std::string path = to_file();
  log_info("runtime", "plain \"quoted\"\nline");
  {
    LogContext ctx({.pipeline = "orders", .run_id = "r-17"});
    log_warn("scheduler", "with context");
    {
      LogContext inner({.request_id = "req-1"});
      log_error("api", "nested");
    }
    log_info("scheduler", "inner scope ended");
  }
  log_debug("runtime", "filtered out at info");
  log_info("runtime", "context ended");

  const auto lines = lines_of(path);
  ASSERT_EQ(lines.size(), 5u);
  std::vector<Json> docs;
  for (const auto& line : lines) docs.push_back(Json::parse(line));

  EXPECT_EQ(docs[0]["level"], "info");
  EXPECT_EQ(docs[0]["component"], "runtime");
  EXPECT_EQ(docs[0]["msg"], "plain \"quoted\"\nline");
  EXPECT_EQ(docs[0].size(), 4u) << lines[0];  // no context fields when none is set
  const std::string time = docs[0]["time"];
  ASSERT_EQ(time.size(), 24u) << time;  // 2026-11-21T10:00:00.000Z
  EXPECT_TRUE(parse_timestamp(time).ok()) << time;
  EXPECT_EQ(time.back(), 'Z');

  EXPECT_EQ(docs[1]["level"], "warn");
  EXPECT_EQ(docs[1]["pipeline"], "orders");
  EXPECT_EQ(docs[1]["run_id"], "r-17");
  EXPECT_FALSE(docs[1].contains("request_id"));

  EXPECT_EQ(docs[2]["level"], "error");
  EXPECT_EQ(docs[2]["pipeline"], "orders");  // inherited
  EXPECT_EQ(docs[2]["run_id"], "r-17");
  EXPECT_EQ(docs[2]["request_id"], "req-1");

  EXPECT_EQ(docs[3]["pipeline"], "orders");
  EXPECT_FALSE(docs[3].contains("request_id"));  // the outer scope's fields again
  EXPECT_FALSE(docs[4].contains("pipeline"));
  // Keys in the documented order.
  EXPECT_EQ(lines[2].find("{\"time\":"), 0u) << lines[2];
  EXPECT_LT(lines[2].find("\"msg\""), lines[2].find("\"pipeline\""));
}

TEST_F(LogTest, AnAdoptedContextReplacesTheThreadsFieldsUntilItEnds) {
  const std::string path = to_file();
  const LogFields run{.pipeline = "orders", .run_id = "r-3"};
  LogContext ctx({.request_id = "req-9"});
  std::thread worker([&run] {
    for (int i = 0; i < 2; ++i) {  // as a scheduler worker would, per task run
      AdoptedLogContext adopted(run);
      EXPECT_EQ(&LogContext::current(), &run) << "adopted without a copy";
      log_info("runtime", "task ran");
    }
    EXPECT_TRUE(LogContext::current().pipeline.empty());
  });
  worker.join();
  {
    AdoptedLogContext adopted(run);
    LogContext inner({.request_id = "req-10"});  // nests over an adopted one
    log_info("server", "inner");
  }
  log_info("server", "after");
  const auto lines = lines_of(path);
  ASSERT_EQ(lines.size(), 4u);
  for (size_t i = 0; i < 2; ++i) {
    const Json j = Json::parse(lines[i]);
    EXPECT_EQ(j["pipeline"], "orders");
    EXPECT_EQ(j["run_id"], "r-3");
    EXPECT_FALSE(j.contains("request_id")) << "adopted fields replace, not merge";
  }
  EXPECT_EQ(Json::parse(lines[2])["pipeline"], "orders");
  EXPECT_EQ(Json::parse(lines[2])["request_id"], "req-10");
  EXPECT_FALSE(Json::parse(lines[3]).contains("pipeline"));
  EXPECT_EQ(Json::parse(lines[3])["request_id"], "req-9");
}

TEST_F(LogTest, TextLinesAppendTheContext) {
  const std::string path = to_file({.level = LogLevel::kDebug, .format = LogFormat::kText});
  {
    LogContext ctx({.pipeline = "p", .run_id = "r"});
    log_debug("state", "spilled");
  }
  const auto lines = lines_of(path);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_NE(lines[0].find("Z debug [state] spilled pipeline=p run_id=r"), std::string::npos)
      << lines[0];
}

TEST_F(LogTest, ContextIsPerThreadAndInnerFieldsOverride) {
  const std::string path = to_file();
  LogContext ctx({.pipeline = "outer", .run_id = "r-1"});
  std::thread other([] {
    EXPECT_TRUE(LogContext::current().pipeline.empty());
    log_info("other", "no context here");
    // Handing the context over explicitly.
  });
  other.join();
  {
    LogContext inner({.pipeline = "inner"});
    EXPECT_EQ(LogContext::current().pipeline, "inner");
    EXPECT_EQ(LogContext::current().run_id, "r-1");
    const LogFields captured = LogContext::current();
    std::thread handed([captured] {
      LogContext adopted(captured);
      log_info("worker", "adopted");
    });
    handed.join();
  }
  EXPECT_EQ(LogContext::current().pipeline, "outer");
  const auto lines = lines_of(path);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_FALSE(Json::parse(lines[0]).contains("pipeline"));
  EXPECT_EQ(Json::parse(lines[1])["pipeline"], "inner");
  EXPECT_EQ(Json::parse(lines[1])["run_id"], "r-1");
}

// Many threads log through rotations: every kept line is whole, every file
// stays under max_size, only max_backups rotated files remain, and they hold
// the newest lines in order (file.3 oldest ... file newest: each thread's
// line numbers only grow).
TEST_F(LogTest, RotatesBySizeUnderConcurrentWriters) {
  constexpr int kThreads = 4;
  constexpr int kLinesPerThread = 500;
  constexpr uint64_t kMaxSize = 8 * 1024;
  const std::string path = to_file({.max_size_bytes = kMaxSize, .max_backups = 3});
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([t] {
      LogContext ctx({.run_id = "t" + std::to_string(t)});
      for (int i = 0; i < kLinesPerThread; ++i) {
        log_info("writer", std::to_string(i) + " " + std::string(40, 'x'));
      }
    });
  }
  for (auto& th : threads) th.join();
  log_info("main", "final");

  EXPECT_TRUE(fs::exists(path + ".1"));
  EXPECT_TRUE(fs::exists(path + ".3"));
  EXPECT_FALSE(fs::exists(path + ".4"));
  std::map<std::string, int> last_seen;  // run id -> last line number, across files in order
  size_t kept = 0;
  for (const std::string& file : {path + ".3", path + ".2", path + ".1", path}) {
    const uint64_t size = fs::file_size(file);
    EXPECT_LE(size, kMaxSize) << file;
    // A file is rotated only when the next line does not fit.
    if (file != path) {
      EXPECT_GT(size, kMaxSize - 200) << file;
    }
    for (const std::string& line : lines_of(file)) {
      ++kept;
      Json doc = Json::parse(line, nullptr, /*allow_exceptions=*/false);
      ASSERT_FALSE(doc.is_discarded()) << file << ": " << line;
      if (doc["msg"] == "final") continue;
      const std::string msg = doc["msg"];
      const int n = std::stoi(msg.substr(0, msg.find(' ')));
      const std::string run = doc["run_id"];
      auto it = last_seen.find(run);
      if (it != last_seen.end()) {
        EXPECT_GT(n, it->second) << run << " in " << file;
      }
      last_seen[run] = n;
    }
  }
  EXPECT_GT(kept, 100u);
  EXPECT_LT(kept, static_cast<size_t>(kThreads * kLinesPerThread));  // old ones were dropped
  const auto newest = lines_of(path);
  ASSERT_FALSE(newest.empty());
  EXPECT_EQ(Json::parse(newest.back())["msg"], "final");
}

TEST_F(LogTest, PrunesRotatedFilesBeyondTheCountAndTooOld) {
  const std::string path = dir_.file("df.log");
  for (int n = 1; n <= 6; ++n) test::write_file(path + "." + std::to_string(n), "old\n");
  test::write_file(dir_.file("df.log.keep"), "not a backup\n");
  test::write_file(dir_.file("other.log.9"), "not ours\n");
  // file.2 is old.
  fs::last_write_time(path + ".2", fs::file_time_type::clock::now() - std::chrono::hours(48));
  to_file({.max_backups = 4, .max_age = std::chrono::hours(24)});
  EXPECT_TRUE(fs::exists(path + ".1"));
  EXPECT_FALSE(fs::exists(path + ".2"));
  EXPECT_TRUE(fs::exists(path + ".3"));
  EXPECT_TRUE(fs::exists(path + ".4"));
  EXPECT_FALSE(fs::exists(path + ".5"));
  EXPECT_FALSE(fs::exists(path + ".6"));
  EXPECT_TRUE(fs::exists(dir_.file("df.log.keep")));
  EXPECT_TRUE(fs::exists(dir_.file("other.log.9")));

  // max_backups 0: a full file is simply started over.
  to_file({.max_size_bytes = 200, .max_backups = 0});
  for (int i = 0; i < 20; ++i) log_info("c", "line " + std::to_string(i));
  EXPECT_LE(fs::file_size(path), 200u);
  EXPECT_FALSE(fs::exists(path + ".1"));
  EXPECT_NE(test::read_file(path).find("line 19"), std::string::npos);
}

TEST_F(LogTest, AnUnopenableFileKeepsTheCurrentOutput) {
  const std::string path = to_file();
  Status s = configure_logging({.output = dir_.file("no/such/dir/df.log")});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kIoError);
  EXPECT_NE(s.message().find("no/such/dir/df.log"), std::string::npos) << s.message();
  log_info("c", "still here");
  EXPECT_EQ(lines_of(path).size(), 1u);
  EXPECT_FALSE(configure_logging({.max_backups = -1}).ok());
}

TEST_F(LogTest, ListenersSeeEveryLineWithItsContext) {
  to_file();
  std::mutex mu;
  std::vector<std::string> seen;
  const uint64_t id = add_log_listener([&](const LogRecord& r) {
    std::lock_guard lock(mu);
    seen.push_back(std::string(r.component) + "|" + std::string(r.message) + "|" +
                   r.context.run_id);
    EXPECT_EQ(Json::parse(log_record_json(r))["msg"], r.message);
    // Logging from a listener is written, not fed back to listeners.
    log_info("listener", "echo");
  });
  {
    LogContext ctx({.run_id = "r-9"});
    log_info("api", "one");
  }
  log_debug("api", "below the level");
  log_warn("api", "two");
  remove_log_listener(id);
  log_info("api", "after removal");

  std::lock_guard lock(mu);
  EXPECT_EQ(seen, (std::vector<std::string>{"api|one|r-9", "api|two|"}));
  const auto lines = lines_of(dir_.file("df.log"));
  ASSERT_EQ(lines.size(), 5u);  // one, echo, two, echo, after removal
  EXPECT_EQ(Json::parse(lines[1])["msg"], "echo");
}

TEST_F(LogTest, ListenersMayNotChangeListeners) {
  to_file();
  std::atomic<int> refused{0};
  const uint64_t id = add_log_listener([&](const LogRecord&) {
    try {
      add_log_listener([](const LogRecord&) {});
    } catch (const std::logic_error&) {
      refused.fetch_add(1);
    }
  });
  log_info("c", "m");
  remove_log_listener(id);
  EXPECT_EQ(refused.load(), 1);
}

// After remove_log_listener returns, the listener never runs again, even
// while other threads keep logging.
TEST_F(LogTest, RemovingAListenerWaitsForCallsInFlight) {
  to_file({.max_size_bytes = 64 * 1024, .max_backups = 1});
  std::atomic<bool> removed{false};
  std::atomic<int> calls{0};
  std::atomic<int> late_calls{0};
  const uint64_t id = add_log_listener([&](const LogRecord&) {
    calls.fetch_add(1);
    std::this_thread::sleep_for(std::chrono::microseconds(200));
    if (removed.load()) late_calls.fetch_add(1);
  });
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 2000 && !stop.load(); ++i) log_info("c", "spin");
    });
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (calls.load() < 10 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_GE(calls.load(), 10);
  remove_log_listener(id);
  removed.store(true);
  const int at_removal = calls.load();
  stop.store(true);
  for (auto& th : threads) th.join();
  EXPECT_EQ(late_calls.load(), 0);
  EXPECT_EQ(calls.load(), at_removal);
}

TEST(LogNames, ParseAndPrint) {
  EXPECT_EQ(*parse_log_level("WARNING"), LogLevel::kWarn);
  EXPECT_EQ(*parse_log_level("debug"), LogLevel::kDebug);
  EXPECT_FALSE(parse_log_level("loud").ok());
  EXPECT_EQ(log_level_name(LogLevel::kError), "error");
  EXPECT_EQ(*parse_log_format("Json"), LogFormat::kJson);
  EXPECT_FALSE(parse_log_format("xml").ok());
  EXPECT_EQ(log_format_name(LogFormat::kText), "text");
}

}  // namespace
}  // namespace df
