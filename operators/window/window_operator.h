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
#include "engine/core/time.h"
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

// The tumbling or sliding windows of an event time, shared by the window
// and top_n operators. Remembers the last row's tumbling window, since
// consecutive rows mostly fall into the same one. One per subtask (not
// thread-safe).
class WindowAssigner {
 public:
  WindowAssigner(WindowType type, int64_t size_ms, int64_t slide_ms)
      : type_(type), size_ms_(size_ms), slide_ms_(slide_ms) {}

  // Calls keep(end) for each window of event time t (newest first) whose
  // allowed lateness has not passed at `watermark`; false when t has
  // windows and all of them are gone (a late row).
  template <typename Keep>
  bool for_each_kept(int64_t t, int64_t lateness_ms, int64_t watermark, Keep&& keep) {
    if (type_ == WindowType::kTumbling) {
      if (t < tumbling_start_ || t >= tumbling_end_) {
        tumbling_end_ = floor_div(t, size_ms_) * size_ms_ + size_ms_;
        tumbling_start_ = tumbling_end_ - size_ms_;
      }
      if (tumbling_end_ - 1 + lateness_ms <= watermark) return false;
      keep(tumbling_end_);
      return true;
    }
    bool any = false;
    bool placed = false;
    const int64_t last_start = floor_div(t, slide_ms_) * slide_ms_;
    for (int64_t start = last_start; start > t - size_ms_; start -= slide_ms_) {
      any = true;
      const int64_t end = start + size_ms_;
      if (end - 1 + lateness_ms <= watermark) continue;
      keep(end);
      placed = true;
    }
    return placed || !any;
  }

 private:
  WindowType type_;
  int64_t size_ms_;
  int64_t slide_ms_;
  int64_t tumbling_start_ = 0;  // the last row's tumbling window
  int64_t tumbling_end_ = 0;
};

// ordered_i64(v): the prefix of a window's spilled entries (state layout below).
std::string ordered_key(int64_t v);

// Reads the spilled partials of the window ending at `end` (entries
// ordered_key(end) + encoded key + u64 spill number) in key order:
// add_partial(key, value) for each, then group_done(key) after a key's last
// one. kDataError naming `what` on a malformed entry.
Status scan_spilled_groups(
    state::KvStore& store, int64_t end, const std::string& what,
    const std::function<Status(std::string_view key, std::string_view partial)>& add_partial,
    const std::function<Status(const std::string& key)>& group_done);

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

// The checks a windowed transform's factory starts with: one input
// (false, reported, when not) that carries event time (reported when not).
bool check_windowed_input(const runtime::NodeSpec& spec, const std::vector<SchemaPtr>& inputs,
                          OptionReader& opts, const std::string& what);

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

// The width of a tumbling or sliding window's panes, the unit its groups
// are kept, spilled and checkpointed in: a tumbling window's size; for a
// sliding window the greatest common divisor of size and slide, so that
// every window is a run of whole panes and a row updates one pane. 0 for
// session windows.
int64_t pane_ms(const WindowConfig& cfg);

// ---- The operator's KvStore layout, shared with the StateSerde in window.cc.
//
// Tumbling and sliding: one entry per spilled partial group of a pane
// (pane_ms; a tumbling window is one pane),
//   ordered_i64(pane_end) + encoded key + u64(spill number) -> accumulators
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
//   {"format": 1 (2 for sliding), "window": "tumbling"|"sliding"|"session",
//    "watermark_ms": <int64>|null, "next_seq": <uint64>,
//    "spill_seq": <uint64>,                               (tumbling, sliding)
//    "windows": [{"end_ms": <int64>, "fired": <bool>}],   (tumbling, sliding)
//    "panes_end_ms": [<int64>, ...]}                      (sliding)
// A sliding window's panes_end_ms lists the panes that hold state (in the
// store after a restore), ascending; a tumbling window's pane is the window.
struct WindowMeta {
  std::optional<int64_t> watermark;
  uint64_t next_seq = 0;
  uint64_t spill_seq = 0;
  std::vector<std::pair<int64_t, bool>> windows;  // (end, fired), ascending ends
  std::vector<int64_t> panes;                     // sliding: pane ends, ascending
};
nlohmann::json meta_to_json(const WindowConfig& cfg, const WindowMeta& meta);
// kInvalidArgument with one sentence when `j` is not this node's meta.
Result<WindowMeta> meta_from_json(const WindowConfig& cfg, const nlohmann::json& j);

// One instance per subtask. Not thread-safe (the scheduler never calls it
// concurrently).
std::unique_ptr<runtime::Operator> make_window_operator(std::shared_ptr<const WindowConfig> config);

}  // namespace df::operators::window
