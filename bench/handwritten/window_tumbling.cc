// Hand-written yardstick for pipelines/window_tumbling.yaml: the same bids,
// per (10 s window, auction) count and max price, a window emitted when the
// (in-order) event time leaves it. One hash map, one loop.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <unordered_map>

struct Acc {
  int64_t count = 0;
  double top = 0;
};

int main(int argc, char** argv) {
  const int64_t rows = argc > 1 ? std::atoll(argv[1]) : 20'000'000;
  const int64_t keys = argc > 2 ? std::atoll(argv[2]) : 1'000;
  const int64_t size_ms = 10'000;
  auto start = std::chrono::steady_clock::now();
  std::unordered_map<int64_t, Acc> open;
  int64_t window = 0, emitted = 0, checksum = 0;
  auto fire = [&] {
    for (const auto& [auction, acc] : open) {
      ++emitted;
      checksum += acc.count + static_cast<int64_t>(acc.top) + auction;
    }
    open.clear();
  };
  for (int64_t i = 0; i < rows; ++i) {
    int64_t auction = (i * 7919) % keys;
    double price = static_cast<double>((i * 31) % 10000) / 100.0;
    int64_t ts = i;
    if (ts / size_ms != window) {
      fire();
      window = ts / size_ms;
    }
    Acc& a = open[auction];
    if (a.count == 0 || price > a.top) a.top = price;
    ++a.count;
  }
  fire();
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("handwritten rows=%lld windows_out=%lld checksum=%lld seconds=%.3f rows_per_s=%.0f\n",
              static_cast<long long>(rows), static_cast<long long>(emitted),
              static_cast<long long>(checksum), secs, rows / secs);
  return 0;
}
