// Baseline for bench/nexmark/q5.yaml: per 10 s window sliding by 2 s, the
// auctions with the most bids. Events arrive in event-time order, so a
// window is final once an event at or after its end arrives.
#include <algorithm>
#include <map>
#include <unordered_map>

#include "bench/nexmark/baselines/baseline.h"

using namespace df::bench::nexmark;

int main(int argc, char** argv) {
  const BaselineArgs args = parse_args(argc, argv);
  const NexmarkGenerator gen(args.generator);
  ResultRows out(args.out_path);
  Stopwatch clock;
  const int64_t size = 10'000, slide = 2'000;
  std::map<int64_t, std::unordered_map<int64_t, int64_t>> windows;  // start -> auction -> bids
  auto fire_before = [&](int64_t ts) {
    while (!windows.empty() && windows.begin()->first + size <= ts) {
      const auto& counts = windows.begin()->second;
      int64_t maxn = 0;
      for (const auto& [auction, num] : counts) maxn = std::max(maxn, num);
      for (const auto& [auction, num] : counts) {
        if (num >= maxn) out.row({{"auction", auction}, {"num", num}});
      }
      windows.erase(windows.begin());
    }
  };
  Bid b;
  for (uint64_t n = 0; n < args.events; ++n) {
    if (event_kind(n) != EventKind::kBid) continue;
    gen.bid(n, b);
    fire_before(b.date_time);
    for (int64_t w = window_start(b.date_time, slide); w > b.date_time - size; w -= slide) {
      ++windows[w][b.auction];
    }
  }
  fire_before(INT64_MAX);
  report("q5", args, out, clock);
}
