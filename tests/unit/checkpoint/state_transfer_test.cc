// State export/import (state_transfer.h) on real RocksDB stores and real
// local checkpoint storage, with a small StateSerde standing in for an
// operator's.
#include "engine/checkpoint/state_transfer.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "engine/checkpoint/history.h"
#include "engine/checkpoint/storage.h"
#include "engine/state/state_backend.h"
#include "tests/support/temp_dir.h"

namespace df::checkpoint {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using test::TempDir;

// Key: "k" + 8 bytes big-endian id. Value: "<count>|<name>".
class CounterSerde final : public StateSerde {
 public:
  int state_format_version() const override { return 3; }
  Result<json> entry_to_json(std::string_view key, std::string_view value) const override {
    if (key.size() != 9 || key[0] != 'k') return Status::data_error("not a counter key");
    uint64_t id = 0;
    for (size_t i = 1; i < 9; ++i) id = (id << 8) | static_cast<unsigned char>(key[i]);
    size_t bar = value.find('|');
    if (bar == std::string_view::npos) return Status::data_error("not a counter value");
    return json{{"id", id},
                {"count", std::stoll(std::string(value.substr(0, bar)))},
                {"name", std::string(value.substr(bar + 1))}};
  }
  Status entry_from_json(const json& e, std::string& key, std::string& value) const override {
    for (const auto& [k, v] : e.items()) {
      if (k != "id" && k != "count" && k != "name")
        return Status::invalid("unknown field '" + k + "'");
    }
    if (!e.contains("id") || !e["id"].is_number_unsigned()) {
      return Status::invalid("field 'id' must be a non-negative integer");
    }
    if (!e.contains("count") || !e["count"].is_number_integer()) {
      return Status::invalid("field 'count' must be an integer");
    }
    if (!e.contains("name") || !e["name"].is_string())
      return Status::invalid("field 'name' must be a string");
    key = make_key(e["id"].get<uint64_t>());
    value = std::to_string(e["count"].get<int64_t>()) + "|" + e["name"].get<std::string>();
    return Status::OK();
  }
  Status check_meta(const json& meta) const override {
    if (!meta.is_object() || !meta.contains("fired")) return Status::invalid("'fired' is missing");
    return Status::OK();
  }
  static std::string make_key(uint64_t id) {
    std::string k = "k";
    for (int i = 7; i >= 0; --i) k.push_back(static_cast<char>((id >> (8 * i)) & 0xff));
    return k;
  }
};

const char* kPipelineText = "name: counts\nsources: []\n";

class StateTransferTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = open_storage(root_.file("store"));
    ASSERT_TRUE(s.ok()) << s.status().to_string();
    storage_ = std::move(s).value();
    nodes_ = {{"src", "generator", 1, nullptr},
              {"w", "window", 2, &serde_},
              {"out", "blackhole", 1, nullptr}};
  }

  // A checkpoint whose window subtasks hold `per_subtask` entries each.
  uint64_t make_checkpoint(uint64_t per_subtask) {
    Manifest base;
    base.pipeline = "counts";
    base.pipeline_version = "v1";
    std::map<std::pair<std::string, int>, std::string> dirs;
    base.tasks.push_back(TaskEntry{"src", 0, json{{"offset", 42}}, int64_t{1700000000000}, {}});
    for (int sub = 0; sub < 2; ++sub) {
      std::string db = root_.file("db" + std::to_string(n_) + "/w/" + std::to_string(sub));
      state::RocksDbOptions o;
      o.path = db;
      auto store = state::open_rocksdb(o);
      EXPECT_TRUE(store.ok());
      state::WriteBatch batch;
      for (uint64_t i = 0; i < per_subtask; ++i) {
        uint64_t id = i * 2 + static_cast<uint64_t>(sub);
        batch.put(CounterSerde::make_key(id),
                  std::to_string(static_cast<int64_t>(id) - 5) + "|n\"ä" + std::to_string(id));
        if (batch.size() == 1000) {
          EXPECT_TRUE((*store)->write(batch).ok());
          batch.clear();
        }
      }
      EXPECT_TRUE((*store)->write(batch).ok());
      std::string cp = root_.file("cp" + std::to_string(n_) + "/w/" + std::to_string(sub));
      fs::create_directories(fs::path(cp).parent_path());
      EXPECT_TRUE((*store)->checkpoint_to(cp).ok());
      dirs[{"w", sub}] = cp;
      base.tasks.push_back(TaskEntry{"w", sub, json{{"fired", sub}}, std::nullopt, {}});
    }
    base.tasks.push_back(TaskEntry{"out", 0, json(nullptr), std::nullopt, {}});
    ++n_;
    WriteCheckpointOptions wo;
    wo.kind = "periodic";
    wo.pipeline_text = kPipelineText;
    auto id = write_checkpoint(*storage_, base, dirs, wo);
    EXPECT_TRUE(id.ok()) << id.status().to_string();
    return id.ok() ? *id : 0;
  }

  Result<std::string> export_text() {
    DF_ASSIGN_OR_RETURN(Manifest m, load_current_manifest(*storage_, "counts"));
    std::ostringstream out;
    ExportOptions eo;
    eo.scratch_dir = root_.file("scratch");
    DF_ASSIGN_OR_RETURN(ExportResult r, export_state(*storage_, m, nodes_, out, eo));
    (void)r;
    return out.str();
  }

  Result<ImportResult> import_text(const std::string& text) {
    std::istringstream in(text);
    ImportOptions io;
    io.pipeline = "counts";
    io.pipeline_text = kPipelineText;
    io.input_name = "state.json";
    io.scratch_dir = root_.file("scratch");
    return import_state(*storage_, in, nodes_, io);
  }

  // Every key and size in storage, to show that a failed import changed nothing.
  std::string listing() {
    auto l = storage_->list("");
    EXPECT_TRUE(l.ok());
    std::string s;
    for (const auto& o : *l) s += o.key + " " + std::to_string(o.size) + "\n";
    auto cur = storage_->get_bytes(current_key("counts"));
    if (cur.ok()) s += "current=" + *cur;
    return s;
  }

  // Import `text`, expect kInvalidArgument containing `message`, storage unchanged.
  void expect_rejected(const std::string& text, const std::string& message) {
    std::string before = listing();
    auto r = import_text(text);
    ASSERT_FALSE(r.ok()) << "accepted: " << text.substr(0, 200);
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << r.status().to_string();
    EXPECT_NE(r.status().message().find(message), std::string::npos)
        << r.status().message() << "\nexpected: " << message;
    EXPECT_EQ(listing(), before);
    EXPECT_TRUE(fs::is_empty(root_.file("scratch"))) << "staging left behind";
  }

  TempDir root_;
  std::unique_ptr<CheckpointStorage> storage_;
  CounterSerde serde_;
  std::vector<NodeView> nodes_;
  int n_ = 0;
};

TEST_F(StateTransferTest, ExportWritesOneVersionedDocument) {
  uint64_t id = make_checkpoint(50);
  auto text = export_text();
  ASSERT_TRUE(text.ok()) << text.status().to_string();
  json doc = json::parse(*text);
  EXPECT_EQ(doc["format"], "dataflow-state");
  EXPECT_EQ(doc["version"], 1);
  EXPECT_EQ(doc["pipeline"], "counts");
  EXPECT_EQ(doc["pipeline_version"], "v1");
  EXPECT_EQ(doc["checkpoint_id"], id);
  EXPECT_TRUE(doc["created"].is_string());
  ASSERT_EQ(doc["nodes"].size(), 4u);  // plan order: src, w/0, w/1, out
  const json& src = doc["nodes"][0];
  EXPECT_EQ(src["node"], "src");
  EXPECT_EQ(src["type"], "generator");
  EXPECT_EQ(src["max_event_time"], 1700000000000);
  EXPECT_EQ(src["meta"], (json{{"offset", 42}}));
  EXPECT_TRUE(src["state_format_version"].is_null());
  EXPECT_TRUE(src["entries"].empty());
  const json& w1 = doc["nodes"][2];
  EXPECT_EQ(w1["node"], "w");
  EXPECT_EQ(w1["subtask"], 1);
  EXPECT_EQ(w1["state_format_version"], 3);
  EXPECT_TRUE(w1["max_event_time"].is_null());
  ASSERT_EQ(w1["entries"].size(), 50u);
  EXPECT_EQ(w1["entries"][0], (json{{"id", 1}, {"count", -4}, {"name", "n\"ä1"}}));
  EXPECT_EQ(doc["nodes"][3]["node"], "out");
  EXPECT_TRUE(doc["nodes"][3]["meta"].is_null());
}

TEST_F(StateTransferTest, RoundTripIsLossless) {
  uint64_t first = make_checkpoint(3000);
  auto a = export_text();
  ASSERT_TRUE(a.ok()) << a.status().to_string();
  auto imported = import_text(*a);
  ASSERT_TRUE(imported.ok()) << imported.status().to_string();
  EXPECT_EQ(imported->checkpoint_id, first + 1);
  EXPECT_EQ(imported->previous_id, first);
  EXPECT_EQ(imported->entries, 6000u);
  EXPECT_EQ(imported->nodes, 4u);
  EXPECT_TRUE(imported->notes.empty());

  auto m = load_current_manifest(*storage_, "counts");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->id, first + 1);
  EXPECT_EQ(m->kind, "import");
  auto text = load_pipeline_text(*storage_, *m);
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(*text, kPipelineText);

  auto b = export_text();
  ASSERT_TRUE(b.ok()) << b.status().to_string();
  json ja = json::parse(*a), jb = json::parse(*b);
  EXPECT_EQ(jb["checkpoint_id"], first + 1);
  EXPECT_EQ(ja["nodes"], jb["nodes"]);
  EXPECT_EQ(ja["pipeline"], jb["pipeline"]);
}

TEST_F(StateTransferTest, KeysMayComeInAnyOrder) {
  make_checkpoint(100);
  auto a = export_text();
  ASSERT_TRUE(a.ok());
  // nlohmann sorts keys: "entries" before "node", "nodes" before "pipeline".
  std::string sorted = json::parse(*a).dump(1);
  ASSERT_LT(sorted.find("\"nodes\""), sorted.find("\"pipeline\""));
  auto imported = import_text(sorted);
  ASSERT_TRUE(imported.ok()) << imported.status().to_string();
  EXPECT_EQ(imported->entries, 200u);
  auto b = export_text();
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(json::parse(*a)["nodes"], json::parse(*b)["nodes"]);
}

TEST_F(StateTransferTest, ImportWithoutAnyCheckpointAndMissingNodesStartEmpty) {
  const std::string doc = R"({"format": "dataflow-state", "version": 1, "pipeline": "counts",
    "nodes": [
      {"node": "w", "subtask": 0, "state_format_version": 3, "meta": {"fired": 1}, "entries": [
        {"id": 4, "count": 1, "name": "a"}, {"id": 2, "count": 2, "name": "b"}]},
      {"node": "w", "subtask": 1, "state_format_version": 3, "entries": []}]})";
  auto r = import_text(doc);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->checkpoint_id, 1u);
  EXPECT_FALSE(r->previous_id);
  EXPECT_EQ(r->notes.size(), 2u);  // src and out
  auto m = load_current_manifest(*storage_, "counts");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->tasks.size(), 4u);  // every plan subtask has an entry
  auto back = export_text();
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  json j = json::parse(*back);
  // Entries come back in key order.
  EXPECT_EQ(j["nodes"][1]["entries"][0]["id"], 2);
  EXPECT_EQ(j["nodes"][1]["entries"][1]["id"], 4);
  EXPECT_TRUE(j["nodes"][2]["entries"].empty());
}

TEST_F(StateTransferTest, BadDocumentsChangeNothing) {
  make_checkpoint(20);
  auto good = export_text();
  ASSERT_TRUE(good.ok());
  const std::string& g = *good;

  expect_rejected(g.substr(0, g.size() / 2), "state.json is not valid JSON at line");
  expect_rejected("", "state.json is not valid JSON");
  expect_rejected("[1, 2]", "is not a DataFlow state export");
  expect_rejected(R"({"format": "other", "version": 1, "pipeline": "counts", "nodes": []})",
                  "state.json is not a DataFlow state export");
  expect_rejected(
      R"({"format": "dataflow-state", "version": 2, "pipeline": "counts", "nodes": []})",
      "has format version 2");
  expect_rejected(R"({"format": "dataflow-state", "version": 1, "pipeline": "other", "nodes": []})",
                  "holds the state of pipeline 'other', not 'counts'");
  expect_rejected(R"({"format": "dataflow-state", "version": 1, "nodes": []})",
                  "has no 'pipeline'");
  expect_rejected(
      R"({"format": "dataflow-state", "version": 1, "pipeline": "counts", "nodes": [], "x": 1})",
      "unknown field 'x'");

  // The second window subtask, so that the structure is complete.
  const std::string w1 =
      R"(, {"node": "w", "subtask": 1, "state_format_version": 3, "entries": []})";
  auto with_node = [](const std::string& node) {
    return R"({"format": "dataflow-state", "version": 1, "pipeline": "counts", "nodes": [)" + node +
           "]}";
  };
  expect_rejected(with_node(R"({"node": "nope", "subtask": 0, "entries": []})"),
                  "node 'nope' is not in pipeline 'counts'");
  expect_rejected(
      with_node(R"({"node": "w", "subtask": 2, "state_format_version": 3, "entries": []})"),
      "node 'w' subtask 2 does not exist");
  expect_rejected(
      with_node(R"({"node": "w", "subtask": 0, "state_format_version": 3, "entries": []})"),
      "node 'w' has 1 subtask in the file but parallelism 2");
  expect_rejected(
      with_node(R"({"node": "w", "subtask": 0, "state_format_version": 2, "entries": []})"),
      "state format version 2");
  expect_rejected(
      with_node(
          R"({"node": "w", "type": "dedupe", "subtask": 0, "state_format_version": 3, "entries": []})"),
      "node 'w' is a dedupe in the file but a window");
  expect_rejected(
      with_node(
          R"({"node": "w", "subtask": 0, "state_format_version": 3, "meta": {"x": 1}, "entries": []})"),
      "node 'w' subtask 0: meta: 'fired' is missing");
  expect_rejected(with_node(R"({"node": "src", "subtask": 0, "entries": [{"id": 1}]})"),
                  "node 'src' subtask 0 entry 0: a generator keeps no keyed state");
  expect_rejected(with_node(R"({"node": "w", "subtask": 0, "state_format_version": 3, "entries": [
                       {"id": 1, "count": 1, "name": "a"}, {"id": 2, "count": "x", "name": "b"}]})" +
                            w1),
                  "node 'w' subtask 0 entry 1: field 'count' must be an integer");
  expect_rejected(with_node(R"({"node": "w", "subtask": 0, "state_format_version": 3, "entries": [
                       {"id": 5, "count": 1, "name": "a"}, {"id": 2, "count": 1, "name": "b"},
                       {"id": 5, "count": 2, "name": "c"}]})" +
                            w1),
                  "node 'w' subtask 0 entry 2 has the same key as an earlier entry");
  expect_rejected(
      with_node(R"({"node": "w", "subtask": 0, "state_format_version": 3, "entries": [1]})" + w1),
      "node 'w' subtask 0 entry 0 must be an object");
  expect_rejected(
      with_node(
          R"({"node": "w", "subtask": 0, "state_format_version": 3, "entries": [], "more": 1})"),
      "unknown field 'more' in nodes[0]");

  // A wrong entry late in a big valid document: the first nodes were already
  // staged, but storage is still untouched.
  json doc = json::parse(g);
  doc["nodes"][2]["entries"][15]["count"] = 1.5;
  expect_rejected(doc.dump(), "node 'w' subtask 1 entry 15: field 'count' must be an integer");
}

TEST_F(StateTransferTest, ExportChecksStoredFiles) {
  make_checkpoint(100);
  auto m = load_current_manifest(*storage_, "counts");
  ASSERT_TRUE(m.ok());
  // Corrupt one stored SST (same size, different bytes).
  std::string key;
  for (const auto& t : m->tasks) {
    for (const auto& f : t.files) {
      if (f.name.ends_with(".sst")) key = f.key;
    }
  }
  ASSERT_FALSE(key.empty());
  std::string path = root_.file("store/" + key);
  std::string bytes;
  {
    std::ifstream in(path, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  bytes[bytes.size() / 2] ^= 0x55;
  fs::remove(path);  // it may be a hard link
  std::ofstream(path, std::ios::binary) << bytes;
  auto text = export_text();
  ASSERT_FALSE(text.ok());
  EXPECT_EQ(text.status().code(), StatusCode::kDataError) << text.status().to_string();
}

TEST_F(StateTransferTest, ExportNeedsAKnownNodeAndACheckpoint) {
  auto none = load_current_manifest(*storage_, "counts");
  EXPECT_EQ(none.status().code(), StatusCode::kNotFound);
  EXPECT_NE(none.status().message().find("has no checkpoint"), std::string::npos);
  make_checkpoint(1);
  nodes_.erase(nodes_.begin() + 1);  // no "w" in the plan
  auto text = export_text();
  ASSERT_FALSE(text.ok());
  EXPECT_EQ(text.status().code(), StatusCode::kDataError);
  EXPECT_NE(text.status().message().find("node 'w'"), std::string::npos) << text.status().message();
}

}  // namespace
}  // namespace df::checkpoint
