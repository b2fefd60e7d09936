// Name lookups on the resolver's own threads (see resolver.h).
#include "core/resolver.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace async_engine {

Resolver::Resolver(int wakeFd, unsigned threads) : wakeFd_(wakeFd), maxThreads_(threads ? threads : 1) {}

Resolver::~Resolver() { stop(); }

void Resolver::submit(int64_t id, std::string host, std::string service) {
  std::lock_guard<std::mutex> lock(mu_);
  queue_.push_back(Query{id, std::move(host), std::move(service)});
  if (idle_ == 0 && threads_.size() < maxThreads_) {
    threads_.emplace_back([this] { run(); });
  } else {
    cv_.notify_one();
  }
}

std::vector<ResolveResult> Resolver::drain() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<ResolveResult> out;
  out.swap(done_);
  return out;
}

void Resolver::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    queue_.clear();
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
  threads_.clear();
}

// Runs on a resolver thread.
void Resolver::run() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    while (!stopping_ && queue_.empty()) {
      idle_++;
      cv_.wait(lock);
      idle_--;
    }
    if (stopping_) return;
    Query q = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();

    ResolveResult r;
    r.id = q.id;
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_ADDRCONFIG;
    addrinfo* res = nullptr;
    int rc = ::getaddrinfo(q.host.c_str(), q.service.empty() ? nullptr : q.service.c_str(), &hints, &res);
    if (rc == EAI_NONAME && (hints.ai_flags & AI_ADDRCONFIG)) {
      // Loopback-only machines report no configured address family; ask again without the filter.
      hints.ai_flags = 0;
      rc = ::getaddrinfo(q.host.c_str(), q.service.empty() ? nullptr : q.service.c_str(), &hints, &res);
    }
    if (rc != 0) {
      r.gaiError = rc;
      r.sysErrno = rc == EAI_SYSTEM ? errno : 0;
    } else {
      for (addrinfo* ai = res; ai; ai = ai->ai_next) {
        char buf[INET6_ADDRSTRLEN] = {0};
        const void* src = ai->ai_family == AF_INET6
                              ? static_cast<const void*>(&reinterpret_cast<sockaddr_in6*>(ai->ai_addr)->sin6_addr)
                              : static_cast<const void*>(&reinterpret_cast<sockaddr_in*>(ai->ai_addr)->sin_addr);
        if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6) continue;
        ::inet_ntop(ai->ai_family, src, buf, sizeof buf);
        r.addresses.emplace_back(buf);
        r.families.push_back(ai->ai_family == AF_INET6 ? 6 : 4);
        sockaddr_storage ss{};
        std::memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
        r.sockaddrs.push_back(ss);
        r.sockaddrLens.push_back(ai->ai_addrlen);
      }
      ::freeaddrinfo(res);
    }

    lock.lock();
    done_.push_back(std::move(r));
    uint64_t one = 1;
    ssize_t ignored = ::write(wakeFd_, &one, sizeof one);
    (void)ignored;
  }
}

}  // namespace async_engine
