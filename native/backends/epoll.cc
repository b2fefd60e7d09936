// The epoll backend. Each fd is registered once, edge-triggered, for input and output; the
// backend remembers which directions are ready and which primitive waits for which, so that a
// socket costs one epoll_ctl in its life and a primitive on a ready fd is a plain syscall.
#include "backends/epoll.h"

#include <errno.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <vector>

#include "backends/reactor.h"
#include "core/backend.h"

namespace async_engine {

namespace {

class EpollBackend final : public Reactor<EpollBackend> {
 public:
  EpollBackend(Sink* sink, int maxEvents) : Reactor(sink), events_(maxEvents > 0 ? maxEvents : 256) {}
  ~EpollBackend() override {
    if (epfd_ >= 0) ::close(epfd_);
  }

  int init(const char** syscall) {
    epfd_ = ::epoll_create1(EPOLL_CLOEXEC);
    *syscall = "epoll_create1";
    return epfd_ < 0 ? -errno : 0;
  }

  const char* name() const override { return "readiness"; }
  int pollFd() const override { return epfd_; }
  uint64_t syscalls() const override { return syscalls_; }

  int watchWake(int fd) override {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = &wakeTag_;
    syscalls_++;
    return ::epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
  }

  int attach(BackendHandle* h) override {
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    ev.data.ptr = h;
    syscalls_++;
    if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, h->fd, &ev) < 0) return -errno;
    return Reactor::attach(h);
  }

  int detach(BackendHandle* h) override {
    syscalls_++;
    ::epoll_ctl(epfd_, EPOLL_CTL_DEL, h->fd, nullptr);
    h->backendFlags = 0;
    // Events already returned by this epoll_wait must not reach a handle that is going away.
    for (int i = cursor_; i < count_; i++) {
      if (events_[i].data.ptr == h) events_[i].data.ptr = nullptr;
    }
    forgetCurrent(h);
    return 0;
  }

  int wait(int timeoutMs) override {
    syscalls_++;
    int n = ::epoll_wait(epfd_, events_.data(), static_cast<int>(events_.size()), timeoutMs);
    if (n < 0) return errno == EINTR ? 0 : -errno;
    count_ = n;
    for (cursor_ = 0; cursor_ < count_;) {
      epoll_event ev = events_[cursor_++];
      if (ev.data.ptr == &wakeTag_) {
        sink_->onWake();
        continue;
      }
      auto* h = static_cast<BackendHandle*>(ev.data.ptr);
      if (!h) continue;  // closed by an earlier event of this batch
      report(h, ev.events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR),
             ev.events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR), ev.events & (EPOLLOUT | EPOLLHUP | EPOLLERR));
    }
    count_ = cursor_ = 0;
    return n;
  }

  // The Reactor's hooks. The set is edge-triggered and holds every fd for both directions from
  // attach() on, so a primitive that has to wait only says so in the handle's flags.
  ssize_t pend(BackendHandle* h, uint32_t want) {
    h->backendFlags |= want;
    return kPending;
  }
  void count() { syscalls_++; }
  void afterReport(BackendHandle*) {}

 private:
  int epfd_ = -1;
  char wakeTag_ = 0;
  std::vector<epoll_event> events_;
  int cursor_ = 0;
  int count_ = 0;
  uint64_t syscalls_ = 0;
};

}  // namespace

std::unique_ptr<Backend> makeEpollBackend(Sink* sink, int maxEvents, int* error, const char** syscall) {
  auto b = std::make_unique<EpollBackend>(sink, maxEvents);
  *error = b->init(syscall);
  if (*error < 0) return nullptr;
  return b;
}

}  // namespace async_engine
