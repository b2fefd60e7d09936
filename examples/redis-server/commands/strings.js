// String commands: GET SET (EX PX EXAT PXAT NX XX KEEPTTL GET) MGET MSET INCR INCRBY DECR DECRBY
// APPEND STRLEN GETSET. Each command is `run(args, client)`; `client.db` is the connection's
// selected database.
import { NULL_BULK, OK, arrayReply, bulkReply, errorReply, integerReply } from '../protocol.js';
import { addInt64, parseInt64 } from '../db.js';
import { NOT_INTEGER, OVERFLOW, SYNTAX, WRONGTYPE, arityError } from './replies.js';

const INVALID_EXPIRE_SET = errorReply("ERR invalid expire time in 'set' command");
/** Longest relative expiry Redis takes before the deadline in ms would overflow. */
const MAX_EXPIRE_MS = Number.MAX_SAFE_INTEGER;

/** INCRBY's work: the stored string plus `delta`, stored back; the reply Buffer. */
function incrementBy(client, key, delta) {
  const db = client.db;
  const value = db.get(key);
  let current = 0;
  if (value !== undefined) {
    if (typeof value !== 'string') return WRONGTYPE;
    current = parseInt64(value);
    if (current === undefined) return NOT_INTEGER;
  }
  const next = addInt64(current, delta);
  if (next === undefined) return OVERFLOW;
  const text = String(next);
  if (value === undefined) db.set(key, text);
  else db.replace(key, text); // INCR keeps the key's deadline
  return integerReply(text);
}

/**
 * SET's options, parsed as Redis 7.0 does: the first bad one decides the error. Returns
 * `{ nx, xx, get, keepTtl, at }` (`at`: the new deadline in ms, or undefined) or an error reply.
 */
function setOptions(args, now) {
  const o = { nx: false, xx: false, get: false, keepTtl: false, at: undefined };
  let unit = ''; // EX PX EXAT PXAT, one at most
  for (let i = 3; i < args.length; i++) {
    const opt = args[i].toUpperCase();
    const hasNext = i + 1 < args.length;
    if (opt === 'NX' && !o.xx) o.nx = true;
    else if (opt === 'XX' && !o.nx) o.xx = true;
    else if (opt === 'GET') o.get = true;
    else if (opt === 'KEEPTTL' && unit === '') o.keepTtl = true;
    else if ((opt === 'EX' || opt === 'PX' || opt === 'EXAT' || opt === 'PXAT') && hasNext) {
      if (unit !== '' || o.keepTtl) return SYNTAX;
      unit = opt;
      const n = parseInt64(args[++i]);
      if (n === undefined) return NOT_INTEGER;
      if (typeof n !== 'number' || n <= 0) return INVALID_EXPIRE_SET;
      const ms = unit === 'EX' || unit === 'EXAT' ? n * 1000 : n;
      if (ms > MAX_EXPIRE_MS) return INVALID_EXPIRE_SET;
      o.at = unit === 'EX' || unit === 'PX' ? now + ms : ms;
    } else {
      return SYNTAX;
    }
  }
  return o;
}

/** SETEX / PSETEX key time value: SET with EX / PX, with their own error text. */
function setWithExpiry(name, unitMs) {
  const invalid = errorReply(`ERR invalid expire time in '${name}' command`);
  return {
    arity: 4,
    run(args, client) {
      const n = parseInt64(args[2]);
      if (n === undefined) return NOT_INTEGER;
      if (typeof n !== 'number' || n <= 0 || n * unitMs > MAX_EXPIRE_MS) return invalid;
      client.db.set(args[1], args[3]);
      client.db.setExpire(args[1], Date.now() + n * unitMs);
      return OK;
    },
  };
}

export const commands = {
  get: {
    arity: 2,
    run(args, client) {
      const value = client.db.get(args[1]);
      if (value === undefined) return NULL_BULK;
      return typeof value === 'string' ? bulkReply(value) : WRONGTYPE;
    },
  },
  set: {
    arity: -3,
    run(args, client) {
      const db = client.db;
      if (args.length === 3) {
        db.set(args[1], args[2]);
        return OK;
      }
      const now = Date.now();
      const o = setOptions(args, now);
      if (Buffer.isBuffer(o)) return o;
      const old = db.get(args[1], now);
      if (o.get && old !== undefined && typeof old !== 'string') return WRONGTYPE;
      const reply = o.get ? bulkReply(old) : OK;
      if ((o.nx && old !== undefined) || (o.xx && old === undefined)) {
        return o.get ? reply : NULL_BULK;
      }
      db.set(args[1], args[2], o.keepTtl);
      if (o.at !== undefined) {
        if (o.at <= now)
          db.delete(args[1]); // EXAT/PXAT in the past: set, then expired
        else db.setExpire(args[1], o.at);
      }
      return reply;
    },
  },
  setnx: {
    arity: 3,
    run(args, client) {
      if (client.db.has(args[1])) return integerReply(0);
      client.db.set(args[1], args[2]);
      return integerReply(1);
    },
  },
  setex: setWithExpiry('setex', 1000),
  psetex: setWithExpiry('psetex', 1),
  getset: {
    arity: 3,
    run(args, client) {
      const old = client.db.get(args[1]);
      if (old !== undefined && typeof old !== 'string') return WRONGTYPE;
      client.db.set(args[1], args[2]);
      return bulkReply(old);
    },
  },
  mget: {
    arity: -2,
    run(args, client) {
      const now = Date.now();
      const values = new Array(args.length - 1);
      for (let i = 1; i < args.length; i++) {
        const v = client.db.get(args[i], now);
        values[i - 1] = typeof v === 'string' ? v : null;
      }
      return arrayReply(values);
    },
  },
  mset: {
    arity: -3,
    run(args, client) {
      if (args.length % 2 === 0) return arityError('mset');
      for (let i = 1; i < args.length; i += 2) client.db.set(args[i], args[i + 1]);
      return OK;
    },
  },
  incr: { arity: 2, run: (args, client) => incrementBy(client, args[1], 1) },
  decr: { arity: 2, run: (args, client) => incrementBy(client, args[1], -1) },
  incrby: {
    arity: 3,
    run(args, client) {
      const delta = parseInt64(args[2]);
      return delta === undefined ? NOT_INTEGER : incrementBy(client, args[1], delta);
    },
  },
  decrby: {
    arity: 3,
    run(args, client) {
      const delta = parseInt64(args[2]);
      if (delta === undefined) return NOT_INTEGER;
      // -(-2^63) does not fit: Redis refuses it with the same error.
      if (delta === -9223372036854775808n) return errorReply('ERR decrement would overflow');
      return incrementBy(client, args[1], -delta);
    },
  },
  append: {
    arity: 3,
    run(args, client) {
      const db = client.db;
      const old = db.get(args[1]);
      if (old === undefined) {
        db.set(args[1], args[2]);
        return integerReply(args[2].length);
      }
      if (typeof old !== 'string') return WRONGTYPE;
      const value = old + args[2];
      db.replace(args[1], value);
      return integerReply(value.length);
    },
  },
  strlen: {
    arity: 2,
    run(args, client) {
      const value = client.db.get(args[1]);
      if (value === undefined) return integerReply(0);
      return typeof value === 'string' ? integerReply(value.length) : WRONGTYPE;
    },
  },
};
