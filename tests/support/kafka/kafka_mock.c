/* kafka_mock: a librdkafka mock cluster in its own process, for tests and
 * benchmarks.
 *
 *   kafka_mock [--brokers N] [--topic NAME:PARTITIONS]...
 *
 * Prints the bootstrap address ("127.0.0.1:p1,127.0.0.1:p2,...") as its first
 * stdout line once every topic exists, then runs until SIGTERM/SIGINT/SIGHUP,
 * until its parent dies, or until stdin reaches end of file when stdin is a
 * pipe or socket (so `kafka_mock < /dev/null &` keeps running). SIGUSR1
 * takes every broker down (connections closed, new ones refused) and SIGUSR2
 * brings them back; each prints "down" or "up" on stdout once done. The mock
 * brokers listen on the loopback interface only (librdkafka binds them to
 * 127.0.0.1); the helper checks that every advertised address is loopback.
 *
 * The mock accepts transactions without enforcing them (no fencing of
 * aborted records from read_committed consumers). Topics not created here
 * are auto-created by the mock on first produce. Exit code 0 after a clean
 * stop, 2 on bad arguments, 1 when the cluster cannot be created. */
#include <errno.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_TOPICS 64

struct topic_arg {
  char name[250];
  int partitions;
};

static void usage(const char* why) {
  fprintf(stderr, "kafka_mock: %s\nusage: kafka_mock [--brokers N] [--topic NAME:PARTITIONS]...\n",
          why);
  exit(2);
}

/* Parses a positive int in [1, max]; exits with a usage error otherwise. */
static int positive_int(const char* text, int max, const char* what) {
  char* end = NULL;
  long v = strtol(text, &end, 10);
  if (end == text || *end != '\0' || v < 1 || v > max) {
    char msg[300];
    snprintf(msg, sizeof msg, "%s must be an integer from 1 to %d, got '%s'", what, max, text);
    usage(msg);
  }
  return (int)v;
}

static void parse_topic(const char* spec, struct topic_arg* out) {
  const char* colon = strrchr(spec, ':');
  size_t len = colon ? (size_t)(colon - spec) : 0;
  if (!colon || len == 0 || len >= sizeof out->name) {
    usage("--topic needs NAME:PARTITIONS with a non-empty name under 250 characters");
  }
  memcpy(out->name, spec, len);
  out->name[len] = '\0';
  out->partitions = positive_int(colon + 1, 10000, "the partition count");
}

/* True when every comma-separated host of `bootstraps` is loopback. */
static int all_loopback(const char* bootstraps) {
  const char* p = bootstraps;
  while (*p) {
    if (strncmp(p, "127.", 4) != 0 && strncmp(p, "localhost:", 10) != 0) return 0;
    p = strchr(p, ',');
    if (!p) break;
    ++p;
  }
  return 1;
}

/* Takes every broker of the cluster down or up and says so on stdout. */
static void set_brokers(rd_kafka_mock_cluster_t* cluster, int brokers, int up) {
  for (int id = 1; id <= brokers; ++id) {
    rd_kafka_resp_err_t err = up ? rd_kafka_mock_broker_set_up(cluster, id)
                                 : rd_kafka_mock_broker_set_down(cluster, id);
    if (err) fprintf(stderr, "kafka_mock: broker %d: %s\n", id, rd_kafka_err2str(err));
  }
  printf("%s\n", up ? "up" : "down");
  fflush(stdout);
}

/* Blocks until a stop signal, parent death (delivered as SIGTERM) or, when
 * stdin is a pipe or socket, its end of file; serves SIGUSR1/SIGUSR2
 * (brokers down/up) meanwhile. */
static void wait_for_stop(int signal_fd, rd_kafka_mock_cluster_t* cluster, int brokers) {
  struct stat st;
  int watch_stdin = fstat(0, &st) == 0 && (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode));
  struct pollfd fds[2] = {{signal_fd, POLLIN, 0}, {watch_stdin ? 0 : -1, POLLIN, 0}};
  char buf[4096];
  for (;;) {
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[0].revents) {
      struct signalfd_siginfo info;
      if (read(signal_fd, &info, sizeof info) != (ssize_t)sizeof info) return;
      if (info.ssi_signo == SIGUSR1 || info.ssi_signo == SIGUSR2) {
        set_brokers(cluster, brokers, info.ssi_signo == SIGUSR2);
        continue;
      }
      return;
    }
    if (fds[1].revents) {
      ssize_t n = read(0, buf, sizeof buf); /* input is ignored; only its end counts */
      if (n <= 0 && !(n < 0 && errno == EINTR)) return;
    }
  }
}

int main(int argc, char** argv) {
  int brokers = 3;
  struct topic_arg topics[MAX_TOPICS];
  int topic_count = 0;
  for (int i = 1; i < argc; ++i) {
    if (strcmp(argv[i], "--brokers") == 0 && i + 1 < argc) {
      brokers = positive_int(argv[++i], 32, "--brokers");
    } else if (strcmp(argv[i], "--topic") == 0 && i + 1 < argc) {
      if (topic_count == MAX_TOPICS) usage("at most 64 --topic options");
      parse_topic(argv[++i], &topics[topic_count++]);
    } else {
      char msg[300];
      snprintf(msg, sizeof msg, "unknown or incomplete argument '%s'", argv[i]);
      usage(msg);
    }
  }

  /* Stop signals go to the signalfd; blocked before librdkafka starts its
   * threads so that they inherit the mask and never take them. */
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGHUP);
  sigaddset(&stop, SIGUSR1);
  sigaddset(&stop, SIGUSR2);
  sigprocmask(SIG_BLOCK, &stop, NULL);
  int signal_fd = signalfd(-1, &stop, SFD_CLOEXEC);
  if (signal_fd < 0) {
    perror("kafka_mock: signalfd");
    return 1;
  }
  /* A test that crashes must not leave the cluster behind. */
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (getppid() == 1) return 0; /* the parent died before prctl */

  char errstr[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  /* The host handle only does the mock's bookkeeping; it connects nowhere. */
  rd_kafka_conf_set(conf, "log_level", "4", errstr, sizeof errstr);
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
  if (!rk) {
    fprintf(stderr, "kafka_mock: cannot create the host handle: %s\n", errstr);
    return 1;
  }
  rd_kafka_mock_cluster_t* cluster = rd_kafka_mock_cluster_new(rk, brokers);
  if (!cluster) {
    fprintf(stderr, "kafka_mock: cannot create a mock cluster of %d brokers (see the log above)\n",
            brokers);
    rd_kafka_destroy(rk);
    return 1;
  }
  const char* bootstraps = rd_kafka_mock_cluster_bootstraps(cluster);
  int status = 0;
  if (!all_loopback(bootstraps)) {
    fprintf(stderr, "kafka_mock: the mock advertises non-loopback addresses: %s\n", bootstraps);
    status = 1;
  }
  int replication = brokers < 3 ? brokers : 3;
  for (int i = 0; i < topic_count && status == 0; ++i) {
    rd_kafka_resp_err_t err =
        rd_kafka_mock_topic_create(cluster, topics[i].name, topics[i].partitions, replication);
    if (err) {
      fprintf(stderr, "kafka_mock: cannot create topic '%s' with %d partitions: %s\n",
              topics[i].name, topics[i].partitions, rd_kafka_err2str(err));
      status = 1;
    }
  }
  if (status == 0) {
    printf("%s\n", bootstraps);
    fflush(stdout);
    wait_for_stop(signal_fd, cluster, brokers);
  }
  rd_kafka_mock_cluster_destroy(cluster);
  rd_kafka_destroy(rk);
  close(signal_fd);
  return status;
}
