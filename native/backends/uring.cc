// The io_uring backend of the `completion` implementation: every primitive is an SQE, every
// result a CQE; SQEs queued while JavaScript runs reach the kernel in one io_uring_enter per
// batch. Runs on the engine's thread only.
#include "backends/uring.h"

#include <errno.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <deque>
#include <vector>

#include "backends/uring_ring.h"
#include "core/engine_core.h"

namespace async_engine {

namespace {

// user_data: the Handle's address with the primitive in the low bits (Handles are 8-aligned).
enum Tag : uint64_t { kTagNone = 0, kTagRecv = 1, kTagSend = 2, kTagAccept = 3, kTagConnect = 4 };
constexpr uint64_t kTagMask = 7;

// Handle::backendFlags bits: which primitives are in the kernel, and which of them the core
// no longer wants (their -ECANCELED is then "nothing happened", not an error).
enum : uint32_t {
  kRecvIn = 1u << 0,
  kSendIn = 1u << 1,
  kAcceptIn = 1u << 2,
  kConnectIn = 1u << 3,
  kRecvUnwanted = 1u << 4,
  kAcceptUnwanted = 1u << 5,
};

class UringBackend final : public Backend {
 public:
  UringBackend(Sink* sink) : sink_(sink) {}
  ~UringBackend() override {
    if (epfd_ >= 0) ::close(epfd_);
    if (eventFd_ >= 0) ::close(eventFd_);
  }

  int init(const UringOptions& o) {
    unsigned entries = o.entries > 0 ? static_cast<unsigned>(o.entries) : 256;
    int rc = ring_.init(entries, 8, o.disabled);
    if (rc < 0) return rc;
    epfd_ = ::epoll_create1(EPOLL_CLOEXEC);
    eventFd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (epfd_ < 0 || eventFd_ < 0) return -errno;
    rc = ring_.registerEventfd(eventFd_);
    if (rc < 0) return rc;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = &eventTag_;
    if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, eventFd_, &ev) < 0) return -errno;
    // The credentials the ring was made with: a ring keeps them after setuid (CVE-2024-22017).
    ::getresuid(&uid_[0], &uid_[1], &uid_[2]);
    ::getresgid(&gid_[0], &gid_[1], &gid_[2]);
    return 0;
  }

  const char* name() const override { return "completion"; }
  bool completesInline() const override { return false; }
  int pollFd() const override { return epfd_; }
  uint64_t syscalls() const override { return syscalls_ + ring_.syscalls(); }

  int watchWake(int fd) override {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = &wakeTag_;
    return ::epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
  }

  int attach(Handle* h) override {
    h->backendFlags = 0;
    return 0;
  }

  int detach(Handle* h) override {
    uint32_t f = h->backendFlags;
    int inflight = !!(f & kRecvIn) + !!(f & kSendIn) + !!(f & kAcceptIn) + !!(f & kConnectIn);
    if (inflight == 0) return 0;
    if (ring_.features().cancelByFd) {
      io_uring_sqe* sqe = sqe_();
      if (sqe) {
        sqe->opcode = IORING_OP_ASYNC_CANCEL;
        sqe->fd = h->fd;
        sqe->cancel_flags = IORING_ASYNC_CANCEL_FD | IORING_ASYNC_CANCEL_ALL;
        sqe->user_data = kTagNone;
        return inflight;
      }
    }
    if (f & kRecvIn) cancel(h, kTagRecv);
    if (f & kSendIn) cancel(h, kTagSend);
    if (f & kAcceptIn) cancel(h, kTagAccept);
    if (f & kConnectIn) cancel(h, kTagConnect);
    return inflight;
  }

  void unwant(Handle* h, Primitive p) override {
    if (p == Primitive::kRecv && (h->backendFlags & kRecvIn) && !(h->backendFlags & kRecvUnwanted)) {
      h->backendFlags |= kRecvUnwanted;
      cancel(h, kTagRecv);
    } else if (p == Primitive::kAccept && (h->backendFlags & kAcceptIn) && !(h->backendFlags & kAcceptUnwanted)) {
      h->backendFlags |= kAcceptUnwanted;
      cancel(h, kTagAccept);
    }
  }

  ssize_t recv(Handle* h) override {
    if (poisoned_) return -EPERM;
    io_uring_sqe* sqe = sqe_();
    if (!sqe) return -EBUSY;
    size_t len = 0;
    char* buf = sink_->recvSpace(h, &len);
    if (!buf) return -ENOMEM;
    sqe->opcode = IORING_OP_RECV;
    sqe->fd = h->fd;
    sqe->addr = reinterpret_cast<uint64_t>(buf);
    sqe->len = static_cast<uint32_t>(len);
    sqe->user_data = tag(h, kTagRecv);
    h->backendFlags |= kRecvIn;
    return kPending;
  }

  ssize_t send(Handle* h, const iovec* iov, int iovcnt) override {
    if (poisoned_) return -EPERM;
    io_uring_sqe* sqe = sqe_();
    if (!sqe) return -EBUSY;
    (void)iovcnt;  // the core sends one span at a time
    sqe->opcode = IORING_OP_SEND;
    sqe->fd = h->fd;
    sqe->addr = reinterpret_cast<uint64_t>(iov[0].iov_base);
    sqe->len = static_cast<uint32_t>(iov[0].iov_len > 0x7fffffff ? 0x7fffffff : iov[0].iov_len);
    sqe->msg_flags = MSG_NOSIGNAL;
    sqe->user_data = tag(h, kTagSend);
    h->backendFlags |= kSendIn;
    return kPending;
  }

  ssize_t accept(Handle* l) override {
    if (poisoned_) return -EPERM;
    io_uring_sqe* sqe = sqe_();
    if (!sqe) return -EBUSY;
    sqe->opcode = IORING_OP_ACCEPT;
    sqe->fd = l->fd;
    sqe->accept_flags = SOCK_NONBLOCK | SOCK_CLOEXEC;
    sqe->user_data = tag(l, kTagAccept);
    l->backendFlags |= kAcceptIn;
    return kPending;
  }

  ssize_t connect(Handle* h, const sockaddr* addr, socklen_t len) override {
    if (poisoned_) return -EPERM;
    io_uring_sqe* sqe = sqe_();
    if (!sqe) return -EBUSY;
    // The kernel reads the address when it runs the SQE: keep a copy with the handle.
    std::memcpy(&h->peerAddr, addr, len);
    sqe->opcode = IORING_OP_CONNECT;
    sqe->fd = h->fd;
    sqe->addr = reinterpret_cast<uint64_t>(&h->peerAddr);
    sqe->off = len;
    sqe->user_data = tag(h, kTagConnect);
    h->backendFlags |= kConnectIn;
    return kPending;
  }

  bool hasUnsubmitted() const override { return ring_.pendingSubmissions() > 0; }

  // The ring's shape, for stats(): its size and the setup flags the kernel accepted.
  void gauges(std::vector<std::pair<const char*, double>>* out) const override {
    out->emplace_back("ringEntries", ring_.entries());
    out->emplace_back("ringSetupFlags", ring_.features().setupFlags);
  }

  void flush() override {
    if (ring_.pendingSubmissions() == 0) return;
    if (credentialsChanged()) {
      poison();
      return;
    }
    int rc = ring_.submit();
    if (rc == -EBUSY || rc == -EAGAIN) {
      // The kernel holds completions we have not reaped: make room, then submit again.
      ring_.flushOverflow();
    }
  }

  int wait(int timeoutMs) override {
    flush();
    epoll_event evs[2];
    int timeout = (ring_.peekCqe() || !synthetic_.empty()) ? 0 : timeoutMs;
    syscalls_++;
    int n = ::epoll_wait(epfd_, evs, 2, timeout);
    bool wake = false;
    for (int i = 0; i < n; i++) {
      if (evs[i].data.ptr == &eventTag_) {
        uint64_t v;
        syscalls_++;
        ssize_t ignored = ::read(eventFd_, &v, sizeof v);
        (void)ignored;
      } else if (evs[i].data.ptr == &wakeTag_) {
        wake = true;
      }
    }
    int handled = 0;
    while (!synthetic_.empty()) {
      auto [ud, res] = synthetic_.front();
      synthetic_.pop_front();
      complete(ud, res);
      handled++;
    }
    for (;;) {
      while (io_uring_cqe* cqe = ring_.peekCqe()) {
        uint64_t ud = cqe->user_data;
        int res = cqe->res;
        ring_.cqeSeen();
        complete(ud, res);
        handled++;
      }
      if (!ring_.cqOverflowed()) break;
      ring_.flushOverflow();
    }
    if (wake) sink_->onWake();
    flush();
    return handled;
  }

 private:
  static uint64_t tag(Handle* h, Tag t) { return reinterpret_cast<uint64_t>(h) | t; }

  // A free SQE; when the ring is full, what is queued goes to the kernel first.
  io_uring_sqe* sqe_() {
    io_uring_sqe* sqe = ring_.getSqe();
    if (sqe) return sqe;
    flush();
    return ring_.getSqe();
  }

  void cancel(Handle* h, Tag t) {
    io_uring_sqe* sqe = sqe_();
    if (!sqe) return;
    sqe->opcode = IORING_OP_ASYNC_CANCEL;
    sqe->addr = tag(h, t);
    sqe->user_data = kTagNone;
  }

  // One CQE (or a synthesized result) to the core. The sink may close and free the handle.
  void complete(uint64_t ud, int res) {
    uint64_t t = ud & kTagMask;
    if (t == kTagNone) return;
    auto* h = reinterpret_cast<Handle*>(ud & ~kTagMask);
    uint32_t& f = h->backendFlags;
    switch (t) {
      case kTagRecv: {
        bool unwanted = f & kRecvUnwanted;
        f &= ~(kRecvIn | kRecvUnwanted);
        sink_->onRecv(h, unwanted && res == -ECANCELED ? kRetry : res);
        break;
      }
      case kTagSend:
        f &= ~kSendIn;
        sink_->onSend(h, res);
        break;
      case kTagAccept: {
        bool unwanted = f & kAcceptUnwanted;
        f &= ~(kAcceptIn | kAcceptUnwanted);
        sink_->onAccept(h, unwanted && res == -ECANCELED ? kRetry : res);
        break;
      }
      case kTagConnect:
        f &= ~kConnectIn;
        sink_->onConnect(h, res);
        break;
      default:
        break;
    }
  }

  bool credentialsChanged() {
    uid_t u[3];
    gid_t g[3];
    syscalls_ += 2;
    ::getresuid(&u[0], &u[1], &u[2]);
    ::getresgid(&g[0], &g[1], &g[2]);
    return std::memcmp(u, uid_, sizeof u) != 0 || std::memcmp(g, gid_, sizeof g) != 0;
  }

  // The process's credentials changed since the ring was made: nothing more is submitted.
  // What was queued fails with EPERM (reported from the next wait()), and so does every later
  // primitive.
  void poison() {
    poisoned_ = true;
    ring_.discardUnsubmitted([this](uint64_t ud) {
      if ((ud & kTagMask) != kTagNone) synthetic_.emplace_back(ud, -EPERM);
    });
    uint64_t one = 1;
    ssize_t ignored = ::write(eventFd_, &one, sizeof one);
    (void)ignored;
  }

  Sink* sink_;
  Ring ring_;
  int epfd_ = -1;
  int eventFd_ = -1;
  char eventTag_ = 0;
  char wakeTag_ = 0;
  uid_t uid_[3] = {0, 0, 0};
  gid_t gid_[3] = {0, 0, 0};
  bool poisoned_ = false;
  std::deque<std::pair<uint64_t, int>> synthetic_;
  uint64_t syscalls_ = 0;
};

}  // namespace

std::unique_ptr<Backend> makeUringBackend(Sink* sink, const UringOptions& options, int* error) {
  auto b = std::make_unique<UringBackend>(sink);
  *error = b->init(options);
  if (*error < 0) return nullptr;
  return b;
}

}  // namespace async_engine
