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
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
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

}  // namespace async_engine
