// The file worker pool (see file_pool.h).
#include "core/file_pool.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>

namespace async_engine {

void FilePool::submit(FileReq* r) {
  std::unique_lock<std::mutex> lock(mu_);
  r->queued = true;
  queue_.push_back(r);
  if (idle_ == 0 && threads_.size() < maxThreads_) {
    // Workers start with every signal blocked, so that signals reach Node's thread.
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    threads_.emplace_back([this] { work(); });
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
  }
  cv_.notify_one();
}

bool FilePool::cancel(FileReq* r) {
  std::unique_lock<std::mutex> lock(mu_);
  if (!r->queued) return false;
  auto it = std::find(queue_.begin(), queue_.end(), r);
  if (it != queue_.end()) queue_.erase(it);
  r->queued = false;
  return true;
}

std::vector<std::pair<FileReq*, ssize_t>> FilePool::drain() {
  std::vector<std::pair<FileReq*, ssize_t>> out;
  std::unique_lock<std::mutex> lock(mu_);
  out.swap(done_);
  return out;
}

void FilePool::stop() {
  {
    std::unique_lock<std::mutex> lock(mu_);
    stopping_ = true;
    for (FileReq* r : queue_) r->queued = false;
    queue_.clear();
  }
  cv_.notify_all();
  for (std::thread& t : threads_) t.join();
  threads_.clear();
}

void FilePool::work() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    idle_++;
    cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
    idle_--;
    if (stopping_) return;
    FileReq* r = queue_.front();
    queue_.pop_front();
    r->queued = false;
    lock.unlock();
    ssize_t res = run(r);
    lock.lock();
    bool first = done_.empty();
    done_.emplace_back(r, res);
    if (first) {
      uint64_t one = 1;
      ssize_t ignored = ::write(wakeFd_, &one, sizeof one);
      (void)ignored;
    }
  }
}

ssize_t FilePool::run(FileReq* r) {
  for (;;) {
    ssize_t res = 0;
    switch (r->op) {
      case FileOp::kRead: {
        iovec iov{r->buf, r->len};
        res = ::preadv2(r->fd, &iov, 1, r->off, 0);
        break;
      }
      case FileOp::kWrite: {
        iovec iov{r->buf, r->len};
        res = ::pwritev2(r->fd, &iov, 1, r->off, 0);
        break;
      }
      case FileOp::kFsync:
        res = ::fsync(r->fd);
        break;
      case FileOp::kFdatasync:
        res = ::fdatasync(r->fd);
        break;
      case FileOp::kOpen:
        res = ::openat(AT_FDCWD, r->path.c_str(), r->flags, r->mode);
        break;
      case FileOp::kStatx:
        res = r->fd >= 0 ? ::statx(r->fd, "", AT_EMPTY_PATH, STATX_BASIC_STATS | STATX_BTIME, &r->stx)
                         : ::statx(AT_FDCWD, r->path.c_str(), 0, STATX_BASIC_STATS | STATX_BTIME, &r->stx);
        break;
    }
    if (res >= 0) return res;
    if (errno != EINTR) return -errno;
  }
}

}  // namespace async_engine
