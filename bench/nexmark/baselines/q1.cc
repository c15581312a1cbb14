// Baseline for bench/nexmark/q1.yaml: every bid with its price in euros.
#include "bench/nexmark/baselines/baseline.h"

using namespace df::bench::nexmark;

int main(int argc, char** argv) {
  const BaselineArgs args = parse_args(argc, argv);
  const NexmarkGenerator gen(args.generator);
  ResultRows out(args.out_path);
  Stopwatch clock;
  Bid b;
  for (uint64_t n = 0; n < args.events; ++n) {
    if (event_kind(n) != EventKind::kBid) continue;
    gen.bid(n, b);
    out.row({{"auction", b.auction},
             {"bidder", b.bidder},
             {"price", static_cast<double>(b.price) * 0.908},
             {"date_time", Timestamp{b.date_time}},
             {"extra", b.extra}});
  }
  report("q1", args, out, clock);
}
