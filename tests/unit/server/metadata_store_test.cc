// MetadataStore against a real RocksDB: records round-trip, survive reopening,
// list in order, and events stay bounded per run.
#include "engine/server/metadata_store.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "tests/support/temp_dir.h"

namespace df::server {
namespace {

RunRecord make_run(const std::string& id, const std::string& pipeline, int64_t started) {
  RunRecord r;
  r.id = id;
  r.pipeline = pipeline;
  r.version = 1;
  r.status = RunStatus::kRunning;
  r.started_ms = started;
  return r;
}

TEST(MetadataStore, PipelinesAndVersionsSurviveReopening) {
  df::test::TempDir dir;
  {
    auto store = MetadataStore::open(dir.str());
    ASSERT_TRUE(store.ok()) << store.status().to_string();
    PipelineRecord p{"orders", 1, 1000, 1000, true, ""};
    ASSERT_TRUE((*store)->put_version(p, {"orders", 1, "name: orders\n", "yaml", 1000}).ok());
    p.version = 2;
    p.updated_ms = 2000;
    ASSERT_TRUE(
        (*store)->put_version(p, {"orders", 2, "{\"name\":\"orders\"}", "json", 2000}).ok());
    PipelineRecord q{"clicks", 1, 1500, 1500, false, "r-1"};
    ASSERT_TRUE((*store)->put_version(q, {"clicks", 1, "name: clicks\n", "yaml", 1500}).ok());
  }
  auto store = MetadataStore::open(dir.str());
  ASSERT_TRUE(store.ok());
  auto p = (*store)->pipeline("orders");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->version, 2u);
  EXPECT_TRUE(p->desired_running);
  EXPECT_EQ(p->updated_ms, 2000);
  auto v1 = (*store)->version("orders", 1);
  ASSERT_TRUE(v1.ok());
  EXPECT_EQ(v1->spec, "name: orders\n");
  EXPECT_EQ(v1->format, "yaml");
  auto v2 = (*store)->version("orders", 2);
  ASSERT_TRUE(v2.ok());
  EXPECT_EQ(v2->format, "json");
  EXPECT_EQ((*store)->version("orders", 3).status().code(), StatusCode::kNotFound);
  EXPECT_EQ((*store)->pipeline("nope").status().code(), StatusCode::kNotFound);

  auto all = (*store)->pipelines();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 2u);  // versions are not pipelines
  EXPECT_EQ((*all)[0].name, "clicks");
  EXPECT_EQ((*all)[0].current_run, "r-1");
  EXPECT_EQ((*all)[1].name, "orders");
}

TEST(MetadataStore, RunsNewestFirstAndRemovedWithTheirPipeline) {
  df::test::TempDir dir;
  auto store = MetadataStore::open(dir.str());
  ASSERT_TRUE(store.ok());
  PipelineRecord p{"a", 1, 1, 1, false, ""};
  ASSERT_TRUE((*store)->put_version(p, {"a", 1, "x", "yaml", 1}).ok());
  ASSERT_TRUE((*store)->put_run(make_run("r-1", "a", 100)).ok());
  ASSERT_TRUE((*store)->put_run(make_run("r-3", "a", 300)).ok());
  ASSERT_TRUE((*store)->put_run(make_run("r-2", "b", 200)).ok());
  RunRecord ended = make_run("r-4", "a", 400);
  ended.status = RunStatus::kFailed;
  ended.ended_ms = 450;
  ended.error = "boom.";
  ended.last_checkpoint = 7;
  ended.checkpoints = 3;
  ended.restarts = 2;
  ASSERT_TRUE((*store)->put_run(ended).ok());
  ASSERT_TRUE((*store)->append_event("r-4", R"({"action":"fail"})").ok());

  auto runs = (*store)->runs("a");
  ASSERT_TRUE(runs.ok());
  ASSERT_EQ(runs->size(), 3u);
  EXPECT_EQ((*runs)[0].id, "r-4");
  EXPECT_EQ((*runs)[1].id, "r-3");
  EXPECT_EQ((*runs)[2].id, "r-1");
  auto back = (*store)->run("r-4");
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->status, RunStatus::kFailed);
  EXPECT_EQ(back->ended_ms, 450);
  EXPECT_EQ(back->error, "boom.");
  EXPECT_EQ(back->last_checkpoint, 7u);
  EXPECT_EQ(back->checkpoints, 3u);
  EXPECT_EQ(back->restarts, 2u);
  EXPECT_EQ((*store)->runs()->size(), 4u);

  auto json = nlohmann::json::parse(run_to_json(*back));
  EXPECT_EQ(json["status"], "failed");
  EXPECT_EQ(json["error"], "boom.");
  EXPECT_EQ(json["last_checkpoint"], 7);
  EXPECT_EQ(json["ended"], "1970-01-01T00:00:00.450Z");
  auto running = nlohmann::json::parse(run_to_json(make_run("r-9", "a", 0)));
  EXPECT_TRUE(running["ended"].is_null());
  EXPECT_TRUE(running["error"].is_null());
  EXPECT_TRUE(running["last_checkpoint"].is_null());

  ASSERT_TRUE((*store)->remove_pipeline("a").ok());
  EXPECT_EQ((*store)->pipeline("a").status().code(), StatusCode::kNotFound);
  EXPECT_EQ((*store)->version("a", 1).status().code(), StatusCode::kNotFound);
  EXPECT_EQ((*store)->run("r-4").status().code(), StatusCode::kNotFound);
  EXPECT_TRUE((*store)->events("r-4")->empty());
  EXPECT_TRUE((*store)->run("r-2").ok());  // another pipeline's run stays
}

TEST(MetadataStore, EventsAreBoundedPerRunAndContinueAfterReopening) {
  df::test::TempDir dir;
  {
    auto store = MetadataStore::open(dir.str(), /*max_events_per_run=*/5);
    ASSERT_TRUE(store.ok());
    for (int i = 0; i < 8; ++i) {
      ASSERT_TRUE((*store)->append_event("r-1", "{\"n\":" + std::to_string(i) + "}").ok());
    }
    ASSERT_TRUE((*store)->append_event("r-2", "{\"n\":100}").ok());
    auto events = (*store)->events("r-1");
    ASSERT_TRUE(events.ok());
    ASSERT_EQ(events->size(), 5u);
    EXPECT_EQ(events->front(), "{\"n\":3}");
    EXPECT_EQ(events->back(), "{\"n\":7}");
  }
  auto store = MetadataStore::open(dir.str(), 5);
  ASSERT_TRUE(store.ok());
  ASSERT_TRUE((*store)->append_event("r-1", "{\"n\":8}").ok());
  auto events = (*store)->events("r-1");
  ASSERT_EQ(events->size(), 5u);
  EXPECT_EQ(events->front(), "{\"n\":4}");
  EXPECT_EQ(events->back(), "{\"n\":8}");
  EXPECT_EQ((*store)->events("r-2")->size(), 1u);
  EXPECT_TRUE((*store)->check().ok());
}

TEST(MetadataStore, OpenFailsWithTheReasonWhenTheDirectoryIsUnusable) {
  df::test::TempDir dir;
  const std::string file = dir.write("not-a-dir", "x");
  auto store = MetadataStore::open(file + "/metadata");
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.status().message().find("metadata store"), std::string::npos)
      << store.status().message();
}

}  // namespace
}  // namespace df::server
