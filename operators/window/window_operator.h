// Internal to operators/window: the validated configuration of one window
// node and the operator that runs it.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/core/config_value.h"
#include "engine/core/schema.h"
#include "engine/core/status.h"
#include "engine/runtime/node_factory.h"
#include "engine/runtime/operator.h"
#include "engine/state/state_backend.h"
#include "operators/window/aggregate.h"

namespace df::operators::window {

enum class WindowType { kTumbling, kSliding, kSession };

// The `window:` map of a transform: {type: tumbling|sliding|session, size,
// slide, gap}.
struct WindowShape {
  WindowType type = WindowType::kTumbling;
  int64_t size_ms = 0;   // tumbling, sliding
  int64_t slide_ms = 0;  // sliding
  int64_t gap_ms = 0;    // session
};

// Reads a `window:` map (window.cc); false with the problems in `diags`.
// Without `sessions`, a session window is refused as one `what` cannot take.
bool read_window_shape(const ConfigValue& node, const std::string& what, bool sessions,
                       WindowShape& shape, Diagnostics& diags);

// What the prepared windowed transforms (window, top_n) answer alike: they
// are never chained, keyed input is hash-partitioned by the key (unkeyed:
// one subtask), late rows may go to a named side output, and their output
// carries event time.
class PreparedWindowedNode : public runtime::PreparedNode {
 public:
  PreparedWindowedNode(std::vector<size_t> key_fields, SchemaPtr input_schema,
                       std::string late_output, SourceLocation late_output_location)
      : key_fields_(std::move(key_fields)),
        input_schema_(std::move(input_schema)),
        late_output_(std::move(late_output)),
        late_output_location_(std::move(late_output_location)) {}

  bool chainable() const override { return false; }
  runtime::InputPartitioning input_partitioning() const override {
    if (key_fields_.empty()) return {};
    return {runtime::InputPartitioning::Kind::kHash, key_fields_};
  }
  std::vector<runtime::SideOutput> side_outputs() const override {
    if (late_output_.empty()) return {};
    return {runtime::SideOutput{late_output_, input_schema_, late_output_location_}};
  }
  std::optional<bool> output_has_event_time() const override { return true; }
  std::optional<int> max_parallelism() const override {
    if (key_fields_.empty()) return 1;
    return std::nullopt;
  }

 private:
  std::vector<size_t> key_fields_;
  SchemaPtr input_schema_;
  std::string late_output_;
  SourceLocation late_output_location_;
};

// Reads `allowed_lateness` (not negative) and `late_output` (a stream name)
// of a windowed transform (window.cc); returns where late_output was given
// (empty when it was not), for the planner's side-output checks.
SourceLocation read_lateness(OptionReader& opts, const std::string& what,
                             int64_t& allowed_lateness_ms, std::string& late_output,
                             Diagnostics& diags);

// The rows `late` of `batch` came too late for a windowed transform: they go
// to its late-row side output (port 1) when it has one, else each is
// reported as a data error naming `what` (window_operator.cc).
void route_late_rows(const Batch& batch, const Selection& late, bool has_late_output,
                     const std::string& what, int64_t watermark, runtime::OperatorContext& ctx,
                     runtime::Output& out);

// Immutable after the factory built it; shared by every subtask.
struct WindowConfig {
  std::string id;
  WindowType type = WindowType::kTumbling;
  int64_t size_ms = 0;   // tumbling, sliding
  int64_t slide_ms = 0;  // sliding
  int64_t gap_ms = 0;    // session
  int64_t allowed_lateness_ms = 0;
  std::vector<size_t> key_fields;  // input field indexes
  std::vector<TypeId> key_types;
  std::vector<AggSpec> aggs;
  SchemaPtr input_schema;
  SchemaPtr output_schema;  // keys, window_start, window_end, aggregates
  std::string late_output;  // empty: late rows are dropped and counted
};

// ---- The operator's KvStore layout, shared with the StateSerde in window.cc.
//
// Tumbling and sliding: one entry per spilled partial group,
//   ordered_i64(window_end) + encoded key + u64(spill number) -> accumulators
// (GroupStates::encode). Session windows: per key one record holding all of
// its sessions, and one timer entry per session:
//   kSessionRecord + encoded key -> session list (below)
//   kFireTimer + ordered_i64(end) + encoded key -> ""   (not fired yet)
//   kPurgeTimer + ordered_i64(end) + encoded key -> ""  (fired, kept for lateness)
// A session list: varint count, then per session ordered_i64 start,
// ordered_i64 end, one byte fired (0/1), varint length, accumulators.
inline constexpr char kSessionRecord = 0x01;
inline constexpr char kFireTimer = 0x02;
inline constexpr char kPurgeTimer = 0x03;

struct StoredSession {
  int64_t start = 0;
  int64_t end = 0;
  bool fired = false;
  std::string_view accumulators;  // into the decoded record
};
void append_session_count(uint64_t count, std::string& out);
void append_stored_session(const StoredSession& s, std::string& out);
// kDataError when `record` is not a session list.
Status read_stored_sessions(std::string_view record, std::vector<StoredSession>& out);

// Splits the encoded key_by cells off the front of `in` (kDataError when
// they do not decode); the key's bytes.
Result<std::string_view> split_key(const WindowConfig& cfg, std::string_view& in);

// The operator's meta document (SnapshotContext::set_meta):
//   {"format": 1, "window": "tumbling"|"sliding"|"session",
//    "watermark_ms": <int64>|null, "next_seq": <uint64>,
//    "spill_seq": <uint64>,                               (tumbling, sliding)
//    "windows": [{"end_ms": <int64>, "fired": <bool>}]}   (tumbling, sliding)
struct WindowMeta {
  std::optional<int64_t> watermark;
  uint64_t next_seq = 0;
  uint64_t spill_seq = 0;
  std::vector<std::pair<int64_t, bool>> windows;  // (end, fired), ascending ends
};
nlohmann::json meta_to_json(const WindowConfig& cfg, const WindowMeta& meta);
// kInvalidArgument with one sentence when `j` is not this node's meta.
Result<WindowMeta> meta_from_json(const WindowConfig& cfg, const nlohmann::json& j);

// One instance per subtask. Not thread-safe (the scheduler never calls it
// concurrently).
std::unique_ptr<runtime::Operator> make_window_operator(std::shared_ptr<const WindowConfig> config);

// The checkpoint of an empty store, made once (on the I/O strand) under the
// operator's state directory: a snapshot taken while the operator's store
// holds nothing lays a copy of it into the snapshot's files and adds the
// in-memory entries there (state::add_to_checkpoint), so the task thread
// neither opens the store nor checkpoints it (a RocksDB checkpoint writes
// and syncs a MANIFEST on the calling thread, and opening a store more).
// Windows and top_n use it; shared by the snapshot jobs of one subtask,
// which its I/O strand runs one at a time.
class EmptyStoreImage {
 public:
  explicit EmptyStoreImage(const std::string& state_dir);
  // Copies the image into `to`, which must not exist yet. I/O strand only.
  Status copy_to(const std::string& to);

 private:
  Status make();

  const std::string dir_;
  bool made_ = false;
};

// The snapshot of an operator whose store holds nothing: sets `meta`, and
// when `build` is set, the I/O pool lays the empty store's image (`image`,
// made at first use under `state_dir`) into the snapshot's files and adds
// build's entries there. Task thread.
void snapshot_without_store(runtime::OperatorContext& ctx, runtime::SnapshotContext& sctx,
                            const std::string& state_dir, std::shared_ptr<EmptyStoreImage>& image,
                            std::string meta,
                            std::function<Status(state::CheckpointEntries&)> build,
                            std::string what);

}  // namespace df::operators::window
