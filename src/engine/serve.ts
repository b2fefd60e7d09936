// The serve loop (`engine.serve`): one accept armed at a time on a listener, re-armed after
// each connection, paused at `maxConnections`, backing off when the process is out of fds, and
// stopped by an AbortSignal, `stop()`, closing the listener or shutting the engine down. It keeps
// exactly one op of its own in flight while it runs (the accept, or a timer while it waits), so
// that every way of stopping reaches it as that op's `ECANCELED`.
import { Callback, dropHooks } from './callback.js';
import type { AsyncEngine } from './engine.js';
import { invalidArgType, invalidArgValue, outOfRange } from './errors.js';
import { type File, Listener, Socket } from './io.js';
import { checkFunction, checkOwner } from './validate.js';

/** Options of {@link AsyncEngine.serve}. */
export interface ServeOptions {
  /**
   * At most this many live connections (accepted by this loop and not yet closed). At the
   * limit the loop arms no accept: new connections wait in the listener's kernel backlog (up to
   * its `backlog`) and are accepted as soon as a live one closes. `net.Server#maxConnections`
   * instead accepts and drops them. A positive integer; default: no limit.
   */
  maxConnections?: number;
  /** Stops the loop when aborted, as `stop()` does. */
  signal?: AbortSignal;
  /**
   * Where the loop reports what goes wrong: an `onConnection` handler that threw (with its
   * socket, which is closed), an `engine.promises.serve` handler that rejected (likewise), and
   * an accept that failed other than by running out of fds (no socket). Without it, each is
   * emitted as a process warning (`ASYNC_ENGINE_SERVE_ERROR`). It must not throw.
   */
  onError?: (err: unknown, socket?: Socket) => void;
}

/** A running serve loop, returned by {@link AsyncEngine.serve}. */
export interface ServeHandle {
  /**
   * Live connections: accepted by this loop and not yet closed (by `engine.close`, by the
   * rules of {@link AsyncEngine.serve}, or by shutdown). Still counted after the loop stops.
   */
  readonly connections: number;
  /**
   * Stops accepting: the armed accept is cancelled and `done` resolves once it has settled.
   * Live connections stay open. Calling it again does nothing.
   */
  stop(): void;
  /**
   * Resolves once the loop has stopped (`stop()`, the signal, `engine.close(listener)` or
   * `engine.shutdown()`), with no accept of its own left armed. Never rejects.
   */
  readonly done: Promise<void>;
}

// Accept failures that mean the process (or the system) is out of descriptors or memory: the
// loop waits and tries again. The native side already waits in this case (and sheds the
// connections it cannot take), so these reach JavaScript rarely.
const OUT_OF_FDS = new Set(['EMFILE', 'ENFILE', 'ENOBUFS', 'ENOMEM']);
// Accept failures that mean the listener is gone or unusable: the loop ends.
const LISTENER_GONE = new Set(['EBADF', 'EINVAL', 'ENOTSOCK', 'EOPNOTSUPP']);
/** First and largest wait after a failed accept, in ms; it doubles per failure in a row. */
const BACKOFF_FIRST_MS = 10;
const BACKOFF_MAX_MS = 1000;
// The wait while paused at maxConnections: a close or stop cancels it, so it only needs to be
// long.
const PAUSE_MS = 2 ** 31 - 1;

// What engine.close() runs for a served socket (it stops counting) and for a served listener
// (a paused loop wakes up to end).
const closeHooks = new WeakMap<object, Set<() => void>>();

/** @internal engine.close() calls it once it has closed `io`. */
export function runCloseHooks(io: Socket | Listener | File): void {
  const hooks = closeHooks.get(io);
  if (hooks === undefined) return;
  closeHooks.delete(io);
  for (const hook of hooks) hook();
}

function addCloseHook(io: object, hook: () => void): void {
  let hooks = closeHooks.get(io);
  if (hooks === undefined) closeHooks.set(io, (hooks = new Set()));
  hooks.add(hook);
}

const SERVE_KEYS = new Set(['maxConnections', 'signal', 'onError']);

/**
 * @internal Where a serve loop's errors go: `onError(err, socket)`, or without it a process
 * warning (code ASYNC_ENGINE_SERVE_ERROR) named after the loop. What onError throws is rethrown
 * on the next tick, not into the engine's dispatch.
 */
export function errorReporter(
  onError: ((err: unknown, socket?: Socket) => void) | undefined,
  loop: string,
): (err: unknown, socket?: Socket) => void {
  return (err, socket) => {
    if (onError !== undefined) {
      try {
        onError(err, socket);
      } catch (e) {
        process.nextTick(() => {
          throw e;
        });
      }
      return;
    }
    const what = err instanceof Error ? err.message : String(err);
    process.emitWarning(`${loop}: ${what}`, { code: 'ASYNC_ENGINE_SERVE_ERROR' });
  };
}

/** @internal The checked options of a serve loop. */
export function checkServeOptions(options: unknown): {
  max: number;
  signal: AbortSignal | undefined;
  onError: ((err: unknown, socket?: Socket) => void) | undefined;
} {
  if (options === null || typeof options !== 'object') {
    throw invalidArgType('options', 'an object', options);
  }
  for (const key of Object.keys(options)) {
    if (!SERVE_KEYS.has(key)) {
      throw invalidArgValue(`options.${key}`, 'is not an option of serve', options);
    }
  }
  const { maxConnections, signal, onError } = options as ServeOptions;
  let max = Infinity;
  if (maxConnections !== undefined) {
    if (typeof maxConnections !== 'number') {
      throw invalidArgType('options.maxConnections', 'a number', maxConnections);
    }
    if (
      maxConnections !== Infinity &&
      (!Number.isSafeInteger(maxConnections) || maxConnections < 1)
    ) {
      throw outOfRange('options.maxConnections', 'an integer >= 1, or Infinity', maxConnections);
    }
    max = maxConnections;
  }
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    throw invalidArgType('options.signal', 'an AbortSignal', signal);
  }
  if (onError !== undefined) checkFunction(onError, 'options.onError');
  return { max, signal, onError };
}

/** @internal The loop behind `engine.serve`. */
export function serve(
  engine: AsyncEngine,
  listener: Listener,
  onConnection: (socket: Socket) => void,
  options: ServeOptions = {},
): ServeHandle {
  if (!(listener instanceof Listener)) throw invalidArgType('listener', 'a Listener', listener);
  checkOwner(listener, engine, 'listener');
  checkFunction(onConnection, 'onConnection');
  const { max, signal, onError } = checkServeOptions(options);
  if (engine.closed) {
    const err = new Error('the engine is shut down') as Error & { code: string };
    err.code = 'ERR_ENGINE_CLOSED';
    throw err;
  }

  const live = new Set<Socket>();
  // A TLS listener's connections are accepted plain and then handshake next to the loop, which
  // goes on accepting: a peer that is slow to handshake (or never does) holds up nobody else,
  // and a failed handshake is that connection's failure, not the accept's.
  const tls = engine._isTlsListener(listener);
  let stopped = false;
  let ended = false;
  let paused = false; // waiting for a live connection to close
  let waiting = false; // backing off after a failed accept
  let streak = 0; // accepts failed in a row
  let resolveDone!: () => void;
  const done = new Promise<void>((resolve) => (resolveDone = resolve));

  const report = errorReporter(onError, 'serve');

  const end = (): void => {
    if (ended) return;
    ended = true;
    signal?.removeEventListener('abort', stop);
    closeHooks.get(listener)?.delete(onListenerClosed);
    resolveDone();
  };

  // The one op in flight: an accept, or a wait (backoff or pause). Reused: each settles before
  // the next is armed.
  const accept: Callback<Socket> = new Callback<Socket>({
    success: (sock) => {
      streak = 0;
      if (stopped || engine.closed) {
        // Accepted as the loop was being stopped: nobody will serve it.
        engine.close(sock);
        next();
        return;
      }
      adopt(sock);
      if (tls) handshake(sock);
      else start(sock);
      next();
    },
    failure: (err) => {
      if (err.code === 'ECANCELED' || stopped || engine.closed || listener.closed) {
        next();
        return;
      }
      if (LISTENER_GONE.has(err.code)) {
        report(err);
        end();
        return;
      }
      streak++;
      if (!OUT_OF_FDS.has(err.code)) report(err);
      if (OUT_OF_FDS.has(err.code) || streak > 1) {
        waiting = true;
        arm(wait, Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** (streak - 1)));
        return;
      }
      next();
    },
  });
  const wait: Callback<void> = new Callback<void>({
    success: () => {
      waiting = false;
      paused = false;
      next();
    },
    failure: () => {
      waiting = false;
      paused = false;
      next();
    },
  });

  let current: Callback<any> = accept;
  const arm = (cb: Callback<any>, ms: number): void => {
    current = cb;
    try {
      if (cb === accept && tls) engine._serveAccept(listener, accept);
      else if (cb === accept) engine.accept(listener, accept);
      else engine._sleep(ms, wait);
    } catch (e) {
      // The engine refused the op (it was shut down meanwhile): nothing is armed.
      if (!engine.closed) report(e);
      end();
    }
  };

  // Decides what the loop does now that its op has settled.
  function next(): void {
    if (stopped || engine.closed || listener.closed) {
      end();
      return;
    }
    if (countLive() >= max) {
      paused = true;
      arm(wait, PAUSE_MS);
      return;
    }
    arm(accept, 0);
  }

  function countLive(): number {
    for (const s of live) if (s.closed) live.delete(s); // closed by shutdown
    return live.size;
  }

  function start(sock: Socket): void {
    try {
      onConnection(sock);
    } catch (e) {
      engine.close(sock);
      report(e, sock);
    }
  }

  // The server handshake of a TLS listener's connection, counted live meanwhile; it fails by
  // closing the connection (so the loop may resume), reported as a failure of that connection.
  function handshake(sock: Socket): void {
    try {
      engine._serveHandshake(
        listener,
        sock,
        new Callback<Socket>({
          success: () => start(sock),
          failure: (err) => {
            if (!engine.closed) report(err);
          },
        }),
      );
    } catch (e) {
      engine.close(sock);
      if (!engine.closed) report(e, sock);
    }
  }

  // A served socket: counted until it is closed, and closed when a failure on it is dropped.
  function adopt(sock: Socket): void {
    live.add(sock);
    addCloseHook(sock, () => {
      live.delete(sock);
      if (paused && !stopped && live.size < max) current.cancel(); // wakes the loop
    });
    dropHooks.set(sock, () => engine.close(sock));
  }

  function onListenerClosed(): void {
    if (paused || waiting) current.cancel();
  }

  function stop(): void {
    if (stopped) return;
    stopped = true;
    if (!ended) current.cancel(); // its outcome (ECANCELED, or a late success) ends the loop
  }

  addCloseHook(listener, onListenerClosed);
  if (signal?.aborted) {
    stopped = true;
    queueMicrotask(end);
  } else {
    signal?.addEventListener('abort', stop, { once: true });
    next();
  }

  return {
    get connections() {
      return countLive();
    },
    stop,
    done,
  };
}

/** @internal The loop behind `engine.promises.serve`: an async handler per connection. */
export function servePromises(
  engine: AsyncEngine,
  listener: Listener,
  handler: (socket: Socket) => unknown,
  options: ServeOptions = {},
): Promise<void> {
  checkFunction(handler, 'handler');
  const { onError } = checkServeOptions(options);
  const report = (err: unknown, socket: Socket): void => {
    if (onError !== undefined) {
      onError(err, socket);
      return;
    }
    const what = err instanceof Error ? err.message : String(err);
    process.emitWarning(`serve: ${what}`, { code: 'ASYNC_ENGINE_SERVE_ERROR' });
  };
  const handle = serve(
    engine,
    listener,
    (sock) => {
      let p: Promise<unknown>;
      try {
        p = Promise.resolve(handler(sock));
      } catch (e) {
        p = Promise.reject(e);
      }
      p.then(
        () => engine.close(sock),
        (e: unknown) => {
          engine.close(sock);
          try {
            report(e, sock);
          } catch (thrown) {
            process.nextTick(() => {
              throw thrown;
            });
          }
        },
      );
    },
    options,
  );
  return handle.done;
}
