// The threadpool backend (see threadpool.h): worker threads wait in poll(2) on the sockets of their
// primitives, run each system call once it can proceed, and hand results back in batches.
#include "backends/threadpool.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <mutex>
#include <utility>
#include <vector>

#include "core/engine_core.h"

namespace async_engine {

namespace {

// Scheduling: how more blocked primitives than threads still make progress.
//
// A worker does not own one primitive at a time but a small set of them (at most kMaxHeld), and
// waits in one poll(2) on all their fds plus its own wake-up eventfd. When an fd is ready it runs
// that primitive's system call (recv, sendmsg, accept4, connect/getsockopt), which then does not
// block, and publishes the result. So 64 reads parked on 4 threads wait 16 to a thread and the one
// whose data arrives completes at once, in whatever order data arrives: no time slicing, no extra
// latency, and no thread ever sits in a call it cannot leave (the wake-up fd interrupts the poll).
//
// New primitives go to the least loaded worker; a new worker thread is started instead while
// every running one holds something and fewer than `threads` exist. Only when every worker holds
// kMaxHeld primitives (the cap bounds the O(n) cost of each poll call) do new ones wait in the
// FIFO queue (stats().queueDepth). Then the workers take turns: every kQuantumNs each worker
// gives back (to the queue's tail) up to kRotateBatch of the primitives it has waited on longest
// without result, and takes as many from the queue's head, trying each once at once. Everything
// queued is therefore watched again within about queueDepth / (threads x kRotateBatch) quanta,
// and a burst of 10,000 primitives never creates more than `threads` threads.
//
// Cancellation: a primitive still in the queue is taken out and reported kRetry (unwant) or
// dropped (detach, which then does not count it). One held by a worker is flagged; the worker is
// woken through its eventfd and reports kRetry, or the real result when the system call already
// ran (an accepted fd, received bytes: the core keeps them). A worker only touches the fd of a
// primitive it holds, and the core closes that fd only after the primitive's report, so a closed
// and reused fd number is never touched.
constexpr size_t kMaxHeld = 1024;
constexpr int64_t kQuantumNs = 10'000'000;
constexpr size_t kRotateBatch = 32;
constexpr int kMaxThreads = 1024;
constexpr int kMaxSendIov = 8;     // more iovecs make a partial send, which the core resubmits
constexpr size_t kInlineSend = 64;  // sends this small are copied into the job

enum JobKind : uint8_t { kRecvJob, kSendJob, kAcceptJob, kConnectJob, kJobKinds };

enum class JobState : uint8_t {
  kQueued,  // in the pool's queue, held by nobody
  kHeld,    // held by one worker, which waits for its fd or runs its system call
  kDone,    // result published, waiting for the engine thread to report it
};

struct Worker;

// One primitive in flight. Created and deleted on the engine thread; while kHeld, the holding
// worker is the only thread that runs system calls for it.
struct Job {
  // Set on the engine thread at submission, read-only afterwards.
  Handle* h = nullptr;  // dereferenced on the engine thread only
  int fd = -1;
  JobKind kind = kRecvJob;
  char* buf = nullptr;  // recv: the core's receive area for h, valid until onRecv
  size_t len = 0;
  iovec iov[kMaxSendIov];  // send: the core's bytes (valid until onSend), or inlineBytes
  int iovcnt = 0;
  char inlineBytes[kInlineSend];
  sockaddr_storage addr;  // connect: our own copy of the address
  socklen_t addrLen = 0;

  // Guarded by ThreadPoolBackend::mu_.
  JobState state = JobState::kQueued;
  Worker* owner = nullptr;  // while kHeld
  size_t heldIndex = 0;     // position in owner->held
  Job* prev = nullptr;      // queue links, while kQueued
  Job* next = nullptr;

  // Set (under mu_) by the engine thread: nobody wants the result any more.
  std::atomic<bool> cancelled{false};

  // The holding worker's own state (handed over with the job under mu_).
  bool tried = false;           // tried once since this worker took it
  bool connectStarted = false;  // connect(2) was called; now waiting for POLLOUT
  int64_t since = 0;            // when it last found its fd not ready (for turn-taking)

  // Written by the holder before it publishes the job, read by the engine thread after.
  ssize_t result = kRetry;

  // Engine thread only: the handle was detached, its slots are gone.
  bool detached = false;
};

// Per-handle state (Handle::backendData), engine thread only: the job of each kind in flight.
struct HandleJobs {
  Job* slot[kJobKinds] = {};
};

// An intrusive FIFO of queued jobs, so that a cancelled one leaves it in O(1). Guarded by mu_.
struct JobQueue {
  Job* head = nullptr;
  Job* tail = nullptr;
  size_t size = 0;

  void push(Job* j) {
    j->prev = tail;
    j->next = nullptr;
    if (tail) {
      tail->next = j;
    } else {
      head = j;
    }
    tail = j;
    size++;
  }
  Job* pop() {
    Job* j = head;
    if (j) remove(j);
    return j;
  }
  void remove(Job* j) {
    if (j->prev) {
      j->prev->next = j->next;
    } else {
      head = j->next;
    }
    if (j->next) {
      j->next->prev = j->prev;
    } else {
      tail = j->prev;
    }
    j->prev = j->next = nullptr;
    size--;
  }
};

class ThreadPoolBackend;

struct Worker {
  ThreadPoolBackend* pool = nullptr;
  pthread_t thread{};
  int wakeFd = -1;           // written by other threads to interrupt this worker's poll
  std::vector<Job*> held;    // guarded by mu_
  bool notified = false;     // guarded by mu_: wakeFd written and not yet seen
  int64_t nextTurn = 0;      // worker only: when it next gives primitives back to the queue
};

int64_t monoNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
}

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
      for (Job* j : w->held) delete j;
      ::close(w->wakeFd);
    }
    workers_.clear();
    while (Job* j = queue_.pop()) delete j;
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
  int init() {
    epfd_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (epfd_ < 0) return -errno;
    doneFd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (doneFd_ < 0) return -errno;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u32 = kTagDone;
    if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, doneFd_, &ev) < 0) return -errno;
    std::lock_guard<std::mutex> lock(mu_);
    int err = 0;
    if (!spawnLocked(&err)) return err;
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
    return ::epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
  }

  int attach(Handle* h) override {
    h->backendData = new HandleJobs();
    return 0;
  }

  // Engine thread. Queued jobs of `h` are dropped (never reported); held ones are cancelled and,
  // like those already done, still reported: the core keeps the fd open until the last of them.
  int detach(Handle* h) override {
    auto* hj = static_cast<HandleJobs*>(h->backendData);
    if (!hj) return 0;
    int owed = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (Job*& j : hj->slot) {
        if (!j) continue;
        switch (j->state) {
          case JobState::kQueued:
            queue_.remove(j);
            delete j;
            break;
          case JobState::kHeld:
            j->cancelled.store(true, std::memory_order_relaxed);
            j->detached = true;
            wakeLocked(j->owner);
            owed++;
            break;
          case JobState::kDone:
            j->detached = true;
            owed++;
            break;
        }
        j = nullptr;
      }
    }
    delete hj;
    h->backendData = nullptr;
    return owed;
  }

  // Engine thread. The receive area stays the core's; the worker writes into it until onRecv.
  ssize_t recv(Handle* h) override {
    size_t len = 0;
    char* buf = sink_->recvSpace(h, &len);
    if (!buf || len == 0) return -ENOMEM;
    Job* j = newJob(h, kRecvJob);
    j->buf = buf;
    j->len = len;
    return submit(h, j);
  }

  // Engine thread. The core keeps the bytes alive until onSend; small ones are copied anyway, so
  // that no worker reads memory a cancelled write gave back (a short std::string keeps its bytes
  // inside the op, which the core frees when the op leaves).
  int maxSendIov() const override { return kMaxSendIov; }

  ssize_t send(Handle* h, const iovec* iov, int iovcnt) override {
    Job* j = newJob(h, kSendJob);
    size_t total = 0;
    int n = std::min(iovcnt, kMaxSendIov);
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

  ssize_t accept(Handle* l) override { return submit(l, newJob(l, kAcceptJob)); }

  // Engine thread. The address is copied: the caller's memory may go away before a worker runs.
  ssize_t connect(Handle* h, const sockaddr* addr, socklen_t len) override {
    if (len > sizeof(sockaddr_storage)) return -EINVAL;
    Job* j = newJob(h, kConnectJob);
    std::memcpy(&j->addr, addr, len);
    j->addrLen = len;
    return submit(h, j);
  }

  // Engine thread: the op that waited for this primitive left. A queued job is reported kRetry
  // (on the next wait); a held one's worker is woken to give it up.
  void unwant(Handle* h, Primitive p) override {
    auto* hj = static_cast<HandleJobs*>(h->backendData);
    if (!hj) return;
    Job* j = hj->slot[p == Primitive::kRecv ? kRecvJob : kAcceptJob];
    if (!j) return;
    bool signal = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (j->state == JobState::kQueued) {
        queue_.remove(j);
        j->result = kRetry;
        signal = pushDoneLocked(j);
      } else if (j->state == JobState::kHeld && !j->cancelled.load(std::memory_order_relaxed)) {
        j->cancelled.store(true, std::memory_order_relaxed);
        wakeLocked(j->owner);
      }
    }
    if (signal) writeEventfd(doneFd_);
  }

  // Engine thread: every Sink call happens here.
  int wait(int timeoutMs) override {
    epoll_event evs[2];
    syscalls_.fetch_add(1, std::memory_order_relaxed);
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
    for (auto& w : workers_) busy += w->held.empty() ? 0 : 1;
    out->emplace_back("queueDepth", static_cast<double>(queue_.size));
    out->emplace_back("busyWorkers", static_cast<double>(busy));
  }

  // Runs on a worker thread (see the scheduling note at the top of the file).
  void workerMain(Worker* w);

 private:
  Job* newJob(Handle* h, JobKind kind) {
    Job* j = new Job();
    j->h = h;
    j->fd = h->fd;
    j->kind = kind;
    return j;
  }

  // Engine thread: records the job in its handle's slot and hands it to a worker or the queue.
  ssize_t submit(Handle* h, Job* j) {
    auto* hj = static_cast<HandleJobs*>(h->backendData);
    if (!hj || hj->slot[j->kind]) {
      delete j;
      return hj ? -EBUSY : -EBADF;
    }
    hj->slot[j->kind] = j;
    std::lock_guard<std::mutex> lock(mu_);
    // Accepts are never queued behind reads (a listener is one job, however many connections it
    // brings): the least loaded worker takes one even past kMaxHeld.
    if (j->kind == kAcceptJob && !workers_.empty()) {
      Worker* best = nullptr;
      for (auto& w : workers_) {
        if (!best || w->held.size() < best->held.size()) best = w.get();
      }
      holdLocked(best, j);
      wakeLocked(best);
      return kPending;
    }
    if (queue_.size == 0) {
      Worker* best = nullptr;
      for (auto& w : workers_) {
        if (!best || w->held.size() < best->held.size()) best = w.get();
      }
      if ((!best || !best->held.empty()) && static_cast<int>(workers_.size()) < maxThreads_) {
        int err = 0;
        if (Worker* fresh = spawnLocked(&err)) best = fresh;
      }
      if (best && best->held.size() < kMaxHeld) {
        holdLocked(best, j);
        wakeLocked(best);
        return kPending;
      }
    }
    queue_.push(j);
    // The queue was empty: workers waiting without a deadline must start taking turns.
    if (queue_.size == 1) {
      for (auto& w : workers_) wakeLocked(w.get());
    }
    return kPending;
  }

  // Engine thread, under mu_. Starts a worker with every signal blocked (signals go to the
  // threads that handle them; a worker's poll is never interrupted by one).
  Worker* spawnLocked(int* err) {
    auto w = std::make_unique<Worker>();
    w->pool = this;
    w->wakeFd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->wakeFd < 0) {
      *err = -errno;
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
      *err = -rc;
      return nullptr;
    }
    pthread_setname_np(w->thread, "ae-threadpool");
    workers_.push_back(std::move(w));
    return workers_.back().get();
  }

  // Under mu_.
  void holdLocked(Worker* w, Job* j) {
    j->state = JobState::kHeld;
    j->owner = w;
    j->heldIndex = w->held.size();
    j->tried = false;
    w->held.push_back(j);
  }

  // Under mu_.
  void unholdLocked(Job* j) {
    Worker* w = j->owner;
    Job* last = w->held.back();
    w->held[j->heldIndex] = last;
    last->heldIndex = j->heldIndex;
    w->held.pop_back();
    j->owner = nullptr;
  }

  // Under mu_. Returns true when the completion list was empty: the caller writes doneFd_ once,
  // which wakes the engine thread for the whole batch.
  bool pushDoneLocked(Job* j) {
    j->state = JobState::kDone;
    done_.push_back(j);
    return done_.size() == 1;
  }

  // Under mu_.
  bool publishLocked(Job* j) {
    unholdLocked(j);
    return pushDoneLocked(j);
  }

  // Under mu_: interrupts w's poll (once until w has looked again).
  void wakeLocked(Worker* w) {
    if (w->notified) return;
    w->notified = true;
    writeEventfd(w->wakeFd);
  }

  // Worker, under mu_: gives back to the queue's tail up to kRotateBatch of the held jobs that have
  // waited a whole quantum without result, the longest-waiting first (no more than are queued, so
  // that the worker takes others in their place).
  void takeTurnsLocked(Worker* w, int64_t now) {
    std::vector<Job*> idle;
    for (Job* j : w->held) {
      if (j->kind != kAcceptJob && j->tried && now - j->since >= kQuantumNs) idle.push_back(j);
    }
    size_t k = std::min({idle.size(), queue_.size, kRotateBatch});
    if (k == 0) return;
    std::partial_sort(idle.begin(), idle.begin() + static_cast<ptrdiff_t>(k), idle.end(),
                      [](const Job* a, const Job* b) { return a->since < b->since; });
    for (size_t i = 0; i < k; i++) {
      Job* j = idle[i];
      unholdLocked(j);
      j->state = JobState::kQueued;
      queue_.push(j);
    }
  }

  // Worker thread: runs j's system call if it can proceed. Returns true when j is finished
  // (j->result set); false when it would block (j->since set). `revents`: what poll said, 0 when
  // the job is tried without polling.
  bool attempt(Job* j, short revents) {
    if (revents & POLLNVAL) {
      j->result = -EBADF;
      return true;
    }
    if (j->kind == kConnectJob) return attemptConnect(j, revents);
    for (;;) {
      ssize_t r = -1;
      switch (j->kind) {
        case kRecvJob:
          r = ::recv(j->fd, j->buf, j->len, MSG_DONTWAIT);
          break;
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
      syscalls_.fetch_add(1, std::memory_order_relaxed);
      if (r >= 0) {
        j->result = r;
        return true;
      }
      int e = errno;
      if (e == EINTR || (j->kind == kAcceptJob && e == ECONNABORTED)) continue;
      if (e == EAGAIN || e == EWOULDBLOCK) {
        j->since = monoNs();
        return false;
      }
      j->result = -e;
      return true;
    }
  }

  // Worker thread: connect(2) on the core's non-blocking socket; in progress, wait for POLLOUT
  // and read the outcome from SO_ERROR.
  bool attemptConnect(Job* j, short revents) {
    if (!j->connectStarted) {
      j->connectStarted = true;
      syscalls_.fetch_add(1, std::memory_order_relaxed);
      if (::connect(j->fd, reinterpret_cast<const sockaddr*>(&j->addr), j->addrLen) == 0) {
        j->result = 0;
        return true;
      }
      int e = errno;
      if (e == EINPROGRESS || e == EINTR || e == EALREADY) {
        j->since = monoNs();
        return false;
      }
      j->result = e == EISCONN ? 0 : -e;
      return true;
    }
    if (!(revents & (POLLOUT | POLLERR | POLLHUP))) {
      j->since = monoNs();
      return false;
    }
    int err = 0;
    socklen_t elen = sizeof err;
    syscalls_.fetch_add(1, std::memory_order_relaxed);
    if (::getsockopt(j->fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0) err = errno;
    j->result = err ? -err : 0;
    return true;
  }

  static short eventsOf(const Job* j) {
    return j->kind == kRecvJob || j->kind == kAcceptJob ? POLLIN : POLLOUT;
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
      Handle* h = j->h;
      JobKind kind = j->kind;
      ssize_t r = j->result;
      if (!j->detached) static_cast<HandleJobs*>(h->backendData)->slot[kind] = nullptr;
      delete j;
      switch (kind) {
        case kRecvJob:
          sink_->onRecv(h, r);
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
  JobQueue queue_;                                // guarded by mu_
  std::vector<Job*> done_;                        // guarded by mu_: published, not yet reported
  std::vector<Job*> reporting_;                   // engine thread: the batch being reported
};

void ThreadPoolBackend::workerMain(Worker* w) {
  std::vector<Job*> finished;  // results of this round, published at the top of the next
  std::vector<Job*> mine;      // the held jobs as of this round
  std::vector<Job*> waiting;   // the job behind each pfds entry after the first
  std::vector<pollfd> pfds;
  for (;;) {
    int timeout = -1;
    bool signal = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (Job* j : finished) signal |= publishLocked(j);
      finished.clear();
      if (stop_) return;
      w->notified = false;
      // Cancelled jobs are given up without their system call.
      for (size_t i = 0; i < w->held.size();) {
        Job* j = w->held[i];
        if (j->cancelled.load(std::memory_order_relaxed)) {
          j->result = kRetry;
          signal |= publishLocked(j);
        } else {
          i++;
        }
      }
      if (queue_.size > 0) {
        int64_t now = monoNs();
        if (now >= w->nextTurn) {
          takeTurnsLocked(w, now);
          w->nextTurn = now + kQuantumNs;
        }
        while (w->held.size() < kMaxHeld && queue_.size > 0) holdLocked(w, queue_.pop());
        if (queue_.size > 0) timeout = static_cast<int>((w->nextTurn - now + 999999) / 1000000);
      }
      mine = w->held;
    }
    if (signal) writeEventfd(doneFd_);

    pfds.clear();
    waiting.clear();
    pfds.push_back(pollfd{w->wakeFd, POLLIN, 0});
    for (Job* j : mine) {
      if (!j->tried) {
        // Newly taken: the system call may well succeed at once (data already there).
        j->tried = true;
        if (!j->cancelled.load(std::memory_order_relaxed) && attempt(j, 0)) {
          finished.push_back(j);
          continue;
        }
      }
      pfds.push_back(pollfd{j->fd, eventsOf(j), 0});
      waiting.push_back(j);
    }
    if (!finished.empty()) continue;  // publish before waiting

    int n = ::poll(pfds.data(), pfds.size(), timeout);
    syscalls_.fetch_add(1, std::memory_order_relaxed);
    if (n <= 0) continue;  // a turn is due, or EINTR
    if (pfds[0].revents) drainEventfd(w->wakeFd);
    for (size_t i = 1; i < pfds.size(); i++) {
      if (!pfds[i].revents) continue;
      Job* j = waiting[i - 1];
      if (j->cancelled.load(std::memory_order_relaxed)) continue;  // given up next round
      if (attempt(j, pfds[i].revents)) finished.push_back(j);
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

std::unique_ptr<Backend> makeThreadPoolBackend(Sink* sink, int threads, int* error) {
  auto b = std::make_unique<ThreadPoolBackend>(sink, threads);
  *error = b->init();
  if (*error < 0) return nullptr;
  return b;
}

}  // namespace async_engine
