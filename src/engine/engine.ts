// AsyncEngine: the public surface. It validates arguments, keeps one record per op in flight,
// hands ops to the native core and settles each Callback exactly once from the batches the core
// delivers.
import { constants as fsConstants } from 'node:fs';
import { isIP } from 'node:net';
import { availableParallelism } from 'node:os';
import { pathToFileURL } from 'node:url';
import { MessageChannel, type TransferListItem } from 'node:worker_threads';
import { Callback, takeSlots } from './callback.js';
import {
  EngineError,
  errorFromNative,
  invalidArgType,
  invalidArgValue,
  outOfRange,
  userCodeError,
} from './errors.js';
import { Code, Kind, type NativeEngine, type NativeOp } from './internal/native.js';
import { File, Listener, Socket } from './io.js';
import { checkImplOptions, chooseImpl, impls } from '../impl/registry.js';
import { OpTable } from './internal/op-table.js';
import { utf8ByteOffset } from './internal/utf8-offsets.js';
import {
  type Delimiter,
  bytesOf,
  delimiterOf,
  dropHeld,
  heldDelimiterEnd,
  heldLine,
  heldLineEnd,
  heldSlice,
  holds,
} from './internal/held.js';
import { EnginePromises } from '../promises/index.js';
import { WorkPool, type WorkOutcome } from '../work/pool.js';
import type { ThreadsafeEntry } from '../work/threadsafe.js';
import type {
  AddrInfo,
  ConnectAddress,
  DriveMode,
  EngineConfig,
  EngineStats,
  FileStat,
  FsyncOptions,
  ImplName,
  LengthPrefixedOptions,
  LengthPrefixedRecord,
  ListenOptions,
  OpOptions,
  OpenOptions,
  RegexResult,
  TimerHandle,
} from './types.js';

/** Data a write accepts. */
export type WriteData = Buffer | Uint8Array | string | ReadonlyArray<Buffer | Uint8Array>;

/** What `expectLine` checks a line against: `null` accepts any line. */
export type LineExpectation = string | RegExp | null;

// A chain's shared state: the failure that aborts later stages.
interface ChainState {
  records: OpRecord[];
  error?: EngineError;
  // The error came from a stage the caller did not ask for (name resolution before a connect):
  // the next stage reports it as its own failure rather than as ERR_ABORTED.
  errorIsInternal?: boolean;
}

// One op in flight.
class OpRecord {
  expect: LineExpectation | undefined = undefined;
  regex: RegExp | undefined = undefined;
  match: RegExpExecArray | undefined = undefined;
  encoding: BufferEncoding = 'utf8';
  chain: ChainState | undefined = undefined;
  path: string | undefined = undefined; // open
  direct = false; // open
  keep: unknown = undefined; // readInto: the caller's buffer, alive while the op is
  timer: ReturnType<typeof setTimeout> | undefined = undefined; // submitWork's deadline
  internal = false;
  fn: (() => void) | undefined = undefined;
  // A socket read counted in its socket's `_nreads` (submitted to the native side).
  counted = false;
  // A regex or length-prefixed read whose report JavaScript has answered: later reports (sent
  // before the answer arrived) are stale.
  answered = false;
  // readLengthPrefixed: how to cut the record, and the header once known.
  prefix: PrefixState | undefined = undefined;
  // The failure decided in JavaScript mid-op: what its RegExp's exec threw, a length-prefixed
  // read's refused header.
  failWith: EngineError | undefined = undefined;
  constructor(
    readonly id: number,
    readonly cb: Callback<any> | null,
    readonly kind: Kind,
    public sock: Socket | File | undefined,
  ) {}
}

// readLengthPrefixed's options as checked, with the fields they were checked from.
interface PrefixSpec {
  given: unknown[];
  length: (header: string) => number;
  delimiter: Delimiter | undefined;
  trailer: Buffer | undefined; // undefined: trailerLen bytes, not checked
  trailerLen: number;
  maxBytes: number;
  maxBody: number;
  encoding: BufferEncoding;
  bodyEncoding: BufferEncoding | undefined;
}

// A length-prefixed read: its validated options, and its header once framed.
interface PrefixState {
  spec: PrefixSpec;
  header: string;
  headerLen: number;
  bodyLen: number; // -1: no body
}

// A stage before it is registered: validated arguments for one native op.
interface StageSpec {
  kind: Kind;
  cb: Callback<any> | null;
  /** The deadline of a stage that has no Callback of its own (name resolution for a connect). */
  timeout?: number;
  sock?: Socket | File;
  handle: number;
  a?: unknown;
  b?: unknown;
  setup?: (rec: OpRecord) => void;
}

const DEFAULT_MAX_BYTES = 65536;
// Bounds of a socket's hand-over size (Socket._takeCap).
const TAKE_MIN = 4096;
const TAKE_MAX = 4 * 1024 * 1024;
// Batches taken in one turn of the event loop before it is given back (I/O must not starve).
const MAX_DRAIN_ROUNDS = 64;
const MAX_SIZE = 2 ** 31 - 1;
// The largest value a native int holds: fds, backlogs, runOnce's wait.
const MAX_INT32 = 2 ** 31 - 1;

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
  // Ops settled in JavaScript from bytes already handed over, waiting for the turn's dispatch
  // (from #readyAt to #readyEnd), in settlement order: five entries each (Callback, id, socket,
  // value, line expectation); the array keeps its size from turn to turn, and each entry is
  // cleared as it is taken. They have no OpRecord: nothing can change their
  // outcome any more (cancel() finds no op and returns false).
  #ready: unknown[] = [];
  #readyAt = 0;
  #readyEnd = 0;
  #flushQueued = false;
  #framedInJs = 0;
  readonly #prefixSpecs = new WeakMap<object, PrefixSpec>();

  /** Prefer {@link createEngine}, which does the same. */
  constructor(config: EngineConfig = {}) {
    if (config === null || typeof config !== 'object') {
      throw invalidArgType('config', 'an object', config);
    }
    const drive = config.drive ?? 'auto';
    if (drive !== 'auto' && drive !== 'manual') {
      throw invalidArgValue('config.drive', "must be 'auto' or 'manual'", drive);
    }
    this.#drive = drive;
    this.#maxBytes = checkMaxBytes(config.maxBytes ?? DEFAULT_MAX_BYTES, 'config.maxBytes');
    this.#encoding = checkEncoding(config.encoding ?? 'utf8', 'config.encoding');
    this.#workThreads = checkWorkThreads(config.work);
    checkImplOptions(config);
    this.impl = chooseImpl(config.impl ?? 'auto');
    this.native = impls[this.impl].create(config, drive === 'manual', this.#dispatch);
  }

  // ---- listeners and sockets ----

  /**
   * Binds and listens: TCP on `host`/`port` (IPv4 or IPv6 literal; `port: 0` picks a free port)
   * or a Unix socket at `path`. Throws an `EngineError` (e.g. `EADDRINUSE`) when it cannot.
   */
  listen(options: ListenOptions = {}): Listener {
    this.#checkOpen();
    if (options === null || typeof options !== 'object') {
      throw invalidArgType('options', 'an object', options);
    }
    const backlog = options.backlog ?? 511;
    checkInt(backlog, 'options.backlog', 0, MAX_INT32);
    let host: string;
    let port: number;
    if (options.path !== undefined) {
      host = checkUnixPath(options.path, 'options.path');
      port = -1;
    } else {
      host = numericHost(options.host ?? '127.0.0.1', 'options.host');
      port = checkPort(options.port ?? 0, 'options.port');
    }
    let ids: [number, number];
    try {
      ids = this.native.listen(host, port, backlog, options.reusePort === true);
    } catch (e) {
      throw fromThrown(e);
    }
    const listener = new Listener(this, ids[0], ids[1]);
    this.#sockets.set(ids[0], listener);
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
    if (!(io instanceof Socket) && !(io instanceof Listener) && !(io instanceof File)) {
      throw invalidArgType('io', 'a Socket, Listener or File', io);
    }
    this.#checkOwner(io, 'io');
    if (io._closed || this.#closed) return;
    io._closed = true;
    if (io instanceof Socket) dropHeld(io);
    this.#sockets.delete(io._handle);
    this.native.close(io._handle);
  }

  // ---- single ops ----

  /** Accepts the next connection: `success(socket, socket)`. */
  accept(listener: Listener, cb: Callback<Socket>): void {
    this.#submit({ kind: Kind.Accept, cb: this.#cb(cb), handle: this.#listener(listener) });
  }

  /**
   * Connects to `{ host, port }` (a name is resolved first, on the engine's resolver threads) or
   * to a Unix socket `{ path }`: `success(socket, socket)`.
   */
  connect(address: ConnectAddress, cb: Callback<Socket>): void {
    this.#chain([...this.#connectStages(address, this.#cb(cb))]);
  }

  /** Resolves a host name: `success(AddrInfo[])`, in the resolver's order. */
  getaddrinfo(host: string, port: number, cb: Callback<AddrInfo[]>): void {
    const stage = this.#resolveStage(host, port, this.#cb(cb));
    this.#submit(stage);
  }

  /**
   * Reads through the first `delimiter`: `success(Buffer)`, delimiter included. The bytes
   * after it stay buffered for the next read.
   */
  readUntil(sock: Socket | File, delimiter: string | Buffer, cb: Callback<Buffer>): void;
  readUntil(
    sock: Socket | File,
    delimiter: string | Buffer,
    options: OpOptions,
    cb: Callback<Buffer>,
  ): void;
  readUntil(
    sock: Socket | File,
    delimiter: string | Buffer,
    a: OpOptions | Callback<Buffer>,
    b?: Callback<Buffer>,
  ): void {
    const opts = this.#optsOf(a, b);
    this.#position(sock, opts, false);
    const cb = this.#cbOf(a, b);
    const handle = this.#socket(sock);
    const delim = checkDelimiter(delimiter);
    const maxBytes = this.#limit(opts);
    if (holds(sock)) {
      const end = heldDelimiterEnd(sock, delim.text, maxBytes);
      if (end >= 0) {
        this.#local(cb, sock, sock._in.subarray(sock._off, end), end, undefined);
        return;
      }
    }
    this.#submit({ kind: Kind.ReadUntil, cb, sock, handle, a: delim.bytes, b: maxBytes });
  }

  /** Reads until the peer ends the stream: `success(Buffer)`, bounded by `maxBytes`. */
  readAll(sock: Socket | File, cb: Callback<Buffer>): void;
  readAll(sock: Socket | File, options: OpOptions, cb: Callback<Buffer>): void;
  readAll(sock: Socket | File, a: OpOptions | Callback<Buffer>, b?: Callback<Buffer>): void {
    const cb = this.#cbOf(a, b);
    const opts = this.#optsOf(a, b);
    const pos = this.#position(sock, opts, true);
    this.#start(Kind.ReadAll, cb, sock, this.#socket(sock), this.#limit(opts), pos);
  }

  /**
   * Reads lines until one matches the fnmatch(3) `glob`: `success(string[])`, every line up to
   * and including the match, terminators stripped.
   */
  readUntilLineglob(sock: Socket | File, glob: string, cb: Callback<string[]>): void;
  readUntilLineglob(
    sock: Socket | File,
    glob: string,
    options: OpOptions,
    cb: Callback<string[]>,
  ): void;
  readUntilLineglob(
    sock: Socket | File,
    glob: string,
    a: OpOptions | Callback<string[]>,
    b?: Callback<string[]>,
  ): void {
    const opts = this.#optsOf(a, b);
    const cb = this.#cbOf(a, b);
    this.#position(sock, opts, false);
    if (typeof glob !== 'string') throw invalidArgType('glob', 'a string', glob);
    if (glob === '' || glob.includes('\0')) {
      throw invalidArgValue('glob', 'must be a non-empty string without NUL', glob);
    }
    const encoding = opts.encoding
      ? checkEncoding(opts.encoding, 'options.encoding')
      : this.#encoding;
    const utf8 = encoding === 'utf8' || encoding === 'utf-8';
    this.#submit({
      kind: Kind.ReadGlob,
      cb,
      sock,
      handle: this.#socket(sock),
      // Lines are matched as bytes: a glob in another encoding is given as its bytes.
      a: utf8 ? glob : Buffer.from(glob, encoding),
      b: this.#limit(opts),
      setup: (rec) => {
        rec.encoding = encoding;
      },
    });
  }

  /**
   * Reads until `regex` matches the buffered bytes (decoded with the op's encoding):
   * `success({ data, match })`, `data` being the bytes through the end of the match.
   */
  readUntilRegex(sock: Socket | File, regex: RegExp, cb: Callback<RegexResult>): void;
  readUntilRegex(
    sock: Socket | File,
    regex: RegExp,
    options: OpOptions,
    cb: Callback<RegexResult>,
  ): void;
  readUntilRegex(
    sock: Socket | File,
    regex: RegExp,
    a: OpOptions | Callback<RegexResult>,
    b?: Callback<RegexResult>,
  ): void {
    const opts = this.#optsOf(a, b);
    this.#position(sock, opts, false);
    const spec = this.#regexStage(sock, this.#socket(sock), regex, opts, this.#cbOf(a, b));
    if (holds(sock)) {
      // Matched against the bytes held here first; with no match yet, the native side gets
      // them back and reports as more arrive. A failure that consumes nothing (ERR_LIMIT, a
      // RegExp that throws) is left to the native side too, so that a failure callback that
      // submits the same read again waits for a later round rather than loop in this one.
      const maxBytes = spec.a as number;
      const buf = sock._in;
      const off = sock._off;
      const over = maxBytes >= 0 && buf.length - off > maxBytes;
      const snapshot = buf.subarray(off, over ? off + maxBytes : buf.length);
      const encoding = opts.encoding ? (opts.encoding as BufferEncoding) : this.#encoding;
      let verdict = 0;
      let m: RegExpExecArray | undefined;
      try {
        [verdict, m] = regexVerdict(regex as RegExp, encoding, snapshot, false, over);
      } catch {
        verdict = 0; // it throws again where the native side reports, and fails the op there
      }
      if (verdict > 0) {
        const value: RegexResult = { data: buf.subarray(off, off + verdict), match: m! };
        this.#local(spec.cb!, sock, value, off + verdict, undefined);
        return;
      }
    }
    this.#submit(spec);
  }

  /** Reads what is available, 1 to `size` bytes: `success(Buffer)`; an empty Buffer at EOF. */
  readChunk(sock: Socket | File, size: number, cb: Callback<Buffer>): void;
  readChunk(sock: Socket | File, size: number, options: OpOptions, cb: Callback<Buffer>): void;
  readChunk(
    sock: Socket | File,
    size: number,
    a: OpOptions | Callback<Buffer>,
    b?: Callback<Buffer>,
  ): void {
    const cb = this.#cbOf(a, b);
    checkSize(size, 'size');
    const pos = this.#position(sock, this.#optsOf(a, b), true, size);
    const handle = this.#socket(sock);
    if (holds(sock)) {
      const end = Math.min(sock._in.length, sock._off + size);
      this.#local(cb, sock, sock._in.subarray(sock._off, end), end, undefined);
      return;
    }
    this.#start(Kind.ReadChunk, cb, sock, handle, size, pos);
  }

  /** Reads exactly `n` bytes: `success(Buffer)`; `ERR_INCOMPLETE` if the stream ends first. */
  readExactly(sock: Socket | File, n: number, cb: Callback<Buffer>): void;
  readExactly(sock: Socket | File, n: number, options: OpOptions, cb: Callback<Buffer>): void;
  readExactly(
    sock: Socket | File,
    n: number,
    a: OpOptions | Callback<Buffer>,
    b?: Callback<Buffer>,
  ): void {
    const cb = this.#cbOf(a, b);
    checkSize(n, 'n');
    const pos = this.#position(sock, this.#optsOf(a, b), true, n);
    const handle = this.#socket(sock);
    if (holds(sock)) {
      const end = sock._off + n;
      if (end <= sock._in.length) {
        this.#local(cb, sock, sock._in.subarray(sock._off, end), end, undefined);
        return;
      }
    }
    this.#start(Kind.ReadExactly, cb, sock, handle, n, pos);
  }

  /**
   * Reads one line (`\n` or `\r\n`, stripped): `success(string)`. `expect`: `null` accepts any
   * line, a string must equal it, a RegExp must match it; otherwise `ERR_MISMATCH` with
   * `err.line` (the line is consumed).
   */
  expectLine(sock: Socket | File, expect: LineExpectation, cb: Callback<string>): void;
  expectLine(
    sock: Socket | File,
    expect: LineExpectation,
    options: OpOptions,
    cb: Callback<string>,
  ): void;
  expectLine(
    sock: Socket | File,
    expect: LineExpectation,
    a: OpOptions | Callback<string>,
    b?: Callback<string>,
  ): void {
    const opts = this.#optsOf(a, b);
    const cb = this.#cbOf(a, b);
    checkExpect(expect);
    this.#position(sock, opts, false);
    const handle = this.#socket(sock);
    const encoding = opts.encoding
      ? checkEncoding(opts.encoding, 'options.encoding')
      : this.#encoding;
    const utf8 = encoding === 'utf8' || encoding === 'utf-8';
    const maxBytes = this.#limit(opts);
    if (holds(sock)) {
      const line = heldLine(sock, maxBytes, encoding);
      if (line !== undefined) {
        this.#local(cb, sock, line, heldLineEnd, expect);
        return;
      }
    }
    const rec = this.#start(Kind.ReadLine, cb, sock, handle, maxBytes, utf8);
    rec.expect = expect;
    rec.encoding = encoding;
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
  readLengthPrefixed(
    sock: Socket | File,
    options: LengthPrefixedOptions & { bodyEncoding: BufferEncoding },
    cb: Callback<LengthPrefixedRecord<string>>,
  ): void;
  readLengthPrefixed(
    sock: Socket | File,
    options: LengthPrefixedOptions,
    cb: Callback<LengthPrefixedRecord>,
  ): void;
  readLengthPrefixed(
    sock: Socket | File,
    options: LengthPrefixedOptions,
    cb: Callback<LengthPrefixedRecord<Buffer | string>>,
  ): void {
    const done = this.#cb<LengthPrefixedRecord<Buffer | string>>(cb);
    checkOptions(options);
    const handle = this.#socket(sock);
    this.#position(sock, options as OpOptions, false);
    const spec = this.#prefixSpec(options);
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
        const total = this.#recordLength(state, header, end - off);
        // A failure that consumes nothing (the header refused) is the native side's to report,
        // from the header it frames again: a failure callback that submits the same read again
        // then waits for a later round rather than loop in this one.
        if (typeof total === 'number') {
          if (off + total <= sock._in.length) {
            const value = recordOf(state, sock._in, off, sock);
            this.#local(done, sock, value, off + total, undefined);
            return;
          }
          a = total; // the native side reads the rest, knowing the whole record's length
        }
      }
    }
    const rec = this.#start(Kind.ReadPrefixed, done, sock, handle, a, maxBytes);
    rec.prefix = state;
  }

  // readLengthPrefixed's options, checked. A program passes the same options object op after op
  // (a server, one per connection): what was checked is kept with the object while none of its
  // fields changed (Buffers are checked anew each time, since their bytes may change under the
  // same object).
  #prefixSpec(options: LengthPrefixedOptions): PrefixSpec {
    const last = this.#prefixSpecs.get(options);
    const { length, delimiter, trailer, maxBytes, maxBody, encoding, bodyEncoding } = options;
    if (
      last !== undefined &&
      last.given[0] === length &&
      last.given[1] === delimiter &&
      last.given[2] === trailer &&
      last.given[3] === maxBytes &&
      last.given[4] === maxBody &&
      last.given[5] === encoding &&
      last.given[6] === bodyEncoding &&
      typeof delimiter !== 'object' &&
      typeof trailer !== 'object'
    ) {
      return last;
    }
    if (typeof length !== 'function') throw invalidArgType('options.length', 'a function', length);
    const delim = delimiter === undefined ? undefined : checkDelimiter(delimiter);
    let tail: Buffer | undefined;
    if (trailer === undefined) tail = EMPTY;
    else if (typeof trailer === 'string') tail = bytesOf(trailer);
    else if (Buffer.isBuffer(trailer)) tail = trailer;
    else if (typeof trailer === 'number') checkInt(trailer, 'options.trailer', 0, MAX_INT32);
    else throw invalidArgType('options.trailer', 'a string, Buffer or number', trailer);
    const limit = this.#limit(options);
    const spec: PrefixSpec = {
      given: [length, delimiter, trailer, maxBytes, maxBody, encoding, bodyEncoding],
      length,
      delimiter: delim,
      trailer: tail,
      trailerLen: tail === undefined ? (trailer as number) : tail.length,
      maxBytes: limit,
      maxBody: maxBody === undefined ? limit : checkMaxBytes(maxBody, 'options.maxBody'),
      encoding: encoding ? checkEncoding(encoding, 'options.encoding') : this.#encoding,
      bodyEncoding:
        bodyEncoding === undefined
          ? undefined
          : checkEncoding(bodyEncoding, 'options.bodyEncoding'),
    };
    this.#prefixSpecs.set(options, spec);
    return spec;
  }

  // The whole record's length once its header is known, or the op's failure (the header stays
  // buffered): the length rule threw, gave no valid length, or one over maxBody.
  #recordLength(state: PrefixState, header: string, headerLen: number): number | EngineError {
    let n: unknown;
    let err: EngineError;
    try {
      n = state.spec.length(header);
    } catch (e) {
      err = userCodeError(e);
      err.line = header;
      return err;
    }
    if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < -1) {
      err = new EngineError(
        'ERR_INVALID_LENGTH',
        `the length rule gave ${typeof n === 'number' ? n : typeof n} for this header, not an integer >= -1`,
      );
    } else if (state.spec.maxBody >= 0 && n > state.spec.maxBody) {
      err = new EngineError(
        'ERR_LIMIT',
        `the body (${n} bytes) is over maxBody (${state.spec.maxBody})`,
      );
    } else {
      state.header = header;
      state.headerLen = headerLen;
      state.bodyLen = n;
      return headerLen + (n < 0 ? 0 : n + state.spec.trailerLen);
    }
    err.line = header;
    return err;
  }

  // A length-prefixed read's header arrived natively: its length rule gives the verdict.
  #prefixProgress(id: number, rec: OpRecord, raw: Buffer): void {
    const state = rec.prefix!;
    const { delimiter, encoding } = state.spec;
    let strip = raw.length;
    if (delimiter !== undefined) strip -= delimiter.bytes.length;
    else strip -= strip > 1 && raw[strip - 2] === 13 ? 2 : 1;
    const header = raw.toString(encoding, 0, strip);
    const total = this.#recordLength(state, header, raw.length);
    if (typeof total === 'number') {
      this.native.regexVerdict(id, total);
      return;
    }
    // Only if the op is still waiting natively: a cancel or timeout that ended it since its
    // header was reported stands.
    if (this.native.regexVerdict(id, Code.InvalidLength)) rec.failWith = total;
  }

  /** Writes all of `data`: `success(bytesWritten)`. Writes on one socket go out in order. */
  write(sock: Socket | File, data: WriteData, cb: Callback<number>): void;
  write(sock: Socket | File, data: WriteData, options: OpOptions, cb: Callback<number>): void;
  write(
    sock: Socket | File,
    data: WriteData,
    a: OpOptions | Callback<number>,
    b?: Callback<number>,
  ): void {
    const cb = this.#cbOf(a, b);
    const bytes = toBytes(data);
    const size = Array.isArray(bytes) ? bytes.reduce((n, x) => n + x.length, 0) : bytes.length;
    const pos = this.#position(sock, this.#optsOf(a, b), true, size);
    this.#start(Kind.Write, cb, sock, this.#socket(sock), bytes, pos);
  }

  // ---- files ----

  /**
   * Opens a file: `success(file)`. `options.flags` as `fs.open` (default `'r'`), `mode` for a
   * file it creates, `direct` for O_DIRECT.
   */
  open(path: string, cb: Callback<File>): void;
  open(path: string, options: OpenOptions, cb: Callback<File>): void;
  open(path: string, a: OpenOptions | Callback<File>, b?: Callback<File>): void {
    const cb = this.#cb<File>(b === undefined ? a : b);
    const opts: OpenOptions = b === undefined ? {} : (a as OpenOptions);
    checkOptions(opts);
    checkPath(path, 'path');
    let flags = openFlags(opts.flags ?? 'r');
    const mode = opts.mode ?? 0o666;
    if (!Number.isInteger(mode) || mode < 0 || mode > 0o7777) {
      throw outOfRange('options.mode', 'an integer from 0 to 0o7777', mode);
    }
    if (opts.direct !== undefined && typeof opts.direct !== 'boolean') {
      throw invalidArgType('options.direct', 'a boolean', opts.direct);
    }
    const direct = opts.direct === true;
    if (direct) flags |= fsConstants.O_DIRECT;
    const rec = this.#start(Kind.Open, cb, undefined, 0, path, flags + mode * 2 ** 32);
    rec.path = path;
    rec.direct = direct;
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
  readInto(file: File, buffer: Uint8Array, cb: Callback<number>): void;
  readInto(file: File, buffer: Uint8Array, options: OpOptions, cb: Callback<number>): void;
  readInto(
    file: File,
    buffer: Uint8Array,
    a: OpOptions | Callback<number>,
    b?: Callback<number>,
  ): void {
    const cb = this.#cbOf(a, b);
    const f = this.#file(file);
    if (!(buffer instanceof Uint8Array))
      throw invalidArgType('buffer', 'a Buffer or Uint8Array', buffer);
    checkFixedMemory(buffer, 'buffer');
    if (buffer.length === 0) throw outOfRange('buffer.length', 'at least 1', buffer.length);
    const pos = this.#position(f, this.#optsOf(a, b), true, buffer.length);
    const rec = this.#start(Kind.ReadInto, cb, f, f._handle, buffer, pos);
    rec.keep = buffer; // the caller's buffer, for as long as the op is in flight
  }

  /** Flushes the file to its device: `success()`. `{ dataOnly: true }` is fdatasync(2). */
  fsync(file: File, cb: Callback<void>): void;
  fsync(file: File, options: FsyncOptions, cb: Callback<void>): void;
  fsync(file: File, a: FsyncOptions | Callback<void>, b?: Callback<void>): void {
    const cb = this.#cb<void>(b === undefined ? a : b);
    const opts: FsyncOptions = b === undefined ? {} : (a as FsyncOptions);
    checkOptions(opts);
    const f = this.#file(file);
    this.#start(Kind.Fsync, cb, f, f._handle, opts.dataOnly === true, undefined);
  }

  /** The status of an open File or of a path (statx(2)): `success(stat)`. */
  stat(fileOrPath: File | string, cb: Callback<FileStat>): void {
    const c = this.#cb<FileStat>(cb);
    if (typeof fileOrPath === 'string') {
      checkPath(fileOrPath, 'path');
      this.#start(Kind.Stat, c, undefined, 0, fileOrPath, undefined);
      return;
    }
    const f = this.#file(fileOrPath);
    this.#start(Kind.Stat, c, f, f._handle, undefined, undefined);
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
  submitWork<T = unknown>(task: WorkTask, cb: Callback<T>): void {
    this.#checkOpen();
    const c = this.#cb<T>(cb);
    const t = checkTask(task);
    const id = this.#nextId++;
    const rec = new OpRecord(id, c, Kind.Work, undefined);
    this.#ops.set(rec);
    this.#workOps++;
    c._target = this;
    c._id = id;
    c._busy = true;
    if (c._timeout) rec.timer = setTimeout(() => this.#workTimedOut(id), c._timeout);
    this.#work ??= new WorkPool(this.#workThreads);
    this.#work.submit({ id, ...t, done: (o) => this.#workDone(id, o) });
  }

  /**
   * A thread-safe entry: `handler(message)` runs on this engine's thread, as a `callSoon`, for
   * every message another thread sends with `callSoonThreadsafe(entry.port, message)`. The
   * entry does not keep the process alive; `close()` it (or shut the engine down) when done.
   */
  threadsafe(handler: (message: unknown) => void): ThreadsafeEntry {
    this.#checkOpen();
    if (typeof handler !== 'function') throw invalidArgType('handler', 'a function', handler);
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
        if (cb._success) this.#call(cb._success, o.value, undefined);
      } else if (cb._failure) {
        this.#call(cb._failure, o.error, undefined);
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
    return this.#workOps > 0 || this.#readyAt < this.#readyEnd || this.native.pending();
  }

  // ---- chains ----

  /** Accepts a connection, then writes `data` to it: `[cbSocket, cbWritten]`. */
  acceptThenWrite(
    listener: Listener,
    data: WriteData,
    cbs: [Callback<Socket>, Callback<number>],
  ): void {
    const [c1, c2] = this.#cbs(cbs, 2);
    const handle = this.#listener(listener);
    const bytes = toBytes(data);
    this.#chain([
      { kind: Kind.Accept, cb: c1, handle },
      { kind: Kind.Write, cb: c2, handle: 0, a: bytes },
    ]);
  }

  /** Accepts a connection, then reads one line from it: `[cbSocket, cbLine]`. */
  acceptThenExpectLine(
    listener: Listener,
    expect: LineExpectation,
    cbs: [Callback<Socket>, Callback<string>],
  ): void;
  acceptThenExpectLine(
    listener: Listener,
    expect: LineExpectation,
    options: OpOptions,
    cbs: [Callback<Socket>, Callback<string>],
  ): void;
  acceptThenExpectLine(
    listener: Listener,
    expect: LineExpectation,
    a: OpOptions | [Callback<Socket>, Callback<string>],
    b?: [Callback<Socket>, Callback<string>],
  ): void {
    const [opts, cbs] = this.#optsCbs(a, b);
    const [c1, c2] = this.#cbs(cbs, 2);
    const handle = this.#listener(listener);
    this.#chain([
      { kind: Kind.Accept, cb: c1, handle },
      this.#lineStage(undefined, 0, expect, opts, c2),
    ]);
  }

  /**
   * Accepts a connection, then reads until `regex` matches what it sent (across lines):
   * `[cbSocket, cbMatch]`, the match as in {@link readUntilRegex}.
   */
  acceptThenExpectMultilineRegex(
    listener: Listener,
    regex: RegExp,
    cbs: [Callback<Socket>, Callback<RegexResult>],
  ): void;
  acceptThenExpectMultilineRegex(
    listener: Listener,
    regex: RegExp,
    options: OpOptions,
    cbs: [Callback<Socket>, Callback<RegexResult>],
  ): void;
  acceptThenExpectMultilineRegex(
    listener: Listener,
    regex: RegExp,
    a: OpOptions | [Callback<Socket>, Callback<RegexResult>],
    b?: [Callback<Socket>, Callback<RegexResult>],
  ): void {
    const [opts, cbs] = this.#optsCbs(a, b);
    const [c1, c2] = this.#cbs(cbs, 2);
    const handle = this.#listener(listener);
    this.#chain([
      { kind: Kind.Accept, cb: c1, handle },
      this.#regexStage(undefined, 0, regex, opts, c2),
    ]);
  }

  /** Writes `data`, then reads one line: `[cbWritten, cbLine]`. */
  writeThenExpectLine(
    sock: Socket | File,
    data: WriteData,
    expect: LineExpectation,
    cbs: [Callback<number>, Callback<string>],
  ): void;
  writeThenExpectLine(
    sock: Socket | File,
    data: WriteData,
    expect: LineExpectation,
    options: OpOptions,
    cbs: [Callback<number>, Callback<string>],
  ): void;
  writeThenExpectLine(
    sock: Socket | File,
    data: WriteData,
    expect: LineExpectation,
    a: OpOptions | [Callback<number>, Callback<string>],
    b?: [Callback<number>, Callback<string>],
  ): void {
    const [opts, cbs] = this.#optsCbs(a, b);
    const [c1, c2] = this.#cbs(cbs, 2);
    const handle = this.#socket(sock);
    const bytes = toBytes(data);
    this.#chain([
      { kind: Kind.Write, cb: c1, sock, handle, a: bytes },
      this.#lineStage(sock, handle, expect, opts, c2),
    ]);
  }

  /** Connects, then reads one line (a greeting): `[cbSocket, cbLine]`. */
  connectThenExpectLine(
    address: ConnectAddress,
    expect: LineExpectation,
    cbs: [Callback<Socket>, Callback<string>],
  ): void;
  connectThenExpectLine(
    address: ConnectAddress,
    expect: LineExpectation,
    options: OpOptions,
    cbs: [Callback<Socket>, Callback<string>],
  ): void;
  connectThenExpectLine(
    address: ConnectAddress,
    expect: LineExpectation,
    a: OpOptions | [Callback<Socket>, Callback<string>],
    b?: [Callback<Socket>, Callback<string>],
  ): void {
    const [opts, cbs] = this.#optsCbs(a, b);
    const [c1, c2] = this.#cbs(cbs, 2);
    const connect = this.#connectStages(address, c1);
    this.#chain([...connect, this.#lineStage(undefined, 0, expect, opts, c2)]);
  }

  /** Connects, then writes `line` followed by `\r\n`: `[cbSocket, cbWritten]`. */
  connectThenWriteLine(
    address: ConnectAddress,
    line: string | Buffer,
    cbs: [Callback<Socket>, Callback<number>],
  ): void {
    const [c1, c2] = this.#cbs(cbs, 2);
    if (typeof line !== 'string' && !Buffer.isBuffer(line)) {
      throw invalidArgType('line', 'a string or Buffer', line);
    }
    const bytes = Buffer.concat([Buffer.from(line), CRLF]);
    const connect = this.#connectStages(address, c1);
    this.#chain([...connect, { kind: Kind.Write, cb: c2, handle: 0, a: bytes }]);
  }

  /** Resolves `host`, then connects to the first address that answers: `[cbAddrs, cbSocket]`. */
  getaddrinfoThenConnect(
    host: string,
    port: number,
    cbs: [Callback<AddrInfo[]>, Callback<Socket>],
  ): void {
    const [c1, c2] = this.#cbs(cbs, 2);
    this.#chain([this.#resolveStage(host, port, c1), { kind: Kind.Connect, cb: c2, handle: 0 }]);
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
    checkOptions(options);
    const timeout = options.timeout ?? 0;
    if (typeof timeout !== 'number') throw invalidArgType('options.timeout', 'a number', timeout);
    if (!(timeout >= 0) || timeout > MAX_INT32) {
      throw outOfRange('options.timeout', `a number from 0 to ${MAX_INT32}`, timeout);
    }
    const local = this.#flushReady();
    // The ops its batch's callbacks submit and that settle in JavaScript in that same dispatch
    // are settled by this call too: the native count does not see them.
    const framedBefore = this.#framedInJs;
    const settled = this.native.runOnce(local > 0 ? 0 : Math.ceil(timeout));
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
    this.#promises?._shutdown();
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

  /** Counters: ops in flight, completions, batches, system calls, bytes, open sockets. */
  stats(): EngineStats {
    const s = this.native.stats();
    const local = (this.#readyEnd - this.#readyAt) / 5;
    return {
      impl: this.impl,
      ...s,
      opsInFlight: s.opsInFlight + this.#workOps + local,
      completions: s.completions + this.#framedInJs,
      framedInJs: this.#framedInJs,
      workThreads: this.#work?.threads ?? 0,
    };
  }

  #promises: EnginePromises | undefined;

  /**
   * The Promise form of every op: the same names and arguments without the callbacks, plus
   * `{ signal, timeout }`. One per engine, made on first use. See {@link EnginePromises}.
   */
  get promises(): EnginePromises {
    return (this.#promises ??= new EnginePromises(this));
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

  #checkOwner(io: Socket | Listener | File, name: string): void {
    if (io._owner !== this) {
      throw invalidArgValue(name, 'belongs to another engine', io);
    }
  }

  #socket(sock: unknown): number {
    if (!(sock instanceof Socket) && !(sock instanceof File)) {
      throw invalidArgType('socket', 'a Socket or File', sock);
    }
    this.#checkOwner(sock, 'socket');
    return sock._handle;
  }

  #file(file: unknown): File {
    if (!(file instanceof File)) throw invalidArgType('file', 'a File', file);
    this.#checkOwner(file, 'file');
    return file;
  }

  // `options.position` (files only, and only where the op can take it) and, on an O_DIRECT
  // file, the alignment of the position and of `size`; checked before anything is queued.
  #position(sock: unknown, opts: OpOptions, allowed: boolean, size?: number): number | undefined {
    const pos = opts.position;
    if (pos === undefined && sock instanceof Socket) return undefined;
    if (pos !== undefined) {
      if (!(sock instanceof File)) {
        throw invalidArgValue('options.position', 'applies to files only', pos);
      }
      if (!allowed) {
        throw invalidArgValue(
          'options.position',
          'is taken by readChunk, readExactly, readAll, readInto and write only',
          pos,
        );
      }
      if (typeof pos !== 'number' || !Number.isSafeInteger(pos) || pos < 0) {
        throw outOfRange('options.position', 'an integer from 0 to 2**53 - 1', pos);
      }
    }
    if (sock instanceof File && sock.direct) {
      const a = sock.alignment;
      if (pos !== undefined && pos % a !== 0) {
        throw outOfRange('options.position', `a multiple of ${a} (the file is O_DIRECT)`, pos);
      }
      if (size !== undefined && size % a !== 0) {
        throw outOfRange('size', `a multiple of ${a} (the file is O_DIRECT)`, size);
      }
    }
    return pos;
  }

  #listener(listener: unknown): number {
    if (!(listener instanceof Listener)) throw invalidArgType('listener', 'a Listener', listener);
    this.#checkOwner(listener, 'listener');
    return listener._handle;
  }

  #cb<T>(cb: unknown): Callback<T> {
    if (!(cb instanceof Callback)) throw invalidArgType('cb', 'a Callback', cb);
    if (cb._busy) {
      const err = new Error('this Callback is already in flight') as Error & { code: string };
      err.code = 'ERR_INVALID_STATE';
      throw err;
    }
    takeSlots(cb);
    return cb as Callback<T>;
  }

  #cbs(cbs: unknown, n: number): Callback<any>[] {
    if (!Array.isArray(cbs) || cbs.length !== n) {
      throw invalidArgType('callbacks', `an array of ${n} Callbacks`, cbs);
    }
    const out = cbs.map((c) => this.#cb<unknown>(c));
    if (new Set(out).size !== out.length) {
      throw invalidArgValue('callbacks', 'must be distinct Callbacks', cbs);
    }
    return out;
  }

  // The hot ops take (options?, callback) without building a tuple per call.
  #cbOf<T>(a: OpOptions | Callback<T>, b: Callback<T> | undefined): Callback<T> {
    return this.#cb<T>(b === undefined ? a : b);
  }

  #optsOf(a: unknown, b: unknown): OpOptions {
    if (b === undefined) return NO_OPTIONS;
    checkOptions(a);
    return a as OpOptions;
  }

  // Registers an op and hands it to the native side; the caller fills in the record's
  // decoding fields afterwards (nothing is dispatched before the call returns).
  #start(
    kind: Kind,
    cb: Callback<any>,
    sock: Socket | File | undefined,
    handle: number,
    a: unknown,
    b: unknown,
  ): OpRecord {
    this.#checkOpen();
    const id = this.#nextId++;
    const rec = new OpRecord(id, cb, kind, sock);
    this.#ops.set(rec);
    cb._target = this;
    cb._id = id;
    cb._busy = true;
    this.#send(rec, handle, cb._timeout, a, b);
    return rec;
  }

  // Hands a registered op to the native side. A socket read first gives back the bytes held for
  // its socket (they come before anything the native side buffers) and is counted until it is
  // delivered. A refused submission is forgotten and its error thrown.
  #send(rec: OpRecord, handle: number, timeout: number, a: unknown, b: unknown): void {
    const sock = rec.sock;
    const read = sock instanceof Socket && isSocketRead(rec.kind);
    if (read) this.#unreadIn(sock);
    try {
      this.native.submit(rec.kind, rec.id, handle, timeout, a, b);
    } catch (e) {
      this.#unregister([rec]);
      throw e;
    }
    if (read) this.#countRead(rec);
  }

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
    cb._target = this;
    cb._id = id;
    cb._busy = true;
    if (end >= sock._in!.length) {
      dropHeld(sock);
      // Everything handed over was framed here: the next hand-over may take more.
      if (sock._takeCap < TAKE_MAX) sock._takeCap *= 2;
    } else {
      sock._off = end;
    }
    const ready = this.#ready;
    const at = this.#readyEnd;
    ready[at] = cb;
    ready[at + 1] = id;
    ready[at + 2] = sock;
    ready[at + 3] = value;
    ready[at + 4] = expect;
    this.#readyEnd = at + 5;
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

  // Settles the ops settled in JavaScript, in order, those their callbacks add included.
  #flushReady(): number {
    const ready = this.#ready;
    if (this.#readyAt === this.#readyEnd) return 0;
    let n = 0;
    this.#delivering++;
    try {
      while (this.#readyAt < this.#readyEnd) {
        const i = this.#readyAt;
        this.#readyAt = i + 5;
        const cb = ready[i] as Callback<any>;
        const id = ready[i + 1] as number;
        const sock = ready[i + 2] as Socket;
        const value = ready[i + 3];
        const expect = ready[i + 4] as LineExpectation | undefined;
        ready[i] = ready[i + 2] = ready[i + 3] = ready[i + 4] = undefined;
        // All taken: an op this callback submits starts the array over, so a long run of
        // buffered frames (each callback submitting the next) reuses the same few slots.
        if (this.#readyAt === this.#readyEnd) this.#readyAt = this.#readyEnd = 0;
        n++;
        if (cb._id === id) cb._target = null;
        cb._busy = false;
        const err =
          typeof value === 'string'
            ? lineError(value, expect)
            : value instanceof EngineError
              ? value
              : undefined;
        if (err !== undefined) {
          if (cb._failure) this.#call(cb._failure, err, undefined);
          continue;
        }
        if (cb._success) this.#call(cb._success, value, sock);
      }
    } finally {
      this.#delivering--;
    }
    this.#framedInJs += n;
    return n;
  }

  // Bytes held for a socket go back to the native side before a read that must wait there:
  // they come before anything it buffers.
  #unreadIn(sock: Socket): void {
    const buf = sock._in;
    if (buf === undefined) return;
    dropHeld(sock);
    // Most of what was handed over goes back unframed (reads that wait natively, such as globs
    // between lines): hand over less next time, so bytes do not travel back and forth.
    if ((buf.length - sock._off) * 2 > sock._took && sock._takeCap > TAKE_MIN) {
      sock._takeCap /= 2;
    }
    this.native.unread(sock._handle, sock._off === 0 ? buf : buf.subarray(sock._off));
  }

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
    if (rec.kind === Kind.ReadGlob || rec.kind === Kind.ReadAll) return;
    const want = rest < sock._takeCap ? rest : sock._takeCap;
    const buf = Buffer.allocUnsafe(want);
    const n = this.native.take(sock._handle, buf);
    if (n === 0) return;
    sock._took = n;
    sock._in = n === want ? buf : buf.subarray(0, n);
    sock._off = 0;
    sock._text = undefined;
    sock._ascii = undefined;
  }

  #optsCbs<C>(a: OpOptions | C, b: C | undefined): [OpOptions, C] {
    if (Array.isArray(a)) return [{}, a as C];
    checkOptions(a);
    return [a as OpOptions, b as C];
  }

  #limit(opts: OpOptions): number {
    if (opts.maxBytes === undefined) return this.#maxBytes;
    return checkMaxBytes(opts.maxBytes, 'options.maxBytes');
  }

  #lineStage(
    sock: Socket | File | undefined,
    handle: number,
    expect: unknown,
    opts: OpOptions,
    cb: Callback<string>,
  ): StageSpec {
    checkExpect(expect);
    const encoding = opts.encoding
      ? checkEncoding(opts.encoding, 'options.encoding')
      : this.#encoding;
    return {
      kind: Kind.ReadLine,
      cb,
      sock,
      handle,
      a: this.#limit(opts),
      b: encoding === 'utf8' || encoding === 'utf-8',
      setup: (rec) => {
        rec.expect = expect as LineExpectation;
        rec.encoding = encoding;
      },
    };
  }

  #regexStage(
    sock: Socket | File | undefined,
    handle: number,
    regex: unknown,
    opts: OpOptions,
    cb: Callback<RegexResult>,
  ): StageSpec {
    if (!(regex instanceof RegExp)) throw invalidArgType('regex', 'a RegExp', regex);
    regex.lastIndex = 0;
    const empty = regex.exec('');
    regex.lastIndex = 0;
    if (empty !== null) {
      throw invalidArgValue('regex', 'must not match the empty string', regex);
    }
    const encoding = opts.encoding
      ? checkEncoding(opts.encoding, 'options.encoding')
      : this.#encoding;
    return {
      kind: Kind.ReadRegex,
      cb,
      sock,
      handle,
      a: this.#limit(opts),
      setup: (rec) => {
        rec.regex = regex;
        rec.encoding = encoding;
      },
    };
  }

  #resolveStage(host: unknown, port: unknown, cb: Callback<AddrInfo[]> | null): StageSpec {
    if (typeof host !== 'string' || host === '')
      throw invalidArgType('host', 'a non-empty string', host);
    // The resolver reads a C string: 'localhost\0.example.com' would resolve 'localhost'.
    if (host.includes('\0')) throw invalidArgValue('host', 'must not contain NUL', host);
    const p = checkPort(port, 'port');
    return { kind: Kind.Resolve, cb, handle: 0, a: host, b: String(p) };
  }

  // A connect to a numeric address or a path is one stage; to a name, resolve + connect, the
  // resolve stage internal (its failure becomes the connect's own).
  #connectStages(address: unknown, cb: Callback<Socket>): StageSpec[] {
    if (address === null || typeof address !== 'object') {
      throw invalidArgType('address', 'an object { host, port } or { path }', address);
    }
    const addr = address as { host?: unknown; port?: unknown; path?: unknown };
    if (addr.path !== undefined) {
      const path = checkUnixPath(addr.path, 'address.path');
      return [{ kind: Kind.Connect, cb, handle: 0, a: path, b: -1 }];
    }
    if (typeof addr.host !== 'string' || addr.host === '') {
      throw invalidArgType('address.host', 'a non-empty string', addr.host);
    }
    if (addr.host.includes('\0')) {
      throw invalidArgValue('address.host', 'must not contain NUL', addr.host);
    }
    const port = checkPort(addr.port, 'address.port');
    if (port === 0) throw outOfRange('address.port', 'from 1 to 65535', port);
    const host =
      addr.host.startsWith('[') && addr.host.endsWith(']') ? addr.host.slice(1, -1) : addr.host;
    if (isIP(host)) return [{ kind: Kind.Connect, cb, handle: 0, a: host, b: port }];
    // The connect's deadline also bounds the name lookup before it.
    const resolve = this.#resolveStage(host, port, null);
    resolve.timeout = cb._timeout;
    resolve.setup = (rec) => {
      rec.internal = true;
    };
    return [resolve, { kind: Kind.Connect, cb, handle: 0 }];
  }

  #register(spec: StageSpec): [number, OpRecord] {
    const id = this.#nextId++;
    const rec = new OpRecord(id, spec.cb, spec.kind, spec.sock);
    spec.setup?.(rec);
    this.#ops.set(rec);
    if (spec.cb) {
      spec.cb._target = this;
      spec.cb._id = id;
      spec.cb._busy = true;
    }
    return [id, rec];
  }

  #submit(spec: StageSpec): void {
    this.#checkOpen();
    const [, rec] = this.#register(spec);
    this.#send(rec, spec.handle, timeoutOf(spec), spec.a, spec.b);
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

  #chain(specs: StageSpec[]): void {
    this.#checkOpen();
    if (specs.length === 1) {
      this.#submit(specs[0]!);
      return;
    }
    const chain: ChainState = { records: [] };
    const ops: NativeOp[] = specs.map((spec) => {
      const [id, rec] = this.#register(spec);
      rec.chain = chain;
      chain.records.push(rec);
      return [spec.kind, id, spec.handle, timeoutOf(spec), spec.a, spec.b];
    });
    const reads = chain.records.filter((r) => r.sock instanceof Socket && isSocketRead(r.kind));
    for (const r of reads) this.#unreadIn(r.sock as Socket);
    try {
      this.native.chain(ops);
    } catch (e) {
      this.#unregister(chain.records);
      throw e;
    }
    for (const r of reads) this.#countRead(r);
  }

  #bare(fn: unknown, kind: Kind, ms: number): TimerHandle {
    if (typeof fn !== 'function') throw invalidArgType('fn', 'a function', fn);
    this.#checkOpen();
    const [id, rec] = this.#register({ kind, cb: null, handle: 0 });
    rec.fn = fn as () => void;
    this.native.submit(kind, id, 0, ms, undefined, undefined);
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
          } else {
            payload = Buffer.allocUnsafe(end - off);
            arena.copy(payload as Buffer, 0, off, end);
          }
        } else {
          payload = payloads?.[i];
        }
        if (result === Code.Progress) {
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

  #settle(id: number, rec: OpRecord, result: number, payload: unknown): void {
    this.#ops.delete(id);
    const cb = rec.cb;
    if (rec.chain) this.#retarget(rec.chain, id);
    else if (cb !== null && cb._id === id) cb._target = null;
    if (cb !== null) cb._busy = false; // its own op is over: it may be submitted again
    if (rec.kind === Kind.Soon || rec.kind === Kind.Sleep) {
      if (result >= 0 && rec.fn) this.#call(rec.fn, undefined, undefined);
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
          if (rec.chain) {
            for (const r of rec.chain.records) {
              if (r === rec || r.sock !== undefined) continue;
              r.sock = io;
              if (isSocketRead(r.kind) && this.#ops.get(r.id) === r) this.#countRead(r);
            }
          }
          break;
        }
        case Kind.ReadLine: {
          const line =
            typeof payload === 'string' ? payload : (payload as Buffer).toString(rec.encoding);
          err = lineError(line, rec.expect);
          value = line;
          break;
        }
        case Kind.ReadGlob: {
          const lines = payload as Array<string | Buffer>;
          value = lines.map((l) => (typeof l === 'string' ? l : l.toString(rec.encoding)));
          break;
        }
        case Kind.ReadRegex:
          value = { data: payload as Buffer, match: rec.match! } satisfies RegexResult;
          break;
        case Kind.ReadPrefixed: {
          const record = recordOf(rec.prefix!, payload as Buffer, 0);
          if (record instanceof EngineError) err = record;
          else value = record;
          break;
        }
        case Kind.Write:
        case Kind.ReadInto:
          value = result;
          break;
        case Kind.Open: {
          const [handle, fd] = payload as [number, number];
          const file = new File(this, handle, fd, rec.path!, rec.direct, result);
          this.#sockets.set(handle, file);
          value = file;
          io = file;
          break;
        }
        case Kind.Fsync:
          value = undefined;
          break;
        case Kind.Stat:
          value = statFrom(payload as Buffer);
          break;
        case Kind.Resolve: {
          const flat = payload as string[];
          const addrs: AddrInfo[] = [];
          for (let k = 0; k < flat.length; k += 2) {
            addrs.push({ address: flat[k]!, family: flat[k + 1] === '6' ? 6 : 4 });
          }
          value = addrs;
          break;
        }
        default:
          value = payload;
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
      err = errorFromNative(result, payload);
      if (rec.kind === Kind.Open && rec.direct && err.code === 'EINVAL') {
        err.message = `open EINVAL: the file system refuses O_DIRECT for ${rec.path}`;
      }
    }
    if (err !== undefined) {
      if (rec.chain && !rec.chain.error) {
        rec.chain.error = err;
        rec.chain.errorIsInternal = rec.internal;
      }
      if (!rec.internal && cb?._failure) this.#call(cb._failure, err, undefined);
      return;
    }
    if (!rec.internal && cb?._success) this.#call(cb._success, value, io);
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

  // A callback that throws must not stop the rest of the batch: its error is re-thrown on a
  // clean stack, where it reaches 'uncaughtException' as any Node callback's would.
  #call(fn: (a?: any, b?: any) => void, a: unknown, b: unknown): void {
    try {
      fn(a, b);
    } catch (e) {
      process.nextTick(() => {
        throw e;
      });
    }
  }
}

const CRLF = Buffer.from('\r\n');

const EMPTY = Buffer.alloc(0);

// A regex read's verdict on the bytes buffered so far (`snapshot`, at most maxBytes of them):
// the bytes through the end of a non-empty match, ERR_LIMIT past the bound, ERR_INCOMPLETE at
// EOF, else 0 (wait for more). Throws what the RegExp throws.
function regexVerdict(
  regex: RegExp,
  encoding: BufferEncoding,
  snapshot: Buffer,
  eof: boolean,
  over: boolean,
): [number, RegExpExecArray | undefined] {
  const enc: BufferEncoding = encoding === 'utf8' || encoding === 'utf-8' ? 'utf8' : 'latin1';
  const text = snapshot.toString(enc);
  regex.lastIndex = 0;
  const m = regex.exec(text);
  regex.lastIndex = 0;
  const end = m ? m.index + m[0].length : 0;
  if (m && end > 0) {
    // Decoding is not reversible (a U+FFFD stands for 1 to 3 invalid bytes), so the match's
    // end is mapped back to the snapshot's bytes, never re-encoded.
    return [enc === 'utf8' ? utf8ByteOffset(snapshot, end) : end, m];
  }
  if (over) return [Code.Limit, undefined];
  if (eof) return [Code.Incomplete, undefined];
  return [0, undefined];
}

// The record at `buf[off...]` (all of it there; `held`: the socket whose held bytes `buf` is),
// or ERR_MISMATCH when its trailer is wrong.
function recordOf(
  state: PrefixState,
  buf: Buffer,
  off: number,
  held?: Socket,
): LengthPrefixedRecord<Buffer | string> | EngineError {
  const { header, headerLen, bodyLen } = state;
  if (bodyLen < 0) return { header, body: null };
  const { trailer, bodyEncoding } = state.spec;
  const start = off + headerLen;
  const at = start + bodyLen;
  if (trailer !== undefined) {
    for (let i = 0; i < trailer.length; i++) {
      if (buf[at + i] !== trailer[i]) {
        const err = new EngineError('ERR_MISMATCH', 'the bytes after the body are not the trailer');
        err.line = header;
        return err;
      }
    }
  }
  if (bodyEncoding === undefined) return { header, body: buf.subarray(start, at) };
  const body =
    held === undefined
      ? buf.toString(bodyEncoding, start, at)
      : heldSlice(held, start, at, bodyEncoding);
  return { header, body };
}

function checkDelimiter(delimiter: unknown): Delimiter {
  if (typeof delimiter !== 'string' && !Buffer.isBuffer(delimiter)) {
    throw invalidArgType('delimiter', 'a string or Buffer', delimiter);
  }
  if (delimiter.length === 0) throw invalidArgValue('delimiter', 'must not be empty', delimiter);
  return delimiterOf(delimiter);
}

// Read ops that consume a socket's input buffer.
function isSocketRead(kind: Kind): boolean {
  return (kind >= Kind.ReadUntil && kind <= Kind.ReadAll) || kind === Kind.ReadPrefixed;
}

function timeoutOf(spec: StageSpec): number {
  return spec.cb?._timeout ?? spec.timeout ?? 0;
}

// sockaddr_un holds 108 bytes, the terminating NUL included.
const MAX_UNIX_PATH = 107;

function checkUnixPath(path: unknown, name: string): string {
  if (typeof path !== 'string' || path === '')
    throw invalidArgType(name, 'a non-empty string', path);
  if (Buffer.byteLength(path) > MAX_UNIX_PATH || path.includes('\0')) {
    throw invalidArgValue(name, `must be at most ${MAX_UNIX_PATH} bytes, without NUL`, path);
  }
  return path;
}

// A line's failure, if it has one: ERR_MISMATCH when it does not match `expect`, or the error
// the `expect` RegExp threw (that is this op's failure, and the batch goes on). The line was
// consumed either way, so the error carries it.
function lineError(line: string, expect: LineExpectation | undefined): EngineError | undefined {
  if (expect === null || expect === undefined) return undefined;
  let err: EngineError;
  try {
    if (lineMatches(line, expect)) return undefined;
    err = new EngineError('ERR_MISMATCH', 'the line did not match what was expected');
  } catch (e) {
    err = userCodeError(e);
  }
  err.line = line;
  return err;
}

function lineMatches(line: string, expect: LineExpectation | undefined): boolean {
  if (expect === null || expect === undefined) return true;
  if (typeof expect === 'string') return line === expect;
  expect.lastIndex = 0;
  const ok = expect.test(line);
  expect.lastIndex = 0;
  return ok;
}

const NO_OPTIONS: OpOptions = Object.freeze({});

function checkExpect(expect: unknown): asserts expect is LineExpectation {
  if (expect !== null && typeof expect !== 'string' && !(expect instanceof RegExp)) {
    throw invalidArgType('expect', 'a string, RegExp or null', expect);
  }
}

function checkOptions(opts: unknown): void {
  if (opts === null || typeof opts !== 'object') throw invalidArgType('options', 'an object', opts);
}

function checkMaxBytes(v: unknown, name: string): number {
  if (v === Infinity) return -1;
  if (typeof v !== 'number') throw invalidArgType(name, 'a number', v);
  if (!Number.isSafeInteger(v) || v <= 0) {
    throw outOfRange(name, 'an integer from 1 to 2**53 - 1, or Infinity', v);
  }
  return v;
}

// Memory the engine copies into later must not change size while an op waits: a view of a
// resizable ArrayBuffer or a growable SharedArrayBuffer is refused. (A detached buffer is
// caught when the bytes are copied.)
function checkFixedMemory(view: Uint8Array, name: string): void {
  const memory = view.buffer as { resizable?: boolean; growable?: boolean };
  if (memory.resizable === true || memory.growable === true) {
    throw invalidArgValue(
      name,
      'must not be a view of a resizable ArrayBuffer or a growable SharedArrayBuffer',
      view,
    );
  }
}

// An integer argument that native code reads as a C int (an fd, a backlog): checked here, so
// that no conversion wraps it (2**32 + 3 must not become 3).
function checkInt(v: unknown, name: string, min: number, max: number): void {
  if (typeof v !== 'number') throw invalidArgType(name, 'a number', v);
  if (!Number.isInteger(v) || v < min || v > max) {
    throw outOfRange(name, `an integer from ${min} to ${max}`, v);
  }
}

// A delay in milliseconds (callLater), as a Callback's timeout: any finite number >= 0,
// fractions allowed; native code saturates a deadline past about 146 years, so none overflows.
function checkDelay(v: unknown, name: string): void {
  if (typeof v !== 'number') throw invalidArgType(name, 'a number', v);
  if (!Number.isFinite(v) || v < 0) throw outOfRange(name, 'a finite number >= 0', v);
}

function checkSize(v: unknown, name: string): void {
  if (typeof v !== 'number') throw invalidArgType(name, 'a number', v);
  if (!Number.isInteger(v) || v < 1 || v > MAX_SIZE) {
    throw outOfRange(name, `an integer from 1 to ${MAX_SIZE}`, v);
  }
}

function checkPort(v: unknown, name: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 65535) {
    throw outOfRange(name, 'an integer from 0 to 65535', v);
  }
  return v;
}

function checkEncoding(v: unknown, name: string): BufferEncoding {
  // A server passes the same encoding op after op: the common names skip the lookup.
  if (v === 'utf8' || v === 'latin1') return v;
  if (typeof v !== 'string' || !Buffer.isEncoding(v)) {
    throw invalidArgValue(name, 'must be a Buffer encoding', v);
  }
  return v as BufferEncoding;
}

function numericHost(host: unknown, name: string): string {
  if (typeof host !== 'string') throw invalidArgType(name, 'a string', host);
  if (host === 'localhost') return '127.0.0.1';
  const h = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  if (!isIP(h)) throw invalidArgValue(name, 'must be a numeric IPv4 or IPv6 address', host);
  return h;
}

function toBytes(data: unknown): Buffer | Buffer[] {
  if (typeof data === 'string') return Buffer.from(data);
  if (Buffer.isBuffer(data)) return data;
  if (data instanceof Uint8Array) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (Array.isArray(data)) {
    return data.map((d, i) => {
      if (Buffer.isBuffer(d)) return d;
      if (d instanceof Uint8Array) return Buffer.from(d.buffer, d.byteOffset, d.byteLength);
      throw invalidArgType(`data[${i}]`, 'a Buffer or Uint8Array', d);
    });
  }
  throw invalidArgType('data', 'a string, Buffer, Uint8Array or an array of Buffers', data);
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

/** Creates an engine; see {@link EngineConfig}. */
export function createEngine(config: EngineConfig = {}): AsyncEngine {
  return new AsyncEngine(config);
}

function checkPath(path: unknown, name: string): void {
  if (typeof path !== 'string') throw invalidArgType(name, 'a string', path);
  if (path === '' || path.includes('\0')) {
    throw invalidArgValue(name, 'must be a non-empty string without NUL', path);
  }
}

const OPEN_FLAGS: Record<string, number> = {
  r: fsConstants.O_RDONLY,
  'r+': fsConstants.O_RDWR,
  w: fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_TRUNC,
  'w+': fsConstants.O_RDWR | fsConstants.O_CREAT | fsConstants.O_TRUNC,
  a: fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_APPEND,
  'a+': fsConstants.O_RDWR | fsConstants.O_CREAT | fsConstants.O_APPEND,
  wx: fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_TRUNC | fsConstants.O_EXCL,
  'wx+': fsConstants.O_RDWR | fsConstants.O_CREAT | fsConstants.O_TRUNC | fsConstants.O_EXCL,
  ax: fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_APPEND | fsConstants.O_EXCL,
  'ax+': fsConstants.O_RDWR | fsConstants.O_CREAT | fsConstants.O_APPEND | fsConstants.O_EXCL,
};

function openFlags(flags: unknown): number {
  if (typeof flags === 'number') {
    if (!Number.isInteger(flags) || flags < 0 || flags > 0x7fffffff) {
      throw outOfRange('options.flags', 'an integer of O_* bits', flags);
    }
    return flags;
  }
  if (typeof flags !== 'string')
    throw invalidArgType('options.flags', 'a string or a number', flags);
  const f = OPEN_FLAGS[flags];
  if (f === undefined) {
    throw invalidArgValue(
      'options.flags',
      `must be one of ${Object.keys(OPEN_FLAGS).join(', ')}`,
      flags,
    );
  }
  return f;
}

// statx's fields, as the native side packs them: 14 doubles.
function statFrom(b: Buffer): FileStat {
  const v = new Float64Array(b.buffer.slice(b.byteOffset, b.byteOffset + 14 * 8));
  const mode = v[1]!;
  const type = mode & fsConstants.S_IFMT;
  return {
    size: v[0]!,
    mode,
    uid: v[2]!,
    gid: v[3]!,
    nlink: v[4]!,
    ino: v[5]!,
    dev: v[6]!,
    blksize: v[7]!,
    blocks: v[8]!,
    atimeMs: v[9]!,
    mtimeMs: v[10]!,
    ctimeMs: v[11]!,
    birthtimeMs: v[12]!,
    isFile: type === fsConstants.S_IFREG,
    isDirectory: type === fsConstants.S_IFDIR,
  };
}

/** A task for {@link AsyncEngine.submitWork}. */
export interface WorkTask {
  /** The module to import on the worker thread: an absolute path, a `file:` URL, or a package. */
  module: string | URL;
  /** The name of the exported function to call. */
  fn: string;
  /** Its arguments, structured-cloned to the worker thread. */
  args?: unknown[];
  /** ArrayBuffers (or MessagePorts) among `args` to move to the thread rather than copy. */
  transfer?: TransferListItem[];
}

function checkTask(task: unknown): {
  module: string;
  fn: string;
  args: unknown[];
  transfer: TransferListItem[];
} {
  if (task === null || typeof task !== 'object') throw invalidArgType('task', 'an object', task);
  const t = task as WorkTask;
  let module: string;
  if (t.module instanceof URL) {
    module = t.module.href;
  } else if (typeof t.module === 'string' && t.module !== '') {
    module = t.module.startsWith('/') ? pathToFileURL(t.module).href : t.module;
  } else {
    throw invalidArgType('task.module', 'a non-empty string or a URL', t.module);
  }
  if (typeof t.fn !== 'string' || t.fn === '')
    throw invalidArgType('task.fn', 'a non-empty string', t.fn);
  if (t.args !== undefined && !Array.isArray(t.args))
    throw invalidArgType('task.args', 'an array', t.args);
  if (t.transfer !== undefined && !Array.isArray(t.transfer)) {
    throw invalidArgType('task.transfer', 'an array', t.transfer);
  }
  return { module, fn: t.fn, args: t.args ?? [], transfer: t.transfer ?? [] };
}

function checkWorkThreads(work: unknown): number {
  const fallback = Math.max(2, availableParallelism());
  if (work === undefined) return fallback;
  if (work === null || typeof work !== 'object')
    throw invalidArgType('config.work', 'an object', work);
  const threads = (work as { threads?: unknown }).threads;
  if (threads === undefined) return fallback;
  if (typeof threads !== 'number' || !Number.isInteger(threads) || threads < 1 || threads > 1024) {
    throw outOfRange('config.work.threads', 'an integer from 1 to 1024', threads);
  }
  return threads;
}
