// The engine core (see engine_core.h): op bookkeeping, framing, chains and deadlines over the
// Backend primitives. Single-threaded: every function runs on the engine's thread.
#include "core/engine_core.h"

#include "core/file_pool.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/eventfd.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstddef>
#include <cstring>

#include "core/framing.h"

namespace async_engine {

namespace {
constexpr size_t kScratchSize = 64 * 1024;
constexpr int kMaxIov = 64;

bool isRead(OpKind k) {
  switch (k) {
    case OpKind::kReadInto:
    case OpKind::kReadUntil:
    case OpKind::kReadLine:
    case OpKind::kReadGlob:
    case OpKind::kReadRegex:
    case OpKind::kReadChunk:
    case OpKind::kReadExactly:
    case OpKind::kReadAll:
    case OpKind::kReadPrefixed:
      return true;
    default:
      return false;
  }
}
}  // namespace

int64_t EngineCore::nowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
}

EngineCore::EngineCore() : scratch_(kScratchSize) {}

EngineCore::~EngineCore() {
  release();
  for (Op* op : freeOps_) delete op;
  for (auto& [p, size] : storageCache_) std::free(p);
}

void EngineCore::release() {
  if (backend_) shutdown();
  if (resolver_) resolver_->stop();
  resolver_.reset();
  if (filePool_) {
    filePool_->stop();
    for (auto& [r, res] : filePool_->drain()) {
      if (r->op == FileOp::kOpen && res >= 0) ::close(static_cast<int>(res));
      std::free(r->storage);
      delete r;
    }
    filePool_.reset();
  }
  backend_.reset();
  // No report can come now: close what was still waiting for one.
  for (Handle* z : zombies_) {
    ::close(z->fd);
    delete z;
  }
  zombies_.clear();
  if (wakeFd_ >= 0) ::close(wakeFd_);
  if (reserveFd_ >= 0) ::close(reserveFd_);
  wakeFd_ = reserveFd_ = -1;
}

int EngineCore::init(std::unique_ptr<Backend> backend) {
  backend_ = std::move(backend);
  wakeFd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wakeFd_ < 0) return -errno;
  int rc = backend_->watchWake(wakeFd_);
  if (rc < 0) return rc;
  resolver_ = std::make_unique<Resolver>(wakeFd_, 2);
  reserveFd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  return 0;
}

// ---- handles ----

// A new handle for `fd`, joined to the backend; nullptr and *error when the backend refuses it
// (the fd is then closed, unless the caller keeps it: adopt() leaves a refused fd to its owner).
Handle* EngineCore::attachNew(int fd, HandleKind kind, int* error, bool closeOnError) {
  Handle* h = newHandle(fd, kind);
  int rc = backend_->attach(h);
  if (rc >= 0) return h;
  handles_.erase(static_cast<int64_t>(h->id));
  if (kind == HandleKind::kListener) {
    listeners_--;
  } else {
    sockets_--;
  }
  if (closeOnError) ::close(fd);
  delete h;
  *error = rc;
  return nullptr;
}

Handle* EngineCore::newHandle(int fd, HandleKind kind) {
  auto* h = new Handle();
  h->id = nextHandle_++;
  h->fd = fd;
  h->kind = kind;
  handles_.insert(static_cast<int64_t>(h->id), h);
  if (kind == HandleKind::kListener) {
    listeners_++;
  } else if (kind == HandleKind::kFile) {
    files_++;
  } else {
    sockets_++;
  }
  return h;
}

Handle* EngineCore::handle(uint64_t id) {
  return handles_.find(static_cast<int64_t>(id));
}

int64_t EngineCore::listen(const sockaddr* addr, socklen_t len, int backlog, bool reusePort,
                           uint64_t* id) {
  int fd = ::socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int one = 1;
  if (addr->sa_family != AF_UNIX) {
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (reusePort && ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) {
      int e = errno;
      ::close(fd);
      return -e;
    }
    if (addr->sa_family == AF_INET6) ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  }
  if (::bind(fd, addr, len) < 0 || ::listen(fd, backlog) < 0) {
    int e = errno;
    ::close(fd);
    return -e;
  }
  int rc = 0;
  Handle* h = attachNew(fd, HandleKind::kListener, &rc, true);
  if (!h) return rc;
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

void EngineCore::close(uint64_t id) {
  Handle* h = handle(id);
  if (!h) return;
  h->closed = true;
  // Every op queued on the handle fails; ops are unlinked by fail().
  auto failAll = [this](SmallQueue<Op*>& q) {
    SmallQueue<Op*> running;  // file ops whose request runs: they settle with its result
    while (!q.empty()) {
      Op* op = q.front();
      if (fileRequestRunning(op)) {
        q.pop_front();
        running.push_back(op);
        continue;
      }
      fail(op, kErrCanceled);
    }
    q.swap(running);
  };
  failAll(h->reads);
  failAll(h->writes);
  failAll(h->accepts);
  failAll(h->fileOps);
  if (Op* c = h->connecting) {
    h->connecting = nullptr;
    c->h = nullptr;
    fail(c, kErrCanceled);
  }
  for (int fd : h->backlog) ::close(fd);
  h->backlog.clear();
  if (h->kind == HandleKind::kListener) unlinkUnixPath(h->fd);
  handles_.erase(static_cast<int64_t>(h->id));
  if (h->kind == HandleKind::kListener) {
    listeners_--;
  } else if (h->kind == HandleKind::kFile) {
    files_--;
  } else {
    sockets_--;
  }
  if (h->kind == HandleKind::kFile) {
    // Requests in flight keep the fd (and its number) until they end.
    h->pendingPrimitives = h->fileReqs;
    releaseHandle(h);
    return;
  }
  if (h->acceptBackoff) {
    backoff_.erase(std::find(backoff_.begin(), backoff_.end(), h));
    h->acceptBackoff = false;
  }
  h->pendingPrimitives = backend_->detach(h);
  releaseHandle(h);
  if (!backoff_.empty() && !shuttingDown_) retryAccepts();  // an fd was freed
}

// A Unix listener's socket file goes with it (as net.Server does), so the path can be reused.
void EngineCore::unlinkUnixPath(int fd) {
  sockaddr_un un{};
  socklen_t len = sizeof un;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&un), &len) < 0 || un.sun_family != AF_UNIX) return;
  if (len <= offsetof(sockaddr_un, sun_path) || un.sun_path[0] == '\0') return;  // unnamed or abstract
  ::unlink(un.sun_path);
}

// The fd is closed once no primitive can touch it any more: at once for a readiness backend;
// for one that completes later, with the last report (so the number cannot be reused under a
// primitive still in flight).
void EngineCore::releaseHandle(Handle* h) {
  if (h->pendingPrimitives > 0) {
    h->zombie = true;
    zombies_.push_back(h);
    return;
  }
  ::close(h->fd);
  delete h;
}

// ---- ops ----

// Ops are recycled: a server settles two or three per request, and a freed Op is the next one.
Op* EngineCore::newOp() {
  if (freeOps_.empty()) return new Op();
  Op* op = freeOps_.back();
  freeOps_.pop_back();
  return op;
}

void EngineCore::freeOp(Op* op) {
  if (op->into && into_) into_->intoRelease(op->into);
  op->into = nullptr;
  if (freeOps_.size() >= 1024) {
    delete op;
    return;
  }
  op->reset();
  freeOps_.push_back(op);
}

void EngineCore::submit(Op* op) {
  ops_.insert(op->id, op);
  start(op);
}

void EngineCore::submitChain(std::vector<Op*> stages) {
  for (size_t i = 0; i < stages.size(); i++) {
    ops_.insert(stages[i]->id, stages[i]);
    stages[i]->chained = i > 0;
    stages[i]->next = i + 1 < stages.size() ? stages[i + 1] : nullptr;
    stages[i]->prev = i > 0 ? stages[i - 1] : nullptr;
  }
  if (!stages.empty()) start(stages[0]);
}

void EngineCore::armTimer(Op* op) {
  // A sleep of 0 still goes through the heap, so it runs in deadline order with the others.
  if (op->timeoutMs <= 0 && op->kind != OpKind::kSleep) return;
  // Deadlines past ~146 years saturate rather than overflow.
  constexpr double kMaxMs = 4.0e12;
  double ms = op->timeoutMs < kMaxMs ? op->timeoutMs : kMaxMs;
  op->deadline = nowNs() + static_cast<int64_t>(ms * 1e6);
  op->timerSeq = ++timerSeq_;
  heapPush(op);
}

void EngineCore::heapPush(Op* op) {
  op->heapIndex = heap_.size();
  heap_.push_back(op);
  heapSiftUp(op->heapIndex);
}

void EngineCore::heapRemove(Op* op) {
  size_t i = op->heapIndex;
  if (i == SIZE_MAX) return;
  op->heapIndex = SIZE_MAX;
  Op* last = heap_.back();
  heap_.pop_back();
  if (last == op) return;
  heap_[i] = last;
  last->heapIndex = i;
  heapSiftUp(i);
  heapSiftDown(last->heapIndex);
}

void EngineCore::heapSiftUp(size_t i) {
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (!earlier(heap_[i], heap_[parent])) break;
    std::swap(heap_[i], heap_[parent]);
    heap_[i]->heapIndex = i;
    heap_[parent]->heapIndex = parent;
    i = parent;
  }
}

void EngineCore::heapSiftDown(size_t i) {
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    if (l < heap_.size() && earlier(heap_[l], heap_[m])) m = l;
    if (r < heap_.size() && earlier(heap_[r], heap_[m])) m = r;
    if (m == i) return;
    std::swap(heap_[i], heap_[m]);
    heap_[i]->heapIndex = i;
    heap_[m]->heapIndex = m;
    i = m;
  }
}

void EngineCore::start(Op* op) {
  op->started = true;
  if (op->kind == OpKind::kSleep) {
    // callLater: the deadline is the op itself; expiry is its success.
    armTimer(op);
    return;
  }
  armTimer(op);
  Handle* h = op->h;
  switch (op->kind) {
    case OpKind::kSoon: {
      Completion c;
      finish(op, std::move(c));
      return;
    }
    case OpKind::kResolve:
      resolver_->submit(op->id, op->host, op->service);
      return;
    case OpKind::kConnect:
      startConnect(op);
      return;
    case OpKind::kOpen:
      startFileOp(op);
      return;
    case OpKind::kStat:
      if (!h) {  // by path
        startFileOp(op);
        return;
      }
      break;
    default:
      break;
  }
  if (!h || h->closed) {
    fail(op, kErrBadHandle);
    return;
  }
  if (h->kind == HandleKind::kFile) {
    if (op->kind == OpKind::kAccept) {
      fail(op, -EINVAL);
      return;
    }
    bool positioned = op->position >= 0 && op->kind != OpKind::kWrite;
    if (positioned || op->kind == OpKind::kWrite || op->kind == OpKind::kFsync || op->kind == OpKind::kStat) {
      startFileOp(op);
      return;
    }
    h->reads.push_back(op);  // sequential reads frame the file like a socket's stream
    if (h->reads.size() == 1) pumpReads(h);
    return;
  }
  if (op->kind == OpKind::kFsync || op->kind == OpKind::kStat || op->kind == OpKind::kReadInto) {
    fail(op, -EINVAL);  // file ops on a socket
    return;
  }
  if (op->kind == OpKind::kAccept) {
    if (h->kind != HandleKind::kListener) {
      fail(op, -EINVAL);
      return;
    }
    h->accepts.push_back(op);
    pumpAccepts(h);
    return;
  }
  if (h->kind != HandleKind::kSocket) {
    fail(op, -ENOTSOCK);
    return;
  }
  if (op->kind == OpKind::kWrite) {
    h->writes.push_back(op);
    if (h->writes.size() > 1) return;
    // Corked until the end of the batch: the writes a batch of callbacks makes on one socket
    // go out in one gathered send (see flushWrites).
    if (!h->writeQueued) {
      h->writeQueued = true;
      dirtyWrites_.push_back(h->id);
    }
    return;
  }
  h->reads.push_back(op);
  if (h->reads.size() == 1) pumpReads(h);
}

// Removes a live op from wherever it waits. The op stays allocated.
void EngineCore::unlink(Op* op) {
  ops_.erase(op->id);
  heapRemove(op);
  op->deadline = 0;
  if (op->freq) fileOpLeft(op);
  Handle* h = op->h;
  if (!h || !op->started) return;
  auto drop = [op](SmallQueue<Op*>& q) {
    auto it = std::find(q.begin(), q.end(), op);
    if (it != q.end()) q.erase(it);
  };
  if (h->kind == HandleKind::kFile && (op->position >= 0 || !isRead(op->kind))) {
    drop(h->fileOps);  // a positioned read, a write, fsync or stat: not in the stream's queues
    return;
  }
  if (op->kind == OpKind::kAccept) {
    drop(h->accepts);
    if (h->accepts.empty() && h->acceptPending && !h->closed) backend_->unwant(h, Primitive::kAccept);
  } else if (op->kind == OpKind::kWrite) {
    drop(h->writes);
    if (h->sendPending && !backend_->completesInline()) {
      // A backend may still be reading these bytes: they live on until its report.
      for (auto& part : h->sendParts) {
        if (part.first == op->id) {
          h->sendOrphans.push_back(std::move(op->data));
          break;
        }
      }
    }
  } else if (isRead(op->kind)) {
    drop(h->reads);
  } else if (op->kind == OpKind::kConnect && h->connecting == op) {
    // Cancelled or timed out mid-connect: the half-open socket is nobody's.
    h->connecting = nullptr;
    op->h = nullptr;
    close(h->id);
  }
}

void EngineCore::finish(Op* op, Completion&& c) {
  unlink(op);
  c.id = op->id;
  Handle* h = op->h;
  if (h && h->kind == HandleKind::kSocket && !h->closed && isRead(op->kind) && h->reads.empty()) {
    c.rest = h->in.size();
  }
  ready_.push_back(std::move(c));
  undelivered_++;
  Op* next = op->next;
  bool ok = ready_.back().result >= 0;
  if (next) {
    next->prev = nullptr;  // the next stage is the chain's first unfinished one now
    if (ok) {
      // The next stage runs on the socket this stage produced (accept, connect) or used.
      if (!next->h) next->h = ready_.back().kind == PayloadKind::kSocket ? handle(ready_.back().handle) : op->h;
      if (next->kind == OpKind::kConnect && op->kind == OpKind::kResolve) {
        // getaddrinfoThenConnect: the addresses were stashed on the resolve op.
        next->addrs = std::move(op->addrs);
        next->addrLens = std::move(op->addrLens);
      }
      freeOp(op);
      start(next);
      return;
    }
    abortAfter(op);
  }
  freeOp(op);
}

// Every stage after `op` fails with ERR_ABORTED (JavaScript attaches the failure as `cause`).
void EngineCore::abortAfter(Op* op) {
  for (Op* s = op->next; s;) {
    Op* after = s->next;
    ops_.erase(s->id);
    Completion c;
    c.id = s->id;
    c.result = kErrAborted;
    ready_.push_back(std::move(c));
    undelivered_++;
    freeOp(s);
    s = after;
  }
  op->next = nullptr;
}

void EngineCore::fail(Op* op, int64_t code, Syscall sc) {
  Completion c;
  c.result = code;
  c.syscall = sc;
  if (op->kind == OpKind::kWrite) {
    c.kind = PayloadKind::kWritten;  // how much of a failed write the kernel took
    c.handle = op->written;
  }
  finish(op, std::move(c));
}

bool EngineCore::cancel(int64_t id) {
  Op* op = ops_.find(id);
  if (!op) return false;
  // A file request in the kernel or on a pool thread cannot be taken back: the cancel loses
  // and the result is delivered. One still queued for the pool is taken out.
  if (fileRequestRunning(op)) return false;
  // A chain is cancelled from its running stage on: find the stage that has started.
  Op* target = op;
  while (target->prev) target = target->prev;
  // Every unfinished stage fails with ECANCELED, in stage order.
  Op* rest = target->next;
  target->next = nullptr;
  Handle* h = target->h;
  bool wasHeadRead = h && isRead(target->kind) && !h->reads.empty() && h->reads.front() == target;
  bool wasHeadWrite = h && target->kind == OpKind::kWrite && !h->writes.empty() && h->writes.front() == target;
  fail(target, kErrCanceled);
  for (Op* s = rest; s;) {
    Op* after = s->next;
    s->next = nullptr;
    fail(s, kErrCanceled);
    s = after;
  }
  resumeAfter(h, wasHeadRead, wasHeadWrite);
  return true;
}

// After the head read or write of `h` left early (cancel, timeout), the next queued op may run.
// Only read and write heads are passed here, so `h` is still open.
void EngineCore::resumeAfter(Handle* h, bool wasHeadRead, bool wasHeadWrite) {
  if (wasHeadRead) {
    if (!h->reads.empty()) {
      pumpReads(h);
    } else if (h->recvPending) {
      backend_->unwant(h, Primitive::kRecv);  // nobody reads now: a blocked worker may leave
    }
  }
  if (wasHeadWrite && !h->writes.empty()) pumpWrites(h);
}

bool EngineCore::regexVerdict(int64_t id, int64_t verdict) {
  Op* op = ops_.find(id);
  if (!op) return false;
  // A regex read answers only a match or a failure, and may answer any report (the native side
  // does not wait for a "no match yet"); a length-prefixed read answers its one header report.
  if (op->kind != OpKind::kReadRegex && (op->kind != OpKind::kReadPrefixed || !op->awaitingVerdict)) {
    return false;
  }
  op->awaitingVerdict = false;
  Handle* h = op->h;
  if (op->kind == OpKind::kReadPrefixed && verdict > 0) {
    op->n = static_cast<size_t>(verdict);  // framed by tryFrame once that much is buffered
  } else if (verdict > 0) {
    size_t n = std::min<size_t>(static_cast<size_t>(verdict), h->in.size());
    Completion c;
    c.kind = PayloadKind::kBytes;
    c.data.assign(h->in.data(), n);
    c.result = static_cast<int64_t>(n);
    h->in.consume(n);
    finish(op, std::move(c));
  } else if (verdict < 0) {
    Completion c;
    c.result = verdict;
    if (verdict == kErrIncomplete) {
      c.kind = PayloadKind::kBytes;
      c.data.assign(h->in.data(), h->in.size());
      h->in.consume(h->in.size());
    }
    finish(op, std::move(c));
  }
  if (!h->closed) pumpReads(h);
  return true;
}

// ---- reads ----

// A socket's own receive area (backends that complete later) starts small, since an idle
// connection keeps its receive armed, and doubles each time a receive fills it.
constexpr size_t kRecvAreaMin = 4 * 1024;
constexpr size_t kRecvAreaMax = 64 * 1024;

char* EngineCore::recvSpace(Handle* h, size_t* len) {
  if (backend_->completesInline()) {
    *len = scratch_.size();
    h->recvFrom = scratch_.data();
    return scratch_.data();
  }
  // Nothing is borrowed from the area here (the core settles before it receives again).
  if (!h->recvArea || h->recvAreaGrow) {
    size_t size = h->recvArea ? std::min(h->recvAreaSize * 2, kRecvAreaMax) : kRecvAreaMin;
    std::free(h->recvArea);
    h->recvArea = static_cast<char*>(std::malloc(size));
    h->recvAreaSize = h->recvArea ? size : 0;
    h->recvAreaGrow = false;
  }
  *len = h->recvAreaSize;
  h->recvFrom = h->recvArea;
  return h->recvArea;
}

// A primitive reported on a handle that was closed meanwhile: count it off, and free the
// handle with the last one. Returns true if the handle is closed (the report is dropped).
bool EngineCore::primitiveAfterClose(Handle* h) {
  if (!h->closed) return false;
  if (--h->pendingPrimitives <= 0) {
    auto it = std::find(zombies_.begin(), zombies_.end(), h);
    if (it != zombies_.end()) zombies_.erase(it);
    ::close(h->fd);
    delete h;
  }
  return true;
}

void EngineCore::recvResult(Handle* h, ssize_t r, const char* data) {
  if (r > 0 && h->recvArea && !data && static_cast<size_t>(r) == h->recvAreaSize && h->recvAreaSize < kRecvAreaMax) {
    h->recvAreaGrow = true;  // the sender outpaces the area
  }
  if (r > 0) {
    h->in.append(data ? data : h->recvFrom, static_cast<size_t>(r));
    stats_.bytesRead += r;
  } else if (r == 0) {
    h->eof = true;
  } else {
    h->readError = static_cast<int>(r);
  }
}

// Frames what is buffered for the queued reads, receiving more while the head op needs it.
// Received bytes are framed where they landed; whatever is left is copied into the socket's
// buffer before that memory is received into again, and before returning.
void EngineCore::pumpReads(Handle* h) {
  pumpReadsLoop(h);
  h->in.settle();
}

void EngineCore::pumpReadsLoop(Handle* h) {
  for (;;) {
    while (!h->reads.empty()) {
      Op* op = h->reads.front();
      if (!tryFrame(h, op)) break;
    }
    if (h->reads.empty() || h->closed) return;
    Op* head = h->reads.front();
    if (head->awaitingVerdict) return;
    if (h->eof || h->readError) {
      failReadAtEnd(h, head);
      continue;
    }
    if (h->recvPending) return;
    h->in.settle();
    if (h->kind == HandleKind::kFile) {
      fileSeqRead(h);
      if (h->recvPending) return;
      continue;  // it failed at once (no memory): the head op fails with the error
    }
    ssize_t r = backend_->recv(h);
    if (r == kPending) {
      h->recvPending = true;
      return;
    }
    recvResult(h, r, nullptr);
  }
}

size_t EngineCore::take(Handle* h, char* dest, size_t n) {
  if (h->kind != HandleKind::kSocket || h->closed || !h->reads.empty()) return 0;
  size_t k = std::min(n, h->in.size());
  if (k == 0) return 0;
  std::memcpy(dest, h->in.data(), k);
  h->in.consume(k);
  return k;
}

bool EngineCore::unread(Handle* h, const char* p, size_t n) {
  if (h->kind != HandleKind::kSocket || h->closed || !h->reads.empty()) return false;
  h->in.prepend(p, n);
  return true;
}

void EngineCore::onRecv(Handle* h, ssize_t result, const char* data) {
  h->recvPending = false;
  if (primitiveAfterClose(h)) return;
  if (result != kRetry) recvResult(h, result, data);
  pumpReads(h);
}

// The stream ended (EOF or an error) with `op` still short of its goal.
void EngineCore::failReadAtEnd(Handle* h, Op* op) {
  if (h->readError) {
    fail(op, h->readError, Syscall::kRecv);
    return;
  }
  Completion c;
  c.kind = PayloadKind::kBytes;
  switch (op->kind) {
    case OpKind::kReadChunk:
      c.result = 0;  // EOF is an empty chunk
      break;
    case OpKind::kReadInto:
      c.kind = PayloadKind::kNone;
      c.result = 0;  // EOF: nothing read
      break;
    case OpKind::kReadAll:
      c.data.assign(h->in.data(), h->in.size());
      c.result = static_cast<int64_t>(h->in.size());
      h->in.consume(h->in.size());
      break;
    case OpKind::kReadRegex:
      // JavaScript matches what remains; report the EOF as progress.
      if (!op->reportedEof) {
        op->reportedEof = true;
        op->awaitingVerdict = true;
        Completion p;
        p.id = op->id;
        p.result = kProgress;
        p.kind = PayloadKind::kProgress;
        p.flag = true;
        p.data.assign(h->in.data(), std::min(h->in.size(), op->maxBytes));
        p.flag2 = h->in.size() > op->maxBytes;
        ready_.push_back(std::move(p));
        return;
      }
      [[fallthrough]];
    default:
      c.result = kErrIncomplete;
      c.data.assign(h->in.data(), h->in.size());
      h->in.consume(h->in.size());
      break;
  }
  finish(op, std::move(c));
}

bool EngineCore::tryFrame(Handle* h, Op* op) {
  const char* p = h->in.data();
  size_t len = h->in.size();
  Completion c;
  switch (op->kind) {
    case OpKind::kReadInto:
      return fileReadIntoFromBuffer(h, op);
    case OpKind::kReadUntil: {
      Frame f = frameDelimiter(p, len, op->pattern, op->maxBytes, &op->scanFrom);
      if (f.status == FrameStatus::kNeedMore) return false;
      if (f.status == FrameStatus::kOverLimit) {
        fail(op, kErrLimit);
        return true;
      }
      c.kind = PayloadKind::kBytes;
      c.data.assign(p, f.end);
      c.result = static_cast<int64_t>(f.end);
      h->in.consume(f.end);
      break;
    }
    case OpKind::kReadLine: {
      Frame f = frameLine(p, len, op->maxBytes, &op->scanFrom);
      if (f.status == FrameStatus::kNeedMore) return false;
      if (f.status == FrameStatus::kOverLimit) {
        fail(op, kErrLimit);
        return true;
      }
      c.kind = op->asString ? PayloadKind::kString : PayloadKind::kBytes;
      c.data.assign(p, f.content);
      c.result = static_cast<int64_t>(f.content);
      h->in.consume(f.end);
      break;
    }
    case OpKind::kReadGlob: {
      // Lines are collected without consuming, so a cancelled op leaves them all buffered.
      for (;;) {
        size_t lineStart = op->n;
        // maxBytes bounds every byte up to the matching line's terminator, the earlier lines'
        // terminators included: once they alone pass it, no line can match within the bound.
        if (lineStart > op->maxBytes) {
          op->lines.clear();
          fail(op, kErrLimit);
          return true;
        }
        size_t scan = op->scanFrom - lineStart;
        size_t budget = op->maxBytes - lineStart;
        Frame f = frameLine(p + lineStart, len - lineStart, budget, &scan);
        op->scanFrom = lineStart + scan;
        if (f.status == FrameStatus::kNeedMore) return false;
        if (f.status == FrameStatus::kOverLimit) {
          op->lines.clear();
          fail(op, kErrLimit);
          return true;
        }
        op->lines.emplace_back(p + lineStart, f.content);
        op->n = lineStart + f.end;
        op->scanFrom = op->n;
        if (globMatch(op->pattern, op->lines.back())) break;
      }
      c.kind = PayloadKind::kLines;
      c.flag = !op->asString;
      c.list = std::move(op->lines);
      c.result = static_cast<int64_t>(op->n);
      h->in.consume(op->n);
      break;
    }
    case OpKind::kReadRegex: {
      if (op->awaitingVerdict) return false;
      if (len == 0 || len <= op->reportedLen) return false;
      op->reportedLen = len;
      // JavaScript answers only a match or a failure; meanwhile receiving goes on, up to the
      // bound or the end of the stream: there the op waits for its answer (a match, ERR_LIMIT,
      // ERR_INCOMPLETE).
      op->awaitingVerdict = len > op->maxBytes || h->eof;
      Completion pr;
      pr.id = op->id;
      pr.result = kProgress;
      pr.kind = PayloadKind::kProgress;
      pr.data.assign(p, std::min(len, op->maxBytes));
      pr.flag = h->eof;
      pr.flag2 = len > op->maxBytes;
      op->reportedEof = h->eof;
      ready_.push_back(std::move(pr));
      return false;
    }
    case OpKind::kReadChunk: {
      if (len == 0) return false;
      size_t n = std::min(len, op->n);
      c.kind = PayloadKind::kBytes;
      c.data.assign(p, n);
      c.result = static_cast<int64_t>(n);
      h->in.consume(n);
      break;
    }
    case OpKind::kReadPrefixed: {
      if (op->awaitingVerdict) return false;
      if (op->n == 0) {
        // The header: JavaScript takes the record's length from it; nothing is consumed yet.
        Frame f = op->pattern.empty() ? frameLine(p, len, op->maxBytes, &op->scanFrom)
                                      : frameDelimiter(p, len, op->pattern, op->maxBytes, &op->scanFrom);
        if (f.status == FrameStatus::kNeedMore) return false;
        if (f.status == FrameStatus::kOverLimit) {
          fail(op, kErrLimit);
          return true;
        }
        op->awaitingVerdict = true;
        Completion pr;
        pr.id = op->id;
        pr.result = kProgress;
        pr.kind = PayloadKind::kProgress;
        pr.data.assign(p, f.end);
        ready_.push_back(std::move(pr));
        return false;
      }
      // The whole record's length is known (op->n): read as readExactly reads.
      [[fallthrough]];
    }
    case OpKind::kReadExactly: {
      if (len < op->n) return false;
      c.kind = PayloadKind::kBytes;
      c.data.assign(p, op->n);
      c.result = static_cast<int64_t>(op->n);
      h->in.consume(op->n);
      break;
    }
    case OpKind::kReadAll: {
      if (len > op->maxBytes) {
        fail(op, kErrLimit);
        return true;
      }
      return false;  // delivered at EOF by failReadAtEnd
    }
    default:
      return false;
  }
  finish(op, std::move(c));
  return true;
}

// ---- writes ----

// Sends the corked writes of every socket that has some.
void EngineCore::flushWrites() {
  if (dirtyWrites_.empty()) return;
  std::vector<uint64_t> dirty;
  dirty.swap(dirtyWrites_);
  for (uint64_t id : dirty) {
    Handle* h = handle(id);
    if (!h) continue;
    h->writeQueued = false;
    pumpWrites(h);
  }
}

void EngineCore::pumpWrites(Handle* h) {
  while (!h->writes.empty() && !h->closed) {
    if (h->writeError) {
      fail(h->writes.front(), h->writeError, Syscall::kSend);
      continue;
    }
    if (h->sendPending) return;
    finishSentWrites(h);
    if (h->writes.empty()) return;
    if (!sendQueued(h)) return;
  }
}

// The queued writes of a socket go out in one gathered send (in order, never interleaved), and
// each is finished once all its bytes are out. Returns false when the send is pending (a
// backend that completes later, or a full socket).
bool EngineCore::sendQueued(Handle* h) {
  iovec iov[kMaxIov];
  int n = 0;
  int maxIov = std::min(backend_->maxSendIov(), kMaxIov);
  h->sendParts.clear();
  for (Op* op : h->writes) {
    if (n == maxIov) break;
    size_t left = op->data.size() - op->written;
    if (left == 0) continue;
    iov[n++] = iovec{op->data.data() + op->written, left};
    h->sendParts.emplace_back(op->id, left);
  }
  ssize_t r = backend_->send(h, iov, n);
  if (r == kPending) {
    h->sendPending = true;
    return false;
  }
  if (r < 0) {
    h->sendParts.clear();
    h->writeError = static_cast<int>(r);
    return true;
  }
  creditSent(h, static_cast<size_t>(r));
  return true;
}

// Counts `sent` bytes to the writes of the last send, in order. A write that left meanwhile
// (cancelled, timed out) is skipped: its bytes went out all the same.
void EngineCore::creditSent(Handle* h, size_t sent) {
  stats_.bytesWritten += sent;
  for (auto [id, len] : h->sendParts) {
    if (sent == 0) break;
    size_t take = std::min(sent, len);
    if (Op* op = ops_.find(id)) op->written += take;
    sent -= take;
  }
  h->sendParts.clear();
}

void EngineCore::finishSentWrites(Handle* h) {
  while (!h->writes.empty() && h->writes.front()->written == h->writes.front()->data.size()) {
    Op* op = h->writes.front();
    Completion c;
    c.result = static_cast<int64_t>(op->written);
    finish(op, std::move(c));
  }
}

void EngineCore::onSend(Handle* h, ssize_t result) {
  h->sendPending = false;
  if (primitiveAfterClose(h)) return;
  if (result == kRetry) {
    h->sendParts.clear();
  } else if (result < 0) {
    h->sendParts.clear();
    h->writeError = static_cast<int>(result);
  } else {
    creditSent(h, static_cast<size_t>(result));
  }
  h->sendOrphans.clear();
  pumpWrites(h);
}

// ---- accept / connect ----

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

void EngineCore::onAccept(Handle* l, ssize_t r) {
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

void EngineCore::onConnect(Handle* h, ssize_t result) {
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

// ---- cross-thread results ----

void EngineCore::onWake() {
  uint64_t v;
  while (::read(wakeFd_, &v, sizeof v) > 0) {
  }
  if (filePool_) {
    for (auto& [r, res] : filePool_->drain()) onFileDone(r, res);
  }
  for (ResolveResult& r : resolver_->drain()) {
    Op* op = ops_.find(r.id);
    if (!op) continue;  // cancelled or timed out meanwhile
    Completion c;
    if (r.gaiError) {
      c.result = kErrResolve;
      c.syscall = Syscall::kGetaddrinfo;
      c.fd = r.gaiError;
      c.handle = static_cast<uint64_t>(r.sysErrno);
      finish(op, std::move(c));
      continue;
    }
    c.kind = PayloadKind::kAddrs;
    for (size_t i = 0; i < r.addresses.size(); i++) {
      c.list.push_back(r.addresses[i]);
      c.list.push_back(r.families[i] == 6 ? "6" : "4");
    }
    c.result = static_cast<int64_t>(r.addresses.size());
    op->addrs = std::move(r.sockaddrs);
    op->addrLens = std::move(r.sockaddrLens);
    if (op->addrs.empty() && op->next) {
      fail(op, kErrResolve);
      continue;
    }
    finish(op, std::move(c));
  }
}

// ---- time ----

int64_t EngineCore::nextDeadline() const {
  int64_t d = heap_.empty() ? 0 : heap_.front()->deadline;
  if (backoffAt_ && (d == 0 || backoffAt_ < d)) d = backoffAt_;
  return d;
}

int64_t EngineCore::msToNextDeadline() const {
  int64_t next = nextDeadline();
  if (next == 0) return -1;
  int64_t d = next - nowNs();
  if (d <= 0) return 0;
  return (d + 999999) / 1000000;
}

void EngineCore::expireTimers() {
  if (heap_.empty() && backoffAt_ == 0) return;
  int64_t now = nowNs();
  if (backoffAt_ && backoffAt_ <= now) retryAccepts();
  while (!heap_.empty() && heap_.front()->deadline <= now) {
    Op* op = heap_.front();
    if (op->kind == OpKind::kSleep) {
      Completion c;
      finish(op, std::move(c));
      continue;
    }
    if (fileRequestRunning(op)) {
      heapRemove(op);  // its running file request decides how it ends
      op->deadline = 0;
      continue;
    }
    Handle* h = op->h;
    bool wasHeadRead = h && isRead(op->kind) && !h->reads.empty() && h->reads.front() == op;
    bool wasHeadWrite = h && op->kind == OpKind::kWrite && !h->writes.empty() && h->writes.front() == op;
    fail(op, kErrTimedOut);
    resumeAfter(h, wasHeadRead, wasHeadWrite);
  }
}

int EngineCore::poll(int timeoutMs) {
  flushWrites();
  int64_t toDeadline = msToNextDeadline();
  int wait = timeoutMs;
  if (toDeadline >= 0 && (wait < 0 || toDeadline < wait)) wait = static_cast<int>(std::min<int64_t>(toDeadline, INT_MAX));
  if (!ready_.empty()) wait = 0;
  int rc = backend_->wait(wait);
  expireTimers();
  return rc;
}

Stats EngineCore::stats() const {
  Stats s = stats_;
  s.coreSyscalls += backend_ ? backend_->syscalls() : 0;
  return s;
}

void EngineCore::shutdown() {
  shuttingDown_ = true;
  // Stages of a chain are failed by their running stage; collect the running ones first.
  std::vector<int64_t> ids;
  ids.reserve(ops_.size());
  ops_.forEach([&ids](int64_t id, Op* op) {
    if (!op->chained || op->started) ids.push_back(id);
  });
  std::sort(ids.begin(), ids.end());
  for (int64_t id : ids) cancel(id);
  std::vector<uint64_t> hs;
  handles_.forEach([&hs](int64_t id, Handle*) { hs.push_back(static_cast<uint64_t>(id)); });
  for (uint64_t id : hs) close(id);
  // File requests already running write into request memory that release() frees: wait for
  // them (a few ms from the page cache; bounded at 10 s).
  for (int round = 0; fileReqsInFlight_ > 0 && round < 1000; round++) backend_->wait(10);
}

}  // namespace async_engine
