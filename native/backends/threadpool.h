// The `threadpool` implementation's backend: primitives run as system calls on a bounded pool of
// native worker threads, and the engine thread collects what they finished in batches.
#pragma once

#include <memory>

#include "core/backend.h"

namespace async_engine {

// `threads` <= 0: max(4, 2 x the CPUs this process may run on). Returns nullptr and sets *error
// (-errno) and *syscall (the call that failed) when the pool cannot be set up; otherwise *error
// is 0.
std::unique_ptr<Backend> makeThreadPoolBackend(Sink* sink, int threads, int* error, const char** syscall);

// The number of worker threads a pool built with `threads` will have at most.
int threadPoolSize(int threads);

}  // namespace async_engine
