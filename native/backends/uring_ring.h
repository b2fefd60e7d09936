// A small io_uring ring over the raw system calls and <linux/io_uring.h>: setup with feature
// fallback, the mmapped submission and completion queues, enter, register and the op probe.
// Used only from the engine's thread (the ring is created IORING_SETUP_SINGLE_ISSUER where the
// kernel has it).
#pragma once

#include <linux/io_uring.h>

#include <atomic>
#include <cstdint>
#include <string>

namespace async_engine {

// What the kernel offers, found at setup and by IORING_REGISTER_PROBE.
struct RingFeatures {
  uint32_t setupFlags = 0;  // the flags the ring was created with
  uint32_t features = 0;    // io_uring_params.features
  bool accept = false, connect = false, recv = false, send = false, asyncCancel = false;
  bool shutdown = false;     // IORING_OP_SHUTDOWN (5.11)
  bool cancelByFd = false;  // IORING_ASYNC_CANCEL_FD|ALL (5.19)
  bool extArg = false;      // IORING_ENTER_EXT_ARG: waits with a timeout (5.11)
};

class Ring {
 public:
  Ring() = default;
  Ring(const Ring&) = delete;
  Ring& operator=(const Ring&) = delete;
  ~Ring();

  // Creates the ring with `entries` SQEs (a power of two is used) and a completion queue
  // `cqFactor` times larger; `disabled` lists setup features to leave off ("single_issuer",
  // "coop_taskrun", "cqsize") for tests of the fallbacks. Returns 0 or -errno.
  // 0, or -errno and (when `syscall` is given) the name of the call that failed.
  int init(unsigned entries, unsigned cqFactor, const std::string& disabled, const char** syscall = nullptr);
  int fd() const { return fd_; }
  const RingFeatures& features() const { return features_; }
  unsigned entries() const { return sqEntries_; }

  // A free SQE, zeroed, or nullptr when the queue is full (flush, then try again).
  io_uring_sqe* getSqe();
  // SQEs prepared and not yet handed to the kernel.
  unsigned pendingSubmissions() const { return sqeTail_ - publishedTail_; }
  // Hands the prepared SQEs to the kernel; waits for `waitNr` completions (with a timeout in
  // ms when waitMs >= 0 and the kernel has EXT_ARG). `getEvents` also runs the ring's pending
  // task work when waitNr is 0. Returns SQEs consumed or -errno.
  int submit(unsigned waitNr = 0, int waitMs = -1, bool getEvents = false);
  // Drops SQEs prepared and not submitted, returning their user_data through `out`.
  template <typename F>
  void discardUnsubmitted(F&& out) {
    while (sqeTail_ != publishedTail_) {
      sqeTail_--;
      out(sqes_[sqeTail_ & sqMask_].user_data);
    }
  }

  // Completions: peek one (nullptr if none), then mark it seen.
  io_uring_cqe* peekCqe() const {
    unsigned head = *cqHead_;
    if (head == __atomic_load_n(cqTail_, __ATOMIC_ACQUIRE)) return nullptr;
    return &cqes_[head & cqMask_];
  }
  void cqeSeen() { __atomic_store_n(cqHead_, *cqHead_ + 1, __ATOMIC_RELEASE); }
  // Completions that did not fit and wait in the kernel (IORING_SQ_CQ_OVERFLOW).
  bool cqOverflowed() const { return __atomic_load_n(sqFlags_, __ATOMIC_RELAXED) & IORING_SQ_CQ_OVERFLOW; }
  // Completion work the kernel holds until the engine enters it (IORING_SQ_TASKRUN).
  bool taskWorkPending() const { return __atomic_load_n(sqFlags_, __ATOMIC_RELAXED) & IORING_SQ_TASKRUN; }
  // Lets the kernel post its backlog of completions.
  int flushOverflow();

  // Registers a ring of provided buffers (IORING_REGISTER_PBUF_RING, 5.19) as group `bgid`.
  int registerBufRing(void* ring, unsigned entries, uint16_t bgid);
  uint64_t syscalls() const { return syscalls_; }

 private:
  int fd_ = -1;
  RingFeatures features_;
  void* sqPtr_ = nullptr;
  size_t sqLen_ = 0;
  void* cqPtr_ = nullptr;
  size_t cqLen_ = 0;
  io_uring_sqe* sqes_ = nullptr;
  size_t sqesLen_ = 0;
  unsigned* sqHead_ = nullptr;
  unsigned* sqTail_ = nullptr;
  unsigned* sqFlags_ = nullptr;
  unsigned* sqArray_ = nullptr;
  unsigned sqMask_ = 0;
  unsigned sqEntries_ = 0;
  unsigned sqeTail_ = 0;        // SQEs prepared
  unsigned publishedTail_ = 0;  // SQEs made visible to the kernel
  unsigned* cqHead_ = nullptr;
  unsigned* cqTail_ = nullptr;
  unsigned cqMask_ = 0;
  io_uring_cqe* cqes_ = nullptr;
  uint64_t syscalls_ = 0;
};

// True when `name` is one of the comma-separated features in `list`.
bool featureListed(const std::string& list, const char* name);

// Why io_uring cannot be used here, or "" when it can (probed once: setup, then the ops the
// engine needs).
std::string probeRing();

}  // namespace async_engine
