// Sorted set commands: ZADD (NX XX GT LT CH INCR) ZRANGE (by index or BYSCORE, REV, LIMIT,
// WITHSCORES) ZSCORE ZPOPMIN ZCARD, on a ZSet. Scores are written as Redis 7.0 writes them.
import {
  EMPTY_ARRAY,
  NULL_BULK,
  arrayReply,
  bulkReply,
  errorReply,
  integerReply,
} from '../protocol.js';
import { ZSet, formatDouble, parseDouble, parseInt64 } from '../db.js';
import { NOT_FLOAT, NOT_INTEGER, NOT_POSITIVE, SYNTAX, WRONGTYPE, arityError } from './replies.js';

const XX_NX = errorReply('ERR XX and NX options at the same time are not compatible');
const GT_LT_NX = errorReply('ERR GT, LT, and/or NX options at the same time are not compatible');
const INCR_PAIR = errorReply('ERR INCR option supports a single increment-element pair');
const NAN_SCORE = errorReply('ERR resulting score is not a number (NaN)');
const MIN_MAX_FLOAT = errorReply('ERR min or max is not a float');
const BYLEX = errorReply('ERR BYLEX is not supported by this server');
const LIMIT_ONLY = errorReply(
  'ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX',
);

/** The sorted set at `key`, undefined when there is none, or WRONGTYPE. */
function zsetAt(db, key) {
  const value = db.get(key);
  if (value === undefined || value instanceof ZSet) return value;
  return WRONGTYPE;
}

/** A BYSCORE bound: `1.5`, `(1.5` (exclusive), `-inf`, `+inf`; or undefined. */
function scoreBound(text) {
  const open = text[0] === '(';
  const value = parseDouble(open ? text.slice(1) : text);
  return value === undefined ? undefined : { value, open };
}

function zadd(args, client) {
  let nx = false;
  let xx = false;
  let gt = false;
  let lt = false;
  let ch = false;
  let incr = false;
  let i = 2;
  for (; i < args.length; i++) {
    const opt = args[i].toUpperCase();
    if (opt === 'NX') nx = true;
    else if (opt === 'XX') xx = true;
    else if (opt === 'GT') gt = true;
    else if (opt === 'LT') lt = true;
    else if (opt === 'CH') ch = true;
    else if (opt === 'INCR') incr = true;
    else break;
  }
  const pairs = args.length - i;
  if (pairs === 0 || pairs % 2 !== 0) return SYNTAX;
  if (nx && xx) return XX_NX;
  if ((gt && nx) || (lt && nx) || (gt && lt)) return GT_LT_NX;
  if (incr && pairs > 2) return INCR_PAIR;
  const scores = [];
  for (let j = i; j < args.length; j += 2) {
    const score = parseDouble(args[j]);
    if (score === undefined) return NOT_FLOAT;
    scores.push(score);
  }
  let zset = zsetAt(client.db, args[1]);
  if (zset === WRONGTYPE) return zset;
  if (zset === undefined) {
    if (xx) return incr ? NULL_BULK : integerReply(0);
    zset = new ZSet();
    client.db.set(args[1], zset);
  }
  let added = 0;
  let changed = 0;
  let result;
  for (let j = i, k = 0; j < args.length; j += 2, k++) {
    const member = args[j + 1];
    const old = zset.scores.get(member);
    let score = scores[k];
    if (old === undefined ? xx : nx) continue;
    if (incr && old !== undefined) {
      score += old;
      if (Number.isNaN(score)) {
        client.db.dropIfEmpty(args[1], zset);
        return NAN_SCORE;
      }
    }
    if (old !== undefined && ((gt && score <= old) || (lt && score >= old))) continue;
    result = score;
    if (zset.set(member, score)) added++;
    else if (old !== score) changed++;
  }
  client.db.dropIfEmpty(args[1], zset);
  if (incr) return result === undefined ? NULL_BULK : bulkReply(formatDouble(result));
  return integerReply(ch ? added + changed : added);
}

function zrange(args, client) {
  let byScore = false;
  let rev = false;
  let withScores = false;
  let limit;
  for (let i = 4; i < args.length; i++) {
    const opt = args[i].toUpperCase();
    if (opt === 'BYSCORE') byScore = true;
    else if (opt === 'BYLEX') return BYLEX;
    else if (opt === 'REV') rev = true;
    else if (opt === 'WITHSCORES') withScores = true;
    else if (opt === 'LIMIT' && i + 2 < args.length) {
      const offset = parseInt64(args[i + 1]);
      const count = parseInt64(args[i + 2]);
      if (offset === undefined || count === undefined) return NOT_INTEGER;
      limit = { offset: Number(offset), count: Number(count) };
      i += 2;
    } else return SYNTAX;
  }
  if (limit !== undefined && !byScore) return LIMIT_ONLY;
  let pairs;
  if (byScore) {
    // With REV, the first bound is the maximum, as Redis takes them.
    const lo = scoreBound(args[rev ? 3 : 2]);
    const hi = scoreBound(args[rev ? 2 : 3]);
    if (lo === undefined || hi === undefined) return MIN_MAX_FLOAT;
    const zset = zsetAt(client.db, args[1]);
    if (zset === WRONGTYPE) return zset;
    if (zset === undefined) return EMPTY_ARRAY;
    pairs = zset.order.filter(
      ([s]) => (lo.open ? s > lo.value : s >= lo.value) && (hi.open ? s < hi.value : s <= hi.value),
    );
    if (rev) pairs.reverse();
    if (limit !== undefined) {
      if (limit.offset < 0) pairs = [];
      else
        pairs = pairs.slice(limit.offset, limit.count < 0 ? undefined : limit.offset + limit.count);
    }
  } else {
    let start = parseInt64(args[2]);
    let stop = parseInt64(args[3]);
    if (start === undefined || stop === undefined) return NOT_INTEGER;
    const zset = zsetAt(client.db, args[1]);
    if (zset === WRONGTYPE) return zset;
    if (zset === undefined) return EMPTY_ARRAY;
    const len = zset.size;
    start = Number(start);
    stop = Number(stop);
    if (start < 0) start = Math.max(0, start + len);
    if (stop < 0) stop += len;
    if (stop >= len) stop = len - 1;
    if (start > stop || start >= len) return EMPTY_ARRAY;
    if (rev) pairs = zset.order.slice(len - 1 - stop, len - start).reverse();
    else pairs = zset.order.slice(start, stop + 1);
  }
  const out = [];
  for (const [score, member] of pairs) {
    out.push(member);
    if (withScores) out.push(formatDouble(score));
  }
  return arrayReply(out);
}

export const commands = {
  zadd: { arity: -4, run: zadd },
  zrange: { arity: -4, run: zrange },
  zscore: {
    arity: 3,
    run(args, client) {
      const zset = zsetAt(client.db, args[1]);
      if (zset === WRONGTYPE) return zset;
      const score = zset?.scores.get(args[2]);
      return score === undefined ? NULL_BULK : bulkReply(formatDouble(score));
    },
  },
  zcard: {
    arity: 2,
    run(args, client) {
      const zset = zsetAt(client.db, args[1]);
      if (zset === WRONGTYPE) return zset;
      return integerReply(zset === undefined ? 0 : zset.size);
    },
  },
  zpopmin: {
    arity: -2,
    run(args, client) {
      if (args.length > 3) return arityError('zpopmin');
      let count = 1;
      if (args.length === 3) {
        const n = parseInt64(args[2]);
        if (n === undefined || n < 0) return NOT_POSITIVE;
        count = typeof n === 'number' ? n : Number.MAX_SAFE_INTEGER;
      }
      const zset = zsetAt(client.db, args[1]);
      if (zset === WRONGTYPE) return zset;
      if (zset === undefined || count === 0) return EMPTY_ARRAY;
      const out = [];
      for (const [score, member] of zset.popMin(count)) out.push(member, formatDouble(score));
      client.db.dropIfEmpty(args[1], zset);
      return arrayReply(out);
    },
  },
};
