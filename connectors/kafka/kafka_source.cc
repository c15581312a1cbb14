#include "connectors/kafka/kafka_source.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <chrono>
#include <compare>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "connectors/format/csv.h"
#include "connectors/format/json.h"
#include "connectors/options.h"
#include "engine/core/log.h"
#include "engine/runtime/physical_plan.h"

namespace df::connectors::kafka {

namespace {

using Clock = std::chrono::steady_clock;

constexpr TuningKey kSourceTuning[] = {
    {"fetch_min_bytes", "fetch.min.bytes"},
    {"fetch_max_wait_ms", "fetch.wait.max.ms"},
    // librdkafka's consumer has no request.timeout.ms; this is its per-request timeout.
    {"request_timeout_ms", "socket.timeout.ms"},
    {"session_timeout_ms", "session.timeout.ms"},
};

// librdkafka's consumer queue limits of one subtask, over all its
// partitions: its high-level consumer (also with `bounded`'s rd_kafka_assign)
// checks queued.max.messages.kbytes and queued.min.messages against the
// subtask's one consumer queue, which every assigned partition feeds; each
// broker has at most one fetch in flight, of at most fetch.max.bytes. The
// source's own budget (PrefetchBudget) takes messages out of that queue up to
// the same limits, so a subtask holds at most 2 x 16 MiB + brokers x
// kFetchMaxBytes (56 MiB on three brokers), however many partitions it reads.
// Why that much: when the source is paced by its downstream (a Kafka sink),
// what it holds must cover a fetch round trip at the downstream's rate, or
// the source idles between fetches (connectors/kafka/README.md has figures).
constexpr const char* kPrefetchKiB = "16384";
// librdkafka derives fetch.max.bytes from the budget (up to 50 MiB): capped
// here so the in-flight fetches do not multiply the budget by the brokers.
// At least message.max.bytes (librdkafka refuses less).
constexpr const char* kFetchMaxBytes = "8388608";
// Messages are counted too: for messages under ~330 bytes this binds before
// the bytes (50000 of bench/kafka.sh's ~200 bytes: about 10 MB).
constexpr const char* kPrefetchMessages = "50000";
// librdkafka 2.0.2 stops fetching a partition while the consumer queue is
// over queued.min.messages or queued.max.messages.kbytes and looks again only
// when its broker thread wakes for another reason (up to 1 s later; it has no
// back-off for this, so fetch.error.backoff.ms does not shorten it). Newer
// versions back off by fetch.queue.backoff.ms (1 s by default), set to this
// where it exists. The source's own budget (PrefetchBudget) keeps the queue
// below those limits, so normally neither applies.
constexpr const char* kQueueFullBackoffMs = "10";

// "fetch.queue.backoff.ms" where librdkafka has it, else nullptr.
const char* queue_backoff_property() {
  static const char* const name = [] {
    ConfPtr probe(rd_kafka_conf_new());
    char err[256];
    return rd_kafka_conf_set(probe.get(), "fetch.queue.backoff.ms", kQueueFullBackoffMs, err,
                             sizeof err) == RD_KAFKA_CONF_OK
               ? "fetch.queue.backoff.ms"
               : nullptr;
  }();
  return name;
}

// Set before the node's `properties`, which may override them. A node that
// sizes the queue itself gets librdkafka's fetch.max.bytes derived from it
// (at most the queue), unless it sets that too.
std::vector<std::pair<std::string, std::string>> source_defaults(
    const std::vector<std::pair<std::string, std::string>>& properties) {
  auto has = [&](std::string_view name) {
    return std::any_of(properties.begin(), properties.end(),
                       [&](const auto& p) { return p.first == name; });
  };
  std::vector<std::pair<std::string, std::string>> out = {
      {"queued.max.messages.kbytes", kPrefetchKiB},
      {"queued.min.messages", kPrefetchMessages},
      // Brokers up and consumer lag are refreshed on the statistics callback.
      {"statistics.interval.ms", std::string(kStatsIntervalMs)}};
  if (const char* backoff = queue_backoff_property())
    out.emplace_back(backoff, kQueueFullBackoffMs);
  if (!has("queued.max.messages.kbytes")) out.emplace_back("fetch.max.bytes", kFetchMaxBytes);
  return out;
}

// The source's own prefetch budget over all partitions of a subtask. It
// takes what the client fetched out of librdkafka's queue into its own
// buffer, pauses every partition once that buffer holds `high_bytes` or
// `high_messages`, and resumes them when it holds less than both `low_*`,
// waking the brokers' threads so they fetch at once (librdkafka 2.0.2 would
// fetch a resumed partition only when its broker thread wakes on its own, up
// to 1 s later). The high marks are librdkafka's queue limits
// (queued.max.messages.kbytes, queued.min.messages; `properties` may set
// them); the low marks a quarter of them, so a cycle moves three quarters of
// the budget and pause/resume does not flap. librdkafka's own limits then
// only bind while the source is not called (its queue fills between two
// produce() calls), and the next call pauses the partitions as above instead
// of leaving librdkafka waiting.
struct PrefetchBudget {
  size_t high_bytes = 0;
  size_t high_messages = 0;
  size_t low_bytes = 0;
  size_t low_messages = 0;
};

// From the client properties in force (the last value of a name wins, as in
// make_conf, which has checked them).
PrefetchBudget prefetch_budget(const std::vector<std::pair<std::string, std::string>>& properties) {
  auto last = [&](std::string_view name, std::string_view fallback) {
    std::string_view value = fallback;
    for (const auto& [key, v] : properties) {
      if (key == name) value = v;
    }
    size_t n = 0;
    std::from_chars(value.data(), value.data() + value.size(), n);
    return n;
  };
  PrefetchBudget b;
  b.high_bytes = std::max<size_t>(1, last("queued.max.messages.kbytes", kPrefetchKiB) * 1024);
  b.high_messages = std::max<size_t>(1, last("queued.min.messages", kPrefetchMessages));
  // At least 1: held_ < low must hold once it is empty.
  b.low_bytes = std::max<size_t>(1, b.high_bytes / 4);
  b.low_messages = std::max<size_t>(1, b.high_messages / 4);
  return b;
}

// Properties the source sets itself; `properties:` may not change them.
struct RefusedProperty {
  std::string_view name;
  std::string_view why;
};
constexpr RefusedProperty kRefused[] = {
    {"bootstrap.servers", "use the option 'brokers'"},
    {"metadata.broker.list", "use the option 'brokers'"},
    {"group.id", "use the option 'group_id'"},
    {"auto.offset.reset", "use the option 'start'"},
    {"enable.auto.commit", "offsets are committed after each completed checkpoint"},
    {"enable.auto.offset.store", "offsets are committed after each completed checkpoint"},
    {"enable.partition.eof", "the source relies on partition end events"},
};

// How long produce() waits for the queue's wake-up before looking again
// (idle partitions, end-offset answers, a missed event).
constexpr auto kPollInterval = std::chrono::milliseconds(100);
// produce() calls in a row that found the queue non-empty but got nothing
// from it before it waits for the event (or kPollInterval) after all.
constexpr int kMaxEmptyPolls = 8;
constexpr int kQueryTimeoutMs = 10000;
// How long wake_fetchers()' ListOffsets request may hold the I/O strand; the
// wake is its sending, the answer is not needed.
constexpr int kWakeTimeoutMs = 1000;
// Reasons KafkaSource pauses its partitions.
constexpr unsigned kBackpressurePause = 1;
constexpr unsigned kBudgetPause = 2;
constexpr size_t kMaxPendingSnapshots = 16;
constexpr auto kQueryRetry = std::chrono::seconds(1);
// How long close() may spend looking up the positions and ends its final lag
// needs (brokers down must not hold a stopping run up for long).
constexpr auto kFinalLagLookup = std::chrono::seconds(2);
// How long a closing source waits for its partitions to be revoked after it
// left the group (leave_group()).
constexpr auto kLeaveGroupTimeout = std::chrono::seconds(10);
// bounded: how long an unknown topic is retried before it fails the run (as
// librdkafka's topic.metadata.propagation.max.ms does for subscriptions).
constexpr auto kMissingTopicGrace = std::chrono::seconds(30);

enum class MessageFormat { kJson, kCsv, kRaw };
enum class MetaField { kTimestamp, kPartition, kOffset, kKey, kTopic };

struct MetaName {
  std::string_view option;
  MetaField field;
  TypeId type;
};
constexpr MetaName kMetaNames[] = {
    {"timestamp", MetaField::kTimestamp, TypeId::kTimestamp},
    {"partition", MetaField::kPartition, TypeId::kInt64},
    {"offset", MetaField::kOffset, TypeId::kInt64},
    {"key", MetaField::kKey, TypeId::kString},
    {"topic", MetaField::kTopic, TypeId::kString},
};

struct KafkaSourceConfig {
  std::string label;     // "kafka source 'in'"
  ClientOptions client;  // everything but client.id
  std::vector<std::string> topics;
  std::string group_id;
  bool start_latest = false;
  MessageFormat format = MessageFormat::kJson;
  CsvOptions csv;
  SchemaPtr value_schema;           // json/csv: `schema`; raw: the fixed raw schema
  std::vector<MetaField> metadata;  // columns after the value fields, in order
  SchemaPtr meta_schema;            // just those (nullptr: none)
  SchemaPtr output_schema;
  bool bounded = false;
  size_t max_poll_records = 0;  // 0: the batch size
  PrefetchBudget budget;
  // The group's rebalance protocol is COOPERATIVE (partition.assignment.
  // strategy cooperative-sticky, which librdkafka does not let mix with the
  // eager assignors), else EAGER. Known from the configuration because
  // rd_kafka_rebalance_protocol() can block forever in a rebalance callback
  // served by rd_kafka_consumer_close() (librdkafka #4041).
  bool cooperative = false;
  std::string pipeline_name;
};

struct TopicPartition {
  std::string topic;
  int32_t partition = 0;
  auto operator<=>(const TopicPartition&) const = default;
  std::string to_string() const { return topic + "/" + std::to_string(partition); }
};

struct Position {
  int64_t offset = 0;  // the next offset to read
  int64_t max_event_time = INT64_MIN;
};

// Meta of one snapshot: {"group_id", "partitions": [{topic, partition,
// offset, max_event_time?}]}.
std::string positions_meta(const std::string& group,
                           const std::vector<std::pair<TopicPartition, Position>>& positions) {
  nlohmann::json parts = nlohmann::json::array();
  for (const auto& [tp, pos] : positions) {
    nlohmann::json e = {{"topic", tp.topic}, {"partition", tp.partition}, {"offset", pos.offset}};
    if (pos.max_event_time != INT64_MIN) e["max_event_time"] = pos.max_event_time;
    parts.push_back(std::move(e));
  }
  return nlohmann::json{{"group_id", group}, {"partitions", std::move(parts)}}.dump();
}

// Keeps the smaller position: a partition that moved between subtasks while
// a checkpoint was taken may be recorded twice; repeating rows beats losing.
void merge_position(std::map<TopicPartition, Position>& into, const TopicPartition& tp,
                    Position pos) {
  auto [it, fresh] = into.emplace(tp, pos);
  if (fresh) return;
  it->second.offset = std::min(it->second.offset, pos.offset);
  it->second.max_event_time = std::min(it->second.max_event_time, pos.max_event_time);
}

// What the subtasks of one source node share within one run of this process:
// the positions of partitions no subtask holds (restored and not yet
// assigned, or revoked and not yet re-assigned). Thread-safe.
class SharedRun {
 public:
  // False when `subtask` was made already: its run is over and a new one starts.
  bool add_subtask(int subtask) {
    std::lock_guard lock(mu_);
    return made_.insert(subtask).second;
  }

  // Reads the restored checkpoint's positions once per run; every subtask
  // gets the same outcome.
  Status restore(const std::vector<std::pair<int, const std::string*>>& metas) {
    std::lock_guard lock(mu_);
    if (restored_) return restore_status_;
    restored_ = true;
    for (const auto& [subtask, text] : metas) {
      try {
        nlohmann::json j = nlohmann::json::parse(*text);
        for (const auto& e : j.at("partitions")) {
          TopicPartition tp{e.at("topic").get<std::string>(), e.at("partition").get<int32_t>()};
          Position pos{e.at("offset").get<int64_t>(), e.value("max_event_time", INT64_MIN)};
          merge_position(unowned_, tp, pos);
        }
      } catch (const nlohmann::json::exception& e) {
        restore_status_ = Status::invalid("bad checkpoint meta of subtask " +
                                          std::to_string(subtask) + ": " + e.what());
        unowned_.clear();
        break;
      }
    }
    return restore_status_;
  }

  // A subtask took `tp` over: its position if this run knows one.
  std::optional<Position> claim(const TopicPartition& tp) {
    std::lock_guard lock(mu_);
    auto it = unowned_.find(tp);
    if (it == unowned_.end()) return std::nullopt;
    Position pos = it->second;
    unowned_.erase(it);
    return pos;
  }
  void release(const TopicPartition& tp, Position pos) {
    std::lock_guard lock(mu_);
    unowned_[tp] = pos;
  }
  std::vector<std::pair<TopicPartition, Position>> unowned() const {
    std::lock_guard lock(mu_);
    return {unowned_.begin(), unowned_.end()};
  }

 private:
  mutable std::mutex mu_;
  std::set<int> made_;
  bool restored_ = false;
  Status restore_status_;
  std::map<TopicPartition, Position> unowned_;
};

// Logs a recurring problem at most once per interval, doubling the interval
// (1 s .. 60 s) while it lasts; healthy() starts over.
class BackoffLog {
 public:
  void warn(const std::string& message) {
    const Clock::time_point now = Clock::now();
    if (now < next_) {
      ++suppressed_;
      return;
    }
    std::string line = message;
    if (suppressed_ > 0)
      line += " (" + std::to_string(suppressed_) + " similar messages suppressed)";
    log_warn("kafka-source", line);
    suppressed_ = 0;
    next_ = now + interval_;
    interval_ = std::min<Clock::duration>(interval_ * 2, std::chrono::seconds(60));
  }
  void healthy() {
    interval_ = std::chrono::seconds(1);
    next_ = {};
  }

 private:
  Clock::duration interval_ = std::chrono::seconds(1);
  Clock::time_point next_{};
  uint64_t suppressed_ = 0;
};

class KafkaSource;

// The opaque of the client's callbacks. Outlives the source: the consumer is
// closed and destroyed on the I/O pool after close(), and its callbacks may
// fire until then. `source` is set while the source serves the callbacks on
// its task thread; afterwards callbacks only do the minimum (unassign).
struct ClientCallbacks {
  std::atomic<KafkaSource*> source{nullptr};
  std::string label;
  bool cooperative = false;  // KafkaSourceConfig::cooperative; set before the client exists

  // End offsets of `bounded` queried on the I/O pool.
  struct EndOffset {
    TopicPartition tp;
    int64_t end = -1;  // -1: the query failed
    std::string error;
  };

  void wake() {
    std::lock_guard lock(mu);
    if (ctx) ctx->wake();
  }
  void attach(runtime::OperatorContext* c) {
    std::lock_guard lock(mu);
    ctx = c;
  }
  void add_ends(std::vector<EndOffset> found) {
    std::lock_guard lock(mu);
    ends.insert(ends.end(), std::make_move_iterator(found.begin()),
                std::make_move_iterator(found.end()));
  }
  std::vector<EndOffset> take_ends() {
    std::lock_guard lock(mu);
    return std::exchange(ends, {});
  }

  // bounded: the partitions of the subtask's static assignment, read from
  // the topics' metadata on the I/O pool (or why that failed).
  struct StaticAssignment {
    std::vector<TopicPartition> parts;
    Status error;  // not OK: the metadata request failed
  };
  void set_assignment(StaticAssignment found) {
    std::lock_guard lock(mu);
    assignment = std::move(found);
  }
  std::optional<StaticAssignment> take_assignment() {
    std::lock_guard lock(mu);
    return std::exchange(assignment, std::nullopt);
  }

  // One partition of the subtask's assignment per leader broker (from the
  // topics' metadata, read on the I/O pool after each assignment): a
  // ListOffsets request for them wakes each of those brokers' threads.
  void set_wake_parts(std::vector<TopicPartition> found) {
    std::lock_guard lock(mu);
    wake_parts_ = std::move(found);
  }
  std::vector<TopicPartition> wake_parts() {
    std::lock_guard lock(mu);
    return wake_parts_;
  }
  // A wake is queued on the I/O pool and has not started yet.
  std::atomic<bool> wake_queued{false};

 private:
  std::mutex mu;
  runtime::OperatorContext* ctx = nullptr;     // guarded by mu
  std::vector<EndOffset> ends;                 // guarded by mu
  std::optional<StaticAssignment> assignment;  // guarded by mu
  std::vector<TopicPartition> wake_parts_;     // guarded by mu
};

// The consumer and its queue; the queue goes first.
struct Consumer {
  HandlePtr rk;
  QueuePtr queue;
  ~Consumer() { queue.reset(); }
};

bool fails_run(const Status& s) {
  return s.code() == StatusCode::kNotFound || s.code() == StatusCode::kInvalidArgument;
}

class KafkaSource final : public runtime::SourceOperator {
 public:
  KafkaSource(std::shared_ptr<const KafkaSourceConfig> cfg, std::shared_ptr<SharedRun> run,
              int subtask, int parallelism)
      : cfg_(std::move(cfg)),
        run_(std::move(run)),
        subtask_(subtask),
        parallelism_(std::max(1, parallelism)),
        values_(cfg_->value_schema) {
    if (cfg_->meta_schema) meta_.emplace(cfg_->meta_schema);
    if (cfg_->format == MessageFormat::kJson) json_.emplace(cfg_->value_schema);
    if (cfg_->format == MessageFormat::kCsv) {
      csv_.emplace(cfg_->value_schema, cfg_->csv);
      csv_parser_.emplace(cfg_->csv.delimiter);
    }
    label_ = cfg_->label + " subtask " + std::to_string(subtask_);
    callbacks_->label = label_;
    callbacks_->cooperative = cfg_->cooperative;
  }

  ~KafkaSource() override { release_consumer(); }

  bool emits_watermarks() const override { return true; }

  Status open(runtime::OperatorContext& ctx) override {
    ctx_ = &ctx;
    event_time_ = ctx.event_time();
    max_poll_ =
        cfg_->max_poll_records > 0 ? cfg_->max_poll_records : std::max<size_t>(1, ctx.batch_size());
    messages_.resize(max_poll_);
    Status restored = run_->restore(ctx.restored_node_metas());
    if (!restored.ok()) return restored.with_context(label_ + ": cannot resume");

    ClientOptions client = cfg_->client;
    client.properties.emplace_back("client.id", "dataflow-" + cfg_->pipeline_name + "-" +
                                                    ctx.node_id() + "-" + std::to_string(subtask_));
    DF_ASSIGN_OR_RETURN(ConfPtr conf, make_conf(client));
    rd_kafka_conf_set_opaque(conf.get(), callbacks_.get());
    rd_kafka_conf_set_rebalance_cb(conf.get(), &KafkaSource::on_rebalance);
    rd_kafka_conf_set_error_cb(conf.get(), &KafkaSource::on_error);
    rd_kafka_conf_set_offset_commit_cb(conf.get(), &KafkaSource::on_commit);
    rd_kafka_conf_set_stats_cb(conf.get(), &KafkaSource::on_stats);
    DF_ASSIGN_OR_RETURN(HandlePtr rk, make_handle(RD_KAFKA_CONSUMER, std::move(conf), label_));
    consumer_ = std::make_shared<Consumer>();
    consumer_->rk = std::move(rk);
    rd_kafka_t* handle = consumer_->rk.get();
    // Every event (errors, rebalances, commits) comes out of the one queue
    // produce() reads, so the callbacks run on the task thread.
    rd_kafka_poll_set_consumer(handle);
    consumer_->queue.reset(rd_kafka_queue_get_consumer(handle));
    callbacks_->source.store(this);
    callbacks_->attach(&ctx);
    rd_kafka_queue_cb_event_enable(consumer_->queue.get(), &KafkaSource::on_queue_event,
                                   callbacks_.get());

    if (cfg_->bounded) {
      // No group membership: a static assignment, so no rebalance can move
      // partitions (or end the run early) while it reads to the ends.
      query_assignment();
      return Status::OK();
    }
    PartitionListPtr topics(
        rd_kafka_topic_partition_list_new(static_cast<int>(cfg_->topics.size())));
    for (const std::string& t : cfg_->topics) {
      rd_kafka_topic_partition_list_add(topics.get(), t.c_str(), RD_KAFKA_PARTITION_UA);
    }
    if (rd_kafka_resp_err_t err = rd_kafka_subscribe(handle, topics.get())) {
      return kafka_status(err, label_ + ": cannot subscribe");
    }
    return Status::OK();
  }

  Result<runtime::SourceProgress> produce(runtime::Output& out) override {
    if (!error_.ok()) return error_;
    if (ctx_->stop_requested()) return runtime::SourceProgress::exhausted();
    now_ = Clock::now();
    if (cfg_->bounded) {
      if (!assigned_) collect_assignment();
      if (!error_.ok()) return error_;
      collect_ends();
    }
    if (Status s = drain(); !s.ok()) return s;
    if (!error_.ok()) return error_;
    // Over the budget: stop fetching before librdkafka's queue fills (see
    // PrefetchBudget); what was drained is kept.
    if (!(pause_reasons_ & kBudgetPause) && over_budget()) set_paused(kBudgetPause, true);
    const size_t n = std::min(max_poll_, held_.size());
    for (size_t i = 0; i < n; ++i) {
      rd_kafka_message_t* m = held_.front();
      held_.pop_front();
      held_bytes_ -= held_size(m);
      handle(m);
      rd_kafka_message_destroy(m);
    }
    if (!error_.ok()) return error_;
    emit(out);
    advance_watermark(out);
    if ((pause_reasons_ & kBudgetPause) && under_low_mark()) set_paused(kBudgetPause, false);
    if (cfg_->bounded && bounded_done()) return runtime::SourceProgress::exhausted();
    // While messages flow, look again at once: the queue's wake-up event
    // fires only when it turns non-empty, and the client refills the queue
    // while produce() runs, so waiting for the event here idled the source
    // for up to kPollInterval per batch (it moved 0.17 of what kcat did).
    if (n > 0 || !held_.empty()) {
      empty_polls_ = 0;
      return runtime::SourceProgress::more();
    }
    // The queue's event fires only when it turns non-empty; the batch call
    // may return nothing although it holds messages (it returns early after
    // serving a callback), and waiting then would miss them until
    // kPollInterval. Look again, a bounded number of times.
    if (rd_kafka_queue_length(consumer_->queue.get()) > 0 && ++empty_polls_ <= kMaxEmptyPolls) {
      return runtime::SourceProgress::more();
    }
    empty_polls_ = 0;
    return runtime::SourceProgress::wait_until(now_ + kPollInterval);
  }

  Status snapshot(runtime::SnapshotContext& ctx) override {
    std::vector<std::pair<TopicPartition, Position>> owned;
    for (const PartitionState& p : parts_) {
      if (p.next >= 0) owned.emplace_back(p.tp, Position{p.next, p.max_event_time});
    }
    std::vector<std::pair<TopicPartition, Position>> all = owned;
    for (auto& entry : run_->unowned()) all.push_back(std::move(entry));
    ctx.set_meta(positions_meta(cfg_->group_id, all));
    snapshots_[ctx.checkpoint_id()] = std::move(owned);
    // Checkpoints that never complete (failed) must not pile up.
    while (snapshots_.size() > kMaxPendingSnapshots) snapshots_.erase(snapshots_.begin());
    return Status::OK();
  }

  // Commits what snapshot `id` recorded, for partitions still held; lag tools
  // see it, recovery never prefers it over a checkpoint.
  Status checkpoint_complete(uint64_t id) override {
    auto last = snapshots_.upper_bound(id);
    if (last == snapshots_.begin()) return Status::OK();
    std::vector<std::pair<TopicPartition, Position>> positions = std::move(std::prev(last)->second);
    snapshots_.erase(snapshots_.begin(), last);
    if (!consumer_) return Status::OK();
    PartitionListPtr list(rd_kafka_topic_partition_list_new(static_cast<int>(positions.size())));
    for (const auto& [tp, pos] : positions) {
      if (!find(tp)) continue;
      rd_kafka_topic_partition_list_add(list.get(), tp.topic.c_str(), tp.partition)->offset =
          pos.offset;
    }
    if (list->cnt == 0) return Status::OK();
    if (rd_kafka_resp_err_t err = rd_kafka_commit(consumer_->rk.get(), list.get(), 1)) {
      log_warn("kafka-source", label_ + ": cannot commit the offsets of checkpoint " +
                                   std::to_string(id) + ": " + rd_kafka_err2str(err));
    }
    return Status::OK();
  }

  void on_backpressure(bool blocked) override { set_paused(kBackpressurePause, blocked); }

  Status close() override {
    if (ctx_) {
      // The final lag stays in the run's metrics (dataflow exec's summary
      // prints it); they end with the run.
      const std::vector<std::optional<int64_t>> lags = final_lags();
      for (size_t i = 0; i < parts_.size(); ++i) {
        ctx_->report_consumer_lag(parts_[i].tp.topic, parts_[i].tp.partition, lags[i]);
      }
      ctx_->report_brokers(-1, {});
    }
    if (budget_pauses_ > 0) {
      log_info("kafka-source",
               label_ + ": the prefetch budget (" + std::to_string(cfg_->budget.high_messages) +
                   " messages, " + std::to_string(cfg_->budget.high_bytes >> 10) +
                   " KiB) paused the partitions " + std::to_string(budget_pauses_) + " times");
    }
    release_consumer();
    return Status::OK();
  }

  // --- Client callbacks; on the task thread while attached. ---

  static void on_queue_event(rd_kafka_t*, void* opaque) {
    static_cast<ClientCallbacks*>(opaque)->wake();
  }

  static void on_rebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                           rd_kafka_topic_partition_list_t* parts, void* opaque) {
    auto* cb = static_cast<ClientCallbacks*>(opaque);
    if (KafkaSource* source = cb->source.load()) {
      source->rebalance(rk, err, parts);
      return;
    }
    // Closing: give everything up. (A cooperative assignment must be taken
    // before it can be revoked; the group's leave revokes it next.)
    if (cb->cooperative) {
      if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
        kafka_status(rd_kafka_incremental_unassign(rk, parts), "").ignore();
      } else if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        kafka_status(rd_kafka_incremental_assign(rk, parts), "").ignore();
      }
    } else {
      rd_kafka_assign(rk, nullptr);
    }
  }

  static void on_error(rd_kafka_t* rk, int err, const char* reason, void* opaque) {
    auto* cb = static_cast<ClientCallbacks*>(opaque);
    if (KafkaSource* source = cb->source.load()) {
      source->client_error(rk, static_cast<rd_kafka_resp_err_t>(err), reason);
    } else {
      log_debug("kafka-source", cb->label + ": " + reason);
    }
  }

  static int on_stats(rd_kafka_t* rk, char* json, size_t len, void* opaque) {
    if (KafkaSource* source = static_cast<ClientCallbacks*>(opaque)->source.load()) {
      source->stats(rk, std::string_view(json, len));
    }
    return 0;  // librdkafka frees `json`
  }

  static void on_commit(rd_kafka_t*, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t*,
                        void* opaque) {
    if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET) {
      log_warn("kafka-source", static_cast<ClientCallbacks*>(opaque)->label +
                                   ": committing offsets failed: " + rd_kafka_err2str(err));
    }
  }

 private:
  struct PartitionState {
    TopicPartition tp;
    rd_kafka_topic_t* rkt = nullptr;  // the client's handle for tp.topic, once a message came
    int64_t next = -1;                // next offset to emit; -1: not known yet
    int64_t end = -1;                 // bounded: the end queried at assignment; -1: not yet
    bool done = false;                // bounded: everything up to `end` was emitted
    int64_t max_event_time = INT64_MIN;
    Clock::time_point last_active{};  // assignment or last message, for idleness
  };

  PartitionState* find(const TopicPartition& tp) {
    for (PartitionState& p : parts_) {
      if (p.tp == tp) return &p;
    }
    return nullptr;
  }
  PartitionState* find(const rd_kafka_message_t* m) {
    if (last_ < parts_.size() && parts_[last_].rkt == m->rkt &&
        parts_[last_].tp.partition == m->partition) {
      return &parts_[last_];
    }
    const char* topic = rd_kafka_topic_name(m->rkt);
    for (size_t i = 0; i < parts_.size(); ++i) {
      PartitionState& p = parts_[i];
      if (p.tp.partition == m->partition && p.tp.topic == topic) {
        p.rkt = m->rkt;
        last_ = i;
        return &p;
      }
    }
    return nullptr;
  }

  // Takes the partitions of `list` (a group assignment, or the static one
  // of `bounded`), setting each one's start offset: the position this run
  // knows, else the group's committed offset, then `start`.
  void assign(rd_kafka_t* rk, rd_kafka_topic_partition_list_t* list, bool incremental) {
    std::string described;
    std::vector<TopicPartition> added;
    for (int i = 0; i < list->cnt; ++i) {
      rd_kafka_topic_partition_t& e = list->elems[i];
      TopicPartition tp{e.topic, e.partition};
      PartitionState p;
      p.tp = tp;
      p.last_active = Clock::now();
      if (std::optional<Position> pos = run_->claim(tp)) {
        e.offset = pos->offset;
        p.next = pos->offset;
        p.max_event_time = pos->max_event_time;
        described += " " + tp.to_string() + "@" + std::to_string(pos->offset);
      } else {
        e.offset = RD_KAFKA_OFFSET_INVALID;  // committed, else auto.offset.reset (`start`)
        described += " " + tp.to_string() + "@group";
      }
      if (PartitionState* old = find(tp)) {
        *old = std::move(p);
      } else {
        parts_.push_back(std::move(p));
      }
      added.push_back(std::move(tp));
    }
    Status s = incremental
                   ? kafka_status(rd_kafka_incremental_assign(rk, list), label_ + ": assign")
                   : kafka_status(rd_kafka_assign(rk, list), label_ + ": assign");
    if (!s.ok()) error_ = s;
    // Assigned while paused: these wait for the resume too.
    if (s.ok() && pause_reasons_ != 0 && list->cnt > 0) {
      if (rd_kafka_resp_err_t err = rd_kafka_pause_partitions(rk, list)) {
        log_warn("kafka-source", label_ + ": cannot pause partitions: " + rd_kafka_err2str(err));
      }
    }
    assigned_ = true;
    log_info("kafka-source", label_ + ": assigned" + (described.empty() ? " nothing" : described));
    if (s.ok()) find_wake_parts();
    if (cfg_->bounded && !added.empty()) query_ends(std::move(added));
  }

  void rebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* list) {
    const bool coop = cfg_->cooperative;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
      assign(rk, list, coop);
      return;
    }
    if (err != RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
      log_warn("kafka-source", label_ + ": rebalance failed: " + rd_kafka_err2str(err));
    }
    // Revoked (or a failed rebalance): hand the positions over to whichever
    // subtask of this run gets the partitions next. Rows emitted so far lie
    // before them; nothing of these partitions is emitted after this.
    std::string described;
    auto give_up = [&](const PartitionState& p) {
      if (p.next >= 0) run_->release(p.tp, Position{p.next, p.max_event_time});
      ctx_->report_consumer_lag(p.tp.topic, p.tp.partition, std::nullopt);
      described += " " + p.tp.to_string();
    };
    Status s;
    if (coop && err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
      std::set<TopicPartition> revoked;
      for (int i = 0; i < list->cnt; ++i) {
        TopicPartition tp{list->elems[i].topic, list->elems[i].partition};
        auto it = std::find_if(parts_.begin(), parts_.end(),
                               [&](const PartitionState& p) { return p.tp == tp; });
        if (it == parts_.end()) continue;
        give_up(*it);
        parts_.erase(it);
        revoked.insert(std::move(tp));
      }
      drop_held([&](const rd_kafka_message_t* m) {
        return m->rkt && revoked.count({rd_kafka_topic_name(m->rkt), m->partition}) > 0;
      });
      s = kafka_status(rd_kafka_incremental_unassign(rk, list), label_ + ": unassign");
    } else {
      for (const PartitionState& p : parts_) give_up(p);
      parts_.clear();
      drop_held([](const rd_kafka_message_t* m) { return m->rkt != nullptr; });
      s = kafka_status(rd_kafka_assign(rk, nullptr), label_ + ": unassign");
    }
    last_ = SIZE_MAX;
    log_info("kafka-source", label_ + ": revoked" + (described.empty() ? " nothing" : described));
    if (!s.ok()) log_warn("kafka-source", s.message());
  }

  // Every statistics interval, on the task thread: how many brokers are up,
  // and each held partition's lag (lag_of).
  void stats(rd_kafka_t* rk, std::string_view json) {
    BrokerWatch::Report brokers = broker_watch_.on_stats(json);
    ctx_->report_brokers(brokers.up, brokers.problem);
    for (const PartitionState& p : parts_) {
      if (std::optional<int64_t> lag = lag_of(rk, p)) {
        ctx_->report_consumer_lag(p.tp.topic, p.tp.partition, *lag);
      }
    }
  }

  // Messages of `p` not emitted yet: bounded, up to its end; else up to the
  // high watermark of the last fetch (rd_kafka_get_watermark_offsets does
  // not block). nullopt while the position or the end is not known.
  static std::optional<int64_t> lag_of(rd_kafka_t* rk, const PartitionState& p) {
    if (p.next < 0) return std::nullopt;
    if (p.end >= 0) return std::max<int64_t>(0, p.end - p.next);
    int64_t low = 0;
    int64_t high = -1;
    if (rd_kafka_get_watermark_offsets(rk, p.tp.topic.c_str(), p.tp.partition, &low, &high) !=
            RD_KAFKA_RESP_ERR_NO_ERROR ||
        high < 0) {
      return std::nullopt;
    }
    return std::max<int64_t>(0, high - p.next);
  }

  // Each held partition's lag as the run ends (lag_of). A partition assigned
  // just before the stop may have had no fetch yet: its position is then the
  // group's committed offset, or `start`'s end of the partition without one,
  // and its end is not cached. Those are asked of the brokers (one committed
  // offsets request, a watermark query per partition, all within
  // kFinalLagLookup), so the summary says what is left rather than "unknown".
  std::vector<std::optional<int64_t>> final_lags() {
    std::vector<std::optional<int64_t>> lags(parts_.size());
    if (!consumer_) return lags;
    rd_kafka_t* rk = consumer_->rk.get();
    std::vector<size_t> missing;
    PartitionListPtr uncommitted(rd_kafka_topic_partition_list_new(0));
    for (size_t i = 0; i < parts_.size(); ++i) {
      lags[i] = lag_of(rk, parts_[i]);
      if (lags[i]) continue;
      missing.push_back(i);
      if (parts_[i].next < 0) {
        rd_kafka_topic_partition_list_add(uncommitted.get(), parts_[i].tp.topic.c_str(),
                                          parts_[i].tp.partition);
      }
    }
    if (missing.empty()) return lags;
    const Clock::time_point deadline = Clock::now() + kFinalLagLookup;
    auto left_ms = [&] {
      return static_cast<int>(std::max<int64_t>(
          0,
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count()));
    };
    const bool committed_known =
        uncommitted->cnt == 0 || rd_kafka_committed(rk, uncommitted.get(), left_ms()) == 0;
    for (size_t i : missing) {
      const PartitionState& p = parts_[i];
      int64_t committed = RD_KAFKA_OFFSET_INVALID;
      if (p.next < 0) {
        const rd_kafka_topic_partition_t* e = rd_kafka_topic_partition_list_find(
            uncommitted.get(), p.tp.topic.c_str(), p.tp.partition);
        if (!committed_known || !e || e->err) continue;
        committed = e->offset;
      }
      int64_t low = 0;
      int64_t high = -1;
      const int timeout_ms = left_ms();
      if (timeout_ms == 0 ||
          rd_kafka_query_watermark_offsets(rk, p.tp.topic.c_str(), p.tp.partition, &low, &high,
                                           timeout_ms) != 0 ||
          high < 0) {
        continue;
      }
      int64_t position = p.next;
      if (position < 0) position = committed >= 0 ? committed : cfg_->start_latest ? high : low;
      lags[i] = std::max<int64_t>(0, (p.end >= 0 ? p.end : high) - position);
    }
    return lags;
  }

  void client_error(rd_kafka_t* rk, rd_kafka_resp_err_t err, const char* reason) {
    if (std::optional<BrokerWatch::Report> down = broker_watch_.on_error(err, reason)) {
      ctx_->report_brokers(down->up, down->problem);
    }
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
      char fatal[512];
      rd_kafka_resp_err_t orig = rd_kafka_fatal_error(rk, fatal, sizeof fatal);
      error_ = kafka_status(orig, label_, fatal);
      return;
    }
    Status s = kafka_status(err, label_, reason);
    if (fails_run(s)) {
      if (error_.ok()) error_ = s;
      return;
    }
    // Brokers down, timeouts: librdkafka keeps retrying.
    retry_log_.warn(s.message() + " (retrying)");
  }

  void handle(const rd_kafka_message_t* m) {
    if (m->err) {
      handle_error(m);
      return;
    }
    retry_log_.healthy();
    PartitionState* p = find(m);
    // Revoked meanwhile (its next owner reads it again), or read to its end.
    if (!p || p->done) return;
    // Before the position: emitted already (a partition handed back to this
    // subtask is fetched again from its position while older messages of it
    // may still be on their way).
    if (p->next >= 0 && m->offset < p->next) return;
    if (p->end >= 0 && m->offset >= p->end) {
      finish_partition(*p);
      return;
    }
    decode(m, *p);
    p->next = m->offset + 1;
    p->last_active = now_;
    if (p->end >= 0 && p->next >= p->end) finish_partition(*p);
  }

  void handle_error(const rd_kafka_message_t* m) {
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      PartitionState* p = m->rkt ? find(m) : nullptr;
      if (!p) return;
      // At the end: nothing lies before this offset that is not emitted
      // (gaps are transaction markers or compacted away).
      p->next = std::max(p->next, m->offset);
      if (p->end >= 0 && p->next >= p->end) finish_partition(*p);
      return;
    }
    std::string what = label_;
    if (m->rkt) {
      what += " topic '" + std::string(rd_kafka_topic_name(m->rkt)) + "'";
      if (m->partition >= 0) what += " partition " + std::to_string(m->partition);
    }
    Status s = kafka_status(m->err, what, rd_kafka_message_errstr(m));
    if (fails_run(s)) {
      if (error_.ok()) error_ = s;
      return;
    }
    retry_log_.warn(s.message() + " (retrying)");
  }

  // --- The prefetch budget (PrefetchBudget). ---

  static size_t held_size(const rd_kafka_message_t* m) { return m->len + m->key_len; }

  // Takes what the client prefetched out of its queue into held_, until
  // held_ reaches the budget's high mark (or the queue is empty, or the
  // batch call returned early after serving a callback).
  Status drain() {
    const PrefetchBudget& budget = cfg_->budget;
    while (held_.size() < budget.high_messages && held_bytes_ < budget.high_bytes) {
      const size_t want = std::min(messages_.size(), budget.high_messages - held_.size());
      const ssize_t n =
          rd_kafka_consume_batch_queue(consumer_->queue.get(), 0, messages_.data(), want);
      if (n < 0) return kafka_status(rd_kafka_last_error(), label_ + ": cannot read");
      for (ssize_t i = 0; i < n; ++i) {
        rd_kafka_message_t* m = messages_[static_cast<size_t>(i)];
        held_bytes_ += held_size(m);
        held_.push_back(m);
      }
      if (static_cast<size_t>(n) < want) break;
    }
    return Status::OK();
  }

  bool over_budget() const {
    return held_.size() >= cfg_->budget.high_messages || held_bytes_ >= cfg_->budget.high_bytes;
  }
  bool under_low_mark() const {
    return held_.size() < cfg_->budget.low_messages && held_bytes_ < cfg_->budget.low_bytes;
  }

  // Destroys the held messages `drop` selects (of revoked partitions; client
  // errors without a partition stay).
  template <typename Pred>
  void drop_held(Pred drop) {
    std::deque<rd_kafka_message_t*> kept;
    for (rd_kafka_message_t* m : held_) {
      if (drop(m)) {
        held_bytes_ -= held_size(m);
        rd_kafka_message_destroy(m);
      } else {
        kept.push_back(m);
      }
    }
    held_ = std::move(kept);
  }

  // Pauses every partition not done when the first reason to pause appears
  // (rd_kafka_pause_partitions; librdkafka drops what it fetched and did not
  // hand out yet, and resumes at the position after the last message it
  // handed out), and resumes them when the last one goes. Backpressure is
  // logged at info, the budget's frequent pauses at debug (close() sums them
  // up).
  void set_paused(unsigned reason, bool on) {
    const unsigned before = pause_reasons_;
    pause_reasons_ = on ? (before | reason) : (before & ~reason);
    if (reason == kBudgetPause && on && !(before & kBudgetPause)) ++budget_pauses_;
    const bool pause = before == 0 && pause_reasons_ != 0;
    const bool resume = before != 0 && pause_reasons_ == 0;
    if ((!pause && !resume) || !consumer_) return;
    PartitionListPtr list(rd_kafka_topic_partition_list_new(static_cast<int>(parts_.size())));
    for (const PartitionState& p : parts_) {
      if (!p.done)
        rd_kafka_topic_partition_list_add(list.get(), p.tp.topic.c_str(), p.tp.partition);
    }
    if (list->cnt == 0) return;
    rd_kafka_resp_err_t err = pause ? rd_kafka_pause_partitions(consumer_->rk.get(), list.get())
                                    : rd_kafka_resume_partitions(consumer_->rk.get(), list.get());
    if (err) {
      log_warn("kafka-source", label_ + ": cannot " + (pause ? "pause" : "resume") +
                                   " partitions: " + rd_kafka_err2str(err));
      return;
    }
    if (resume) wake_fetchers();
    std::string line = label_ + ": " + (pause ? "paused " : "resumed ") +
                       std::to_string(list->cnt) + " partitions";
    if (pause && reason == kBackpressurePause) line += " (downstream full)";
    if (pause && reason == kBudgetPause) {
      line += " (prefetch budget: " + std::to_string(held_.size()) + " messages, " +
              std::to_string(held_bytes_ >> 10) + " KiB held)";
    }
    if (reason == kBackpressurePause) {
      log_info("kafka-source", line);
    } else {
      log_debug("kafka-source", line);
    }
  }

  // Wakes the threads of the brokers that lead this subtask's partitions
  // after a resume, so they fetch at once: librdkafka 2.0.2 decides whether
  // to fetch a partition only when a broker's thread wakes (a request to
  // send, a response, else after up to 1 s), and a resume does not wake it.
  // A ListOffsets request ("latest", one partition per leader: one small
  // request per broker, whatever the partition count) is such a wake; its
  // answer is not needed. Off the task thread; at most one queued at a time.
  void wake_fetchers() {
    if (callbacks_->wake_queued.exchange(true)) return;
    auto cb = callbacks_;
    auto consumer = consumer_;
    ctx_->io().post(ctx_->io_strand(), [cb, consumer] {
      cb->wake_queued.store(false);
      std::vector<TopicPartition> parts = cb->wake_parts();
      if (parts.empty()) return;
      PartitionListPtr list(rd_kafka_topic_partition_list_new(static_cast<int>(parts.size())));
      for (const TopicPartition& tp : parts) {
        rd_kafka_topic_partition_list_add(list.get(), tp.topic.c_str(), tp.partition)->offset =
            RD_KAFKA_OFFSET_END;
      }
      rd_kafka_offsets_for_times(consumer->rk.get(), list.get(), kWakeTimeoutMs);
    });
  }

  // After an assignment: picks, on the I/O pool, one held partition per
  // leader broker for wake_fetchers() (from the topics' metadata; a leader
  // that moves later only delays that broker's refetch to its own wake-up).
  void find_wake_parts() {
    std::map<std::string, std::vector<int32_t>> held;
    for (const PartitionState& p : parts_) held[p.tp.topic].push_back(p.tp.partition);
    auto cb = callbacks_;
    auto consumer = consumer_;
    ctx_->io().post(ctx_->io_strand(), [cb, consumer, held = std::move(held)] {
      std::map<int32_t, TopicPartition> by_leader;
      for (const auto& [topic, partitions] : held) {
        rd_kafka_topic_t* rkt = rd_kafka_topic_new(consumer->rk.get(), topic.c_str(), nullptr);
        if (!rkt) continue;
        const rd_kafka_metadata_t* md = nullptr;
        if (rd_kafka_metadata(consumer->rk.get(), 0, rkt, &md, kQueryTimeoutMs) ==
                RD_KAFKA_RESP_ERR_NO_ERROR &&
            md && md->topic_cnt == 1) {
          for (int i = 0; i < md->topics[0].partition_cnt; ++i) {
            const rd_kafka_metadata_partition_t& mp = md->topics[0].partitions[i];
            if (mp.leader >= 0 &&
                std::find(partitions.begin(), partitions.end(), mp.id) != partitions.end()) {
              by_leader.emplace(mp.leader, TopicPartition{topic, mp.id});
            }
          }
        }
        if (md) rd_kafka_metadata_destroy(md);
        rd_kafka_topic_destroy(rkt);
      }
      std::vector<TopicPartition> found;
      std::string described;
      for (auto& [leader, tp] : by_leader) {
        described += " " + tp.to_string() + " (broker " + std::to_string(leader) + ")";
        found.push_back(std::move(tp));
      }
      log_debug("kafka-source", cb->label + ": a resume wakes " + std::to_string(found.size()) +
                                    " brokers through" + (described.empty() ? " none" : described));
      cb->set_wake_parts(std::move(found));
    });
  }

  void finish_partition(PartitionState& p) {
    p.done = true;
    // Everything before the end was read (in order): gaps (transaction
    // markers, compaction) or a message past the end may have left `next`
    // short of it, which showed as a final lag of a fully read partition.
    if (p.end >= 0) p.next = std::max(p.next, p.end);
    ctx_->report_consumer_lag(p.tp.topic, p.tp.partition, 0);
    PartitionListPtr list(rd_kafka_topic_partition_list_new(1));
    rd_kafka_topic_partition_list_add(list.get(), p.tp.topic.c_str(), p.tp.partition);
    // Stop fetching what will not be emitted.
    rd_kafka_pause_partitions(consumer_->rk.get(), list.get());
  }

  // An undecodable message: skipped, counted, and dead-lettered with its
  // value and position "topic/partition@offset".
  void data_error(const rd_kafka_message_t* m, std::string_view why) {
    const std::string position = std::string(rd_kafka_topic_name(m->rkt)) + "/" +
                                 std::to_string(m->partition) + "@" + std::to_string(m->offset);
    const char* payload = static_cast<const char*>(m->payload);
    ctx_->report_bad_record(position + ": " + std::string(why),
                            payload ? std::string_view(payload, m->len) : std::string_view(),
                            position);
  }

  void decode(const rd_kafka_message_t* m, const PartitionState& p) {
    const size_t rows_before = values_.num_rows();
    const char* payload = static_cast<const char*>(m->payload);
    const std::string_view value(payload ? payload : "", payload ? m->len : 0);
    switch (cfg_->format) {
      case MessageFormat::kRaw: {
        if (m->key) {
          values_.column(0).append_string(
              std::string_view(static_cast<const char*>(m->key), m->key_len));
        } else {
          values_.column(0).append_null();
        }
        if (payload) {
          values_.column(1).append_string(value);
        } else {
          values_.column(1).append_null();
        }
        values_.column(2).append_int64(m->partition);
        values_.column(3).append_int64(m->offset);
        append_timestamp(m, values_.column(4));
        values_.finish_row();
        break;
      }
      case MessageFormat::kJson:
        if (!payload) {
          data_error(m, "the message has no value");
          return;
        }
        if (Status s = json_->decode(value, values_); !s.ok()) data_error(m, s.message());
        break;
      case MessageFormat::kCsv:
        decode_csv(m, value);
        break;
    }
    const size_t added = values_.num_rows() - rows_before;
    for (size_t r = 0; r < added; ++r) {
      if (meta_) append_metadata(m);
      if (event_time_) row_parts_.push_back(&p - parts_.data());
    }
  }

  // A message holds one or more CSV records; with csv.header its first
  // record names the columns.
  void decode_csv(const rd_kafka_message_t* m, std::string_view data) {
    bool header = cfg_->csv.header;
    while (true) {
      size_t consumed = 0;
      auto outcome = csv_parser_->next(data, true, record_, consumed);
      if (outcome != CsvRecordParser::Outcome::kRecord) break;
      data.remove_prefix(consumed);
      if (record_.blank()) continue;
      if (header) {
        header = false;
        if (Status s = csv_->set_header(record_); !s.ok()) {
          data_error(m, s.message());
          return;
        }
        continue;
      }
      if (Status s = csv_->decode(record_, values_); !s.ok()) data_error(m, s.message());
    }
  }

  static void append_timestamp(const rd_kafka_message_t* m, ColumnBuilder& col) {
    rd_kafka_timestamp_type_t type;
    const int64_t ts = rd_kafka_message_timestamp(m, &type);
    if (type == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE || ts < 0) {
      col.append_null();
    } else {
      col.append_int64(ts);
    }
  }

  void append_metadata(const rd_kafka_message_t* m) {
    for (size_t i = 0; i < cfg_->metadata.size(); ++i) {
      ColumnBuilder& col = meta_->column(i);
      switch (cfg_->metadata[i]) {
        case MetaField::kTimestamp:
          append_timestamp(m, col);
          break;
        case MetaField::kPartition:
          col.append_int64(m->partition);
          break;
        case MetaField::kOffset:
          col.append_int64(m->offset);
          break;
        case MetaField::kKey:
          if (m->key) {
            col.append_string(std::string_view(static_cast<const char*>(m->key), m->key_len));
          } else {
            col.append_null();
          }
          break;
        case MetaField::kTopic:
          col.append_string(rd_kafka_topic_name(m->rkt));
          break;
      }
    }
    meta_->finish_row();
  }

  void emit(runtime::Output& out) {
    const size_t n = values_.num_rows();
    if (n == 0) return;
    BatchPtr batch = values_.finish();
    if (meta_) {
      std::vector<ColumnPtr> cols = batch->columns();
      BatchPtr meta = meta_->finish();
      cols.insert(cols.end(), meta->columns().begin(), meta->columns().end());
      batch = Batch::make(cfg_->output_schema, std::move(cols), n);
    }
    if (event_time_) track_event_time(*batch);
    out.emit(std::move(batch));
  }

  // The highest event time per partition, from the rows just built (rows
  // without one are dropped by the runtime and count for nothing).
  void track_event_time(const Batch& batch) {
    const Column& col = *batch.column(event_time_->field);
    if (!stored_as_int64(col.type())) return;
    const int64_t* ts = col.int64_data();
    for (size_t r = 0; r < row_parts_.size(); ++r) {
      if (col.is_null(r)) continue;
      PartitionState& p = parts_[row_parts_[r]];
      p.max_event_time = std::max(p.max_event_time, ts[r]);
    }
    row_parts_.clear();
  }

  // The minimum over assigned partitions that are neither idle nor done of
  // (max event time - bound - 1); a partition without rows holds it back.
  void advance_watermark(runtime::Output& out) {
    if (!event_time_) return;
    int64_t low = INT64_MAX;
    for (const PartitionState& p : parts_) {
      if (p.done) continue;
      if (event_time_->idle_timeout && now_ - p.last_active >= *event_time_->idle_timeout) continue;
      if (p.max_event_time == INT64_MIN) return;
      low = std::min(low, p.max_event_time);
    }
    const int64_t bound = event_time_->max_out_of_orderness.count();
    if (low == INT64_MAX || low < INT64_MIN + bound + 1) return;
    const int64_t wm = low - bound - 1;
    if (wm <= last_watermark_) return;
    last_watermark_ = wm;
    out.emit_watermark(Watermark{wm});
  }

  // bounded: reads the topics' partitions off the task thread and keeps the
  // ones of this subtask (partition % parallelism == subtask).
  void query_assignment() {
    auto cb = callbacks_;
    auto consumer = consumer_;
    ctx_->io().post(ctx_->io_strand(), [cb, consumer, topics = cfg_->topics, label = label_,
                                        subtask = subtask_, parallelism = parallelism_] {
      ClientCallbacks::StaticAssignment found;
      for (const std::string& topic : topics) {
        rd_kafka_topic_t* rkt = rd_kafka_topic_new(consumer->rk.get(), topic.c_str(), nullptr);
        if (!rkt) {
          found.error = kafka_status(rd_kafka_last_error(), label + " topic '" + topic + "'");
          break;
        }
        const rd_kafka_metadata_t* md = nullptr;
        rd_kafka_resp_err_t err =
            rd_kafka_metadata(consumer->rk.get(), 0, rkt, &md, kQueryTimeoutMs);
        if (!err && (!md || md->topic_cnt != 1)) err = RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC;
        if (!err) err = md->topics[0].err;
        if (!err && md->topics[0].partition_cnt == 0) err = RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION;
        if (err) {
          found.error = kafka_status(err, label + " topic '" + topic + "'");
        } else {
          for (int i = 0; i < md->topics[0].partition_cnt; ++i) {
            const int32_t id = md->topics[0].partitions[i].id;
            if (id % parallelism == subtask) found.parts.push_back({topic, id});
          }
        }
        if (md) rd_kafka_metadata_destroy(md);
        rd_kafka_topic_destroy(rkt);
        if (!found.error.ok()) break;
      }
      std::sort(found.parts.begin(), found.parts.end());
      cb->set_assignment(std::move(found));
      cb->wake();
    });
  }

  // bounded: assigns the partitions query_assignment() found (an empty set
  // ends the subtask at once); a failed query is retried, an unknown topic
  // for at most kMissingTopicGrace, an authorization failure fails the run.
  void collect_assignment() {
    if (assignment_query_at_ != Clock::time_point{} && now_ >= assignment_query_at_) {
      assignment_query_at_ = {};
      query_assignment();
    }
    std::optional<ClientCallbacks::StaticAssignment> found = callbacks_->take_assignment();
    if (!found) return;
    if (!found->error.ok()) {
      const Status& s = found->error;
      if (s.code() == StatusCode::kNotFound) {
        if (missing_since_ == Clock::time_point{}) missing_since_ = now_;
        if (now_ - missing_since_ >= kMissingTopicGrace) {
          error_ = s;
          return;
        }
      } else if (fails_run(s)) {
        error_ = s;
        return;
      }
      retry_log_.warn(s.message() + " (retrying)");
      assignment_query_at_ = now_ + kQueryRetry;
      return;
    }
    PartitionListPtr list(rd_kafka_topic_partition_list_new(static_cast<int>(found->parts.size())));
    for (const TopicPartition& tp : found->parts) {
      rd_kafka_topic_partition_list_add(list.get(), tp.topic.c_str(), tp.partition);
    }
    assign(consumer_->rk.get(), list.get(), false);
  }

  // bounded: asks for the partitions' ends off the task thread, in one
  // ListOffsets request per leader (a "latest" lookup of
  // rd_kafka_offsets_for_times) rather than a round trip per partition
  // (bench/kafka.sh reads hundreds; no end is known before all are in).
  void query_ends(std::vector<TopicPartition> tps) {
    auto cb = callbacks_;
    auto consumer = consumer_;
    ctx_->io().post(ctx_->io_strand(), [cb, consumer, tps = std::move(tps)] {
      PartitionListPtr list(rd_kafka_topic_partition_list_new(static_cast<int>(tps.size())));
      for (const TopicPartition& tp : tps) {
        rd_kafka_topic_partition_list_add(list.get(), tp.topic.c_str(), tp.partition)->offset =
            RD_KAFKA_OFFSET_END;
      }
      const rd_kafka_resp_err_t all =
          rd_kafka_offsets_for_times(consumer->rk.get(), list.get(), kQueryTimeoutMs);
      std::vector<ClientCallbacks::EndOffset> found;
      for (int i = 0; i < list->cnt; ++i) {
        const rd_kafka_topic_partition_t& e = list->elems[i];
        rd_kafka_resp_err_t err = all ? all : e.err;
        if (!err && e.offset < 0) err = RD_KAFKA_RESP_ERR__NO_OFFSET;
        found.push_back(
            {{e.topic, e.partition}, err ? -1 : e.offset, err ? rd_kafka_err2str(err) : ""});
      }
      cb->add_ends(std::move(found));
      cb->wake();
    });
  }

  void collect_ends() {
    std::vector<TopicPartition> retry;
    for (ClientCallbacks::EndOffset& e : callbacks_->take_ends()) {
      PartitionState* p = find(e.tp);
      if (!p) continue;  // revoked meanwhile
      if (e.end < 0) {
        retry_log_.warn(label_ + ": cannot read the end offset of " + e.tp.to_string() + ": " +
                        e.error + " (retrying)");
        retry.push_back(e.tp);
        continue;
      }
      p->end = e.end;
      if (!p->done && p->next >= 0 && p->next >= p->end) finish_partition(*p);
    }
    if (!retry.empty()) {
      retry_ends_.insert(retry_ends_.end(), retry.begin(), retry.end());
      retry_at_ = now_ + kQueryRetry;
    }
    if (!retry_ends_.empty() && now_ >= retry_at_) query_ends(std::exchange(retry_ends_, {}));
  }

  // bounded: the static assignment is known and read to its ends. Subtasks
  // end on their own: no group to keep serving.
  bool bounded_done() const {
    if (!assigned_) return false;
    return std::all_of(parts_.begin(), parts_.end(),
                       [](const PartitionState& p) { return p.done; });
  }

  // Stops serving callbacks and closes the consumer on the I/O pool (a close
  // leaves the group and may wait for the coordinator). Without checkpoints
  // the final positions are committed first.
  void release_consumer() {
    callbacks_->source.store(nullptr);
    callbacks_->attach(nullptr);
    // librdkafka wants every message destroyed before its handle.
    drop_held([](const rd_kafka_message_t*) { return true; });
    if (!consumer_) return;
    rd_kafka_queue_cb_event_enable(consumer_->queue.get(), nullptr, nullptr);
    // shared_ptr: the job must be copyable (std::function).
    std::shared_ptr<rd_kafka_topic_partition_list_t> commit;
    if (ctx_ && !ctx_->checkpointing() && !parts_.empty()) {
      commit.reset(rd_kafka_topic_partition_list_new(static_cast<int>(parts_.size())),
                   PartitionListDeleter());
      for (const PartitionState& p : parts_) {
        if (p.next < 0) continue;
        rd_kafka_topic_partition_list_add(commit.get(), p.tp.topic.c_str(), p.tp.partition)
            ->offset = p.next;
      }
    }
    auto job = [consumer = std::move(consumer_), cb = callbacks_, commit,
                subscribed = !cfg_->bounded]() mutable {
      if (commit && commit->cnt > 0) {
        if (rd_kafka_resp_err_t err = rd_kafka_commit(consumer->rk.get(), commit.get(), 0)) {
          log_warn("kafka-source",
                   cb->label + ": cannot commit the final offsets: " + rd_kafka_err2str(err));
        }
      }
      if (subscribed) leave_group(*consumer, cb->label);
      rd_kafka_consumer_close(consumer->rk.get());
      consumer.reset();
    };
    if (ctx_) {
      ctx_->io().post(ctx_->io_strand(), std::move(job));
    } else {
      job();
    }
  }

  // Leaves the group before rd_kafka_consumer_close(), which in librdkafka
  // 2.0 can block for good on the assign call of a rebalance under way or
  // still queued as it starts (librdkafka #4527, #4884; seen when every
  // member of a group stops at once). Unsubscribing serves those rebalances
  // (on_rebalance's closing branch) before the close, until nothing is
  // assigned or kLeaveGroupTimeout passes. On the I/O pool.
  static void leave_group(Consumer& consumer, const std::string& label) {
    rd_kafka_t* rk = consumer.rk.get();
    if (rd_kafka_resp_err_t err = rd_kafka_unsubscribe(rk)) {
      log_warn("kafka-source", label + ": cannot leave the group: " + rd_kafka_err2str(err));
      return;
    }
    const Clock::time_point deadline = Clock::now() + kLeaveGroupTimeout;
    std::array<rd_kafka_message_t*, 64> messages;
    while (Clock::now() < deadline) {
      rd_kafka_topic_partition_list_t* assigned = nullptr;
      if (rd_kafka_assignment(rk, &assigned) != 0) return;
      const int held = assigned->cnt;
      rd_kafka_topic_partition_list_destroy(assigned);
      if (held == 0) return;
      // Serves the rebalance callbacks; what it fetched meanwhile is dropped.
      const ssize_t n =
          rd_kafka_consume_batch_queue(consumer.queue.get(), 100, messages.data(), messages.size());
      for (ssize_t i = 0; i < n; ++i) rd_kafka_message_destroy(messages[i]);
    }
    log_warn("kafka-source", label + ": still assigned partitions " +
                                 std::to_string(kLeaveGroupTimeout.count()) +
                                 " s after leaving the group; closing anyway");
  }

  std::shared_ptr<const KafkaSourceConfig> cfg_;
  std::shared_ptr<SharedRun> run_;
  const int subtask_;
  const int parallelism_;
  std::string label_;
  runtime::OperatorContext* ctx_ = nullptr;
  const runtime::EventTimeSpec* event_time_ = nullptr;
  size_t max_poll_ = 1024;
  int empty_polls_ = 0;  // produce() calls in a row that got nothing from a non-empty queue

  std::shared_ptr<ClientCallbacks> callbacks_ = std::make_shared<ClientCallbacks>();
  std::shared_ptr<Consumer> consumer_;
  std::vector<rd_kafka_message_t*> messages_;  // drain()'s batch buffer
  // Drained from the client's queue, not handled yet (the prefetch budget).
  std::deque<rd_kafka_message_t*> held_;
  size_t held_bytes_ = 0;  // payload and key bytes of held_

  std::vector<PartitionState> parts_;  // what this subtask holds now
  size_t last_ = SIZE_MAX;             // parts_ index of the last message's partition
  bool assigned_ = false;              // had an assignment (possibly empty)
  // Why the partitions are paused (kBackpressurePause | kBudgetPause); 0: not.
  unsigned pause_reasons_ = 0;
  uint64_t budget_pauses_ = 0;  // times the budget paused them, for close()'s summary
  Status error_;                // fails the run at the next produce()
  BackoffLog retry_log_;
  BrokerWatch broker_watch_;
  Clock::time_point now_{};
  // Snapshots not completed yet: the owned positions each recorded.
  std::map<uint64_t, std::vector<std::pair<TopicPartition, Position>>> snapshots_;
  // bounded: end queries to send again.
  std::vector<TopicPartition> retry_ends_;
  Clock::time_point retry_at_{};
  // bounded: when to ask for the static assignment again ({}: not due), and
  // since when a topic is unknown.
  Clock::time_point assignment_query_at_{};
  Clock::time_point missing_since_{};

  BatchBuilder values_;
  std::optional<BatchBuilder> meta_;
  std::optional<JsonRowDecoder> json_;
  std::optional<CsvRowDecoder> csv_;
  std::optional<CsvRecordParser> csv_parser_;
  CsvRecord record_;
  // Event time: the parts_ index of each row being built.
  std::vector<size_t> row_parts_;
  int64_t last_watermark_ = INT64_MIN;
};

class PreparedKafkaSource final : public runtime::PreparedNode {
 public:
  explicit PreparedKafkaSource(std::shared_ptr<const KafkaSourceConfig> cfg)
      : cfg_(std::move(cfg)) {}
  SchemaPtr output_schema() const override { return cfg_->output_schema; }
  std::unique_ptr<runtime::SourceOperator> make_source(int subtask,
                                                       int parallelism) const override {
    std::shared_ptr<SharedRun> run;
    {
      // A run makes each subtask once: a subtask made again starts a new run.
      std::lock_guard lock(mu_);
      if (!run_ || !run_->add_subtask(subtask)) {
        run_ = std::make_shared<SharedRun>();
        run_->add_subtask(subtask);
      }
      run = run_;
    }
    return std::make_unique<KafkaSource>(cfg_, std::move(run), subtask, parallelism);
  }
  std::string describe() const override {
    std::string topics;
    for (const std::string& t : cfg_->topics) topics += (topics.empty() ? "" : ",") + t;
    static constexpr std::string_view kFormats[] = {"json", "csv", "raw"};
    return "kafka " + topics + " (" + std::string(kFormats[static_cast<int>(cfg_->format)]) +
           "), group " + cfg_->group_id + (cfg_->bounded ? ", bounded" : "");
  }

 private:
  std::shared_ptr<const KafkaSourceConfig> cfg_;
  mutable std::mutex mu_;
  mutable std::shared_ptr<SharedRun> run_;  // guarded by mu_
};

SchemaPtr raw_schema() {
  return make_schema({Field{"key", TypeId::kString}, Field{"value", TypeId::kString},
                      Field{"partition", TypeId::kInt64}, Field{"offset", TypeId::kInt64},
                      Field{"timestamp", TypeId::kTimestamp}});
}

// A string option of the node, else of the server defaults.
std::optional<std::string> string_or_default(OptionReader& opts, const ConfigValue& defaults,
                                             std::string_view key) {
  const ConfigValue* v = option_or_default(opts, defaults, key);
  if (!v) return std::nullopt;
  auto s = v->as_string();
  if (!s.ok()) {
    opts.diags().error(v->location(),
                       opts.what() + " option '" + std::string(key) + "': " + s.status().message());
    return std::nullopt;
  }
  return *s;
}

}  // namespace

runtime::PreparedNodePtr KafkaSourceFactory::prepare(const runtime::NodeSpec& spec,
                                                     const std::vector<SchemaPtr>& inputs,
                                                     OptionReader& opts) const {
  (void)inputs;
  const size_t errors_before = opts.diags().size();
  auto cfg = std::make_shared<KafkaSourceConfig>();
  cfg->label = "kafka source '" + spec.id + "'";
  cfg->pipeline_name = spec.pipeline_name;

  std::optional<ClientOptions> client = read_client_options(opts, defaults_, kSourceTuning);
  if (auto topics = opts.string_list("topic", true)) {
    cfg->topics = *topics;
    if (cfg->topics.empty()) report_option(opts, "topic", "must name at least one topic");
    for (const std::string& t : cfg->topics) {
      if (t.empty()) report_option(opts, "topic", "a topic name must not be empty");
    }
  }
  cfg->group_id =
      string_or_default(opts, defaults_, "group_id")
          .value_or("dataflow-" + (spec.pipeline_name.empty() ? spec.id : spec.pipeline_name));
  if (cfg->group_id.empty()) report_option(opts, "group_id", "must not be empty");
  if (auto start = string_or_default(opts, defaults_, "start")) {
    if (*start == "latest") {
      cfg->start_latest = true;
    } else if (*start != "earliest") {
      report_option(opts, "start", "expected earliest or latest, got '" + *start + "'");
    }
  }
  if (const ConfigValue* max = option_or_default(opts, defaults_, "max_poll_records")) {
    auto n = max->as_int();
    if (!n.ok() || *n <= 0) {
      opts.diags().error(max->location(), opts.what() +
                                              " option 'max_poll_records': expected a "
                                              "positive number of messages");
    } else {
      cfg->max_poll_records = static_cast<size_t>(*n);
    }
  }
  if (auto bounded = opts.boolean("bounded")) cfg->bounded = *bounded;

  if (auto format = opts.string("format")) {
    if (*format == "json") {
      cfg->format = MessageFormat::kJson;
    } else if (*format == "csv") {
      cfg->format = MessageFormat::kCsv;
    } else if (*format == "raw") {
      cfg->format = MessageFormat::kRaw;
    } else {
      report_option(opts, "format", "unknown format '" + *format + "' (expected json, csv or raw)");
    }
  }
  if (cfg->format == MessageFormat::kRaw) {
    if (opts.has("schema")) {
      report_option(opts, "schema",
                    "format raw has a fixed schema (key, value, partition, "
                    "offset, timestamp); use metadata for more columns");
      opts.allow("schema");
    }
    cfg->value_schema = raw_schema();
  } else {
    cfg->value_schema = read_schema(opts, true);
  }
  if (auto csv = read_csv_options(opts)) {
    cfg->csv = *csv;
    // A message is one record unless it brings its own header.
    const ConfigValue* node = opts.node().find("csv");
    if (!node || !node->find("header")) cfg->csv.header = false;
  }
  if (opts.has("csv") && cfg->format != MessageFormat::kCsv) {
    report_option(opts, "csv", "applies only to format csv");
  }

  std::vector<Field> fields;
  if (cfg->value_schema) fields = cfg->value_schema->fields();
  std::vector<Field> meta_fields;
  if (const ConfigValue* meta = opts.get("metadata")) {
    if (!meta->is_map()) {
      report_option(opts, "metadata", "expected a map such as {timestamp: ts, partition: p}");
    } else {
      for (const auto& [key, name] : meta->entries()) {
        auto known = std::find_if(std::begin(kMetaNames), std::end(kMetaNames),
                                  [&key = key](const MetaName& m) { return m.option == key; });
        if (known == std::end(kMetaNames)) {
          opts.diags().error(name.location(), opts.what() + " metadata '" + key +
                                                  "': unknown (expected timestamp, partition, "
                                                  "offset, key or topic)");
          continue;
        }
        auto column = name.as_string();
        if (!column.ok() || column->empty()) {
          opts.diags().error(name.location(),
                             opts.what() + " metadata '" + key + "': expected a column name");
          continue;
        }
        auto same = [&](const Field& f) { return f.name == *column; };
        if (std::any_of(fields.begin(), fields.end(), same) ||
            std::any_of(meta_fields.begin(), meta_fields.end(), same)) {
          opts.diags().error(name.location(), opts.what() + " metadata '" + key + "': column '" +
                                                  *column + "' already exists");
          continue;
        }
        meta_fields.push_back(Field{*column, known->type});
        cfg->metadata.push_back(known->field);
      }
    }
  }

  if (client) {
    for (const auto& [name, value] : client->properties) {
      auto refused =
          std::find_if(std::begin(kRefused), std::end(kRefused),
                       [&name = name](const RefusedProperty& r) { return r.name == name; });
      if (refused != std::end(kRefused)) {
        report_option(opts, "properties",
                      "property '" + name + "' is set by the source: " + std::string(refused->why));
      }
    }
    ClientOptions full;
    full.brokers = client->brokers;
    full.properties = source_defaults(client->properties);
    full.properties.insert(full.properties.end(), client->properties.begin(),
                           client->properties.end());
    full.properties.insert(full.properties.end(),
                           {{"group.id", cfg->group_id},
                            {"auto.offset.reset", cfg->start_latest ? "latest" : "earliest"},
                            {"enable.auto.commit", "false"},
                            {"enable.auto.offset.store", "false"},
                            {"enable.partition.eof", "true"}});
    // Bad property names or values are configuration errors, found now.
    auto conf = make_conf(full);
    if (!conf.ok()) report_option(opts, "properties", conf.status().message());
    cfg->budget = prefetch_budget(full.properties);
    for (const auto& [name, value] : full.properties) {
      if (name == "partition.assignment.strategy") {
        cfg->cooperative = value.find("cooperative-sticky") != std::string::npos;
      }
    }
    cfg->client = std::move(full);
  }

  if (opts.diags().size() != errors_before || !client || !cfg->value_schema) return nullptr;
  if (!meta_fields.empty()) {
    cfg->meta_schema = make_schema(meta_fields);
    fields.insert(fields.end(), meta_fields.begin(), meta_fields.end());
  }
  cfg->output_schema = make_schema(std::move(fields));
  return std::make_shared<PreparedKafkaSource>(std::move(cfg));
}

}  // namespace df::connectors::kafka
