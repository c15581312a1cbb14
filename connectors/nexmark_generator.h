// The Nexmark event generator: the one definition of the benchmark's
// people, auctions and bids, shared by the `nexmark` source
// (nexmark_source.h) and the hand-written baselines in bench/nexmark/.
// Header-only and free of engine types so a baseline is a plain program
// (engine/core/digits.h is a lone inline function).
//
// It follows the published generator's rules (Beam/Flink `GeneratorConfig`,
// `PersonGenerator`, `AuctionGenerator`, `BidGenerator`):
//   - event n (n = 0, 1, 2, ...; the event id) is a person, an auction or a
//     bid by n % 50: 0 -> person, 1..3 -> auction, 4..49 -> bid (1 : 3 : 46);
//   - person ids start at 1000 and grow by one per person; auction ids start
//     at 1000 and grow by one per auction; categories are 10..14;
//   - an auction's seller is, 3 times in 4, the latest "hot" seller (the last
//     person id rounded down to a multiple of 100), else one of the 1000 most
//     recent people (or up to 10 not yet created);
//   - a bid's auction is, 1 time in 2, the latest hot auction (the last
//     auction id rounded down to 100), else one of the 100 most recent
//     auctions (or up to 10 not yet created); its bidder is, 3 times in 4, the
//     latest hot bidder (last person id rounded down to 100, plus 1), else as
//     for sellers;
//   - prices are round(10^(6u) * 100) for u uniform in [0, 1) (cents, 1..1e8);
//   - an auction expires 1 + [0, 2h) ms after it opens, h being the event-time
//     span of the next 1666 events (100 in-flight auctions);
//   - `extra` pads each event to the published average size (person 200,
//     auction 500, bid 100 bytes);
//   - event n happens at base_time + n * 1000 / event_rate ms.
// Random values come from a generator seeded by (seed, n) alone, so every
// event depends only on the seed and its number: any slicing of the event
// numbers (parallel subtasks, one table per source) yields the same events.
// The per-event generator is not Java's, so values differ from other
// implementations; the distributions and id spaces are the published ones.
//
// Thread-safety: a NexmarkGenerator is immutable; call it from any thread.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <iterator>
#include <string>
#include <string_view>

#include "engine/core/digits.h"

namespace df::connectors::nexmark {

inline constexpr uint64_t kProportionDenominator = 50;  // person 1 + auction 3 + bid 46
inline constexpr uint64_t kPersonProportion = 1;
inline constexpr uint64_t kAuctionProportion = 3;
inline constexpr int64_t kFirstPersonId = 1000;
inline constexpr int64_t kFirstAuctionId = 1000;
inline constexpr int64_t kFirstCategoryId = 10;
inline constexpr int64_t kNumCategories = 5;
inline constexpr int64_t kNumActivePeople = 1000;
inline constexpr int64_t kNumInFlightAuctions = 100;
inline constexpr int64_t kPersonIdLead = 10;
inline constexpr int64_t kAuctionIdLead = 10;
// "1 in ratio is cold": 1/2 of bids go to the hot auction, 3/4 of auctions
// to the hot seller, 3/4 of bids from the hot bidder.
inline constexpr uint64_t kHotAuctionRatio = 2;
inline constexpr uint64_t kHotSellersRatio = 4;
inline constexpr uint64_t kHotBiddersRatio = 4;
// Hot ids are the latest id rounded down to a multiple of this.
inline constexpr int64_t kHotIdGranularity = 100;
inline constexpr int kAvgPersonBytes = 200;
inline constexpr int kAvgAuctionBytes = 500;
inline constexpr int kAvgBidBytes = 100;
inline constexpr uint64_t kDefaultEventRate = 10'000'000;         // Flink nexmark's default TPS
inline constexpr int64_t kDefaultBaseTimeMs = 1'735'689'600'000;  // 2025-01-01T00:00:00Z

enum class EventKind { kPerson, kAuction, kBid };

inline EventKind event_kind(uint64_t event_number) {
  const uint64_t r = event_number % kProportionDenominator;
  if (r < kPersonProportion) return EventKind::kPerson;
  if (r < kPersonProportion + kAuctionProportion) return EventKind::kAuction;
  return EventKind::kBid;
}

struct Person {
  int64_t id = 0;
  std::string name;
  std::string email_address;
  std::string credit_card;
  std::string_view city;
  std::string_view state;
  int64_t date_time = 0;
  std::string extra;
};

struct Auction {
  int64_t id = 0;
  std::string item_name;
  std::string description;
  int64_t initial_bid = 0;
  int64_t reserve = 0;
  int64_t date_time = 0;
  int64_t expires = 0;
  int64_t seller = 0;
  int64_t category = 0;
  std::string extra;
};

struct Bid {
  int64_t auction = 0;
  int64_t bidder = 0;
  int64_t price = 0;
  std::string channel;
  std::string url;
  int64_t date_time = 0;
  std::string extra;
};

struct NexmarkConfig {
  uint64_t seed = 0;
  uint64_t event_rate = kDefaultEventRate;  // events per second of event time; > 0
  int64_t base_time_ms = kDefaultBaseTimeMs;
};

// The random stream of one event: splitmix64 over a state seeded by
// (seed, event number).
class EventRandom {
 public:
  EventRandom(uint64_t seed, uint64_t event_number)
      : state_(mix(seed ^ mix(event_number + 0x632be59bd9b4e019ULL))) {}
  uint64_t next() {
    state_ += 0x9e3779b97f4a7c15ULL;
    return mix(state_);
  }
  // Uniform in [0, n); n > 0.
  uint64_t below(uint64_t n) {
    return static_cast<uint64_t>((static_cast<unsigned __int128>(next()) * n) >> 64);
  }
  double unit() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

 private:
  static uint64_t mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  uint64_t state_;
};

class NexmarkGenerator {
 public:
  explicit NexmarkGenerator(NexmarkConfig config) : config_(config) {
    if (config_.event_rate == 0) config_.event_rate = kDefaultEventRate;
  }
  const NexmarkConfig& config() const { return config_; }

  int64_t timestamp(uint64_t event_number) const {
    return config_.base_time_ms +
           static_cast<int64_t>((static_cast<unsigned __int128>(event_number) * 1000) /
                                config_.event_rate);
  }

  // Base-0 id of the last person created at or before event `n`.
  static int64_t last_base0_person_id(uint64_t n) {
    const uint64_t epoch = n / kProportionDenominator;
    uint64_t offset = n % kProportionDenominator;
    if (offset >= kPersonProportion) offset = kPersonProportion - 1;
    return static_cast<int64_t>(epoch * kPersonProportion + offset);
  }
  // Base-0 id of the last auction created at or before event `n` (-1: none yet).
  static int64_t last_base0_auction_id(uint64_t n) {
    int64_t epoch = static_cast<int64_t>(n / kProportionDenominator);
    int64_t offset = static_cast<int64_t>(n % kProportionDenominator);
    if (offset < static_cast<int64_t>(kPersonProportion)) {
      --epoch;
      offset = kAuctionProportion - 1;
    } else if (offset >= static_cast<int64_t>(kPersonProportion + kAuctionProportion)) {
      offset = kAuctionProportion - 1;
    } else {
      offset -= kPersonProportion;
    }
    return epoch * static_cast<int64_t>(kAuctionProportion) + offset;
  }

  void person(uint64_t n, Person& p) const {
    EventRandom rnd(config_.seed, n);
    p.id = last_base0_person_id(n) + kFirstPersonId;
    p.name.assign(kFirstNames[rnd.below(std::size(kFirstNames))]);
    p.name += ' ';
    p.name += kLastNames[rnd.below(std::size(kLastNames))];
    p.email_address.clear();
    append_string(rnd, 7, p.email_address);
    p.email_address += '@';
    append_string(rnd, 5, p.email_address);
    p.email_address += ".com";
    // Four groups of four digits, drawn left to right (as the reference
    // generator does, and the same with every compiler: the order in which
    // a call's arguments are evaluated is not).
    char card[19];
    for (int group = 0; group < 4; ++group) {
      char* at = card + group * 5;
      write_fixed_digits(at, static_cast<uint32_t>(rnd.below(10000)), 4);
      if (group < 3) at[4] = ' ';
    }
    p.credit_card.assign(card, sizeof card);
    p.city = kCities[rnd.below(std::size(kCities))];
    p.state = kStates[rnd.below(std::size(kStates))];
    p.date_time = timestamp(n);
    const size_t size = 8 + p.name.size() + p.email_address.size() + p.credit_card.size() +
                        p.city.size() + p.state.size() + 8;
    next_extra(rnd, size, kAvgPersonBytes, p.extra);
  }

  void auction(uint64_t n, Auction& a) const {
    EventRandom rnd(config_.seed, n);
    a.id = last_base0_auction_id(n) + kFirstAuctionId;
    int64_t seller;
    if (rnd.below(kHotSellersRatio) > 0) {
      seller = (last_base0_person_id(n) / kHotIdGranularity) * kHotIdGranularity;
    } else {
      seller = next_base0_person_id(rnd, n);
    }
    a.seller = seller + kFirstPersonId;
    a.category = kFirstCategoryId + static_cast<int64_t>(rnd.below(kNumCategories));
    a.initial_bid = next_price(rnd);
    a.reserve = a.initial_bid + next_price(rnd);
    a.date_time = timestamp(n);
    a.expires = a.date_time + next_auction_length_ms(rnd, n, a.date_time);
    a.item_name.clear();
    append_string(rnd, 20, a.item_name);
    a.description.clear();
    append_string(rnd, 100, a.description);
    const size_t size = 8 + a.item_name.size() + a.description.size() + 8 * 6;
    next_extra(rnd, size, kAvgAuctionBytes, a.extra);
  }

  void bid(uint64_t n, Bid& b) const {
    EventRandom rnd(config_.seed, n);
    int64_t auction;
    if (rnd.below(kHotAuctionRatio) > 0) {
      auction = (last_base0_auction_id(n) / kHotIdGranularity) * kHotIdGranularity;
    } else {
      auction = next_base0_auction_id(rnd, n);
    }
    b.auction = auction + kFirstAuctionId;
    int64_t bidder;
    if (rnd.below(kHotBiddersRatio) > 0) {
      bidder = (last_base0_person_id(n) / kHotIdGranularity) * kHotIdGranularity + 1;
    } else {
      bidder = next_base0_person_id(rnd, n);
    }
    b.bidder = bidder + kFirstPersonId;
    b.price = next_price(rnd);
    // 99 in 100 bids come from one of the four hot channels.
    if (rnd.below(100) > 0) {
      const size_t i = rnd.below(std::size(kHotChannels));
      b.channel.assign(kHotChannels[i]);
      b.url.assign(kHotUrls[i]);
    } else {
      const uint64_t channel = rnd.below(10000);
      b.channel.assign("channel-");
      b.channel += std::to_string(channel);
      b.url.assign("https://www.nexmark.com/");
      for (int seg = 0; seg < 3; ++seg) {
        append_exact_string(rnd, 5, b.url);
        b.url += '/';
      }
      b.url += "item.htm?query=1&channel_id=";
      b.url += std::to_string(channel);
    }
    b.date_time = timestamp(n);
    const size_t size = 8 * 4 + b.channel.size() + b.url.size();
    next_extra(rnd, size, kAvgBidBytes, b.extra);
  }

 private:
  // One of the most recent people, or up to kPersonIdLead not yet created.
  static int64_t next_base0_person_id(EventRandom& rnd, uint64_t n) {
    const int64_t num_people = last_base0_person_id(n) + 1;
    const int64_t active = std::min(num_people, kNumActivePeople);
    const int64_t k =
        static_cast<int64_t>(rnd.below(static_cast<uint64_t>(active + kPersonIdLead)));
    return num_people - active + k;
  }
  // One of the most recent auctions, or up to kAuctionIdLead not yet created.
  static int64_t next_base0_auction_id(EventRandom& rnd, uint64_t n) {
    const int64_t max_auction = std::max<int64_t>(last_base0_auction_id(n), 0);
    const int64_t min_auction = std::max<int64_t>(max_auction - kNumInFlightAuctions, 0);
    return min_auction + static_cast<int64_t>(rnd.below(static_cast<uint64_t>(
                             max_auction - min_auction + 1 + kAuctionIdLead)));
  }
  static int64_t next_price(EventRandom& rnd) {
    return static_cast<int64_t>(std::llround(std::pow(10.0, rnd.unit() * 6.0) * 100.0));
  }
  int64_t next_auction_length_ms(EventRandom& rnd, uint64_t n, int64_t ts) const {
    // Events until kNumInFlightAuctions more auctions have opened.
    const uint64_t events_for_auctions =
        (kNumInFlightAuctions * kProportionDenominator) / kAuctionProportion;
    const int64_t horizon_ms = timestamp(n + events_for_auctions) - ts;
    return 1 + static_cast<int64_t>(
                   rnd.below(static_cast<uint64_t>(std::max<int64_t>(horizon_ms * 2, 1))));
  }
  // 3 to max_length - 1 lowercase letters with occasional spaces.
  static void append_string(EventRandom& rnd, size_t max_length, std::string& out) {
    const size_t len = 3 + rnd.below(max_length - 3);
    append_chars(rnd, len, "abcdefghijklmnopqrstuvwxyz      ", out);
  }
  // Exactly `len` lowercase letters.
  static void append_exact_string(EventRandom& rnd, size_t len, std::string& out) {
    append_chars(rnd, len, "abcdefghijklmnopqrstuvwxyzabcdef", out);  // 'a' + c % 26
  }
  // Appends `len` characters, each chars[c] for the next 5 bits c of a
  // random word (12 per word), written in place: appending a char at a
  // time cost a capacity check each.
  static void append_chars(EventRandom& rnd, size_t len, const char (&chars)[33],
                           std::string& out) {
    const size_t at = out.size();
    out.resize(at + len);
    char* to = out.data() + at;
    for (size_t i = 0; i < len; i += 12) {
      uint64_t bits = rnd.next();
      const size_t word_end = std::min(len, i + 12);
      for (size_t j = i; j < word_end; ++j, bits >>= 5) to[j] = chars[bits & 31];
    }
  }
  // Pads an event of `current` bytes to about `average` bytes (+-20 %).
  static void next_extra(EventRandom& rnd, size_t current, int average, std::string& out) {
    out.clear();
    if (current >= static_cast<size_t>(average)) return;
    const int64_t want = average - static_cast<int64_t>(current);
    const int64_t delta = std::llround(static_cast<double>(want) * 0.2);
    const int64_t size =
        want - delta + (delta == 0 ? 0 : static_cast<int64_t>(rnd.below(2 * delta)));
    append_exact_string(rnd, static_cast<size_t>(size), out);
  }

  static constexpr std::string_view kFirstNames[] = {"Peter", "Paul",   "Luke",  "John",
                                                     "Saul",  "Vicky",  "Kate",  "Julie",
                                                     "Sarah", "Deiter", "Walter"};
  static constexpr std::string_view kLastNames[] = {
      "Shultz", "Abrams", "Spencer", "White", "Bartels", "Walton", "Smith", "Jones", "Noris"};
  static constexpr std::string_view kStates[] = {"AZ", "CA", "ID", "OR", "WA", "WY"};
  static constexpr std::string_view kCities[] = {
      "Phoenix", "Los Angeles", "San Francisco", "Boise", "Portland",
      "Bend",    "Redmond",     "Seattle",       "Kent",  "Cheyenne"};
  static constexpr std::string_view kHotChannels[] = {"Google", "Facebook", "Baidu", "Apple"};
  static constexpr std::string_view kHotUrls[] = {"https://www.nexmark.com/googl/item.htm?query=1",
                                                  "https://www.nexmark.com/faceb/item.htm?query=1",
                                                  "https://www.nexmark.com/baidu/item.htm?query=1",
                                                  "https://www.nexmark.com/apple/item.htm?query=1"};

  NexmarkConfig config_;
};

}  // namespace df::connectors::nexmark
