// Async iteration over a socket's lines or chunks (`engine.promises.lines` / `.chunks`): each
// step is one read op of the callback core. Ending the loop early cancels the read in flight,
// and a cancelled read consumes nothing, so a read after the loop starts where the loop's last
// delivered value ended.
import { Callback } from '../engine/callback.js';
import type { AsyncEngine } from '../engine/engine.js';
import type { EngineError } from '../engine/errors.js';
import { invalidArgType, invalidArgValue } from '../engine/errors.js';
import type { File, Socket } from '../engine/io.js';
import { checkEncoding, checkMaxBytes, checkSize, socketHandle } from '../engine/validate.js';

/** Options of `engine.promises.lines`. */
export interface LinesOptions {
  /** The longest line, in bytes, terminator included, as `expectLine`'s (default: the engine's). */
  maxBytes?: number;
  /** How lines are decoded (default: the engine's, `utf8` unless configured). */
  encoding?: BufferEncoding;
  /**
   * Ends the iteration: the read in flight is cancelled (nothing it had received is lost) and
   * the loop throws an `AbortError`.
   */
  signal?: AbortSignal;
}

/** Options of `engine.promises.chunks`. */
export interface ChunksOptions {
  /** The most bytes one chunk holds, as `readChunk`'s `size` (default 65536). */
  size?: number;
  /** As {@link LinesOptions.signal}. */
  signal?: AbortSignal;
}

const DEFAULT_CHUNK = 65536;

function abortError(reason: unknown): Error {
  const err = new Error('The operation was aborted', { cause: reason }) as Error & {
    code: string;
  };
  err.name = 'AbortError';
  err.code = 'ABORT_ERR';
  return err;
}

function checkKeys(options: unknown, keys: string[], op: string): void {
  if (options === null || typeof options !== 'object') {
    throw invalidArgType('options', 'an object', options);
  }
  for (const key of Object.keys(options)) {
    if (!keys.includes(key))
      throw invalidArgValue(`options.${key}`, `is not an option of ${op}`, options);
  }
  const signal = (options as { signal?: unknown }).signal;
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    throw invalidArgType('options.signal', 'an AbortSignal', signal);
  }
}

// One step's outcome: a value, the end, or an error to throw.
type Step<T> = { value: T; last?: boolean } | { end: true } | { error: unknown };

/**
 * The iterator: `step` submits one read with the Callback it is given and turns its outcome
 * into a Step. One read at a time; `next()` calls made while one is in flight wait their turn.
 */
class ReadIterator<T> implements AsyncIterableIterator<T> {
  readonly #step: (cb: Callback<any>) => void;
  readonly #outcome: (ok: boolean, v: any) => Step<T>;
  readonly #signal: AbortSignal | undefined;
  #finished = false;
  #returned = false;
  #aborted = false;
  #inFlight: Callback<any> | undefined;
  #queue: Promise<unknown> = Promise.resolve();

  constructor(
    step: (cb: Callback<any>) => void,
    outcome: (ok: boolean, v: any) => Step<T>,
    signal: AbortSignal | undefined,
  ) {
    this.#step = step;
    this.#outcome = outcome;
    this.#signal = signal;
    signal?.addEventListener('abort', this.#onAbort, { once: true });
  }

  readonly #onAbort = (): void => {
    this.#aborted = true;
    this.#inFlight?.cancel();
  };

  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    return this;
  }

  next(): Promise<IteratorResult<T>> {
    const p = this.#queue.then(() => this.#read());
    this.#queue = p.catch(() => {});
    return p;
  }

  /**
   * Ends the iteration (a `break` out of `for await` calls it): a read in flight is cancelled,
   * and if it had already finished, its value still goes to the `next()` that asked for it.
   */
  return(): Promise<IteratorResult<T>> {
    this.#returned = true;
    this.#inFlight?.cancel();
    this.#finish();
    return Promise.resolve({ done: true, value: undefined });
  }

  #finish(): void {
    this.#finished = true;
    this.#signal?.removeEventListener('abort', this.#onAbort);
  }

  #read(): Promise<IteratorResult<T>> {
    if (this.#finished) return Promise.resolve({ done: true, value: undefined });
    if (this.#signal?.aborted) {
      this.#finish();
      return Promise.reject(abortError(this.#signal.reason));
    }
    return new Promise<IteratorResult<T>>((resolve, reject) => {
      const settle = (ok: boolean, v: unknown): void => {
        this.#inFlight = undefined;
        if (!ok && (v as EngineError).code === 'ECANCELED' && (this.#returned || this.#aborted)) {
          this.#finish();
          if (this.#returned) resolve({ done: true, value: undefined });
          else reject(abortError(this.#signal?.reason));
          return;
        }
        const step = this.#outcome(ok, v);
        if ('error' in step) {
          this.#finish();
          reject(step.error);
        } else if ('end' in step) {
          this.#finish();
          resolve({ done: true, value: undefined });
        } else {
          if (step.last) this.#finish();
          resolve({ done: false, value: step.value });
        }
      };
      const cb = new Callback<any>({
        success: (v) => settle(true, v),
        failure: (e) => settle(false, e),
      });
      try {
        this.#step(cb);
      } catch (e) {
        this.#finish();
        reject(e);
        return;
      }
      this.#inFlight = cb;
    });
  }
}

/** @internal `engine.promises.lines`. */
export function lines(
  engine: AsyncEngine,
  sock: Socket | File,
  options: LinesOptions = {},
): AsyncIterableIterator<string> {
  socketHandle(sock, engine);
  checkKeys(options, ['maxBytes', 'encoding', 'signal'], 'lines');
  const opts: { maxBytes?: number; encoding?: BufferEncoding } = {};
  if (options.maxBytes !== undefined) {
    checkMaxBytes(options.maxBytes, 'options.maxBytes');
    opts.maxBytes = options.maxBytes;
  }
  let encoding: BufferEncoding | undefined;
  if (options.encoding !== undefined) {
    encoding = checkEncoding(options.encoding, 'options.encoding');
    opts.encoding = encoding;
  }
  return new ReadIterator<string>(
    (cb) => engine.expectLine(sock, null, opts, cb),
    (ok, v) => {
      if (ok) return { value: v as string };
      const err = v as EngineError;
      if (err.code !== 'ERR_INCOMPLETE') return { error: err };
      // The stream ended. Bytes after the last terminator are a last line, as asyncio's
      // readline() returns them.
      const partial = err.partial;
      if (partial === undefined || partial.length === 0) return { end: true };
      return { value: partial.toString(encoding ?? engineEncoding(engine)), last: true };
    },
    options.signal,
  );
}

// The engine's default encoding (`config.encoding`), which its line reads decode with.
function engineEncoding(engine: AsyncEngine): BufferEncoding {
  return engine._encoding;
}

/** @internal `engine.promises.chunks`. */
export function chunks(
  engine: AsyncEngine,
  sock: Socket | File,
  options: ChunksOptions = {},
): AsyncIterableIterator<Buffer> {
  socketHandle(sock, engine);
  checkKeys(options, ['size', 'signal'], 'chunks');
  const size = options.size ?? DEFAULT_CHUNK;
  checkSize(size, 'options.size');
  return new ReadIterator<Buffer>(
    (cb) => engine.readChunk(sock, size, cb),
    (ok, v) => {
      if (!ok) return { error: v };
      return (v as Buffer).length === 0 ? { end: true } : { value: v as Buffer };
    },
    options.signal,
  );
}
