// AsyncEngine: the public surface and each op's life cycle. An op's arguments are checked by
// validate.ts and become an OpRecord (internal/op-record.ts), which is registered here and handed
// to the native core (or the work pool); the batches the core delivers settle each Callback
// exactly once here, their payloads decoded by internal/results.ts. A read whose frame is
// already among the bytes a socket handed over (internal/held.ts) settles without a record, in
// the turn's queue (internal/ready.ts).
import { constants as osConstants } from 'node:os';
import { MessageChannel } from 'node:worker_threads';
import { Callback, type CallbackLike, FailureSink, invoke } from './callback.js';
import {
  EngineError,
  errorFromNative,
  invalidArgType,
  invalidArgValue,
  userCodeError,
  withAddress,
} from './errors.js';
import { Code, Kind, type NativeEngine, type NativeOp } from './internal/native.js';
import { File, Listener, Socket } from './io.js';
import {
  type NativeTlsConfig,
  type StartTlsOptions,
  type TlsConnectOption,
  checkStartTls,
  checkTlsClient,
  checkTlsServer,
  handshakeTimeoutOf,
} from './tls.js';
import { checkImplOptions, chooseImpl, impls } from '../impl/registry.js';
import { type ChainState, OpRecord } from './internal/op-record.js';
import { OpTable } from './internal/op-table.js';
import {
  type PrefixSpec,
  type PrefixState,
  headerOf,
  lineError,
  nativeExpect,
  recordLength,
  recordOf,
  regexVerdict,
} from './internal/framing.js';
import {
  consumeHeld,
  dropHeld,
  heldDelimiterEnd,
  heldDelimiterIndex,
  heldDelimitersEnd,
  heldLine,
  heldLineEnd,
  heldSlice,
  holds,
  takeHeld,
  unreadHeld,
} from './internal/held.js';
import { ReadyQueue } from './internal/ready.js';
import { checkAcceptWhen, deferAcceptOf } from './internal/accept-when.js';
import { type LineHandler, type ServeLinesOptions, serveLines } from './serve-lines.js';
import { type LineBatch, type LineFilter, linesOf } from './internal/lines.js';
import { type ServeHandle, type ServeOptions, runCloseHooks, serve } from './serve.js';
import { failureOf, resultValue } from './internal/results.js';
import { checkSocketTimeouts } from './internal/socket-timeouts.js';
import type { EnginePromises } from '../promises/index.js';
import { WorkPool, type WorkOutcome } from '../work/pool.js';
import type { ThreadsafeEntry } from '../work/threadsafe.js';
import {
  MAX_INT32,
  OPTION_KEYS,
  applyTimeout,
  armSignal,
  callbackOf,
  checkCallback,
  checkCallbacks,
  checkConnectAddress,
  checkDelay,
  checkDelimiter,
  checkDelimiters,
  checkDebug,
  checkDrive,
  checkEncoding,
  checkExpect,
  checkFile,
  checkOnMismatch,
  checkFunction,
  checkGlob,
  checkInt,
  checkIo,
  checkKeys,
  checkListenOptions,
  checkMaxBytes,
  checkOpenArgs,
  checkOptions,
  checkPath,
  checkPosition,
  prefixSpecOf,
  checkReadBuffer,
  checkRegex,
  checkResolve,
  checkRunTimeout,
  checkSignal,
  checkSize,
  checkSocketOptions,
  type NativeSocketOptions,
  socketOptionsIn,
  checkTask,
  checkWorkThreads,
  encodingOf,
  lineBytes,
  limitOf,
  listenerHandle,
  optionsAndCallbacks,
  optionsOf,
  socketHandle,
  toBytes,
} from './validate.js';
import type {
  AcceptExpectation,
  AcceptWhenOptions,
  AddrInfo,
  BoundedOptions,
  ChainLineOptions,
  ChainReadOptions,
  CommonOptions,
  ConnectAddress,
  DriveMode,
  EngineConfig,
  EngineStats,
  FileStat,
  FsyncOptions,
  ImplName,
  LengthPrefixedOptions,
  LengthPrefixedRecord,
  LineExpectation,
  LineOptions,
  ListenOptions,
  ListenerAddress,
  ListenerOptionValues,
  OpOptions,
  OpenOptions,
  PositionOptions,
  ReadUntilResult,
  RegexResult,
  SocketOptionValues,
  SocketOptions,
  SocketTimeouts,
  TcpListenOptions,
  TimerHandle,
  UnixListenOptions,
  WorkTask,
  WriteData,
} from './types.js';

const DEFAULT_MAX_BYTES = 65536;

/**
 * The Callbacks of a chain that starts with an accept or connect: the first stage's `success`
 * gets the new socket, and so do the later stages' `success` and `failure` (a later stage's
 * `failure` gets `undefined` when the first stage failed, since no socket was made).
 */
export type AcceptedChain<B> = [
  CallbackLike<Socket, Socket, undefined>,
  CallbackLike<B, Socket, Socket | undefined>,
];
// Batches taken in one turn of the event loop before it is given back (I/O must not starve).
const MAX_DRAIN_ROUNDS = 64;

/**
 * An engine: one native backend, its sockets and listeners, and the ops in flight on them.
 * Make one with {@link createEngine}.
 */
export class AsyncEngine {
  /** The implementation actually running (`'auto'` resolved). */
  readonly impl: ImplName;
  /** @internal */
  readonly native: NativeEngine;
  readonly #drive: DriveMode;
  readonly #maxBytes: number;
  readonly #encoding: BufferEncoding;
  readonly #ops = new OpTable<OpRecord>();
  #work: WorkPool | undefined;
  #workOps = 0; // submitWork tasks not yet settled
  readonly #entries = new Set<ThreadsafeEntry>();
  readonly #workThreads: number;
  readonly #sockets = new Map<number, Socket | Listener | File>();
  #nextId = 1;
  #closed = false;
  #shutdown: Promise<void> | undefined;
  #runWaiters: Array<() => void> = [];
  // Above zero while a batch is being walked: a nested runOnce() would refill it.
  #delivering = 0;
  // Ops framed in JavaScript from bytes already handed over, waiting for the turn's dispatch.
  readonly #failures: FailureSink;
  readonly #ready: ReadyQueue;
  #flushQueued = false;
  #framedInJs = 0;
  readonly #prefixSpecs = new WeakMap<object, PrefixSpec>();

  /** Prefer {@link createEngine}, which does the same. */
  constructor(config: EngineConfig = {}) {
    const drive = checkDrive(config);
    this.#drive = drive;
    this.#maxBytes = checkMaxBytes(config.maxBytes ?? DEFAULT_MAX_BYTES, 'config.maxBytes');
    this.#encoding = checkEncoding(config.encoding ?? 'utf8', 'config.encoding');
    this.#workThreads = checkWorkThreads(config.work);
    this.#failures = new FailureSink(checkDebug(config.debug));
    this.#ready = new ReadyQueue(this.#failures);
    checkImplOptions(config);
    this.impl = chooseImpl(config.impl ?? 'auto');
    this.native = impls[this.impl].create(config, drive === 'manual', this.#dispatch);
  }

  // ---- listeners and sockets ----

  /**
   * Binds and listens: TCP on `host`/`port` (IPv4 or IPv6 literal; `port: 0` picks a free port)
   * or a Unix socket at `path`. Throws an `EngineError` (e.g. `EADDRINUSE`) when it cannot.
   */
  listen(options: UnixListenOptions): Listener<string>;
  listen(options?: TcpListenOptions): Listener<ListenerAddress>;
  listen(options?: ListenOptions): Listener;
  listen(options: ListenOptions = {}): Listener {
    this.#checkOpen();
    const { host, port, backlog, reusePort, ipv6Only, socketOptions } = checkListenOptions(options);
    const tls = options.tls === undefined ? undefined : checkTlsServer(options.tls, 'options.tls');
    const deferAccept = port < 0 ? 0 : deferAcceptOf(options.deferAccept);
    let ids: [number, number];
    try {
      ids = this.native.listen(host, port, backlog, reusePort, ipv6Only, deferAccept);
    } catch (e) {
      const err = fromThrown(e);
      throw err instanceof EngineError ? withAddress(err, host, port) : err;
    }
    const listener = new Listener(this, ids[0], ids[1]);
    this.#sockets.set(ids[0], listener);
    if (tls !== undefined) this.#listenerTls.set(listener, tls);
    // Kept natively for every socket it accepts (nothing that can fail yet).
    if (socketOptions !== undefined) this.native.setSocketOptions(ids[0], ...socketOptions);
    return listener;
  }

  /**
   * Takes ownership of a connected stream socket's fd made elsewhere. `fd`: an integer from 0
   * to 2147483647 (a RangeError otherwise: no value wraps around to another descriptor).
   */
  adopt(fd: number): Socket {
    this.#checkOpen();
    checkInt(fd, 'fd', 0, MAX_INT32);
    let handle: number;
    try {
      handle = this.native.adopt(fd);
    } catch (e) {
      throw fromThrown(e);
    }
    const sock = new Socket(this, handle, fd);
    this.#sockets.set(handle, sock);
    return sock;
  }

  /**
   * Closes a socket or listener. Its pending ops fail with `ECANCELED` (on a later tick); ops
   * submitted on it afterwards fail with `EBADF`. Closing twice does nothing.
   */
  close(io: Socket | Listener | File): void {
    checkIo(io, this);
    if (io._closed || this.#closed) return;
    if (io instanceof Socket) io._keepCounters();
    io._closed = true;
    if (io instanceof Socket) dropHeld(io);
    this.#sockets.delete(io._handle);
    this.native.close(io._handle);
    if (io instanceof Listener) this.#cancelAcceptHandshakes(io);
    runCloseHooks(io);
  }

  // ---- single ops ----

  /** Accepts the next connection: `success(socket, socket)`. */
  accept(listener: Listener, cb: CallbackLike<Socket, Socket, undefined>): void;
  accept(
    listener: Listener,
    options: CommonOptions,
    cb: CallbackLike<Socket, Socket, undefined>,
  ): void;
  accept(listener: Listener, a: unknown, b?: unknown): void {
    const c = callbackOf<Socket>(a, b);
    const opts = optionsOf(a, b, OPTION_KEYS.common);
    applyTimeout(opts, c);
    const signal = checkSignal(opts);
    this.#chain(this.#acceptStages(listener, c));
    armSignal(signal, c, c, this.#failures);
  }

  /**
   * Connects to `{ host, port }` (a name is resolved first, on the engine's resolver threads) or
   * to a Unix socket `{ path }`: `success(socket, socket)`.
   */
  connect(
    address: ConnectAddress & SocketOptions & TlsConnectOption,
    cb: CallbackLike<Socket, Socket, undefined>,
  ): void;
  connect(
    address: ConnectAddress & SocketOptions & TlsConnectOption,
    options: CommonOptions,
    cb: CallbackLike<Socket, Socket, undefined>,
  ): void;
  connect(
    address: ConnectAddress & SocketOptions & TlsConnectOption,
    a: unknown,
    b?: unknown,
  ): void {
    const c = callbackOf<Socket>(a, b);
    const opts = optionsOf(a, b, OPTION_KEYS.common);
    applyTimeout(opts, c);
    const signal = checkSignal(opts);
    const [stages, connect] = this.#connectTlsStages(address, c);
    const sockOpts = socketOptionsIn(address, 'address');
    if (sockOpts !== undefined) this.#connectOptions.set(connect, sockOpts);
    this.#chain(stages);
    armSignal(signal, c, c, this.#failures);
  }

  /** Resolves a host name: `success(AddrInfo[], undefined)`, in the resolver's order. */
  getaddrinfo(host: string, port: number, cb: CallbackLike<AddrInfo[], undefined, undefined>): void;
  getaddrinfo(
    host: string,
    port: number,
    options: CommonOptions,
    cb: CallbackLike<AddrInfo[], undefined, undefined>,
  ): void;
  getaddrinfo(host: string, port: number, a: unknown, b?: unknown): void {
    const c = callbackOf<AddrInfo[]>(a, b);
    const opts = optionsOf(a, b, OPTION_KEYS.common);
    applyTimeout(opts, c);
    const signal = checkSignal(opts);
    this.#start(this.#resolveStage(host, port, c));
    armSignal(signal, c, c, this.#failures);
  }

  /**
   * Reads through the first `delimiter`: `success(Buffer)`, delimiter included. The bytes
   * after it stay buffered for the next read.
   *
   * Given an array of 1 to 16 delimiters, it reads through the one whose match ends first in
   * the stream (of two ending at the same byte, such as `'\r\n'` and `'\n'`, the longer):
   * `success({ data, delimiter, index })`, `data` through that delimiter, which is reported as
   * it was given, with its index in the array. `maxBytes` bounds the bytes before it.
   */
  readUntil<H extends Socket | File>(
    sock: H,
    delimiter: string | Buffer,
    cb: CallbackLike<Buffer, NoInfer<H>, NoInfer<H>>,
  ): void;
  readUntil<H extends Socket | File>(
    sock: H,
    delimiter: string | Buffer,
    options: BoundedOptions,
    cb: CallbackLike<Buffer, NoInfer<H>, NoInfer<H>>,
  ): void;
  readUntil<H extends Socket | File>(
    sock: H,
    delimiters: ReadonlyArray<string | Buffer>,
    cb: CallbackLike<ReadUntilResult, NoInfer<H>, NoInfer<H>>,
  ): void;
  readUntil<H extends Socket | File>(
    sock: H,
    delimiters: ReadonlyArray<string | Buffer>,
    options: BoundedOptions,
    cb: CallbackLike<ReadUntilResult, NoInfer<H>, NoInfer<H>>,
  ): void;
  readUntil(
    sock: Socket | File,
    delimiter: string | Buffer | ReadonlyArray<string | Buffer>,
    a: unknown,
    b?: unknown,
  ): void {
    const cb = callbackOf<any>(a, b);
    const opts = optionsOf(a, b, OPTION_KEYS.bounded);
    checkPosition(sock, opts, false);
    applyTimeout(opts, cb);
    const signal = checkSignal(opts);
    const handle = socketHandle(sock, this);
    if (Array.isArray(delimiter)) {
      const given = delimiter.slice() as Array<string | Buffer>;
      const delims = checkDelimiters(given);
      const maxBytes = limitOf(opts, this.#maxBytes);
      if (holds(sock)) {
        const end = heldDelimitersEnd(sock, delims, maxBytes);
        if (end >= 0) {
          const index = heldDelimiterIndex;
          const data = sock._in.subarray(sock._off, end);
          const value: ReadUntilResult = { data, delimiter: given[index]!, index };
          this.#local(cb, sock, value, end, undefined);
          armSignal(signal, cb, cb, this.#failures);
          return;
        }
      }
      const bytes = delims.map((d) => d.bytes);
      const rec = new OpRecord(Kind.ReadUntil, cb, sock, handle, cb._timeout, bytes, maxBytes);
      rec.delimiters = given;
      this.#start(rec);
      armSignal(signal, cb, cb, this.#failures);
      return;
    }
    const delim = checkDelimiter(delimiter);
    const maxBytes = limitOf(opts, this.#maxBytes);
    if (holds(sock)) {
      const end = heldDelimiterEnd(sock, delim.text, maxBytes);
      if (end >= 0) {
        this.#local(cb, sock, sock._in.subarray(sock._off, end), end, undefined);
        armSignal(signal, cb, cb, this.#failures);
        return;
      }
    }
    this.#start(new OpRecord(Kind.ReadUntil, cb, sock, handle, cb._timeout, delim.bytes, maxBytes));
    armSignal(signal, cb, cb, this.#failures);
  }

  /** Reads until the peer ends the stream: `success(Buffer)`, bounded by `maxBytes`. */
  readAll<H extends Socket | File>(sock: H, cb: CallbackLike<Buffer, NoInfer<H>, NoInfer<H>>): void;
  readAll<H extends Socket | File>(
    sock: H,
    options: BoundedOptions,
    cb: CallbackLike<Buffer, NoInfer<H>, NoInfer<H>>,
  ): void;
  readAll(sock: Socket | File, a: unknown, b?: unknown): void {
    const cb = callbackOf<Buffer>(a, b);
    const opts = optionsOf(a, b, OPTION_KEYS.bounded);
    const pos = checkPosition(sock, opts, true);
    applyTimeout(opts, cb);
    const signal = checkSignal(opts);
    const handle = socketHandle(sock, this);
    const maxBytes = limitOf(opts, this.#maxBytes);
    this.#start(new OpRecord(Kind.ReadAll, cb, sock, handle, cb._timeout, maxBytes, pos));
    armSignal(signal, cb, cb, this.#failures);
  }

  /**
   * Reads lines until one matches the fnmatch(3) `glob`: `success(string[])`, every line up to
   * and including the match, terminators stripped.
   */
  readUntilLineglob<H extends Socket | File>(
    sock: H,
    glob: string,
    cb: CallbackLike<string[], NoInfer<H>, NoInfer<H>>,
  ): void;
  readUntilLineglob<H extends Socket | File>(
    sock: H,
    glob: string,
    options: OpOptions,
    cb: CallbackLike<string[], NoInfer<H>, NoInfer<H>>,
  ): void;
  readUntilLineglob(sock: Socket | File, glob: string, a: unknown, b?: unknown): void {
    const cb = callbackOf<string[]>(a, b);
    const opts = optionsOf(a, b, OPTION_KEYS.decoded);
    checkPosition(sock, opts, false);
    applyTimeout(opts, cb);
    const signal = checkSignal(opts);
    checkGlob(glob);
    const encoding = encodingOf(opts, this.#encoding);
    const utf8 = encoding === 'utf8' || encoding === 'utf-8';
    const handle = socketHandle(sock, this);
    // Lines are matched as bytes: a glob in another encoding is given as its bytes.
    const pattern = utf8 ? glob : Buffer.from(glob, encoding);
    const maxBytes = limitOf(opts, this.#maxBytes);
    const rec = new OpRecord(Kind.ReadGlob, cb, sock, handle, cb._timeout, pattern, maxBytes);
    rec.encoding = encoding;
    this.#start(rec);
    armSignal(signal, cb, cb, this.#failures);
  }

  /**
   * Reads until `regex` matches the buffered bytes (decoded with the op's encoding):
   * `success({ data, match })`, `data` being the bytes through the end of the match.
   */
  readUntilRegex<H extends Socket | File>(
    sock: H,
    regex: RegExp,
    cb: CallbackLike<RegexResult, NoInfer<H>, NoInfer<H>>,
  ): void;
  readUntilRegex<H extends Socket | File>(
    sock: H,
    regex: RegExp,
    options: OpOptions,
    cb: CallbackLike<RegexResult, NoInfer<H>, NoInfer<H>>,
  ): void;
  readUntilRegex(sock: Socket | File, regex: RegExp, a: unknown, b?: unknown): void {
    const cb = callbackOf<RegexResult>(a, b);
    const opts = optionsOf(a, b, OPTION_KEYS.decoded);
    checkPosition(sock, opts, false);
    applyTimeout(opts, cb);
    const signal = checkSignal(opts);
    const handle = socketHandle(sock, this);
    const rec = this.#regexStage(cb, sock, handle, regex, opts);
    if (holds(sock)) {
      // Matched against the bytes held here first; with no match yet, the native side gets
      // them back and reports as more arrive. A failure that consumes nothing (ERR_LIMIT, a
      // RegExp that throws) is left to the native side too, so that a failure callback that
      // submits the same read again waits for a later round rather than loop in this one.
      const maxBytes = rec.a as number;
      const buf = sock._in;
      const off = sock._off;
      const over = maxBytes >= 0 && buf.length - off > maxBytes;
      const snapshot = buf.subarray(off, over ? off + maxBytes : buf.length);
      let verdict = 0;
      let m: RegExpExecArray | undefined;
      try {
        [verdict, m] = regexVerdict(rec.regex!, rec.encoding, snapshot, false, over);
      } catch {
        verdict = 0; // it throws again where the native side reports, and fails the op there
      }
      if (verdict > 0 || verdict === Code.EmptyMatch) {
        const n = verdict > 0 ? verdict : 0;
        const value: RegexResult = { data: buf.subarray(off, off + n), match: m! };
        this.#local(rec.cb!, sock, value, off + n, undefined);
        armSignal(signal, cb, cb, this.#failures);
        return;
      }
    }
    this.#start(rec);
    armSignal(signal, cb, cb, this.#failures);
  }

  /** Reads what is available, 1 to `size` bytes: `success(Buffer)`; an empty Buffer at EOF. */
  readChunk<H extends Socket | File>(
    sock: H,
    size: number,
    cb: CallbackLike<Buffer, NoInfer<H>, NoInfer<H>>,
  ): void;
  readChunk<H extends Socket | File>(
    sock: H,
    size: number,
    options: PositionOptions,
    cb: CallbackLike<Buffer, NoInfer<H>, NoInfer<H>>,
  ): void;
  readChunk(sock: Socket | File, size: number, a: unknown, b?: unknown): void {
    const cb = callbackOf<Buffer>(a, b);
    checkSize(size, 'size');
    const opts = optionsOf(a, b, OPTION_KEYS.positioned);
    const pos = checkPosition(sock, opts, true, size);
    const handle = socketHandle(sock, this);
    applyTimeout(opts, cb);
    const signal = checkSignal(opts);
    if (holds(sock)) {
      const end = Math.min(sock._in.length, sock._off + size);
      this.#local(cb, sock, sock._in.subarray(sock._off, end), end, undefined);
      armSignal(signal, cb, cb, this.#failures);
      return;
    }
    this.#start(new OpRecord(Kind.ReadChunk, cb, sock, handle, cb._timeout, size, pos));
    armSignal(signal, cb, cb, this.#failures);
  }

  /**
   * Reads exactly `n` bytes: `success(Buffer)`; `ERR_INCOMPLETE` if the stream ends first.
   * `n` may be 0: an empty Buffer, in its turn after the reads before it (a `Content-Length: 0`
   * body needs no special case), even at the end of the stream.
   */
  readExactly<H extends Socket | File>(
    sock: H,
    n: number,
    cb: CallbackLike<Buffer, NoInfer<H>, NoInfer<H>>,
  ): void;
  readExactly<H extends Socket | File>(
    sock: H,
    n: number,
    options: PositionOptions,
    cb: CallbackLike<Buffer, NoInfer<H>, NoInfer<H>>,
  ): void;
  readExactly(sock: Socket | File, n: number, a: unknown, b?: unknown): void {
    const cb = callbackOf<Buffer>(a, b);
    checkSize(n, 'n', 0);
    const opts = optionsOf(a, b, OPTION_KEYS.positioned);
    const pos = checkPosition(sock, opts, true, n);
    const handle = socketHandle(sock, this);
    applyTimeout(opts, cb);
    const signal = checkSignal(opts);
    if (holds(sock)) {
      const end = sock._off + n;
      if (end <= sock._in.length) {
        this.#local(cb, sock, sock._in.subarray(sock._off, end), end, undefined);
        armSignal(signal, cb, cb, this.#failures);
        return;
      }
    }
    this.#start(new OpRecord(Kind.ReadExactly, cb, sock, handle, cb._timeout, n, pos));
    armSignal(signal, cb, cb, this.#failures);
  }

  /**
   * Looks at up to `n` buffered bytes without consuming them: `success(Buffer)`, a copy of 1 to
   * `n` bytes; the next read sees the same bytes. With none buffered it waits for at least one;
   * with any buffered it never waits for more (to wait for `n` bytes, read them).
   * It takes its turn among the reads queued on the socket (queued behind a line read, it sees
   * the bytes after that line). At the end of the stream with nothing buffered: an empty
   * Buffer. Sockets only: a File is refused with a TypeError.
   */
  peek(sock: Socket, n: number, cb: CallbackLike<Buffer, Socket, Socket>): void;
  peek(
    sock: Socket,
    n: number,
    options: CommonOptions,
    cb: CallbackLike<Buffer, Socket, Socket>,
  ): void;
  peek(sock: Socket, n: number, a: unknown, b?: unknown): void {
    const cb = callbackOf<Buffer>(a, b);
    const opts = optionsOf(a, b, OPTION_KEYS.common);
    checkSize(n, 'n');
    if (!(sock instanceof Socket)) throw invalidArgType('socket', 'a Socket', sock);
    applyTimeout(opts, cb);
    const signal = checkSignal(opts);
    const handle = socketHandle(sock, this);
    if (holds(sock)) {
      const off = sock._off;
      const copy = Buffer.from(sock._in.subarray(off, Math.min(sock._in.length, off + n)));
      this.#local(cb, sock, copy, off, undefined);
    } else {
      this.#start(new OpRecord(Kind.Peek, cb, sock, handle, cb._timeout, n, undefined));
    }
    armSignal(signal, cb, cb, this.#failures);
  }

  /**
   * Reads one line (`\n` or `\r\n`, stripped): `success(string)`. `expect`: `null` accepts any
   * line, a string must equal it, a RegExp must match it; otherwise `ERR_MISMATCH` with
   * `err.line` (the line is consumed). With `options.onMismatch` ({@link MismatchReply}), a line
   * that does not match gets the reply written and is consumed, and the op reads on, with no
   * callback, up to `onMismatch.max` times (sockets only).
   */
  expectLine<H extends Socket | File>(
    sock: H,
    expect: LineExpectation,
    cb: CallbackLike<string, NoInfer<H>, NoInfer<H>>,
  ): void;
  expectLine<H extends Socket | File>(
    sock: H,
    expect: LineExpectation,
    options: LineOptions,
    cb: CallbackLike<string, NoInfer<H>, NoInfer<H>>,
  ): void;
  expectLine(sock: Socket | File, expect: LineExpectation, a: unknown, b?: unknown): void {
    const cb = callbackOf<string>(a, b);
    const opts = optionsOf(a, b, OPTION_KEYS.line);
    checkExpect(expect);
    checkPosition(sock, opts, false);
    applyTimeout(opts, cb);
    const signal = checkSignal(opts);
    const handle = socketHandle(sock, this);
    // With pre-registered replies the line is framed natively, where the replies are written.
    if ((opts as LineOptions).onMismatch === undefined && holds(sock)) {
      // A whole line among the held bytes settles here, with no record and no crossing; it is
      // checked against `expect` as it is delivered, like the line stage's.
      const encoding = encodingOf(opts, this.#encoding);
      const line = heldLine(sock, limitOf(opts, this.#maxBytes), encoding);
      if (line !== undefined) {
        this.#local(cb, sock, line, heldLineEnd, expect);
        armSignal(signal, cb, cb, this.#failures);
        return;
      }
    }
    this.#start(this.#lineStage(cb, sock, handle, expect, opts));
    armSignal(signal, cb, cb, this.#failures);
  }

  /**
   * Reads one length-prefixed record in one op: a header (a line, or through
   * `options.delimiter`), then as many body bytes as `options.length(header)` says, then
   * `options.trailer`: `success({ header, body })`. For RESP bulk strings:
   * `{ length: (h) => Number(h.slice(1)), trailer: '\r\n' }`. Errors: `ERR_LIMIT` (header or
   * body over its bound) and `ERR_INVALID_LENGTH` (the rule gave no valid length) leave the
   * record buffered, with `err.line` the header where there is one; `ERR_MISMATCH` (wrong
   * trailer) consumes it; `ERR_INCOMPLETE` at EOF carries every byte read in `err.partial`.
   * With `options.bodyEncoding` the body is a string.
   */
  readLengthPrefixed<H extends Socket | File>(
    sock: H,
    options: LengthPrefixedOptions & { bodyEncoding: BufferEncoding },
    cb: CallbackLike<LengthPrefixedRecord<string>, NoInfer<H>, NoInfer<H>>,
  ): void;
  readLengthPrefixed<H extends Socket | File>(
    sock: H,
    options: LengthPrefixedOptions,
    cb: CallbackLike<LengthPrefixedRecord, NoInfer<H>, NoInfer<H>>,
  ): void;
  readLengthPrefixed(
    sock: Socket | File,
    options: LengthPrefixedOptions,
    cb: CallbackLike<LengthPrefixedRecord<Buffer | string>, any, any>,
  ): void {
    const done = callbackOf<LengthPrefixedRecord<Buffer | string>>(options, cb);
    checkOptions(options);
    checkKeys(options, OPTION_KEYS.lengthPrefixed, 'options');
    const handle = socketHandle(sock, this);
    checkPosition(sock, options as OpOptions, false);
    applyTimeout(options, done);
    const signal = checkSignal(options);
    const spec = prefixSpecOf(this.#prefixSpecs, options, this.#maxBytes, this.#encoding);
    const { delimiter: delim, maxBytes, encoding } = spec;
    const state: PrefixState = { spec, header: '', headerLen: 0, bodyLen: -1 };
    let a: unknown = delim?.bytes;
    if (holds(sock)) {
      const off = sock._off;
      let header: string | undefined;
      let end = -1;
      if (delim === undefined) {
        header = heldLine(sock, maxBytes, encoding);
        end = heldLineEnd;
      } else {
        end = heldDelimiterEnd(sock, delim.text, maxBytes);
        if (end >= 0) header = heldSlice(sock, off, end - delim.text.length, encoding);
      }
      if (header !== undefined) {
        const total = recordLength(state, header, end - off);
        // A failure that consumes nothing (the header refused) is the native side's to report,
        // from the header it frames again: a failure callback that submits the same read again
        // then waits for a later round rather than loop in this one.
        if (typeof total === 'number') {
          if (off + total <= sock._in.length) {
            const value = recordOf(state, sock._in, off, sock);
            this.#local(done, sock, value, off + total, undefined);
            armSignal(signal, done, done, this.#failures);
            return;
          }
          a = total; // the native side reads the rest, knowing the whole record's length
        }
      }
    }
    const rec = new OpRecord(Kind.ReadPrefixed, done, sock, handle, done._timeout, a, maxBytes);
    rec.prefix = state;
    this.#start(rec);
    armSignal(signal, done, done, this.#failures);
  }

  // A length-prefixed read's header arrived natively: its length rule gives the verdict.
  #prefixProgress(id: number, rec: OpRecord, raw: Buffer): void {
    const state = rec.prefix!;
    const total = recordLength(state, headerOf(state.spec, raw), raw.length);
    if (typeof total === 'number') {
      this.native.regexVerdict(id, total);
      return;
    }
    // Only if the op is still waiting natively: a cancel or timeout that ended it since its
    // header was reported stands.
    if (this.native.regexVerdict(id, Code.InvalidLength)) rec.failWith = total;
  }

  /** Writes all of `data`: `success(bytesWritten)`. Writes on one socket go out in order. */
  write<H extends Socket | File>(
    sock: H,
    data: WriteData,
    cb: CallbackLike<number, NoInfer<H>, NoInfer<H>>,
  ): void;
  write<H extends Socket | File>(
    sock: H,
    data: WriteData,
    options: PositionOptions,
    cb: CallbackLike<number, NoInfer<H>, NoInfer<H>>,
  ): void;
  write(sock: Socket | File, data: WriteData, a: unknown, b?: unknown): void {
    const cb = callbackOf<number>(a, b);
    const bytes = toBytes(data);
    const size = Array.isArray(bytes) ? bytes.reduce((n, x) => n + x.length, 0) : bytes.length;
    const opts = optionsOf(a, b, OPTION_KEYS.positioned);
    const pos = checkPosition(sock, opts, true, size);
    applyTimeout(opts, cb);
    const signal = checkSignal(opts);
    const handle = socketHandle(sock, this);
    if (this.#ended.has(sock) && !sock._closed) return this.#failEnded(cb, sock as Socket);
    this.#start(new OpRecord(Kind.Write, cb, sock, handle, cb._timeout, bytes, pos));
    armSignal(signal, cb, cb, this.#failures);
  }

  // ---- half-close and socket options ----

  // Sockets whose sending side was ended (engine.end): a write on them fails with EPIPE.
  readonly #ended = new WeakSet<object>();
  // A connect's socket options, set once it has connected.
  readonly #connectOptions = new WeakMap<OpRecord, NativeSocketOptions>();

  /**
   * Half-close: shuts the socket's sending side down (`shutdown(SHUT_WR)`, a FIN to the peer)
   * once every write submitted before it has gone to the kernel, in order: `success(undefined,
   * socket)`. Reads go on as before (the peer may still send; a read sees EOF when the peer
   * ends too). A write submitted after `end` fails with `EPIPE` (its message says the socket was
   * ended); a second `end` succeeds without sending anything. A cancelled or timed-out `end`
   * sends no FIN, and writes stay refused: call `end` again. TCP and Unix stream sockets; a
   * File or Listener is a TypeError. On `completion` the shutdown is an io_uring
   * `IORING_OP_SHUTDOWN` request (where the kernel has it).
   */
  end(sock: Socket, cb: CallbackLike<void, Socket, Socket>): void;
  end(sock: Socket, options: CommonOptions, cb: CallbackLike<void, Socket, Socket>): void;
  end(sock: Socket, a: unknown, b?: unknown): void {
    const cb = callbackOf<void>(a, b);
    const opts = optionsOf(a, b, OPTION_KEYS.common);
    applyTimeout(opts, cb);
    const signal = checkSignal(opts);
    const handle = this.#streamSocket(sock);
    this.#ended.add(sock);
    this.#start(new OpRecord(Kind.Shutdown, cb, sock, handle, cb._timeout, undefined, undefined));
    armSignal(signal, cb, cb, this.#failures);
  }

  /**
   * Sets socket options now (`setsockopt`): see {@link SocketOptions}. Synchronous; throws a
   * TypeError or RangeError for a bad value, `ERR_INVALID_ARG_VALUE` for a key that is not a
   * socket option, and an `EngineError` (`syscall` `'setsockopt'`) when the kernel refuses one
   * (`EBADF` on a closed socket). The TCP options are skipped on a Unix socket.
   */
  setSocketOptions(sock: Socket, options: SocketOptions): void {
    this.#checkOpen();
    const handle = this.#streamSocket(sock);
    const o = checkSocketOptions(options);
    try {
      this.native.setSocketOptions(handle, ...o);
    } catch (e) {
      throw fromThrown(e);
    }
  }

  /**
   * A socket's options as the kernel reports them now (`getsockopt`). Linux reports
   * `SO_RCVBUF`/`SO_SNDBUF` doubled (twice what was asked for). Throws `EBADF` on a closed socket.
   */
  socketOptions(sock: Socket): SocketOptionValues {
    this.#checkOpen();
    const handle = this.#streamSocket(sock);
    let v: [number, number, number, number, number];
    try {
      v = this.native.socketOptions(handle);
    } catch (e) {
      throw fromThrown(e);
    }
    return {
      noDelay: v[0] !== 0,
      keepAlive: v[1] !== 0,
      keepAliveInitialDelay: v[2] * 1000,
      receiveBufferSize: v[3],
      sendBufferSize: v[4],
    };
  }

  // A Socket of this engine (not a File or a Listener): its handle.
  #streamSocket(sock: unknown): number {
    if (!(sock instanceof Socket)) throw invalidArgType('socket', 'a Socket', sock);
    return socketHandle(sock, this);
  }

  // A write after end: EPIPE, delivered in a later turn like any failure.
  #failEnded(cb: Callback<number>, sock: Socket): void {
    const err = new EngineError(
      'EPIPE',
      'send EPIPE: the socket was ended (engine.end); nothing more can be written to it',
    );
    err.errno = -osConstants.errno.EPIPE;
    err.syscall = 'send';
    err.bytesWritten = 0;
    const rec = new OpRecord(Kind.Soon, cb, sock, 0, 0, undefined, undefined);
    rec.failWith = err;
    this.#start(rec);
  }

  // A connect with socket options has connected: set them, or close the socket and fail.
  #applyConnectOptions(rec: OpRecord, sock: Socket): EngineError | undefined {
    const opts = this.#connectOptions.get(rec);
    if (opts === undefined) return undefined;
    try {
      this.native.setSocketOptions(sock._handle, ...opts);
      return undefined;
    } catch (e) {
      this.close(sock);
      return fromThrown(e) as EngineError;
    }
  }

  // ---- files ----

  /**
   * Opens a file: `success(file)`. `options.flags` as `fs.open` (default `'r'`), `mode` for a
   * file it creates, `direct` for O_DIRECT.
   */
  open(path: string, cb: CallbackLike<File, File, undefined>): void;
  open(path: string, options: OpenOptions, cb: CallbackLike<File, File, undefined>): void;
  open(path: string, a: unknown, b?: unknown): void {
    const cb = callbackOf<File>(a, b);
    const opts: OpenOptions = b === undefined ? {} : (a as OpenOptions);
    const { flags, mode, direct } = checkOpenArgs(path, opts);
    applyTimeout(opts, cb);
    const signal = checkSignal(opts);
    const rec = new OpRecord(
      Kind.Open,
      cb,
      undefined,
      0,
      cb._timeout,
      path,
      flags + mode * 2 ** 32,
    );
    rec.path = path;
    rec.direct = direct;
    this.#start(rec);
    armSignal(signal, cb, cb, this.#failures);
  }

  /**
   * Reads up to `buffer.length` bytes (at most 16 MiB per op) into `buffer`:
   * `success(bytesRead)`, 0 at the end of the file. From the File's read position, or at
   * `options.position`. The engine holds `buffer` until the op settles and copies the bytes
   * into it on this thread; a buffer detached (transferred) or shrunk meanwhile fails the op
   * with `ERR_INVALID_STATE` (a sequential read's bytes then stay buffered for the File's next
   * read). A view of a resizable `ArrayBuffer` or of a growable `SharedArrayBuffer` is refused
   * (`ERR_INVALID_ARG_VALUE`).
   */
  readInto(file: File, buffer: Uint8Array, cb: CallbackLike<number, File, File>): void;
  readInto(
    file: File,
    buffer: Uint8Array,
    options: PositionOptions,
    cb: CallbackLike<number, File, File>,
  ): void;
  readInto(file: File, buffer: Uint8Array, a: unknown, b?: unknown): void {
    const cb = callbackOf<number>(a, b);
    const f = checkFile(file, this);
    checkReadBuffer(buffer);
    const opts = optionsOf(a, b, OPTION_KEYS.positioned);
    const pos = checkPosition(f, opts, true, buffer.length);
    applyTimeout(opts, cb);
    const signal = checkSignal(opts);
    // The record keeps the caller's buffer (its `a`) alive for as long as the op is in flight.
    this.#start(new OpRecord(Kind.ReadInto, cb, f, f._handle, cb._timeout, buffer, pos));
    armSignal(signal, cb, cb, this.#failures);
  }

  /** Flushes the file to its device: `success()`. `{ dataOnly: true }` is fdatasync(2). */
  fsync(file: File, cb: CallbackLike<void, File, File>): void;
  fsync(file: File, options: FsyncOptions, cb: CallbackLike<void, File, File>): void;
  fsync(file: File, a: unknown, b?: unknown): void {
    const cb = callbackOf<void>(a, b);
    const opts = optionsOf(a, b, OPTION_KEYS.fsync) as FsyncOptions;
    applyTimeout(opts, cb);
    const signal = checkSignal(opts);
    const f = checkFile(file, this);
    const dataOnly = opts.dataOnly === true;
    this.#start(new OpRecord(Kind.Fsync, cb, f, f._handle, cb._timeout, dataOnly, undefined));
    armSignal(signal, cb, cb, this.#failures);
  }

  /**
   * The status of an open File or of a path (statx(2)): `success(stat, file)`, the File given
   * or `undefined` for a path.
   */
  stat(file: File, cb: CallbackLike<FileStat, File, File>): void;
  stat(file: File, options: CommonOptions, cb: CallbackLike<FileStat, File, File>): void;
  stat(path: string, cb: CallbackLike<FileStat, undefined, undefined>): void;
  stat(
    path: string,
    options: CommonOptions,
    cb: CallbackLike<FileStat, undefined, undefined>,
  ): void;
  stat(fileOrPath: File | string, cb: CallbackLike<FileStat, File | undefined>): void;
  stat(
    fileOrPath: File | string,
    options: CommonOptions,
    cb: CallbackLike<FileStat, File | undefined>,
  ): void;
  stat(fileOrPath: File | string, a: unknown, b?: unknown): void {
    const c = callbackOf<FileStat>(a, b);
    const opts = optionsOf(a, b, OPTION_KEYS.common);
    applyTimeout(opts, c);
    const signal = checkSignal(opts);
    if (typeof fileOrPath === 'string') {
      checkPath(fileOrPath, 'path');
      this.#start(new OpRecord(Kind.Stat, c, undefined, 0, c._timeout, fileOrPath, undefined));
    } else {
      const f = checkFile(fileOrPath, this);
      this.#start(new OpRecord(Kind.Stat, c, f, f._handle, c._timeout, undefined, undefined));
    }
    armSignal(signal, c, c, this.#failures);
  }

  // ---- work ----

  /**
   * Runs `task` on one of the engine's worker threads: the exported function `task.fn` of
   * `task.module`, called with `task.args` (structured-cloned; `task.transfer` lists buffers to
   * move rather than copy). `success(value)` with what it returned (awaited, if a promise), or
   * `failure(error)` with what it threw. A task still queued is cancelled by `cancel()` (true)
   * or its deadline; one already running cannot be: `cancel()` returns false and its result is
   * delivered, and a deadline stops its thread (`ETIMEDOUT`).
   */
  submitWork<T = unknown>(task: WorkTask, cb: CallbackLike<T, undefined, undefined>): void;
  submitWork<T = unknown>(
    task: WorkTask,
    options: CommonOptions,
    cb: CallbackLike<T, undefined, undefined>,
  ): void;
  submitWork<T = unknown>(task: WorkTask, a: unknown, b?: unknown): void {
    this.#checkOpen();
    const c = callbackOf<T>(a, b);
    const opts = optionsOf(a, b, OPTION_KEYS.common);
    applyTimeout(opts, c);
    const signal = checkSignal(opts);
    const t = checkTask(task);
    this.#start(new OpRecord(Kind.Work, c, undefined, 0, c._timeout, t, undefined));
    armSignal(signal, c, c, this.#failures);
  }

  /**
   * A thread-safe entry: `handler(message)` runs on this engine's thread, as a `callSoon`, for
   * every message another thread sends with `callSoonThreadsafe(entry.port, message)`. The
   * entry does not keep the process alive; `close()` it (or shut the engine down) when done.
   */
  threadsafe(handler: (message: unknown) => void): ThreadsafeEntry {
    this.#checkOpen();
    checkFunction(handler, 'handler');
    const { port1, port2 } = new MessageChannel();
    port1.on('message', (m: unknown) => {
      if (!this.#closed) this.callSoon(() => handler(m));
    });
    port1.unref();
    const entry: ThreadsafeEntry = {
      port: port2,
      close: () => {
        this.#entries.delete(entry);
        port1.close();
      },
    };
    this.#entries.add(entry);
    return entry;
  }

  #workDone(id: number, o: WorkOutcome): void {
    const rec = this.#ops.get(id);
    if (rec === undefined) return; // timed out or shut down meanwhile
    this.#workSettle(rec, o);
  }

  #workTimedOut(id: number): void {
    const rec = this.#ops.get(id);
    if (rec === undefined || this.#work === undefined) return;
    rec.timer = undefined;
    if (!this.#work.cancel(id)) void this.#work.terminate(id);
    this.#workSettle(rec, { ok: false, error: errorFromNative(Code.TimedOut, undefined) });
  }

  #workSettle(rec: OpRecord, o: WorkOutcome): void {
    this.#ops.delete(rec.id);
    this.#workOps--;
    if (rec.timer) clearTimeout(rec.timer);
    const cb = rec.cb;
    if (cb !== null) {
      if (cb._id === rec.id) cb._target = null;
      cb._busy = false;
      if (o.ok) {
        if (cb._success) invoke(cb._success, o.value, undefined);
      } else {
        this.#failures.fail(cb, o.error);
      }
    }
    this.#wakeRunWaiters(true);
  }

  // run()'s promises resolve: nothing is pending any more (`whenIdle`), or the engine shut down.
  #wakeRunWaiters(whenIdle: boolean): void {
    if (this.#runWaiters.length === 0 || (whenIdle && this.#pending())) return;
    const waiters = this.#runWaiters;
    this.#runWaiters = [];
    for (const w of waiters) w();
  }

  // Ops in flight: the native side's, and tasks on the work pool.
  #pending(): boolean {
    return this.#workOps > 0 || this.#ready.count > 0 || this.native.pending();
  }

  // ---- chains ----

  /**
   * Accepts a connection, then writes `data` to it: `[cbSocket, cbWritten]`.
   * On a TLS listener the server handshake runs between: `cbSocket` gets the socket once it
   * is done (see {@link accept}).
   */
  acceptThenWrite(listener: Listener, data: WriteData, cbs: AcceptedChain<number>): void;
  acceptThenWrite(
    listener: Listener,
    data: WriteData,
    options: CommonOptions,
    cbs: AcceptedChain<number>,
  ): void;
  acceptThenWrite(listener: Listener, data: WriteData, a: unknown, b?: unknown): void {
    const [opts, cbs] = optionsAndCallbacks(a, b, OPTION_KEYS.common);
    const [c1, c2] = checkCallbacks(cbs, 2);
    applyTimeout(opts, c1!, c2!);
    const signal = checkSignal(opts);
    const bytes = toBytes(data);
    this.#chain([
      ...this.#acceptStages(listener, c1!),
      new OpRecord(Kind.Write, c2, undefined, 0, c2._timeout, bytes, undefined),
    ]);
    armSignal(signal, c1!, c2!, this.#failures);
  }

  /**
   * Accepts a connection, then reads one line from it: `[cbSocket, cbLine]`.
   * On a TLS listener the server handshake runs between: `cbSocket` gets the socket once it
   * is done (see {@link accept}).
   */
  acceptThenExpectLine(
    listener: Listener,
    expect: LineExpectation,
    cbs: AcceptedChain<string>,
  ): void;
  acceptThenExpectLine(
    listener: Listener,
    expect: LineExpectation,
    options: ChainLineOptions,
    cbs: AcceptedChain<string>,
  ): void;
  acceptThenExpectLine(listener: Listener, expect: LineExpectation, a: unknown, b?: unknown): void {
    const [opts, cbs] = optionsAndCallbacks(a, b, OPTION_KEYS.chainLine);
    const [c1, c2] = checkCallbacks(cbs, 2);
    applyTimeout(opts, c1!, c2!);
    const signal = checkSignal(opts);
    this.#chain([
      ...this.#acceptStages(listener, c1!),
      this.#lineStage(c2!, undefined, 0, expect, opts),
    ]);
    armSignal(signal, c1!, c2!, this.#failures);
  }

  /**
   * Accepts a connection, then reads until `regex` matches what it sent (across lines):
   * `[cbSocket, cbMatch]`, the match as in {@link readUntilRegex}.
   * On a TLS listener the server handshake runs between: `cbSocket` gets the socket once it
   * is done (see {@link accept}).
   */
  acceptThenExpectMultilineRegex(
    listener: Listener,
    regex: RegExp,
    cbs: AcceptedChain<RegexResult>,
  ): void;
  acceptThenExpectMultilineRegex(
    listener: Listener,
    regex: RegExp,
    options: ChainReadOptions,
    cbs: AcceptedChain<RegexResult>,
  ): void;
  acceptThenExpectMultilineRegex(listener: Listener, regex: RegExp, a: unknown, b?: unknown): void {
    const [opts, cbs] = optionsAndCallbacks(a, b, OPTION_KEYS.chainRead);
    const [c1, c2] = checkCallbacks(cbs, 2);
    applyTimeout(opts, c1!, c2!);
    const signal = checkSignal(opts);
    this.#chain([
      ...this.#acceptStages(listener, c1!),
      this.#regexStage(c2!, undefined, 0, regex, opts),
    ]);
    armSignal(signal, c1!, c2!, this.#failures);
  }

  /** Writes `data`, then reads one line: `[cbWritten, cbLine]`. */
  writeThenExpectLine<H extends Socket | File>(
    sock: H,
    data: WriteData,
    expect: LineExpectation,
    cbs: [
      CallbackLike<number, NoInfer<H>, NoInfer<H>>,
      CallbackLike<string, NoInfer<H>, NoInfer<H>>,
    ],
  ): void;
  writeThenExpectLine<H extends Socket | File>(
    sock: H,
    data: WriteData,
    expect: LineExpectation,
    options: ChainLineOptions,
    cbs: [
      CallbackLike<number, NoInfer<H>, NoInfer<H>>,
      CallbackLike<string, NoInfer<H>, NoInfer<H>>,
    ],
  ): void;
  writeThenExpectLine(
    sock: Socket | File,
    data: WriteData,
    expect: LineExpectation,
    a: unknown,
    b?: unknown,
  ): void {
    const [opts, cbs] = optionsAndCallbacks(a, b, OPTION_KEYS.chainLine);
    const [c1, c2] = checkCallbacks(cbs, 2);
    applyTimeout(opts, c1!, c2!);
    const signal = checkSignal(opts);
    const handle = socketHandle(sock, this);
    const bytes = toBytes(data);
    this.#chain([
      new OpRecord(Kind.Write, c1, sock, handle, c1._timeout, bytes, undefined),
      this.#lineStage(c2!, sock, handle, expect, opts),
    ]);
    armSignal(signal, c1!, c2!, this.#failures);
  }

  /**
   * Connects, then reads one line (a greeting): `[cbSocket, cbLine]`.
   * With `address.tls` the client handshake runs between: `cbSocket` gets the socket once it
   * is done (see {@link connect}).
   */
  connectThenExpectLine(
    address: ConnectAddress & TlsConnectOption,
    expect: LineExpectation,
    cbs: AcceptedChain<string>,
  ): void;
  connectThenExpectLine(
    address: ConnectAddress & TlsConnectOption,
    expect: LineExpectation,
    options: ChainLineOptions,
    cbs: AcceptedChain<string>,
  ): void;
  connectThenExpectLine(
    address: ConnectAddress & TlsConnectOption,
    expect: LineExpectation,
    a: unknown,
    b?: unknown,
  ): void {
    const [opts, cbs] = optionsAndCallbacks(a, b, OPTION_KEYS.chainLine);
    const [c1, c2] = checkCallbacks(cbs, 2);
    applyTimeout(opts, c1!, c2!);
    const signal = checkSignal(opts);
    const [connect] = this.#connectTlsStages(address, c1!);
    this.#chain([...connect, this.#lineStage(c2!, undefined, 0, expect, opts)]);
    armSignal(signal, c1!, c2!, this.#failures);
  }

  /**
   * Connects, then writes `line` followed by `\r\n`: `[cbSocket, cbWritten]`.
   * With `address.tls` the client handshake runs between: `cbSocket` gets the socket once it
   * is done (see {@link connect}).
   */
  connectThenWriteLine(
    address: ConnectAddress & TlsConnectOption,
    line: string | Buffer,
    cbs: AcceptedChain<number>,
  ): void;
  connectThenWriteLine(
    address: ConnectAddress & TlsConnectOption,
    line: string | Buffer,
    options: CommonOptions,
    cbs: AcceptedChain<number>,
  ): void;
  connectThenWriteLine(
    address: ConnectAddress & TlsConnectOption,
    line: string | Buffer,
    a: unknown,
    b?: unknown,
  ): void {
    const [opts, cbs] = optionsAndCallbacks(a, b, OPTION_KEYS.common);
    const [c1, c2] = checkCallbacks(cbs, 2);
    applyTimeout(opts, c1!, c2!);
    const signal = checkSignal(opts);
    const bytes = lineBytes(line);
    const [connect] = this.#connectTlsStages(address, c1!);
    const write = new OpRecord(Kind.Write, c2, undefined, 0, c2!._timeout, bytes, undefined);
    this.#chain([...connect, write]);
    armSignal(signal, c1!, c2!, this.#failures);
  }

  /**
   * Resolves `host`, then connects to the first address that answers: `[cbAddrs, cbSocket]`
   * (`cbAddrs`'s `success` gets no socket: `undefined`).
   */
  getaddrinfoThenConnect(
    host: string,
    port: number,
    cbs: [CallbackLike<AddrInfo[], undefined, undefined>, CallbackLike<Socket, Socket, undefined>],
  ): void;
  getaddrinfoThenConnect(
    host: string,
    port: number,
    options: CommonOptions,
    cbs: [CallbackLike<AddrInfo[], undefined, undefined>, CallbackLike<Socket, Socket, undefined>],
  ): void;
  getaddrinfoThenConnect(host: string, port: number, a: unknown, b?: unknown): void {
    const [opts, cbs] = optionsAndCallbacks(a, b, OPTION_KEYS.common);
    const [c1, c2] = checkCallbacks(cbs, 2);
    applyTimeout(opts, c1!, c2!);
    const signal = checkSignal(opts);
    const resolve = this.#resolveStage(host, port, c1!);
    // It connects to what the lookup found.
    const connect = new OpRecord(
      Kind.Connect,
      c2,
      undefined,
      0,
      c2!._timeout,
      undefined,
      undefined,
    );
    this.#chain([resolve, connect]);
    armSignal(signal, c1!, c2!, this.#failures);
  }

  // ---- serving ----

  /**
   * Serves a listener: accepts connections one after another and calls `onConnection(socket)`
   * for each, re-arming the accept itself. The loop pauses at `options.maxConnections` live
   * connections (new ones wait in the kernel backlog), waits and retries when the process is out
   * of fds, reports other accept failures to `options.onError` and goes on, and stops on
   * `options.signal`, `handle.stop()`, `close(listener)` or `shutdown()`; stopping leaves the
   * live connections open.
   *
   * A served socket is never leaked by a lost failure: if `onConnection` throws, the socket is
   * closed (and the error reported); if an op on it fails and its Callback has no `failure`
   * slot, the engine closes it. See {@link ServeHandle} for the count and `done`.
   */
  serve(
    listener: Listener,
    onConnection: (socket: Socket) => void,
    options?: ServeOptions,
  ): ServeHandle {
    return serve(this, listener, onConnection, options);
  }

  /** @internal The default encoding of line reads (`config.encoding`). */
  get _encoding(): BufferEncoding {
    return this.#encoding;
  }

  // ---- TLS ----

  /**
   * Upgrades a connected plain socket to TLS (STARTTLS): runs the handshake, `success(socket)`
   * once it is done. From then on every op on the socket reads and writes through TLS.
   * `options.isServer: true` runs the server side (with `key` and `cert`), otherwise the client
   * side (verifying the server's certificate against `servername`, default: the peer's address).
   * Plaintext still buffered when it starts (bytes the peer sent after its last plaintext line)
   * fails it with `ERR_TLS_PLAINTEXT_BUFFERED`: after STARTTLS the peer's next bytes must be
   * TLS records. A certificate that does not verify fails it with a `node:tls`-style code
   * (`DEPTH_ZERO_SELF_SIGNED_CERT`, `ERR_TLS_CERT_ALTNAME_INVALID`, ...); other TLS failures
   * are `EPROTO`. On TLS already running: `EISCONN`.
   */
  startTls(sock: Socket, options: StartTlsOptions, cb: CallbackLike<Socket, Socket, Socket>): void;
  startTls(
    sock: Socket,
    options: StartTlsOptions,
    opOptions: CommonOptions,
    cb: CallbackLike<Socket, Socket, Socket>,
  ): void;
  startTls(sock: Socket, options: StartTlsOptions, a: unknown, b?: unknown): void {
    const c = callbackOf<Socket>(a, b);
    const opts = optionsOf(a, b, OPTION_KEYS.common);
    if (!(sock instanceof Socket)) throw invalidArgType('socket', 'a Socket', sock);
    const handle = socketHandle(sock, this);
    const tls = checkStartTls(options, sock.remoteAddress ?? '');
    applyTimeout(opts, c);
    const signal = checkSignal(opts);
    this.#start(this.#handshakeStage(c, sock, tls, handle));
    armSignal(signal, c, c, this.#failures);
  }

  /**
   * @internal serve's accept on a TLS listener: the connection before its handshake, which
   * `_serveHandshake` runs next to the loop's next accept, so a peer slow to handshake holds up
   * no other connection.
   */
  _serveAccept(listener: Listener, cb: Callback<Socket>): void {
    const c = callbackOf<Socket>(cb, undefined);
    const handle = listenerHandle(listener, this);
    this.#start(new OpRecord(Kind.Accept, c, undefined, handle, c._timeout, undefined, undefined));
  }

  /** @internal Whether a listener runs TLS. */
  _isTlsListener(listener: Listener): boolean {
    return this.#listenerTls.has(listener);
  }

  /**
   * @internal The listener's server handshake on a connection `_serveAccept` took, with the
   * listener's `handshakeTimeout`; a handshake that fails closes the connection.
   */
  _serveHandshake(listener: Listener, sock: Socket, cb: Callback<Socket>): void {
    const tls = this.#listenerTls.get(listener);
    if (tls === undefined) throw invalidArgValue('listener', 'does not run TLS', listener);
    const c = callbackOf<Socket>(cb, undefined);
    const rec = this.#handshakeStage(c, sock, tls, socketHandle(sock, this));
    this.#closeOnFail.add(rec);
    this.#start(rec);
  }

  // A closed TLS listener's accepts that had taken a connection and were in its handshake: they
  // fail with ECANCELED as the listener's other pending ops do, and their connections close.
  #cancelAcceptHandshakes(listener: Listener): void {
    const pending = this.#acceptHandshakes.get(listener);
    if (pending === undefined) return;
    this.#acceptHandshakes.delete(listener);
    for (const rec of pending) if (this.#ops.get(rec.id) === rec) this.native.cancel(rec.id);
  }

  // A handshake op: its own (a stage after accept or connect, whose socket it closes when it
  // fails: the caller never got that socket), or startTls's on a socket the caller has.
  #handshakeStage(
    c: Callback<Socket>,
    sock: Socket | undefined,
    tls: NativeTlsConfig,
    handle = 0,
  ): OpRecord {
    const timeout = handshakeTimeoutOf(tls, c._timeout);
    const rec = new OpRecord(Kind.TlsHandshake, c, sock, handle, timeout, tls, undefined);
    if (sock === undefined) this.#closeOnFail.add(rec);
    return rec;
  }

  // An accept's stages: on a TLS listener the accept becomes internal (its failure is the
  // Callback's), then the server handshake, whose success hands the Callback the socket.
  #acceptStages(listener: Listener, c: Callback<Socket>): OpRecord[] {
    const handle = listenerHandle(listener, this);
    const tls = this.#listenerTls.get(listener);
    if (tls === undefined) {
      return [new OpRecord(Kind.Accept, c, undefined, handle, c._timeout, undefined, undefined)];
    }
    const accept = new OpRecord(
      Kind.Accept,
      null,
      undefined,
      handle,
      c._timeout,
      undefined,
      undefined,
    );
    accept.internal = true;
    const handshake = this.#handshakeStage(c, undefined, tls);
    // Closing the listener cancels it: to its caller it is still the listener's accept.
    let pending = this.#acceptHandshakes.get(listener);
    if (pending === undefined) this.#acceptHandshakes.set(listener, (pending = new Set()));
    pending.add(handshake);
    handshake.listener = listener;
    return [accept, handshake];
  }

  // A connect's stages (the name lookup, if any, and the connect), and with `tls` the client
  // handshake after them, the connect then internal as above. Also the connect stage itself.
  #connectTlsStages(address: unknown, c: Callback<Socket>): [OpRecord[], OpRecord] {
    const stages = this.#connectStages(address, c);
    const connect = stages[stages.length - 1]!;
    const tlsOpts = (address as TlsConnectOption).tls;
    if (tlsOpts === undefined) return [stages, connect];
    const tls = checkTlsClient(tlsOpts, 'address.tls', connect.peerHost!);
    const inner = new OpRecord(Kind.Connect, null, undefined, 0, c._timeout, connect.a, connect.b);
    inner.peerHost = connect.peerHost;
    inner.peerPort = connect.peerPort;
    inner.internal = true;
    return [[...stages.slice(0, -1), inner, this.#handshakeStage(c, undefined, tls)], inner];
  }

  readonly #listenerTls = new WeakMap<Listener, NativeTlsConfig>();
  // The handshakes of a TLS listener's accepts (and chains) that are in flight, by listener.
  readonly #acceptHandshakes = new WeakMap<Listener, Set<OpRecord>>();
  readonly #closeOnFail = new WeakSet<OpRecord>();
  readonly #handshakeFailed = new WeakSet<ChainState>();

  // ---- accept filters ----

  /**
   * Accepts the next connection whose first line (`\n` or `\r\n`, stripped) is `expect`:
   * `success(line, socket)`, the line a string (a Buffer when `expect` is bytes) and the socket
   * with any bytes after that line still to read. `expect`: a string (compared as UTF-8), a
   * Buffer, or `null` for any complete line. The engine accepts every waiting connection and
   * reads its first line natively; one whose line does not match, that stays silent past
   * `options.timeout`, or whose line is over `options.maxBytes`, gets `options.reply` (if given)
   * and is closed there: no JavaScript runs for it, and `stats().filteredConnections` counts it.
   * One whose peer was still sending (its bytes stop mid-line) is read to its FIN first (at
   * most 2 s and 1 MiB), so that the reply is not lost to a reset
   * (`stats().lingeringConnections`). The op waits, like `accept`, until one connection
   * passes. Connections that pass while no `acceptWhen` waits are kept (in order) for the next
   * one; at most 1024 connections are judged at once per listener, the rest wait in the
   * kernel's backlog. The Callback's `timeout` is the op's deadline. TCP and Unix listeners; not
   * a TLS listener (a TypeError).
   */
  acceptWhen(
    listener: Listener,
    expect: string | null,
    cb: CallbackLike<string, Socket, undefined>,
  ): void;
  acceptWhen(
    listener: Listener,
    expect: string | null,
    options: AcceptWhenOptions,
    cb: CallbackLike<string, Socket, undefined>,
  ): void;
  acceptWhen(
    listener: Listener,
    expect: Uint8Array,
    cb: CallbackLike<Buffer, Socket, undefined>,
  ): void;
  acceptWhen(
    listener: Listener,
    expect: Uint8Array,
    options: AcceptWhenOptions,
    cb: CallbackLike<Buffer, Socket, undefined>,
  ): void;
  acceptWhen(
    listener: Listener,
    expect: AcceptExpectation,
    options: AcceptWhenOptions,
    cb: CallbackLike<string | Buffer, Socket, undefined>,
  ): void;
  acceptWhen(listener: Listener, expect: unknown, a: unknown, b?: unknown): void {
    const c = callbackOf<string | Buffer>(a, b);
    const opts = optionsOf(a, b, OPTION_KEYS.acceptWhen) as AcceptWhenOptions;
    const signal = checkSignal(opts);
    const args = checkAcceptWhen(expect, opts, this.#maxBytes);
    const handle = listenerHandle(listener, this);
    if (this.#listenerTls.has(listener)) {
      throw invalidArgValue('listener', 'must not be a TLS listener for acceptWhen', listener);
    }
    const rec = new OpRecord(
      Kind.AcceptWhen,
      c,
      undefined,
      handle,
      c._timeout,
      args.a,
      args.maxBytes,
    );
    rec.lineAsBytes = args.lineAsBytes;
    this.#start(rec);
    armSignal(signal, c, c, this.#failures);
  }

  /**
   * A listener's options as the kernel reports them now (`getsockopt`). Throws `EBADF` on a
   * closed listener.
   */
  listenerOptions(listener: Listener): ListenerOptionValues {
    this.#checkOpen();
    const handle = listenerHandle(listener, this);
    try {
      return { deferAccept: this.native.deferAccept(handle) };
    } catch (e) {
      throw fromThrown(e);
    }
  }

  // ---- line protocol handlers ----

  /**
   * Serves a listener with a line protocol handler, in the style of Twisted's `LineReceiver`:
   * the loop of {@link serve} accepts, then for each connection calls
   * `handler.connectionMade(socket)`, `handler.lineReceived(line, socket)` for each line in
   * order, and `handler.connectionLost(socket, err)` exactly once when it is over. Every complete
   * line buffered crosses from native code at once (up to 4096 per crossing), so a peer that
   * pipelines many lines costs few wake-ups of JavaScript (`stats().completions`). A handler
   * method that throws closes its connection (reported to `options.onError`). `options`: those
   * of `serve`, plus `expect`, `onMismatch`, `maxBytes` and `idleTimeout`
   * ({@link ServeLinesOptions}).
   */
  serveLines(listener: Listener, options: ServeLinesOptions, handler: LineHandler): ServeHandle;
  serveLines(listener: Listener, handler: LineHandler): ServeHandle;
  serveLines(listener: Listener, a: unknown, b?: unknown): ServeHandle {
    const [options, handler] = b === undefined ? [{}, a] : [a, b];
    return serveLines(this, listener, options as ServeLinesOptions, handler as LineHandler);
  }

  /**
   * @internal One batch read of lines for serveLines: every complete line buffered (at least
   * one, at most `count`), each at most `maxBytes` bytes (undefined: the engine's bound). With
   * `filter` and an expect the native side can compare as bytes, a line other than it gets the
   * reply written natively and is not delivered, `left` times (-1: unbounded); the next ends
   * the batch, and the batch's `replied` counts the replies. Otherwise every line is delivered.
   */
  _readLines(
    sock: Socket,
    maxBytes: number | undefined,
    count: number,
    filter: LineFilter | undefined,
    cb: Callback<LineBatch>,
  ): void {
    const c = checkCallback<LineBatch>(cb);
    const handle = socketHandle(sock, this);
    const bound = maxBytes ?? this.#maxBytes;
    const bytes = filter === undefined ? true : nativeExpect(filter.expect, this.#encoding);
    const b = bytes === true ? count : [count, bytes, filter!.reply ?? null, filter!.left];
    const rec = new OpRecord(Kind.ReadLines, c, sock, handle, c._timeout, bound, b);
    rec.encoding = this.#encoding;
    this.#start(rec);
  }

  // ---- bare callbacks and the loop ----

  /** Runs `fn` on a later turn, in the order of `callSoon` calls. */
  callSoon(fn: () => void): TimerHandle {
    return this.#bare(fn, Kind.Soon, 0);
  }

  /**
   * Runs `fn` after `ms` milliseconds (monotonic clock); equal deadlines run in call order.
   * `ms`: any finite number >= 0, fractions allowed (a delay past about 146 years saturates).
   */
  callLater(ms: number, fn: () => void): TimerHandle {
    checkDelay(ms, 'ms');
    return this.#bare(fn, Kind.Sleep, ms);
  }

  /**
   * @internal callLater with a Callback, for the Promise layer's sleep: `success()` after `ms`,
   * or `failure` with `ECANCELED` when it is cancelled (by `cancel()` or by shutdown).
   */
  _sleep(ms: number, cb: CallbackLike<void, undefined, undefined>): void {
    checkDelay(ms, 'ms');
    const c = checkCallback<void>(cb);
    this.#start(new OpRecord(Kind.Sleep, c, undefined, 0, ms, undefined, undefined));
  }

  /**
   * Waits up to `timeout` ms (default 0: do not wait) for ops to finish, then dispatches every
   * finished op in one batch. Returns the number of ops settled. The loop of `drive: 'manual'`.
   * `timeout`: a number of milliseconds from 0 to 2147483647 (rounded up to a whole ms).
   */
  runOnce(options: { timeout?: number } = {}): number {
    this.#checkOpen();
    if (this.#delivering > 0) {
      // The batch being delivered lives in arrays a nested round would refill: the rest of it
      // would never settle. asyncio refuses a nested run_until_complete for the same reason.
      const err = new Error(
        'runOnce() cannot be called from inside an engine callback: the batch being delivered ' +
          'still has ops to settle; return from the callback instead',
      ) as Error & { code: string };
      err.code = 'ERR_INVALID_STATE';
      throw err;
    }
    const timeout = checkRunTimeout(options);
    const local = this.#flushReady();
    // The ops its batch's callbacks submit and that settle in JavaScript in that same dispatch
    // are settled by this call too: the native count does not see them.
    const framedBefore = this.#framedInJs;
    const settled = this.native.runOnce(local > 0 ? 0 : timeout);
    return local + settled + (this.#framedInJs - framedBefore);
  }

  /**
   * Resolves when nothing is pending any more (no op in flight), or the engine is shut down.
   * With `drive: 'manual'` it drives the engine itself meanwhile.
   */
  run(): Promise<void> {
    if (this.#drive === 'manual') return this.#runManual();
    return new Promise((resolve) => {
      if (this.#closed || !this.#pending()) {
        setImmediate(resolve);
        return;
      }
      this.#runWaiters.push(resolve);
    });
  }

  async #runManual(): Promise<void> {
    while (!this.#closed && this.#pending()) {
      this.#flushReady();
      if (!this.native.pending()) continue;
      this.native.runOnce(10);
      await new Promise<void>((r) => setImmediate(r));
    }
  }

  /**
   * Cancels every op (each fails with `ECANCELED`), closes every socket and listener and
   * releases the backend. Resolves once those failures have been delivered; nothing is called
   * after that. Later calls return the same promise.
   */
  shutdown(): Promise<void> {
    if (this.#shutdown) return this.#shutdown;
    this.#closed = true;
    const work = this.#work?.close();
    for (const entry of [...this.#entries]) entry.close();
    for (const io of this.#sockets.values()) if (io instanceof Socket) io._keepCounters();
    const [count, idsResults, payloads, arena] = this.native.shutdown();
    for (const io of this.#sockets.values()) io._closed = true;
    this.#sockets.clear();
    this.#shutdown = new Promise<void>((resolve) => {
      setImmediate(() => {
        this.#deliver(count, idsResults, payloads, arena);
        this.#flushReady();
        // Anything the native side no longer knew of (it cannot be, but the contract is
        // exactly once) settles here.
        for (const rec of this.#ops.sorted()) {
          if (rec.kind === Kind.Work) {
            this.#workSettle(rec, { ok: false, error: errorFromNative(Code.Canceled, undefined) });
          } else {
            this.#settle(rec.id, rec, Code.Canceled, undefined);
          }
        }
        this.#wakeRunWaiters(false);
        // No worker thread is left once it resolves.
        void (work ?? Promise.resolve()).then(() => resolve());
      });
    });
    return this.#shutdown;
  }

  /**
   * True once {@link shutdown} has been called. Ops that had finished before it are still
   * delivered (with their data), but the engine takes no new op: a callback that submits its
   * next op checks this first, or the submit throws `ERR_ENGINE_CLOSED`.
   */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Sets a socket's own timeouts, beside each op's: `idle` ms with no byte received or sent
   * while a read waits fail the waiting reads with `ETIMEDOUT` (syscall `read`; with no read
   * waiting nothing fires, and the socket stays open); `write` ms in which the kernel takes no
   * byte of the queued writes fail them all with `ETIMEDOUT` (syscall `write`, `bytesWritten`
   * as each had out), and every later write too (the stream may be cut mid-message). Progress
   * pushes each deadline out. `0` or `undefined` turns one off; a wait under way is timed from
   * now. Numbers as a Callback's `timeout`; unknown keys and a Listener or File are refused. A
   * closed socket is left as it is.
   */
  setTimeouts(sock: Socket, timeouts: SocketTimeouts): void {
    this.#checkOpen();
    const [idle, write] = checkSocketTimeouts(sock, this, timeouts);
    if (!sock._closed) this.native.setTimeouts(sock._handle, idle, write);
  }

  /** Counters: ops in flight, completions, batches, system calls, bytes, open sockets. */
  stats(): EngineStats {
    const s = this.native.stats();
    const local = this.#ready.count;
    return {
      impl: this.impl,
      ...s,
      opsInFlight: s.opsInFlight + this.#workOps + local,
      completions: s.completions + this.#framedInJs,
      framedInJs: this.#framedInJs,
      workThreads: this.#work?.threads ?? 0,
      mismatchReplies: s.mismatchReplies + this.#repliedInJs,
    };
  }

  // Pre-registered replies serveLines wrote from JavaScript (a RegExp expect).
  #repliedInJs = 0;

  /** @internal serveLines wrote a pre-registered reply itself (stats().mismatchReplies). */
  _repliedInJs(): void {
    this.#repliedInJs++;
  }

  #promises: EnginePromises | undefined;

  /**
   * The Promise form of every op: the same names and arguments without the callbacks, plus
   * `{ signal, timeout }`. One per engine, made on first use. See {@link EnginePromises}.
   */
  get promises(): EnginePromises {
    if (makePromises === undefined) {
      throw new Error('engine.promises needs the Promise layer: import it from the package root');
    }
    return (this.#promises ??= makePromises(this));
  }

  /** @internal Cancels the op with this id; see {@link Callback.cancel}. */
  cancelOp(id: number): boolean {
    const rec = this.#ops.get(id);
    if (this.#closed || rec === undefined) return false;
    if (rec.kind === Kind.Work) {
      if (!this.#work?.cancel(id)) return false; // running: its result will be delivered
      setImmediate(() => {
        if (this.#ops.get(id) === rec) {
          this.#workSettle(rec, { ok: false, error: errorFromNative(Code.Canceled, undefined) });
        }
      });
      return true;
    }
    if (this.native.cancel(id)) return true;
    // A chain stage that finished natively, its callback not yet run: the stages after it
    // may still be pending there.
    if (rec.chain) {
      const rest = rec.chain.records;
      for (let i = rest.indexOf(rec) + 1; i < rest.length; i++) {
        if (this.#ops.has(rest[i]!.id) && this.native.cancel(rest[i]!.id)) return true;
      }
    }
    return false;
  }

  // ---- internals ----

  #checkOpen(): void {
    if (this.#closed) {
      throw new EngineError('ERR_ENGINE_CLOSED', 'the engine is shut down');
    }
  }

  // ---- stages: an op's record, made from its checked arguments ----

  // A line read (expectLine, alone or ending a chain): its line is decoded with the op's
  // encoding and checked against `expect` (lineError) as it settles. With onMismatch the native
  // side gets [utf8, expect, reply, max]: a string expect as bytes, which it matches itself, or
  // true for a RegExp, which #lineVerdict matches, the lines buffered reported together.
  #lineStage(
    cb: Callback<string>,
    sock: Socket | File | undefined,
    handle: number,
    expect: unknown,
    opts: OpOptions,
  ): OpRecord {
    checkExpect(expect);
    const encoding = encodingOf(opts, this.#encoding);
    const maxBytes = limitOf(opts, this.#maxBytes);
    const utf8 = encoding === 'utf8' || encoding === 'utf-8';
    const filter = checkOnMismatch((opts as LineOptions).onMismatch);
    let b: unknown = utf8;
    if (filter !== undefined) {
      if (sock instanceof File) {
        throw invalidArgValue('options.onMismatch', 'is for sockets, not Files', filter);
      }
      b = [
        utf8,
        expect === null ? null : nativeExpect(expect as string | RegExp, encoding),
        filter.reply,
        filter.max,
      ];
    }
    const rec = new OpRecord(Kind.ReadLine, cb, sock, handle, cb._timeout, maxBytes, b);
    if (filter !== undefined) rec.repliesLeft = filter.max;
    rec.expect = expect as LineExpectation;
    rec.encoding = encoding;
    return rec;
  }

  // A regex read (readUntilRegex, alone or ending a chain): JavaScript matches the bytes as they
  // arrive (#progress) and tells the native side where the match ends.
  #regexStage(
    cb: Callback<RegexResult>,
    sock: Socket | File | undefined,
    handle: number,
    regex: unknown,
    opts: OpOptions,
  ): OpRecord {
    checkRegex(regex);
    const encoding = encodingOf(opts, this.#encoding);
    const maxBytes = limitOf(opts, this.#maxBytes);
    const rec = new OpRecord(Kind.ReadRegex, cb, sock, handle, cb._timeout, maxBytes, undefined);
    rec.regex = regex;
    rec.encoding = encoding;
    return rec;
  }

  #resolveStage(host: unknown, port: unknown, cb: Callback<AddrInfo[]>): OpRecord {
    const p = checkResolve(host, port);
    return new OpRecord(Kind.Resolve, cb, undefined, 0, cb._timeout, host, String(p));
  }

  // A connect to a numeric address or a path is one stage; to a name, resolve + connect, the
  // resolve stage internal (its failure becomes the connect's own).
  #connectStages(address: unknown, cb: Callback<Socket>): OpRecord[] {
    const { host, port, numeric } = checkConnectAddress(address);
    const connect = numeric
      ? new OpRecord(Kind.Connect, cb, undefined, 0, cb._timeout, host, port)
      : new OpRecord(Kind.Connect, cb, undefined, 0, cb._timeout, undefined, undefined);
    connect.peerHost = host;
    connect.peerPort = port;
    if (numeric) return [connect];
    // The connect's deadline also bounds the name lookup before it, and it connects to what the
    // lookup found.
    const resolve = new OpRecord(Kind.Resolve, null, undefined, 0, cb._timeout, host, String(port));
    resolve.internal = true;
    return [resolve, connect];
  }

  // ---- registration: every op starts here ----

  // Starts one op: registers its record, then hands it over, a work task to the pool and every
  // other op to the native side. Nothing is dispatched before the call returns.
  #start(rec: OpRecord): void {
    this.#checkOpen();
    this.#register(rec, undefined);
    if (rec.kind === Kind.Work) this.#toPool(rec);
    else this.#toNative(rec);
  }

  // Starts a chain: every stage is registered, then all cross to the native side at once, which
  // runs them in order and aborts the rest at the first failure.
  #chain(recs: OpRecord[]): void {
    if (recs.length === 1) {
      this.#start(recs[0]!);
      return;
    }
    this.#checkOpen();
    const chain: ChainState = { records: recs };
    for (const rec of recs) this.#register(rec, chain);
    const ops: NativeOp[] = recs.map((r) => [r.kind, r.id, r.handle, r.timeout, r.a, r.b]);
    const reads = recs.filter((r) => r.sock instanceof Socket && isSocketRead(r.kind));
    for (const r of reads) unreadHeld(r.sock as Socket, this.native);
    try {
      this.native.chain(ops);
    } catch (e) {
      this.#unregister(recs);
      throw e;
    }
    for (const r of reads) this.#countRead(r);
  }

  // An op's id, its place in the op table, and its Callback (if it has one) pointed at it.
  #register(rec: OpRecord, chain: ChainState | undefined): void {
    const id = this.#nextId++;
    rec.id = id;
    rec.chain = chain;
    this.#ops.set(rec);
    if (rec.cb !== null) this.#claim(rec.cb, id);
  }

  // A Callback's op is in flight: cancel() reaches it through this engine, and the Callback
  // cannot be submitted again until the op settles.
  #claim(cb: Callback<any>, id: number): void {
    cb._target = this;
    cb._id = id;
    cb._busy = true;
  }

  // The native side refused a submission (it throws before queuing anything): forget it.
  #unregister(recs: OpRecord[]): void {
    for (const rec of recs) {
      this.#ops.delete(rec.id);
      if (rec.cb !== null) {
        rec.cb._target = null;
        rec.cb._busy = false;
      }
    }
  }

  // Hands a registered op to the native side. A socket read first gives back the bytes held for
  // its socket (they come before anything the native side buffers) and is counted until it is
  // delivered. A refused submission is forgotten and its error thrown.
  #toNative(rec: OpRecord): void {
    const sock = rec.sock;
    const read = sock instanceof Socket && isSocketRead(rec.kind);
    if (read) unreadHeld(sock, this.native);
    try {
      this.native.submit(rec.kind, rec.id, rec.handle, rec.timeout, rec.a, rec.b);
    } catch (e) {
      this.#unregister([rec]);
      throw e;
    }
    if (read) this.#countRead(rec);
  }

  // Hands a registered work task to the pool (started on first use). Its deadline is a timer
  // here: the pool, not the native side, can stop a task's thread.
  #toPool(rec: OpRecord): void {
    const id = rec.id;
    this.#workOps++;
    if (rec.timeout) rec.timer = setTimeout(() => this.#workTimedOut(id), rec.timeout);
    this.#work ??= new WorkPool(this.#workThreads);
    const task = rec.a as ReturnType<typeof checkTask>;
    this.#work.submit({ id, ...task, done: (o) => this.#workDone(id, o) });
  }

  #bare(fn: unknown, kind: Kind, ms: number): TimerHandle {
    checkFunction(fn, 'fn');
    const rec = new OpRecord(kind, null, undefined, 0, ms, undefined, undefined);
    rec.fn = fn as () => void;
    this.#start(rec);
    const id = rec.id;
    return {
      // True until the callback has run: a callSoon whose turn came natively but that has not
      // been dispatched yet is still cancellable here.
      cancel: () => {
        if (this.#closed || !this.#ops.has(id) || rec.fn === undefined) return false;
        rec.fn = undefined;
        this.native.cancel(id);
        return true;
      },
    };
  }

  // ---- reads framed from held bytes, and the turn that delivers them ----

  // An op whose frame is in the bytes already handed over: it settles with `value` in this
  // turn's dispatch, after the submitting call returns, with no crossing of its own. `end`:
  // where the socket's unconsumed bytes now begin. `expect`: a line's expectation (undefined
  // for the other reads).
  #local(
    cb: Callback<any>,
    sock: Socket,
    value: unknown,
    end: number,
    expect: LineExpectation | undefined,
  ): void {
    this.#checkOpen();
    const id = this.#nextId++;
    this.#claim(cb, id);
    consumeHeld(sock, end);
    this.#ready.push(cb, id, sock, value, expect);
    if (this.#delivering === 0 && !this.#flushQueued && this.#drive === 'auto') {
      this.#flushQueued = true;
      queueMicrotask(this.#flushTask);
    }
  }

  // Submitted outside a dispatch (top-level code, a timer, a promise continuation): the turn
  // runs as soon as the submitting code is done.
  readonly #flushTask = (): void => {
    this.#flushQueued = false;
    if (this.#delivering > 0) return; // a dispatch running now takes them
    this.#flushReady();
    this.#wakeRunWaiters(true);
  };

  // Delivers the ops settled in JavaScript, in order, those their callbacks add included.
  #flushReady(): number {
    if (this.#ready.count === 0) return 0;
    let n = 0;
    this.#delivering++;
    try {
      n = this.#ready.deliverAll();
    } finally {
      this.#delivering--;
    }
    this.#framedInJs += n;
    return n;
  }

  // A socket read handed to the native side: the socket's held bytes wait until it is delivered.
  #countRead(rec: OpRecord): void {
    (rec.sock as Socket)._nreads++;
    rec.counted = true;
  }

  // A socket read the native side delivered: with no other read queued there, the bytes it
  // left buffered (`rest`) come over in bulk, and the ops that follow frame them here. Not
  // after reads that always wait natively (a glob, a whole stream): the next one likely does
  // too. At most `_takeCap` bytes, which halves while hand-overs go back mostly unframed and
  // doubles while they are framed whole.
  #uncount(rec: OpRecord, rest: number): void {
    rec.counted = false;
    const sock = rec.sock as Socket;
    if (--sock._nreads !== 0 || rest <= 0 || sock._closed || this.#closed) return;
    if (rec.kind === Kind.ReadGlob || rec.kind === Kind.ReadAll || rec.kind === Kind.ReadLines) {
      return;
    }
    takeHeld(sock, rest, this.native);
  }

  // ---- dispatch and settlement ----

  // Receives one batch from the native side, then keeps taking the ops that its callbacks
  // finished at once (pipelined requests already buffered), up to a bound, in the same turn.
  readonly #dispatch = (
    count: number,
    idsResults: Float64Array,
    payloads: unknown[] | undefined,
    arena: Buffer,
  ): void => {
    for (let round = 0; ; round++) {
      this.#deliver(count, idsResults, payloads, arena);
      this.#flushReady();
      if (round === MAX_DRAIN_ROUNDS || this.#closed) break;
      const next = this.native.drain();
      if (next === 0) break;
      if (next > 0) {
        count = next;
        payloads = undefined;
      } else {
        count = -next;
        [idsResults, payloads, arena] = this.native.extras();
      }
    }
    this.#wakeRunWaiters(true);
  };

  // Five numbers per op: id, result, where its bytes are in `arena` (offset -1: its payload, if
  // any, is in `payloads`), and how many bytes a socket read left buffered with no read queued
  // behind it.
  #deliver(count: number, f: Float64Array, payloads: unknown[] | undefined, arena: Buffer): void {
    this.#delivering++;
    try {
      for (let i = 0; i < count; i++) {
        const id = f[5 * i]!;
        const result = f[5 * i + 1]!;
        const rec = this.#ops.get(id);
        if (rec === undefined) continue;
        const off = f[5 * i + 2]!;
        if (rec.counted && result !== Code.Progress) this.#uncount(rec, f[5 * i + 4]!);
        let payload: unknown;
        if (off >= 0) {
          const end = off + f[5 * i + 3]!;
          if (rec.kind === Kind.ReadLine && result >= 0) {
            payload = arena.toString(rec.encoding, off, end);
          } else if (rec.kind === Kind.ReadLines && result >= 0) {
            payload = linesOf(arena, off, end, result, rec.encoding, Array.isArray(rec.b));
          } else {
            payload = Buffer.allocUnsafe(end - off);
            arena.copy(payload as Buffer, 0, off, end);
          }
        } else {
          payload = payloads?.[i];
        }
        if (result === Code.Progress) {
          if (rec.kind === Kind.ReadLine) {
            this.#lineVerdict(id, rec, (payload as [Buffer])[0]);
            continue;
          }
          // Answered already (a report that left before the answer arrived): nothing to do.
          if (rec.answered) continue;
          try {
            if (rec.prefix !== undefined) {
              this.#prefixProgress(id, rec, (payload as [Buffer])[0]);
              continue;
            }
            this.#progress(id, rec, payload as [Buffer, boolean, boolean]);
          } catch (e) {
            // The op's RegExp threw: the op fails with it (its bytes stay buffered), unless a
            // cancel or timeout ended it since these bytes were reported: that outcome stands.
            rec.answered = true;
            if (this.native.regexVerdict(id, Code.Canceled)) rec.failWith = userCodeError(e);
          }
          continue;
        }
        this.#settle(id, rec, result, payload);
      }
    } finally {
      this.#delivering--;
    }
  }

  // A regex read has new bytes: match them here, tell the native side the verdict.
  // No match and more bytes may come: the native side goes on receiving without waiting for
  // an answer (it reports again when more arrive), so a chunk costs one crossing, not two.
  #progress(id: number, rec: OpRecord, [snapshot, eof, over]: [Buffer, boolean, boolean]): void {
    const [verdict, m] = regexVerdict(rec.regex!, rec.encoding, snapshot, eof, over);
    if (verdict === 0) return;
    if (m !== undefined) rec.match = m;
    rec.answered = true;
    this.native.regexVerdict(id, verdict);
  }

  // A line op with pre-registered replies and a RegExp expect reports the lines buffered, all at
  // once: the mismatches in front get the reply while replies last (k of them); the line after
  // them settles the op (d = 1), checked against its expectation as every line is. The verdict
  // is 2k + d; with d = 0 every line reported was answered and the op reads on.
  #lineVerdict(id: number, rec: OpRecord, report: Buffer): void {
    const count = report.readUInt32LE(report.length - 4);
    const lines = linesOf(report, 0, report.length - 4, count, rec.encoding, false);
    let replied = 0;
    let deliver = 0;
    for (const line of lines) {
      if (rec.repliesLeft === 0 || lineError(line, rec.expect)?.code !== 'ERR_MISMATCH') {
        deliver = 1;
        break;
      }
      replied++;
      if (rec.repliesLeft > 0) rec.repliesLeft--;
    }
    this.native.regexVerdict(id, 2 * replied + deliver);
  }

  #settle(id: number, rec: OpRecord, result: number, payload: unknown): void {
    this.#ops.delete(id);
    if (rec.listener !== undefined) this.#acceptHandshakes.get(rec.listener)?.delete(rec);
    const cb = rec.cb;
    if (rec.chain) this.#retarget(rec.chain, id);
    else if (cb !== null && cb._id === id) cb._target = null;
    if (cb !== null) cb._busy = false; // its own op is over: it may be submitted again
    if (cb === null && (rec.kind === Kind.Soon || rec.kind === Kind.Sleep)) {
      // A bare function: it runs when due, and is dropped when cancelled.
      if (result >= 0 && rec.fn) invoke(rec.fn, undefined, undefined);
      return;
    }
    let err: EngineError | undefined;
    let value: unknown;
    let io = rec.sock;
    if (rec.failWith !== undefined) {
      err = rec.failWith;
    } else if (result >= 0) {
      switch (rec.kind) {
        case Kind.Accept:
        case Kind.Connect: {
          const [handle, fd] = payload as [number, number];
          io = new Socket(this, handle, fd);
          this.#sockets.set(handle, io);
          value = io;
          if (rec.kind === Kind.Connect && (err = this.#applyConnectOptions(rec, io))) break;
          if (rec.chain) {
            for (const r of rec.chain.records) {
              if (r === rec || r.sock !== undefined) continue;
              r.sock = io;
              if (isSocketRead(r.kind) && this.#ops.get(r.id) === r) this.#countRead(r);
            }
          }
          break;
        }
        case Kind.AcceptWhen: {
          const [handle, fd, line] = payload as [number, number, Buffer];
          io = new Socket(this, handle, fd);
          this.#sockets.set(handle, io);
          value = rec.lineAsBytes ? line : line.toString('utf8');
          break;
        }
        case Kind.TlsHandshake:
          value = io;
          (io as Socket)._encrypted = true;
          break;
        case Kind.Open: {
          const [handle, fd] = payload as [number, number];
          const file = new File(this, handle, fd, rec.path!, rec.direct, result);
          this.#sockets.set(handle, file);
          value = file;
          io = file;
          break;
        }
        default: {
          // Every other kind's value comes from its payload alone (a line that does not match
          // its expectation, a record whose trailer is wrong: their failure).
          const v = resultValue(rec, result, payload);
          if (v instanceof EngineError) err = v;
          else value = v;
        }
      }
    } else if (result === Code.Aborted && rec.chain?.error) {
      const chain = rec.chain;
      if (chain.errorIsInternal) {
        err = chain.error!;
        chain.errorIsInternal = false;
      } else {
        err = errorFromNative(result, payload, chain.error);
      }
    } else {
      err = failureOf(rec, result, payload);
    }
    if (err !== undefined) {
      if (rec.chain && !rec.chain.error) {
        rec.chain.error = err;
        rec.chain.errorIsInternal = rec.internal;
      }
      // A handshake after accept or connect failed: its socket was never the caller's, nor is
      // it the later stages'.
      if (this.#closeOnFail.has(rec)) {
        if (io instanceof Socket && !io._closed) this.close(io);
        io = undefined;
        if (rec.chain) this.#handshakeFailed.add(rec.chain);
      } else if (rec.chain && this.#handshakeFailed.has(rec.chain)) {
        io = undefined;
      }
      // Its socket, as success would get it: none for an accept or connect that failed.
      const failed = rec.kind === Kind.Accept || rec.kind === Kind.Connect ? undefined : io;
      if (!rec.internal && cb) this.#failures.fail(cb, err, failed);
      return;
    }
    if (!rec.internal && cb?._success) invoke(cb._success, value, io);
  }

  // A chain stage settled: every stage Callback that pointed at it now cancels the first stage
  // still pending, so cancel() on a finished stage still cancels the rest of the chain (until
  // the Callback is submitted again, when it follows its new op). With none left, the chain's
  // Callbacks point nowhere.
  #retarget(chain: ChainState, settledId: number): void {
    const next = chain.records.find((r) => this.#ops.has(r.id));
    for (const r of chain.records) {
      const c = r.cb;
      if (c === null || c._id !== settledId) continue;
      if (next) c._id = next.id;
      else c._target = null;
    }
  }
}

// Read ops that consume a socket's input buffer.
function isSocketRead(kind: Kind): boolean {
  return (
    (kind >= Kind.ReadUntil && kind <= Kind.ReadAll) ||
    kind === Kind.ReadPrefixed ||
    kind === Kind.Peek ||
    kind === Kind.TlsHandshake ||
    kind === Kind.ReadLines
  );
}

// Errors the native side throws synchronously (listen, adopt) carry errno and syscall.
function fromThrown(e: unknown): Error {
  const n = e as { errno?: number; syscall?: string; message?: string };
  if (typeof n?.errno === 'number') {
    const err = errorFromNative(n.errno, n.syscall);
    err.message = n.message ?? err.message;
    return err;
  }
  return e as Error;
}

// engine.promises is made by the Promise layer, which registers its constructor here as it loads:
// src/promises depends on the engine, and the engine only on its type.
let makePromises: ((engine: AsyncEngine) => EnginePromises) | undefined;

/** @internal Called once by src/promises as it loads. */
export function registerPromises(make: (engine: AsyncEngine) => EnginePromises): void {
  makePromises = make;
}

/** Creates an engine; see {@link EngineConfig}. */
export function createEngine(config: EngineConfig = {}): AsyncEngine {
  return new AsyncEngine(config);
}
