// The backend of each implementation (see factory.h).
#include "backends/factory.h"

#include <sys/epoll.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "backends/epoll.h"
#include "backends/uring.h"
#include "backends/uring_ring.h"
#include "backends/threadpool.h"

namespace async_engine {

std::unique_ptr<Backend> makeBackend(const std::string& impl, Sink* sink, const BackendOptions& options, int* error,
                                     const char** syscall) {
  if (impl == "readiness") return makeEpollBackend(sink, options.maxEvents, error, syscall);
  if (impl == "completion") {
    UringOptions o;
    o.entries = options.entries;
    if (const char* off = ::getenv("ASYNC_ENGINE_URING_DISABLE")) o.disabled = off;
    return makeUringBackend(sink, o, error, syscall);
  }
  if (impl == "threadpool") return makeThreadPoolBackend(sink, options.threads, error, syscall);
  *error = -ENOSYS;
  return nullptr;
}

std::string probeBackend(const std::string& impl) {
  if (impl == "readiness") {
    int fd = ::epoll_create1(EPOLL_CLOEXEC);
    if (fd < 0) return std::string("epoll_create1 failed: ") + std::strerror(errno);
    ::close(fd);
    return "";
  }
  // Worker threads waiting in epoll_wait, an epoll set each: runs wherever pthreads and epoll exist.
  if (impl == "threadpool") return "";
  if (impl == "completion") return probeRing();
  return "the " + impl + " implementation is not part of this build yet";
}

}  // namespace async_engine
