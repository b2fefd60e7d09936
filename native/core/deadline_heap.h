// Deadlines: a binary min-heap of elements ordered by (deadline, seq), indexed so that any
// element leaves in O(log n) the moment it stops waiting. A server that arms a 30 s timeout on
// every read and settles the read in microseconds keeps no dead entries around, which a lazy
// heap (mark and skip at pop) would.
//
// Intrusive: T carries `int64_t deadline`, `uint64_t timerSeq` (orders equal deadlines first in,
// first out) and `size_t heapIndex` (its position here, kNotInHeap when absent). The heap owns
// none of its elements.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace async_engine {

constexpr size_t kNotInHeap = SIZE_MAX;

template <typename T>
class DeadlineHeap {
 public:
  bool empty() const { return items_.empty(); }
  size_t size() const { return items_.size(); }
  // The element due first; the heap must not be empty.
  T* top() const { return items_.front(); }
  static bool contains(const T* x) { return x->heapIndex != kNotInHeap; }

  void push(T* x) {
    x->heapIndex = items_.size();
    items_.push_back(x);
    siftUp(x->heapIndex);
  }

  // Takes `x` out wherever it is; nothing when it is not in the heap.
  void remove(T* x) {
    size_t i = x->heapIndex;
    if (i == kNotInHeap) return;
    x->heapIndex = kNotInHeap;
    T* last = items_.back();
    items_.pop_back();
    if (last == x) return;
    items_[i] = last;
    last->heapIndex = i;
    siftUp(i);
    siftDown(last->heapIndex);
  }

 private:
  static bool earlier(const T* a, const T* b) {
    return a->deadline != b->deadline ? a->deadline < b->deadline : a->timerSeq < b->timerSeq;
  }

  void place(size_t i, T* x) {
    items_[i] = x;
    x->heapIndex = i;
  }

  void siftUp(size_t i) {
    while (i > 0) {
      size_t parent = (i - 1) / 2;
      if (!earlier(items_[i], items_[parent])) break;
      T* child = items_[i];
      place(i, items_[parent]);
      place(parent, child);
      i = parent;
    }
  }

  void siftDown(size_t i) {
    for (;;) {
      size_t l = 2 * i + 1, r = l + 1, m = i;
      if (l < items_.size() && earlier(items_[l], items_[m])) m = l;
      if (r < items_.size() && earlier(items_[r], items_[m])) m = r;
      if (m == i) return;
      T* x = items_[i];
      place(i, items_[m]);
      place(m, x);
      i = m;
    }
  }

  std::vector<T*> items_;
};

}  // namespace async_engine
