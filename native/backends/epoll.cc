// The epoll backend. Each fd is registered once, edge-triggered, for input and output; the
// backend remembers which directions are ready and which primitive waits for which, so that a
// socket costs one epoll_ctl in its life and a primitive on a ready fd is a plain syscall.
#include "backends/epoll.h"

#include <errno.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <vector>

#include "core/backend.h"

namespace async_engine {

namespace {

enum : uint32_t {
  kReadable = 1u << 0,
  kWritable = 1u << 1,
  kHangup = 1u << 2,  // the peer shut down: reads never block again
  kWantRead = 1u << 3,
  kWantWrite = 1u << 4,
  kWantAccept = 1u << 5,
  kConnecting = 1u << 6,
};

class EpollBackend final : public Backend {
 public:
  EpollBackend(Sink* sink, int maxEvents) : sink_(sink), events_(maxEvents > 0 ? maxEvents : 256) {}
  ~EpollBackend() override {
    if (epfd_ >= 0) ::close(epfd_);
  }

  int init(const char** syscall) {
    epfd_ = ::epoll_create1(EPOLL_CLOEXEC);
    *syscall = "epoll_create1";
    return epfd_ < 0 ? -errno : 0;
  }

  const char* name() const override { return "readiness"; }
  bool completesInline() const override { return true; }
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
    // A fresh socket can take writes at once; whether input is there, the first event says.
    h->backendFlags = h->kind == HandleKind::kSocket ? static_cast<uint32_t>(kWritable) : 0u;
    return 0;
  }

  int detach(BackendHandle* h) override {
    syscalls_++;
    ::epoll_ctl(epfd_, EPOLL_CTL_DEL, h->fd, nullptr);
    h->backendFlags = 0;
    // Events already returned by this epoll_wait must not reach a handle that is going away.
    for (int i = cursor_; i < count_; i++) {
      if (events_[i].data.ptr == h) events_[i].data.ptr = nullptr;
    }
    if (h == current_) current_ = nullptr;
    return 0;
  }

  ssize_t recv(BackendHandle* h, const char** data) override {
    uint32_t& f = h->backendFlags;
    if (!(f & kReadable)) {
      f |= kWantRead;
      return kPending;
    }
    size_t len = 0;
    char* buf = sink_->recvSpace(h, &len);
    if (!buf) return -ENOMEM;
    for (;;) {
      syscalls_++;
      ssize_t n = ::recv(h->fd, buf, len, 0);
      if (n >= 0) {
        // A short read drained the socket; new data raises a new edge. After a hang-up no
        // edge would come, so the fd stays "readable" and the next read sees the EOF.
        if (static_cast<size_t>(n) < len && n > 0 && !(f & kHangup)) f &= ~kReadable;
        *data = buf;
        return n;
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        f = (f & ~kReadable) | kWantRead;
        return kPending;
      }
      return -errno;
    }
  }

  int maxSendIov() const override { return 1024; }

  ssize_t send(BackendHandle* h, const iovec* iov, int iovcnt) override {
    uint32_t& f = h->backendFlags;
    if (!(f & kWritable)) {
      f |= kWantWrite;
      return kPending;
    }
    msghdr msg{};
    msg.msg_iov = const_cast<iovec*>(iov);
    msg.msg_iovlen = iovcnt;
    for (;;) {
      syscalls_++;
      ssize_t n = ::sendmsg(h->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n >= 0) return n;
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        f = (f & ~kWritable) | kWantWrite;
        return kPending;
      }
      return -errno;
    }
  }

  ssize_t accept(BackendHandle* l) override {
    uint32_t& f = l->backendFlags;
    if (!(f & kReadable)) {
      f |= kWantAccept;
      return kPending;
    }
    for (;;) {
      syscalls_++;
      int fd = ::accept4(l->fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd >= 0) return fd;
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        f = (f & ~kReadable) | kWantAccept;
        return kPending;
      }
      return -errno;
    }
  }

  ssize_t connect(BackendHandle* h, const sockaddr* addr, socklen_t len) override {
    for (;;) {
      syscalls_++;
      if (::connect(h->fd, addr, len) == 0) return 0;
      if (errno == EINTR) continue;
      if (errno == EINPROGRESS) {
        h->backendFlags = (h->backendFlags & ~kWritable) | kConnecting;
        return kPending;
      }
      return -errno;
    }
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
      dispatch(h, ev.events);
    }
    count_ = cursor_ = 0;
    return n;
  }

 private:
  // Reports one fd's readiness to whichever primitives wait on it. The sink may close the
  // handle at any report; current_ turns null when it does.
  void dispatch(BackendHandle* h, uint32_t events) {
    uint32_t& f = h->backendFlags;
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) f |= kReadable;
    if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) f |= kHangup;
    if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) f |= kWritable;
    current_ = h;
    if ((f & kConnecting) && (f & kWritable)) {
      f &= ~kConnecting;
      int err = 0;
      socklen_t elen = sizeof err;
      syscalls_++;
      if (::getsockopt(h->fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0) err = errno;
      sink_->onConnect(h, err ? -err : 0);
      if (!current_) return;
    }
    if ((f & kWantAccept) && (f & kReadable)) {
      f &= ~kWantAccept;
      sink_->onAccept(h, kRetry);
      if (!current_) return;
    }
    if ((f & kWantRead) && (f & kReadable)) {
      f &= ~kWantRead;
      sink_->onRecv(h, kRetry, nullptr);
      if (!current_) return;
    }
    if ((f & kWantWrite) && (f & kWritable)) {
      f &= ~kWantWrite;
      sink_->onSend(h, kRetry);
    }
    current_ = nullptr;
  }

  Sink* sink_;
  int epfd_ = -1;
  char wakeTag_ = 0;
  std::vector<epoll_event> events_;
  int cursor_ = 0;
  int count_ = 0;
  BackendHandle* current_ = nullptr;
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
