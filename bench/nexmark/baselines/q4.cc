// Baseline for bench/nexmark/q4.yaml: per auction the highest bid between
// its opening and `expires` (inclusive), averaged per category at the end.
// Bids may name an auction up to 10 auctions ahead; they wait for it.
#include <map>
#include <unordered_map>
#include <vector>

#include "bench/nexmark/baselines/baseline.h"

using namespace df::bench::nexmark;

int main(int argc, char** argv) {
  const BaselineArgs args = parse_args(argc, argv);
  const NexmarkGenerator gen(args.generator);
  ResultRows out(args.out_path);
  Stopwatch clock;
  struct Open {
    int64_t category, opened, expires, best = -1;
  };
  std::unordered_map<int64_t, Open> open;
  std::unordered_map<int64_t, std::vector<std::pair<int64_t, int64_t>>>
      early;                                                   // auction -> (ts, price)
  std::map<int64_t, std::pair<double, int64_t>> per_category;  // category -> (sum, count)
  std::vector<int64_t> by_age;                                 // open auction ids, oldest first
  size_t oldest = 0;
  int64_t last_auction = 0;
  auto close = [&](const Open& o) {
    if (o.best < 0) return;
    auto& [sum, count] = per_category[o.category];
    sum += static_cast<double>(o.best);
    ++count;
  };
  auto offer = [](Open& o, int64_t ts, int64_t price) {
    if (ts >= o.opened && ts <= o.expires && price > o.best) o.best = price;
  };
  Auction a;
  Bid b;
  for (uint64_t n = 0; n < args.events; ++n) {
    switch (event_kind(n)) {
      case EventKind::kPerson:
        break;
      case EventKind::kAuction: {
        gen.auction(n, a);
        last_auction = a.id;
        Open& o = open[a.id] = Open{a.category, a.date_time, a.expires};
        by_age.push_back(a.id);
        if (auto e = early.find(a.id); e != early.end()) {
          for (auto [ts, price] : e->second) offer(o, ts, price);
          early.erase(e);
        }
        break;
      }
      case EventKind::kBid: {
        gen.bid(n, b);
        // Auctions that expired before this bid are final.
        while (oldest < by_age.size()) {
          auto it = open.find(by_age[oldest]);
          if (it->second.expires >= b.date_time) break;
          close(it->second);
          open.erase(it);
          ++oldest;
        }
        if (oldest > 4096 && oldest * 2 > by_age.size()) {
          by_age.erase(by_age.begin(), by_age.begin() + static_cast<ptrdiff_t>(oldest));
          oldest = 0;
        }
        if (auto it = open.find(b.auction); it != open.end()) {
          offer(it->second, b.date_time, b.price);
        } else if (b.auction > last_auction) {
          early[b.auction].emplace_back(b.date_time, b.price);
        }
        break;
      }
    }
  }
  for (const auto& [id, o] : open) close(o);
  for (const auto& [category, sc] : per_category) {
    out.row({{"category", category}, {"avg_final", sc.first / static_cast<double>(sc.second)}});
  }
  report("q4", args, out, clock);
}
