// The Redis demo's commands with redis-cli as the client: one table of command lines and
// redis-cli's exact `--no-raw` output (so integer, bulk, nil, array and error replies differ).
// The same table runs against a real redis-server first (proof the expected shapes are
// redis-server's), then against the demo (examples/redis-server/main.js) on every impl. The
// tests run one at a time: the expiry rows read the clock, and fewer busy servers keep them honest.
import test from 'ava';
import type { ExecutionContext } from 'ava';
import { existsSync } from 'node:fs';
import { implsUnderTest } from './helpers/harness.js';
import {
  REDIS_CLI,
  REDIS_SERVER,
  cli,
  runTable,
  startDemo,
  startRedisServer,
} from './helpers/redis-cli.js';
import type { RedisChild, Row } from './helpers/redis-cli.js';

const WRONGTYPE = '(error) WRONGTYPE Operation against a key holding the wrong kind of value';
const NOT_INT = '(error) ERR value is not an integer or out of range';
const SYNTAX = '(error) ERR syntax error';
// Remaining time read back right after it was set: exact in redis-server's rounding, less a
// few seconds a loaded machine may take between two redis-cli runs.
const TTL_100 = /^\(integer\) (9\d|100)$/;
const PTTL_100000 = /^\(integer\) (9\d\d\d\d|100000)$/;
const arity = (cmd: string) => `(error) ERR wrong number of arguments for '${cmd}' command`;
const row = (line: string, expect: string | RegExp, more: Partial<Row> = {}): Row => ({
  args: line.split(' '),
  expect,
  ...more,
});

/** Every row runs in order on one server; the first empties all 16 databases. */
export const TABLE: Row[] = [
  row('FLUSHALL', 'OK'),
  row('DBSIZE', '(integer) 0'),

  // ---- strings ----
  row('SET k v', 'OK'),
  row('GET k', '"v"'),
  row('GET missing', '(nil)'),
  row('SET k v2 XX', 'OK'),
  row('GET k', '"v2"'),
  row('SET k v3 NX', '(nil)'),
  row('GET k', '"v2"'),
  row('SET fresh 1 XX', '(nil)'),
  row('EXISTS fresh', '(integer) 0'),
  row('SET fresh 1 NX', 'OK'),
  row('SET k v NX XX', SYNTAX),
  row('SET k v EX 0', "(error) ERR invalid expire time in 'set' command"),
  row('SET k v EX abc', NOT_INT),
  row('SET k v BOGUS', SYNTAX),
  row('SET ex v EX 100', 'OK'),
  row('TTL ex', TTL_100),
  row('SET px v PX 100000', 'OK'),
  row('PTTL px', PTTL_100000),
  row('MSET a 1 b 2 c 3', 'OK'),
  row('MGET a b missing c', '1) "1"\n2) "2"\n3) (nil)\n4) "3"'),
  row('MSET a 1 b', arity('mset')),
  row('INCR n', '(integer) 1'),
  row('INCRBY n 10', '(integer) 11'),
  row('DECR n', '(integer) 10'),
  row('DECRBY n 15', '(integer) -5'),
  row('INCRBY n -5', '(integer) -10'),
  row('GET n', '"-10"'),
  row('INCR k', NOT_INT),
  row('INCRBY n x', NOT_INT),
  row('SET big 9223372036854775807', 'OK'),
  row('INCR big', '(error) ERR increment or decrement would overflow'),
  row('APPEND s hello', '(integer) 5'),
  row('APPEND s _world', '(integer) 11'),
  row('GET s', '"hello_world"'),
  row('STRLEN s', '(integer) 11'),
  row('STRLEN missing', '(integer) 0'),
  row('GETSET s new', '"hello_world"'),
  row('GETSET gs first', '(nil)'),
  row('GET s', '"new"'),
  { args: ['SET', 'spaced', 'a b c'], expect: 'OK' },
  row('GET spaced', '"a b c"'),
  row('GET', arity('get')),
  row('SET k', arity('set')),
  row('INCR', arity('incr')),

  // ---- keys ----
  row('DEL a b missing', '(integer) 2'),
  row('EXISTS a c c missing', '(integer) 2'),
  row('TYPE c', 'string'),
  row('TYPE missing', 'none'),
  row('KEYS c', '1) "c"'),
  row('KEYS nomatch*', '(empty array)'),
  row('SCAN 0 MATCH c COUNT 1000', '1) "0"\n2) 1) "c"'),
  row('SCAN 0 MATCH nomatch* COUNT 1000', '1) "0"\n2) (empty array)'),
  row('EXPIRE c 100', '(integer) 1'),
  row('TTL c', TTL_100),
  row('PERSIST c', '(integer) 1'),
  row('PERSIST c', '(integer) 0'),
  row('TTL c', '(integer) -1'),
  row('TTL missing', '(integer) -2'),
  row('PTTL c', '(integer) -1'),
  row('PTTL missing', '(integer) -2'),
  row('PEXPIRE c 100000', '(integer) 1'),
  row('PTTL c', PTTL_100000),
  row('EXPIRE missing 10', '(integer) 0'),
  row('EXPIRE c abc', NOT_INT),
  row('EXPIRE c', arity('expire')),
  // Expiry: lazy (a read after the deadline) ...
  row('SET short v PX 100', 'OK'),
  row('GET short', '(nil)', { sleepMs: 250 }),
  row('TTL short', '(integer) -2'),
  row('EXISTS short', '(integer) 0'),
  row('SET gone v', 'OK'),
  row('PEXPIRE gone 50', '(integer) 1'),
  row('GET gone', '(nil)', { sleepMs: 250 }),
  // ... and active: a key nobody touches leaves DBSIZE on its own (database 9 holds only it).
  // (2 s: long enough that the key is surely still there for the DBSIZE right after the SET.)
  row('SET lonely v PX 2000', 'OK', { db: 9 }),
  row('DBSIZE', '(integer) 1', { db: 9 }),
  row('DBSIZE', '(integer) 0', { db: 9, sleepMs: 2_000, untilMs: 5_000 }),
  // EXPIRE with 0 or a negative time deletes the key.
  row('SET doomed v', 'OK'),
  row('EXPIRE doomed 0', '(integer) 1'),
  row('EXISTS doomed', '(integer) 0'),

  // ---- databases ----
  row('SET dbkey zero', 'OK'),
  row('SET dbkey one', 'OK', { db: 1 }),
  row('GET dbkey', '"one"', { db: 1 }),
  row('GET dbkey', '"zero"'),
  row('DBSIZE', '(integer) 1', { db: 1 }),
  row('GET dbkey', '(nil)', { db: 15 }),
  { args: [], stdin: 'SELECT 2\nSET x 2\nGET x\n', expect: 'OK\nOK\n"2"' },
  row('GET x', '"2"', { db: 2 }),
  row('GET x', '(nil)'),
  row('SELECT 15', 'OK'),
  row('SELECT 16', '(error) ERR DB index is out of range'),
  row('SELECT -1', '(error) ERR DB index is out of range'),
  row('SELECT x', NOT_INT),
  row('FLUSHDB', 'OK', { db: 1 }),
  row('DBSIZE', '(integer) 0', { db: 1 }),
  row('GET dbkey', '"zero"'),
  row('CONFIG GET databases', '1) "databases"\n2) "16"'),

  // ---- lists ----
  row('LPUSH l b a', '(integer) 2'),
  row('RPUSH l c d', '(integer) 4'),
  row('LLEN l', '(integer) 4'),
  row('LRANGE l 0 -1', '1) "a"\n2) "b"\n3) "c"\n4) "d"'),
  row('LRANGE l 1 2', '1) "b"\n2) "c"'),
  row('LRANGE l -2 100', '1) "c"\n2) "d"'),
  row('LRANGE l 5 10', '(empty array)'),
  row('LINDEX l 0', '"a"'),
  row('LINDEX l -1', '"d"'),
  row('LINDEX l 9', '(nil)'),
  row('LPOP l', '"a"'),
  row('RPOP l', '"d"'),
  row('LPOP l 5', '1) "b"\n2) "c"'),
  row('LLEN l', '(integer) 0'),
  row('EXISTS l', '(integer) 0'),
  row('LPOP l', '(nil)'),
  row('LRANGE missing 0 -1', '(empty array)'),
  row('LLEN missing', '(integer) 0'),
  row('LPUSH k x', WRONGTYPE),
  row('LRANGE k 0 -1', WRONGTYPE),
  row('LLEN k', WRONGTYPE),
  row('LPUSH l', arity('lpush')),
  row('LRANGE l 0 x', NOT_INT),
  row('RPUSH l2 x', '(integer) 1'),
  row('GET l2', WRONGTYPE),
  row('TYPE l2', 'list'),

  // ---- hashes ----
  row('HSET h f1 v1 f2 v2', '(integer) 2'),
  row('HSET h f1 v1b f3 v3', '(integer) 1'),
  row('HGET h f1', '"v1b"'),
  row('HGET h nope', '(nil)'),
  row('HGET missing f', '(nil)'),
  row('HMGET h f1 nope f3', '1) "v1b"\n2) (nil)\n3) "v3"'),
  row('HGETALL h', '1) "f1"\n2) "v1b"\n3) "f2"\n4) "v2"\n5) "f3"\n6) "v3"'),
  row('HGETALL missing', '(empty array)'),
  row('HLEN h', '(integer) 3'),
  row('HDEL h f2 nope', '(integer) 1'),
  row('HLEN h', '(integer) 2'),
  row('HINCRBY h count 5', '(integer) 5'),
  row('HINCRBY h count -7', '(integer) -2'),
  row('HINCRBY h f1 1', '(error) ERR hash value is not an integer'),
  row('HINCRBY h count x', NOT_INT),
  row('HSET h f1', arity('hset')),
  row('HSET k f v', WRONGTYPE),
  row('HGET l2 f', WRONGTYPE),
  row('TYPE h', 'hash'),
  row('HDEL h f1 f3 count', '(integer) 3'),
  row('EXISTS h', '(integer) 0'),

  // ---- sets (integer members: redis-server keeps them sorted, insert in order to match) ----
  row('SADD st 1 2 3', '(integer) 3'),
  row('SADD st 3 4', '(integer) 1'),
  row('SCARD st', '(integer) 4'),
  row('SMEMBERS st', '1) "1"\n2) "2"\n3) "3"\n4) "4"'),
  row('SISMEMBER st 2', '(integer) 1'),
  row('SISMEMBER st 9', '(integer) 0'),
  row('SISMEMBER missing 9', '(integer) 0'),
  row('SREM st 1 2 9', '(integer) 2'),
  row('SMEMBERS st', '1) "3"\n2) "4"'),
  row('SMEMBERS missing', '(empty array)'),
  row('SADD one only', '(integer) 1'),
  row('SPOP one', '"only"'),
  row('SPOP one', '(nil)'),
  row('EXISTS one', '(integer) 0'),
  row('SCARD missing', '(integer) 0'),
  row('SADD k x', WRONGTYPE),
  row('SMEMBERS l2', WRONGTYPE),
  row('SADD st', arity('sadd')),
  row('TYPE st', 'set'),

  // ---- sorted sets ----
  row('ZADD z 1.5 a 2 b 0 c', '(integer) 3'),
  row('ZADD z 3 a', '(integer) 0'),
  row('ZCARD z', '(integer) 3'),
  row('ZRANGE z 0 -1', '1) "c"\n2) "b"\n3) "a"'),
  row('ZRANGE z 0 -1 WITHSCORES', '1) "c"\n2) "0"\n3) "b"\n4) "2"\n5) "a"\n6) "3"'),
  row('ZRANGE z 1 1', '1) "b"'),
  row('ZRANGE missing 0 -1', '(empty array)'),
  row('ZSCORE z a', '"3"'),
  row('ZSCORE z nope', '(nil)'),
  row('ZADD z 2.5 d', '(integer) 1'),
  row('ZSCORE z d', '"2.5"'),
  row('ZPOPMIN z', '1) "c"\n2) "0"'),
  row('ZPOPMIN z 2', '1) "b"\n2) "2"\n3) "d"\n4) "2.5"'),
  row('ZPOPMIN missing', '(empty array)'),
  row('ZADD z x a', '(error) ERR value is not a valid float'),
  row('ZADD z 1 a 2', SYNTAX),
  row('ZADD z 1', arity('zadd')),
  row('ZADD z', arity('zadd')),
  row('ZADD k 1 a', WRONGTYPE),
  row('ZCARD l2', WRONGTYPE),
  row('TYPE z', 'zset'),
  row('ZCARD missing', '(integer) 0'),

  // ---- server ----
  row('PING', 'PONG'),
  row('PING hello', '"hello"'),
  row('ECHO hi', '"hi"'),
  row('ECHO', arity('echo')),
  row('INFO', /^# Server\r?\n[\s\S]*# Clients\r?\n[\s\S]*# Memory\r?\n[\s\S]*# Keyspace\r?\n/),
  row('INFO server', /^# Server\r?\nredis_version:/),
  row(
    'INFO keyspace',
    /^# Keyspace\r?\ndb0:keys=\d+,expires=\d+,avg_ttl=\d+\r?\ndb2:keys=1,expires=0,avg_ttl=0\r?\n?$/,
  ),
  row('CONFIG GET save', '1) "save"\n2) ""'),
  row('CONFIG GET appendonly', '1) "appendonly"\n2) "no"'),
  row('CONFIG GET no-such-parameter', '(empty array)'),
  {
    args: [],
    stdin: 'CLIENT GETNAME\nCLIENT SETNAME tester\nCLIENT GETNAME\n',
    expect: '(nil)\nOK\n"tester"',
  },
  row(
    'HELLO 2',
    new RegExp(
      '^ 1\\) "server"\n 2\\) "[^"]+"\n 3\\) "version"\n 4\\) "[^"]+"\n 5\\) "proto"\n' +
        ' 6\\) \\(integer\\) 2\n 7\\) "id"\n 8\\) \\(integer\\) \\d+\n 9\\) "mode"\n' +
        '10\\) "standalone"\n11\\) "role"\n12\\) "master"\n13\\) "modules"\n14\\) \\(empty array\\)$',
    ),
  ),
  row('COMMAND COUNT', /^\(integer\) [1-9]\d*$/),
  row(
    'NOSUCHCOMMAND x',
    /^\(error\) ERR unknown command 'NOSUCHCOMMAND', with args beginning with: 'x' ?$/i,
  ),
  row('QUIT', 'OK'),
  // A connection keeps working after error replies.
  { args: [], stdin: 'GET\nINCR k\nPING\n', expect: `${arity('get')}\n${NOT_INT}\nPONG` },

  // ---- FLUSHALL empties every database ----
  row('SET again v', 'OK', { db: 3 }),
  row('FLUSHALL', 'OK'),
  row('DBSIZE', '(integer) 0'),
  row('DBSIZE', '(integer) 0', { db: 3 }),
];

/** Runs the table on `server`, then stops it; one assertion lists every row that failed. */
async function tableHolds(t: ExecutionContext, server: RedisChild): Promise<void> {
  try {
    const mismatches = await runTable(server.port, TABLE);
    t.deepEqual(mismatches, [], `${mismatches.length} of ${TABLE.length} rows differ`);
    // The server survived the table.
    t.is((await cli(server.port, ['PING'])).trim(), 'PONG');
  } finally {
    await server.stop();
  }
}

/** RESP for `redis-cli --pipe`: SET pipe:i v-i for i < n, then an INCR per key of one counter. */
function massInsertion(n: number): string {
  const resp = (...args: string[]) =>
    `*${args.length}\r\n` + args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('');
  let out = '';
  for (let i = 0; i < n; i++)
    out += resp('SET', `pipe:${i}`, `v-${i}`) + resp('INCR', 'pipe:count');
  return out;
}

/** `redis-cli --pipe` with 2,000 commands on `server`, then reads back; stops the server. */
async function pipeWorks(t: ExecutionContext, server: RedisChild): Promise<void> {
  try {
    t.is(await cli(server.port, ['FLUSHALL']), 'OK\n');
    const out = await cli(server.port, ['--pipe'], {
      stdin: massInsertion(1000),
      timeoutMs: 30_000,
    });
    t.regex(out, /errors: 0, replies: 2000\n$/);
    t.is(await cli(server.port, ['DBSIZE']), '(integer) 1001\n');
    t.is(await cli(server.port, ['GET', 'pipe:999']), '"v-999"\n');
    t.is(await cli(server.port, ['GET', 'pipe:count']), '"1000"\n');
  } finally {
    await server.stop();
  }
}

const haveCli = existsSync(REDIS_CLI);
const haveServer = existsSync(REDIS_SERVER);

test.serial('the table holds for redis-server', async (t) => {
  if (!haveCli || !haveServer) {
    t.fail(`${REDIS_CLI} and ${REDIS_SERVER} are needed: apt-get install redis-server`);
    return;
  }
  await tableHolds(t, await startRedisServer());
});

test.serial('redis-cli --pipe mass insertion into redis-server', async (t) => {
  if (!haveCli || !haveServer) {
    t.fail(`${REDIS_CLI} and ${REDIS_SERVER} are needed: apt-get install redis-server`);
    return;
  }
  await pipeWorks(t, await startRedisServer());
});

for (const impl of implsUnderTest()) {
  test.serial(`[${impl}] the table holds for the demo`, async (t) => {
    if (!haveCli) {
      t.fail(`${REDIS_CLI} not found: apt-get install redis-tools`);
      return;
    }
    await tableHolds(t, await startDemo(impl));
  });

  test.serial(`[${impl}] redis-cli --pipe mass insertion into the demo`, async (t) => {
    if (!haveCli) {
      t.fail(`${REDIS_CLI} not found: apt-get install redis-tools`);
      return;
    }
    await pipeWorks(t, await startDemo(impl));
  });
}
