// Internal to engine/core: a per-thread free list for the buffers of
// per-batch objects (columns, selection vectors), so that making one for every
// batch costs neither an allocation nor zero-filling.
//
// Threading: each thread has its own list and touches only that one, so no
// lock is needed. An object goes to the list of the thread that releases it
// (for a shared_ptr: the one that drops the last reference, after the
// reference count's acquire-release decrement, so every earlier reader is
// done with it). Bounded per thread in count and bytes; whatever does not fit
// is deleted, as is everything when the thread exits.
#pragma once

#include <cstddef>
#include <utility>
#include <vector>

namespace df::core_internal {

template <class T, size_t kMaxItems, size_t kMaxBytes>
class ThreadFreeList {
 public:
  // Removes and returns the most recently released item (still in cache)
  // for which `fits(item)` holds, or nullptr.
  template <class Fits>
  static T* take(Fits&& fits) {
    if (closed_) return nullptr;
    auto& items = list().items;
    for (size_t i = items.size(); i-- > 0;) {
      if (!fits(*items[i].first)) continue;
      auto [item, bytes] = items[i];
      items.erase(items.begin() + static_cast<std::ptrdiff_t>(i));
      list().bytes -= bytes;
      return item;
    }
    return nullptr;
  }

  // Keeps `item`, which retains `bytes` of storage, or deletes it.
  static void give(T* item, size_t bytes) {
    if (closed_) {
      delete item;
      return;
    }
    List& l = list();
    if (l.items.size() >= kMaxItems || l.bytes + bytes > kMaxBytes) {
      delete item;
      return;
    }
    l.items.emplace_back(item, bytes);
    l.bytes += bytes;
  }

 private:
  struct List {
    std::vector<std::pair<T*, size_t>> items;
    size_t bytes = 0;
    ~List() {
      closed_ = true;
      for (auto& entry : items) delete entry.first;
    }
  };
  static List& list() {
    thread_local List l;
    return l;
  }
  // Set when this thread's list is destroyed: items released later (by other
  // thread-local destructors) are deleted. Trivially destructible, so it
  // stays readable until the thread ends.
  static inline thread_local bool closed_ = false;
};

}  // namespace df::core_internal
