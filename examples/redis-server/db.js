// The keyspace: 16 numbered databases, each a Map from key to a typed value plus a Map of
// expiry deadlines, with lazy expiry (checked on access) and Redis's active expiry cycle
// (a bounded sample of keys with a deadline, run on the engine's timers by server.js).
//
// Keys and string values are latin1 strings (one char per byte, so binary data survives).
// A value's type is its JavaScript class: a string is a Redis string, a Deque a list, a Map a
// hash, a Set a set, a ZSet a sorted set.

/** Databases per keyspace, as Redis's default `databases 16`. */
export const DATABASES = 16;

/**
 * Active expiry, as Redis's activeExpireCycle: every cycle looks at up to EXPIRE_SAMPLE keys
 * with a deadline per database and goes on with another sample while more than a quarter of
 * the last one had expired, up to EXPIRE_ROUNDS samples per database and EXPIRE_BUDGET_MS per
 * cycle, so the work one timer tick does is bounded whatever the keyspace holds.
 */
export const EXPIRE_SAMPLE = 20;
export const EXPIRE_ROUNDS = 16;
export const EXPIRE_BUDGET_MS = 25;
/** Milliseconds between two cycles: Redis's `hz 10`. */
export const EXPIRE_PERIOD_MS = 100;

/** A double-ended queue on a ring buffer: O(1) push and pop at both ends, O(1) indexing. */
export class Deque {
  constructor() {
    this.buf = new Array(8);
    this.head = 0;
    this.length = 0;
  }

  grow() {
    const old = this.buf;
    const buf = new Array(old.length * 2);
    for (let i = 0; i < this.length; i++) buf[i] = old[(this.head + i) & (old.length - 1)];
    this.buf = buf;
    this.head = 0;
  }

  pushBack(v) {
    if (this.length === this.buf.length) this.grow();
    this.buf[(this.head + this.length) & (this.buf.length - 1)] = v;
    this.length++;
  }

  pushFront(v) {
    if (this.length === this.buf.length) this.grow();
    this.head = (this.head - 1) & (this.buf.length - 1);
    this.buf[this.head] = v;
    this.length++;
  }

  popFront() {
    const v = this.buf[this.head];
    this.buf[this.head] = undefined;
    this.head = (this.head + 1) & (this.buf.length - 1);
    this.length--;
    return v;
  }

  popBack() {
    const i = (this.head + this.length - 1) & (this.buf.length - 1);
    const v = this.buf[i];
    this.buf[i] = undefined;
    this.length--;
    return v;
  }

  at(i) {
    return this.buf[(this.head + i) & (this.buf.length - 1)];
  }
}

/**
 * A sorted set: member → score, and the members ordered by (score, member) in an array kept
 * sorted by binary search. Insertion and removal move the array's tail (O(n)), which a demo
 * can afford; Redis uses a skip list.
 */
export class ZSet {
  constructor() {
    this.scores = new Map();
    this.order = []; // [score, member] pairs, ascending
  }

  get size() {
    return this.scores.size;
  }

  /** Index of the first pair not below (score, member). */
  position(score, member) {
    let lo = 0;
    let hi = this.order.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const [s, m] = this.order[mid];
      if (s < score || (s === score && m < member)) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Sets a member's score; returns true when the member is new. */
  set(member, score) {
    const old = this.scores.get(member);
    if (old !== undefined) {
      if (old === score) return false;
      this.order.splice(this.position(old, member), 1);
    }
    this.scores.set(member, score);
    this.order.splice(this.position(score, member), 0, [score, member]);
    return old === undefined;
  }

  delete(member) {
    const old = this.scores.get(member);
    if (old === undefined) return false;
    this.scores.delete(member);
    this.order.splice(this.position(old, member), 1);
    return true;
  }

  /** Removes and returns the `count` lowest pairs. */
  popMin(count) {
    const taken = this.order.splice(0, count);
    for (const [, member] of taken) this.scores.delete(member);
    return taken;
  }
}

/** Redis's TYPE name of a stored value. */
export function typeName(value) {
  if (typeof value === 'string') return 'string';
  if (value instanceof Deque) return 'list';
  if (value instanceof Map) return 'hash';
  if (value instanceof Set) return 'set';
  if (value instanceof ZSet) return 'zset';
  return 'none';
}

/** One numbered database: keys to values, and keys to their deadline (ms since the epoch). */
export class Database {
  constructor(id) {
    this.id = id;
    this.dict = new Map();
    this.expires = new Map();
    this.expireCursor = undefined; // the active cycle's walk over `expires`
  }

  /** Keys held, counting those past their deadline that nobody touched yet (as Redis does). */
  get size() {
    return this.dict.size;
  }

  /** The value at `key`, or undefined; a key past its deadline is deleted first (lazy expiry). */
  get(key, now) {
    if (this.expires.size !== 0) {
      const at = this.expires.get(key);
      if (at !== undefined && at <= (now ?? Date.now())) {
        this.dict.delete(key);
        this.expires.delete(key);
        return undefined;
      }
    }
    return this.dict.get(key);
  }

  has(key, now) {
    return this.get(key, now) !== undefined;
  }

  /** Stores `value`, dropping the key's deadline unless `keepTtl`. */
  set(key, value, keepTtl = false) {
    this.dict.set(key, value);
    if (!keepTtl && this.expires.size !== 0) this.expires.delete(key);
  }

  /** Stores `value` at a key that holds an unexpired value already: its deadline stays. */
  replace(key, value) {
    this.dict.set(key, value);
  }

  delete(key) {
    if (!this.dict.delete(key)) return false;
    if (this.expires.size !== 0) this.expires.delete(key);
    return true;
  }

  /** Deletes `key` if its value (a list, hash, set or sorted set) has become empty. */
  dropIfEmpty(key, value) {
    if ((value.length ?? value.size) === 0) this.delete(key);
  }

  setExpire(key, at) {
    this.expires.set(key, at);
  }

  persist(key) {
    return this.expires.delete(key);
  }

  /** The key's deadline, or undefined when it has none. */
  expireAt(key) {
    return this.expires.get(key);
  }

  clear() {
    this.dict.clear();
    this.expires.clear();
    this.expireCursor = undefined;
  }

  /**
   * One database's share of an active expiry cycle: samples keys with a deadline, EXPIRE_SAMPLE
   * at a time, in the order of a walk over `expires` that goes on from where the previous cycle
   * stopped (as Redis 6+ goes on from a cursor); another sample while more than a quarter of the
   * last one had expired. Returns the number of keys deleted.
   */
  expireCycle(now, deadline) {
    let deleted = 0;
    for (let round = 0; round < EXPIRE_ROUNDS && this.expires.size !== 0; round++) {
      let sampled = 0;
      let expired = 0;
      const want = Math.min(EXPIRE_SAMPLE, this.expires.size);
      while (sampled < want) {
        this.expireCursor ??= this.expires.entries();
        const step = this.expireCursor.next();
        if (step.done) {
          this.expireCursor = undefined;
          if (sampled === 0) break;
          continue;
        }
        const [key, at] = step.value;
        sampled++;
        if (at <= now) {
          // A Map iterator stays valid across deletions: the walk goes on at the next entry.
          this.dict.delete(key);
          this.expires.delete(key);
          expired++;
        }
      }
      deleted += expired;
      if (expired * 4 <= sampled || Date.now() >= deadline) break;
    }
    return deleted;
  }
}

/** DATABASES databases, each selected by number (SELECT); one keyspace per server. */
export class Keyspace {
  constructor(count = DATABASES) {
    this.dbs = Array.from({ length: count }, (_, i) => new Database(i));
    this.expiredKeys = 0; // deleted by the active cycle, for INFO
  }

  /** Keys in every database (those past their deadline included). */
  get size() {
    let n = 0;
    for (const db of this.dbs) n += db.dict.size;
    return n;
  }

  db(index) {
    return this.dbs[index];
  }

  clear() {
    for (const db of this.dbs) db.clear();
  }

  /** One active expiry cycle over every database, bounded by EXPIRE_BUDGET_MS. */
  activeExpireCycle(now = Date.now()) {
    const deadline = now + EXPIRE_BUDGET_MS;
    let deleted = 0;
    for (const db of this.dbs) {
      if (db.expires.size !== 0) deleted += db.expireCycle(now, deadline);
      if (Date.now() >= deadline) break;
    }
    this.expiredKeys += deleted;
    return deleted;
  }
}

// ---- Glob patterns (KEYS, SCAN MATCH, CONFIG GET), as Redis's stringmatchlen. ----

const globCache = new Map();

/**
 * A RegExp matching what Redis's glob `pattern` matches: `*`, `?`, `[abc]`, `[^a]`, `[a-z]`
 * and `\x` escapes. Compiled patterns are cached (at most 256).
 */
export function globRegExp(pattern) {
  let re = globCache.get(pattern);
  if (re !== undefined) return re;
  let src = '';
  const esc = (ch) => ch.replace(/[\\^$.*+?()[\]{}|/-]/g, '\\$&');
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i];
    if (ch === '*') {
      src += '[\\s\\S]*';
      while (pattern[i + 1] === '*') i++;
    } else if (ch === '?') {
      src += '[\\s\\S]';
    } else if (ch === '\\' && i + 1 < pattern.length) {
      src += esc(pattern[++i]);
    } else if (ch === '[') {
      let j = i + 1;
      let negate = false;
      if (pattern[j] === '^') {
        negate = true;
        j++;
      }
      let set = '';
      for (; j < pattern.length && pattern[j] !== ']'; j++) {
        if (pattern[j] === '\\' && j + 1 < pattern.length) {
          set += esc(pattern[++j]);
        } else if (pattern[j + 1] === '-' && j + 2 < pattern.length && pattern[j + 2] !== ']') {
          let a = pattern[j];
          let b = pattern[j + 2];
          if (a > b) [a, b] = [b, a]; // Redis accepts a reversed range
          set += `${esc(a)}-${esc(b)}`;
          j += 2;
        } else {
          set += esc(pattern[j]);
        }
      }
      // An unterminated `[` takes the rest of the pattern as its set, as Redis does.
      src += set === '' ? (negate ? '[\\s\\S]' : '(?!)') : `[${negate ? '^' : ''}${set}]`;
      i = j;
    } else {
      src += esc(ch);
    }
  }
  re = new RegExp(`^${src}$`);
  if (globCache.size >= 256) globCache.clear();
  globCache.set(pattern, re);
  return re;
}

/** Whether `text` matches the glob `pattern`; `*` matches everything without a RegExp. */
export function globMatch(pattern, text) {
  return pattern === '*' || globRegExp(pattern).test(text);
}

// ---- Numbers as Redis reads and writes them. ----

const INT64_TEXT = /^(?:0|-?[1-9][0-9]{0,18})$/;
const INT64_MAX = 9223372036854775807n;
const INT64_MIN = -9223372036854775808n;

/**
 * A 64-bit signed integer written as Redis's string2ll accepts it (no `+`, no spaces, no
 * leading zeros): a number when it is a safe integer, a bigint beyond, undefined otherwise.
 */
export function parseInt64(text) {
  if (!INT64_TEXT.test(text)) return undefined;
  if (text.length < 16) return Number(text);
  const n = BigInt(text);
  if (n > INT64_MAX || n < INT64_MIN) return undefined;
  return Number.isSafeInteger(Number(n)) ? Number(n) : n;
}

/** `a + b` for 64-bit integers, or undefined when the sum leaves the range. */
export function addInt64(a, b) {
  if (typeof a === 'number' && typeof b === 'number') {
    const sum = a + b;
    if (Number.isSafeInteger(sum)) return sum;
  }
  const sum = BigInt(a) + BigInt(b);
  if (sum > INT64_MAX || sum < INT64_MIN) return undefined;
  return Number.isSafeInteger(Number(sum)) ? Number(sum) : sum;
}

const FLOAT_TEXT = /^[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|inf|infinity)$/i;

/** A score as Redis's strtod reads it (`1`, `-2.5`, `1e3`, `inf`, `-inf`), or undefined. */
export function parseDouble(text) {
  if (!FLOAT_TEXT.test(text)) return undefined;
  const lower = text.toLowerCase();
  if (lower.endsWith('inf') || lower.endsWith('infinity')) {
    return text[0] === '-' ? -Infinity : Infinity;
  }
  return Number(text);
}

/**
 * A double as Redis 7.0 writes it (d2string): `inf`, `-inf`, integers exactly, anything else
 * as C's `%.17g` (`1.5`, `0.10000000000000001`, `3e+20`).
 */
export function formatDouble(d) {
  if (d === Infinity) return 'inf';
  if (d === -Infinity) return '-inf';
  if (Number.isNaN(d)) return 'nan';
  if (d === 0) return Object.is(d, -0) ? '-0' : '0';
  if (Number.isInteger(d) && d > -4503599627370495 && d < 4503599627370496) return String(d);
  // %.17g: 17 significant digits, exponent form when the exponent is < -4 or >= 17, trailing
  // zeros (and a trailing point) removed.
  const [mantissa, expText] = d.toExponential(16).split('e');
  const exp = Number(expText);
  if (exp < -4 || exp >= 17) {
    const m = mantissa.replace(/\.?0+$/, '');
    const e = Math.abs(exp);
    return `${m}e${exp < 0 ? '-' : '+'}${e < 10 ? '0' : ''}${e}`;
  }
  const fixed = d.toFixed(Math.max(0, 16 - exp));
  return fixed.includes('.') ? fixed.replace(/\.?0+$/, '') : fixed;
}
