#include "operators/expr/eval.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "engine/core/log.h"
#include "engine/core/time.h"
#include "operators/expr/divide.h"
#include "operators/expr/kernels.h"
#include "operators/expr/scalar.h"

namespace df::expr::internal {
namespace {

thread_local bool t_fast_paths = true;

// Result columns of inner nodes live only while one evaluation runs; instead
// of allocating (and zeroing) fresh ones for every batch, each thread keeps
// the ones it made and gets them back when they are solely its own again.
// Only columns that never escaped are reused: evaluate() returns its result
// column to the caller (still referenced, so never recycled), and a column
// that grew a validity vector is dropped (it cannot be reset). A reused
// column's unwritten slots keep old values, which is fine: slots of rows not
// computed are unspecified, and the dense kernels treat them as arbitrary.
struct Scratch {
  std::vector<std::shared_ptr<Column>> free;  // solely owned, no nulls
  std::vector<std::shared_ptr<Column>> made;  // made by evaluations in progress
};
thread_local Scratch t_scratch;
constexpr size_t kMaxFreeColumns = 16;

// The column stays owned by t_scratch.made until the evaluation's
// ScratchScope ends; callers borrow it (no reference-count traffic per node).
Column* new_column(TypeId type, size_t size) {
  std::shared_ptr<Column> c;
  if (t_fast_paths) {
    auto& free = t_scratch.free;
    for (size_t i = free.size(); i-- > 0;) {
      if (free[i]->type() == type && free[i]->size() == size) {
        c = std::move(free[i]);
        if (i + 1 != free.size()) free[i] = std::move(free.back());
        free.pop_back();
        break;
      }
    }
    if (!c) c = Column::make_for_overwrite(type, size);
  } else {
    c = Column::make(type, size);
  }
  Column* raw = c.get();
  t_scratch.made.push_back(std::move(c));
  return raw;
}

// The owning pointer of a column new_column() made in this evaluation;
// nullptr when it did not make it.
ColumnPtr scratch_owner(const Column* col) {
  const auto& made = t_scratch.made;
  for (size_t i = made.size(); i-- > 0;) {
    if (made[i].get() == col) return made[i];
  }
  return nullptr;
}

// Recycles, when destroyed, the columns made since it was constructed that
// nobody else holds any more.
class ScratchScope {
 public:
  ScratchScope() : mark_(t_scratch.made.size()) {}
  ScratchScope(const ScratchScope&) = delete;
  ScratchScope& operator=(const ScratchScope&) = delete;
  ~ScratchScope() {
    auto& made = t_scratch.made;
    auto& free = t_scratch.free;
    for (size_t i = mark_; i < made.size(); ++i) {
      std::shared_ptr<Column>& c = made[i];
      if (c.use_count() != 1 || c->has_nulls()) continue;
      if (free.size() >= kMaxFreeColumns) free.erase(free.begin());
      free.push_back(std::move(c));
    }
    made.resize(mark_);
  }

 private:
  size_t mark_;
};

// The rows one node is evaluated for. A constant subtree is evaluated in a
// one-slot "scalar" domain; its data errors are charged to every row in
// `blame`, the rows that asked for the value.
struct Rows {
  const uint32_t* sel = nullptr;  // nullptr: rows [0, count)
  size_t count = 0;
  size_t slots = 0;             // length of the columns produced for these rows
  const Rows* blame = nullptr;  // set only in the scalar domain

  bool scalar() const { return blame != nullptr; }
  template <class F>
  void each(F&& f) const {
    if (sel) {
      for (size_t i = 0; i < count; ++i) f(static_cast<size_t>(sel[i]));
    } else {
      for (size_t r = 0; r < count; ++r) f(r);
    }
  }
};

// How the specialised kernels walk the rows of interest: either every slot
// [0, n) (a dense loop the compiler can vectorize; when there is a selection
// this also computes unselected slots, whose values are unspecified anyway),
// or the n selected slots sel[0..n).
struct Domain {
  const uint32_t* sel;
  size_t n;
};

// How much a kernel costs per slot relative to gathering selected rows: a
// cheap one (add, compare, convert) runs densely unless the selection keeps
// under a quarter of the slots, an expensive one (divide) only above 3/4.
enum class Cost : uint8_t { kCheap, kDear };

Domain domain(const Rows& rows, Cost cost) {
  if (rows.sel == nullptr) return {nullptr, rows.count};
  const bool dense =
      cost == Cost::kCheap ? rows.count * 4 >= rows.slots : rows.count * 4 >= rows.slots * 3;
  return dense ? Domain{nullptr, rows.slots} : Domain{rows.sel, rows.count};
}

// o[r] = k(r) for every slot r of `d`.
template <class O, class K>
void apply(const Domain& d, O* o, K&& k) {
  if (d.sel == nullptr) {
#pragma GCC unroll 4
    for (size_t r = 0; r < d.n; ++r) o[r] = k(r);
  } else {
    for (size_t i = 0; i < d.n; ++i) {
      const size_t r = d.sel[i];
      o[r] = k(r);
    }
  }
}

Rows narrow(const Rows& rows, const std::vector<uint32_t>& sub) {
  if (sub.size() == rows.count) return rows;
  Rows out = rows;
  out.sel = sub.data();
  out.count = sub.size();
  return out;
}

// An evaluated node: `slots` values, or one value standing for every row.
// `col` is borrowed from whatever outlives the evaluation: the batch, the
// bound tree (literals, folded constants) or the scratch columns of this
// evaluation (t_scratch.made); only a column nothing else holds is kept alive
// by `owned` (string results, null constants). So passing values between
// nodes costs no atomic reference counting.
struct Vec {
  const Column* col = nullptr;
  bool scalar = false;
  ColumnPtr owned;
  static Vec own(ColumnPtr c, bool scalar) {
    const Column* raw = c.get();
    return Vec{raw, scalar, std::move(c)};
  }
  size_t mask() const { return scalar ? 0 : ~size_t{0}; }
};

// Only the validity of an evaluated node, whatever its type.
struct NullMask {
  const uint8_t* valid;
  size_t mask;
  explicit NullMask(const Vec& v) : valid(v.col->validity()), mask(v.mask()) {}
  bool null(size_t r) const { return valid && !valid[r & mask]; }
};

template <class T>
struct Reader {
  using Raw = std::conditional_t<std::is_same_v<T, bool>, uint8_t, T>;
  const Column* c;
  const uint8_t* valid;
  const Raw* data = nullptr;
  size_t mask;

  explicit Reader(const Vec& v) : c(v.col), valid(c->validity()), mask(v.mask()) {
    if constexpr (std::is_same_v<T, bool>) {
      data = c->bool_data();
    } else if constexpr (std::is_same_v<T, int64_t>) {
      data = c->int64_data();
    } else if constexpr (std::is_same_v<T, double>) {
      data = c->double_data();
    }
  }
  bool null(size_t r) const { return valid && !valid[r & mask]; }
  T get(size_t r) const {
    if constexpr (std::is_same_v<T, std::string_view>) {
      return c->string_at(r & mask);
    } else if constexpr (std::is_same_v<T, bool>) {
      return data[r & mask] != 0;
    } else {
      return data[r & mask];
    }
  }
};

// Writes one result column; rows must be written in ascending order (strings
// are appended), slots that are never written stay unspecified.
template <class T>
class Out {
 public:
  Out(TypeId type, const Rows& rows) : scalar_(rows.scalar()) {
    col_ = new_column(type, rows.slots);
    if constexpr (std::is_same_v<T, bool>) {
      data_ = col_->mutable_bool_data();
    } else if constexpr (std::is_same_v<T, int64_t>) {
      data_ = col_->mutable_int64_data();
    } else {
      data_ = col_->mutable_double_data();
    }
  }
  using Raw = std::conditional_t<std::is_same_v<T, bool>, uint8_t, T>;
  void set(size_t r, T v) { data_[r] = v; }
  void null(size_t r) { col_->set_null(r); }
  Raw* raw() { return data_; }
  Vec finish() { return Vec{col_, scalar_, nullptr}; }

 private:
  Column* col_;  // owned by t_scratch.made
  Raw* data_;
  bool scalar_;
};

template <>
class Out<std::string_view> {
 public:
  Out(TypeId, const Rows& rows) : b_(TypeId::kString, rows.slots), slots_(rows.slots) {
    scalar_ = rows.scalar();
  }
  void set(size_t r, std::string_view v) {
    fill(r);
    b_.append_string(v);
    ++next_;
  }
  void null(size_t r) {
    fill(r);
    b_.append_null();
    ++next_;
  }
  Vec finish() {
    fill(slots_);
    return Vec::own(b_.finish(), scalar_);
  }

 private:
  void fill(size_t r) {
    for (; next_ < r; ++next_) b_.append_string({});
  }
  ColumnBuilder b_;
  size_t slots_;
  size_t next_ = 0;
  bool scalar_ = false;
};

template <class F>
decltype(auto) with_type(TypeId t, F&& f) {
  switch (t) {
    case TypeId::kBool:
      return f(std::type_identity<bool>{});
    case TypeId::kInt64:
    case TypeId::kTimestamp:
      return f(std::type_identity<int64_t>{});
    case TypeId::kDouble:
      return f(std::type_identity<double>{});
    case TypeId::kString:
      break;
  }
  return f(std::type_identity<std::string_view>{});
}

enum class Err : uint8_t { kNone, kDivZero, kModZero, kOverflow, kBadCast, kNegativeLength };

template <class T>
std::string show(const T& v) {
  if constexpr (std::is_same_v<T, std::string_view>) {
    std::string s = "'";
    for (char c : v) {
      s += c;
      if (c == '\'') s += '\'';
    }
    return s + "'";
  } else if constexpr (std::is_same_v<T, bool>) {
    return v ? "true" : "false";
  } else if constexpr (std::is_same_v<T, double>) {
    return format_double(v);
  } else {
    return std::to_string(v);
  }
}

template <class... V>
std::string error_message(Err e, const Node& n, const V&... v) {
  std::string values;
  if (n.kind == NodeKind::kBinary && sizeof...(V) == 2) {
    int i = 0;
    ((values += (i++ ? std::string(" ") + op_symbol(n.op) + " " : std::string()) + show(v)), ...);
  } else {
    ((values += (values.empty() ? "" : ", ") + show(v)), ...);
  }
  const std::string where = " in '" + n.text + "'";
  switch (e) {
    case Err::kDivZero:
      return "division by zero" + where + " (" + values + ")";
    case Err::kModZero:
      return "modulo by zero" + where + " (" + values + ")";
    case Err::kOverflow:
      return "int64 overflow" + where + " (" + values + ")";
    case Err::kBadCast:
      return "cannot cast " + values + " to " + std::string(type_name(n.cast_to)) + where;
    case Err::kNegativeLength:
      return "negative length" + where + " (" + values + ")";
    case Err::kNone:
      break;
  }
  return "error" + where;
}

double round_digits(double x, int64_t d) {
  if (!std::isfinite(x) || d > 330) return x;
  if (d < -330) return std::copysign(0.0, x);
  if (d >= 0) {
    const double p = std::pow(10.0, static_cast<double>(d));
    const double y = x * p;
    if (!std::isfinite(y)) return x;
    return std::round(y) / p;
  }
  const double p = std::pow(10.0, static_cast<double>(-d));
  return std::round(x / p) * p;
}

Err round_int(int64_t x, int64_t d, int64_t& z) {
  if (d >= 0) {
    z = x;
    return Err::kNone;
  }
  if (d < -18) {
    // 10^19 exceeds int64: only values of magnitude >= 5e18 would round away from 0.
    if (d == -19 && (x >= 5'000'000'000'000'000'000 || x <= -5'000'000'000'000'000'000)) {
      return Err::kOverflow;
    }
    z = 0;
    return Err::kNone;
  }
  int64_t p = 1;
  for (int64_t i = 0; i < -d; ++i) p *= 10;
  int64_t q = x / p;
  const int64_t rem = x % p;
  if (rem * 2 >= p) ++q;
  if (rem * 2 <= -p) --q;
  return __builtin_mul_overflow(q, p, &z) ? Err::kOverflow : Err::kNone;
}

class Evaluator {
 public:
  Evaluator(const Batch& batch, EvalContext& ctx) : batch_(batch), ctx_(ctx) {}

  Vec eval(const Node& n, const Rows& rows) {
    if (n.folded) return Vec{n.folded.get(), true, nullptr};
    if (n.constant && !rows.scalar()) {
      const Rows one{nullptr, 1, 1, &rows};
      return eval_node(n, one);
    }
    return eval_node(n, rows);
  }

 private:
  void fail(const Rows& rows, size_t r, const std::string& message) {
    if (rows.blame) {
      rows.blame->each([&](size_t br) { ctx_.record_error(br, message); });
    } else {
      ctx_.record_error(r, message);
    }
  }

  static Vec null_vec(TypeId t) { return Vec::own(Column::constant(Value::null(t), 1), true); }

  // Nulls the rows of interest where any input is null (after a kernel that
  // computed every slot regardless).
  template <class O>
  static void copy_nulls(Out<O>& out, const Rows& rows, const NullMask& a, const NullMask& b) {
    if (!a.valid && !b.valid) return;
    rows.each([&](size_t r) {
      if (a.null(r) || b.null(r)) out.null(r);
    });
  }

  // out[r] = f(a[r]) for fixed-width types where f cannot fail: one tight loop
  // without per-row null or error checks, nulls copied afterwards.
  template <class A, class R, class F>
  Vec pure1(TypeId out_type, const Vec& a, const Rows& rows, Cost cost, F&& f) {
    const Reader<A> ra(a);
    Out<R> out(out_type, rows);
    const Domain d = domain(rows, cost);
    if (ra.mask == 0) {
      const R z = f(ra.get(0));
      apply(d, out.raw(), [z](size_t) { return z; });
    } else {
      const auto* x = ra.data;
      apply(d, out.raw(), [x, &f](size_t r) { return f(static_cast<A>(x[r])); });
    }
    copy_nulls(out, rows, NullMask(a), NullMask(a));
    return out.finish();
  }

  // out[r] = f(a[r], b[r]) for fixed-width types where f cannot fail. Literal
  // (scalar) operands stay scalars in the loop.
  template <class A, class B, class R, class F>
  Vec pure2(TypeId out_type, const Vec& a, const Vec& b, const Rows& rows, Cost cost, F&& f) {
    const Reader<A> ra(a);
    const Reader<B> rb(b);
    Out<R> out(out_type, rows);
    auto* o = out.raw();
    const Domain d = domain(rows, cost);
    const auto* x = ra.data;
    const auto* y = rb.data;
    if (ra.mask != 0 && rb.mask != 0) {
      apply(d, o, [x, y, &f](size_t r) { return f(static_cast<A>(x[r]), static_cast<B>(y[r])); });
    } else if (ra.mask != 0) {
      const B yv = rb.get(0);
      apply(d, o, [x, yv, &f](size_t r) { return f(static_cast<A>(x[r]), yv); });
    } else if (rb.mask != 0) {
      const A xv = ra.get(0);
      apply(d, o, [xv, y, &f](size_t r) { return f(xv, static_cast<B>(y[r])); });
    } else {
      const R z = f(ra.get(0), rb.get(0));
      apply(d, o, [z](size_t) { return z; });
    }
    copy_nulls(out, rows, NullMask(a), NullMask(b));
    return out.finish();
  }

  // out[r] = f(a[r]) for non-null a[r]; f returns an Err to null the slot and record it.
  template <class A, class R, class F>
  Vec map1(const Node& n, TypeId out_type, const Vec& a, const Rows& rows, F&& f) {
    Reader<A> ra(a);
    Out<R> out(out_type, rows);
    rows.each([&](size_t r) {
      if (ra.null(r)) return out.null(r);
      const A x = ra.get(r);
      R z{};
      const Err e = f(x, z);
      if (e != Err::kNone) [[unlikely]] {
        out.null(r);
        return fail(rows, r, error_message(e, n, x));
      }
      out.set(r, z);
    });
    return out.finish();
  }

  template <class A, class B, class R, class F>
  Vec map2(const Node& n, TypeId out_type, const Vec& a, const Vec& b, const Rows& rows, F&& f) {
    Reader<A> ra(a);
    Reader<B> rb(b);
    constexpr bool kFixedWidth = !std::is_same_v<A, std::string_view> &&
                                 !std::is_same_v<B, std::string_view> &&
                                 !std::is_same_v<R, std::string_view>;
    if constexpr (kFixedWidth) {
      // The common case: no nulls. A branch-free loop the compiler can
      // vectorize (over every slot unless the selection is sparse); errors are
      // only noted here, and if any slot failed the precise loop below runs
      // again to null and report each failing selected row.
      if (t_fast_paths && !ra.valid && !rb.valid) {
        const Domain d = domain(rows, Cost::kCheap);
        Out<R> fast(out_type, rows);
        auto* o = fast.raw();
        bool failed = false;
        auto run = [&](auto get_a, auto get_b) {
          apply(d, o, [&](size_t r) {
            R z{};
            failed |= f(get_a(r), get_b(r), z) != Err::kNone;
            return z;
          });
        };
        const bool a_const = ra.mask == 0, b_const = rb.mask == 0;
        const auto* x = ra.data;
        const auto* y = rb.data;
        if (!a_const && !b_const) {
          run([x](size_t r) { return static_cast<A>(x[r]); },
              [y](size_t r) { return static_cast<B>(y[r]); });
        } else if (!a_const) {
          const B yv = rb.get(0);
          run([x](size_t r) { return static_cast<A>(x[r]); }, [yv](size_t) { return yv; });
        } else if (!b_const) {
          const A xv = ra.get(0);
          run([xv](size_t) { return xv; }, [y](size_t r) { return static_cast<B>(y[r]); });
        } else {
          const A xv = ra.get(0);
          const B yv = rb.get(0);
          run([xv](size_t) { return xv; }, [yv](size_t) { return yv; });
        }
        if (!failed) return fast.finish();
      }
    }
    Out<R> out(out_type, rows);
    rows.each([&](size_t r) {
      if (ra.null(r) || rb.null(r)) return out.null(r);
      const A x = ra.get(r);
      const B y = rb.get(r);
      R z{};
      const Err e = f(x, y, z);
      if (e != Err::kNone) [[unlikely]] {
        out.null(r);
        return fail(rows, r, error_message(e, n, x, y));
      }
      out.set(r, z);
    });
    return out.finish();
  }

  Vec eval_node(const Node& n, const Rows& rows) {
    switch (n.kind) {
      case NodeKind::kLiteral:
        return Vec{n.literal_column.get(), true, nullptr};
      case NodeKind::kField:
        return field(n);
      case NodeKind::kUnary:
        return unary(n, rows);
      case NodeKind::kBinary:
        if (n.op == Op::kAnd || n.op == Op::kOr) return logic(n, rows);
        if (is_comparison(n.op)) {
          const Vec a = eval(*n.args[0], rows);
          const Vec b = eval(*n.args[1], rows);
          return compare(n, n.op, n.args[0]->type, a, b, rows);
        }
        return arithmetic(n, rows);
      case NodeKind::kIsNull: {
        const Vec a = eval(*n.args[0], rows);
        const NullMask nm(a);
        Out<bool> out(TypeId::kBool, rows);
        rows.each([&](size_t r) { out.set(r, nm.null(r) != n.negated); });
        return out.finish();
      }
      case NodeKind::kIn:
        return in_list(n, rows);
      case NodeKind::kBetween: {
        const Vec x = eval(*n.args[0], rows);
        const Vec lo = eval(*n.args[1], rows);
        const Vec hi = eval(*n.args[2], rows);
        const TypeId t = n.args[0]->type;
        return and3(compare(n, Op::kGe, t, x, lo, rows), compare(n, Op::kLe, t, x, hi, rows), rows,
                    n.negated);
      }
      case NodeKind::kLike: {
        const Vec a = eval(*n.args[0], rows);
        const Vec p = eval(*n.args[1], rows);
        const bool neg = n.negated;
        return map2<std::string_view, std::string_view, bool>(
            n, TypeId::kBool, a, p, rows, [neg](std::string_view x, std::string_view y, bool& z) {
              z = like_match(x, y) != neg;
              return Err::kNone;
            });
      }
      case NodeKind::kCall:
        return call(n, rows);
      case NodeKind::kCast:
        return cast(n, eval(*n.args[0], rows), rows);
    }
    throw std::logic_error("expr: unknown node kind");
  }

  Vec field(const Node& n) {
    if (n.field_index >= batch_.num_columns()) {
      throw std::logic_error("expr: batch has no column " + std::to_string(n.field_index) +
                             " for field '" + n.name + "'");
    }
    const ColumnPtr& c = batch_.column(n.field_index);
    if (c->type() != n.type || c->size() < batch_.num_rows()) {
      throw std::logic_error("expr: column '" + n.name + "' is " +
                             std::string(type_name(c->type())) +
                             ", the expression was compiled for " + std::string(type_name(n.type)));
    }
    return Vec{c.get(), false, nullptr};
  }

  Vec unary(const Node& n, const Rows& rows) {
    const Vec a = eval(*n.args[0], rows);
    if (n.op == Op::kNot) {
      if (t_fast_paths) {
        return pure1<bool, bool>(TypeId::kBool, a, rows, Cost::kCheap, [](bool x) { return !x; });
      }
      return map1<bool, bool>(n, TypeId::kBool, a, rows, [](bool x, bool& z) {
        z = !x;
        return Err::kNone;
      });
    }
    if (n.type == TypeId::kInt64) {
      return map1<int64_t, int64_t>(n, n.type, a, rows, [](int64_t x, int64_t& z) {
        return __builtin_sub_overflow(int64_t{0}, x, &z) ? Err::kOverflow : Err::kNone;
      });
    }
    if (t_fast_paths) {
      return pure1<double, double>(n.type, a, rows, Cost::kCheap, [](double x) { return -x; });
    }
    return map1<double, double>(n, n.type, a, rows, [](double x, double& z) {
      z = -x;
      return Err::kNone;
    });
  }

  // Three-valued and/or. The right side is evaluated only for rows where the
  // left side does not already decide the result.
  Vec logic(const Node& n, const Rows& rows) {
    const bool is_and = n.op == Op::kAnd;
    const Vec l = eval(*n.args[0], rows);
    const Reader<bool> rl(l);
    std::vector<uint32_t> sub;
    sub.reserve(rows.count);
    rows.each([&](size_t r) {
      if (rl.null(r) || rl.get(r) == is_and) sub.push_back(static_cast<uint32_t>(r));
    });
    const Vec rv = sub.empty() ? null_vec(TypeId::kBool) : eval(*n.args[1], narrow(rows, sub));
    const Reader<bool> rr(rv);
    Out<bool> out(TypeId::kBool, rows);
    rows.each([&](size_t r) {
      const bool ln = rl.null(r);
      if (!ln && rl.get(r) != is_and) return out.set(r, !is_and);
      const bool rn = rr.null(r);
      if (!rn && rr.get(r) != is_and) return out.set(r, !is_and);
      if (ln || rn) return out.null(r);
      out.set(r, is_and);
    });
    return out.finish();
  }

  Vec and3(const Vec& a, const Vec& b, const Rows& rows, bool negate) {
    const Reader<bool> ra(a), rb(b);
    Out<bool> out(TypeId::kBool, rows);
    rows.each([&](size_t r) {
      const bool an = ra.null(r), bn = rb.null(r);
      if ((!an && !ra.get(r)) || (!bn && !rb.get(r))) return out.set(r, negate);
      if (an || bn) return out.null(r);
      out.set(r, !negate);
    });
    return out.finish();
  }

  // Compares double columns densely with the SSE2 kernel; `literal OP column`
  // becomes `column mirrored-OP literal` (the same result, NaN included).
  Vec compare_doubles(Op op, const Vec& a, const Vec& b, const Rows& rows) {
    const bool swap = a.scalar;
    if (swap) {
      switch (op) {
        case Op::kLt:
          op = Op::kGt;
          break;
        case Op::kLe:
          op = Op::kGe;
          break;
        case Op::kGt:
          op = Op::kLt;
          break;
        case Op::kGe:
          op = Op::kLe;
          break;
        default:
          break;
      }
    }
    const Vec& x = swap ? b : a;
    const Vec& y = swap ? a : b;
    Out<bool> out(TypeId::kBool, rows);
    const size_t n = domain(rows, Cost::kCheap).n;
    kernels::compare_f64(op, x.col->double_data(), y.scalar ? nullptr : y.col->double_data(),
                         y.scalar ? y.col->double_at(0) : 0.0, out.raw(), n);
    copy_nulls(out, rows, NullMask(a), NullMask(b));
    return out.finish();
  }

  Vec compare(const Node& n, Op op, TypeId t, const Vec& a, const Vec& b, const Rows& rows) {
    return with_type(t, [&](auto tag) {
      using T = typename decltype(tag)::type;
      if constexpr (std::is_same_v<T, double>) {
        if (t_fast_paths && !(a.scalar && b.scalar) && domain(rows, Cost::kCheap).sel == nullptr) {
          return compare_doubles(op, a, b, rows);
        }
      }
      auto run = [&](auto cmp) {
        if constexpr (!std::is_same_v<T, std::string_view>) {
          if (t_fast_paths) return pure2<T, T, bool>(TypeId::kBool, a, b, rows, Cost::kCheap, cmp);
        }
        return map2<T, T, bool>(n, TypeId::kBool, a, b, rows, [cmp](T x, T y, bool& z) {
          z = cmp(x, y);
          return Err::kNone;
        });
      };
      switch (op) {
        case Op::kEq:
          return run([](T x, T y) { return x == y; });
        case Op::kNe:
          return run([](T x, T y) { return x != y; });
        case Op::kLt:
          return run([](T x, T y) { return x < y; });
        case Op::kLe:
          return run([](T x, T y) { return x <= y; });
        case Op::kGt:
          return run([](T x, T y) { return x > y; });
        case Op::kGe:
          return run([](T x, T y) { return x >= y; });
        default:
          break;
      }
      throw std::logic_error("expr: not a comparison");
    });
  }

  // double arithmetic that cannot fail: +, -, * always; / and % by a
  // non-null, non-zero scalar. Anything else (a column divisor may be 0) is
  // left to map2.
  std::optional<Vec> double_arithmetic_fast(const Node& n, const Vec& a, const Vec& b,
                                            const Rows& rows) {
    auto run = [&](Cost cost, auto f) {
      return pure2<double, double, double>(n.type, a, b, rows, cost, f);
    };
    switch (n.op) {
      case Op::kAdd:
        return run(Cost::kCheap, [](double x, double y) { return x + y; });
      case Op::kSub:
        return run(Cost::kCheap, [](double x, double y) { return x - y; });
      case Op::kMul:
        return run(Cost::kCheap, [](double x, double y) { return x * y; });
      case Op::kDiv:
      case Op::kMod:
        break;
      default:
        return std::nullopt;
    }
    if (!b.scalar || b.col->is_null(0) || b.col->double_at(0) == 0.0) return std::nullopt;
    if (n.op == Op::kDiv && !a.scalar) {
      // Dense, by the reciprocal with an exact correction (kernels.h).
      const Domain d = domain(rows, Cost::kCheap);
      if (d.sel == nullptr) {
        Out<double> out(n.type, rows);
        if (kernels::div_f64_by_scalar(a.col->double_data(), b.col->double_at(0), out.raw(), d.n)) {
          copy_nulls(out, rows, NullMask(a), NullMask(a));
          return out.finish();
        }
      }
    }
    if (n.op == Op::kDiv) return run(Cost::kDear, [](double x, double y) { return x / y; });
    return run(Cost::kDear, [](double x, double y) { return std::fmod(x, y); });
  }

  // int64 `x / c` and `x % c` for a non-null scalar c other than 0 and -1
  // (which can fail): by multiply and shift (divide.h) for |c| >= 2, with a
  // cheaper kernel when no dividend in this batch is negative.
  std::optional<Vec> int_divide_by_scalar(const Node& n, const Vec& a, const Vec& b,
                                          const Rows& rows) {
    if (a.scalar || !b.scalar || b.col->is_null(0)) return std::nullopt;
    const int64_t c = b.col->int64_at(0);
    const bool mod = n.op == Op::kMod;
    const Reader<int64_t> ra(a);
    const int64_t* x = ra.data;
    Out<int64_t> out(n.type, rows);
    int64_t* o = out.raw();
    const Domain dense = domain(rows, Cost::kCheap);  // cheap with AVX-512
    if (dense.sel == nullptr && SmallInt64Divisor::supports(c) &&
        kernels::div_int64(x, SmallInt64Divisor(c), mod, o, dense.n)) {
      // done: every dividend was below 2^51
    } else if (Int64Divisor::supports(c)) {
      const Int64Divisor dv(c);
      const Domain d = domain(rows, Cost::kDear);
      uint64_t signs = 0;
      if (d.sel == nullptr) {
        for (size_t r = 0; r < d.n; ++r) signs |= static_cast<uint64_t>(x[r]);
      } else {
        for (size_t i = 0; i < d.n; ++i) signs |= static_cast<uint64_t>(x[d.sel[i]]);
      }
      const bool any_negative = (signs >> 63) != 0;
      if (mod && any_negative) {
        apply(d, o, [x, dv](size_t r) { return dv.mod(x[r]); });
      } else if (mod) {
        apply(d, o, [x, dv](size_t r) { return dv.mod_nonneg(x[r]); });
      } else if (any_negative) {
        apply(d, o, [x, dv](size_t r) { return dv.div(x[r]); });
      } else {
        apply(d, o, [x, dv](size_t r) { return dv.div_nonneg(x[r]); });
      }
    } else if (c == 1 || (c == -1 && mod)) {
      // x / 1 == x; x % 1 == x % -1 == 0 (INT64_MIN % -1 too, as the general path).
      const Domain d = domain(rows, Cost::kCheap);
      if (mod) {
        apply(d, o, [](size_t) { return int64_t{0}; });
      } else {
        apply(d, o, [x](size_t r) { return x[r]; });
      }
    } else {
      return std::nullopt;  // 0 (an error per row) and x / -1 (INT64_MIN overflows)
    }
    copy_nulls(out, rows, NullMask(a), NullMask(a));
    return out.finish();
  }

  // int64 `x * c` or `c * x` for a non-null scalar c, all slots at once with
  // the vector kernel; nullopt when it declines (no AVX-512, or some product
  // overflows: then the checked loop finds and reports the failing rows).
  std::optional<Vec> int_multiply_by_scalar(const Node& n, const Vec& a, const Vec& b,
                                            const Rows& rows) {
    if (a.scalar == b.scalar || n.type != TypeId::kInt64) return std::nullopt;
    const Vec& x = a.scalar ? b : a;
    const Vec& c = a.scalar ? a : b;
    if (c.col->is_null(0)) return std::nullopt;
    const Domain d = domain(rows, Cost::kCheap);
    if (d.sel != nullptr) return std::nullopt;
    Out<int64_t> out(n.type, rows);
    if (!kernels::mul_int64(x.col->int64_data(), c.col->int64_at(0), out.raw(), d.n)) {
      return std::nullopt;
    }
    copy_nulls(out, rows, NullMask(x), NullMask(x));
    return out.finish();
  }

  Vec arithmetic(const Node& n, const Rows& rows) {
    const Vec a = eval(*n.args[0], rows);
    const Vec b = eval(*n.args[1], rows);
    if (t_fast_paths) {
      std::optional<Vec> v;
      if (n.args[0]->type == TypeId::kDouble) {
        v = double_arithmetic_fast(n, a, b, rows);
      } else if (n.op == Op::kDiv || n.op == Op::kMod) {
        v = int_divide_by_scalar(n, a, b, rows);
      } else if (n.op == Op::kMul) {
        v = int_multiply_by_scalar(n, a, b, rows);
      }
      if (v) return std::move(*v);
    }
    if (n.args[0]->type == TypeId::kDouble) {
      auto run = [&](auto f) { return map2<double, double, double>(n, n.type, a, b, rows, f); };
      switch (n.op) {
        case Op::kAdd:
          return run([](double x, double y, double& z) { return z = x + y, Err::kNone; });
        case Op::kSub:
          return run([](double x, double y, double& z) { return z = x - y, Err::kNone; });
        case Op::kMul:
          return run([](double x, double y, double& z) { return z = x * y, Err::kNone; });
        case Op::kDiv:
          return run([](double x, double y, double& z) {
            if (y == 0.0) return Err::kDivZero;
            z = x / y;
            return Err::kNone;
          });
        case Op::kMod:
          return run([](double x, double y, double& z) {
            if (y == 0.0) return Err::kModZero;
            z = std::fmod(x, y);
            return Err::kNone;
          });
        default:
          break;
      }
      throw std::logic_error("expr: not an arithmetic operator");
    }
    // int64, and timestamps (ms) added to, subtracted from or by int64 ms.
    auto run = [&](auto f) { return map2<int64_t, int64_t, int64_t>(n, n.type, a, b, rows, f); };
    switch (n.op) {
      case Op::kAdd:
        return run([](int64_t x, int64_t y, int64_t& z) {
          return __builtin_add_overflow(x, y, &z) ? Err::kOverflow : Err::kNone;
        });
      case Op::kSub:
        return run([](int64_t x, int64_t y, int64_t& z) {
          return __builtin_sub_overflow(x, y, &z) ? Err::kOverflow : Err::kNone;
        });
      case Op::kMul:
        return run([](int64_t x, int64_t y, int64_t& z) {
          return __builtin_mul_overflow(x, y, &z) ? Err::kOverflow : Err::kNone;
        });
      case Op::kDiv:
        return run([](int64_t x, int64_t y, int64_t& z) {
          if (y == 0) return Err::kDivZero;
          if (y == -1 && x == std::numeric_limits<int64_t>::min()) return Err::kOverflow;
          z = x / y;
          return Err::kNone;
        });
      case Op::kMod:
        return run([](int64_t x, int64_t y, int64_t& z) {
          if (y == 0) return Err::kModZero;
          z = y == -1 ? 0 : x % y;
          return Err::kNone;
        });
      default:
        break;
    }
    throw std::logic_error("expr: not an arithmetic operator");
  }

  // SQL: true if x equals an element; otherwise null if x or any element is null.
  Vec in_list(const Node& n, const Rows& rows) {
    const Vec x = eval(*n.args[0], rows);
    std::vector<Vec> elems;
    for (size_t i = 1; i < n.args.size(); ++i) elems.push_back(eval(*n.args[i], rows));
    return with_type(n.args[0]->type, [&](auto tag) {
      using T = typename decltype(tag)::type;
      const Reader<T> rx(x);
      std::vector<Reader<T>> re;
      re.reserve(elems.size());
      for (const Vec& e : elems) re.emplace_back(e);
      Out<bool> out(TypeId::kBool, rows);
      rows.each([&](size_t r) {
        bool saw_null = rx.null(r);
        bool found = false;
        if (!saw_null) {
          const T v = rx.get(r);
          for (const auto& e : re) {
            if (e.null(r)) {
              saw_null = true;
            } else if (e.get(r) == v) {
              found = true;
              break;
            }
          }
        }
        if (found) return out.set(r, !n.negated);
        if (saw_null) return out.null(r);
        out.set(r, n.negated);
      });
      return out.finish();
    });
  }

  // The casts between fixed-width types that cannot fail (all but double -> int64).
  std::optional<Vec> cast_fast(TypeId from, TypeId to, const Vec& a, const Rows& rows) {
    const Cost cheap = Cost::kCheap;
    switch (from) {
      case TypeId::kBool:
        if (to == TypeId::kInt64) {
          return pure1<bool, int64_t>(to, a, rows, cheap, [](bool x) { return int64_t{x}; });
        }
        if (to == TypeId::kDouble) {
          return pure1<bool, double>(to, a, rows, cheap, [](bool x) { return x ? 1.0 : 0.0; });
        }
        break;
      case TypeId::kInt64:
      case TypeId::kTimestamp:
        if (to == TypeId::kDouble) {
          const Domain d = domain(rows, cheap);
          if (!a.scalar && d.sel == nullptr) {
            Out<double> out(to, rows);
            const int64_t* x = a.col->int64_data();
            if (!kernels::int64_to_double(x, out.raw(), d.n)) {
              apply(d, out.raw(), [x](size_t r) { return static_cast<double>(x[r]); });
            }
            copy_nulls(out, rows, NullMask(a), NullMask(a));
            return out.finish();
          }
          return pure1<int64_t, double>(to, a, rows, cheap,
                                        [](int64_t x) { return static_cast<double>(x); });
        }
        if (to == TypeId::kBool) {
          return pure1<int64_t, bool>(to, a, rows, cheap, [](int64_t x) { return x != 0; });
        }
        if (stored_as_int64(to)) {
          return pure1<int64_t, int64_t>(to, a, rows, cheap, [](int64_t x) { return x; });
        }
        break;
      case TypeId::kDouble:
        if (to == TypeId::kBool) {
          return pure1<double, bool>(to, a, rows, cheap, [](double x) { return x != 0.0; });
        }
        break;
      case TypeId::kString:
        break;
    }
    return std::nullopt;
  }

  Vec cast(const Node& n, const Vec& a, const Rows& rows) {
    const TypeId from = n.args[0]->type;
    const TypeId to = n.cast_to;
    if (from == to) return a;
    if (to == TypeId::kString) return to_string(n, from, a, rows);
    if (t_fast_paths) {
      if (auto v = cast_fast(from, to, a, rows)) return std::move(*v);
    }
    switch (from) {
      case TypeId::kString:
        return from_string(n, a, rows);
      case TypeId::kBool:
        if (to == TypeId::kInt64) {
          return map1<bool, int64_t>(n, to, a, rows,
                                     [](bool x, int64_t& z) { return z = x ? 1 : 0, Err::kNone; });
        }
        return map1<bool, double>(n, to, a, rows,
                                  [](bool x, double& z) { return z = x ? 1.0 : 0.0, Err::kNone; });
      case TypeId::kInt64:
      case TypeId::kTimestamp:
        if (to == TypeId::kDouble) {
          return map1<int64_t, double>(n, to, a, rows, [](int64_t x, double& z) {
            return z = static_cast<double>(x), Err::kNone;
          });
        }
        if (to == TypeId::kBool) {
          return map1<int64_t, bool>(n, to, a, rows,
                                     [](int64_t x, bool& z) { return z = x != 0, Err::kNone; });
        }
        // int64 <-> timestamp: the same milliseconds, another type.
        return map1<int64_t, int64_t>(n, to, a, rows,
                                      [](int64_t x, int64_t& z) { return z = x, Err::kNone; });
      case TypeId::kDouble:
        if (to == TypeId::kBool) {
          return map1<double, bool>(n, to, a, rows,
                                    [](double x, bool& z) { return z = x != 0.0, Err::kNone; });
        }
        return map1<double, int64_t>(n, to, a, rows, [](double x, int64_t& z) {
          // Truncates toward zero; NaN fails both comparisons.
          if (!(x >= -9223372036854775808.0 && x < 9223372036854775808.0)) return Err::kBadCast;
          z = static_cast<int64_t>(x);
          return Err::kNone;
        });
    }
    throw std::logic_error("expr: unsupported cast");
  }

  Vec to_string(const Node& n, TypeId from, const Vec& a, const Rows& rows) {
    std::string buf;
    auto run = [&](auto tag, auto fmt) {
      using T = typename decltype(tag)::type;
      return map1<T, std::string_view>(n, TypeId::kString, a, rows, [&](T x, std::string_view& z) {
        buf.clear();
        fmt(x, buf);
        z = buf;
        return Err::kNone;
      });
    };
    switch (from) {
      case TypeId::kBool:
        return run(std::type_identity<bool>{},
                   [](bool x, std::string& s) { s += x ? "true" : "false"; });
      case TypeId::kInt64:
        return run(std::type_identity<int64_t>{}, [](int64_t x, std::string& s) {
          char tmp[24];
          auto [p, ec] = std::to_chars(tmp, tmp + sizeof tmp, x);
          (void)ec;
          s.append(tmp, p);
        });
      case TypeId::kTimestamp:
        return run(std::type_identity<int64_t>{},
                   [](int64_t x, std::string& s) { append_timestamp(x, s); });
      case TypeId::kDouble:
        return run(std::type_identity<double>{},
                   [](double x, std::string& s) { append_double(x, s); });
      case TypeId::kString:
        break;
    }
    return a;
  }

  Vec from_string(const Node& n, const Vec& a, const Rows& rows) {
    using SV = std::string_view;
    switch (n.cast_to) {
      case TypeId::kInt64:
        return map1<SV, int64_t>(n, n.cast_to, a, rows, [](SV x, int64_t& z) {
          auto v = parse_int64(x);
          if (!v) return Err::kBadCast;
          z = *v;
          return Err::kNone;
        });
      case TypeId::kDouble:
        return map1<SV, double>(n, n.cast_to, a, rows, [](SV x, double& z) {
          auto v = parse_double(x);
          if (!v) return Err::kBadCast;
          z = *v;
          return Err::kNone;
        });
      case TypeId::kBool:
        return map1<SV, bool>(n, n.cast_to, a, rows, [](SV x, bool& z) {
          auto v = parse_bool(x);
          if (!v) return Err::kBadCast;
          z = *v;
          return Err::kNone;
        });
      case TypeId::kTimestamp:
        return map1<SV, int64_t>(n, n.cast_to, a, rows, [](SV x, int64_t& z) {
          auto v = parse_timestamp(trim(x));
          if (!v.ok()) return Err::kBadCast;
          z = *v;
          return Err::kNone;
        });
      case TypeId::kString:
        break;
    }
    return a;
  }

  Vec call(const Node& n, const Rows& rows) {
    using SV = std::string_view;
    switch (n.func) {
      case Func::kIf:
        return if_(n, rows);
      case Func::kCoalesce:
        return coalesce(n, rows);
      case Func::kLower:
      case Func::kUpper: {
        const bool up = n.func == Func::kUpper;
        std::string buf;
        return map1<SV, SV>(n, TypeId::kString, eval(*n.args[0], rows), rows, [&](SV x, SV& z) {
          buf.assign(x);
          for (char& c : buf) {
            if (up && c >= 'a' && c <= 'z') c = static_cast<char>(c - 32);
            if (!up && c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
          }
          z = buf;
          return Err::kNone;
        });
      }
      case Func::kLength:
        return map1<SV, int64_t>(n, TypeId::kInt64, eval(*n.args[0], rows), rows,
                                 [](SV x, int64_t& z) {
                                   z = static_cast<int64_t>(utf8_length(x));
                                   return Err::kNone;
                                 });
      case Func::kConcat:
        return concat(n, rows);
      case Func::kSubstr:
        return substr(n, rows);
      case Func::kAbs: {
        const Vec a = eval(*n.args[0], rows);
        if (n.type == TypeId::kDouble) {
          return map1<double, double>(
              n, n.type, a, rows, [](double x, double& z) { return z = std::fabs(x), Err::kNone; });
        }
        return map1<int64_t, int64_t>(n, n.type, a, rows, [](int64_t x, int64_t& z) {
          if (x == std::numeric_limits<int64_t>::min()) return Err::kOverflow;
          z = x < 0 ? -x : x;
          return Err::kNone;
        });
      }
      case Func::kFloor:
      case Func::kCeil: {
        const Vec a = eval(*n.args[0], rows);
        if (n.type == TypeId::kInt64) return a;
        const bool up = n.func == Func::kCeil;
        return map1<double, double>(n, n.type, a, rows, [up](double x, double& z) {
          z = up ? std::ceil(x) : std::floor(x);
          return Err::kNone;
        });
      }
      case Func::kRound:
        return round(n, rows);
      case Func::kRand:
        return rand(n, rows);
    }
    throw std::logic_error("expr: unknown function");
  }

  // if(c, a, b): a is evaluated only where c is true, b only where it is not.
  Vec if_(const Node& n, const Rows& rows) {
    const Vec c = eval(*n.args[0], rows);
    const Reader<bool> rc(c);
    std::vector<uint32_t> yes, no;
    rows.each([&](size_t r) {
      (!rc.null(r) && rc.get(r) ? yes : no).push_back(static_cast<uint32_t>(r));
    });
    const Vec a = yes.empty() ? null_vec(n.type) : eval(*n.args[1], narrow(rows, yes));
    const Vec b = no.empty() ? null_vec(n.type) : eval(*n.args[2], narrow(rows, no));
    return with_type(n.type, [&](auto tag) {
      using T = typename decltype(tag)::type;
      const Reader<T> ra(a), rb(b);
      Out<T> out(n.type, rows);
      rows.each([&](size_t r) {
        const Reader<T>& src = !rc.null(r) && rc.get(r) ? ra : rb;
        if (src.null(r)) return out.null(r);
        out.set(r, src.get(r));
      });
      return out.finish();
    });
  }

  // coalesce(a, b, ...): each argument is evaluated only where all before it are null.
  Vec coalesce(const Node& n, const Rows& rows) {
    std::vector<Vec> vals;
    std::vector<uint32_t> pending, next;
    const Rows* cur = &rows;
    Rows narrowed;
    for (const auto& arg : n.args) {
      vals.push_back(eval(*arg, *cur));
      const NullMask nm(vals.back());
      next.clear();
      cur->each([&](size_t r) {
        if (nm.null(r)) next.push_back(static_cast<uint32_t>(r));
      });
      if (next.empty()) break;
      pending.swap(next);
      narrowed = narrow(rows, pending);
      cur = &narrowed;
    }
    return with_type(n.type, [&](auto tag) {
      using T = typename decltype(tag)::type;
      std::vector<Reader<T>> rs;
      rs.reserve(vals.size());
      for (const Vec& v : vals) rs.emplace_back(v);
      Out<T> out(n.type, rows);
      rows.each([&](size_t r) {
        for (const auto& rd : rs) {
          if (!rd.null(r)) return out.set(r, rd.get(r));
        }
        out.null(r);
      });
      return out.finish();
    });
  }

  Vec concat(const Node& n, const Rows& rows) {
    std::vector<Vec> vals;
    for (const auto& arg : n.args) vals.push_back(eval(*arg, rows));
    std::vector<Reader<std::string_view>> rs;
    for (const Vec& v : vals) rs.emplace_back(v);
    Out<std::string_view> out(TypeId::kString, rows);
    std::string buf;
    rows.each([&](size_t r) {
      buf.clear();
      for (const auto& rd : rs) {
        if (rd.null(r)) return out.null(r);
        buf += rd.get(r);
      }
      out.set(r, buf);
    });
    return out.finish();
  }

  Vec substr(const Node& n, const Rows& rows) {
    using SV = std::string_view;
    const Vec s = eval(*n.args[0], rows);
    const Vec start = eval(*n.args[1], rows);
    if (n.args.size() == 2) {
      return map2<SV, int64_t, SV>(n, TypeId::kString, s, start, rows, [](SV x, int64_t b, SV& z) {
        z = utf8_substr(x, b, -1);
        return Err::kNone;
      });
    }
    const Vec len = eval(*n.args[2], rows);
    const Reader<SV> rs(s);
    const Reader<int64_t> rb(start), rl(len);
    Out<SV> out(TypeId::kString, rows);
    rows.each([&](size_t r) {
      if (rs.null(r) || rb.null(r) || rl.null(r)) return out.null(r);
      const int64_t l = rl.get(r);
      if (l < 0) {
        out.null(r);
        return fail(rows, r, error_message(Err::kNegativeLength, n, rs.get(r), rb.get(r), l));
      }
      out.set(r, utf8_substr(rs.get(r), rb.get(r), l));
    });
    return out.finish();
  }

  Vec round(const Node& n, const Rows& rows) {
    const Vec a = eval(*n.args[0], rows);
    if (n.args.size() == 1) {
      if (n.type == TypeId::kInt64) return a;
      return map1<double, double>(
          n, n.type, a, rows, [](double x, double& z) { return z = std::round(x), Err::kNone; });
    }
    const Vec d = eval(*n.args[1], rows);
    if (n.type == TypeId::kInt64) {
      return map2<int64_t, int64_t, int64_t>(n, n.type, a, d, rows, round_int);
    }
    return map2<double, int64_t, double>(n, n.type, a, d, rows, [](double x, int64_t y, double& z) {
      return z = round_digits(x, y), Err::kNone;
    });
  }

  Vec rand(const Node& n, const Rows& rows) {
    Out<double> out(TypeId::kDouble, rows);
    const Column* ids = ctx_.row_ids;
    if (ids && stored_as_int64(ids->type()) && ids->size() >= batch_.num_rows()) {
      const int64_t* id = ids->int64_data();
      const uint64_t seed = ctx_.seed;
      rows.each(
          [&](size_t r) { out.set(r, rand_at(seed, static_cast<uint64_t>(id[r]), n.rand_site)); });
    } else {
      const uint64_t base = splitmix64(ctx_.seed);
      rows.each([&](size_t r) {
        out.set(r, unit_double(splitmix64(base + ctx_.rng_state++ * 0x9E3779B97F4A7C15ULL)));
      });
    }
    return out.finish();
  }

  const Batch& batch_;
  EvalContext& ctx_;
};

}  // namespace

void fold_constants(Node& root) {
  if (root.constant && root.kind != NodeKind::kLiteral && !root.folded) {
    static const SchemaPtr kNoFields = make_schema({});
    const Batch one_row(kNoFields, {}, 1);
    EvalContext ctx;
    ColumnPtr value = evaluate(root, one_row, ctx);
    if (ctx.data_errors == 0) {
      root.folded = std::move(value);
      return;
    }
  }
  for (auto& arg : root.args) fold_constants(*arg);
}

void set_fast_paths(bool enabled) { t_fast_paths = enabled; }
bool fast_paths() { return t_fast_paths; }

ColumnPtr evaluate(const Node& root, const Batch& batch, EvalContext& ctx) {
  const Selection* sel = batch.selection();
  const Rows rows{sel ? sel->data() : nullptr, batch.active_rows(), batch.num_rows(), nullptr};
  ColumnPtr result;  // declared before `scope`: still held when the scope recycles
  const ScratchScope scope;
  Evaluator ev(batch, ctx);
  {
    const Vec v = ev.eval(root, rows);
    if (v.scalar) {
      result = Column::constant(v.col->value_at(0), batch.num_rows());
    } else if (v.owned) {
      result = v.owned;
    } else if (ColumnPtr made = scratch_owner(v.col)) {
      result = std::move(made);
    } else {
      // A field of the batch, returned as is.
      for (const ColumnPtr& c : batch.columns()) {
        if (c.get() == v.col) result = c;
      }
      if (!result) throw std::logic_error("expr: result column has no owner");
    }
  }
  return result;
}

}  // namespace df::expr::internal

namespace df::expr {

namespace {

// Adds the rows of `rows` (ascending physical indexes of `batch`) whose
// evaluation fails to `out`, splitting while ctx cannot keep every error.
void collect_failed_rows(const std::vector<const CompiledExpr*>& exprs, const Batch& batch,
                         const Selection& rows, std::vector<FailedRow>& out) {
  EvalContext ctx;
  const BatchPtr part = batch.with_selection(std::make_shared<const Selection>(rows));
  for (const CompiledExpr* e : exprs) e->evaluate(*part, ctx);
  if (ctx.data_errors == 0) return;
  if (ctx.data_errors > ctx.errors.size() && rows.size() > 1) {
    const auto mid = rows.begin() + static_cast<std::ptrdiff_t>(rows.size() / 2);
    collect_failed_rows(exprs, batch, Selection(rows.begin(), mid), out);
    collect_failed_rows(exprs, batch, Selection(mid, rows.end()), out);
    return;
  }
  for (auto& e : ctx.errors) out.push_back({e.row, std::move(e.message)});
}

}  // namespace

std::vector<FailedRow> failed_rows(const std::vector<const CompiledExpr*>& exprs,
                                   const Batch& batch, EvalContext& ctx) {
  std::vector<FailedRow> out;
  if (ctx.data_errors == 0) return out;
  if (ctx.data_errors <= ctx.errors.size()) {
    for (auto& e : ctx.errors) out.push_back({e.row, std::move(e.message)});
  } else {
    Selection rows;
    rows.reserve(batch.active_rows());
    batch.for_each_row([&](size_t r) { rows.push_back(static_cast<uint32_t>(r)); });
    collect_failed_rows(exprs, batch, rows, out);
  }
  ctx.clear_errors();
  // One entry per row, its first error first (stable: errors come in
  // evaluation order).
  std::stable_sort(out.begin(), out.end(),
                   [](const FailedRow& a, const FailedRow& b) { return a.row < b.row; });
  out.erase(std::unique(out.begin(), out.end(),
                        [](const FailedRow& a, const FailedRow& b) { return a.row == b.row; }),
            out.end());
  return out;
}

std::string row_to_json(const Batch& batch, size_t row) {
  std::string out = "{";
  const Schema& schema = *batch.schema();
  for (size_t i = 0; i < batch.num_columns(); ++i) {
    if (i > 0) out += ", ";
    append_json_string(schema.field(i).name, out);
    out += ": ";
    const Column& col = *batch.column(i);
    if (col.is_null(row)) {
      out += "null";
      continue;
    }
    const Value v = col.value_at(row);
    switch (v.type()) {
      case TypeId::kString:
      case TypeId::kTimestamp:
        append_json_string(v.to_string(), out);
        break;
      case TypeId::kDouble:
        if (std::isfinite(v.as_double())) {
          out += v.to_string();
        } else {
          out += "null";
        }
        break;
      default:
        out += v.to_string();
        break;
    }
  }
  out += "}";
  return out;
}

}  // namespace df::expr
