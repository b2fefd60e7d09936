// The engine core (see engine_core.h): the life cycle of handles and ops, chains, cancel,
// deadlines, cross-thread results, poll and shutdown. Streams (receive, frame, settle reads;
// cork and gather writes) are in streams.cc, listen/accept/connect in net.cc, files in files.cc.
// Single-threaded: every function runs on the engine's thread.
#include "core/engine_core.h"

#include "core/file_pool.h"

#include <fcntl.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstddef>
#include <cstring>


namespace async_engine {

namespace {
constexpr size_t kScratchSize = 64 * 1024;

// The bit of OpInfo::on that stands for a handle of this kind.
uint8_t onBit(HandleKind k) {
  return k == HandleKind::kFile ? kOnFile : k == HandleKind::kListener ? kOnListener : kOnSocket;
}

}  // namespace

const EngineCore::OpRoute EngineCore::kRoutes[kOpCount] = {
#define OP(Name, js, family, on, flags, start, frame, atEnd, fileRead, file, a, b, result) \
  {&EngineCore::start, &EngineCore::frame, &EngineCore::file},
#include "core/ops.def"
#undef OP
};

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

int EngineCore::init(std::unique_ptr<Backend> backend, const char** syscall) {
  backend_ = std::move(backend);
  wakeFd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wakeFd_ < 0) {
    *syscall = "eventfd";
    return -errno;
  }
  int rc = backend_->watchWake(wakeFd_);
  if (rc < 0) {
    *syscall = "watchWake";  // the backend's interface does not say which of its calls failed
    return rc;
  }
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
  h->idleTimer.h = h;
  h->writeTimer.h = h;
  h->writeTimer.isWrite = true;
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

void EngineCore::close(uint64_t id) {
  Handle* h = handle(id);
  if (!h) return;
  if (h->candidateOf) dropCandidate(h);
  if (h->lingering) {
    h->lingering = false;
    lingering_--;
  }
  if (h->tls) tlsCloseNotify(h);
  h->closed = true;
  socketTimers_.remove(&h->idleTimer);
  socketTimers_.remove(&h->writeTimer);
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
  if (h->kind == HandleKind::kListener) {
    // acceptWhen's connections, judged or waiting for the next acceptWhen, are nobody's now.
    std::vector<Handle*> candidates;
    candidates.swap(h->candidates);
    for (Handle* c : candidates) {
      c->candidateOf = nullptr;
      close(c->id);
    }
    auto passed = std::move(h->passed);
    h->passed.clear();
    for (auto& p : passed) close(p.first);
  }
  if (h->kind == HandleKind::kListener) unlinkUnixPath(h->fd);
  handles_.erase(static_cast<int64_t>(h->id));
  if (h->kind == HandleKind::kListener) {
    // With no listener left, no server context is kept: each goes with its last socket.
    if (--listeners_ == 0) tlsContexts_.dropServers();
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
  if (op->timeoutMs <= 0 && !hasFlag(op->kind, kSettlesAtDeadline)) return;
  // Deadlines past ~146 years saturate rather than overflow.
  constexpr double kMaxMs = 4.0e12;
  double ms = op->timeoutMs < kMaxMs ? op->timeoutMs : kMaxMs;
  op->deadline = nowNs() + static_cast<int64_t>(ms * 1e6);
  op->timerSeq = ++timerSeq_;
  heap_.push(op);
}

void EngineCore::start(Op* op) {
  op->started = true;
  armTimer(op);
  (this->*route(op->kind).start)(op);
}

// callLater: the deadline is the op itself; expiry is its success.
void EngineCore::startTimer(Op* op) {}

void EngineCore::startSoon(Op* op) {
  Completion c;
  finish(op, std::move(c));
}

void EngineCore::startResolve(Op* op) { resolver_->submit(op->id, op->host, op->service); }

// stat by path needs no handle; a File's own stat runs on it.
void EngineCore::startStat(Op* op) {
  if (!op->h) {
    startFileOp(op);
    return;
  }
  startOnHandle(op);
}

// An op on an open handle joins the handle's queue of its family; on a File, what is not a
// sequential read runs as a file request of its own.
void EngineCore::startOnHandle(Op* op) {
  Handle* h = op->h;
  if (!h || h->closed) {
    fail(op, kErrBadHandle);
    return;
  }
  const OpInfo& info = opInfo(op->kind);
  if (!(info.on & onBit(h->kind))) {
    // A stream op on a listener is ENOTSOCK, as send(2) says; any other mismatch (a file op on
    // a socket, an accept on a socket or a File) is EINVAL.
    fail(op, (info.on & kOnSocket) && h->kind == HandleKind::kListener ? -ENOTSOCK : -EINVAL);
    return;
  }
  if (h->kind == HandleKind::kFile) {
    if (info.family != OpFamily::kRead || op->position >= 0) {
      startFileOp(op);
      return;
    }
    h->reads.push_back(op);  // sequential reads frame the file like a socket's stream
    if (h->reads.size() == 1) pumpReads(h);
    return;
  }
  if (info.family == OpFamily::kAccept) {
    h->accepts.push_back(op);
    pumpAccepts(h);
    return;
  }
  if (info.family == OpFamily::kWrite) {
    h->writes.push_back(op);
    h->pendingOut += op->data.size();
    if (h->writes.size() > 1) return;
    armSocketTimer(&h->writeTimer);
    // Corked until the end of the batch: the writes a batch of callbacks makes on one socket
    // go out in one gathered send (see flushWrites).
    if (!h->writeQueued) {
      h->writeQueued = true;
      dirtyWrites_.push_back(h->id);
    }
    return;
  }
  h->reads.push_back(op);
  if (h->reads.size() == 1) {
    armSocketTimer(&h->idleTimer);
    pumpReads(h);
  }
}

// Removes a live op from wherever it waits. The op stays allocated.
void EngineCore::unlink(Op* op) {
  ops_.erase(op->id);
  heap_.remove(op);
  op->deadline = 0;
  if (op->freq) fileOpLeft(op);
  Handle* h = op->h;
  if (!h || !op->started) return;
  auto drop = [op](SmallQueue<Op*>& q) {
    auto it = std::find(q.begin(), q.end(), op);
    if (it == q.end()) return false;
    q.erase(it);
    return true;
  };
  if (h->kind == HandleKind::kFile && (op->position >= 0 || !isRead(op->kind))) {
    drop(h->fileOps);  // a positioned read, a write, fsync or stat: not in the stream's queues
    return;
  }
  if (isAccept(op->kind)) {
    drop(h->accepts);
    if (h->accepts.empty() && h->acceptPending && !h->closed) backend_->unwant(h, Primitive::kAccept);
  } else if (isWrite(op->kind)) {
    if (drop(h->writes)) h->pendingOut -= op->data.size() - op->written;
    if (h->writes.empty()) socketTimers_.remove(&h->writeTimer);
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
    if (h->reads.empty()) socketTimers_.remove(&h->idleTimer);
  } else if (h->connecting == op) {
    // Cancelled or timed out mid-connect: the half-open socket is nobody's.
    h->connecting = nullptr;
    op->h = nullptr;
    close(h->id);
  }
}

void EngineCore::finish(Op* op, Completion&& c) {
  if (op->id < 0) {
    replyDone(op, c);  // a core-owned write: no completion
    return;
  }
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
      const Completion& done = ready_.back();
      bool made = done.kind == PayloadKind::kSocket || done.kind == PayloadKind::kFile;
      if (!next->h) next->h = made ? handle(done.handle) : op->h;
      if (opInfo(next->kind).family == OpFamily::kConnect && opInfo(op->kind).family == OpFamily::kResolve) {
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
  if (isWrite(op->kind) && op->kind != OpKind::kShutdown) {
    c.kind = PayloadKind::kWritten;  // how much of a failed write the kernel took
    c.written = op->written;
  }
  finish(op, std::move(c));
}

bool EngineCore::cancel(int64_t id) {
  Op* op = ops_.find(id);
  if (!op) return false;
  // A file request in the kernel or on a pool thread cannot be taken back: the cancel loses
  // and the result is delivered. One still queued for the pool is taken out.
  if (fileRequestRunning(op) || shutdownRunning(op)) return false;
  // A chain is cancelled from its running stage on: find the stage that has started.
  Op* target = op;
  while (target->prev) target = target->prev;
  // Every unfinished stage fails with ECANCELED, in stage order.
  Op* rest = target->next;
  target->next = nullptr;
  Handle* h = target->h;
  bool wasHeadRead = h && isRead(target->kind) && !h->reads.empty() && h->reads.front() == target;
  bool wasHeadWrite = h && isWrite(target->kind) && !h->writes.empty() && h->writes.front() == target;
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
      c.kind = PayloadKind::kResolveError;
      c.syscall = Syscall::kGetaddrinfo;
      c.gaiError = r.gaiError;
      c.gaiErrno = r.sysErrno;
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
      // Nothing for the connect stage to try. Reported, as it has always been, with -1 as the
      // EAI_* value (JavaScript's code: EAI_1).
      Completion none;
      none.result = kErrResolve;
      none.kind = PayloadKind::kResolveError;
      none.gaiError = -1;
      finish(op, std::move(none));
      continue;
    }
    finish(op, std::move(c));
  }
}

// ---- time ----

int64_t EngineCore::nextDeadline() const {
  int64_t d = heap_.empty() ? 0 : heap_.top()->deadline;
  if (!socketTimers_.empty() && (d == 0 || socketTimers_.top()->deadline < d)) d = socketTimers_.top()->deadline;
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
  if (heap_.empty() && backoffAt_ == 0 && socketTimers_.empty()) return;
  int64_t now = nowNs();
  if (backoffAt_ && backoffAt_ <= now) retryAccepts();
  while (!heap_.empty() && heap_.top()->deadline <= now) {
    Op* op = heap_.top();
    if (hasFlag(op->kind, kSettlesAtDeadline)) {
      Completion c;
      finish(op, std::move(c));
      continue;
    }
    if (fileRequestRunning(op) || shutdownRunning(op)) {
      heap_.remove(op);  // its running file request (or shutdown) decides how it ends
      op->deadline = 0;
      continue;
    }
    Handle* h = op->h;
    bool wasHeadRead = h && isRead(op->kind) && !h->reads.empty() && h->reads.front() == op;
    bool wasHeadWrite = h && isWrite(op->kind) && !h->writes.empty() && h->writes.front() == op;
    fail(op, kErrTimedOut);
    resumeAfter(h, wasHeadRead, wasHeadWrite);
  }
  bool polled = false;
  while (!socketTimers_.empty() && socketTimers_.top()->deadline <= now) {
    SocketTimer* t = socketTimers_.top();
    if (!polled && t->since + t->periodNs <= now) {
      // About to fail ops for want of progress: first take the reports the backend already
      // holds, once. A JavaScript thread that was busy past the deadline has not looked for
      // them, and bytes the kernel moved meanwhile are progress. The reports may move or
      // disarm any timer, so the heap is read again.
      polled = true;
      backend_->wait(0);
      now = nowNs();
      continue;
    }
    socketTimers_.remove(t);
    socketTimerDue(t, now);
  }
}

// ---- a socket's idle and write timeouts ----

void EngineCore::setTimeouts(Handle* h, double idleMs, double writeMs) {
  auto set = [this](SocketTimer* t, double ms, bool waiting) {
    constexpr double kMaxMs = 4.0e12;  // saturates, as an op's deadline does
    socketTimers_.remove(t);
    t->periodNs = ms > 0 ? static_cast<int64_t>((ms < kMaxMs ? ms : kMaxMs) * 1e6) : 0;
    if (waiting) armSocketTimer(t);
  };
  if (h->kind != HandleKind::kSocket || h->closed) return;
  set(&h->idleTimer, idleMs, !h->reads.empty());
  set(&h->writeTimer, writeMs, !h->writes.empty());
}

// A wait begins (the first read or write queued on the socket): its timer, if set, runs from now.
void EngineCore::armSocketTimer(SocketTimer* t) {
  if (t->periodNs <= 0 || DeadlineHeap<SocketTimer>::contains(t)) return;
  t->since = nowNs();
  t->deadline = t->since + t->periodNs;
  t->timerSeq = ++timerSeq_;
  socketTimers_.push(t);
}

// Bytes moved on `h` (received, or taken by the kernel from its writes when `wrote`): its armed
// timers count from now. Only the time is noted; a timer that comes due later sees it.
void EngineCore::progressed(Handle* h, bool wrote) {
  // An acceptWhen candidate's timeout counts from its accept, a linger's from the refusal.
  if (h->candidateOf || h->lingering) return;
  if (h->idleTimer.periodNs == 0 && (!wrote || h->writeTimer.periodNs == 0)) return;
  int64_t now = nowNs();
  h->idleTimer.since = now;
  if (wrote) h->writeTimer.since = now;
}

// A socket timer came due (already out of the heap). After progress it is re-armed from the
// last progress. Otherwise, idle: every queued read fails with ETIMEDOUT (syscall read), and
// the socket stays usable. Write: the queued writes fail with ETIMEDOUT (syscall write, with
// the bytes each had out): one of them may be cut mid-message, so the socket's writes stay
// failed (a sticky write error, as after EPIPE).
void EngineCore::socketTimerDue(SocketTimer* t, int64_t now) {
  Handle* h = t->h;
  if (h->candidateOf) {
    candidateEvent(h, true);  // an acceptWhen candidate with no first line in time
    return;
  }
  if (h->lingering) {
    lingerEvent(h, true);  // a refused connection's linger is over (net.cc)
    return;
  }
  if (t->since + t->periodNs > now) {
    t->deadline = t->since + t->periodNs;
    t->timerSeq = ++timerSeq_;
    socketTimers_.push(t);
    return;
  }
  if (!t->isWrite) {
    while (!h->reads.empty()) fail(h->reads.front(), kErrTimedOut, Syscall::kRead);
    resumeAfter(h, true, false);  // no read is left: a pending receive is not wanted
    return;
  }
  h->writeError = kErrTimedOut;
  while (!h->writes.empty()) fail(h->writes.front(), kErrTimedOut, Syscall::kWrite);
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
