// The backend table (see factory.h). Adding an implementation is one backend file and one row.
#include "backends/factory.h"

#include <poll.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "backends/epoll.h"
#include "backends/poll.h"
#include "backends/threadpool.h"
#include "backends/uring.h"
#include "backends/uring_ring.h"

namespace async_engine {

namespace {

std::string probeEpoll() {
  int fd = ::epoll_create1(EPOLL_CLOEXEC);
  if (fd < 0) return std::string("epoll_create1 failed: ") + std::strerror(errno);
  ::close(fd);
  return "";
}

std::unique_ptr<Backend> makeReadiness(Sink* sink, const BackendOptions& o, int* error) {
  return makeEpollBackend(sink, o.get("maxEvents", 256), error);
}

std::unique_ptr<Backend> makeCompletion(Sink* sink, const BackendOptions& o, int* error) {
  UringOptions u;
  u.entries = o.get("entries", 0);
  if (const char* off = ::getenv("ASYNC_ENGINE_URING_DISABLE")) u.disabled = off;
  return makeUringBackend(sink, u, error);
}

// Worker threads waiting in epoll_wait, an epoll set each: runs wherever pthreads and epoll exist.
std::string probeThreadPool() { return ""; }

std::unique_ptr<Backend> makeThreadPool(Sink* sink, const BackendOptions& o, int* error) {
  return makeThreadPoolBackend(sink, o.get("threads", 0), error);
}

// poll(2) is everywhere; the probe still asks the kernel once.
std::string probePoll() {
  pollfd none{-1, 0, 0};
  if (::poll(&none, 1, 0) < 0) return std::string("poll failed: ") + std::strerror(errno);
  return "";
}

std::unique_ptr<Backend> makePoll(Sink* sink, const BackendOptions& o, int* error) {
  return makePollBackend(sink, !o.manualDrive, error);
}

}  // namespace

const std::vector<BackendEntry>& backendTable() {
  static const std::vector<BackendEntry> table = {
      {"completion", probeRing, makeCompletion, {"entries"}},
      {"readiness", probeEpoll, makeReadiness, {"maxEvents"}},
      {"threadpool", probeThreadPool, makeThreadPool, {"threads"}},
      {"poll", probePoll, makePoll, {}},
  };
  return table;
}

const BackendEntry* findBackend(const std::string& impl) {
  for (const BackendEntry& e : backendTable()) {
    if (impl == e.name) return &e;
  }
  return nullptr;
}

std::unique_ptr<Backend> makeBackend(const std::string& impl, Sink* sink, const BackendOptions& options, int* error) {
  const BackendEntry* e = findBackend(impl);
  if (!e) {
    *error = -ENOSYS;
    return nullptr;
  }
  return e->make(sink, options, error);
}

std::string probeBackend(const std::string& impl) {
  const BackendEntry* e = findBackend(impl);
  if (!e) return "the " + impl + " implementation is not part of this build";
  return e->probe();
}

}  // namespace async_engine
