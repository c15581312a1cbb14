// Baseline for bench/nexmark/q3.yaml: the unbounded join of category-10
// auctions with their sellers in OR, ID or CA. A seller may be created up to
// 10 people after its auction, so auctions wait for unknown sellers.
#include <unordered_map>
#include <vector>

#include "bench/nexmark/baselines/baseline.h"

using namespace df::bench::nexmark;

int main(int argc, char** argv) {
  const BaselineArgs args = parse_args(argc, argv);
  const NexmarkGenerator gen(args.generator);
  ResultRows out(args.out_path);
  Stopwatch clock;
  struct Seller {
    std::string name;
    std::string_view city, state;
  };
  std::unordered_map<int64_t, Seller> sellers;                // persons in OR, ID, CA
  std::unordered_map<int64_t, std::vector<int64_t>> waiting;  // seller -> auctions
  int64_t last_person = 0;
  Person p;
  Auction a;
  auto emit = [&](const Seller& s, int64_t auction) {
    out.row({{"name", s.name}, {"city", s.city}, {"state", s.state}, {"id", auction}});
  };
  for (uint64_t n = 0; n < args.events; ++n) {
    switch (event_kind(n)) {
      case EventKind::kPerson: {
        gen.person(n, p);
        last_person = p.id;
        auto w = waiting.find(p.id);
        if (p.state != "OR" && p.state != "ID" && p.state != "CA") {
          if (w != waiting.end()) waiting.erase(w);
          break;
        }
        Seller& s = sellers[p.id] = Seller{p.name, p.city, p.state};
        if (w != waiting.end()) {
          for (int64_t auction : w->second) emit(s, auction);
          waiting.erase(w);
        }
        break;
      }
      case EventKind::kAuction: {
        gen.auction(n, a);
        if (a.category != 10) break;
        if (auto s = sellers.find(a.seller); s != sellers.end()) {
          emit(s->second, a.id);
        } else if (a.seller > last_person) {
          waiting[a.seller].push_back(a.id);
        }
        break;
      }
      case EventKind::kBid:
        break;
    }
  }
  report("q3", args, out, clock);
}
