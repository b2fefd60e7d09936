// getaddrinfo on a small pool of its own threads, so that name lookups never wait behind file
// or socket work (and never hold up Node's libuv pool). Results come back through the engine's
// wake-up fd and are drained on the engine's thread.
#pragma once

#include <sys/socket.h>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace async_engine {

struct ResolveResult {
  int64_t id = 0;
  int gaiError = 0;  // EAI_* (0: success)
  int sysErrno = 0;  // errno for EAI_SYSTEM
  std::vector<std::string> addresses;  // numeric, in getaddrinfo's order
  std::vector<int> families;           // 4 or 6
  std::vector<sockaddr_storage> sockaddrs;
  std::vector<socklen_t> sockaddrLens;
};

class Resolver {
 public:
  // wakeFd: an eventfd written once per finished lookup. Threads start on first use.
  Resolver(int wakeFd, unsigned threads);
  ~Resolver();
  void submit(int64_t id, std::string host, std::string service);
  std::vector<ResolveResult> drain();
  // Joins every thread; lookups already running finish first, queued ones are dropped.
  void stop();

 private:
  struct Query {
    int64_t id;
    std::string host;
    std::string service;
  };
  void run();

  int wakeFd_;
  unsigned maxThreads_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Query> queue_;
  std::vector<ResolveResult> done_;
  std::vector<std::thread> threads_;
  unsigned idle_ = 0;
  bool stopping_ = false;
};

}  // namespace async_engine
