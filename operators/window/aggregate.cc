#include "operators/window/aggregate.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <optional>

#include "engine/state/codec.h"
#include "operators/state_json.h"

namespace df::operators::window {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

size_t string_literal_end(std::string_view text, size_t open) {
  for (size_t q = open + 1; q < text.size(); ++q) {
    if (text[q] != '\'') continue;
    if (q + 1 < text.size() && text[q + 1] == '\'') {
      ++q;
    } else {
      return q;
    }
  }
  return text.size();
}

size_t scan_top_level(std::string_view text, size_t from, std::vector<size_t>& commas) {
  int depth = 0;
  for (size_t q = from; q < text.size(); ++q) {
    const char c = text[q];
    if (c == '\'') {
      q = string_literal_end(text, q);
    } else if (c == '(') {
      ++depth;
    } else if (c == ')') {
      if (--depth < 0) return q;
    } else if (c == ',' && depth == 0) {
      commas.push_back(q);
    }
  }
  return std::string_view::npos;
}

namespace {

struct FunctionName {
  std::string_view name;
  AggKind kind;
};

constexpr FunctionName kFunctions[] = {
    {"count", AggKind::kCount}, {"sum", AggKind::kSum},
    {"avg", AggKind::kAvg},     {"min", AggKind::kMin},
    {"max", AggKind::kMax},     {"first", AggKind::kFirst},
    {"last", AggKind::kLast},   {"count_distinct", AggKind::kCountDistinct},
};

std::string_view kind_name(AggKind kind) {
  if (kind == AggKind::kCountStar) return "count";
  for (const auto& f : kFunctions) {
    if (f.kind == kind) return f.name;
  }
  return "?";
}

// The value arrays a min/max/first/last of `type` keeps.
void use_value_storage(AggSpec& spec, TypeId type) {
  spec.uses_n = true;
  if (type == TypeId::kDouble) {
    spec.uses_d = true;
  } else if (type == TypeId::kString) {
    spec.uses_s = true;
  } else {
    spec.uses_i = true;  // bool, int64, timestamp
  }
}

void put64(uint64_t v, std::string& out) {
  char b[8];
  std::memcpy(b, &v, 8);
  out.append(b, 8);
}

void put32(uint32_t v, std::string& out) {
  char b[4];
  std::memcpy(b, &v, 4);
  out.append(b, 4);
}

bool get64(std::string_view& in, uint64_t& v) {
  if (in.size() < 8) return false;
  std::memcpy(&v, in.data(), 8);
  in.remove_prefix(8);
  return true;
}

bool get32(std::string_view& in, uint32_t& v) {
  if (in.size() < 4) return false;
  std::memcpy(&v, in.data(), 4);
  in.remove_prefix(4);
  return true;
}

bool get_bytes(std::string_view& in, std::string_view& v) {
  uint32_t len = 0;
  if (!get32(in, len) || in.size() < len) return false;
  v = in.substr(0, len);
  in.remove_prefix(len);
  return true;
}

// bool, int64 and timestamp slots as int64.
inline int64_t int_at(const Column& c, size_t row) {
  return c.type() == TypeId::kBool ? static_cast<int64_t>(c.bool_data()[row]) : c.int64_data()[row];
}

// Calls f(entry) for every entry whose argument is not null.
template <typename F>
void for_valid(const Column& arg, const std::vector<Entry>& entries, F&& f) {
  if (!arg.has_nulls()) {
    for (const Entry& e : entries) f(e);
  } else {
    for (const Entry& e : entries) {
      if (arg.is_valid(e.row)) f(e);
    }
  }
}

template <bool kMin, typename T>
inline bool better(const T& v, const T& current) {
  if constexpr (kMin) {
    return v < current;
  } else {
    return current < v;
  }
}

// Where an entry's accumulators of aggregate j are: AnyGroups looks them up
// per entry, OneGroups (every entry in one GroupStates) once.
struct AnyGroups {
  size_t j;
  AggStates& operator()(const Entry& e) const { return e.groups->aggs[j]; }
};
struct OneGroups {
  AggStates* st;
  AggStates& operator()(const Entry&) const { return *st; }
};

template <bool kMin, typename States>
size_t update_extreme(States states_of, const Column& arg, const std::vector<Entry>& entries) {
  size_t bytes = 0;
  switch (arg.type()) {
    case TypeId::kDouble: {
      const double* v = arg.double_data();
      for_valid(arg, entries, [&](const Entry& e) {
        AggStates& st = states_of(e);
        const double x = v[e.row];
        if (x != x) return;  // NaN has no order; ignored
        if (st.n[e.g] == 0 || better<kMin>(x, st.d[e.g])) st.d[e.g] = x;
        ++st.n[e.g];
      });
      break;
    }
    case TypeId::kString:
      for_valid(arg, entries, [&](const Entry& e) {
        AggStates& st = states_of(e);
        std::string_view x = arg.string_at(e.row);
        std::string& cur = st.s[e.g];
        if (st.n[e.g] == 0 || better<kMin>(x, std::string_view(cur))) {
          if (x.size() > cur.size()) bytes += x.size() - cur.size();
          cur.assign(x);
        }
        ++st.n[e.g];
      });
      break;
    default:
      for_valid(arg, entries, [&](const Entry& e) {
        AggStates& st = states_of(e);
        const int64_t x = int_at(arg, e.row);
        if (st.n[e.g] == 0 || better<kMin>(x, st.i[e.g])) st.i[e.g] = x;
        ++st.n[e.g];
      });
      break;
  }
  return bytes;
}

// first (kFirst) keeps the value with the smallest (event time, arrival),
// last the largest.
template <bool kFirst, typename States>
size_t update_ordered(States states_of, const Column& arg, const Column& event_time,
                      const std::vector<Entry>& entries) {
  size_t bytes = 0;
  const int64_t* ts = event_time.int64_data();
  for_valid(arg, entries, [&](const Entry& e) {
    AggStates& st = states_of(e);
    const int64_t t = ts[e.row];
    if (st.n[e.g] != 0) {
      const bool earlier = t < st.ts[e.g] || (t == st.ts[e.g] && e.seq < st.seq[e.g]);
      if (earlier != kFirst) {
        ++st.n[e.g];
        return;
      }
    }
    ++st.n[e.g];
    st.ts[e.g] = t;
    st.seq[e.g] = e.seq;
    switch (arg.type()) {
      case TypeId::kDouble:
        st.d[e.g] = arg.double_at(e.row);
        break;
      case TypeId::kString: {
        std::string_view x = arg.string_at(e.row);
        if (x.size() > st.s[e.g].size()) bytes += x.size() - st.s[e.g].size();
        st.s[e.g].assign(x);
        break;
      }
      default:
        st.i[e.g] = int_at(arg, e.row);
        break;
    }
  });
  return bytes;
}

constexpr size_t kSetEntryOverhead = 48;  // node + bucket, approximately

}  // namespace

std::string AggSpec::to_string() const {
  std::string s(kind_name(kind));
  s += '(';
  s += arg ? arg->to_string() : "*";
  s += ')';
  return s;
}

std::optional<AggSpec> parse_aggregate(const std::string& name, std::string_view text,
                                       const SourceLocation& loc, const Schema& schema,
                                       const std::string& what, Diagnostics& diags) {
  auto at = [&](size_t offset) {
    SourceLocation l = loc;
    if (l.column > 0) l.column += static_cast<int>(offset);
    return l;
  };
  const std::string me = what + " aggregate '" + name + "'";
  const size_t n = text.size();
  size_t p = 0;
  while (p < n && is_space(text[p])) ++p;
  const size_t fn_begin = p;
  while (p < n && (std::isalnum(static_cast<unsigned char>(text[p])) || text[p] == '_')) ++p;
  std::string fn(text.substr(fn_begin, p - fn_begin));
  std::transform(fn.begin(), fn.end(), fn.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  while (p < n && is_space(text[p])) ++p;
  if (fn.empty() || p >= n || text[p] != '(') {
    diags.error(at(fn_begin),
                me + ": expected function(argument), e.g. count(*) or sum(price), got '" +
                    std::string(text) + "'");
    return std::nullopt;
  }
  const size_t open = p;
  std::vector<size_t> commas;
  const size_t close = scan_top_level(text, open + 1, commas);
  if (close == std::string_view::npos) {
    diags.error(at(open), me + ": unbalanced parentheses in '" + std::string(text) + "'");
    return std::nullopt;
  }
  for (size_t q = close + 1; q < n; ++q) {
    if (!is_space(text[q])) {
      diags.error(at(q), me + ": unexpected text after " + fn + "(...): '" +
                             std::string(text.substr(q)) + "'");
      return std::nullopt;
    }
  }
  AggSpec spec;
  spec.name = name;
  bool known = false;
  for (const auto& f : kFunctions) {
    if (f.name == fn) {
      spec.kind = f.kind;
      known = true;
    }
  }
  if (!known) {
    diags.error(at(fn_begin), me + ": unknown aggregate function '" + fn +
                                  "' (use count, sum, avg, min, max, first, last or "
                                  "count_distinct)");
    return std::nullopt;
  }
  if (!commas.empty()) {
    diags.error(at(commas.front()),
                me + ": " + fn + " takes one argument, got " + std::to_string(commas.size() + 1));
    return std::nullopt;
  }
  size_t arg_begin = open + 1;
  size_t arg_end = close;
  while (arg_begin < arg_end && is_space(text[arg_begin])) ++arg_begin;
  while (arg_end > arg_begin && is_space(text[arg_end - 1])) --arg_end;
  std::string_view arg = text.substr(arg_begin, arg_end - arg_begin);
  if (arg.empty()) {
    diags.error(at(open), me + ": " + fn + " takes one argument, got none" +
                              (fn == "count" ? " (count all rows with count(*))" : ""));
    return std::nullopt;
  }
  if (arg == "*") {
    if (spec.kind != AggKind::kCount) {
      diags.error(at(arg_begin), me + ": only count takes '*'; " + fn + " needs an expression");
      return std::nullopt;
    }
    spec.kind = AggKind::kCountStar;
    spec.uses_n = true;
    spec.out_type = TypeId::kInt64;
    return spec;
  }
  spec.arg = expr::compile(arg, schema, at(arg_begin), diags);
  if (!spec.arg) return std::nullopt;
  const TypeId t = spec.arg->result_type();
  spec.arg_type = t;
  switch (spec.kind) {
    case AggKind::kCount:
      spec.uses_n = true;
      spec.out_type = TypeId::kInt64;
      break;
    case AggKind::kCountDistinct:
      spec.uses_set = true;
      spec.out_type = TypeId::kInt64;
      break;
    case AggKind::kSum:
    case AggKind::kAvg:
      if (!is_numeric(t)) {
        diags.error(at(arg_begin), me + ": " + fn +
                                       " needs a numeric (int64 or double) argument, got " +
                                       std::string(type_name(t)) + " '" + std::string(arg) + "'");
        return std::nullopt;
      }
      spec.uses_n = true;
      (t == TypeId::kInt64 ? spec.uses_i : spec.uses_d) = true;
      spec.out_type = spec.kind == AggKind::kAvg ? TypeId::kDouble : t;
      break;
    case AggKind::kMin:
    case AggKind::kMax:
      use_value_storage(spec, t);
      spec.out_type = t;
      break;
    case AggKind::kFirst:
    case AggKind::kLast:
      use_value_storage(spec, t);
      spec.uses_ord = true;
      spec.out_type = t;
      break;
    case AggKind::kCountStar:
      break;
  }
  return spec;
}

GroupStates::GroupStates(const std::vector<AggSpec>* aggs) : specs_(aggs) {
  this->aggs.resize(aggs->size());
  for (const AggSpec& a : *aggs) {
    fixed_bytes_ += (a.uses_n ? 8 : 0) + (a.uses_i ? 8 : 0) + (a.uses_d ? 8 : 0) +
                    (a.uses_s ? sizeof(std::string) : 0) + (a.uses_ord ? 16 : 0) +
                    (a.uses_set ? 8 : 0);
  }
}

uint32_t GroupStates::add() {
  for (size_t j = 0; j < specs_->size(); ++j) {
    const AggSpec& a = (*specs_)[j];
    AggStates& st = aggs[j];
    if (a.uses_n) st.n.push_back(0);
    if (a.uses_i) st.i.push_back(0);
    if (a.uses_d) st.d.push_back(0);
    if (a.uses_s) st.s.emplace_back();
    if (a.uses_ord) {
      st.ts.push_back(0);
      st.seq.push_back(0);
    }
    if (a.uses_set) st.set.emplace_back();
  }
  return static_cast<uint32_t>(size_++);
}

void GroupStates::reset(uint32_t g) {
  for (size_t j = 0; j < specs_->size(); ++j) {
    const AggSpec& a = (*specs_)[j];
    AggStates& st = aggs[j];
    if (a.uses_n) st.n[g] = 0;
    if (a.uses_i) st.i[g] = 0;
    if (a.uses_d) st.d[g] = 0;
    if (a.uses_s) st.s[g].clear();
    if (a.uses_ord) st.ts[g] = 0, st.seq[g] = 0;
    if (a.uses_set) st.set[g].reset();
  }
}

GroupStates GroupStates::clone() const {
  GroupStates copy(specs_);
  copy.size_ = size_;
  for (size_t j = 0; j < aggs.size(); ++j) {
    const AggStates& from = aggs[j];
    AggStates& to = copy.aggs[j];
    to.n = from.n;
    to.i = from.i;
    to.d = from.d;
    to.s = from.s;
    to.ts = from.ts;
    to.seq = from.seq;
    to.set.reserve(from.set.size());
    for (const auto& set : from.set) {
      to.set.push_back(set ? std::make_unique<DistinctSet>(*set) : nullptr);
    }
  }
  return copy;
}

void GroupStates::clear() {
  for (AggStates& st : aggs) st = AggStates{};
  size_ = 0;
}

void GroupStates::reset_all() {
  for (AggStates& st : aggs) {
    st.n.clear();
    st.i.clear();
    st.d.clear();
    st.s.clear();
    st.ts.clear();
    st.seq.clear();
    st.set.clear();
  }
  size_ = 0;
}

void GroupStates::merge_from(uint32_t dg, const GroupStates& src, uint32_t sg) {
  for (size_t j = 0; j < specs_->size(); ++j) {
    const AggSpec& a = (*specs_)[j];
    AggStates& d = aggs[j];
    const AggStates& s = src.aggs[j];
    switch (a.kind) {
      case AggKind::kCountStar:
      case AggKind::kCount:
        d.n[dg] += s.n[sg];
        break;
      case AggKind::kSum:
      case AggKind::kAvg:
        if (a.uses_i) d.i[dg] += s.i[sg];
        if (a.uses_d) {
          // Into an empty accumulator: a copy, so a sum of -0.0 stays -0.0.
          d.d[dg] = d.n[dg] == 0 ? s.d[sg] : d.d[dg] + s.d[sg];
        }
        d.n[dg] += s.n[sg];
        break;
      case AggKind::kMin:
      case AggKind::kMax: {
        if (s.n[sg] == 0) break;
        const bool is_min = a.kind == AggKind::kMin;
        bool take = d.n[dg] == 0;
        if (!take) {
          if (a.uses_i) take = is_min ? s.i[sg] < d.i[dg] : d.i[dg] < s.i[sg];
          if (a.uses_d) take = is_min ? s.d[sg] < d.d[dg] : d.d[dg] < s.d[sg];
          if (a.uses_s) take = is_min ? s.s[sg] < d.s[dg] : d.s[dg] < s.s[sg];
        }
        if (take) {
          if (a.uses_i) d.i[dg] = s.i[sg];
          if (a.uses_d) d.d[dg] = s.d[sg];
          if (a.uses_s) d.s[dg] = s.s[sg];
        }
        d.n[dg] += s.n[sg];
        break;
      }
      case AggKind::kFirst:
      case AggKind::kLast: {
        if (s.n[sg] == 0) break;
        bool take = d.n[dg] == 0;
        if (!take) {
          const bool earlier =
              s.ts[sg] < d.ts[dg] || (s.ts[sg] == d.ts[dg] && s.seq[sg] < d.seq[dg]);
          take = earlier == (a.kind == AggKind::kFirst);
        }
        if (take) {
          if (a.uses_i) d.i[dg] = s.i[sg];
          if (a.uses_d) d.d[dg] = s.d[sg];
          if (a.uses_s) d.s[dg] = s.s[sg];
          d.ts[dg] = s.ts[sg];
          d.seq[dg] = s.seq[sg];
        }
        d.n[dg] += s.n[sg];
        break;
      }
      case AggKind::kCountDistinct:
        if (!s.set[sg] || s.set[sg]->empty()) break;
        if (!d.set[dg]) d.set[dg] = std::make_unique<DistinctSet>();
        d.set[dg]->insert(s.set[sg]->begin(), s.set[sg]->end());
        break;
    }
  }
}

void GroupStates::encode(uint32_t g, std::string& out) const {
  for (size_t j = 0; j < specs_->size(); ++j) {
    const AggSpec& a = (*specs_)[j];
    const AggStates& st = aggs[j];
    if (a.uses_n) put64(static_cast<uint64_t>(st.n[g]), out);
    if (a.uses_i) put64(static_cast<uint64_t>(st.i[g]), out);
    if (a.uses_d) {
      uint64_t bits;
      std::memcpy(&bits, &st.d[g], 8);
      put64(bits, out);
    }
    if (a.uses_s) {
      put32(static_cast<uint32_t>(st.s[g].size()), out);
      out += st.s[g];
    }
    if (a.uses_ord) {
      put64(static_cast<uint64_t>(st.ts[g]), out);
      put64(st.seq[g], out);
    }
    if (a.uses_set) {
      const DistinctSet* set = st.set[g].get();
      put32(set ? static_cast<uint32_t>(set->size()) : 0, out);
      if (set) {
        for (const std::string& v : *set) {
          put32(static_cast<uint32_t>(v.size()), out);
          out += v;
        }
      }
    }
  }
}

Status GroupStates::decode_merge(uint32_t g, std::string_view in, GroupStates& tmp) {
  tmp.reset(0);
  const auto bad = [] { return Status::internal("window state: corrupt accumulator"); };
  for (size_t j = 0; j < specs_->size(); ++j) {
    const AggSpec& a = (*specs_)[j];
    AggStates& st = tmp.aggs[j];
    uint64_t v = 0;
    if (a.uses_n) {
      if (!get64(in, v)) return bad();
      st.n[0] = static_cast<int64_t>(v);
    }
    if (a.uses_i) {
      if (!get64(in, v)) return bad();
      st.i[0] = static_cast<int64_t>(v);
    }
    if (a.uses_d) {
      if (!get64(in, v)) return bad();
      std::memcpy(&st.d[0], &v, 8);
    }
    if (a.uses_s) {
      std::string_view s;
      if (!get_bytes(in, s)) return bad();
      st.s[0].assign(s);
    }
    if (a.uses_ord) {
      if (!get64(in, v)) return bad();
      st.ts[0] = static_cast<int64_t>(v);
      if (!get64(in, st.seq[0])) return bad();
    }
    if (a.uses_set) {
      uint32_t count = 0;
      if (!get32(in, count)) return bad();
      if (count > 0) {
        st.set[0] = std::make_unique<DistinctSet>();
        st.set[0]->reserve(count);
        for (uint32_t k = 0; k < count; ++k) {
          std::string_view s;
          if (!get_bytes(in, s)) return bad();
          st.set[0]->emplace(s);
        }
      }
    }
  }
  if (!in.empty()) return bad();
  merge_from(g, tmp, 0);
  return Status::OK();
}

void GroupStates::append_result(size_t j, uint32_t g, ColumnBuilder& out) const {
  append_results(j, g, 1, out);
}

void GroupStates::append_results(size_t j, uint32_t first, uint32_t count,
                                 ColumnBuilder& out) const {
  const AggSpec& a = (*specs_)[j];
  const AggStates& st = aggs[j];
  const uint32_t last = first + count;
  switch (a.kind) {
    case AggKind::kCountStar:
    case AggKind::kCount:
      out.append_int64s(st.n.data() + first, count);
      return;
    case AggKind::kCountDistinct:
      for (uint32_t g = first; g < last; ++g) {
        out.append_int64(st.set[g] ? static_cast<int64_t>(st.set[g]->size()) : 0);
      }
      return;
    case AggKind::kSum:
      for (uint32_t g = first; g < last; ++g) {
        if (st.n[g] == 0) {
          out.append_null();
        } else if (a.uses_i) {
          out.append_int64(st.i[g]);
        } else {
          out.append_double(st.d[g]);
        }
      }
      return;
    case AggKind::kAvg:
      for (uint32_t g = first; g < last; ++g) {
        if (st.n[g] == 0) {
          out.append_null();
        } else {
          const double sum = a.uses_i ? static_cast<double>(st.i[g]) : st.d[g];
          out.append_double(sum / static_cast<double>(st.n[g]));
        }
      }
      return;
    case AggKind::kMin:
    case AggKind::kMax:
    case AggKind::kFirst:
    case AggKind::kLast:
      for (uint32_t g = first; g < last; ++g) {
        if (st.n[g] == 0) {
          out.append_null();
        } else if (a.uses_d) {
          out.append_double(st.d[g]);
        } else if (a.uses_s) {
          out.append_string(st.s[g]);
        } else if (a.arg_type == TypeId::kBool) {
          out.append_bool(st.i[g] != 0);
        } else {
          out.append_int64(st.i[g]);
        }
      }
      return;
  }
}

namespace {

template <typename States>
size_t update_with(States states_of, const AggSpec& spec, const Column* arg,
                   const Column& event_time, const std::vector<Entry>& entries,
                   std::string& scratch) {
  switch (spec.kind) {
    case AggKind::kCountStar:
      for (const Entry& e : entries) ++states_of(e).n[e.g];
      return 0;
    case AggKind::kCount:
      for_valid(*arg, entries, [&](const Entry& e) { ++states_of(e).n[e.g]; });
      return 0;
    case AggKind::kSum:
    case AggKind::kAvg:
      if (arg->type() == TypeId::kInt64) {
        const int64_t* v = arg->int64_data();
        for_valid(*arg, entries, [&](const Entry& e) {
          AggStates& st = states_of(e);
          ++st.n[e.g];
          st.i[e.g] += v[e.row];
        });
      } else {
        const double* v = arg->double_data();
        for_valid(*arg, entries, [&](const Entry& e) {
          AggStates& st = states_of(e);
          ++st.n[e.g];
          st.d[e.g] += v[e.row];
        });
      }
      return 0;
    case AggKind::kMin:
      return update_extreme<true>(states_of, *arg, entries);
    case AggKind::kMax:
      return update_extreme<false>(states_of, *arg, entries);
    case AggKind::kFirst:
      return update_ordered<true>(states_of, *arg, event_time, entries);
    case AggKind::kLast:
      return update_ordered<false>(states_of, *arg, event_time, entries);
    case AggKind::kCountDistinct: {
      size_t bytes = 0;
      for_valid(*arg, entries, [&](const Entry& e) {
        std::unique_ptr<DistinctSet>& set = states_of(e).set[e.g];
        if (!set) set = std::make_unique<DistinctSet>();
        scratch.clear();
        state::encode_key_cell(*arg, e.row, scratch);
        if (set->find(std::string_view(scratch)) == set->end()) {
          set->emplace(scratch);
          bytes += scratch.size() + kSetEntryOverhead;
        }
      });
      return bytes;
    }
  }
  return 0;
}

}  // namespace

size_t update_aggregate(const AggSpec& spec, size_t j, const Column* arg, const Column& event_time,
                        const std::vector<Entry>& entries, GroupStates* single,
                        std::string& scratch) {
  if (single != nullptr) {
    return update_with(OneGroups{&single->aggs[j]}, spec, arg, event_time, entries, scratch);
  }
  return update_with(AnyGroups{j}, spec, arg, event_time, entries, scratch);
}

}  // namespace df::operators::window

// ---- readable state ----------------------------------------------------------

namespace df::operators::window {

namespace {

using nlohmann::json;

// Reads the fixed little-endian layout GroupStates::encode writes.
struct Reader {
  std::string_view in;
  bool ok = true;
  uint64_t u64() {
    uint64_t v = 0;
    if (!get64(in, v)) ok = false;
    return v;
  }
  uint32_t u32() {
    uint32_t v = 0;
    if (!get32(in, v)) ok = false;
    return v;
  }
  std::string_view bytes() {
    std::string_view v;
    if (!get_bytes(in, v)) ok = false;
    return v;
  }
};

// The value slot of a min/max/first/last: which array holds it follows the
// argument type.
json slot_to_json(const AggSpec& a, int64_t i, double d, std::string_view s) {
  if (a.uses_d) return double_to_json(d);
  if (a.uses_s) return string_to_json(s);
  if (a.arg_type == TypeId::kBool && (i == 0 || i == 1)) return i != 0;
  if (a.arg_type == TypeId::kTimestamp) return timestamp_to_json(i);
  return i;
}

bool slot_is_zero(const AggSpec& a, int64_t i, double d, std::string_view s) {
  if (a.uses_d) {
    uint64_t bits;
    std::memcpy(&bits, &d, 8);
    return bits == 0;
  }
  if (a.uses_s) return s.empty();
  return i == 0;
}

Status slot_from_json(const AggSpec& a, const json& j, const std::string& what, std::string& out) {
  if (j.is_null()) {
    // Zero bytes: what an empty accumulator holds.
    if (a.uses_d || a.uses_i) put64(0, out);
    if (a.uses_s) put32(0, out);
    return Status::OK();
  }
  if (a.uses_d) {
    DF_ASSIGN_OR_RETURN(double d, double_from_json(j, what));
    uint64_t bits;
    std::memcpy(&bits, &d, 8);
    put64(bits, out);
  } else if (a.uses_s) {
    DF_ASSIGN_OR_RETURN(std::string s, string_from_json(j, what));
    put32(static_cast<uint32_t>(s.size()), out);
    out += s;
  } else if (a.arg_type == TypeId::kBool && j.is_boolean()) {
    put64(j.get<bool>() ? 1 : 0, out);
  } else if (a.arg_type == TypeId::kTimestamp) {
    DF_ASSIGN_OR_RETURN(int64_t v, timestamp_from_json(j, what));
    put64(static_cast<uint64_t>(v), out);
  } else {
    DF_ASSIGN_OR_RETURN(int64_t v, int_from_json(j, what));
    put64(static_cast<uint64_t>(v), out);
  }
  return Status::OK();
}

}  // namespace

Result<json> accumulators_to_json(const std::vector<AggSpec>& specs, std::string_view in) {
  Reader r{in};
  json out = json::object();
  const auto bad = [](const std::string& name) {
    return Status::data_error("window state: the accumulator of aggregate '" + name +
                              "' is truncated or malformed");
  };
  for (const AggSpec& a : specs) {
    const int64_t n = a.uses_n ? static_cast<int64_t>(r.u64()) : 0;
    const int64_t i = a.uses_i ? static_cast<int64_t>(r.u64()) : 0;
    double d = 0;
    if (a.uses_d) {
      const uint64_t bits = r.u64();
      std::memcpy(&d, &bits, 8);
    }
    const std::string_view s = a.uses_s ? r.bytes() : std::string_view();
    const int64_t ts = a.uses_ord ? static_cast<int64_t>(r.u64()) : 0;
    const uint64_t seq = a.uses_ord ? r.u64() : 0;
    if (!r.ok) return bad(a.name);
    json v;
    switch (a.kind) {
      case AggKind::kCountStar:
      case AggKind::kCount:
        v = n;
        break;
      case AggKind::kSum:
      case AggKind::kAvg:
        v = json{{"sum", a.uses_i ? json(i) : double_to_json(d)}, {"count", n}};
        break;
      case AggKind::kMin:
      case AggKind::kMax:
        v = json{{"value",
                  n == 0 && slot_is_zero(a, i, d, s) ? json(nullptr) : slot_to_json(a, i, d, s)},
                 {"count", n}};
        break;
      case AggKind::kFirst:
      case AggKind::kLast:
        v = json{{"value",
                  n == 0 && slot_is_zero(a, i, d, s) ? json(nullptr) : slot_to_json(a, i, d, s)},
                 {"time", timestamp_to_json(ts)},
                 {"seq", seq},
                 {"count", n}};
        break;
      case AggKind::kCountDistinct: {
        v = json::array();
        const uint32_t count = r.u32();
        for (uint32_t k = 0; r.ok && k < count; ++k) {
          std::string_view e = r.bytes();
          if (!r.ok) break;
          auto value = state::decode_key_value(e, a.arg_type);
          if (!value.ok() || !e.empty()) return bad(a.name);
          v.push_back(value_to_json(*value, a.arg_type));
        }
        if (!r.ok) return bad(a.name);
        break;
      }
    }
    out[a.name] = std::move(v);
  }
  if (!r.in.empty()) {
    return Status::data_error("window state: " + std::to_string(r.in.size()) +
                              " bytes left over after the accumulators");
  }
  return out;
}

Status accumulators_from_json(const std::vector<AggSpec>& specs, const json& j, std::string& out) {
  if (!j.is_object()) {
    return Status::invalid(std::string("'aggregates' must be a JSON object, not ") + j.type_name());
  }
  for (const auto& [k, v] : j.items()) {
    bool known = false;
    for (const AggSpec& a : specs) known = known || a.name == k;
    if (!known) return Status::invalid("'aggregates' has an unknown aggregate '" + k + "'");
  }
  for (const AggSpec& a : specs) {
    const std::string what = "aggregate '" + a.name + "'";
    auto it = j.find(a.name);
    if (it == j.end()) return Status::invalid("'aggregates' lacks the aggregate '" + a.name + "'");
    const json& v = *it;
    switch (a.kind) {
      case AggKind::kCountStar:
      case AggKind::kCount: {
        DF_ASSIGN_OR_RETURN(int64_t n, int_from_json(v, what));
        put64(static_cast<uint64_t>(n), out);
        break;
      }
      case AggKind::kSum:
      case AggKind::kAvg: {
        DF_RETURN_IF_ERROR(check_object(v, what, {"sum", "count"}));
        DF_ASSIGN_OR_RETURN(int64_t n, int_from_json(v["count"], what + " count"));
        put64(static_cast<uint64_t>(n), out);
        if (a.uses_i) {
          DF_ASSIGN_OR_RETURN(int64_t s, int_from_json(v["sum"], what + " sum"));
          put64(static_cast<uint64_t>(s), out);
        } else {
          DF_ASSIGN_OR_RETURN(double s, double_from_json(v["sum"], what + " sum"));
          uint64_t bits;
          std::memcpy(&bits, &s, 8);
          put64(bits, out);
        }
        break;
      }
      case AggKind::kMin:
      case AggKind::kMax: {
        DF_RETURN_IF_ERROR(check_object(v, what, {"value", "count"}));
        DF_ASSIGN_OR_RETURN(int64_t n, int_from_json(v["count"], what + " count"));
        put64(static_cast<uint64_t>(n), out);
        DF_RETURN_IF_ERROR(slot_from_json(a, v["value"], what + " value", out));
        break;
      }
      case AggKind::kFirst:
      case AggKind::kLast: {
        DF_RETURN_IF_ERROR(check_object(v, what, {"value", "time", "seq", "count"}));
        DF_ASSIGN_OR_RETURN(int64_t n, int_from_json(v["count"], what + " count"));
        put64(static_cast<uint64_t>(n), out);
        DF_RETURN_IF_ERROR(slot_from_json(a, v["value"], what + " value", out));
        DF_ASSIGN_OR_RETURN(int64_t ts, timestamp_from_json(v["time"], what + " time"));
        DF_ASSIGN_OR_RETURN(uint64_t seq, uint_from_json(v["seq"], what + " seq"));
        put64(static_cast<uint64_t>(ts), out);
        put64(seq, out);
        break;
      }
      case AggKind::kCountDistinct: {
        if (!v.is_array()) {
          return Status::invalid(what + " must be an array of distinct values, not " +
                                 v.type_name());
        }
        put32(static_cast<uint32_t>(v.size()), out);
        std::string cell;
        for (size_t k = 0; k < v.size(); ++k) {
          const std::string item = what + " value " + std::to_string(k + 1);
          if (v[k].is_null()) return Status::invalid(item + " must not be null");
          DF_ASSIGN_OR_RETURN(Value value, value_from_json(v[k], a.arg_type, item));
          cell.clear();
          state::encode_key_value(value, cell);
          put32(static_cast<uint32_t>(cell.size()), out);
          out += cell;
        }
        break;
      }
    }
  }
  return Status::OK();
}

}  // namespace df::operators::window
