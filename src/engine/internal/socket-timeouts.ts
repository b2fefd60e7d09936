// The arguments of setTimeouts, checked: a Socket of this engine and `{ idle?, write? }`.
import { invalidArgType, invalidArgValue, outOfRange } from '../errors.js';
import { Socket } from '../io.js';
import type { SocketTimeouts } from '../types.js';
import { checkOwner } from '../validate.js';

const KEYS = new Set(['idle', 'write']);

/** Returns [idle, write] in ms (0: off); throws what a bad argument is, before anything is set. */
export function checkSocketTimeouts(
  sock: unknown,
  owner: object,
  timeouts: unknown,
): [number, number] {
  if (!(sock instanceof Socket)) throw invalidArgType('socket', 'a Socket', sock);
  checkOwner(sock, owner, 'socket');
  if (timeouts === null || typeof timeouts !== 'object') {
    throw invalidArgType('timeouts', 'an object', timeouts);
  }
  for (const key of Object.keys(timeouts)) {
    if (!KEYS.has(key)) {
      throw invalidArgValue(
        'timeouts',
        `has an unknown key '${key}' (idle and write are known)`,
        timeouts,
      );
    }
  }
  const { idle, write } = timeouts as SocketTimeouts;
  return [ms(idle, 'timeouts.idle'), ms(write, 'timeouts.write')];
}

// As a Callback's timeout: any finite number >= 0; undefined is 0.
function ms(v: unknown, name: string): number {
  if (v === undefined) return 0;
  if (typeof v !== 'number') throw invalidArgType(name, 'a number', v);
  if (!Number.isFinite(v) || v < 0) throw outOfRange(name, 'a finite number >= 0', v);
  return v;
}
