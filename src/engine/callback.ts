// Callback: the success / failure / timeout slots an op settles, and the cancel the engine fills in.
import type { EngineError } from './errors.js';
import { invalidArgType, outOfRange } from './errors.js';
import type { Socket } from './io.js';

/**
 * The slots of a {@link Callback}. `T`: the op's value. `H`: what `success` gets as its second
 * argument, the handle the op ran on (a `Socket`, a `File`, or `undefined` for ops with none,
 * such as `getaddrinfo`). `F`: what `failure` gets as its second argument (by default `H` or
 * `undefined`). Each engine method declares its own: see {@link Callback}.
 */
export interface CallbackSlots<T, H = Socket, F = H | undefined> {
  /**
   * Called once with the op's value and the socket it ran on (for `accept` and `connect`, the
   * new socket; a `File` for file ops; `undefined` for ops that have none, such as
   * `getaddrinfo`, `stat` of a path and `submitWork`).
   */
  success?: (value: T, socket: H) => void;
  /**
   * Called once with the reason the op failed, and the socket (or File) it ran on, as `success`
   * gets it: for a chain's later stages, the socket its accept or connect made, so that a
   * failure handler can close it; `undefined` when there is none (a failed accept or connect,
   * `getaddrinfo`, `submitWork`). Without it, failures are dropped (with a warning, once, under
   * `createEngine({ debug: true })`), except on a socket `engine.serve` accepted: that socket is
   * closed instead.
   */
  failure?: (err: EngineError, ...socket: FailureSocket<F>) => void;
  /**
   * Milliseconds the op may take; past it, `failure` gets `ETIMEDOUT`. `undefined` or `0`:
   * no deadline. Measured on the monotonic clock from when the op (or chain stage) starts.
   * Any finite number >= 0, fractions allowed (a deadline past about 146 years saturates; none
   * overflows); a negative, `NaN` or infinite one throws a RangeError (`ERR_OUT_OF_RANGE`).
   */
  timeout?: number;
}

/**
 * The second argument of `failure`: optional where it may be `undefined` (it is left out when a
 * program calls the slot itself), required where the op always has one.
 */
export type FailureSocket<F> = undefined extends F ? [socket?: F] : [socket: F];

/**
 * What an op accepts where a Callback goes: a {@link Callback}, its slots as a plain object
 * (`{ success, failure, timeout }`, wrapped in a new Callback), or a bare function, taken as
 * `success`. Only a Callback can be cancelled (its `cancel()`) or reused.
 */
export type CallbackLike<T, H = Socket, F = H | undefined> =
  Callback<T, H, F> | CallbackSlots<T, H, F> | ((value: T, socket: H) => void);

/** @internal A Callback of any op, as the engine holds it. */
export type AnyCallback = Callback<any, any, any>;

/** Where an in-flight Callback's op lives, so that `cancel()` can reach it. */
export interface CancelTarget {
  cancelOp(id: number): boolean;
}

/**
 * One op's outcome: exactly one of `success` or `failure` is called, exactly once, never inside
 * the call that submitted the op. A Callback may be reused once its op has settled.
 *
 * `T` is the op's value; `H` the second argument of `success`, `F` that of `failure`. Each
 * engine method states its own, e.g. `readChunk` on a `File` takes a
 * `Callback<Buffer, File, File>`, `getaddrinfo` a `Callback<AddrInfo[], undefined, undefined>`;
 * a plain object or a function passed in place of the Callback gets them from the method. Left
 * out (`Callback<T>`), they are `any`: such a Callback fits every op, as it always did, and its
 * slots' second argument is not checked.
 */
export class Callback<T = unknown, H = any, F = any> {
  readonly success?: (value: T, socket: H) => void;
  readonly failure?: (err: EngineError, ...socket: FailureSocket<F>) => void;
  readonly timeout?: number;
  /** @internal */
  _target: CancelTarget | null = null;
  /** @internal */
  _id = 0;
  /** @internal True while this Callback's own op is in flight (not just a chain it ended). */
  _busy = false;
  /** @internal The slots as read once, when the op was submitted (see {@link takeSlots}). */
  _success: ((value: T, socket: H) => void) | undefined = undefined;
  /** @internal */
  _failure: ((err: EngineError, ...socket: FailureSocket<F>) => void) | undefined = undefined;
  /** @internal */
  _timeout = 0;

  // Left out, `H` and `F` type the slots given here as before: a Socket, or a Socket or
  // undefined; the Callback itself still fits every op.
  constructor(
    slots: CallbackSlots<
      T,
      unknown extends H ? Socket : H,
      unknown extends F ? Socket | undefined : F
    > = {},
  ) {
    if (slots === null || typeof slots !== 'object') {
      throw invalidArgType('slots', 'an object', slots);
    }
    const { success, failure, timeout } = slots;
    checkSlots(success, failure, timeout);
    this.success = success as ((value: T, socket: H) => void) | undefined;
    this.failure = failure as ((err: EngineError, ...socket: FailureSocket<F>) => void) | undefined;
    this.timeout = timeout;
  }

  /**
   * Cancels the op. Returns `true` when the cancel won: `failure` with `ECANCELED` follows, on a
   * later tick. Returns `false` when the op had already finished (its own outcome follows or has
   * happened), was already cancelled, or was never submitted. On a chain stage, cancels every
   * stage not yet finished.
   */
  cancel(): boolean {
    const target = this._target;
    return target ? target.cancelOp(this._id) : false;
  }
}

function checkSlots(success: unknown, failure: unknown, timeout: unknown): void {
  if (success !== undefined && typeof success !== 'function') {
    throw invalidArgType('success', 'a function', success);
  }
  if (failure !== undefined && typeof failure !== 'function') {
    throw invalidArgType('failure', 'a function', failure);
  }
  if (timeout !== undefined) {
    if (typeof timeout !== 'number') throw invalidArgType('timeout', 'a number', timeout);
    if (!Number.isFinite(timeout) || timeout < 0) {
      throw outOfRange('timeout', 'a finite number >= 0', timeout);
    }
  }
}

/**
 * @internal Reads a Callback's slots once, as the engine submits its op, and checks them again:
 * the fields are plain properties that a program can reassign or turn into getters after
 * construction. The engine then uses only this snapshot, so that no user code runs, and nothing
 * can throw, between registering an op and settling it. Throws before anything is registered.
 */
export function takeSlots(cb: AnyCallback): void {
  const { success, failure, timeout } = cb;
  checkSlots(success, failure, timeout);
  cb._success = success;
  cb._failure = failure;
  cb._timeout = timeout ?? 0;
}

/**
 * @internal What a dropped failure on this socket runs instead of being lost: `engine.serve`
 * closes its sockets this way (see `src/engine/serve.ts`).
 */
export const dropHooks = new WeakMap<object, (err: unknown, io: unknown) => void>();

/**
 * @internal Where an op's failure goes: its Callback's `failure` slot. A Callback without one
 * drops the failure, silently by default; with `debug` (`createEngine({ debug: true })` or
 * `ASYNC_ENGINE_DEBUG=1`) the first dropped failure of the engine is a process warning, since a
 * failure nobody sees is how a socket leaks (a write that failed, a socket nobody closes).
 */
export class FailureSink {
  #warned = false;
  constructor(readonly debug: boolean) {}

  // `err`: an EngineError, or what a submitWork task threw; `io`: the socket or File the op ran
  // on (undefined when none).
  fail(cb: AnyCallback, err: unknown, io: unknown = undefined): void {
    if (cb._failure) {
      invoke(cb._failure, err, io);
      return;
    }
    const hook = typeof io === 'object' && io !== null ? dropHooks.get(io) : undefined;
    if (hook !== undefined) {
      // A served socket: nobody will see this failure, so nobody would close it.
      invoke(hook, err, io);
      return;
    }
    if (!this.debug || this.#warned) return;
    this.#warned = true;
    const what = err instanceof Error ? err.message : String(err);
    const code = (err as { code?: unknown } | null)?.code;
    process.emitWarning(
      `a failure was dropped because its Callback has no failure slot: ${what}` +
        `${typeof code === 'string' ? ` (${code})` : ''}; later ones are dropped without a warning`,
      { code: 'ASYNC_ENGINE_DROPPED_FAILURE' },
    );
  }
}

/**
 * @internal Calls a Callback's slot (or a callSoon function). One that throws must not stop the
 * rest of a batch: its error is re-thrown on a clean stack, where it reaches
 * 'uncaughtException' as any Node callback's would.
 */
export function invoke(fn: (a?: any, b?: any) => void, a: unknown, b: unknown): void {
  try {
    fn(a, b);
  } catch (e) {
    process.nextTick(() => {
      throw e;
    });
  }
}
