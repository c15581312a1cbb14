// Baseline for bench/nexmark/q7.yaml: per 10 s tumbling window, the bids with
// the window's highest price. Events arrive in event-time order.
#include <vector>

#include "bench/nexmark/baselines/baseline.h"

using namespace df::bench::nexmark;

int main(int argc, char** argv) {
  const BaselineArgs args = parse_args(argc, argv);
  const NexmarkGenerator gen(args.generator);
  ResultRows out(args.out_path);
  Stopwatch clock;
  const int64_t size = 10'000;
  int64_t current = INT64_MIN;  // the open window's start
  std::vector<Bid> top;         // the open window's bids at its highest price
  auto fire = [&] {
    for (const Bid& t : top) {
      out.row({{"auction", t.auction},
               {"price", t.price},
               {"bidder", t.bidder},
               {"date_time", Timestamp{t.date_time}},
               {"extra", t.extra}});
    }
    top.clear();
  };
  Bid b;
  for (uint64_t n = 0; n < args.events; ++n) {
    if (event_kind(n) != EventKind::kBid) continue;
    gen.bid(n, b);
    const int64_t w = window_start(b.date_time, size);
    if (w != current) {
      fire();
      current = w;
    }
    if (!top.empty() && b.price < top.front().price) continue;
    if (!top.empty() && b.price > top.front().price) top.clear();
    top.push_back(b);
  }
  fire();
  report("q7", args, out, clock);
}
