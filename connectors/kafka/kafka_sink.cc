#include "connectors/kafka/kafka_sink.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "connectors/format/csv.h"
#include "connectors/format/json.h"
#include "connectors/io_queue.h"
#include "connectors/kafka/client.h"
#include "connectors/options.h"
#include "engine/core/log.h"
#include "engine/core/time.h"
#include "operators/expr/expr.h"

namespace df::connectors::kafka {

namespace {

using Json = nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr std::string_view kLogComponent = "kafka-sink";

// The producer keys of the administrator guide.
constexpr TuningKey kSinkTuning[] = {{"batch_size", "batch.size"},
                                     {"linger_ms", "linger.ms"},
                                     {"compression_type", "compression.type"},
                                     {"acks", "acks"}};

// Set before the node's own properties, which may override them: a missing
// topic must fail the run instead of being created, and librdkafka's 1 GiB
// default queue would defeat bounded memory.
constexpr std::pair<const char*, const char*> kSinkProperties[] = {
    {"allow.auto.create.topics", "false"},
    {"queue.buffering.max.kbytes", "65536"},
    // Brokers up, for health and metrics.
    {"statistics.interval.ms", kStatsIntervalMs.data()}};

// Exactly-once: transactions of a fresh start fence this many slot ids, the
// two a steady run alternates between.
constexpr int kMinSlots = 2;

struct KafkaSinkConfig {
  std::string node_id;
  std::string topic;
  ClientOptions client;  // with kSinkProperties first
  Format format = Format::kJson;
  CsvOptions csv;
  SchemaPtr schema;
  expr::CompiledExprPtr key;  // nullptr: no key
  Delivery delivery = Delivery::kAtLeastOnce;
  std::string transactional_id_prefix;
};

std::string checkpoint_text(uint64_t id) {
  return id == runtime::kFinalCheckpoint ? "final" : std::to_string(id);
}

// Appends slot `row` of `col` as key text; false (nothing appended) for null.
bool append_key_text(const Column& col, size_t row, std::string& out) {
  if (col.is_null(row)) return false;
  switch (col.type()) {
    case TypeId::kString:
      out.append(col.string_at(row));
      return true;
    case TypeId::kInt64: {
      char buf[24];
      auto r = std::to_chars(buf, buf + sizeof buf, col.int64_at(row));
      out.append(buf, r.ptr);
      return true;
    }
    case TypeId::kBool:
      out.append(col.bool_at(row) ? "true" : "false");
      return true;
    case TypeId::kTimestamp:
      out.append(format_timestamp(col.int64_at(row)));
      return true;
    case TypeId::kDouble:
      out.append(col.value_at(row).to_string());
      return true;
  }
  return false;
}

// Sleeps up to `d`, in short steps, returning early once `stop` is set.
void sleep_unless(const std::atomic<bool>& stop, std::chrono::milliseconds d) {
  const auto until = Clock::now() + d;
  while (!stop.load() && Clock::now() < until) {
    std::this_thread::sleep_for(
        std::min<Clock::duration>(std::chrono::milliseconds(50), until - Clock::now()));
  }
}

// What one subtask's sink shares with librdkafka's callbacks and its I/O
// jobs: the epoch accounting behind snapshot completions, the count of
// messages not yet acknowledged (backpressure), the first error, and the
// context to wake. Thread-safe; owned by shared_ptr (producers and jobs keep
// it alive). After detach() nothing touches the context again.
class SinkShared {
 public:
  SinkShared(std::string what, runtime::OperatorContext& ctx, int64_t limit_msgs,
             int64_t limit_bytes)
      : what_(std::move(what)),
        ctx_(&ctx),
        poll_strand_(ctx.io_strand() | (uint64_t{1} << 63)),
        limit_msgs_(limit_msgs),
        limit_bytes_(limit_bytes) {
    epochs_.emplace_back();
  }

  const std::string& what() const { return what_; }
  bool detached() const { return detached_.load(); }
  const std::atomic<bool>& detached_flag() const { return detached_; }

  void detach() {
    std::lock_guard lock(mu_);
    if (ctx_) ctx_->report_brokers(-1, {});  // this subtask's clients are gone
    ctx_ = nullptr;
    detached_.store(true);
  }

  void wake() {
    std::lock_guard lock(mu_);
    if (ctx_) ctx_->wake();
  }

  // Runs `job` on the I/O pool on this subtask's poll strand (separate from
  // its transactional strand, so reports are served while a commit blocks).
  // False once detached.
  bool post_poll(std::function<void()> job) {
    std::lock_guard lock(mu_);
    if (!ctx_) return false;
    ctx_->io().post(poll_strand_, std::move(job));
    return true;
  }

  // --- Epochs: rows between two barriers. ---

  uint64_t open_epoch() const {
    std::lock_guard lock(mu_);
    return first_epoch_ + epochs_.size() - 1;
  }

  // `n` messages of `bytes` went into the open epoch `epoch`.
  void add(uint64_t epoch, int64_t n, int64_t bytes) {
    {
      std::lock_guard lock(mu_);
      epochs_[epoch - first_epoch_].pending += n;
    }
    inflight_msgs_.fetch_add(n);
    inflight_bytes_.fetch_add(bytes);
  }

  // `n` messages of `epoch` (`bytes` in all) are settled: acknowledged or
  // skipped (`failure` OK), or failed (`failure` fails its checkpoint and
  // the run).
  void settle(uint64_t epoch, int64_t bytes, Status failure = Status::OK(), int64_t n = 1) {
    std::vector<std::pair<std::function<void(Status)>, Status>> done;
    bool wake = false;
    {
      std::lock_guard lock(mu_);
      Epoch& e = epochs_[epoch - first_epoch_];
      e.pending -= n;
      if (!failure.ok()) {
        if (e.error.ok()) e.error = failure;
        if (error_.ok()) {
          error_ = failure;
          failed_.store(true);
          wake = true;
        }
      }
      collect_done(done);
    }
    const int64_t msgs = inflight_msgs_.fetch_sub(n) - n;
    const int64_t left = inflight_bytes_.fetch_sub(bytes) - bytes;
    if (msgs == 0) wake = true;  // drained() may have turned true
    if (waiting_for_room_.load() && msgs <= limit_msgs_ && left <= limit_bytes_ &&
        waiting_for_room_.exchange(false)) {
      wake = true;
    }
    for (auto& [fn, status] : done) fn(std::move(status));
    if (wake) this->wake();
  }

  // Closes the open epoch; `done` is called once all its messages and those
  // of earlier epochs are settled, with the first failure among them.
  // Returns the id of the next (now open) epoch.
  uint64_t close_epoch(std::function<void(Status)> done) {
    std::vector<std::pair<std::function<void(Status)>, Status>> ready;
    uint64_t next;
    {
      std::lock_guard lock(mu_);
      Epoch& e = epochs_.back();
      e.closed = true;
      e.done = std::move(done);
      epochs_.emplace_back();
      next = first_epoch_ + epochs_.size() - 1;
      collect_done(ready);
    }
    for (auto& [fn, status] : ready) fn(std::move(status));
    return next;
  }

  // --- Backpressure and errors. ---

  bool over_limit() {
    if (inflight_msgs_.load() <= limit_msgs_ && inflight_bytes_.load() <= limit_bytes_) {
      return false;
    }
    waiting_for_room_.store(true);
    // A report may have brought it under the limit before the flag was set.
    return inflight_msgs_.load() > limit_msgs_ || inflight_bytes_.load() > limit_bytes_;
  }
  int64_t inflight() const { return inflight_msgs_.load(); }

  void fail(Status s) {
    {
      std::lock_guard lock(mu_);
      if (!error_.ok()) return;
      error_ = std::move(s);
      failed_.store(true);
    }
    wake();
  }

  Status error() const {
    if (!failed_.load()) return Status::OK();
    std::lock_guard lock(mu_);
    return error_;
  }

  // Broker connectivity, from any producer's callbacks (I/O threads).
  void on_stats(std::string_view json) { report_brokers(broker_watch_.on_stats(json)); }
  void on_connection_error(rd_kafka_resp_err_t err, std::string_view reason) {
    if (std::optional<BrokerWatch::Report> down = broker_watch_.on_error(err, reason)) {
      report_brokers(*down);
    }
  }

  // Logs that the brokers cannot be reached, at most every 10 s.
  void warn_unreachable(std::string_view reason) {
    const int64_t now =
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now().time_since_epoch())
            .count();
    int64_t last = last_warn_ms_.load();
    if (last != 0 && now - last < 10000) return;
    if (!last_warn_ms_.compare_exchange_strong(last, now)) return;
    log_warn(kLogComponent,
             what_ + ": brokers unreachable, librdkafka keeps retrying: " + std::string(reason));
  }

 private:
  struct Epoch {
    int64_t pending = 0;
    bool closed = false;
    std::function<void(Status)> done;
    Status error;
  };

  void report_brokers(const BrokerWatch::Report& r) {
    std::lock_guard lock(mu_);
    if (ctx_) ctx_->report_brokers(r.up, r.problem);
  }

  // Pops the settled closed epochs at the front (mu_ held).
  void collect_done(std::vector<std::pair<std::function<void(Status)>, Status>>& out) {
    Status carried;
    while (epochs_.size() > 1 && epochs_.front().closed && epochs_.front().pending == 0) {
      Epoch& e = epochs_.front();
      if (carried.ok()) carried = e.error;
      out.emplace_back(std::move(e.done), carried);
      epochs_.pop_front();
      ++first_epoch_;
    }
  }

  const std::string what_;
  mutable std::mutex mu_;
  runtime::OperatorContext* ctx_;  // guarded by mu_; null once detached
  std::atomic<bool> detached_{false};
  const uint64_t poll_strand_;
  uint64_t first_epoch_ = 0;  // guarded by mu_: id of epochs_.front()
  std::deque<Epoch> epochs_;  // guarded by mu_; back() is the open epoch
  Status error_;              // guarded by mu_
  std::atomic<bool> failed_{false};
  const int64_t limit_msgs_;
  const int64_t limit_bytes_;
  std::atomic<int64_t> inflight_msgs_{0};
  std::atomic<int64_t> inflight_bytes_{0};
  std::atomic<bool> waiting_for_room_{false};
  std::atomic<int64_t> last_warn_ms_{0};
  BrokerWatch broker_watch_;
};

// The delivery reports one rd_kafka_poll call serves, settled together
// after it returns: one lock and one wake check per epoch and poll rather
// than per message (the mutex showed in bench/kafka.sh's profile).
// Set for the duration of Producer::poll() on its thread; reports served
// elsewhere (the flush inside a transactional call) settle one by one.
class DeliveryTally {
 public:
  explicit DeliveryTally(SinkShared& shared) : shared_(shared) {}
  ~DeliveryTally() { flush(); }
  DeliveryTally(const DeliveryTally&) = delete;
  DeliveryTally& operator=(const DeliveryTally&) = delete;

  // The tally of the poll running on this thread for `shared`, if any.
  static DeliveryTally* active(const SinkShared* shared) {
    return current_ && &current_->shared_ == shared ? current_ : nullptr;
  }
  void add(uint64_t epoch, int64_t bytes) {
    if (counts_.empty() || counts_.back().epoch != epoch) counts_.push_back({epoch, 0, 0});
    ++counts_.back().messages;
    counts_.back().bytes += bytes;
  }
  // Makes `t` this thread's tally while the Scope lives.
  struct Scope {
    explicit Scope(DeliveryTally& t) : previous(std::exchange(current_, &t)) {}
    ~Scope() { current_ = previous; }
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;
    DeliveryTally* previous;
  };

 private:
  void flush() {
    for (const Count& c : counts_) shared_.settle(c.epoch, c.bytes, Status::OK(), c.messages);
    counts_.clear();
  }
  struct Count {
    uint64_t epoch;
    int64_t messages;
    int64_t bytes;
  };
  static thread_local DeliveryTally* current_;
  SinkShared& shared_;
  std::vector<Count> counts_;  // in report order; epochs only grow
};
thread_local DeliveryTally* DeliveryTally::current_ = nullptr;

// A message librdkafka refused with a full queue, kept until it has room.
struct StashedMessage {
  std::string value;
  std::optional<std::string> key;
  uint64_t epoch;
};

struct TopicDeleter {
  void operator()(rd_kafka_topic_t* t) const { rd_kafka_topic_destroy(t); }
};
using TopicPtr = std::unique_ptr<rd_kafka_topic_t, TopicDeleter>;

// One librdkafka producer (in exactly-once mode: one slot, one
// transactional.id). Its delivery reports are served by poll jobs that the
// main queue's event callback posts. Thread-safe as librdkafka is; the
// transactional state is touched only by jobs on the sink's strand.
class Producer : public std::enable_shared_from_this<Producer> {
 public:
  Producer(int slot, std::string transactional_id, std::shared_ptr<SinkShared> shared)
      : slot_(slot), transactional_id_(std::move(transactional_id)), shared_(std::move(shared)) {}
  ~Producer() {
    if (queue_) rd_kafka_queue_cb_event_enable(queue_.get(), nullptr, nullptr);
    queue_.reset();
    topic_.reset();
    rk_.reset();  // before shared_, which the callbacks use
  }
  Producer(const Producer&) = delete;
  Producer& operator=(const Producer&) = delete;

  static Result<std::shared_ptr<Producer>> make(const KafkaSinkConfig& cfg, int slot,
                                                std::string transactional_id,
                                                std::shared_ptr<SinkShared> shared) {
    auto p = std::make_shared<Producer>(slot, std::move(transactional_id), std::move(shared));
    DF_RETURN_IF_ERROR(p->start(cfg));
    return p;
  }

  int slot() const { return slot_; }
  const std::string& transactional_id() const { return transactional_id_; }
  rd_kafka_t* rk() const { return rk_.get(); }
  rd_kafka_topic_t* topic() const { return topic_.get(); }
  const std::shared_ptr<SinkShared>& shared() const { return shared_; }

  // Exactly-once: set by the strand job once a transaction is begun.
  std::atomic<bool> ready{false};
  bool initialized = false;  // init_transactions done; strand jobs only

  // --- Messages librdkafka refused with a full queue. ---
  bool stash_empty() const { return stash_size_.load() == 0; }
  void stash(StashedMessage m) {
    std::lock_guard lock(stash_mu_);
    stash_.push_back(std::move(m));
    stash_size_.store(stash_.size());
  }

  // Serves delivery reports and errors, then retries stashed messages.
  void poll() {
    poll_posted_.store(false);
    {
      DeliveryTally tally(*shared_);
      DeliveryTally::Scope scope(tally);
      rd_kafka_poll(rk_.get(), 0);
    }  // settles what the reports acknowledged
    if (!stash_empty()) retry_stash();
  }

  // Posts a poll job (also used once after creation: reports queued before
  // the event callback was armed would never trigger it).
  void schedule_poll() {
    if (poll_posted_.exchange(true)) return;
    std::weak_ptr<Producer> weak = weak_from_this();
    if (!shared_->post_poll([weak] {
          if (auto self = weak.lock()) self->poll();
        })) {
      poll_posted_.store(false);
    }
  }

 private:
  Status start(const KafkaSinkConfig& cfg) {
    DF_ASSIGN_OR_RETURN(ConfPtr conf, make_conf(cfg.client));
    char err[512];
    if (!transactional_id_.empty() &&
        rd_kafka_conf_set(conf.get(), "transactional.id", transactional_id_.c_str(), err,
                          sizeof err) != RD_KAFKA_CONF_OK) {
      return Status::invalid(shared_->what() + ": kafka property 'transactional.id': " + err);
    }
    rd_kafka_conf_set_dr_msg_cb(conf.get(), &Producer::on_delivery);
    rd_kafka_conf_set_error_cb(conf.get(), &Producer::on_error);
    rd_kafka_conf_set_stats_cb(conf.get(), &Producer::on_stats);
    rd_kafka_conf_set_opaque(conf.get(), shared_.get());
    DF_ASSIGN_OR_RETURN(rk_, make_handle(RD_KAFKA_PRODUCER, std::move(conf), shared_->what()));
    topic_.reset(rd_kafka_topic_new(rk_.get(), cfg.topic.c_str(), nullptr));
    if (!topic_) {
      return kafka_status(rd_kafka_last_error(),
                          shared_->what() + ": cannot use topic '" + cfg.topic + "'");
    }
    queue_.reset(rd_kafka_queue_get_main(rk_.get()));
    rd_kafka_queue_cb_event_enable(queue_.get(), &Producer::on_queue_event, this);
    schedule_poll();
    return Status::OK();
  }

  void retry_stash() {
    std::lock_guard lock(stash_mu_);
    while (!stash_.empty()) {
      StashedMessage& m = stash_.front();
      const char* key = m.key ? m.key->data() : nullptr;
      const size_t key_len = m.key ? m.key->size() : 0;
      rd_kafka_resp_err_t e = rd_kafka_producev(
          rk_.get(), RD_KAFKA_V_RKT(topic_.get()), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
          RD_KAFKA_V_VALUE(m.value.data(), m.value.size()), RD_KAFKA_V_KEY(key, key_len),
          RD_KAFKA_V_OPAQUE(reinterpret_cast<void*>(static_cast<uintptr_t>(m.epoch))),
          RD_KAFKA_V_END);
      if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) break;  // the next reports poll again
      if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        shared_->settle(m.epoch, static_cast<int64_t>(m.value.size() + key_len),
                        kafka_status(e, shared_->what() + ": cannot produce"));
      }
      stash_.pop_front();
    }
    stash_size_.store(stash_.size());
    if (stash_.empty()) shared_->wake();
  }

  // librdkafka thread, main queue lock held: only post a job.
  static void on_queue_event(rd_kafka_t* rk, void* opaque) {
    (void)rk;
    static_cast<Producer*>(opaque)->schedule_poll();
  }

  // From rd_kafka_poll (a poll job, or a flush inside a transactional call).
  static void on_delivery(rd_kafka_t* rk, const rd_kafka_message_t* m, void* opaque) {
    (void)rk;
    auto* shared = static_cast<SinkShared*>(opaque);
    const auto epoch = static_cast<uint64_t>(reinterpret_cast<uintptr_t>(m->_private));
    const auto bytes = static_cast<int64_t>(m->len + m->key_len);
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      if (DeliveryTally* tally = DeliveryTally::active(shared)) {
        tally->add(epoch, bytes);
      } else {
        shared->settle(epoch, bytes);
      }
      return;
    }
    std::string where = shared->what() + ": cannot deliver to " +
                        std::string(m->rkt ? rd_kafka_topic_name(m->rkt) : "?") + "/" +
                        std::to_string(m->partition);
    shared->settle(epoch, bytes, kafka_status(m->err, where));
  }

  static int on_stats(rd_kafka_t* rk, char* json, size_t len, void* opaque) {
    (void)rk;
    static_cast<SinkShared*>(opaque)->on_stats(std::string_view(json, len));
    return 0;  // librdkafka frees `json`
  }

  static void on_error(rd_kafka_t* rk, int err, const char* reason, void* opaque) {
    auto* shared = static_cast<SinkShared*>(opaque);
    auto code = static_cast<rd_kafka_resp_err_t>(err);
    shared->on_connection_error(code, reason ? reason : "");
    if (code == RD_KAFKA_RESP_ERR__FATAL) {
      char buf[512];
      rd_kafka_resp_err_t orig = rd_kafka_fatal_error(rk, buf, sizeof buf);
      shared->fail(kafka_status(orig, shared->what() + ": fatal producer error", buf));
      return;
    }
    Status s = kafka_status(code, shared->what(), reason);
    if (s.code() == StatusCode::kInvalidArgument || s.code() == StatusCode::kNotFound) {
      shared->fail(std::move(s));  // authentication, authorization, unknown topic
    } else {
      shared->warn_unreachable(reason);
    }
  }

  const int slot_;
  const std::string transactional_id_;
  const std::shared_ptr<SinkShared> shared_;  // outlives rk_ (declared first)
  HandlePtr rk_;
  TopicPtr topic_;
  QueuePtr queue_;
  std::atomic<bool> poll_posted_{false};
  std::mutex stash_mu_;
  std::deque<StashedMessage> stash_;  // guarded by stash_mu_
  std::atomic<size_t> stash_size_{0};
};

// The transaction step record: log line plus DATAFLOW_KAFKA_TXN_LOG.
class TxnLog {
 public:
  TxnLog(std::string owner, std::string path) : owner_(std::move(owner)), path_(std::move(path)) {}

  void record(int slot, std::string_view step, uint64_t checkpoint) const {
    std::string line = owner_ + " " + std::to_string(slot) + " " + std::string(step) + " " +
                       checkpoint_text(checkpoint);
    log_info(kLogComponent, "transaction step: " + line);
    if (path_.empty()) return;
    line += '\n';
    static std::mutex mu;  // one line per write, whole lines across sinks
    std::lock_guard lock(mu);
    int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
      log_warn(kLogComponent, "cannot open " + path_ + " (" + kTxnLogEnv + ")");
      return;
    }
    Status s = write_all(fd, line, path_);
    ::close(fd);
    if (!s.ok()) log_warn(kLogComponent, s.message());
  }

 private:
  std::string owner_;
  std::string path_;
};

// The Status of a transactional call's error (nullptr: OK); destroys it.
// Retriable errors become Unavailable, whatever their code.
Status txn_status(rd_kafka_error_t* error, const std::string& what) {
  if (!error) return Status::OK();
  const bool retriable = rd_kafka_error_is_retriable(error);
  Status s = kafka_status(error, what);
  return retriable ? Status::unavailable(s.message()) : s;
}

// Runs a blocking librdkafka call again while it fails with Unavailable
// (unreachable brokers, timeouts), with exponential backoff (0.5 s .. 10 s)
// and a log line per attempt, until it succeeds, fails for good, or the sink
// is closed.
template <typename Call>
Status with_retries(SinkShared& shared, Call call) {
  auto backoff = std::chrono::milliseconds(500);
  while (true) {
    Status s = call();
    if (s.code() != StatusCode::kUnavailable) return s;
    if (shared.detached()) return s;
    log_warn(kLogComponent, s.message() + "; retrying in " + format_duration(backoff));
    sleep_unless(shared.detached_flag(), backoff);
    backoff = std::min<std::chrono::milliseconds>(backoff * 2, std::chrono::seconds(10));
  }
}

// Asks the brokers about the topic: an unknown topic or a refused
// authorization fails; unreachable brokers are retried with backoff.
Status check_topic(Producer& p, const std::string& topic) {
  SinkShared& shared = *p.shared();
  const std::string what = shared.what() + ": topic '" + topic + "'";
  return with_retries(shared, [&]() -> Status {
    const rd_kafka_metadata_t* md = nullptr;
    rd_kafka_resp_err_t err = rd_kafka_metadata(p.rk(), 0, p.topic(), &md, 5000);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR && md->topic_cnt == 1) err = md->topics[0].err;
    if (md) rd_kafka_metadata_destroy(md);
    if (err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART || err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC) {
      return kafka_status(
          err, what,
          "the topic does not exist (broker: " + std::string(rd_kafka_err2str(err)) + ")");
    }
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return Status::OK();
    return kafka_status(err, what);
  });
}

class KafkaSink final : public runtime::Operator {
 public:
  KafkaSink(std::shared_ptr<const KafkaSinkConfig> cfg, int subtask)
      : cfg_(std::move(cfg)),
        subtask_(subtask),
        json_(cfg_->schema),
        csv_(cfg_->schema, cfg_->csv) {}

  ~KafkaSink() override {
    if (shared_) shared_->detach();
  }

  Status open(runtime::OperatorContext& ctx) override {
    ctx_ = &ctx;
    what_ = "kafka sink '" + cfg_->node_id + "' subtask " + std::to_string(subtask_);
    io_.open(ctx);
    const char* log_path = std::getenv(kTxnLogEnv);
    txn_log_ = std::make_shared<const TxnLog>(cfg_->node_id + "/" + std::to_string(subtask_),
                                              log_path ? log_path : "");
    exactly_once_ = cfg_->delivery == Delivery::kExactlyOnce && ctx.checkpointing();
    if (cfg_->delivery == Delivery::kExactlyOnce && !ctx.checkpointing()) {
      log_info(kLogComponent, what_ + ": exactly_once without checkpoints delivers at least once");
    }
    int restored_slots = 0;
    if (const std::string* meta = ctx.restored_meta()) {
      Status s = restore(*meta, restored_slots);
      if (!s.ok())
        return Status::invalid(what_ + ": cannot read the checkpoint's meta: " + s.message());
    }
    DF_RETURN_IF_ERROR(make_shared_state(ctx));

    if (!exactly_once_) {
      DF_ASSIGN_OR_RETURN(auto p, Producer::make(*cfg_, -1, "", shared_));
      slots_.push_back({p, SlotState::kActive, 0});
      current_ = 0;
      io_.post(0, [p, topic = cfg_->topic] { return check_topic(*p, topic); });
      return Status::OK();
    }
    const int n = std::max(kMinSlots, restored_slots);
    for (int s = 0; s < n; ++s) {
      DF_ASSIGN_OR_RETURN(auto p, Producer::make(*cfg_, s, transactional_id(s), shared_));
      slots_.push_back({p, SlotState::kFree, 0});
    }
    io_.post(0, [p = slots_[0].producer, topic = cfg_->topic] { return check_topic(*p, topic); });
    // Fence every slot id the previous run may have used: init_transactions
    // aborts what it left open.
    for (int s = 0; s < n; ++s) {
      io_.post(0, [p = slots_[s].producer, log = txn_log_, from = last_checkpoint_] {
        return init_transactions(*p, *log, from);
      });
    }
    start_transaction(0);
    return Status::OK();
  }

  Status process(size_t input, const BatchPtr& batch, runtime::Output& out) override {
    (void)input;
    (void)out;
    DF_RETURN_IF_ERROR(first_error());
    Slot& slot = slots_[current_];
    if (!slot.producer->ready.load() && exactly_once_) {
      return Status::internal(what_ + ": a batch arrived before its transaction began");
    }
    produce(*slot.producer, *batch);
    return Status::OK();
  }

  Status finish(runtime::Output& out) override {
    (void)out;
    io_.set_finishing();
    return first_error();
  }

  Status snapshot(runtime::SnapshotContext& ctx) override {
    DF_RETURN_IF_ERROR(first_error());
    const uint64_t id = ctx.checkpoint_id();
    epoch_ = shared_->close_epoch(ctx.defer());
    produced_in_epoch_ = 0;
    if (!exactly_once_) {
      ctx.set_meta(Json{{"delivery", "at_least_once"}}.dump());
      return Status::OK();
    }
    if (current_ < 0) return Status::internal(what_ + ": a snapshot after the final one");
    Slot& closed = slots_[current_];
    closed.state = SlotState::kPrepared;
    closed.checkpoint = id;
    if (id != runtime::kFinalCheckpoint) {
      last_checkpoint_ = id;
      DF_RETURN_IF_ERROR(switch_to_next_slot());
    } else {
      current_ = -1;
    }
    ctx.set_meta(meta_json());
    return Status::OK();
  }

  Status checkpoint_complete(uint64_t id) override {
    if (!exactly_once_) return first_error();
    bool posted = false;
    for (size_t s = 0; s < slots_.size(); ++s) {
      Slot& slot = slots_[s];
      if (slot.state != SlotState::kPrepared || slot.checkpoint > id) continue;
      slot.producer->ready.store(false);
      io_.post(0,
               [p = slot.producer, log = txn_log_, shared = shared_, checkpoint = slot.checkpoint] {
                 Status s = with_retries(*shared, [&] {
                   return txn_status(rd_kafka_commit_transaction(p->rk(), -1),
                                     shared->what() + ": commit_transaction");
                 });
                 if (!s.ok()) return s;
                 log->record(p->slot(), "commit", checkpoint);
                 return Status::OK();
               });
      posted = true;
      // Begin the next transaction on the freed slot right away (behind the
      // commit on the strand), so the next barrier switches without waiting.
      if (current_ >= 0) {
        slot.state = SlotState::kStarting;
        post_begin(s);
      } else {
        slot.state = SlotState::kFree;
      }
    }
    if (posted) io_.wake_when_idle();
    return first_error();
  }

  // Errors must reach process()/close(), so a failed sink accepts.
  bool can_accept() const override {
    if (!shared_ || !first_error().ok()) return true;
    if (current_ < 0) return true;
    const Producer& p = *slots_[current_].producer;
    if (exactly_once_ && !p.ready.load()) return false;
    if (!p.stash_empty()) return false;
    return !shared_->over_limit();
  }

  bool drained() const override {
    if (!shared_) return true;
    if (!io_.idle()) return false;
    for (const Slot& s : slots_) {
      if (!s.producer->stash_empty()) return false;
    }
    return shared_->inflight() == 0;
  }

  Status close() override {
    Status err = first_error();
    Status io_err = io_.close();
    if (err.ok()) err = io_err;
    if (!shared_) return err;
    // Abort the open transaction if it holds rows nobody will commit, then
    // let the producers go, on the I/O pool: both may block.
    std::vector<std::shared_ptr<Producer>> producers;
    for (const Slot& s : slots_) producers.push_back(s.producer);
    std::shared_ptr<Producer> abort;
    if (exactly_once_ && current_ >= 0 && slots_[current_].state == SlotState::kActive &&
        produced_in_epoch_ > 0) {
      abort = slots_[current_].producer;
    }
    shared_->detach();
    ctx_->io().post(ctx_->io_strand(), [producers = std::move(producers), abort, log = txn_log_,
                                        from = last_checkpoint_, what = what_] {
      if (!abort || !abort->ready.load()) return;
      Status s = kafka_status(rd_kafka_abort_transaction(abort->rk(), 10000),
                              what + ": abort_transaction");
      if (s.ok()) {
        log->record(abort->slot(), "abort", from);
      } else {
        log_warn(kLogComponent, s.message());
      }
    });
    slots_.clear();
    return err;
  }

 private:
  enum class SlotState {
    kFree,      // no transaction (maybe not initialized yet)
    kStarting,  // a job begins its transaction (ready says when done)
    kActive,    // the current epoch writes into it
    kPrepared,  // closed at a barrier, waiting for checkpoint_complete
  };
  struct Slot {
    std::shared_ptr<Producer> producer;
    SlotState state = SlotState::kFree;
    uint64_t checkpoint = 0;  // kPrepared: the barrier that closed it
  };

  std::string transactional_id(int slot) const {
    return cfg_->transactional_id_prefix + "-" + std::to_string(subtask_) + "-" +
           std::to_string(slot);
  }

  Status first_error() const {
    if (shared_) DF_RETURN_IF_ERROR(shared_->error());
    return io_.error();
  }

  // The bounds of unacknowledged messages: half of librdkafka's queue, so a
  // whole batch always fits in what is left.
  Status make_shared_state(runtime::OperatorContext& ctx) {
    DF_ASSIGN_OR_RETURN(ConfPtr conf, make_conf(cfg_->client));
    char buf[64];
    size_t len = sizeof buf;
    int64_t max_msgs = 100000;
    int64_t max_kbytes = 65536;
    if (rd_kafka_conf_get(conf.get(), "queue.buffering.max.messages", buf, &len) ==
        RD_KAFKA_CONF_OK) {
      max_msgs = std::atoll(buf);
    }
    len = sizeof buf;
    if (rd_kafka_conf_get(conf.get(), "queue.buffering.max.kbytes", buf, &len) ==
        RD_KAFKA_CONF_OK) {
      max_kbytes = std::atoll(buf);
    }
    shared_ = std::make_shared<SinkShared>(what_, ctx, std::max<int64_t>(1, max_msgs / 2),
                                           std::max<int64_t>(1, max_kbytes * 1024 / 2));
    return Status::OK();
  }

  Status restore(const std::string& text, int& slots) {
    try {
      Json j = Json::parse(text);
      if (!j.is_object()) return Status::invalid("expected a JSON object");
      if (j.contains("slots")) slots = j.at("slots").get<int>();
      if (j.contains("transactional_id_prefix") &&
          j.at("transactional_id_prefix").get<std::string>() != cfg_->transactional_id_prefix) {
        log_warn(kLogComponent,
                 what_ + ": transactional_id_prefix changed since the checkpoint (was '" +
                     j.at("transactional_id_prefix").get<std::string>() +
                     "'); transactions the previous run left open are not fenced");
      }
      if (j.contains("pending")) {
        for (const Json& p : j.at("pending")) {
          uint64_t c = p.at("checkpoint").get<uint64_t>();
          if (c != runtime::kFinalCheckpoint) last_checkpoint_ = std::max(last_checkpoint_, c);
        }
      }
    } catch (const Json::exception& e) {
      return Status::invalid(e.what());
    }
    if (slots < 0 || slots > 1000)
      return Status::invalid("bad slot count " + std::to_string(slots));
    return Status::OK();
  }

  std::string meta_json() const {
    Json pending = Json::array();
    for (size_t s = 0; s < slots_.size(); ++s) {
      if (slots_[s].state == SlotState::kPrepared) {
        pending.push_back({{"checkpoint", slots_[s].checkpoint}, {"slot", s}});
      }
    }
    return Json{{"delivery", "exactly_once"},
                {"transactional_id_prefix", cfg_->transactional_id_prefix},
                {"slots", slots_.size()},
                {"pending", std::move(pending)}}
        .dump();
  }

  static Status init_transactions(Producer& p, const TxnLog& log, uint64_t from) {
    if (p.initialized) return Status::OK();
    DF_RETURN_IF_ERROR(with_retries(*p.shared(), [&] {
      return txn_status(rd_kafka_init_transactions(p.rk(), 30000),
                        p.shared()->what() + ": init_transactions");
    }));
    p.initialized = true;
    log.record(p.slot(), "init", from);
    return Status::OK();
  }

  // Posts: init_transactions if the slot never had it, then begin.
  void post_begin(size_t slot) {
    io_.post(
        0, [p = slots_[slot].producer, log = txn_log_, from = last_checkpoint_, shared = shared_] {
          DF_RETURN_IF_ERROR(init_transactions(*p, *log, from));
          DF_RETURN_IF_ERROR(kafka_status(rd_kafka_begin_transaction(p->rk()),
                                          shared->what() + ": begin_transaction"));
          log->record(p->slot(), "begin", from);
          p->ready.store(true);
          shared->wake();
          return Status::OK();
        });
  }

  void start_transaction(size_t slot) {
    slots_[slot].state = SlotState::kActive;
    current_ = static_cast<int>(slot);
    post_begin(slot);
  }

  // After a barrier: the next epoch goes to a slot whose transaction is
  // begun or beginning; else to a free slot; else to a new slot.
  Status switch_to_next_slot() {
    std::optional<size_t> next;
    for (size_t s = 0; s < slots_.size(); ++s) {
      if (slots_[s].state == SlotState::kStarting && (!next || slots_[s].producer->ready.load())) {
        next = s;
      }
    }
    if (next) {
      slots_[*next].state = SlotState::kActive;
      current_ = static_cast<int>(*next);
      return Status::OK();
    }
    for (size_t s = 0; s < slots_.size(); ++s) {
      if (slots_[s].state == SlotState::kFree) {
        start_transaction(s);
        return Status::OK();
      }
    }
    const int s = static_cast<int>(slots_.size());
    DF_ASSIGN_OR_RETURN(auto p, Producer::make(*cfg_, s, transactional_id(s), shared_));
    slots_.push_back({p, SlotState::kFree, 0});
    start_transaction(slots_.size() - 1);
    return Status::OK();
  }

  // Encodes every alive row and hands the batch to librdkafka in one call.
  void produce(Producer& p, const Batch& b) {
    const size_t n = b.active_rows();
    if (n == 0) return;
    ColumnPtr keys;
    if (cfg_->key) {
      keys = cfg_->key->evaluate(b, eval_);
      for (const auto& e : eval_.errors) {
        ctx_->report_data_error("key of row " + std::to_string(e.row) + ": " + e.message);
      }
      eval_.clear_errors();
    }
    values_.clear();
    keys_.clear();
    value_ends_.clear();
    key_ends_.clear();
    b.for_each_row([&](size_t r) {
      if (cfg_->format == Format::kJson) {
        json_.append_row(b, r, values_);
      } else {
        csv_.append_row(b, r, values_);
        if (!values_.empty() && values_.back() == '\n') values_.pop_back();  // one record
      }
      value_ends_.push_back(values_.size());
      bool has_key = keys && append_key_text(*keys, r, keys_);
      key_ends_.push_back(has_key ? static_cast<int64_t>(keys_.size()) : -1);
    });
    messages_.assign(n, rd_kafka_message_t{});
    const auto epoch_ptr = reinterpret_cast<void*>(static_cast<uintptr_t>(epoch_));
    size_t value_begin = 0;
    size_t key_begin = 0;
    for (size_t i = 0; i < n; ++i) {
      rd_kafka_message_t& m = messages_[i];
      m.payload = values_.data() + value_begin;
      m.len = value_ends_[i] - value_begin;
      value_begin = value_ends_[i];
      if (key_ends_[i] >= 0) {
        m.key = keys_.data() + key_begin;
        m.key_len = static_cast<size_t>(key_ends_[i]) - key_begin;
        key_begin = static_cast<size_t>(key_ends_[i]);
      }
      m._private = epoch_ptr;
    }
    shared_->add(epoch_, static_cast<int64_t>(n),
                 static_cast<int64_t>(values_.size() + keys_.size()));
    produced_in_epoch_ += n;
    rd_kafka_produce_batch(p.topic(), RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY, messages_.data(),
                           static_cast<int>(n));
    for (size_t i = 0; i < n; ++i) {
      const rd_kafka_message_t& m = messages_[i];
      if (m.err == RD_KAFKA_RESP_ERR_NO_ERROR) continue;
      const auto bytes = static_cast<int64_t>(m.len + m.key_len);
      if (m.err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        StashedMessage s{std::string(static_cast<const char*>(m.payload), m.len), std::nullopt,
                         epoch_};
        if (m.key) s.key.emplace(static_cast<const char*>(m.key), m.key_len);
        p.stash(std::move(s));
        continue;
      }
      if (m.err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE) {
        ctx_->report_data_error(what_ + ": a message of " + std::to_string(m.len) +
                                " bytes is larger than message.max.bytes; skipped");
        shared_->settle(epoch_, bytes);
        continue;
      }
      shared_->settle(epoch_, bytes, kafka_status(m.err, what_ + ": cannot produce"));
    }
    if (!p.stash_empty()) p.schedule_poll();
  }

  std::shared_ptr<const KafkaSinkConfig> cfg_;
  const int subtask_;
  runtime::OperatorContext* ctx_ = nullptr;
  std::string what_;
  JsonRowEncoder json_;
  CsvRowEncoder csv_;
  expr::EvalContext eval_;
  IoQueue io_;                             // the metadata check and transactional calls, in order
  std::shared_ptr<const TxnLog> txn_log_;  // shared with I/O jobs
  std::shared_ptr<SinkShared> shared_;
  std::vector<Slot> slots_;  // at-least-once: one, not transactional
  int current_ = -1;         // the slot the open epoch writes to; -1 after the final barrier
  bool exactly_once_ = false;
  uint64_t epoch_ = 0;              // the open epoch's id
  uint64_t produced_in_epoch_ = 0;  // messages of the open epoch
  uint64_t last_checkpoint_ = 0;    // the last barrier before the open epoch
  // Scratch of produce(), kept to reuse their memory.
  std::string values_;
  std::string keys_;
  std::vector<size_t> value_ends_;
  std::vector<int64_t> key_ends_;  // -1: no key
  std::vector<rd_kafka_message_t> messages_;
};

class PreparedKafkaSink final : public runtime::PreparedNode {
 public:
  explicit PreparedKafkaSink(std::shared_ptr<const KafkaSinkConfig> cfg) : cfg_(std::move(cfg)) {}
  SchemaPtr output_schema() const override { return nullptr; }
  std::unique_ptr<runtime::Operator> make_operator(int subtask, int parallelism) const override {
    (void)parallelism;
    return std::make_unique<KafkaSink>(cfg_, subtask);
  }
  std::string describe() const override {
    std::string d = "kafka " + cfg_->topic + " (" + std::string(format_name(cfg_->format));
    if (cfg_->key) d += ", key " + cfg_->key->to_string();
    if (cfg_->delivery == Delivery::kExactlyOnce) d += ", exactly once";
    return d + ")";
  }

 private:
  std::shared_ptr<const KafkaSinkConfig> cfg_;
};

}  // namespace

runtime::PreparedNodePtr KafkaSinkFactory::prepare(const runtime::NodeSpec& spec,
                                                   const std::vector<SchemaPtr>& inputs,
                                                   OptionReader& opts) const {
  const size_t errors_before = opts.diags().size();
  auto cfg = std::make_shared<KafkaSinkConfig>();
  cfg->node_id = spec.id;
  auto client = read_client_options(opts, defaults_, kSinkTuning);
  auto topic = opts.string("topic", true);
  if (topic && topic->empty()) report_option(opts, "topic", "must not be empty");
  auto format = read_format(opts, Format::kJson);
  if (const ConfigValue* csv = opts.get("csv"); csv && csv->find("header")) {
    opts.diags().error(csv->find("header")->location(),
                       opts.what() +
                           " option 'csv': 'header' does not apply to Kafka (each message is one "
                           "record)");
  }
  auto csv = read_csv_options(opts);
  const bool has_input = inputs.size() == 1 && inputs[0];
  if (!has_input) {
    opts.diags().error(opts.node().location(), opts.what() + " needs exactly one input");
  }
  if (const ConfigValue* key = opts.get("key")) {
    if (!key->is_scalar()) {
      report_option(opts, "key", "expected an expression, got " + std::string(key->kind_name()));
    } else if (has_input) {
      cfg->key = expr::compile(key->scalar_text(), *inputs[0], key->text_location(), opts.diags());
    }
  }
  if (auto mode = read_delivery(opts, spec.delivery)) cfg->delivery = *mode;
  cfg->transactional_id_prefix = "dataflow-" + spec.pipeline_name + "-" + spec.id;
  if (auto prefix = opts.string("transactional_id_prefix")) {
    if (prefix->empty()) {
      report_option(opts, "transactional_id_prefix", "must not be empty");
    } else {
      cfg->transactional_id_prefix = *prefix;
    }
  }
  if (client) {
    // librdkafka checks property names and values now, so `validate` reports them.
    ClientOptions full;
    full.brokers = client->brokers;
    for (const auto& [name, value] : kSinkProperties) full.properties.emplace_back(name, value);
    for (auto& p : client->properties) full.properties.push_back(std::move(p));
    if (auto conf = make_conf(full); !conf.ok()) {
      report_option(opts, "properties", conf.status().message());
    }
    cfg->client = std::move(full);
  }
  if (opts.diags().size() != errors_before || !client || !topic || !format || !csv) return nullptr;
  cfg->topic = *topic;
  cfg->format = *format;
  cfg->csv = *csv;
  cfg->schema = inputs[0];
  return std::make_shared<PreparedKafkaSink>(std::move(cfg));
}

}  // namespace df::connectors::kafka
