// List commands: LPUSH RPUSH LPOP RPOP (with a count) LRANGE LLEN LINDEX, on a Deque.
import { EMPTY_ARRAY, NULL_BULK, arrayReply, bulkReply, integerReply } from '../protocol.js';
import { Deque, parseInt64 } from '../db.js';
import { NOT_INTEGER, NOT_POSITIVE, NULL_ARRAY, WRONGTYPE, arityError } from './replies.js';

/** The list at `key`, undefined when there is none, or WRONGTYPE. */
function listAt(db, key) {
  const value = db.get(key);
  if (value === undefined || value instanceof Deque) return value;
  return WRONGTYPE;
}

function push(front) {
  return {
    arity: -3,
    run(args, client) {
      let list = listAt(client.db, args[1]);
      if (list === WRONGTYPE) return list;
      if (list === undefined) {
        list = new Deque();
        client.db.set(args[1], list);
      }
      for (let i = 2; i < args.length; i++) {
        if (front) list.pushFront(args[i]);
        else list.pushBack(args[i]);
      }
      return integerReply(list.length);
    },
  };
}

function pop(front) {
  return {
    arity: -2,
    run(args, client) {
      if (args.length > 3) return arityError(front ? 'lpop' : 'rpop');
      let count;
      if (args.length === 3) {
        count = parseInt64(args[2]);
        if (count === undefined || count < 0) return NOT_POSITIVE;
        if (typeof count !== 'number') count = Number.MAX_SAFE_INTEGER;
      }
      const list = listAt(client.db, args[1]);
      if (list === WRONGTYPE) return list;
      if (list === undefined) return count === undefined ? NULL_BULK : NULL_ARRAY;
      if (count === undefined) {
        const value = front ? list.popFront() : list.popBack();
        client.db.dropIfEmpty(args[1], list);
        return bulkReply(value);
      }
      if (count === 0) return EMPTY_ARRAY;
      const n = Math.min(count, list.length);
      const values = new Array(n);
      for (let i = 0; i < n; i++) values[i] = front ? list.popFront() : list.popBack();
      client.db.dropIfEmpty(args[1], list);
      return arrayReply(values);
    },
  };
}

export const commands = {
  lpush: push(true),
  rpush: push(false),
  lpop: pop(true),
  rpop: pop(false),
  llen: {
    arity: 2,
    run(args, client) {
      const list = listAt(client.db, args[1]);
      if (list === WRONGTYPE) return list;
      return integerReply(list === undefined ? 0 : list.length);
    },
  },
  lindex: {
    arity: 3,
    run(args, client) {
      let index = parseInt64(args[2]);
      if (index === undefined) return NOT_INTEGER;
      const list = listAt(client.db, args[1]);
      if (list === WRONGTYPE) return list;
      if (list === undefined) return NULL_BULK;
      if (typeof index !== 'number') return NULL_BULK;
      if (index < 0) index += list.length;
      if (index < 0 || index >= list.length) return NULL_BULK;
      return bulkReply(list.at(index));
    },
  },
  lrange: {
    arity: 4,
    run(args, client) {
      let start = parseInt64(args[2]);
      let stop = parseInt64(args[3]);
      if (start === undefined || stop === undefined) return NOT_INTEGER;
      const list = listAt(client.db, args[1]);
      if (list === WRONGTYPE) return list;
      if (list === undefined) return EMPTY_ARRAY;
      const len = list.length;
      start = Number(start);
      stop = Number(stop);
      if (start < 0) start = Math.max(0, start + len);
      if (stop < 0) stop += len;
      if (stop >= len) stop = len - 1;
      if (start > stop || start >= len) return EMPTY_ARRAY;
      const values = new Array(stop - start + 1);
      for (let i = start; i <= stop; i++) values[i - start] = list.at(i);
      return arrayReply(values);
    },
  },
};
