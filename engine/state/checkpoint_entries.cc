// CheckpointEntries: the arena and the sort; add_to_checkpoint is in
// rocksdb_store.cc.
#include <algorithm>
#include <limits>
#include <stdexcept>
#include <string>

#include "engine/state/state_backend.h"

namespace df::state {

void CheckpointEntries::add(std::string_view key, std::string_view value, bool is_remove) {
  // Sizes are 32-bit to keep a slot small; no state entry comes near 4 GiB.
  if (key.size() > std::numeric_limits<uint32_t>::max() ||
      value.size() > std::numeric_limits<uint32_t>::max()) {
    throw std::length_error("CheckpointEntries: an entry of 4 GiB or more");
  }
  if (in_order_ && !entries_.empty()) {
    const Slot& last = entries_.back();
    in_order_ = std::string_view(arena_.data() + last.offset, last.key_size) < key;
  }
  entries_.push_back({arena_.size(), static_cast<uint32_t>(key.size()),
                      static_cast<uint32_t>(value.size()), is_remove});
  arena_.append(key);
  arena_.append(value);
}

Result<std::vector<CheckpointEntries::Entry>> CheckpointEntries::sorted() const {
  std::vector<Entry> out;
  out.reserve(entries_.size());
  for (const Slot& s : entries_) {
    const char* p = arena_.data() + s.offset;
    out.push_back({std::string_view(p, s.key_size), std::string_view(p + s.key_size, s.value_size),
                   s.is_remove});
  }
  if (in_order_) return out;
  const auto less = [](const Entry& a, const Entry& b) { return a.key < b.key; };
  std::sort(out.begin(), out.end(), less);
  for (size_t i = 1; i < out.size(); ++i) {
    if (out[i].key == out[i - 1].key) {
      return Status::invalid("checkpoint entries: a key of " + std::to_string(out[i].key.size()) +
                             " bytes appears twice");
    }
  }
  return out;
}

}  // namespace df::state
