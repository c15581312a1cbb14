// The hand-written yardstick for pipelines/gen_filter_map.yaml: the same
// rows, the same predicate and the same projection in one tight loop, the
// fastest simple program that does the job (McSherry's COST). It keeps every
// value live (sums them) so the compiler cannot drop the work.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

int main(int argc, char** argv) {
  const int64_t rows = argc > 1 ? std::atoll(argv[1]) : 100'000'000;
  auto start = std::chrono::steady_clock::now();
  int64_t kept = 0;
  int64_t id_sum = 0;
  double eur_sum = 0;
  for (int64_t i = 0; i < rows; ++i) {
    double price = static_cast<double>((i * 7919) % 1000) / 10.0;
    if (price > 50) {
      ++kept;
      id_sum += i;
      eur_sum += price * 0.908;
    }
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("handwritten rows=%lld kept=%lld id_sum=%lld eur_sum=%.1f seconds=%.3f rows_per_s=%.0f\n",
              static_cast<long long>(rows), static_cast<long long>(kept),
              static_cast<long long>(id_sum), eur_sum, secs, rows / secs);
  return 0;
}
