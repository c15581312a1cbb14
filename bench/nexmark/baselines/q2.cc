// Baseline for bench/nexmark/q2.yaml: the bids on every 123rd auction.
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
    if (b.auction % 123 == 0) out.row({{"auction", b.auction}, {"price", b.price}});
  }
  report("q2", args, out, clock);
}
