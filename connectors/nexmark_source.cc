#include "connectors/nexmark_source.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <optional>
#include <string_view>
#include <variant>
#include <vector>

#include "connectors/nexmark_generator.h"
#include "connectors/options.h"
#include "connectors/strided_sequence.h"
#include "engine/core/time.h"

namespace df::connectors {

namespace {

using nexmark::EventKind;

struct NexmarkSourceConfig {
  EventKind table = EventKind::kBid;
  std::string table_name;
  std::optional<uint64_t> events;  // nullopt = unbounded
  double rate = 0;                 // events/s over all subtasks; 0 = unlimited
  nexmark::NexmarkConfig generator;
  SchemaPtr schema;
  // The fields something downstream reads (PreparedNode::project); empty:
  // all. The string fields nothing reads come out null.
  runtime::FieldMask read;
};

SchemaPtr table_schema(EventKind table) {
  const TypeId i = TypeId::kInt64, s = TypeId::kString, t = TypeId::kTimestamp;
  switch (table) {
    case EventKind::kPerson:
      return make_schema({{"id", i},
                          {"name", s},
                          {"email_address", s},
                          {"credit_card", s},
                          {"city", s},
                          {"state", s},
                          {"date_time", t},
                          {"extra", s}});
    case EventKind::kAuction:
      return make_schema({{"id", i},
                          {"item_name", s},
                          {"description", s},
                          {"initial_bid", i},
                          {"reserve", i},
                          {"date_time", t},
                          {"expires", t},
                          {"seller", i},
                          {"category", i},
                          {"extra", s}});
    case EventKind::kBid:
      break;
  }
  return make_schema({{"auction", i},
                      {"bidder", i},
                      {"price", i},
                      {"channel", s},
                      {"url", s},
                      {"date_time", t},
                      {"extra", s}});
}

// Writes the events of one table into the columns of one batch, in
// table_schema's field order: the integer and timestamp fields straight into
// arrays of the batch's length (Column::make_for_overwrite, recycled batch
// after batch), the strings through one builder each. One per source subtask,
// reused for every batch, so the generator's scratch strings keep their
// capacity.
class TableBatchWriter {
 public:
  explicit TableBatchWriter(const NexmarkSourceConfig& cfg)
      : cfg_(cfg), ints_(cfg.schema->size()), strings_(cfg.schema->size()) {}

  // The events numbered `numbers`, all of this writer's table, as one batch.
  BatchPtr write(const nexmark::NexmarkGenerator& gen, const std::vector<uint64_t>& numbers) {
    const size_t rows = numbers.size();
    const std::vector<Field>& fields = cfg_.schema->fields();
    std::vector<ColumnPtr> cols(fields.size());
    for (size_t f = 0; f < fields.size(); ++f) {
      if (fields[f].type == TypeId::kString) {
        if (cfg_.read.empty() || cfg_.read[f]) {
          strings_[f].emplace(TypeId::kString, rows);
        } else {
          cols[f] = null_strings(rows);
        }
      } else {
        std::shared_ptr<Column> col = Column::make_for_overwrite(fields[f].type, rows);
        ints_[f] = col->mutable_int64_data();
        cols[f] = std::move(col);
      }
    }
    switch (cfg_.table) {
      case EventKind::kPerson:
        for (size_t r = 0; r < rows; ++r) {
          gen.person(numbers[r], person_);
          set(0, r, person_.id), str(1, person_.name), str(2, person_.email_address);
          str(3, person_.credit_card), str(4, person_.city), str(5, person_.state);
          set(6, r, person_.date_time), str(7, person_.extra);
        }
        break;
      case EventKind::kAuction:
        for (size_t r = 0; r < rows; ++r) {
          gen.auction(numbers[r], auction_);
          set(0, r, auction_.id), str(1, auction_.item_name), str(2, auction_.description);
          set(3, r, auction_.initial_bid), set(4, r, auction_.reserve);
          set(5, r, auction_.date_time), set(6, r, auction_.expires);
          set(7, r, auction_.seller), set(8, r, auction_.category), str(9, auction_.extra);
        }
        break;
      case EventKind::kBid:
        for (size_t r = 0; r < rows; ++r) {
          gen.bid(numbers[r], bid_);
          set(0, r, bid_.auction), set(1, r, bid_.bidder), set(2, r, bid_.price);
          str(3, bid_.channel), str(4, bid_.url), set(5, r, bid_.date_time);
          str(6, bid_.extra);
        }
        break;
    }
    for (size_t f = 0; f < fields.size(); ++f) {
      if (strings_[f]) {
        cols[f] = strings_[f]->finish();
        strings_[f].reset();
      }
    }
    return Batch::make(cfg_.schema, std::move(cols), rows);
  }

 private:
  void set(size_t field, size_t row, int64_t v) { ints_[field][row] = v; }
  void str(size_t field, std::string_view v) {
    if (strings_[field]) strings_[field]->append_string(v);
  }
  // A column of `rows` null strings, shared by the batches of that length.
  ColumnPtr null_strings(size_t rows) {
    if (!null_strings_ || null_strings_->size() != rows) {
      null_strings_ = Column::constant(Value::null(TypeId::kString), rows);
    }
    return null_strings_;
  }

  const NexmarkSourceConfig& cfg_;
  // Per field, the one being written: the array of an integer or timestamp
  // field, the builder of a string field.
  std::vector<int64_t*> ints_;
  std::vector<std::optional<ColumnBuilder>> strings_;  // unset: not read
  ColumnPtr null_strings_;
  nexmark::Person person_;
  nexmark::Auction auction_;
  nexmark::Bid bid_;
};

class NexmarkSource final : public runtime::SourceOperator {
 public:
  NexmarkSource(std::shared_ptr<const NexmarkSourceConfig> cfg, int subtask, int parallelism)
      : cfg_(std::move(cfg)),
        gen_(cfg_->generator),
        seq_({"next_event", "an event", "a nexmark source", "nexmark"}, cfg_->events, cfg_->rate,
             subtask, parallelism),
        writer_(*cfg_) {}

  Status open(runtime::OperatorContext& ctx) override {
    ctx_ = &ctx;
    batch_size_ = std::max<size_t>(1, ctx.batch_size());
    numbers_.reserve(batch_size_);
    return seq_.open(ctx);
  }

  // Meta: {"next_event": n, "parallelism": N}; events depend only on (seed, n).
  Status snapshot(runtime::SnapshotContext& ctx) override {
    seq_.snapshot(ctx);
    return Status::OK();
  }

  Result<runtime::SourceProgress> produce(runtime::Output& out) override {
    if (ctx_->stop_requested() || seq_.exhausted()) return runtime::SourceProgress::exhausted();
    // Visits at most this many events of the stream in this call: enough
    // for about one batch of the table (1 in 50 events is a person).
    const auto allowed = seq_.allow(batch_size_ * (cfg_->table == EventKind::kBid ? 2 : 50));
    if (const auto* at = std::get_if<StridedSequence::Clock::time_point>(&allowed)) {
      return runtime::SourceProgress::wait_until(*at);
    }
    const uint64_t visit = std::get<uint64_t>(allowed);
    numbers_.clear();
    uint64_t visited = 0;
    while (visited < visit && numbers_.size() < batch_size_) {
      const uint64_t n = seq_.number(visited);
      ++visited;
      if (nexmark::event_kind(n) == cfg_->table) numbers_.push_back(n);
    }
    seq_.advance(visited);
    if (!numbers_.empty()) out.emit(writer_.write(gen_, numbers_));
    if (seq_.exhausted()) return runtime::SourceProgress::exhausted();
    return runtime::SourceProgress::more();
  }

 private:
  std::shared_ptr<const NexmarkSourceConfig> cfg_;
  const nexmark::NexmarkGenerator gen_;
  StridedSequence seq_;  // events of the whole stream this subtask visits
  TableBatchWriter writer_;
  std::vector<uint64_t> numbers_;  // the events of the next batch (its table's only)
  runtime::OperatorContext* ctx_ = nullptr;
  size_t batch_size_ = 1024;
};

class PreparedNexmark final : public runtime::PreparedNode {
 public:
  explicit PreparedNexmark(std::shared_ptr<const NexmarkSourceConfig> cfg) : cfg_(std::move(cfg)) {}
  SchemaPtr output_schema() const override { return cfg_->schema; }
  std::unique_ptr<runtime::SourceOperator> make_source(int subtask,
                                                       int parallelism) const override {
    return std::make_unique<NexmarkSource>(cfg_, subtask, std::max(1, parallelism));
  }
  std::string describe() const override {
    std::string d = "nexmark " + cfg_->table_name + "s of ";
    d += cfg_->events ? std::to_string(*cfg_->events) + " events" : "an unbounded stream";
    if (cfg_->rate > 0)
      d += " at " + std::to_string(static_cast<uint64_t>(cfg_->rate)) + " events/s";
    d += ", event time " + std::to_string(cfg_->generator.event_rate) + " events/s from " +
         format_timestamp(cfg_->generator.base_time_ms) + ", seed " +
         std::to_string(cfg_->generator.seed);
    d += runtime::describe_fields_read(*cfg_->schema, cfg_->read);
    return d;
  }
  // Skips the string columns nothing reads: they are most of a row's bytes.
  runtime::PreparedNodePtr project(const runtime::FieldMask& read) const override {
    bool skips_a_string = false;
    for (size_t f = 0; f < read.size(); ++f) {
      skips_a_string =
          skips_a_string || (!read[f] && cfg_->schema->field(f).type == TypeId::kString);
    }
    if (!skips_a_string || read.size() != cfg_->schema->size()) return nullptr;
    auto cfg = std::make_shared<NexmarkSourceConfig>(*cfg_);
    cfg->read = read;
    return std::make_shared<PreparedNexmark>(std::move(cfg));
  }

 private:
  std::shared_ptr<const NexmarkSourceConfig> cfg_;
};

}  // namespace

runtime::PreparedNodePtr NexmarkSourceFactory::prepare(const runtime::NodeSpec& spec,
                                                       const std::vector<SchemaPtr>& inputs,
                                                       OptionReader& opts) const {
  (void)spec;
  (void)inputs;
  size_t errors_before = opts.diags().size();
  auto cfg = std::make_shared<NexmarkSourceConfig>();
  if (auto table = opts.string("table", /*required=*/true)) {
    cfg->table_name = *table;
    if (*table == "person") {
      cfg->table = EventKind::kPerson;
    } else if (*table == "auction") {
      cfg->table = EventKind::kAuction;
    } else if (*table == "bid") {
      cfg->table = EventKind::kBid;
    } else {
      report_option(opts, "table", "must be person, auction or bid, got '" + *table + "'");
    }
  }
  if (auto events = opts.int64("events")) {
    if (*events < 0) {
      report_option(opts, "events", "must not be negative");
    } else {
      cfg->events = static_cast<uint64_t>(*events);
    }
  }
  if (auto rate = opts.float64("rate")) {
    if (!(*rate >= 0) || !std::isfinite(*rate)) {
      report_option(opts, "rate", "must be a number of events per second >= 0");
    } else {
      cfg->rate = *rate;
    }
  }
  cfg->generator.event_rate =
      cfg->rate >= 1 ? static_cast<uint64_t>(cfg->rate) : nexmark::kDefaultEventRate;
  if (auto event_rate = opts.int64("event_rate")) {
    if (*event_rate <= 0) {
      report_option(opts, "event_rate", "must be a number of events per second > 0");
    } else {
      cfg->generator.event_rate = static_cast<uint64_t>(*event_rate);
    }
  }
  if (auto seed = opts.int64("seed")) cfg->generator.seed = static_cast<uint64_t>(*seed);
  if (auto start = opts.string("start_time")) {
    auto ms = parse_timestamp(*start);
    if (!ms.ok()) {
      report_option(opts, "start_time",
                    "expected a timestamp such as 2025-01-01T00:00:00Z, got '" + *start + "'");
    } else {
      cfg->generator.base_time_ms = *ms;
    }
  }
  if (opts.diags().size() != errors_before) return nullptr;
  cfg->schema = table_schema(cfg->table);
  return std::make_shared<PreparedNexmark>(std::move(cfg));
}

}  // namespace df::connectors
