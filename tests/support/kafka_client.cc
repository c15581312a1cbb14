#include "tests/support/kafka_client.h"

#include <algorithm>
#include <atomic>
#include <memory>
#include <set>

#if defined(__SANITIZE_THREAD__)
#include <pthread.h>
#include <threads.h>

#include <cerrno>
#include <cstdint>

// librdkafka starts its threads with C11 thrd_create, which glibc runs
// without going through pthread_create, so ThreadSanitizer never registers
// them and crashes on their first allocation. Starting them through the
// intercepted pthread_create fixes that; a definition in the executable
// takes precedence over libc's for librdkafka. thrd_t is pthread_t, so
// the handles are interchangeable.
namespace {
struct ThrdStart {
  thrd_start_t fn;
  void* arg;
};
void* thrd_trampoline(void* p) {
  const ThrdStart start = *static_cast<ThrdStart*>(p);
  delete static_cast<ThrdStart*>(p);
  return reinterpret_cast<void*>(static_cast<intptr_t>(start.fn(start.arg)));
}
}  // namespace

extern "C" int thrd_create(thrd_t* thr, thrd_start_t fn, void* arg) {
  auto* start = new ThrdStart{fn, arg};
  const int rc = pthread_create(thr, nullptr, thrd_trampoline, start);
  if (rc == 0) return thrd_success;
  delete start;
  return rc == ENOMEM ? thrd_nomem : thrd_error;
}
// Joins and detaches must be seen too, or a reused thread id looks like a
// second thread.
extern "C" int thrd_join(thrd_t thr, int* res) {
  void* out = nullptr;
  if (pthread_join(thr, &out) != 0) return thrd_error;
  if (res) *res = static_cast<int>(reinterpret_cast<intptr_t>(out));
  return thrd_success;
}
extern "C" int thrd_detach(thrd_t thr) {
  return pthread_detach(thr) == 0 ? thrd_success : thrd_error;
}
#endif

namespace df::test {

namespace {

using Clock = std::chrono::steady_clock;
using Properties = std::vector<std::pair<std::string, std::string>>;

struct HandleDeleter {
  void operator()(rd_kafka_t* rk) const { rd_kafka_destroy(rk); }
};
using Handle = std::unique_ptr<rd_kafka_t, HandleDeleter>;
struct ListDeleter {
  void operator()(rd_kafka_topic_partition_list_t* l) const {
    rd_kafka_topic_partition_list_destroy(l);
  }
};
using PartitionList = std::unique_ptr<rd_kafka_topic_partition_list_t, ListDeleter>;

int timeout_ms(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return static_cast<int>(std::max<int64_t>(0, left.count()));
}

Status kafka_error(std::string_view what, rd_kafka_resp_err_t err) {
  return Status::io_error(std::string(what) + ": " + rd_kafka_err2str(err));
}

// A client of `type` with bootstrap.servers, quiet logging and `properties`.
Result<Handle> make_client(rd_kafka_type_t type, const std::string& bootstrap,
                           const Properties& base, const Properties& properties,
                           void* opaque = nullptr,
                           void (*dr_msg_cb)(rd_kafka_t*, const rd_kafka_message_t*,
                                             void*) = nullptr) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char err[512];
  Properties all = {{"bootstrap.servers", bootstrap}, {"log.connection.close", "false"}};
  all.insert(all.end(), base.begin(), base.end());
  all.insert(all.end(), properties.begin(), properties.end());
  for (const auto& [name, value] : all) {
    if (rd_kafka_conf_set(conf, name.c_str(), value.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      return Status::invalid("kafka property '" + name + "': " + err);
    }
  }
  if (opaque) rd_kafka_conf_set_opaque(conf, opaque);
  if (dr_msg_cb) rd_kafka_conf_set_dr_msg_cb(conf, dr_msg_cb);
  rd_kafka_t* rk = rd_kafka_new(type, conf, err, sizeof err);
  if (!rk) {
    rd_kafka_conf_destroy(conf);
    return Status::invalid(std::string("cannot create a Kafka client: ") + err);
  }
  return Handle(rk);
}

Result<Handle> make_consumer(const std::string& bootstrap, const std::string& group,
                             const Properties& properties = {}) {
  return make_client(RD_KAFKA_CONSUMER, bootstrap,
                     {{"group.id", group},
                      {"enable.auto.commit", "false"},
                      {"enable.partition.eof", "true"},
                      {"auto.offset.reset", "earliest"}},
                     properties);
}

std::string unique_group(std::string_view purpose) {
  static std::atomic<uint64_t> counter{0};
  return "df-test-" + std::string(purpose) + "-" +
         std::to_string(Clock::now().time_since_epoch().count()) + "-" +
         std::to_string(counter.fetch_add(1));
}

// The partition ids of `topic`; NotFound when the broker does not know it.
Result<std::vector<int32_t>> partitions_of(rd_kafka_t* rk, const std::string& topic,
                                           Clock::time_point deadline) {
  rd_kafka_topic_t* t = rd_kafka_topic_new(rk, topic.c_str(), nullptr);
  const rd_kafka_metadata_t* md = nullptr;
  rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, t, &md, std::max(1, timeout_ms(deadline)));
  rd_kafka_topic_destroy(t);
  if (err) return kafka_error("metadata of topic '" + topic + "'", err);
  std::vector<int32_t> out;
  Status status;
  for (int i = 0; i < md->topic_cnt; ++i) {
    const rd_kafka_metadata_topic_t& mt = md->topics[i];
    if (topic != mt.topic) continue;
    if (mt.err) {
      status = mt.err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART
                   ? Status::not_found("topic '" + topic + "' does not exist")
                   : kafka_error("metadata of topic '" + topic + "'", mt.err);
      break;
    }
    for (int p = 0; p < mt.partition_cnt; ++p) out.push_back(mt.partitions[p].id);
  }
  rd_kafka_metadata_destroy(md);
  if (!status.ok()) return status;
  if (out.empty()) return Status::not_found("topic '" + topic + "' has no partitions");
  std::sort(out.begin(), out.end());
  return out;
}

struct DeliveryState {
  std::atomic<size_t> delivered{0};
  std::atomic<bool> failed{false};
  std::string first_error;  // written once, before `failed` is set
};

void on_delivery(rd_kafka_t*, const rd_kafka_message_t* msg, void* opaque) {
  auto* state = static_cast<DeliveryState*>(opaque);
  if (msg->err && !state->failed.load()) {
    state->first_error = rd_kafka_err2str(msg->err);
    state->failed.store(true);
  }
  state->delivered.fetch_add(1);
}

}  // namespace

MockCluster::MockCluster(int brokers) {
  auto rk = make_client(RD_KAFKA_PRODUCER, "", {{"log.connection.close", "false"}}, {});
  if (!rk.ok()) {
    error_ = rk.status().message();
    return;
  }
  cluster_ = rd_kafka_mock_cluster_new(rk->get(), brokers);
  if (!cluster_) {
    error_ = "rd_kafka_mock_cluster_new failed";
    return;
  }
  handle_ = rk->release();
  bootstrap_ = rd_kafka_mock_cluster_bootstraps(cluster_);
}

MockCluster::~MockCluster() {
  if (cluster_) rd_kafka_mock_cluster_destroy(cluster_);
  if (handle_) rd_kafka_destroy(handle_);
}

Status MockCluster::create_topic(const std::string& topic, int partitions, int replication) {
  rd_kafka_resp_err_t err =
      rd_kafka_mock_topic_create(cluster_, topic.c_str(), partitions, replication);
  if (err) return kafka_error("create topic '" + topic + "'", err);
  return Status::OK();
}

Status MockCluster::set_broker_down(int id) {
  rd_kafka_resp_err_t err = rd_kafka_mock_broker_set_down(cluster_, id);
  if (err) return kafka_error("broker " + std::to_string(id) + " down", err);
  return Status::OK();
}

Status MockCluster::set_broker_up(int id) {
  rd_kafka_resp_err_t err = rd_kafka_mock_broker_set_up(cluster_, id);
  if (err) return kafka_error("broker " + std::to_string(id) + " up", err);
  return Status::OK();
}

void MockCluster::push_request_errors(int16_t api_key, size_t count, rd_kafka_resp_err_t error) {
  std::vector<rd_kafka_resp_err_t> errors(count, error);
  rd_kafka_mock_push_request_errors_array(cluster_, api_key, count, errors.data());
}

std::vector<ProduceRecord> values_records(size_t n, int32_t partition) {
  std::vector<ProduceRecord> out(n);
  for (size_t i = 0; i < n; ++i) {
    out[i].value = std::to_string(i);
    out[i].partition = partition;
  }
  return out;
}

Status produce(const std::string& bootstrap, const std::string& topic,
               const std::vector<ProduceRecord>& records, std::chrono::milliseconds timeout,
               const Properties& properties) {
  const Clock::time_point deadline = Clock::now() + timeout;
  DeliveryState state;
  DF_ASSIGN_OR_RETURN(
      Handle rk, make_client(RD_KAFKA_PRODUCER, bootstrap, {{"acks", "all"}, {"linger.ms", "5"}},
                             properties, &state, on_delivery));
  for (const ProduceRecord& r : records) {
    for (;;) {
      const void* key = r.key ? r.key->data() : nullptr;
      const size_t key_len = r.key ? r.key->size() : 0;
      void* value = r.value ? const_cast<char*>(r.value->data()) : nullptr;
      const size_t value_len = r.value ? r.value->size() : 0;
      rd_kafka_resp_err_t err = rd_kafka_producev(
          rk.get(), RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_PARTITION(r.partition),
          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(key, key_len),
          RD_KAFKA_V_VALUE(value, value_len), RD_KAFKA_V_TIMESTAMP(r.timestamp_ms), RD_KAFKA_V_END);
      if (err == RD_KAFKA_RESP_ERR_NO_ERROR) break;
      if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
        return kafka_error("produce to '" + topic + "'", err);
      if (Clock::now() >= deadline)
        return Status::unavailable("produce to '" + topic + "': timed out");
      rd_kafka_poll(rk.get(), 10);
    }
    rd_kafka_poll(rk.get(), 0);
  }
  rd_kafka_resp_err_t err = rd_kafka_flush(rk.get(), std::max(1, timeout_ms(deadline)));
  if (state.failed.load()) {
    return Status::io_error("produce to '" + topic + "': " + state.first_error);
  }
  if (err || state.delivered.load() != records.size()) {
    return Status::unavailable("produce to '" + topic +
                               "': " + std::to_string(records.size() - state.delivered.load()) +
                               " messages not acknowledged in time");
  }
  return Status::OK();
}

Result<std::vector<ConsumedMessage>> consume_all(const std::string& bootstrap,
                                                 const std::string& topic,
                                                 std::chrono::milliseconds timeout,
                                                 const Properties& properties) {
  const Clock::time_point deadline = Clock::now() + timeout;
  DF_ASSIGN_OR_RETURN(Handle rk, make_consumer(bootstrap, unique_group("consume"), properties));
  DF_ASSIGN_OR_RETURN(std::vector<int32_t> parts, partitions_of(rk.get(), topic, deadline));
  PartitionList list(rd_kafka_topic_partition_list_new(static_cast<int>(parts.size())));
  for (int32_t p : parts) {
    rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), p)->offset =
        RD_KAFKA_OFFSET_BEGINNING;
  }
  if (rd_kafka_resp_err_t err = rd_kafka_assign(rk.get(), list.get())) {
    return kafka_error("assign '" + topic + "'", err);
  }
  std::vector<ConsumedMessage> out;
  std::set<int32_t> open(parts.begin(), parts.end());
  while (!open.empty()) {
    if (Clock::now() >= deadline) {
      rd_kafka_assign(rk.get(), nullptr);
      return Status::unavailable("consume '" + topic + "': the end of " +
                                 std::to_string(open.size()) + " partitions not reached in time");
    }
    rd_kafka_message_t* m = rd_kafka_consumer_poll(rk.get(), 100);
    if (!m) continue;
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      open.erase(m->partition);
    } else if (m->err) {
      Status s = kafka_error("consume '" + topic + "'", m->err);
      rd_kafka_message_destroy(m);
      rd_kafka_assign(rk.get(), nullptr);
      return s;
    } else {
      ConsumedMessage c;
      c.topic = topic;
      c.partition = m->partition;
      c.offset = m->offset;
      if (m->key) c.key.emplace(static_cast<const char*>(m->key), m->key_len);
      if (m->payload) c.value.emplace(static_cast<const char*>(m->payload), m->len);
      rd_kafka_timestamp_type_t type;
      c.timestamp_ms = rd_kafka_message_timestamp(m, &type);
      out.push_back(std::move(c));
    }
    rd_kafka_message_destroy(m);
  }
  rd_kafka_assign(rk.get(), nullptr);
  rd_kafka_consumer_close(rk.get());
  std::sort(out.begin(), out.end(), [](const ConsumedMessage& a, const ConsumedMessage& b) {
    return std::pair(a.partition, a.offset) < std::pair(b.partition, b.offset);
  });
  return out;
}

Result<int> partition_count(const std::string& bootstrap, const std::string& topic,
                            std::chrono::milliseconds timeout) {
  const Clock::time_point deadline = Clock::now() + timeout;
  DF_ASSIGN_OR_RETURN(Handle rk, make_consumer(bootstrap, unique_group("meta")));
  DF_ASSIGN_OR_RETURN(std::vector<int32_t> parts, partitions_of(rk.get(), topic, deadline));
  return static_cast<int>(parts.size());
}

Result<std::map<int32_t, int64_t>> end_offsets(const std::string& bootstrap,
                                               const std::string& topic,
                                               std::chrono::milliseconds timeout) {
  const Clock::time_point deadline = Clock::now() + timeout;
  DF_ASSIGN_OR_RETURN(Handle rk, make_consumer(bootstrap, unique_group("ends")));
  DF_ASSIGN_OR_RETURN(std::vector<int32_t> parts, partitions_of(rk.get(), topic, deadline));
  std::map<int32_t, int64_t> out;
  for (int32_t p : parts) {
    int64_t low = 0;
    int64_t high = 0;
    rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(
        rk.get(), topic.c_str(), p, &low, &high, std::max(1, timeout_ms(deadline)));
    if (err) return kafka_error("end offset of " + topic + "/" + std::to_string(p), err);
    out[p] = high;
  }
  return out;
}

Result<std::map<int32_t, int64_t>> committed_offsets(const std::string& bootstrap,
                                                     const std::string& group,
                                                     const std::string& topic,
                                                     std::chrono::milliseconds timeout) {
  const Clock::time_point deadline = Clock::now() + timeout;
  DF_ASSIGN_OR_RETURN(Handle rk, make_consumer(bootstrap, group));
  DF_ASSIGN_OR_RETURN(std::vector<int32_t> parts, partitions_of(rk.get(), topic, deadline));
  PartitionList list(rd_kafka_topic_partition_list_new(static_cast<int>(parts.size())));
  for (int32_t p : parts) rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), p);
  if (rd_kafka_resp_err_t err =
          rd_kafka_committed(rk.get(), list.get(), std::max(1, timeout_ms(deadline)))) {
    return kafka_error("committed offsets of group '" + group + "'", err);
  }
  std::map<int32_t, int64_t> out;
  for (int i = 0; i < list->cnt; ++i) {
    const rd_kafka_topic_partition_t& tp = list->elems[i];
    if (tp.err)
      return kafka_error("committed offset of " + topic + "/" + std::to_string(tp.partition),
                         tp.err);
    if (tp.offset >= 0) out[tp.partition] = tp.offset;
  }
  return out;
}

}  // namespace df::test
