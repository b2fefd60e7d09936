// The `poll` implementation's backend: poll(2), level-triggered, non-blocking fds.
#pragma once

#include <memory>

#include "core/backend.h"

namespace async_engine {

// `watcher`: auto drive, where a thread watches the set so that pollFd() has something to say.
std::unique_ptr<Backend> makePollBackend(Sink* sink, bool watcher, int* error);

}  // namespace async_engine
