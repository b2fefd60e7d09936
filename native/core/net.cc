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

#include "core/engine_core.h"

namespace async_engine {

// ---- handles ----

int64_t EngineCore::listen(const sockaddr* addr, socklen_t len, int backlog, bool reusePort,
                           bool ipv6Only, uint64_t* id, const char** syscall) {
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
    if (!l->backlog.empty()) {
      int fd = l->backlog.front();
      l->backlog.pop_front();
      deliverAccepted(l->accepts.front(), fd);
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
      fail(l->accepts.front(), r, Syscall::kAccept);
      continue;
    }
    deliverAccepted(l->accepts.front(), static_cast<int>(r));
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
      deliverAccepted(l->accepts.front(), static_cast<int>(r));
    }
  } else if (outOfFds(r)) {
    deferAccepts(l);
    return;
  } else if (!l->accepts.empty()) {
    fail(l->accepts.front(), r, Syscall::kAccept);
  }
  pumpAccepts(l);
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
