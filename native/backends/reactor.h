// What the two reactors (epoll, poll) share: the readiness each handle is known to have, the
// primitives made inline as non-blocking calls on a ready fd, and the report of new readiness
// to whichever primitives wait for it. They differ only in how they learn of readiness (an
// edge-triggered epoll set, a level-triggered poll(2) set) and so in what a primitive that has
// to wait does to the set: the derived class provides
//   ssize_t pend(BackendHandle*, uint32_t want)  mark `want` in the handle's flags, watch for it
//                                                 as needed, and return kPending;
//   void count()                                  count one system call for stats();
//   void afterReport(BackendHandle*)              the handle's reports are done (it is open).
// (CRTP: the calls are resolved at compile time, the primitives stay plain inline calls.)
#pragma once

#include <errno.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <cstdint>

#include "core/backend.h"

namespace async_engine {

// A handle's readiness and waiting primitives, in its backendFlags.
enum : uint32_t {
  kReadable = 1u << 0,
  kWritable = 1u << 1,
  kHangup = 1u << 2,  // the peer shut down: reads never block again
  kWantRead = 1u << 3,
  kWantWrite = 1u << 4,
  kWantAccept = 1u << 5,
  kConnecting = 1u << 6,
};

template <typename Derived>
class Reactor : public Backend {
 public:
  explicit Reactor(Sink* sink) : sink_(sink) {}

  bool completesInline() const override { return true; }
  int maxSendIov() const override { return 1024; }

  int attach(BackendHandle* h) override {
    // A fresh socket can take writes at once; whether input is there, the first report says.
    h->backendFlags = h->kind == HandleKind::kSocket ? static_cast<uint32_t>(kWritable) : 0u;
    return 0;
  }

  ssize_t recv(BackendHandle* h, const char** data) override {
    uint32_t& f = h->backendFlags;
    if (!(f & kReadable)) return self().pend(h, kWantRead);
    size_t len = 0;
    char* buf = sink_->recvSpace(h, &len);
    if (!buf) return -ENOMEM;
    for (;;) {
      self().count();
      ssize_t n = ::recv(h->fd, buf, len, 0);
      if (n >= 0) {
        // A short read drained the socket (most likely): the next read waits for a report.
        // After a hang-up no report would come, so the fd stays "readable" and the next read
        // sees the EOF.
        if (static_cast<size_t>(n) < len && n > 0 && !(f & kHangup)) f &= ~kReadable;
        *data = buf;
        return n;
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        f &= ~kReadable;
        return self().pend(h, kWantRead);
      }
      return -errno;
    }
  }

  ssize_t send(BackendHandle* h, const iovec* iov, int iovcnt) override {
    uint32_t& f = h->backendFlags;
    if (!(f & kWritable)) return self().pend(h, kWantWrite);
    msghdr msg{};
    msg.msg_iov = const_cast<iovec*>(iov);
    msg.msg_iovlen = iovcnt;
    for (;;) {
      self().count();
      ssize_t n = ::sendmsg(h->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n >= 0) return n;
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        f &= ~kWritable;
        return self().pend(h, kWantWrite);
      }
      return -errno;
    }
  }

  ssize_t accept(BackendHandle* l) override {
    uint32_t& f = l->backendFlags;
    if (!(f & kReadable)) return self().pend(l, kWantAccept);
    for (;;) {
      self().count();
      int fd = ::accept4(l->fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd >= 0) return fd;
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        f &= ~kReadable;
        return self().pend(l, kWantAccept);
      }
      return -errno;
    }
  }

  ssize_t connect(BackendHandle* h, const sockaddr* addr, socklen_t len) override {
    for (;;) {
      self().count();
      if (::connect(h->fd, addr, len) == 0) return 0;
      if (errno == EINTR) continue;
      if (errno == EINPROGRESS) {
        h->backendFlags &= ~kWritable;
        return self().pend(h, kConnecting);
      }
      return -errno;
    }
  }

 protected:
  // New readiness of one fd, reported to whichever primitives wait on it. The sink may close
  // the handle at any report (detach() then clears current_), and the rest is skipped.
  void report(BackendHandle* h, bool readable, bool hangup, bool writable) {
    uint32_t& f = h->backendFlags;
    if (readable) f |= kReadable;
    if (hangup) f |= kHangup;
    if (writable) f |= kWritable;
    current_ = h;
    if ((f & kConnecting) && (f & kWritable)) {
      f &= ~kConnecting;
      int err = 0;
      socklen_t elen = sizeof err;
      self().count();
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
      if (!current_) return;
    }
    current_ = nullptr;
    self().afterReport(h);
  }

  // detach(): a handle going away gets no further report of the one in progress.
  void forgetCurrent(BackendHandle* h) {
    if (h == current_) current_ = nullptr;
  }

  Sink* sink_;

 private:
  Derived& self() { return static_cast<Derived&>(*this); }
  BackendHandle* current_ = nullptr;
};

}  // namespace async_engine
