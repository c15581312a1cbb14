// Manifest serialization: round trip, canonical checksum, and the one-sentence
// errors for truncated, tampered and future-version manifests.
#include "engine/checkpoint/manifest.h"

#include <gtest/gtest.h>

namespace df::checkpoint {
namespace {

Manifest sample() {
  Manifest m;
  m.pipeline = "hot-items";
  m.pipeline_version = std::string(64, 'a');
  m.id = 12;
  m.created = "2026-11-21T10:00:00.000Z";
  m.kind = "periodic";
  m.duration_ms = 35;
  m.sync_ms = 3;
  m.async_ms = 32;
  m.size_bytes = 1100;
  m.incremental_bytes = 45;
  m.pipeline_file = FileRef{"pipeline.yaml", "hot-items/checkpoints/12/pipeline.yaml", 76,
                            std::string(64, 'b'), true};
  TaskEntry src;
  src.node = "bids";
  src.subtask = 0;
  src.meta = nlohmann::json{{"offset", 1234}, {"file", "bids-1.jsonl"}};
  src.max_event_time = 1700000000000;
  TaskEntry w;
  w.node = "hot";
  w.subtask = 1;
  w.files.push_back(FileRef{"000012.sst", "hot-items/shared/hot-1-000012.sst-0123456789abcdef",
                            1024, std::string(64, 'c'), false});
  w.files.push_back(FileRef{"MANIFEST-000005", "hot-items/checkpoints/12/hot/1/MANIFEST-000005", 76,
                            std::string(64, 'd'), true});
  m.tasks = {src, w};
  return m;
}

TEST(ManifestTest, RoundTripKeepsEveryField) {
  const Manifest m = sample();
  Result<Manifest> back = parse_manifest(serialize_manifest(m));
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_EQ(back->pipeline, m.pipeline);
  EXPECT_EQ(back->pipeline_version, m.pipeline_version);
  EXPECT_EQ(back->id, 12u);
  EXPECT_EQ(back->created, m.created);
  EXPECT_EQ(back->kind, "periodic");
  EXPECT_EQ(back->duration_ms, 35);
  EXPECT_EQ(back->sync_ms, 3);
  EXPECT_EQ(back->async_ms, 32);
  EXPECT_EQ(back->size_bytes, 1100u);
  EXPECT_EQ(back->incremental_bytes, 45u);
  ASSERT_TRUE(back->pipeline_file.has_value());
  EXPECT_TRUE(back->pipeline_file->compressed);
  ASSERT_EQ(back->tasks.size(), 2u);
  EXPECT_EQ(back->tasks[0].meta["offset"], 1234);
  EXPECT_EQ(back->tasks[0].max_event_time, 1700000000000);
  EXPECT_TRUE(back->tasks[0].files.empty());
  EXPECT_FALSE(back->tasks[1].max_event_time.has_value());
  EXPECT_TRUE(back->tasks[1].meta.is_null());
  ASSERT_EQ(back->tasks[1].files.size(), 2u);
  EXPECT_EQ(back->tasks[1].files[0].name, "000012.sst");
  EXPECT_EQ(back->tasks[1].files[0].size, 1024u);
  EXPECT_FALSE(back->tasks[1].files[0].compressed);
  EXPECT_TRUE(back->tasks[1].files[1].compressed);
  // Serializing what was parsed gives the same bytes (canonical form).
  EXPECT_EQ(serialize_manifest(*back), serialize_manifest(m));
}

TEST(ManifestTest, ChecksumIsSha256OfTheDocumentWithAnEmptyChecksum) {
  const std::string text = serialize_manifest(sample());
  nlohmann::json j = nlohmann::json::parse(text);
  const std::string checksum = j["checksum"];
  j["checksum"] = "";
  EXPECT_EQ(checksum, sha256_hex(j.dump()));
  EXPECT_EQ(checksum.size(), 64u);
}

TEST(ManifestTest, TruncatedManifestIsADataErrorNamingTheCheckpoint) {
  const std::string text = serialize_manifest(sample());
  Result<Manifest> r = parse_manifest(text.substr(0, text.size() / 2));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kDataError);
  EXPECT_EQ(r.status().message(), "manifest of checkpoint 12 is truncated or not JSON");
  Result<Manifest> empty = parse_manifest("");
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.status().code(), StatusCode::kDataError);
  EXPECT_NE(empty.status().message().find("truncated or not JSON"), std::string::npos);
}

TEST(ManifestTest, ChangedFieldFailsTheChecksum) {
  std::string text = serialize_manifest(sample());
  const size_t pos = text.find("\"size\":1024");
  ASSERT_NE(pos, std::string::npos);
  text.replace(pos, 11, "\"size\":1025");
  Result<Manifest> r = parse_manifest(text);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kDataError);
  EXPECT_EQ(r.status().message(), "manifest of checkpoint 12 has a checksum mismatch");
}

TEST(ManifestTest, FutureVersionIsRefused) {
  nlohmann::json j = nlohmann::json::parse(serialize_manifest(sample()));
  j["version"] = 2;
  j["checksum"] = "";
  j["checksum"] = sha256_hex(j.dump());
  Result<Manifest> r = parse_manifest(j.dump());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kDataError);
  EXPECT_EQ(r.status().message(), "manifest of checkpoint 12 has unsupported format version 2");
}

TEST(ManifestTest, WrongFormatOrMissingFieldIsADataError) {
  Result<Manifest> other = parse_manifest(R"({"format": "something-else", "version": 1})");
  ASSERT_FALSE(other.ok());
  EXPECT_NE(other.status().message().find("not a dataflow checkpoint manifest"), std::string::npos);

  nlohmann::json j = nlohmann::json::parse(serialize_manifest(sample()));
  j.erase("kind");
  j["checksum"] = "";
  j["checksum"] = sha256_hex(j.dump());
  Result<Manifest> missing = parse_manifest(j.dump());
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kDataError);
  EXPECT_NE(missing.status().message().find("manifest of checkpoint 12 is malformed"),
            std::string::npos);
}

TEST(ManifestTest, StorageKeys) {
  EXPECT_EQ(current_key("p"), "p/_CURRENT");
  EXPECT_EQ(manifest_key("p", 7), "p/checkpoints/7/manifest.json");
  EXPECT_EQ(shared_prefix("p"), "p/shared/");
}

}  // namespace
}  // namespace df::checkpoint
