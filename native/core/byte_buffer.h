// A socket's input buffer: bytes received and not yet consumed by an op, in one contiguous
// span so that framing can search it in place. Storage is released when it drains, so an idle
// connection holds no buffer memory; and when a receive lands on an empty buffer, its bytes are
// framed where they landed (borrowed) and only what is left over is copied in.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <new>

namespace async_engine {

class ByteBuffer {
 public:
  ByteBuffer() = default;
  ByteBuffer(const ByteBuffer&) = delete;
  ByteBuffer& operator=(const ByteBuffer&) = delete;
  ~ByteBuffer() { std::free(data_); }

  const char* data() const { return borrowed_ ? borrowed_ : data_ + r_; }
  size_t size() const { return borrowed_ ? borrowedLen_ : w_ - r_; }
  bool empty() const { return size() == 0; }

  // New bytes at `p`. On an empty buffer they are only borrowed: `p` must stay valid until
  // settle(), which copies whatever is still unconsumed.
  void append(const char* p, size_t n) {
    if (n == 0) return;
    if (empty() && !borrowed_) {
      borrowed_ = p;
      borrowedLen_ = n;
      return;
    }
    settle();
    reserve(n);
    std::memcpy(data_ + w_, p, n);
    w_ += n;
  }

  // Puts bytes back in front of the buffered ones: bytes JavaScript took in bulk and did not
  // consume, returned before a read that must wait for more.
  void prepend(const char* p, size_t n) {
    if (n == 0) return;
    settle();
    if (r_ >= n) {
      r_ -= n;
      std::memcpy(data_ + r_, p, n);
      return;
    }
    size_t live = w_ - r_;
    size_t cap = 4096;
    while (cap < live + n) cap *= 2;
    char* fresh = static_cast<char*>(std::malloc(cap));
    if (!fresh) throw std::bad_alloc();
    std::memcpy(fresh, p, n);
    if (live) std::memcpy(fresh + n, data_ + r_, live);
    std::free(data_);
    data_ = fresh;
    cap_ = cap;
    r_ = 0;
    w_ = live + n;
  }

  // Makes the buffer own its bytes (before the memory it borrows is reused).
  void settle() {
    if (!borrowed_) return;
    const char* p = borrowed_;
    size_t n = borrowedLen_;
    borrowed_ = nullptr;
    borrowedLen_ = 0;
    if (n == 0) return;
    reserve(n);
    std::memcpy(data_ + w_, p, n);
    w_ += n;
  }

  // Drops the first n bytes; the storage goes once nothing is left.
  void consume(size_t n) {
    if (borrowed_) {
      borrowed_ += n;
      borrowedLen_ -= n;
      if (borrowedLen_ == 0) borrowed_ = nullptr;
      return;
    }
    r_ += n;
    if (r_ == w_) release();
  }

  void release() {
    std::free(data_);
    data_ = nullptr;
    r_ = w_ = cap_ = 0;
  }

 private:
  void reserve(size_t n) {
    if (cap_ - w_ >= n) return;
    size_t live = w_ - r_;
    if (r_ > 0 && cap_ - live >= n && r_ >= live) {  // compact rather than grow
      std::memmove(data_, data_ + r_, live);
      r_ = 0;
      w_ = live;
      return;
    }
    size_t want = live + n;
    size_t cap = cap_ ? cap_ : 4096;
    while (cap < want) cap *= 2;
    char* fresh = static_cast<char*>(std::malloc(cap));
    if (!fresh) throw std::bad_alloc();
    if (live) std::memcpy(fresh, data_ + r_, live);
    std::free(data_);
    data_ = fresh;
    cap_ = cap;
    r_ = 0;
    w_ = live;
  }

  char* data_ = nullptr;
  size_t r_ = 0;
  size_t w_ = 0;
  size_t cap_ = 0;
  const char* borrowed_ = nullptr;
  size_t borrowedLen_ = 0;
};

}  // namespace async_engine
