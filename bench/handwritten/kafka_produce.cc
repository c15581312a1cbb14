// Fills a Kafka topic for bench/kafka.sh: COUNT JSON messages of about 200
// bytes ({"id", "user", "amount", "ts", "note"}), no keys, message i to
// partition i % PARTITIONS, as fast as librdkafka batches them; waits for
// every ack. Round robin keeps the partitions equally full: the librdkafka
// mock keeps only about 5 MB per partition and drops older messages.
//   bench_kafka_produce BOOTSTRAP TOPIC PARTITIONS COUNT
#include <librdkafka/rdkafka.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace {

int failed = 0;

void on_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void*) {
  if (m->err && failed++ == 0) {
    std::fprintf(stderr, "kafka_produce: delivery failed: %s\n", rd_kafka_err2str(m->err));
  }
}

bool set(rd_kafka_conf_t* conf, const char* name, const char* value) {
  char err[512];
  if (rd_kafka_conf_set(conf, name, value, err, sizeof err) == RD_KAFKA_CONF_OK) return true;
  std::fprintf(stderr, "kafka_produce: %s: %s\n", name, err);
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5 || std::atoi(argv[3]) < 1) {
    std::fprintf(stderr, "usage: bench_kafka_produce BOOTSTRAP TOPIC PARTITIONS COUNT\n");
    return 2;
  }
  const int32_t partitions = std::atoi(argv[3]);
  const int64_t count = std::atoll(argv[4]);
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  if (!set(conf, "bootstrap.servers", argv[1]) || !set(conf, "linger.ms", "20") ||
      !set(conf, "batch.size", "100000") || !set(conf, "acks", "1") ||
      !set(conf, "queue.buffering.max.kbytes", "262144")) {
    return 2;
  }
  rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
  char err[512];
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  if (!rk) {
    std::fprintf(stderr, "kafka_produce: %s\n", err);
    return 1;
  }
  const auto start = std::chrono::steady_clock::now();
  const std::string pad(120, 'x');
  char buf[256];
  for (int64_t i = 0; i < count && failed == 0;) {
    const int len = std::snprintf(
        buf, sizeof buf,
        "{\"id\":%lld,\"user\":\"u%lld\",\"amount\":%lld,\"ts\":%lld,\"note\":\"%s\"}",
        static_cast<long long>(i), static_cast<long long>((i * 7919) % 10000),
        static_cast<long long>(i % 1000), 1'800'000'000'000LL + i, pad.c_str());
    rd_kafka_resp_err_t e = rd_kafka_producev(
        rk, RD_KAFKA_V_TOPIC(argv[2]), RD_KAFKA_V_PARTITION(static_cast<int32_t>(i % partitions)),
        RD_KAFKA_V_VALUE(buf, static_cast<size_t>(len)), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_END);
    if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
      rd_kafka_poll(rk, 10);  // the local queue is full: let deliveries drain it
      continue;
    }
    if (e) {
      std::fprintf(stderr, "kafka_produce: %s\n", rd_kafka_err2str(e));
      failed = 1;
      break;
    }
    rd_kafka_poll(rk, 0);
    ++i;
  }
  if (rd_kafka_flush(rk, 120000) != RD_KAFKA_RESP_ERR_NO_ERROR && failed == 0) {
    std::fprintf(stderr, "kafka_produce: not every message was acknowledged within 120 s\n");
    failed = 1;
  }
  rd_kafka_destroy(rk);
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (failed) return 1;
  std::printf("produced messages=%lld seconds=%.3f messages_per_s=%.0f\n",
              static_cast<long long>(count), secs, count / secs);
  return 0;
}
