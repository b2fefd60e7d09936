// The ops framed in JavaScript from bytes a socket already handed over (internal/held.ts): each
// waits here, in settlement order, for the turn's dispatch, so that no callback runs inside the
// call that submitted its op. They have no OpRecord: nothing can change their outcome any more
// (cancel() finds no op and returns false).
import { type Callback, type FailureSink, invoke } from '../callback.js';
import { EngineError } from '../errors.js';
import type { Socket } from '../io.js';
import type { LineExpectation } from '../types.js';
import { lineError } from './framing.js';

export class ReadyQueue {
  constructor(readonly failures: FailureSink) {}

  // Five entries per op (Callback, id, socket, value, line expectation) from #at to #end. The
  // array keeps its size from turn to turn, and each entry is cleared as it is taken.
  readonly #ready: unknown[] = [];
  #at = 0;
  #end = 0;

  /** Ops waiting. */
  get count(): number {
    return (this.#end - this.#at) / 5;
  }

  /**
   * An op settled with `value` (a line is checked against `expect` as it is delivered, as the
   * line stage's is), for the Callback claimed for it with `id`.
   */
  push(
    cb: Callback<any>,
    id: number,
    sock: Socket,
    value: unknown,
    expect: LineExpectation | undefined,
  ): void {
    const ready = this.#ready;
    const at = this.#end;
    ready[at] = cb;
    ready[at + 1] = id;
    ready[at + 2] = sock;
    ready[at + 3] = value;
    ready[at + 4] = expect;
    this.#end = at + 5;
  }

  /** Delivers every op waiting, in order, those their callbacks add included: how many. */
  deliverAll(): number {
    const ready = this.#ready;
    let n = 0;
    while (this.#at < this.#end) {
      const i = this.#at;
      this.#at = i + 5;
      const cb = ready[i] as Callback<any>;
      const id = ready[i + 1] as number;
      const sock = ready[i + 2] as Socket;
      const value = ready[i + 3];
      const expect = ready[i + 4] as LineExpectation | undefined;
      ready[i] = ready[i + 2] = ready[i + 3] = ready[i + 4] = undefined;
      // All taken: an op this callback submits starts the array over, so a long run of
      // buffered frames (each callback submitting the next) reuses the same few slots.
      if (this.#at === this.#end) this.#at = this.#end = 0;
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
        this.failures.fail(cb, err, sock);
        continue;
      }
      if (cb._success) invoke(cb._success, value, sock);
    }
    return n;
  }
}
