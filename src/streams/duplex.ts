// toDuplex: a node:stream Duplex over an engine Socket, for pipeline(), zlib, TLS-less proxies
// and anything else that speaks streams. Reads are readChunk ops, one at a time, issued only
// when the stream asks for data (so backpressure reaches the peer through TCP flow control);
// writes are write ops, one at a time, as Writable hands them over; end() is a half-close
// (engine.end) once they are out.
import { Duplex } from 'node:stream';
import { Callback } from '../engine/callback.js';
import type { AsyncEngine } from '../engine/engine.js';
import type { EngineError } from '../engine/errors.js';
import { invalidArgType, outOfRange } from '../engine/errors.js';
import { Socket } from '../engine/io.js';

/** Options of {@link toDuplex}. */
export interface DuplexOptions {
  /** The `size` of each `readChunk` op, in bytes (1 to 2^31 − 1). Default 65536. */
  readChunkSize?: number;
  /** `highWaterMark` of both sides (Node's default when omitted). */
  highWaterMark?: number;
  /** `highWaterMark` of the readable side; overrides `highWaterMark`. */
  readableHighWaterMark?: number;
  /** `highWaterMark` of the writable side; overrides `highWaterMark`. */
  writableHighWaterMark?: number;
  /**
   * As for `net.Socket` (default `false`): when `false`, the end of the peer's data (EOF) ends
   * the writable side too, once the writes already made have gone out (a FIN back, as
   * `end()` sends it). When `true`, the writable side stays open until you call `end()`: the
   * connection is half-open, and you may go on writing to a peer that has finished sending.
   */
  allowHalfOpen?: boolean;
  /**
   * What `end()` does once the writes made before it have gone out. `false` (the default): a
   * half-close, as `net.Socket#end()` does: the peer gets a FIN (`engine.end`, `shutdown(SHUT_WR)`)
   * and reads go on until the peer ends too; the socket is closed once both sides are done.
   * `true`: the socket is closed instead, and the readable side ends there (whatever the peer
   * sends afterwards, and any bytes received but not yet read, are discarded).
   */
  closeOnFinish?: boolean;
}

const DEFAULT_READ_CHUNK = 65536;
const MAX_SIZE = 2 ** 31 - 1;

/**
 * A `stream.Duplex` over an engine `Socket`. The Duplex owns the socket from now on: it closes
 * it when it is destroyed (which `autoDestroy` does once both sides are done), and you should
 * submit no other ops on it.
 *
 * - Reading: one `readChunk(socket, readChunkSize)` at a time, only while the readable side is
 *   below its `highWaterMark`; the peer's EOF ends the readable side; a read error (for example
 *   `ECONNRESET`) destroys the Duplex with that error.
 * - Writing: one `write` at a time; a write error (`EPIPE`, `ECONNRESET`) destroys the Duplex
 *   with that error.
 * - `end()`: a FIN to the peer after the writes (half-close; reads go on); see
 *   {@link DuplexOptions.closeOnFinish} and {@link DuplexOptions.allowHalfOpen}.
 * - `destroy()`: closes the socket; the engine's `ECANCELED` for the ops that were in flight is
 *   swallowed (a write in flight has its callback called without an error, as `net.Socket`
 *   does).
 * - The socket closed behind the Duplex's back (`engine.close(socket)` or `engine.shutdown()`):
 *   the next op fails with `ECANCELED`/`EBADF` (or the engine throws `ERR_ENGINE_CLOSED`), and
 *   the Duplex is destroyed *without* an error: `'close'`, no `'error'`. A `pipeline()` or
 *   `finished()` still waiting on it reports `ERR_STREAM_PREMATURE_CLOSE`.
 */
export function toDuplex(engine: AsyncEngine, socket: Socket, options: DuplexOptions = {}): Duplex {
  if (engine === null || typeof engine !== 'object' || typeof engine.readChunk !== 'function') {
    throw invalidArgType('engine', 'an AsyncEngine', engine);
  }
  if (!(socket instanceof Socket)) throw invalidArgType('socket', 'a Socket', socket);
  if (options === null || typeof options !== 'object') {
    throw invalidArgType('options', 'an object', options);
  }
  return new EngineDuplex(engine, socket, options);
}

function checkHwm(v: unknown, name: string): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) {
    throw outOfRange(name, 'an integer >= 0', v);
  }
  return v;
}

// Failures that mean "the socket was closed": by us (destroy, closeOnFinish) or by someone else.
function isClosedError(err: { code?: unknown } | undefined): boolean {
  const code = err?.code;
  return code === 'ECANCELED' || code === 'EBADF' || code === 'ERR_ENGINE_CLOSED';
}

class EngineDuplex extends Duplex {
  readonly #engine: AsyncEngine;
  readonly #socket: Socket;
  readonly #chunkSize: number;
  readonly #closeOnFinish: boolean;
  readonly #readCb: Callback<Buffer>;
  readonly #writeCb: Callback<number>;
  #reading = false;
  #eof = false;
  /** We closed the socket ourselves (destroy or closeOnFinish). */
  #closedByUs = false;
  #pendingWrite: ((err?: Error | null) => void) | undefined;

  constructor(engine: AsyncEngine, socket: Socket, options: DuplexOptions) {
    const chunkSize = options.readChunkSize ?? DEFAULT_READ_CHUNK;
    if (typeof chunkSize !== 'number') {
      throw invalidArgType('options.readChunkSize', 'a number', chunkSize);
    }
    if (!Number.isInteger(chunkSize) || chunkSize < 1 || chunkSize > MAX_SIZE) {
      throw outOfRange('options.readChunkSize', `an integer from 1 to ${MAX_SIZE}`, chunkSize);
    }
    const hwm = checkHwm(options.highWaterMark, 'options.highWaterMark');
    const rHwm = checkHwm(options.readableHighWaterMark, 'options.readableHighWaterMark') ?? hwm;
    const wHwm = checkHwm(options.writableHighWaterMark, 'options.writableHighWaterMark') ?? hwm;
    if (options.allowHalfOpen !== undefined && typeof options.allowHalfOpen !== 'boolean') {
      throw invalidArgType('options.allowHalfOpen', 'a boolean', options.allowHalfOpen);
    }
    if (options.closeOnFinish !== undefined && typeof options.closeOnFinish !== 'boolean') {
      throw invalidArgType('options.closeOnFinish', 'a boolean', options.closeOnFinish);
    }
    super({
      allowHalfOpen: options.allowHalfOpen ?? false,
      decodeStrings: true,
      autoDestroy: true,
      emitClose: true,
      ...(rHwm !== undefined ? { readableHighWaterMark: rHwm } : {}),
      ...(wHwm !== undefined ? { writableHighWaterMark: wHwm } : {}),
    });
    this.#engine = engine;
    this.#socket = socket;
    this.#chunkSize = chunkSize;
    this.#closeOnFinish = options.closeOnFinish ?? false;
    this.#readCb = new Callback<Buffer>({
      success: (chunk) => this.#onRead(chunk, undefined),
      failure: (err) => this.#onRead(undefined, err),
    });
    this.#writeCb = new Callback<number>({
      success: () => this.#onWrite(undefined),
      failure: (err) => this.#onWrite(err),
    });
    // Start reading at once, as net.Socket does, so that the peer's EOF or reset is noticed
    // even by a Duplex only written to (at most a high-water mark is read ahead).
    process.nextTick(() => {
      if (!this.destroyed) this.read(0);
    });
  }

  override _read(): void {
    if (this.#reading || this.#eof || this.destroyed) return;
    if (this.#socket.closed) {
      this.#closed();
      return;
    }
    this.#reading = true;
    try {
      this.#engine.readChunk(this.#socket, this.#chunkSize, this.#readCb);
    } catch (e) {
      this.#reading = false;
      this.#failed(e as Error);
    }
  }

  #onRead(chunk: Buffer | undefined, err: EngineError | undefined): void {
    this.#reading = false;
    if (this.destroyed || this.#eof) return; // our own close's ECANCELED, or a late success
    if (err !== undefined) {
      this.#failed(err);
      return;
    }
    if (chunk!.length === 0) {
      this.#endReadable();
      return;
    }
    // A read that completed just as closeOnFinish closed the socket: keep its bytes.
    this.push(chunk);
    if (this.#socket.closed) this.#closed();
    // Otherwise Node calls _read again while the readable side is below its highWaterMark;
    // when push() returned false, not before the consumer has taken some of it.
  }

  override _write(
    chunk: Buffer,
    _encoding: BufferEncoding,
    callback: (err?: Error | null) => void,
  ): void {
    this.#submitWrite(chunk, callback);
  }

  override _writev(
    chunks: Array<{ chunk: Buffer; encoding: BufferEncoding }>,
    callback: (err?: Error | null) => void,
  ): void {
    this.#submitWrite(
      chunks.map((c) => c.chunk),
      callback,
    );
  }

  #submitWrite(data: Buffer | Buffer[], callback: (err?: Error | null) => void): void {
    if (this.#socket.closed && !this.#closedByUs) {
      // Closed elsewhere: end with 'close', not an error (see toDuplex).
      this.destroy();
      callback();
      return;
    }
    this.#pendingWrite = callback;
    try {
      this.#engine.write(this.#socket, data, this.#writeCb);
    } catch (e) {
      this.#pendingWrite = undefined;
      const err = e as Error & { code?: string };
      if (isClosedError(err)) {
        this.destroy();
        callback();
      } else {
        callback(err);
      }
    }
  }

  #onWrite(err: EngineError | undefined): void {
    const callback = this.#pendingWrite;
    this.#pendingWrite = undefined;
    if (callback === undefined) return;
    if (this.destroyed) {
      // After destroy() the write's fate does not matter any more; like net.Socket, its
      // callback runs without an error, so no extra error surfaces.
      callback();
      return;
    }
    if (err !== undefined && isClosedError(err) && this.#socket.closed && !this.#closedByUs) {
      this.destroy();
      callback();
      return;
    }
    callback(err ?? null);
  }

  override _final(callback: (err?: Error | null) => void): void {
    // Node calls _final once every write has completed (all bytes handed to the kernel).
    if (this.#closeOnFinish && !this.#socket.closed) {
      this.#closeSocket();
      // The read in flight, if any, fails with ECANCELED: the readable side ends there.
      if (!this.#reading && !this.#eof) this.#endReadable();
      callback();
      return;
    }
    if (this.#socket.closed) {
      callback();
      return;
    }
    // Half-close: a FIN to the peer; reads go on. The socket is closed when the readable side
    // has ended too (autoDestroy) or on destroy().
    const done = (err: EngineError | undefined): void => {
      // A socket already reset has nothing to shut down: no error, as net.Socket does.
      if (err === undefined || this.destroyed || err.code === 'ENOTCONN') {
        callback();
      } else if (isClosedError(err) && this.#socket.closed && !this.#closedByUs) {
        this.destroy();
        callback();
      } else {
        callback(err);
      }
    };
    try {
      this.#engine.end(this.#socket, {
        success: () => done(undefined),
        failure: (err) => done(err),
      });
    } catch (e) {
      const err = e as EngineError;
      if (isClosedError(err)) {
        this.destroy();
        callback();
      } else {
        callback(err);
      }
    }
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    this.#closeSocket();
    callback(err);
  }

  #closeSocket(): void {
    if (this.#socket.closed) return;
    this.#closedByUs = true;
    try {
      this.#engine.close(this.#socket);
    } catch {
      // The engine is shut down: the socket is closed already.
    }
  }

  #endReadable(): void {
    if (this.#eof) return;
    this.#eof = true;
    this.push(null);
    // 'end' even when nobody reads, once nothing is left buffered (as net.Socket does).
    this.read(0);
  }

  // The socket is closed: by us after end() (closeOnFinish) → the readable side ends; by
  // someone else → destroy without an error.
  #closed(): void {
    if (this.#closedByUs && !this.destroyed) {
      this.#endReadable();
      return;
    }
    this.destroy();
  }

  #failed(err: Error & { code?: unknown }): void {
    if (isClosedError(err) && (this.#socket.closed || err.code === 'ERR_ENGINE_CLOSED')) {
      this.#closed();
      return;
    }
    this.destroy(err);
  }
}
