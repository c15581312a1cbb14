// PipelineManager against real pipelines (generator -> exactly-once file
// sink), real checkpoints on local disk and a real RocksDB metadata store.
#include "engine/server/pipeline_manager.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "tests/unit/server/manager_fixture.h"

namespace df::server {
namespace {

using namespace std::chrono_literals;
using test::counting_pipeline;
using test::eventually;
using test::expect_exact_rows;

class PipelineManagerTest : public ::testing::Test {
 protected:
  std::unique_ptr<PipelineManager> open_manager() {
    auto m = PipelineManager::open(test::manager_options(data_dir()), test::real_compiler());
    EXPECT_TRUE(m.ok()) << m.status().to_string();
    return m.ok() ? std::move(m).value() : nullptr;
  }
  std::string data_dir() const { return tmp_.file("data"); }
  std::string out(const std::string& name = "out") const { return tmp_.file(name); }

  // Waits until the run has completed at least `n` checkpoints.
  static void wait_for_checkpoints(PipelineManager& m, const std::string& run, uint64_t n) {
    ASSERT_TRUE(eventually([&] {
      auto r = m.run(run);
      return r.ok() && r->checkpoints >= n;
    })) << "no checkpoint";
  }

  df::test::TempDir tmp_;
};

TEST_F(PipelineManagerTest, CreateGetListAndVersions) {
  auto m = open_manager();
  ASSERT_TRUE(m);
  EXPECT_TRUE(m->ready());
  const std::string v1 = counting_pipeline("p1", out(), 10, 0);
  auto created = m->create(v1, "yaml", false);
  ASSERT_TRUE(created.ok()) << created.status().to_string();
  EXPECT_EQ(created->record.name, "p1");
  EXPECT_EQ(created->record.version, 1u);
  EXPECT_EQ(created->status, "stopped");
  EXPECT_FALSE(created->current_run);
  EXPECT_EQ(created->version.spec, v1);

  EXPECT_EQ(m->create(v1, "yaml", false).status().code(), StatusCode::kAlreadyExists);

  const std::string v2 = counting_pipeline("p1", out(), 20, 0);
  auto updated = m->update("p1", v2, "yaml", 1, false);
  ASSERT_TRUE(updated.ok()) << updated.status().to_string();
  EXPECT_EQ(updated->record.version, 2u);
  EXPECT_EQ(updated->version.spec, v2);
  // A stale If-Match version.
  EXPECT_EQ(m->update("p1", v2, "yaml", 1, false).status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(m->remove("p1", 1).code(), StatusCode::kFailedPrecondition);
  // The body names another pipeline.
  auto other = m->update("p1", counting_pipeline("p2", out(), 1, 0), "yaml", std::nullopt, false);
  EXPECT_EQ(other.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(m->update("nope", counting_pipeline("nope", out(), 1, 0), "yaml", std::nullopt, false)
                .status()
                .code(),
            StatusCode::kNotFound);

  ASSERT_TRUE(m->create(counting_pipeline("p0", out("o0"), 1, 0), "yaml", false).ok());
  auto list = m->list();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].record.name, "p0");
  EXPECT_EQ((*list)[1].record.version, 2u);

  ASSERT_TRUE(m->remove("p1", 2).ok());
  EXPECT_EQ(m->get("p1").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(m->remove("p1", std::nullopt).code(), StatusCode::kNotFound);
}

TEST_F(PipelineManagerTest, InvalidPipelineReportsEveryProblem) {
  auto m = open_manager();
  ASSERT_TRUE(m);
  const std::string bad =
      "name: bad\n"
      "sources:\n"
      "  - {id: gen, type: generator, count: 10, fields: {i: \"i +\"}, colour: red}\n"
      "sinks:\n"
      "  - {id: out, type: file, input: nowhere, path: x}\n";
  std::vector<std::string> problems;
  auto created = m->create(bad, "yaml", false, &problems);
  ASSERT_EQ(created.status().code(), StatusCode::kInvalidArgument);
  EXPECT_GE(problems.size(), 2u) << created.status().message();
  for (const std::string& p : problems) {
    EXPECT_EQ(p.rfind("pipeline.yaml:", 0), 0u) << p;
  }
  EXPECT_EQ(m->get("bad").status().code(), StatusCode::kNotFound);
  // A name that cannot be a directory.
  auto named = m->create(counting_pipeline("../x", out(), 1, 0), "yaml", false);
  EXPECT_EQ(named.status().code(), StatusCode::kInvalidArgument);
}

TEST_F(PipelineManagerTest, BoundedRunSucceedsAndIsRecorded) {
  auto m = open_manager();
  ASSERT_TRUE(m);
  auto created = m->create(counting_pipeline("bounded", out(), 5000, 0), "yaml", true);
  ASSERT_TRUE(created.ok()) << created.status().to_string();
  ASSERT_TRUE(created->current_run);
  const std::string run_id = created->current_run->id;
  auto run = m->wait_for_run(run_id, 30000ms);
  ASSERT_TRUE(run.ok());
  EXPECT_EQ(run->status, RunStatus::kSucceeded) << run->error;
  EXPECT_TRUE(run->ended_ms);
  EXPECT_GE(run->checkpoints, 1u);  // the final one at least
  expect_exact_rows(out(), 5000);
  auto view = m->get("bounded");
  ASSERT_TRUE(view.ok());
  EXPECT_EQ(view->status, "succeeded");
  auto runs = m->runs("bounded");
  ASSERT_TRUE(runs.ok());
  ASSERT_EQ(runs->size(), 1u);
  EXPECT_EQ((*runs)[0].id, run_id);
  auto checkpoints = m->checkpoints("bounded");
  ASSERT_TRUE(checkpoints.ok());
  ASSERT_FALSE(checkpoints->empty());
  EXPECT_TRUE((*checkpoints)[0].current);
  // Not running: nothing to stop or checkpoint.
  EXPECT_EQ(m->stop("bounded").status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(m->request_checkpoint("bounded").code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(m->cancel(run_id).status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(m->cancel("r-none").status().code(), StatusCode::kNotFound);
}

TEST_F(PipelineManagerTest, StopTakesAFinalCheckpointAndStartResumesExactly) {
  auto m = open_manager();
  ASSERT_TRUE(m);
  // 6 s at 20000 rows/s: the stop after the first checkpoint comes before
  // the end, also when a loaded (sanitizer) machine checkpoints late.
  constexpr size_t kRows = 120000;
  auto created = m->create(counting_pipeline("resume", out(), kRows, 20000), "yaml", true);
  ASSERT_TRUE(created.ok()) << created.status().to_string();
  const std::string first = created->current_run->id;
  wait_for_checkpoints(*m, first, 1);
  EXPECT_EQ(m->start("resume").status().code(), StatusCode::kFailedPrecondition);  // running
  EXPECT_EQ(m->remove("resume", std::nullopt).code(), StatusCode::kFailedPrecondition);
  EXPECT_TRUE(m->request_checkpoint("resume").ok());
  auto stopping = m->stop("resume");
  ASSERT_TRUE(stopping.ok()) << stopping.status().to_string();
  auto stopped = m->wait_for_run(first, 30000ms);
  ASSERT_TRUE(stopped.ok());
  EXPECT_EQ(stopped->status, RunStatus::kCancelled) << stopped->error;
  ASSERT_TRUE(stopped->last_checkpoint);
  EXPECT_EQ(m->get("resume")->status, "stopped");
  const size_t partial = df::test::committed_rows(out()).size();
  EXPECT_LT(partial, kRows);

  auto second = m->start("resume");
  ASSERT_TRUE(second.ok()) << second.status().to_string();
  EXPECT_NE(second->id, first);
  auto done = m->wait_for_run(second->id, 30000ms);
  ASSERT_TRUE(done.ok());
  EXPECT_EQ(done->status, RunStatus::kSucceeded) << done->error;
  expect_exact_rows(out(), kRows);
  auto runs = m->runs("resume");
  ASSERT_EQ(runs->size(), 2u);
  EXPECT_EQ((*runs)[0].id, second->id);  // newest first
}

TEST_F(PipelineManagerTest, CancelByRunIdStopsCooperatively) {
  auto m = open_manager();
  ASSERT_TRUE(m);
  auto created = m->create(counting_pipeline("cancel", out(), 10'000'000, 10000), "yaml", true);
  ASSERT_TRUE(created.ok());
  const std::string run_id = created->current_run->id;
  ASSERT_TRUE(eventually([&] { return m->run(run_id)->status == RunStatus::kRunning; }));
  EXPECT_EQ(m->get("cancel")->status, "running");
  // The numbers the metrics endpoint exports.
  ASSERT_TRUE(eventually([&] {
    for (const PipelineSnapshot& s : m->snapshot()) {
      if (s.name == "cancel" && s.running && s.run_id == run_id && s.events_processed > 0 &&
          s.checkpoints_completed > 0 && s.checkpoint_durations.count() > 0) {
        return true;
      }
    }
    return false;
  }));
  auto cancelled = m->cancel(run_id);
  ASSERT_TRUE(cancelled.ok()) << cancelled.status().to_string();
  auto run = m->wait_for_run(run_id, 30000ms);
  ASSERT_TRUE(run.ok());
  EXPECT_EQ(run->status, RunStatus::kCancelled);
  EXPECT_TRUE(run->ended_ms);
  // Stopped by the user: a new server would not resume it.
  EXPECT_FALSE(m->store().pipeline("cancel")->desired_running);
}

TEST_F(PipelineManagerTest, StartsBeyondTheRunLimitAreRefused) {
  ManagerOptions options = test::manager_options(data_dir());
  options.max_running = 1;
  auto opened = PipelineManager::open(options, test::real_compiler());
  ASSERT_TRUE(opened.ok());
  PipelineManager& m = **opened;
  auto first = m.create(counting_pipeline("one", out("one"), 10'000'000, 10000), "yaml", true);
  ASSERT_TRUE(first.ok()) << first.status().to_string();
  ASSERT_TRUE(m.create(counting_pipeline("two", out("two"), 10, 0), "yaml", false).ok());
  auto refused = m.start("two");
  EXPECT_EQ(refused.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.status().message().find("limit"), std::string::npos);
  ASSERT_TRUE(m.stop("one").ok());
  ASSERT_TRUE(m.wait_for_run(first->current_run->id, 30000ms).ok());
  auto second = m.start("two");
  ASSERT_TRUE(second.ok()) << second.status().to_string();
  EXPECT_EQ(m.wait_for_run(second->id, 30000ms)->status, RunStatus::kSucceeded);
}

TEST_F(PipelineManagerTest, FailureIsRecordedWithItsErrorAndEvents) {
  auto m = open_manager();
  ASSERT_TRUE(m);
  // The sink's directory cannot be created: a regular file is in the way.
  const std::string blocker = tmp_.write("blocker", "x");
  std::string p = counting_pipeline("fails", blocker + "/out", 100, 0);
  p += "healing: {restart: none}\n";
  auto created = m->create(p, "yaml", true);
  ASSERT_TRUE(created.ok()) << created.status().to_string();
  auto run = m->wait_for_run(created->current_run->id, 30000ms);
  ASSERT_TRUE(run.ok());
  EXPECT_EQ(run->status, RunStatus::kFailed);
  EXPECT_FALSE(run->error.empty());
  EXPECT_EQ(run->error.back(), '.');
  EXPECT_EQ(m->get("fails")->status, "failed");
  auto events = m->events(run->id);
  ASSERT_TRUE(events.ok());
  ASSERT_FALSE(events->empty());
  auto last = nlohmann::json::parse(events->back());
  EXPECT_EQ(last["action"], "fail") << events->back();
  EXPECT_EQ(m->events("r-none").status().code(), StatusCode::kNotFound);
}

TEST_F(PipelineManagerTest, ANewManagerResumesWhatTheLastOneWasRunning) {
  std::string run_id;
  {
    auto m = open_manager();
    ASSERT_TRUE(m);
    auto created = m->create(counting_pipeline("survivor", out(), 30000, 20000), "yaml", true);
    ASSERT_TRUE(created.ok());
    run_id = created->current_run->id;
    wait_for_checkpoints(*m, run_id, 1);
    EXPECT_EQ(m->shutdown(10000ms), 0u);  // nothing cut
    EXPECT_FALSE(m->ready());
    EXPECT_EQ(m->start("survivor").status().code(), StatusCode::kUnavailable);
  }
  auto m = open_manager();
  ASSERT_TRUE(m);
  auto old = m->run(run_id);
  ASSERT_TRUE(old.ok());
  EXPECT_EQ(old->status, RunStatus::kCancelled);
  auto view = m->get("survivor");
  ASSERT_TRUE(view.ok());
  ASSERT_TRUE(view->current_run);
  EXPECT_NE(view->current_run->id, run_id);  // a new run, resumed
  auto done = m->wait_for_run(view->current_run->id, 30000ms);
  ASSERT_TRUE(done.ok());
  EXPECT_EQ(done->status, RunStatus::kSucceeded) << done->error;
  expect_exact_rows(out(), 30000);
}

TEST_F(PipelineManagerTest, RunsLeftRunningByACrashAreFailedAndTheirPipelinesResumed) {
  // What a killed server leaves: a run still `running`, its pipeline desired running.
  {
    auto store = MetadataStore::open(data_dir() + "/metadata");
    ASSERT_TRUE(store.ok());
    PipelineRecord p{"crashed", 1, 1000, 1000, true, "r-old"};
    ASSERT_TRUE((*store)
                    ->put_version(p, {"crashed", 1, counting_pipeline("crashed", out(), 2000, 0),
                                      "yaml", 1000})
                    .ok());
    RunRecord r;
    r.id = "r-old";
    r.pipeline = "crashed";
    r.version = 1;
    r.status = RunStatus::kRunning;
    r.started_ms = 1000;
    ASSERT_TRUE((*store)->put_run(r).ok());
  }
  auto m = open_manager();
  ASSERT_TRUE(m);
  auto old = m->run("r-old");
  ASSERT_TRUE(old.ok());
  EXPECT_EQ(old->status, RunStatus::kFailed);
  EXPECT_NE(old->error.find("the server stopped"), std::string::npos) << old->error;
  EXPECT_TRUE(old->ended_ms);
  auto view = m->get("crashed");
  ASSERT_TRUE(view.ok());
  ASSERT_TRUE(view->current_run);
  ASSERT_NE(view->current_run->id, "r-old");
  auto done = m->wait_for_run(view->current_run->id, 30000ms);
  ASSERT_TRUE(done.ok());
  EXPECT_EQ(done->status, RunStatus::kSucceeded) << done->error;
  expect_exact_rows(out(), 2000);
}

TEST_F(PipelineManagerTest, PutOfARunningPipelineRestartsOnTheNewVersionWithItsState) {
  auto m = open_manager();
  ASSERT_TRUE(m);
  auto created = m->create(counting_pipeline("live", out(), 60000, 20000), "yaml", true);
  ASSERT_TRUE(created.ok());
  const std::string first = created->current_run->id;
  wait_for_checkpoints(*m, first, 1);
  // Faster, same nodes: the state carries over.
  auto updated =
      m->update("live", counting_pipeline("live", out(), 60000, 40000), "yaml", 1, false);
  ASSERT_TRUE(updated.ok()) << updated.status().to_string();
  EXPECT_EQ(updated->record.version, 2u);
  auto old = m->wait_for_run(first, 30000ms);
  ASSERT_TRUE(old.ok());
  EXPECT_EQ(old->status, RunStatus::kCancelled) << old->error;
  std::string second;
  ASSERT_TRUE(eventually([&] {
    auto v = m->get("live");
    if (!v.ok() || !v->current_run || v->current_run->id == first) return false;
    second = v->current_run->id;
    return true;
  }));
  auto done = m->wait_for_run(second, 30000ms);
  ASSERT_TRUE(done.ok());
  EXPECT_EQ(done->version, 2u);
  EXPECT_EQ(done->status, RunStatus::kSucceeded) << done->error;
  expect_exact_rows(out(), 60000);  // resumed: nothing twice, nothing lost
}

TEST_F(PipelineManagerTest, PutThatWouldDropStateIsRefusedUnlessAllowed) {
  auto m = open_manager();
  ASSERT_TRUE(m);
  auto created = m->create(counting_pipeline("st", out(), 10'000'000, 20000), "yaml", true);
  ASSERT_TRUE(created.ok());
  const std::string first = created->current_run->id;
  wait_for_checkpoints(*m, first, 1);
  // The generator's parallelism changes: its position cannot be rescaled.
  auto refused =
      m->update("st", counting_pipeline("st", out(), 10'000'000, 20000, 2), "yaml", 1, false);
  ASSERT_EQ(refused.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.status().message().find("node 'gen' changes parallelism from 1 to 2"),
            std::string::npos)
      << refused.status().message();
  EXPECT_NE(refused.status().message().find("allow_state_loss"), std::string::npos);
  // A renamed sink drops the old sink's state.
  auto renamed = m->update("st", counting_pipeline("st", out(), 10'000'000, 20000, 1, "out2"),
                           "yaml", 1, false);
  ASSERT_EQ(renamed.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(renamed.status().message().find("node 'out' (file) is gone"), std::string::npos)
      << renamed.status().message();
  EXPECT_EQ(m->get("st")->record.version, 1u);  // nothing stored
  EXPECT_EQ(m->run(first)->status, RunStatus::kRunning);

  // Allowed: the old checkpoints go and the new version starts afresh.
  const std::string fresh_out = out("fresh");
  auto allowed = m->update("st", counting_pipeline("st", fresh_out, 3000, 0, 2), "yaml", 1, true);
  ASSERT_TRUE(allowed.ok()) << allowed.status().to_string();
  EXPECT_EQ(allowed->record.version, 2u);
  ASSERT_TRUE(m->wait_for_run(first, 30000ms).ok());
  std::string second;
  ASSERT_TRUE(eventually([&] {
    auto v = m->get("st");
    if (!v.ok() || !v->current_run || v->current_run->id == first) return false;
    second = v->current_run->id;
    return true;
  }));
  auto done = m->wait_for_run(second, 30000ms);
  ASSERT_TRUE(done.ok());
  EXPECT_EQ(done->status, RunStatus::kSucceeded) << done->error;
  expect_exact_rows(fresh_out, 3000);  // from row 0: no state was restored
}

TEST(StateIncompatibility, NamesEveryNodeThatCannotKeepItsState) {
  auto compile = [](const std::string& text) {
    auto r = test::real_compiler()(text, "p.yaml");
    EXPECT_TRUE(r.pipeline) << (r.errors.empty() ? "" : r.errors[0]);
    return r.pipeline->plan;
  };
  auto base = compile(counting_pipeline("p", "o", 10, 0));
  EXPECT_EQ(state_incompatibility(*base, *compile(counting_pipeline("p", "o", 99, 5))), "");
  const std::string why =
      state_incompatibility(*base, *compile(counting_pipeline("p", "o", 10, 0, 3, "sink")));
  EXPECT_NE(why.find("node 'gen' changes parallelism from 1 to 3"), std::string::npos) << why;
  EXPECT_NE(why.find("node 'out' (file) is gone"), std::string::npos) << why;
}

}  // namespace
}  // namespace df::server
