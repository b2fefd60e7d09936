// The io_uring ring layer (see uring_ring.h).
#include "backends/uring_ring.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cstring>

namespace async_engine {

namespace {

int sysSetup(unsigned entries, io_uring_params* p) {
  return static_cast<int>(::syscall(__NR_io_uring_setup, entries, p));
}

int sysEnter(int fd, unsigned toSubmit, unsigned minComplete, unsigned flags, const void* arg, size_t argSize) {
  return static_cast<int>(::syscall(__NR_io_uring_enter, fd, toSubmit, minComplete, flags, arg, argSize));
}

int sysRegister(int fd, unsigned op, const void* arg, unsigned nr) {
  return static_cast<int>(::syscall(__NR_io_uring_register, fd, op, arg, nr));
}

}  // namespace

bool featureListed(const std::string& list, const char* name) {
  size_t n = std::strlen(name);
  for (size_t pos = list.find(name); pos != std::string::npos; pos = list.find(name, pos + 1)) {
    bool startOk = pos == 0 || list[pos - 1] == ',';
    bool endOk = pos + n == list.size() || list[pos + n] == ',';
    if (startOk && endOk) return true;
  }
  return false;
}

Ring::~Ring() {
  if (sqes_) ::munmap(sqes_, sqesLen_);
  if (cqPtr_ && cqPtr_ != sqPtr_) ::munmap(cqPtr_, cqLen_);
  if (sqPtr_) ::munmap(sqPtr_, sqLen_);
  if (fd_ >= 0) ::close(fd_);
}

int Ring::init(unsigned entries, unsigned cqFactor, const std::string& disabled, const char** syscall) {
  const char* unused = nullptr;
  if (!syscall) syscall = &unused;
  *syscall = "io_uring_setup";
  // The flag sets to try, newest features first; each is trimmed of what `disabled` switches
  // off, and the first the kernel accepts is used. COOP_TASKRUN (5.19) runs completion work
  // when the thread enters the kernel anyway, without an interrupt; TASKRUN_FLAG says when
  // such work waits. DEFER_TASKRUN is not used: its deferred work does not make the ring's fd
  // readable, and a completion caused by another thread (the resolver's wake-up) could then
  // leave Node's loop asleep.
  const uint32_t candidates[] = {
      IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG | IORING_SETUP_CQSIZE,
      IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG | IORING_SETUP_CQSIZE,
      IORING_SETUP_CQSIZE,
      0,
  };
  uint32_t off = 0;
  if (featureListed(disabled, "single_issuer")) off |= IORING_SETUP_SINGLE_ISSUER;
  if (featureListed(disabled, "coop_taskrun")) off |= IORING_SETUP_COOP_TASKRUN;
  if (featureListed(disabled, "cqsize")) off |= IORING_SETUP_CQSIZE;
  io_uring_params p;
  int fd = -1;
  int err = EINVAL;
  uint32_t wanted = 0;
  for (uint32_t c : candidates) {
    wanted = c & ~off;
    // The flag that reports pending task work goes with cooperative task running.
    if (!(wanted & IORING_SETUP_COOP_TASKRUN)) wanted &= ~IORING_SETUP_TASKRUN_FLAG;
    std::memset(&p, 0, sizeof p);
    p.flags = wanted;
    p.cq_entries = entries * cqFactor;
    syscalls_++;
    fd = sysSetup(entries, &p);
    if (fd >= 0) break;
    err = errno;
    if (err != EINVAL) return -err;
  }
  if (fd < 0) return -err;
  fd_ = fd;
  *syscall = "mmap";
  features_.setupFlags = wanted;
  features_.features = p.features;
  features_.extArg = p.features & IORING_FEAT_EXT_ARG;

  sqLen_ = p.sq_off.array + p.sq_entries * sizeof(unsigned);
  cqLen_ = p.cq_off.cqes + p.cq_entries * sizeof(io_uring_cqe);
  bool single = p.features & IORING_FEAT_SINGLE_MMAP;
  if (single) sqLen_ = cqLen_ = sqLen_ > cqLen_ ? sqLen_ : cqLen_;
  sqPtr_ = ::mmap(nullptr, sqLen_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQ_RING);
  if (sqPtr_ == MAP_FAILED) {
    sqPtr_ = nullptr;
    return -errno;
  }
  if (single) {
    cqPtr_ = sqPtr_;
  } else {
    cqPtr_ = ::mmap(nullptr, cqLen_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_CQ_RING);
    if (cqPtr_ == MAP_FAILED) {
      cqPtr_ = nullptr;
      return -errno;
    }
  }
  sqesLen_ = p.sq_entries * sizeof(io_uring_sqe);
  void* sqes = ::mmap(nullptr, sqesLen_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQES);
  if (sqes == MAP_FAILED) return -errno;
  sqes_ = static_cast<io_uring_sqe*>(sqes);

  char* sq = static_cast<char*>(sqPtr_);
  sqHead_ = reinterpret_cast<unsigned*>(sq + p.sq_off.head);
  sqTail_ = reinterpret_cast<unsigned*>(sq + p.sq_off.tail);
  sqFlags_ = reinterpret_cast<unsigned*>(sq + p.sq_off.flags);
  sqMask_ = *reinterpret_cast<unsigned*>(sq + p.sq_off.ring_mask);
  sqEntries_ = *reinterpret_cast<unsigned*>(sq + p.sq_off.ring_entries);
  sqArray_ = reinterpret_cast<unsigned*>(sq + p.sq_off.array);
  char* cq = static_cast<char*>(cqPtr_);
  cqHead_ = reinterpret_cast<unsigned*>(cq + p.cq_off.head);
  cqTail_ = reinterpret_cast<unsigned*>(cq + p.cq_off.tail);
  cqMask_ = *reinterpret_cast<unsigned*>(cq + p.cq_off.ring_mask);
  cqes_ = reinterpret_cast<io_uring_cqe*>(cq + p.cq_off.cqes);
  sqeTail_ = publishedTail_ = *sqTail_;

  // Which ops the kernel knows.
  size_t probeLen = sizeof(io_uring_probe) + 256 * sizeof(io_uring_probe_op);
  auto* probe = static_cast<io_uring_probe*>(std::calloc(1, probeLen));
  if (probe) syscalls_++;
  if (probe && sysRegister(fd, IORING_REGISTER_PROBE, probe, 256) >= 0) {
    auto has = [probe](unsigned op) {
      return op <= probe->last_op && (probe->ops[op].flags & IO_URING_OP_SUPPORTED);
    };
    features_.accept = has(IORING_OP_ACCEPT);
    features_.connect = has(IORING_OP_CONNECT);
    features_.recv = has(IORING_OP_RECV);
    features_.send = has(IORING_OP_SEND);
    features_.asyncCancel = has(IORING_OP_ASYNC_CANCEL);
    features_.shutdown = has(IORING_OP_SHUTDOWN);
    // CANCEL_FD arrived with the socket ops of 5.19, together with IORING_OP_SOCKET.
    features_.cancelByFd = has(IORING_OP_SOCKET);
  }
  std::free(probe);
  return 0;
}

io_uring_sqe* Ring::getSqe() {
  unsigned head = __atomic_load_n(sqHead_, __ATOMIC_ACQUIRE);
  if (sqeTail_ - head >= sqEntries_) return nullptr;
  unsigned idx = sqeTail_ & sqMask_;
  io_uring_sqe* sqe = &sqes_[idx];
  std::memset(sqe, 0, sizeof *sqe);
  sqArray_[idx] = idx;
  sqeTail_++;
  return sqe;
}

int Ring::submit(unsigned waitNr, int waitMs, bool getEvents) {
  unsigned toSubmit = sqeTail_ - publishedTail_;
  __atomic_store_n(sqTail_, sqeTail_, __ATOMIC_RELEASE);
  publishedTail_ = sqeTail_;
  unsigned flags = waitNr || getEvents ? IORING_ENTER_GETEVENTS : 0;
  if (toSubmit == 0 && waitNr == 0 && !getEvents) return 0;
  for (;;) {
    syscalls_++;
    int rc;
    if (waitNr && waitMs >= 0 && features_.extArg) {
      __kernel_timespec ts{waitMs / 1000, static_cast<long long>(waitMs % 1000) * 1000000};
      io_uring_getevents_arg arg{};
      arg.ts = reinterpret_cast<uint64_t>(&ts);
      rc = sysEnter(fd_, toSubmit, waitNr, flags | IORING_ENTER_EXT_ARG, &arg, sizeof arg);
    } else {
      rc = sysEnter(fd_, toSubmit, waitNr, flags, nullptr, 0);
    }
    if (rc >= 0) return rc;
    int e = errno;
    if (e == EINTR) {
      if (waitNr) return 0;
      continue;
    }
    if (e == ETIME) return 0;
    return -e;
  }
}

int Ring::flushOverflow() {
  syscalls_++;
  int rc = sysEnter(fd_, 0, 0, IORING_ENTER_GETEVENTS, nullptr, 0);
  return rc < 0 ? -errno : rc;
}

int Ring::registerBufRing(void* ring, unsigned entries, uint16_t bgid) {
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<uint64_t>(ring);
  reg.ring_entries = entries;
  reg.bgid = bgid;
  syscalls_++;
  return sysRegister(fd_, IORING_REGISTER_PBUF_RING, &reg, 1) < 0 ? -errno : 0;
}

std::string probeRing() {
  if (const char* forced = ::getenv("ASYNC_ENGINE_URING_UNAVAILABLE")) {
    if (*forced && std::strcmp(forced, "0") != 0) return std::string("disabled by ASYNC_ENGINE_URING_UNAVAILABLE");
  }
  int fd = ::open("/proc/sys/kernel/io_uring_disabled", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    char c = '0';
    ssize_t n = ::read(fd, &c, 1);
    ::close(fd);
    if (n == 1 && c == '2') return "io_uring is disabled on this machine (kernel.io_uring_disabled = 2)";
  }
  Ring ring;
  int rc = ring.init(4, 2, "");
  if (rc == -ENOSYS) return "this kernel has no io_uring (io_uring_setup: ENOSYS)";
  if (rc == -EPERM || rc == -EACCES) {
    return "io_uring_setup is not permitted here (a seccomp profile, or kernel.io_uring_disabled)";
  }
  if (rc < 0) return std::string("io_uring_setup failed: ") + std::strerror(-rc);
  const RingFeatures& f = ring.features();
  if (!(f.accept && f.connect && f.recv && f.send && f.asyncCancel)) {
    return "this kernel's io_uring lacks accept, connect, recv, send or async cancel (needs Linux 5.19+)";
  }
  if (!f.extArg || !(f.features & IORING_FEAT_NODROP)) return "this kernel's io_uring is too old (needs Linux 5.19+)";
  return "";
}

}  // namespace async_engine
