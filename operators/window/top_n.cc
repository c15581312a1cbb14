// The top_n node: its factory, the operator and its readable state. Layout
// and semantics in top_n.h.
//
// The operator keeps, per window end, a hash map from encoded key to the
// group's top rows (best first, each with its sort key). A row is assigned
// to its windows like the window operator assigns it; its sort key (a few
// bytes) is compared with the group's cut-off (the n-th row's key) and only
// a row that gets in is encoded and stored, so most rows cost one key
// encoding and one memcmp.
#include "operators/window/top_n.h"

#include <algorithm>
#include <cctype>
#include <limits>
#include <map>
#include <unordered_map>
#include <utility>

#include "engine/checkpoint/state_serde.h"
#include "engine/core/time.h"
#include "engine/state/codec.h"
#include "engine/state/state_backend.h"
#include "operators/expr_options.h"
#include "operators/join/join.h"
#include "operators/state_json.h"
#include "operators/stateful.h"
#include "operators/stateless.h"
#include "operators/window/aggregate.h"
#include "operators/window/window_operator.h"

namespace df::operators {

namespace {

using nlohmann::json;
using window::is_space;
using window::ordered_key;
using window::read_lateness;
using window::read_window_shape;
using window::scan_top_level;
using window::WindowShape;
using window::WindowType;

constexpr int64_t kNoWatermark = std::numeric_limits<int64_t>::min();
constexpr int64_t kMaxTime = std::numeric_limits<int64_t>::max();
constexpr int kMetaFormat = 1;

enum class Ranking { kRank, kRowNumber };

struct OrderSpec {
  expr::CompiledExprPtr expr;
  bool descending = false;
};

// Immutable after the factory built it; shared by every subtask.
struct TopNConfig {
  std::string what;  // "top_n '<id>'"
  WindowType type = WindowType::kTumbling;
  int64_t size_ms = 0;
  int64_t slide_ms = 0;  // sliding
  int64_t allowed_lateness_ms = 0;
  std::vector<size_t> key_fields;
  std::vector<OrderSpec> order;
  size_t n = 1;
  Ranking ranking = Ranking::kRank;
  std::string rank_field = "rank";
  SchemaPtr input_schema;
  SchemaPtr output_schema;  // input fields, window_start, window_end, rank
  std::string late_output;
};
using TopNConfigPtr = std::shared_ptr<const TopNConfig>;

// Complements bytes [from, end) of `s`: reverses the order of a
// self-delimiting (prefix-free) key encoding.
void complement_from(std::string& s, size_t from) {
  for (size_t i = from; i < s.size(); ++i) s[i] = static_cast<char>(~s[i]);
}

// ---- one group's top rows ------------------------------------------------------

struct KeptRow {
  std::string sort_key;
  std::string row;  // encode_cell of every input field
};

// Estimated memory of a kept row and of a group besides its rows (hash node,
// vector, key), for the state memory budget.
constexpr size_t kRowOverhead = 64;
constexpr size_t kGroupOverhead = 96;
size_t row_bytes(const KeptRow& r) { return kRowOverhead + r.sort_key.size() + r.row.size(); }

// Drops the rows ranked past n from `rows` (sorted best first); returns
// their bytes.
size_t cut_rows(std::vector<KeptRow>& rows, size_t n, Ranking ranking) {
  if (rows.size() <= n) return 0;
  size_t keep = n;
  if (ranking == Ranking::kRank) {
    // RANK: only a row strictly worse than the n-th is ranked past n.
    const std::string_view cut = rows[n - 1].sort_key;
    keep = rows.size();
    while (keep > n && std::string_view(rows[keep - 1].sort_key) > cut) --keep;
  }
  size_t freed = 0;
  for (size_t i = keep; i < rows.size(); ++i) freed += row_bytes(rows[i]);
  rows.resize(keep);
  return freed;
}

// Merges `later` (rows that arrived after those of `rows`, both best first)
// into `rows` and cuts at n. Each list holds every row of its part of the
// stream that ranks <= n within that part, a superset of its rows that rank
// <= n overall, so the merge is exact; ties stay in arrival order.
void merge_rows(std::vector<KeptRow>& rows, std::vector<KeptRow>&& later, size_t n,
                Ranking ranking) {
  const auto mid = static_cast<std::ptrdiff_t>(rows.size());
  for (KeptRow& r : later) rows.push_back(std::move(r));
  std::inplace_merge(rows.begin(), rows.begin() + mid, rows.end(),
                     [](const KeptRow& a, const KeptRow& b) { return a.sort_key < b.sort_key; });
  cut_rows(rows, n, ranking);
}

// The top rows of one (key, window) in memory, best first; rows with equal
// sort keys in arrival order. In a spilled window these are the rows since
// the spill: the store holds the rest as partials.
struct Group {
  std::vector<KeptRow> rows;
  bool dirty = false;  // a fired window's group changed since it was emitted

  // Whether a row with `key` gets in.
  bool admits(std::string_view key, size_t n, Ranking ranking) const {
    if (rows.size() < n) return true;
    const std::string_view cut = rows[n - 1].sort_key;
    return ranking == Ranking::kRank ? key <= cut : key < cut;
  }
  // Inserts an admitted row after its equals and drops what falls out;
  // returns the bytes dropped.
  size_t insert(KeptRow row, size_t n, Ranking ranking) {
    auto at =
        std::upper_bound(rows.begin(), rows.end(), row.sort_key,
                         [](const std::string& k, const KeptRow& e) { return k < e.sort_key; });
    rows.insert(at, std::move(row));
    return cut_rows(rows, n, ranking);
  }
};

using GroupMap = std::unordered_map<std::string, Group, window::StringHash, std::equal_to<>>;

struct TopWindow {
  explicit TopWindow(int64_t end_ms) : end(end_ms) {}
  int64_t end;
  bool fired = false;
  bool spilled = false;  // has partials in the store
  size_t bytes = 0;      // estimated memory of its groups
  GroupMap groups;
};

// ---- the stored entry ------------------------------------------------------------

void append_entry_key(int64_t end, std::string_view key, uint64_t spill, std::string& out) {
  state::append_ordered_i64(end, out);
  out.append(key);
  state::append_u64(spill, out);
}

void encode_rows(const std::vector<KeptRow>& rows, std::string& out) {
  state::append_varint(rows.size(), out);
  for (const KeptRow& r : rows) {
    state::append_varint(r.sort_key.size(), out);
    out += r.sort_key;
    state::append_varint(r.row.size(), out);
    out += r.row;
  }
}

Status decode_rows(std::string_view in, std::vector<KeptRow>& out) {
  const auto bad = [] { return Status::data_error("top_n state: a malformed row list"); };
  out.clear();
  auto count = state::read_varint(in);
  if (!count.ok() || *count > in.size()) return bad();
  for (uint64_t i = 0; i < *count; ++i) {
    KeptRow r;
    for (std::string* part : {&r.sort_key, &r.row}) {
      auto len = state::read_varint(in);
      if (!len.ok() || *len > in.size()) return bad();
      part->assign(in.substr(0, *len));
      in.remove_prefix(*len);
    }
    if (!out.empty() && r.sort_key < out.back().sort_key) {
      return Status::data_error("top_n state: rows out of rank order");
    }
    out.push_back(std::move(r));
  }
  if (!in.empty()) return bad();
  return Status::OK();
}

// ---- meta ---------------------------------------------------------------------------

struct TopNMeta {
  int64_t watermark = kNoWatermark;
  uint64_t spill_seq = 0;
  std::vector<std::pair<int64_t, bool>> windows;  // (end, fired), ascending
};

json meta_to_json(const TopNMeta& m) {
  json windows = json::array();
  for (const auto& [end, fired] : m.windows) {
    windows.push_back({{"window_end", timestamp_to_json(end)}, {"fired", fired}});
  }
  return {{"format", kMetaFormat},
          {"watermark", time_to_meta(m.watermark)},
          {"spill_seq", m.spill_seq},
          {"windows", std::move(windows)}};
}

Result<TopNMeta> meta_from_json(const json& j, std::string_view what) {
  DF_RETURN_IF_ERROR(check_object(j, std::string(what) + " meta",
                                  {"format", "watermark", "spill_seq", "windows"}));
  if (!j["format"].is_number_integer() || j["format"].get<int64_t>() != kMetaFormat) {
    return Status::invalid(std::string(what) + " meta has format " + j["format"].dump() +
                           ", expected " + std::to_string(kMetaFormat));
  }
  TopNMeta m;
  DF_ASSIGN_OR_RETURN(m.watermark, time_from_meta(j, "watermark", what));
  DF_ASSIGN_OR_RETURN(m.spill_seq, count_from_meta(j, "spill_seq", what));
  const json& windows = j["windows"];
  if (!windows.is_array()) {
    return Status::invalid(std::string(what) + " meta's 'windows' must be an array");
  }
  for (size_t i = 0; i < windows.size(); ++i) {
    const std::string w = std::string(what) + " meta's windows[" + std::to_string(i) + "]";
    DF_RETURN_IF_ERROR(check_object(windows[i], w, {"window_end", "fired"}));
    DF_ASSIGN_OR_RETURN(int64_t end,
                        timestamp_from_json(windows[i]["window_end"], w + ".window_end"));
    DF_ASSIGN_OR_RETURN(bool fired, bool_from_meta(windows[i], "fired", w));
    if (!m.windows.empty() && end <= m.windows.back().first) {
      return Status::invalid(std::string(what) + " meta's windows must have ascending ends");
    }
    m.windows.emplace_back(end, fired);
  }
  return m;
}

// ---- output ---------------------------------------------------------------------------

// Builds output batches of at most batch_size rows from kept rows.
class TopNOutput {
 public:
  TopNOutput(const TopNConfig& cfg, size_t batch_size)
      : cfg_(cfg), batch_(cfg.output_schema, batch_size, TypeId::kTimestamp) {}

  // The rows of one group, in rank order.
  Status append_group(const std::vector<KeptRow>& rows, int64_t end, runtime::Output& out) {
    const size_t nin = cfg_.input_schema->size();
    int64_t rank = 0;
    for (size_t i = 0; i < rows.size(); ++i) {
      const KeptRow& r = rows[i];
      if (cfg_.ranking == Ranking::kRowNumber || i == 0 || r.sort_key != rows[i - 1].sort_key) {
        rank = static_cast<int64_t>(i) + 1;
      }
      std::string_view in = r.row;
      for (size_t f = 0; f < nin; ++f) {
        DF_ASSIGN_OR_RETURN(Value v, state::decode_value(in, cfg_.input_schema->field(f).type));
        batch_.column(f).append_value(v);
      }
      batch_.column(nin).append_int64(end - cfg_.size_ms);
      batch_.column(nin + 1).append_int64(end);
      batch_.column(nin + 2).append_int64(rank);
      batch_.end_row(end - 1, out);
    }
    return Status::OK();
  }

  void flush(runtime::Output& out) { batch_.flush(out); }

 private:
  const TopNConfig& cfg_;
  OutputBatcher batch_;
};

// ---- the operator -------------------------------------------------------------------

constexpr size_t kDefaultMemoryBudget = size_t{256} << 20;
constexpr size_t kSpillWriteBatch = 4096;

// One instance per subtask; the scheduler never calls it concurrently.
//
// Past the state memory budget every in-memory group is written to the
// store as a partial (ordered_i64(end) + key + u64(spill number) -> rows)
// and memory is emptied; later rows gather in memory again. Partials are
// merged when the window fires (one range scan per window, in key order).
// A row for a fired, spilled window (a late row) first loads its key's
// partials back into memory, so that whether it changes the top is exact.
// A snapshot writes the in-memory groups as partials into the checkpoint
// only (the I/O pool adds them), so memory and the live store stay as they
// were; a resumed run starts with every window spilled. While no window is
// spilled the store holds nothing and is not checkpointed: the I/O pool lays
// an empty store's image (EmptyStoreImage) under the partials instead.
class TopNOperator final : public runtime::Operator, public StateStats {
 public:
  explicit TopNOperator(TopNConfigPtr cfg)
      : cfg_(std::move(cfg)),
        lateness_(cfg_->allowed_lateness_ms),
        assigner_(cfg_->type, cfg_->size_ms, cfg_->slide_ms) {}

  size_t state_entries() const override {
    size_t n = 0;
    for (const auto& [end, w] : windows_) {
      for (const auto& [key, g] : w->groups) n += g.rows.size();
    }
    return n;
  }

  Status open(runtime::OperatorContext& ctx) override {
    ctx_ = &ctx;
    state_dir_ = ctx.state_dir();
    const size_t budget = ctx.state_memory_budget();
    spill_enabled_ = !state_dir_.empty() || budget > 0;
    budget_ = budget > 0 ? budget : kDefaultMemoryBudget;
    sink_ = std::make_unique<TopNOutput>(*cfg_, ctx.batch_size());
    DF_ASSIGN_OR_RETURN(json meta, parse_restored_meta(ctx, cfg_->what));
    if (meta.is_null()) return Status::OK();
    if (state_dir_.empty()) {
      return Status::invalid(cfg_->what +
                             ": cannot resume from a checkpoint without a state directory");
    }
    auto m = meta_from_json(meta, cfg_->what);
    if (!m.ok()) {
      return Status::invalid(cfg_->what +
                             ": cannot resume from the checkpoint: " + m.status().message());
    }
    watermark_ = m->watermark;
    spill_seq_ = m->spill_seq;
    for (const auto& [end, fired] : m->windows) window_for(end)->fired = fired;
    DF_ASSIGN_OR_RETURN(store_, state::open_store(state_dir_));
    // Windows with partials that the meta does not list (an imported state):
    // one seek per window end.
    std::string lo;
    while (true) {
      std::optional<int64_t> end;
      Status st;
      DF_RETURN_IF_ERROR(store_->scan(lo, "", [&](std::string_view k, std::string_view) {
        auto e = state::read_ordered_i64(k);
        if (!e.ok())
          st = Status::data_error(cfg_->what + " state: an entry without its window end");
        if (e.ok()) end = *e;
        return false;
      }));
      DF_RETURN_IF_ERROR(st);
      if (!end) break;
      window_for(*end)->spilled = true;  // a window first seen here: fired if its end passed
      if (*end == kMaxTime) break;
      lo = ordered_key(*end + 1);
    }
    last_window_ = nullptr;
    return Status::OK();
  }

  Status snapshot(runtime::SnapshotContext& sctx) override {
    if (state_dir_.empty()) {
      return Status::invalid(cfg_->what + ": checkpoints need a state directory");
    }
    // No window spilled: the store holds nothing (a fired spilled window's
    // range is removed with it).
    const bool store_empty = std::none_of(windows_.begin(), windows_.end(),
                                          [](const auto& w) { return w.second->spilled; });
    if (!store_empty) DF_RETURN_IF_ERROR(ensure_store());
    // The in-memory groups are encoded here as the partials a spill would
    // write (groups are small: n rows each); the I/O pool adds them to the
    // checkpoint.
    auto image = std::make_shared<state::CheckpointEntries>();
    TopNMeta meta;
    meta.watermark = watermark_;
    std::string k;
    std::string v;
    for (const auto& [end, w] : windows_) {
      meta.windows.emplace_back(end, w->fired);
      for (const auto& [key, g] : w->groups) {
        if (g.rows.empty()) continue;
        k.clear();
        append_entry_key(end, key, spill_seq_, k);
        v.clear();
        encode_rows(g.rows, v);
        image->put(k, v);
      }
    }
    if (!image->empty()) ++spill_seq_;
    meta.spill_seq = spill_seq_;
    if (store_empty) {
      std::function<Status(state::CheckpointEntries&)> build;
      if (!image->empty()) {
        build = [image](state::CheckpointEntries& out) {
          out = std::move(*image);  // called once
          return Status::OK();
        };
      }
      snapshot_without_store(*ctx_, sctx, state_dir_, empty_image_, meta_to_json(meta).dump(),
                             std::move(build), cfg_->what);
      return Status::OK();
    }
    DF_RETURN_IF_ERROR(snapshot_store(*store_, sctx, meta_to_json(meta), cfg_->what));
    if (!image->empty()) {
      add_to_snapshot_async(
          *ctx_, sctx,
          [image](state::CheckpointEntries& out) {
            out = std::move(*image);
            return Status::OK();
          },
          cfg_->what);
    }
    return Status::OK();
  }

  Status process(size_t, const BatchPtr& batch, runtime::Output& out) override {
    const Column* et = batch->event_time().get();
    if (et == nullptr) {
      return Status::invalid(cfg_->what +
                             ": its input rows carry no event time (set event_time on the source)");
    }
    order_cols_.resize(cfg_->order.size());
    for (size_t i = 0; i < cfg_->order.size(); ++i) {
      order_cols_[i] = cfg_->order[i].expr->evaluate(*batch, eval_);
    }
    report_eval_errors(eval_, *ctx_);
    late_.clear();
    const int64_t* ts = et->int64_data();
    const size_t n = batch->active_rows();
    const bool keyed = !cfg_->key_fields.empty();
    for (size_t k = 0; k < n; ++k) {
      const size_t r = batch->row_at(k);
      if (et->is_null(r)) {
        ctx_->report_data_error(cfg_->what + ": row without event time dropped");
        continue;
      }
      sort_key_.clear();
      for (size_t i = 0; i < cfg_->order.size(); ++i) {
        const size_t at = sort_key_.size();
        state::encode_key_cell(*order_cols_[i], r, sort_key_);
        if (cfg_->order[i].descending) complement_from(sort_key_, at);
      }
      if (keyed) {
        key_.clear();
        encode_row_key(*batch, cfg_->key_fields, r, key_);
      }
      DF_ASSIGN_OR_RETURN(bool placed, assign(*batch, r, ts[r]));
      if (!placed) late_.push_back(static_cast<uint32_t>(r));
    }
    DF_RETURN_IF_ERROR(emit_dirty(out));
    sink_->flush(out);
    route_late(*batch, out);
    if (spill_enabled_ && mem_bytes_ > budget_) DF_RETURN_IF_ERROR(spill());
    return Status::OK();
  }

  Status on_watermark(Watermark wm, runtime::Output& out) override {
    if (wm.timestamp_ms > watermark_) watermark_ = wm.timestamp_ms;
    DF_RETURN_IF_ERROR(fire_until(watermark_, out));
    DF_RETURN_IF_ERROR(purge());
    sink_->flush(out);
    out.emit_watermark(wm);
    return Status::OK();
  }

  Status finish(runtime::Output& out) override {
    DF_RETURN_IF_ERROR(fire_until(kMaxTime, out));
    sink_->flush(out);
    // No row comes after the end of input, so no fired window changes
    // again: the windows go now, and a final checkpoint holds just the meta
    // instead of writing every top once more.
    return purge(/*everything=*/true);
  }

 private:
  // Opens the store on first use. A fresh run starts from empty state,
  // whatever an earlier run left in the directory.
  Status ensure_store() {
    if (store_) return Status::OK();
    DF_ASSIGN_OR_RETURN(store_, state::open_store(state_dir_));
    return store_->remove_range("", "");
  }

  // Offers physical row r (its sort key in sort_key_, its key in key_) to
  // each of its windows still kept; false when it has windows and all are
  // gone (a late row).
  Result<bool> assign(const Batch& batch, size_t r, int64_t t) {
    Status st;
    const bool placed = assigner_.for_each_kept(t, lateness_, watermark_, [&](int64_t end) {
      if (st.ok()) st = offer(end, batch, r);
    });
    DF_RETURN_IF_ERROR(st);
    return placed;
  }

  Status offer(int64_t end, const Batch& batch, size_t r) {
    TopWindow* w = window_for(end);
    GroupMap::value_type* entry;
    if (w == last_window_ && last_group_ != nullptr) {
      entry = last_group_;  // unkeyed: the window's one group
    } else {
      auto [it, added] = w->groups.try_emplace(key_);
      entry = &*it;
      if (added) {
        count_bytes(*w, key_.size() + kGroupOverhead);
        // A late row for a fired window whose key was spilled: its whole
        // top back into memory first.
        if (w->fired && w->spilled) DF_RETURN_IF_ERROR(load_spilled(*w, *entry));
      }
      if (cfg_->key_fields.empty()) last_group_ = entry;
    }
    last_window_ = w;
    Group& g = entry->second;
    if (!g.admits(sort_key_, cfg_->n, cfg_->ranking)) return Status::OK();
    KeptRow row{sort_key_, {}};
    join::encode_row(batch, r, row.row);
    const size_t added = row_bytes(row);
    const size_t freed = g.insert(std::move(row), cfg_->n, cfg_->ranking);
    count_bytes(*w, added);
    uncount_bytes(*w, freed);
    if (w->fired && !g.dirty) {
      g.dirty = true;
      dirty_.emplace_back(w->end, entry);
    }
    return Status::OK();
  }

  void count_bytes(TopWindow& w, size_t b) {
    w.bytes += b;
    mem_bytes_ += b;
  }
  void uncount_bytes(TopWindow& w, size_t b) {
    w.bytes -= std::min(w.bytes, b);
    mem_bytes_ -= std::min(mem_bytes_, b);
  }

  // Reads the partials of (w, entry's key) into `rows`, merged in spill order.
  Status read_partials(const TopWindow& w, std::string_view key, std::vector<KeptRow>& rows) {
    rows.clear();
    std::string lo = ordered_key(w.end);
    lo.append(key);
    Status st;
    DF_RETURN_IF_ERROR(
        store_->scan(lo, state::prefix_end(lo), [&](std::string_view, std::string_view v) {
          st = decode_rows(v, partial_);
          if (st.ok()) merge_rows(rows, std::move(partial_), cfg_->n, cfg_->ranking);
          return st.ok();
        }));
    return st;
  }

  // Moves the stored partials of the fired window w's key into its (new,
  // empty) memory group and removes them from the store.
  Status load_spilled(TopWindow& w, GroupMap::value_type& entry) {
    DF_RETURN_IF_ERROR(read_partials(w, entry.first, entry.second.rows));
    for (const KeptRow& r : entry.second.rows) count_bytes(w, row_bytes(r));
    std::string lo = ordered_key(w.end);
    lo.append(entry.first);
    return store_->remove_range(lo, state::prefix_end(lo));
  }

  TopWindow* window_for(int64_t end) {
    if (last_window_ != nullptr && last_window_->end == end) return last_window_;
    auto it = windows_.find(end);
    if (it == windows_.end()) {
      auto w = std::make_unique<TopWindow>(end);
      // A window first seen after its end passed (a late row within the
      // allowed lateness) fires at once.
      w->fired = end - 1 <= watermark_;
      it = windows_.emplace(end, std::move(w)).first;
    }
    last_group_ = nullptr;
    return it->second.get();
  }

  // Fires every window whose end - 1 <= limit, in end order.
  Status fire_until(int64_t limit, runtime::Output& out) {
    for (auto& [end, w] : windows_) {
      if (end - 1 > limit) break;
      if (!w->fired) DF_RETURN_IF_ERROR(fire_window(*w, out));
    }
    return Status::OK();
  }

  // Emits every group of w in key order, merging the stored partials. With
  // allowed lateness the window stays: its merged tops then move into
  // memory (a fired window's key is wholly in memory or wholly stored, so a
  // late row is ranked against its whole top, see offer()).
  Status fire_window(TopWindow& w, runtime::Output& out) {
    w.fired = true;
    const bool keep = lateness_ > 0;
    std::vector<GroupMap::value_type*> order;
    order.reserve(w.groups.size());
    for (auto& e : w.groups) {
      e.second.dirty = false;
      order.push_back(&e);
    }
    std::sort(order.begin(), order.end(),
              [](const auto* a, const auto* b) { return a->first < b->first; });
    size_t mi = 0;
    if (w.spilled) {
      // Stored partials come in (key, spill number) order: one key's
      // partials in a row, merged, then its memory rows.
      std::vector<KeptRow> merged;
      DF_RETURN_IF_ERROR(window::scan_spilled_groups(
          *store_, w.end, cfg_->what,
          [&](std::string_view, std::string_view partial) -> Status {
            DF_RETURN_IF_ERROR(decode_rows(partial, partial_));
            merge_rows(merged, std::move(partial_), cfg_->n, cfg_->ranking);
            return Status::OK();
          },
          [&](const std::string& key) -> Status {
            while (mi < order.size() && order[mi]->first < key) {
              DF_RETURN_IF_ERROR(sink_->append_group(order[mi]->second.rows, w.end, out));
              ++mi;
            }
            Group* g = nullptr;
            if (mi < order.size() && order[mi]->first == key) {
              g = &order[mi]->second;
              ++mi;
              for (const KeptRow& r : g->rows) uncount_bytes(w, row_bytes(r));
              merge_rows(merged, std::move(g->rows), cfg_->n, cfg_->ranking);
            }
            DF_RETURN_IF_ERROR(sink_->append_group(merged, w.end, out));
            if (keep) {
              if (g == nullptr) {
                g = &w.groups[key];
                count_bytes(w, key.size() + kGroupOverhead);
              }
              for (const KeptRow& r : merged) count_bytes(w, row_bytes(r));
              g->rows = std::move(merged);
            }
            merged.clear();
            return Status::OK();
          }));
      if (keep) {
        DF_RETURN_IF_ERROR(store_->remove_range(ordered_key(w.end), ordered_key(w.end + 1)));
        w.spilled = false;
      }
      last_group_ = nullptr;
    }
    for (; mi < order.size(); ++mi) {
      DF_RETURN_IF_ERROR(sink_->append_group(order[mi]->second.rows, w.end, out));
    }
    return Status::OK();
  }

  // Writes every in-memory group to the store and empties memory.
  Status spill() {
    DF_RETURN_IF_ERROR(ensure_store());
    state::WriteBatch wb;
    std::string k;
    std::string v;
    std::vector<const GroupMap::value_type*> order;
    for (auto& [end, w] : windows_) {
      if (w->groups.empty()) continue;
      // In key order: RocksDB inserts a sorted batch far faster.
      order.clear();
      for (const auto& e : w->groups) order.push_back(&e);
      std::sort(order.begin(), order.end(),
                [](const auto* a, const auto* b) { return a->first < b->first; });
      for (const auto* e : order) {
        if (e->second.rows.empty()) continue;
        k.clear();
        append_entry_key(end, e->first, spill_seq_, k);
        v.clear();
        encode_rows(e->second.rows, v);
        wb.put(k, v);
        if (wb.size() >= kSpillWriteBatch) {
          DF_RETURN_IF_ERROR(store_->write(wb));
          wb.clear();
        }
      }
      w->groups = GroupMap();
      w->spilled = true;
      w->bytes = 0;
    }
    if (!wb.empty()) DF_RETURN_IF_ERROR(store_->write(wb));
    ++spill_seq_;
    mem_bytes_ = 0;
    last_group_ = nullptr;
    return Status::OK();
  }

  // Drops windows whose allowed lateness has passed (every window when
  // `everything`).
  Status purge(bool everything = false) {
    while (!windows_.empty()) {
      auto it = windows_.begin();
      TopWindow& w = *it->second;
      if (!everything && w.end - 1 + lateness_ > watermark_) break;
      if (w.spilled) {
        DF_RETURN_IF_ERROR(store_->remove_range(ordered_key(w.end), ordered_key(w.end + 1)));
      }
      mem_bytes_ -= std::min(mem_bytes_, w.bytes);
      if (last_window_ == &w) {
        last_window_ = nullptr;
        last_group_ = nullptr;
      }
      windows_.erase(it);
    }
    return Status::OK();
  }

  // Re-emits the groups of fired windows that rows of this batch changed
  // (their whole top: a fired window's group holds it, see offer()).
  Status emit_dirty(runtime::Output& out) {
    for (auto& [end, entry] : dirty_) {
      entry->second.dirty = false;
      DF_RETURN_IF_ERROR(sink_->append_group(entry->second.rows, end, out));
    }
    dirty_.clear();
    return Status::OK();
  }

  void route_late(const Batch& batch, runtime::Output& out) {
    window::route_late_rows(batch, late_, !cfg_->late_output.empty(), cfg_->what, watermark_, *ctx_,
                            out);
  }

  TopNConfigPtr cfg_;
  const int64_t lateness_;
  runtime::OperatorContext* ctx_ = nullptr;
  std::string state_dir_;
  bool spill_enabled_ = false;
  size_t budget_ = kDefaultMemoryBudget;
  size_t mem_bytes_ = 0;
  uint64_t spill_seq_ = 0;
  std::unique_ptr<state::KvStore> store_;  // opened at the first spill or snapshot, or a resume
  // Made at the first snapshot of an empty store.
  std::shared_ptr<EmptyStoreImage> empty_image_;
  std::unique_ptr<TopNOutput> sink_;
  expr::EvalContext eval_;
  int64_t watermark_ = kNoWatermark;
  std::map<int64_t, std::unique_ptr<TopWindow>> windows_;
  TopWindow* last_window_ = nullptr;
  GroupMap::value_type* last_group_ = nullptr;  // unkeyed: last_window_'s one group
  std::vector<std::pair<int64_t, GroupMap::value_type*>> dirty_;
  // Per-row and per-batch scratch, reused.
  std::vector<ColumnPtr> order_cols_;
  std::string sort_key_;
  std::string key_;
  std::vector<KeptRow> partial_;
  Selection late_;
  window::WindowAssigner assigner_;
};

// ---- the prepared node and its readable state ----------------------------------------

class PreparedTopN final : public window::PreparedWindowedNode, public checkpoint::StateSerde {
 public:
  PreparedTopN(TopNConfigPtr cfg, SourceLocation late_output_location)
      : PreparedWindowedNode(cfg->key_fields, cfg->input_schema, cfg->late_output,
                             std::move(late_output_location)),
        cfg_(std::move(cfg)) {
    for (size_t f : cfg_->key_fields) key_fields_.push_back(cfg_->input_schema->field(f));
  }

  SchemaPtr output_schema() const override { return cfg_->output_schema; }
  std::unique_ptr<runtime::Operator> make_operator(int, int) const override {
    return std::make_unique<TopNOperator>(cfg_);
  }
  std::string describe() const override {
    std::string d = (cfg_->ranking == Ranking::kRank ? "rank <= " : "row_number <= ") +
                    std::to_string(cfg_->n) + " by";
    for (size_t i = 0; i < cfg_->order.size(); ++i) {
      d += (i ? ", " : " ") + cfg_->order[i].expr->to_string() +
           (cfg_->order[i].descending ? " desc" : " asc");
    }
    d += " per ";
    if (cfg_->type == WindowType::kTumbling) {
      d += "tumbling " + format_duration(Millis(cfg_->size_ms));
    } else {
      d += "sliding " + format_duration(Millis(cfg_->size_ms)) + " every " +
           format_duration(Millis(cfg_->slide_ms));
    }
    d += " window";
    for (size_t i = 0; i < key_fields_.size(); ++i) d += (i ? ", " : " and ") + key_fields_[i].name;
    if (cfg_->allowed_lateness_ms > 0) {
      d += "; lateness " + format_duration(Millis(cfg_->allowed_lateness_ms));
    }
    if (!cfg_->late_output.empty()) d += "; late rows -> " + cfg_->late_output;
    return d;
  }

  // ---- StateSerde ----

  Result<json> entry_to_json(std::string_view key, std::string_view value) const override {
    std::string_view in = key;
    auto end = state::read_ordered_i64(in);
    if (!end.ok()) return Status::data_error("top_n state: the entry key has no window end");
    DF_ASSIGN_OR_RETURN(json k, key_to_json(in, key_fields_));
    auto spill = state::read_u64(in);
    if (!spill.ok() || !in.empty()) {
      return Status::data_error("top_n state: the entry key does not end with a spill number");
    }
    std::vector<KeptRow> rows;
    DF_RETURN_IF_ERROR(decode_rows(value, rows));
    json list = json::array();
    for (const KeptRow& r : rows) {
      DF_ASSIGN_OR_RETURN(json order, order_to_json(r.sort_key));
      std::string_view row = r.row;
      DF_ASSIGN_OR_RETURN(json fields, row_to_json(row, cfg_->input_schema->fields()));
      if (!row.empty()) return Status::data_error("top_n state: bytes left after a row");
      list.push_back({{"order", std::move(order)}, {"row", std::move(fields)}});
    }
    return json{{"key", std::move(k)},
                {"window_start", timestamp_to_json(*end - cfg_->size_ms)},
                {"window_end", timestamp_to_json(*end)},
                {"spill", *spill},
                {"rows", std::move(list)}};
  }

  Status entry_from_json(const json& entry, std::string& key, std::string& value) const override {
    key.clear();
    value.clear();
    DF_RETURN_IF_ERROR(check_object(entry, "a top_n entry",
                                    {"key", "window_start", "window_end", "spill", "rows"}));
    DF_ASSIGN_OR_RETURN(int64_t end, timestamp_from_json(entry["window_end"], "'window_end'"));
    DF_ASSIGN_OR_RETURN(int64_t start,
                        timestamp_from_json(entry["window_start"], "'window_start'"));
    if (start != end - cfg_->size_ms) {
      return Status::invalid("'window_start' must be 'window_end' minus the window size " +
                             format_duration(Millis(cfg_->size_ms)));
    }
    state::append_ordered_i64(end, key);
    DF_RETURN_IF_ERROR(key_from_json(entry["key"], key_fields_, "'key'", key));
    DF_ASSIGN_OR_RETURN(uint64_t spill, uint_from_json(entry["spill"], "'spill'"));
    state::append_u64(spill, key);
    const json& list = entry["rows"];
    if (!list.is_array()) return Status::invalid("'rows' must be an array");
    std::vector<KeptRow> rows;
    for (size_t i = 0; i < list.size(); ++i) {
      const std::string what = "rows[" + std::to_string(i) + "]";
      DF_RETURN_IF_ERROR(check_object(list[i], what, {"order", "row"}));
      KeptRow r;
      DF_RETURN_IF_ERROR(order_from_json(list[i]["order"], what + ".order", r.sort_key));
      DF_RETURN_IF_ERROR(
          row_from_json(list[i]["row"], cfg_->input_schema->fields(), what + ".row", r.row));
      if (!rows.empty() && r.sort_key < rows.back().sort_key) {
        return Status::invalid("'rows' must be in rank order (best first): " + what +
                               " ranks before the row above it");
      }
      rows.push_back(std::move(r));
    }
    encode_rows(rows, value);
    return Status::OK();
  }

  Status check_meta(const json& meta) const override {
    return meta_from_json(meta, cfg_->what).status();
  }

 private:
  // A sort key's order values, un-complementing the `desc` ones.
  Result<json> order_to_json(std::string_view in) const {
    json values = json::array();
    std::string plain;
    for (const OrderSpec& o : cfg_->order) {
      plain.assign(in);
      if (o.descending) complement_from(plain, 0);
      std::string_view p = plain;
      auto v = state::decode_key_value(p, o.expr->result_type());
      if (!v.ok()) {
        return Status::data_error("top_n state: an order value does not decode: " +
                                  v.status().message());
      }
      values.push_back(value_to_json(*v, o.expr->result_type()));
      in.remove_prefix(plain.size() - p.size());
    }
    if (!in.empty()) return Status::data_error("top_n state: bytes left after the order values");
    return values;
  }

  Status order_from_json(const json& j, const std::string& what, std::string& out) const {
    if (!j.is_array() || j.size() != cfg_->order.size()) {
      return Status::invalid(what + " must be an array of " + std::to_string(cfg_->order.size()) +
                             " order value(s)");
    }
    for (size_t i = 0; i < cfg_->order.size(); ++i) {
      const OrderSpec& o = cfg_->order[i];
      DF_ASSIGN_OR_RETURN(Value v, value_from_json(j[i], o.expr->result_type(),
                                                   what + "[" + std::to_string(i) + "]"));
      const size_t at = out.size();
      state::encode_key_value(v, out);
      if (o.descending) complement_from(out, at);
    }
    return Status::OK();
  }

  TopNConfigPtr cfg_;
  std::vector<Field> key_fields_;
};

// ---- the factory ------------------------------------------------------------------------

// Splits `text` at commas outside parentheses and string literals; returns
// (offset, length) of each part.
std::vector<std::pair<size_t, size_t>> split_top_level(std::string_view text) {
  std::vector<size_t> commas;
  scan_top_level(text, 0, commas);
  std::vector<std::pair<size_t, size_t>> parts;
  size_t begin = 0;
  for (size_t comma : commas) {
    parts.emplace_back(begin, comma - begin);
    begin = comma + 1;
  }
  parts.emplace_back(begin, text.size() - begin);
  return parts;
}

// Reads one `order_by` scalar ("price desc, bidder") into cfg.order.
void read_order_by(const ConfigValue& value, TopNConfig& cfg, const std::string& what,
                   Diagnostics& diags) {
  if (!value.is_scalar()) {
    diags.error(value.location(), what +
                                      ": 'order_by' must be an expression with asc or desc, "
                                      "e.g. \"price desc\", or a list of them");
    return;
  }
  const std::string& text = value.scalar_text();
  const SourceLocation base = value.text_location();
  for (const auto& [offset, length] : split_top_level(text)) {
    std::string_view part = std::string_view(text).substr(offset, length);
    size_t lead = 0;
    while (lead < part.size() && is_space(part[lead])) ++lead;
    part.remove_prefix(lead);
    while (!part.empty() && is_space(part.back())) part.remove_suffix(1);
    SourceLocation loc = base;
    if (loc.column > 0) loc.column += static_cast<int>(offset + lead);
    OrderSpec spec;
    // A trailing word asc|desc (any case) after a space sets the direction.
    const size_t space = part.find_last_of(" \t\n\r");
    if (space != std::string_view::npos) {
      std::string word(part.substr(space + 1));
      std::transform(word.begin(), word.end(), word.begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      if (word == "asc" || word == "desc") {
        spec.descending = word == "desc";
        part = part.substr(0, space);
        while (!part.empty() && is_space(part.back())) part.remove_suffix(1);
      }
    }
    if (part.empty()) {
      diags.error(loc, what + ": 'order_by' has an empty expression in \"" + text + "\"");
      continue;
    }
    spec.expr = expr::compile(part, *cfg.input_schema, loc, diags);
    if (spec.expr) cfg.order.push_back(std::move(spec));
  }
}

class TopNFactory final : public runtime::NodeFactory {
 public:
  std::vector<std::string> side_output_keys() const override { return {"late_output"}; }

  runtime::PreparedNodePtr prepare(const runtime::NodeSpec& spec,
                                   const std::vector<SchemaPtr>& inputs,
                                   OptionReader& opts) const override {
    const std::string what = "top_n '" + spec.id + "'";
    Diagnostics& diags = opts.diags();
    const size_t before = diags.size();
    if (!window::check_windowed_input(spec, inputs, opts, what)) return nullptr;
    const Schema& in = *inputs[0];
    auto cfg = std::make_shared<TopNConfig>();
    cfg->what = what;
    cfg->input_schema = inputs[0];
    if (const ConfigValue* key_by = opts.get("key_by")) {
      if (auto fields = resolve_key_fields(*key_by, in, what + " key_by", diags)) {
        cfg->key_fields = std::move(*fields);
      }
    }
    if (const ConfigValue* node = opts.require("window")) {
      WindowShape shape;
      read_window_shape(*node, what, /*sessions=*/false, shape, diags);
      cfg->type = shape.type;
      cfg->size_ms = shape.size_ms;
      cfg->slide_ms = shape.slide_ms;
    }
    if (const ConfigValue* order = opts.require("order_by")) {
      if (order->is_sequence()) {
        if (order->items().empty()) {
          diags.error(order->location(), what + ": 'order_by' must name at least one expression");
        }
        for (const ConfigValue& item : order->items()) read_order_by(item, *cfg, what, diags);
      } else {
        read_order_by(*order, *cfg, what, diags);
      }
    }
    if (auto n = opts.int64("n", true)) {
      if (*n < 1) {
        diags.error(opts.get("n")->location(),
                    what + ": 'n' must be at least 1, got " + std::to_string(*n));
      } else {
        cfg->n = static_cast<size_t>(*n);
      }
    }
    if (auto rank = opts.string("rank")) {
      if (*rank == "rank") {
        cfg->ranking = Ranking::kRank;
      } else if (*rank == "row_number") {
        cfg->ranking = Ranking::kRowNumber;
      } else {
        diags.error(opts.get("rank")->location(),
                    what + ": 'rank' must be rank or row_number, got '" + *rank + "'");
      }
    }
    if (auto name = opts.string("rank_field")) {
      if (name->empty()) {
        diags.error(opts.get("rank_field")->location(), what + ": 'rank_field' must not be empty");
      } else {
        cfg->rank_field = *name;
      }
    }
    const SourceLocation late_loc =
        read_lateness(opts, what, cfg->allowed_lateness_ms, cfg->late_output, diags);
    // The added columns must not shadow an input field.
    const std::pair<std::string, const char*> added[] = {{"window_start", "window_start"},
                                                         {"window_end", "window_end"},
                                                         {cfg->rank_field, "rank_field"}};
    for (const auto& [name, option] : added) {
      if (!in.index_of(name)) continue;
      const bool named = std::string_view(option) == "rank_field" && opts.has("rank_field");
      diags.error(named ? opts.get("rank_field")->location() : opts.node().location(),
                  what + ": the output column '" + name +
                      "' clashes with an input field of that name (rename the field with a map "
                      "first" +
                      (std::string(option) == "rank_field" ? ", or set rank_field" : "") + ")");
    }
    if (diags.size() != before) return nullptr;

    std::vector<Field> fields = in.fields();
    fields.push_back({"window_start", TypeId::kTimestamp});
    fields.push_back({"window_end", TypeId::kTimestamp});
    fields.push_back({cfg->rank_field, TypeId::kInt64});
    cfg->output_schema = make_schema(std::move(fields));
    return std::make_shared<PreparedTopN>(std::move(cfg), late_loc);
  }
};

}  // namespace

std::unique_ptr<runtime::NodeFactory> make_top_n_factory() {
  return std::make_unique<TopNFactory>();
}

}  // namespace df::operators
