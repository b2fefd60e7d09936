// The `poll` implementation's backend: poll(2), level-triggered, non-blocking fds.
#pragma once

#include <memory>

#include "core/backend.h"

namespace async_engine {

// `watcher`: auto drive, where a thread watches the set so that pollFd() has something to say.
// nullptr, *error (-errno) and *syscall (the call that failed) when it cannot be built.
std::unique_ptr<Backend> makePollBackend(Sink* sink, bool watcher, int* error, const char** syscall);

}  // namespace async_engine
