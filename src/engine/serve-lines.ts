// Line protocol handlers (`engine.serveLines`), in the style of Twisted's LineReceiver: the serve
// loop accepts, and each connection's input is read as lines, several per crossing (one native
// ReadLines op delivers every complete line buffered), and handed to the handler in order. Each
// connection keeps one read of its own in flight, so that closing it, its peer leaving, its idle
// timeout or a shutdown all reach it as that read's outcome, and `connectionLost` runs once.
import { Callback } from './callback.js';
import type { AsyncEngine } from './engine.js';
import type { EngineError } from './errors.js';
import { invalidArgType, invalidArgValue } from './errors.js';
import { lineError } from './internal/framing.js';
import type { LineBatch, LineFilter } from './internal/lines.js';
import type { Listener, Socket } from './io.js';
import {
  type ServeHandle,
  type ServeOptions,
  checkServeOptions,
  errorReporter,
  serve,
} from './serve.js';
import type { LineExpectation } from './types.js';
import {
  checkDelay,
  checkExpect,
  checkFunction,
  checkMaxBytes,
  checkOnMismatch,
} from './validate.js';

/** The handler of {@link AsyncEngine.serveLines}: what runs for each served connection. */
export interface LineHandler {
  /**
   * A connection was accepted, before any of its lines is delivered. It may write and may
   * close the socket; if it throws, the connection is closed.
   */
  connectionMade?(socket: Socket): void;
  /**
   * One line, its terminator (`\n` or `\r\n`) stripped, decoded with the engine's `encoding`.
   * Lines arrive in order, several per wake-up of JavaScript when several are buffered. It may
   * write and may close the socket (no later line of the connection is delivered then); if it
   * throws, the connection is closed. The socket's reads belong to the loop: the handler must
   * not read from it.
   */
  lineReceived(line: string, socket: Socket): void;
  /**
   * The connection is over and its socket closed; called exactly once for every connection
   * whose `connectionMade` ran. `err` is `undefined` when the peer closed after a whole line or
   * the program closed the socket (`engine.close`, `engine.shutdown`); otherwise it says why:
   * `ERR_INCOMPLETE` (the peer closed mid-line, `err.partial` holding the bytes), `ERR_LIMIT`
   * (a line over `maxBytes`), `ETIMEDOUT` (`idleTimeout`), `ERR_MISMATCH` (see `expect`), a
   * socket error such as `ECONNRESET`, or what a handler method threw.
   */
  connectionLost?(socket: Socket, err: Error | undefined): void;
}

/** Options of {@link AsyncEngine.serveLines}: those of `serve`, and how lines are read. */
export interface ServeLinesOptions extends ServeOptions {
  /**
   * What every line must be: a string (the whole line), a RegExp (tested on the line), or `null`
   * (any line; the default). A line that does not match is not delivered: it gets
   * `onMismatch.reply` if given, else the connection ends with `ERR_MISMATCH` (`err.line`).
   * A string is matched natively as the lines are read (when the engine's encoding is UTF-8 or
   * latin1 and the string has no U+FFFD), so mismatched lines and their replies never reach
   * JavaScript; a RegExp is tested in the engine's own JavaScript as each batch is delivered,
   * before any handler code.
   */
  expect?: LineExpectation;
  /**
   * What a line that does not match `expect` gets instead: `reply` is written to the peer (after
   * anything written before it) and the connection goes on. After `max` replies (default: no
   * limit), the next mismatch ends the connection with `ERR_MISMATCH`, with no reply.
   */
  onMismatch?: { reply: string | Buffer; max?: number };
  /** The longest line, in bytes without its terminator (default: the engine's `maxBytes`). */
  maxBytes?: number;
  /**
   * Milliseconds a connection may stay silent (no byte either way while its read waits) before
   * it ends with `ETIMEDOUT` (the socket's idle timeout, see `setTimeouts`). Default: none.
   */
  idleTimeout?: number;
}

// The most lines one native read delivers: bounds the batch a single wake-up hands over.
const LINES_PER_BATCH = 4096;
// How long an end the loop decides waits for its queued writes with the peer taking no byte of
// them, without an idleTimeout.
const END_WAIT_MS = 10_000;

const LINE_KEYS = new Set(['expect', 'onMismatch', 'maxBytes', 'idleTimeout']);

interface LineOptions {
  expect: LineExpectation | undefined;
  reply: Buffer | undefined;
  maxReplies: number;
  maxBytes: number | undefined;
  idle: number;
}

function checkLineOptions(options: unknown): [LineOptions, ServeOptions] {
  if (options === null || typeof options !== 'object') {
    throw invalidArgType('options', 'an object', options);
  }
  const serveOptions: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(options)) {
    if (!LINE_KEYS.has(key)) serveOptions[key] = value;
  }
  const { expect, onMismatch, maxBytes, idleTimeout } = options as ServeLinesOptions;
  if (expect !== undefined) checkExpect(expect);
  const filter = checkOnMismatch(onMismatch);
  if (filter !== undefined && (expect === undefined || expect === null)) {
    throw invalidArgValue('options.onMismatch', 'needs options.expect', onMismatch);
  }
  const reply = filter?.reply;
  const maxReplies = filter === undefined || filter.max < 0 ? Infinity : filter.max;
  const bound = maxBytes === undefined ? undefined : checkMaxBytes(maxBytes, 'options.maxBytes');
  if (idleTimeout !== undefined) checkDelay(idleTimeout, 'options.idleTimeout');
  return [
    { expect, reply, maxReplies, maxBytes: bound, idle: idleTimeout ?? 0 },
    serveOptions as ServeOptions,
  ];
}

function checkHandler(handler: unknown): asserts handler is LineHandler {
  if (handler === null || typeof handler !== 'object') {
    throw invalidArgType('handler', 'an object with a lineReceived method', handler);
  }
  const h = handler as LineHandler;
  checkFunction(h.lineReceived, 'handler.lineReceived');
  if (h.connectionMade !== undefined) checkFunction(h.connectionMade, 'handler.connectionMade');
  if (h.connectionLost !== undefined) checkFunction(h.connectionLost, 'handler.connectionLost');
}

/** @internal The loop behind `engine.serveLines`. */
export function serveLines(
  engine: AsyncEngine,
  listener: Listener,
  options: ServeLinesOptions,
  handler: LineHandler,
): ServeHandle {
  const [lineOptions, serveOptions] = checkLineOptions(options);
  checkHandler(handler);
  const { onError } = checkServeOptions(serveOptions);
  const { expect, reply, maxReplies, idle } = lineOptions;
  const maxBytes = lineOptions.maxBytes;

  const report = errorReporter(onError, 'serveLines');

  const connection = (sock: Socket): void => {
    let lost = false;
    let replies = 0;

    // The one end of a connection: its socket closed, then connectionLost, once. A handler that
    // threw has its socket closed at once (and the error reported); an end the loop decides
    // (the peer's FIN, a mismatch, a line too long, the peer leaving mid-line, the idle
    // timeout) first lets the writes already queued go out, then sends FIN and closes; a peer
    // that stops taking them for idleTimeout (10 s without one) is closed then.
    const end = (err: Error | undefined, thrown = false): void => {
      if (lost) return;
      lost = true;
      if (!thrown && !sock.closed && !engine.closed) {
        const close = (): void => lose(err, false);
        try {
          // A peer that takes none of those bytes for that long is not waited for.
          engine.setTimeouts(sock, { idle: 0, write: idle > 0 ? idle : END_WAIT_MS });
          engine.end(sock, new Callback<void>({ success: close, failure: close }));
          return;
        } catch {
          // Ended already: close now.
        }
      }
      lose(err, thrown);
    };
    const lose = (err: Error | undefined, thrown: boolean): void => {
      if (!sock.closed && !engine.closed) engine.close(sock);
      if (thrown) report(err, sock);
      if (handler.connectionLost === undefined) return;
      try {
        handler.connectionLost(sock, err);
      } catch (e) {
        report(e, sock);
      }
    };

    // A failed mismatch reply ends the connection with the write's error.
    const replyCallback = (): Callback<number> =>
      new Callback<number>({ failure: (err) => end(sock.closed ? undefined : err) });

    // A string expect is matched by the batch read itself where bytes can be compared: the
    // replies are written natively and only the line that ends the connection is delivered.
    const filter = (): LineFilter | undefined =>
      typeof expect === 'string'
        ? { expect, reply, left: maxReplies === Infinity ? -1 : maxReplies - replies }
        : undefined;

    const read: Callback<LineBatch> = new Callback<LineBatch>({
      success: (lines) => {
        replies += lines.replied ?? 0;
        for (const line of lines) {
          if (expect !== undefined && expect !== null) {
            const mismatch = lineError(line, expect);
            if (mismatch !== undefined) {
              if (
                reply === undefined ||
                replies >= maxReplies ||
                mismatch.code !== 'ERR_MISMATCH'
              ) {
                end(mismatch);
                return;
              }
              replies++;
              engine._repliedInJs();
              engine.write(sock, reply, replyCallback());
              continue;
            }
          }
          try {
            handler.lineReceived(line, sock);
          } catch (e) {
            end(e instanceof Error ? e : new Error(String(e)), true);
            return;
          }
          if (sock.closed || engine.closed) {
            end(undefined);
            return;
          }
        }
        arm();
      },
      failure: (err: EngineError) => {
        // Closed by the program (close, shutdown), or the peer left at a line's end: a clean end.
        if (sock.closed || engine.closed) end(undefined);
        else if (err.code === 'ERR_INCOMPLETE' && (err.partial?.length ?? 0) === 0) end(undefined);
        else end(err);
      },
    });

    const arm = (): void => {
      if (sock.closed || engine.closed) {
        end(undefined);
        return;
      }
      engine._readLines(sock, maxBytes, LINES_PER_BATCH, filter(), read);
    };

    try {
      handler.connectionMade?.(sock);
    } catch (e) {
      end(e instanceof Error ? e : new Error(String(e)), true);
      return;
    }
    if (idle > 0 && !sock.closed && !engine.closed) engine.setTimeouts(sock, { idle });
    arm();
  };

  return serve(engine, listener, connection, serveOptions);
}
