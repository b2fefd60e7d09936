// Hash commands: HSET HGET HMGET HGETALL HDEL HLEN HINCRBY, on a Map of field → value.
import { EMPTY_ARRAY, arrayReply, bulkReply, errorReply, integerReply } from '../protocol.js';
import { addInt64, parseInt64 } from '../db.js';
import { NOT_INTEGER, OVERFLOW, WRONGTYPE, arityError } from './replies.js';

const HASH_NOT_INTEGER = errorReply('ERR hash value is not an integer');

/** The hash at `key`, undefined when there is none, or WRONGTYPE. */
function hashAt(db, key) {
  const value = db.get(key);
  if (value === undefined || value instanceof Map) return value;
  return WRONGTYPE;
}

export const commands = {
  hset: {
    arity: -4,
    run(args, client) {
      if (args.length % 2 !== 0) return arityError('hset');
      let hash = hashAt(client.db, args[1]);
      if (hash === WRONGTYPE) return hash;
      if (hash === undefined) {
        hash = new Map();
        client.db.set(args[1], hash);
      }
      let added = 0;
      for (let i = 2; i < args.length; i += 2) {
        if (!hash.has(args[i])) added++;
        hash.set(args[i], args[i + 1]);
      }
      return integerReply(added);
    },
  },
  hget: {
    arity: 3,
    run(args, client) {
      const hash = hashAt(client.db, args[1]);
      if (hash === WRONGTYPE) return hash;
      return bulkReply(hash?.get(args[2]));
    },
  },
  hmget: {
    arity: -3,
    run(args, client) {
      const hash = hashAt(client.db, args[1]);
      if (hash === WRONGTYPE) return hash;
      const values = new Array(args.length - 2);
      for (let i = 2; i < args.length; i++) values[i - 2] = hash?.get(args[i]) ?? null;
      return arrayReply(values);
    },
  },
  hgetall: {
    arity: 2,
    run(args, client) {
      const hash = hashAt(client.db, args[1]);
      if (hash === WRONGTYPE) return hash;
      if (hash === undefined) return EMPTY_ARRAY;
      const flat = [];
      for (const [field, value] of hash) flat.push(field, value);
      return arrayReply(flat);
    },
  },
  hdel: {
    arity: -3,
    run(args, client) {
      const hash = hashAt(client.db, args[1]);
      if (hash === WRONGTYPE) return hash;
      if (hash === undefined) return integerReply(0);
      let n = 0;
      for (let i = 2; i < args.length; i++) if (hash.delete(args[i])) n++;
      client.db.dropIfEmpty(args[1], hash);
      return integerReply(n);
    },
  },
  hlen: {
    arity: 2,
    run(args, client) {
      const hash = hashAt(client.db, args[1]);
      if (hash === WRONGTYPE) return hash;
      return integerReply(hash === undefined ? 0 : hash.size);
    },
  },
  hincrby: {
    arity: 4,
    run(args, client) {
      const delta = parseInt64(args[3]);
      if (delta === undefined) return NOT_INTEGER;
      let hash = hashAt(client.db, args[1]);
      if (hash === WRONGTYPE) return hash;
      let current = 0;
      const old = hash?.get(args[2]);
      if (old !== undefined) {
        current = parseInt64(old);
        if (current === undefined) return HASH_NOT_INTEGER;
      }
      const next = addInt64(current, delta);
      if (next === undefined) return OVERFLOW;
      if (hash === undefined) {
        hash = new Map();
        client.db.set(args[1], hash);
      }
      hash.set(args[2], String(next));
      return integerReply(next);
    },
  },
};
