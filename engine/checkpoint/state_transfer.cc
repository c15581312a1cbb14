// State export and import (state_transfer.h; the document format is in
// docs/state-format.md).
#include "engine/checkpoint/state_transfer.h"

#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <utility>

#include "engine/checkpoint/files_internal.h"
#include "engine/checkpoint/history.h"
#include "engine/state/state_backend.h"

namespace df::checkpoint {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr uint64_t kProgressEvery = 4096;
constexpr size_t kBatchEntries = 1024;
constexpr size_t kBatchBytes = 4u << 20;

// A fresh directory (mkdtemp) removed with its contents on destruction.
class ScratchDir {
 public:
  ~ScratchDir() {
    if (!path_.empty()) {
      std::error_code ec;
      fs::remove_all(path_, ec);
    }
  }
  Status create(const std::string& parent, const std::string& prefix) {
    std::error_code ec;
    fs::path base = parent.empty() ? fs::temp_directory_path(ec) : fs::path(parent);
    if (ec) return Status::io_error("cannot find a temporary directory: " + ec.message());
    fs::create_directories(base, ec);
    std::string tmpl = (base / (prefix + "-XXXXXX")).string();
    if (!mkdtemp(tmpl.data())) {
      return Status::io_error("cannot create a scratch directory in " + base.string() + ": " +
                              errno_text(errno));
    }
    path_ = tmpl;
    return Status::OK();
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::string subtask_dir(const std::string& root, const std::string& node, int subtask) {
  return (fs::path(root) / node / std::to_string(subtask)).string();
}

std::string in_quotes(const std::string& s) { return "'" + s + "'"; }

}  // namespace

const NodeView* find_node(const std::vector<NodeView>& nodes, const std::string& id) {
  for (const NodeView& n : nodes) {
    if (n.id == id) return &n;
  }
  return nullptr;
}

Result<Manifest> load_current_manifest(CheckpointStorage& storage, const std::string& pipeline) {
  auto current = internal::read_current(storage, pipeline);
  if (!current.ok()) {
    if (current.status().code() == StatusCode::kNotFound) {
      return Status::not_found("pipeline " + in_quotes(pipeline) + " has no checkpoint in " +
                               storage.describe());
    }
    return current.status();
  }
  auto text = storage.get_bytes(manifest_key(pipeline, *current));
  if (!text.ok()) {
    if (text.status().code() == StatusCode::kNotFound) {
      return Status::data_error("_CURRENT of pipeline " + in_quotes(pipeline) +
                                " names checkpoint " + std::to_string(*current) +
                                ", which has no manifest");
    }
    return text.status();
  }
  DF_ASSIGN_OR_RETURN(Manifest m, parse_manifest(*text));
  if (m.pipeline != pipeline) {
    return Status::data_error("checkpoint " + std::to_string(m.id) + " belongs to pipeline " +
                              in_quotes(m.pipeline) + ", not " + in_quotes(pipeline));
  }
  return m;
}

Result<std::string> load_pipeline_text(CheckpointStorage& storage, const Manifest& manifest) {
  if (!manifest.pipeline_file) {
    return Status::not_found("checkpoint " + std::to_string(manifest.id) + " has no pipeline file");
  }
  ScratchDir scratch;
  DF_RETURN_IF_ERROR(scratch.create("", "dataflow-pipeline"));
  std::string path = (fs::path(scratch.path()) / "pipeline.yaml").string();
  DF_RETURN_IF_ERROR(
      internal::fetch_file(storage, *manifest.pipeline_file, path, /*must_copy=*/false));
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  if (!in)
    return Status::io_error("cannot read the pipeline file of checkpoint " +
                            std::to_string(manifest.id));
  return text.str();
}

// ---------------------------------------------------------------------------
// Export

namespace {

class DocWriter {
 public:
  explicit DocWriter(std::ostream& out) : out_(out) {}
  void raw(std::string_view s) {
    out_.write(s.data(), static_cast<std::streamsize>(s.size()));
    bytes_ += s.size();
  }
  void value(const json& j) { raw(j.dump()); }
  Status check() const {
    if (!out_.good()) return Status::io_error("cannot write the export");
    return Status::OK();
  }
  uint64_t bytes() const { return bytes_; }

 private:
  std::ostream& out_;
  uint64_t bytes_ = 0;
};

json optional_int(const std::optional<int64_t>& v) { return v ? json(*v) : json(nullptr); }

}  // namespace

Result<ExportResult> export_state(CheckpointStorage& storage, const Manifest& manifest,
                                  const std::vector<NodeView>& nodes, std::ostream& out,
                                  const ExportOptions& options) {
  // Check every task against the plan before writing anything.
  std::vector<std::pair<size_t, const TaskEntry*>> order;
  for (const TaskEntry& t : manifest.tasks) {
    size_t index = nodes.size();
    for (size_t i = 0; i < nodes.size(); ++i) {
      if (nodes[i].id == t.node) index = i;
    }
    if (index == nodes.size()) {
      return Status::data_error("checkpoint " + std::to_string(manifest.id) +
                                " has state of node " + in_quotes(t.node) +
                                ", which its pipeline file does not have");
    }
    if (!t.files.empty() && nodes[index].serde == nullptr) {
      return Status::data_error("node " + in_quotes(t.node) + " (" + nodes[index].type +
                                ") has stored state but no state format to export it with");
    }
    order.emplace_back(index, &t);
  }
  std::stable_sort(order.begin(), order.end(), [](const auto& a, const auto& b) {
    if (a.first != b.first) return a.first < b.first;
    return a.second->subtask < b.second->subtask;
  });

  ScratchDir scratch;
  DF_RETURN_IF_ERROR(scratch.create(options.scratch_dir, "dataflow-export"));

  ExportResult result;
  result.checkpoint_id = manifest.id;
  DocWriter w(out);
  TransferProgress progress;
  progress.phase = "exporting";
  auto report = [&] {
    progress.entries = result.entries;
    progress.bytes = w.bytes();
    if (options.progress) options.progress(progress);
  };

  w.raw("{\"format\": ");
  w.value(kStateFormat);
  w.raw(", \"version\": ");
  w.value(kStateFormatVersion);
  w.raw(",\n \"pipeline\": ");
  w.value(manifest.pipeline);
  w.raw(", \"pipeline_version\": ");
  w.value(manifest.pipeline_version);
  w.raw(",\n \"checkpoint_id\": ");
  w.value(manifest.id);
  w.raw(", \"created\": ");
  w.value(manifest.created);
  w.raw(",\n \"nodes\": [");

  bool first_node = true;
  for (const auto& [index, task] : order) {
    const NodeView& node = nodes[index];
    const std::string where =
        "node " + in_quotes(task->node) + " subtask " + std::to_string(task->subtask);
    w.raw(first_node ? "\n  {\"node\": " : ",\n  {\"node\": ");
    first_node = false;
    w.value(task->node);
    w.raw(", \"type\": ");
    w.value(node.type);
    w.raw(", \"subtask\": ");
    w.value(task->subtask);
    w.raw(", \"state_format_version\": ");
    w.value(node.serde ? json(node.serde->state_format_version()) : json(nullptr));
    w.raw(", \"max_event_time\": ");
    w.value(optional_int(task->max_event_time));
    w.raw(",\n   \"meta\": ");
    w.value(task->meta);
    w.raw(",\n   \"entries\": [");
    ++result.nodes;

    if (!task->files.empty()) {
      const std::string dir = subtask_dir(scratch.path(), task->node, task->subtask);
      for (const FileRef& f : task->files) {
        DF_RETURN_IF_ERROR(internal::fetch_file(storage, f, (fs::path(dir) / f.name).string(),
                                                /*must_copy=*/!internal::is_sst(f.name)));
      }
      state::RocksDbOptions ro;
      ro.path = dir;
      auto store = state::open_rocksdb(ro);
      if (!store.ok()) return store.status().with_context("cannot open the state of " + where);
      Status failed;
      bool first_entry = true;
      std::string text;
      Status scanned = (*store)->scan("", "", [&](std::string_view key, std::string_view value) {
        auto entry = node.serde->entry_to_json(key, value);
        if (!entry.ok()) {
          failed = entry.status().with_context(where + " entry " + std::to_string(result.entries));
          return false;
        }
        try {
          text = entry->dump();
        } catch (const json::exception& e) {
          failed = Status::internal(where + ": an entry cannot be written as JSON: " + e.what());
          return false;
        }
        w.raw(first_entry ? "\n    " : ",\n    ");
        first_entry = false;
        w.raw(text);
        if (++result.entries % kProgressEvery == 0) {
          report();
          failed = w.check();
          if (!failed.ok()) return false;
        }
        return true;
      });
      DF_RETURN_IF_ERROR(failed);
      DF_RETURN_IF_ERROR(scanned.with_context("cannot read the state of " + where));
      store->reset();
      std::error_code ec;
      fs::remove_all(dir, ec);
      if (!first_entry) w.raw("\n   ");
    }
    w.raw("]}");
    DF_RETURN_IF_ERROR(w.check());
  }
  w.raw(first_node ? "]}\n" : "\n ]}\n");
  out.flush();
  DF_RETURN_IF_ERROR(w.check());
  result.bytes = w.bytes();
  report();
  return result;
}

// ---------------------------------------------------------------------------
// Import: two SAX passes over the file, each holding at most one value.
//   pass 1 (structure): the header fields and each node object's fields;
//                       entries are skipped. Everything but the entries is
//                       validated after it, whatever order keys come in.
//   pass 2 (entries):   each entry is materialized, converted and written to
//                       its subtask's staging store.

namespace {

// What the reader hands on; any non-OK status stops the parse.
class DocVisitor {
 public:
  virtual ~DocVisitor() = default;
  // Pass 1.
  virtual Status on_header_field(const std::string& key, const json& value) = 0;
  virtual Status on_node(size_t index, json fields) = 0;
  virtual void on_entry_skipped() = 0;
  // Pass 2.
  virtual Status on_entries_begin(size_t index) = 0;
  virtual Status on_entry(const json& entry) = 0;
  virtual Status on_node_end(size_t index) = 0;
};

// Builds one JSON value from SAX events.
class ValueBuilder {
 public:
  void reset() {
    root_ = json();
    stack_.clear();
    key_.clear();
  }
  // scalar() and end() return true when the whole value is complete.
  bool scalar(json v) {
    if (stack_.empty()) {
      root_ = std::move(v);
      return true;
    }
    insert(std::move(v));
    return false;
  }
  void start(json container) {
    json* slot;
    if (stack_.empty()) {
      root_ = std::move(container);
      slot = &root_;
    } else {
      slot = insert(std::move(container));
    }
    stack_.push_back(slot);
  }
  void key(std::string k) { key_ = std::move(k); }
  bool end() {
    stack_.pop_back();
    return stack_.empty();
  }
  json& value() { return root_; }

 private:
  json* insert(json v) {
    json& top = *stack_.back();
    if (top.is_array()) {
      top.push_back(std::move(v));
      return &top.back();
    }
    json& slot = top[key_];
    slot = std::move(v);
    return &slot;
  }

  json root_;
  std::vector<json*> stack_;
  std::string key_;
};

class DocReader final : public json::json_sax_t {
 public:
  enum class Pass { kStructure, kEntries };
  DocReader(DocVisitor& visitor, Pass pass) : v_(visitor), pass_(pass) {}

  const Status& status() const { return status_; }

  bool null() override { return scalar(json(nullptr)); }
  bool boolean(bool b) override { return scalar(json(b)); }
  bool number_integer(number_integer_t n) override { return scalar(json(n)); }
  bool number_unsigned(number_unsigned_t n) override { return scalar(json(n)); }
  bool number_float(number_float_t d, const string_t&) override { return scalar(json(d)); }
  bool string(string_t& s) override { return scalar(json(std::move(s))); }
  bool binary(binary_t&) override { return fail("holds a binary value, which JSON cannot"); }
  bool start_object(std::size_t) override { return start(true); }
  bool start_array(std::size_t) override { return start(false); }

  bool key(string_t& k) override {
    switch (state_) {
      case State::kCapture:
        builder_.key(std::move(k));
        return true;
      case State::kSkip:
        return true;
      case State::kDoc:
        if (k == "nodes") {
          if (seen_nodes_) return fail("has two 'nodes'");
          seen_nodes_ = true;
          state_ = State::kNodesStart;
          return true;
        }
        if (!header_keys().count(k)) return fail("has an unknown field " + in_quotes(k));
        if (!header_seen_.insert(k).second) return fail("has two " + in_quotes(k));
        if (pass_ == Pass::kEntries) return skip();
        return capture(Purpose::kHeader, std::move(k));
      case State::kNode:
        if (!node_seen_.insert(k).second) return fail(node_where() + " has two " + in_quotes(k));
        if (k == "entries") {
          state_ = State::kEntriesStart;
          return true;
        }
        if (!node_keys().count(k))
          return fail("unknown field " + in_quotes(k) + " in " + node_where());
        if (pass_ == Pass::kEntries) return skip();
        return capture(Purpose::kNodeField, std::move(k));
      default:
        return fail("is not valid JSON");  // unreachable: the parser checks where keys go
    }
  }

  bool end_object() override { return end(); }
  bool end_array() override { return end(); }

  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) override {
    // "[json.exception.parse_error.101] parse error at line 3, column 5: syntax
    // error while parsing value - unexpected end of input; expected ..."
    std::string m = e.what();
    std::string where;
    if (size_t at = m.find("at line "); at != std::string::npos) {
      size_t colon = m.find(':', at);
      where = " " + m.substr(at, colon == std::string::npos ? std::string::npos : colon - at);
    }
    std::string what = m;
    if (size_t dash = m.find(" - "); dash != std::string::npos) {
      what = m.substr(dash + 3);
    } else if (size_t colon = m.find(": "); colon != std::string::npos) {
      what = m.substr(colon + 2);
    }
    status_ = Status::invalid("is not valid JSON" + where + ": " + what);
    return false;
  }

 private:
  enum class State {
    kTop,
    kDoc,
    kNodesStart,
    kNodes,
    kNode,
    kEntriesStart,
    kEntries,
    kCapture,
    kSkip,
    kDone
  };
  enum class Purpose { kHeader, kNodeField, kEntry };

  static const std::set<std::string>& header_keys() {
    static const std::set<std::string> k{"format",           "version",       "pipeline",
                                         "pipeline_version", "checkpoint_id", "created"};
    return k;
  }
  static const std::set<std::string>& node_keys() {
    static const std::set<std::string> k{
        "node", "type", "subtask", "state_format_version", "max_event_time", "meta"};
    return k;
  }

  std::string node_where() const { return "nodes[" + std::to_string(node_index_) + "]"; }

  bool fail(std::string message) {
    status_ = Status::invalid(std::move(message));
    return false;
  }
  bool ok(Status s) {
    if (s.ok()) return true;
    status_ = std::move(s);
    return false;
  }

  bool capture(Purpose purpose, std::string key) {
    purpose_ = purpose;
    capture_key_ = std::move(key);
    return_state_ = state_;
    state_ = State::kCapture;
    builder_.reset();
    return true;
  }
  bool skip() {
    return_state_ = state_;
    state_ = State::kSkip;
    skip_depth_ = 0;
    return true;
  }

  bool scalar(json v) {
    switch (state_) {
      case State::kCapture:
        return builder_.scalar(std::move(v)) ? captured() : true;
      case State::kSkip:
        if (skip_depth_ == 0) state_ = return_state_;
        return true;
      case State::kEntries:
        if (pass_ == Pass::kStructure) {
          v_.on_entry_skipped();
          return true;
        }
        capture(Purpose::kEntry, "");
        builder_.scalar(std::move(v));
        return captured();
      case State::kTop:
        return fail("is not a DataFlow state export (it is not a JSON object)");
      case State::kNodesStart:
        return fail("has a 'nodes' that is not an array");
      case State::kNodes:
        return fail("has a " + node_where() + " that is not an object");
      case State::kEntriesStart:
        return fail("'entries' of " + node_where() + " must be an array");
      default:
        return fail("is not valid JSON");
    }
  }

  bool start(bool is_object) {
    switch (state_) {
      case State::kCapture:
        builder_.start(is_object ? json::object() : json::array());
        return true;
      case State::kSkip:
        ++skip_depth_;
        return true;
      case State::kTop:
        if (!is_object) return fail("is not a DataFlow state export (it is not a JSON object)");
        state_ = State::kDoc;
        return true;
      case State::kNodesStart:
        if (is_object) return fail("has a 'nodes' that is not an array");
        state_ = State::kNodes;
        return true;
      case State::kNodes:
        if (!is_object) return fail("has a " + node_where() + " that is not an object");
        node_fields_ = json::object();
        node_seen_.clear();
        state_ = State::kNode;
        return true;
      case State::kEntriesStart:
        if (is_object) return fail("'entries' of " + node_where() + " must be an array");
        state_ = State::kEntries;
        if (pass_ == Pass::kEntries) return ok(v_.on_entries_begin(node_index_));
        return true;
      case State::kEntries:
        if (pass_ == Pass::kStructure) {
          v_.on_entry_skipped();
          return skip() && start(is_object);
        }
        capture(Purpose::kEntry, "");
        builder_.start(is_object ? json::object() : json::array());
        return true;
      default:
        return fail("is not valid JSON");
    }
  }

  bool end() {
    switch (state_) {
      case State::kCapture:
        return builder_.end() ? captured() : true;
      case State::kSkip:
        if (--skip_depth_ == 0) state_ = return_state_;
        return true;
      case State::kDoc:
        state_ = State::kDone;
        return true;
      case State::kNodes:
        state_ = State::kDoc;
        return true;
      case State::kNode: {
        state_ = State::kNodes;
        size_t index = node_index_++;
        if (pass_ == Pass::kStructure) return ok(v_.on_node(index, std::move(node_fields_)));
        return ok(v_.on_node_end(index));
      }
      case State::kEntries:
        state_ = State::kNode;
        return true;
      default:
        return fail("is not valid JSON");
    }
  }

  bool captured() {
    state_ = return_state_;
    switch (purpose_) {
      case Purpose::kHeader:
        return ok(v_.on_header_field(capture_key_, builder_.value()));
      case Purpose::kNodeField:
        node_fields_[capture_key_] = std::move(builder_.value());
        return true;
      case Purpose::kEntry:
        return ok(v_.on_entry(builder_.value()));
    }
    return true;
  }

  DocVisitor& v_;
  Pass pass_;
  Status status_;
  State state_ = State::kTop;
  State return_state_ = State::kTop;
  Purpose purpose_ = Purpose::kHeader;
  std::string capture_key_;
  ValueBuilder builder_;
  size_t skip_depth_ = 0;
  json node_fields_;
  std::set<std::string> header_seen_;
  std::set<std::string> node_seen_;
  bool seen_nodes_ = false;
  size_t node_index_ = 0;
};

// One node object of the document, as checked after pass 1.
struct DocNode {
  const NodeView* view = nullptr;
  std::string where;  // "node 'w' subtask 0"
  int subtask = 0;
  json meta;
  std::optional<int64_t> max_event_time;
  std::string files_dir;  // set in pass 2 when it has entries
};

class Importer final : public DocVisitor {
 public:
  Importer(const std::vector<NodeView>& nodes, const ImportOptions& options, std::istream& in,
           std::string staging)
      : nodes_(nodes), options_(options), in_(in), staging_(std::move(staging)) {}

  // --- pass 1 ---

  Status on_header_field(const std::string& key, const json& value) override {
    header_[key] = value;
    return Status::OK();
  }

  Status on_node(size_t index, json fields) override {
    (void)index;
    doc_nodes_.emplace_back();
    raw_nodes_.push_back(std::move(fields));
    return Status::OK();
  }

  void on_entry_skipped() override {
    if (++entries_ % kProgressEvery == 0) report();
  }

  // Pass 2 counts entries again.
  void start_entries_pass() {
    phase_ = "importing";
    entries_ = 0;
  }

  // Everything but the entries, after pass 1.
  Status check_structure() {
    auto format = header_.find("format");
    if (format == header_.end()) return Status::invalid("has no 'format'");
    if (!format->is_string() || format->get<std::string>() != kStateFormat) {
      return Status::invalid("is not a DataFlow state export (its format is " + format->dump() +
                             ", not \"" + kStateFormat + "\")");
    }
    auto version = header_.find("version");
    if (version == header_.end()) return Status::invalid("has no 'version'");
    if (!version->is_number_integer() || version->get<int64_t>() != kStateFormatVersion) {
      return Status::invalid("has format version " + version->dump() +
                             "; this dataflow reads version " +
                             std::to_string(kStateFormatVersion));
    }
    auto pipeline = header_.find("pipeline");
    if (pipeline == header_.end()) return Status::invalid("has no 'pipeline'");
    if (!pipeline->is_string()) return Status::invalid("has a 'pipeline' that is not a string");
    if (pipeline->get<std::string>() != options_.pipeline) {
      return Status::invalid("holds the state of pipeline " +
                             in_quotes(pipeline->get<std::string>()) + ", not " +
                             in_quotes(options_.pipeline));
    }
    std::set<std::pair<std::string, int>> seen;
    std::map<std::string, int> subtasks;
    for (size_t i = 0; i < raw_nodes_.size(); ++i) {
      DF_RETURN_IF_ERROR(check_node(i, raw_nodes_[i], doc_nodes_[i]));
      const DocNode& d = doc_nodes_[i];
      if (!seen.insert({d.view->id, d.subtask}).second) {
        return Status::invalid(d.where + " appears twice");
      }
      ++subtasks[d.view->id];
    }
    for (const auto& [id, count] : subtasks) {
      const NodeView* n = find_node(nodes_, id);
      if (count != n->parallelism) {
        return Status::invalid("node " + in_quotes(id) + " has " + std::to_string(count) +
                               (count == 1 ? " subtask" : " subtasks") +
                               " in the file but parallelism " + std::to_string(n->parallelism) +
                               " in pipeline " + in_quotes(options_.pipeline));
      }
    }
    raw_nodes_.clear();
    return Status::OK();
  }

  // --- pass 2 ---

  Status on_entries_begin(size_t index) override {
    if (index >= doc_nodes_.size()) return Status::invalid("changed while it was read");
    current_ = &doc_nodes_[index];
    entry_index_ = 0;
    max_key_.clear();
    have_max_ = false;
    return Status::OK();
  }

  Status on_entry(const json& entry) override {
    const DocNode& d = *current_;
    const std::string at = d.where + " entry " + std::to_string(entry_index_);
    if (!d.view->serde) {
      return Status::invalid(at + ": a " + d.view->type +
                             " keeps no keyed state, so its 'entries' must be empty");
    }
    if (!entry.is_object()) return Status::invalid(at + " must be an object");
    key_.clear();
    value_.clear();
    Status s = d.view->serde->entry_from_json(entry, key_, value_);
    if (!s.ok()) {
      const bool bad_input =
          s.code() == StatusCode::kInvalidArgument || s.code() == StatusCode::kDataError;
      return Status(bad_input ? StatusCode::kInvalidArgument : s.code(), at + ": " + s.message());
    }
    if (!store_) {
      state::RocksDbOptions ro;
      ro.path = (fs::path(staging_) / "db" / d.view->id / std::to_string(d.subtask)).string();
      DF_ASSIGN_OR_RETURN(store_, state::open_rocksdb(ro));
      db_dir_ = ro.path;
    }
    if (have_max_ && key_ <= max_key_) {
      // Not in key order (an edited file): only a repeated key is a problem.
      DF_RETURN_IF_ERROR(flush_batch());
      DF_ASSIGN_OR_RETURN(auto existing, store_->get(key_));
      if (existing) return Status::invalid(at + " has the same key as an earlier entry");
    } else {
      max_key_ = key_;
      have_max_ = true;
    }
    batch_bytes_ += key_.size() + value_.size();
    batch_.put(key_, value_);
    if (batch_.size() >= kBatchEntries || batch_bytes_ >= kBatchBytes) {
      DF_RETURN_IF_ERROR(flush_batch());
    }
    ++entry_index_;
    if (++entries_ % kProgressEvery == 0) report();
    return Status::OK();
  }

  Status on_node_end(size_t index) override {
    if (index >= doc_nodes_.size()) return Status::invalid("changed while it was read");
    DocNode& d = doc_nodes_[index];
    DF_RETURN_IF_ERROR(flush_batch());
    if (store_) {
      d.files_dir = (fs::path(staging_) / "ckpt" / d.view->id / std::to_string(d.subtask)).string();
      std::error_code ec;
      fs::create_directories(fs::path(d.files_dir).parent_path(), ec);
      DF_RETURN_IF_ERROR(
          store_->checkpoint_to(d.files_dir).with_context("cannot stage the state of " + d.where));
      store_.reset();
      fs::remove_all(db_dir_, ec);
    }
    current_ = nullptr;
    return Status::OK();
  }

  const std::vector<DocNode>& doc_nodes() const { return doc_nodes_; }
  uint64_t entries() const { return entries_; }
  void report() {
    if (!options_.progress) return;
    TransferProgress p;
    p.phase = phase_;
    p.entries = entries_;
    std::streamoff pos = in_.rdbuf()->pubseekoff(0, std::ios::cur, std::ios::in);
    p.bytes = pos > 0 ? static_cast<uint64_t>(pos) : 0;
    options_.progress(p);
  }

 private:
  Status check_node(size_t i, const json& f, DocNode& d) {
    const std::string at = "nodes[" + std::to_string(i) + "]";
    auto node_it = f.find("node");
    if (node_it == f.end() || !node_it->is_string()) {
      return Status::invalid(at + " has no string 'node'");
    }
    const std::string id = node_it->get<std::string>();
    d.view = find_node(nodes_, id);
    if (!d.view) {
      return Status::invalid("node " + in_quotes(id) + " is not in pipeline " +
                             in_quotes(options_.pipeline));
    }
    auto sub_it = f.find("subtask");
    if (sub_it == f.end() || !sub_it->is_number_integer()) {
      return Status::invalid("node " + in_quotes(id) + " (" + at + ") has no integer 'subtask'");
    }
    const int64_t subtask = sub_it->is_number_unsigned() && sub_it->get<uint64_t>() > INT64_MAX
                                ? INT64_MAX
                                : sub_it->get<int64_t>();
    if (subtask < 0 || subtask >= d.view->parallelism) {
      return Status::invalid("node " + in_quotes(id) + " subtask " + std::to_string(subtask) +
                             " does not exist: the node's parallelism in pipeline " +
                             in_quotes(options_.pipeline) + " is " +
                             std::to_string(d.view->parallelism));
    }
    d.subtask = static_cast<int>(subtask);
    d.where = "node " + in_quotes(id) + " subtask " + std::to_string(subtask);
    if (auto t = f.find("type"); t != f.end()) {
      if (!t->is_string()) return Status::invalid(d.where + ": field 'type' must be a string");
      if (t->get<std::string>() != d.view->type) {
        return Status::invalid("node " + in_quotes(id) + " is a " + t->get<std::string>() +
                               " in the file but a " + d.view->type + " in pipeline " +
                               in_quotes(options_.pipeline));
      }
    }
    auto sfv = f.find("state_format_version");
    const bool has_sfv = sfv != f.end() && !sfv->is_null();
    if (d.view->serde) {
      if (!has_sfv || !sfv->is_number_integer()) {
        return Status::invalid(d.where + " has no integer 'state_format_version'");
      }
      if (sfv->get<int64_t>() != d.view->serde->state_format_version()) {
        return Status::invalid(d.where + " has state format version " + sfv->dump() + " but this " +
                               d.view->type + " reads version " +
                               std::to_string(d.view->serde->state_format_version()));
      }
    } else if (has_sfv) {
      return Status::invalid(d.where + " has a 'state_format_version' but a " + d.view->type +
                             " keeps no keyed state");
    }
    if (auto m = f.find("max_event_time"); m != f.end() && !m->is_null()) {
      if (!m->is_number_integer() ||
          (m->is_number_unsigned() && m->get<uint64_t>() > static_cast<uint64_t>(INT64_MAX))) {
        return Status::invalid(d.where + ": field 'max_event_time' must be an integer or null");
      }
      d.max_event_time = m->get<int64_t>();
    }
    if (auto m = f.find("meta"); m != f.end()) d.meta = *m;
    if (d.view->serde && !d.meta.is_null()) {
      DF_RETURN_IF_ERROR(d.view->serde->check_meta(d.meta).with_context(d.where + ": meta"));
    }
    return Status::OK();
  }

  Status flush_batch() {
    if (batch_.empty()) return Status::OK();
    DF_RETURN_IF_ERROR(store_->write(batch_));
    batch_.clear();
    batch_bytes_ = 0;
    return Status::OK();
  }

  const std::vector<NodeView>& nodes_;
  const ImportOptions& options_;
  std::istream& in_;
  std::string staging_;
  json header_ = json::object();
  std::vector<json> raw_nodes_;  // pass 1 only
  std::vector<DocNode> doc_nodes_;

  DocNode* current_ = nullptr;
  std::unique_ptr<state::KvStore> store_;
  std::string db_dir_;
  state::WriteBatch batch_;
  size_t batch_bytes_ = 0;
  std::string key_, value_, max_key_;
  bool have_max_ = false;
  uint64_t entry_index_ = 0;
  uint64_t entries_ = 0;
  const char* phase_ = "checking";
};

// One SAX pass over `in`; a document-level message for a bad document.
Status read_pass(std::istream& in, DocVisitor& visitor, DocReader::Pass pass) {
  DocReader reader(visitor, pass);
  bool parsed = false;
  try {
    parsed = json::sax_parse(in, &reader, json::input_format_t::json, /*strict=*/true);
  } catch (const std::exception& e) {
    return Status::invalid(std::string("cannot be read: ") + e.what());
  }
  if (in.bad()) return Status::io_error("cannot be read");
  if (parsed) return Status::OK();
  return reader.status().ok() ? Status::invalid("is not valid JSON") : reader.status();
}

}  // namespace

Result<ImportResult> import_state(CheckpointStorage& storage, std::istream& in,
                                  const std::vector<NodeView>& nodes,
                                  const ImportOptions& options) {
  const std::string name =
      options.input_name.empty() ? std::string("the state file") : options.input_name;
  // "state.json is not valid JSON ...", "state.json: node 'w' subtask 0 entry 3: ..."
  auto about = [&](const Status& s) {
    const std::string& m = s.message();
    bool sentence = m.rfind("is ", 0) == 0 || m.rfind("has ", 0) == 0 ||
                    m.rfind("holds ", 0) == 0 || m.rfind("cannot ", 0) == 0 ||
                    m.rfind("changed ", 0) == 0;
    return Status(s.code(), name + (sentence ? " " : ": ") + m);
  };

  ScratchDir staging;
  DF_RETURN_IF_ERROR(staging.create(options.scratch_dir, "dataflow-import"));
  Importer importer(nodes, options, in, staging.path());

  const std::streampos start = in.tellg();
  Status s = read_pass(in, importer, DocReader::Pass::kStructure);
  if (s.ok()) s = importer.check_structure();
  if (!s.ok()) return about(s);
  in.clear();
  in.seekg(start);
  if (start < 0 || !in) {
    return Status::invalid(name + " cannot be read twice; give a regular file, not a pipe");
  }
  importer.start_entries_pass();
  s = read_pass(in, importer, DocReader::Pass::kEntries);
  if (!s.ok()) return about(s);
  importer.report();

  // Everything validated and staged: store it as a new checkpoint.
  ImportResult result;
  result.entries = importer.entries();
  result.nodes = importer.doc_nodes().size();
  auto previous = internal::read_current(storage, options.pipeline);
  if (previous.ok()) {
    result.previous_id = *previous;
  } else if (previous.status().code() != StatusCode::kNotFound) {
    return previous.status();
  }

  Manifest base;
  base.pipeline = options.pipeline;
  base.pipeline_version = options.pipeline_version.empty() ? sha256_hex(options.pipeline_text)
                                                           : options.pipeline_version;
  std::map<std::pair<std::string, int>, std::string> local_dirs;
  for (const NodeView& n : nodes) {
    for (int sub = 0; sub < n.parallelism; ++sub) {
      const DocNode* staged = nullptr;
      for (const DocNode& d : importer.doc_nodes()) {
        if (d.view == &n && d.subtask == sub) staged = &d;
      }
      TaskEntry t;
      t.node = n.id;
      t.subtask = sub;
      if (staged) {
        t.meta = staged->meta;
        t.max_event_time = staged->max_event_time;
        if (!staged->files_dir.empty()) local_dirs[{n.id, sub}] = staged->files_dir;
      } else if (sub == 0) {
        result.notes.push_back(name + " has no state for node " + in_quotes(n.id) +
                               "; it starts empty");
      }
      base.tasks.push_back(std::move(t));
    }
  }
  WriteCheckpointOptions write_options;
  write_options.kind = "import";
  write_options.pipeline_text = options.pipeline_text;
  write_options.compression = options.compression;
  DF_ASSIGN_OR_RETURN(result.checkpoint_id,
                      write_checkpoint(storage, base, local_dirs, write_options));
  return result;
}

}  // namespace df::checkpoint
