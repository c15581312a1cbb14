#include "connectors/generator_source.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <optional>
#include <variant>

#include "connectors/options.h"
#include "connectors/strided_sequence.h"
#include "operators/expr/expr.h"
#include "operators/expr/kernels.h"

namespace df::connectors {

namespace {
// splitmix64 finaliser over (seed, field): independent, well-mixed seeds.
uint64_t field_seed(uint64_t seed, size_t field) {
  uint64_t z = seed + 0x9e3779b97f4a7c15ULL * (static_cast<uint64_t>(field) + 1);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

}  // namespace

namespace {

struct GeneratorConfig {
  std::optional<uint64_t> count;  // nullopt = unbounded
  double rate = 0;                // rows/s over all subtasks; 0 = unlimited
  uint64_t seed = 0;
  SchemaPtr input_schema;  // {i: int64}
  SchemaPtr output_schema;
  std::vector<std::string> names;
  std::vector<expr::CompiledExprPtr> exprs;
  // The fields something downstream reads (PreparedNode::project); empty:
  // all. The others are not evaluated and come out null.
  runtime::FieldMask read;
};

class GeneratorSource final : public runtime::SourceOperator {
 public:
  GeneratorSource(std::shared_ptr<const GeneratorConfig> cfg, int subtask, int parallelism)
      : cfg_(std::move(cfg)),
        seq_({"next_row", "a row", "a generator", "generator"}, cfg_->count, cfg_->rate, subtask,
             parallelism) {}

  Status open(runtime::OperatorContext& ctx) override {
    ctx_ = &ctx;
    batch_size_ = std::max<size_t>(1, ctx.batch_size());
    return seq_.open(ctx);
  }

  // Meta: {"next_row": i, "parallelism": N}: the row number i of the next row
  // this subtask emits. Values depend only on (seed, i), so a resumed
  // generator emits exactly the rows an uninterrupted one would. The token
  // bucket starts afresh: a rate limit holds from the resume on.
  Status snapshot(runtime::SnapshotContext& ctx) override {
    seq_.snapshot(ctx);
    return Status::OK();
  }

  Result<runtime::SourceProgress> produce(runtime::Output& out) override {
    if (ctx_->stop_requested() || seq_.exhausted()) return runtime::SourceProgress::exhausted();
    const auto allowed = seq_.allow(batch_size_);
    if (const auto* at = std::get_if<StridedSequence::Clock::time_point>(&allowed)) {
      return runtime::SourceProgress::wait_until(*at);
    }
    const uint64_t n = std::get<uint64_t>(allowed);
    emit_rows(n, out);
    seq_.advance(n);
    if (seq_.exhausted()) return runtime::SourceProgress::exhausted();
    return runtime::SourceProgress::more();
  }

 private:
  void emit_rows(uint64_t n, runtime::Output& out) {
    auto ids = Column::make_for_overwrite(TypeId::kInt64, n);
    int64_t* data = ids->mutable_int64_data();
    // The vector kernel (AVX-512 where the CPU has it, checked at run time:
    // no target_clones, whose ifunc resolver crashes ThreadSanitizer).
    expr::internal::kernels::iota_int64(data, seq_.number(), seq_.stride(), n);
    ColumnPtr id_col = ids;
    Batch input(cfg_->input_schema, {id_col}, n);
    expr::EvalContext& ectx = eval_;
    ectx.row_ids = id_col.get();
    std::vector<ColumnPtr> cols;
    cols.reserve(cfg_->exprs.size());
    for (size_t f = 0; f < cfg_->exprs.size(); ++f) {
      if (!cfg_->read.empty() && !cfg_->read[f]) {
        cols.push_back(Column::constant(Value::null(cfg_->exprs[f]->result_type()), n));
        continue;
      }
      // Each field draws its own random stream: rand() in `price` must not
      // repeat rand() in `auction` for the same row.
      ectx.seed = field_seed(cfg_->seed, f);
      cols.push_back(cfg_->exprs[f]->evaluate(input, ectx));
      // A bad row yields null (SQL semantics); count and log it like any data error.
      for (const auto& e : ectx.errors) {
        ctx_->report_data_error("field '" + cfg_->names[f] +
                                "' at i=" + std::to_string(data[e.row]) + ": " + e.message);
      }
      for (uint64_t k = ectx.errors.size(); k < ectx.data_errors; ++k) {
        ctx_->report_data_error("field '" + cfg_->names[f] + "': more evaluation errors");
      }
      ectx.clear_errors();
    }
    ectx.row_ids = nullptr;
    out.emit(Batch::make(cfg_->output_schema, std::move(cols), n));
  }

  std::shared_ptr<const GeneratorConfig> cfg_;
  StridedSequence seq_;
  runtime::OperatorContext* ctx_ = nullptr;
  expr::EvalContext eval_;  // reused by every batch; errors cleared per field
  size_t batch_size_ = 1024;
};

class PreparedGenerator final : public runtime::PreparedNode {
 public:
  explicit PreparedGenerator(std::shared_ptr<const GeneratorConfig> cfg) : cfg_(std::move(cfg)) {}
  SchemaPtr output_schema() const override { return cfg_->output_schema; }
  std::unique_ptr<runtime::SourceOperator> make_source(int subtask,
                                                       int parallelism) const override {
    return std::make_unique<GeneratorSource>(cfg_, subtask, std::max(1, parallelism));
  }
  std::string describe() const override {
    std::string d = "generator ";
    d += cfg_->count ? std::to_string(*cfg_->count) + " rows" : "unbounded";
    if (cfg_->rate > 0) {
      std::string r = std::to_string(cfg_->rate);
      r.erase(r.find_last_not_of('0') + 1);
      if (!r.empty() && r.back() == '.') r.pop_back();
      d += " at " + r + " rows/s";
    }
    d += ", seed " + std::to_string(cfg_->seed);
    d += runtime::describe_fields_read(*cfg_->output_schema, cfg_->read);
    return d;
  }
  // Evaluates only the fields something reads.
  runtime::PreparedNodePtr project(const runtime::FieldMask& read) const override {
    if (read.size() != cfg_->exprs.size()) return nullptr;
    auto cfg = std::make_shared<GeneratorConfig>(*cfg_);
    cfg->read = read;
    return std::make_shared<PreparedGenerator>(std::move(cfg));
  }

 private:
  std::shared_ptr<const GeneratorConfig> cfg_;
};

}  // namespace

runtime::PreparedNodePtr GeneratorSourceFactory::prepare(const runtime::NodeSpec& spec,
                                                         const std::vector<SchemaPtr>& inputs,
                                                         OptionReader& opts) const {
  (void)spec;
  (void)inputs;
  size_t errors_before = opts.diags().size();
  auto cfg = std::make_shared<GeneratorConfig>();
  if (auto count = opts.int64("count")) {
    if (*count < 0) {
      report_option(opts, "count", "must not be negative");
    } else {
      cfg->count = static_cast<uint64_t>(*count);
    }
  }
  if (auto rate = opts.float64("rate")) {
    if (!(*rate >= 0) || !std::isfinite(*rate)) {
      report_option(opts, "rate", "must be a number of rows per second >= 0");
    } else {
      cfg->rate = *rate;
    }
  }
  if (auto seed = opts.int64("seed")) cfg->seed = static_cast<uint64_t>(*seed);

  cfg->input_schema = make_schema({Field{"i", TypeId::kInt64}});
  std::vector<Field> out_fields;
  if (const ConfigValue* fields = opts.require("fields")) {
    if (!fields->is_map() || fields->entries().empty()) {
      report_option(opts, "fields", "expected a map of field names to expressions");
    } else {
      for (const auto& [name, text] : fields->entries()) {
        if (!text.is_scalar()) {
          opts.diags().error(text.location(), opts.what() + " field '" + name +
                                                  "': expected an expression, got " +
                                                  std::string(text.kind_name()));
          continue;
        }
        auto compiled = expr::compile(text.scalar_text(), *cfg->input_schema, text.text_location());
        if (!compiled.ok()) {
          // compile() reports one located problem per line.
          std::string_view m = compiled.status().message();
          while (!m.empty()) {
            size_t nl = m.find('\n');
            opts.diags().error({}, std::string(m.substr(0, nl)) + " (in " + opts.what() +
                                       " field '" + name + "')");
            m = nl == std::string_view::npos ? std::string_view{} : m.substr(nl + 1);
          }
          continue;
        }
        out_fields.push_back(Field{name, (*compiled)->result_type()});
        cfg->names.push_back(name);
        cfg->exprs.push_back(std::move(compiled).value());
      }
    }
  }
  if (opts.diags().size() != errors_before) return nullptr;
  cfg->output_schema = make_schema(std::move(out_fields));
  return std::make_shared<PreparedGenerator>(std::move(cfg));
}

}  // namespace df::connectors
