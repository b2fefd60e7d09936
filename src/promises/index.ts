// The Promise layer (`engine.promises`): every op of AsyncEngine as a function that returns a
// Promise, with an AbortSignal and a deadline per op, built on the callback core.
import { Callback } from '../engine/callback.js';
import { type AsyncEngine, registerPromises } from '../engine/engine.js';
import { EngineError, invalidArgType, invalidArgValue } from '../engine/errors.js';
import { type ServeOptions, servePromises } from '../engine/serve.js';
import type { LineHandler, ServeLinesOptions } from '../engine/serve-lines.js';
import { type ChunksOptions, type LinesOptions, chunks, lines } from './iterate.js';
import type { File, Listener, Socket } from '../engine/io.js';
import type { StartTlsOptions, TlsConnectOption } from '../engine/tls.js';
import type {
  AcceptExpectation,
  AcceptWhenOptions,
  AddrInfo,
  ConnectAddress,
  FileStat,
  FsyncOptions,
  LengthPrefixedOptions,
  LengthPrefixedRecord,
  LineExpectation,
  MismatchReply,
  OpOptions,
  OpenOptions,
  ReadUntilResult,
  RegexResult,
  SocketOptions,
  WorkTask,
  WriteData,
} from '../engine/types.js';

/**
 * Options of a promise op: the op's own {@link OpOptions} (`maxBytes`, `encoding`, `position`)
 * plus `signal` and `timeout`. Ops that take only `signal` and `timeout` in the callback API
 * (`accept`, `connect`, `getaddrinfo`, `stat`, `submitWork`, `acceptThenWrite`,
 * `connectThenWriteLine`, `getaddrinfoThenConnect`, and `open` and `fsync`, whose own options
 * come first) take only those. A key the op does not use rejects (`ERR_INVALID_ARG_VALUE`).
 */
export interface PromiseOpOptions extends OpOptions {
  /**
   * Aborts the op: already aborted, the promise rejects with an `AbortError` and nothing is
   * submitted; aborted while pending, the op is cancelled, and the promise rejects with an
   * `AbortError` if the cancel won, or settles with the op's own outcome if it had already
   * finished.
   */
  signal?: AbortSignal;
  /**
   * Milliseconds the op may take, as a `Callback`'s `timeout`: past it the promise rejects with
   * an `EngineError` `ETIMEDOUT`. For a chain, each stage gets this deadline from when it starts.
   */
  timeout?: number;
}

/** The options of ops that take no {@link OpOptions}: `signal` and `timeout` only. */
type SignalOptions = Pick<PromiseOpOptions, 'signal' | 'timeout'>;

/**
 * What a chain's promise resolves to: the last stage's value and the socket the chain ran on
 * (the one it accepted or connected, or the one it was given).
 */
export interface ChainResult<T> {
  value: T;
  socket: Socket;
}

/**
 * The error an aborted op rejects with, as Node's own promise APIs make it: `name`
 * `'AbortError'`, `code` `'ABORT_ERR'`, `cause` the signal's reason. An aborted write (or write
 * stage) also carries `bytesWritten`, the bytes the kernel had confirmed.
 */
interface AbortError extends Error {
  name: 'AbortError';
  code: 'ABORT_ERR';
  cause: unknown;
  bytesWritten?: number;
  /** An aborted chain: the socket it ran on, left open (see `EngineError.socket`). */
  socket?: Socket | File;
}

function abortError(reason: unknown, cancelled?: EngineError): AbortError {
  const err = new Error('The operation was aborted', { cause: reason }) as AbortError;
  err.name = 'AbortError';
  err.code = 'ABORT_ERR';
  if (cancelled?.bytesWritten !== undefined) err.bytesWritten = cancelled.bytesWritten;
  return err;
}

// Validates the promise options; returns the signal (if any) and the options the callback API
// takes (without signal and timeout).
function split(options: PromiseOpOptions | undefined): [AbortSignal | undefined, OpOptions] {
  if (options === undefined) return [undefined, {}];
  if (options === null || typeof options !== 'object') {
    throw invalidArgType('options', 'an object', options);
  }
  const { signal, timeout: _timeout, ...opOptions } = options;
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    throw invalidArgType('options.signal', 'an AbortSignal', signal);
  }
  return [signal, opOptions];
}

// `open` and `fsync` take their own options first: signal and timeout belong in the last
// argument, and misplaced ones are refused rather than ignored.
function checkOwnOptions(name: string, own: object | undefined): void {
  if (own !== null && typeof own === 'object' && ('signal' in own || 'timeout' in own)) {
    throw invalidArgValue(name, 'takes no signal or timeout: pass them in the next argument', own);
  }
}

// `open` and `fsync` take signal and timeout only in their last argument: anything else there
// is refused, as an op refuses an option it does not use.
function checkNoOpOptions(o: OpOptions): void {
  for (const k in o) {
    if ((o as Record<string, unknown>)[k] !== undefined) {
      throw invalidArgValue('options', `has a key this call does not take: '${k}'`, o);
    }
  }
}

/**
 * Runs one op: `submit` hands the Callback to the engine. Rejects (without submitting) for bad
 * options or an aborted signal; a submit that throws rejects with what it threw.
 */
function single<T>(
  options: PromiseOpOptions | undefined,
  submit: (cb: Callback<T, any, any>, opOptions: OpOptions) => void,
  timeout: number | undefined = options?.timeout,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const [signal, opOptions] = split(options);
    if (signal?.aborted) {
      reject(abortError(signal.reason));
      return;
    }
    let cancelled = false;
    const onAbort = (): void => {
      cancelled = cb.cancel();
    };
    const cb = new Callback<T, any, any>({
      timeout,
      success: (value) => {
        signal?.removeEventListener('abort', onAbort);
        resolve(value);
      },
      failure: (err) => {
        signal?.removeEventListener('abort', onAbort);
        reject(cancelled ? abortError(signal!.reason, err) : err);
      },
    });
    submit(cb, opOptions);
    // No callback runs inside the submitting call, so the listener is in place before any can.
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Runs a two-stage chain and settles once both stages have: with the last stage's value and
 * socket, or with the first failure, which carries the socket the chain ran on (`err.socket`:
 * the one its accept or connect made, or the one it was given), left open: the program closes
 * it, or goes on using it (a greeting that did not match may be followed by a QUIT).
 */
function chain<A, B>(
  options: PromiseOpOptions | undefined,
  given: Socket | File | undefined,
  submit: (cbs: [Callback<A, any, any>, Callback<B, any, any>], opOptions: OpOptions) => void,
): Promise<ChainResult<B>> {
  return new Promise<ChainResult<B>>((resolve, reject) => {
    const [signal, opOptions] = split(options);
    if (signal?.aborted) {
      reject(abortError(signal.reason));
      return;
    }
    const timeout = options?.timeout;
    let cancelled = false;
    let pending = 2;
    let error: EngineError | undefined;
    let made: Socket | File | undefined = given;
    let result: ChainResult<B> | undefined;
    const onAbort = (): void => {
      // The first stage's Callback follows the chain: it cancels whichever stage is running.
      cancelled = first.cancel() || last.cancel();
    };
    const settled = (): void => {
      if (--pending > 0) return;
      signal?.removeEventListener('abort', onAbort);
      if (result !== undefined && error === undefined) {
        resolve(result);
        return;
      }
      const err = cancelled ? abortError(signal!.reason, error) : error!;
      if (made !== undefined) err.socket = made;
      reject(err);
    };
    const failure = (err: EngineError): void => {
      error ??= err; // a later stage's ERR_ABORTED only repeats the first failure
      settled();
    };
    const first = new Callback<A, any, any>({
      timeout,
      success: (value, socket) => {
        made ??= socket as Socket;
        settled();
      },
      failure,
    });
    const last = new Callback<B, any, any>({
      timeout,
      success: (value, socket) => {
        result = { value, socket };
        settled();
      },
      failure,
    });
    submit([first, last], opOptions);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * The Promise form of every op of an {@link AsyncEngine}: the same names and arguments, without
 * the callbacks, plus a last optional {@link PromiseOpOptions} (`signal`, `timeout` and the op's
 * own options). Failures reject with the op's `EngineError`; an aborted op rejects with an
 * `AbortError`. Reach it as `engine.promises`.
 */
export class EnginePromises {
  readonly #engine: AsyncEngine;

  /** Prefer `engine.promises`, which makes one per engine. */
  constructor(engine: AsyncEngine) {
    this.#engine = engine;
  }

  // ---- single ops ----

  /** Accepts the next connection: the new `Socket`, yours to close. */
  accept(listener: Listener, options?: SignalOptions): Promise<Socket> {
    return single(options, (cb, o) => this.#engine.accept(listener, o, cb));
  }

  /** Connects to `{ host, port }` (a name is resolved first) or to a Unix socket `{ path }`. */
  connect(
    address: ConnectAddress & SocketOptions & TlsConnectOption,
    options?: SignalOptions,
  ): Promise<Socket> {
    return single(options, (cb, o) => this.#engine.connect(address, o, cb));
  }

  /** Upgrades a plain socket to TLS (STARTTLS): the socket, once the handshake is done. */
  startTls(sock: Socket, tls: StartTlsOptions, options?: SignalOptions): Promise<Socket> {
    return single(options, (cb, o) => this.#engine.startTls(sock, tls, o, cb));
  }

  /** Resolves a host name: its addresses, in the resolver's order. */
  getaddrinfo(host: string, port: number, options?: SignalOptions): Promise<AddrInfo[]> {
    return single(options, (cb, o) => this.#engine.getaddrinfo(host, port, o, cb));
  }

  /** Reads through the first `delimiter`: the bytes, delimiter included. */
  readUntil(
    sock: Socket | File,
    delimiter: string | Buffer,
    options?: PromiseOpOptions,
  ): Promise<Buffer>;
  /**
   * Reads through whichever of 1 to 16 delimiters ends first (of two ending at the same byte,
   * the longer): `{ data, delimiter, index }`.
   */
  readUntil(
    sock: Socket | File,
    delimiters: ReadonlyArray<string | Buffer>,
    options?: PromiseOpOptions,
  ): Promise<ReadUntilResult>;
  readUntil(
    sock: Socket | File,
    delimiter: string | Buffer | ReadonlyArray<string | Buffer>,
    options?: PromiseOpOptions,
  ): Promise<Buffer | ReadUntilResult> {
    return single(options, (cb, o) =>
      this.#engine.readUntil(sock, delimiter as string, o, cb as Callback<Buffer>),
    );
  }

  /** Reads until the peer ends the stream (or the end of the file): every byte. */
  readAll(sock: Socket | File, options?: PromiseOpOptions): Promise<Buffer> {
    return single(options, (cb, o) => this.#engine.readAll(sock, o, cb));
  }

  /** Reads lines until one matches `glob`: every line up to it, terminators stripped. */
  readUntilLineglob(
    sock: Socket | File,
    glob: string,
    options?: PromiseOpOptions,
  ): Promise<string[]> {
    return single(options, (cb, o) => this.#engine.readUntilLineglob(sock, glob, o, cb));
  }

  /** Reads until `regex` matches the buffered bytes: `{ data, match }`. */
  readUntilRegex(
    sock: Socket | File,
    regex: RegExp,
    options?: PromiseOpOptions,
  ): Promise<RegexResult> {
    return single(options, (cb, o) => this.#engine.readUntilRegex(sock, regex, o, cb));
  }

  /** Reads what is available, 1 to `size` bytes; an empty Buffer at EOF. */
  readChunk(sock: Socket | File, size: number, options?: PromiseOpOptions): Promise<Buffer> {
    return single(options, (cb, o) => this.#engine.readChunk(sock, size, o, cb));
  }

  /** Reads exactly `n` bytes. */
  readExactly(sock: Socket | File, n: number, options?: PromiseOpOptions): Promise<Buffer> {
    return single(options, (cb, o) => this.#engine.readExactly(sock, n, o, cb));
  }

  /** Looks at up to `n` buffered bytes without consuming them (see `AsyncEngine.peek`). */
  peek(sock: Socket, n: number, options?: PromiseOpOptions): Promise<Buffer> {
    return single(options, (cb, o) => this.#engine.peek(sock, n, o, cb));
  }

  /** Reads one length-prefixed record (see `AsyncEngine.readLengthPrefixed`). */
  readLengthPrefixed(
    sock: Socket | File,
    options: LengthPrefixedOptions & { bodyEncoding: BufferEncoding } & SignalOptions,
  ): Promise<LengthPrefixedRecord<string>>;
  readLengthPrefixed(
    sock: Socket | File,
    options: LengthPrefixedOptions & SignalOptions,
  ): Promise<LengthPrefixedRecord>;
  readLengthPrefixed(
    sock: Socket | File,
    options: LengthPrefixedOptions & SignalOptions,
  ): Promise<LengthPrefixedRecord<Buffer | string>> {
    return single(options, (cb: Callback<LengthPrefixedRecord<Buffer | string>, any, any>, o) =>
      this.#engine.readLengthPrefixed(sock, o as LengthPrefixedOptions, cb),
    );
  }

  /**
   * Reads one line and checks it against `expect`: the line, terminator stripped. With
   * `onMismatch`, lines that do not match get its reply and are consumed (see `engine.expectLine`);
   * so do the chains below that end in a line.
   */
  expectLine(
    sock: Socket | File,
    expect: LineExpectation,
    options?: PromiseOpOptions & { onMismatch?: MismatchReply },
  ): Promise<string> {
    return single(options, (cb, o) => this.#engine.expectLine(sock, expect, o, cb));
  }

  /** Writes all of `data`: the number of bytes written. */
  write(sock: Socket | File, data: WriteData, options?: PromiseOpOptions): Promise<number> {
    return single(options, (cb, o) => this.#engine.write(sock, data, o, cb));
  }

  /**
   * Half-close: the peer gets a FIN once every write before this one has gone out; reads go on.
   * Resolves once the sending side is shut down. See `engine.end`.
   */
  end(sock: Socket, options?: SignalOptions): Promise<void> {
    return single(options, (cb, o) => this.#engine.end(sock, o, cb));
  }

  // ---- files ----

  /** Opens a file with `openOptions` (`flags`, `mode`, `direct`): the `File`. */
  open(path: string, openOptions?: OpenOptions, options?: SignalOptions): Promise<File> {
    return single(options, (cb, o) => {
      checkOwnOptions('openOptions', openOptions);
      checkNoOpOptions(o);
      this.#engine.open(path, openOptions ?? {}, cb);
    });
  }

  /**
   * Reads up to `buffer.length` bytes into `buffer`: the number read, 0 at the end of the file.
   * Leave `buffer` alone until the promise settles.
   */
  readInto(file: File, buffer: Uint8Array, options?: PromiseOpOptions): Promise<number> {
    return single(options, (cb, o) => this.#engine.readInto(file, buffer, o, cb));
  }

  /** Flushes the file to its device; `{ dataOnly: true }` is fdatasync(2). */
  fsync(file: File, fsyncOptions?: FsyncOptions, options?: SignalOptions): Promise<void> {
    return single(options, (cb, o) => {
      checkOwnOptions('fsyncOptions', fsyncOptions);
      checkNoOpOptions(o);
      this.#engine.fsync(file, fsyncOptions ?? {}, cb);
    });
  }

  /** The status of an open File or of a path. */
  stat(fileOrPath: File | string, options?: SignalOptions): Promise<FileStat> {
    return single(options, (cb, o) => this.#engine.stat(fileOrPath, o, cb));
  }

  // ---- chains ----

  /**
   * Accepts a connection, then writes `data`: the bytes written and the new socket. On a TLS
   * listener the handshake runs between; the chains below take TLS the same way (a TLS
   * listener, `address.tls`).
   */
  acceptThenWrite(
    listener: Listener,
    data: WriteData,
    options?: SignalOptions,
  ): Promise<ChainResult<number>> {
    return chain(options, undefined, (cbs, o) =>
      this.#engine.acceptThenWrite(listener, data, o, cbs),
    );
  }

  /** Accepts a connection, then reads one line: the line and the new socket. */
  acceptThenExpectLine(
    listener: Listener,
    expect: LineExpectation,
    options?: PromiseOpOptions & { onMismatch?: MismatchReply },
  ): Promise<ChainResult<string>> {
    return chain(options, undefined, (cbs, o) =>
      this.#engine.acceptThenExpectLine(listener, expect, o, cbs),
    );
  }

  /** Accepts a connection, then reads until `regex` matches: `{ data, match }` and the socket. */
  acceptThenExpectMultilineRegex(
    listener: Listener,
    regex: RegExp,
    options?: PromiseOpOptions,
  ): Promise<ChainResult<RegexResult>> {
    return chain(options, undefined, (cbs, o) =>
      this.#engine.acceptThenExpectMultilineRegex(listener, regex, o, cbs),
    );
  }

  /** Writes `data`, then reads one line: the line and the socket. */
  writeThenExpectLine(
    sock: Socket | File,
    data: WriteData,
    expect: LineExpectation,
    options?: PromiseOpOptions & { onMismatch?: MismatchReply },
  ): Promise<ChainResult<string>> {
    return chain(options, sock, (cbs, o) =>
      this.#engine.writeThenExpectLine(sock, data, expect, o, cbs),
    );
  }

  /** Connects, then reads one line (a greeting): the line and the new socket. */
  connectThenExpectLine(
    address: ConnectAddress & TlsConnectOption,
    expect: LineExpectation,
    options?: PromiseOpOptions & { onMismatch?: MismatchReply },
  ): Promise<ChainResult<string>> {
    return chain(options, undefined, (cbs, o) =>
      this.#engine.connectThenExpectLine(address, expect, o, cbs),
    );
  }

  /** Connects, then writes `line` and `\r\n`: the bytes written and the new socket. */
  connectThenWriteLine(
    address: ConnectAddress & TlsConnectOption,
    line: string | Buffer,
    options?: SignalOptions,
  ): Promise<ChainResult<number>> {
    return chain(options, undefined, (cbs, o) =>
      this.#engine.connectThenWriteLine(address, line, o, cbs),
    );
  }

  /** Resolves `host`, then connects to the first address that answers: the socket, twice. */
  getaddrinfoThenConnect(
    host: string,
    port: number,
    options?: SignalOptions,
  ): Promise<ChainResult<Socket>> {
    return chain(options, undefined, (cbs, o) =>
      this.#engine.getaddrinfoThenConnect(host, port, o, cbs),
    );
  }

  // ---- work ----

  /**
   * Runs `task` on one of the engine's worker threads: what its function returned. Aborting
   * cancels a task still queued; one already running settles with its own outcome.
   */
  submitWork<T = unknown>(task: WorkTask, options?: SignalOptions): Promise<T> {
    return single<T>(options, (cb, o) => this.#engine.submitWork<T>(task, o, cb));
  }

  // ---- serving and iteration ----

  /**
   * `engine.serve` with an async handler: `handler(socket)` runs for each connection, and when
   * its promise settles, either way, the socket is closed if it is still open. A rejection (or
   * a throw) is reported to `options.onError` (a process warning without it), never left
   * unhandled. Resolves when serving stops (`options.signal`, `close(listener)`, `shutdown()`);
   * the handlers still running go on.
   */
  serve(
    listener: Listener,
    handler: (socket: Socket) => Promise<unknown> | unknown,
    options?: ServeOptions,
  ): Promise<void> {
    return servePromises(this.#engine, listener, handler, options);
  }

  /**
   * The lines of a socket (or File) as an async iterable, each read as `expectLine` reads one
   * (terminator stripped, `maxBytes` and `encoding` as its). It ends at EOF; bytes after the last
   * terminator come as a last line first. A read error (`ERR_LIMIT`, `ECONNRESET`, ...) throws
   * from the loop. Leaving the loop early cancels the read in flight and loses no byte: the
   * next read gets what the loop did not deliver.
   */
  lines(sock: Socket | File, options?: LinesOptions): AsyncIterableIterator<string> {
    return lines(this.#engine, sock, options);
  }

  /**
   * The bytes of a socket (or File) as an async iterable of Buffers, each read as `readChunk`
   * reads (1 to `size` bytes, default 65536). It ends at EOF; errors and leaving early as
   * {@link EnginePromises.lines}.
   */
  chunks(sock: Socket | File, options?: ChunksOptions): AsyncIterableIterator<Buffer> {
    return chunks(this.#engine, sock, options);
  }

  // ---- timers ----

  /**
   * Resolves after `ms` milliseconds on the engine's clock (`callLater`). Aborted before, it
   * rejects with an `AbortError`; pending at `shutdown()`, with `ECANCELED`.
   */
  sleep(ms: number, options?: Pick<PromiseOpOptions, 'signal'>): Promise<void> {
    // A timer with a Callback: shutdown cancels it like any op, and it rejects with ECANCELED.
    // It takes no `timeout` (the delay is its deadline).
    return single<void>(options, (cb) => this.#engine._sleep(ms, cb), undefined);
  }

  // ---- accept filters ----

  /**
   * `acceptWhen`: the next connection whose first line is `expect`, as `{ line, socket }` (the
   * socket yours to close). `options.timeout` is each connection's time to send its first line,
   * as the callback form's; the op itself has no deadline. Aborted, it rejects with an
   * `AbortError`.
   */
  acceptWhen(
    listener: Listener,
    expect: AcceptExpectation,
    options?: AcceptWhenOptions,
  ): Promise<{ line: string | Buffer; socket: Socket }> {
    return new Promise((resolve, reject) => {
      if (options !== undefined && (options === null || typeof options !== 'object')) {
        throw invalidArgType('options', 'an object', options);
      }
      const { signal, ...opOptions } = options ?? {};
      if (signal !== undefined && !(signal instanceof AbortSignal)) {
        throw invalidArgType('options.signal', 'an AbortSignal', signal);
      }
      if (signal?.aborted) {
        reject(abortError(signal.reason));
        return;
      }
      let cancelled = false;
      const onAbort = (): void => {
        cancelled = cb.cancel();
      };
      const cb = new Callback<string | Buffer, Socket, undefined>({
        success: (line, socket) => {
          signal?.removeEventListener('abort', onAbort);
          resolve({ line, socket: socket! });
        },
        failure: (err) => {
          signal?.removeEventListener('abort', onAbort);
          reject(cancelled ? abortError(signal!.reason, err) : err);
        },
      });
      this.#engine.acceptWhen(listener, expect, opOptions, cb);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  // ---- line protocol handlers ----

  /**
   * `engine.serveLines` as a promise: serves `listener` with the line protocol `handler` and
   * resolves once serving stops (`options.signal`, `engine.close(listener)`, shutdown). Throws
   * synchronously what `engine.serveLines` throws.
   */
  serveLines(listener: Listener, options: ServeLinesOptions, handler: LineHandler): Promise<void>;
  serveLines(listener: Listener, handler: LineHandler): Promise<void>;
  serveLines(listener: Listener, a: unknown, b?: unknown): Promise<void> {
    const [options, handler] = b === undefined ? [{}, a] : [a, b];
    return this.#engine.serveLines(listener, options as ServeLinesOptions, handler as LineHandler)
      .done;
  }
}

registerPromises((engine) => new EnginePromises(engine));
