// The window operator at run time.
//
// Tumbling and sliding windows keep their groups per pane: the rows of
// [end - pane, end), the pane being a tumbling window's size or, for a
// sliding window, the greatest common divisor of size and slide, so that
// every window is a run of whole panes (Flink's "slicing"). A row updates
// its one pane, not size/slide windows, and a snapshot copies each group
// once. A pane holds a hash index (encoded key -> group) and the groups'
// accumulators column-wise (GroupStates). A batch is processed in two
// passes: first every alive row is assigned to its (pane, group) — key
// encoded into a reused buffer, one hash lookup — then each aggregate folds
// its evaluated argument column into the groups in one tight loop. Panes
// keyed by one int64/timestamp field skip the encoding: the key's value is
// hashed with a bijective mix, so the index compares hashes only, and a
// batch is assigned in one loop that keeps the current pane's table in
// locals; its key bytes are encoded once, when a group is added. A pane's
// windows are looked up once per run of rows in that pane. A window fires by
// merging its panes' groups per key (one pane: its groups as they are); a
// pane is dropped with the last window that holds it.
//
// Spilling: when the estimated bytes of the in-memory groups pass the state
// memory budget, every in-memory group is written to the KvStore as a
// partial accumulator under
//   ordered_i64(pane_end) + encoded key + u64(spill number)
// and memory is emptied. Spilling never reads the store (accumulators are
// mergeable), so a miss costs nothing. Firing a window with a spilled pane
// merges, in key order, each of its panes' stored partials (one range scan
// per pane, read in chunks) with their (sorted) in-memory groups, streaming
// rows out.
//
// Session windows: per key, a list of sessions sorted by start, each with one
// group of a shared GroupStates (with a free list); a row at t makes
// [t, t+gap) and merges every session it overlaps. Timers (end, key) in an
// ordered set fire sessions in end order. Past the memory budget every key's
// sessions go to the store as one record, with one timer entry per session
// (layout in window_operator.h), and memory is emptied. A key is either in
// memory or in the store: a row of a stored key loads its record back (and
// removes it from the store) before it is assigned. Firing merges the memory
// timers with the stored ones in (end, key) order, so spilling changes
// neither the rows nor their order.
//
// Checkpoints: the snapshot's store holds all keyed state, laid out as if
// memory had been spilled (windows: every in-memory group as a partial;
// sessions: every key), but the task thread spills nothing: it takes the
// store's checkpoint (hard links) and a copy of the in-memory groups, which
// the I/O pool encodes and adds to the checkpoint as one table file
// (add_to_snapshot_async). Memory and the live store stay as they were, so
// checkpoints add no partials to the live store either. The rest
// (watermark, arrival counter, spill number, the kept windows and whether
// they fired, a sliding window's panes) goes into the JSON meta. A resumed
// run reopens the store and rebuilds the window and pane lists from the
// meta.
//
// End of input: windows fire in end order with a watermark (end - 1) after
// each, so that downstream windows and joins fire window by window.
//
// Lateness: a window (session) fires when watermark >= end - 1 and is kept
// until watermark >= end - 1 + allowed_lateness; rows updating a fired window
// re-emit its updated row after the batch. Rows whose every window is gone
// go to side output port 1, or are dropped and counted.
#include "operators/window/window_operator.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <filesystem>
#include <functional>
#include <limits>
#include <map>
#include <numeric>
#include <set>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "engine/core/time.h"
#include "engine/runtime/hashing.h"
#include "engine/state/codec.h"
#include "engine/state/key_sort.h"
#include "engine/state/state_backend.h"
#include "operators/expr_options.h"
#include "operators/stateful.h"

namespace df::operators::window {

std::string ordered_key(int64_t v) {
  std::string k;
  state::append_ordered_i64(v, k);
  return k;
}

Status scan_spilled_groups(
    state::KvStore& store, int64_t end, const std::string& what,
    const std::function<Status(std::string_view key, std::string_view partial)>& add_partial,
    const std::function<Status(const std::string& key)>& group_done) {
  std::string current;
  bool have = false;
  Status st;
  DF_RETURN_IF_ERROR(store.scan(ordered_key(end), ordered_key(end + 1),
                                [&](std::string_view k, std::string_view v) {
                                  if (k.size() < 16) {
                                    st = Status::data_error(what + " state: a malformed entry key");
                                    return false;
                                  }
                                  const std::string_view key = k.substr(8, k.size() - 16);
                                  if (have && key != current) {
                                    st = group_done(current);
                                    if (!st.ok()) return false;
                                  }
                                  current.assign(key);
                                  have = true;
                                  st = add_partial(current, v);
                                  return st.ok();
                                }));
  DF_RETURN_IF_ERROR(st);
  if (have) DF_RETURN_IF_ERROR(group_done(current));
  return Status::OK();
}

namespace {

constexpr size_t kDefaultMemoryBudget = size_t{256} << 20;
// Per group besides its accumulators and key bytes: for a window, two hash
// slots, an arena offset and its hash; for a session, its hash node, list
// entry and timer.
constexpr size_t kGroupOverhead = 56;
constexpr size_t kSessionOverhead = 160;
constexpr size_t kSpillWriteBatch = 4096;
constexpr size_t kTimerChunk = 4096;  // stored timers handled per scan
// Groups of a merged window whose table fire_window keeps for the next one.
constexpr size_t kMergedKeep = size_t{1} << 20;
// Groups a sliding window merges ahead per batch (WindowOperator::merge_ahead):
// as many as the batch has rows, at least this many. So a batch is held up
// about as long again at most (the rows of a window just fired are still
// on their way downstream on the same workers), and the merge is done long
// before the next window fires.
constexpr size_t kMergeAheadSlice = 512;
constexpr int64_t kNoWatermark = std::numeric_limits<int64_t>::min();
constexpr int64_t kMaxTime = std::numeric_limits<int64_t>::max();

// a + b, clamped to the int64 range.
int64_t sat_add(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_add_overflow(a, b, &r)) return b > 0 ? kMaxTime : kNoWatermark;
  return r;
}

// The exclusive upper bound of the timer entries `tag` with end <= max_end.
std::string timer_bound(char tag, int64_t max_end) {
  std::string k(1, tag);
  if (max_end == kMaxTime) {
    k[0] = static_cast<char>(tag + 1);
    return k;
  }
  state::append_ordered_i64(max_end + 1, k);
  return k;
}

// Sorts `items` by their keys' bytes (`key_of(item)`): a radix sort on the
// keys' first 16 bytes (engine/state/key_sort.h).
using state::sort_by_key;

// Open-addressing index from encoded key to group number (linear probing,
// load factor <= 1/2). Keys live in one arena, so a group costs no
// allocation of its own and dropping a window frees a few large blocks.
class KeyTable {
  static constexpr uint32_t kEmpty = std::numeric_limits<uint32_t>::max();

 public:
  struct Slot {
    uint64_t hash = 0;
    uint32_t group = kEmpty;
  };

  // The group of `key` (whose row hash is `hash`), added as group size()
  // when absent.
  uint32_t find_or_add(std::string_view key, uint64_t hash, bool& added) {
    if (size_ >= grow_at_) grow();
    const size_t mask = mask_;
    for (size_t i = hash & mask;; i = (i + 1) & mask) {
      Slot& s = slots_[i];
      if (s.group == kEmpty) {
        arena_.append(key);
        added = true;
        return claim(s, hash);
      }
      if (s.hash == hash && equal(this->key(s.group), key)) {
        added = false;
        return s.group;
      }
    }
  }
  // The group of the non-null int64/timestamp key `v`, whose hash is
  // runtime::hash_int64(v): that mix is a bijection, so equal hashes mean
  // equal values and no key bytes are compared. Only for tables whose keys
  // are one int64/timestamp cell; their null key (find_or_add_null) has a
  // group but no slot.
  __attribute__((always_inline)) uint32_t find_or_add_i64(int64_t v, uint64_t hash, bool& added) {
    if (size_ >= grow_at_) grow();
    Slot* slots = slots_.data();
    for (size_t i = hash & mask_;; i = (i + 1) & mask_) {
      Slot& s = slots[i];
      if (s.hash == hash && s.group != kEmpty) {
        added = false;
        return s.group;
      }
      if (s.group == kEmpty) {
        added = true;
        return insert_i64(s, v, hash);
      }
    }
  }
  // find_or_add_i64 for a key already encoded (another table's): equal
  // hashes are equal keys.
  uint32_t find_or_add_i64_encoded(std::string_view key, uint64_t hash, bool& added) {
    if (size_ >= grow_at_) grow();
    Slot& s = *find_slot(probe(), hash);
    added = s.group == kEmpty;
    if (!added) return s.group;
    arena_.append(key);
    return claim(s, hash);
  }
  // An int64-keyed table's null key group, or kNoGroup.
  uint32_t null_group() const { return null_group_; }
  // A lookup view of the slots, valid until the next insertion.
  struct Probe {
    Slot* slots;
    size_t mask;
  };
  static constexpr uint32_t kNoGroup = kEmpty;
  // Gives the table its first slots (a Probe needs some).
  void ensure_slots() {
    if (slots_.empty()) grow();
  }
  Probe probe() { return {slots_.data(), mask_}; }
  // The slot of int64 key hash `hash` (see find_or_add_i64), or the empty
  // slot where it would go (group kNoGroup).
  static Slot* find_slot(const Probe& p, uint64_t hash) {
    for (size_t i = hash & p.mask;; i = (i + 1) & p.mask) {
      Slot* s = p.slots + i;
      if (s->group == kEmpty || s->hash == hash) return s;
    }
  }
  // Adds the absent int64 key v (hash `hash`) and returns its group.
  __attribute__((noinline)) uint32_t insert_i64(int64_t v, uint64_t hash) {
    if (size_ >= grow_at_) grow();
    return insert_i64(*find_slot(probe(), hash), v, hash);
  }
  // The group of the null key (`key`, its encoding) in an int64-keyed table.
  uint32_t find_or_add_null(std::string_view key, bool& added) {
    added = null_group_ == kEmpty;
    if (added) {
      arena_.append(key);
      offsets_.push_back(arena_.size());
      hashes_.push_back(0);
      null_group_ = size_++;
    }
    return null_group_;
  }
  std::string_view key(uint32_t g) const {
    return std::string_view(arena_.data() + offsets_[g], offsets_[g + 1] - offsets_[g]);
  }
  uint32_t size() const { return size_; }
  // The group of `key` (whose row hash is `hash`, as given when it was
  // added), or kNoGroup.
  uint32_t find(std::string_view key, uint64_t hash) const {
    if (null_group_ != kEmpty && key == this->key(null_group_)) return null_group_;
    if (slots_.empty()) return kEmpty;
    for (size_t i = hash & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.group == kEmpty) return kEmpty;
      if (s.hash == hash && equal(this->key(s.group), key)) return s.group;
    }
  }
  // The row hash group g was added with (0 for the null key of an
  // int64-keyed table, which has no slot).
  uint64_t hash(uint32_t g) const { return hashes_[g]; }
  // Copies of the key bytes and their offsets: group g's key is
  // [offsets[g], offsets[g + 1]).
  void copy_keys(std::string& arena, std::vector<size_t>& offsets) const {
    arena = arena_;
    offsets = offsets_;
  }
  // Empties the table and releases its memory.
  void clear() {
    slots_ = {};
    arena_ = {};
    offsets_ = {0};
    hashes_ = {};
    size_ = 0;
    null_group_ = kEmpty;
    grow_at_ = 0;
    mask_ = 0;
  }
  // Empties the table, keeping its capacity for reuse.
  void reset() {
    std::fill(slots_.begin(), slots_.end(), Slot{});
    arena_.clear();
    offsets_.assign(1, 0);
    hashes_.clear();
    size_ = 0;
    null_group_ = kEmpty;
  }

 private:
  // Byte equality without a library call for the common short keys (an
  // int64 key encodes to 9 bytes, two to 18): three words that overlap
  // cover 8 to 24 bytes.
  static bool equal(std::string_view a, std::string_view b) {
    const size_t n = a.size();
    if (n != b.size()) return false;
    if (n >= 8 && n <= 24) {
      auto word = [](std::string_view s, size_t at) {
        uint64_t w;
        std::memcpy(&w, s.data() + at, 8);
        return w;
      };
      const size_t mid = n / 2 - 4;
      return word(a, 0) == word(b, 0) && word(a, mid) == word(b, mid) &&
             word(a, n - 8) == word(b, n - 8);
    }
    return a == b;
  }

  __attribute__((noinline)) uint32_t insert_i64(Slot& s, int64_t v, uint64_t hash) {
    state::append_key_i64(v, arena_);
    return claim(s, hash);
  }

  // Gives the empty slot s to a new group whose key was just appended to
  // the arena.
  uint32_t claim(Slot& s, uint64_t hash) {
    s.hash = hash;
    s.group = size_;
    offsets_.push_back(arena_.size());
    hashes_.push_back(hash);
    return size_++;
  }

  // Doubles the slots (at least 16) so the load factor stays <= 1/2 with
  // one more group.
  void grow() {
    std::vector<Slot> old = std::move(slots_);
    size_t n = std::max<size_t>(16, old.size());
    while ((size_ + 1) * 2 > n) n *= 2;
    slots_.assign(n, Slot{});
    mask_ = n - 1;
    grow_at_ = n / 2;
    const size_t mask = mask_;
    for (const Slot& s : old) {
      if (s.group == kEmpty) continue;
      size_t i = s.hash & mask;
      while (slots_[i].group != kEmpty) i = (i + 1) & mask;
      slots_[i] = s;
    }
  }

  std::vector<Slot> slots_;
  std::string arena_;
  std::vector<size_t> offsets_{0};
  std::vector<uint64_t> hashes_;  // per group: the row hash it was added with
  uint32_t size_ = 0;
  uint32_t null_group_ = kEmpty;  // int64-keyed tables: the null key's group
  size_t grow_at_ = 0;            // grow before adding past this many groups
  size_t mask_ = 0;               // slots_.size() - 1
};

// The groups of one pane of a tumbling or sliding window: the rows of
// [end - pane, end) (pane_ms(cfg)).
struct Pane {
  Pane(int64_t end_ms, const std::vector<AggSpec>* aggs) : end(end_ms), groups(aggs) {}
  int64_t end;
  GroupStates groups;
  KeyTable index;        // encoded key -> group
  bool spilled = false;  // has partials in the store
  size_t bytes = 0;      // estimated memory of its groups
  // Counts the times its groups may have changed (rows assigned to it, a
  // spill, a purge), so a merge of it done ahead can tell it is stale.
  uint64_t version = 0;
};

// A group that changed after a window holding its pane fired.
struct DirtyGroup {
  Pane* pane;
  uint32_t g;
  uint64_t hash;  // its key's row hash, to find the key in the window's other panes
};

// One tumbling or sliding window, [end - size, end); its groups are its
// panes'.
struct WindowState {
  int64_t end = 0;
  bool fired = false;             // emitted at least once
  std::vector<DirtyGroup> dirty;  // fired: groups updated since its last emission
};

struct Session {
  int64_t start;
  int64_t end;
  uint32_t g;
  bool fired = false;
  bool dirty = false;
};

using SessionList = std::vector<Session>;  // sorted by start, disjoint

// A stored session being changed while stored timers are processed.
struct OwnedSession {
  int64_t start;
  int64_t end;
  bool fired;
  std::string accumulators;
};
using Timers = std::set<std::pair<int64_t, std::string>>;  // (end, key)

// ---- snapshot images ----------------------------------------------------------
//
// A snapshot copies the in-memory groups (sessions) and the I/O pool encodes
// the copy into exactly the entries a spill would write, adding them to the
// store's checkpoint without a memtable (add_to_snapshot_async). Copying
// column arrays and key bytes is a small part of a spill; most of a spill
// is RocksDB's memtable insert, which this path skips altogether. The live
// state stays as it was: the groups stay in memory, the store unchanged.

struct WindowImage {
  struct Part {
    int64_t end;
    std::string keys;  // group g's key: [offsets[g], offsets[g + 1])
    std::vector<size_t> offsets;
    GroupStates groups;
  };
  uint64_t spill_seq = 0;     // the spill number of the image's partials
  std::vector<Part> windows;  // ascending ends
};

struct SessionImage {
  explicit SessionImage(const std::vector<AggSpec>* aggs) : groups(aggs) {}
  struct Item {
    uint32_t key;  // index into offsets
    uint32_t g;    // group in `groups`
    int64_t start;
    int64_t end;
    bool fired;
  };
  std::string keys;  // key k: [offsets[k], offsets[k + 1])
  std::vector<size_t> offsets{0};
  std::vector<Item> sessions;  // grouped by key, each key's in list order
  GroupStates groups;
};

std::string_view key_in(const std::string& arena, const std::vector<size_t>& offsets, size_t i) {
  return std::string_view(arena).substr(offsets[i], offsets[i + 1] - offsets[i]);
}

// The partials of spill number image.spill_seq, in key order.
Status window_image_entries(const WindowImage& image, state::CheckpointEntries& out) {
  std::string k;
  std::string v;
  // Room for every entry at once (the arena of a pane of 300 K groups grew
  // by doubling, a copy and fresh pages each time): each key is its pane's
  // end, the group key and the spill number; each value is taken to be as
  // long as the pane's first group's (exact for fixed-width accumulators).
  size_t count = 0;
  size_t bytes = 0;
  for (const WindowImage::Part& part : image.windows) {
    const size_t n = part.groups.size();
    if (n == 0) continue;
    v.clear();
    part.groups.encode(0, v);
    count += n;
    bytes += part.keys.size() + n * (8 + 8 + v.size());
  }
  out.reserve(count, bytes);
  std::vector<uint32_t> order;
  for (const WindowImage::Part& part : image.windows) {
    const auto key = [&](uint32_t g) { return key_in(part.keys, part.offsets, g); };
    order.resize(part.groups.size());
    for (uint32_t g = 0; g < order.size(); ++g) order[g] = g;
    sort_by_key(order, key);
    for (uint32_t g : order) {
      k.clear();
      state::append_ordered_i64(part.end, k);
      k += key(g);
      state::append_u64(image.spill_seq, k);
      v.clear();
      part.groups.encode(g, v);
      out.put(k, v);
    }
  }
  return Status::OK();
}

// One record per key and one timer per session (layout in
// window_operator.h), in key order.
Status session_image_entries(const SessionImage& image, state::CheckpointEntries& out) {
  const size_t n_keys = image.offsets.size() - 1;
  const auto key = [&](uint32_t k) { return key_in(image.keys, image.offsets, k); };
  std::vector<size_t> first(n_keys + 1, image.sessions.size());  // key k's first session
  for (size_t i = image.sessions.size(); i-- > 0;) first[image.sessions[i].key] = i;
  std::vector<uint32_t> order(n_keys);
  for (uint32_t k = 0; k < n_keys; ++k) order[k] = k;
  sort_by_key(order, key);
  std::string rk;
  std::string record;
  std::string acc;
  for (uint32_t k : order) {
    const size_t end = first[k + 1];
    record.clear();
    append_session_count(end - first[k], record);
    for (size_t i = first[k]; i < end; ++i) {
      const SessionImage::Item& s = image.sessions[i];
      acc.clear();
      image.groups.encode(s.g, acc);
      append_stored_session({s.start, s.end, s.fired, acc}, record);
    }
    rk.assign(1, kSessionRecord);
    rk += key(k);
    out.put(rk, record);
  }
  // Timers sort after every record (their tags are greater).
  std::string timers;
  std::vector<size_t> timer_offsets{0};
  timer_offsets.reserve(image.sessions.size() + 1);
  for (const SessionImage::Item& s : image.sessions) {
    timers += s.fired ? kPurgeTimer : kFireTimer;
    state::append_ordered_i64(s.end, timers);
    timers += key(s.key);
    timer_offsets.push_back(timers.size());
  }
  std::vector<uint32_t> timer_order(image.sessions.size());
  for (uint32_t i = 0; i < timer_order.size(); ++i) timer_order[i] = i;
  const auto timer = [&](uint32_t i) { return key_in(timers, timer_offsets, i); };
  sort_by_key(timer_order, timer);
  for (uint32_t i : timer_order) out.put(timer(i), {});
  return Status::OK();
}

// The stored partials of one pane (ordered_key(pane_end) + encoded key +
// u64 spill number) in key order, read kScanChunk at a time: the store
// scans with a callback, so merging several panes' ranges resumes each scan
// past the last entry read.
class StoredPartials {
 public:
  StoredPartials(int64_t pane_end, std::string what)
      : from_(ordered_key(pane_end)), to_(ordered_key(pane_end + 1)), what_(std::move(what)) {}

  // Reads the next chunk; done() when the range has no more entries.
  Status load(state::KvStore& store) {
    arena_.clear();
    items_.clear();
    at_ = 0;
    Status st;
    DF_RETURN_IF_ERROR(store.scan(from_, to_, [&](std::string_view k, std::string_view v) {
      if (k.size() < 16) {
        st = Status::data_error(what_ + " state: a malformed entry key");
        return false;
      }
      const std::string_view key = k.substr(8, k.size() - 16);
      items_.push_back({arena_.size(), key.size(), v.size()});
      arena_.append(key);
      arena_.append(v);
      if (items_.size() < kScanChunk) return true;
      from_.assign(k);
      from_.push_back('\0');  // the next chunk starts past this entry
      return false;
    }));
    DF_RETURN_IF_ERROR(st);
    last_chunk_ = items_.size() < kScanChunk;
    return Status::OK();
  }
  bool done() const { return at_ == items_.size(); }
  // The current partial's encoded key cells and accumulators.
  std::string_view key() const {
    return std::string_view(arena_).substr(items_[at_].offset, items_[at_].key_size);
  }
  std::string_view value() const {
    const Item& i = items_[at_];
    return std::string_view(arena_).substr(i.offset + i.key_size, i.value_size);
  }
  // Steps to the next partial, reading the next chunk at the end of one.
  Status next(state::KvStore& store) {
    if (++at_ < items_.size() || last_chunk_) return Status::OK();
    return load(store);
  }

 private:
  static constexpr size_t kScanChunk = 1024;
  struct Item {
    size_t offset;  // key bytes, then value bytes, in arena_
    size_t key_size;
    size_t value_size;
  };
  std::string from_;
  const std::string to_;
  const std::string what_;
  std::string arena_;
  std::vector<Item> items_;
  size_t at_ = 0;
  bool last_chunk_ = false;
};

// Builds output batches of at most batch_size rows.
class RowSink {
 public:
  RowSink(const WindowConfig& cfg, size_t batch_size)
      : cfg_(cfg), batch_(cfg.output_schema, batch_size, TypeId::kTimestamp) {}

  // One row: group g of `gs`, whose key is `key`, of window [start, end).
  Status append(std::string_view key, int64_t start, int64_t end, const GroupStates& gs, uint32_t g,
                runtime::Output& out) {
    DF_RETURN_IF_ERROR(append_key(key));
    const size_t nk = cfg_.key_types.size();
    batch_.column(nk).append_int64(start);
    batch_.column(nk + 1).append_int64(end);
    for (size_t j = 0; j < cfg_.aggs.size(); ++j) gs.append_result(j, g, batch_.column(nk + 2 + j));
    batch_.end_row(end - 1, out);
    return Status::OK();
  }

  // The rows of all groups of `gs` (keys in `keys`), in group order, of
  // window [start, end): column by column, a batch at a time.
  Status append_all(const KeyTable& keys, const GroupStates& gs, int64_t start, int64_t end,
                    runtime::Output& out) {
    const size_t nk = cfg_.key_types.size();
    for (uint32_t first = 0; first < gs.size();) {
      const auto count = static_cast<uint32_t>(std::min<size_t>(gs.size() - first, batch_.room()));
      if (single_int_key_) {
        // Decoded into int_keys_ and appended at once while no key is null.
        int_keys_.clear();
        ColumnBuilder& column = batch_.column(0);
        for (uint32_t g = first; g < first + count; ++g) {
          std::string_view key = keys.key(g);
          if (std::optional<int64_t> v = take_int_cell(key); v && key.empty()) {
            int_keys_.push_back(*v);
            continue;
          }
          column.append_int64s(int_keys_.data(), int_keys_.size());
          int_keys_.clear();
          DF_RETURN_IF_ERROR(append_key(keys.key(g)));
        }
        column.append_int64s(int_keys_.data(), int_keys_.size());
      } else {
        for (uint32_t g = first; g < first + count; ++g) {
          DF_RETURN_IF_ERROR(append_key(keys.key(g)));
        }
      }
      batch_.column(nk).append_int64_repeated(start, count);
      batch_.column(nk + 1).append_int64_repeated(end, count);
      for (size_t j = 0; j < cfg_.aggs.size(); ++j) {
        gs.append_results(j, first, count, batch_.column(nk + 2 + j));
      }
      batch_.end_rows(count, end - 1, out);
      first += count;
    }
    return Status::OK();
  }

  void flush(runtime::Output& out) { batch_.flush(out); }

 private:
  // An int64 or timestamp key cell at the front of `key` that is not null:
  // its value, and `key` moves past it (what state::decode_key_value reads,
  // without boxing a Value); else nullopt and `key` is left alone.
  static std::optional<int64_t> take_int_cell(std::string_view& key) {
    if (key.size() < state::kKeyI64Bytes || key[0] != state::kKeyPresentByte) return std::nullopt;
    uint64_t be;
    std::memcpy(&be, key.data() + 1, 8);
    key.remove_prefix(state::kKeyI64Bytes);
    return state::from_ordered_i64_word(be);
  }

  // Decodes the key cells of one row into the key columns.
  Status append_key(std::string_view key) {
    const size_t nk = cfg_.key_types.size();
    for (size_t i = 0; i < nk; ++i) {
      const TypeId t = cfg_.key_types[i];
      if (stored_as_int64(t)) {
        if (std::optional<int64_t> v = take_int_cell(key)) {
          batch_.column(i).append_int64(*v);
          continue;
        }
      }
      DF_ASSIGN_OR_RETURN(Value v, state::decode_key_value(key, t));
      batch_.column(i).append_value(v);
    }
    return Status::OK();
  }

  const WindowConfig& cfg_;
  // One int64 or timestamp key: append_all decodes it in a tight loop.
  const bool single_int_key_ = cfg_.key_types.size() == 1 && stored_as_int64(cfg_.key_types[0]);
  std::vector<int64_t> int_keys_;  // append_all's decoded keys of one batch
  OutputBatcher batch_;
};

class WindowOperator final : public runtime::Operator {
 public:
  explicit WindowOperator(std::shared_ptr<const WindowConfig> cfg)
      : cfg_(std::move(cfg)),
        session_mode_(cfg_->type == WindowType::kSession),
        int_key_(!session_mode_ && cfg_->key_types.size() == 1 &&
                 stored_as_int64(cfg_->key_types[0])),
        lateness_(cfg_->allowed_lateness_ms),
        assigner_(cfg_->type, cfg_->size_ms, cfg_->slide_ms),
        pane_ms_(pane_ms(*cfg_)),
        scratch_(&cfg_->aggs),
        decode_tmp_(&cfg_->aggs),
        merged_(&cfg_->aggs),
        session_groups_(&cfg_->aggs) {
    scratch_.add();
    decode_tmp_.add();
    state::append_key_null(null_key_);
  }

  Status open(runtime::OperatorContext& ctx) override {
    ctx_ = &ctx;
    state_dir_ = ctx.state_dir();
    const size_t budget = ctx.state_memory_budget();
    spill_enabled_ = !state_dir_.empty() || budget > 0;
    budget_ = budget > 0 ? budget : kDefaultMemoryBudget;
    sink_ = std::make_unique<RowSink>(*cfg_, ctx.batch_size());
    if (const std::string* meta = ctx.restored_meta()) {
      if (state_dir_.empty()) {
        return Status::invalid("window '" + cfg_->id +
                               "': cannot resume from a checkpoint without a state directory");
      }
      DF_ASSIGN_OR_RETURN(store_, state::open_store(state_dir_));
      DF_RETURN_IF_ERROR(restore(*meta));
    }
    return Status::OK();
  }

  Status snapshot(runtime::SnapshotContext& sctx) override {
    if (state_dir_.empty()) {
      return Status::invalid("window '" + cfg_->id + "': checkpoints need a state directory");
    }
    // Tumbling and sliding windows with no pane spilled: the store holds
    // nothing (a spilled pane's range is removed with it), so it is not
    // checkpointed on this thread; the I/O pool lays an empty store's image
    // under the copy instead.
    const bool store_empty =
        !session_mode_ &&
        std::none_of(panes_.begin(), panes_.end(), [](const auto& p) { return p.second->spilled; });
    if (!store_empty) DF_RETURN_IF_ERROR(ensure_store());
    // On this thread: a copy of what is in memory and the store's checkpoint
    // (hard links). Writing the copy into the checkpoint is the I/O pool's.
    std::function<Status(state::CheckpointEntries&)> build;
    if (session_mode_) {
      if (auto image = session_image()) {
        build = [image, cfg = cfg_](state::CheckpointEntries& out) {
          return session_image_entries(*image, out);  // cfg: the image's aggregate specs
        };
      }
    } else if (auto image = window_image()) {
      build = [image, cfg = cfg_](state::CheckpointEntries& out) {
        return window_image_entries(*image, out);  // cfg: the image's aggregate specs
      };
    }
    WindowMeta meta;
    if (watermark_ != kNoWatermark) meta.watermark = watermark_;
    meta.next_seq = seq_base_;
    meta.spill_seq = spill_seq_;
    for (const auto& [end, w] : windows_) meta.windows.emplace_back(end, w.fired);
    if (cfg_->type == WindowType::kSliding) {
      for (const auto& [end, p] : panes_) {
        if (p->groups.size() > 0 || p->spilled) meta.panes.push_back(end);
      }
    }
    if (store_empty) {
      snapshot_without_store(*ctx_, sctx, state_dir_, empty_image_,
                             meta_to_json(*cfg_, meta).dump(), std::move(build),
                             "window '" + cfg_->id + "'");
      return Status::OK();
    }
    DF_RETURN_IF_ERROR(store_->checkpoint_to(sctx.files_dir()));
    sctx.set_meta(meta_to_json(*cfg_, meta).dump());
    if (build) add_to_snapshot_async(*ctx_, sctx, std::move(build), "window '" + cfg_->id + "'");
    return Status::OK();
  }

  Status process(size_t, const BatchPtr& batch, runtime::Output& out) override {
    const Column* et = batch->event_time().get();
    if (et == nullptr) {
      return Status::invalid(
          "window '" + cfg_->id +
          "': its input rows carry no event time (set event_time on the source)");
    }
    const size_t nagg = cfg_->aggs.size();
    args_.resize(nagg);
    for (size_t j = 0; j < nagg; ++j) {
      args_[j] = cfg_->aggs[j].arg ? cfg_->aggs[j].arg->evaluate(*batch, eval_) : nullptr;
    }
    report_eval_errors(eval_, *ctx_);

    entries_.clear();
    late_.clear();
    target_.start = target_.end = 0;  // watermarks between batches change a pane's windows
    last_pane_ = nullptr;             // panes may be purged between batches
    // The version of the pane merged last before this batch's rows.
    const uint64_t live_version = merged_panes_.empty() ? 0 : merged_panes_.back().pane->version;
    const size_t n = batch->active_rows();
    if (int_key_) {
      assign_int_keyed(*batch, *et, n);
    } else {
      DF_RETURN_IF_ERROR(assign_generic(*batch, *et, n));
    }
    seq_base_ += n;
    if (session_mode_) resolve_merged_groups();

    // Batches mostly fold into one pane: its accumulator arrays are then
    // looked up once per aggregate, not per row.
    GroupStates* single = entries_.empty() ? nullptr : entries_.front().groups;
    for (const Entry& e : entries_) {
      if (e.groups != single) {
        single = nullptr;
        break;
      }
    }
    size_t bytes = 0;
    for (size_t j = 0; j < nagg; ++j) {
      bytes += update_aggregate(cfg_->aggs[j], j, args_[j].get(), *et, entries_, single, buf_);
    }
    mem_bytes_ += bytes;
    if (session_mode_) release_merged_groups();
    merge_live_rows(*et, live_version);

    DF_RETURN_IF_ERROR(emit_dirty(out));
    sink_->flush(out);
    route_late(*batch, out);
    if (spill_enabled_ && mem_bytes_ > budget_) {
      DF_RETURN_IF_ERROR(session_mode_ ? spill_sessions() : spill());
    }
    if (merge_ahead_) merge_ahead(std::max(n, kMergeAheadSlice));
    return Status::OK();
  }

  Status on_watermark(Watermark wm, runtime::Output& out) override {
    if (wm.timestamp_ms > watermark_) watermark_ = wm.timestamp_ms;
    DF_RETURN_IF_ERROR(fire_until(watermark_, out));
    DF_RETURN_IF_ERROR(purge());
    sink_->flush(out);
    out.emit_watermark(wm);
    // Panes the watermark passed now are merged ahead with the next batches.
    merge_ahead_ = cfg_->type == WindowType::kSliding;
    return Status::OK();
  }

  Status finish(runtime::Output& out) override {
    if (!session_mode_) {
      // Windows fire in end order, and no later output row has an event
      // time below a fired window's last millisecond: a watermark after each
      // lets downstream windows and joins fire (and free their state) window
      // by window, as mid-stream, instead of holding every row until the end.
      int64_t emitted = watermark_;
      for (auto& [end, w] : windows_) {
        if (w.fired) continue;
        DF_RETURN_IF_ERROR(fire_window(w, out));
        sink_->flush(out);
        if (end - 1 > emitted) {
          emitted = end - 1;
          out.emit_watermark(Watermark{emitted});
        }
      }
      // No row comes after the end of input, so no fired window changes
      // again: their groups go now, and a final checkpoint holds just the
      // meta instead of writing every group once more.
      DF_RETURN_IF_ERROR(purge_windows(kMaxTime));
    }
    DF_RETURN_IF_ERROR(fire_until(kMaxTime, out));
    sink_->flush(out);
    return Status::OK();
  }

 private:
  // ---- the store and checkpoints ---------------------------------------------

  // Opens the store on first use. A fresh run starts from empty state,
  // whatever an earlier run left in the directory.
  Status ensure_store() {
    if (store_) return Status::OK();
    DF_ASSIGN_OR_RETURN(store_, state::open_store(state_dir_));
    return store_->remove_range("", "");
  }

  // A copy of the in-memory groups of every pane, their partials numbered
  // spill_seq_ (then taken); nullptr when memory holds none.
  std::shared_ptr<const WindowImage> window_image() {
    auto image = std::make_shared<WindowImage>();
    image->spill_seq = spill_seq_;
    for (const auto& [end, p] : panes_) {
      if (p->groups.size() == 0) continue;
      WindowImage::Part part{end, {}, {}, p->groups.clone()};
      p->index.copy_keys(part.keys, part.offsets);
      image->windows.push_back(std::move(part));
    }
    if (image->windows.empty()) return nullptr;
    ++spill_seq_;
    return image;
  }

  // A copy of the in-memory sessions; nullptr when there are none.
  std::shared_ptr<const SessionImage> session_image() {
    if (sessions_.empty()) return nullptr;
    auto image = std::make_shared<SessionImage>(&cfg_->aggs);
    image->offsets.reserve(sessions_.size() + 1);
    for (const auto& [key, list] : sessions_) {
      if (list.empty()) continue;
      const auto k = static_cast<uint32_t>(image->offsets.size() - 1);
      image->keys += key;
      image->offsets.push_back(image->keys.size());
      for (const Session& s : list) image->sessions.push_back({k, s.g, s.start, s.end, s.fired});
    }
    image->groups = session_groups_.clone();
    return image;
  }

  Status restore(const std::string& text) {
    nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) {
      return Status::invalid("window '" + cfg_->id + "': the checkpoint's meta is not JSON");
    }
    auto meta = meta_from_json(*cfg_, j);
    if (!meta.ok()) {
      return Status::invalid("window '" + cfg_->id +
                             "': cannot resume from the checkpoint: " + meta.status().message());
    }
    watermark_ = meta->watermark.value_or(kNoWatermark);
    seq_base_ = meta->next_seq;
    spill_seq_ = meta->spill_seq;
    for (const auto& [end, fired] : meta->windows) {
      WindowState& w = windows_[end];
      w.end = end;
      w.fired = fired;
      // A tumbling window is its one pane.
      if (cfg_->type == WindowType::kTumbling) pane_for(end)->spilled = true;
    }
    // A snapshot spills every group.
    for (int64_t end : meta->panes) pane_for(end)->spilled = true;
    store_has_sessions_ = session_mode_;
    return Status::OK();
  }

  // ---- assigning rows ----------------------------------------------------------

  // The encoded key of the batch's k-th alive row (assign_generic's pass 1).
  std::string_view batch_key(size_t k) const {
    return std::string_view(key_arena_.data() + key_spans_[k].first, key_spans_[k].second);
  }

  // Any key: every alive row to its window groups or sessions (entries_),
  // late rows to late_.
  Status assign_generic(const Batch& batch, const Column& et, size_t n) {
    const int64_t* ts = et.int64_data();
    // Pass 1: every distinct run's encoded key into one arena, and key
    // hashes from the values (consistent with the encoding: both fold -0.0
    // and NaN). Looking keys up in a second pass keeps the lookups off the
    // bytes just written.
    key_arena_.clear();
    key_arena_.reserve(n * 9 * cfg_->key_fields.size());
    key_spans_.resize(n);
    const Selection* selection = batch.selection();
    mark_repeated_keys(batch, cfg_->key_fields, selection ? selection->data() : nullptr, n,
                       repeated_keys_);
    if (!encode_int_keys(batch, n)) {
      for (size_t k = 0; k < n; ++k) {
        if (repeated_keys_[k]) {
          // Consecutive rows often share a key: the row before's bytes.
          key_spans_[k] = key_spans_[k - 1];
          continue;
        }
        const size_t begin = key_arena_.size();
        for (size_t f : cfg_->key_fields) {
          state::encode_key_cell(*batch.column(f), batch.row_at(k), key_arena_);
        }
        key_spans_[k] = {begin, key_arena_.size() - begin};
      }
    }
    if (!session_mode_) runtime::hash_rows(batch, cfg_->key_fields, hashes_, &repeated_keys_);
    if (session_mode_ && store_has_sessions_) DF_RETURN_IF_ERROR(load_sessions(n));
    // Pass 2: assign rows to their windows' groups.
    for (size_t k = 0; k < n; ++k) {
      const size_t r = batch.row_at(k);
      if (et.is_null(r)) {
        ctx_->report_data_error("window '" + cfg_->id + "': row without event time dropped");
        continue;
      }
      const std::string_view key = batch_key(k);
      if (session_mode_) {
        key_.assign(key);
      } else {
        key_view_ = key;
        key_hash_ = hashes_[k];
        key_repeats_ = repeated_keys_[k] != 0;
      }
      const uint64_t seq = seq_base_ + k;
      const bool placed =
          session_mode_ ? assign_session(ts[r], r, seq) : assign_windows(ts[r], r, seq);
      if (!placed) late_.push_back(static_cast<uint32_t>(r));
    }
    return Status::OK();
  }

  // assign_generic's pass 1 when every key field is an int64 or timestamp
  // without nulls in the batch: each key is laid out at a fixed width, cell
  // by cell (state::write_key_i64), the bytes encode_key_cell writes. False,
  // with nothing done, for any other batch.
  bool encode_int_keys(const Batch& batch, size_t n) {
    int_key_columns_.clear();
    for (size_t f : cfg_->key_fields) {
      const Column& c = *batch.column(f);
      if (!stored_as_int64(c.type()) || c.has_nulls()) return false;
      int_key_columns_.push_back(c.int64_data());
    }
    const size_t width = state::kKeyI64Bytes * int_key_columns_.size();
    key_arena_.resize(n * width);
    char* const arena = key_arena_.data();
    size_t used = 0;
    for (size_t k = 0; k < n; ++k) {
      if (repeated_keys_[k]) {
        key_spans_[k] = key_spans_[k - 1];
        continue;
      }
      const size_t r = batch.row_at(k);
      for (const int64_t* values : int_key_columns_) {
        state::write_key_i64(values[r], arena + used);
        used += state::kKeyI64Bytes;
      }
      key_spans_[k] = {used - width, width};
    }
    key_arena_.resize(used);
    return true;
  }

  // Tumbling and sliding windows keyed by one int64/timestamp field: the key
  // is looked up by value (no encoding, no byte compare) and rows of one
  // pane skip the window search.
  void assign_int_keyed(const Batch& batch, const Column& et, size_t n) {
    const Column& kc = *batch.column(cfg_->key_fields[0]);
    const int64_t* kv = kc.int64_data();
    const int64_t* ts = et.int64_data();
    const bool maybe_null = kc.has_nulls() || et.has_nulls();
    if (entries_.capacity() < n) entries_.reserve(n);
    if (!maybe_null) {
      if (const Selection* sel = batch.selection()) {
        const uint32_t* rows = sel->data();
        assign_i64(kv, ts, n, [rows](size_t k) { return size_t{rows[k]}; });
      } else {
        assign_i64(kv, ts, n, [](size_t k) { return k; });
      }
      return;
    }
    key_null_ = false;
    for (size_t k = 0; k < n; ++k) {
      const size_t r = batch.row_at(k);
      const uint64_t seq = seq_base_ + k;
      if (et.is_null(r)) {
        ctx_->report_data_error("window '" + cfg_->id + "': row without event time dropped");
        continue;
      }
      key_null_ = kc.is_null(r);
      if (!key_null_) {
        key_int_ = kv[r];
        key_hash_ = runtime::hash_int64(key_int_);
      }
      if (!assign_windows(ts[r], r, seq)) late_.push_back(static_cast<uint32_t>(r));
    }
  }

  // The common case of assign_int_keyed: no null keys or event times. The
  // same steps as assign_windows + add_to, in one loop.
  template <typename RowAt>
  void assign_i64(const int64_t* kv, const int64_t* ts, size_t n, RowAt row_at) {
    // The current pane's parts in locals: stores into entries_ could alias
    // its members, which would then be reloaded per row.
    Pane* pane = nullptr;
    KeyTable::Probe probe{};
    bool fired = false;
    int64_t start = 0;  // the current row's pane, looked up at the first row
    int64_t end = 0;
    entries_.resize(n);
    Entry* out = entries_.data();
    size_t m = 0;
    for (size_t k = 0; k < n; ++k) {
      const size_t r = row_at(k);
      const int64_t t = ts[r];
      if (t < start || t >= end) {
        target_pane(t);
        start = target_.start;
        end = target_.end;
        pane = target_.pane;
        fired = !target_.fired.empty();
        if (pane != nullptr) {
          pane->index.ensure_slots();
          probe = pane->index.probe();
        }
      }
      if (pane == nullptr) {
        if (target_.late) late_.push_back(static_cast<uint32_t>(r));
        continue;
      }
      const int64_t v = kv[r];
      const uint64_t h = runtime::hash_int64(v);
      uint32_t g = KeyTable::find_slot(probe, h)->group;
      if (g == KeyTable::kNoGroup) {
        g = pane->index.insert_i64(v, h);
        probe = pane->index.probe();
        count_new_group(*pane, g);
      }
      out[m++] = Entry{static_cast<uint32_t>(r), g, &pane->groups, seq_base_ + k};
      if (fired) {
        for (WindowState* w : target_.fired) mark_dirty(*w, *pane, g, h);
      }
    }
    entries_.resize(m);
  }

  // ---- tumbling and sliding ------------------------------------------------

  // Looks up the pane of event time t and its windows into target_: the
  // pane when any of its windows is still kept (windows first seen then
  // are added, fired at once when their end passed), which of those fired
  // already, and whether the row is late (it has windows, all gone). Every
  // row of a pane has the same windows: window bounds are multiples of the
  // pane.
  void target_pane(int64_t t) {
    PaneTarget& p = target_;
    p.start = floor_div(t, pane_ms_) * pane_ms_;
    p.end = p.start + pane_ms_;
    p.pane = nullptr;
    p.fired.clear();
    bool kept = false;
    p.late = !assigner_.for_each_kept(t, lateness_, watermark_, [&](int64_t end) {
      WindowState& w = window_state(end);
      if (w.fired) p.fired.push_back(&w);
      kept = true;
    });
    if (kept) {
      p.pane = pane_for(p.end);
      ++p.pane->version;  // rows come to it
    }
  }

  // Adds the row to its pane if any of the pane's windows is still kept;
  // false when the row has windows and all of them are gone (a late row).
  bool assign_windows(int64_t t, size_t row, uint64_t seq) {
    if (t < target_.start || t >= target_.end) target_pane(t);
    if (target_.pane == nullptr) return !target_.late;
    add_to(*target_.pane, row, seq);
    return true;
  }

  // Adds the row (of the current key) to pane p, the target's.
  void add_to(Pane& p, size_t row, uint64_t seq) {
    bool added = false;
    uint32_t g;
    if (!int_key_) {
      // Consecutive rows often share a key: then the group is the last one
      // (known without comparing when the row before was the last added).
      const bool repeats = key_repeats_ && seq == last_seq_ + 1;
      if (&p == last_pane_ && (repeats || key_view_ == last_key_)) {
        g = last_group_;
      } else {
        g = p.index.find_or_add(key_view_, key_hash_, added);
        last_pane_ = &p;
        last_key_ = key_view_;
        last_group_ = g;
      }
      last_seq_ = seq;
    } else if (!key_null_) {
      g = p.index.find_or_add_i64(key_int_, key_hash_, added);
    } else {
      g = p.index.find_or_add_null(null_key_, added);
    }
    if (added) count_new_group(p, g);
    entries_.push_back({static_cast<uint32_t>(row), g, &p.groups, seq});
    for (WindowState* w : target_.fired) mark_dirty(*w, p, g, key_hash_);
  }

  // Adds the accumulators of group g, just added to p's index.
  void count_new_group(Pane& p, uint32_t g) {
    p.groups.add();
    const size_t b = p.index.key(g).size() + kGroupOverhead + p.groups.fixed_bytes_per_group();
    p.bytes += b;
    mem_bytes_ += b;
  }

  // The window ending at `end`, added (not fired, unless its end passed:
  // a late row within the allowed lateness fires it at once) when absent.
  WindowState& window_state(int64_t end) {
    auto [it, added] = windows_.try_emplace(end);
    if (added) {
      it->second.end = end;
      it->second.fired = end - 1 <= watermark_;
    }
    return it->second;
  }

  Pane* pane_for(int64_t end) {
    auto it = panes_.find(end);
    if (it != panes_.end()) return it->second.get();
    std::unique_ptr<Pane> p;
    if (spare_pane_) {
      // The last purged pane's memory, already sized for a pane's keys.
      p = std::move(spare_pane_);
      p->end = end;
    } else {
      p = std::make_unique<Pane>(end, &cfg_->aggs);
    }
    return panes_.emplace(end, std::move(p)).first->second.get();
  }

  // The end of the last window that holds the pane ending at `pane_end`:
  // the pane is kept until that window's allowed lateness has passed.
  int64_t last_window_end(int64_t pane_end) const {
    const int64_t slide = cfg_->type == WindowType::kTumbling ? cfg_->size_ms : cfg_->slide_ms;
    return floor_div(pane_end - pane_ms_, slide) * slide + cfg_->size_ms;
  }

  // The panes of the window ending at `end` that hold groups, in memory or
  // stored, oldest first, into `panes`.
  void panes_of(int64_t end, std::vector<Pane*>& panes) {
    panes.clear();
    for (auto it = panes_.upper_bound(end - cfg_->size_ms); it != panes_.end() && it->first <= end;
         ++it) {
      if (it->second->groups.size() > 0 || it->second->spilled) panes.push_back(it->second.get());
    }
  }

  // Group g of pane p (key hash `hash`) changed after window w fired: its
  // row is emitted again after the batch.
  void mark_dirty(WindowState& w, Pane& p, uint32_t g, uint64_t hash) {
    if (!w.dirty.empty() && w.dirty.back().pane == &p && w.dirty.back().g == g) return;
    if (w.dirty.empty()) dirty_windows_.push_back(&w);
    w.dirty.push_back({&p, g, hash});
  }

  // Merges the stored partials of `key` in the pane ending at `pane_end`
  // into scratch_'s group.
  Status merge_stored(int64_t pane_end, std::string_view key) {
    std::string lo = ordered_key(pane_end);
    lo.append(key);
    std::string hi = lo;
    hi.append(9, '\xff');  // past every u64 spill number
    Status st;
    DF_RETURN_IF_ERROR(store_->scan(lo, hi, [&](std::string_view, std::string_view v) {
      st = scratch_.decode_merge(0, v, decode_tmp_);
      return st.ok();
    }));
    return st;
  }

  // Emits window w's row of the key of dirty group d: that group alone when
  // it is the window's only pane and in memory only, else merged with the
  // key's groups and stored partials in the window's other panes.
  Status emit_window_group(const WindowState& w, const DirtyGroup& d, runtime::Output& out) {
    const std::string_view key = d.pane->index.key(d.g);
    const int64_t start = w.end - cfg_->size_ms;
    if (pane_ms_ == cfg_->size_ms && !d.pane->spilled) {
      return sink_->append(key, start, w.end, d.pane->groups, d.g, out);
    }
    scratch_.reset(0);
    panes_of(w.end, fire_panes_);
    for (Pane* p : fire_panes_) {
      const uint32_t g = p == d.pane ? d.g : p->index.find(key, d.hash);
      if (g != KeyTable::kNoGroup) scratch_.merge_from(0, p->groups, g);
      if (p->spilled) DF_RETURN_IF_ERROR(merge_stored(p->end, key));
    }
    return sink_->append(key, start, w.end, scratch_, 0, out);
  }

  // Emits every key of window w. A window of one pane in memory emits the
  // pane's groups in first-arrival order; several panes in memory are
  // merged per key (oldest pane's keys first); with a spilled pane every
  // pane's groups and stored partials are merged in key order.
  Status fire_window(WindowState& w, runtime::Output& out) {
    w.fired = true;
    panes_of(w.end, fire_panes_);
    if (fire_panes_.empty()) return Status::OK();
    const int64_t start = w.end - cfg_->size_ms;
    if (std::any_of(fire_panes_.begin(), fire_panes_.end(), [](Pane* p) { return p->spilled; })) {
      return fire_spilled(w, out);
    }
    if (fire_panes_.size() == 1) {
      const Pane& p = *fire_panes_[0];
      return sink_->append_all(p.index, p.groups, start, w.end, out);
    }
    // Several panes in memory: merged per key, oldest pane's keys first.
    // Most of it was merged ahead (merge_ahead) once the watermark passed
    // those panes; what is left (mostly the newest pane) is merged now.
    if (!merge_valid(w.end)) start_merge(w.end);
    merge_panes(SIZE_MAX, /*passed_only=*/false);
    DF_RETURN_IF_ERROR(sink_->append_all(merged_index_, merged_, start, w.end, out));
    merge_end_ = kNoMerge;
    merged_panes_.clear();
    // Keep the capacity of a usual window, not of an unusually large one.
    if (merged_.size() > kMergedKeep) {
      merged_index_.clear();
      merged_.clear();
    }
    return Status::OK();
  }

  // ---- merging a sliding window's panes ahead of its firing ------------------

  // Starts merged_ over for the window ending at `end`.
  void start_merge(int64_t end) {
    merged_index_.reset();
    merged_.reset_all();
    merged_panes_.clear();
    merge_end_ = end;
  }

  // Whether merged_ holds the groups of a prefix of fire_panes_, the panes
  // of the window ending at `end`, as they are now.
  bool merge_valid(int64_t end) const {
    if (merge_end_ != end || merged_panes_.size() > fire_panes_.size()) return false;
    for (size_t i = 0; i < merged_panes_.size(); ++i) {
      const MergedPane& m = merged_panes_[i];
      if (m.pane != fire_panes_[i] || m.version != m.pane->version) return false;
    }
    return true;
  }

  // Merges the groups of fire_panes_ into merged_, going on where
  // merged_panes_ ends, at most `budget` groups; with `passed_only` it stops
  // at the first pane the watermark has not passed (rows still come to it)
  // unless that is the window's newest: rows to its groups merged already
  // are then added to merged_ as they come (merge_live_rows).
  // True when it stopped for want of groups, not of budget.
  bool merge_panes(size_t budget, bool passed_only) {
    for (size_t i = merged_panes_.empty() ? 0 : merged_panes_.size() - 1; i < fire_panes_.size();
         ++i) {
      const Pane& p = *fire_panes_[i];
      if (passed_only && p.end - 1 > watermark_ && i + 1 < fire_panes_.size()) return true;
      if (i == merged_panes_.size()) {
        merged_panes_.push_back({&p, p.version, 0});
        merged_groups_.clear();
      }
      MergedPane& m = merged_panes_[i];
      const uint32_t null_group = int_key_ ? p.index.null_group() : KeyTable::kNoGroup;
      for (; m.groups < p.groups.size(); ++m.groups) {
        if (budget == 0) return false;
        --budget;
        const uint32_t g = m.groups;
        const std::string_view key = p.index.key(g);
        bool added = false;
        uint32_t mg;
        if (!int_key_) {
          mg = merged_index_.find_or_add(key, p.index.hash(g), added);
        } else if (g != null_group) {
          mg = merged_index_.find_or_add_i64_encoded(key, p.index.hash(g), added);
        } else {
          mg = merged_index_.find_or_add_null(key, added);
        }
        if (added) merged_.add();
        merged_.merge_from(mg, p.groups, g);
        merged_groups_.push_back(mg);
      }
    }
    return true;
  }

  // After a batch's rows were added to their panes: those that went to a
  // group of the pane merged last (merged_panes_.back()) that merged_
  // holds already are added to merged_ too, so that the merge stays valid
  // while rows still come to the newest pane. Rows to groups not merged
  // yet are merged with them later; a row to another merged pane
  // invalidates the merge (its version moves, merge_valid).
  void merge_live_rows(const Column& et, uint64_t live_version) {
    if (merged_panes_.empty()) return;
    MergedPane& m = merged_panes_.back();
    if (m.version != live_version || m.version == m.pane->version) return;
    live_entries_.clear();
    for (const Entry& e : entries_) {
      if (e.groups == &m.pane->groups && e.g < m.groups) {
        live_entries_.push_back(Entry{e.row, merged_groups_[e.g], &merged_, e.seq});
      }
    }
    for (size_t j = 0; j < cfg_->aggs.size(); ++j) {
      update_aggregate(cfg_->aggs[j], j, args_[j].get(), et, live_entries_, &merged_, buf_);
    }
    m.version = m.pane->version;
    // Groups that arrived since are merged with the next batches.
    if (m.groups < m.pane->groups.size()) merge_ahead_ = true;
  }

  // A slice of `budget` groups of the merge of the next sliding window to fire: the panes the
  // watermark has passed, which usually get no more rows. Firing that
  // window then merges little more than its newest pane, which shortens a
  // window close (its latency); the work is the same, done earlier. A pane
  // that changes after all (a row behind the watermark, a spill) makes the
  // firing merge again from the start (merge_valid).
  void merge_ahead(size_t budget) {
    merge_ahead_ = false;
    auto next = std::find_if(windows_.begin(), windows_.end(),
                             [](const auto& e) { return !e.second.fired; });
    if (next == windows_.end()) return;
    panes_of(next->first, fire_panes_);
    if (fire_panes_.size() < 2 ||
        std::any_of(fire_panes_.begin(), fire_panes_.end(), [](Pane* p) { return p->spilled; })) {
      return;
    }
    if (!merge_valid(next->first)) start_merge(next->first);
    merge_ahead_ = !merge_panes(budget, /*passed_only=*/true);
  }

  // fire_window for a window with a spilled pane (fire_panes_): one sorted
  // run per pane's memory and per pane's store, merged per key.
  Status fire_spilled(const WindowState& w, runtime::Output& out) {
    const int64_t start = w.end - cfg_->size_ms;
    struct MemoryRun {
      const Pane* pane;
      std::vector<uint32_t> order;  // its groups in key order
      size_t at = 0;
      std::string_view key() const { return pane->index.key(order[at]); }
      bool done() const { return at == order.size(); }
    };
    std::vector<MemoryRun> memory;
    std::vector<StoredPartials> stored;
    for (const Pane* p : fire_panes_) {
      if (p->groups.size() > 0) {
        MemoryRun run{p, std::vector<uint32_t>(p->groups.size())};
        for (uint32_t g = 0; g < run.order.size(); ++g) run.order[g] = g;
        sort_by_key(run.order, [p](uint32_t g) { return p->index.key(g); });
        memory.push_back(std::move(run));
      }
      if (p->spilled) {
        stored.emplace_back(p->end, "window '" + cfg_->id + "'");
        DF_RETURN_IF_ERROR(stored.back().load(*store_));
      }
    }
    std::string current;
    while (true) {
      // The least key at the head of any run.
      bool have = false;
      std::string_view least;
      const auto consider = [&](std::string_view k) {
        if (!have || k < least) least = k;
        have = true;
      };
      for (const MemoryRun& m : memory) {
        if (!m.done()) consider(m.key());
      }
      for (const StoredPartials& s : stored) {
        if (!s.done()) consider(s.key());
      }
      if (!have) break;
      current.assign(least);
      scratch_.reset(0);
      for (MemoryRun& m : memory) {
        if (!m.done() && m.key() == current) {
          scratch_.merge_from(0, m.pane->groups, m.order[m.at]);
          ++m.at;
        }
      }
      for (StoredPartials& s : stored) {
        while (!s.done() && s.key() == current) {
          DF_RETURN_IF_ERROR(scratch_.decode_merge(0, s.value(), decode_tmp_));
          DF_RETURN_IF_ERROR(s.next(*store_));
        }
      }
      DF_RETURN_IF_ERROR(sink_->append(current, start, w.end, scratch_, 0, out));
    }
    return Status::OK();
  }

  Status spill() {
    DF_RETURN_IF_ERROR(ensure_store());
    state::WriteBatch wb;
    std::string k;
    std::string v;
    for (auto& [end, p] : panes_) {
      if (p->groups.size() == 0) continue;
      // In key order: RocksDB inserts a sorted batch far faster.
      order_.resize(p->groups.size());
      for (uint32_t g = 0; g < order_.size(); ++g) order_[g] = g;
      sort_by_key(order_, [&p = p](uint32_t g) { return p->index.key(g); });
      for (uint32_t g : order_) {
        k.clear();
        state::append_ordered_i64(end, k);
        k += p->index.key(g);
        state::append_u64(spill_seq_, k);
        v.clear();
        p->groups.encode(g, v);
        wb.put(k, v);
        if (wb.size() >= kSpillWriteBatch) {
          DF_RETURN_IF_ERROR(store_->write(wb));
          wb.clear();
        }
      }
      p->groups.clear();
      p->index.clear();
      p->spilled = true;
      p->bytes = 0;
      ++p->version;
    }
    // Memory is short: a merge done ahead goes too (firing reads the store).
    merge_end_ = kNoMerge;
    merged_panes_.clear();
    merged_index_.clear();
    merged_.clear();
    if (!wb.empty()) DF_RETURN_IF_ERROR(store_->write(wb));
    ++spill_seq_;
    mem_bytes_ = 0;
    return Status::OK();
  }

  // ---- sessions --------------------------------------------------------------

  uint32_t alloc_session_group() {
    uint32_t g;
    if (!free_groups_.empty()) {
      g = free_groups_.back();
      free_groups_.pop_back();
      session_groups_.reset(g);
    } else {
      g = session_groups_.add();
      redirect_.push_back(g);
    }
    return g;
  }

  Timers& timers_of(const Session& s) { return s.fired ? purge_timers_ : fire_timers_; }

  // Files a session (changed or new) under the right timer; one whose end
  // already passed the watermark fires now (emitted after the batch).
  void schedule(Session& s) {
    if (s.end - 1 <= watermark_) {
      s.fired = true;
      if (!s.dirty) {
        s.dirty = true;
        dirty_keys_.push_back(key_);
      }
    } else {
      s.fired = false;
      s.dirty = false;  // it fires (once) when the watermark passes its new end
    }
    timers_of(s).emplace(s.end, key_);
  }

  bool assign_session(int64_t t, size_t row, uint64_t seq) {
    const int64_t start = t;
    const int64_t end = t + cfg_->gap_ms;
    // Late only when the row's own session [t, t+gap) is gone and it merges
    // into no kept session (a kept session always ends later than that).
    const bool own_gone = end - 1 + lateness_ <= watermark_;
    auto it = sessions_.find(std::string_view(key_));
    if (it == sessions_.end()) {
      if (own_gone) return false;
      it = sessions_.emplace(key_, SessionList{}).first;
    }
    SessionList& list = it->second;
    size_t i = 0;
    while (i < list.size() && list[i].end <= start) ++i;
    size_t j = i;
    while (j < list.size() && list[j].start < end) ++j;
    if (i == j && own_gone) return false;
    uint32_t g;
    if (i == j) {
      g = alloc_session_group();
      list.insert(list.begin() + static_cast<std::ptrdiff_t>(i), Session{start, end, g});
      const size_t b = key_.size() + kSessionOverhead + session_groups_.fixed_bytes_per_group();
      session_bytes_ += b;
      mem_bytes_ += b;
      schedule(list[i]);
    } else if (j == i + 1 && list[i].start <= start && end <= list[i].end) {
      // Inside one session: its bounds and timer stay.
      g = list[i].g;
      if (list[i].fired && !list[i].dirty) {
        list[i].dirty = true;
        dirty_keys_.push_back(key_);
      }
    } else {
      Session& target = list[i];
      timers_of(target).erase({target.end, key_});
      int64_t new_start = std::min(start, target.start);
      int64_t new_end = std::max(end, target.end);
      for (size_t m = i + 1; m < j; ++m) {
        Session& other = list[m];
        timers_of(other).erase({other.end, key_});
        new_start = std::min(new_start, other.start);
        new_end = std::max(new_end, other.end);
        session_groups_.merge_from(target.g, session_groups_, other.g);
        redirect_[other.g] = target.g;
        merged_away_.push_back(other.g);
        const size_t b = key_.size() + kSessionOverhead + session_groups_.fixed_bytes_per_group();
        session_bytes_ -= std::min(session_bytes_, b);
        mem_bytes_ -= std::min(mem_bytes_, b);
      }
      list.erase(list.begin() + static_cast<std::ptrdiff_t>(i + 1),
                 list.begin() + static_cast<std::ptrdiff_t>(j));
      Session& merged = list[i];
      merged.start = new_start;
      merged.end = new_end;
      g = merged.g;
      schedule(merged);
    }
    entries_.push_back({static_cast<uint32_t>(row), g, &session_groups_, seq});
    return true;
  }

  // Rows assigned earlier in the batch to a session that merged later go to
  // the surviving group.
  void resolve_merged_groups() {
    if (merged_away_.empty()) return;
    for (Entry& e : entries_) {
      while (redirect_[e.g] != e.g) e.g = redirect_[e.g];
    }
  }

  void release_merged_groups() {
    for (uint32_t g : merged_away_) {
      redirect_[g] = g;
      free_groups_.push_back(g);
    }
    merged_away_.clear();
  }

  Session* find_session(std::string_view key, int64_t end) {
    auto it = sessions_.find(key);
    if (it == sessions_.end()) return nullptr;
    for (Session& s : it->second) {
      if (s.end == end) return &s;
    }
    return nullptr;
  }

  void remove_session(const std::string& key, int64_t end) {
    auto it = sessions_.find(std::string_view(key));
    if (it == sessions_.end()) return;
    SessionList& list = it->second;
    for (size_t i = 0; i < list.size(); ++i) {
      if (list[i].end == end) {
        free_groups_.push_back(list[i].g);
        list.erase(list.begin() + static_cast<std::ptrdiff_t>(i));
        const size_t b = key.size() + kSessionOverhead + session_groups_.fixed_bytes_per_group();
        session_bytes_ -= std::min(session_bytes_, b);
        mem_bytes_ -= std::min(mem_bytes_, b);
        break;
      }
    }
    if (list.empty()) sessions_.erase(it);
  }

  // ---- firing, purging, emitting ---------------------------------------------

  // Fires every window and session whose end - 1 <= limit, in end order.
  Status fire_until(int64_t limit, runtime::Output& out) {
    for (auto& [end, w] : windows_) {
      if (end - 1 > limit) break;
      if (!w.fired) DF_RETURN_IF_ERROR(fire_window(w, out));
    }
    if (!session_mode_) return Status::OK();
    if (!store_has_sessions_) {
      while (!fire_timers_.empty() && fire_timers_.begin()->first - 1 <= limit) {
        DF_RETURN_IF_ERROR(fire_memory_timer(out));
      }
      return Status::OK();
    }
    // Stored fire timers in chunks, merged with the memory timers in (end,
    // key) order; memory and store never hold the same key.
    const int64_t max_end = sat_add(limit, 1);
    // Start past the timers handled before: they are deleted, and a scan
    // from the front would step over all their tombstones. Every fire timer
    // written later ends after the watermark, so none lands below.
    std::string lo = fire_from_.empty() ? std::string(1, kFireTimer) : fire_from_;
    const std::string hi = timer_bound(kFireTimer, max_end);
    if (hi > lo) fire_from_ = hi;
    while (hi > lo) {
      DF_RETURN_IF_ERROR(collect_timers(lo, hi));
      for (const std::string& tk : timer_keys_) {
        std::string_view rest = std::string_view(tk).substr(1);
        DF_ASSIGN_OR_RETURN(int64_t end, state::read_ordered_i64(rest));
        while (!fire_timers_.empty() && fire_timers_.begin()->first - 1 <= limit &&
               (fire_timers_.begin()->first < end ||
                (fire_timers_.begin()->first == end &&
                 std::string_view(fire_timers_.begin()->second) < rest))) {
          DF_RETURN_IF_ERROR(fire_memory_timer(out));
        }
        DF_RETURN_IF_ERROR(fire_stored_session(tk, rest, end, out));
      }
      DF_RETURN_IF_ERROR(write_pending());
      if (timer_keys_.size() < kTimerChunk) break;
      lo = timer_keys_.back();
      lo.push_back('\0');
    }
    while (!fire_timers_.empty() && fire_timers_.begin()->first - 1 <= limit) {
      DF_RETURN_IF_ERROR(fire_memory_timer(out));
    }
    return Status::OK();
  }

  Status fire_memory_timer(runtime::Output& out) {
    auto node = fire_timers_.extract(fire_timers_.begin());
    const auto& [end, key] = node.value();
    Session* s = find_session(key, end);
    if (s == nullptr) return Status::internal("window: session timer without a session");
    DF_RETURN_IF_ERROR(sink_->append(key, s->start, s->end, session_groups_, s->g, out));
    s->fired = true;
    s->dirty = false;
    purge_timers_.insert(std::move(node));
    return Status::OK();
  }

  // ---- sessions in the store -------------------------------------------------

  // The stored timer keys in [lo, hi), at most kTimerChunk, into
  // timer_keys_, and their session records into pending_ (one multi_get).
  Status collect_timers(std::string_view lo, std::string_view hi) {
    timer_keys_.clear();
    DF_RETURN_IF_ERROR(store_->scan(lo, hi, [&](std::string_view k, std::string_view) {
      timer_keys_.emplace_back(k);
      return timer_keys_.size() < kTimerChunk;
    }));
    lookup_.clear();
    for (const std::string& tk : timer_keys_) {
      if (tk.size() < 9) return Status::data_error("window state: a malformed session timer");
      std::string rk(1, kSessionRecord);
      rk.append(tk, 9);
      lookup_.push_back(std::move(rk));
    }
    std::sort(lookup_.begin(), lookup_.end());
    lookup_.erase(std::unique(lookup_.begin(), lookup_.end()), lookup_.end());
    std::vector<std::string_view> keys(lookup_.begin(), lookup_.end());
    std::vector<std::optional<std::string>> recs;
    DF_RETURN_IF_ERROR(store_->multi_get(keys, recs));
    for (size_t r = 0; r < keys.size(); ++r) {
      if (!recs[r]) continue;
      DF_RETURN_IF_ERROR(read_stored_sessions(*recs[r], stored_));
      std::vector<OwnedSession> list;
      list.reserve(stored_.size());
      for (const StoredSession& st : stored_) {
        list.push_back({st.start, st.end, st.fired, std::string(st.accumulators)});
      }
      pending_.emplace(std::string(keys[r].substr(1)), std::move(list));
    }
    return Status::OK();
  }

  // The sessions of stored `key`, read once per chunk of timers and changed
  // in pending_ until write_pending().
  Result<std::vector<OwnedSession>*> stored_sessions_of(std::string_view key) {
    auto it = pending_.find(key);
    if (it != pending_.end()) return &it->second;
    rec_key_.assign(1, kSessionRecord);
    rec_key_.append(key);
    DF_ASSIGN_OR_RETURN(std::optional<std::string> rec, store_->get(rec_key_));
    if (!rec) return Status::internal("window state: a session timer without its session");
    DF_RETURN_IF_ERROR(read_stored_sessions(*rec, stored_));
    std::vector<OwnedSession> list;
    list.reserve(stored_.size());
    for (const StoredSession& st : stored_) {
      list.push_back({st.start, st.end, st.fired, std::string(st.accumulators)});
    }
    return &pending_.emplace(std::string(key), std::move(list)).first->second;
  }

  // Fires the stored session (key, end) whose fire timer is `timer_key`.
  Status fire_stored_session(const std::string& timer_key, std::string_view key, int64_t end,
                             runtime::Output& out) {
    DF_ASSIGN_OR_RETURN(std::vector<OwnedSession> * list, stored_sessions_of(key));
    auto s = std::find_if(list->begin(), list->end(),
                          [&](const OwnedSession& o) { return o.end == end; });
    if (s == list->end()) return Status::internal("window state: a fire timer without its session");
    scratch_.reset(0);
    DF_RETURN_IF_ERROR(scratch_.decode_merge(0, s->accumulators, decode_tmp_));
    DF_RETURN_IF_ERROR(sink_->append(key, s->start, s->end, scratch_, 0, out));
    pending_wb_.remove(timer_key);
    if (end - 1 + lateness_ <= watermark_) {
      list->erase(s);  // past its lateness already: purged at once
    } else {
      s->fired = true;
      std::string pk = timer_key;
      pk[0] = kPurgeTimer;
      pending_wb_.put(pk, "");
    }
    return Status::OK();
  }

  // Drops stored sessions whose allowed lateness has passed.
  Status purge_stored_sessions() {
    const int64_t max_end = sat_add(sat_add(watermark_, 1), -lateness_);
    // As in fire_until: purge timers written later end past this bound.
    std::string lo = purge_from_.empty() ? std::string(1, kPurgeTimer) : purge_from_;
    const std::string hi = timer_bound(kPurgeTimer, max_end);
    if (hi <= lo) return Status::OK();
    purge_from_ = hi;
    while (true) {
      DF_RETURN_IF_ERROR(collect_timers(lo, hi));
      for (const std::string& tk : timer_keys_) {
        std::string_view rest = std::string_view(tk).substr(1);
        DF_ASSIGN_OR_RETURN(int64_t end, state::read_ordered_i64(rest));
        DF_ASSIGN_OR_RETURN(std::vector<OwnedSession> * list, stored_sessions_of(rest));
        std::erase_if(*list, [&](const OwnedSession& o) { return o.end == end; });
        pending_wb_.remove(tk);
      }
      DF_RETURN_IF_ERROR(write_pending());
      if (timer_keys_.size() < kTimerChunk) break;
      lo = timer_keys_.back();
      lo.push_back('\0');
    }
    return Status::OK();
  }

  // Writes the changed session records and timers as one batch.
  Status write_pending() {
    for (auto& [key, list] : pending_) {
      rec_key_.assign(1, kSessionRecord);
      rec_key_.append(key);
      if (list.empty()) {
        pending_wb_.remove(rec_key_);
        continue;
      }
      buf_.clear();
      append_session_count(list.size(), buf_);
      for (const OwnedSession& o : list) {
        append_stored_session({o.start, o.end, o.fired, o.accumulators}, buf_);
      }
      pending_wb_.put(rec_key_, buf_);
    }
    pending_.clear();
    if (pending_wb_.empty()) return Status::OK();
    Status st = store_->write(pending_wb_);
    pending_wb_.clear();
    return st;
  }

  // Moves the stored sessions of the batch's keys (the first n of
  // key_arena_) into memory, removing them from the store, with one
  // multi_get: afterwards a key is in memory or nowhere.
  Status load_sessions(size_t n) {
    lookup_.clear();
    for (size_t k = 0; k < n; ++k) {
      const std::string_view key = batch_key(k);
      if (sessions_.find(key) != sessions_.end()) continue;
      std::string rk(1, kSessionRecord);
      rk.append(key);
      lookup_.push_back(std::move(rk));
    }
    if (lookup_.empty()) return Status::OK();
    std::sort(lookup_.begin(), lookup_.end());
    lookup_.erase(std::unique(lookup_.begin(), lookup_.end()), lookup_.end());
    std::vector<std::string_view> keys(lookup_.begin(), lookup_.end());
    std::vector<std::optional<std::string>> recs;
    DF_RETURN_IF_ERROR(store_->multi_get(keys, recs));
    state::WriteBatch wb;
    for (size_t r = 0; r < keys.size(); ++r) {
      if (!recs[r]) continue;
      const std::string_view key = keys[r].substr(1);
      DF_RETURN_IF_ERROR(read_stored_sessions(*recs[r], stored_));
      wb.remove(keys[r]);
      SessionList list;
      list.reserve(stored_.size());
      const size_t b = key.size() + kSessionOverhead + session_groups_.fixed_bytes_per_group();
      for (const StoredSession& st : stored_) {
        const uint32_t g = alloc_session_group();
        DF_RETURN_IF_ERROR(session_groups_.decode_merge(g, st.accumulators, decode_tmp_));
        list.push_back(Session{st.start, st.end, g, st.fired, false});
        timers_of(list.back()).emplace(st.end, std::string(key));
        std::string tk(1, st.fired ? kPurgeTimer : kFireTimer);
        state::append_ordered_i64(st.end, tk);
        tk += key;
        wb.remove(tk);
        session_bytes_ += b;
        mem_bytes_ += b + st.accumulators.size();
      }
      sessions_.emplace(std::string(key), std::move(list));
    }
    return store_->write(wb);
  }

  // Writes every in-memory session to the store and empties memory.
  Status spill_sessions() {
    DF_RETURN_IF_ERROR(ensure_store());
    // Records, then timers, each in key order (RocksDB inserts a sorted
    // batch far faster).
    std::vector<const std::pair<const std::string, SessionList>*> keys;
    keys.reserve(sessions_.size());
    for (const auto& e : sessions_) keys.push_back(&e);
    sort_by_key(keys, [](const auto* e) { return std::string_view(e->first); });
    state::WriteBatch wb;
    std::string k;
    std::string acc;
    size_t n_sessions = 0;
    for (const auto* e : keys) {
      const std::string& key = e->first;
      buf_.clear();
      append_session_count(e->second.size(), buf_);
      for (const Session& st : e->second) {
        acc.clear();
        session_groups_.encode(st.g, acc);
        append_stored_session({st.start, st.end, st.fired, acc}, buf_);
      }
      n_sessions += e->second.size();
      k.assign(1, kSessionRecord);
      k += key;
      wb.put(k, buf_);
      if (wb.size() >= kSpillWriteBatch) {
        DF_RETURN_IF_ERROR(store_->write(wb));
        wb.clear();
      }
    }
    // Each session's timer is in fire_timers_ (not fired) or purge_timers_
    // (fired), ordered by (end, key): iterated fire timers then purge
    // timers, they are already in the stored keys' byte order.
    if (fire_timers_.size() + purge_timers_.size() != n_sessions) {
      return Status::internal("window: session timers out of step with the sessions");
    }
    for (const Timers* timers : {&fire_timers_, &purge_timers_}) {
      const char tag = timers == &fire_timers_ ? kFireTimer : kPurgeTimer;
      for (const auto& [end, key] : *timers) {
        k.assign(1, tag);
        state::append_ordered_i64(end, k);
        k += key;
        wb.put(k, {});
        if (wb.size() >= kSpillWriteBatch) {
          DF_RETURN_IF_ERROR(store_->write(wb));
          wb.clear();
        }
      }
    }
    if (!wb.empty()) DF_RETURN_IF_ERROR(store_->write(wb));
    if (!sessions_.empty()) store_has_sessions_ = true;
    sessions_.clear();
    fire_timers_.clear();
    purge_timers_.clear();
    session_groups_.clear();
    free_groups_.clear();
    redirect_.clear();
    session_bytes_ = 0;
    mem_bytes_ = 0;
    return Status::OK();
  }

  // Drops windows, panes and sessions whose allowed lateness has passed.
  Status purge() {
    DF_RETURN_IF_ERROR(purge_windows(watermark_));
    while (!purge_timers_.empty() && purge_timers_.begin()->first - 1 + lateness_ <= watermark_) {
      auto node = purge_timers_.extract(purge_timers_.begin());
      remove_session(node.value().second, node.value().first);
    }
    if (store_has_sessions_) DF_RETURN_IF_ERROR(purge_stored_sessions());
    return Status::OK();
  }

  // Drops the windows and panes whose allowed lateness has passed at
  // watermark `limit` (kMaxTime: all of them).
  Status purge_windows(int64_t limit) {
    while (!windows_.empty() && windows_.begin()->first - 1 + lateness_ <= limit) {
      windows_.erase(windows_.begin());
    }
    // Panes in end order have their last windows in end order too.
    while (!panes_.empty()) {
      auto it = panes_.begin();
      Pane& p = *it->second;
      if (last_window_end(p.end) - 1 + lateness_ > limit) break;
      if (p.spilled) {
        DF_RETURN_IF_ERROR(store_->remove_range(ordered_key(p.end), ordered_key(p.end + 1)));
      }
      mem_bytes_ -= std::min(mem_bytes_, p.bytes);
      if (!p.spilled) {
        // Keep its capacity for the next pane (consecutive panes see
        // similar keys); a spilled pane's memory was released already.
        std::unique_ptr<Pane> spare = std::move(it->second);
        spare->index.reset();
        spare->groups.reset_all();
        spare->bytes = 0;
        ++spare->version;
        spare_pane_ = std::move(spare);
      }
      panes_.erase(it);
    }
    return Status::OK();
  }

  // Re-emits fired windows and sessions that rows of this batch updated.
  Status emit_dirty(runtime::Output& out) {
    for (WindowState* w : dirty_windows_) {
      // Once per key: rows of one key may have changed several of its panes.
      emitted_keys_.clear();
      for (const DirtyGroup& d : w->dirty) {
        if (!emitted_keys_.insert(d.pane->index.key(d.g)).second) continue;
        DF_RETURN_IF_ERROR(emit_window_group(*w, d, out));
      }
      w->dirty.clear();
    }
    dirty_windows_.clear();
    for (const std::string& key : dirty_keys_) {
      auto it = sessions_.find(std::string_view(key));
      if (it == sessions_.end()) continue;
      for (Session& s : it->second) {
        if (!s.dirty) continue;
        s.dirty = false;
        DF_RETURN_IF_ERROR(sink_->append(key, s.start, s.end, session_groups_, s.g, out));
      }
    }
    dirty_keys_.clear();
    return Status::OK();
  }

  void route_late(const Batch& batch, runtime::Output& out) {
    if (late_.empty()) return;
    route_late_rows(batch, late_, !cfg_->late_output.empty(), "window '" + cfg_->id + "'",
                    watermark_, *ctx_, out);
  }

  std::shared_ptr<const WindowConfig> cfg_;
  const bool session_mode_;
  const bool int_key_;  // tumbling/sliding keyed by one int64/timestamp field
  const int64_t lateness_;
  runtime::OperatorContext* ctx_ = nullptr;
  std::unique_ptr<RowSink> sink_;
  expr::EvalContext eval_;

  int64_t watermark_ = kNoWatermark;
  uint64_t seq_base_ = 0;  // arrival number of the next row

  // Per-batch scratch, reused.
  std::vector<ColumnPtr> args_;
  std::vector<Entry> entries_;
  Selection late_;
  std::string key_arena_;  // encoded keys of the batch's alive rows
  // Row k's key: key_arena_'s bytes [first, first + second); a row whose key
  // repeats the row before's has that row's span.
  std::vector<std::pair<size_t, size_t>> key_spans_;
  std::vector<uint8_t> repeated_keys_;           // row k's key cells repeat row k - 1's
  std::vector<const int64_t*> int_key_columns_;  // encode_int_keys: the key fields' values
  std::string key_;                              // sessions: the current row's key
  std::string_view key_view_;                    // windows: the current row's key
  uint64_t key_hash_ = 0;
  // add_to: the pane, key and group of the row before (in this batch).
  const Pane* last_pane_ = nullptr;
  std::string_view last_key_;
  uint32_t last_group_ = 0;
  uint64_t last_seq_ = 0;     // of the row add_to placed last
  bool key_repeats_ = false;  // the row's key cells repeat the row before's
  int64_t key_int_ = 0;       // int_key_: the current row's key value
  bool key_null_ = false;     // int_key_: the current row's key is null
  std::string null_key_;      // the encoded null key
  WindowAssigner assigner_;
  const int64_t pane_ms_;  // tumbling, sliding: pane_ms(*cfg_)
  std::vector<uint64_t> hashes_;
  std::string buf_;
  std::vector<uint32_t> order_;
  GroupStates scratch_;     // one group: merge target for one key's groups and partials
  GroupStates decode_tmp_;  // one group: decoding scratch

  // Tumbling and sliding.
  std::map<int64_t, WindowState> windows_;          // by end: the kept windows
  std::map<int64_t, std::unique_ptr<Pane>> panes_;  // by end
  std::unique_ptr<Pane> spare_pane_;                // a purged pane kept for its capacity
  std::vector<WindowState*> dirty_windows_;
  // The pane of the rows being assigned and its kept windows, looked up
  // once per run of rows in one pane (target_pane); forgotten after each
  // batch, as watermarks fire and purge windows between batches.
  struct PaneTarget {
    int64_t start = 0;  // [start, end): start == end before the first lookup
    int64_t end = 0;
    Pane* pane = nullptr;  // nullptr: every window gone (late) or none (a gap)
    bool late = false;
    std::vector<WindowState*> fired;  // its kept windows that fired already
  };
  PaneTarget target_;
  std::vector<Pane*> fire_panes_;  // the panes of the window being emitted
  KeyTable merged_index_;          // fire_window: several panes' keys ...
  GroupStates merged_;             // ... and their merged groups
  // What merged_ holds (merge_panes): the groups of window merge_end_'s
  // panes merged so far, oldest pane first, the last one maybe in part.
  struct MergedPane {
    const Pane* pane;
    uint64_t version;  // the pane's that merged_ reflects
    uint32_t groups;   // its groups merged so far
  };
  static constexpr int64_t kNoMerge = std::numeric_limits<int64_t>::min();
  int64_t merge_end_ = kNoMerge;
  std::vector<MergedPane> merged_panes_;
  std::vector<uint32_t> merged_groups_;  // merged_panes_.back()'s groups' in merged_
  std::vector<Entry> live_entries_;      // merge_live_rows: a batch's rows for merged_
  bool merge_ahead_ = false;             // passed panes may wait to be merged ahead
  std::unordered_set<std::string_view, StringHash, std::equal_to<>> emitted_keys_;

  // Sessions.
  std::unordered_map<std::string, SessionList, StringHash, std::equal_to<>> sessions_;
  GroupStates session_groups_;
  std::vector<uint32_t> free_groups_;
  std::vector<uint32_t> redirect_;
  std::vector<uint32_t> merged_away_;
  Timers fire_timers_;
  Timers purge_timers_;
  std::vector<std::string> dirty_keys_;
  size_t session_bytes_ = 0;

  // Memory budget and spilling.
  std::string state_dir_;
  bool spill_enabled_ = false;
  size_t budget_ = kDefaultMemoryBudget;
  size_t mem_bytes_ = 0;
  std::unique_ptr<state::KvStore> store_;
  // Made at the first snapshot of an empty store.
  std::shared_ptr<EmptyStoreImage> empty_image_;
  uint64_t spill_seq_ = 0;

  // Sessions in the store.
  bool store_has_sessions_ = false;  // set by the first spill or a resume
  std::vector<std::string> lookup_;  // record keys for one multi_get
  std::string fire_from_;            // stored fire timers below were handled
  std::string purge_from_;           // stored purge timers below were handled
  std::string rec_key_;
  std::vector<StoredSession> stored_;
  std::vector<std::string> timer_keys_;
  std::unordered_map<std::string, std::vector<OwnedSession>, StringHash, std::equal_to<>> pending_;
  state::WriteBatch pending_wb_;
};

}  // namespace

void append_session_count(uint64_t count, std::string& out) { state::append_varint(count, out); }

void append_stored_session(const StoredSession& s, std::string& out) {
  state::append_ordered_i64(s.start, out);
  state::append_ordered_i64(s.end, out);
  out += s.fired ? '\1' : '\0';
  state::append_varint(s.accumulators.size(), out);
  out.append(s.accumulators);
}

Status read_stored_sessions(std::string_view in, std::vector<StoredSession>& out) {
  out.clear();
  const auto bad = [] { return Status::data_error("window state: malformed session record"); };
  auto count = state::read_varint(in);
  if (!count.ok() || *count == 0 || *count > in.size()) return bad();
  for (uint64_t i = 0; i < *count; ++i) {
    StoredSession s;
    auto start = state::read_ordered_i64(in);
    if (!start.ok()) return bad();
    auto end = state::read_ordered_i64(in);
    if (!end.ok() || in.empty() || static_cast<unsigned char>(in[0]) > 1) return bad();
    s.start = *start;
    s.end = *end;
    s.fired = in[0] == 1;
    in.remove_prefix(1);
    auto len = state::read_varint(in);
    if (!len.ok() || *len > in.size()) return bad();
    s.accumulators = in.substr(0, *len);
    in.remove_prefix(*len);
    out.push_back(s);
  }
  if (!in.empty()) return bad();
  return Status::OK();
}

Result<std::string_view> split_key(const WindowConfig& cfg, std::string_view& in) {
  std::string_view rest = in;
  for (size_t i = 0; i < cfg.key_types.size(); ++i) {
    auto v = state::decode_key_value(rest, cfg.key_types[i]);
    if (!v.ok()) {
      return Status::data_error("window state: key field " + std::to_string(i + 1) +
                                " does not decode: " + v.status().message());
    }
  }
  std::string_view key = in.substr(0, in.size() - rest.size());
  in = rest;
  return key;
}

namespace {

const char* type_word(WindowType t) {
  switch (t) {
    case WindowType::kTumbling:
      return "tumbling";
    case WindowType::kSliding:
      return "sliding";
    case WindowType::kSession:
      return "session";
  }
  return "?";
}

// Sliding windows keep their state per pane since format 2; a format 1
// checkpoint holds whole sliding windows, which panes cannot be split from.
int meta_format(WindowType t) { return t == WindowType::kSliding ? 2 : 1; }

}  // namespace

int64_t pane_ms(const WindowConfig& cfg) {
  switch (cfg.type) {
    case WindowType::kTumbling:
      return cfg.size_ms;
    case WindowType::kSliding:
      return std::gcd(cfg.size_ms, cfg.slide_ms);
    case WindowType::kSession:
      break;
  }
  return 0;
}

nlohmann::json meta_to_json(const WindowConfig& cfg, const WindowMeta& meta) {
  nlohmann::json j = {
      {"format", meta_format(cfg.type)},
      {"window", type_word(cfg.type)},
      {"watermark_ms", meta.watermark ? nlohmann::json(*meta.watermark) : nlohmann::json(nullptr)},
      {"next_seq", meta.next_seq}};
  if (cfg.type != WindowType::kSession) {
    j["spill_seq"] = meta.spill_seq;
    nlohmann::json windows = nlohmann::json::array();
    for (const auto& [end, fired] : meta.windows) {
      windows.push_back({{"end_ms", end}, {"fired", fired}});
    }
    j["windows"] = std::move(windows);
  }
  if (cfg.type == WindowType::kSliding) j["panes_end_ms"] = meta.panes;
  return j;
}

Result<WindowMeta> meta_from_json(const WindowConfig& cfg, const nlohmann::json& j) {
  using nlohmann::json;
  if (!j.is_object()) return Status::invalid("the window meta must be a JSON object");
  const bool session = cfg.type == WindowType::kSession;
  std::vector<std::string> fields = {"format", "window", "watermark_ms", "next_seq"};
  if (!session) {
    fields.push_back("spill_seq");
    fields.push_back("windows");
  }
  if (cfg.type == WindowType::kSliding) fields.push_back("panes_end_ms");
  for (const auto& [k, v] : j.items()) {
    if (std::find(fields.begin(), fields.end(), k) == fields.end()) {
      return Status::invalid("the window meta has an unknown field '" + k + "'");
    }
  }
  for (const std::string& f : fields) {
    if (!j.contains(f)) return Status::invalid("the window meta lacks the field '" + f + "'");
  }
  const auto is_int = [](const json& v) { return v.is_number_integer(); };
  // An integer that fits int64 (the parser reads large positive ones as unsigned).
  const auto is_int64 = [](const json& v) {
    return v.is_number_integer() &&
           (!v.is_number_unsigned() || v.get<uint64_t>() <= uint64_t{INT64_MAX});
  };
  const auto is_uint = [](const json& v) {
    return v.is_number_unsigned() || (v.is_number_integer() && v.get<int64_t>() >= 0);
  };
  const int format = meta_format(cfg.type);
  if (!is_int(j["format"]) || j["format"].get<int64_t>() != format) {
    std::string why;
    if (cfg.type == WindowType::kSliding && j["format"] == 1) {
      why = " (sliding windows keep their state per pane since format 2)";
    }
    return Status::invalid("the window meta has format " + j["format"].dump() + ", expected " +
                           std::to_string(format) + why);
  }
  if (!j["window"].is_string() || j["window"].get<std::string>() != type_word(cfg.type)) {
    return Status::invalid("the window meta is for a " + j["window"].dump() +
                           " window, but this node is a " + type_word(cfg.type) + " window");
  }
  WindowMeta m;
  const json& wm = j["watermark_ms"];
  if (!wm.is_null()) {
    if (!is_int(wm) || wm.is_number_unsigned()) {
      if (!(wm.is_number_unsigned() && wm.get<uint64_t>() <= uint64_t{INT64_MAX})) {
        return Status::invalid("the window meta's 'watermark_ms' must be an integer or null");
      }
    }
    m.watermark = wm.get<int64_t>();
  }
  if (!is_uint(j["next_seq"])) {
    return Status::invalid("the window meta's 'next_seq' must be a non-negative integer");
  }
  m.next_seq = j["next_seq"].get<uint64_t>();
  if (session) return m;
  if (!is_uint(j["spill_seq"])) {
    return Status::invalid("the window meta's 'spill_seq' must be a non-negative integer");
  }
  m.spill_seq = j["spill_seq"].get<uint64_t>();
  const json& windows = j["windows"];
  if (!windows.is_array()) return Status::invalid("the window meta's 'windows' must be an array");
  for (size_t i = 0; i < windows.size(); ++i) {
    const json& w = windows[i];
    const std::string what = "the window meta's windows[" + std::to_string(i) + "]";
    if (!w.is_object() || w.size() != 2 || !w.contains("end_ms") || !w.contains("fired")) {
      return Status::invalid(what + " must be an object {\"end_ms\": <int>, \"fired\": <bool>}");
    }
    if (!is_int(w["end_ms"]) || w["end_ms"].is_number_unsigned()) {
      if (!(w["end_ms"].is_number_unsigned() &&
            w["end_ms"].get<uint64_t>() <= uint64_t{INT64_MAX})) {
        return Status::invalid(what + ".end_ms must be an integer");
      }
    }
    if (!w["fired"].is_boolean()) return Status::invalid(what + ".fired must be a boolean");
    const int64_t end = w["end_ms"].get<int64_t>();
    if (!m.windows.empty() && end <= m.windows.back().first) {
      return Status::invalid("the window meta's windows must have ascending ends");
    }
    m.windows.emplace_back(end, w["fired"].get<bool>());
  }
  if (cfg.type != WindowType::kSliding) return m;
  const json& panes = j["panes_end_ms"];
  if (!panes.is_array()) {
    return Status::invalid("the window meta's 'panes_end_ms' must be an array");
  }
  for (const json& p : panes) {
    if (!is_int64(p)) return Status::invalid("the window meta's 'panes_end_ms' must be integers");
    const int64_t end = p.get<int64_t>();
    if (!m.panes.empty() && end <= m.panes.back()) {
      return Status::invalid("the window meta's 'panes_end_ms' must ascend");
    }
    m.panes.push_back(end);
  }
  return m;
}

std::unique_ptr<runtime::Operator> make_window_operator(
    std::shared_ptr<const WindowConfig> config) {
  return std::make_unique<WindowOperator>(std::move(config));
}

void route_late_rows(const Batch& batch, const Selection& late, bool has_late_output,
                     const std::string& what, int64_t watermark, runtime::OperatorContext& ctx,
                     runtime::Output& out) {
  if (late.empty()) return;
  if (has_late_output) {
    out.emit_to(1, batch.with_selection(std::make_shared<const Selection>(late)));
    return;
  }
  const int64_t* ts = batch.event_time()->int64_data();
  for (uint32_t r : late) {
    ctx.report_data_error("late row dropped: " + what + " row at " + format_timestamp(ts[r]) +
                          " is behind watermark " + format_timestamp(watermark) +
                          " by more than the allowed lateness");
  }
}

}  // namespace df::operators::window
