// The backend seam: everything a backend (native/backends/*) may see of the engine, and all it
// must provide. A backend includes this header and its own headers only.
//
// The core owns sockets, buffers, ops, framing, chains and deadlines; a backend owns one kernel
// mechanism (an epoll set, a ring, a pool of threads) and offers a few primitives over it
// (recv, send, accept, connect, and optionally file requests). Compound ops and framing are
// written once, in the core, over these primitives: a backend never sees a line, a delimiter,
// an op or a chain.
//
// Threads: the core calls every Backend method on the engine's thread (the JavaScript thread
// that created the engine), and a backend makes every Sink call on that thread too. Reports
// (Sink::on*) are made from inside Backend::wait(), never from inside the call of a primitive:
// a primitive that finishes within its call says so by its return value. Inside a report the
// core may call any Backend method again, including a primitive on the reported handle or
// detach() of any handle (also one with events still to report in this wait()).
#pragma once

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

// A FIFO that holds no memory while empty, for the backend's per-handle queues.
#include "core/small_queue.h"

namespace async_engine {

struct Op;

enum class HandleKind : uint8_t { kSocket, kListener, kFile };

// The slice of a handle a backend sees. The core's Handle derives from it and keeps everything
// else (buffers, op queues, state) to itself; a backend gets a BackendHandle* for every socket
// and listener it serves (files reach it only as FileReq) and hands the same pointer back in
// its reports. The pointer is valid from attach() until the last report owed after detach().
struct BackendHandle {
  // Set by the core before attach(), constant afterwards: read only. The fd is non-blocking and
  // close-on-exec; the core closes it only after detach() and the last report owed for it.
  int fd = -1;
  HandleKind kind = HandleKind::kSocket;

  // The backend's own: zero (nullptr) at attach(), never read or written by the core. What
  // backendData points to is the backend's to free (the core never does), at the latest when
  // the last report owed after detach() has been made, or when the backend is destroyed (the
  // reports still owed then are never made).
  uint32_t backendFlags = 0;
  void* backendData = nullptr;
  // The backend's own: room for a connect's address, for a backend that hands it to the kernel
  // after connect() returns (the address passed to connect() is valid only during the call).
  sockaddr_storage peerAddr{};
};

// Returned by Backend::fileSubmit when the backend has no file operations of its own: the core
// then serves the request itself (page-cache fast path, then its file worker pool).
constexpr ssize_t kNotHandled = -0x7fff0003;

enum class FileOp : uint8_t { kRead, kWrite, kFsync, kFdatasync, kOpen, kStatx };

// One file system call. Unlike socket primitives (one per handle and direction), many may be
// in flight on one file at once. The request owns the memory it reads into or writes from, so
// an op that leaves early (cancel, timeout, close) leaves nothing the kernel could touch.
// A backend reads the fields up to `stx` and writes `stx` (statx); the rest is the core's.
// The request, its buffer, its path and `stx` stay valid until Sink::onFileDone returns.
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
  BackendHandle* h = nullptr; // the file (a core Handle), or nullptr (open, statx by name)
  bool sequential = false;    // the handle's read-ahead into its buffer
  bool queued = false;        // waiting in the file worker pool's queue (guarded by its lock)
  bool cancelledFromQueue = false;  // taken out of that queue before it ran
  void* storage = nullptr;    // page-aligned, freed with the request
  size_t storageSize = 0;
};

// Returned by a primitive that cannot finish now. The backend later reports the primitive
// through the matching Sink method; until then the core does not ask for it again.
constexpr ssize_t kPending = -0x7fff0001;
// Passed to a Sink method instead of a result: "nothing was done, ask again". A readiness
// backend reports it when the fd becomes ready; any backend reports it for a primitive it gave
// up after unwant().
constexpr ssize_t kRetry = -0x7fff0002;

enum class Primitive : uint8_t { kRecv, kAccept };

// The core's side of the seam, called by the backend (engine thread; see the top of the file).
class Sink {
 public:
  virtual ~Sink() = default;

  // Memory to receive into for `h`, of *len bytes (nullptr when none could be had: the
  // primitive then fails with -ENOMEM). For a backend whose primitives complete inline
  // (completesInline()) it is a scratch area shared by every handle, to be used within the
  // recv() call that asked for it. For one that completes later it is the handle's own area,
  // which stays valid, and untouched by the core, until the recv is reported. A backend that
  // receives into memory of its own (a kernel-chosen buffer, a worker's copy) need not ask.
  // Called from inside recv() or wait().
  virtual char* recvSpace(BackendHandle* h, size_t* len) = 0;

  // The pending recv of `h` finished: `result` bytes (> 0) at `data`, 0 for end of stream,
  // -errno, or kRetry. `data` is read only when result > 0, and only during the call: the core
  // copies what it keeps before returning, so the backend may reuse the memory afterwards.
  virtual void onRecv(BackendHandle* h, ssize_t result, const char* data) = 0;
  // The pending send of `h` finished: bytes the kernel took (possibly fewer than offered: the
  // core sends the rest), -errno, or kRetry.
  virtual void onSend(BackendHandle* h, ssize_t result) = 0;
  // The pending accept of `listener` finished: the new connection's fd (non-blocking,
  // close-on-exec; the core owns it from here), -errno, or kRetry.
  virtual void onAccept(BackendHandle* listener, ssize_t fdOrError) = 0;
  // The pending connect of `h` finished: 0 (connected) or -errno (e.g. -ECONNREFUSED).
  virtual void onConnect(BackendHandle* h, ssize_t result) = 0;
  // The pending shutdown of `h`'s sending side finished: 0 or -errno.
  virtual void onShutdown(BackendHandle* h, ssize_t result) = 0;
  // The engine's wake-up fd (see Backend::watchWake) became readable. The core reads it.
  virtual void onWake() = 0;
  // A request accepted by fileSubmit finished: bytes, a new fd (open), 0, or -errno. Made from
  // inside wait(), or while the backend is destroyed (requests still in the kernel then; the
  // core frees them).
  virtual void onFileDone(FileReq* r, ssize_t result) = 0;
};

// One primitive-operation provider (see the top of the file). Built by its factory function
// (backends/factory.cc) with the Sink it reports to; destroyed by the core after every handle
// was detached. Its destructor stops any thread it started and makes sure the kernel writes
// into no memory of the core any more.
class Backend {
 public:
  virtual ~Backend() = default;
  // The implementation's name, as JavaScript spells it ("readiness", ...).
  virtual const char* name() const = 0;
  // True when primitives run inside the call that asks for them (a readiness backend), so the
  // core may lend them short-lived memory (recvSpace's shared scratch area); false when they
  // finish later, off the call.
  virtual bool completesInline() const = 0;
  // A pollable fd that is readable whenever wait(0) would find work; the Node event loop
  // watches it in `auto` drive.
  virtual int pollFd() const = 0;
  // Watch the core's wake-up fd (an eventfd other threads write to); Sink::onWake() is called
  // when it is readable. Called once, before any handle is attached. Returns 0 or -errno.
  virtual int watchWake(int fd) = 0;

  // A new socket or listener joins the backend (h->fd and h->kind are set). Returns 0, or
  // -errno when the backend cannot serve it (the core then drops the handle).
  virtual int attach(BackendHandle* h) = 0;
  // The handle is about to be closed: forget every primitive pending on it. Returns how many
  // pending primitives will still be reported later (0 for a readiness backend); the core
  // keeps the fd open and `h` alive until those reports, drops their results (closing an
  // accepted fd), and reads no `data`. Nothing else is reported for `h` after detach().
  virtual int detach(BackendHandle* h) = 0;

  // Primitives. Each returns a result now (>= 0, or -errno), or kPending: then exactly one
  // Sink report follows (unless detach() drops it), either the result or kRetry (ready: call
  // the primitive again). The core asks for at most one recv (or accept) and one send (or
  // connect) per handle at a time, and asks again only after the report.

  // Receives on `h`. Returns the number of bytes received (> 0) with *data set to where they
  // are, 0 for end of stream, -errno or kPending (then Sink::onRecv follows). The bytes at
  // *data stay valid until the backend's next recv(), flush() or wait() call: the core copies
  // what it keeps before it calls any of them.
  virtual ssize_t recv(BackendHandle* h, const char** data) = 0;
  // A gathered send of `iovcnt` spans (at most maxSendIov()). The spans stay valid until the
  // report, even if the write they belong to is cancelled meanwhile; the iovec array itself
  // only during the call. Returns the bytes the kernel took (possibly fewer), -errno or
  // kPending (then Sink::onSend follows).
  virtual ssize_t send(BackendHandle* h, const struct iovec* iov, int iovcnt) = 0;
  virtual int maxSendIov() const { return 1; }
  // Accepts on a listener. The result is the new connection's fd (non-blocking,
  // close-on-exec), -errno, or kPending (then Sink::onAccept follows).
  virtual ssize_t accept(BackendHandle* listener) = 0;
  // Connects `h` (a fresh socket) to `addr`, valid only during the call (copy it, e.g. into
  // h->peerAddr, if the kernel reads it later). Returns 0, -errno or kPending (then
  // Sink::onConnect follows).
  virtual ssize_t connect(BackendHandle* h, const struct sockaddr* addr, socklen_t len) = 0;

  // Shuts down the sending side of `h` (shutdown(SHUT_WR): the peer reads EOF once the bytes
  // already sent are in). The core asks only while no send is pending on `h`, and sends nothing
  // on it afterwards. Returns 0, -errno or kPending (then Sink::onShutdown follows). The default
  // makes the system call inline, which never blocks.
  virtual ssize_t shutdown(BackendHandle* h) {
    return ::shutdown(h->fd, SHUT_WR) < 0 ? -errno : 0;
  }

  // A file request: kPending (reported later through Sink::onFileDone), or kNotHandled (the
  // default: the core runs it itself). The backend never reports a request it did not accept.
  virtual ssize_t fileSubmit(FileReq* r) { return kNotHandled; }

  // No op wants this pending primitive any more (its op was cancelled or timed out; called
  // only while the primitive is pending, and for recv and accept only). A backend that
  // holds a thread or a kernel request for it may give it up early; the report still follows
  // (kRetry when nothing was done; a real result, e.g. an accepted fd or received bytes, is
  // kept by the core). The default does nothing: the primitive is reported as it finishes.
  virtual void unwant(BackendHandle* h, Primitive p) {}

  // A backend that queues work (a ring) hands it to the kernel in flush(); the engine calls it
  // once after each batch of JavaScript callbacks, so one system call carries the batch.
  // hasUnsubmitted(): there is such work.
  virtual bool hasUnsubmitted() const { return false; }
  virtual void flush() {}
  // Bytes received for `h` that the backend holds and the core has not asked for yet (a
  // multishot receive's reports waiting for the next recv()).
  virtual size_t heldBytes(BackendHandle* h) const { return 0; }
  // Results already reported by the kernel and waiting to be taken by wait(0).
  virtual bool completionsWaiting() const { return false; }

  // Waits up to timeoutMs (0: poll, -1: forever) and reports what finished through the Sink.
  // Returns the number of events handled, or -errno (EINTR is not an error: return 0).
  virtual int wait(int timeoutMs) = 0;
  // For stats().syscalls: the system calls this backend made so far, on any of its threads,
  // each counted once when it is made (again when retried after EINTR), and only those of the
  // set docs/api.md lists ("EngineStats"). A primitive answered without a system call counts
  // nothing. The core counts its own calls and never a backend's.
  virtual uint64_t syscalls() const = 0;
  // Instantaneous gauges of the mechanism for stats(), as (name, value) pairs appended to `out`
  // (e.g. a thread pool's queueDepth and busyWorkers). Engine thread; none by default.
  virtual void gauges(std::vector<std::pair<const char*, double>>* out) const {}
};

}  // namespace async_engine
