// The backend-independent engine: sockets with their input buffers and op queues, the framing
// state machines, chains, the deadline heap and the queue of finished ops handed to JavaScript.
// Everything here runs on the engine's thread (the JS thread that created the engine).
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/backend.h"
#include "core/byte_buffer.h"
#include "core/framing.h"
#include "core/deadline_heap.h"
#include "core/op_table.h"
#include "core/ops.h"
#include "core/small_queue.h"
#include "core/resolver.h"
#include "core/tls.h"

namespace async_engine {

// Engine-level error codes, beside negative errno values. Mapped to names once, in TypeScript.
enum EngineCode : int64_t {
  kErrIncomplete = -100001,  // EOF before the op's goal; payload: the partial bytes
  kErrLimit = -100002,       // more than maxBytes would have to be buffered
  kErrAborted = -100003,     // an earlier chain stage failed
  kErrTimedOut = -100004,    // the op's deadline passed
  kErrCanceled = -100005,    // cancelled by the caller, close() or shutdown()
  kErrBadHandle = -100006,   // the socket or listener is closed
  kErrResolve = -100007,     // getaddrinfo failed; aux holds the EAI_* value
  kErrBufferGone = -100008,  // readInto: the caller's buffer was detached or shrunk meanwhile
  kErrInvalidLength = -100009,  // readLengthPrefixed: the header gave no valid body length
  kErrTls = -100010,  // TLS failed; payload: "CODE\tmessage" (a node:tls-style code)
};

// Result codes that are not a settlement.
constexpr int64_t kProgress = -200001;  // a regex read has new bytes for JS to match, or a
                                        // length-prefixed read a header to take a length from
// A regex read's verdict: the match is empty and at the start (a zero-width pattern such as
// /\b/): the op succeeds with no bytes, and consumes none.
constexpr int64_t kEmptyMatch = -200002;

// Which system call an error came from (reported as err.syscall).
enum class Syscall : uint8_t { kNone, kAccept, kConnect, kRecv, kSend, kGetaddrinfo, kOpen, kRead, kWrite, kFsync, kStat, kShutdown };


struct Op;
struct Handle;
class FilePool;

// Whether a line (without its terminator) is `expect`, or with `prefix` starts with it: how the
// pre-registered replies and the accept filters compare a line, byte for byte.
inline bool lineMatches(const std::string& expect, const char* line, size_t n, bool prefix = false) {
  if (prefix ? n < expect.size() : n != expect.size()) return false;
  return std::memcmp(line, expect.data(), expect.size()) == 0;
}

// acceptWhen's filter (net.cc): what a connection's first line must be for JavaScript to see the
// connection, and what is done with one that fails. Shared by the op that set it and by every
// connection accepted under it.
struct AcceptFilter {
  bool any = false;           // expect null: any complete first line passes
  std::string expect;         // the line, without its terminator
  std::string reply;          // written to a refused connection before it is closed; may be empty
  int64_t timeoutNs = 0;      // a connection silent this long is refused; 0: never
  size_t maxBytes = SIZE_MAX; // a first line longer than this is refused
  bool prefix = false;        // expect is how the line starts, not the whole of it

  // Whether the line (without its terminator) passes.
  bool passes(const char* line, size_t n) const { return any || lineMatches(expect, line, n, prefix); }
};

// Why acceptWhen refused a connection (stats().filteredConnections).
enum class Refusal : uint8_t { kMismatch, kTimeout, kTooLong };

// Socket options set with setsockopt(2) (engine.setSocketOptions, and listen's options for every
// accepted socket). A negative field is left as it is.
struct SocketOptions {
  int noDelay = -1;          // TCP_NODELAY: 0 or 1 (TCP only)
  int keepAlive = -1;        // SO_KEEPALIVE: 0 or 1 (TCP only)
  int keepIdle = -1;         // TCP_KEEPIDLE, seconds (1 and up; with keepAlive on)
  int receiveBuffer = -1;    // SO_RCVBUF, bytes
  int sendBuffer = -1;       // SO_SNDBUF, bytes
};

// A socket's own timer (setTimeouts): the idle timeout while a read waits, or the write timeout
// while a write waits. Due at `since + periodNs`, where `since` is the later of when the wait
// began and the last progress (idle: a byte either way; write: a byte the kernel took). In the
// core's socket-timer heap only while armed; when it comes due after progress it is re-armed,
// so progress itself never touches the heap.
struct SocketTimer {
  int64_t deadline = 0;  // CLOCK_MONOTONIC ns
  uint64_t timerSeq = 0;
  size_t heapIndex = kNotInHeap;
  int64_t periodNs = 0;  // 0: off
  int64_t since = 0;
  Handle* h = nullptr;
  bool isWrite = false;
};

// A socket, listener or file. The backend sees only its BackendHandle base (fd, kind and the
// backend's own fields, see core/backend.h); everything declared here is the core's.
struct Handle : BackendHandle {
  // The Handle a backend's report is about. Exact: the core creates every BackendHandle a
  // backend is given as the base of a Handle, and a backend hands back only those.
  static Handle* of(BackendHandle* b) { return static_cast<Handle*>(b); }

  uint64_t id = 0;
  bool closed = false;
  int pendingPrimitives = 0;  // reports the backend still owes after detach

  // Socket input: bytes read and not yet consumed, and what ended the stream.
  ByteBuffer in;
  bool eof = false;
  int readError = 0;   // negative errno, sticky
  int writeError = 0;  // negative errno, sticky
  bool recvPending = false;
  bool sendPending = false;
  bool writeQueued = false;  // in the engine's list of sockets with corked writes
  size_t replyPending = 0;   // bytes of pre-registered replies queued and not yet sent
  // Half-close: a shutdown(SHUT_WR) in flight (a backend that completes later), for the op with
  // this id; and the sending side already shut down (a later end succeeds at once).
  bool shutdownPending = false;
  int64_t shutdownOp = 0;
  bool writeShut = false;
  char* recvArea = nullptr;        // own receive area, for backends that complete later
  size_t recvAreaSize = 0;
  bool recvAreaGrow = false;       // the last receive filled it: the next one gets a larger one
  // The pending send: (write op id, bytes) in send order, and the bytes of those writes that
  // left early, kept alive until the backend's report.
  std::vector<std::pair<int64_t, size_t>> sendParts;
  std::vector<std::vector<char>> sendOrphans;
  SmallQueue<Op*> reads;
  SmallQueue<Op*> writes;

  // Socket counters (Socket.bytesRead, bytesWritten, pendingWriteBytes), kept here once for
  // every backend: bytes received from the kernel (consumed or not), bytes the kernel took
  // from this socket's writes, and bytes of queued writes it has not taken yet.
  uint64_t bytesIn = 0;
  uint64_t bytesOut = 0;
  uint64_t pendingOut = 0;
  // The socket's idle and write timeouts (setTimeouts); off unless set.
  SocketTimer idleTimer;
  SocketTimer writeTimer;

  // Listener: queued accept ops, and connections accepted for an op that was cancelled.
  SmallQueue<Op*> accepts;
  SmallQueue<int> backlog;
  bool acceptPending = false;
  bool acceptBackoff = false;  // out of fds: accepts wait for a retry
  // Listener: the options every accepted socket gets (TCP_NODELAY on unless asked otherwise).
  SocketOptions acceptOptions{1};

  // acceptWhen (net.cc). A candidate: a connection accepted under a filter whose first line is
  // not judged yet; JavaScript has not seen it. `candidateOf` is its listener. A listener keeps
  // its candidates, the connections that passed while no acceptWhen waited (with their lines,
  // in the order they passed; by handle id, as shutdown may close one first) and the filter the
  // next connections get.
  Handle* candidateOf = nullptr;
  // A refused connection whose peer was still sending: read and dropped until its FIN, for a
  // bounded time and number of bytes, before the close (net.cc, linger). `lingerBytes`: dropped.
  bool lingering = false;
  size_t lingerBytes = 0;
  std::shared_ptr<const AcceptFilter> filter;
  std::vector<Handle*> candidates;
  std::deque<std::pair<uint64_t, std::string>> passed;

  // Connect in progress.
  Op* connecting = nullptr;

  // TLS (core/tls.h): the session, once a handshake op started on the socket. Its input is
  // decrypted into `in`; writes are encrypted into its record stream, which the core sends.
  std::unique_ptr<TlsSession> tls;
  bool tlsPeerClosed = false;  // close_notify received
  bool tlsFailed = false;      // the session failed: reads and writes fail with EPROTO

  // File: the sequential read and write positions, and the requests in flight on it.
  int64_t readPos = 0;
  int64_t writePos = 0;
  bool append = false;  // O_APPEND: sequential writes go to the end
  size_t align = 1;     // O_DIRECT: offsets, sizes and buffers are multiples of this
  int fileReqs = 0;
  bool zombie = false;  // closed and waiting for its last report
  SmallQueue<Op*> fileOps;    // positioned reads, writes, fsync, stat: not in reads/writes

  ~Handle() { std::free(recvArea); }
};

// An op's plain fields, reset in one assignment when an Op is recycled.
struct OpFields {
  int64_t id = 0;
  OpKind kind = OpKind::kSoon;
  Handle* h = nullptr;
  bool started = false;    // in a queue of its handle (or waiting on a primitive)
  int64_t deadline = 0;    // CLOCK_MONOTONIC ns; 0: none
  uint64_t timerSeq = 0;   // orders equal deadlines first-in, first-out
  size_t heapIndex = kNotInHeap;  // position in the deadline heap
  double timeoutMs = 0;    // applied when the op starts (chains start later stages later)

  size_t maxBytes = SIZE_MAX;
  bool asString = true;    // readLine, readUntilLineglob: deliver UTF-8 strings rather than bytes
  size_t n = 0;            // readChunk size, readExactly count, a length-prefixed record's length
  size_t scanFrom = 0;     // framing: bytes already searched without a match
  size_t linesEnd = 0;     // readUntilLineglob: the end of the lines collected so far
  // expectLine with onMismatch: a line other than `expect` (any line but one equal to it; with
  // expectAny none) gets `reply` written by the core and is consumed, while mismatchLeft (-1:
  // unbounded) lasts; the next one settles the op, and JavaScript reports ERR_MISMATCH.
  // serveLines' batch read (ReadLines) filters the same way, and ends its batch with that line.
  // A RegExp expect (expectJs) is matched in JavaScript: the complete lines buffered are
  // reported as progress at once and wait for a verdict (how many to reply to and consume,
  // and whether the next is delivered: lineAccepted).
  bool filtered = false;
  bool expectAny = false;
  bool expectJs = false;
  bool lineAccepted = false;
  int64_t mismatchLeft = -1;
  uint32_t replied = 0;  // serveLines' batch read: mismatched lines answered so far
  // A core-owned write (a reply; negative id, no completion): the read op it answers for,
  // which fails with the write's error if the write fails.
  int64_t owner = 0;

  // Regex reads are matched in JavaScript: the op reports progress and waits for a verdict.
  // So does a length-prefixed read's header; its verdict is the record's length (into `n`).
  bool awaitingVerdict = false;
  size_t reportedLen = 0;
  bool reportedEof = false;

  size_t written = 0;      // writes: bytes the kernel took
  bool tlsQueued = false;  // writes on a TLS socket: encrypted into the record stream
  uint64_t tlsEnd = 0;     // its last byte's place in that stream (done once it was sent)
  size_t addrIndex = 0;    // connects: the candidate address being tried

  // Files.
  int64_t position = -1;      // -1: the sequential position
  void* into = nullptr;       // readInto: the caller's buffer, as IntoTargets knows it
  size_t userLen = 0;         // readInto: its length when the op was submitted
  FileReq* freq = nullptr;    // the request in flight for this op
  size_t done = 0;            // bytes read or written so far
  int openFlags = 0;
  unsigned openMode = 0;
  bool dataOnly = false;      // fsync: fdatasync

  // Chains: the next stage, which starts when this one succeeds.
  Op* next = nullptr;
  Op* prev = nullptr;    // the stage before, while it has not finished
  bool chained = false;  // a later stage of a chain (started by its predecessor)
};

struct Op : OpFields {
  std::string pattern;             // readUntil delimiter, readUntilLineglob glob, a header's delimiter
  std::string expect;              // expectLine with onMismatch: the line that matches
  std::vector<char> reply;         // expectLine with onMismatch: the bytes a mismatched line gets
  std::vector<std::string> delims; // readUntil with several delimiters (pattern unused)
  std::vector<std::string> lines;  // readUntilLineglob: lines found so far (not yet consumed)
  std::vector<size_t> lineEnds;    // expectLine with a RegExp and replies: the lines reported
  std::string collected;           // readExactly, readAll at a file position: the bytes so far
  std::string path;                // open, stat by path
  // Writes: the bytes to send. A vector, not a string: moving it must keep the bytes where a
  // backend may still be reading them (a short string would be copied out of its SSO buffer).
  std::vector<char> data;
  // Connects: candidate addresses, tried in order.
  std::vector<sockaddr_storage> addrs;
  std::vector<socklen_t> addrLens;
  // Resolve: the query.
  std::string host;
  std::string service;
  // A TLS handshake: the session to install on its socket.
  std::unique_ptr<TlsSession> tls;
  // acceptWhen: its filter.
  std::shared_ptr<const AcceptFilter> filter;

  // Back to a fresh op, keeping small buffers for the next one.
  void reset() {
    static_cast<OpFields&>(*this) = OpFields{};
    pattern.clear();
    expect.clear();
    reply.clear();
    delims.clear();
    lines.clear();
    lineEnds.clear();
    collected.clear();
    path.clear();
    if (data.capacity() > 64 * 1024) {
      std::vector<char>().swap(data);
    } else {
      data.clear();
    }
    addrs.clear();
    addrLens.clear();
    host.clear();
    service.clear();
    tls.reset();
    filter.reset();
  }
};

// What a Completion carries beside its result (native/codec.cc turns it into JavaScript values).
enum class PayloadKind : uint8_t {
  kNone,
  kBytes,         // data
  kString,        // data, as UTF-8
  kSocket,        // handle, fd: an accepted or connected socket
  kFile,          // handle, fd: an opened File
  kLines,         // list (linesAsBytes: as Buffers)
  kAddrs,         // list: address, family, address, family, ...
  kProgress,      // data, progressEof, progressOverLimit
  kWritten,       // written: a failed write's bytes the kernel took
  kResolveError,  // gaiError, gaiErrno
  kStat,          // data: a struct statx
  kSocketLine,    // handle, fd, data: a connection acceptWhen let through, and its first line
};

// One finished op (or a progress report), as handed to JavaScript. Each field has one meaning.
struct Completion {
  int64_t id = 0;
  int64_t result = 0;  // >= 0: success value; < 0: -errno or an EngineCode
  PayloadKind kind = PayloadKind::kNone;
  Syscall syscall = Syscall::kNone;
  std::string data;
  std::vector<std::string> list;
  bool linesAsBytes = false;
  bool progressEof = false;        // the stream ended
  bool progressOverLimit = false;  // more than the op's maxBytes are buffered
  uint64_t handle = 0;
  int fd = -1;
  size_t written = 0;
  int gaiError = 0;  // getaddrinfo's EAI_* value
  int gaiErrno = 0;  // errno with EAI_SYSTEM
  // A socket read that left no read queued behind it: how many bytes stayed buffered. JavaScript
  // takes them in bulk (EngineCore::take) and frames the next ops itself.
  size_t rest = 0;
};

struct Stats {
  uint64_t completions = 0;
  uint64_t batches = 0;
  uint64_t bytesRead = 0;
  uint64_t bytesWritten = 0;
  uint64_t coreSyscalls = 0;
  uint64_t fileFastPath = 0;   // file reads and writes served inline (RWF_NOWAIT)
  uint64_t fileFallbacks = 0;  // file requests run by the file worker pool
  uint64_t fileOps = 0;        // file requests the backend ran itself (a ring)
  // Connections acceptWhen refused and closed: first line not the one expected (or none before
  // EOF), silent past the filter's timeout, first line over its maxBytes.
  uint64_t filteredMismatch = 0;
  uint64_t filteredTimeout = 0;
  uint64_t filteredTooLong = 0;
  uint64_t mismatchReplies = 0;  // pre-registered replies queued (onMismatch)
};

// The caller's memory of a readInto. JavaScript may detach or shrink a buffer while the op
// waits, so the core never lets the kernel or a thread write there: reads land in request
// memory, and the core looks the caller's memory up again, on the JavaScript thread, each
// time it copies bytes there. Implemented by the N-API layer.
class IntoTargets {
 public:
  virtual ~IntoTargets() = default;
  // The memory of `target` now, if it is still at least `len` bytes long; nullptr when its
  // buffer was detached or shrunk. JavaScript thread; the pointer is good until JavaScript runs.
  virtual char* intoMemory(void* target, size_t len) = 0;
  // The op is done with `target` (settled or dropped).
  virtual void intoRelease(void* target) = 0;
};

class EngineCore : public Sink {
 public:
  EngineCore();
  ~EngineCore() override;
  // Takes the backend; returns 0, or -errno and the name of the call that failed in *syscall.
  int init(std::unique_ptr<Backend> backend, const char** syscall);
  // Who resolves readInto targets (outlives the core's ops).
  void setIntoTargets(IntoTargets* t) { into_ = t; }

  // Work held back for the end of a batch: corked writes, SQEs not yet handed to the kernel.
  bool backendHasUnsubmitted() const {
    return !dirtyWrites_.empty() || (backend_ && backend_->hasUnsubmitted());
  }
  void flushBackend() {
    if (!backend_) return;
    flushWrites();
    backend_->flush();
  }
  void flushWrites();
  // Completions the backend already holds (a ring's CQ), to be taken with poll(0).
  bool completionsWaiting() const { return backend_ && backend_->completionsWaiting(); }
  // Bytes received for `h` and not consumed: the core's buffer and what the backend holds.
  size_t bufferedBytes(Handle* h) const { return h->in.size() + (backend_ ? backend_->heldBytes(h) : 0); }
  // A socket's counters: 0 bytes received from the kernel (what the backend holds included),
  // 1 bytes the kernel took from its writes, 2 bytes of its writes not yet taken.
  uint64_t socketCounter(Handle* h, int which) const {
    if (which == 0) return h->bytesIn + (backend_ ? backend_->heldBytes(h) : 0);
    return which == 1 ? h->bytesOut : h->pendingOut;
  }
  // Sets a socket's idle and write timeouts, in ms (0: off); a wait under way is timed from now.
  void setTimeouts(Handle* h, double idleMs, double writeMs);
  int pollFd() const { return backend_->pollFd(); }

  // Handles.
  // Returns the listener's fd, or -errno and the system call that failed in *syscall.
  // deferAccept: TCP_DEFER_ACCEPT in seconds (0: off; ignored on a Unix socket).
  int64_t listen(const sockaddr* addr, socklen_t len, int backlog, bool reusePort, bool ipv6Only, int deferAccept,
                 uint64_t* id, const char** syscall);
  int64_t adopt(int fd, uint64_t* id);
  // Socket options (net.cc): on a socket, set now (0, or -errno of the setsockopt that failed);
  // on a listener, kept for every socket it accepts from now on.
  int setSocketOptions(Handle* h, const SocketOptions& o);
  // A socket's options as the kernel reports them (getsockopt); 0 or -errno.
  int socketOptions(Handle* h, SocketOptions* out);
  Handle* handle(uint64_t id);
  void close(uint64_t id);

  // An Op to fill in and submit (recycled from settled ones).
  Op* newOp();
  // Ops. The op belongs to the core from here on; its completion lands in ready().
  void submit(Op* op);
  // Submits a chain: stages[0] starts now, each later one when its predecessor succeeds.
  void submitChain(std::vector<Op*> stages);
  bool cancel(int64_t id);
  // A regex read's verdict from JavaScript: consume > 0 bytes and succeed, or code < 0 to fail,
  // or 0 to wait for more bytes. For a length-prefixed read: > 0 is the whole record's length
  // (header included), read when all of it is buffered. Returns false when the op is gone
  // (cancelled or timed out).
  // A line op with a RegExp expect answers the lines it reported (lineVerdict): 2k + d, k of
  // them answered with the reply and consumed, then (d = 1) the next one delivered.
  bool regexVerdict(int64_t id, int64_t verdict);

  // Bulk hand-over of a socket's input to JavaScript, which frames buffered ops itself. Both
  // only while no read op is queued on the socket (JavaScript's bytes always come first).
  // take: moves up to `n` buffered bytes into `dest`; returns how many.
  size_t take(Handle* h, char* dest, size_t n);
  // unread: puts bytes JavaScript took and did not consume back in front of the buffer, before
  // a read that needs more. False (nothing done) when a read is queued or the socket is gone.
  bool unread(Handle* h, const char* p, size_t n);

  // Runs the backend once (waiting up to timeoutMs, bounded by the next deadline) and expires
  // deadlines. Returns the number of events or -errno.
  int poll(int timeoutMs);
  void expireTimers();
  // Milliseconds to the next deadline: -1 none, 0 due.
  int64_t msToNextDeadline() const;
  int64_t nextDeadline() const;

  std::vector<Completion>& ready() { return ready_; }
  size_t liveOps() const { return ops_.size(); }
  size_t pendingDelivery() const { return undelivered_; }
  void delivered(size_t n) {
    undelivered_ -= n;
    stats_.completions += n;
    stats_.batches++;
  }
  size_t sockets() const { return sockets_; }
  size_t listeners() const { return listeners_; }
  size_t lingering() const { return lingering_; }
  Stats stats() const;
  // The engine's TLS contexts, one per listener configuration and per client configuration.
  TlsContexts& tlsContexts() { return tlsContexts_; }

  // Fails every op with ECANCELED and closes every handle.
  void shutdown();
  // After shutdown: joins the resolver's threads and closes the backend and the core's own fds.
  void release();

  // Sink.
  char* recvSpace(BackendHandle* b, size_t* len) override;
  void onRecv(BackendHandle* b, ssize_t result, const char* data) override;
  void onSend(BackendHandle* b, ssize_t result) override;
  void onAccept(BackendHandle* listener, ssize_t fdOrError) override;
  void onConnect(BackendHandle* b, ssize_t result) override;
  void onShutdown(BackendHandle* b, ssize_t result) override;
  void onWake() override;
  void onFileDone(FileReq* r, ssize_t result) override;

  static int64_t nowNs();
  size_t files() const { return files_; }

 private:
  // What each op kind runs, from the op table (core/ops.def): how it starts, how it frames a
  // stream's buffered input (true: the op finished) and how it runs as a file request.
  struct OpRoute {
    void (EngineCore::*start)(Op*);
    bool (EngineCore::*frame)(Handle*, Op*);
    void (EngineCore::*file)(Op*);
  };
  static const OpRoute kRoutes[kOpCount];
  static const OpRoute& route(OpKind k) { return kRoutes[static_cast<size_t>(k)]; }

  Handle* newHandle(int fd, HandleKind kind);
  Handle* attachNew(int fd, HandleKind kind, int* error, bool closeOnError);
  void start(Op* op);
  void startOnHandle(Op* op);
  void startTimer(Op* op);
  void startSoon(Op* op);
  void startResolve(Op* op);
  void startStat(Op* op);
  void armTimer(Op* op);
  void armSocketTimer(SocketTimer* t);
  void socketTimerDue(SocketTimer* t, int64_t now);
  void progressed(Handle* h, bool wrote);
  void finish(Op* op, Completion&& c);
  void fail(Op* op, int64_t code, Syscall sc = Syscall::kNone);
  void abortAfter(Op* op);
  void unlink(Op* op);
  void freeOp(Op* op);

  void resumeAfter(Handle* h, bool wasHeadRead, bool wasHeadWrite);
  void pumpReads(Handle* h);
  void pumpReadsLoop(Handle* h);
  bool tryFrame(Handle* h, Op* op);  // true: op finished
  bool frameNone(Handle* h, Op* op);
  bool frameUntil(Handle* h, Op* op);
  bool frameLine(Handle* h, Op* op);
  void reportLines(Handle* h, Op* op, Frame first);
  bool frameLines(Handle* h, Op* op);
  bool frameGlob(Handle* h, Op* op);
  bool frameRegex(Handle* h, Op* op);
  bool frameChunk(Handle* h, Op* op);
  bool frameExactly(Handle* h, Op* op);
  bool frameAll(Handle* h, Op* op);
  bool framePrefixed(Handle* h, Op* op);
  bool frameInto(Handle* h, Op* op);
  bool framePeek(Handle* h, Op* op);
  bool frameHandshake(Handle* h, Op* op);
  void tlsReceived(Handle* h, const char* data, size_t n);
  bool sendTls(Handle* h);
  void tlsOutput(Handle* h);
  void failTls(Op* op, TlsSession* s);
  void pumpTlsWrites(Handle* h);
  void finishTlsWrites(Handle* h);
  void tlsSent(Handle* h, size_t n);
  void tlsCloseNotify(Handle* h);
  void failReadAtEnd(Handle* h, Op* op);
  bool queueReply(Handle* h, Op* op);
  bool lineVerdict(Op* op, int64_t verdict);
  void replyDone(Op* op, const Completion& c);
  void pumpWrites(Handle* h);
  bool sendQueued(Handle* h);
  void creditSent(Handle* h, size_t sent);
  void finishSentWrites(Handle* h);
  bool shutdownHead(Handle* h);
  void shutdownResult(Handle* h, Op* op, ssize_t result);
  bool shutdownRunning(Op* op) const;
  static int applySocketOptions(int fd, const SocketOptions& o);
  void pumpAccepts(Handle* l);
  void deliverAccepted(Op* op, int fd);
  void accepted(Op* op, int fd);
  void startAcceptWhen(Op* op);
  void addCandidate(Op* op, int fd);
  void judgeCandidate(Handle* h);
  void candidateEvent(Handle* h, bool timedOut);
  void passCandidate(Handle* h, std::string line);
  void refuseCandidate(Handle* h, Refusal why, bool moreComing);
  void refuseAtAccept(int fd, const AcceptFilter& f, Refusal why, bool reply, bool moreComing);
  void linger(Handle* h);
  void lingerEvent(Handle* h, bool timedOut);
  void drain(int fd);
  void sendRefusal(int fd, const AcceptFilter& f);
  void countRefusal(Refusal why);
  void dropCandidate(Handle* h);
  void deliverPassed(Op* op, Handle* h, std::string&& line);
  void shedPendingConnections(Handle* l);
  static bool outOfFds(ssize_t r);
  void deferAccepts(Handle* l);
  void retryAccepts();
  void startConnect(Op* op);
  void connectResult(Op* op, ssize_t result);
  void releaseHandle(Handle* h);
  static void unlinkUnixPath(int fd);
  bool primitiveAfterClose(Handle* h);
  bool receive(Handle* h);
  void recvResult(Handle* h, ssize_t r, const char* data);

  // Files (files.cc).
  void startFileOp(Op* op);
  void fileNone(Op* op);
  void fileOpen(Op* op);
  void fileStat(Op* op);
  void fileFsync(Op* op);
  void fileWrite(Op* op);
  void fileReadAt(Op* op);
  void fileStatDone(Op* op, FileReq* r, ssize_t res);
  void fileFsyncDone(Op* op, ssize_t res);
  void fileWriteDone(Op* op, ssize_t res);
  void fileReadDone(Op* op, FileReq* r, ssize_t res);
  void fileRun(FileReq* r);
  FileReq* newFileReq(Op* op, Handle* h, FileOp kind, size_t len);
  void fileReqEnded(FileReq* r);
  void fileReadNext(Op* op);
  void fileReadMore(Op* op, FileReq* r, size_t n);
  void fileWriteNext(Op* op);
  void fileOpenDone(Op* op, FileReq* r, ssize_t res);
  void fileSeqRead(Handle* h);
  void fileSeqDone(FileReq* r, ssize_t res);
  void fileOpLeft(Op* op);
  bool fileRequestRunning(Op* op);
  char* intoMemory(Op* op);
  FilePool& filePool();
  void* takeStorage(size_t size);
  void giveStorage(void* p, size_t size);

  std::unique_ptr<Backend> backend_;
  std::unique_ptr<Resolver> resolver_;
  int wakeFd_ = -1;
  int reserveFd_ = -1;            // spare fd, given up to shed connections when out of fds
  std::vector<Handle*> backoff_;  // listeners whose accepts wait after running out of fds
  int64_t backoffAt_ = 0;         // when they are tried again
  bool shuttingDown_ = false;     // shutdown() runs: a handle it closes retries no accepts
  IdTable<Op> ops_;
  IdTable<Handle> handles_;
  std::vector<Handle*> zombies_;  // closed, still owed primitive reports
  uint64_t nextHandle_ = 1;
  int64_t nextInternal_ = -2;  // core-owned ops' ids count down from -2 (-1 is the id table's)
  size_t sockets_ = 0;
  size_t listeners_ = 0;
  size_t lingering_ = 0;  // handles with `lingering` set
  TlsContexts tlsContexts_;
  size_t files_ = 0;
  std::unique_ptr<FilePool> filePool_;
  IntoTargets* into_ = nullptr;
  std::vector<std::pair<void*, size_t>> storageCache_;  // file request memory kept for reuse
  size_t storageCached_ = 0;
  int64_t fileReqsInFlight_ = 0;

  // Deadlines, indexed so that an op that finishes early leaves at once.
  DeadlineHeap<Op> heap_;
  uint64_t timerSeq_ = 0;
  // Sockets' idle and write timers (see SocketTimer).
  DeadlineHeap<SocketTimer> socketTimers_;

  std::vector<Op*> freeOps_;
  std::vector<uint64_t> dirtyWrites_;  // sockets with corked writes, by handle id
  std::vector<Completion> ready_;
  size_t undelivered_ = 0;
  std::vector<char> scratch_;
  Stats stats_;
};

}  // namespace async_engine
