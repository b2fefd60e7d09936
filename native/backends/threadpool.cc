// The threadpool backend (see threadpool.h): worker threads wait in epoll_wait on the sockets of
// their primitives, run each system call once it can proceed, and hand results back in batches.
#include "backends/threadpool.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/backend.h"

namespace async_engine {

namespace {

// Scheduling: how many more blocked primitives than threads still make progress.
//
// A send or accept that can proceed at once is made on the engine thread (MSG_DONTWAIT, like a
// file request's preadv2(RWF_NOWAIT)): no hand-over, no wake-up of another thread. Only one that
// would block, every receive and every connect become jobs for a worker. Each worker thread has
// an epoll set of its own and waits in epoll_wait on it. A primitive given to a worker is tried
// once at once (data may already be there); when it would block, its fd is
// registered in the worker's set (level-triggered, for input or output) and the worker runs the
// system call when the fd is ready, then drops the registration and publishes the result. So a
// worker holds any number of waiting primitives at a cost that does not grow with their number
// (10,000 idle connections on 4 threads wait 2,500 to a thread), and the one whose data arrives
// completes at once. No thread ever sits in a call it cannot leave: its wake-up eventfd is in
// the same set.
//
// Every socket has a home worker, chosen when its first primitive starts (the least loaded
// worker; a new thread instead while every running one holds something and fewer than
// `threads` exist) and kept for the socket's life. All primitives of one socket therefore run,
// and are published, in the order of their system calls by one thread: a send whose bytes the
// kernel took is reported no later than a receive of the peer's answer to them.
//
// Cancellation: a primitive not yet finished is flagged, queued on its worker's cancel list and
// the worker woken; it drops the registration and reports kRetry, or the real result when the
// system call already ran (an accepted fd, received bytes: the core keeps them). A worker only
// touches the fd of a primitive it holds, and the core closes that fd only after the primitive's
// report, so a closed and reused fd number is never touched.
constexpr int kMaxThreads = 1024;
constexpr int kMaxSendIov = 8;     // more iovecs make a partial send, which the core resubmits
constexpr size_t kInlineSend = 64;  // sends this small are copied into the job
constexpr size_t kRecvScratch = 64 * 1024;  // a worker's receive buffer, one per thread
constexpr int kMaxEvents = 256;     // events taken by one epoll_wait of a worker

enum JobKind : uint8_t { kRecvJob, kSendJob, kAcceptJob, kConnectJob, kJobKinds };

enum class JobState : uint8_t {
  kHeld,  // given to a worker, which waits for its fd or runs its system call
  kDone,  // result published, waiting for the engine thread to report it
};

struct Worker;

// One primitive in flight. Created and deleted on the engine thread; while kHeld, the holding
// worker is the only thread that runs system calls for it.
struct Job {
  // Set on the engine thread at submission, read-only afterwards.
  BackendHandle* h = nullptr;  // dereferenced on the engine thread only
  int fd = -1;
  JobKind kind = kRecvJob;
  // recv: the bytes received, in memory of their own (malloc, exactly the size received),
  // given to the core with onRecv; freed with the job.
  char* buf = nullptr;
  iovec iov[kMaxSendIov];  // send: the core's bytes (valid until onSend), or inlineBytes
  int iovcnt = 0;
  char inlineBytes[kInlineSend];
  sockaddr_storage addr;  // connect: our own copy of the address
  socklen_t addrLen = 0;
  Worker* owner = nullptr;  // the handle's home worker

  // Guarded by ThreadPoolBackend::mu_.
  JobState state = JobState::kHeld;
  size_t heldIndex = 0;  // position in owner->held

  // Set (under mu_) by the engine thread: nobody wants the result any more.
  std::atomic<bool> cancelled{false};

  // The holding worker's own state.
  bool watched = false;         // registered in the worker's epoll set
  bool finishing = false;       // result set, to be published at the worker's next look
  bool connectStarted = false;  // connect(2) was called; now waiting for EPOLLOUT

  // Written by the holder before it publishes the job, read by the engine thread after.
  ssize_t result = kRetry;

  // Engine thread only: the handle was detached, its slots are gone.
  bool detached = false;

  ~Job() { std::free(buf); }
};

// Per-handle state (BackendHandle::backendData), engine thread only: the job of each kind in flight,
// and the worker that runs them all.
struct HandleJobs {
  Job* slot[kJobKinds] = {};
  Worker* home = nullptr;
};

class ThreadPoolBackend;

// What a worker waits for on one fd: at most one input primitive (recv, accept) and one output
// primitive (send, connect), the fd registered once for both. Worker thread only.
struct Watch {
  Job* in = nullptr;
  Job* out = nullptr;
  uint32_t events = 0;  // as registered in the worker's epoll set; 0: not registered
};

struct Worker {
  ThreadPoolBackend* pool = nullptr;
  pthread_t thread{};
  int wakeFd = -1;            // written by other threads to interrupt this worker's wait
  int epfd = -1;              // this worker's epoll set: wakeFd and the fds of waiting jobs
  std::vector<Job*> held;     // guarded by mu_: every job given to this worker, not yet published
  std::vector<Job*> incoming; // guarded by mu_: given, not yet taken up by the worker
  std::vector<Job*> cancels;  // guarded by mu_: held jobs flagged cancelled since the last look
  size_t handles = 0;         // engine thread: handles whose home this is
  bool notified = false;      // guarded by mu_: wakeFd written and not yet seen
};

void writeEventfd(int fd) {
  uint64_t one = 1;
  while (::write(fd, &one, sizeof one) < 0 && errno == EINTR) {
  }
}

void drainEventfd(int fd) {
  uint64_t v;
  while (::read(fd, &v, sizeof v) < 0 && errno == EINTR) {
  }
}

// In a worker's epoll set: its wake-up fd, or (fd + 1) of a job's fd.
constexpr uint64_t kWakeTag = 0;

// Worker thread: j's result is set; it is published, in this order, at the worker's next look.
void finish(std::vector<Job*>* finished, Job* j) {
  j->finishing = true;
  finished->push_back(j);
}

constexpr uint32_t kTagWake = 1;  // epoll data of the core's wake fd
constexpr uint32_t kTagDone = 2;  // epoll data of the completion eventfd

class ThreadPoolBackend final : public Backend {
 public:
  ThreadPoolBackend(Sink* sink, int threads) : sink_(sink), maxThreads_(threadPoolSize(threads)) {}

  // Engine thread (EngineCore::release): wakes and joins every worker, then frees what is left.
  ~ThreadPoolBackend() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
      for (auto& w : workers_) writeEventfd(w->wakeFd);
    }
    for (auto& w : workers_) pthread_join(w->thread, nullptr);
    // No thread runs now; reports still owed are dropped (the core closes the handles' fds
    // itself). A connection accepted for a report that will never be made is closed here.
    for (auto& w : workers_) {
      for (Job* j : w->held) {
        if (j->kind == kAcceptJob && j->result >= 0) ::close(static_cast<int>(j->result));
        delete j;
      }
      ::close(w->wakeFd);
      ::close(w->epfd);
    }
    workers_.clear();
    for (Job* j : done_) {
      if (j->kind == kAcceptJob && j->result >= 0) ::close(static_cast<int>(j->result));
      delete j;
    }
    done_.clear();
    if (doneFd_ >= 0) ::close(doneFd_);
    if (epfd_ >= 0) ::close(epfd_);
  }

  // Engine thread. The first worker starts at once, so that a pool that cannot start a thread at
  // all fails here rather than at its first primitive; the others start when there is work.
  int init(const char** syscall) {
    *syscall = "epoll_create1";
    epfd_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (epfd_ < 0) return -errno;
    *syscall = "eventfd";
    doneFd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (doneFd_ < 0) return -errno;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u32 = kTagDone;
    count();
    *syscall = "epoll_ctl";
    if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, doneFd_, &ev) < 0) return -errno;
    std::lock_guard<std::mutex> lock(mu_);
    int err = 0;
    if (!spawnLocked(&err, syscall)) return err;
    return 0;
  }

  const char* name() const override { return "threadpool"; }
  bool completesInline() const override { return false; }
  int pollFd() const override { return epfd_; }
  uint64_t syscalls() const override { return syscalls_.load(std::memory_order_relaxed); }

  int watchWake(int fd) override {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u32 = kTagWake;
    count();
    return ::epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
  }

  int attach(BackendHandle* h) override {
    h->backendData = new HandleJobs();
    return 0;
  }

  // Engine thread. Jobs of `h` not yet published are cancelled and, like those already done,
  // still reported: the core keeps the fd open until the last of them.
  int detach(BackendHandle* h) override {
    auto* hj = static_cast<HandleJobs*>(h->backendData);
    if (!hj) return 0;
    int owed = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (Job*& j : hj->slot) {
        if (!j) continue;
        j->detached = true;
        if (j->state == JobState::kHeld) cancelLocked(j);
        owed++;
        j = nullptr;
      }
    }
    if (hj->home) hj->home->handles--;
    delete hj;
    h->backendData = nullptr;
    return owed;
  }

  // Engine thread. The worker receives into a buffer of its own thread and copies what came
  // into memory of the job's own, so that a waiting receive holds no memory: 10,000 idle
  // connections cost no receive area each. (A receive is not tried here first: data that is
  // already there would complete the read before a cancel made in the same turn could win, and
  // a reply is never on its way yet when the read that waits for it starts.) So the result
  // always comes through onRecv, with the job's memory as its data.
  ssize_t recv(BackendHandle* h, const char** data) override {
    Job* j = newJob(h, kRecvJob);
    return submit(h, j);
  }

  // Engine thread. The core keeps the spans alive until onSend, also those of a write that
  // leaves early, so a worker reads them where they are; a send of at most kInlineSend bytes is
  // copied into the job all the same, so that the worker reads one span of the job's own memory.
  int maxSendIov() const override { return kMaxSendIov; }

  // A send that can proceed at once is made here, as a file request's preadv2(RWF_NOWAIT) is: no
  // hand-over to a worker and back, and the reply it carries leaves at once. Only one that would
  // block becomes a worker's job.
  ssize_t send(BackendHandle* h, const iovec* iov, int iovcnt) override {
    auto* hj = static_cast<HandleJobs*>(h->backendData);
    if (!hj) return -EBADF;
    int n = std::min(iovcnt, kMaxSendIov);
    if (!hj->slot[kSendJob]) {
      msghdr msg{};
      msg.msg_iov = const_cast<iovec*>(iov);
      msg.msg_iovlen = static_cast<size_t>(n);
      ssize_t r = inlineCall([&] { return ::sendmsg(h->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT); });
      if (r != kPending) return r;
    }
    Job* j = newJob(h, kSendJob);
    size_t total = 0;
    for (int i = 0; i < n; i++) total += iov[i].iov_len;
    if (total <= kInlineSend) {
      size_t at = 0;
      for (int i = 0; i < n; i++) {
        std::memcpy(j->inlineBytes + at, iov[i].iov_base, iov[i].iov_len);
        at += iov[i].iov_len;
      }
      j->iov[0] = iovec{j->inlineBytes, total};
      j->iovcnt = 1;
    } else {
      std::copy(iov, iov + n, j->iov);
      j->iovcnt = n;
    }
    return submit(h, j);
  }

  ssize_t accept(BackendHandle* l) override {
    auto* hj = static_cast<HandleJobs*>(l->backendData);
    if (hj && !hj->slot[kAcceptJob]) {
      ssize_t r = inlineCall([&] {
        ssize_t fd = ::accept4(l->fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0 && errno == ECONNABORTED) errno = EINTR;  // that one is gone: take the next
        return fd;
      });
      if (r != kPending) return r;
    }
    return submit(l, newJob(l, kAcceptJob));
  }

  // Engine thread. The address is copied: the caller's memory may go away before a worker runs.
  ssize_t connect(BackendHandle* h, const sockaddr* addr, socklen_t len) override {
    if (len > sizeof(sockaddr_storage)) return -EINVAL;
    Job* j = newJob(h, kConnectJob);
    std::memcpy(&j->addr, addr, len);
    j->addrLen = len;
    return submit(h, j);
  }

  // Engine thread: the op that waited for this primitive left; the worker is woken to give it
  // up (the report follows).
  void unwant(BackendHandle* h, Primitive p) override {
    auto* hj = static_cast<HandleJobs*>(h->backendData);
    if (!hj) return;
    Job* j = hj->slot[p == Primitive::kRecv ? kRecvJob : kAcceptJob];
    if (!j) return;
    std::lock_guard<std::mutex> lock(mu_);
    if (j->state == JobState::kHeld) cancelLocked(j);
  }

  // Engine thread: every Sink call happens here.
  int wait(int timeoutMs) override {
    epoll_event evs[2];
    count();
    int n = ::epoll_wait(epfd_, evs, 2, timeoutMs);
    if (n < 0) return errno == EINTR ? 0 : -errno;
    int handled = 0;
    for (int i = 0; i < n; i++) {
      if (evs[i].data.u32 == kTagWake) {
        sink_->onWake();
        handled++;
      } else {
        handled += reportDone();
      }
    }
    return handled;
  }

  void gauges(std::vector<std::pair<const char*, double>>* out) const override {
    std::lock_guard<std::mutex> lock(mu_);
    size_t busy = 0;
    size_t queued = 0;
    for (auto& w : workers_) {
      busy += w->held.empty() ? 0 : 1;
      queued += w->incoming.size();
    }
    out->emplace_back("queueDepth", static_cast<double>(queued));
    out->emplace_back("busyWorkers", static_cast<double>(busy));
  }

  // Runs on a worker thread (see the scheduling note at the top of the file).
  void workerMain(Worker* w);

 private:
  // One system call counted for stats().syscalls (any thread).
  void count() { syscalls_.fetch_add(1, std::memory_order_relaxed); }

  // Engine thread: a non-blocking system call made here. Its result, or kPending when it would
  // block (EINTR retries).
  template <typename Call>
  ssize_t inlineCall(Call call) {
    for (;;) {
      count();
      ssize_t r = call();
      if (r >= 0) return r;
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return kPending;
      return -errno;
    }
  }

  Job* newJob(BackendHandle* h, JobKind kind) {
    Job* j = new Job();
    j->h = h;
    j->fd = h->fd;
    j->kind = kind;
    return j;
  }

  // Engine thread: records the job in its handle's slot and gives it to the handle's home worker
  // (chosen now if the handle has none yet).
  ssize_t submit(BackendHandle* h, Job* j) {
    auto* hj = static_cast<HandleJobs*>(h->backendData);
    if (!hj || hj->slot[j->kind]) {
      delete j;
      return hj ? -EBUSY : -EBADF;
    }
    std::lock_guard<std::mutex> lock(mu_);
    if (!hj->home) {
      Worker* best = nullptr;
      for (auto& w : workers_) {
        if (!best || w->held.size() < best->held.size() ||
            (w->held.size() == best->held.size() && w->handles < best->handles)) {
          best = w.get();
        }
      }
      if ((!best || !best->held.empty()) && static_cast<int>(workers_.size()) < maxThreads_) {
        int err = 0;
        if (Worker* fresh = spawnLocked(&err)) best = fresh;
      }
      if (!best) {
        delete j;
        return -EAGAIN;
      }
      hj->home = best;
      best->handles++;
    }
    hj->slot[j->kind] = j;
    Worker* w = hj->home;
    j->owner = w;
    j->heldIndex = w->held.size();
    w->held.push_back(j);
    w->incoming.push_back(j);
    wakeLocked(w);
    return kPending;
  }

  // Under mu_, j held: flags it and asks its worker to give it up.
  void cancelLocked(Job* j) {
    if (j->cancelled.load(std::memory_order_relaxed)) return;
    j->cancelled.store(true, std::memory_order_relaxed);
    j->owner->cancels.push_back(j);
    wakeLocked(j->owner);
  }

  // Engine thread, under mu_. Starts a worker with every signal blocked (signals go to the
  // threads that handle them; a worker's wait is never interrupted by one).
  // *syscall (when given): the call that failed.
  Worker* spawnLocked(int* err, const char** syscall = nullptr) {
    const char* unused = nullptr;
    if (!syscall) syscall = &unused;
    auto w = std::make_unique<Worker>();
    w->pool = this;
    w->wakeFd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->wakeFd < 0) {
      *err = -errno;
      *syscall = "eventfd";
      return nullptr;
    }
    w->epfd = ::epoll_create1(EPOLL_CLOEXEC);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = kWakeTag;
    if (w->epfd >= 0) count();
    if (w->epfd < 0 || ::epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->wakeFd, &ev) < 0) {
      *err = -errno;
      *syscall = w->epfd < 0 ? "epoll_create1" : "epoll_ctl";
      ::close(w->wakeFd);
      if (w->epfd >= 0) ::close(w->epfd);
      return nullptr;
    }
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(
        &w->thread, nullptr,
        [](void* arg) -> void* {
          auto* self = static_cast<Worker*>(arg);
          self->pool->workerMain(self);
          return nullptr;
        },
        w.get());
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    if (rc != 0) {
      ::close(w->wakeFd);
      ::close(w->epfd);
      *err = -rc;
      *syscall = "pthread_create";
      return nullptr;
    }
    pthread_setname_np(w->thread, "ae-threadpool");
    workers_.push_back(std::move(w));
    return workers_.back().get();
  }

  // Under mu_: the job leaves its worker's held list and joins the completion list. Returns true
  // when that list was empty: the caller writes doneFd_ once, which wakes the engine thread for
  // the whole batch.
  bool publishLocked(Job* j) {
    Worker* w = j->owner;
    Job* last = w->held.back();
    w->held[j->heldIndex] = last;
    last->heldIndex = j->heldIndex;
    w->held.pop_back();
    j->state = JobState::kDone;
    done_.push_back(j);
    return done_.size() == 1;
  }

  // Under mu_: interrupts w's wait (once until w has looked again).
  void wakeLocked(Worker* w) {
    if (w->notified) return;
    w->notified = true;
    writeEventfd(w->wakeFd);
  }

  // Worker thread: registers (or updates) j's fd in w's epoll set for j's direction. Returns
  // false, with j->result set, when the fd cannot be watched (j is then finished).
  bool watch(Worker* w, std::unordered_map<int, Watch>* watches, Job* j) {
    Watch& wt = (*watches)[j->fd];
    (isInput(j) ? wt.in : wt.out) = j;
    j->watched = true;
    int rc = rearm(w, watches, j->fd, wt);
    if (rc == 0) return true;
    unwatch(w, watches, j);
    j->result = rc;
    return false;
  }

  // Worker thread: j no longer waits; its fd's registration shrinks or goes.
  void unwatch(Worker* w, std::unordered_map<int, Watch>* watches, Job* j) {
    j->watched = false;
    auto it = watches->find(j->fd);
    if (it == watches->end()) return;
    Watch& wt = it->second;
    (isInput(j) ? wt.in : wt.out) = nullptr;
    rearm(w, watches, j->fd, wt);
  }

  // Worker thread: makes the epoll registration of fd match what waits on it. Returns 0, or
  // -errno when the registration could not be made (it is then as before).
  int rearm(Worker* w, std::unordered_map<int, Watch>* watches, int fd, Watch& wt) {
    uint32_t want = (wt.in ? EPOLLIN : 0u) | (wt.out ? EPOLLOUT : 0u);
    if (want == wt.events) {
      if (want == 0) watches->erase(fd);
      return 0;
    }
    epoll_event ev{};
    ev.events = want;
    ev.data.u64 = static_cast<uint64_t>(fd) + 1;
    int op = want == 0 ? EPOLL_CTL_DEL : wt.events == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
    count();
    if (::epoll_ctl(w->epfd, op, fd, &ev) < 0 && op != EPOLL_CTL_DEL) return -errno;
    if (want == 0) {
      watches->erase(fd);
    } else {
      wt.events = want;
    }
    return 0;
  }

  static bool isInput(const Job* j) { return j->kind == kRecvJob || j->kind == kAcceptJob; }

  // Worker thread: runs j's system call if it can proceed. Returns true when j is finished
  // (j->result set); false when it would block. `events`: what epoll said, 0 when the job is
  // tried without waiting.
  bool attempt(Job* j, uint32_t events) {
    if (j->kind == kConnectJob) return attemptConnect(j, events);
    for (;;) {
      ssize_t r = -1;
      count();
      switch (j->kind) {
        case kRecvJob: {
          thread_local std::vector<char> scratch(kRecvScratch);
          r = ::recv(j->fd, scratch.data(), scratch.size(), MSG_DONTWAIT);
          if (r > 0) {
            j->buf = static_cast<char*>(std::malloc(static_cast<size_t>(r)));
            if (!j->buf) {
              r = -1;
              errno = ENOMEM;  // the bytes are lost with the connection's stream: fail it
              break;
            }
            std::memcpy(j->buf, scratch.data(), static_cast<size_t>(r));
          }
          break;
        }
        case kSendJob: {
          msghdr msg{};
          msg.msg_iov = j->iov;
          msg.msg_iovlen = static_cast<size_t>(j->iovcnt);
          r = ::sendmsg(j->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
          break;
        }
        case kAcceptJob:
          r = ::accept4(j->fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
          break;
        default:
          break;
      }
      if (r >= 0) {
        j->result = r;
        return true;
      }
      int e = errno;
      if (e == EINTR || (j->kind == kAcceptJob && e == ECONNABORTED)) continue;
      if (e == EAGAIN || e == EWOULDBLOCK) return false;
      j->result = -e;
      return true;
    }
  }

  // Worker thread: connect(2) on the core's non-blocking socket; in progress, wait for EPOLLOUT
  // and read the outcome from SO_ERROR.
  bool attemptConnect(Job* j, uint32_t events) {
    if (!j->connectStarted) {
      j->connectStarted = true;
      count();
      if (::connect(j->fd, reinterpret_cast<const sockaddr*>(&j->addr), j->addrLen) == 0) {
        j->result = 0;
        return true;
      }
      int e = errno;
      if (e == EINPROGRESS || e == EINTR || e == EALREADY) return false;
      j->result = e == EISCONN ? 0 : -e;
      return true;
    }
    if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return false;
    int err = 0;
    socklen_t elen = sizeof err;
    count();
    if (::getsockopt(j->fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0) err = errno;
    j->result = err ? -err : 0;
    return true;
  }

  // Engine thread: reports every published job through the Sink. A report may submit, unwant or
  // detach anything (also jobs later in this batch, which detach then counts as still owed).
  int reportDone() {
    drainEventfd(doneFd_);  // before taking the list: a job published after this writes again
    {
      std::lock_guard<std::mutex> lock(mu_);
      reporting_.swap(done_);
    }
    int n = static_cast<int>(reporting_.size());
    for (Job* j : reporting_) {
      BackendHandle* h = j->h;
      JobKind kind = j->kind;
      ssize_t r = j->result;
      char* bytes = j->buf;
      j->buf = nullptr;
      if (!j->detached) static_cast<HandleJobs*>(h->backendData)->slot[kind] = nullptr;
      delete j;
      switch (kind) {
        case kRecvJob:
          sink_->onRecv(h, r, bytes);  // the core copies what it keeps before returning
          std::free(bytes);
          break;
        case kSendJob:
          sink_->onSend(h, r);
          break;
        case kAcceptJob:
          sink_->onAccept(h, r);
          break;
        default:
          sink_->onConnect(h, r);
          break;
      }
    }
    reporting_.clear();
    return n;
  }

  Sink* sink_;
  const int maxThreads_;
  int epfd_ = -1;    // the completion eventfd and the core's wake fd: pollFd()
  int doneFd_ = -1;  // written by a worker when done_ turns non-empty
  std::atomic<uint64_t> syscalls_{0};

  mutable std::mutex mu_;
  bool stop_ = false;                             // guarded by mu_
  std::vector<std::unique_ptr<Worker>> workers_;  // grown by the engine thread under mu_
  std::vector<Job*> done_;                        // guarded by mu_: published, not yet reported
  std::vector<Job*> reporting_;                   // engine thread: the batch being reported
};

void ThreadPoolBackend::workerMain(Worker* w) {
  std::vector<Job*> finished;  // results in the order of their system calls, published next
  std::vector<Job*> fresh;     // jobs given since the last look
  std::vector<Job*> giveUp;    // cancelled jobs still held
  std::unordered_map<int, Watch> watches;
  epoll_event evs[kMaxEvents];
  for (;;) {
    bool signal = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (Job* j : finished) signal |= publishLocked(j);
      finished.clear();
      if (stop_) return;
      w->notified = false;
      fresh.swap(w->incoming);
      // A cancelled job published above is the engine's now: only those still held are ours.
      for (Job* j : w->cancels) {
        if (j->state == JobState::kHeld) giveUp.push_back(j);
      }
      w->cancels.clear();
    }
    if (signal) writeEventfd(doneFd_);

    for (Job* j : fresh) {
      // Newly given: the system call may well succeed at once (data already there). One
      // cancelled before it was looked at is given up without it.
      if (j->cancelled.load(std::memory_order_relaxed)) {
        j->result = kRetry;
        finish(&finished, j);
      } else if (attempt(j, 0) || !watch(w, &watches, j)) {
        finish(&finished, j);
      }
    }
    // Cancelled jobs still waiting are given up without their system call.
    for (Job* j : giveUp) {
      if (j->finishing) continue;
      if (j->watched) unwatch(w, &watches, j);
      j->result = kRetry;
      finish(&finished, j);
    }
    giveUp.clear();
    fresh.clear();
    if (!finished.empty()) continue;  // publish before waiting

    count();
    int n = ::epoll_wait(w->epfd, evs, kMaxEvents, -1);
    if (n <= 0) continue;  // EINTR
    for (int i = 0; i < n; i++) {
      if (evs[i].data.u64 == kWakeTag) {
        drainEventfd(w->wakeFd);
        continue;
      }
      int fd = static_cast<int>(evs[i].data.u64 - 1);
      uint32_t events = evs[i].events;
      auto it = watches.find(fd);
      if (it == watches.end()) continue;
      Job* in = it->second.in;
      Job* out = it->second.out;
      // Output first: a send that goes out now is published before a receive made after it.
      if (out && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) &&
          !out->cancelled.load(std::memory_order_relaxed) && attempt(out, events)) {
        unwatch(w, &watches, out);
        finish(&finished, out);
      }
      if (in && (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) &&
          !in->cancelled.load(std::memory_order_relaxed) && attempt(in, events)) {
        unwatch(w, &watches, in);
        finish(&finished, in);
      }
    }
  }
}

}  // namespace

int threadPoolSize(int threads) {
  if (threads > 0) return std::min(threads, kMaxThreads);
  int cpus = 0;
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) cpus = CPU_COUNT(&set);
  if (cpus <= 0) cpus = static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN));
  return std::min(std::max(4, 2 * cpus), kMaxThreads);
}

std::unique_ptr<Backend> makeThreadPoolBackend(Sink* sink, int threads, int* error, const char** syscall) {
  auto b = std::make_unique<ThreadPoolBackend>(sink, threads);
  *error = b->init(syscall);
  if (*error < 0) return nullptr;
  return b;
}

}  // namespace async_engine
