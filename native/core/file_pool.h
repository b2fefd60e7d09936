// The file worker pool of the `readiness` and `threadpool` implementations: file system calls
// that cannot be served inline from the page cache (a read that would block, open, fsync,
// statx) run here, on threads of their own, apart from the resolver's and from socket workers.
// Threads start on first use, up to a bound; finished requests are handed back on one list
// and announced on the engine's wake-up eventfd.
#pragma once

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "core/backend.h"

namespace async_engine {

class FilePool {
 public:
  FilePool(int wakeFd, unsigned maxThreads) : wakeFd_(wakeFd), maxThreads_(maxThreads ? maxThreads : 1) {}
  ~FilePool() { stop(); }
  FilePool(const FilePool&) = delete;
  FilePool& operator=(const FilePool&) = delete;

  // Engine thread.
  void submit(FileReq* r);
  // Takes a request out of the queue if no thread has started it. Engine thread.
  bool cancel(FileReq* r);
  // Finished requests and their results. Engine thread.
  std::vector<std::pair<FileReq*, ssize_t>> drain();
  // Joins the threads; requests still queued are not run (their results never come).
  void stop();

  // Runs one request with blocking system calls (also used by a worker).
  static ssize_t run(FileReq* r);

 private:
  void work();

  int wakeFd_;
  unsigned maxThreads_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<FileReq*> queue_;
  std::vector<std::pair<FileReq*, ssize_t>> done_;
  std::vector<std::thread> threads_;
  unsigned idle_ = 0;
  bool stopping_ = false;
};

}  // namespace async_engine
