// The checks of every argument and option the engine takes, before anything is registered: each
// throws the Node-style TypeError or RangeError (`code` ERR_INVALID_ARG_TYPE, ERR_INVALID_ARG_VALUE,
// ERR_OUT_OF_RANGE) that names the argument, and returns the value in the form the engine uses.
import { constants as fsConstants } from 'node:fs';
import { isIP } from 'node:net';
import { availableParallelism } from 'node:os';
import { pathToFileURL } from 'node:url';
import type { TransferListItem } from 'node:worker_threads';
import {
  type AnyCallback,
  Callback,
  type CallbackSlots,
  type FailureSink,
  takeSlots,
} from './callback.js';
import { type EngineError, invalidArgType, invalidArgValue, outOfRange } from './errors.js';
import { type Delimiter, bytesOf, delimiterOf } from './internal/held.js';
import type { PrefixSpec } from './internal/framing.js';
import { File, Listener, Socket } from './io.js';
import type {
  DriveMode,
  LengthPrefixedOptions,
  ListenOptions,
  OpOptions,
  SocketOptions,
  WorkTask,
} from './types.js';

const MAX_SIZE = 2 ** 31 - 1;
/** The largest value a native int holds: fds, backlogs, runOnce's wait. */
export const MAX_INT32 = 2 ** 31 - 1;
// sockaddr_un holds 108 bytes, the terminating NUL included.
const MAX_UNIX_PATH = 107;

const NO_OPTIONS: OpOptions = Object.freeze({});
const EMPTY = Buffer.alloc(0);
const CRLF = Buffer.from('\r\n');

// ---- the engine's configuration ----

const CONFIG_KEYS: ReadonlySet<string> = new Set([
  'impl',
  'drive',
  'maxBytes',
  'encoding',
  'debug',
  'completion',
  'readiness',
  'threadpool',
  'work',
]);
const IMPL_CONFIG_KEYS: Readonly<Record<string, ReadonlySet<string>>> = {
  completion: new Set(['entries']),
  readiness: new Set(['maxEvents']),
  threadpool: new Set(['threads']),
  work: new Set(['threads']),
};

/**
 * `config` is an object with no key the engine does not know (`config.maxByte` is a typo, not
 * a default), and its `drive` mode.
 */
export function checkDrive(config: unknown): DriveMode {
  if (config === null || typeof config !== 'object') {
    throw invalidArgType('config', 'an object', config);
  }
  checkKeys(config, CONFIG_KEYS, 'config');
  for (const name in IMPL_CONFIG_KEYS) {
    const sub = (config as Record<string, unknown>)[name];
    if (sub !== null && typeof sub === 'object') {
      checkKeys(sub, IMPL_CONFIG_KEYS[name]!, `config.${name}`);
    }
  }
  const drive = (config as { drive?: unknown }).drive ?? 'auto';
  if (drive !== 'auto' && drive !== 'manual') {
    throw invalidArgValue('config.drive', "must be 'auto' or 'manual'", drive);
  }
  return drive;
}

export function checkWorkThreads(work: unknown): number {
  const fallback = Math.max(2, availableParallelism());
  if (work === undefined) return fallback;
  if (work === null || typeof work !== 'object')
    throw invalidArgType('config.work', 'an object', work);
  const threads = (work as { threads?: unknown }).threads;
  if (threads === undefined) return fallback;
  if (typeof threads !== 'number' || !Number.isInteger(threads) || threads < 1 || threads > 1024) {
    throw outOfRange('config.work.threads', 'an integer from 1 to 1024', threads);
  }
  return threads;
}

// ---- callbacks and the (options?, callback) argument shapes ----

/** A Callback not in flight, its slots read once (see `takeSlots`). */
export function checkCallback<T>(cb: unknown): Callback<T, any, any> {
  if (!(cb instanceof Callback)) return wrapCallback<T>(cb);
  if (cb._busy) {
    const err = new Error('this Callback is already in flight') as Error & { code: string };
    err.code = 'ERR_INVALID_STATE';
    throw err;
  }
  takeSlots(cb);
  return cb as Callback<T, any, any>;
}

const SLOT_KEYS = new Set(['success', 'failure', 'timeout']);

/**
 * A Callback made for a bare function (its `success`) or a plain object of slots. An object
 * with any other key, or with none of the three, is refused rather than taken as a Callback
 * that drops its outcome: `{ maxBytes: 10 }` passed where the Callback goes is a mistake.
 */
function wrapCallback<T>(cb: unknown): Callback<T, any, any> {
  let c: Callback<T, any, any>;
  if (typeof cb === 'function') {
    c = new Callback<T, any, any>({ success: cb as (value: T, socket: Socket) => void });
  } else if (isSlots(cb)) {
    c = new Callback<T, any, any>(cb as CallbackSlots<T, any, any>);
  } else {
    throw invalidArgType(
      'cb',
      'a Callback, its slots { success, failure, timeout }, or a success function',
      cb,
    );
  }
  takeSlots(c);
  return c;
}

// A plain object of Callback slots: some of success, failure and timeout, nothing else.
function isSlots(v: unknown): boolean {
  return (
    v !== null &&
    typeof v === 'object' &&
    Object.getPrototypeOf(v) === Object.prototype &&
    Object.keys(v).length > 0 &&
    Object.keys(v).every((k) => SLOT_KEYS.has(k))
  );
}

// What an op takes where its Callback goes.
function isCallbackLike(v: unknown): boolean {
  return v instanceof Callback || typeof v === 'function' || isSlots(v);
}

/** A chain's `n` Callbacks, distinct. */
export function checkCallbacks(cbs: unknown, n: number): AnyCallback[] {
  if (!Array.isArray(cbs) || cbs.length !== n) {
    throw invalidArgType('callbacks', `an array of ${n} Callbacks`, cbs);
  }
  const out = cbs.map((c) => checkCallback<unknown>(c));
  if (new Set(out).size !== out.length) {
    throw invalidArgValue('callbacks', 'must be distinct Callbacks', cbs);
  }
  return out;
}

// The hot ops take (options?, callback) without building a tuple per call.

/**
 * The Callback of an op called as (..., options?, cb). A missing Callback is reported as
 * missing (an options object in the last place is not a Callback that is wrong), and one
 * given before the options as misplaced.
 */
export function callbackOf<T>(a: unknown, b: unknown): Callback<T, any, any> {
  // The common call, a Callback and no options, is kept small enough for V8 to inline into
  // every op (each op's own cost is tens of nanoseconds; a call that is not inlined shows).
  if (b === undefined && a instanceof Callback && !a._busy) {
    takeSlots(a);
    return a as Callback<T, any, any>;
  }
  return callbackOfAny<T>(a, b);
}

function callbackOfAny<T>(a: unknown, b: unknown): Callback<T, any, any> {
  if (b === undefined) {
    if (a !== null && typeof a === 'object' && !(a instanceof Callback) && !isSlots(a)) {
      throw missingCallback();
    }
    return checkCallback<T>(a);
  }
  if (!(b instanceof Callback) && typeof b !== 'function' && isCallbackLike(a) && !isSlots(b)) {
    throw misplacedCallback(b);
  }
  return checkCallback<T>(b);
}

function missingCallback(): TypeError {
  return invalidArgType(
    'cb',
    'a Callback, its slots { success, failure, timeout }, or a success function, after the ' +
      'options (the Callback is missing)',
    undefined,
  );
}

function misplacedCallback(last: unknown): TypeError {
  return invalidArgType(
    'cb',
    'the last argument: a Callback, its slots or a success function, after the options (it ' +
      'came before them)',
    last,
  );
}

/**
 * The options of an op called as (..., options?, cb): an object whose keys are among `keys`
 * (an op refuses what it does not use, by name, rather than ignore it; a key whose value is
 * `undefined` counts as absent). Checking costs no allocation: a walk of the object's keys,
 * only when options are given.
 */
export function optionsOf(a: unknown, b: unknown, keys: ReadonlySet<string>): OpOptions {
  if (b === undefined) return NO_OPTIONS;
  checkOptions(a);
  checkKeys(a as object, keys, 'options', b);
  return a as OpOptions;
}

/**
 * An options object whose keys are all among `keys`. `next`: the argument after the options,
 * for a clearer error when the options and the Callback were swapped.
 */
export function checkKeys(
  opts: object,
  keys: ReadonlySet<string>,
  name: string,
  next?: unknown,
): void {
  for (const k in opts) {
    if (keys.has(k) || (opts as Record<string, unknown>)[k] === undefined) continue;
    if (next !== undefined && isCallbackLike(opts) && !isCallbackLike(next)) {
      throw misplacedCallback(next);
    }
    throw invalidArgValue(
      name,
      `has a key this call does not take: '${k}' (it takes ${[...keys].join(', ') || 'none'})`,
      opts,
    );
  }
}

/** The options and Callbacks of a chain called as (..., options?, callbacks). */
export function optionsAndCallbacks<C>(
  a: unknown,
  b: C | undefined,
  keys: ReadonlySet<string>,
): [OpOptions, C] {
  if (Array.isArray(a)) {
    if (b !== undefined) {
      throw invalidArgType(
        'callbacks',
        'the last argument, after the options (they came before them)',
        b,
      );
    }
    return [NO_OPTIONS, a as C];
  }
  checkOptions(a);
  checkKeys(a as object, keys, 'options');
  return [a as OpOptions, b as C];
}

export function checkOptions(opts: unknown): void {
  if (opts === null || typeof opts !== 'object') throw invalidArgType('options', 'an object', opts);
}

/**
 * The option keys each op takes. Every op takes `timeout` (its deadline, in place of its
 * Callback's) and `signal` (an AbortSignal that cancels it); the rest are the op's own.
 * `position` is listed where the op has its own message for it (files only, and which ops).
 */
export const OPTION_KEYS = {
  /** accept, connect, getaddrinfo, stat, submitWork, acceptThenWrite, connectThenWriteLine, getaddrinfoThenConnect */
  common: new Set(['timeout', 'signal']) as ReadonlySet<string>,
  /** readChunk, readExactly, readInto, write */
  positioned: new Set(['position', 'timeout', 'signal']) as ReadonlySet<string>,
  /** readUntil, readAll */
  bounded: new Set(['maxBytes', 'position', 'timeout', 'signal']) as ReadonlySet<string>,
  /** expectLine, readUntilLineglob, readUntilRegex, and the chains ending in a line or regex */
  decoded: new Set([
    'maxBytes',
    'encoding',
    'position',
    'timeout',
    'signal',
  ]) as ReadonlySet<string>,
  /** writeThenExpectLine, acceptThenExpectLine, ...: the read stage's */
  chainRead: new Set(['maxBytes', 'encoding', 'timeout', 'signal']) as ReadonlySet<string>,
  /** expectLine */
  line: new Set([
    'maxBytes',
    'encoding',
    'position',
    'timeout',
    'signal',
    'onMismatch',
  ]) as ReadonlySet<string>,
  /** writeThenExpectLine, acceptThenExpectLine, connectThenExpectLine: the line stage's */
  chainLine: new Set([
    'maxBytes',
    'encoding',
    'timeout',
    'signal',
    'onMismatch',
  ]) as ReadonlySet<string>,
  open: new Set(['flags', 'mode', 'direct', 'timeout', 'signal']) as ReadonlySet<string>,
  fsync: new Set(['dataOnly', 'timeout', 'signal']) as ReadonlySet<string>,
  lengthPrefixed: new Set([
    'length',
    'delimiter',
    'trailer',
    'maxBytes',
    'maxBody',
    'encoding',
    'bodyEncoding',
    'position',
    'timeout',
    'signal',
  ]) as ReadonlySet<string>,
  listen: new Set([
    'host',
    'port',
    'path',
    'backlog',
    'reusePort',
    'ipv6Only',
    'deferAccept',
    'tls',
    // SocketOptions, for every accepted socket
    'noDelay',
    'keepAlive',
    'keepAliveInitialDelay',
    'receiveBufferSize',
    'sendBufferSize',
  ]) as ReadonlySet<string>,
  runOnce: new Set(['timeout']) as ReadonlySet<string>,
  acceptWhen: new Set(['reply', 'timeout', 'maxBytes', 'prefix', 'signal']) as ReadonlySet<string>,
} as const;

/**
 * `options.timeout`, when given, is the op's deadline (every stage's, for a chain) in place of
 * its Callbacks' own `timeout`: checked as a Callback's is.
 */
export function applyTimeout(
  opts: { timeout?: number },
  cbs: AnyCallback,
  more?: AnyCallback,
): void {
  if (opts.timeout !== undefined) applyGivenTimeout(opts.timeout, cbs, more);
}

function applyGivenTimeout(timeout: unknown, cbs: AnyCallback, more?: AnyCallback): void {
  if (typeof timeout !== 'number') throw invalidArgType('options.timeout', 'a number', timeout);
  if (!Number.isFinite(timeout) || timeout < 0) {
    throw outOfRange('options.timeout', 'a finite number >= 0', timeout);
  }
  cbs._timeout = timeout;
  if (more !== undefined) more._timeout = timeout;
}

/** `options.signal`: undefined or an AbortSignal. */
export function checkSignal(opts: { signal?: unknown }): AbortSignal | undefined {
  const signal = opts.signal;
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    throw invalidArgType('options.signal', 'an AbortSignal', signal);
  }
  return signal;
}

// A Callback with no failure slot, for the sink to drop a failure into.
const NO_FAILURE = Object.freeze({ _failure: undefined }) as unknown as AnyCallback;

/**
 * Arms `options.signal` for an op just submitted (`first` and `last`: a chain's first and last
 * Callbacks, the same one for a single op): its abort cancels the op, as `cancel()` does
 * (`failure` with `ECANCELED` if the cancel won), and the listener goes once the op (the last
 * stage) settles. A signal already aborted cancels the op at once.
 */
export function armSignal(
  signal: AbortSignal | undefined,
  first: AnyCallback,
  last: AnyCallback,
  sink: FailureSink,
): void {
  if (signal !== undefined) armGivenSignal(signal, first, last, sink);
}

function armGivenSignal(
  signal: AbortSignal,
  first: AnyCallback,
  last: AnyCallback,
  sink: FailureSink,
): void {
  const onAbort = (): void => {
    if (!first.cancel() && last !== first) last.cancel();
  };
  if (signal.aborted) {
    onAbort();
    return;
  }
  signal.addEventListener('abort', onAbort, { once: true });
  const success = last._success;
  const failure = last._failure;
  last._success = (value: unknown, io: unknown): void => {
    signal.removeEventListener('abort', onAbort);
    if (success !== undefined) success(value, io);
  };
  last._failure = (err: unknown, io: unknown): void => {
    signal.removeEventListener('abort', onAbort);
    // No failure slot: dropped as it would have been, with debug's warning.
    if (failure !== undefined) failure(err as EngineError, io);
    else sink.fail(NO_FAILURE, err, io);
  };
}

/** A function argument (`callSoon`'s, `threadsafe`'s handler). */
export function checkFunction(v: unknown, name: string): asserts v is (...args: any[]) => void {
  if (typeof v !== 'function') throw invalidArgType(name, 'a function', v);
}

// ---- sockets, listeners and files: the right kind, and this engine's ----

export function checkOwner(io: Socket | Listener | File, owner: object, name: string): void {
  if (io._owner !== owner) {
    throw invalidArgValue(name, 'belongs to another engine', io);
  }
}

/** What `close()` takes. */
export function checkIo(io: unknown, owner: object): asserts io is Socket | Listener | File {
  if (!(io instanceof Socket) && !(io instanceof Listener) && !(io instanceof File)) {
    throw invalidArgType('io', 'a Socket, Listener or File', io);
  }
  checkOwner(io, owner, 'io');
}

/** A stream op's Socket or File: its handle. */
export function socketHandle(sock: unknown, owner: object): number {
  if (!(sock instanceof Socket) && !(sock instanceof File)) {
    throw invalidArgType('socket', 'a Socket or File', sock);
  }
  checkOwner(sock, owner, 'socket');
  return sock._handle;
}

export function checkFile(file: unknown, owner: object): File {
  if (!(file instanceof File)) throw invalidArgType('file', 'a File', file);
  checkOwner(file, owner, 'file');
  return file;
}

/** A Listener: its handle. */
export function listenerHandle(listener: unknown, owner: object): number {
  if (!(listener instanceof Listener)) throw invalidArgType('listener', 'a Listener', listener);
  checkOwner(listener, owner, 'listener');
  return listener._handle;
}

/**
 * `options.position` (files only, and only where the op can take it) and, on an O_DIRECT file,
 * the alignment of the position and of `size`; checked before anything is queued.
 */
export function checkPosition(
  sock: unknown,
  opts: OpOptions,
  allowed: boolean,
  size?: number,
): number | undefined {
  const pos = opts.position;
  if (pos === undefined && sock instanceof Socket) return undefined;
  if (pos !== undefined) {
    if (!(sock instanceof File)) {
      throw invalidArgValue('options.position', 'applies to files only', pos);
    }
    if (!allowed) {
      throw invalidArgValue(
        'options.position',
        'is taken by readChunk, readExactly, readAll, readInto and write only',
        pos,
      );
    }
    if (typeof pos !== 'number' || !Number.isSafeInteger(pos) || pos < 0) {
      throw outOfRange('options.position', 'an integer from 0 to 2**53 - 1', pos);
    }
  }
  if (sock instanceof File && sock.direct) {
    const a = sock.alignment;
    if (pos !== undefined && pos % a !== 0) {
      throw outOfRange('options.position', `a multiple of ${a} (the file is O_DIRECT)`, pos);
    }
    if (size !== undefined && size % a !== 0) {
      throw outOfRange('size', `a multiple of ${a} (the file is O_DIRECT)`, size);
    }
  }
  return pos;
}

// ---- bounds, sizes and encodings ----

/** `options.maxBytes`, or the engine's default. */
export function limitOf(opts: OpOptions, fallback: number): number {
  if (opts.maxBytes === undefined) return fallback;
  return checkMaxBytes(opts.maxBytes, 'options.maxBytes');
}

/** `options.encoding`, or the engine's default. */
export function encodingOf(opts: OpOptions, fallback: BufferEncoding): BufferEncoding {
  return opts.encoding ? checkEncoding(opts.encoding, 'options.encoding') : fallback;
}

/** A bound in bytes: a positive integer, or Infinity (-1 to the native side). */
export function checkMaxBytes(v: unknown, name: string): number {
  if (v === Infinity) return -1;
  if (typeof v !== 'number') throw invalidArgType(name, 'a number', v);
  if (!Number.isSafeInteger(v) || v <= 0) {
    throw outOfRange(name, 'an integer from 1 to 2**53 - 1, or Infinity', v);
  }
  return v;
}

export function checkEncoding(v: unknown, name: string): BufferEncoding {
  // A server passes the same encoding op after op: the common names skip the lookup.
  if (v === 'utf8' || v === 'latin1') return v;
  if (typeof v !== 'string' || !Buffer.isEncoding(v)) {
    throw invalidArgValue(name, 'must be a Buffer encoding', v);
  }
  return v as BufferEncoding;
}

/**
 * An integer argument that native code reads as a C int (an fd, a backlog): checked here, so
 * that no conversion wraps it (2**32 + 3 must not become 3).
 */
export function checkInt(v: unknown, name: string, min: number, max: number): void {
  if (typeof v !== 'number') throw invalidArgType(name, 'a number', v);
  if (!Number.isInteger(v) || v < min || v > max) {
    throw outOfRange(name, `an integer from ${min} to ${max}`, v);
  }
}

/** `config.debug`: a boolean; absent, `ASYNC_ENGINE_DEBUG=1` turns it on. */
export function checkDebug(v: unknown): boolean {
  if (v === undefined) return process.env.ASYNC_ENGINE_DEBUG === '1';
  if (typeof v !== 'boolean') throw invalidArgType('config.debug', 'a boolean', v);
  return v;
}

/** A read's size in bytes: readChunk from 1, readExactly from 0 (`min`). */
export function checkSize(v: unknown, name: string, min = 1): void {
  if (typeof v !== 'number') throw invalidArgType(name, 'a number', v);
  if (!Number.isInteger(v) || v < min || v > MAX_SIZE) {
    throw outOfRange(name, `an integer from ${min} to ${MAX_SIZE}`, v);
  }
}

/**
 * A delay in milliseconds (callLater), as a Callback's timeout: any finite number >= 0,
 * fractions allowed; native code saturates a deadline past about 146 years, so none overflows.
 */
export function checkDelay(v: unknown, name: string): void {
  if (typeof v !== 'number') throw invalidArgType(name, 'a number', v);
  if (!Number.isFinite(v) || v < 0) throw outOfRange(name, 'a finite number >= 0', v);
}

/** runOnce's `options.timeout`: how long it may wait, in whole milliseconds. */
export function checkRunTimeout(options: unknown): number {
  checkOptions(options);
  checkKeys(options as object, OPTION_KEYS.runOnce, 'options');
  const timeout = (options as { timeout?: unknown }).timeout ?? 0;
  if (typeof timeout !== 'number') throw invalidArgType('options.timeout', 'a number', timeout);
  if (!(timeout >= 0) || timeout > MAX_INT32) {
    throw outOfRange('options.timeout', `a number from 0 to ${MAX_INT32}`, timeout);
  }
  return Math.ceil(timeout);
}

// ---- what a read looks for ----

export function checkDelimiter(delimiter: unknown): Delimiter {
  if (typeof delimiter !== 'string' && !Buffer.isBuffer(delimiter)) {
    throw invalidArgType('delimiter', 'a string or Buffer', delimiter);
  }
  if (delimiter.length === 0) throw invalidArgValue('delimiter', 'must not be empty', delimiter);
  return delimiterOf(delimiter);
}

/** readUntil's several delimiters: 1 to 16, each a non-empty string or Buffer. */
export const MAX_DELIMITERS = 16;

// The last list of strings checked: a server passes the same one op after op.
let lastStrings: readonly unknown[] = [];
let lastChecked: Delimiter[] = [];

export function checkDelimiters(list: readonly unknown[]): Delimiter[] {
  if (list.length === 0 || list.length > MAX_DELIMITERS) {
    throw outOfRange('delimiters.length', `from 1 to ${MAX_DELIMITERS}`, list.length);
  }
  if (list.length === lastStrings.length) {
    let same = true;
    for (let i = 0; i < list.length && same; i++) {
      same = typeof list[i] === 'string' && list[i] === lastStrings[i];
    }
    if (same) return lastChecked;
  }
  const out: Delimiter[] = [];
  for (let i = 0; i < list.length; i++) {
    const d = list[i];
    if (typeof d !== 'string' && !Buffer.isBuffer(d)) {
      throw invalidArgType(`delimiters[${i}]`, 'a string or Buffer', d);
    }
    if (d.length === 0) throw invalidArgValue(`delimiters[${i}]`, 'must not be empty', d);
    out.push(delimiterOf(d));
  }
  // Only strings are kept: a Buffer's bytes may change between calls.
  if (list.every((d) => typeof d === 'string')) {
    lastStrings = list.slice();
    lastChecked = out;
  }
  return out;
}

export function checkExpect(expect: unknown): void {
  if (expect !== null && typeof expect !== 'string' && !(expect instanceof RegExp)) {
    throw invalidArgType('expect', 'a string, RegExp or null', expect);
  }
}

const MISMATCH_KEYS: ReadonlySet<string> = new Set(['reply', 'max']);

/**
 * `options.onMismatch`: the reply's bytes and how many mismatched lines get it (-1: unbounded),
 * or undefined when it is absent.
 */
export function checkOnMismatch(v: unknown): { reply: Buffer; max: number } | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'object' || v === null) {
    throw invalidArgType('options.onMismatch', 'an object', v);
  }
  checkKeys(v, MISMATCH_KEYS, 'options.onMismatch');
  const { reply, max } = v as { reply?: unknown; max?: unknown };
  if (typeof reply !== 'string' && !Buffer.isBuffer(reply)) {
    throw invalidArgType('options.onMismatch.reply', 'a string or Buffer', reply);
  }
  let n = -1;
  if (max !== undefined && max !== Infinity) {
    if (typeof max !== 'number') throw invalidArgType('options.onMismatch.max', 'a number', max);
    if (!Number.isSafeInteger(max) || max < 0) {
      throw outOfRange('options.onMismatch.max', 'an integer from 0 up, or Infinity', max);
    }
    n = max;
  }
  return { reply: typeof reply === 'string' ? Buffer.from(reply) : Buffer.from(reply), max: n };
}

export function checkGlob(glob: unknown): asserts glob is string {
  if (typeof glob !== 'string') throw invalidArgType('glob', 'a string', glob);
  if (glob === '' || glob.includes('\0')) {
    throw invalidArgValue('glob', 'must be a non-empty string without NUL', glob);
  }
}

/**
 * A regex read's RegExp: one that cannot match the empty string (it would match at once and
 * never consume). A zero-width match elsewhere (`\b`, a lookahead) is allowed: it succeeds with
 * the bytes before it, none when it is at the start.
 */
export function checkRegex(regex: unknown): asserts regex is RegExp {
  if (!(regex instanceof RegExp)) throw invalidArgType('regex', 'a RegExp', regex);
  regex.lastIndex = 0;
  const empty = regex.exec('');
  regex.lastIndex = 0;
  if (empty !== null) {
    throw invalidArgValue('regex', 'must not match the empty string', regex);
  }
}

/**
 * readLengthPrefixed's options, checked. A program passes the same options object op after op
 * (a server, one per connection): what was checked is kept with the object (in `cache`) while
 * none of its fields changed (Buffers are checked anew each time, since their bytes may change
 * under the same object).
 */
export function prefixSpecOf(
  cache: WeakMap<object, PrefixSpec>,
  options: LengthPrefixedOptions,
  defaultMaxBytes: number,
  defaultEncoding: BufferEncoding,
): PrefixSpec {
  const last = cache.get(options);
  const { length, delimiter, trailer, maxBytes, maxBody, encoding, bodyEncoding } = options;
  if (
    last !== undefined &&
    last.given[0] === length &&
    last.given[1] === delimiter &&
    last.given[2] === trailer &&
    last.given[3] === maxBytes &&
    last.given[4] === maxBody &&
    last.given[5] === encoding &&
    last.given[6] === bodyEncoding &&
    typeof delimiter !== 'object' &&
    typeof trailer !== 'object'
  ) {
    return last;
  }
  const spec = checkPrefixSpec(options, defaultMaxBytes, defaultEncoding);
  cache.set(options, spec);
  return spec;
}

/**
 * readLengthPrefixed's options, checked (`maxBytes` and `encoding` default to the engine's),
 * with the fields they were checked from.
 */
function checkPrefixSpec(
  options: LengthPrefixedOptions,
  defaultMaxBytes: number,
  defaultEncoding: BufferEncoding,
): PrefixSpec {
  const { length, delimiter, trailer, maxBytes, maxBody, encoding, bodyEncoding } = options;
  if (typeof length !== 'function') throw invalidArgType('options.length', 'a function', length);
  const delim = delimiter === undefined ? undefined : checkDelimiter(delimiter);
  let tail: Buffer | undefined;
  if (trailer === undefined) tail = EMPTY;
  else if (typeof trailer === 'string') tail = bytesOf(trailer);
  else if (Buffer.isBuffer(trailer)) tail = trailer;
  else if (typeof trailer === 'number') checkInt(trailer, 'options.trailer', 0, MAX_INT32);
  else throw invalidArgType('options.trailer', 'a string, Buffer or number', trailer);
  const limit = limitOf(options, defaultMaxBytes);
  return {
    given: [length, delimiter, trailer, maxBytes, maxBody, encoding, bodyEncoding],
    length,
    delimiter: delim,
    trailer: tail,
    trailerLen: tail === undefined ? (trailer as number) : tail.length,
    maxBytes: limit,
    maxBody: maxBody === undefined ? limit : checkMaxBytes(maxBody, 'options.maxBody'),
    encoding: encoding ? checkEncoding(encoding, 'options.encoding') : defaultEncoding,
    bodyEncoding:
      bodyEncoding === undefined ? undefined : checkEncoding(bodyEncoding, 'options.bodyEncoding'),
  };
}

// ---- what a write sends ----

export function toBytes(data: unknown): Buffer | Buffer[] {
  if (typeof data === 'string') return Buffer.from(data);
  if (Buffer.isBuffer(data)) return data;
  if (data instanceof Uint8Array) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (Array.isArray(data)) {
    return data.map((d, i) => {
      if (Buffer.isBuffer(d)) return d;
      if (d instanceof Uint8Array) return Buffer.from(d.buffer, d.byteOffset, d.byteLength);
      throw invalidArgType(`data[${i}]`, 'a Buffer or Uint8Array', d);
    });
  }
  throw invalidArgType('data', 'a string, Buffer, Uint8Array or an array of Buffers', data);
}

/** connectThenWriteLine's line, followed by `\r\n`. */
export function lineBytes(line: unknown): Buffer {
  if (typeof line !== 'string' && !Buffer.isBuffer(line)) {
    throw invalidArgType('line', 'a string or Buffer', line);
  }
  return Buffer.concat([Buffer.from(line), CRLF]);
}

// ---- addresses ----

/**
 * A TCP port: a number (a string such as '80' is a TypeError, as the type is what is wrong), an
 * integer from `min` (0 to listen or resolve, 1 to connect) to 65535.
 */
export function checkPort(v: unknown, name: string, min = 0): number {
  if (typeof v !== 'number') throw invalidArgType(name, 'a number', v);
  if (!Number.isInteger(v) || v < min || v > 65535) {
    throw outOfRange(name, `an integer from ${min} to 65535`, v);
  }
  return v;
}

export function checkUnixPath(path: unknown, name: string): string {
  if (typeof path !== 'string' || path === '')
    throw invalidArgType(name, 'a non-empty string', path);
  if (Buffer.byteLength(path) > MAX_UNIX_PATH || path.includes('\0')) {
    throw invalidArgValue(name, `must be at most ${MAX_UNIX_PATH} bytes, without NUL`, path);
  }
  return path;
}

function numericHost(host: unknown, name: string): string {
  if (typeof host !== 'string') throw invalidArgType(name, 'a string', host);
  if (host === 'localhost') return '127.0.0.1';
  const h = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  if (!isIP(h)) throw invalidArgValue(name, 'must be a numeric IPv4 or IPv6 address', host);
  return h;
}

/** listen()'s options, checked: a Unix socket has `port` -1 and its path as `host`. */
export function checkListenOptions(options: unknown): {
  host: string;
  port: number;
  backlog: number;
  reusePort: boolean;
  ipv6Only: boolean;
  socketOptions: NativeSocketOptions | undefined;
} {
  if (options === null || typeof options !== 'object') {
    throw invalidArgType('options', 'an object', options);
  }
  checkKeys(options, OPTION_KEYS.listen, 'options');
  const o = options as ListenOptions;
  const socketOptions = socketOptionsIn(o, 'options');
  const backlog = o.backlog ?? 511;
  checkInt(backlog, 'options.backlog', 0, MAX_INT32);
  let host: string;
  let port: number;
  if (o.path !== undefined) {
    host = checkUnixPath(o.path, 'options.path');
    port = -1;
  } else {
    host = numericHost(o.host ?? '127.0.0.1', 'options.host');
    port = checkPort(o.port ?? 0, 'options.port');
  }
  if (o.ipv6Only !== undefined && typeof o.ipv6Only !== 'boolean') {
    throw invalidArgType('options.ipv6Only', 'a boolean', o.ipv6Only);
  }
  return {
    host,
    port,
    backlog,
    reusePort: o.reusePort === true,
    ipv6Only: o.ipv6Only === true,
    socketOptions,
  };
}

// ---- socket options ----

/**
 * Socket options as the native side takes them: noDelay, keepAlive (0 or 1), the keep-alive
 * idle time in whole seconds, the receive and send buffer sizes; -1 leaves one alone.
 */
export type NativeSocketOptions = [number, number, number, number, number];

const SOCKET_OPTION_KEYS: ReadonlySet<string> = new Set([
  'noDelay',
  'keepAlive',
  'keepAliveInitialDelay',
  'receiveBufferSize',
  'sendBufferSize',
]);
// TCP_KEEPIDLE's largest value on Linux (MAX_TCP_KEEPIDLE), in seconds.
const MAX_KEEPIDLE_S = 32767;

/** setSocketOptions' argument: an object of the SocketOptions keys only. */
export function checkSocketOptions(options: unknown): NativeSocketOptions {
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw invalidArgType('options', 'an object', options);
  }
  for (const key of Object.keys(options)) {
    if (!SOCKET_OPTION_KEYS.has(key)) {
      throw invalidArgValue(`options.${key}`, 'is not a socket option', (options as never)[key]);
    }
  }
  return socketOptionsIn(options as SocketOptions, 'options')!;
}

/**
 * The SocketOptions keys of an object that has other keys too (listen's options, a connect's
 * address), checked; undefined when it sets none of them.
 */
export function socketOptionsIn(o: SocketOptions, prefix: string): NativeSocketOptions | undefined {
  const { noDelay, keepAlive, keepAliveInitialDelay: delay } = o;
  const { receiveBufferSize: rcv, sendBufferSize: snd } = o;
  if (
    noDelay === undefined &&
    keepAlive === undefined &&
    delay === undefined &&
    rcv === undefined &&
    snd === undefined
  ) {
    return undefined;
  }
  const flag = (v: unknown, name: string): number => {
    if (v === undefined) return -1;
    if (typeof v !== 'boolean') throw invalidArgType(`${prefix}.${name}`, 'a boolean', v);
    return v ? 1 : 0;
  };
  const size = (v: unknown, name: string): number => {
    if (v === undefined) return -1;
    checkInt(v, `${prefix}.${name}`, 1, MAX_INT32);
    return v as number;
  };
  let idle = -1;
  if (delay !== undefined) {
    checkInt(delay, `${prefix}.keepAliveInitialDelay`, 0, MAX_KEEPIDLE_S * 1000);
    // Whole seconds, truncated, as Node's setKeepAlive(enable, initialDelay) takes them; under
    // one second leaves the kernel's idle time alone.
    idle = Math.trunc(delay / 1000) || -1;
  }
  return [
    flag(noDelay, 'noDelay'),
    flag(keepAlive, 'keepAlive'),
    idle,
    size(rcv, 'receiveBufferSize'),
    size(snd, 'sendBufferSize'),
  ];
}

/** getaddrinfo's host and port: the port. */
export function checkResolve(host: unknown, port: unknown): number {
  if (typeof host !== 'string' || host === '')
    throw invalidArgType('host', 'a non-empty string', host);
  // The resolver reads a C string: 'localhost\0.example.com' would resolve 'localhost'.
  if (host.includes('\0')) throw invalidArgValue('host', 'must not contain NUL', host);
  return checkPort(port, 'port');
}

/**
 * A connect's address, checked: a Unix socket's `path` (port -1), or a host (brackets stripped
 * from an IPv6 literal) and a port from 1; `numeric` when the host needs no name lookup.
 */
export function checkConnectAddress(address: unknown): {
  host: string;
  port: number;
  numeric: boolean;
} {
  if (address === null || typeof address !== 'object') {
    throw invalidArgType('address', 'an object { host, port } or { path }', address);
  }
  const addr = address as { host?: unknown; port?: unknown; path?: unknown };
  if (addr.path !== undefined) {
    return { host: checkUnixPath(addr.path, 'address.path'), port: -1, numeric: true };
  }
  if (typeof addr.host !== 'string' || addr.host === '') {
    throw invalidArgType('address.host', 'a non-empty string', addr.host);
  }
  if (addr.host.includes('\0')) {
    throw invalidArgValue('address.host', 'must not contain NUL', addr.host);
  }
  const port = checkPort(addr.port, 'address.port', 1);
  const host =
    addr.host.startsWith('[') && addr.host.endsWith(']') ? addr.host.slice(1, -1) : addr.host;
  return { host, port, numeric: isIP(host) !== 0 };
}

// ---- files ----

export function checkPath(path: unknown, name: string): void {
  if (typeof path !== 'string') throw invalidArgType(name, 'a string', path);
  if (path === '' || path.includes('\0')) {
    throw invalidArgValue(name, 'must be a non-empty string without NUL', path);
  }
}

const OPEN_FLAGS: Record<string, number> = {
  r: fsConstants.O_RDONLY,
  'r+': fsConstants.O_RDWR,
  w: fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_TRUNC,
  'w+': fsConstants.O_RDWR | fsConstants.O_CREAT | fsConstants.O_TRUNC,
  a: fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_APPEND,
  'a+': fsConstants.O_RDWR | fsConstants.O_CREAT | fsConstants.O_APPEND,
  wx: fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_TRUNC | fsConstants.O_EXCL,
  'wx+': fsConstants.O_RDWR | fsConstants.O_CREAT | fsConstants.O_TRUNC | fsConstants.O_EXCL,
  ax: fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_APPEND | fsConstants.O_EXCL,
  'ax+': fsConstants.O_RDWR | fsConstants.O_CREAT | fsConstants.O_APPEND | fsConstants.O_EXCL,
};

function openFlags(flags: unknown): number {
  if (typeof flags === 'number') {
    if (!Number.isInteger(flags) || flags < 0 || flags > 0x7fffffff) {
      throw outOfRange('options.flags', 'an integer of O_* bits', flags);
    }
    return flags;
  }
  if (typeof flags !== 'string')
    throw invalidArgType('options.flags', 'a string or a number', flags);
  const f = OPEN_FLAGS[flags];
  if (f === undefined) {
    throw invalidArgValue(
      'options.flags',
      `must be one of ${Object.keys(OPEN_FLAGS).join(', ')}`,
      flags,
    );
  }
  return f;
}

/** open()'s path and options: its open(2) flags (O_DIRECT included), mode and `direct`. */
export function checkOpenArgs(
  path: unknown,
  opts: unknown,
): { flags: number; mode: number; direct: boolean } {
  checkOptions(opts);
  checkKeys(opts as object, OPTION_KEYS.open, 'options');
  checkPath(path, 'path');
  const o = opts as { flags?: unknown; mode?: unknown; direct?: unknown };
  let flags = openFlags(o.flags ?? 'r');
  const mode = o.mode ?? 0o666;
  if (!Number.isInteger(mode) || (mode as number) < 0 || (mode as number) > 0o7777) {
    throw outOfRange('options.mode', 'an integer from 0 to 0o7777', mode);
  }
  if (o.direct !== undefined && typeof o.direct !== 'boolean') {
    throw invalidArgType('options.direct', 'a boolean', o.direct);
  }
  const direct = o.direct === true;
  if (direct) flags |= fsConstants.O_DIRECT;
  return { flags, mode: mode as number, direct };
}

/**
 * readInto's buffer: a non-empty Uint8Array whose memory cannot change size while the op waits
 * (a view of a resizable ArrayBuffer or a growable SharedArrayBuffer is refused; a detached
 * buffer is caught when the bytes are copied).
 */
export function checkReadBuffer(buffer: unknown): asserts buffer is Uint8Array {
  if (!(buffer instanceof Uint8Array))
    throw invalidArgType('buffer', 'a Buffer or Uint8Array', buffer);
  const memory = buffer.buffer as { resizable?: boolean; growable?: boolean };
  if (memory.resizable === true || memory.growable === true) {
    throw invalidArgValue(
      'buffer',
      'must not be a view of a resizable ArrayBuffer or a growable SharedArrayBuffer',
      buffer,
    );
  }
  if (buffer.length === 0) throw outOfRange('buffer.length', 'at least 1', buffer.length);
}

// ---- work ----

/** A work task, its module as a URL or package name. */
export function checkTask(task: unknown): {
  module: string;
  fn: string;
  args: unknown[];
  transfer: TransferListItem[];
} {
  if (task === null || typeof task !== 'object') throw invalidArgType('task', 'an object', task);
  const t = task as WorkTask;
  let module: string;
  if (t.module instanceof URL) {
    module = t.module.href;
  } else if (typeof t.module === 'string' && t.module !== '') {
    module = t.module.startsWith('/') ? pathToFileURL(t.module).href : t.module;
  } else {
    throw invalidArgType('task.module', 'a non-empty string or a URL', t.module);
  }
  if (typeof t.fn !== 'string' || t.fn === '')
    throw invalidArgType('task.fn', 'a non-empty string', t.fn);
  if (t.args !== undefined && !Array.isArray(t.args))
    throw invalidArgType('task.args', 'an array', t.args);
  if (t.transfer !== undefined && !Array.isArray(t.transfer)) {
    throw invalidArgType('task.transfer', 'an array', t.transfer);
  }
  return { module, fn: t.fn, args: t.args ?? [], transfer: t.transfer ?? [] };
}
