// KvStore in memory: an ordered std::map with the same semantics as the
// RocksDB store (byte order, half-open scans, atomic batches).
#include <map>

#include "engine/state/state_backend.h"

namespace df::state {

// Default for stores without a native multi-get: one get per key.
Status KvStore::multi_get(const std::vector<std::string_view>& keys,
                          std::vector<std::optional<std::string>>& values) {
  values.clear();
  values.reserve(keys.size());
  for (std::string_view k : keys) {
    DF_ASSIGN_OR_RETURN(auto v, get(k));
    values.push_back(std::move(v));
  }
  return Status::OK();
}

namespace {

class MemoryStore final : public KvStore {
 public:
  Result<std::optional<std::string>> get(std::string_view key) override {
    auto it = map_.find(key);
    if (it == map_.end()) return std::optional<std::string>();
    return std::optional<std::string>(it->second);
  }

  Status put(std::string_view key, std::string_view value) override {
    auto it = map_.find(key);
    if (it == map_.end()) {
      map_.emplace(std::string(key), std::string(value));
      bytes_ += key.size() + value.size();
    } else {
      bytes_ = bytes_ - it->second.size() + value.size();
      it->second.assign(value.data(), value.size());
    }
    return Status::OK();
  }

  Status remove(std::string_view key) override {
    auto it = map_.find(key);
    if (it != map_.end()) erase(it, std::next(it));
    return Status::OK();
  }

  // Nothing here can fail halfway, so applying the ops in order is atomic.
  Status write(const WriteBatch& batch) override {
    for (const auto& op : batch.ops()) {
      if (op.is_remove) {
        remove(op.key).ignore();
      } else {
        put(op.key, op.value).ignore();
      }
    }
    return Status::OK();
  }

  Status scan(std::string_view begin, std::string_view end, const ScanFn& fn) override {
    for (auto it = map_.lower_bound(begin); it != map_.end(); ++it) {
      if (!end.empty() && std::string_view(it->first) >= end) break;
      if (!fn(it->first, it->second)) break;
    }
    return Status::OK();
  }

  Status remove_range(std::string_view begin, std::string_view end) override {
    if (!end.empty() && end <= begin) return Status::OK();
    erase(map_.lower_bound(begin), end.empty() ? map_.end() : map_.lower_bound(end));
    return Status::OK();
  }

  uint64_t approximate_size() override { return bytes_; }

 private:
  using Map = std::map<std::string, std::string, std::less<>>;

  void erase(Map::iterator first, Map::iterator last) {
    for (auto it = first; it != last; ++it) bytes_ -= it->first.size() + it->second.size();
    map_.erase(first, last);
  }

  Map map_;
  uint64_t bytes_ = 0;  // keys + values
};

}  // namespace

std::unique_ptr<KvStore> open_memory() { return std::make_unique<MemoryStore>(); }

}  // namespace df::state
