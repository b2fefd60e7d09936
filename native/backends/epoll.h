// The `readiness` implementation's backend: epoll, edge-triggered, non-blocking fds.
#pragma once

#include <memory>

#include "core/backend.h"

namespace async_engine {

// nullptr, *error (-errno) and *syscall (the call that failed) when it cannot be built.
std::unique_ptr<Backend> makeEpollBackend(Sink* sink, int maxEvents, int* error, const char** syscall);

}  // namespace async_engine
