// Aggregates of the window operator: parsing `name(arg)` specs and the
// column-wise, mergeable accumulator tables they update.
//
// A GroupStates holds the accumulators of many groups (one group = one
// window and key, or one session), one AggStates per aggregate, stored
// column-wise: only the arrays an aggregate needs are sized, so a count(*)
// costs 8 bytes per group. Every accumulator is mergeable (sessions merge,
// spilled partials merge on firing) and serialisable for the state store.
// Not thread-safe; owned by one operator subtask.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "engine/core/batch.h"
#include "engine/core/column.h"
#include "engine/core/config_value.h"
#include "engine/core/status.h"
#include "engine/runtime/hashing.h"
#include "operators/expr/expr.h"

namespace df::operators::window {

enum class AggKind : uint8_t {
  kCountStar,
  kCount,
  kSum,
  kAvg,
  kMin,
  kMax,
  kFirst,
  kLast,
  kCountDistinct,
};

// Transparent string hashing, so lookups take a string_view without copying.
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return runtime::hash_string(s); }
};

using DistinctSet = std::unordered_set<std::string, StringHash, std::equal_to<>>;

// One declared aggregate, bound to the input schema.
struct AggSpec {
  std::string name;
  AggKind kind = AggKind::kCountStar;
  expr::CompiledExprPtr arg;  // nullptr for count(*)
  TypeId arg_type = TypeId::kInt64;
  TypeId out_type = TypeId::kInt64;
  // Which accumulator arrays the aggregate uses.
  bool uses_n = false;    // count of non-null values
  bool uses_i = false;    // int64/timestamp/bool value or int sum
  bool uses_d = false;    // double value or sum
  bool uses_s = false;    // string value
  bool uses_ord = false;  // first/last: event time + arrival of the value
  bool uses_set = false;  // count_distinct

  // "max(price_eur)"
  std::string to_string() const;
};

// Parses `text` ("sum(price * qty)") found at `loc` (where the text starts)
// against `schema`. Reports located errors to `diags`; nullopt on error.
std::optional<AggSpec> parse_aggregate(const std::string& name, std::string_view text,
                                       const SourceLocation& loc, const Schema& schema,
                                       const std::string& what, Diagnostics& diags);

// The accumulators of one aggregate for every group of a GroupStates.
struct AggStates {
  std::vector<int64_t> n;
  std::vector<int64_t> i;
  std::vector<double> d;
  std::vector<std::string> s;
  std::vector<int64_t> ts;
  std::vector<uint64_t> seq;
  std::vector<std::unique_ptr<DistinctSet>> set;
};

// One row's contribution: physical row `row` (arrival ordinal `seq`) goes
// to group `g` of `groups`.
class GroupStates;
struct Entry {
  // Uninitialised by default, so a batch's entries can be sized without
  // zeroing them first.
  Entry() {}  // NOLINT(modernize-use-equals-default)
  Entry(uint32_t row_, uint32_t g_, GroupStates* groups_, uint64_t seq_)
      : row(row_), g(g_), groups(groups_), seq(seq_) {}
  uint32_t row;
  uint32_t g;
  GroupStates* groups;
  uint64_t seq;
};

class GroupStates {
 public:
  explicit GroupStates(const std::vector<AggSpec>* aggs);

  size_t size() const { return size_; }
  // Appends an empty group and returns its index.
  uint32_t add();
  // Empties group g (for reuse from a free list).
  void reset(uint32_t g);
  // A deep copy (distinct-value sets included), for a snapshot to encode
  // on another thread while this one goes on changing.
  GroupStates clone() const;
  // Drops every group and releases the memory.
  void clear();
  // Drops every group, keeping the arrays' capacity for reuse.
  void reset_all();
  // Approximate bytes of one empty group's accumulators.
  size_t fixed_bytes_per_group() const { return fixed_bytes_; }

  // dst[dg] ⊕= src[sg] (src may be this).
  void merge_from(uint32_t dg, const GroupStates& src, uint32_t sg);
  // Serialises group g (compact, self-delimiting).
  void encode(uint32_t g, std::string& out) const;
  // Reads an encoded group and merges it into group g, using `tmp` (same
  // aggregates, at least one group) as scratch.
  Status decode_merge(uint32_t g, std::string_view in, GroupStates& tmp);
  // Appends the result of aggregate j for group g to `out` (of its out_type).
  void append_result(size_t j, uint32_t g, ColumnBuilder& out) const;
  // append_result for groups [first, first + count), in order.
  void append_results(size_t j, uint32_t first, uint32_t count, ColumnBuilder& out) const;

  std::vector<AggStates> aggs;

 private:
  const std::vector<AggSpec>* specs_;
  size_t size_ = 0;
  size_t fixed_bytes_ = 0;
};

// Folds the rows of `entries` into their groups for aggregate `j`. `arg` is
// the evaluated argument (nullptr for count(*)), `event_time` the batch's
// event-time column. `single`, when not null, is the GroupStates every entry
// goes to (its arrays are then looked up once). Returns the bytes of new
// out-of-line state (strings, distinct values) for memory accounting.
// `scratch` is a reused buffer.
size_t update_aggregate(const AggSpec& spec, size_t j, const Column* arg, const Column& event_time,
                        const std::vector<Entry>& entries, GroupStates* single,
                        std::string& scratch);

// ---- readable state (dataflow state export / import) ----------------------

// The encoded accumulators of one group (GroupStates::encode) as a JSON
// object {aggregate name: state}: count -> n; sum/avg -> {"sum", "count"};
// min/max -> {"value", "count"}; first/last -> {"value", "time", "seq",
// "count"}; count_distinct -> [distinct values]. Values are spelled as
// operators/state_json.h lays them out. kDataError on bad bytes.
Result<nlohmann::json> accumulators_to_json(const std::vector<AggSpec>& specs, std::string_view in);
// The inverse, exactly; appends the bytes to `out`.
Status accumulators_from_json(const std::vector<AggSpec>& specs, const nlohmann::json& j,
                              std::string& out);

// Text scanning shared by the aggregate and top_n order_by parsers.
bool is_space(char c);
// The index of the quote that closes the string literal opened at `open`
// ('' inside is an escaped quote); text.size() when it is not closed.
size_t string_literal_end(std::string_view text, size_t open);
// Walks `text` from `from` at parenthesis depth 0, skipping string literals:
// appends the index of each comma at that depth to `commas` and returns the
// index of the first ')' closing a parenthesis opened before `from`; npos
// when none does.
size_t scan_top_level(std::string_view text, size_t from, std::vector<size_t>& commas);

}  // namespace df::operators::window
