// Key space commands: DEL EXISTS KEYS SCAN TYPE EXPIRE PEXPIRE EXPIREAT PEXPIREAT TTL PTTL
// PERSIST DBSIZE FLUSHDB FLUSHALL SELECT.
import {
  OK,
  arrayReply,
  bulkReply,
  errorReply,
  integerReply,
  nestedReply,
  simpleString,
} from '../protocol.js';
import { globMatch, parseInt64, typeName } from '../db.js';
import { NOT_INTEGER, SYNTAX } from './replies.js';

const DB_OUT_OF_RANGE = errorReply('ERR DB index is out of range');
const INVALID_CURSOR = errorReply('ERR invalid cursor');
const NX_XX_GT_LT = errorReply(
  'ERR NX and XX, GT or LT options at the same time are not compatible',
);
const GT_LT = errorReply('ERR GT and LT options at the same time are not compatible');

/** SCAN cursors kept at once per server; the oldest is forgotten past it (see `scan`). */
const MAX_CURSORS = 1024;
const SCAN_DEFAULT_COUNT = 10;

/**
 * EXPIRE and its kin: `unitMs` 1000 for seconds, 1; `absolute` for the *AT forms. Redis 7.0's
 * NX XX GT LT flags; a deadline already past deletes the key.
 */
function expireCommand(name, unitMs, absolute) {
  const invalid = errorReply(`ERR invalid expire time in '${name}' command`);
  return {
    arity: -3,
    run(args, client) {
      const n = parseInt64(args[2]);
      if (n === undefined) return NOT_INTEGER;
      let nx = false;
      let xx = false;
      let gt = false;
      let lt = false;
      for (let i = 3; i < args.length; i++) {
        const flag = args[i].toUpperCase();
        if (flag === 'NX') nx = true;
        else if (flag === 'XX') xx = true;
        else if (flag === 'GT') gt = true;
        else if (flag === 'LT') lt = true;
        else return errorReply(`ERR Unsupported option ${args[i]}`);
      }
      if (nx && (xx || gt || lt)) return NX_XX_GT_LT;
      if (gt && lt) return GT_LT;
      if (typeof n !== 'number' || Math.abs(n * unitMs) > Number.MAX_SAFE_INTEGER) return invalid;
      const now = Date.now();
      const at = absolute ? n * unitMs : now + n * unitMs;
      if (!Number.isSafeInteger(at)) return invalid;
      const db = client.db;
      const key = args[1];
      if (!db.has(key, now)) return integerReply(0);
      const current = db.expireAt(key); // undefined: no deadline, an infinite TTL
      if (nx && current !== undefined) return integerReply(0);
      if (xx && current === undefined) return integerReply(0);
      if (gt && (current === undefined || at <= current)) return integerReply(0);
      if (lt && current !== undefined && at >= current) return integerReply(0);
      if (at <= now) db.delete(key);
      else db.setExpire(key, at);
      return integerReply(1);
    },
  };
}

/** TTL / PTTL: -2 no key, -1 no deadline, else the time left (TTL rounds to the nearest s). */
function ttlCommand(unitMs) {
  return {
    arity: 2,
    run(args, client) {
      const now = Date.now();
      if (!client.db.has(args[1], now)) return integerReply(-2);
      const at = client.db.expireAt(args[1]);
      if (at === undefined) return integerReply(-1);
      const left = at - now;
      return integerReply(unitMs === 1 ? left : Math.floor((left + 500) / 1000));
    },
  };
}

/** Parses a DB index as SELECT does; a number from 0 to 15, or an error reply. */
function dbIndex(text, client) {
  const n = parseInt64(text);
  if (n === undefined) return NOT_INTEGER;
  if (typeof n !== 'number' || n < 0 || n >= client.keyspace.dbs.length) return DB_OUT_OF_RANGE;
  return n;
}

/** FLUSHDB / FLUSHALL take ASYNC or SYNC, which change nothing here. */
function flushMode(args) {
  if (args.length === 1) return undefined;
  const mode = args[1].toUpperCase();
  if (args.length === 2 && (mode === 'ASYNC' || mode === 'SYNC')) return undefined;
  return SYNTAX;
}

/**
 * SCAN's cursors. A cursor number names a live walk over the database's Map (a Map iterator
 * stays valid while keys are added and deleted, and visits every key present from the start of
 * the walk to its end exactly once), so the guarantee Redis gives holds: a key present during
 * the whole iteration is returned. At most MAX_CURSORS walks are kept per server; a cursor
 * the server no longer knows starts a new walk, which returns keys again (duplicates, which
 * Redis allows too) but never misses one.
 */
function scan(args, client) {
  const cursor = args[1];
  if (!/^(?:0|[1-9][0-9]*)$/.test(cursor)) return INVALID_CURSOR;
  let pattern = '*';
  let count = SCAN_DEFAULT_COUNT;
  let type;
  for (let i = 2; i < args.length; i++) {
    const opt = args[i].toUpperCase();
    if (i + 1 >= args.length) return SYNTAX;
    if (opt === 'MATCH') pattern = args[++i];
    else if (opt === 'TYPE') type = args[++i];
    else if (opt === 'COUNT') {
      const n = parseInt64(args[++i]);
      if (n === undefined) return NOT_INTEGER;
      if (n < 1) return SYNTAX;
      count = typeof n === 'number' ? n : Number.MAX_SAFE_INTEGER;
    } else return SYNTAX;
  }
  const db = client.db;
  const cursors = client.server.scanCursors;
  let walk = cursor === '0' ? undefined : cursors.get(cursor);
  if (walk !== undefined && walk.db !== db) walk = undefined;
  if (walk === undefined) walk = { db, keys: db.dict.keys() };
  else cursors.delete(cursor);
  const now = Date.now();
  const found = [];
  let done = false;
  for (let examined = 0; examined < count; examined++) {
    const step = walk.keys.next();
    if (step.done) {
      done = true;
      break;
    }
    const key = step.value;
    const value = db.get(key, now); // lazy expiry: a key past its deadline goes now
    if (value === undefined) continue;
    if (type !== undefined && typeName(value) !== type.toLowerCase()) continue;
    if (pattern !== '*' && !globMatch(pattern, key)) continue;
    found.push(key);
  }
  let next = '0';
  if (!done) {
    next = String(++client.server.scanSerial);
    cursors.set(next, walk);
    if (cursors.size > MAX_CURSORS) cursors.delete(cursors.keys().next().value);
  }
  return nestedReply([bulkReply(next), arrayReply(found)]);
}

export const commands = {
  del: {
    arity: -2,
    run(args, client) {
      const now = Date.now();
      let n = 0;
      for (let i = 1; i < args.length; i++) {
        if (client.db.has(args[i], now) && client.db.delete(args[i])) n++;
      }
      return integerReply(n);
    },
  },
  exists: {
    arity: -2,
    run(args, client) {
      const now = Date.now();
      let n = 0;
      for (let i = 1; i < args.length; i++) if (client.db.has(args[i], now)) n++;
      return integerReply(n);
    },
  },
  type: {
    arity: 2,
    run(args, client) {
      return simpleString(typeName(client.db.get(args[1])));
    },
  },
  keys: {
    arity: 2,
    run(args, client) {
      const db = client.db;
      const now = Date.now();
      const pattern = args[1];
      const found = [];
      for (const key of db.dict.keys()) {
        if (globMatch(pattern, key) && db.has(key, now)) found.push(key);
      }
      return arrayReply(found);
    },
  },
  scan: { arity: -2, run: scan },
  expire: expireCommand('expire', 1000, false),
  pexpire: expireCommand('pexpire', 1, false),
  expireat: expireCommand('expireat', 1000, true),
  pexpireat: expireCommand('pexpireat', 1, true),
  ttl: ttlCommand(1000),
  pttl: ttlCommand(1),
  persist: {
    arity: 2,
    run(args, client) {
      if (!client.db.has(args[1])) return integerReply(0);
      return integerReply(client.db.persist(args[1]) ? 1 : 0);
    },
  },
  dbsize: { arity: 1, run: (args, client) => integerReply(client.db.size) },
  flushdb: {
    arity: -1,
    run(args, client) {
      const bad = flushMode(args);
      if (bad !== undefined) return bad;
      client.db.clear();
      return OK;
    },
  },
  flushall: {
    arity: -1,
    run(args, client) {
      const bad = flushMode(args);
      if (bad !== undefined) return bad;
      client.keyspace.clear();
      return OK;
    },
  },
  select: {
    arity: 2,
    run(args, client) {
      const index = dbIndex(args[1], client);
      if (typeof index !== 'number') return index;
      client.dbIndex = index;
      client.db = client.keyspace.db(index);
      return OK;
    },
  },
};
