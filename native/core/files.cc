// Files: open, reads (sequential through the socket framing, or at a position), writes, fsync
// and statx, on every backend. A backend with file operations of its own (io_uring) runs each
// request; otherwise a read or write is first tried inline with RWF_NOWAIT (served from the
// page cache without a thread hop) and, when that would block, handed to the file worker pool,
// as are open, fsync and statx.
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "core/engine_core.h"
#include "core/file_pool.h"

namespace async_engine {

namespace {
constexpr size_t kFileChunk = 256 * 1024;  // a sequential read-ahead, and a readAll step
constexpr size_t kFileChunkMax = 16 * 1024 * 1024;
constexpr unsigned kFilePoolThreads = 4;
}  // namespace

// True when `op` has a file request already running (in the kernel or on a pool thread): the
// op then settles with that request's result, whatever cancel, a deadline or close say. A
// request still queued for the pool is taken out, and the op may leave.
bool EngineCore::fileRequestRunning(Op* op) {
  FileReq* r = op->freq;
  if (!r) return false;
  if (r->cancelledFromQueue) return false;
  if (filePool_ && filePool_->cancel(r)) {
    r->cancelledFromQueue = true;
    return false;
  }
  return true;
}

FilePool& EngineCore::filePool() {
  if (!filePool_) filePool_ = std::make_unique<FilePool>(wakeFd_, kFilePoolThreads);
  return *filePool_;
}

// A request with `len` bytes of page-aligned memory of its own (any O_DIRECT alignment up to a
// page is met).
FileReq* EngineCore::newFileReq(Op* op, Handle* h, FileOp kind, size_t len) {
  auto* r = new FileReq();
  r->op = kind;
  r->op_ = op;
  r->h = h;
  r->fd = h ? h->fd : -1;
  if (len > 0) {
    size_t size = (len + 4095) & ~size_t{4095};
    r->storage = takeStorage(size);
    if (!r->storage) {
      delete r;
      return nullptr;
    }
    r->storageSize = size;
    r->buf = static_cast<char*>(r->storage);
    r->len = len;
  }
  if (h) h->fileReqs++;
  if (op) op->freq = r;
  fileReqsInFlight_++;
  return r;
}

// Request memory is kept for reuse (a few dozen buffers, 64 MiB at most): a server reading
// 4 KiB pages or a copy loop reading 1 MiB chunks allocates nothing per request.
void* EngineCore::takeStorage(size_t size) {
  for (size_t i = storageCache_.size(); i-- > 0;) {
    auto [p, sz] = storageCache_[i];
    if (sz >= size && sz <= size * 2) {
      storageCache_.erase(storageCache_.begin() + static_cast<ptrdiff_t>(i));
      storageCached_ -= sz;
      return p;
    }
  }
  void* p = nullptr;
  return ::posix_memalign(&p, 4096, size) == 0 ? p : nullptr;
}

void EngineCore::giveStorage(void* p, size_t size) {
  constexpr size_t kMaxCached = 64 * 1024 * 1024;
  if (!p) return;
  if (size > kMaxCached / 4) {
    std::free(p);
    return;
  }
  while (!storageCache_.empty() && (storageCache_.size() >= 64 || storageCached_ + size > kMaxCached)) {
    std::free(storageCache_.front().first);
    storageCached_ -= storageCache_.front().second;
    storageCache_.erase(storageCache_.begin());
  }
  storageCache_.emplace_back(p, size);
  storageCached_ += size;
}

void EngineCore::fileReqEnded(FileReq* r) {
  Handle* h = Handle::of(r->h);
  giveStorage(r->storage, r->storageSize);
  delete r;
  fileReqsInFlight_--;
  if (!h) return;
  h->fileReqs--;
  if (h->zombie) primitiveAfterClose(h);
}

// Hands a request to the backend, or serves it here: inline from the page cache when it can
// be, else on the file worker pool.
void EngineCore::fileRun(FileReq* r) {
  ssize_t res = backend_->fileSubmit(r);
  if (res == kPending) {
    stats_.fileOps++;
    return;
  }
  if (r->op == FileOp::kRead || r->op == FileOp::kWrite) {
    iovec iov{r->buf, r->len};
    ssize_t n;
    do {
      n = r->op == FileOp::kRead ? ::preadv2(r->fd, &iov, 1, r->off, RWF_NOWAIT)
                                 : ::pwritev2(r->fd, &iov, 1, r->off, RWF_NOWAIT);
    } while (n < 0 && errno == EINTR);
    stats_.coreSyscalls++;
    if (n >= 0) {
      stats_.fileFastPath++;
      onFileDone(r, n);
      return;
    }
    if (errno != EAGAIN && errno != EOPNOTSUPP) {
      onFileDone(r, -errno);
      return;
    }
  }
  stats_.fileFallbacks++;
  filePool().submit(r);
}

// A file op starts (after JavaScript checked its arguments): its row of the op table says how
// it runs as a file request (core/ops.def, file).
void EngineCore::startFileOp(Op* op) { (this->*route(op->kind).file)(op); }

// An op with no file request of its own (the handle checks keep it from getting here).
void EngineCore::fileNone(Op* op) { fail(op, -EINVAL); }

void EngineCore::fileOpen(Op* op) {
  FileReq* r = newFileReq(op, nullptr, FileOp::kOpen, 0);
  r->path = op->path;
  r->flags = op->openFlags | O_CLOEXEC;
  r->mode = op->openMode;
  fileRun(r);
}

void EngineCore::fileStat(Op* op) {
  Handle* h = op->h;
  FileReq* r = newFileReq(op, h, FileOp::kStatx, 0);
  if (!h) r->path = op->path;
  if (h) h->fileOps.push_back(op);
  fileRun(r);
}

void EngineCore::fileFsync(Op* op) {
  Handle* h = op->h;
  h->fileOps.push_back(op);
  fileRun(newFileReq(op, h, op->dataOnly ? FileOp::kFdatasync : FileOp::kFsync, 0));
}

void EngineCore::fileWrite(Op* op) {
  Handle* h = op->h;
  h->fileOps.push_back(op);
  if (op->position < 0) {
    // Sequential writes take their range now, so that several in flight never overlap.
    op->position = h->append ? -1 : h->writePos;
    if (!h->append) h->writePos += static_cast<int64_t>(op->data.size());
  }
  fileWriteNext(op);
}

// Reads at a position.
void EngineCore::fileReadAt(Op* op) {
  op->h->fileOps.push_back(op);
  fileReadNext(op);
}

// The next read of a positioned op: readChunk and readInto read once; readExactly until n
// bytes; readAll until EOF.
void EngineCore::fileReadNext(Op* op) {
  Handle* h = op->h;
  size_t want;
  switch (opInfo(op->kind).fileRead) {
    case FileRead::kOnce:
      want = std::min(op->n, kFileChunkMax);  // 1 to n bytes: a chunk need not be all of n
      break;
    case FileRead::kOnceInto:
      want = std::min(op->userLen, kFileChunkMax);  // up to the buffer's length, as read(2)
      break;
    case FileRead::kExactly:
      want = op->n - op->done;
      break;
    default:  // kToEof
      want = kFileChunk;
      break;
  }
  if (h->closed) {
    fail(op, kErrCanceled);  // closed while an earlier request of this op ran
    return;
  }
  want = std::max<size_t>(want, 1);
  if (h->align > 1) want = (want + h->align - 1) / h->align * h->align;
  FileReq* r = newFileReq(op, h, FileOp::kRead, want);
  if (!r) {
    fail(op, -ENOMEM, Syscall::kRead);
    return;
  }
  r->off = (op->position >= 0 ? op->position : h->readPos) + static_cast<int64_t>(op->done);
  fileRun(r);
}

// A readInto's memory, looked up now (see IntoTargets): nullptr when JavaScript detached or
// shrank the buffer since the op was submitted. JavaScript thread.
char* EngineCore::intoMemory(Op* op) {
  return into_ && op->into ? into_->intoMemory(op->into, op->userLen) : nullptr;
}

void EngineCore::fileWriteNext(Op* op) {
  Handle* h = op->h;
  size_t left = op->data.size() - op->done;
  if (left == 0) {
    Completion c;
    c.result = static_cast<int64_t>(op->done);
    finish(op, std::move(c));
    return;
  }
  if (h->closed) {
    fail(op, kErrCanceled, Syscall::kWrite);  // closed while the first part was written
    return;
  }
  FileReq* r = newFileReq(op, h, FileOp::kWrite, left);
  if (!r) {
    fail(op, -ENOMEM, Syscall::kWrite);
    return;
  }
  std::memcpy(r->buf, op->data.data() + op->done, left);
  r->off = op->position < 0 ? -1 : op->position + static_cast<int64_t>(op->done);
  fileRun(r);
}

// The handle's sequential read-ahead: the framing reads (readUntil, lines, readChunk, ...) use
// the file like a socket. A readInto with nothing buffered reads for its own length.
void EngineCore::fileSeqRead(Handle* h) {
  Op* head = h->reads.front();
  FileRead how = opInfo(head->kind).fileRead;
  if (how == FileRead::kOnce || how == FileRead::kOnceInto) {
    // Nothing is buffered (or the head would have taken it): read at the read position for
    // this op alone, into request memory copied to the caller's (readInto) or to its Buffer.
    h->recvPending = true;
    fileReadNext(head);
    return;
  }
  size_t want = kFileChunk;
  if (how == FileRead::kExactly) {
    want = std::max(want, std::min(head->n - std::min(head->n, h->in.size()), kFileChunkMax));
  }
  if (h->align > 1) want = (want + h->align - 1) / h->align * h->align;
  FileReq* r = newFileReq(nullptr, h, FileOp::kRead, want);
  if (!r) {
    h->readError = -ENOMEM;
    return;
  }
  r->sequential = true;
  r->off = h->readPos;
  h->recvPending = true;
  fileRun(r);
}

void EngineCore::fileSeqDone(FileReq* r, ssize_t res) {
  Handle* h = Handle::of(r->h);
  h->recvPending = false;
  if (h->closed) {
    fileReqEnded(r);
    return;
  }
  if (res > 0) h->readPos += res;
  if (res > 0) {
    h->in.append(r->buf, static_cast<size_t>(res));
    stats_.bytesRead += res;
  } else if (res == 0) {
    h->eof = true;
  } else {
    h->readError = static_cast<int>(res);
  }
  pumpReads(h);  // settles what it framed in place before the request's memory goes
  h->eof = false;  // a file may grow: the next read looks again
  fileReqEnded(r);
}

// readInto from the sequential stream: bytes already buffered first. A buffer detached or
// shrunk meanwhile fails the op and leaves the bytes for the File's next read.
bool EngineCore::frameInto(Handle* h, Op* op) {
  if (h->in.size() == 0) return false;
  char* dst = intoMemory(op);
  if (!dst) {
    fail(op, kErrBufferGone);
    return true;
  }
  size_t n = std::min(h->in.size(), op->userLen);
  std::memcpy(dst, h->in.data(), n);
  h->in.consume(n);
  Completion c;
  c.result = static_cast<int64_t>(n);
  finish(op, std::move(c));
  return true;
}

void EngineCore::fileOpenDone(Op* op, FileReq* r, ssize_t res) {
  if (res < 0) {
    fail(op, res, Syscall::kOpen);
    return;
  }
  int fd = static_cast<int>(res);
  Handle* h = newHandle(fd, HandleKind::kFile);
  h->append = r->flags & O_APPEND;
  if (r->flags & O_DIRECT) {
    // The alignment O_DIRECT needs here: what statx says (6.1+), else a page.
    struct statx stx {};
    size_t align = 4096;
    if (::statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) == 0 && (stx.stx_mask & STATX_DIOALIGN) &&
        stx.stx_dio_offset_align > 0) {
      align = std::max<size_t>(stx.stx_dio_offset_align, stx.stx_dio_mem_align);
    }
    h->align = align;
  }
  Completion c;
  c.kind = PayloadKind::kFile;
  c.handle = h->id;
  c.fd = fd;
  c.result = static_cast<int64_t>(h->align);
  finish(op, std::move(c));
}

void EngineCore::onFileDone(FileReq* r, ssize_t res) {
  if (r->sequential) {
    fileSeqDone(r, res);
    return;
  }
  Op* op = r->op_;
  if (!op) {  // the op left (cancel, timeout, close): an opened fd is closed, the rest dropped
    if (r->op == FileOp::kOpen && res >= 0) ::close(static_cast<int>(res));
    fileReqEnded(r);
    return;
  }
  op->freq = nullptr;
  // By the request's kind: an op makes requests of one kind only.
  switch (r->op) {
    case FileOp::kOpen:
      fileOpenDone(op, r, res);
      break;
    case FileOp::kStatx:
      fileStatDone(op, r, res);
      break;
    case FileOp::kFsync:
    case FileOp::kFdatasync:
      fileFsyncDone(op, res);
      break;
    case FileOp::kWrite:
      fileWriteDone(op, res);
      break;
    case FileOp::kRead:
      fileReadDone(op, r, res);
      break;
  }
  fileReqEnded(r);
}

void EngineCore::fileStatDone(Op* op, FileReq* r, ssize_t res) {
  if (res < 0) {
    fail(op, res, Syscall::kStat);
    return;
  }
  Completion c;
  c.kind = PayloadKind::kStat;
  c.data.assign(reinterpret_cast<const char*>(&r->stx), sizeof r->stx);
  finish(op, std::move(c));
}

void EngineCore::fileFsyncDone(Op* op, ssize_t res) {
  if (res < 0) {
    fail(op, res, Syscall::kFsync);
    return;
  }
  Completion c;
  finish(op, std::move(c));
}

void EngineCore::fileWriteDone(Op* op, ssize_t res) {
  if (res < 0) {
    fail(op, res, Syscall::kWrite);
    return;
  }
  op->done += static_cast<size_t>(res);
  stats_.bytesWritten += res;
  if (res == 0) {
    fail(op, -EIO, Syscall::kWrite);  // a regular file that takes nothing: the disk is full
    return;
  }
  fileWriteNext(op);
}

// Positioned reads, and a sequential readInto or readChunk.
void EngineCore::fileReadDone(Op* op, FileReq* r, ssize_t res) {
  Handle* h = op->h;
  // readInto and readChunk settle with their one request; a sequential one then lets the
  // File's next read start.
  FileRead how = opInfo(op->kind).fileRead;
  bool into = how == FileRead::kOnceInto;
  bool once = into || how == FileRead::kOnce;
  bool sequential = once && op->position < 0;
  if (sequential) h->recvPending = false;
  if (res < 0) {
    fail(op, res, Syscall::kRead);
  } else if (once) {
    stats_.bytesRead += res;
    Completion c;
    size_t n = static_cast<size_t>(res);
    char* dst = nullptr;
    if (into) {
      n = std::min(n, op->userLen);
      dst = n > 0 ? intoMemory(op) : nullptr;
      if (dst) std::memcpy(dst, r->buf, n);
    } else {
      n = std::min(n, op->n);
      c.kind = PayloadKind::kBytes;
      c.data.assign(r->buf, n);
    }
    if (sequential) h->readPos += static_cast<int64_t>(n);
    if (into && n > 0 && !dst) {
      // The buffer was detached or shrunk while the request ran: a sequential read's bytes
      // stay buffered for the File's next read; a positioned read's are dropped.
      if (sequential) h->in.append(r->buf, n);
      fail(op, kErrBufferGone);
    } else {
      c.result = static_cast<int64_t>(n);
      finish(op, std::move(c));
    }
  } else {
    stats_.bytesRead += res;
    fileReadMore(op, r, static_cast<size_t>(res));
  }
  if (sequential && !h->closed) pumpReads(h);
}

// readExactly and readAll at a position: the bytes so far, then the next request or the end.
void EngineCore::fileReadMore(Op* op, FileReq* r, size_t n) {
  Handle* h = op->h;
  bool exactly = opInfo(op->kind).fileRead == FileRead::kExactly;
  size_t take = exactly ? std::min(n, op->n - op->done) : n;
  std::string& acc = op->collected;
  acc.append(r->buf, take);
  op->done += take;
  bool eof = n == 0 || (h->align > 1 && n < r->len);
  if (!exactly && op->done > op->maxBytes) {
    fail(op, kErrLimit);
    return;
  }
  bool complete = exactly ? op->done == op->n : eof;
  if (complete || eof) {
    Completion c;
    c.kind = PayloadKind::kBytes;
    c.data = std::move(acc);
    acc.clear();
    c.result = complete ? static_cast<int64_t>(c.data.size()) : kErrIncomplete;
    finish(op, std::move(c));
    return;
  }
  fileReadNext(op);
}

// An op whose request had not started left (taken out of the file worker pool's queue); or,
// at shutdown, one whose request runs on and is dropped when it ends.
void EngineCore::fileOpLeft(Op* op) {
  FileReq* r = op->freq;
  op->freq = nullptr;
  if (!r) return;
  r->op_ = nullptr;
  if (r->cancelledFromQueue || (filePool_ && filePool_->cancel(r))) fileReqEnded(r);
}

}  // namespace async_engine
