// The io_uring backend of the `completion` implementation: every primitive is an SQE, every
// result a CQE; SQEs queued while JavaScript runs reach the kernel in one io_uring_enter per
// batch. Runs on the engine's thread only.
//
// Where the kernel has them, a socket's receive and a listener's accept are multishot: armed
// once, they keep reporting until the handle closes, so a request/response server submits no
// SQE to read its next request. Received bytes land in a ring of provided buffers shared by
// every socket, so an idle connection holds no receive memory. A report that arrives while the
// core has not asked (the app is not reading) waits in the handle's queue, up to a bound; past
// it the multishot request is cancelled and the kernel's socket buffer pushes back on the peer.
#include "backends/uring.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <unordered_set>
#include <vector>

#include "backends/uring_ring.h"
#include "core/backend.h"

namespace async_engine {

namespace {

// user_data: the BackendHandle's address with the primitive in the low bits (handles are
// 8-aligned).
enum Tag : uint64_t {
  kTagNone = 0,
  kTagRecv = 1,
  kTagSend = 2,
  kTagAccept = 3,
  kTagConnect = 4,
  kTagWake = 5,
  kTagFile = 6,
  kTagShutdown = 7,
};
constexpr uint64_t kTagMask = 7;

// BackendHandle::backendFlags bits: which primitives are in the kernel, and which of them the
// core no longer wants (their -ECANCELED is then "nothing happened", not an error).
enum : uint32_t {
  kRecvIn = 1u << 0,
  kSendIn = 1u << 1,
  kAcceptIn = 1u << 2,
  kConnectIn = 1u << 3,
  kRecvUnwanted = 1u << 4,
  kAcceptUnwanted = 1u << 5,
  kRecvOwed = 1u << 6,     // the core waits for a recv report
  kAcceptOwed = 1u << 7,   // the core waits for an accept report
  kRecvMulti = 1u << 8,    // the recv in the kernel is multishot
  kAcceptMulti = 1u << 9,  // the accept in the kernel is multishot
  kRecvStopped = 1u << 10,    // a cancel of the multishot recv is on its way (queue full)
  kAcceptStopped = 1u << 11,  // a cancel of the multishot accept is on its way
  kDetached = 1u << 12,       // closed by the core: only final reports go to it
  kShutdownIn = 1u << 13,
};
constexpr uint32_t kInKernel = kRecvIn | kSendIn | kAcceptIn | kConnectIn | kShutdownIn;

// Provided receive buffers: one group, shared by every socket.
constexpr unsigned kBufCount = 256;
constexpr unsigned kBufSize = 16 * 1024;
constexpr uint16_t kBufGroup = 0;
constexpr size_t kBufRingTailOffset = 14;  // the tail overlays the first entry's `resv`
// Reports a handle may queue while nobody asks for them before its multishot request is
// stopped. The kernel may fill more buffers before the stop reaches it (a burst is received in
// one go); the ring bounds the whole, and a socket that finds it empty receives into its own area.
constexpr size_t kMaxQueuedRecvs = 8;
constexpr size_t kMaxQueuedAccepts = 64;
constexpr int kMaxIov = 64;
constexpr size_t kGatherSize = 64 * 1024;  // queued receives handed over together

// A recv report held for the core: the result and, for data, the provided buffer it is in.
struct QueuedRecv {
  int res;
  int bid;  // -1: no buffer
};

// What the backend keeps per handle, made when first needed.
struct HandleState {
  const char* recvInto = nullptr;  // the core's receive area a single-shot recv in the kernel fills
  msghdr msg{};  // a gathered send in the kernel
  std::vector<iovec> iov;  // its array, sized by the first gathered send (kMaxIov at most)
  SmallQueue<QueuedRecv> recvs;
  SmallQueue<int> accepted;
};

class UringBackend final : public Backend {
 public:
  UringBackend(Sink* sink) : sink_(sink) {}
  ~UringBackend() override {
    quiesce();
    // The state of handles closed with requests still in the kernel: their last reports will
    // not come now.
    for (HandleState* st : states_) delete st;
    if (bufRing_) ::munmap(bufRing_, kBufCount * sizeof(io_uring_buf));
    if (bufs_) ::munmap(bufs_, static_cast<size_t>(kBufCount) * kBufSize);
  }

  int init(const UringOptions& o, const char** syscall) {
    unsigned entries = o.entries > 0 ? static_cast<unsigned>(o.entries) : 256;
    int rc = ring_.init(entries, 8, o.disabled, syscall);
    if (rc < 0) return rc;
    acceptMulti_ = ring_.features().cancelByFd && !featureListed(o.disabled, "multishot_accept");
    recvMulti_ = ring_.features().cancelByFd && !featureListed(o.disabled, "multishot_recv") && setupBuffers();
    // The credentials the ring was made with: a ring keeps them after setuid (CVE-2024-22017).
    ::getresuid(&uid_[0], &uid_[1], &uid_[2]);
    ::getresgid(&gid_[0], &gid_[1], &gid_[2]);
    return 0;
  }

  const char* name() const override { return "completion"; }
  bool completesInline() const override { return false; }
  // The ring's own fd: readable while completions wait in the CQ, so the event loop watches it
  // directly and a wake-up costs no extra system call.
  int pollFd() const override { return ring_.fd(); }
  uint64_t syscalls() const override { return ring_.syscalls(); }

  // The core's wake-up eventfd is watched by a poll in the ring itself.
  int watchWake(int fd) override {
    wakeFd_ = fd;
    if (!armWake()) return -EBUSY;
    submitQueued();
    return 0;
  }

  int attach(BackendHandle* h) override {
    h->backendFlags = 0;
    return 0;
  }

  int detach(BackendHandle* h) override {
    uint32_t& f = h->backendFlags;
    f |= kDetached;
    if (HandleState* st = state(h, false)) {
      for (const QueuedRecv& q : st->recvs) {
        if (q.bid >= 0) recycle(static_cast<uint16_t>(q.bid));
      }
      st->recvs.clear();
      for (int fd : st->accepted) ::close(fd);
      st->accepted.clear();
    }
    int inflight = !!(f & kRecvIn) + !!(f & kSendIn) + !!(f & kAcceptIn) + !!(f & kConnectIn) + !!(f & kShutdownIn);
    if (inflight == 0) {
      dropState(h);
      return 0;
    }
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
    if (f & kShutdownIn) cancel(h, kTagShutdown);
    return inflight;
  }

  // A multishot recv keeps running when nobody reads (what it brings waits in the handle's
  // queue); a single-shot one, or an accept, is cancelled.
  void unwant(BackendHandle* h, Primitive p) override {
    uint32_t& f = h->backendFlags;
    if (p == Primitive::kRecv && (f & kRecvIn) && !(f & (kRecvUnwanted | kRecvMulti))) {
      f |= kRecvUnwanted;
      cancel(h, kTagRecv);
    } else if (p == Primitive::kAccept && (f & kAcceptIn) && !(f & kAcceptUnwanted)) {
      f |= kAcceptUnwanted;
      if (!(f & kAcceptStopped)) cancel(h, kTagAccept);
    }
  }

  ssize_t recv(BackendHandle* h, const char** data) override {
    uint32_t& f = h->backendFlags;
    if (HandleState* st = state(h, false); st && !st->recvs.empty()) {
      QueuedRecv q = st->recvs.front();
      st->recvs.pop_front();
      if (q.bid < 0) return q.res;
      // Several waiting: as many as fit in 64 KiB go out together, gathered in one area that,
      // like a readiness backend's scratch, the core settles before it receives again.
      size_t room = kGatherSize;
      char* area = nullptr;
      if (!st->recvs.empty() && st->recvs.front().bid >= 0) {
        if (!gather_) gather_ = std::make_unique<char[]>(kGatherSize);
        area = gather_.get();
      }
      if (!area) {
        // One buffer: the core frames the bytes where they are; it goes back after this batch.
        *data = bufAt(static_cast<uint16_t>(q.bid));
        lent_.push_back(static_cast<uint16_t>(q.bid));
        return q.res;
      }
      size_t n = 0;
      for (;;) {
        std::memcpy(area + n, bufAt(static_cast<uint16_t>(q.bid)), static_cast<size_t>(q.res));
        n += static_cast<size_t>(q.res);
        recycle(static_cast<uint16_t>(q.bid));
        if (st->recvs.empty() || st->recvs.front().bid < 0) break;
        if (n + static_cast<size_t>(st->recvs.front().res) > room) break;
        q = st->recvs.front();
        st->recvs.pop_front();
      }
      *data = area;
      return static_cast<ssize_t>(n);
    }
    if (f & kRecvIn) {
      f |= kRecvOwed;  // the multishot request still runs; its next report is the core's
      return kPending;
    }
    if (poisoned_) return -EPERM;
    ssize_t r = recvMulti_ ? armRecvMulti(h) : armRecvSingle(h);
    if (r == kPending) f |= kRecvOwed;
    return r;
  }

  int maxSendIov() const override { return kMaxIov; }

  ssize_t send(BackendHandle* h, const iovec* iov, int iovcnt) override {
    if (poisoned_) return -EPERM;
    io_uring_sqe* sqe = sqe_();
    if (!sqe) return -EBUSY;
    if (iovcnt == 1) {
      sqe->opcode = IORING_OP_SEND;
      sqe->addr = reinterpret_cast<uint64_t>(iov[0].iov_base);
      sqe->len = static_cast<uint32_t>(iov[0].iov_len > 0x7fffffff ? 0x7fffffff : iov[0].iov_len);
    } else {
      // The kernel reads the iovec array when it runs the SQE: keep a copy with the handle.
      HandleState* st = state(h, true);
      int n = std::min(iovcnt, kMaxIov);
      st->iov.assign(iov, iov + n);
      st->msg = msghdr{};
      st->msg.msg_iov = st->iov.data();
      st->msg.msg_iovlen = static_cast<size_t>(n);
      sqe->opcode = IORING_OP_SENDMSG;
      sqe->addr = reinterpret_cast<uint64_t>(&st->msg);
      sqe->len = 1;
    }
    sqe->fd = h->fd;
    sqe->msg_flags = MSG_NOSIGNAL;
    sqe->user_data = tag(h, kTagSend);
    inflight_++;
    h->backendFlags |= kSendIn;
    return kPending;
  }

  // An IORING_OP_SHUTDOWN SQE where the kernel has the opcode (probed at setup), else the
  // system call inline.
  ssize_t shutdown(BackendHandle* h) override {
    if (!ring_.features().shutdown) return Backend::shutdown(h);
    if (poisoned_) return -EPERM;
    io_uring_sqe* sqe = sqe_();
    if (!sqe) return Backend::shutdown(h);
    sqe->opcode = IORING_OP_SHUTDOWN;
    sqe->fd = h->fd;
    sqe->len = SHUT_WR;
    sqe->user_data = tag(h, kTagShutdown);
    inflight_++;
    h->backendFlags |= kShutdownIn;
    return kPending;
  }

  ssize_t accept(BackendHandle* l) override {
    uint32_t& f = l->backendFlags;
    if (HandleState* st = state(l, false); st && !st->accepted.empty()) {
      int fd = st->accepted.front();
      st->accepted.pop_front();
      return fd;
    }
    f &= ~kAcceptUnwanted;  // wanted again: a cancel on its way is answered by a new accept
    if (f & kAcceptIn) {
      f |= kAcceptOwed;
      return kPending;
    }
    if (poisoned_) return -EPERM;
    io_uring_sqe* sqe = sqe_();
    if (!sqe) return -EBUSY;
    sqe->opcode = IORING_OP_ACCEPT;
    sqe->fd = l->fd;
    sqe->accept_flags = SOCK_NONBLOCK | SOCK_CLOEXEC;
    if (acceptMulti_) {
      sqe->ioprio = IORING_ACCEPT_MULTISHOT;
      f |= kAcceptMulti;
    }
    sqe->user_data = tag(l, kTagAccept);
    inflight_++;
    f |= kAcceptIn | kAcceptOwed;
    return kPending;
  }

  ssize_t connect(BackendHandle* h, const sockaddr* addr, socklen_t len) override {
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
    privilegedQueued_ = true;
    inflight_++;
    h->backendFlags |= kConnectIn;
    return kPending;
  }

  // Files: every request is an SQE of its own (no thread hop). Opens and statx by name act by
  // path, so the uid/gid guard checks the batch that carries them.
  ssize_t fileSubmit(FileReq* r) override {
    if (poisoned_) {
      synthetic_.emplace_back(reinterpret_cast<uint64_t>(r) | kTagFile, -EPERM);
      inflight_++;
      return kPending;
    }
    io_uring_sqe* sqe = sqe_();
    if (!sqe) return kNotHandled;
    switch (r->op) {
      case FileOp::kRead:
      case FileOp::kWrite:
        sqe->opcode = r->op == FileOp::kRead ? IORING_OP_READ : IORING_OP_WRITE;
        sqe->fd = r->fd;
        sqe->addr = reinterpret_cast<uint64_t>(r->buf);
        sqe->len = static_cast<uint32_t>(std::min<size_t>(r->len, 0x7ffff000));
        sqe->off = static_cast<uint64_t>(r->off);
        break;
      case FileOp::kFsync:
      case FileOp::kFdatasync:
        sqe->opcode = IORING_OP_FSYNC;
        sqe->fd = r->fd;
        sqe->fsync_flags = r->op == FileOp::kFdatasync ? IORING_FSYNC_DATASYNC : 0;
        break;
      case FileOp::kOpen:
        sqe->opcode = IORING_OP_OPENAT;
        sqe->fd = AT_FDCWD;
        sqe->addr = reinterpret_cast<uint64_t>(r->path.c_str());
        sqe->open_flags = static_cast<uint32_t>(r->flags);
        sqe->len = r->mode;
        privilegedQueued_ = true;
        break;
      case FileOp::kStatx:
        sqe->opcode = IORING_OP_STATX;
        sqe->fd = r->fd >= 0 ? r->fd : AT_FDCWD;
        sqe->addr = reinterpret_cast<uint64_t>(r->fd >= 0 ? "" : r->path.c_str());
        sqe->statx_flags = r->fd >= 0 ? AT_EMPTY_PATH : 0;
        sqe->len = STATX_BASIC_STATS | STATX_BTIME;
        sqe->off = reinterpret_cast<uint64_t>(&r->stx);
        if (r->fd < 0) privilegedQueued_ = true;
        break;
    }
    sqe->user_data = reinterpret_cast<uint64_t>(r) | kTagFile;
    inflight_++;
    return kPending;
  }

  bool hasUnsubmitted() const override { return ring_.pendingSubmissions() > 0; }
  size_t heldBytes(BackendHandle* h) const override {
    auto* st = static_cast<HandleState*>(h->backendData);
    size_t n = 0;
    if (st) {
      for (const QueuedRecv& q : st->recvs) n += q.res > 0 ? static_cast<size_t>(q.res) : 0;
    }
    return n;
  }

  bool completionsWaiting() const override { return ring_.peekCqe() != nullptr || !synthetic_.empty(); }

  // The ring's shape, for stats(): its size and the setup flags the kernel accepted.
  void gauges(std::vector<std::pair<const char*, double>>* out) const override {
    out->emplace_back("ringEntries", ring_.entries());
    out->emplace_back("ringSetupFlags", ring_.features().setupFlags);
    out->emplace_back("multishotAccept", acceptMulti_ ? 1 : 0);
    out->emplace_back("multishotRecv", recvMulti_ ? 1 : 0);
    out->emplace_back("recvBuffersInUse", buffersInUse_);
  }

  void flush() override {
    recycleLent();
    submitQueued();
  }

  void submitQueued() {
    if (ring_.pendingSubmissions() == 0) return;
    if (privilegeCheck()) return;
    int rc = ring_.submit();
    if (rc == -EBUSY || rc == -EAGAIN) {
      // The kernel holds completions we have not reaped: make room, then submit again.
      ring_.flushOverflow();
    }
  }

  int wait(int timeoutMs) override {
    recycleLent();

    if (ring_.pendingSubmissions() > 0) privilegeCheck();
    if ((ring_.peekCqe() || !synthetic_.empty()) && !ring_.taskWorkPending()) {
      submitQueued();
    } else {
      // Submits what is queued and runs the ring's pending task work in the same call; waits
      // for a completion unless timeoutMs is 0.
      int rc = ring_.submit(timeoutMs != 0 ? 1 : 0, timeoutMs, true);
      if (rc == -EBUSY || rc == -EAGAIN) ring_.flushOverflow();
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
        uint32_t cflags = cqe->flags;
        ring_.cqeSeen();
        complete(ud, res, cflags);
        handled++;
      }
      if (!ring_.cqOverflowed()) break;
      ring_.flushOverflow();
    }
    submitQueued();
    return handled;
  }

 private:
  static uint64_t tag(BackendHandle* h, Tag t) { return reinterpret_cast<uint64_t>(h) | t; }
  // A request on a handle (counted in inflight_), not a cancel or the wake-up poll.
  static bool counted(uint64_t ud) {
    uint64_t t = ud & kTagMask;
    return t != kTagNone && t != kTagWake;
  }

  // A free SQE; when the ring is full, what is queued goes to the kernel first.
  io_uring_sqe* sqe_() {
    io_uring_sqe* sqe = ring_.getSqe();
    if (sqe) return sqe;
    submitQueued();
    return ring_.getSqe();
  }

  bool armWake() {
    io_uring_sqe* sqe = sqe_();
    if (!sqe) return false;
    sqe->opcode = IORING_OP_POLL_ADD;
    sqe->fd = wakeFd_;
    sqe->poll32_events = POLLIN;
    sqe->user_data = kTagWake;
    return true;
  }

  void cancel(BackendHandle* h, Tag t) {
    io_uring_sqe* sqe = sqe_();
    if (!sqe) return;
    sqe->opcode = IORING_OP_ASYNC_CANCEL;
    sqe->addr = tag(h, t);
    sqe->user_data = kTagNone;
  }

  // One CQE (or a synthesized result) to the core. The sink may close and free the handle.
  void complete(uint64_t ud, int res, uint32_t cflags = 0) {
    uint64_t t = ud & kTagMask;
    if (t == kTagNone) return;
    if (t == kTagFile) {
      inflight_--;
      sink_->onFileDone(reinterpret_cast<FileReq*>(ud & ~kTagMask), res);
      return;
    }
    if (t == kTagWake) {
      armWake();  // a one-shot poll, armed again each time: it reports a count already there
      sink_->onWake();
      return;
    }
    auto* h = reinterpret_cast<BackendHandle*>(ud & ~kTagMask);
    uint32_t& f = h->backendFlags;
    bool more = cflags & IORING_CQE_F_MORE;
    if (!more) inflight_--;
    int bid = (cflags & IORING_CQE_F_BUFFER) ? static_cast<int>(cflags >> IORING_CQE_BUFFER_SHIFT) : -1;
    if (bid >= 0) buffersInUse_++;
    if (f & kDetached) {
      // Closed: a multishot request's further reports are dropped; each request's last one
      // goes to the core, which counts them off.
      if (more) {
        if (t == kTagRecv && bid >= 0) recycle(static_cast<uint16_t>(bid));
        if (t == kTagAccept && res >= 0) ::close(res);
        return;
      }
      f &= ~(t == kTagRecv     ? kRecvIn
             : t == kTagSend   ? kSendIn
             : t == kTagAccept ? kAcceptIn
             : t == kTagShutdown ? kShutdownIn
                               : kConnectIn);
      if (!(f & kInKernel)) dropState(h);
      if (bid >= 0) recycle(static_cast<uint16_t>(bid));
      report(h, t, res, nullptr);
      return;
    }
    switch (t) {
      case kTagRecv:
        recvReport(h, res, bid, more);
        break;
      case kTagSend:
        f &= ~kSendIn;
        sink_->onSend(h, res);
        break;
      case kTagAccept:
        acceptReport(h, res, more);
        break;
      case kTagConnect:
        f &= ~kConnectIn;
        sink_->onConnect(h, res);
        break;
      case kTagShutdown:
        f &= ~kShutdownIn;
        sink_->onShutdown(h, res);
        break;
      default:
        break;
    }
  }

  void report(BackendHandle* h, uint64_t t, int res, const char* data) {
    switch (t) {
      case kTagRecv:
        sink_->onRecv(h, res, data);
        break;
      case kTagSend:
        sink_->onSend(h, res);
        break;
      case kTagAccept:
        sink_->onAccept(h, res);
        break;
      case kTagShutdown:
        sink_->onShutdown(h, res);
        break;
      default:
        sink_->onConnect(h, res);
        break;
    }
  }

  void recvReport(BackendHandle* h, int res, int bid, bool more) {
    uint32_t& f = h->backendFlags;
    if (!(f & kRecvMulti)) {
      bool unwanted = f & kRecvUnwanted;
      f &= ~(kRecvIn | kRecvUnwanted | kRecvOwed);
      HandleState* st = state(h, false);  // made by armRecvSingle
      const char* data = st ? st->recvInto : nullptr;
      sink_->onRecv(h, unwanted && res == -ECANCELED ? kRetry : res, data);
      return;
    }
    if (!more) {
      f &= ~(kRecvIn | kRecvMulti | kRecvStopped);
      if (res == -ECANCELED || res == -ENOBUFS || (res == -EINVAL && !recvMultiWorked_)) {
        // Ended without news for the core: stopped by us, out of provided buffers, or a kernel
        // without multishot recv. The core still waiting gets a fresh request.
        if (res == -EINVAL) recvMulti_ = false;
        if (f & kRecvOwed) {
          ssize_t r = res == -ENOBUFS || !recvMulti_ ? armRecvSingle(h) : armRecvMulti(h);
          if (r != kPending) {
            f &= ~kRecvOwed;
            sink_->onRecv(h, r, nullptr);  // an error: no bytes
          }
        }
        return;
      }
    }
    recvMultiWorked_ = true;
    if (f & kRecvOwed) {
      f &= ~kRecvOwed;
      const char* data = bid >= 0 ? bufAt(static_cast<uint16_t>(bid)) : nullptr;
      sink_->onRecv(h, res, data);  // the core copies what it keeps before returning
      if (bid >= 0) recycle(static_cast<uint16_t>(bid));
      return;
    }
    HandleState* st = state(h, true);
    st->recvs.push_back(QueuedRecv{res, bid});
    if (st->recvs.size() >= kMaxQueuedRecvs && (f & kRecvIn) && !(f & kRecvStopped)) {
      f |= kRecvStopped;  // nobody reads: let the socket buffer fill and push back on the peer
      cancel(h, kTagRecv);
      submitQueued();  // now: every report it brings meanwhile takes another buffer
    }
  }

  void acceptReport(BackendHandle* l, int res, bool more) {
    uint32_t& f = l->backendFlags;
    if (!more) {
      bool unwanted = f & kAcceptUnwanted;
      bool refused = res == -EINVAL && (f & kAcceptMulti) && !acceptMultiWorked_;
      f &= ~(kAcceptIn | kAcceptMulti | kAcceptStopped | kAcceptUnwanted);
      if (refused) acceptMulti_ = false;  // a kernel without multishot accept
      if (res == -ECANCELED || refused) {
        if (!(f & kAcceptOwed)) return;
        f &= ~kAcceptOwed;
        if (unwanted) {
          sink_->onAccept(l, kRetry);
          return;
        }
        ssize_t r = accept(l);  // stopped while the core asked again: a fresh request
        if (r != kPending) sink_->onAccept(l, r);
        return;
      }
    }
    if (res >= 0) acceptMultiWorked_ = true;
    if (f & kAcceptOwed) {
      f &= ~kAcceptOwed;
      sink_->onAccept(l, res);
      return;
    }
    if (res < 0) return;  // nobody asked: the next accept asks the kernel again
    HandleState* st = state(l, true);
    st->accepted.push_back(res);
    if (st->accepted.size() >= kMaxQueuedAccepts && (f & kAcceptIn) && !(f & kAcceptStopped)) {
      f |= kAcceptStopped;  // the rest wait in the kernel's backlog
      cancel(l, kTagAccept);
    }
  }

  ssize_t armRecvMulti(BackendHandle* h) {
    io_uring_sqe* sqe = sqe_();
    if (!sqe) return -EBUSY;
    sqe->opcode = IORING_OP_RECV;
    sqe->fd = h->fd;
    sqe->ioprio = IORING_RECV_MULTISHOT;
    sqe->flags = IOSQE_BUFFER_SELECT;
    sqe->buf_group = kBufGroup;
    sqe->user_data = tag(h, kTagRecv);
    inflight_++;
    h->backendFlags |= kRecvIn | kRecvMulti;
    return kPending;
  }

  // One receive into the handle's own area: without provided buffers, or when they ran out.
  ssize_t armRecvSingle(BackendHandle* h) {
    io_uring_sqe* sqe = sqe_();
    if (!sqe) return -EBUSY;
    size_t len = 0;
    char* buf = sink_->recvSpace(h, &len);
    if (!buf) return -ENOMEM;
    state(h, true)->recvInto = buf;
    sqe->opcode = IORING_OP_RECV;
    sqe->fd = h->fd;
    sqe->addr = reinterpret_cast<uint64_t>(buf);
    sqe->len = static_cast<uint32_t>(len);
    sqe->user_data = tag(h, kTagRecv);
    inflight_++;
    h->backendFlags |= kRecvIn;
    return kPending;
  }

  HandleState* state(BackendHandle* h, bool make) {
    if (!h->backendData && make) {
      auto* st = new HandleState();
      states_.insert(st);
      h->backendData = st;
    }
    return static_cast<HandleState*>(h->backendData);
  }

  void dropState(BackendHandle* h) {
    auto* st = static_cast<HandleState*>(h->backendData);
    if (!st) return;
    states_.erase(st);
    delete st;
    h->backendData = nullptr;
  }

  // The provided-buffer ring: its entries and the buffers, both page-aligned anonymous memory
  // the kernel pins at registration. False when the kernel has no buffer rings (before 5.19).
  bool setupBuffers() {
    size_t ringLen = kBufCount * sizeof(io_uring_buf);
    void* r = ::mmap(nullptr, ringLen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (r == MAP_FAILED) return false;
    void* b = ::mmap(nullptr, static_cast<size_t>(kBufCount) * kBufSize, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (b == MAP_FAILED) {
      ::munmap(r, ringLen);
      return false;
    }
    bufRing_ = r;
    bufs_ = static_cast<char*>(b);
    if (ring_.registerBufRing(bufRing_, kBufCount, kBufGroup) < 0) {
      ::munmap(bufRing_, ringLen);
      ::munmap(bufs_, static_cast<size_t>(kBufCount) * kBufSize);
      bufRing_ = nullptr;
      bufs_ = nullptr;
      return false;
    }
    for (unsigned i = 0; i < kBufCount; i++) {
      buffersInUse_++;
      recycle(static_cast<uint16_t>(i));
    }
    return true;
  }

  char* bufAt(uint16_t bid) const { return bufs_ + static_cast<size_t>(bid) * kBufSize; }

  // Gives a buffer back to the kernel. The entry's fields are set one by one: the ring's tail
  // shares memory with the first entry's reserved field. The entries are addressed by hand:
  // in C++ the header's flexible-array wrapper moves `bufs` off the start of the ring.
  void recycle(uint16_t bid) {
    static_assert(sizeof(io_uring_buf) == 16, "io_uring_buf is 16 bytes");
    io_uring_buf* e = reinterpret_cast<io_uring_buf*>(bufRing_) + (bufTail_ & (kBufCount - 1));
    e->addr = reinterpret_cast<uint64_t>(bufAt(bid));
    e->len = kBufSize;
    e->bid = bid;
    bufTail_++;
    auto* tail = reinterpret_cast<uint16_t*>(reinterpret_cast<char*>(bufRing_) + kBufRingTailOffset);
    __atomic_store_n(tail, bufTail_, __ATOMIC_RELEASE);
    buffersInUse_--;
  }

  // Buffers the core framed in place during the last batch go back once it is over.
  void recycleLent() {
    for (uint16_t bid : lent_) recycle(bid);
    lent_.clear();
  }

  // Before the memory the kernel writes into goes away (receive areas, provided buffers, the
  // handles), every request still in the kernel is cancelled and its last CQE awaited; closing
  // the ring alone would leave that to a kernel worker, later.
  void quiesce() {
    ring_.discardUnsubmitted([this](uint64_t ud) {
      if (counted(ud)) inflight_--;
    });
    if (inflight_ <= 0 || ring_.fd() < 0) return;
    if (io_uring_sqe* sqe = ring_.getSqe()) {
      sqe->opcode = IORING_OP_ASYNC_CANCEL;
      sqe->cancel_flags = IORING_ASYNC_CANCEL_ANY;
      sqe->user_data = kTagNone;
    }
    for (int round = 0; inflight_ > 0 && round < 100; round++) {
      ring_.submit(1, 10);
      while (io_uring_cqe* cqe = ring_.peekCqe()) {
        bool last = !(cqe->flags & IORING_CQE_F_MORE);
        uint64_t ud = cqe->user_data;
        int res = cqe->res;
        if (counted(ud) && last) inflight_--;
        ring_.cqeSeen();
        // A file request owns memory of its own: the core frees it (its op is gone by now).
        if ((ud & kTagMask) == kTagFile) sink_->onFileDone(reinterpret_cast<FileReq*>(ud & ~kTagMask), res);
      }
      if (ring_.cqOverflowed()) ring_.flushOverflow();
    }
  }

  // A queued request that acts by name or address rather than on an fd already held (a connect,
  // which for a Unix path checks the caller's access) must not run with the credentials the
  // ring was made with once the process dropped them. Requests on fds already held (recv,
  // send, accept) were authorised when the fd was made and skip the two system calls.
  // Returns true when the ring was poisoned.
  bool privilegeCheck() {
    if (!privilegedQueued_) return false;
    privilegedQueued_ = false;
    if (!credentialsChanged()) return false;
    poison();
    return true;
  }

  bool credentialsChanged() {
    uid_t u[3];
    gid_t g[3];
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
      if (counted(ud)) synthetic_.emplace_back(ud, -EPERM);
    });
    uint64_t one = 1;  // the loop comes back to wait(), which reports the refusals
    ssize_t ignored = ::write(wakeFd_, &one, sizeof one);
    (void)ignored;
  }

  Sink* sink_;
  Ring ring_;
  bool acceptMulti_ = false;
  bool recvMulti_ = false;
  bool acceptMultiWorked_ = false;  // a multishot request has succeeded: EINVAL is the op's own
  bool recvMultiWorked_ = false;
  void* bufRing_ = nullptr;
  char* bufs_ = nullptr;
  uint16_t bufTail_ = 0;
  double buffersInUse_ = 0;
  std::vector<uint16_t> lent_;
  std::unique_ptr<char[]> gather_;
  int64_t inflight_ = 0;  // requests in the kernel (or queued for it) whose last CQE is to come
  int wakeFd_ = -1;
  bool privilegedQueued_ = false;  // a request queued since the last check acts by address
  uid_t uid_[3] = {0, 0, 0};
  gid_t gid_[3] = {0, 0, 0};
  bool poisoned_ = false;
  std::deque<std::pair<uint64_t, int>> synthetic_;
  std::unordered_set<HandleState*> states_;  // every HandleState alive, freed at the latest here
};

}  // namespace

std::unique_ptr<Backend> makeUringBackend(Sink* sink, const UringOptions& options, int* error,
                                          const char** syscall) {
  auto b = std::make_unique<UringBackend>(sink);
  *error = b->init(options, syscall);
  if (*error < 0) return nullptr;
  return b;
}

}  // namespace async_engine
