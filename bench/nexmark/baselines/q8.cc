// Baseline for bench/nexmark/q8.yaml: people who opened an auction in the
// 10 s tumbling window they registered in. Events arrive in event-time order.
#include <unordered_map>
#include <unordered_set>

#include "bench/nexmark/baselines/baseline.h"

using namespace df::bench::nexmark;

int main(int argc, char** argv) {
  const BaselineArgs args = parse_args(argc, argv);
  const NexmarkGenerator gen(args.generator);
  ResultRows out(args.out_path);
  Stopwatch clock;
  const int64_t size = 10'000;
  int64_t current = INT64_MIN;                      // the open window's start
  std::unordered_map<int64_t, std::string> people;  // the window's new people
  std::unordered_set<int64_t> sellers;              // the window's sellers
  auto fire = [&] {
    for (const auto& [id, name] : people) {
      if (sellers.count(id))
        out.row({{"id", id}, {"name", name}, {"starttime", Timestamp{current}}});
    }
    people.clear();
    sellers.clear();
  };
  Person p;
  Auction a;
  for (uint64_t n = 0; n < args.events; ++n) {
    const EventKind kind = event_kind(n);
    if (kind == EventKind::kBid) continue;
    const int64_t w = window_start(gen.timestamp(n), size);
    if (w != current) {
      fire();
      current = w;
    }
    if (kind == EventKind::kPerson) {
      gen.person(n, p);
      people.emplace(p.id, p.name);
    } else {
      gen.auction(n, a);
      sellers.insert(a.seller);
    }
  }
  fire();
  report("q8", args, out, clock);
}
