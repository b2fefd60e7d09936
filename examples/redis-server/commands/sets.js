// Set commands: SADD SREM SMEMBERS SISMEMBER SCARD SPOP (with a count), on a JavaScript Set.
import { EMPTY_ARRAY, NULL_BULK, arrayReply, bulkReply, integerReply } from '../protocol.js';
import { parseInt64 } from '../db.js';
import { NOT_POSITIVE, WRONGTYPE, arityError } from './replies.js';

/** The set at `key`, undefined when there is none, or WRONGTYPE. */
function setAt(db, key) {
  const value = db.get(key);
  if (value === undefined || value instanceof Set) return value;
  return WRONGTYPE;
}

/**
 * Removes and returns one member picked at random. A Set has no random access, so this walks
 * to a random position: O(n), where Redis's hash table is O(1).
 */
function popRandom(set) {
  let skip = Math.floor(Math.random() * set.size);
  for (const member of set) {
    if (skip-- === 0) {
      set.delete(member);
      return member;
    }
  }
  return undefined;
}

export const commands = {
  sadd: {
    arity: -3,
    run(args, client) {
      let set = setAt(client.db, args[1]);
      if (set === WRONGTYPE) return set;
      if (set === undefined) {
        set = new Set();
        client.db.set(args[1], set);
      }
      const before = set.size;
      for (let i = 2; i < args.length; i++) set.add(args[i]);
      return integerReply(set.size - before);
    },
  },
  srem: {
    arity: -3,
    run(args, client) {
      const set = setAt(client.db, args[1]);
      if (set === WRONGTYPE) return set;
      if (set === undefined) return integerReply(0);
      let n = 0;
      for (let i = 2; i < args.length; i++) if (set.delete(args[i])) n++;
      client.db.dropIfEmpty(args[1], set);
      return integerReply(n);
    },
  },
  smembers: {
    arity: 2,
    run(args, client) {
      const set = setAt(client.db, args[1]);
      if (set === WRONGTYPE) return set;
      return set === undefined ? EMPTY_ARRAY : arrayReply([...set]);
    },
  },
  sismember: {
    arity: 3,
    run(args, client) {
      const set = setAt(client.db, args[1]);
      if (set === WRONGTYPE) return set;
      return integerReply(set?.has(args[2]) ? 1 : 0);
    },
  },
  scard: {
    arity: 2,
    run(args, client) {
      const set = setAt(client.db, args[1]);
      if (set === WRONGTYPE) return set;
      return integerReply(set === undefined ? 0 : set.size);
    },
  },
  spop: {
    arity: -2,
    run(args, client) {
      if (args.length > 3) return arityError('spop');
      let count;
      if (args.length === 3) {
        count = parseInt64(args[2]);
        if (count === undefined || count < 0) return NOT_POSITIVE;
        if (typeof count !== 'number') count = Number.MAX_SAFE_INTEGER;
      }
      const set = setAt(client.db, args[1]);
      if (set === WRONGTYPE) return set;
      if (set === undefined) return count === undefined ? NULL_BULK : EMPTY_ARRAY;
      if (count === undefined) {
        const member = popRandom(set);
        client.db.dropIfEmpty(args[1], set);
        return bulkReply(member);
      }
      const members = [];
      while (members.length < count && set.size > 0) members.push(popRandom(set));
      client.db.dropIfEmpty(args[1], set);
      return arrayReply(members);
    },
  },
};
