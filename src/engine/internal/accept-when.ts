// The arguments of acceptWhen and of listen's deferAccept, checked and put in the form the
// native side takes (native/core/ops.def, AcceptWhen; native/core/net.cc judges connections).
import { invalidArgType, invalidArgValue, outOfRange } from '../errors.js';
import { checkMaxBytes } from '../validate.js';

/** What `deferAccept: true` stands for, in seconds. */
export const DEFER_ACCEPT_DEFAULT_S = 30;

const MAX_INT32 = 2 ** 31 - 1;

/** listen's `options.deferAccept`: seconds for the native side, 0 for off. */
export function deferAcceptOf(v: unknown): number {
  if (v === undefined || v === false) return 0;
  if (v === true) return DEFER_ACCEPT_DEFAULT_S;
  if (typeof v !== 'number') {
    throw invalidArgType('options.deferAccept', 'a boolean or a number of seconds', v);
  }
  if (!Number.isInteger(v) || v < 1 || v > MAX_INT32) {
    throw outOfRange('options.deferAccept', `an integer from 1 to ${MAX_INT32}`, v);
  }
  return v;
}

/** acceptWhen's checked arguments: the native op's `a` and `b`, and how its line is delivered. */
export interface AcceptWhenArgs {
  a: [Buffer | null, Buffer | null, number, boolean];
  maxBytes: number;
  lineAsBytes: boolean;
}

/**
 * acceptWhen's `expect` and options. `expect`: a string (compared as UTF-8), a Buffer or
 * Uint8Array, or null (any line); a line never holds `\n`, so an expectation with one could
 * never pass and is refused. `fallbackMaxBytes`: the engine's bound.
 */
export function checkAcceptWhen(
  expect: unknown,
  opts: { reply?: unknown; timeout?: unknown; maxBytes?: unknown; prefix?: unknown },
  fallbackMaxBytes: number,
): AcceptWhenArgs {
  let want: Buffer | null;
  if (expect === null) want = null;
  else if (typeof expect === 'string') want = Buffer.from(expect, 'utf8');
  else if (expect instanceof Uint8Array) {
    want = Buffer.from(expect.buffer, expect.byteOffset, expect.byteLength);
  } else throw invalidArgType('expect', 'a string, Buffer, Uint8Array or null', expect);
  if (want !== null && want.includes(0x0a)) {
    throw invalidArgValue('expect', 'must not contain "\\n" (a line ends there)', expect);
  }
  let reply: Buffer | null = null;
  if (opts.reply !== undefined) {
    if (typeof opts.reply === 'string') reply = Buffer.from(opts.reply, 'utf8');
    else if (opts.reply instanceof Uint8Array) {
      reply = Buffer.from(opts.reply.buffer, opts.reply.byteOffset, opts.reply.byteLength);
    } else throw invalidArgType('options.reply', 'a string, Buffer or Uint8Array', opts.reply);
  }
  let timeout = 0;
  if (opts.timeout !== undefined) {
    if (typeof opts.timeout !== 'number') {
      throw invalidArgType('options.timeout', 'a number', opts.timeout);
    }
    if (!Number.isFinite(opts.timeout) || opts.timeout < 0) {
      throw outOfRange('options.timeout', 'a finite number >= 0', opts.timeout);
    }
    timeout = opts.timeout;
  }
  if (opts.prefix !== undefined && typeof opts.prefix !== 'boolean') {
    throw invalidArgType('options.prefix', 'a boolean', opts.prefix);
  }
  const prefix = opts.prefix === true;
  if (prefix && want === null) {
    throw invalidArgValue('options.prefix', 'needs an expect (null passes any line)', opts.prefix);
  }
  const maxBytes =
    opts.maxBytes === undefined
      ? fallbackMaxBytes
      : checkMaxBytes(opts.maxBytes, 'options.maxBytes');
  if (want !== null && maxBytes >= 0 && want.length > maxBytes) {
    throw invalidArgValue('expect', `is longer than options.maxBytes (${maxBytes})`, expect);
  }
  return {
    a: [want, reply, timeout, prefix],
    maxBytes,
    lineAsBytes: expect !== null && typeof expect !== 'string',
  };
}
