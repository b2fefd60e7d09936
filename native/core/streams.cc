// Streams: a socket's (or a sequentially read file's) input, received into its buffer, framed
// and settled in queue order; and its writes, corked for the batch and sent gathered. The
// counterpart of libuv's stream.c. Engine thread only.
#include <sys/uio.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "core/engine_core.h"
#include "core/framing.h"

namespace async_engine {

namespace {
constexpr int kMaxIov = 64;
}  // namespace

bool EngineCore::regexVerdict(int64_t id, int64_t verdict) {
  Op* op = ops_.find(id);
  if (!op) return false;
  // A regex read answers only a match or a failure, and may answer any report (the native side
  // does not wait for a "no match yet"); a length-prefixed read answers its one header report.
  if (op->filtered && op->expectJs) return lineVerdict(op, verdict);
  bool isLength = hasFlag(op->kind, kVerdictIsLength);
  if (!hasFlag(op->kind, kVerdict) || (isLength && !op->awaitingVerdict)) return false;
  op->awaitingVerdict = false;
  Handle* h = op->h;
  if (verdict == kEmptyMatch && !isLength) {
    Completion c;
    c.kind = PayloadKind::kBytes;
    c.result = 0;
    finish(op, std::move(c));
  } else if (isLength && verdict > 0) {
    op->n = static_cast<size_t>(verdict);  // framed by tryFrame once that much is buffered
  } else if (verdict > 0) {
    size_t n = std::min<size_t>(static_cast<size_t>(verdict), h->in.size());
    Completion c;
    c.kind = PayloadKind::kBytes;
    c.data.assign(h->in.data(), n);
    c.result = static_cast<int64_t>(n);
    h->in.consume(n);
    finish(op, std::move(c));
  } else if (verdict < 0) {
    Completion c;
    c.result = verdict;
    if (verdict == kErrIncomplete) {
      c.kind = PayloadKind::kBytes;
      c.data.assign(h->in.data(), h->in.size());
      h->in.consume(h->in.size());
    }
    finish(op, std::move(c));
  }
  if (!h->closed) pumpReads(h);
  return true;
}

// The lines JavaScript matched against its RegExp: verdict 2k + d replies to the first k
// reported lines and consumes them, then (d = 1) delivers the next (a match, or the mismatch
// that fails the op); with d = 0 the op frames what follows and reports again.
bool EngineCore::lineVerdict(Op* op, int64_t verdict) {
  if (!op->awaitingVerdict || verdict < 0) return false;
  op->awaitingVerdict = false;
  Handle* h = op->h;
  size_t k = std::min(static_cast<size_t>(verdict >> 1), op->lineEnds.size());
  if (k > 0) {
    h->in.consume(std::min(op->lineEnds[k - 1], h->in.size()));
    op->scanFrom = 0;
    for (size_t i = 0; i < k; i++) {
      if (op->mismatchLeft > 0) op->mismatchLeft--;
      if (!queueReply(h, op)) {
        if (!h->closed) pumpReads(h);
        return true;
      }
    }
  }
  op->lineEnds.clear();
  if (verdict & 1) op->lineAccepted = true;
  if (!h->closed) pumpReads(h);
  return true;
}

// ---- reads ----

// A socket's own receive area (backends that complete later) starts small, since an idle
// connection keeps its receive armed, and doubles each time a receive fills it.
constexpr size_t kRecvAreaMin = 4 * 1024;
constexpr size_t kRecvAreaMax = 64 * 1024;

char* EngineCore::recvSpace(BackendHandle* b, size_t* len) {
  if (backend_->completesInline()) {
    *len = scratch_.size();
    return scratch_.data();
  }
  // Nothing is borrowed from the area here (the core settles before it receives again).
  Handle* h = Handle::of(b);
  if (!h->recvArea || h->recvAreaGrow) {
    size_t size = h->recvArea ? std::min(h->recvAreaSize * 2, kRecvAreaMax) : kRecvAreaMin;
    std::free(h->recvArea);
    h->recvArea = static_cast<char*>(std::malloc(size));
    h->recvAreaSize = h->recvArea ? size : 0;
    h->recvAreaGrow = false;
  }
  *len = h->recvAreaSize;
  return h->recvArea;
}

// A primitive reported on a handle that was closed meanwhile: count it off, and free the
// handle with the last one. Returns true if the handle is closed (the report is dropped).
bool EngineCore::primitiveAfterClose(Handle* h) {
  if (!h->closed) return false;
  if (--h->pendingPrimitives <= 0) {
    auto it = std::find(zombies_.begin(), zombies_.end(), h);
    if (it != zombies_.end()) zombies_.erase(it);
    ::close(h->fd);
    delete h;
  }
  return true;
}

// One receive on `h`, its result taken in (recvResult). False when it is pending: recvPending
// is set and the backend reports it later (onRecv).
bool EngineCore::receive(Handle* h) {
  const char* data = nullptr;
  ssize_t r = backend_->recv(h, &data);
  if (r == kPending) {
    h->recvPending = true;
    return false;
  }
  recvResult(h, r, data);
  return true;
}

// `data`: where the backend says the r bytes are (its own memory, the scratch area or the
// handle's receive area); borrowed by the buffer until the next settle().
void EngineCore::recvResult(Handle* h, ssize_t r, const char* data) {
  if (r > 0 && data == h->recvArea && static_cast<size_t>(r) == h->recvAreaSize && h->recvAreaSize < kRecvAreaMax) {
    h->recvAreaGrow = true;  // the sender outpaces the area
  }
  if (r > 0 && h->tls) {
    stats_.bytesRead += r;
    progressed(h, false);
    tlsReceived(h, data, static_cast<size_t>(r));
  } else if (r > 0) {
    h->in.append(data, static_cast<size_t>(r));
    stats_.bytesRead += r;
    h->bytesIn += static_cast<uint64_t>(r);
    progressed(h, false);
  } else if (r == 0) {
    h->eof = true;
  } else {
    h->readError = static_cast<int>(r);
  }
}

// Frames what is buffered for the queued reads, receiving more while the head op needs it.
// Received bytes are framed where they landed; whatever is left is copied into the socket's
// buffer before that memory is received into again, and before returning.
void EngineCore::pumpReads(Handle* h) {
  if (h->lingering) {
    lingerEvent(h, false);  // a refused connection read to its end (net.cc)
    return;
  }
  if (h->candidateOf) {
    candidateEvent(h, false);  // acceptWhen (net.cc): no op reads it, the core judges its first line
    return;
  }
  pumpReadsLoop(h);
  h->in.settle();
}

void EngineCore::pumpReadsLoop(Handle* h) {
  for (;;) {
    while (!h->reads.empty()) {
      Op* op = h->reads.front();
      if (!tryFrame(h, op)) break;
    }
    if (h->reads.empty() || h->closed) return;
    Op* head = h->reads.front();
    if (head->awaitingVerdict) return;
    if (h->eof || h->readError) {
      failReadAtEnd(h, head);
      continue;
    }
    if (h->recvPending) return;
    h->in.settle();
    if (h->kind == HandleKind::kFile) {
      fileSeqRead(h);
      if (h->recvPending) return;
      continue;  // it failed at once (no memory): the head op fails with the error
    }
    if (!receive(h)) return;
  }
}

size_t EngineCore::take(Handle* h, char* dest, size_t n) {
  if (h->kind != HandleKind::kSocket || h->closed || !h->reads.empty()) return 0;
  size_t k = std::min(n, h->in.size());
  if (k == 0) return 0;
  std::memcpy(dest, h->in.data(), k);
  h->in.consume(k);
  return k;
}

bool EngineCore::unread(Handle* h, const char* p, size_t n) {
  if (h->kind != HandleKind::kSocket || h->closed || !h->reads.empty()) return false;
  h->in.prepend(p, n);
  return true;
}

void EngineCore::onRecv(BackendHandle* b, ssize_t result, const char* data) {
  Handle* h = Handle::of(b);
  h->recvPending = false;
  if (primitiveAfterClose(h)) return;
  if (result != kRetry) recvResult(h, result, data);
  pumpReads(h);
}

// The stream ended (EOF or an error) with `op` still short of its goal.
void EngineCore::failReadAtEnd(Handle* h, Op* op) {
  if (h->tlsFailed && h->tls && !h->tls->code().empty()) {
    failTls(op, h->tls.get());  // with TLS's reason (an alert the peer sent, ...)
    return;
  }
  if (h->readError) {
    fail(op, h->readError, Syscall::kRecv);
    return;
  }
  Completion c;
  c.kind = PayloadKind::kBytes;
  switch (opInfo(op->kind).atEnd) {
    case ReadEnd::kEmptyChunk:
      c.result = 0;  // EOF is an empty chunk
      break;
    case ReadEnd::kNothingRead:
      c.kind = PayloadKind::kNone;
      c.result = 0;  // EOF: nothing read
      break;
    case ReadEnd::kDeliverAll:
      c.data.assign(h->in.data(), h->in.size());
      c.result = static_cast<int64_t>(h->in.size());
      h->in.consume(h->in.size());
      break;
    case ReadEnd::kAskJs:
      // JavaScript matches what remains; report the EOF as progress.
      if (!op->reportedEof) {
        op->reportedEof = true;
        op->awaitingVerdict = true;
        Completion p;
        p.id = op->id;
        p.result = kProgress;
        p.kind = PayloadKind::kProgress;
        p.progressEof = true;
        p.data.assign(h->in.data(), std::min(h->in.size(), op->maxBytes));
        p.progressOverLimit = h->in.size() > op->maxBytes;
        ready_.push_back(std::move(p));
        return;
      }
      [[fallthrough]];
    case ReadEnd::kIncomplete:
      c.result = kErrIncomplete;
      c.data.assign(h->in.data(), h->in.size());
      h->in.consume(h->in.size());
      break;
  }
  finish(op, std::move(c));
}

// The head read of `h` takes what it needs of the buffered bytes, if they are enough: its row
// of the op table says how (core/ops.def, frame).
bool EngineCore::tryFrame(Handle* h, Op* op) { return (this->*route(op->kind).frame)(h, op); }

namespace {
// A completion that delivers the first `shown` bytes at `p`.
Completion framed(const char* p, size_t shown, PayloadKind kind) {
  Completion c;
  c.kind = kind;
  c.data.assign(p, shown);
  c.result = static_cast<int64_t>(shown);
  return c;
}
}  // namespace

bool EngineCore::frameNone(Handle* h, Op* op) { return false; }

bool EngineCore::frameUntil(Handle* h, Op* op) {
  const char* p = h->in.data();
  size_t which = 0;
  bool several = !op->delims.empty();
  Frame f = several ? frameDelimiters(p, h->in.size(), op->delims, op->maxBytes, &op->scanFrom, &which)
                    : frameDelimiter(p, h->in.size(), op->pattern, op->maxBytes, &op->scanFrom);
  if (f.status == FrameStatus::kNeedMore) return false;
  if (f.status == FrameStatus::kOverLimit) {
    fail(op, kErrLimit);
    return true;
  }
  Completion c = framed(p, f.end, PayloadKind::kBytes);
  // Which delimiter was found travels as one byte after the frame (at most 16 are given).
  if (several) c.data.push_back(static_cast<char>(which));
  h->in.consume(f.end);
  finish(op, std::move(c));
  return true;
}

bool EngineCore::frameLine(Handle* h, Op* op) {
  if (op->awaitingVerdict) return false;
  for (;;) {
    const char* p = h->in.data();
    Frame f = async_engine::frameLine(p, h->in.size(), op->maxBytes, &op->scanFrom);
    if (f.status == FrameStatus::kNeedMore) return false;
    if (f.status == FrameStatus::kOverLimit) {
      fail(op, kErrLimit);
      return true;
    }
    if (op->filtered && op->expectJs && !op->lineAccepted) {
      reportLines(h, op, f);
      return false;
    }
    // A pre-registered reply: a mismatched line is answered and consumed here, and the op
    // frames the next one, while its replies last. The last mismatch settles the op with its
    // line (JavaScript reports it as ERR_MISMATCH), with no reply.
    bool mismatch = op->filtered && !op->expectAny && !op->expectJs && !lineMatches(op->expect, p, f.content);
    if (mismatch && op->mismatchLeft != 0) {
      h->in.consume(f.end);
      op->scanFrom = 0;
      if (op->mismatchLeft > 0) op->mismatchLeft--;
      if (!queueReply(h, op)) return true;  // it failed the op
      continue;
    }
    Completion c = framed(p, f.content, op->asString ? PayloadKind::kString : PayloadKind::kBytes);
    h->in.consume(f.end);
    finish(op, std::move(c));
    return true;
  }
}

namespace {
constexpr size_t kLinesBatchBytes = 256 * 1024;

void appendU32(std::string* s, uint32_t v) {
  char b[4] = {static_cast<char>(v & 0xff), static_cast<char>((v >> 8) & 0xff),
               static_cast<char>((v >> 16) & 0xff), static_cast<char>((v >> 24) & 0xff)};
  s->append(b, 4);
}
}  // namespace

// The most lines one report of a RegExp-matched expectLine carries: a run of mismatched lines
// costs one crossing per this many, not one each.
constexpr size_t kVerdictLines = 1024;

// expectLine with a RegExp and replies: every complete line buffered (from `first`, up to the
// replies left + 1, kVerdictLines, and about kLinesBatchBytes) reported to JavaScript at once,
// left buffered, as progress: their bytes back to back, one uint32 (little-endian) length per
// line, then their count. JavaScript answers with lineVerdict.
void EngineCore::reportLines(Handle* h, Op* op, Frame first) {
  const char* p = h->in.data();
  size_t len = h->in.size();
  size_t most = kVerdictLines;
  if (op->mismatchLeft >= 0) most = std::min<size_t>(most, static_cast<size_t>(op->mismatchLeft) + 1);
  Completion pr;
  pr.id = op->id;
  pr.result = kProgress;
  pr.kind = PayloadKind::kProgress;
  std::vector<uint32_t> lengths;
  op->lineEnds.clear();
  size_t at = 0;
  Frame f = first;
  for (;;) {
    pr.data.append(p + at, f.content);
    lengths.push_back(static_cast<uint32_t>(f.content));
    at += f.end;
    op->lineEnds.push_back(at);
    if (lengths.size() >= most || pr.data.size() >= kLinesBatchBytes) break;
    size_t scan = 0;
    f = async_engine::frameLine(p + at, len - at, op->maxBytes, &scan);
    if (f.status != FrameStatus::kFound) break;
  }
  for (uint32_t n : lengths) appendU32(&pr.data, n);
  appendU32(&pr.data, static_cast<uint32_t>(lengths.size()));
  op->awaitingVerdict = true;
  ready_.push_back(std::move(pr));
}

// Replies the peer does not read may wait in the write queue up to this many bytes; past it the
// line op fails with ERR_LIMIT rather than let them grow without bound.
constexpr size_t kMaxReplyPending = 1024 * 1024;

// Queues op's reply as a core-owned write, behind the writes already queued (on a TLS socket it
// joins the record stream in the same order). Returns false when it failed the op instead.
bool EngineCore::queueReply(Handle* h, Op* op) {
  if (op->reply.empty()) return true;
  if (h->writeError || h->replyPending + op->reply.size() > kMaxReplyPending) {
    if (h->writeError) {
      fail(op, h->writeError, h->writeError == kErrTimedOut ? Syscall::kWrite : Syscall::kSend);
    } else {
      fail(op, kErrLimit);
    }
    return false;
  }
  stats_.mismatchReplies++;
  Op* w = newOp();
  w->kind = OpKind::kWrite;
  w->id = nextInternal_--;
  w->h = h;
  w->owner = op->id;
  w->data = op->reply;
  h->replyPending += w->data.size();
  ops_.insert(w->id, w);
  start(w);
  return true;
}

// A core-owned reply write ended. Nothing reaches JavaScript; a failure (not a cancel: its
// socket closed) fails the read op it answered for, with the write's error.
void EngineCore::replyDone(Op* w, const Completion& c) {
  Handle* h = w->h;
  if (h) h->replyPending -= std::min(h->replyPending, w->data.size());
  int64_t owner = w->owner;
  unlink(w);
  freeOp(w);
  if (c.result >= 0 || c.result == kErrCanceled || !h || h->closed) return;
  Op* r = ops_.find(owner);
  if (!r) return;
  bool wasHead = !h->reads.empty() && h->reads.front() == r;
  fail(r, c.result, c.syscall);
  resumeAfter(h, wasHead, false);
}

// Every complete line buffered (up to op->n lines and about kLinesBatchBytes bytes) in one
// completion, for serveLines: a crossing carries many lines, not one. The first line alone
// decides an error (ERR_LIMIT); a bad line after good ones waits for the next op, so the good
// ones are delivered first and nothing after the bad one is consumed.
// With a string expect (filtered), a mismatched line is answered with the reply and consumed
// here while replies last (as frameLine does), never delivered, as long as no line of the batch
// comes before it (the reply then waits for the next batch read, behind what JavaScript writes
// for those lines); one past them (or any, with no reply) ends the batch as its last line, and
// JavaScript ends the connection with ERR_MISMATCH.
// A filtered batch ends with one more uint32: how many lines the op answered.

bool EngineCore::frameLines(Handle* h, Op* op) {
  size_t bound = std::min<size_t>(op->maxBytes, UINT32_MAX);
  Completion c;
  c.kind = PayloadKind::kBytes;
  std::vector<uint32_t> lengths;
  size_t at = 0;
  for (;;) {
    const char* p = h->in.data() + at;
    size_t len = h->in.size() - at;
    // The first line delivered keeps its scan position across wake-ups; later ones are looked
    // for in what is buffered now.
    size_t scan = 0;
    Frame f = async_engine::frameLine(p, len, bound, lengths.empty() ? &op->scanFrom : &scan);
    if (f.status == FrameStatus::kNeedMore && lengths.empty()) {
      h->in.consume(at);
      return false;
    }
    if (f.status == FrameStatus::kOverLimit && lengths.empty()) {
      h->in.consume(at);
      fail(op, kErrLimit);
      return true;
    }
    if (f.status != FrameStatus::kFound) break;
    bool mismatch = op->filtered && !lineMatches(op->expect, p, f.content);
    if (mismatch && op->mismatchLeft != 0) {
      // Its reply must follow what JavaScript writes for the lines before it: after a line to
      // deliver, it waits for the next batch read.
      if (!lengths.empty()) break;
      at += f.end;
      op->scanFrom = 0;
      if (op->mismatchLeft > 0) op->mismatchLeft--;
      op->replied++;
      if (!queueReply(h, op)) {
        h->in.consume(at);
        return true;  // it failed the op
      }
      continue;
    }
    c.data.append(p, f.content);
    lengths.push_back(static_cast<uint32_t>(f.content));
    at += f.end;
    if (mismatch) break;  // the last line of the connection: JavaScript reports it
    if (lengths.size() >= std::max<size_t>(op->n, 1) || c.data.size() >= kLinesBatchBytes) break;
  }
  for (uint32_t n : lengths) appendU32(&c.data, n);
  if (op->filtered) appendU32(&c.data, op->replied);
  c.result = static_cast<int64_t>(lengths.size());
  h->in.consume(at);
  finish(op, std::move(c));
  return true;
}

bool EngineCore::frameGlob(Handle* h, Op* op) {
  const char* p = h->in.data();
  size_t len = h->in.size();
  // Lines are collected without consuming, so a cancelled op leaves them all buffered.
  for (;;) {
    size_t lineStart = op->linesEnd;
    // maxBytes bounds every byte up to the matching line's terminator, the earlier lines'
    // terminators included: once they alone pass it, no line can match within the bound.
    if (lineStart > op->maxBytes) {
      op->lines.clear();
      fail(op, kErrLimit);
      return true;
    }
    size_t scan = op->scanFrom - lineStart;
    size_t budget = op->maxBytes - lineStart;
    Frame f = async_engine::frameLine(p + lineStart, len - lineStart, budget, &scan);
    op->scanFrom = lineStart + scan;
    if (f.status == FrameStatus::kNeedMore) return false;
    if (f.status == FrameStatus::kOverLimit) {
      op->lines.clear();
      fail(op, kErrLimit);
      return true;
    }
    op->lines.emplace_back(p + lineStart, f.content);
    op->linesEnd = lineStart + f.end;
    op->scanFrom = op->linesEnd;
    if (globMatch(op->pattern, op->lines.back())) break;
  }
  Completion c;
  c.kind = PayloadKind::kLines;
  c.linesAsBytes = !op->asString;
  c.list = std::move(op->lines);
  c.result = static_cast<int64_t>(op->linesEnd);
  h->in.consume(op->linesEnd);
  finish(op, std::move(c));
  return true;
}

bool EngineCore::frameRegex(Handle* h, Op* op) {
  size_t len = h->in.size();
  if (op->awaitingVerdict) return false;
  if (len == 0 || len <= op->reportedLen) return false;
  op->reportedLen = len;
  // JavaScript answers only a match or a failure; meanwhile receiving goes on, up to the
  // bound or the end of the stream: there the op waits for its answer (a match, ERR_LIMIT,
  // ERR_INCOMPLETE).
  op->awaitingVerdict = len > op->maxBytes || h->eof;
  Completion pr;
  pr.id = op->id;
  pr.result = kProgress;
  pr.kind = PayloadKind::kProgress;
  pr.data.assign(h->in.data(), std::min(len, op->maxBytes));
  pr.progressEof = h->eof;
  pr.progressOverLimit = len > op->maxBytes;
  op->reportedEof = h->eof;
  ready_.push_back(std::move(pr));
  return false;
}

bool EngineCore::frameChunk(Handle* h, Op* op) {
  size_t len = h->in.size();
  if (len == 0) return false;
  size_t n = std::min(len, op->n);
  Completion c = framed(h->in.data(), n, PayloadKind::kBytes);
  h->in.consume(n);
  finish(op, std::move(c));
  return true;
}

// A copy of up to n buffered bytes, none consumed: the next read sees them again.
bool EngineCore::framePeek(Handle* h, Op* op) {
  size_t len = h->in.size();
  if (len == 0) return false;
  Completion c = framed(h->in.data(), std::min(len, op->n), PayloadKind::kBytes);
  finish(op, std::move(c));
  return true;
}

bool EngineCore::framePrefixed(Handle* h, Op* op) {
  if (op->awaitingVerdict) return false;
  if (op->n > 0) return frameExactly(h, op);  // the whole record's length is known: read as readExactly reads
  // The header: JavaScript takes the record's length from it; nothing is consumed yet.
  const char* p = h->in.data();
  size_t len = h->in.size();
  Frame f = op->pattern.empty() ? async_engine::frameLine(p, len, op->maxBytes, &op->scanFrom)
                                : frameDelimiter(p, len, op->pattern, op->maxBytes, &op->scanFrom);
  if (f.status == FrameStatus::kNeedMore) return false;
  if (f.status == FrameStatus::kOverLimit) {
    fail(op, kErrLimit);
    return true;
  }
  op->awaitingVerdict = true;
  Completion pr;
  pr.id = op->id;
  pr.result = kProgress;
  pr.kind = PayloadKind::kProgress;
  pr.data.assign(p, f.end);
  ready_.push_back(std::move(pr));
  return false;
}

bool EngineCore::frameExactly(Handle* h, Op* op) {
  if (h->in.size() < op->n) return false;
  Completion c = framed(h->in.data(), op->n, PayloadKind::kBytes);
  h->in.consume(op->n);
  finish(op, std::move(c));
  return true;
}

bool EngineCore::frameAll(Handle* h, Op* op) {
  if (h->in.size() > op->maxBytes) {
    fail(op, kErrLimit);
    return true;
  }
  return false;  // delivered at EOF by failReadAtEnd
}

// ---- writes ----

// Sends the corked writes of every socket that has some.
void EngineCore::flushWrites() {
  if (dirtyWrites_.empty()) return;
  std::vector<uint64_t> dirty;
  dirty.swap(dirtyWrites_);
  for (uint64_t id : dirty) {
    Handle* h = handle(id);
    if (!h) continue;
    h->writeQueued = false;
    pumpWrites(h);
  }
}

void EngineCore::pumpWrites(Handle* h) {
  if (h->tls) {
    pumpTlsWrites(h);
    return;
  }
  while (!h->writes.empty() && !h->closed) {
    if (h->writeError) {
      // After a write timeout the writes fail as the timed-out ones did (see socketTimerDue).
      fail(h->writes.front(), h->writeError, h->writeError == kErrTimedOut ? Syscall::kWrite : Syscall::kSend);
      continue;
    }
    if (h->sendPending || h->shutdownPending) return;
    finishSentWrites(h);
    if (h->writes.empty()) return;
    if (h->writes.front()->kind == OpKind::kShutdown) {
      if (!shutdownHead(h)) return;
      continue;
    }
    if (!sendQueued(h)) return;
  }
}

// The queued writes of a socket go out in one gathered send (in order, never interleaved), and
// each is finished once all its bytes are out. Returns false when the send is pending (a
// backend that completes later, or a full socket).
bool EngineCore::sendQueued(Handle* h) {
  iovec iov[kMaxIov];
  int n = 0;
  int maxIov = std::min(backend_->maxSendIov(), kMaxIov);
  h->sendParts.clear();
  for (Op* op : h->writes) {
    if (n == maxIov || op->kind == OpKind::kShutdown) break;  // the FIN waits for what is before it
    size_t left = op->data.size() - op->written;
    if (left == 0) continue;
    iov[n++] = iovec{op->data.data() + op->written, left};
    h->sendParts.emplace_back(op->id, left);
  }
  ssize_t r = backend_->send(h, iov, n);
  if (r == kPending) {
    h->sendPending = true;
    return false;
  }
  if (r < 0) {
    h->sendParts.clear();
    h->writeError = static_cast<int>(r);
    return true;
  }
  creditSent(h, static_cast<size_t>(r));
  return true;
}

// Counts `sent` bytes to the writes of the last send, in order. A write that left meanwhile
// (cancelled, timed out) is skipped: its bytes went out all the same.
void EngineCore::creditSent(Handle* h, size_t sent) {
  stats_.bytesWritten += sent;
  h->bytesOut += sent;
  if (sent > 0) progressed(h, true);
  for (auto [id, len] : h->sendParts) {
    if (sent == 0) break;
    size_t take = std::min(sent, len);
    if (Op* op = ops_.find(id)) {
      op->written += take;
      h->pendingOut -= take;  // a write that left took its unsent bytes off when it left
    }
    sent -= take;
  }
  h->sendParts.clear();
}

void EngineCore::finishSentWrites(Handle* h) {
  while (!h->writes.empty() && h->writes.front()->kind != OpKind::kShutdown &&
         h->writes.front()->written == h->writes.front()->data.size()) {
    Op* op = h->writes.front();
    Completion c;
    c.result = static_cast<int64_t>(op->written);
    finish(op, std::move(c));
  }
}

void EngineCore::onSend(BackendHandle* b, ssize_t result) {
  Handle* h = Handle::of(b);
  h->sendPending = false;
  if (primitiveAfterClose(h)) return;
  if (result == kRetry) {
    h->sendParts.clear();
  } else if (result < 0) {
    h->sendParts.clear();
    h->writeError = static_cast<int>(result);
  } else if (h->tls) {
    tlsSent(h, static_cast<size_t>(result));
  } else {
    creditSent(h, static_cast<size_t>(result));
  }
  h->sendOrphans.clear();
  pumpWrites(h);
}

// ---- half-close ----

// The head of the write queue is an end (every write before it has gone out): shut the sending
// side down. Returns false while the shutdown is pending (a backend that completes later).
bool EngineCore::shutdownHead(Handle* h) {
  Op* op = h->writes.front();
  if (h->writeShut) {
    shutdownResult(h, op, 0);  // ended before: nothing more to send
    return true;
  }
  ssize_t r = backend_->shutdown(h);
  if (r == kPending) {
    h->shutdownPending = true;
    h->shutdownOp = op->id;
    return false;
  }
  shutdownResult(h, op, r);
  return true;
}

void EngineCore::shutdownResult(Handle* h, Op* op, ssize_t result) {
  if (result >= 0) h->writeShut = true;
  if (!op) return;  // it left while the shutdown ran (close)
  if (result < 0) {
    fail(op, result, Syscall::kShutdown);
    return;
  }
  Completion c;
  finish(op, std::move(c));
}

// An end whose shutdown is in the kernel: it cannot be taken back, so a cancel or a deadline
// loses and the shutdown's result is delivered.
bool EngineCore::shutdownRunning(Op* op) const {
  return op->kind == OpKind::kShutdown && op->h && op->h->shutdownPending && op->h->shutdownOp == op->id;
}

void EngineCore::onShutdown(BackendHandle* b, ssize_t result) {
  Handle* h = Handle::of(b);
  h->shutdownPending = false;
  if (primitiveAfterClose(h)) return;
  Op* op = ops_.find(h->shutdownOp);
  h->shutdownOp = 0;
  shutdownResult(h, op, result);
  pumpWrites(h);
}

// ---- TLS (core/tls.h) ----
//
// A TLS socket's input is ciphertext: it is fed to the session and the plaintext appended to
// the socket's buffer, so every read op frames plaintext as on a plain socket. Its writes are
// encrypted, in queue order, into the session's record stream once the handshake is done;
// handshake and alert records join the same stream, which goes out in order. A write succeeds
// with its plaintext length once its last record was taken by the kernel; the socket's counters
// (bytesRead, bytesWritten, pendingWriteBytes) count plaintext.

void EngineCore::tlsReceived(Handle* h, const char* data, size_t n) {
  TlsSession* s = h->tls.get();
  s->feed(data, n);
  if (s->established() && !h->tlsFailed) {
    bool closed = false;
    int64_t got = s->decrypt(&h->in, &closed);
    if (got > 0) h->bytesIn += static_cast<uint64_t>(got);
    if (got < 0) {
      h->tlsFailed = true;
      h->readError = -EPROTO;
    }
    if (closed) {
      h->eof = true;
      h->tlsPeerClosed = true;
    }
  }
  // Before the handshake is done the head op (the handshake) drives the session.
  if (s->hasOutput()) pumpWrites(h);
}

void EngineCore::failTls(Op* op, TlsSession* s) {
  Completion c;
  c.result = kErrTls;
  c.kind = PayloadKind::kBytes;
  c.data = s->code() + "\t" + s->message();
  finish(op, std::move(c));
}

bool EngineCore::frameHandshake(Handle* h, Op* op) {
  if (op->tls) {
    if (h->tls) {
      fail(op, -EISCONN);  // TLS already runs on this socket
      return true;
    }
    if (!h->in.empty()) {
      // After STARTTLS the peer's next bytes are TLS records; plaintext still buffered would be
      // read as if it had come through TLS.
      Completion c;
      c.result = kErrTls;
      c.kind = PayloadKind::kBytes;
      c.data = "ERR_TLS_PLAINTEXT_BUFFERED\tplaintext bytes are buffered ahead of the TLS handshake";
      finish(op, std::move(c));
      return true;
    }
    h->tls = std::move(op->tls);
  }
  if (!h->tls) {
    fail(op, -EINVAL);
    return true;
  }
  TlsSession* s = h->tls.get();
  int r = s->handshake();
  if (r < 0) {
    h->tlsFailed = true;
    h->readError = -EPROTO;
    failTls(op, s);
    pumpWrites(h);  // the alert
    return true;
  }
  if (r == 0) {
    if (s->hasOutput()) pumpWrites(h);
    return false;
  }
  bool closed = false;
  int64_t got = s->decrypt(&h->in, &closed);  // what came with the handshake's last flight
  if (got > 0) h->bytesIn += static_cast<uint64_t>(got);
  if (got < 0) {
    h->tlsFailed = true;
    h->readError = -EPROTO;
  }
  if (closed) {
    h->eof = true;
    h->tlsPeerClosed = true;
  }
  Completion c;
  c.result = 0;
  finish(op, std::move(c));
  pumpWrites(h);  // writes queued meanwhile, session tickets
  return true;
}

void EngineCore::pumpTlsWrites(Handle* h) {
  TlsSession* s = h->tls.get();
  while (!h->closed) {
    if (h->sendPending || h->shutdownPending) return;
    finishTlsWrites(h);
    if (!h->writeError && s->hasOutput()) {
      if (!sendTls(h)) return;
      continue;
    }
    if (h->writes.empty()) return;
    if (h->writeError || h->tlsFailed) {
      int e = h->writeError ? h->writeError : -EPROTO;
      fail(h->writes.front(), e, e == kErrTimedOut ? Syscall::kWrite : Syscall::kSend);
      continue;
    }
    if (!s->established()) return;  // the handshake op sends these once it is done
    bool queued = false;
    for (Op* op : h->writes) {
      if (op->kind == OpKind::kShutdown) break;
      if (op->tlsQueued) continue;
      if (!s->encrypt(op->data.data(), op->data.size())) {
        h->tlsFailed = true;
        break;
      }
      op->tlsQueued = true;
      op->tlsEnd = s->produced;
      queued = true;
    }
    if (queued || h->tlsFailed) continue;
    if (h->writes.front()->kind == OpKind::kShutdown) {
      s->closeNotify();  // before the FIN
      if (s->hasOutput()) continue;
      if (!shutdownHead(h)) return;
      continue;
    }
    return;
  }
}

void EngineCore::finishTlsWrites(Handle* h) {
  TlsSession* s = h->tls.get();
  while (!h->writes.empty()) {
    Op* op = h->writes.front();
    if (op->kind == OpKind::kShutdown || !op->tlsQueued || op->tlsEnd > s->sent) return;
    size_t n = op->data.size() - op->written;
    op->written = op->data.size();
    h->pendingOut -= n;
    h->bytesOut += n;
    Completion c;
    c.result = static_cast<int64_t>(op->data.size());
    finish(op, std::move(c));
  }
}

// Sends the head of the record stream. Returns false when the send is pending.
bool EngineCore::sendTls(Handle* h) {
  TlsSession* s = h->tls.get();
  iovec iov[kMaxIov];
  int n = 0;
  int maxIov = std::min(backend_->maxSendIov(), kMaxIov);
  size_t off = s->outFrontSent;
  for (auto& chunk : s->out) {
    if (n == maxIov) break;
    iov[n++] = iovec{chunk.data() + off, chunk.size() - off};
    off = 0;
  }
  ssize_t r = backend_->send(h, iov, n);
  if (r == kPending) {
    h->sendPending = true;
    return false;
  }
  if (r < 0) {
    h->writeError = static_cast<int>(r);
    return true;
  }
  tlsSent(h, static_cast<size_t>(r));
  return true;
}

void EngineCore::tlsSent(Handle* h, size_t n) {
  stats_.bytesWritten += n;
  if (n > 0) progressed(h, true);
  h->tls->credit(n);
}

// close() on an established TLS socket: close_notify, best effort. Sent directly and without
// waiting (MSG_DONTWAIT), and only when nothing else is on its way (no send in flight, no record
// waiting): a record must never be cut into by another. What the kernel does not take is lost.
void EngineCore::tlsCloseNotify(Handle* h) {
  TlsSession* s = h->tls.get();
  if (!s->established() || h->tlsFailed || h->sendPending || h->shutdownPending || h->writeShut) return;
  if (s->hasOutput() || h->writeError) return;
  s->closeNotify();
  for (const auto& chunk : s->out) {
    ssize_t r = ::send(h->fd, chunk.data(), chunk.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    stats_.coreSyscalls++;
    if (r != static_cast<ssize_t>(chunk.size())) break;
  }
  s->out.clear();
  s->outFrontSent = 0;
}

}  // namespace async_engine
