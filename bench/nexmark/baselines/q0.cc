// Baseline for bench/nexmark/q0.yaml: every bid, unchanged.
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
             {"price", b.price},
             {"channel", b.channel},
             {"url", b.url},
             {"date_time", Timestamp{b.date_time}},
             {"extra", b.extra}});
  }
  report("q0", args, out, clock);
}
