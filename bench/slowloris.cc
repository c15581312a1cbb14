// Slowloris clients for bench/http_load.sh, all in one process so that the
// load generator's own CPU is small and measurable: CLIENTS connections to
// 127.0.0.1:PORT, each sends a request line and the start of a header, then
// one more header byte every INTERVAL_MS, never ending the header. A
// connection the server cuts (header timeout, 503 over max_connections, a
// reset) comes back after 100 ms. Runs SECONDS (or until SIGTERM/SIGINT),
// then prints one line: connections opened, how they ended, bytes trickled
// and this process's CPU time.
//   bench_slowloris PORT CLIENTS SECONDS [INTERVAL_MS=1000]
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string_view>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;
using Millis = std::chrono::milliseconds;

constexpr std::string_view kRequestHead = "GET /api/v1/pipelines HTTP/1.1\r\nHost: x\r\nX-Slow: ";
constexpr Millis kReconnectAfter{100};

volatile sig_atomic_t stop_requested = 0;
void on_signal(int) { stop_requested = 1; }

struct Client {
  enum class State { kWaiting, kConnecting, kTrickling };
  State state = State::kWaiting;
  int fd = -1;
  Clock::time_point next;  // kWaiting: connect then; kTrickling: next byte then
  bool answered = false;   // the server sent a status line on this connection
};

struct Stats {
  long opened = 0;          // connections established
  long connect_failed = 0;  // refused, reset or timed out before established
  long cut = 0;             // closed by the server while trickling
  long bytes = 0;           // header bytes sent
  size_t peak_open = 0;
  std::map<int, long> statuses;  // status code the server answered with -> count
};

double cpu_seconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
         static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

void drop(Client& c, Clock::time_point now) {
  if (c.fd >= 0) ::close(c.fd);
  c.fd = -1;
  c.state = Client::State::kWaiting;
  c.next = now + kReconnectAfter;
  c.answered = false;
}

bool send_all(int fd, std::string_view bytes) {
  return ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(bytes.size());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4 || argc > 5 || std::atoi(argv[1]) <= 0 || std::atoi(argv[2]) <= 0) {
    std::fprintf(stderr, "usage: bench_slowloris PORT CLIENTS SECONDS [INTERVAL_MS=1000]\n");
    return 2;
  }
  const auto port = static_cast<uint16_t>(std::atoi(argv[1]));
  const auto clients = static_cast<size_t>(std::atoi(argv[2]));
  const auto deadline = Clock::now() + std::chrono::seconds(std::atoi(argv[3]));
  const Millis interval{argc == 5 ? std::max(1, std::atoi(argv[4])) : 1000};
  std::signal(SIGTERM, on_signal);
  std::signal(SIGINT, on_signal);
  rlimit files{};
  if (getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
    files.rlim_cur = files.rlim_max;
    setrlimit(RLIMIT_NOFILE, &files);
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

  // Connections start spread over one interval, so their bytes do not arrive
  // in bursts.
  std::vector<Client> pool(clients);
  const auto start = Clock::now();
  for (size_t i = 0; i < clients; ++i) pool[i].next = start + interval * i / clients;
  Stats stats;
  std::vector<pollfd> fds;
  std::vector<size_t> owner;  // fds[k] belongs to pool[owner[k]]
  while (!stop_requested && Clock::now() < deadline) {
    auto now = Clock::now();
    auto wake = now + Millis(100);
    size_t open = 0;
    for (Client& c : pool) {
      if (c.state == Client::State::kWaiting && now >= c.next) {
        c.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        if (c.fd < 0) {
          ++stats.connect_failed;
          drop(c, now);
        } else if (::connect(c.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 ||
                   errno == EINPROGRESS) {
          c.state = Client::State::kConnecting;
        } else {
          ++stats.connect_failed;
          drop(c, now);
        }
      }
      if (c.state == Client::State::kTrickling && now >= c.next) {
        if (send_all(c.fd, "a")) {
          ++stats.bytes;
          c.next += interval;
        } else {
          ++stats.cut;
          drop(c, now);
        }
      }
      if (c.state != Client::State::kConnecting) wake = std::min(wake, c.next);
      if (c.state != Client::State::kWaiting) ++open;
    }
    stats.peak_open = std::max(stats.peak_open, open);

    fds.clear();
    owner.clear();
    for (size_t i = 0; i < pool.size(); ++i) {
      const Client& c = pool[i];
      if (c.state == Client::State::kWaiting) continue;
      const short events = c.state == Client::State::kConnecting ? POLLOUT : POLLIN;
      fds.push_back({c.fd, events, 0});
      owner.push_back(i);
    }
    const auto timeout = std::chrono::duration_cast<Millis>(wake - now).count();
    if (::poll(fds.data(), fds.size(), static_cast<int>(std::max<long>(0, timeout) + 1)) < 0) {
      if (errno == EINTR) continue;
      std::perror("bench_slowloris: poll");
      return 1;
    }
    now = Clock::now();
    for (size_t k = 0; k < fds.size(); ++k) {
      if (fds[k].revents == 0) continue;
      Client& c = pool[owner[k]];
      if (c.state == Client::State::kConnecting) {
        int error = 0;
        socklen_t length = sizeof error;
        ::getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &error, &length);
        if (error != 0 || !send_all(c.fd, kRequestHead)) {
          ++stats.connect_failed;
          drop(c, now);
          continue;
        }
        ++stats.opened;
        stats.bytes += static_cast<long>(kRequestHead.size());
        c.state = Client::State::kTrickling;
        c.next = now + interval;
        continue;
      }
      char buffer[4096];
      const ssize_t n = ::recv(c.fd, buffer, sizeof buffer, 0);
      if (n > 0) {
        // "HTTP/1.1 503 ..." on the first read of a response.
        if (!c.answered && n >= 12 && std::memcmp(buffer, "HTTP/1.", 7) == 0) {
          ++stats.statuses[std::atoi(buffer + 9)];
        }
        c.answered = true;
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      ++stats.cut;  // EOF or reset: the server ended it
      drop(c, now);
    }
  }
  for (Client& c : pool) {
    if (c.fd >= 0) ::close(c.fd);
  }
  std::printf(
      "slowloris: %zu clients, %ld connections opened (peak %zu open), %ld cut by the "
      "server, %ld failed to connect, %ld header bytes sent; answers:",
      clients, stats.opened, stats.peak_open, stats.cut, stats.connect_failed, stats.bytes);
  if (stats.statuses.empty()) std::printf(" none");
  for (const auto& [status, count] : stats.statuses) std::printf(" %d x%ld", status, count);
  std::printf("; cpu %.2f s\n", cpu_seconds());
  return 0;
}
