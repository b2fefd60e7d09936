// The `readiness` implementation's backend: epoll, edge-triggered, non-blocking fds.
#pragma once

#include <memory>

#include "core/backend.h"

namespace async_engine {

std::unique_ptr<Backend> makeEpollBackend(Sink* sink, int maxEvents, int* error);

}  // namespace async_engine
