// The Backend interface: the few primitive operations every implementation provides
// (accept, connect, recv, send, wait). Compound ops and framing are written once, in the core,
// over these primitives; a backend never sees a line, a delimiter or a chain.
#pragma once

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace async_engine {

struct Handle;
struct Op;

// Returned by Backend::fileSubmit when the backend has no file operations of its own: the core
// then serves the request itself (page-cache fast path, then its file worker pool).
constexpr ssize_t kNotHandled = -0x7fff0003;

enum class FileOp : uint8_t { kRead, kWrite, kFsync, kFdatasync, kOpen, kStatx };

// One file system call. Unlike socket primitives (one per handle and direction), many may be
// in flight on one file at once. The request owns the memory it reads into or writes from, so
// an op that leaves early (cancel, timeout, close) leaves nothing the kernel could touch.
struct FileReq {
  FileOp op = FileOp::kRead;
  int fd = -1;
  char* buf = nullptr;  // in `storage`
  size_t len = 0;
  int64_t off = 0;      // -1: the file's own position (appends)
  std::string path;     // open, statx by name
  int flags = 0;        // open flags
  unsigned mode = 0;    // open mode
  struct statx stx {};  // statx result

  // The core's bookkeeping.
  Op* op_ = nullptr;          // the op served, nullptr once it left (or a handle's own read)
  Handle* h = nullptr;        // the file, or nullptr (open, statx by name)
  bool sequential = false;    // the handle's read-ahead into its buffer
  bool queued = false;        // waiting in the file worker pool's queue (guarded by its lock)
  bool cancelledFromQueue = false;  // taken out of that queue before it ran
  void* storage = nullptr;    // page-aligned, freed with the request
  size_t storageSize = 0;
};

// Returned by a primitive that cannot finish now. The backend later reports the primitive
// through the matching Sink method; until then the core does not ask for it again.
constexpr ssize_t kPending = -0x7fff0001;
// Passed to a Sink method by a readiness backend: "the fd is ready now, ask again".
constexpr ssize_t kRetry = -0x7fff0002;

enum class Primitive : uint8_t { kRecv, kAccept };

// The core's side of the interface. Every call happens on the engine's thread (the JS thread),
// from inside Backend::wait().
class Sink {
 public:
  virtual ~Sink() = default;
  // Space to receive into for `h`. A backend that receives inline (during recv()) gets a
  // shared scratch area; one that completes later (a ring, a thread) gets the handle's own
  // area, which stays valid until the matching onRecv. The received bytes are read from there.
  virtual char* recvSpace(Handle* h, size_t* len) = 0;
  // `data`: where the bytes are when they are not in recvSpace (a kernel-chosen buffer).
  virtual void onRecv(Handle* h, ssize_t result, const char* data = nullptr) = 0;
  virtual void onSend(Handle* h, ssize_t result) = 0;
  virtual void onAccept(Handle* listener, ssize_t fdOrError) = 0;
  virtual void onConnect(Handle* h, ssize_t result) = 0;
  // The engine's wake-up fd (cross-thread completions, e.g. DNS) became readable.
  virtual void onWake() = 0;
  // A file request finished: bytes, a new fd (open), 0, or -errno.
  virtual void onFileDone(FileReq* r, ssize_t result) = 0;
};

// One primitive-operation provider. A backend owns the kernel mechanism (an epoll set, a ring,
// a pool of threads) and nothing else: socket state, buffers and ops belong to the core.
class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* name() const = 0;
  // True when primitives run inside the call that asks for them (a readiness backend), so the
  // core may lend them short-lived memory; false when they finish later, off the call.
  virtual bool completesInline() const = 0;
  // A pollable fd that is readable whenever wait(0) would find work; the Node event loop watches
  // it in `auto` drive.
  virtual int pollFd() const = 0;
  // Watch the core's wake-up fd; Sink::onWake() is called when it is readable.
  virtual int watchWake(int fd) = 0;

  // A new socket or listener (non-blocking, close-on-exec) joins the backend.
  virtual int attach(Handle* h) = 0;
  // The handle is about to be closed: forget every primitive pending on it. Returns how many
  // pending primitives will still be reported later (0 for a readiness backend).
  virtual int detach(Handle* h) = 0;

  // Primitives. Each returns a result now (>= 0, or -errno), or kPending: then exactly one
  // Sink report follows, either the result or kRetry (ready: call the primitive again).
  virtual ssize_t recv(Handle* h) = 0;  // bytes land in Sink::recvSpace(h); 0 = EOF
  // A gathered send of `iovcnt` spans (at most maxSendIov()). The spans stay valid until the
  // report; the iovec array itself only during the call.
  virtual ssize_t send(Handle* h, const struct iovec* iov, int iovcnt) = 0;
  virtual int maxSendIov() const { return 1; }
  // The result is the new connection's fd (non-blocking, close-on-exec).
  virtual ssize_t accept(Handle* listener) = 0;
  virtual ssize_t connect(Handle* h, const struct sockaddr* addr, socklen_t len) = 0;

  // A file request: kPending (reported later through Sink::onFileDone), or kNotHandled.
  virtual ssize_t fileSubmit(FileReq* r) { return kNotHandled; }

  // No op wants this primitive any more (its op was cancelled or timed out). A backend that
  // holds a thread or a kernel request for it may give it up early; the report still follows
  // (kRetry when nothing was done; a real result, e.g. an accepted fd, is kept by the core).
  virtual void unwant(Handle* h, Primitive p) {}

  // A backend that queues work (a ring) hands it to the kernel here; the engine calls this
  // once after each batch of JavaScript callbacks, so one system call carries the batch.
  virtual bool hasUnsubmitted() const { return false; }
  // Bytes received for `h` that the backend holds and the core has not asked for yet.
  virtual size_t heldBytes(Handle* h) const { return 0; }
  // Results already reported by the kernel and waiting to be taken by wait(0).
  virtual bool completionsWaiting() const { return false; }
  virtual void flush() {}

  // Waits up to timeoutMs (0: poll, -1: forever) and reports what finished through the Sink.
  // Returns the number of events handled, or -errno.
  virtual int wait(int timeoutMs) = 0;
  // System calls made so far, for stats().
  virtual uint64_t syscalls() const = 0;
  // Instantaneous gauges of the mechanism for stats(), as (name, value) pairs appended to `out`
  // (e.g. a thread pool's queueDepth and busyWorkers). Engine thread; none by default.
  virtual void gauges(std::vector<std::pair<const char*, double>>* out) const {}
};

}  // namespace async_engine
