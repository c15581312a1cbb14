// Hand-written yardstick for pipelines/window_sliding.yaml: per auction, the
// count over 10 s windows sliding by 2 s; each bid lands in 5 windows, a
// window is emitted when the (in-order) event time passes its end.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <unordered_map>

int main(int argc, char** argv) {
  const int64_t rows = argc > 1 ? std::atoll(argv[1]) : 20'000'000;
  const int64_t keys = argc > 2 ? std::atoll(argv[2]) : 1'000;
  const int64_t size_ms = 10'000, slide_ms = 2'000;
  auto start = std::chrono::steady_clock::now();
  std::map<int64_t, std::unordered_map<int64_t, int64_t>> open;  // window start -> auction -> count
  int64_t emitted = 0, checksum = 0;
  auto fire_until = [&](int64_t watermark) {
    while (!open.empty() && open.begin()->first + size_ms - 1 <= watermark) {
      for (const auto& [auction, count] : open.begin()->second) {
        ++emitted;
        checksum += count + auction;
      }
      open.erase(open.begin());
    }
  };
  for (int64_t i = 0; i < rows; ++i) {
    int64_t auction = (i * 7919) % keys;
    int64_t ts = i;
    fire_until(ts - 1);
    int64_t last = ts - ts % slide_ms;
    for (int64_t w = last; w > ts - size_ms; w -= slide_ms) ++open[w][auction];
  }
  fire_until(INT64_MAX - size_ms);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("handwritten rows=%lld windows_out=%lld checksum=%lld seconds=%.3f rows_per_s=%.0f\n",
              static_cast<long long>(rows), static_cast<long long>(emitted),
              static_cast<long long>(checksum), secs, rows / secs);
  return 0;
}
