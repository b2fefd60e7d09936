// Public types of the engine surface: configuration, addresses, op options and results.
import type { TlsServerOptions } from './tls.js';
import type { TransferListItem } from 'node:worker_threads';

/**
 * The interchangeable implementations behind the engine: `completion` (io_uring), `readiness`
 * (epoll), `threadpool` (native worker threads) and `poll` (poll(2), the portable reference
 * reactor, never chosen by `'auto'`).
 */
export type ImplName = 'completion' | 'readiness' | 'threadpool' | 'poll';

/** How completions are dispatched to JavaScript. */
export type DriveMode = 'auto' | 'manual';

/**
 * Engine configuration, given to {@link createEngine}.
 */
export interface EngineConfig {
  /**
   * Which implementation to run. `'auto'` (the default) picks `completion` where io_uring works
   * here, else `readiness` (never `threadpool` or `poll`: those are asked for by name); the
   * environment variable `ASYNC_ENGINE_IMPL` overrides `'auto'`.
   * Asking for an implementation that cannot run here throws an `EngineError` saying why.
   */
  impl?: 'auto' | ImplName;
  /**
   * `'auto'` (default): completions are dispatched from Node's event loop.
   * `'manual'`: nothing happens until the program calls {@link AsyncEngine.runOnce} or
   * {@link AsyncEngine.run}.
   */
  drive?: DriveMode;
  /**
   * Default bound for ops that buffer before they deliver (read-until, lines, readAll). 65536.
   * An integer from 1 to 2**53 - 1, or `Infinity`.
   */
  maxBytes?: number;
  /** Encoding of line results (`expectLine`, `readUntilLineglob`, regex matching). `'utf8'`. */
  encoding?: BufferEncoding;
  /**
   * Warn (once, as a process warning `ASYNC_ENGINE_DROPPED_FAILURE`) when a failure is dropped
   * because its Callback has no `failure` slot. Default `false`, or `true` when the environment
   * variable `ASYNC_ENGINE_DEBUG` is `1`.
   */
  debug?: boolean;
  /**
   * Options of the `completion` implementation (io_uring). `entries`: submission queue
   * entries of the ring, an integer from 1 to 32768 (the kernel rounds it up to a power of
   * two; default 256). Checked whichever implementation runs: a value outside its range throws
   * a RangeError (`ERR_OUT_OF_RANGE`).
   */
  completion?: { entries?: number };
  /**
   * Options of the `readiness` implementation (epoll). `maxEvents`: events taken per
   * `epoll_wait`, an integer from 1 to 65536 (default 256). Out of range: RangeError
   * (`ERR_OUT_OF_RANGE`).
   */
  readiness?: { maxEvents?: number };
  /**
   * Options of the `threadpool` implementation. `threads`: worker threads at most, an integer
   * from 1 to 1024 (default: twice the CPUs this process may use, at least 4). Out of range:
   * RangeError (`ERR_OUT_OF_RANGE`).
   */
  threadpool?: { threads?: number };
  /**
   * The worker threads of `submitWork`: at most `threads` (default: the CPUs this process may
   * use, at least 2), started when a task needs one; none while it is never called. An
   * integer from 1 to 1024.
   */
  work?: { threads?: number };
}

/** What {@link availableImpls} reports for one implementation. */
export interface ImplAvailability {
  impl: ImplName;
  available: boolean;
  /** Why the implementation cannot run here, when it cannot. */
  reason?: string;
}

/**
 * A TCP address (`host`, `port`) or a Unix socket path (`path`). {@link AsyncEngine.connect}
 * also takes the {@link SocketOptions} keys here, set on the socket once it is connected.
 */
export type ConnectAddress = { host: string; port: number } | { path: string };

/**
 * Socket options, for {@link AsyncEngine.setSocketOptions}, `listen` (every accepted socket
 * gets them) and `connect` (set once connected). An option left out is left as it is. The TCP
 * options (`noDelay`, `keepAlive`, `keepAliveInitialDelay`) are skipped silently on a Unix socket.
 */
export interface SocketOptions {
  /**
   * `TCP_NODELAY`: send small writes at once rather than coalescing them (Nagle's algorithm
   * off). On by default for every TCP socket the engine accepts or connects, as in Node since
   * v18; `listen({ noDelay: false })` turns the default off for its accepted sockets.
   */
  noDelay?: boolean;
  /** `SO_KEEPALIVE`: probe an idle connection, so a dead peer is noticed. */
  keepAlive?: boolean;
  /**
   * Idle time before the first keep-alive probe, in milliseconds (`TCP_KEEPIDLE`, in whole
   * seconds: truncated as Node's `setKeepAlive` does; below 1000 leaves the kernel's default,
   * 7200 s unless changed). An integer from 0 to 32767000. It takes effect while `keepAlive` is on.
   */
  keepAliveInitialDelay?: number;
  /**
   * `SO_RCVBUF`, in bytes (an integer from 1 to 2147483647). Linux doubles the value asked
   * for (its bookkeeping overhead) and clamps it to `net.core.rmem_max`: read back with
   * {@link AsyncEngine.socketOptions}.
   */
  receiveBufferSize?: number;
  /** `SO_SNDBUF`, in bytes; as `receiveBufferSize` (doubled, clamped to `net.core.wmem_max`). */
  sendBufferSize?: number;
}

/** A socket's options as the kernel reports them ({@link AsyncEngine.socketOptions}). */
export interface SocketOptionValues {
  /** `TCP_NODELAY`; always `false` on a Unix socket. */
  noDelay: boolean;
  /** `SO_KEEPALIVE`; always `false` on a Unix socket. */
  keepAlive: boolean;
  /** `TCP_KEEPIDLE`, in milliseconds (a whole number of seconds); 0 on a Unix socket. */
  keepAliveInitialDelay: number;
  /** `SO_RCVBUF`: on Linux, twice the size asked for. */
  receiveBufferSize: number;
  /** `SO_SNDBUF`: on Linux, twice the size asked for. */
  sendBufferSize: number;
}

/**
 * Options of {@link AsyncEngine.listen}. The {@link SocketOptions} keys apply to every socket it
 * accepts.
 */
export interface ListenOptions extends SocketOptions {
  /**
   * Address to bind; default `'127.0.0.1'`. IPv6 literals (`'::1'`, `'::'`) bind IPv6, and take
   * IPv4 clients too (`'::'` listens dual-stack, as `net` does) unless `ipv6Only` is set.
   */
  host?: string;
  /**
   * TCP port, an integer from 0 to 65535; `0` (default) lets the kernel pick one, see
   * {@link Listener.address}.
   */
  port?: number;
  /** A Unix domain socket path instead of a TCP address. */
  path?: string;
  /** Listen backlog, an integer from 0 to 2147483647 (the kernel caps it); default 511. */
  backlog?: number;
  /** Set `SO_REUSEPORT`, so several engines (one per worker thread) can share the port. */
  reusePort?: boolean;
  /**
   * An IPv6 listener takes IPv6 clients only (`IPV6_V6ONLY`); default `false`: dual-stack, as
   * `net` listens. Ignored for IPv4 and Unix socket addresses.
   */
  ipv6Only?: boolean;
  /**
   * `TCP_DEFER_ACCEPT`: the kernel completes a connection's accept only once the client has sent
   * data, so a client that connects and says nothing costs no accept. `true` defers up to 30
   * seconds, a number of seconds (an integer from 1 to 2147483647) that long; past it the
   * kernel accepts the connection anyway. Default `false`. TCP only (ignored for a Unix socket).
   */
  deferAccept?: boolean | number;
  /**
   * Serve TLS: every socket accepted runs the server handshake before the accept succeeds (a
   * failed handshake fails the accept and closes that connection). See docs/tls.md.
   */
  tls?: TlsServerOptions;
}

/**
 * {@link ListenOptions} of a TCP listener (no `path`): `engine.listen()` with them returns a
 * `Listener<ListenerAddress>`, whose `address().port` is a number.
 */
export type TcpListenOptions = Omit<ListenOptions, 'path'> & { path?: undefined };

/**
 * {@link ListenOptions} of a Unix socket listener: `engine.listen()` with them returns a
 * `Listener<string>`, whose `address()` is the path.
 */
export type UnixListenOptions = Omit<ListenOptions, 'path' | 'host' | 'port'> & {
  path: string;
  host?: undefined;
  port?: undefined;
};

/** The address a listener is bound to, as `net.Server#address()` gives it. */
export interface ListenerAddress {
  address: string;
  family: 'IPv4' | 'IPv6';
  port: number;
}

/** One result of {@link AsyncEngine.getaddrinfo}. */
export interface AddrInfo {
  address: string;
  family: 4 | 6;
}

/**
 * Options every op takes, in an options object just before its Callback (or, for `open`,
 * `fsync` and `readLengthPrefixed`, in the options object they take anyway). An op refuses a
 * key it does not use (`ERR_INVALID_ARG_VALUE`, naming it).
 */
export interface CommonOptions {
  /**
   * Milliseconds the op may take (a chain: each stage, from when it starts), in place of its
   * Callback's `timeout`; past it, `failure` gets `ETIMEDOUT`. Any finite number >= 0; `0`: no
   * deadline.
   */
  timeout?: number;
  /**
   * Cancels the op when aborted, as its Callback's `cancel()` does: `failure` gets `ECANCELED`
   * if the cancel won (an op that had finished settles with its own outcome). Already aborted:
   * the op is cancelled as soon as it is submitted. The engine's listener goes once the op
   * settles.
   */
  signal?: AbortSignal;
}

/**
 * The options of a read or write op: {@link CommonOptions} and the op's own. Which op takes
 * which key: `maxBytes` (readUntil, readAll, expectLine, readUntilLineglob, readUntilRegex, and
 * the chains ending in a line or regex read), `encoding` (expectLine, readUntilLineglob,
 * readUntilRegex, those chains), `position` (readChunk, readExactly, readAll, readInto, write).
 */
export interface OpOptions extends CommonOptions {
  /**
   * Bound on the bytes this op may buffer before delivering, an integer from 1 to 2**53 - 1;
   * `Infinity` lifts it.
   */
  maxBytes?: number;
  /** Encoding of string results of this op. */
  encoding?: BufferEncoding;
  /**
   * Files only: the offset to read or write at (an integer from 0 to 2**53 - 1), leaving the
   * File's sequential positions alone. For `readChunk`, `readExactly`, `readAll`, `readInto` and
   * `write`.
   */
  position?: number;
}

/** Options of `readChunk`, `readExactly`, `readInto` and `write`. */
export type PositionOptions = Pick<OpOptions, 'position' | 'timeout' | 'signal'>;

/** Options of `readUntil` and `readAll`. */
export type BoundedOptions = Pick<OpOptions, 'maxBytes' | 'position' | 'timeout' | 'signal'>;

/** Options of the chains that end in a line or regex read (`connectThenExpectLine`, ...). */
export type ChainReadOptions = Pick<OpOptions, 'maxBytes' | 'encoding' | 'timeout' | 'signal'>;

/**
 * A pre-registered reply (`onMismatch` of the line ops that take an `expect`): a line that does
 * not match `expect` gets `reply` written, is consumed, and the op goes on waiting, with no
 * JavaScript called. A string or `null` expect is matched by the native side, which queues the
 * reply behind the writes already queued on the socket; a RegExp expect is matched in
 * JavaScript as the line arrives, where regexes are matched for every line op, and the engine
 * writes the reply and reads on itself.
 */
export interface MismatchReply {
  /** The bytes a mismatched line gets (a string is written as UTF-8). */
  reply: string | Buffer;
  /**
   * How many mismatched lines get the reply, an integer from 0 up, or `Infinity` (the default).
   * The next mismatch fails the op with `ERR_MISMATCH` and `err.line`, with no reply.
   */
  max?: number;
}

/** Options of `expectLine`: {@link OpOptions} and `onMismatch`. */
export interface LineOptions extends OpOptions {
  /** A pre-registered reply for lines that do not match `expect`. */
  onMismatch?: MismatchReply;
}

/** Options of the chains that end in a line read (`acceptThenExpectLine`, ...). */
export type ChainLineOptions = ChainReadOptions & {
  /** A pre-registered reply for lines that do not match `expect`. */
  onMismatch?: MismatchReply;
};

/**
 * How {@link AsyncEngine.readLengthPrefixed} cuts a record: a header, then a body whose length
 * the header gives (RESP's `$5\r\nhello\r\n`, memcached's `VALUE k 0 5\r\n...`, an HTTP/1
 * message with `Content-Length`).
 */
export interface LengthPrefixedOptions extends CommonOptions {
  /**
   * The body's length, taken from the header (its terminator or delimiter stripped): an integer
   * from 0 to 2**53 - 1, or -1 for a record with no body (RESP's `$-1`; the trailer is then not
   * read either). Anything else fails the op with `ERR_INVALID_LENGTH`; a throw, with
   * `ERR_USER_CODE`. Either way the header stays buffered. It is called synchronously, possibly
   * inside the call that submits the op, so it must only compute: no engine calls.
   */
  length: (header: string) => number;
  /** Where the header ends (e.g. `'\r\n\r\n'`). Default: a line, ended by `\n` or `\r\n`. */
  delimiter?: string | Buffer;
  /**
   * Bytes that must follow the body (e.g. `'\r\n'`): checked and consumed. A number: that many
   * bytes, consumed unchecked (Redis does not look at the two after a bulk). Default: none.
   */
  trailer?: string | Buffer | number;
  /** Bound on the header, as for `expectLine` (or `readUntil` with a delimiter). */
  maxBytes?: number;
  /**
   * Bound on the body's length (default: the header's bound): a longer one fails with
   * `ERR_LIMIT` and the record stays buffered. `Infinity` lifts it.
   */
  maxBody?: number;
  /** Encoding of the header string (default: the engine's). */
  encoding?: BufferEncoding;
  /**
   * Deliver the body as a string in this encoding rather than a Buffer (a program that keeps
   * strings saves a Buffer per record; held ASCII or latin1 bytes are sliced, not copied).
   */
  bodyEncoding?: BufferEncoding;
}

/**
 * The value of {@link AsyncEngine.readLengthPrefixed}: `B` is `Buffer`, or `string` with
 * `bodyEncoding`.
 */
export interface LengthPrefixedRecord<B extends Buffer | string = Buffer> {
  /** The header, decoded, its terminator or delimiter stripped. */
  header: string;
  /** The body (the trailer not included), or `null` when the length was -1. */
  body: B | null;
}

/** How `engine.open()` opens a file. */
export interface OpenOptions extends CommonOptions {
  /**
   * As `fs.open`'s flags: `'r'` (the default), `'r+'`, `'w'`, `'w+'`, `'a'`, `'a+'`, the `x`
   * forms (`'wx'`, `'wx+'`, `'ax'`, `'ax+'`: fail with `EEXIST` if the file exists), or a number
   * of `fs.constants.O_*` bits.
   */
  flags?: string | number;
  /** Permission bits of a file the open creates (default `0o666`, less the umask). */
  mode?: number;
  /**
   * O_DIRECT: reads and writes bypass the page cache. Positions and sizes must then be
   * multiples of `file.alignment`; a file system that refuses O_DIRECT fails the open with
   * `EINVAL`.
   */
  direct?: boolean;
}

/** Options of `engine.fsync()`. */
export interface FsyncOptions extends CommonOptions {
  /** fdatasync(2): flush the data and only the metadata needed to read it back. */
  dataOnly?: boolean;
}

/** What `engine.stat()` reports (from statx(2)); times in milliseconds since the epoch. */
export interface FileStat {
  size: number;
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  ino: number;
  dev: number;
  blksize: number;
  blocks: number;
  atimeMs: number;
  mtimeMs: number;
  ctimeMs: number;
  /** 0 where the file system does not record it. */
  birthtimeMs: number;
  isFile: boolean;
  isDirectory: boolean;
}

/** The value of a regex read: the bytes consumed (through the end of the match) and the match. */
export interface RegexResult {
  data: Buffer;
  match: RegExpExecArray;
}

/**
 * The value of a read until one of several delimiters: the bytes consumed (through the
 * delimiter found, which they include), that delimiter as it was given, and its index in the
 * list.
 */
export interface ReadUntilResult {
  data: Buffer;
  delimiter: string | Buffer;
  index: number;
}

/** Counters returned by {@link AsyncEngine.stats}. */
export interface EngineStats {
  impl: ImplName;
  /** Ops submitted and not yet settled. */
  opsInFlight: number;
  /** Ops settled since the engine started. */
  completions: number;
  /**
   * Of those, ops whose frame was already in bytes handed to JavaScript in bulk: they settled
   * in the engine's dispatch turn with no crossing of their own.
   */
  framedInJs: number;
  /** Wake-ups of the JavaScript thread that delivered at least one completion. */
  batches: number;
  /**
   * System calls the engine made for socket I/O and waiting, on its thread and its worker
   * threads: exactly which is listed in docs/api.md (`EngineStats`).
   */
  syscalls: number;
  bytesRead: number;
  bytesWritten: number;
  /** Open sockets (connections, not listeners: those are `listeners`). */
  sockets: number;
  /** Open listeners. */
  listeners: number;
  /**
   * OpenSSL contexts alive: one per TLS listener configuration, shared by every socket it
   * accepts, and one per client configuration (`ca`, `rejectUnauthorized`, `alpn`), kept for
   * reuse (at most 16). Server contexts go once no listener is open and their last socket has
   * closed.
   */
  tlsContexts: number;
  /**
   * Primitives (recv, send, accept, connect) given to a worker thread that it has not taken up
   * yet (each worker watches any number). Implementations: `threadpool` only.
   */
  queueDepth?: number;
  /** Worker threads holding at least one primitive. Implementations: `threadpool` only. */
  busyWorkers?: number;
  /** Submission queue entries of the ring. Implementations: `completion` only. */
  ringEntries?: number;
  /**
   * The `IORING_SETUP_*` flags the kernel accepted for the ring (e.g. `SINGLE_ISSUER`,
   * `COOP_TASKRUN`); features it refused were left off. Implementations: `completion` only.
   */
  ringSetupFlags?: number;
  /**
   * 1 when a listener's accept is armed once and reports every connection (multishot accept,
   * Linux 5.19), 0 when each accept is its own request. Implementations: `completion` only.
   */
  multishotAccept?: number;
  /**
   * 1 when a socket's receive is armed once and reports into the ring's shared provided buffers
   * (multishot recv, Linux 6.0), 0 when each receive is its own request into the socket's own
   * area. Implementations: `completion` only.
   */
  multishotRecv?: number;
  /**
   * Provided receive buffers (16 KiB each, 256 in all) holding bytes the engine has not consumed
   * yet. Implementations: `completion` only.
   */
  recvBuffersInUse?: number;
  /** Open files. */
  files: number;
  /**
   * File reads and writes served inline from the page cache (`preadv2`/`pwritev2` with
   * `RWF_NOWAIT`), with no thread hop. `readiness` and `threadpool`.
   */
  fileFastPath: number;
  /**
   * File requests run on the file worker pool: reads and writes that would block, and every
   * open, fsync and stat. `readiness` and `threadpool`.
   */
  fileFallbacks: number;
  /** File requests the backend ran itself (io_uring ops). `completion`. */
  fileOps: number;
  /** Worker threads of `submitWork` alive now (0 until the first task). */
  workThreads: number;
  /**
   * Connections `acceptWhen` refused and closed natively, never seen by JavaScript, by reason.
   */
  filteredConnections: FilteredConnections;
  /**
   * Connections `acceptWhen` refused while their peer was still sending (its bytes stopped
   * mid-line), being read to their end before the close (at most 2 s and 1 MiB each, 1024 at
   * once) so that the reply is not lost to a reset. A gauge; they count in `sockets` too.
   */
  lingeringConnections: number;
  /**
   * Pre-registered replies written (`onMismatch` of the line ops and of `serveLines`): each a
   * line that did not match, answered and dropped with no callback of yours.
   */
  mismatchReplies: number;
}

/** {@link EngineStats.filteredConnections}: connections `acceptWhen` refused, by reason. */
export interface FilteredConnections {
  /** The first line was not the one expected, or the client closed (or failed) before one. */
  mismatch: number;
  /** No complete first line within the filter's `timeout`. */
  timeout: number;
  /** The first line was longer than the filter's `maxBytes`. */
  tooLong: number;
}

/**
 * Options of {@link AsyncEngine.acceptWhen}: what becomes of a connection whose first line does
 * not pass, and the op's `signal`. (The op's own deadline is its Callback's `timeout`.)
 */
export interface AcceptWhenOptions {
  /**
   * Written to a refused connection just before it is closed (a mismatched line, a silent
   * client, a line over `maxBytes`); default none. One non-blocking send on a connection that
   * has written nothing yet: up to the socket's send buffer (hundreds of KiB) goes out.
   */
  reply?: string | Buffer | Uint8Array;
  /**
   * Milliseconds a connection has, from its accept, to send its whole first line; past it, it
   * is refused. Any finite number >= 0; `0` (default): no limit.
   */
  timeout?: number;
  /**
   * Bound on the first line (without its terminator), an integer from 1 to 2**53 - 1, or
   * `Infinity`; a longer one is refused. Default: the engine's `maxBytes`.
   */
  maxBytes?: number;
  /**
   * `true`: `expect` is how the first line starts rather than the whole of it (`'HELO '`
   * passes `HELO client.example`). Matched natively, byte for byte, like the whole line.
   * Default `false`. Needs an `expect` other than `null`.
   */
  prefix?: boolean;
  /** Cancels the op when aborted, as {@link CommonOptions.signal} does. */
  signal?: AbortSignal;
}

/**
 * `acceptWhen`'s `expect`: the first line exactly, without its terminator (a string, compared as
 * UTF-8, or bytes), or `null`: any line.
 */
export type AcceptExpectation = string | Uint8Array | null;

/** {@link AsyncEngine.listenerOptions}: a listener's options as the kernel reports them. */
export interface ListenerOptionValues {
  /** `TCP_DEFER_ACCEPT` in seconds as the kernel rounds it (to its SYN-ACK retries); 0: off. */
  deferAccept: number;
}

/** A handle to something scheduled by `callSoon` / `callLater`. */
export interface TimerHandle {
  /** Stops the callback from running; `true` if it had not run yet. */
  cancel(): boolean;
}

/** Data a write accepts. */
export type WriteData = Buffer | Uint8Array | string | ReadonlyArray<Buffer | Uint8Array>;

/** What `expectLine` checks a line against: `null` accepts any line. */
export type LineExpectation = string | RegExp | null;

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

/** A socket's own timeouts, for {@link AsyncEngine.setTimeouts}; `0` or `undefined`: off. */
export interface SocketTimeouts {
  /**
   * Milliseconds a socket may go with no byte received or sent while a read waits on it; past
   * them the waiting reads fail with `ETIMEDOUT` (syscall `read`). The socket stays open.
   */
  idle?: number;
  /**
   * Milliseconds the socket's queued writes may go with the kernel taking none of their bytes;
   * past them every queued write fails with `ETIMEDOUT` (syscall `write`), and so do later ones.
   */
  write?: number;
}
