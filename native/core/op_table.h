// Live ops and handles by id: an open-addressing hash table (linear probing, tombstones), so
// that the two or three ops a request makes and settles cost no allocation each, as a
// node-based map's would. Ids are positive (JavaScript's) or below -1 (the core's own ops).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace async_engine {

template <typename T>
class IdTable {
 public:
  IdTable() : slots_(64) {}

  size_t size() const { return size_; }

  T* find(int64_t id) const {
    size_t mask = slots_.size() - 1;
    for (size_t i = hash(id) & mask;; i = (i + 1) & mask) {
      const Slot& s = slots_[i];
      if (s.id == id) return s.op;
      if (s.id == kEmpty) return nullptr;
    }
  }

  void insert(int64_t id, T* op) {
    if ((used_ + 1) * 2 > slots_.size()) rehash(size_ * 4 > slots_.size() ? slots_.size() * 2 : slots_.size());
    size_t mask = slots_.size() - 1;
    // The id may already sit past a tombstone: look on to an empty slot before reusing one.
    Slot* gone = nullptr;
    for (size_t i = hash(id) & mask;; i = (i + 1) & mask) {
      Slot& s = slots_[i];
      if (s.id == id) {
        s.op = op;
        return;
      }
      if (s.id == kGone && !gone) gone = &s;
      if (s.id == kEmpty) {
        if (!gone) {
          gone = &s;
          used_++;
        }
        *gone = Slot{id, op};
        size_++;
        return;
      }
    }
  }

  void erase(int64_t id) {
    size_t mask = slots_.size() - 1;
    for (size_t i = hash(id) & mask;; i = (i + 1) & mask) {
      Slot& s = slots_[i];
      if (s.id == kEmpty) return;
      if (s.id == id) {
        s = Slot{kGone, nullptr};
        size_--;
        return;
      }
    }
  }

  template <typename F>
  void forEach(F&& f) const {
    for (const Slot& s : slots_) {
      if (live(s.id)) f(s.id, s.op);
    }
  }

 private:
  static constexpr int64_t kEmpty = 0;
  static constexpr int64_t kGone = -1;
  struct Slot {
    int64_t id = kEmpty;
    T* op = nullptr;
  };

  // Every id but the two markers: JavaScript's ops are positive, the core's own negative.
  static bool live(int64_t id) { return id != kEmpty && id != kGone; }

  static size_t hash(int64_t id) { return static_cast<size_t>(static_cast<uint64_t>(id) * 0x9E3779B97F4A7C15ull >> 16); }

  // Rebuilds without tombstones, at `cap` slots (a power of two).
  void rehash(size_t cap) {
    std::vector<Slot> old;
    old.swap(slots_);
    slots_.assign(cap, Slot{});
    size_ = used_ = 0;
    for (const Slot& s : old) {
      if (live(s.id)) insert(s.id, s.op);
    }
  }

  std::vector<Slot> slots_;
  size_t size_ = 0;  // live entries
  size_t used_ = 0;  // live entries and tombstones
};

}  // namespace async_engine
