// A FIFO for the per-handle queues (ops waiting on a socket, accepted connections, receive
// reports). Unlike std::deque, which allocates a map and a 512-byte block as soon as it is
// constructed, an empty SmallQueue holds no memory: with 10,000 idle connections and seven
// queues each, that is the difference between kilobytes per connection and none. The usual
// length is 0 to 2; the storage is a vector read from `head_`, reset when it drains.
#pragma once

#include <cstddef>
#include <utility>
#include <vector>

namespace async_engine {

template <typename T>
class SmallQueue {
 public:
  using iterator = typename std::vector<T>::iterator;

  bool empty() const { return head_ == items_.size(); }
  size_t size() const { return items_.size() - head_; }
  T& front() { return items_[head_]; }
  const T& front() const { return items_[head_]; }
  void push_back(T v) { items_.push_back(std::move(v)); }
  void pop_front() {
    if (++head_ == items_.size()) {
      clear();
    } else if (head_ >= kKeep && head_ * 2 >= items_.size()) {
      // A queue that never drains would otherwise keep every item it ever held: once the
      // popped ones are half the vector, they go (at most one move per pop, amortized).
      items_.erase(items_.begin(), items_.begin() + static_cast<std::ptrdiff_t>(head_));
      head_ = 0;
    }
  }
  // Drops everything; a queue that grew large gives its storage back.
  void clear() {
    items_.clear();
    head_ = 0;
    if (items_.capacity() > kKeep) std::vector<T>().swap(items_);
  }
  iterator begin() { return items_.begin() + static_cast<std::ptrdiff_t>(head_); }
  iterator end() { return items_.end(); }
  void erase(iterator it) {
    items_.erase(it);
    if (empty()) clear();
  }
  void swap(SmallQueue& other) {
    items_.swap(other.items_);
    std::swap(head_, other.head_);
  }

 private:
  static constexpr size_t kKeep = 16;
  std::vector<T> items_;
  size_t head_ = 0;
};

}  // namespace async_engine
