#include "connectors/nexmark_source.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <optional>
#include <variant>

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

// Appends events of one table to column builders, one per schema field.
class TableBatchBuilder {
 public:
  TableBatchBuilder(const NexmarkSourceConfig& cfg, size_t reserve) : cfg_(cfg) {
    for (const Field& f : cfg.schema->fields()) builders_.emplace_back(f.type, reserve);
  }
  void append(const nexmark::NexmarkGenerator& gen, uint64_t n) {
    size_t c = 0;
    auto num = [&](int64_t v) { builders_[c++].append_int64(v); };
    auto str = [&](std::string_view v) { builders_[c++].append_string(v); };
    switch (cfg_.table) {
      case EventKind::kPerson:
        gen.person(n, person_);
        num(person_.id), str(person_.name), str(person_.email_address);
        str(person_.credit_card), str(person_.city), str(person_.state);
        num(person_.date_time), str(person_.extra);
        break;
      case EventKind::kAuction:
        gen.auction(n, auction_);
        num(auction_.id), str(auction_.item_name), str(auction_.description);
        num(auction_.initial_bid), num(auction_.reserve), num(auction_.date_time);
        num(auction_.expires), num(auction_.seller), num(auction_.category);
        str(auction_.extra);
        break;
      case EventKind::kBid:
        gen.bid(n, bid_);
        num(bid_.auction), num(bid_.bidder), num(bid_.price), str(bid_.channel);
        str(bid_.url), num(bid_.date_time), str(bid_.extra);
        break;
    }
    ++rows_;
  }
  size_t rows() const { return rows_; }
  BatchPtr finish() {
    std::vector<ColumnPtr> cols;
    cols.reserve(builders_.size());
    for (auto& b : builders_) cols.push_back(b.finish());
    return Batch::make(cfg_.schema, std::move(cols), rows_);
  }

 private:
  const NexmarkSourceConfig& cfg_;
  std::vector<ColumnBuilder> builders_;
  size_t rows_ = 0;
  nexmark::Person person_;  // reused: their strings keep their capacity
  nexmark::Auction auction_;
  nexmark::Bid bid_;
};

class NexmarkSource final : public runtime::SourceOperator {
 public:
  NexmarkSource(std::shared_ptr<const NexmarkSourceConfig> cfg, int subtask, int parallelism)
      : cfg_(std::move(cfg)),
        gen_(cfg_->generator),
        seq_({"next_event", "an event", "a nexmark source", "nexmark"}, cfg_->events, cfg_->rate,
             subtask, parallelism) {}

  Status open(runtime::OperatorContext& ctx) override {
    ctx_ = &ctx;
    batch_size_ = std::max<size_t>(1, ctx.batch_size());
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
    TableBatchBuilder batch(*cfg_, batch_size_);
    uint64_t visited = 0;
    while (visited < visit && batch.rows() < batch_size_) {
      const uint64_t n = seq_.number(visited);
      ++visited;
      if (nexmark::event_kind(n) == cfg_->table) batch.append(gen_, n);
    }
    seq_.advance(visited);
    if (batch.rows() > 0) out.emit(batch.finish());
    if (seq_.exhausted()) return runtime::SourceProgress::exhausted();
    return runtime::SourceProgress::more();
  }

 private:
  std::shared_ptr<const NexmarkSourceConfig> cfg_;
  const nexmark::NexmarkGenerator gen_;
  StridedSequence seq_;  // events of the whole stream this subtask visits
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
    return d;
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
