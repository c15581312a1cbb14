// dedupe: keeps the first row of each key and drops later duplicates.
//   {id: firsts, type: dedupe, input: clicks, key_by: [user, page], within: 1h}
// A row is a duplicate when an earlier row of its key was kept at time t and
// the row's time is before t + within. Time is the row's event time when the
// input carries it (a key is forgotten once the watermark reaches
// t + within), else the wall clock at arrival (a TTL of `within`).
// Null key fields count as equal to each other (as in SQL DISTINCT).
//
// State: a state::ValueState (one KvStore per subtask, from
// OperatorContext::state_dir()) from the key's encoding to the time t of its
// kept row, with a TTL of `within`, so an entry expires at t + within. The
// decision compares times itself (deterministic however late a purge runs);
// expired entries are purged when the clock (watermark or wall clock) has
// moved by `within` since the last purge, so each entry is scanned about
// twice in its life rather than on every watermark. Writes of one call go out
// as one WriteBatch. Output shares the input's columns with a narrower
// selection (no copy) and keeps its event time.
#include <algorithm>
#include <limits>

#include "engine/core/time.h"
#include "engine/state/codec.h"
#include "engine/state/keyed_state.h"
#include "engine/state/state_backend.h"
#include "operators/stateful.h"
#include "operators/stateless.h"

namespace df::operators {

namespace {

constexpr int64_t kMin = std::numeric_limits<int64_t>::min();

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
    DF_ASSIGN_OR_RETURN(store_, state::open_store(ctx.state_dir()));
    state::ValueState::Options options;
    options.ttl_ms = config_->within_ms;
    firsts_ = std::make_unique<state::ValueState>(*store_, "dedupe",
                                                  std::vector<TypeId>{TypeId::kInt64}, options);
    return Status::OK();
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
    auto selection = std::make_shared<Selection>();
    selection->reserve(batch->active_rows());
    std::string key;
    for (size_t k = 0; k < batch->active_rows(); ++k) {
      const size_t row = batch->row_at(k);
      int64_t ts = now;
      if (event_time) {
        if (event_time->is_null(row)) {
          ctx_->report_data_error("dedupe: row without event time skipped");
          continue;
        }
        ts = event_time->int64_at(row);
      }
      key.clear();
      encode_row_key(*batch, config_->keys, row, key);
      // kMin: read even an expired entry; the horizon is checked here.
      DF_ASSIGN_OR_RETURN(bool found, firsts_->get(key, first_, kMin));
      if (found && !first_[0].is_null() &&
          ts < saturating_add(first_[0].as_int64(), config_->within_ms)) {
        continue;  // a duplicate within the horizon
      }
      selection->push_back(static_cast<uint32_t>(row));
      if (!found) ++entries_;
      first_.assign(1, Value::int64(ts));
      DF_RETURN_IF_ERROR(firsts_->put(key, first_, ts));
    }
    DF_RETURN_IF_ERROR(firsts_->flush());
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
  std::unique_ptr<state::KvStore> store_;
  std::unique_ptr<state::ValueState> firsts_;  // uses *store_
  state::Row first_;
  int64_t next_purge_ = kMin;
  size_t entries_ = 0;
};

class PreparedDedupe final : public runtime::PreparedNode {
 public:
  explicit PreparedDedupe(std::shared_ptr<const DedupeConfig> config)
      : config_(std::move(config)) {}
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

 private:
  std::shared_ptr<const DedupeConfig> config_;
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
