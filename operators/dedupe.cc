// dedupe: keeps the first row of each key and drops later duplicates.
//   {id: firsts, type: dedupe, input: clicks, key_by: [user, page], within: 1h}
// A row is a duplicate when an earlier row of its key was kept at time t and
// the row's time is before t + within. Time is the row's event time when the
// input carries it (a key is forgotten once the watermark reaches
// t + within), else the wall clock at arrival (a TTL of `within`).
// Null key fields count as equal to each other (as in SQL DISTINCT).
//
// State: entries in state::ValueState's layout with a TTL of `within` (one
// KvStore per subtask, from OperatorContext::state_dir()): the key's
// encoding -> the time t of its kept row, expiring at t + within. A call
// looks up the batch's distinct keys with one multi_get, decides row by row,
// and writes the new firsts as one WriteBatch sorted by key. The decision
// compares times itself (deterministic however late a purge runs); expired
// entries are purged (ValueState::purge_expired) when the clock (watermark or
// wall clock) has moved by `within` since the last purge, so each entry is
// scanned about twice in its life rather than on every watermark. Output
// shares the input's columns with a narrower selection (no copy) and keeps
// its event time.
//
// Checkpoints: every call already ends with its writes in the store, so a
// snapshot is a RocksDB checkpoint of the store (hard links; cost grows with
// the memtable, not with the number of keys) plus the meta
//   {"entries": <keys held>, "next_purge": <timestamp> | null}
// A resumed run reopens the store at its state directory, which already
// holds the snapshot, and takes both numbers back.
//
// `dataflow state export` shows one entry per key (StateSerde):
//   {"key": {"user": "ann", "page": "/a"}, "first_seen": "<timestamp>",
//    "expires": "<timestamp>"}
// first_seen is the time t of the kept row, expires t + within.
#include <algorithm>
#include <limits>
#include <optional>
#include <unordered_map>

#include "engine/checkpoint/state_serde.h"
#include "engine/core/time.h"
#include "engine/state/codec.h"
#include "engine/state/keyed_state.h"
#include "engine/state/state_backend.h"
#include "operators/state_json.h"
#include "operators/stateful.h"
#include "operators/stateless.h"

namespace df::operators {

namespace {

constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
constexpr std::string_view kStateName = "dedupe";

struct DedupeConfig {
  SchemaPtr schema;
  std::vector<size_t> keys;
  int64_t within_ms = 0;
  bool event_time = false;  // else processing time
};

int64_t saturating_add(int64_t a, int64_t b) {
  if (b > 0 && a > std::numeric_limits<int64_t>::max() - b) {
    return std::numeric_limits<int64_t>::max();
  }
  if (b < 0 && a < std::numeric_limits<int64_t>::min() - b) {
    return std::numeric_limits<int64_t>::min();
  }
  return a + b;
}

class DedupeOperator final : public runtime::Operator, public StateStats {
 public:
  explicit DedupeOperator(std::shared_ptr<const DedupeConfig> config)
      : config_(std::move(config)) {}

  Status open(runtime::OperatorContext& ctx) override {
    ctx_ = &ctx;
    what_ = "dedupe '" + ctx.node_id() + "'";
    DF_ASSIGN_OR_RETURN(nlohmann::json meta, parse_restored_meta(ctx, what_));
    if (!meta.is_null()) {
      DF_ASSIGN_OR_RETURN(uint64_t entries, count_from_meta(meta, "entries", what_));
      DF_ASSIGN_OR_RETURN(next_purge_, time_from_meta(meta, "next_purge", what_));
      entries_ = static_cast<size_t>(entries);
    }
    // On resume the store at state_dir() already holds the snapshot's files.
    DF_ASSIGN_OR_RETURN(store_, state::open_store(ctx.state_dir()));
    state::ValueState::Options options;
    options.ttl_ms = config_->within_ms;
    firsts_ = std::make_unique<state::ValueState>(*store_, kStateName,
                                                  std::vector<TypeId>{TypeId::kInt64}, options);
    return Status::OK();
  }

  Status snapshot(runtime::SnapshotContext& ctx) override {
    DF_RETURN_IF_ERROR(firsts_->flush());
    nlohmann::json meta = {{"entries", static_cast<uint64_t>(entries_)},
                           {"next_purge", time_to_meta(next_purge_)}};
    return snapshot_store(*store_, ctx, meta, what_);
  }

  Status process(size_t, const BatchPtr& batch, runtime::Output& out) override {
    const Column* event_time = nullptr;
    int64_t now = 0;
    if (config_->event_time) {
      event_time = batch->event_time().get();
      if (!event_time) {
        return Status::internal("dedupe '" + ctx_->node_id() + "': a batch without event time");
      }
    } else {
      now = now_ms();
      DF_RETURN_IF_ERROR(maybe_purge(now));
    }
    // Pass 1: every row's stored key and time; the batch's distinct keys.
    const size_t n = batch->active_rows();
    if (keys_.size() < n) keys_.resize(n);  // before any view into them is taken
    times_.clear();
    rows_.clear();
    slot_of_.clear();
    slots_.clear();
    row_slot_.clear();
    for (size_t k = 0; k < n; ++k) {
      const size_t row = batch->row_at(k);
      int64_t ts = now;
      if (event_time) {
        if (event_time->is_null(row)) {
          ctx_->report_data_error("dedupe: row without event time skipped");
          continue;
        }
        ts = event_time->int64_at(row);
      }
      std::string& key = keys_[rows_.size()];
      key.assign(prefix_);
      encode_row_key(*batch, config_->keys, row, key);
      auto [it, inserted] = slot_of_.try_emplace(std::string_view(key), slots_.size());
      if (inserted) slots_.push_back(Slot{std::string_view(key)});
      row_slot_.push_back(it->second);
      times_.push_back(ts);
      rows_.push_back(static_cast<uint32_t>(row));
    }
    // Pass 2: one multi_get for the distinct keys. An expired entry is read
    // too; the horizon is checked here.
    lookup_.clear();
    for (const Slot& slot : slots_) lookup_.push_back(slot.key);
    DF_RETURN_IF_ERROR(store_->multi_get(lookup_, found_));
    for (size_t i = 0; i < slots_.size(); ++i) {
      if (!found_[i]) continue;
      std::string_view in = *found_[i];
      auto expiry = state::read_ordered_i64(in);
      if (!expiry.ok()) return expiry.status().with_context(what_ + " state");
      DF_ASSIGN_OR_RETURN(Value first, state::decode_value(in, TypeId::kInt64));
      slots_[i].found = true;
      slots_[i].first = first.is_null() ? kMin : first.as_int64();
      slots_[i].first_null = first.is_null();
    }
    // Pass 3: decide in arrival order.
    auto selection = std::make_shared<Selection>();
    selection->reserve(rows_.size());
    for (size_t m = 0; m < rows_.size(); ++m) {
      Slot& slot = slots_[row_slot_[m]];
      const int64_t ts = times_[m];
      if (slot.found && !slot.first_null && ts < saturating_add(slot.first, config_->within_ms)) {
        continue;  // a duplicate within the horizon
      }
      selection->push_back(rows_[m]);
      if (!slot.found) ++entries_;
      slot.found = true;
      slot.first_null = false;
      slot.first = ts;
      slot.dirty = true;
    }
    // Pass 4: the new firsts as one WriteBatch in key order (RocksDB inserts
    // a sorted batch into its memtable much faster), in state::ValueState's
    // layout with TTL: ordered(t + within) + RowCodec{int64}(t).
    dirty_.clear();
    for (const Slot& slot : slots_) {
      if (slot.dirty) dirty_.push_back(&slot);
    }
    if (!dirty_.empty()) {
      std::sort(dirty_.begin(), dirty_.end(),
                [](const Slot* a, const Slot* b) { return a->key < b->key; });
      state::WriteBatch writes;
      std::string value;
      for (const Slot* slot : dirty_) {
        value.clear();
        state::append_ordered_i64(saturating_add(slot->first, config_->within_ms), value);
        state::encode_value(Value::int64(slot->first), value);
        writes.put(slot->key, value);
      }
      DF_RETURN_IF_ERROR(store_->write(writes));
    }
    if (BatchPtr kept = Batch::narrow(batch, std::move(selection))) out.emit(std::move(kept));
    return Status::OK();
  }

  Status on_watermark(Watermark wm, runtime::Output& out) override {
    DF_RETURN_IF_ERROR(maybe_purge(config_->event_time ? wm.timestamp_ms : now_ms()));
    out.emit_watermark(wm);
    return Status::OK();
  }

  size_t state_entries() const override { return entries_; }

 private:
  // Removes the entries expired at `now` (t + within <= now: no row still to
  // come can be their duplicate; with event time, rows after a watermark are
  // later than it) once `now` has moved by `within` since the last purge.
  Status maybe_purge(int64_t now) {
    if (now < next_purge_) return Status::OK();
    DF_ASSIGN_OR_RETURN(size_t removed, firsts_->purge_expired(now));
    entries_ -= std::min(entries_, removed);
    next_purge_ = saturating_add(now, config_->within_ms);
    return Status::OK();
  }

  std::shared_ptr<const DedupeConfig> config_;
  runtime::OperatorContext* ctx_ = nullptr;
  std::string what_;
  std::unique_ptr<state::KvStore> store_;
  // The stored entries, in its layout; used here for purging only.
  std::unique_ptr<state::ValueState> firsts_;  // uses *store_
  const std::string prefix_ = state::state_prefix(kStateName);
  // Per-call scratch, kept for its capacity.
  struct Slot {
    std::string_view key;  // into keys_
    bool found = false;
    bool first_null = false;
    bool dirty = false;
    int64_t first = 0;
  };
  std::vector<std::string> keys_;
  std::vector<int64_t> times_;
  std::vector<uint32_t> rows_;
  std::vector<size_t> row_slot_;
  std::vector<Slot> slots_;
  std::unordered_map<std::string_view, size_t> slot_of_;
  std::vector<std::string_view> lookup_;
  std::vector<std::optional<std::string>> found_;
  std::vector<const Slot*> dirty_;
  int64_t next_purge_ = kMin;
  size_t entries_ = 0;
};

class PreparedDedupe final : public runtime::PreparedNode, public checkpoint::StateSerde {
 public:
  explicit PreparedDedupe(std::shared_ptr<const DedupeConfig> config)
      : config_(std::move(config)), prefix_(state::state_prefix(kStateName)) {
    for (size_t k : config_->keys) key_fields_.push_back(config_->schema->field(k));
  }
  SchemaPtr output_schema() const override { return config_->schema; }
  std::unique_ptr<runtime::Operator> make_operator(int, int) const override {
    return std::make_unique<DedupeOperator>(config_);
  }
  bool chainable() const override { return false; }
  runtime::InputPartitioning input_partitioning() const override {
    return {runtime::InputPartitioning::Kind::kHash, config_->keys};
  }
  std::string describe() const override {
    std::string d = "first per ";
    for (size_t i = 0; i < config_->keys.size(); ++i) {
      d += (i ? ", " : "") + config_->schema->field(config_->keys[i]).name;
    }
    d += " within " + format_duration(Millis(config_->within_ms));
    d += config_->event_time ? " (event time)" : " (processing time)";
    return d;
  }

  // Key: state_prefix("dedupe") + the key fields' key encodings. Value:
  // ordered(expiry) + RowCodec{int64}(first_seen) (state::ValueState with TTL).
  Result<nlohmann::json> entry_to_json(std::string_view key,
                                       std::string_view value) const override {
    if (!key.starts_with(prefix_)) {
      return Status::data_error("dedupe state: an entry outside the dedupe key space");
    }
    key.remove_prefix(prefix_.size());
    auto fields = key_to_json(key, key_fields_);
    if (!fields.ok()) return fields.status().with_context("dedupe state key");
    if (!key.empty()) return Status::data_error("dedupe state: trailing bytes after the key");
    auto expiry = state::read_ordered_i64(value);
    if (!expiry.ok()) return expiry.status().with_context("dedupe state value");
    auto first = state::decode_value(value, TypeId::kTimestamp);
    if (!first.ok()) return first.status().with_context("dedupe state value");
    if (!value.empty()) return Status::data_error("dedupe state: trailing bytes after the value");
    return nlohmann::json{
        {"key", std::move(*fields)},
        {"first_seen", value_to_json(*first, TypeId::kTimestamp)},
        {"expires", value_to_json(Value::timestamp(*expiry), TypeId::kTimestamp)}};
  }

  Status entry_from_json(const nlohmann::json& entry, std::string& key,
                         std::string& value) const override {
    DF_RETURN_IF_ERROR(
        check_object(entry, "a dedupe state entry", {"key", "first_seen", "expires"}));
    std::string k = prefix_;
    DF_RETURN_IF_ERROR(
        key_from_json(entry.at("key"), key_fields_, "a dedupe state entry's 'key'", k));
    DF_ASSIGN_OR_RETURN(Value first, value_from_json(entry.at("first_seen"), TypeId::kTimestamp,
                                                     "a dedupe state entry's 'first_seen'"));
    const nlohmann::json& expires_json = entry.at("expires");
    if (expires_json.is_null()) {
      return Status::invalid("a dedupe state entry's 'expires' must be a timestamp, not null");
    }
    DF_ASSIGN_OR_RETURN(Value expires, value_from_json(expires_json, TypeId::kTimestamp,
                                                       "a dedupe state entry's 'expires'"));
    std::string v;
    state::append_ordered_i64(expires.as_int64(), v);
    state::encode_value(first, v);
    key = std::move(k);
    value = std::move(v);
    return Status::OK();
  }

  Status check_meta(const nlohmann::json& meta) const override {
    const std::string what = "dedupe meta";
    DF_RETURN_IF_ERROR(check_object(meta, what, {"entries", "next_purge"}));
    DF_RETURN_IF_ERROR(count_from_meta(meta, "entries", what).status());
    return time_from_meta(meta, "next_purge", what).status();
  }

 private:
  std::shared_ptr<const DedupeConfig> config_;
  std::string prefix_;
  std::vector<Field> key_fields_;
};

class DedupeFactory final : public runtime::NodeFactory {
 public:
  runtime::PreparedNodePtr prepare(const runtime::NodeSpec& spec,
                                   const std::vector<SchemaPtr>& inputs,
                                   OptionReader& opts) const override {
    const std::string what = "dedupe '" + spec.id + "'";
    if (!require_single_input(spec, inputs, opts)) return nullptr;
    auto config = std::make_shared<DedupeConfig>();
    config->schema = inputs[0];
    config->event_time = !spec.input_has_event_time.empty() && spec.input_has_event_time[0];
    const ConfigValue* key_by = opts.require("key_by");
    const ConfigValue* within_node = opts.get("within");
    auto within = opts.duration("within", true);
    bool ok = true;
    if (key_by) {
      auto keys = resolve_key_fields(*key_by, *inputs[0], what + " 'key_by'", opts.diags());
      if (keys) {
        config->keys = std::move(*keys);
      } else {
        ok = false;
      }
    } else {
      ok = false;
    }
    if (within && within->count() <= 0) {
      opts.diags().error(within_node->location(),
                         what + ": 'within' must be a positive duration, got '" +
                             within_node->scalar_text() + "'");
      ok = false;
    }
    if (!within || !ok) return nullptr;
    config->within_ms = within->count();
    return std::make_shared<PreparedDedupe>(std::move(config));
  }
};

}  // namespace

std::unique_ptr<runtime::NodeFactory> make_dedupe_factory() {
  return std::make_unique<DedupeFactory>();
}

}  // namespace df::operators
