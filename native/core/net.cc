// Network handles: listen, adopt, accept (shedding connections when out of fds) and connect
// (trying each resolved address in turn). The counterpart of libuv's tcp.c. Engine thread only.
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>

#include "core/engine_core.h"
#include "core/framing.h"

namespace async_engine {

namespace {
// acceptWhen: the most connections a listener judges at once.
constexpr size_t kMaxCandidates = 1024;
// A refused connection that was still sending is read for at most this long and this many
// bytes before its close (linger), and at most this many linger at once in the engine.
constexpr int64_t kLingerNs = 2'000'000'000;
constexpr size_t kLingerBytes = 1 << 20;
constexpr size_t kMaxLingering = 1024;
// A close without lingering first drains at most this many reads of what the peer sent.
constexpr int kDrainReads = 16;

// Whether a refused peer is still sending, judged by the `n` bytes it has sent so far: a read
// that filled its buffer, or bytes that stop mid-line. One whose bytes end with a line end
// waits for an answer (a request/response protocol) and is closed at once.
bool stillSending(const char* p, size_t n, bool full) { return full || (n > 0 && p[n - 1] != '\n'); }
}  // namespace

// ---- handles ----

int64_t EngineCore::listen(const sockaddr* addr, socklen_t len, int backlog, bool reusePort,
                           bool ipv6Only, int deferAccept, uint64_t* id, const char** syscall) {
  int fd = ::socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *syscall = "socket";
    return -errno;
  }
  auto failed = [fd, syscall](const char* call) {
    int e = errno;
    ::close(fd);
    *syscall = call;
    return -e;
  };
  int one = 1;
  if (addr->sa_family != AF_UNIX) {
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (reusePort && ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) return failed("setsockopt");
    // An IPv6 listener takes IPv4 clients too (as `net` listens), unless asked for IPv6 only.
    int v6only = ipv6Only ? 1 : 0;
    if (addr->sa_family == AF_INET6 && ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only) < 0) {
      return failed("setsockopt");
    }
    // The kernel completes a connection's accept only once it has sent data (or after about
    // this many seconds of retransmitted SYN-ACKs).
    if (deferAccept > 0 && ::setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &deferAccept, sizeof deferAccept) < 0) {
      return failed("setsockopt");
    }
  }
  if (::bind(fd, addr, len) < 0) return failed("bind");
  if (::listen(fd, backlog) < 0) return failed("listen");
  int rc = 0;
  Handle* h = attachNew(fd, HandleKind::kListener, &rc, true);
  if (!h) {
    *syscall = "attach";  // the backend refused the listener; its interface does not say which call failed
    return rc;
  }
  if (addr->sa_family == AF_UNIX) h->acceptOptions.noDelay = -1;  // TCP options skip Unix sockets
  *id = h->id;
  return fd;
}

int64_t EngineCore::adopt(int fd, uint64_t* id) {
  int type = 0;
  socklen_t tlen = sizeof type;
  if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen) < 0) return -errno;
  if (type != SOCK_STREAM) return -ENOTSUP;
  int fl = ::fcntl(fd, F_GETFL);
  if (fl < 0 || ::fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) return -errno;
  ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  int rc = 0;
  Handle* h = attachNew(fd, HandleKind::kSocket, &rc, false);
  if (!h) return rc;
  *id = h->id;
  return fd;
}

// A Unix listener's socket file goes with it (as net.Server does), so the path can be reused.
void EngineCore::unlinkUnixPath(int fd) {
  sockaddr_un un{};
  socklen_t len = sizeof un;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&un), &len) < 0 || un.sun_family != AF_UNIX) return;
  if (len <= offsetof(sockaddr_un, sun_path) || un.sun_path[0] == '\0') return;  // unnamed or abstract
  ::unlink(un.sun_path);
}

void EngineCore::pumpAccepts(Handle* l) {
  while (!l->accepts.empty()) {
    Op* head = l->accepts.front();
    if (head->kind == OpKind::kAcceptWhen) {
      if (!l->passed.empty()) {
        auto [id, line] = std::move(l->passed.front());
        l->passed.pop_front();
        if (Handle* h = handle(id)) deliverPassed(head, h, std::move(line));
        continue;
      }
      // Bounded: past this many connections being judged or waiting, new ones wait in the
      // kernel's backlog until one is refused or delivered.
      if (l->candidates.size() >= kMaxCandidates) return;
    }
    if (!l->backlog.empty()) {
      int fd = l->backlog.front();
      l->backlog.pop_front();
      accepted(head, fd);
      continue;
    }
    if (l->acceptPending || l->acceptBackoff) return;
    ssize_t r = backend_->accept(l);
    if (r == kPending) {
      l->acceptPending = true;
      return;
    }
    if (r < 0) {
      if (outOfFds(r)) {
        deferAccepts(l);
        return;
      }
      fail(head, r, Syscall::kAccept);
      continue;
    }
    accepted(head, static_cast<int>(r));
  }
}

// A connection accepted for `op`: delivered to an accept, judged by its first line for an
// acceptWhen.
void EngineCore::accepted(Op* op, int fd) {
  if (op->kind == OpKind::kAcceptWhen) {
    addCandidate(op, fd);
  } else {
    deliverAccepted(op, fd);
  }
}

bool EngineCore::outOfFds(ssize_t r) { return r == -EMFILE || r == -ENFILE || r == -ENOBUFS || r == -ENOMEM; }

// Out of fds (accept4 says so even with nothing waiting): the accept ops stay queued and are
// tried again in 100 ms, or as soon as the engine closes a socket, rather than failing at once
// into a server loop that would re-arm them and spin.
void EngineCore::deferAccepts(Handle* l) {
  shedPendingConnections(l);
  if (l->acceptBackoff) return;
  l->acceptBackoff = true;
  backoff_.push_back(l);
  if (backoffAt_ == 0) backoffAt_ = nowNs() + 100 * 1000000LL;
}

void EngineCore::retryAccepts() {
  std::vector<Handle*> waiting;
  waiting.swap(backoff_);
  backoffAt_ = 0;
  for (Handle* l : waiting) l->acceptBackoff = false;
  for (Handle* l : waiting) pumpAccepts(l);
}

// Out of fds: the waiting connections would keep the listener readable and a server that
// re-arms its accept on failure would spin. Free the reserve fd, accept and close what is
// waiting (the clients see the connection close), and take the reserve back, as libuv does.
void EngineCore::shedPendingConnections(Handle* l) {
  if (reserveFd_ < 0) return;
  ::close(reserveFd_);
  reserveFd_ = -1;
  for (;;) {
    int fd = ::accept4(l->fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    stats_.coreSyscalls++;
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      break;
    }
    ::close(fd);
  }
  reserveFd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
}

void EngineCore::deliverAccepted(Op* op, int fd) {
  // The listener's options (TCP_NODELAY by default, as Node sets it); one that the kernel refuses
  // leaves the socket as it was, and the connection is delivered all the same.
  if (op->h) applySocketOptions(fd, op->h->acceptOptions);
  int rc = 0;
  Handle* h = attachNew(fd, HandleKind::kSocket, &rc, true);
  if (!h) {
    fail(op, rc, Syscall::kAccept);
    return;
  }
  Completion c;
  c.kind = PayloadKind::kSocket;
  c.handle = h->id;
  c.fd = fd;
  c.result = 0;
  finish(op, std::move(c));
}

void EngineCore::onAccept(BackendHandle* b, ssize_t r) {
  Handle* l = Handle::of(b);
  l->acceptPending = false;
  if (l->closed) {
    if (r >= 0) ::close(static_cast<int>(r));
    primitiveAfterClose(l);
    return;
  }
  if (r == kRetry) {
    pumpAccepts(l);
    return;
  }
  if (r >= 0) {
    if (l->accepts.empty()) {
      l->backlog.push_back(static_cast<int>(r));  // its op was cancelled: keep it for the next
    } else {
      accepted(l->accepts.front(), static_cast<int>(r));
    }
  } else if (outOfFds(r)) {
    deferAccepts(l);
    return;
  } else if (!l->accepts.empty()) {
    fail(l->accepts.front(), r, Syscall::kAccept);
  }
  pumpAccepts(l);
}

// ---- acceptWhen: connections judged by their first line before JavaScript sees them ----
//
// An acceptWhen accepts every waiting connection as a candidate: a socket of the core's own, in
// its listener's list, whose first line the core reads as it arrives (judgeCandidate, from the
// socket's receive reports). A line that passes the filter settles the op with the connection;
// a candidate that passes while no acceptWhen waits joins the listener's `passed` queue for the
// next one. A candidate that fails (a line that is not the one expected, EOF or an error before
// a line, no line within the filter's timeout, a line over its maxBytes) gets the filter's
// reply and is closed here: JavaScript never hears of it. The timeout is the candidate's idle
// timer, counted from the accept (bytes received do not restart it).

void EngineCore::startAcceptWhen(Op* op) {
  Handle* l = op->h;
  // The next connections are judged by the newest filter; those under way keep theirs.
  if (l && !l->closed && l->kind == HandleKind::kListener) l->filter = op->filter;
  startOnHandle(op);
}

void EngineCore::addCandidate(Op* op, int fd) {
  Handle* l = op->h;
  const std::shared_ptr<const AcceptFilter>& filter = l->filter ? l->filter : op->filter;
  // A first look at what the peer has sent already (with deferAccept, always something): a
  // connection refused on it costs no handle, no registration with the backend and no timer.
  char* first = scratch_.data();
  ssize_t got = ::recv(fd, first, scratch_.size(), MSG_DONTWAIT);
  stats_.coreSyscalls++;
  if (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
    refuseAtAccept(fd, *filter, Refusal::kMismatch, false, false);
    return;
  }
  if (got == 0) {
    refuseAtAccept(fd, *filter, Refusal::kMismatch, true, false);
    return;
  }
  if (got > 0) {
    size_t scan = 0;
    Frame fr = async_engine::frameLine(first, static_cast<size_t>(got), filter->maxBytes, &scan);
    bool more = stillSending(first, static_cast<size_t>(got), static_cast<size_t>(got) == scratch_.size());
    if (fr.status == FrameStatus::kOverLimit) {
      refuseAtAccept(fd, *filter, Refusal::kTooLong, true, more);
      return;
    }
    if (fr.status == FrameStatus::kFound && !filter->passes(first, fr.content)) {
      refuseAtAccept(fd, *filter, Refusal::kMismatch, true, more);
      return;
    }
  }
  // Kept to be judged as its line arrives: it gets the listener's socket options now.
  applySocketOptions(fd, l->acceptOptions);
  int rc = 0;
  Handle* h = attachNew(fd, HandleKind::kSocket, &rc, true);
  if (!h) {
    fail(op, rc, Syscall::kAccept);
    return;
  }
  if (got > 0) h->in.append(scratch_.data(), static_cast<size_t>(got));
  h->candidateOf = l;
  h->filter = filter;
  l->candidates.push_back(h);
  if (h->filter->timeoutNs > 0) {
    h->idleTimer.periodNs = h->filter->timeoutNs;
    armSocketTimer(&h->idleTimer);
  }
  judgeCandidate(h);
}

// Judges a candidate's first line once it is buffered, receiving while it is not. A refused
// candidate is closed (and may be freed); one still waiting has its bytes in its own buffer.
void EngineCore::judgeCandidate(Handle* h) {
  const AcceptFilter& f = *h->filter;
  for (;;) {
    size_t scan = 0;
    Frame fr = async_engine::frameLine(h->in.data(), h->in.size(), f.maxBytes, &scan);
    if (fr.status == FrameStatus::kOverLimit) {
      refuseCandidate(h, Refusal::kTooLong, stillSending(h->in.data(), h->in.size(), false));
      return;
    }
    if (fr.status == FrameStatus::kFound) {
      const char* p = h->in.data();
      if (!f.passes(p, fr.content)) {
        refuseCandidate(h, Refusal::kMismatch, stillSending(p, h->in.size(), false));
        return;
      }
      std::string line(p, fr.content);
      h->in.consume(fr.end);
      h->in.settle();
      passCandidate(h, std::move(line));
      return;
    }
    if (h->eof || h->readError) {
      refuseCandidate(h, Refusal::kMismatch, false);
      return;
    }
    if (h->recvPending) return;
    h->in.settle();
    if (!receive(h)) return;
  }
}

// A receive report or the timeout on a candidate; then its listener may take in more.
void EngineCore::candidateEvent(Handle* h, bool timedOut) {
  Handle* l = h->candidateOf;
  if (timedOut) {
    refuseCandidate(h, Refusal::kTimeout, stillSending(h->in.data(), h->in.size(), false));
  } else {
    judgeCandidate(h);  // the handle may be gone after this
  }
  if (!l->closed) pumpAccepts(l);
}

void EngineCore::dropCandidate(Handle* h) {
  Handle* l = h->candidateOf;
  h->candidateOf = nullptr;
  auto it = std::find(l->candidates.begin(), l->candidates.end(), h);
  if (it != l->candidates.end()) l->candidates.erase(it);
  socketTimers_.remove(&h->idleTimer);
  h->idleTimer.periodNs = 0;
}

void EngineCore::passCandidate(Handle* h, std::string line) {
  Handle* l = h->candidateOf;
  dropCandidate(h);
  h->filter.reset();
  if (!l->accepts.empty() && l->accepts.front()->kind == OpKind::kAcceptWhen) {
    deliverPassed(l->accepts.front(), h, std::move(line));
  } else {
    l->passed.emplace_back(h->id, std::move(line));
  }
}

void EngineCore::deliverPassed(Op* op, Handle* h, std::string&& line) {
  Completion c;
  c.kind = PayloadKind::kSocketLine;
  c.handle = h->id;
  c.fd = h->fd;
  c.data = std::move(line);
  c.result = 0;
  finish(op, std::move(c));
}

// A refused connection's reply, if its filter has one: one non-blocking send, held (MSG_MORE) for
// the close that follows.
void EngineCore::sendRefusal(int fd, const AcceptFilter& f) {
  if (f.reply.empty()) return;
  ::send(fd, f.reply.data(), f.reply.size(), MSG_NOSIGNAL | MSG_DONTWAIT | MSG_MORE);
  stats_.coreSyscalls++;
}

void EngineCore::countRefusal(Refusal why) {
  switch (why) {
    case Refusal::kMismatch:
      stats_.filteredMismatch++;
      break;
    case Refusal::kTimeout:
      stats_.filteredTimeout++;
      break;
    case Refusal::kTooLong:
      stats_.filteredTooLong++;
      break;
  }
}

// The reply, if any, is one send on a connection that has written nothing yet: it fits in the
// socket's send buffer unless it is larger than that (the rest is then dropped). MSG_MORE holds
// it for the close or the linger's shutdown, so that it leaves with the FIN in one segment.
// `moreComing`: the peer was still sending (stillSending); the connection then lingers.
// Otherwise what the peer sent that was not read is drained first, so that the close is a FIN
// and not a reset that could discard the reply before the peer reads it.
void EngineCore::refuseCandidate(Handle* h, Refusal why, bool moreComing) {
  std::shared_ptr<const AcceptFilter> f = h->filter;
  dropCandidate(h);
  h->filter.reset();
  countRefusal(why);
  if (f && !h->readError) sendRefusal(h->fd, *f);
  if (moreComing && !h->eof && !h->readError && lingering_ < kMaxLingering) {
    linger(h);
    return;
  }
  if (!h->eof && !h->readError && !h->recvPending) drain(h->fd);
  close(h->id);
}

// A connection refused on the bytes it sent before it was accepted (addCandidate): the reply
// (held by MSG_MORE for the FIN), then the close, or a linger when the peer was still sending.
// Only those get a handle: one that sent its line and waits costs none.
void EngineCore::refuseAtAccept(int fd, const AcceptFilter& f, Refusal why, bool reply, bool moreComing) {
  countRefusal(why);
  if (reply) sendRefusal(fd, f);
  if (!moreComing) {
    ::close(fd);
    return;
  }
  if (lingering_ < kMaxLingering) {
    int rc = 0;
    if (Handle* h = attachNew(fd, HandleKind::kSocket, &rc, false)) {
      linger(h);
      return;
    }
  }
  drain(fd);
  ::close(fd);
}

// Reads and drops what the peer sent and nobody read, at most kDrainReads full reads of it.
void EngineCore::drain(int fd) {
  for (int i = 0; i < kDrainReads; i++) {
    ssize_t n = ::recv(fd, scratch_.data(), scratch_.size(), MSG_DONTWAIT);
    stats_.coreSyscalls++;
    if (n != static_cast<ssize_t>(scratch_.size())) break;
  }
}

// A lingering close, for a refused connection whose peer is still sending. Closed at once, a
// socket with bytes unread or still arriving answers with a reset, and a reset can make the
// peer's stack drop the reply before the peer reads it (RFC 1122, 4.2.2.13; Apache and nginx
// linger for the same reason). So the sending side is shut down now (the reply leaves with the
// FIN) and what the peer sends is read and dropped until its FIN or an error, for at most
// kLingerNs and kLingerBytes; then the close. No JavaScript runs for it:
// stats().lingeringConnections counts the connections lingering.
void EngineCore::linger(Handle* h) {
  h->lingering = true;
  lingering_++;
  ::shutdown(h->fd, SHUT_WR);
  stats_.coreSyscalls++;
  h->in.consume(h->in.size());
  socketTimers_.remove(&h->idleTimer);
  h->idleTimer.periodNs = kLingerNs;
  armSocketTimer(&h->idleTimer);
  lingerEvent(h, false);
}

// A receive report or the linger's end on a lingering connection.
void EngineCore::lingerEvent(Handle* h, bool timedOut) {
  for (;;) {
    h->lingerBytes += h->in.size();
    h->in.consume(h->in.size());
    h->in.settle();
    if (timedOut || h->eof || h->readError || h->lingerBytes > kLingerBytes) {
      close(h->id);
      return;
    }
    if (h->recvPending) return;
    if (!receive(h)) return;
  }
}

void EngineCore::startConnect(Op* op) {
  if (op->addrIndex >= op->addrs.size()) {
    fail(op, -EINVAL, Syscall::kConnect);
    return;
  }
  const sockaddr_storage& ss = op->addrs[op->addrIndex];
  int fd = ::socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    connectResult(op, -errno);
    return;
  }
  if (ss.ss_family != AF_UNIX) {
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  int rc = 0;
  Handle* h = attachNew(fd, HandleKind::kSocket, &rc, true);
  if (!h) {
    connectResult(op, rc);
    return;
  }
  op->h = h;
  h->connecting = op;
  ssize_t r = backend_->connect(h, reinterpret_cast<const sockaddr*>(&ss), op->addrLens[op->addrIndex]);
  if (r == kPending) return;
  connectResult(op, r);
}

void EngineCore::onConnect(BackendHandle* b, ssize_t result) {
  Handle* h = Handle::of(b);
  if (primitiveAfterClose(h)) return;
  Op* op = h->connecting;
  if (!op) return;
  connectResult(op, result);
}

void EngineCore::connectResult(Op* op, ssize_t result) {
  Handle* h = op->h;
  if (h) h->connecting = nullptr;
  if (result >= 0) {
    Completion c;
    c.kind = PayloadKind::kSocket;
    c.handle = h->id;
    c.fd = h->fd;
    finish(op, std::move(c));
    return;
  }
  // This address failed: drop its socket and try the next candidate, if any.
  if (h) {
    op->h = nullptr;
    close(h->id);
  }
  if (++op->addrIndex < op->addrs.size()) {
    startConnect(op);
    return;
  }
  fail(op, result, Syscall::kConnect);
}

// ---- socket options ----

// Sets the options `o` gives (its negative fields are left alone) on a socket, in a fixed order.
// Returns 0, or -errno of the first setsockopt the kernel refused.
int EngineCore::applySocketOptions(int fd, const SocketOptions& o) {
  auto set = [fd](int level, int name, int value) {
    return ::setsockopt(fd, level, name, &value, sizeof value) < 0 ? -errno : 0;
  };
  int rc = 0;
  if (o.noDelay >= 0 && (rc = set(IPPROTO_TCP, TCP_NODELAY, o.noDelay)) < 0) return rc;
  if (o.keepAlive >= 0 && (rc = set(SOL_SOCKET, SO_KEEPALIVE, o.keepAlive)) < 0) return rc;
  if (o.keepIdle > 0 && (rc = set(IPPROTO_TCP, TCP_KEEPIDLE, o.keepIdle)) < 0) return rc;
  if (o.receiveBuffer >= 0 && (rc = set(SOL_SOCKET, SO_RCVBUF, o.receiveBuffer)) < 0) return rc;
  if (o.sendBuffer >= 0 && (rc = set(SOL_SOCKET, SO_SNDBUF, o.sendBuffer)) < 0) return rc;
  return 0;
}

namespace {
bool isUnixSocket(int fd) {
  int domain = 0;
  socklen_t len = sizeof domain;
  return ::getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) == 0 && domain == AF_UNIX;
}
}  // namespace

int EngineCore::setSocketOptions(Handle* h, const SocketOptions& o) {
  SocketOptions eff = o;
  bool unixSocket = isUnixSocket(h->fd);
  if (unixSocket) {
    // TCP's options mean nothing on a Unix socket: skipped, as documented.
    eff.noDelay = eff.keepAlive = eff.keepIdle = -1;
  }
  if (h->kind == HandleKind::kListener) {
    SocketOptions& a = h->acceptOptions;
    if (eff.noDelay >= 0) a.noDelay = eff.noDelay;
    if (eff.keepAlive >= 0) a.keepAlive = eff.keepAlive;
    if (eff.keepIdle >= 0) a.keepIdle = eff.keepIdle;
    if (eff.receiveBuffer >= 0) a.receiveBuffer = eff.receiveBuffer;
    if (eff.sendBuffer >= 0) a.sendBuffer = eff.sendBuffer;
    return 0;
  }
  return applySocketOptions(h->fd, eff);
}

int EngineCore::socketOptions(Handle* h, SocketOptions* out) {
  auto get = [h](int level, int name, int* value) {
    socklen_t len = sizeof *value;
    return ::getsockopt(h->fd, level, name, value, &len) < 0 ? -errno : 0;
  };
  *out = SocketOptions{0, 0, 0, 0, 0};
  int rc = 0;
  if ((rc = get(SOL_SOCKET, SO_RCVBUF, &out->receiveBuffer)) < 0) return rc;
  if ((rc = get(SOL_SOCKET, SO_SNDBUF, &out->sendBuffer)) < 0) return rc;
  if (isUnixSocket(h->fd)) return 0;
  if ((rc = get(IPPROTO_TCP, TCP_NODELAY, &out->noDelay)) < 0) return rc;
  if ((rc = get(SOL_SOCKET, SO_KEEPALIVE, &out->keepAlive)) < 0) return rc;
  if ((rc = get(IPPROTO_TCP, TCP_KEEPIDLE, &out->keepIdle)) < 0) return rc;
  return 0;
}

}  // namespace async_engine
