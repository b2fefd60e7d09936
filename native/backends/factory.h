// Chooses and builds the backend of an implementation, and says why one cannot run here.
#pragma once

#include <memory>
#include <string>

#include "core/backend.h"

namespace async_engine {

// Options of every backend; each reads its own (see src/engine/types.ts, EngineConfig).
struct BackendOptions {
  int maxEvents = 256;  // readiness: epoll_wait batch size
  int threads = 0;      // threadpool: worker threads (0: from the core count)
  int entries = 0;      // completion: ring size (0: default)
};

// Builds the backend of `impl` ("completion", "readiness", "threadpool"); nullptr, *error
// (-errno) and *syscall (the system call that failed) when it cannot be built.
std::unique_ptr<Backend> makeBackend(const std::string& impl, Sink* sink, const BackendOptions& options, int* error,
                                     const char** syscall);

// "" when `impl` can run on this machine, else the reason it cannot.
std::string probeBackend(const std::string& impl);

}  // namespace async_engine
