// The `completion` implementation's backend: io_uring.
#pragma once

#include <memory>
#include <string>

#include "core/backend.h"

namespace async_engine {

struct UringOptions {
  int entries = 0;       // submission queue size (0: 256)
  std::string disabled;  // setup features to leave off, comma-separated (tests of the fallbacks)
};

// nullptr, *error (-errno) and *syscall (the call that failed) when it cannot be built.
std::unique_ptr<Backend> makeUringBackend(Sink* sink, const UringOptions& options, int* error,
                                          const char** syscall);

}  // namespace async_engine
