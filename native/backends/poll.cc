// The `poll` implementation's backend: a reactor over poll(2), the portable readiness call.
//
// The set. One pollfd array holds the core's wake-up fd and every handle that has a primitive
// pending, and only those: a handle joins when a primitive goes pending, its events are
// narrowed when one is reported, and it leaves (swap-remove) when none is left. Its position
// is kept in the handle's backendData, so joining, changing and leaving are O(1); each wait
// is O(fds in the set), as poll(2) itself is. A handle with nothing pending is not in the set,
// so a level-triggered hang-up on an idle socket never wakes the engine. Readiness that a
// wait reports is remembered per handle (as the epoll backend does) until a call runs dry.
//
// Drives. In `manual` drive there is no thread: wait(timeout) is one poll(2) on the set.
// In `auto` drive Node's event loop must learn when wait(0) has work, through pollFd(); poll(2)
// has no fd of its own to offer. A watcher thread blocks in poll(2) on a copy of the set plus
// a control eventfd; when an fd is ready it signals the eventfd that pollFd() returns, and
// parks until the engine thread has run wait(0) (its own poll(2), timeout 0, on the current
// set) and handed it a fresh copy at the end of the batch (flush()), so level-triggered
// readiness cannot make it spin. A primitive that goes pending while the watcher is polling
// (a new fd, or a wider interest), and a handle closed while in its copy (poll(2) holds a
// reference to every file it waits on, so the socket would stay open), reach it at the end of
// the batch through the control eventfd; narrower interest waits for the next copy.
// The cost, paid per wake-up: two poll(2) calls over the set (watcher, engine thread), an
// eventfd write and read each way and a futex wake. This backend is the portable reference,
// not a fast path: `auto` never chooses it.
#include "backends/poll.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <vector>

#include "backends/reactor.h"
#include "core/backend.h"

namespace async_engine {

namespace {

constexpr short kInEvents = POLLIN | POLLRDHUP;

// The handle's place in the set: index + 1, 0 when it is not in it.
size_t slotOf(const BackendHandle* h) { return reinterpret_cast<uintptr_t>(h->backendData); }
void setSlot(BackendHandle* h, size_t slot) { h->backendData = reinterpret_cast<void*>(static_cast<uintptr_t>(slot)); }

class PollBackend final : public Reactor<PollBackend> {
 public:
  PollBackend(Sink* sink, bool watcher) : Reactor(sink), watcher_(watcher) {}

  ~PollBackend() override {
    if (started_) {
      {
        std::lock_guard<std::mutex> lk(m_);
        stop_ = true;
      }
      cv_.notify_one();
      uint64_t one = 1;
      (void)!::write(ctlFd_, &one, sizeof one);
      pthread_join(thread_, nullptr);
    }
    if (notifyFd_ >= 0) ::close(notifyFd_);
    if (ctlFd_ >= 0) ::close(ctlFd_);
  }

  int init(const char** syscall) {
    if (!watcher_) return 0;
    *syscall = "eventfd";
    notifyFd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (notifyFd_ < 0) return -errno;
    ctlFd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (ctlFd_ < 0) return -errno;
    *syscall = "pthread_create";
    // The watcher starts with the first copy of the set, handed over by the first flush().
    resume_ = true;
    // It starts with every signal blocked, so that signals reach Node's thread.
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(
        &thread_, nullptr,
        [](void* self) -> void* {
          static_cast<PollBackend*>(self)->watch();
          return nullptr;
        },
        this);
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    if (rc != 0) return -rc;
    started_ = true;
    return 0;
  }

  const char* name() const override { return "poll"; }
  // Manual drive has no watcher and nothing to offer: the addon never asks then.
  int pollFd() const override { return notifyFd_; }
  uint64_t syscalls() const override { return syscalls_.load(std::memory_order_relaxed); }

  int watchWake(int fd) override {
    fds_.push_back(pollfd{fd, POLLIN, 0});
    owners_.push_back(nullptr);
    dirty_ = true;
    return 0;
  }

  int attach(BackendHandle* h) override {
    setSlot(h, 0);
    return Reactor::attach(h);
  }

  int detach(BackendHandle* h) override {
    if (size_t slot = slotOf(h)) {
      removeAt(slot - 1);
      // A watcher polling a copy that holds the fd holds the socket open (poll(2) keeps a
      // reference to each file it waits on): the peer would see no close until it returned.
      dirty_ = true;
    }
    h->backendFlags = 0;
    // Readiness already taken by this wait must not reach a handle that is going away.
    for (size_t i = cursor_; i < ready_.size(); i++) {
      if (ready_[i].h == h) ready_[i].h = nullptr;
    }
    forgetCurrent(h);
    return 0;
  }

  // The watcher, parked or polling a stale copy, needs the current set.
  bool hasUnsubmitted() const override { return watcher_ && (resume_ || dirty_); }

  void flush() override {
    if (!watcher_ || !(resume_ || dirty_)) return;
    bool interrupt = false;
    {
      std::lock_guard<std::mutex> lk(m_);
      if (resume_ || polling_) {
        snapshot_ = fds_;
        fresh_ = true;
        interrupt = polling_;  // it polls an older copy: the control fd brings it back
        polling_ = true;
      }
      // Else it is parked with the pollFd() signalled: wait(0) runs first and resumes it.
    }
    if (resume_) cv_.notify_one();
    if (interrupt) {
      uint64_t one = 1;
      (void)!::write(ctlFd_, &one, sizeof one);
    }
    resume_ = dirty_ = false;
  }

  int wait(int timeoutMs) override {
    if (watcher_) takeNotification();
    count();
    int n = ::poll(fds_.data(), fds_.size(), timeoutMs);
    if (n < 0) return errno == EINTR ? 0 : -errno;
    ready_.clear();
    for (size_t i = 0; i < fds_.size() && ready_.size() < static_cast<size_t>(n); i++) {
      if (fds_[i].revents) ready_.push_back(Ready{owners_[i], fds_[i].revents, owners_[i] == nullptr});
    }
    for (cursor_ = 0; cursor_ < ready_.size();) {
      Ready r = ready_[cursor_++];
      if (r.wake) {
        sink_->onWake();
        continue;
      }
      if (!r.h) continue;  // closed by an earlier report of this wait
      report(r.h, r.revents & (POLLIN | POLLRDHUP | POLLHUP | POLLERR | POLLNVAL),
             r.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL), r.revents & (POLLOUT | POLLHUP | POLLERR | POLLNVAL));
    }
    ready_.clear();
    cursor_ = 0;
    return n;
  }

  // The Reactor's hooks. A primitive that has to wait puts its handle in the set, or widens
  // its entry; a handle whose reports are done keeps only the events still wanted.
  ssize_t pend(BackendHandle* h, uint32_t want) {
    h->backendFlags |= want;
    setInterest(h);
    return kPending;
  }
  void count() { syscalls_.fetch_add(1, std::memory_order_relaxed); }
  void afterReport(BackendHandle* h) { setInterest(h); }

 private:
  struct Ready {
    BackendHandle* h;
    short revents;
    bool wake;
  };


  // Brings the handle's entry in the set in line with its pending primitives.
  void setInterest(BackendHandle* h) {
    uint32_t f = h->backendFlags;
    short events = 0;
    if (f & (kWantRead | kWantAccept)) events |= kInEvents;
    if (f & (kWantWrite | kConnecting)) events |= POLLOUT;
    size_t slot = slotOf(h);
    if (events == 0) {
      if (slot) removeAt(slot - 1);
      return;
    }
    if (!slot) {
      fds_.push_back(pollfd{h->fd, events, 0});
      owners_.push_back(h);
      setSlot(h, fds_.size());
      dirty_ = true;
      return;
    }
    pollfd& p = fds_[slot - 1];
    if (events & ~p.events) dirty_ = true;
    p.events = events;
  }

  void removeAt(size_t i) {
    size_t last = fds_.size() - 1;
    if (owners_[i]) setSlot(owners_[i], 0);
    if (i != last) {
      fds_[i] = fds_[last];
      owners_[i] = owners_[last];
      if (owners_[i]) setSlot(owners_[i], i + 1);
    }
    fds_.pop_back();
    owners_.pop_back();
  }


  // Engine thread, auto drive: a parked watcher has signalled pollFd(); clear it, and hand the
  // watcher a fresh copy at the end of this batch.
  void takeNotification() {
    bool parked;
    {
      std::lock_guard<std::mutex> lk(m_);
      parked = !polling_;
    }
    if (!parked) return;
    uint64_t v;
    (void)!::read(notifyFd_, &v, sizeof v);
    resume_ = true;
  }

  // The watcher thread.
  void watch() {
    std::vector<pollfd> set;
    std::unique_lock<std::mutex> lk(m_);
    for (;;) {
      cv_.wait(lk, [this] { return stop_ || polling_; });
      if (stop_) return;
      if (fresh_) {
        set = snapshot_;
        set.push_back(pollfd{ctlFd_, POLLIN, 0});
        fresh_ = false;
      }
      lk.unlock();
      count();
      int n = ::poll(set.data(), set.size(), -1);
      bool ctl = n > 0 && set.back().revents != 0;
      if (ctl) {
        uint64_t v;
        (void)!::read(ctlFd_, &v, sizeof v);
      }
      lk.lock();
      if (stop_) return;
      if (n > (ctl ? 1 : 0) && polling_) {
        // Park until the engine thread has taken the readiness (wait(0)) and flushed.
        polling_ = false;
        uint64_t one = 1;
        (void)!::write(notifyFd_, &one, sizeof one);
      }
    }
  }

  const bool watcher_;
  // The set (engine thread): fds_[i] belongs to owners_[i]; nullptr owns the wake fd.
  std::vector<pollfd> fds_;
  std::vector<BackendHandle*> owners_;
  std::vector<Ready> ready_;
  size_t cursor_ = 0;
  std::atomic<uint64_t> syscalls_{0};

  // Auto drive. Engine thread only: the watcher's copy must be replaced (the set grew, or a
  // handle in it closed); the watcher parked and wait(0) has taken its signal.
  bool dirty_ = false;
  bool resume_ = false;
  int notifyFd_ = -1;  // pollFd(): readable while the watcher is parked on found readiness
  int ctlFd_ = -1;     // brings a polling watcher back for a new copy, or to stop
  pthread_t thread_{};
  bool started_ = false;
  std::mutex m_;
  std::condition_variable cv_;
  // Guarded by m_.
  std::vector<pollfd> snapshot_;
  bool fresh_ = false;    // snapshot_ is newer than the watcher's copy
  bool polling_ = false;  // the watcher may poll; false while parked (or before the first copy)
  bool stop_ = false;
};

}  // namespace

std::unique_ptr<Backend> makePollBackend(Sink* sink, bool watcher, int* error, const char** syscall) {
  auto b = std::make_unique<PollBackend>(sink, watcher);
  *error = b->init(syscall);
  if (*error < 0) return nullptr;
  return b;
}

}  // namespace async_engine
