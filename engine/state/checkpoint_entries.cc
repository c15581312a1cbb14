// CheckpointEntries: the arena and the sort; add_to_checkpoint is in
// rocksdb_store.cc.
#include <algorithm>
#include <limits>
#include <stdexcept>
#include <string>

#include "engine/state/key_sort.h"
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

void CheckpointEntries::reserve(size_t count, size_t bytes) {
  entries_.reserve(entries_.size() + count);
  arena_.reserve(arena_.size() + bytes);
}

Result<std::vector<uint32_t>> CheckpointEntries::sorted_order() const {
  // 32-bit indexes: a checkpoint's entries are far fewer than 4 G.
  if (entries_.size() > std::numeric_limits<uint32_t>::max()) {
    throw std::length_error("CheckpointEntries: 4 G entries or more");
  }
  std::vector<uint32_t> order(entries_.size());
  for (uint32_t i = 0; i < order.size(); ++i) order[i] = i;
  const auto key = [this](uint32_t i) {
    const Slot& s = entries_[i];
    return std::string_view(arena_.data() + s.offset, s.key_size);
  };
  sort_by_key(order, key);
  for (size_t i = 1; i < order.size(); ++i) {
    if (key(order[i]) == key(order[i - 1])) {
      return Status::invalid("checkpoint entries: a key of " +
                             std::to_string(key(order[i]).size()) + " bytes appears twice");
    }
  }
  return order;
}

Result<std::vector<CheckpointEntries::Entry>> CheckpointEntries::sorted() const {
  std::vector<Entry> out;
  out.reserve(entries_.size());
  DF_RETURN_IF_ERROR(for_each_sorted([&out](const Entry& e) {
    out.push_back(e);
    return Status::OK();
  }));
  return out;
}

}  // namespace df::state
