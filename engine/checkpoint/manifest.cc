// Manifest serialization and parsing (manifest.h): canonical JSON (sorted
// keys, no indentation) whose "checksum" is the SHA-256 of the same document
// with "checksum" set to "".
#include <string>
#include <string_view>
#include <utility>

#include "engine/checkpoint/manifest.h"

namespace df::checkpoint {
namespace {

constexpr const char* kFormat = "dataflow-checkpoint";
constexpr int kVersion = 1;

nlohmann::json file_to_json(const FileRef& f) {
  return nlohmann::json{{"name", f.name},
                        {"key", f.key},
                        {"size", f.size},
                        {"sha256", f.sha256},
                        {"compressed", f.compressed}};
}

nlohmann::json to_json(const Manifest& m) {
  nlohmann::json tasks = nlohmann::json::array();
  for (const TaskEntry& t : m.tasks) {
    nlohmann::json files = nlohmann::json::array();
    for (const FileRef& f : t.files) files.push_back(file_to_json(f));
    tasks.push_back(
        nlohmann::json{{"node", t.node},
                       {"subtask", t.subtask},
                       {"meta", t.meta},
                       {"max_event_time", t.max_event_time ? nlohmann::json(*t.max_event_time)
                                                           : nlohmann::json(nullptr)},
                       {"files", std::move(files)}});
  }
  return nlohmann::json{
      {"format", kFormat},
      {"version", kVersion},
      {"pipeline", m.pipeline},
      {"pipeline_version", m.pipeline_version},
      {"id", m.id},
      {"created", m.created},
      {"kind", m.kind},
      {"duration_ms", m.duration_ms},
      {"sync_ms", m.sync_ms},
      {"async_ms", m.async_ms},
      {"size_bytes", m.size_bytes},
      {"incremental_bytes", m.incremental_bytes},
      {"pipeline_file", m.pipeline_file ? file_to_json(*m.pipeline_file) : nlohmann::json(nullptr)},
      {"tasks", std::move(tasks)},
      {"checksum", ""}};
}

// Reads the typed fields; throws nlohmann::json::exception on a wrong type or
// a missing key (caught by parse_manifest and turned into one sentence).
FileRef file_from_json(const nlohmann::json& j) {
  FileRef f;
  f.name = j.at("name").get<std::string>();
  f.key = j.at("key").get<std::string>();
  f.size = j.at("size").get<uint64_t>();
  f.sha256 = j.at("sha256").get<std::string>();
  f.compressed = j.at("compressed").get<bool>();
  return f;
}

std::string id_text(const nlohmann::json& j) {
  if (j.is_object()) {
    auto it = j.find("id");
    if (it != j.end() && it->is_number_unsigned()) return std::to_string(it->get<uint64_t>());
  }
  return "";
}

std::string subject(const std::string& id) {
  return id.empty() ? std::string("checkpoint manifest") : "manifest of checkpoint " + id;
}

}  // namespace

std::string serialize_manifest(const Manifest& m) {
  nlohmann::json j = to_json(m);
  j["checksum"] = sha256_hex(j.dump());
  return j.dump();
}

Result<Manifest> parse_manifest(std::string_view text) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    // A truncated manifest often still starts with the id: name it if we can.
    std::string id;
    size_t pos = text.find("\"id\":");
    if (pos != std::string_view::npos) {
      pos += 5;
      while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') id += text[pos++];
    }
    return Status::data_error(
        (id.empty() ? std::string("checkpoint manifest") : "manifest of checkpoint " + id) +
        " is truncated or not JSON");
  }
  const std::string id = id_text(j);
  auto format = j.find("format");
  if (format == j.end() || !format->is_string() || format->get<std::string>() != kFormat) {
    return Status::data_error(subject(id) + " is not a dataflow checkpoint manifest");
  }
  auto version = j.find("version");
  if (version == j.end() || !version->is_number_integer()) {
    return Status::data_error(subject(id) + " has no format version");
  }
  if (version->get<int64_t>() != kVersion) {
    return Status::data_error(subject(id) + " has unsupported format version " +
                              std::to_string(version->get<int64_t>()));
  }
  auto checksum = j.find("checksum");
  if (checksum == j.end() || !checksum->is_string()) {
    return Status::data_error(subject(id) + " has no checksum");
  }
  const std::string expected = checksum->get<std::string>();
  nlohmann::json copy = j;
  copy["checksum"] = "";
  if (sha256_hex(copy.dump()) != expected) {
    return Status::data_error(subject(id) + " has a checksum mismatch");
  }
  try {
    Manifest m;
    m.pipeline = j.at("pipeline").get<std::string>();
    m.pipeline_version = j.at("pipeline_version").get<std::string>();
    m.id = j.at("id").get<uint64_t>();
    m.created = j.at("created").get<std::string>();
    m.kind = j.at("kind").get<std::string>();
    m.duration_ms = j.at("duration_ms").get<int64_t>();
    m.sync_ms = j.at("sync_ms").get<int64_t>();
    m.async_ms = j.at("async_ms").get<int64_t>();
    m.size_bytes = j.at("size_bytes").get<uint64_t>();
    m.incremental_bytes = j.at("incremental_bytes").get<uint64_t>();
    const nlohmann::json& pf = j.at("pipeline_file");
    if (!pf.is_null()) m.pipeline_file = file_from_json(pf);
    for (const nlohmann::json& t : j.at("tasks")) {
      TaskEntry e;
      e.node = t.at("node").get<std::string>();
      e.subtask = t.at("subtask").get<int>();
      e.meta = t.at("meta");
      const nlohmann::json& met = t.at("max_event_time");
      if (!met.is_null()) e.max_event_time = met.get<int64_t>();
      for (const nlohmann::json& f : t.at("files")) e.files.push_back(file_from_json(f));
      m.tasks.push_back(std::move(e));
    }
    return m;
  } catch (const nlohmann::json::exception& e) {
    return Status::data_error(subject(id) + " is malformed: " + e.what());
  }
}

}  // namespace df::checkpoint
